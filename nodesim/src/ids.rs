//! Deterministic made-up identifiers: container IDs, image digests, machine IDs. FNV-1a over
//! the inputs, so the same pod and container always get the same ID. No I/O.

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv1a(seed: u64, parts: &[&[u8]]) -> u64 {
    let mut h = FNV_OFFSET ^ seed.wrapping_mul(FNV_PRIME);
    for p in parts {
        for b in *p {
            h ^= u64::from(*b);
            h = h.wrapping_mul(FNV_PRIME);
        }
        // A separator, so ("ab", "c") and ("a", "bc") differ.
        h ^= 0xff;
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// `hex_digits` lowercase hex digits derived from `parts`.
pub fn hex(parts: &[&[u8]], hex_digits: usize) -> String {
    let mut out = String::with_capacity(hex_digits + 16);
    let mut round = 0u64;
    while out.len() < hex_digits {
        out.push_str(&format!("{:016x}", fnv1a(round, parts)));
        round += 1;
    }
    out.truncate(hex_digits);
    out
}

/// A UUID-shaped ID (8-4-4-4-12 hex digits) derived from `parts`.
pub fn uuid(parts: &[&[u8]]) -> String {
    let h = hex(parts, 32);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_distinct_and_well_formed() {
        let a = hex(&[b"uid-1", b"nginx"], 64);
        assert_eq!(a.len(), 64);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_eq!(a, hex(&[b"uid-1", b"nginx"], 64));
        assert_ne!(a, hex(&[b"uid-1", b"nginx2"], 64));
        assert_ne!(hex(&[b"ab", b"c"], 16), hex(&[b"a", b"bc"], 16));
        let u = uuid(&[b"node-1"]);
        assert_eq!(u.len(), 36);
        assert_eq!(u.matches('-').count(), 4);
    }
}
