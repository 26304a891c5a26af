//! Pod addresses: a bridge per node with the first address of the node's pod CIDR, and a veth
//! pair per pod whose inner end is the pod's eth0. Allocations are files, so they survive agent
//! restarts and an address is never handed out twice.
//!
//! Links, addresses and routes are set over rtnetlink (`rtnl`); node routes (`routing`) still
//! go through `ip -batch`, which they change rarely.

use std::fs;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, PoisonError};

use super::rtnl::Rtnl;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("pod CIDR {0:?} is not an IPv4 prefix between /16 and /29")]
    BadCidr(String),
    #[error("no free address left in {0}")]
    Exhausted(String),
    #[error("`ip {args}` failed: {stderr}")]
    Ip { args: String, stderr: String },
    #[error("{op}: {source}")]
    Netlink { op: String, source: std::io::Error },
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let context = context.into();
    move |source| Error::Io { context, source }
}

pub struct PodNetwork {
    pub bridge: String,
    pub gateway: Ipv4Addr,
    prefix_len: u8,
    base: u32,
    size: u32,
    ipam: PathBuf,
    /// The bridge's link index, looked up once at setup.
    bridge_index: u32,
    /// A netlink socket in the agent's namespace, opened on first use.
    rtnl: Mutex<Option<Rtnl>>,
}

fn netlink(op: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let op = op.into();
    move |source| Error::Netlink { op, source }
}

/// Runs `ip [pre...] -batch -` with `commands` on stdin.
pub fn ip_batch(pre: &[&str], commands: &str) -> Result<()> {
    let mut child = Command::new("ip")
        .args(pre)
        .args(["-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(io("running ip"))?;
    child.stdin.take().ok_or_else(|| Error::Ip { args: "-batch".into(), stderr: "no stdin".into() })?.write_all(commands.as_bytes()).map_err(io("writing to ip"))?;
    let out = child.wait_with_output().map_err(io("waiting for ip"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Ip { args: format!("{} -batch: {}", pre.join(" "), commands.replace('\n', "; ")), stderr: String::from_utf8_lossy(&out.stderr).trim().to_string() })
    }
}

pub fn parse_cidr(cidr: &str) -> Result<(u32, u8)> {
    let bad = || Error::BadCidr(cidr.to_string());
    let (ip, len) = cidr.split_once('/').ok_or_else(bad)?;
    let ip: Ipv4Addr = ip.parse().map_err(|_| bad())?;
    let len: u8 = len.parse().map_err(|_| bad())?;
    if !(16..=29).contains(&len) {
        return Err(bad());
    }
    let size = 1u32 << (32 - len);
    Ok((u32::from(ip) & !(size - 1), len))
}

/// veth host-side name for a pod (IFNAMSIZ is 16 with the NUL).
pub fn host_veth(uid: &str) -> String {
    let hex: String = uid.chars().filter(|c| c.is_ascii_alphanumeric()).take(11).collect();
    format!("tk{hex}")
}

impl PodNetwork {
    /// Sets up (idempotently) the node bridge for `pod_cidr`, keeping allocations under `data_dir/ipam`.
    pub fn setup(pod_cidr: &str, data_dir: &Path) -> Result<Self> {
        let (base, prefix_len) = parse_cidr(pod_cidr)?;
        let size = 1u32 << (32 - prefix_len);
        let gateway = Ipv4Addr::from(base + 1);
        let ipam = data_dir.join("ipam");
        fs::create_dir_all(ipam.join("by-uid")).map_err(io(format!("creating {}", ipam.display())))?;
        fs::create_dir_all(ipam.join("links")).map_err(io(format!("creating {}", ipam.display())))?;
        let bridge = "tkbr0".to_string();
        let mut net = PodNetwork { bridge, gateway, prefix_len, base, size, ipam, bridge_index: 0, rtnl: Mutex::new(None) };
        net.bridge_index = net.with_rtnl(&format!("creating bridge {}", net.bridge), |r| {
            let index = match r.link_index(&net.bridge)? {
                Some(i) => i,
                None => {
                    r.add_bridge(&net.bridge)?;
                    r.link_index(&net.bridge)?.ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))?
                }
            };
            // `replace` keeps this idempotent across agent restarts.
            r.add_address(index, gateway, prefix_len, true)?;
            r.set_up(index, None)?;
            Ok(index)
        })?;
        tracing::debug!(bridge = %net.bridge, index = net.bridge_index, "node bridge ready");
        Ok(net)
    }

    /// Runs `f` with the agent's netlink socket (opened on first use); a failed request drops
    /// the socket, so the next one starts clean.
    fn with_rtnl<T>(&self, op: &str, f: impl FnOnce(&mut Rtnl) -> std::io::Result<T>) -> Result<T> {
        let mut slot = self.rtnl.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            *slot = Some(Rtnl::open().map_err(netlink("opening a netlink socket"))?);
        }
        let result = f(slot.as_mut().expect("opened above"));
        if result.is_err() {
            *slot = None;
        }
        result.map_err(netlink(op))
    }

    /// Whether a link exists in the agent's network namespace.
    fn link_exists(&self, name: &str) -> bool {
        self.with_rtnl("looking up a link", |r| r.link_index(name)).ok().flatten().is_some()
    }

    fn by_uid(&self, uid: &str) -> PathBuf {
        self.ipam.join("by-uid").join(uid)
    }

    /// The host-side link of `uid`'s eth0: named after the uid, unless it was made for another
    /// key and handed over (`rebind`).
    fn link_of(&self, uid: &str) -> String {
        fs::read_to_string(self.ipam.join("links").join(uid)).ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).unwrap_or_else(|| host_veth(uid))
    }

    /// Hands the address and link attached under key `from` (a warm sandbox) to the pod `to`.
    pub fn rebind(&self, from: &str, to: &str) -> Result<Ipv4Addr> {
        let ip = self.address_of(from).ok_or_else(|| Error::Io { context: format!("handing over the address of {from}"), source: std::io::ErrorKind::NotFound.into() })?;
        let link = self.link_of(from);
        // The link record first: a crash in between leaves the link findable under either key.
        fs::write(self.ipam.join("links").join(to), &link).map_err(io("recording a pod link"))?;
        fs::write(self.by_uid(to), ip.to_string()).map_err(io("recording an address"))?;
        fs::write(self.ipam.join(ip.to_string()), to).map_err(io("writing an address claim"))?;
        let _ = fs::remove_file(self.by_uid(from));
        let _ = fs::remove_file(self.ipam.join("links").join(from));
        Ok(ip)
    }

    /// The pod's address if it has one already.
    pub fn address_of(&self, uid: &str) -> Option<Ipv4Addr> {
        fs::read_to_string(self.by_uid(uid)).ok()?.trim().parse().ok()
    }

    fn allocate(&self, uid: &str) -> Result<Ipv4Addr> {
        if let Some(ip) = self.address_of(uid) {
            return Ok(ip);
        }
        // .0 is the network, .1 the bridge, the last the broadcast address. Round-robin from the
        // last address handed out (like the host-local IPAM), so a freed address is not reused at
        // once: peers may still cache the old pod's MAC for it.
        let usable = self.size - 3;
        let last_file = self.ipam.join("last");
        // Offset of the last address handed out among the usable ones; -1 before the first.
        let last: i64 = fs::read_to_string(&last_file).ok().and_then(|s| s.trim().parse::<i64>().ok()).map(|n| n - 2).unwrap_or(-1);
        for k in 1..=i64::from(usable) {
            let n = 2 + (last + k).rem_euclid(i64::from(usable)) as u32;
            let ip = Ipv4Addr::from(self.base + n);
            let claim = self.ipam.join(ip.to_string());
            match fs::OpenOptions::new().write(true).create_new(true).open(&claim) {
                Ok(mut f) => {
                    f.write_all(uid.as_bytes()).map_err(io("writing an address claim"))?;
                    fs::write(self.by_uid(uid), ip.to_string()).map_err(io("recording an address"))?;
                    let _ = fs::write(&last_file, n.to_string());
                    return Ok(ip);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io("claiming an address")(e)),
            }
        }
        Err(Error::Exhausted(format!("{}/{}", Ipv4Addr::from(self.base), self.prefix_len)))
    }

    /// Gives the pod whose network namespace is `netns` an eth0 with an address and a default route.
    pub fn attach(&self, uid: &str, netns: &Path) -> Result<Ipv4Addr> {
        let ip = self.allocate(uid)?;
        let veth = host_veth(uid);
        if self.link_exists(&veth) {
            return Ok(ip);
        }
        self.with_rtnl(&format!("wiring {veth} to the bridge"), |r| {
            // Forget any MAC this node still remembers for the address (a pod that had it before).
            let _ = r.del_neighbour(self.bridge_index, ip);
            r.add_veth(&veth, "eth0", netns)?;
            let index = r.link_index(&veth)?.ok_or_else(|| std::io::Error::other(format!("{veth} vanished after it was made")))?;
            r.set_up(index, Some(self.bridge_index))
        })?;
        let (prefix_len, gateway) = (self.prefix_len, self.gateway);
        let inside = (|| {
            let mut r = Rtnl::open_in(netns)?;
            let eth0 = r.link_index("eth0")?.ok_or_else(|| std::io::Error::other("eth0 is missing"))?;
            r.add_address(eth0, ip, prefix_len, false)?;
            r.set_up(eth0, None)?;
            r.add_default_route(gateway)
        })();
        inside.map_err(netlink(format!("addressing eth0 in {}", netns.display())))?;
        Ok(ip)
    }

    /// Removes the `/run/netns` entries agents before this one (which wired pods with `ip -n`)
    /// made for namespaces under `data_dir` and did not get to remove.
    pub fn remove_stale_netns_links(data_dir: &Path) {
        for entry in fs::read_dir("/run/netns").into_iter().flatten().flatten() {
            let is_ours = entry.file_name().to_string_lossy().starts_with("tkp-")
                && fs::read_link(entry.path()).is_ok_and(|target| target.starts_with(data_dir));
            if is_ours {
                let _ = fs::remove_file(entry.path());
            }
        }
    }

    /// Removes the pod's link (its pair goes with it) and frees its address. Idempotent.
    pub fn detach(&self, uid: &str) -> Result<()> {
        let veth = self.link_of(uid);
        // The kernel also removes the pair when the pod's namespace goes, and may be doing so
        // right now: a failed delete of a vanishing link must not keep the address claimed.
        let unlinked = self.with_rtnl(&format!("deleting {veth}"), |r| r.del_link(&veth)).map_err(|e| (self.link_exists(&veth), e));
        if let Some(ip) = self.address_of(uid) {
            let _ = fs::remove_file(self.ipam.join(ip.to_string()));
        }
        let _ = fs::remove_file(self.by_uid(uid));
        let _ = fs::remove_file(self.ipam.join("links").join(uid));
        match unlinked {
            Err((true, e)) => Err(e),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_parse_to_their_network_and_bad_ones_are_refused() {
        assert_eq!(parse_cidr("10.244.1.0/24").unwrap(), (u32::from(Ipv4Addr::new(10, 244, 1, 0)), 24));
        assert_eq!(parse_cidr("10.244.1.7/24").unwrap().0, u32::from(Ipv4Addr::new(10, 244, 1, 0)));
        for bad in ["", "10.244.1.0", "10.244.1.0/8", "10.244.1.0/31", "x/24", "10.244.1.0/x"] {
            assert!(parse_cidr(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn host_veth_names_fit_ifnamsiz() {
        let n = host_veth("8f2c4b1e-93aa-4e0f-b7c1-2d9e5f6a7b8c");
        assert_eq!(n, "tk8f2c4b1e93a");
        assert!(n.len() <= 15);
    }

    /// A network of 8 addresses whose IPAM lives in a temporary directory (no links are made).
    fn ipam_only() -> (tempfile::TempDir, PodNetwork) {
        let dir = tempfile::tempdir().unwrap();
        let net = PodNetwork {
            bridge: "unused".into(),
            gateway: Ipv4Addr::new(10, 9, 0, 1),
            prefix_len: 29,
            base: u32::from(Ipv4Addr::new(10, 9, 0, 0)),
            size: 8,
            ipam: dir.path().to_path_buf(),
            bridge_index: 0,
            rtnl: Mutex::new(None),
        };
        fs::create_dir_all(dir.path().join("by-uid")).unwrap();
        fs::create_dir_all(dir.path().join("links")).unwrap();
        (dir, net)
    }

    #[test]
    fn addresses_are_claimed_once_and_reused_for_the_same_pod() {
        let (_dir, net) = ipam_only();
        let a = net.allocate("a").unwrap();
        assert_eq!(a, Ipv4Addr::new(10, 9, 0, 2));
        assert_eq!(net.allocate("a").unwrap(), a);
        let ips: Vec<_> = ["b", "c", "d", "e"].iter().map(|u| net.allocate(u).unwrap()).collect();
        assert_eq!(ips.last().unwrap(), &Ipv4Addr::new(10, 9, 0, 6));
        assert!(matches!(net.allocate("f"), Err(Error::Exhausted(_))));
        net.detach("c").unwrap();
        assert_eq!(net.allocate("f").unwrap(), Ipv4Addr::new(10, 9, 0, 4));
        // Freed addresses come back only after the others: round-robin, not lowest-first.
        net.detach("a").unwrap();
        net.detach("e").unwrap();
        assert_eq!(net.allocate("g").unwrap(), Ipv4Addr::new(10, 9, 0, 6));
        assert_eq!(net.allocate("h").unwrap(), Ipv4Addr::new(10, 9, 0, 2));
    }

    #[test]
    fn only_netns_entries_left_for_this_data_dir_are_removed() {
        let data = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        fs::create_dir_all("/run/netns").unwrap();
        let id = std::process::id();
        let ours = Path::new("/run/netns").join(format!("tkp-test{id}a"));
        let theirs = Path::new("/run/netns").join(format!("tkp-test{id}b"));
        struct Remove(Vec<PathBuf>);
        impl Drop for Remove {
            fn drop(&mut self) {
                for p in &self.0 {
                    let _ = fs::remove_file(p);
                }
            }
        }
        let _guard = Remove(vec![ours.clone(), theirs.clone()]);
        std::os::unix::fs::symlink(data.path().join("warm/x/sandbox/ns/net"), &ours).unwrap();
        std::os::unix::fs::symlink(other.path().join("pods/y/sandbox/ns/net"), &theirs).unwrap();
        PodNetwork::remove_stale_netns_links(data.path());
        assert!(fs::symlink_metadata(&ours).is_err(), "the entry for this data dir is gone");
        assert!(fs::symlink_metadata(&theirs).is_ok(), "another agent's entry stays");
    }

    #[test]
    fn a_rebound_address_and_link_belong_to_the_new_key_only() {
        let (dir, net) = ipam_only();
        let ip = net.allocate("warm-1").unwrap();
        assert_eq!(net.rebind("warm-1", "pod-uid").unwrap(), ip);
        assert_eq!(net.address_of("pod-uid"), Some(ip));
        assert_eq!(net.address_of("warm-1"), None);
        assert_eq!(fs::read_to_string(dir.path().join(ip.to_string())).unwrap(), "pod-uid");
        assert_eq!(net.link_of("pod-uid"), host_veth("warm-1"));
        assert!(net.rebind("warm-1", "other").is_err(), "a key without an address has nothing to hand over");
        // Detaching frees the address and forgets the link (no such link exists here).
        net.detach("pod-uid").unwrap();
        assert_eq!(net.address_of("pod-uid"), None);
        assert!(!dir.path().join(ip.to_string()).exists());
        assert_eq!(net.link_of("pod-uid"), host_veth("pod-uid"));
    }
}
