//! Checks made on a request before it is proposed, as etcd's v3rpc layer does: they depend only on
//! the request, so a bad request is refused before it costs a revision or a Raft round.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use crate::error::{Result, StoreError};
use crate::kv::KeyRange;
use crate::mvcc::MAX_LEASE_TTL_SECS;
use crate::request::{
    Command, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
};

pub fn check_range(r: &RangeRequest) -> Result<()> {
    if r.key.is_empty() {
        return Err(StoreError::EmptyKey);
    }
    Ok(())
}

pub fn check_put(r: &PutRequest) -> Result<()> {
    if r.key.is_empty() {
        return Err(StoreError::EmptyKey);
    }
    if r.ignore_value && !r.value.is_empty() {
        return Err(StoreError::ValueProvided);
    }
    if r.ignore_lease && r.lease != 0 {
        return Err(StoreError::LeaseProvided);
    }
    Ok(())
}

pub fn check_delete_range(r: &DeleteRangeRequest) -> Result<()> {
    if r.key.is_empty() {
        return Err(StoreError::EmptyKey);
    }
    Ok(())
}

/// The checks a client's request gets, for a command that arrives already built: one forwarded by
/// another member to the leader is checked again there, exactly as the member that took it from
/// the client checked it, so no peer can propose what no client could.
pub fn check_command(command: &Command, max_txn_ops: usize) -> Result<()> {
    match command {
        Command::Put(r) => check_put(r),
        Command::DeleteRange(r) => check_delete_range(r),
        Command::Txn(t) => check_txn(t, max_txn_ops),
        Command::LeaseGrant { ttl_secs, .. } if *ttl_secs > MAX_LEASE_TTL_SECS => {
            Err(StoreError::LeaseTtlTooLarge)
        }
        Command::Compact { .. }
        | Command::LeaseGrant { .. }
        | Command::LeaseRevoke { .. }
        | Command::LeaseCheckpoint { .. }
        | Command::AlarmActivate(_)
        | Command::AlarmDeactivate(_) => Ok(()),
    }
}

/// etcd's `checkTxnRequest` followed by its duplicate-key check of both branches.
pub fn check_txn(r: &TxnRequest, max_txn_ops: usize) -> Result<()> {
    check_txn_shape(r, max_txn_ops)?;
    check_intervals(&r.success)?;
    check_intervals(&r.failure)?;
    Ok(())
}

fn check_txn_shape(r: &TxnRequest, max_txn_ops: usize) -> Result<()> {
    let ops = r.compare.len().max(r.success.len()).max(r.failure.len());
    if ops > max_txn_ops {
        return Err(StoreError::TooManyOps);
    }
    if r.compare.iter().any(|c| c.key.is_empty()) {
        return Err(StoreError::EmptyKey);
    }
    for op in r.success.iter().chain(&r.failure) {
        match op {
            RequestOp::Range(r) => check_range(r)?,
            RequestOp::Put(r) => check_put(r)?,
            RequestOp::DeleteRange(r) => check_delete_range(r)?,
            // etcd hands nested txns what is left of the budget.
            RequestOp::Txn(t) => check_txn_shape(t, max_txn_ops - ops)?,
        }
    }
    Ok(())
}

/// A key may be written at most once per execution path: no two puts of one key, and no put of a
/// key that a delete in the same path covers. The two branches of a nested txn exclude each other,
/// so they may put the same key. Returns the keys put and the ranges deleted by `ops`.
///
/// Near-linear in the number of operations, nested ones included (as etcd's interval tree): the
/// deleted ranges are kept merged and sorted, each comparison walks the smaller of two sets, and a
/// nested txn's sets are merged into the larger side. A maximal request (nested txns packed into
/// `--max-request-bytes`) holds about a hundred thousand operations; comparing every put with every
/// delete took seconds of a runtime worker's time.
fn check_intervals(ops: &[RequestOp]) -> Result<(BTreeSet<Vec<u8>>, Intervals)> {
    let mut dels = Intervals::default();
    for op in ops {
        if let RequestOp::DeleteRange(d) = op {
            dels.insert(KeyRange::new(&d.key, &d.range_end));
        }
    }
    let mut puts = BTreeSet::new();
    for op in ops {
        let RequestOp::Txn(t) = op else { continue };
        let (puts_then, dels_then) = check_intervals(&t.success)?;
        let (puts_else, dels_else) = check_intervals(&t.failure)?;
        // A key put by both branches of the nested txn is fine; a key the outer level already puts
        // or deletes is not, whichever branch puts it.
        for nested in [&puts_then, &puts_else] {
            if intersect(&puts, nested) || dels.covers_any(nested) {
                return Err(StoreError::DuplicateKey);
            }
        }
        union_into(&mut puts, puts_then);
        union_into(&mut puts, puts_else);
        dels.absorb(dels_then);
        dels.absorb(dels_else);
    }
    for op in ops {
        let RequestOp::Put(p) = op else { continue };
        if puts.contains(&p.key) || dels.contains(&p.key) {
            return Err(StoreError::DuplicateKey);
        }
        puts.insert(p.key.clone());
    }
    Ok((puts, dels))
}

/// Whether two sets share a key, walking the smaller one.
fn intersect(a: &BTreeSet<Vec<u8>>, b: &BTreeSet<Vec<u8>>) -> bool {
    let (small, large) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    small.iter().any(|k| large.contains(k))
}

/// `into ∪= from`, inserting the smaller set into the larger one.
fn union_into(into: &mut BTreeSet<Vec<u8>>, mut from: BTreeSet<Vec<u8>>) {
    if into.len() < from.len() {
        std::mem::swap(into, &mut from);
    }
    into.extend(from);
}

/// A union of key ranges, kept as disjoint intervals sorted by start: start -> exclusive end
/// (`None`: unbounded).
#[derive(Default, Debug)]
struct Intervals {
    by_start: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl Intervals {
    fn len(&self) -> usize {
        self.by_start.len()
    }

    fn contains(&self, k: &[u8]) -> bool {
        self.by_start
            .range::<[u8], _>((Bound::Unbounded, Bound::Included(k)))
            .next_back()
            .is_some_and(|(_, end)| end.as_deref().is_none_or(|e| k < e))
    }

    /// Whether any of `keys` lies in one of the intervals, walking the smaller side.
    fn covers_any(&self, keys: &BTreeSet<Vec<u8>>) -> bool {
        if keys.len() <= self.len() {
            return keys.iter().any(|k| self.contains(k));
        }
        self.by_start.iter().any(|(start, end)| {
            let upper = match end {
                Some(e) => Bound::Excluded(e.as_slice()),
                None => Bound::Unbounded,
            };
            keys.range::<[u8], _>((Bound::Included(start.as_slice()), upper))
                .next()
                .is_some()
        })
    }

    fn insert(&mut self, range: KeyRange) {
        let mut start = range.start().to_vec();
        let mut end = range.end();
        if end.as_deref().is_some_and(|e| e <= start.as_slice()) {
            return; // a range ending at or before its start holds no key
        }
        // The interval that begins at or before `start` and reaches it, if any, is merged in.
        if let Some((s, e)) = self
            .by_start
            .range::<[u8], _>((Bound::Unbounded, Bound::Included(start.as_slice())))
            .next_back()
        {
            if e.as_deref().is_none_or(|e| e >= start.as_slice()) {
                start = s.clone();
                end = max_end(end, e.clone());
            }
        }
        // Then every interval that begins inside the new one.
        loop {
            let next = self
                .by_start
                .range::<[u8], _>((Bound::Included(start.as_slice()), Bound::Unbounded))
                .next()
                .map(|(s, e)| (s.clone(), e.clone()));
            let Some((s, e)) = next else { break };
            if end.as_deref().is_some_and(|end| s.as_slice() > end) {
                break;
            }
            self.by_start.remove(&s);
            end = max_end(end, e);
        }
        self.by_start.insert(start, end);
    }

    /// `self ∪= other`, inserting the smaller side's intervals into the larger.
    fn absorb(&mut self, mut other: Intervals) {
        if self.len() < other.len() {
            std::mem::swap(self, &mut other);
        }
        for (start, end) in other.by_start {
            let range = match end {
                Some(e) => KeyRange::Between(start, e),
                None => KeyRange::From(start),
            };
            self.insert(range);
        }
    }
}

fn max_end(a: Option<Vec<u8>>, b: Option<Vec<u8>>) -> Option<Vec<u8>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{Compare, CompareResult, CompareTarget};

    fn put(k: &str) -> RequestOp {
        RequestOp::Put(PutRequest {
            key: k.into(),
            value: b"v".to_vec(),
            ..Default::default()
        })
    }
    fn del(k: &str, end: &str) -> RequestOp {
        RequestOp::DeleteRange(DeleteRangeRequest {
            key: k.into(),
            range_end: end.into(),
            prev_kv: false,
        })
    }
    fn txn(success: Vec<RequestOp>, failure: Vec<RequestOp>) -> TxnRequest {
        TxnRequest {
            compare: vec![],
            success,
            failure,
        }
    }

    #[test]
    fn duplicate_keys() {
        assert_eq!(
            check_txn(&txn(vec![put("a"), put("a")], vec![]), 128),
            Err(StoreError::DuplicateKey)
        );
        assert_eq!(
            check_txn(&txn(vec![put("a"), del("a", "")], vec![]), 128),
            Err(StoreError::DuplicateKey)
        );
        assert_eq!(
            check_txn(&txn(vec![del("a", "z"), put("m")], vec![]), 128),
            Err(StoreError::DuplicateKey)
        );
        assert_eq!(
            check_txn(&txn(vec![del("a", "\0"), put("zzz")], vec![]), 128),
            Err(StoreError::DuplicateKey)
        );
        // Same key in both branches, and overlapping deletes, are fine.
        assert_eq!(check_txn(&txn(vec![put("a")], vec![put("a")]), 128), Ok(()));
        assert_eq!(
            check_txn(
                &txn(vec![del("a", "c"), del("b", "d"), put("d")], vec![]),
                128
            ),
            Ok(())
        );
        // Nested: the two branches of one nested txn may share a key, but not with the outer level.
        let nested = RequestOp::Txn(txn(vec![put("x")], vec![put("x")]));
        assert_eq!(check_txn(&txn(vec![nested.clone()], vec![]), 128), Ok(()));
        assert_eq!(
            check_txn(&txn(vec![nested.clone(), put("x")], vec![]), 128),
            Err(StoreError::DuplicateKey)
        );
        let nested_del = RequestOp::Txn(txn(vec![del("x", "")], vec![]));
        assert_eq!(
            check_txn(&txn(vec![nested_del, put("x")], vec![]), 128),
            Err(StoreError::DuplicateKey)
        );
    }

    proptest::proptest! {
        /// The merged intervals answer `contains` exactly as the plain list of ranges does.
        #[test]
        fn intervals_match_the_list_of_ranges(
            ranges in proptest::collection::vec((0u8..12, 0u8..14), 0..12),
            probes in proptest::collection::vec(0u8..14, 1..20),
        ) {
            // end 12 stands for an empty range_end (one key), 13 for "\0" (every key from start).
            let as_range = |(s, e): (u8, u8)| match e {
                12 => KeyRange::Single(vec![b'a' + s]),
                13 => KeyRange::From(vec![b'a' + s]),
                e => KeyRange::Between(vec![b'a' + s], vec![b'a' + e]),
            };
            let list: Vec<KeyRange> = ranges.iter().copied().map(as_range).collect();
            let mut merged = Intervals::default();
            for r in &list {
                merged.insert(r.clone());
            }
            for p in probes {
                for k in [vec![b'a' + p], vec![b'a' + p, 0], vec![b'a' + p, b'z']] {
                    proptest::prop_assert_eq!(merged.contains(&k), list.iter().any(|r| r.contains(&k)));
                    let one: BTreeSet<Vec<u8>> = [k.clone()].into();
                    proptest::prop_assert_eq!(merged.covers_any(&one), merged.contains(&k));
                }
            }
            let keys: BTreeSet<Vec<u8>> = (0..14u8).map(|c| vec![b'a' + c]).collect();
            let naive = keys.iter().any(|k| list.iter().any(|r| r.contains(k)));
            proptest::prop_assert_eq!(merged.covers_any(&keys), naive);
        }
    }

    /// A request as large as etcd lets through: a nested txn spends only its own level's ops of
    /// the budget, so two nested txns per level, sixteen levels deep, fit in 128 ops a level and
    /// hold 131,072 puts and deletes (about 2.5 MB, near `--max-request-bytes`'s reach). Checked
    /// with every put compared against every delete, it took seconds of a runtime worker.
    #[test]
    fn a_maximal_nested_txn_is_checked_without_comparing_every_pair() {
        fn tree(prefix: &str, depth: usize) -> TxnRequest {
            if depth == 0 {
                return txn(
                    vec![put(&format!("{prefix}p")), del(&format!("{prefix}d"), "")],
                    vec![],
                );
            }
            let branch = |b: char| RequestOp::Txn(tree(&format!("{prefix}{b}"), depth - 1));
            txn(vec![branch('0'), branch('1')], vec![])
        }
        let top = tree("", 16);
        assert_eq!(check_txn(&top, 128), Ok(()));
        // A put at the top that one innermost delete covers is still found.
        let mut dup = top.clone();
        dup.success.push(put("0110100111010011d"));
        assert_eq!(check_txn(&dup, 128), Err(StoreError::DuplicateKey));
    }

    #[test]
    fn forwarded_commands_are_checked_as_requests_are() {
        let dup = Command::Txn(txn(vec![put("a"), put("a")], vec![]));
        assert_eq!(check_command(&dup, 128), Err(StoreError::DuplicateKey));
        let empty = Command::Put(PutRequest::default());
        assert_eq!(check_command(&empty, 128), Err(StoreError::EmptyKey));
        let forever = Command::LeaseGrant {
            id: 1,
            ttl_secs: MAX_LEASE_TTL_SECS + 1,
        };
        assert_eq!(
            check_command(&forever, 128),
            Err(StoreError::LeaseTtlTooLarge)
        );
        let fine = Command::Txn(txn(vec![put("a"), del("b", "")], vec![put("a")]));
        assert_eq!(check_command(&fine, 128), Ok(()));
    }

    #[test]
    fn shape() {
        let many: Vec<RequestOp> = (0..129).map(|i| put(&format!("k{i}"))).collect();
        assert_eq!(
            check_txn(&txn(many.clone(), vec![]), 128),
            Err(StoreError::TooManyOps)
        );
        assert_eq!(check_txn(&txn(many, vec![]), 129), Ok(()));
        assert_eq!(
            check_txn(&txn(vec![put("")], vec![]), 128),
            Err(StoreError::EmptyKey)
        );
        let cmp = Compare {
            key: vec![],
            range_end: vec![],
            result: CompareResult::Equal,
            target: CompareTarget::Version(0),
        };
        let t = TxnRequest {
            compare: vec![cmp],
            success: vec![],
            failure: vec![],
        };
        assert_eq!(check_txn(&t, 128), Err(StoreError::EmptyKey));
        let bad_put = PutRequest {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            ignore_value: true,
            ..Default::default()
        };
        assert_eq!(check_put(&bad_put), Err(StoreError::ValueProvided));
    }
}
