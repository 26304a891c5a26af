//! Resource arithmetic of `noderesources` / `component-helpers/resource` (`PodRequests`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// Scoring counts a container without a CPU request as asking for this much (upstream
/// `DefaultMilliCPURequest`), so best-effort pods still spread.
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// Same for memory (`DefaultMemoryRequest`, 200Mi).
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    pub milli_cpu: i64,
    pub memory: i64,
    /// Pod slots: 1 per pod in requests, `status.allocatable.pods` for a node.
    pub pods: i64,
    pub ephemeral_storage: i64,
}

impl Resources {
    fn add(&mut self, o: &Resources) {
        self.milli_cpu = self.milli_cpu.saturating_add(o.milli_cpu);
        self.memory = self.memory.saturating_add(o.memory);
        self.pods = self.pods.saturating_add(o.pods);
        self.ephemeral_storage = self.ephemeral_storage.saturating_add(o.ephemeral_storage);
    }

    fn sub(&mut self, o: &Resources) {
        self.milli_cpu = self.milli_cpu.saturating_sub(o.milli_cpu);
        self.memory = self.memory.saturating_sub(o.memory);
        self.pods = self.pods.saturating_sub(o.pods);
        self.ephemeral_storage = self.ephemeral_storage.saturating_sub(o.ephemeral_storage);
    }

    fn max(&mut self, o: &Resources) {
        self.milli_cpu = self.milli_cpu.max(o.milli_cpu);
        self.memory = self.memory.max(o.memory);
        self.pods = self.pods.max(o.pods);
        self.ephemeral_storage = self.ephemeral_storage.max(o.ephemeral_storage);
    }

    pub(crate) fn plus(mut self, o: &Resources) -> Resources {
        self.add(o);
        self
    }

    pub(crate) fn minus(mut self, o: &Resources) -> Resources {
        self.sub(o);
        self
    }

    /// Reads cpu, memory, pods and ephemeral-storage; other names (extended resources) are ignored
    /// and unparseable quantities count as zero.
    pub fn from_list(list: Option<&BTreeMap<String, Quantity>>) -> Resources {
        let Some(list) = list else {
            return Resources::default();
        };
        let get = |name: &str, parse: fn(&str) -> Option<i128>| {
            list.get(name).and_then(|q| parse(&q.0)).map_or(0, |v| i64::try_from(v).unwrap_or(i64::MAX))
        };
        Resources {
            milli_cpu: get("cpu", quantity::millis),
            memory: get("memory", quantity::bytes),
            pods: get("pods", quantity::bytes),
            ephemeral_storage: get("ephemeral-storage", quantity::bytes),
        }
    }
}

/// What a pod asks of a node (upstream `computePodResourceRequest`): the sum over containers, or the
/// largest init-container step if larger (sidecars add up), pod-level requests where set, plus
/// overhead. `pods` is 1.
pub fn pod_requests(pod: &Pod) -> Resources {
    requests(pod, false)
}

/// The same with unset container CPU/memory requests counted at the scheduler's defaults, which is
/// what scoring uses.
pub fn pod_requests_non_zero(pod: &Pod) -> Resources {
    requests(pod, true)
}

fn container_requests(c: &Container, non_zero: bool) -> Resources {
    let list = c.resources.as_ref().and_then(|r| r.requests.as_ref());
    let mut r = Resources::from_list(list);
    if non_zero {
        // Only a missing entry is defaulted; an explicit "0" stays 0.
        if !list.is_some_and(|l| l.contains_key("cpu")) {
            r.milli_cpu = DEFAULT_MILLI_CPU_REQUEST;
        }
        if !list.is_some_and(|l| l.contains_key("memory")) {
            r.memory = DEFAULT_MEMORY_REQUEST;
        }
    }
    r
}

fn requests(pod: &Pod, non_zero: bool) -> Resources {
    let Some(spec) = pod.spec.as_ref() else {
        return Resources { pods: 1, ..Resources::default() };
    };
    let mut total = Resources::default();
    for c in &spec.containers {
        total.add(&container_requests(c, non_zero));
    }
    // While init container i runs, the sidecars started before it run too.
    let (mut sidecars, mut init_peak) = (Resources::default(), Resources::default());
    for c in spec.init_containers.iter().flatten() {
        let r = container_requests(c, non_zero);
        if c.restart_policy.as_deref() == Some("Always") {
            total.add(&r);
            sidecars.add(&r);
            init_peak.max(&sidecars);
        } else {
            init_peak.max(&r.plus(&sidecars));
        }
    }
    total.max(&init_peak);

    if let Some(pod_level) = spec.resources.as_ref().and_then(|r| r.requests.as_ref()) {
        let set = Resources::from_list(Some(pod_level));
        if pod_level.contains_key("cpu") {
            total.milli_cpu = set.milli_cpu;
        }
        if pod_level.contains_key("memory") {
            total.memory = set.memory;
        }
    }
    total.add(&Resources::from_list(spec.overhead.as_ref()));
    total.pods = 1;
    total
}

/// The shared quantity parser (Kubernetes' rounding: up, to milli-units or whole units).
mod quantity {
    pub(super) fn millis(s: &str) -> Option<i128> {
        proto::quantity::to_millis(s).ok()
    }

    pub(super) fn bytes(s: &str) -> Option<i128> {
        proto::quantity::to_bytes(s).ok()
    }
}

/// Milli-units of a quantity (`"100m"` -> 100, `"2"` -> 2000), rounded up like `MilliValue()`.
pub fn parse_quantity_millis(s: &str) -> Option<i128> {
    quantity::millis(s)
}

/// Whole units of a quantity (`"64Mi"` -> 67108864, `"100m"` -> 1), rounded up like `Value()`.
pub fn parse_quantity_bytes(s: &str) -> Option<i128> {
    quantity::bytes(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn quantities_parse_to_milli_and_whole_units_rounding_up() {
        let cases = [
            ("100m", Some(100), Some(1)),
            ("1", Some(1000), Some(1)),
            ("0.5", Some(500), Some(1)),
            ("1.5Gi", Some(1_610_612_736_000), Some(1_610_612_736)),
            ("64Mi", Some(67_108_864_000), Some(67_108_864)),
            ("1Ki", Some(1_024_000), Some(1024)),
            ("2k", Some(2_000_000), Some(2000)),
            ("1n", Some(1), Some(1)),
            ("1500u", Some(2), Some(1)),
            ("2e3", Some(2_000_000), Some(2000)),
            ("5E-3", Some(5), Some(1)),
            ("1E", Some(1_000_000_000_000_000_000_000), Some(1_000_000_000_000_000_000)),
            ("+3", Some(3000), Some(3)),
            ("0", Some(0), Some(0)),
            ("", None, None),
            ("m", None, None),
            ("1.2.3", None, None),
            ("1Qi", None, None),
            ("1e", None, None),
            ("12ki", None, None),
        ];
        for (s, millis, bytes) in cases {
            assert_eq!(parse_quantity_millis(s), millis, "millis of {s:?}");
            assert_eq!(parse_quantity_bytes(s), bytes, "bytes of {s:?}");
        }
    }

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    fn c(cpu_m: i64, mem: i64) -> serde_json::Value {
        json!({"name": "c", "resources": {"requests": {"cpu": format!("{cpu_m}m"), "memory": mem.to_string()}}})
    }

    fn r(milli_cpu: i64, memory: i64) -> Resources {
        Resources { milli_cpu, memory, pods: 1, ephemeral_storage: 0 }
    }

    #[test]
    fn pod_requests_take_the_larger_of_containers_and_each_init_step() {
        let sidecar = |cpu_m: i64| {
            json!({"name": "s", "restartPolicy": "Always", "resources": {"requests": {"cpu": format!("{cpu_m}m")}}})
        };
        let cases = [
            ("no containers", json!({"containers": []}), r(0, 0)),
            ("containers add up", json!({"containers": [c(1, 1), c(2, 3)]}), r(3, 4)),
            ("init container max, not sum", json!({"containers": [c(1, 1)], "initContainers": [c(3, 1), c(2, 1)]}), r(3, 1)),
            ("init container memory", json!({"containers": [c(1, 1)], "initContainers": [c(1, 3), c(1, 2)]}), r(1, 3)),
            (
                "sidecars add to containers and to later init steps",
                json!({"containers": [c(1, 0)], "initContainers": [sidecar(2), c(2, 0)]}),
                r(4, 0),
            ),
            (
                "overhead is added",
                json!({"containers": [c(1, 1)], "overhead": {"cpu": "3m", "memory": "13"}}),
                r(4, 14),
            ),
            (
                "pod-level requests override the container sum",
                json!({"containers": [c(1, 1)], "resources": {"requests": {"cpu": "7m", "memory": "2"}}}),
                r(7, 2),
            ),
        ];
        for (name, spec, want) in cases {
            assert_eq!(pod_requests(&pod(json!({"spec": spec}))), want, "{name}");
        }
    }

    #[test]
    fn scoring_requests_default_only_missing_cpu_and_memory() {
        let p = pod(json!({"spec": {"containers": [{"name": "a"}, {"name": "b", "resources": {"requests": {"cpu": "0", "memory": "0"}}}]}}));
        assert_eq!(pod_requests_non_zero(&p), r(DEFAULT_MILLI_CPU_REQUEST, DEFAULT_MEMORY_REQUEST));
        assert_eq!(pod_requests(&p), r(0, 0));
    }
}
