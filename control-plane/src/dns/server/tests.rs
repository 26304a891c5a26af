use super::*;
use hickory_proto::op::Query;
use serde_json::json;

fn records(cluster_ip: &str) -> Arc<Records> {
    let svc: k8s_openapi::api::core::v1::Service =
        serde_json::from_value(json!({"metadata": {"name": "web", "namespace": "default"}, "spec": {"clusterIP": cluster_ip, "ports": [{"name": "http", "port": 80}]}})).unwrap();
    Arc::new(Records::build(&[svc], &[], "cluster.local"))
}

fn query(name: &str, t: RecordType) -> Vec<u8> {
    let mut m = Message::new();
    m.set_id(4242).set_recursion_desired(true).add_query(Query::query(Name::from_ascii(name).unwrap(), t));
    m.to_vec().unwrap()
}

struct Server {
    addr: SocketAddr,
    records: watch::Sender<Arc<Records>>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start(upstreams: Vec<SocketAddr>) -> Server {
    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = udp.local_addr().unwrap();
    let tcp = TcpListener::bind(addr).await.unwrap();
    let (tx, rx) = watch::channel(records("10.96.0.20"));
    let (stop, stopped) = tokio::sync::oneshot::channel();
    tokio::spawn(serve(udp, tcp, rx, upstreams, async move {
        let _ = stopped.await;
    }));
    Server { addr, records: tx, _stop: stop }
}

async fn ask_udp(server: SocketAddr, bytes: &[u8]) -> Message {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.send_to(bytes, server).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), sock.recv(&mut buf)).await.expect("an answer in time").unwrap();
    Message::from_vec(&buf[..n]).unwrap()
}

fn a_records(m: &Message) -> Vec<String> {
    m.answers().iter().filter_map(|r| match r.data() {
        RData::A(a) => Some(a.0.to_string()),
        _ => None,
    }).collect()
}

#[tokio::test]
async fn a_service_name_is_answered_authoritatively_with_its_cluster_ip() {
    let s = start(vec![]).await;
    let m = ask_udp(s.addr, &query("web.default.svc.cluster.local.", RecordType::A)).await;
    assert_eq!((m.id(), m.response_code(), m.authoritative(), m.recursion_available()), (4242, ResponseCode::NoError, true, true));
    assert_eq!(m.queries().len(), 1, "the question is echoed");
    assert_eq!(a_records(&m), ["10.96.0.20"]);
    let m = ask_udp(s.addr, &query("_http._tcp.web.default.svc.cluster.local.", RecordType::SRV)).await;
    assert!(matches!(m.answers()[0].data(), RData::SRV(srv) if srv.port() == 80));
    let m = ask_udp(s.addr, &query("web.default.svc.cluster.local.", RecordType::AAAA)).await;
    assert_eq!((m.response_code(), m.answers().len()), (ResponseCode::NoError, 0), "no IPv6 records, but the name exists");
}

#[tokio::test]
async fn a_missing_cluster_name_is_nxdomain() {
    let s = start(vec![]).await;
    let m = ask_udp(s.addr, &query("nothing.default.svc.cluster.local.", RecordType::A)).await;
    assert_eq!(m.response_code(), ResponseCode::NXDomain);
}

#[tokio::test]
async fn changed_records_are_served_at_once() {
    let s = start(vec![]).await;
    s.records.send(records("10.96.0.99")).unwrap();
    let m = ask_udp(s.addr, &query("web.default.svc.cluster.local.", RecordType::A)).await;
    assert_eq!(a_records(&m), ["10.96.0.99"]);
}

/// A fake upstream on loopback answering every query with 192.0.2.1, or never answering.
async fn upstream(answers: bool) -> SocketAddr {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        while let Ok((n, from)) = sock.recv_from(&mut buf).await {
            if !answers {
                continue;
            }
            let req = Message::from_vec(&buf[..n]).unwrap();
            let mut m = reply_to(&req, ResponseCode::NoError);
            m.add_answer(Record::from_rdata(req.queries()[0].name().clone(), 60, RData::A(A("192.0.2.1".parse().unwrap()))));
            let _ = sock.send_to(&m.to_vec().unwrap(), from).await;
        }
    });
    addr
}

#[tokio::test]
async fn other_names_are_forwarded_to_the_upstream() {
    let s = start(vec![upstream(true).await]).await;
    let m = ask_udp(s.addr, &query("example.com.", RecordType::A)).await;
    assert_eq!((m.id(), a_records(&m)), (4242, vec!["192.0.2.1".to_string()]));
}

#[tokio::test]
async fn a_silent_upstream_is_skipped_and_without_any_the_answer_is_servfail() {
    let s = start(vec![upstream(false).await, upstream(true).await]).await;
    let m = ask_udp(s.addr, &query("example.com.", RecordType::A)).await;
    assert_eq!(a_records(&m), ["192.0.2.1"], "the second upstream answered");
    let s = start(vec![]).await;
    let m = ask_udp(s.addr, &query("example.com.", RecordType::A)).await;
    assert_eq!(m.response_code(), ResponseCode::ServFail);
}

#[tokio::test]
async fn malformed_packets_get_formerr_or_nothing_and_the_server_keeps_answering() {
    let s = start(vec![]).await;
    let m = ask_udp(s.addr, &[0x12, 0x34, 0xff, 0xff, 0, 9]).await;
    assert_eq!((m.id(), m.response_code()), (0x1234, ResponseCode::FormErr));
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.send_to(&[1], s.addr).await.unwrap();
    let m = ask_udp(s.addr, &query("web.default.svc.cluster.local.", RecordType::A)).await;
    assert_eq!(a_records(&m), ["10.96.0.20"]);
}

#[tokio::test]
async fn queries_over_tcp_are_answered_with_a_length_prefix() {
    let s = start(vec![]).await;
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    for _ in 0..2 {
        let q = query("web.default.svc.cluster.local.", RecordType::A);
        c.write_all(&(q.len() as u16).to_be_bytes()).await.unwrap();
        c.write_all(&q).await.unwrap();
        let len = c.read_u16().await.unwrap() as usize;
        let mut buf = vec![0u8; len];
        c.read_exact(&mut buf).await.unwrap();
        assert_eq!(a_records(&Message::from_vec(&buf).unwrap()), ["10.96.0.20"]);
    }
}
