//! A pod's status as the kubelet reports it, computed from its containers' states (pure).

use serde_json::{Value, json};

#[derive(Debug, Clone, PartialEq)]
pub struct Terminated {
    pub exit_code: i32,
    pub reason: String,
    pub message: Option<String>,
    pub started_at: String,
    pub finished_at: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum State {
    Waiting { reason: String, message: Option<String> },
    Running { started_at: String },
    Terminated(Terminated),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ContainerView {
    pub name: String,
    pub image: String,
    pub image_id: String,
    pub container_id: String,
    pub state: State,
    pub last: Option<Terminated>,
    pub restart_count: u32,
    pub ready: bool,
}

fn terminated_json(t: &Terminated) -> Value {
    let mut v = json!({"exitCode": t.exit_code, "reason": t.reason, "startedAt": t.started_at, "finishedAt": t.finished_at});
    if let Some(m) = &t.message {
        v["message"] = json!(m);
    }
    if t.started_at.is_empty() {
        v["startedAt"] = Value::Null;
    }
    v
}

fn container_json(c: &ContainerView) -> Value {
    let state = match &c.state {
        State::Waiting { reason, message } => {
            let mut w = json!({"reason": reason});
            if let Some(m) = message {
                w["message"] = json!(m);
            }
            json!({"waiting": w})
        }
        State::Running { started_at } => json!({"running": {"startedAt": started_at}}),
        State::Terminated(t) => json!({"terminated": terminated_json(t)}),
    };
    let last = c.last.as_ref().map(|t| json!({"terminated": terminated_json(t)})).unwrap_or(json!({}));
    let mut v = json!({
        "name": c.name, "image": c.image, "imageID": c.image_id, "ready": c.ready,
        "restartCount": c.restart_count, "started": matches!(c.state, State::Running { .. }),
        "state": state, "lastState": last,
    });
    if !c.container_id.is_empty() {
        v["containerID"] = json!(c.container_id);
    }
    v
}

/// Kubernetes' getPhase: a container waiting for its first start keeps the pod Pending; one
/// waiting to restart counts as stopped.
pub fn phase(restart_policy: &str, containers: &[ContainerView]) -> &'static str {
    let (mut waiting, mut running, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for c in containers {
        match &c.state {
            State::Running { .. } => running += 1,
            State::Terminated(t) => {
                stopped += 1;
                if t.exit_code == 0 {
                    succeeded += 1;
                }
            }
            State::Waiting { .. } if c.last.is_some() => stopped += 1,
            State::Waiting { .. } => waiting += 1,
        }
    }
    if waiting > 0 || containers.is_empty() {
        return "Pending";
    }
    if running > 0 {
        return "Running";
    }
    match restart_policy {
        "Always" => "Running",
        _ if stopped == succeeded && stopped > 0 => "Succeeded",
        "Never" => "Failed",
        _ => "Running",
    }
}

pub struct PodFacts<'a> {
    pub restart_policy: &'a str,
    pub containers: &'a [ContainerView],
    pub pod_ip: Option<&'a str>,
    pub host_ip: &'a str,
    pub start_time: &'a str,
    pub qos_class: &'a str,
    /// The previous status' conditions, to keep their transition times.
    pub previous: &'a Value,
    pub now: &'a str,
}

fn condition(previous: &Value, ty: &str, status: bool, now: &str) -> Value {
    let status = if status { "True" } else { "False" };
    let prev = previous["conditions"].as_array().and_then(|cs| cs.iter().find(|c| c["type"] == ty));
    let since = match prev {
        Some(p) if p["status"] == status => p["lastTransitionTime"].clone(),
        _ => json!(now),
    };
    let mut c = json!({"type": ty, "status": status, "lastProbeTime": null, "lastTransitionTime": since});
    if status == "False" && (ty == "Ready" || ty == "ContainersReady") {
        c["reason"] = json!("ContainersNotReady");
    }
    c
}

pub fn pod_status(f: &PodFacts) -> Value {
    let all_ready = !f.containers.is_empty() && f.containers.iter().all(|c| c.ready);
    let phase = phase(f.restart_policy, f.containers);
    let ready = all_ready && phase == "Running";
    let mut conditions = vec![
        condition(f.previous, "PodReadyToStartContainers", f.pod_ip.is_some(), f.now),
        condition(f.previous, "Initialized", true, f.now),
        condition(f.previous, "Ready", ready, f.now),
        condition(f.previous, "ContainersReady", ready, f.now),
        condition(f.previous, "PodScheduled", true, f.now),
    ];
    // A finished pod is no longer ready; Kubernetes names the reason.
    if matches!(phase, "Succeeded" | "Failed") {
        for c in conditions.iter_mut().filter(|c| c["type"] == "Ready" || c["type"] == "ContainersReady") {
            c["reason"] = json!("PodCompleted");
        }
    }
    let mut status = json!({
        "phase": phase,
        "conditions": conditions,
        "hostIP": f.host_ip,
        "hostIPs": [{"ip": f.host_ip}],
        "startTime": f.start_time,
        "containerStatuses": f.containers.iter().map(container_json).collect::<Vec<_>>(),
        "qosClass": f.qos_class,
    });
    if let Some(ip) = f.pod_ip {
        status["podIP"] = json!(ip);
        status["podIPs"] = json!([{"ip": ip}]);
    }
    status
}

/// Kubernetes' QoS class from requests and limits (pure).
pub fn qos_class(pod: &Value) -> &'static str {
    let containers = pod["spec"]["containers"].as_array().cloned().unwrap_or_default();
    let mut any = false;
    let mut guaranteed = true;
    for c in &containers {
        let (req, lim) = (&c["resources"]["requests"], &c["resources"]["limits"]);
        for r in ["cpu", "memory"] {
            let (q, l) = (req[r].as_str(), lim[r].as_str());
            if q.is_some() || l.is_some() {
                any = true;
            }
            // Requests default to limits; Guaranteed needs both set and equal for cpu and memory.
            match (q.or(l), l) {
                (Some(a), Some(b)) if a == b => {}
                _ => guaranteed = false,
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(state: State, last: bool) -> ContainerView {
        ContainerView {
            name: "c".into(),
            image: "i".into(),
            image_id: String::new(),
            container_id: String::new(),
            state,
            last: last.then(|| t(1)),
            restart_count: 0,
            ready: false,
        }
    }
    fn t(code: i32) -> Terminated {
        Terminated { exit_code: code, reason: "Error".into(), message: None, started_at: "a".into(), finished_at: "b".into() }
    }
    fn waiting() -> State {
        State::Waiting { reason: "ContainerCreating".into(), message: None }
    }
    fn running() -> State {
        State::Running { started_at: "x".into() }
    }

    #[test]
    fn the_phase_follows_kubernetes_get_phase() {
        let cases = [
            ("Always", vec![c(waiting(), false)], "Pending"),
            ("Always", vec![c(running(), false), c(waiting(), false)], "Pending"),
            ("Always", vec![c(running(), false)], "Running"),
            ("Always", vec![c(waiting(), true)], "Running"),
            ("Always", vec![c(State::Terminated(t(0)), false)], "Running"),
            ("Never", vec![c(State::Terminated(t(0)), false)], "Succeeded"),
            ("Never", vec![c(State::Terminated(t(1)), false)], "Failed"),
            ("OnFailure", vec![c(State::Terminated(t(0)), false)], "Succeeded"),
            ("OnFailure", vec![c(State::Terminated(t(2)), false)], "Running"),
            ("Never", vec![c(State::Terminated(t(0)), false), c(running(), false)], "Running"),
            ("Never", vec![], "Pending"),
        ];
        for (policy, containers, want) in cases {
            assert_eq!(phase(policy, &containers), want, "{policy} {containers:?}");
        }
    }

    #[test]
    fn ready_needs_every_container_ready_and_keeps_transition_times() {
        let mut a = c(running(), false);
        a.ready = true;
        let prev = json!({"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "then"}]});
        let f = PodFacts { restart_policy: "Always", containers: &[a.clone()], pod_ip: Some("10.244.0.5"), host_ip: "10.250.0.2", start_time: "s", qos_class: "BestEffort", previous: &prev, now: "now" };
        let s = pod_status(&f);
        let ready = s["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Ready").unwrap();
        assert_eq!((ready["status"].as_str(), ready["lastTransitionTime"].as_str()), (Some("True"), Some("then")));
        assert_eq!(s["podIP"], "10.244.0.5");
        let b = c(running(), false);
        let s = pod_status(&PodFacts { containers: &[a, b], ..f });
        let ready = s["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Ready").unwrap();
        assert_eq!(ready["status"], "False");
    }

    #[test]
    fn qos_classes_follow_requests_and_limits() {
        let pod = |res: Value| json!({"spec": {"containers": [{"name": "a", "resources": res}]}});
        assert_eq!(qos_class(&pod(json!({}))), "BestEffort");
        assert_eq!(qos_class(&pod(json!({"limits": {"cpu": "1", "memory": "1Gi"}}))), "Guaranteed");
        assert_eq!(qos_class(&pod(json!({"requests": {"cpu": "1"}}))), "Burstable");
        assert_eq!(qos_class(&pod(json!({"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "1Gi"}}))), "Burstable");
    }
}
