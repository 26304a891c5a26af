//! Printers for Service, Endpoints and EndpointSlice.

use jiff::Timestamp;
use serde_json::Value;

use super::format::{
    age, at, format_labels, int_at, list_at, list_with_more, name, sorted_set_join, str_at,
};
use super::{Column, docs};

pub(super) const SERVICE_COLUMNS: &[Column] = &[
    Column::name(),
    Column::new("Type", "string", docs::SVC_TYPE),
    Column::new("Cluster-IP", "string", docs::SVC_CLUSTER_IP),
    Column::new("External-IP", "string", docs::SVC_EXTERNAL_IPS),
    Column::new("Port(s)", "string", docs::SVC_PORTS),
    Column::age(),
    Column::new("Selector", "string", docs::SVC_SELECTOR).wide(),
];

fn strings(values: &[Value]) -> impl Iterator<Item = &str> {
    values.iter().filter_map(Value::as_str)
}

pub(super) fn service(obj: &Value, now: Timestamp) -> Vec<Value> {
    // The v1 API defaults the type; stored objects written without it are ClusterIP services.
    let svc_type = match str_at(obj, &["spec", "type"]) {
        "" => "ClusterIP",
        t => t,
    };
    // spec.clusterIP mirrors spec.clusterIPs[0]; accept objects that carry only the former.
    let cluster_ip = strings(list_at(obj, &["spec", "clusterIPs"]))
        .next()
        .or_else(|| at(obj, &["spec", "clusterIP"]).and_then(Value::as_str))
        .unwrap_or("<none>");
    let ports = port_string(list_at(obj, &["spec", "ports"]));
    vec![
        name(obj),
        Value::from(svc_type),
        Value::from(cluster_ip),
        Value::from(external_ip(obj, svc_type)),
        Value::from(if ports.is_empty() {
            "<none>".to_owned()
        } else {
            ports
        }),
        age(obj, now),
        Value::from(format_labels(at(obj, &["spec", "selector"]))),
    ]
}

/// `getServiceExternalIP` as the server calls it: wide, so load-balancer lists are never clipped.
fn external_ip(obj: &Value, svc_type: &str) -> String {
    let external_ips: Vec<&str> = strings(list_at(obj, &["spec", "externalIPs"])).collect();
    match svc_type {
        "ClusterIP" | "NodePort" if external_ips.is_empty() => "<none>".to_owned(),
        "ClusterIP" | "NodePort" => external_ips.join(","),
        "LoadBalancer" => {
            let ingress = list_at(obj, &["status", "loadBalancer", "ingress"]);
            let lb_ips = sorted_set_join(ingress.iter().filter_map(|i| {
                [str_at(i, &["ip"]), str_at(i, &["hostname"])]
                    .into_iter()
                    .find(|s| !s.is_empty())
            }));
            if !external_ips.is_empty() {
                let mut all: Vec<&str> = if lb_ips.is_empty() {
                    Vec::new()
                } else {
                    lb_ips.split(',').collect()
                };
                all.extend(external_ips);
                all.join(",")
            } else if !lb_ips.is_empty() {
                lb_ips
            } else {
                "<pending>".to_owned()
            }
        }
        "ExternalName" => str_at(obj, &["spec", "externalName"]).to_owned(),
        _ => "<unknown>".to_owned(),
    }
}

/// `makePortString`: "80/TCP" or, with a node port, "80:30080/TCP".
fn port_string(ports: &[Value]) -> String {
    ports
        .iter()
        .map(|p| {
            let protocol = match str_at(p, &["protocol"]) {
                "" => "TCP",
                proto => proto,
            };
            let port = int_at(p, &["port"]);
            match int_at(p, &["nodePort"]) {
                node_port if node_port > 0 => format!("{port}:{node_port}/{protocol}"),
                _ => format!("{port}/{protocol}"),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

pub(super) const ENDPOINTS_COLUMNS: &[Column] = &[
    Column::name(),
    Column::new("Endpoints", "string", docs::ENDPOINTS_SUBSETS),
    Column::age(),
];

pub(super) fn endpoints(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![name(obj), Value::from(format_endpoints(obj)), age(obj, now)]
}

/// `formatEndpoints` for all ports: up to three `ip:port` entries, then "+ N more...".
fn format_endpoints(obj: &Value) -> String {
    let subsets = list_at(obj, &["subsets"]);
    if subsets.is_empty() {
        return "<none>".to_owned();
    }
    const MAX: usize = 3;
    let mut list: Vec<String> = Vec::new();
    let mut more = false;
    let mut count = 0usize;
    for subset in subsets {
        let addresses = list_at(subset, &["addresses"]);
        let ports = list_at(subset, &["ports"]);
        if ports.is_empty() {
            // Headless services may have no ports.
            count += addresses.len();
            for address in addresses {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(str_at(address, &["ip"]).to_owned());
            }
            continue;
        }
        for port in ports {
            count += addresses.len();
            for address in addresses {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(join_host_port(
                    str_at(address, &["ip"]),
                    int_at(port, &["port"]),
                ));
            }
        }
    }
    let joined = list.join(",");
    if more {
        return format!("{joined} + {} more...", count.saturating_sub(MAX));
    }
    joined
}

/// `net.JoinHostPort`: IPv6 addresses get brackets.
fn join_host_port(host: &str, port: i64) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

pub(super) const ENDPOINT_SLICE_COLUMNS: &[Column] = &[
    Column::name(),
    Column::new("AddressType", "string", docs::SLICE_ADDRESS_TYPE),
    Column::new("Ports", "string", docs::SLICE_PORTS),
    Column::new("Endpoints", "string", docs::SLICE_ENDPOINTS),
    Column::age(),
];

pub(super) fn endpoint_slice(obj: &Value, now: Timestamp) -> Vec<Value> {
    const MAX: usize = 3;
    let ports = list_at(obj, &["ports"]);
    let port_list: Vec<String> = ports
        .iter()
        .take(MAX)
        .map(
            |p| match (at(p, &["port"]), at(p, &["name"]).and_then(Value::as_str)) {
                (Some(_), _) => int_at(p, &["port"]).to_string(),
                (None, Some(name)) => name.to_owned(),
                (None, None) => "*".to_owned(),
            },
        )
        .collect();
    let addresses: Vec<&str> = list_at(obj, &["endpoints"])
        .iter()
        .flat_map(|e| strings(list_at(e, &["addresses"])))
        .collect();
    let address_list: Vec<String> = addresses
        .iter()
        .take(MAX)
        .map(|a| (*a).to_owned())
        .collect();
    vec![
        name(obj),
        Value::from(str_at(obj, &["addressType"])),
        Value::from(list_with_more(
            &port_list,
            ports.len() > MAX,
            ports.len(),
            MAX,
        )),
        Value::from(list_with_more(
            &address_list,
            addresses.len() > MAX,
            addresses.len(),
            MAX,
        )),
        age(obj, now),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> Timestamp {
        "2025-06-01T12:00:00Z".parse().unwrap()
    }

    fn ago(secs: i64) -> String {
        now()
            .checked_sub(jiff::SignedDuration::from_secs(secs))
            .unwrap()
            .to_string()
    }

    fn lb_service(name: &str, ip: &str, ports: Value, ingress: Value) -> Value {
        json!({"metadata": {"name": name},
               "spec": {"clusterIPs": [ip], "type": "LoadBalancer", "ports": ports},
               "status": {"loadBalancer": {"ingress": ingress}}})
    }

    #[test]
    fn load_balancer_services_print_like_kubernetes() {
        // TestPrintServiceLoadBalancer; the server prints wide, so long lists are not elided.
        let three = json!([{"port": 80, "protocol": "TCP"}, {"port": 8090, "protocol": "UDP"}, {"port": 8000, "protocol": "TCP"}]);
        let cases = [
            (
                lb_service(
                    "service1",
                    "1.2.3.4",
                    json!([{"port": 80, "protocol": "TCP"}]),
                    json!([{"ip": "2.3.4.5"}, {"ip": "3.4.5.6"}]),
                ),
                [
                    "service1",
                    "LoadBalancer",
                    "1.2.3.4",
                    "2.3.4.5,3.4.5.6",
                    "80/TCP",
                    "<unknown>",
                    "<none>",
                ],
            ),
            (
                lb_service(
                    "service2",
                    "1.3.4.5",
                    json!([{"port": 80, "protocol": "TCP"}, {"port": 8090, "protocol": "UDP"},
                           {"port": 8000, "protocol": "TCP"}, {"port": 7777, "protocol": "SCTP"}]),
                    json!(null),
                ),
                [
                    "service2",
                    "LoadBalancer",
                    "1.3.4.5",
                    "<pending>",
                    "80/TCP,8090/UDP,8000/TCP,7777/SCTP",
                    "<unknown>",
                    "<none>",
                ],
            ),
            (
                lb_service(
                    "service3",
                    "1.4.5.6",
                    three.clone(),
                    json!([{"ip": "2.3.4.5"}]),
                ),
                [
                    "service3",
                    "LoadBalancer",
                    "1.4.5.6",
                    "2.3.4.5",
                    "80/TCP,8090/UDP,8000/TCP",
                    "<unknown>",
                    "<none>",
                ],
            ),
            (
                lb_service(
                    "service4",
                    "1.5.6.7",
                    three.clone(),
                    json!([{"ip": "2.3.4.5"}, {"ip": "3.4.5.6"}, {"ip": "5.6.7.8", "hostname": "host5678"}]),
                ),
                [
                    "service4",
                    "LoadBalancer",
                    "1.5.6.7",
                    "2.3.4.5,3.4.5.6,5.6.7.8",
                    "80/TCP,8090/UDP,8000/TCP",
                    "<unknown>",
                    "<none>",
                ],
            ),
        ];
        for (svc, want) in cases {
            assert_eq!(service(&svc, now()), want.map(Value::from), "{svc}");
        }
        let mut with_selector = lb_service(
            "service4",
            "1.5.6.7",
            three,
            json!([{"hostname": "lb.example.com"}]),
        );
        with_selector["spec"]["selector"] = json!({"foo": "bar"});
        with_selector["spec"]["externalIPs"] = json!(["9.9.9.9"]);
        assert_eq!(service(&with_selector, now())[3], "lb.example.com,9.9.9.9");
        assert_eq!(service(&with_selector, now())[6], "foo=bar");
    }

    #[test]
    fn cluster_ip_node_port_and_external_name_services_print_like_kubectl() {
        let node_port = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "default", "creationTimestamp": ago(3 * 3600 + 60)},
            "spec": {"type": "NodePort", "clusterIP": "10.96.12.34", "clusterIPs": ["10.96.12.34"],
                     "ports": [{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080, "protocol": "TCP"}],
                     "selector": {"app": "web"}},
        });
        assert_eq!(
            service(&node_port, now()),
            [
                "web",
                "NodePort",
                "10.96.12.34",
                "<none>",
                "80:30080/TCP",
                "3h1m",
                "app=web"
            ]
            .map(Value::from)
        );
        let kubernetes = json!({
            "metadata": {"name": "kubernetes", "creationTimestamp": ago(400 * 86400)},
            "spec": {"clusterIP": "10.96.0.1", "ports": [{"name": "https", "port": 443, "targetPort": 6443}]},
        });
        assert_eq!(
            service(&kubernetes, now()),
            [
                "kubernetes",
                "ClusterIP",
                "10.96.0.1",
                "<none>",
                "443/TCP",
                "400d",
                "<none>"
            ]
            .map(Value::from)
        );
        let headless = json!({"metadata": {"name": "db"},
                              "spec": {"type": "ClusterIP", "clusterIP": "None", "externalIPs": ["1.1.1.1", "2.2.2.2"]}});
        assert_eq!(
            service(&headless, now())[2..5],
            ["None", "1.1.1.1,2.2.2.2", "<none>"].map(Value::from)
        );
        let external = json!({"metadata": {"name": "ext"}, "spec": {"type": "ExternalName", "externalName": "db.example.com"}});
        assert_eq!(
            service(&external, now())[2..4],
            ["<none>", "db.example.com"].map(Value::from)
        );
        let odd = json!({"metadata": {"name": "odd"}, "spec": {"type": "Weird"}});
        assert_eq!(service(&odd, now())[3], "<unknown>");
    }

    #[test]
    fn endpoints_list_three_addresses_then_count_the_rest() {
        let ep = json!({
            "metadata": {"name": "web", "creationTimestamp": ago(30)},
            "subsets": [
                {"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}], "ports": [{"port": 80}]},
                {"addresses": [{"ip": "10.0.0.3"}, {"ip": "fd00::4"}], "ports": [{"port": 80}]},
            ],
        });
        assert_eq!(
            endpoints(&ep, now()),
            [
                "web",
                "10.0.0.1:80,10.0.0.2:80,10.0.0.3:80 + 1 more...",
                "30s"
            ]
            .map(Value::from)
        );
        let two_ports = json!({"metadata": {"name": "x"},
            "subsets": [{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80}, {"port": 443}]}]});
        assert_eq!(endpoints(&two_ports, now())[1], "10.0.0.1:80,10.0.0.1:443");
        let headless = json!({"metadata": {"name": "h"}, "subsets": [{"addresses": [{"ip": "fd00::1"}, {"ip": "10.1.1.1"}]}]});
        assert_eq!(endpoints(&headless, now())[1], "fd00::1,10.1.1.1");
        let v6 = json!({"metadata": {"name": "v6"}, "subsets": [{"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 53}]}]});
        assert_eq!(endpoints(&v6, now())[1], "[fd00::1]:53");
        assert_eq!(
            endpoints(&json!({"metadata": {"name": "none"}}), now())[1],
            "<none>"
        );
        let not_ready = json!({"metadata": {"name": "nr"}, "subsets": [{"notReadyAddresses": [{"ip": "10.0.0.9"}], "ports": [{"port": 80}]}]});
        assert_eq!(endpoints(&not_ready, now())[1], "");
    }

    #[test]
    fn endpoint_slices_print_ports_and_addresses() {
        let slice = json!({
            "metadata": {"name": "web-abc12", "creationTimestamp": ago(30)},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 80}, {"name": "named"}, {}, {"port": 9}],
            "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2", "10.0.0.3"]}],
        });
        assert_eq!(
            endpoint_slice(&slice, now()),
            [
                "web-abc12",
                "IPv4",
                "80,named,* + 1 more...",
                "10.0.0.1,10.0.0.2,10.0.0.3",
                "30s"
            ]
            .map(Value::from)
        );
        let empty = json!({"metadata": {"name": "e"}, "addressType": "IPv6"});
        assert_eq!(
            endpoint_slice(&empty, now())[2..4],
            ["<unset>", "<unset>"].map(Value::from)
        );
    }
}
