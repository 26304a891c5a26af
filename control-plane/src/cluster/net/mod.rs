//! Network plumbing for `control-plane up`: every node agent runs in its own network namespace,
//! attached by a veth pair to a per-cluster bridge in the host namespace, so each "host" has its
//! own address and reaches the control plane (listening on the bridge address) directly over L2.
//! Nothing is routed between interfaces, so `net.ipv4.ip_forward` is left alone.
//!
//! Every kernel object is recorded in a state file *before* it is created, so a run killed at any
//! point leaves a record the next `create` uses to remove the leftovers.

mod ip;
mod state;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::fs::File;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

use ipnet::Ipv4Net;

use ip::ip;
use state::{NodeRecord, RouteRecord, State};

/// Linux interface names hold at most 15 bytes (IFNAMSIZ minus the NUL).
const IFNAMSIZ_MAX: usize = 15;
/// Keeps every derived interface name within IFNAMSIZ and makes the route metric injective.
const MAX_CLUSTER_ID_LEN: usize = 7;
/// Keeps the namespace file name well under NAME_MAX; node names are DNS labels in practice.
const MAX_NODE_NAME_LEN: usize = 63;
const NETNS_DIR: &str = "/run/netns";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid cluster id {0:?}: expected 1 to 7 lowercase hex digits")]
    InvalidClusterId(String),
    #[error(
        "invalid node name {0:?}: expected at most 63 lowercase letters, digits, '-' or '.', starting and ending with a letter or digit"
    )]
    InvalidNodeName(String),
    #[error("node CIDR {0} is too small: it needs room for the bridge and at least one node")]
    CidrTooSmall(Ipv4Net),
    #[error("node CIDR {cidr} is already in use on this host: {detail}")]
    CidrInUse { cidr: Ipv4Net, detail: String },
    #[error("interface name {0:?} would exceed 15 bytes")]
    NameTooLong(String),
    #[error("node {0:?} already has a network")]
    NodeExists(String),
    #[error("node {0:?} has no network")]
    NodeNotFound(String),
    #[error("no free address left in {0}")]
    AddressesExhausted(Ipv4Net),
    #[error("`ip {args}` failed ({status}): {stderr}")]
    Ip {
        args: String,
        status: String,
        stderr: String,
    },
    #[error("running `ip`: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("state file {path}: {source}")]
    StateIo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("state file {path}: {source}")]
    StateParse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("removing leftovers of a previous run: {}", join(.0))]
    Leftovers(Vec<Error>),
    #[error("tearing down the cluster network: {}", join(.0))]
    Teardown(Vec<Error>),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn join(errors: &[Error]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

#[derive(Debug, Clone)]
pub struct NetConfig {
    /// Short unique id (1 to 7 lowercase hex digits, see [`cluster_id_for`]); every name and the
    /// route metric derive from it, so two clusters never collide.
    pub cluster_id: String,
    /// The bridge gets the first host address, nodes the following ones.
    pub node_cidr: Ipv4Net,
    /// Cluster ranges (pods, services, nodes) that must never leak to the host's default route.
    pub blackhole: Vec<Ipv4Net>,
    /// Usually `DIR/network.json`.
    pub state_file: PathBuf,
}

/// A node's network as seen from the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeNet {
    pub name: String,
    pub netns: String,
    pub netns_path: PathBuf,
    pub address: Ipv4Addr,
}

/// The bridge, blackhole routes and node namespaces of one dev cluster. Dropping it tears
/// everything down on a best-effort basis; [`ClusterNetwork::teardown`] does the same but reports.
#[derive(Debug)]
pub struct ClusterNetwork {
    node_cidr: Ipv4Net,
    gateway: Ipv4Addr,
    bridge: String,
    metric: u32,
    state_file: PathBuf,
    state: State,
    torn_down: bool,
}

impl ClusterNetwork {
    /// Removes leftovers recorded in the state file, then creates the bridge, its address, brings
    /// it up, and adds the blackhole routes with a metric unique to this cluster. The metric lets
    /// two clusters' blackholes for the same range coexist (each removes only its own) and lets
    /// the bridge's connected route (metric 0) win over the blackhole for the node range.
    pub fn create(cfg: NetConfig) -> Result<Self> {
        validate_cluster_id(&cfg.cluster_id)?;
        let node_cidr = cfg.node_cidr.trunc();
        if node_cidr.prefix_len() > 30 {
            return Err(Error::CidrTooSmall(node_cidr));
        }
        let bridge = bridge_name(&cfg.cluster_id);
        // The longest veth name is checked here so a bad id fails before anything is created.
        check_ifname(&veth_name(&cfg.cluster_id, host_count(node_cidr)))?;

        remove_leftovers(&cfg.state_file)?;
        let in_use = ip(&["-o", "-4", "addr", "show", "to", &node_cidr.to_string()])?;
        if let Some(line) = in_use.lines().find(|l| !l.trim().is_empty()) {
            return Err(Error::CidrInUse {
                cidr: node_cidr,
                detail: line.split_whitespace().collect::<Vec<_>>().join(" "),
            });
        }

        let mut blackholes: Vec<Ipv4Net> = Vec::new();
        for net in cfg.blackhole.iter().map(Ipv4Net::trunc) {
            if !blackholes.contains(&net) {
                blackholes.push(net);
            }
        }

        let mut net = ClusterNetwork {
            node_cidr,
            gateway: gateway_of(node_cidr),
            bridge,
            metric: route_metric(&cfg.cluster_id)?,
            state_file: cfg.state_file,
            state: State {
                cluster_id: cfg.cluster_id,
                ..State::default()
            },
            torn_down: false,
        };
        match net.build(&blackholes) {
            Ok(()) => Ok(net),
            Err(e) => {
                // Whatever is still recorded stays in the state file for the next run.
                let _ = net.teardown_inner();
                Err(e)
            }
        }
    }

    fn build(&mut self, blackholes: &[Ipv4Net]) -> Result<()> {
        self.state.bridge = Some(self.bridge.clone());
        let created = self
            .save()
            .and_then(|()| ip(&["link", "add", "name", &self.bridge, "type", "bridge"]));
        if let Err(e) = created {
            // Not ours (it may be another cluster's): forget it rather than delete it.
            self.state.bridge = None;
            return Err(e);
        }
        let addr = format!("{}/{}", self.gateway, self.node_cidr.prefix_len());
        ip(&["addr", "add", &addr, "brd", "+", "dev", &self.bridge])?;
        ip(&["link", "set", "dev", &self.bridge, "up"])?;

        let metric = self.metric.to_string();
        for dst in blackholes {
            let dst = dst.to_string();
            self.state.routes.push(RouteRecord {
                dst: dst.clone(),
                metric: self.metric,
            });
            let created = self
                .save()
                .and_then(|()| ip(&["route", "add", "blackhole", &dst, "metric", &metric]));
            if let Err(e) = created {
                self.state.routes.pop();
                return Err(e);
            }
        }
        Ok(())
    }

    /// The bridge address: the control plane listens there so agents can reach it.
    pub fn gateway(&self) -> Ipv4Addr {
        self.gateway
    }

    /// The bridge's interface name.
    pub fn bridge(&self) -> &str {
        &self.bridge
    }

    /// The network of a node added earlier.
    pub fn node(&self, node: &str) -> Option<NodeNet> {
        self.state
            .nodes
            .iter()
            .find(|n| n.name == node)
            .map(NodeNet::from)
    }

    /// Creates the node's namespace (`tk-<id>-<node>`, bind-mounted under /run/netns by
    /// `ip netns add`), a veth pair whose host end joins the bridge and whose other end becomes
    /// `eth0` inside the namespace, the next free address on `eth0`, `lo` up, and a default route
    /// via the gateway. On failure, whatever this call created is removed again.
    pub fn add_node(&mut self, node: &str) -> Result<NodeNet> {
        validate_node_name(node)?;
        if self.state.nodes.iter().any(|n| n.name == node) {
            return Err(Error::NodeExists(node.to_owned()));
        }
        let address = next_free_address(self.node_cidr, self.state.nodes.iter().map(|n| n.address))
            .ok_or(Error::AddressesExhausted(self.node_cidr))?;
        let index = u32::from(address) - u32::from(self.node_cidr.network());
        let veth = veth_name(&self.state.cluster_id, index);
        check_ifname(&veth)?;
        let rec = NodeRecord {
            name: node.to_owned(),
            netns: netns_name(&self.state.cluster_id, node),
            veth,
            address,
        };

        self.state.nodes.push(rec.clone());
        let mut created = Created::default();
        if let Err(e) = self
            .save()
            .and_then(|()| self.plumb_node(&rec, &mut created))
        {
            // If undoing fails, the record stays so the next run removes the rest.
            if created.rollback(&rec).is_ok() {
                self.state.nodes.retain(|n| n.name != rec.name);
                let _ = self.save();
            }
            return Err(e);
        }
        Ok(NodeNet::from(&rec))
    }

    fn plumb_node(&self, rec: &NodeRecord, created: &mut Created) -> Result<()> {
        ip(&["netns", "add", &rec.netns])?;
        created.netns = true;
        // Creating the peer directly inside the namespace avoids a temporary host-side name.
        ip(&[
            "link", "add", "name", &rec.veth, "type", "veth", "peer", "name", "eth0", "netns",
            &rec.netns,
        ])?;
        created.veth = true;
        ip(&[
            "link",
            "set",
            "dev",
            &rec.veth,
            "master",
            &self.bridge,
            "up",
        ])?;

        let ns = rec.netns.as_str();
        let addr = format!("{}/{}", rec.address, self.node_cidr.prefix_len());
        let gateway = self.gateway.to_string();
        ip(&["-n", ns, "link", "set", "dev", "lo", "up"])?;
        ip(&["-n", ns, "addr", "add", &addr, "brd", "+", "dev", "eth0"])?;
        ip(&["-n", ns, "link", "set", "dev", "eth0", "up"])?;
        ip(&[
            "-n", ns, "route", "add", "default", "via", &gateway, "dev", "eth0",
        ])?;
        Ok(())
    }

    /// Removes the node's veth pair and namespace.
    pub fn remove_node(&mut self, node: &str) -> Result<()> {
        let pos = self
            .state
            .nodes
            .iter()
            .position(|n| n.name == node)
            .ok_or_else(|| Error::NodeNotFound(node.to_owned()))?;
        state::destroy_node(&self.state.nodes[pos])?;
        self.state.nodes.remove(pos);
        self.save()
    }

    /// Removes everything this network created, reporting every failure. Whatever could not be
    /// removed stays in the state file for the next run's `create` to retry.
    pub fn teardown(mut self) -> Result<()> {
        self.teardown_inner()
    }

    fn teardown_inner(&mut self) -> Result<()> {
        if self.torn_down {
            return Ok(());
        }
        self.torn_down = true;
        let mut errors = self.state.destroy_all();
        let saved = if errors.is_empty() {
            State::remove_file(&self.state_file)
        } else {
            self.save()
        };
        if let Err(e) = saved {
            errors.push(e);
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::Teardown(errors))
        }
    }

    fn save(&self) -> Result<()> {
        self.state.save(&self.state_file)
    }
}

impl Drop for ClusterNetwork {
    fn drop(&mut self) {
        let _ = self.teardown_inner();
    }
}

impl From<&NodeRecord> for NodeNet {
    fn from(n: &NodeRecord) -> Self {
        NodeNet {
            name: n.name.clone(),
            netns: n.netns.clone(),
            netns_path: Path::new(NETNS_DIR).join(&n.netns),
            address: n.address,
        }
    }
}

/// What `add_node` has created so far, so a failure undoes exactly that and never touches an
/// object that merely shares a name.
#[derive(Default)]
struct Created {
    netns: bool,
    veth: bool,
}

impl Created {
    fn rollback(&self, rec: &NodeRecord) -> Result<()> {
        let veth = match self.veth {
            true => ip::ip_del(&["link", "del", "dev", &rec.veth]),
            false => Ok(()),
        };
        let netns = match self.netns {
            true => ip::ip_del(&["netns", "del", &rec.netns]),
            false => Ok(()),
        };
        veth.and(netns)
    }
}

fn remove_leftovers(state_file: &Path) -> Result<()> {
    let Some(mut old) = State::load(state_file)? else {
        return Ok(());
    };
    let errors = old.destroy_all();
    if errors.is_empty() {
        State::remove_file(state_file)
    } else {
        // Keep the record of what is still there for yet another attempt.
        let _ = old.save(state_file);
        Err(Error::Leftovers(errors))
    }
}

/// Makes `cmd` start inside the network namespace at `netns_path` (e.g. [`NodeNet::netns_path`]).
/// The namespace file is opened now, before the fork, so the child only has to call `setns`.
pub fn run_in_netns(cmd: &mut Command, netns_path: &Path) -> std::io::Result<()> {
    use std::os::unix::process::CommandExt;
    let ns = File::open(netns_path)?;
    // SAFETY: the closure runs between fork and exec, where only async-signal-safe work is
    // allowed; it makes a single setns(2) syscall and builds an io::Error from an errno, neither
    // of which allocates or takes locks. `ns` is opened O_CLOEXEC by std, so it does not leak
    // into the new program.
    unsafe {
        cmd.pre_exec(move || {
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(std::io::Error::from)
        });
    }
    Ok(())
}

/// Derives a stable 6-hex-digit cluster id from the data directory, so rerunning with the same
/// directory reuses the same names and different directories (almost surely) do not collide.
pub fn cluster_id_for(data_dir: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let dir = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_owned());
    // FNV-1a: tiny, and unlike std's hasher guaranteed stable across Rust releases.
    let hash = dir
        .as_os_str()
        .as_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
    format!("{:06x}", (hash ^ (hash >> 32)) & 0xff_ffff)
}

fn validate_cluster_id(id: &str) -> Result<()> {
    let ok = (1..=MAX_CLUSTER_ID_LEN).contains(&id.len())
        && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidClusterId(id.to_owned()))
    }
}

fn validate_node_name(name: &str) -> Result<()> {
    let b = name.as_bytes();
    let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let ok = (1..=MAX_NODE_NAME_LEN).contains(&b.len())
        && b.first().is_some_and(alnum)
        && b.last().is_some_and(alnum)
        && b.iter().all(|c| alnum(c) || *c == b'-' || *c == b'.');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidNodeName(name.to_owned()))
    }
}

/// Injective over valid ids (the length is folded in, so "0a" and "a" differ) and never 0, so it
/// never ties with the kernel's connected routes.
fn route_metric(cluster_id: &str) -> Result<u32> {
    validate_cluster_id(cluster_id)?;
    let value = u32::from_str_radix(cluster_id, 16)
        .map_err(|_| Error::InvalidClusterId(cluster_id.to_owned()))?;
    // len <= 7, so len << 28 fits in 31 bits and value < 16^7 = 2^28 never overlaps it.
    Ok(((cluster_id.len() as u32) << 28) | value)
}

fn bridge_name(cluster_id: &str) -> String {
    format!("tk{cluster_id}")
}

/// The 'v' cannot appear in a (hex) id, so these never equal a bridge or another cluster's veth.
fn veth_name(cluster_id: &str, index: u32) -> String {
    format!("tk{cluster_id}v{index}")
}

fn netns_name(cluster_id: &str, node: &str) -> String {
    format!("tk-{cluster_id}-{node}")
}

fn check_ifname(name: &str) -> Result<()> {
    if name.len() <= IFNAMSIZ_MAX {
        Ok(())
    } else {
        Err(Error::NameTooLong(name.to_owned()))
    }
}

fn gateway_of(cidr: Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(cidr.network()).saturating_add(1))
}

/// Highest host index (offset from the network address) a node can get.
fn host_count(cidr: Ipv4Net) -> u32 {
    u32::from(cidr.broadcast()).saturating_sub(u32::from(cidr.network()) + 1)
}

/// The lowest address after the gateway and before the broadcast address not already taken.
fn next_free_address(cidr: Ipv4Net, used: impl Iterator<Item = Ipv4Addr>) -> Option<Ipv4Addr> {
    let used: BTreeSet<u32> = used.map(u32::from).collect();
    let first = u32::from(cidr.network()).checked_add(2)?;
    let last = u32::from(cidr.broadcast()).checked_sub(1)?;
    (first..=last)
        .find(|a| !used.contains(a))
        .map(Ipv4Addr::from)
}
