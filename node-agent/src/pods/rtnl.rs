//! A small rtnetlink client: the link, address, route and neighbour requests a pod's network
//! needs, sent over a plain netlink socket.
//!
//! Wiring a pod with `ip` cost four process spawns (5 ms each on the development machine, more
//! under load) and those spawns competed with the containers being started. The messages come
//! from `netlink-packet-route`; this module only sends one request at a time and reads its answer.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::Path;

use netlink_packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage};
use netlink_packet_route::neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourMessage};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::protocols::NETLINK_ROUTE;
use netlink_sys::{Socket, SocketAddr};

/// A route netlink socket bound to the network namespace it was opened in.
pub struct Rtnl {
    socket: Socket,
    seq: u32,
}

impl Rtnl {
    /// A socket in this thread's network namespace.
    pub fn open() -> io::Result<Rtnl> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        // The kernel answers route requests before `send` returns; the timeout only turns a
        // lost answer into an error instead of a worker stuck forever.
        let timeout = nix::sys::time::TimeVal::new(5, 0);
        nix::sys::socket::setsockopt(&socket, nix::sys::socket::sockopt::ReceiveTimeout, &timeout).map_err(io::Error::from)?;
        Ok(Rtnl { socket, seq: 0 })
    }

    /// A socket in the network namespace at `netns` (a socket stays in the namespace it was made
    /// in): opened from a short-lived thread that enters the namespace and then ends.
    pub fn open_in(netns: &Path) -> io::Result<Rtnl> {
        let ns = std::fs::File::open(netns)?;
        std::thread::scope(|s| {
            s.spawn(|| {
                nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
                Rtnl::open()
            })
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the netlink thread panicked")))
        })
    }

    /// Sends one request and waits for its acknowledgement, or for its answer when `answer`.
    fn request(&mut self, message: RouteNetlinkMessage, flags: u16, answer: bool) -> io::Result<Option<RouteNetlinkMessage>> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags | if answer { 0 } else { NLM_F_ACK };
        header.sequence_number = self.seq;
        let mut msg = NetlinkMessage::new(header, NetlinkPayload::from(message));
        msg.finalize();
        let mut buf = vec![0u8; msg.buffer_len()];
        msg.serialize(&mut buf);
        self.socket.send(&buf, 0)?;
        loop {
            let mut rx: Vec<u8> = Vec::with_capacity(32 * 1024);
            self.socket.recv(&mut rx, 0)?;
            let mut offset = 0;
            while offset < rx.len() {
                let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&rx[offset..]).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                let len = reply.header.length as usize;
                if len == 0 {
                    break;
                }
                offset += (len + 3) & !3;
                if reply.header.sequence_number != self.seq {
                    continue;
                }
                match reply.payload {
                    NetlinkPayload::Error(e) if e.code.is_some() => return Err(e.to_io()),
                    NetlinkPayload::Error(_) | NetlinkPayload::Done(_) => return Ok(None),
                    NetlinkPayload::InnerMessage(m) => return Ok(Some(m)),
                    _ => {}
                }
            }
        }
    }

    /// The index of the link called `name`, if there is one.
    pub fn link_index(&mut self, name: &str) -> io::Result<Option<u32>> {
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        match self.request(RouteNetlinkMessage::GetLink(m), 0, true) {
            Ok(Some(RouteNetlinkMessage::NewLink(link))) => Ok(Some(link.header.index)),
            Ok(_) => Ok(None),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates a bridge called `name`.
    pub fn add_bridge(&mut self, name: &str) -> io::Result<()> {
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        m.attributes.push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Bridge)]));
        self.request(RouteNetlinkMessage::NewLink(m), NLM_F_CREATE | NLM_F_EXCL, false).map(drop)
    }

    /// Creates a veth pair: `host` here, `peer` in the network namespace at `netns`.
    pub fn add_veth(&mut self, host: &str, peer: &str, netns: &Path) -> io::Result<()> {
        let ns = std::fs::File::open(netns)?;
        let mut inner = LinkMessage::default();
        inner.attributes.push(LinkAttribute::IfName(peer.to_string()));
        inner.attributes.push(LinkAttribute::NetNsFd(ns.as_raw_fd()));
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(host.to_string()));
        m.attributes.push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Veth), LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(inner)))]));
        // `ns` stays open until the kernel has answered.
        let res = self.request(RouteNetlinkMessage::NewLink(m), NLM_F_CREATE | NLM_F_EXCL, false).map(drop);
        drop(ns);
        res
    }

    /// Sets a link up, and enslaves it to `controller` when given.
    pub fn set_up(&mut self, index: u32, controller: Option<u32>) -> io::Result<()> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        m.header.flags = LinkFlags::Up;
        m.header.change_mask = LinkFlags::Up;
        if let Some(c) = controller {
            m.attributes.push(LinkAttribute::Controller(c));
        }
        self.request(RouteNetlinkMessage::SetLink(m), 0, false).map(drop)
    }

    /// Deletes the link called `name`; a link that is already gone is not an error.
    pub fn del_link(&mut self, name: &str) -> io::Result<()> {
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        match self.request(RouteNetlinkMessage::DelLink(m), 0, false) {
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(()),
            res => res.map(drop),
        }
    }

    /// Gives link `index` the address `ip/prefix_len` (replacing it if present when `replace`).
    pub fn add_address(&mut self, index: u32, ip: Ipv4Addr, prefix_len: u8, replace: bool) -> io::Result<()> {
        let mut m = AddressMessage::default();
        m.header.family = AddressFamily::Inet;
        m.header.prefix_len = prefix_len;
        m.header.index = index;
        m.attributes.push(AddressAttribute::Local(ip.into()));
        m.attributes.push(AddressAttribute::Address(ip.into()));
        let flags = NLM_F_CREATE | if replace { NLM_F_REPLACE } else { NLM_F_EXCL };
        self.request(RouteNetlinkMessage::NewAddress(m), flags, false).map(drop)
    }

    /// Adds a default route through `gateway`.
    pub fn add_default_route(&mut self, gateway: Ipv4Addr) -> io::Result<()> {
        let mut m = RouteMessage::default();
        m.header.address_family = AddressFamily::Inet;
        m.header.table = RouteHeader::RT_TABLE_MAIN;
        m.header.protocol = RouteProtocol::Boot;
        m.header.scope = RouteScope::Universe;
        m.header.kind = RouteType::Unicast;
        m.attributes.push(RouteAttribute::Gateway(RouteAddress::Inet(gateway)));
        self.request(RouteNetlinkMessage::NewRoute(m), NLM_F_CREATE | NLM_F_EXCL, false).map(drop)
    }

    /// Forgets the neighbour entry for `ip` on link `index`, if there is one.
    pub fn del_neighbour(&mut self, index: u32, ip: Ipv4Addr) -> io::Result<()> {
        let mut m = NeighbourMessage::default();
        m.header.family = AddressFamily::Inet;
        m.header.ifindex = index;
        m.attributes.push(NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)));
        match self.request(RouteNetlinkMessage::DelNeighbour(m), 0, false) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
            res => res.map(drop),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A network namespace made for one test, pinned by a bind mount and removed on drop.
    struct TestNetns {
        dir: tempfile::TempDir,
    }

    impl TestNetns {
        fn new() -> TestNetns {
            let dir = tempfile::tempdir().unwrap();
            let pin = dir.path().join("net");
            std::fs::write(&pin, "").unwrap();
            let target = pin.clone();
            std::thread::spawn(move || {
                nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
                nix::mount::mount(Some("/proc/thread-self/ns/net"), &target, None::<&str>, nix::mount::MsFlags::MS_BIND, None::<&str>).unwrap();
            })
            .join()
            .unwrap();
            TestNetns { dir }
        }

        fn path(&self) -> std::path::PathBuf {
            self.dir.path().join("net")
        }
    }

    impl Drop for TestNetns {
        fn drop(&mut self) {
            let _ = nix::mount::umount2(&self.path(), nix::mount::MntFlags::MNT_DETACH);
        }
    }

    fn ip_in(ns: &Path, args: &[&str]) -> String {
        let out = std::process::Command::new("nsenter").arg(format!("--net={}", ns.display())).arg("ip").args(args).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    #[test]
    fn a_veth_pair_with_addresses_and_a_default_route_is_wired_across_two_namespaces() {
        // Both ends live in namespaces made here, so the host's links are never touched.
        let (outer, inner) = (TestNetns::new(), TestNetns::new());
        let mut host = Rtnl::open_in(&outer.path()).unwrap();
        host.add_bridge("tkbrtest").unwrap();
        assert!(host.add_bridge("tkbrtest").is_err(), "a second bridge of the same name is refused");
        let bridge = host.link_index("tkbrtest").unwrap().expect("the bridge exists");
        host.add_address(bridge, Ipv4Addr::new(10, 77, 0, 1), 24, true).unwrap();
        host.add_address(bridge, Ipv4Addr::new(10, 77, 0, 1), 24, true).unwrap();
        host.set_up(bridge, None).unwrap();
        host.add_veth("tkvethtest", "eth0", &inner.path()).unwrap();
        let veth = host.link_index("tkvethtest").unwrap().expect("the host end exists");
        host.set_up(veth, Some(bridge)).unwrap();
        assert_eq!(host.link_index("eth0").unwrap(), None, "the peer is not in the outer namespace");

        let mut pod = Rtnl::open_in(&inner.path()).unwrap();
        let eth0 = pod.link_index("eth0").unwrap().expect("the peer is in the inner namespace");
        pod.add_address(eth0, Ipv4Addr::new(10, 77, 0, 5), 24, false).unwrap();
        pod.set_up(eth0, None).unwrap();
        pod.add_default_route(Ipv4Addr::new(10, 77, 0, 1)).unwrap();
        assert!(ip_in(&inner.path(), &["-4", "addr", "show", "dev", "eth0"]).contains("10.77.0.5/24"));
        assert!(ip_in(&inner.path(), &["route", "show", "default"]).contains("via 10.77.0.1 dev eth0"));
        assert!(ip_in(&outer.path(), &["link", "show", "dev", "tkvethtest"]).contains("master tkbrtest"));

        host.del_neighbour(bridge, Ipv4Addr::new(10, 77, 0, 5)).unwrap();
        host.del_link("tkvethtest").unwrap();
        host.del_link("tkvethtest").unwrap();
        assert_eq!(host.link_index("tkvethtest").unwrap(), None);
        assert_eq!(pod.link_index("eth0").unwrap(), None, "deleting one end removes the pair");
    }

    #[test]
    fn opening_a_namespace_that_is_not_one_fails_with_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let not_ns = dir.path().join("plain-file");
        std::fs::write(&not_ns, "").unwrap();
        assert!(Rtnl::open_in(&not_ns).is_err());
        assert!(Rtnl::open_in(&dir.path().join("missing")).is_err());
    }
}
