//! Model-based test of the store against etcd's MVCC semantics.
//!
//! Random sequences of puts, deletes, txns (with nested txns), compactions and reads are applied to
//! a real [`Store`] on RocksDB and to [`Model`], a deliberately naive model that keeps the full
//! key → value map of every revision. Every answer must agree: command outputs (txn validation
//! included), events, revisions, reads at any revision, the history from the compacted revision on
//! (`events_between`), and which records compaction left on disk. Half the cases close and reopen
//! the store at a random step, so all of that is also checked on what it restores from disk.
//!
//! etcd rules the model encodes (from etcd's `mvcc` package and `etcdserver/txn`):
//! - an empty store is at revision 1; every write txn that changes something gets one new main
//!   revision, shared by all its changes; one that changes nothing (a delete of nothing, a txn of
//!   reads) does not bump the revision;
//! - a put keeps `create_revision` and increments `version` of a live key, and starts both afresh
//!   (`create_revision` = its revision, `version` 1) for a key that does not exist;
//! - a txn's compares (nested txns' included) all see the store as it was before the txn; reads in
//!   a txn see the txn's earlier writes; a value compare on no keys fails, other targets compare
//!   against zeroes; ranges in the chosen path naming a future or compacted revision fail the whole
//!   txn before it writes;
//! - reads below the compacted revision fail with `Compacted`, above the current one with
//!   `FutureRevision`; compacting at or below the compacted revision fails, as does compacting a
//!   future revision; every change at or after the compacted revision stays in the history;
//! - `count` is the number of keys in the range before filters and limit; `more` tells whether
//!   `limit` cut the filtered result; sort order NONE with a target other than KEY means ascending,
//!   but (etcd quirk) of only the first `limit + 1` keys in key order, as etcd drops the limit
//!   before reading only for an explicit order or a revision filter; ties keep key order in both
//!   directions (Go's sort is an insertion sort at these sizes).
//!
//! `PROPTEST_CASES` overrides the number of cases (10,000 by default).

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

use mainstay_store::validate::check_txn;
use mainstay_store::{
    Command, CommandOutput, Compare, CompareResult, CompareTarget, DeleteRangeRequest,
    DeleteRangeResponse, Event, EventKind, KeyValue, PutRequest, PutResponse, RangeRequest,
    RangeResponse, RequestOp, ResponseOp, Revision, SortOrder, SortTarget, Store, StoreConfig,
    StoreError, TxnRequest, TxnResponse, SNAPSHOT_MAGIC,
};
use proptest::prelude::*;
use proptest::sample::{select, Index};
use proptest::test_runner::{TestCaseError, TestRunner};

// ---------------------------------------------------------------------------------------------
// The model.

type Kvs = BTreeMap<Vec<u8>, KeyValue>;

/// Whether `k` is in etcd's range `[key, end)`: empty `end` is the single key, `"\0"` is unbounded.
fn in_range(key: &[u8], end: &[u8], k: &[u8]) -> bool {
    if end.is_empty() {
        k == key
    } else if end == [0] {
        k >= key
    } else {
        k >= key && k < end
    }
}

fn matching<'a>(
    state: &'a Kvs,
    key: &'a [u8],
    end: &'a [u8],
) -> impl Iterator<Item = &'a KeyValue> {
    state.values().filter(move |kv| in_range(key, end, &kv.key))
}

struct Model {
    /// `states[r]`: every live key at revision `r`. Revision 1 is the empty store; 0 is unused.
    states: Vec<Kvs>,
    /// `changes[r]`: the changes made at revision `r`, in order.
    changes: Vec<Vec<Event>>,
    compacted: i64,
}

impl Model {
    fn new() -> Model {
        Model {
            states: vec![Kvs::new(), Kvs::new()],
            changes: vec![vec![], vec![]],
            compacted: 0,
        }
    }

    fn current(&self) -> i64 {
        self.states.len() as i64 - 1
    }

    fn head(&self) -> &Kvs {
        self.states.last().expect("never empty")
    }

    fn range(&self, r: &RangeRequest) -> Result<RangeResponse, StoreError> {
        let current = self.current();
        if r.revision > current {
            return Err(StoreError::FutureRevision);
        }
        let at = if r.revision <= 0 { current } else { r.revision };
        if at < self.compacted {
            return Err(StoreError::Compacted);
        }
        Ok(range_over(&self.states[at as usize], r, current))
    }

    /// Every change at main revision `from` or later.
    fn events_from(&self, from: i64) -> Vec<Event> {
        self.changes[from.max(0) as usize..].concat()
    }

    /// The revision of every record compaction must leave on disk: each change from the compacted
    /// revision on, and below it only the version of each key that a read there sees. (A change's
    /// sub-revision is its position among its revision's changes.)
    fn retained(&self) -> BTreeSet<Revision> {
        let from = self.compacted.max(1);
        let mut revs = BTreeSet::new();
        for (main, changes) in self.changes.iter().enumerate().skip(from as usize) {
            revs.extend((0..changes.len()).map(|sub| Revision::new(main as i64, sub as i64)));
        }
        for kv in self.states[from as usize].values() {
            let changes = &self.changes[kv.mod_revision as usize];
            let sub = changes.iter().rposition(|e| e.kv.key == kv.key).unwrap();
            revs.insert(Revision::new(kv.mod_revision, sub as i64));
        }
        revs
    }

    /// Applies one command: its output and the changes it made.
    fn apply(&mut self, command: &Command) -> (Result<CommandOutput, StoreError>, Vec<Event>) {
        if let Command::Compact { revision } = command {
            let out = if *revision <= self.compacted {
                Err(StoreError::Compacted)
            } else if *revision > self.current() {
                Err(StoreError::FutureRevision)
            } else {
                self.compacted = *revision;
                Ok(CommandOutput::Compact {
                    revision: self.current(),
                })
            };
            return (out, vec![]);
        }
        let mut w = Write {
            m: self,
            state: self.head().clone(),
            changes: vec![],
        };
        let out = match command {
            Command::Put(p) => Ok(CommandOutput::Put(w.put(p))),
            Command::DeleteRange(d) => Ok(CommandOutput::DeleteRange(w.delete(d))),
            Command::Txn(t) => w.top_txn(t),
            other => panic!("the model does not do {other:?}"),
        };
        let Write { state, changes, .. } = w;
        assert!(out.is_ok() || changes.is_empty(), "model: failed and wrote");
        if !changes.is_empty() {
            self.states.push(state);
            self.changes.push(changes.clone());
        }
        (out, changes)
    }
}

/// A read of `state`, answered at store revision `header`.
fn range_over(state: &Kvs, r: &RangeRequest, header: i64) -> RangeResponse {
    let count = matching(state, &r.key, &r.range_end).count() as i64;
    if r.count_only {
        return RangeResponse {
            revision: header,
            kvs: vec![],
            more: false,
            count,
        };
    }
    let passes = |v: i64, min: i64, max: i64| (min == 0 || v >= min) && (max == 0 || v <= max);
    let mut kvs: Vec<KeyValue> = matching(state, &r.key, &r.range_end)
        .filter(|kv| {
            passes(kv.mod_revision, r.min_mod_revision, r.max_mod_revision)
                && passes(
                    kv.create_revision,
                    r.min_create_revision,
                    r.max_create_revision,
                )
        })
        .cloned()
        .collect();
    // etcd reads every key only to sort explicitly or to filter; otherwise it reads `limit + 1` keys
    // in key order, and then still sorts just those when the target is not the key (etcd's
    // `executeRange`: the limit is dropped for `sort_order != NONE`, the order defaulted after).
    let fetch_all = r.sort_order != SortOrder::None
        || r.min_mod_revision != 0
        || r.max_mod_revision != 0
        || r.min_create_revision != 0
        || r.max_create_revision != 0;
    if !fetch_all && r.limit > 0 {
        kvs.truncate(r.limit as usize + 1);
    }
    let order = match (r.sort_order, r.sort_target) {
        (SortOrder::None, SortTarget::Key) => SortOrder::None,
        (SortOrder::None, _) => SortOrder::Ascend,
        (order, _) => order,
    };
    let by = |a: &KeyValue, b: &KeyValue| -> Ordering {
        match r.sort_target {
            SortTarget::Key => a.key.cmp(&b.key),
            SortTarget::Version => a.version.cmp(&b.version),
            SortTarget::Create => a.create_revision.cmp(&b.create_revision),
            SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
            SortTarget::Value => a.value.cmp(&b.value),
        }
    };
    // `kvs` is in key order; stable sorts keep that order among ties.
    match order {
        SortOrder::None => {}
        SortOrder::Ascend => kvs.sort_by(by),
        SortOrder::Descend => kvs.sort_by(|a, b| by(b, a)),
    }
    let more = r.limit > 0 && kvs.len() as i64 > r.limit;
    if more {
        kvs.truncate(r.limit as usize);
    }
    if r.keys_only {
        for kv in &mut kvs {
            kv.value.clear();
        }
    }
    RangeResponse {
        revision: header,
        kvs,
        more,
        count,
    }
}

fn compare_holds(state: &Kvs, c: &Compare) -> bool {
    let kvs: Vec<&KeyValue> = matching(state, &c.key, &c.range_end).collect();
    let holds = |kv: &KeyValue| {
        let ord = match &c.target {
            CompareTarget::Version(v) => kv.version.cmp(v),
            CompareTarget::CreateRevision(v) => kv.create_revision.cmp(v),
            CompareTarget::ModRevision(v) => kv.mod_revision.cmp(v),
            CompareTarget::Lease(v) => kv.lease.cmp(v),
            CompareTarget::Value(v) => kv.value.cmp(v),
        };
        match c.result {
            CompareResult::Equal => ord.is_eq(),
            CompareResult::NotEqual => ord.is_ne(),
            CompareResult::Greater => ord.is_gt(),
            CompareResult::Less => ord.is_lt(),
        }
    };
    if kvs.is_empty() {
        !matches!(c.target, CompareTarget::Value(_)) && holds(&KeyValue::default())
    } else {
        kvs.into_iter().all(holds)
    }
}

/// Which branch every txn of a request takes (etcd's `txnPath`), decided before the request writes.
struct Branches {
    succeeded: bool,
    nested: Vec<Branches>,
}

/// One write command being applied to the model.
struct Write<'a> {
    m: &'a Model,
    state: Kvs,
    changes: Vec<Event>,
}

impl Write<'_> {
    fn begin(&self) -> i64 {
        self.m.current()
    }

    fn rev(&self) -> i64 {
        self.begin() + 1
    }

    /// The revision this command's reads see, and the one it reports.
    fn read_rev(&self) -> i64 {
        if self.changes.is_empty() {
            self.begin()
        } else {
            self.rev()
        }
    }

    fn put(&mut self, p: &PutRequest) -> PutResponse {
        let prev = self.state.get(&p.key).cloned();
        let kv = KeyValue {
            key: p.key.clone(),
            create_revision: prev.as_ref().map_or(self.rev(), |kv| kv.create_revision),
            mod_revision: self.rev(),
            version: prev.as_ref().map_or(1, |kv| kv.version + 1),
            value: p.value.clone(),
            lease: 0,
        };
        self.state.insert(p.key.clone(), kv.clone());
        self.changes.push(Event {
            kind: EventKind::Put,
            kv,
            prev_kv: None,
        });
        PutResponse {
            revision: self.rev(),
            prev_kv: prev.filter(|_| p.prev_kv),
        }
    }

    fn delete(&mut self, d: &DeleteRangeRequest) -> DeleteRangeResponse {
        let keys: Vec<Vec<u8>> = matching(&self.state, &d.key, &d.range_end)
            .map(|kv| kv.key.clone())
            .collect();
        let mut prev_kvs = vec![];
        for key in &keys {
            let prev = self.state.remove(key).expect("listed above");
            if d.prev_kv {
                prev_kvs.push(prev);
            }
            let tombstone = KeyValue {
                key: key.clone(),
                mod_revision: self.rev(),
                ..Default::default()
            };
            self.changes.push(Event {
                kind: EventKind::Delete,
                kv: tombstone,
                prev_kv: None,
            });
        }
        DeleteRangeResponse {
            revision: self.read_rev(),
            deleted: keys.len() as i64,
            prev_kvs,
        }
    }

    fn range(&self, r: &RangeRequest) -> RangeResponse {
        let state = if r.revision > 0 {
            &self.m.states[r.revision as usize]
        } else {
            &self.state
        };
        range_over(state, r, self.read_rev())
    }

    fn path(&self, t: &TxnRequest) -> Branches {
        let succeeded = t.compare.iter().all(|c| compare_holds(self.m.head(), c));
        let ops = if succeeded { &t.success } else { &t.failure };
        let nested = ops
            .iter()
            .filter_map(|op| match op {
                RequestOp::Txn(inner) => Some(self.path(inner)),
                _ => None,
            })
            .collect();
        Branches { succeeded, nested }
    }

    /// etcd's `checkTxn`: each range of the chosen path must be readable before the txn begins.
    fn check(&self, t: &TxnRequest, path: &Branches) -> Result<(), StoreError> {
        let ops = if path.succeeded {
            &t.success
        } else {
            &t.failure
        };
        let mut nested = path.nested.iter();
        for op in ops {
            match op {
                RequestOp::Range(r) if r.revision > self.begin() => {
                    return Err(StoreError::FutureRevision)
                }
                RequestOp::Range(r) if r.revision > 0 && r.revision < self.m.compacted => {
                    return Err(StoreError::Compacted)
                }
                RequestOp::Txn(inner) => self.check(inner, nested.next().unwrap())?,
                _ => {}
            }
        }
        Ok(())
    }

    fn txn(&mut self, t: &TxnRequest, path: &Branches) -> TxnResponse {
        let ops = if path.succeeded {
            &t.success
        } else {
            &t.failure
        };
        let mut nested = path.nested.iter();
        let responses = ops
            .iter()
            .map(|op| match op {
                RequestOp::Range(r) => ResponseOp::Range(self.range(r)),
                RequestOp::Put(p) => ResponseOp::Put(self.put(p)),
                RequestOp::DeleteRange(d) => ResponseOp::DeleteRange(self.delete(d)),
                RequestOp::Txn(inner) => ResponseOp::Txn(self.txn(inner, nested.next().unwrap())),
            })
            .collect();
        TxnResponse {
            revision: 0,
            succeeded: path.succeeded,
            responses,
        }
    }

    fn top_txn(&mut self, t: &TxnRequest) -> Result<CommandOutput, StoreError> {
        let path = self.path(t);
        self.check(t, &path)?;
        let mut resp = self.txn(t, &path);
        resp.revision = self.read_rev();
        Ok(CommandOutput::Txn(resp))
    }
}

type Intervals = (BTreeSet<Vec<u8>>, Vec<(Vec<u8>, Vec<u8>)>);

/// etcd's `checkIntervals` (v3rpc/key.go): no key put twice, nor put and deleted, on one level; a
/// nested txn's puts against this level's (and earlier nested txns') deletes and puts, its two
/// branches being exclusive. Returns the keys put and the ranges deleted. A `"\0"` range end is
/// the unbounded range here, as everywhere else in etcd (etcd's own check misses it:
/// etcd-io/etcd#22445).
fn check_intervals(ops: &[RequestOp]) -> Result<Intervals, ()> {
    let mut dels: Vec<(Vec<u8>, Vec<u8>)> = ops
        .iter()
        .filter_map(|op| match op {
            RequestOp::DeleteRange(d) => Some((d.key.clone(), d.range_end.clone())),
            _ => None,
        })
        .collect();
    let deleted =
        |dels: &[(Vec<u8>, Vec<u8>)], k: &[u8]| dels.iter().any(|(s, e)| in_range(s, e, k));
    let mut puts = BTreeSet::new();
    for op in ops {
        let RequestOp::Txn(t) = op else { continue };
        let (puts_then, dels_then) = check_intervals(&t.success)?;
        let (puts_else, dels_else) = check_intervals(&t.failure)?;
        for k in &puts_then {
            if puts.contains(k) || deleted(&dels, k) {
                return Err(());
            }
            puts.insert(k.clone());
        }
        for k in &puts_else {
            if (puts.contains(k) && !puts_then.contains(k)) || deleted(&dels, k) {
                return Err(());
            }
            puts.insert(k.clone());
        }
        dels.extend(dels_then);
        dels.extend(dels_else);
    }
    for op in ops {
        let RequestOp::Put(p) = op else { continue };
        if puts.contains(&p.key) || deleted(&dels, &p.key) {
            return Err(());
        }
        puts.insert(p.key.clone());
    }
    Ok((puts, dels))
}

fn model_accepts(t: &TxnRequest) -> bool {
    check_intervals(&t.success).is_ok() && check_intervals(&t.failure).is_ok()
}

// ---------------------------------------------------------------------------------------------
// Generation. Revision-valued fields are generated as selectors (0: none / head) and resolved
// against the model just before use, so they hit interesting revisions whatever the history.

const KEYS: [&[u8]; 9] = [b"a", b"ab", b"abc", b"b", b"ba", b"c", b"d", b"e", b"f"];
/// Range bounds: the keys and some points between and around them.
const POINTS: [&[u8]; 13] = [
    b"\0", b"a", b"aa", b"ab", b"abc", b"b", b"ba", b"bb", b"c", b"d", b"e", b"f", b"g",
];
const VALUES: [&[u8]; 5] = [b"", b"x", b"xy", b"y", b"z"];

/// etcd's prefix range end; no key here ends in 0xff.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    *end.last_mut().expect("non-empty") += 1;
    end
}

fn key() -> impl Strategy<Value = Vec<u8>> {
    select(&KEYS[..]).prop_map(<[u8]>::to_vec)
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    select(&VALUES[..]).prop_map(<[u8]>::to_vec)
}

/// A key and a range end: single key, from-key (`"\0"`), prefix, or `[key, end)` (maybe empty),
/// with weights for those four kinds.
fn key_range(weights: [u32; 4]) -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
    let [single, from, prefix, between] = weights;
    let kind = prop_oneof![
        single => Just(0u8),
        from => Just(1u8),
        prefix => Just(2u8),
        between => Just(3u8),
    ];
    (select(&POINTS[..]), kind, select(&POINTS[..])).prop_map(|(key, kind, other)| {
        let end = match kind {
            0 => vec![],
            1 => vec![0],
            2 => prefix_end(key),
            _ => other.to_vec(),
        };
        (key.to_vec(), end)
    })
}

/// Reads and compares look at wide ranges; deletes mostly at single keys, so keys accumulate.
const READ_RANGES: [u32; 4] = [2, 2, 2, 2];
const DELETE_RANGES: [u32; 4] = [5, 1, 1, 2];

fn rev_selector() -> impl Strategy<Value = i64> {
    prop_oneof![2 => Just(0i64), 3 => 1..100_000i64]
}

fn filter_selector() -> impl Strategy<Value = i64> {
    prop_oneof![14 => Just(0i64), 1 => 1..100_000i64]
}

fn put_req() -> impl Strategy<Value = PutRequest> {
    (key(), value(), any::<bool>()).prop_map(|(key, value, prev_kv)| PutRequest {
        key,
        value,
        prev_kv,
        ..Default::default()
    })
}

fn delete_req() -> impl Strategy<Value = DeleteRangeRequest> {
    (key_range(DELETE_RANGES), any::<bool>()).prop_map(|((key, range_end), prev_kv)| {
        DeleteRangeRequest {
            key,
            range_end,
            prev_kv,
        }
    })
}

fn range_req() -> impl Strategy<Value = RangeRequest> {
    let order = select(&[SortOrder::None, SortOrder::Ascend, SortOrder::Descend][..]);
    let target = select(
        &[
            SortTarget::Key,
            SortTarget::Version,
            SortTarget::Create,
            SortTarget::Mod,
            SortTarget::Value,
        ][..],
    );
    let limit = prop_oneof![Just(0i64), 1..4i64];
    let filters = (
        filter_selector(),
        filter_selector(),
        filter_selector(),
        filter_selector(),
    );
    (
        key_range(READ_RANGES),
        limit,
        rev_selector(),
        (order, target),
        prop::bool::weighted(0.2),
        prop::bool::weighted(0.12),
        filters,
    )
        .prop_map(
            |(
                (key, range_end),
                limit,
                revision,
                (sort_order, sort_target),
                keys_only,
                count_only,
                f,
            )| {
                RangeRequest {
                    key,
                    range_end,
                    limit,
                    revision,
                    sort_order,
                    sort_target,
                    keys_only,
                    count_only,
                    min_mod_revision: f.0,
                    max_mod_revision: f.1,
                    min_create_revision: f.2,
                    max_create_revision: f.3,
                }
            },
        )
}

fn compare() -> impl Strategy<Value = Compare> {
    let result = select(
        &[
            CompareResult::Equal,
            CompareResult::Greater,
            CompareResult::Less,
            CompareResult::NotEqual,
        ][..],
    );
    (
        key_range(READ_RANGES),
        result,
        0..4u8,
        0..100_000i64,
        value(),
    )
        .prop_map(|((key, range_end), result, target, n, value)| Compare {
            key,
            range_end,
            result,
            target: match target {
                0 => CompareTarget::Version(n % 4),
                1 => CompareTarget::CreateRevision(n),
                2 => CompareTarget::ModRevision(n),
                _ => CompareTarget::Value(value),
            },
        })
}

fn leaf_op() -> impl Strategy<Value = RequestOp> {
    prop_oneof![
        range_req().prop_map(RequestOp::Range),
        put_req().prop_map(RequestOp::Put),
        delete_req().prop_map(RequestOp::DeleteRange),
    ]
}

/// A txn; with `nest`, its ops may (rarely) include one level of nested txns.
fn txn_req(nest: bool) -> BoxedStrategy<TxnRequest> {
    let op = if nest {
        prop_oneof![12 => leaf_op(), 1 => txn_req(false).prop_map(RequestOp::Txn)].boxed()
    } else {
        leaf_op().boxed()
    };
    (
        prop::collection::vec(compare(), 0..3),
        prop::collection::vec(op.clone(), 0..4),
        prop::collection::vec(op, 0..3),
    )
        .prop_map(|(compare, success, failure)| TxnRequest {
            compare,
            success,
            failure,
        })
        .boxed()
}

#[derive(Clone, Debug)]
enum Step {
    Put(PutRequest),
    Delete(DeleteRangeRequest),
    Txn(TxnRequest),
    /// Compaction at a revision chosen by the selector.
    Compact(i64),
    Range(RangeRequest),
    /// Ends the current `apply` batch (reads end it too).
    Flush,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        10 => put_req().prop_map(Step::Put),
        2 => delete_req().prop_map(Step::Delete),
        5 => txn_req(true).prop_map(Step::Txn),
        2 => (0..100_000i64).prop_map(Step::Compact),
        5 => range_req().prop_map(Step::Range),
        2 => Just(Step::Flush),
    ]
}

/// A read revision: the head, the current or a future one, around the compacted one, or any.
fn resolve_rev(sel: i64, m: &Model) -> i64 {
    let (current, compacted) = (m.current(), m.compacted);
    match sel % 6 {
        _ if sel == 0 => 0,
        0 => current,
        1 => current + 1,
        2 => compacted,
        3 => (compacted - 1).max(0),
        _ => 1 + (sel / 6) % (current + 1),
    }
}

/// A compaction revision, never below 1: at or below the compacted one, the current one, a future
/// one, or any. (etcd starts with compacted revision -1, so it would accept compacting at 0 once.)
fn resolve_compact(sel: i64, m: &Model) -> i64 {
    let (current, compacted) = (m.current(), m.compacted);
    let rev = match sel % 6 {
        0 => compacted,
        1 => compacted - 1,
        2 => current + 1,
        3 => current,
        _ => 1 + (sel / 6) % current,
    };
    rev.max(1)
}

/// A revision to compare a key's create or mod revision with: often one some key has now.
fn resolve_compare_rev(sel: i64, m: &Model, create: bool) -> i64 {
    if sel % 3 == 0 && !m.head().is_empty() {
        let kv = m
            .head()
            .values()
            .nth((sel / 3) as usize % m.head().len())
            .unwrap();
        if create {
            kv.create_revision
        } else {
            kv.mod_revision
        }
    } else {
        (sel / 3) % (m.current() + 2)
    }
}

fn resolve_range(r: &mut RangeRequest, m: &Model) {
    r.revision = resolve_rev(r.revision, m);
    for f in [
        &mut r.min_mod_revision,
        &mut r.max_mod_revision,
        &mut r.min_create_revision,
        &mut r.max_create_revision,
    ] {
        *f = resolve_rev(*f, m);
    }
}

fn resolve_txn(t: &mut TxnRequest, m: &Model) {
    for c in &mut t.compare {
        match &mut c.target {
            CompareTarget::CreateRevision(v) => *v = resolve_compare_rev(*v, m, true),
            CompareTarget::ModRevision(v) => *v = resolve_compare_rev(*v, m, false),
            _ => {}
        }
    }
    for op in t.success.iter_mut().chain(&mut t.failure) {
        match op {
            RequestOp::Range(r) => resolve_range(r, m),
            RequestOp::Txn(inner) => resolve_txn(inner, m),
            _ => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Running a case.

fn open(dir: &Path) -> Store {
    let config = StoreConfig {
        sync_writes: false,
        ..Default::default()
    };
    Store::open(dir, config).expect("open store")
}

struct Case {
    /// Declared before `dir`: the store must close before its directory is removed.
    store: Option<Store>,
    dir: tempfile::TempDir,
    model: Model,
    /// Commands of the `apply` batch being built, with what the model expects of each.
    batch: Vec<Command>,
    outputs: Vec<Result<CommandOutput, StoreError>>,
    events: Vec<Event>,
    applied_index: u64,
}

impl Case {
    fn new() -> Case {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Some(open(dir.path()));
        Case {
            store,
            dir,
            model: Model::new(),
            batch: vec![],
            outputs: vec![],
            events: vec![],
            applied_index: 0,
        }
    }

    fn store(&self) -> &Store {
        self.store.as_ref().expect("open")
    }

    fn queue(&mut self, command: Command) {
        let (out, events) = self.model.apply(&command);
        self.batch.push(command);
        self.outputs.push(out);
        self.events.extend(events);
    }

    fn flush(&mut self) -> Result<(), TestCaseError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        self.applied_index += 1;
        let applied = self.store().apply(self.applied_index, &self.batch);
        let batch = std::mem::take(&mut self.batch);
        prop_assert_eq!(
            &applied.outputs,
            &std::mem::take(&mut self.outputs),
            "outputs of {:?}",
            batch
        );
        prop_assert_eq!(
            &applied.events,
            &std::mem::take(&mut self.events),
            "events of {:?}",
            batch
        );
        prop_assert_eq!(applied.revision, self.model.current());
        prop_assert_eq!(applied.compact_revision, self.model.compacted);
        Ok(())
    }

    fn step(&mut self, step: &Step) -> Result<(), TestCaseError> {
        match step {
            Step::Put(p) => self.queue(Command::Put(p.clone())),
            Step::Delete(d) => self.queue(Command::DeleteRange(d.clone())),
            Step::Txn(t) => {
                let mut t = t.clone();
                resolve_txn(&mut t, &self.model);
                let verdict = check_txn(&t, 128);
                prop_assert_eq!(
                    verdict.is_ok(),
                    model_accepts(&t),
                    "validation of {:?}: {:?}",
                    t,
                    verdict
                );
                match verdict {
                    Ok(()) => self.queue(Command::Txn(t)),
                    Err(e) => prop_assert_eq!(e, StoreError::DuplicateKey),
                }
            }
            Step::Compact(sel) => {
                let revision = resolve_compact(*sel, &self.model);
                self.queue(Command::Compact { revision });
            }
            Step::Range(r) => {
                self.flush()?;
                let mut r = r.clone();
                resolve_range(&mut r, &self.model);
                prop_assert_eq!(self.store().range(&r), self.model.range(&r), "{:?}", r);
            }
            Step::Flush => self.flush()?,
        }
        Ok(())
    }

    fn reopen(&mut self) -> Result<(), TestCaseError> {
        self.flush()?;
        drop(self.store.take());
        self.store = Some(open(self.dir.path()));
        prop_assert_eq!(self.store().applied_index(), self.applied_index);
        self.check_all()
    }

    /// Every retained revision reads as in the model, older and newer ones fail, and the history
    /// from the compacted revision on is every change made since.
    fn check_all(&self) -> Result<(), TestCaseError> {
        let (store, m) = (self.store(), &self.model);
        let (current, compacted) = (m.current(), m.compacted);
        prop_assert_eq!(store.current_revision(), current);
        prop_assert_eq!(store.compact_revision(), compacted);
        let all = |revision: i64| RangeRequest {
            key: vec![0],
            range_end: vec![0],
            revision,
            ..Default::default()
        };
        for rev in (compacted - 1).max(1)..=current + 1 {
            prop_assert_eq!(store.range(&all(rev)), m.range(&all(rev)), "at {}", rev);
        }

        let expected = m.events_from(compacted);
        let all_events = store.events_between(compacted, current, usize::MAX);
        prop_assert_eq!(all_events, Ok((expected.clone(), current)));
        // The same, a few revisions at a time.
        let page = (current % 3 + 1) as usize;
        let (mut from, mut paged) = (compacted, vec![]);
        while from <= current {
            let (events, upto) = store.events_between(from, current, page).unwrap();
            prop_assert!(upto >= from && upto <= current, "{from}..{upto}");
            paged.extend(events);
            from = upto + 1;
        }
        prop_assert_eq!(paged, expected);
        if compacted > 0 {
            prop_assert_eq!(
                store.events_between(compacted - 1, current, usize::MAX),
                Err(StoreError::Compacted)
            );
        }
        // Compaction removed exactly what no read and no history needs: a leftover record would
        // make the hash of this replica differ from one that never restarted.
        prop_assert_eq!(stored_revisions(store), m.retained());
        Ok(())
    }
}

/// Runs `steps`, closing and reopening the store before step `reopen_at` (after the last one if it
/// is `steps.len()`), then checks everything the store retained.
/// The revisions of the records in the store's `kv` column family, read from a snapshot (format:
/// `Store::write_snapshot`; `kv` is the first column family, number 0).
fn stored_revisions(store: &Store) -> BTreeSet<Revision> {
    let mut bytes = vec![];
    store
        .write_snapshot(1 << 20, |chunk| {
            bytes.extend(chunk);
            true
        })
        .expect("snapshot");
    let mut rest = bytes.strip_prefix(SNAPSHOT_MAGIC).expect("magic");
    let field = |rest: &mut &[u8]| {
        let (len, tail) = rest.split_at(4);
        let (field, tail) = tail.split_at(u32::from_be_bytes(len.try_into().unwrap()) as usize);
        *rest = tail;
        field.to_vec()
    };
    let mut revs = BTreeSet::new();
    loop {
        let (&cf, tail) = rest.split_first().expect("end byte");
        rest = tail;
        if cf == 0xff {
            assert!(rest.is_empty(), "bytes after the end of a snapshot");
            return revs;
        }
        let key = field(&mut rest);
        let _value = field(&mut rest);
        if cf == 0 {
            revs.insert(Revision::decode(&key).expect("kv keys are revisions"));
        }
    }
}

fn run(steps: &[Step], reopen_at: Option<usize>) -> Result<(), TestCaseError> {
    let mut case = Case::new();
    for (i, step) in steps.iter().enumerate() {
        if reopen_at == Some(i) {
            case.reopen()?;
        }
        case.step(step)?;
    }
    if reopen_at == Some(steps.len()) {
        case.reopen()?;
    }
    case.flush()?;
    case.check_all()
}

/// Runners working at once. A case's time is mostly RocksDB opening (about 10 ms however it is
/// done), syncing and closing files, so cases run side by side on separate runners, each with its
/// own random stream; every case still has its own store.
const RUNNERS: u32 = 4;

/// Share of cases that close and reopen their store midway (at a random step): a second open costs
/// as much as the rest of a case.
const REOPEN_SHARE: f64 = 0.5;

#[test]
fn store_matches_model() {
    let total: u32 = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let failed = AtomicBool::new(false);
    std::thread::scope(|scope| {
        for i in 0..RUNNERS {
            let failed = &failed;
            let cases = total / RUNNERS + u32::from(i < total % RUNNERS);
            scope.spawn(move || {
                let config = ProptestConfig {
                    cases,
                    source_file: Some(file!()),
                    ..ProptestConfig::default()
                };
                let strategy = (
                    prop::collection::vec(step(), 1..40),
                    prop::option::weighted(REOPEN_SHARE, any::<Index>()),
                );
                let result = TestRunner::new(config).run(&strategy, |(steps, reopen_at)| {
                    if failed.load(Relaxed) {
                        // Another runner found a failure: finish quickly so it is reported.
                        return Ok(());
                    }
                    run(&steps, reopen_at.map(|i| i.index(steps.len() + 1)))
                });
                if let Err(e) = result {
                    failed.store(true, Relaxed);
                    panic!("runner {i}: {e}");
                }
            });
        }
    });
}
