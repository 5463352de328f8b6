//! Checks made on a request before it is proposed, as etcd's v3rpc layer does: they depend only on
//! the request, so a bad request is refused before it costs a revision or a Raft round.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use crate::error::{Result, StoreError};
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

/// etcd's `checkIntervals`: a key may be written at most once per execution path — no two puts of
/// one key, and no put of a key that a delete in the same path covers. The two branches of a
/// nested txn exclude each other, so they may put the same key.
///
/// Each list of operations is checked once, from what its children write: a put or a delete, or
/// a nested txn, which writes what either of its branches writes (its own branches were checked
/// one level down). Two children of one list always run together, so a key two children put is a
/// duplicate, and so is a key one child puts and another deletes — except, as in etcd, a key a
/// nested txn puts and a *later* nested txn deletes (etcd checks each nested txn's puts against
/// the deletes gathered so far, and a nested txn's deletes against nothing). That is a sort and a
/// sweep per level over keys
/// borrowed from the request: a maximal request (nested txns packed into `--max-request-bytes`,
/// some 130,000 operations sixteen levels deep) costs tens of milliseconds. Comparing every put
/// with every delete took seconds of a runtime worker; merging tree sets level by level still
/// took most of a second.
fn check_intervals(ops: &[RequestOp]) -> Result<Writes<'_>> {
    // (key, child) for each put, (start, end, child) for each non-empty deleted range.
    let mut puts: Vec<(&[u8], usize)> = Vec::new();
    let mut dels: Vec<(&[u8], Option<Bytes<'_>>, usize)> = Vec::new();
    let nested = |child: usize| matches!(ops[child], RequestOp::Txn(_));
    for (child, op) in ops.iter().enumerate() {
        match op {
            RequestOp::Put(p) => puts.push((&p.key, child)),
            RequestOp::DeleteRange(d) => {
                let end = delete_end(&d.key, &d.range_end);
                if end.as_deref().is_none_or(|e| e > d.key.as_slice()) {
                    dels.push((&d.key, end, child));
                }
            }
            RequestOp::Txn(t) => {
                let then = check_intervals(&t.success)?;
                let otherwise = check_intervals(&t.failure)?;
                puts.extend(merge_keys(then.puts, otherwise.puts).map(|k| (k, child)));
                let ranges = merge_ranges(then.dels.into_iter().chain(otherwise.dels).collect());
                dels.extend(ranges.into_iter().map(|(s, e)| (s, e, child)));
            }
            RequestOp::Range(_) => {}
        }
    }
    // A child's keys are each there once, so two equal keys are two children's.
    puts.sort_by(|a, b| a.0.cmp(b.0));
    if puts.windows(2).any(|w| w[0].0 == w[1].0) {
        return Err(StoreError::DuplicateKey);
    }
    dels.sort_by(|a, b| a.0.cmp(b.0));
    // Sweep: at each put's key, the ranges that cover it: how many in all, how many of each
    // child, and which nested txns' (by position).
    let mut open: BinaryHeap<Reverse<(&[u8], usize)>> = BinaryHeap::new();
    let mut active = vec![0usize; ops.len()];
    let mut total = 0usize;
    let mut from_nested: BTreeMap<usize, usize> = BTreeMap::new();
    let mut nested_total = 0usize;
    let mut next = 0;
    for &(key, child) in &puts {
        while let Some((start, end, owner)) = dels.get(next) {
            if *start > key {
                break;
            }
            if let Some(end) = end {
                open.push(Reverse((end.as_ref(), *owner)));
            }
            active[*owner] += 1;
            total += 1;
            if nested(*owner) {
                *from_nested.entry(*owner).or_default() += 1;
                nested_total += 1;
            }
            next += 1;
        }
        while let Some(Reverse((end, owner))) = open.peek() {
            if *end > key {
                break;
            }
            active[*owner] -= 1;
            total -= 1;
            if let Some(n) = from_nested.get_mut(owner) {
                nested_total -= 1;
                *n -= 1;
                if *n == 0 {
                    from_nested.remove(owner);
                }
            }
            open.pop();
        }
        let clash = if nested(child) {
            // A nested txn's put against the list's own deletes and earlier nested txns' ones.
            total > nested_total || from_nested.keys().next().is_some_and(|&j| j < child)
        } else {
            // The list's own put against every other child's deletes.
            total > active[child]
        };
        if clash {
            return Err(StoreError::DuplicateKey);
        }
    }
    Ok(Writes {
        puts: puts.into_iter().map(|(k, _)| k).collect(),
        dels: merge_ranges(dels.into_iter().map(|(s, e, _)| (s, e)).collect()),
    })
}

/// A key or range bound, borrowed from the request where it can be (the end of a single-key
/// delete, the key followed by a zero byte, is made).
type Bytes<'a> = Cow<'a, [u8]>;

/// What a list of operations writes: the keys it puts, sorted, each once; the ranges it deletes,
/// sorted, disjoint (start, exclusive end; `None`: unbounded).
struct Writes<'a> {
    puts: Vec<&'a [u8]>,
    dels: Vec<(&'a [u8], Option<Bytes<'a>>)>,
}

/// The exclusive end of a DeleteRange's keys, as etcd reads `key` and `range_end`.
fn delete_end<'a>(key: &[u8], range_end: &'a [u8]) -> Option<Bytes<'a>> {
    if range_end.is_empty() {
        let mut e = key.to_vec();
        e.push(0);
        Some(Cow::Owned(e))
    } else if range_end == [0] {
        None
    } else {
        Some(Cow::Borrowed(range_end))
    }
}

/// Two sorted key lists as one, each key once.
fn merge_keys<'a>(a: Vec<&'a [u8]>, b: Vec<&'a [u8]>) -> impl Iterator<Item = &'a [u8]> {
    let mut all = a;
    all.extend(b);
    // Two sorted runs: the sort merges them.
    all.sort();
    all.dedup();
    all.into_iter()
}

/// Ranges as disjoint ranges sorted by start, overlapping and touching ones joined.
fn merge_ranges<'a>(
    mut ranges: Vec<(&'a [u8], Option<Bytes<'a>>)>,
) -> Vec<(&'a [u8], Option<Bytes<'a>>)> {
    ranges.sort_by(|a, b| a.0.cmp(b.0));
    let mut merged: Vec<(&'a [u8], Option<Bytes<'a>>)> = Vec::with_capacity(ranges.len());
    for (start, end) in ranges {
        if let Some((_, last_end)) = merged.last_mut() {
            if last_end.as_deref().is_none_or(|e| start <= e) {
                if last_end.is_some()
                    && end.as_deref().is_none_or(|e| Some(e) > last_end.as_deref())
                {
                    *last_end = end;
                }
                continue;
            }
        }
        merged.push((start, end));
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::KeyRange;
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
        // As etcd: a nested txn's put and a later nested txn's delete pass; the other way not.
        let puts_a = RequestOp::Txn(txn(vec![], vec![put("a")]));
        let dels_a = RequestOp::Txn(txn(vec![del("a", "")], vec![]));
        assert_eq!(
            check_txn(&txn(vec![puts_a.clone(), dels_a.clone()], vec![]), 128),
            Ok(())
        );
        assert_eq!(
            check_txn(&txn(vec![dels_a, puts_a], vec![]), 128),
            Err(StoreError::DuplicateKey)
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

    /// The duplicate check against a naive one on random nested txns: every pair of writes that
    /// run together (no nested txn puts them in different branches) compared directly, with
    /// etcd's one exception — a put in a nested txn and a delete in a later nested txn of the
    /// same list pass.
    #[test]
    fn the_sweep_finds_what_comparing_every_pair_finds() {
        // A write and its path: at each list, its position there and, for a nested txn, the
        // branch taken (`None`: the write itself).
        type Flat = Vec<(Vec<(usize, Option<bool>)>, RequestOp)>;
        fn flatten(ops: &[RequestOp], path: &[(usize, Option<bool>)], out: &mut Flat) {
            for (i, op) in ops.iter().enumerate() {
                match op {
                    RequestOp::Txn(t) => {
                        for (branch, list) in [(true, &t.success), (false, &t.failure)] {
                            let mut p = path.to_vec();
                            p.push((i, Some(branch)));
                            flatten(list, &p, out);
                        }
                    }
                    other => {
                        let mut p = path.to_vec();
                        p.push((i, None));
                        out.push((p, other.clone()));
                    }
                }
            }
        }
        /// Where two writes part: `None` if in two branches of one nested txn (never together),
        /// else their two steps in the list where they part.
        type Step = (usize, Option<bool>);
        fn parting(a: &[Step], b: &[Step]) -> Option<(Step, Step)> {
            for (x, y) in a.iter().zip(b) {
                if x.0 != y.0 {
                    return Some((*x, *y));
                }
                if x.1 != y.1 {
                    return None;
                }
            }
            unreachable!("two writes share a path")
        }
        fn naive(ops: &[RequestOp]) -> bool {
            let mut flat = Flat::new();
            flatten(ops, &[], &mut flat);
            for (i, (pa, a)) in flat.iter().enumerate() {
                for (pb, b) in &flat[i + 1..] {
                    let Some((sa, sb)) = parting(pa, pb) else {
                        continue;
                    };
                    let clash = match (a, b) {
                        (RequestOp::Put(x), RequestOp::Put(y)) => x.key == y.key,
                        (RequestOp::Put(p), RequestOp::DeleteRange(d)) => {
                            covers(d, p) && put_meets_delete(sa, sb)
                        }
                        (RequestOp::DeleteRange(d), RequestOp::Put(p)) => {
                            covers(d, p) && put_meets_delete(sb, sa)
                        }
                        _ => false,
                    };
                    if clash {
                        return true;
                    }
                }
            }
            false
        }
        fn covers(d: &DeleteRangeRequest, p: &PutRequest) -> bool {
            KeyRange::new(&d.key, &d.range_end).contains(&p.key)
        }
        /// etcd's order: a nested txn's put meets the list's own deletes and earlier nested
        /// txns' deletes; the list's own put meets every delete.
        fn put_meets_delete(put: Step, del: Step) -> bool {
            put.1.is_none() || del.1.is_none() || del.0 < put.0
        }
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rand = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        fn gen(rand: &mut dyn FnMut(u64) -> u64, depth: usize) -> Vec<RequestOp> {
            let key = |r: u64| ((b'a' + r as u8) as char).to_string();
            (0..rand(4))
                .map(|_| match rand(if depth == 0 { 2 } else { 3 }) {
                    0 => put(&key(rand(6))),
                    1 => {
                        let s = rand(6);
                        match rand(3) {
                            0 => del(&key(s), ""),
                            1 => del(&key(s), "\0"),
                            _ => del(&key(s), &key(s + rand(3))),
                        }
                    }
                    _ => RequestOp::Txn(txn(gen(rand, depth - 1), gen(rand, depth - 1))),
                })
                .collect()
        }
        let (mut clashes, mut fine) = (0, 0);
        for _ in 0..20_000 {
            let ops = gen(&mut rand, 3);
            let expected = naive(&ops);
            let got = check_intervals(&ops).is_err();
            assert_eq!(got, expected, "{ops:?}");
            if expected {
                clashes += 1;
            } else {
                fine += 1;
            }
        }
        assert!(
            clashes > 1000 && fine > 1000,
            "{clashes} clashes, {fine} fine"
        );
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
