//! The store's domain types for keys, values and change events.

/// One version of a key, as etcd's `mvccpb.KeyValue`.
#[derive(Clone, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct KeyValue {
    pub key: Vec<u8>,
    /// Revision of the last creation of this key (reset by a delete).
    pub create_revision: i64,
    /// Revision of the last modification of this key.
    pub mod_revision: i64,
    /// Number of modifications since the last creation; 1 right after creation.
    pub version: i64,
    pub value: Vec<u8>,
    /// Lease the key is attached to, 0 for none.
    pub lease: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum EventKind {
    Put,
    Delete,
}

/// A change to one key. For `Delete`, `kv` carries only the key and the deleting revision, as in etcd.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Event {
    pub kind: EventKind,
    pub kv: KeyValue,
    pub prev_kv: Option<KeyValue>,
}

/// A key range in etcd's convention: an empty `range_end` means the single key `key`, a `range_end`
/// of `"\0"` means every key `>= key`, anything else means `[key, range_end)`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum KeyRange {
    Single(Vec<u8>),
    From(Vec<u8>),
    Between(Vec<u8>, Vec<u8>),
}

impl KeyRange {
    pub fn new(key: &[u8], range_end: &[u8]) -> KeyRange {
        if range_end.is_empty() {
            KeyRange::Single(key.to_vec())
        } else if range_end == [0] {
            KeyRange::From(key.to_vec())
        } else {
            KeyRange::Between(key.to_vec(), range_end.to_vec())
        }
    }

    pub fn contains(&self, k: &[u8]) -> bool {
        match self {
            KeyRange::Single(key) => k == key.as_slice(),
            KeyRange::From(key) => k >= key.as_slice(),
            KeyRange::Between(key, end) => k >= key.as_slice() && k < end.as_slice(),
        }
    }

    pub fn start(&self) -> &[u8] {
        match self {
            KeyRange::Single(k) | KeyRange::From(k) | KeyRange::Between(k, _) => k,
        }
    }

    /// Exclusive end, `None` for unbounded.
    pub fn end(&self) -> Option<Vec<u8>> {
        match self {
            KeyRange::Single(k) => {
                let mut e = k.clone();
                e.push(0);
                Some(e)
            }
            KeyRange::From(_) => None,
            KeyRange::Between(_, e) => Some(e.clone()),
        }
    }

    /// Whether two ranges share at least one key.
    pub fn intersects(&self, other: &KeyRange) -> bool {
        let (a0, a1) = (self.start(), self.end());
        let (b0, b1) = (other.start(), other.end());
        let a_before_b_end = b1.as_deref().is_none_or(|e| a0 < e);
        let b_before_a_end = a1.as_deref().is_none_or(|e| b0 < e);
        a_before_b_end && b_before_a_end
    }
}

/// The smallest key greater than every key with this prefix, as etcd's `GetPrefixRangeEnd`:
/// increment the last byte below 0xff, dropping trailing 0xff bytes; `"\0"` (every key) if none.
pub fn prefix_range_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_range_follows_etcd_conventions() {
        let single = KeyRange::new(b"a", b"");
        assert!(single.contains(b"a") && !single.contains(b"a\0") && !single.contains(b""));
        let from = KeyRange::new(b"b", b"\0");
        assert!(from.contains(b"b") && from.contains(b"zzz") && !from.contains(b"a"));
        let between = KeyRange::new(b"b", b"d");
        assert!(between.contains(b"c") && !between.contains(b"d") && !between.contains(b"a"));
        let inverted = KeyRange::new(b"d", b"b");
        assert!(!inverted.contains(b"c") && !inverted.contains(b"d"));
    }

    #[test]
    fn intersection() {
        let r = |k: &[u8], e: &[u8]| KeyRange::new(k, e);
        assert!(r(b"a", b"c").intersects(&r(b"b", b"")));
        assert!(!r(b"a", b"c").intersects(&r(b"c", b"")));
        assert!(r(b"a", b"\0").intersects(&r(b"zz", b"")));
        assert!(!r(b"b", b"\0").intersects(&r(b"a", b"")));
        assert!(r(b"a", b"b").intersects(&r(b"a", b"")));
    }

    #[test]
    fn prefix_end() {
        assert_eq!(prefix_range_end(b"abc"), b"abd");
        assert_eq!(prefix_range_end(b"a\xff"), b"b");
        assert_eq!(prefix_range_end(b"\xff\xff"), b"\0");
    }
}
