//! kube's `cidrset` (`pkg/controller/nodeipam/ipam/cidrset`) for IPv4: the cluster CIDR cut
//! into node CIDRs of one mask size, handed out round-robin from after the last one given, each
//! at most once until released. No I/O.

use std::net::Ipv4Addr;

/// An IPv4 CIDR such as `10.244.3.0/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    pub network: Ipv4Addr,
    pub prefix_len: u8,
}

fn mask(prefix_len: u8) -> u32 {
    match prefix_len {
        0 => 0,
        n => u32::MAX << (32 - u32::from(n.min(32))),
    }
}

impl Cidr {
    /// Parses `a.b.c.d/n` (host bits cleared).
    pub fn parse(s: &str) -> Option<Cidr> {
        let (ip, len) = s.trim().split_once('/')?;
        let ip: Ipv4Addr = ip.parse().ok()?;
        let prefix_len: u8 = len.parse().ok()?;
        if prefix_len > 32 {
            return None;
        }
        Some(Cidr {
            network: Ipv4Addr::from(u32::from(ip) & mask(prefix_len)),
            prefix_len,
        })
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_len)
    }
}

/// kube's `ErrCIDRRangeNoCIDRsRemaining`.
pub const NO_CIDRS_REMAINING: &str =
    "CIDR allocation failed; there are no remaining CIDRs left to allocate in the accepted range";

/// kube's limit: at most 2^16 node CIDRs per cluster CIDR.
const MAX_PREFIX_DIFF: u8 = 16;

#[derive(Debug, Clone)]
pub struct CidrSet {
    cluster: Cidr,
    node_prefix: u8,
    used: Vec<bool>,
    next: usize,
    allocated: usize,
}

impl CidrSet {
    /// kube's `NewCIDRSet`: refuses a node mask smaller than the cluster's or more than 16 bits
    /// longer.
    pub fn new(cluster: Cidr, node_prefix: u8) -> Result<CidrSet, String> {
        if node_prefix < cluster.prefix_len || node_prefix > 32 {
            return Err(format!(
                "invalid node CIDR mask size {node_prefix} for cluster CIDR {cluster}"
            ));
        }
        if node_prefix - cluster.prefix_len > MAX_PREFIX_DIFF {
            return Err(
                "CIDRSet: subNetMaskSize is too big, it must not be more than 16 bits larger than the cluster mask"
                    .into(),
            );
        }
        let count = 1usize << (node_prefix - cluster.prefix_len);
        Ok(CidrSet {
            cluster,
            node_prefix,
            used: vec![false; count],
            next: 0,
            allocated: 0,
        })
    }

    fn cidr_at(&self, i: usize) -> Cidr {
        let step = if self.node_prefix == 0 {
            0
        } else {
            1u64 << (32 - u32::from(self.node_prefix))
        };
        let base = u64::from(u32::from(self.cluster.network));
        Cidr {
            network: Ipv4Addr::from((base + step * i as u64) as u32),
            prefix_len: self.node_prefix,
        }
    }

    fn index_of(&self, c: &Cidr) -> Option<usize> {
        if c.prefix_len != self.node_prefix {
            return None;
        }
        let base = u32::from(self.cluster.network);
        let ip = u32::from(c.network);
        if ip & mask(self.cluster.prefix_len) != base {
            return None;
        }
        let off = (ip - base) >> (32 - u32::from(self.node_prefix));
        Some(off as usize)
    }

    /// The next free node CIDR after the last one handed out.
    pub fn allocate_next(&mut self) -> Result<Cidr, String> {
        let n = self.used.len();
        for step in 0..n {
            let i = (self.next + step) % n;
            if !self.used[i] {
                self.used[i] = true;
                self.allocated += 1;
                self.next = (i + 1) % n;
                return Ok(self.cidr_at(i));
            }
        }
        Err(NO_CIDRS_REMAINING.into())
    }

    /// Marks a CIDR a node already has as taken (kube's `Occupy`); false when it is not one
    /// of this set's node CIDRs.
    pub fn occupy(&mut self, c: &Cidr) -> bool {
        match self.index_of(c) {
            Some(i) => {
                if !self.used[i] {
                    self.used[i] = true;
                    self.allocated += 1;
                }
                true
            }
            None => false,
        }
    }

    pub fn release(&mut self, c: &Cidr) {
        if let Some(i) = self.index_of(c) {
            if self.used[i] {
                self.used[i] = false;
                self.allocated -= 1;
            }
        }
    }

    pub fn allocated(&self) -> usize {
        self.allocated
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Cidr {
        Cidr::parse(s).unwrap()
    }

    #[test]
    fn hands_out_each_node_cidr_once_then_runs_out() {
        let mut s = CidrSet::new(c("10.244.0.0/22"), 24).unwrap();
        let got: Vec<String> = (0..4)
            .map(|_| s.allocate_next().unwrap().to_string())
            .collect();
        assert_eq!(
            got,
            [
                "10.244.0.0/24",
                "10.244.1.0/24",
                "10.244.2.0/24",
                "10.244.3.0/24"
            ]
        );
        assert_eq!(s.allocate_next().unwrap_err(), NO_CIDRS_REMAINING);
        s.release(&c("10.244.1.0/24"));
        assert_eq!(s.allocated(), 3);
        assert_eq!(s.allocate_next().unwrap().to_string(), "10.244.1.0/24");
    }

    #[test]
    fn occupied_cidrs_are_skipped_and_foreign_ones_refused() {
        let mut s = CidrSet::new(c("10.244.0.0/16"), 24).unwrap();
        assert!(s.occupy(&c("10.244.0.0/24")));
        assert!(s.occupy(&c("10.244.0.0/24")), "occupying twice is harmless");
        assert_eq!(s.allocated(), 1);
        assert!(!s.occupy(&c("10.245.0.0/24")));
        assert!(!s.occupy(&c("10.244.0.0/25")));
        assert_eq!(s.allocate_next().unwrap().to_string(), "10.244.1.0/24");
        // Round robin: a released CIDR is not given again at once.
        s.release(&c("10.244.0.0/24"));
        assert_eq!(s.allocate_next().unwrap().to_string(), "10.244.2.0/24");
    }

    #[test]
    fn mask_sizes_are_checked() {
        assert!(CidrSet::new(c("10.0.0.0/16"), 8).is_err());
        assert!(
            CidrSet::new(c("10.0.0.0/8"), 25).is_err(),
            "more than 16 bits"
        );
        assert!(CidrSet::new(c("10.0.0.0/8"), 24).is_ok());
        assert_eq!(c("10.1.2.3/8").to_string(), "10.0.0.0/8");
        assert!(Cidr::parse("10.0.0.0/33").is_none());
    }
}
