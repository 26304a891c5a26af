//! What the node reports about itself: capacity from the real machine and its identity.

use std::collections::HashMap;
use std::path::Path;

use proto::node::NodeInfo;

/// Pods a node accepts, as the kubelet's default `maxPods`.
pub const MAX_PODS: u32 = 110;

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path).map(|s| s.trim().to_string()).unwrap_or_default()
}

/// `MemTotal` from /proc/meminfo in KiB.
pub fn parse_mem_total_kib(meminfo: &str) -> Option<u64> {
    meminfo.lines().find_map(|l| l.strip_prefix("MemTotal:")?.trim().strip_suffix("kB")?.trim().parse().ok())
}

/// `PRETTY_NAME` from an os-release file.
pub fn parse_pretty_name(os_release: &str) -> Option<String> {
    os_release.lines().find_map(|l| Some(l.strip_prefix("PRETTY_NAME=")?.trim_matches('"').to_string()))
}

pub fn capacity(data_dir: &Path) -> HashMap<String, String> {
    let mut c = HashMap::new();
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    c.insert("cpu".into(), cpus.to_string());
    if let Some(kib) = parse_mem_total_kib(&std::fs::read_to_string("/proc/meminfo").unwrap_or_default()) {
        c.insert("memory".into(), format!("{kib}Ki"));
    }
    if let Ok(st) = nix::sys::statvfs::statvfs(data_dir) {
        let bytes = st.blocks() as u64 * st.fragment_size() as u64;
        c.insert("ephemeral-storage".into(), format!("{}Ki", bytes / 1024));
    }
    c.insert("pods".into(), MAX_PODS.to_string());
    c
}

pub fn info() -> NodeInfo {
    let uname = nix::sys::utsname::uname().ok();
    NodeInfo {
        machine_id: read_trimmed("/etc/machine-id"),
        boot_id: read_trimmed("/proc/sys/kernel/random/boot_id"),
        kernel_version: uname.as_ref().map(|u| u.release().to_string_lossy().into_owned()).unwrap_or_default(),
        os_image: parse_pretty_name(&std::fs::read_to_string("/etc/os-release").unwrap_or_default()).unwrap_or_else(|| "Linux".into()),
        operating_system: "linux".into(),
        architecture: match std::env::consts::ARCH {
            "x86_64" => "amd64".into(),
            "aarch64" => "arm64".into(),
            a => a.into(),
        },
        container_runtime_version: format!("tinykube://{}", env!("CARGO_PKG_VERSION")),
        kubelet_version: "v1.33.0".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_and_os_release_parse_and_garbage_gives_none() {
        assert_eq!(parse_mem_total_kib("MemTotal:       24576000 kB\nMemFree: 1 kB\n"), Some(24576000));
        assert_eq!(parse_mem_total_kib("nothing"), None);
        assert_eq!(parse_pretty_name("NAME=x\nPRETTY_NAME=\"Debian GNU/Linux 12\"\n").as_deref(), Some("Debian GNU/Linux 12"));
        assert_eq!(parse_pretty_name(""), None);
    }

    #[test]
    fn capacity_reports_cpu_memory_and_pods_of_this_machine() {
        let c = capacity(Path::new("/"));
        assert!(c["cpu"].parse::<u32>().unwrap() >= 1);
        assert!(c["memory"].ends_with("Ki"));
        assert_eq!(c["pods"], "110");
    }
}
