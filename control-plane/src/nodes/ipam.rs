//! Pod CIDR assignment: each node gets its own /24 from the cluster range, kept across restarts
//! because it is read back from the Node objects.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use crate::registry::allocator::{BadCidr, parse_cidr};

pub struct NodeIpam {
    base: u32,
    blocks: u32,
    block_len: u8,
}

impl NodeIpam {
    /// `cluster_cidr` such as 10.244.0.0/16, cut into /24 blocks (or smaller ranges' halves).
    pub fn new(cluster_cidr: &str) -> Result<Self, BadCidr> {
        let (ip, len) = parse_cidr(cluster_cidr)?;
        let block_len = 24.max(len + 1);
        let size = 1u32 << (32 - len);
        Ok(NodeIpam { base: u32::from(ip) & !(size - 1), blocks: 1 << (block_len - len), block_len })
    }

    /// The first block not in `taken` (CIDR strings of existing nodes).
    pub fn next_free<'a>(&self, taken: impl IntoIterator<Item = &'a str>) -> Option<String> {
        let taken: BTreeSet<&str> = taken.into_iter().collect();
        let step = 1u32 << (32 - self.block_len);
        (0..self.blocks)
            .map(|i| format!("{}/{}", Ipv4Addr::from(self.base + i * step), self.block_len))
            .find(|c| !taken.contains(c.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_get_consecutive_slash_24s_skipping_taken_ones() {
        let ipam = NodeIpam::new("10.244.0.0/16").unwrap();
        assert_eq!(ipam.next_free([]).unwrap(), "10.244.0.0/24");
        assert_eq!(ipam.next_free(["10.244.0.0/24", "10.244.2.0/24"]).unwrap(), "10.244.1.0/24");
        let small = NodeIpam::new("10.1.0.0/24").unwrap();
        assert_eq!(small.next_free(["10.1.0.0/25"]).unwrap(), "10.1.0.128/25");
        assert!(small.next_free(["10.1.0.0/25", "10.1.0.128/25"]).is_none());
        assert!(NodeIpam::new("nope").is_err());
    }
}
