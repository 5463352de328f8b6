//! Pod IPs from a node's pod CIDR, as the bridge CNI's host-local IPAM hands them out: the
//! network address, the gateway (`.1`) and the broadcast address are never given, and
//! allocation goes round the range so a freed address is not reused at once. No I/O.

use std::net::Ipv4Addr;

/// An IPv4 CIDR such as `10.128.3.0/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub network: Ipv4Addr,
    pub prefix_len: u8,
}

impl Cidr {
    /// Parses `a.b.c.d/n`; host bits are cleared (`10.0.0.7/24` is `10.0.0.0/24`).
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

fn mask(prefix_len: u8) -> u32 {
    match prefix_len {
        0 => 0,
        n => u32::MAX << (32 - u32::from(n.min(32))),
    }
}

/// At most this many addresses of a range are used (a /16 and beyond would otherwise cost a
/// large bitmap per node for nothing: a node holds at most a few hundred pods).
pub const MAX_ADDRESSES: u32 = 4096;

/// Allocation state of one node's range: one bit per address.
#[derive(Debug, Clone)]
pub struct Ipam {
    /// The first address handed out (network + 2).
    first: u32,
    /// How many addresses from `first` may be handed out.
    size: u32,
    used: Vec<u64>,
    /// Offset where the next search starts.
    next: u32,
    in_use: u32,
}

impl Ipam {
    pub fn new(cidr: Cidr) -> Ipam {
        let total: u64 = 1u64 << (32 - u32::from(cidr.prefix_len));
        // Skip network and gateway, and the broadcast address at the end.
        let size = total.saturating_sub(3).min(u64::from(MAX_ADDRESSES)) as u32;
        Ipam {
            first: u32::from(cidr.network).wrapping_add(2),
            size,
            used: vec![0; size.div_ceil(64) as usize],
            next: 0,
            in_use: 0,
        }
    }

    /// Addresses handed out and not yet freed.
    pub fn in_use(&self) -> u32 {
        self.in_use
    }

    /// The next free address after the last one handed out, or None when all are taken.
    pub fn allocate(&mut self) -> Option<Ipv4Addr> {
        for step in 0..self.size {
            let off = (self.next + step) % self.size;
            if !self.is_used(off) {
                self.set(off, true);
                self.next = (off + 1) % self.size;
                return Some(Ipv4Addr::from(self.first.wrapping_add(off)));
            }
        }
        None
    }

    /// Marks a known address (of a pod found running after a restart) as taken; false when it
    /// is outside the range or already taken.
    pub fn reserve(&mut self, ip: Ipv4Addr) -> bool {
        match self.offset(ip) {
            Some(off) if !self.is_used(off) => {
                self.set(off, true);
                true
            }
            _ => false,
        }
    }

    /// Gives an address back; unknown or free addresses are ignored.
    pub fn free(&mut self, ip: Ipv4Addr) {
        if let Some(off) = self.offset(ip) {
            if self.is_used(off) {
                self.set(off, false);
            }
        }
    }

    fn offset(&self, ip: Ipv4Addr) -> Option<u32> {
        let off = u32::from(ip).wrapping_sub(self.first);
        (off < self.size).then_some(off)
    }

    fn is_used(&self, off: u32) -> bool {
        self.used[(off / 64) as usize] & (1 << (off % 64)) != 0
    }

    fn set(&mut self, off: u32, on: bool) {
        let word = &mut self.used[(off / 64) as usize];
        if on {
            *word |= 1 << (off % 64);
            self.in_use += 1;
        } else {
            *word &= !(1 << (off % 64));
            self.in_use -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn cidr_parse_and_contains() {
        let c = Cidr::parse("10.128.3.7/24").unwrap();
        assert_eq!(c.to_string(), "10.128.3.0/24");
        assert_eq!(Cidr::parse("0.0.0.0/0").unwrap().to_string(), "0.0.0.0/0");
        for bad in ["10.0.0.0", "10.0.0.0/33", "x/24", "10.0.0/24"] {
            assert_eq!(Cidr::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_slash_24_gives_253_addresses_then_none() {
        let mut a = Ipam::new(Cidr::parse("10.1.2.0/24").unwrap());
        assert_eq!(a.allocate(), Some(ip("10.1.2.2")));
        let mut seen = std::collections::HashSet::new();
        seen.insert(ip("10.1.2.2"));
        while let Some(x) = a.allocate() {
            assert!(seen.insert(x), "{x} handed out twice");
            assert!(x != ip("10.1.2.255") && x != ip("10.1.2.1") && x != ip("10.1.2.0"));
        }
        assert_eq!(seen.len(), 253);
        assert_eq!(a.in_use(), 253);
        a.free(ip("10.1.2.77"));
        assert_eq!(a.allocate(), Some(ip("10.1.2.77")));
    }

    #[test]
    fn freed_addresses_are_not_reused_at_once() {
        let mut a = Ipam::new(Cidr::parse("10.1.2.0/24").unwrap());
        let first = a.allocate().unwrap();
        a.free(first);
        assert_ne!(a.allocate(), Some(first));
        assert_eq!(a.in_use(), 1);
    }

    #[test]
    fn reserve_respects_range_and_use() {
        let mut a = Ipam::new(Cidr::parse("10.1.2.0/24").unwrap());
        assert!(a.reserve(ip("10.1.2.2")));
        assert!(!a.reserve(ip("10.1.2.2")));
        assert!(!a.reserve(ip("10.1.3.2")));
        assert!(!a.reserve(ip("10.1.2.1")));
        // The reserved address is skipped by allocation.
        assert_eq!(a.allocate(), Some(ip("10.1.2.3")));
        a.free(ip("10.9.9.9"));
        a.free(ip("10.1.2.200"));
        assert_eq!(a.in_use(), 2);
    }

    #[test]
    fn tiny_and_huge_ranges() {
        let mut a = Ipam::new(Cidr::parse("10.0.0.0/31").unwrap());
        assert_eq!(a.allocate(), None);
        let mut a = Ipam::new(Cidr::parse("10.0.0.0/30").unwrap());
        assert_eq!(a.allocate(), Some(ip("10.0.0.2")));
        assert_eq!(a.allocate(), None);
        let a = Ipam::new(Cidr::parse("10.0.0.0/8").unwrap());
        assert_eq!(a.used.len(), (MAX_ADDRESSES / 64) as usize);
    }
}
