//! Cluster DNS, served by the control plane (the `kube-dns` Service points at it): answers for
//! Services from [`Records`], forwards other names to the host's resolvers. Messages are parsed
//! and encoded with hickory-proto; the socket loops are small and ours, so a malformed packet or
//! a silent upstream costs one task, never the server.

mod records;
mod server;

pub use records::{Answer, Entry, Records, TTL};
pub use server::{answer, serve};

use std::net::{IpAddr, SocketAddr};

/// The `nameserver` lines of a resolv.conf, on port 53.
pub fn upstreams_from_resolv_conf(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            (words.next()? == "nameserver").then_some(())?;
            let ip: IpAddr = words.next()?.split('%').next()?.parse().ok()?;
            Some(SocketAddr::new(ip, 53))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nameserver_lines_become_upstreams_and_the_rest_is_ignored() {
        let text = "# generated\nsearch example.com\nnameserver 10.0.0.2\nnameserver   fe80::1%eth0\nnameserver bogus\noptions ndots:2\n";
        assert_eq!(upstreams_from_resolv_conf(text), vec!["10.0.0.2:53".parse().unwrap(), "[fe80::1]:53".parse().unwrap()]);
        assert!(upstreams_from_resolv_conf("").is_empty());
    }
}
