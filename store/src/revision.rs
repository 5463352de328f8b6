//! Revisions: the store's logical clock.

/// A point in the store's history. `main` is bumped once per write transaction; `sub` numbers the
/// changes inside that transaction, so every individual change has a unique revision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Revision {
    pub main: i64,
    pub sub: i64,
}

impl Revision {
    /// Encoded form: 8 bytes big-endian `main`, `_`, 8 bytes big-endian `sub`. Big-endian keeps the
    /// byte order of encoded revisions equal to their numeric order (revisions are never negative),
    /// so RocksDB iterates history in revision order.
    pub const ENCODED_LEN: usize = 17;

    pub const fn new(main: i64, sub: i64) -> Self {
        Revision { main, sub }
    }

    pub fn encode(&self) -> [u8; Self::ENCODED_LEN] {
        let mut out = [0u8; Self::ENCODED_LEN];
        out[..8].copy_from_slice(&self.main.to_be_bytes());
        out[8] = b'_';
        out[9..].copy_from_slice(&self.sub.to_be_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<Revision> {
        if bytes.len() != Self::ENCODED_LEN || bytes[8] != b'_' {
            return None;
        }
        let main = i64::from_be_bytes(bytes[..8].try_into().ok()?);
        let sub = i64::from_be_bytes(bytes[9..].try_into().ok()?);
        Some(Revision { main, sub })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_round_trips_and_preserves_order() {
        let revs = [
            Revision::new(0, 0),
            Revision::new(1, 0),
            Revision::new(1, 1),
            Revision::new(2, 0),
            Revision::new(256, 3),
            Revision::new(i64::MAX, 0),
        ];
        for w in revs.windows(2) {
            assert!(w[0].encode() < w[1].encode(), "{:?} < {:?}", w[0], w[1]);
        }
        for r in revs {
            assert_eq!(Revision::decode(&r.encode()), Some(r));
        }
        assert_eq!(Revision::decode(b"short"), None);
    }
}
