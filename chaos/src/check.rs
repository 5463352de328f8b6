//! The checks a chaos run's record must pass. Each returns a [`Finding`]: what was checked, how
//! many items, and the violations (the first few spelled out).
//!
//! The client record is checked twice for linearizability. Per key, by the testkit's Wing–Gong
//! search, which knows nothing of revisions. And across keys, the way etcd's semantics allow: the
//! store's revision order is the only candidate order. Every write the store applied sits at its
//! revision, every successful read at the revision its response header names (after that
//! revision's write); each read must have returned exactly the state the history has at its
//! revision, and no call that returned before another began may be ordered after it. A write whose
//! outcome the client never learned (`Unknown`) is placed only if the history holds its unique
//! value, and then constrains nothing by its return.

use std::collections::{BTreeMap, HashMap, HashSet};

use mainstay_testkit::history::{Op, Outcome, Record};
use mainstay_testkit::lincheck;
use mainstay_testkit::watchcheck::{check_watch, Change};
use serde::Serialize;

/// How many violations a finding spells out (the count covers all).
const SHOWN: usize = 8;

/// The result of one check.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub name: &'static str,
    /// How many items the check looked at.
    pub checked: usize,
    pub violations: usize,
    /// The first few violations, in words.
    pub examples: Vec<String>,
}

impl Finding {
    pub(crate) fn new(name: &'static str) -> Self {
        Self {
            name,
            checked: 0,
            violations: 0,
            examples: Vec::new(),
        }
    }

    pub(crate) fn violation(&mut self, what: String) {
        self.violations += 1;
        if self.examples.len() < SHOWN {
            self.examples.push(what);
        }
    }

    pub fn passed(&self) -> bool {
        self.violations == 0
    }
}

/// One member's state after the run, once the cluster has settled.
#[derive(Debug, Clone, Serialize)]
pub struct MemberFinal {
    pub name: String,
    /// `Err` when the member could not be asked.
    pub answer: Result<MemberAnswer, String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MemberAnswer {
    pub revision: i64,
    pub hash_kv: u32,
    pub compact_revision: i64,
    /// The workload's keys on this member at `revision`: key → value.
    pub state: BTreeMap<String, String>,
}

/// What one watch stream delivered, across its reconnections.
#[derive(Debug, Clone)]
pub struct WatchLog {
    pub watcher: usize,
    pub start_revision: i64,
    pub seen: Vec<Change>,
}

/// Every check, in report order. `history` holds the workload's changes from revision 1 to
/// `end_revision`, the revision every member settled on.
pub fn check_all(
    records: &[Record],
    history: &[Change],
    end_revision: i64,
    watches: &[WatchLog],
    members: &[MemberFinal],
) -> Vec<Finding> {
    let model = Model::new(history);
    let (attribution, made_once) = attribute(records, history);
    vec![
        history_ordered(history),
        acknowledged_writes(records, history),
        made_once,
        per_key_linearizable(records),
        revision_order(records, history, &attribution, &model),
        client_revisions(records),
        watch_streams(watches, history, end_revision),
        members_converged(members, &model),
    ]
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The history's revisions strictly increase (every workload call touches one key, so one
/// revision holds at most one of its changes).
fn history_ordered(history: &[Change]) -> Finding {
    let mut f = Finding::new("store history is in strictly increasing revision order");
    f.checked = history.len();
    for pair in history.windows(2) {
        if pair[1].revision <= pair[0].revision {
            f.violation(format!(
                "revision {} follows revision {}",
                pair[1].revision, pair[0].revision
            ));
        }
    }
    f
}

/// The state of every key at every revision, from the history.
struct Model {
    /// key → (revision, value or None for deleted), revision ascending.
    keys: HashMap<String, Vec<(i64, Option<String>)>>,
}

impl Model {
    fn new(history: &[Change]) -> Self {
        let mut keys: HashMap<String, Vec<(i64, Option<String>)>> = HashMap::new();
        for c in history {
            keys.entry(text(&c.key))
                .or_default()
                .push((c.revision, c.value.as_deref().map(text)));
        }
        for versions in keys.values_mut() {
            versions.sort_by_key(|(rev, _)| *rev);
        }
        Self { keys }
    }

    /// The key's value at `revision` (after that revision's change).
    fn at(&self, key: &str, revision: i64) -> Option<String> {
        let versions = self.keys.get(key)?;
        let i = versions.partition_point(|(rev, _)| *rev <= revision);
        versions.get(i.checked_sub(1)?)?.1.clone()
    }

    /// Every key's final value.
    fn last(&self) -> BTreeMap<String, String> {
        self.keys
            .keys()
            .filter_map(|k| Some((k.clone(), self.at(k, i64::MAX)?)))
            .collect()
    }
}

/// The value a call writes (unique to it: client and sequence number).
fn written(op: &Op) -> Option<&str> {
    match op {
        Op::Put { value, .. } => Some(value),
        Op::Cas { new, .. } => Some(new),
        Op::Get { .. } => None,
    }
}

/// The revision of an acknowledged write.
fn acknowledged_at(r: &Record) -> Option<i64> {
    match r.outcome {
        Outcome::Put | Outcome::Cas(true) => r.revision,
        _ => None,
    }
}

/// Every acknowledged write is in the history at the revision it was acknowledged with.
fn acknowledged_writes(records: &[Record], history: &[Change]) -> Finding {
    let mut f = Finding::new("no acknowledged write is lost");
    let by_rev: HashMap<i64, &Change> = history.iter().map(|c| (c.revision, c)).collect();
    for (i, r) in records.iter().enumerate() {
        let Some(rev) = acknowledged_at(r) else {
            continue;
        };
        f.checked += 1;
        let value = written(&r.op).map(str::as_bytes);
        match by_rev.get(&rev) {
            Some(c) if c.key == r.op.key().as_bytes() && c.value.as_deref() == value => {}
            Some(c) => f.violation(format!(
                "{} was acknowledged at revision {rev}, where the history has {} = {:?}",
                lincheck::describe(i, r),
                text(&c.key),
                c.value.as_deref().map(text)
            )),
            None => f.violation(format!(
                "{} was acknowledged at revision {rev}, which the history lacks: lost",
                lincheck::describe(i, r)
            )),
        }
    }
    f
}

/// Which call made each history change (by index), and the finding that every change was made
/// exactly once by a call that could have made it.
fn attribute(records: &[Record], history: &[Change]) -> (Vec<Option<usize>>, Finding) {
    let mut f =
        Finding::new("every change in the history was made once, by a call that may have made it");
    f.checked = history.len();
    let by_value: HashMap<&str, usize> = records
        .iter()
        .enumerate()
        .filter_map(|(i, r)| Some((written(&r.op)?, i)))
        .collect();
    let mut used: HashSet<usize> = HashSet::new();
    let mut attribution = Vec::with_capacity(history.len());
    for c in history {
        let key = text(&c.key);
        let Some(value) = c.value.as_deref().map(text) else {
            f.violation(format!(
                "revision {} deleted {key}, and the workload deletes nothing",
                c.revision
            ));
            attribution.push(None);
            continue;
        };
        let Some(&i) = by_value.get(value.as_str()) else {
            f.violation(format!(
                "revision {} wrote {key} = {value:?}, a value no call wrote",
                c.revision
            ));
            attribution.push(None);
            continue;
        };
        let r = &records[i];
        let fits = r.op.key() == key
            && match r.outcome {
                Outcome::Put | Outcome::Cas(true) => r.revision == Some(c.revision),
                Outcome::Unknown => true,
                _ => false,
            };
        if !fits {
            f.violation(format!(
                "revision {} wrote {key} = {value:?}, but the call was {}",
                c.revision,
                lincheck::describe(i, r)
            ));
        }
        if !used.insert(i) {
            f.violation(format!(
                "{} took effect twice (again at revision {})",
                lincheck::describe(i, r),
                c.revision
            ));
        }
        attribution.push(Some(i));
    }
    (attribution, f)
}

/// Per key, some order of the calls consistent with real time explains every answer.
fn per_key_linearizable(records: &[Record]) -> Finding {
    let mut f = Finding::new("per-key linearizability (Wing–Gong search)");
    f.checked = records.len();
    if let Err(v) = lincheck::check(records) {
        f.violation(v.to_string());
    }
    f
}

/// A call at its place in revision order: (revision, 0 for the write at it / 1 for reads of it),
/// call time, return time (None: the client never learned the outcome), record index.
type Placed = ((i64, u8), u64, Option<u64>, usize);

/// Reads see the state at their revision; revision order respects real time.
fn revision_order(
    records: &[Record],
    history: &[Change],
    attribution: &[Option<usize>],
    model: &Model,
) -> Finding {
    let mut f = Finding::new(
        "across keys: reads see the state at their revision, and revision order respects real time",
    );
    let mut placed: Vec<Placed> = Vec::new();
    for (c, found) in history.iter().zip(attribution) {
        if let Some(&i) = found.as_ref() {
            let r = &records[i];
            let ret = matches!(r.outcome, Outcome::Put | Outcome::Cas(true))
                .then_some(r.return_ns)
                .flatten();
            placed.push(((c.revision, 0), r.call_ns, ret, i));
        }
    }
    for (i, r) in records.iter().enumerate() {
        let Some(rev) = r.revision else {
            continue;
        };
        let key = r.op.key();
        let now = model.at(key, rev);
        let read = match (&r.op, &r.outcome) {
            (Op::Get { .. }, Outcome::Get(seen)) => {
                if *seen != now {
                    f.violation(format!(
                        "{} at revision {rev}, where the history has {now:?}",
                        lincheck::describe(i, r)
                    ));
                }
                true
            }
            (Op::Cas { expected, .. }, Outcome::Cas(false)) => {
                if *expected == now {
                    f.violation(format!(
                        "{} at revision {rev}, where the history has the expected {now:?}",
                        lincheck::describe(i, r)
                    ));
                }
                true
            }
            (Op::Cas { expected, .. }, Outcome::Cas(true)) => {
                let before = model.at(key, rev - 1);
                if *expected != before {
                    f.violation(format!(
                        "{} at revision {rev}, but before it the history has {before:?}",
                        lincheck::describe(i, r)
                    ));
                }
                false
            }
            _ => false,
        };
        if read {
            placed.push(((rev, 1), r.call_ns, r.return_ns, i));
        }
    }
    f.checked = placed.len();
    placed.sort_by_key(|p| p.0);
    // In revision order, keep the latest call time of any call ordered strictly earlier: a call
    // that returned before it is ordered after a call that had not yet begun.
    let mut earlier_max: Option<(u64, usize, i64)> = None;
    let mut start = 0;
    while start < placed.len() {
        let pos = placed[start].0;
        let end = placed[start..]
            .iter()
            .position(|p| p.0 != pos)
            .map_or(placed.len(), |n| start + n);
        for &(_, _, ret, i) in &placed[start..end] {
            if let (Some(ret), Some((call, j, jrev))) = (ret, earlier_max) {
                if ret < call {
                    f.violation(format!(
                        "{} is at revision {}, after {} at revision {jrev}, which began only \
                         after it returned",
                        lincheck::describe(i, &records[i]),
                        pos.0,
                        lincheck::describe(j, &records[j]),
                    ));
                }
            }
        }
        for &(p, call, _, i) in &placed[start..end] {
            if earlier_max.is_none_or(|(m, _, _)| call > m) {
                earlier_max = Some((call, i, p.0));
            }
        }
        start = end;
    }
    f
}

/// Each client's successive answers carry revisions that never go backwards.
fn client_revisions(records: &[Record]) -> Finding {
    let mut f = Finding::new("no client sees revisions go backwards");
    f.checked = records.iter().filter(|r| r.revision.is_some()).count();
    if let Err(e) = lincheck::check_revisions_monotonic(records) {
        f.violation(e);
    }
    f
}

/// Every watch stream delivered exactly the history's changes from its start revision to the
/// end, in order, without gaps or repeats.
fn watch_streams(watches: &[WatchLog], history: &[Change], end_revision: i64) -> Finding {
    let mut f = Finding::new("watch streams are ordered and gap-free against the history");
    for w in watches {
        f.checked += w.seen.len();
        if let Err(e) = check_watch(&w.seen, history, w.start_revision, Some(end_revision)) {
            f.violation(format!("watcher {}: {e}", w.watcher));
        }
    }
    f
}

/// All members answer with the same revision, the same HashKV, and the history's final state.
fn members_converged(members: &[MemberFinal], model: &Model) -> Finding {
    let mut f = Finding::new("members converge: same revision, equal HashKV, the history's state");
    f.checked = members.len();
    let expected = model.last();
    let mut first: Option<(&str, &MemberAnswer)> = None;
    for m in members {
        let a = match &m.answer {
            Ok(a) => a,
            Err(e) => {
                f.violation(format!("{} did not answer: {e}", m.name));
                continue;
            }
        };
        if a.state != expected {
            let differing = expected
                .iter()
                .find(|(k, v)| a.state.get(*k) != Some(*v))
                .map(|(k, v)| format!("{k}: history {v:?}, member {:?}", a.state.get(k)))
                .or_else(|| {
                    a.state
                        .iter()
                        .find(|(k, _)| !expected.contains_key(*k))
                        .map(|(k, v)| format!("{k}: not in the history, member {v:?}"))
                })
                .unwrap_or_default();
            f.violation(format!(
                "{}'s keys differ from the history ({differing})",
                m.name
            ));
        }
        match first {
            None => first = Some((&m.name, a)),
            Some((name, b)) => {
                if (a.revision, a.hash_kv, a.compact_revision)
                    != (b.revision, b.hash_kv, b.compact_revision)
                {
                    f.violation(format!(
                        "{} has revision {} HashKV {} (compacted {}); {name} has revision {} \
                         HashKV {} (compacted {})",
                        m.name,
                        a.revision,
                        a.hash_kv,
                        a.compact_revision,
                        b.revision,
                        b.hash_kv,
                        b.compact_revision
                    ));
                }
            }
        }
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(
        client: usize,
        op: Op,
        call_ns: u64,
        return_ns: Option<u64>,
        outcome: Outcome,
        revision: Option<i64>,
    ) -> Record {
        Record {
            client,
            op,
            call_ns,
            return_ns,
            outcome,
            revision,
        }
    }

    fn put(key: &str, value: &str) -> Op {
        Op::Put {
            key: key.into(),
            value: value.into(),
        }
    }

    fn get(key: &str) -> Op {
        Op::Get { key: key.into() }
    }

    fn cas(key: &str, expected: Option<&str>, new: &str) -> Op {
        Op::Cas {
            key: key.into(),
            expected: expected.map(str::to_string),
            new: new.into(),
        }
    }

    fn got(value: Option<&str>) -> Outcome {
        Outcome::Get(value.map(str::to_string))
    }

    fn change(revision: i64, key: &str, value: &str) -> Change {
        Change {
            revision,
            key: key.as_bytes().to_vec(),
            value: Some(value.as_bytes().to_vec()),
        }
    }

    fn failing(findings: &[Finding]) -> Vec<&'static str> {
        findings
            .iter()
            .filter(|f| !f.passed())
            .map(|f| f.name)
            .collect()
    }

    fn member(name: &str, revision: i64, hash: u32, state: &[(&str, &str)]) -> MemberFinal {
        MemberFinal {
            name: name.into(),
            answer: Ok(MemberAnswer {
                revision,
                hash_kv: hash,
                compact_revision: 0,
                state: state
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            }),
        }
    }

    const LINEARIZABLE: &str = "per-key linearizability (Wing–Gong search)";
    const REVISION_ORDER: &str =
        "across keys: reads see the state at their revision, and revision order respects real time";

    struct Run {
        records: Vec<Record>,
        history: Vec<Change>,
        watches: Vec<WatchLog>,
        members: Vec<MemberFinal>,
    }

    impl Run {
        fn check(&self) -> Vec<Finding> {
            check_all(
                &self.records,
                &self.history,
                7,
                &self.watches,
                &self.members,
            )
        }
    }

    /// A correct run: two writers, a reader, a CAS each way, an unknown write that landed and
    /// one that did not, a failed read, a watcher that saw everything.
    fn good_run() -> Run {
        let records = vec![
            rec(0, put("a", "v1"), 0, Some(10), Outcome::Put, Some(2)),
            rec(1, get("a"), 5, Some(12), got(Some("v1")), Some(2)),
            rec(1, put("b", "v2"), 13, Some(20), Outcome::Put, Some(3)),
            rec(
                0,
                cas("a", Some("v1"), "v3"),
                21,
                Some(30),
                Outcome::Cas(true),
                Some(4),
            ),
            rec(
                1,
                cas("a", Some("v1"), "v4"),
                31,
                Some(40),
                Outcome::Cas(false),
                Some(4),
            ),
            // Timed out, but landed at revision 5.
            rec(0, put("b", "v5"), 41, None, Outcome::Unknown, None),
            // Timed out and never landed.
            rec(1, put("b", "v6"), 42, None, Outcome::Unknown, None),
            rec(2, get("c"), 43, Some(44), Outcome::Failed, None),
            rec(2, get("b"), 101, Some(110), got(Some("v5")), Some(5)),
            rec(2, get("c"), 111, Some(120), got(None), Some(6)),
        ];
        let history = vec![
            change(2, "a", "v1"),
            change(3, "b", "v2"),
            change(4, "a", "v3"),
            change(5, "b", "v5"),
        ];
        let watches = vec![WatchLog {
            watcher: 0,
            start_revision: 2,
            seen: history.clone(),
        }];
        let state = [("a", "v3"), ("b", "v5")];
        let members = vec![member("m1", 7, 9, &state), member("m2", 7, 9, &state)];
        Run {
            records,
            history,
            watches,
            members,
        }
    }

    #[test]
    fn a_correct_run_passes_every_check() {
        let findings = good_run().check();
        assert!(failing(&findings).is_empty(), "{findings:#?}");
        assert!(findings.iter().all(|f| f.checked > 0), "{findings:#?}");
    }

    #[test]
    fn a_lost_acknowledged_write_is_found() {
        let mut run = good_run();
        run.history.remove(1); // b = v2 at revision 3, acknowledged, gone
        run.watches[0].seen = run.history.clone();
        assert_eq!(failing(&run.check()), vec!["no acknowledged write is lost"]);
    }

    #[test]
    fn a_stale_read_is_found_by_both_linearizability_checks() {
        let mut run = good_run();
        // Reads a's old value after the CAS that replaced it had returned.
        run.records
            .push(rec(3, get("a"), 50, Some(60), got(Some("v1")), Some(4)));
        assert_eq!(failing(&run.check()), vec![LINEARIZABLE, REVISION_ORDER]);
    }

    #[test]
    fn a_read_that_misses_an_unknown_write_the_history_holds_is_found() {
        let mut run = good_run();
        // Per key this could be fine (the unknown write might never have landed), but the
        // history has it at revision 5, the revision the read claims.
        run.records[8].outcome = got(Some("v2"));
        assert_eq!(failing(&run.check()), vec![REVISION_ORDER]);
    }

    #[test]
    fn an_order_across_keys_against_real_time_is_found() {
        let mut run = good_run();
        // A read of a at revision 2 that began after the write of b at revision 3 returned:
        // per key it is fine (a still held v1), across keys it is not.
        run.records
            .push(rec(3, get("a"), 21, Some(22), got(Some("v1")), Some(2)));
        assert_eq!(failing(&run.check()), vec![REVISION_ORDER]);
    }

    #[test]
    fn an_unknown_write_that_landed_still_respects_its_call_time() {
        let mut run = good_run();
        // The write that landed at revision 5 was called after the read at revision 6 returned.
        run.records[5].call_ns = 125;
        run.records.remove(8);
        assert_eq!(failing(&run.check()), vec![REVISION_ORDER]);
    }

    #[test]
    fn a_write_applied_twice_or_never_asked_for_is_found() {
        let mut run = good_run();
        run.history.push(change(6, "b", "v5")); // the unknown write, again
        run.history.push(change(7, "c", "nobody"));
        let findings = check_all(&run.records, &run.history, 7, &[], &[]);
        let made_once = findings
            .iter()
            .find(|f| f.name.starts_with("every change"))
            .unwrap();
        assert_eq!(made_once.violations, 2, "{made_once:#?}");
    }

    #[test]
    fn a_failed_cas_that_should_have_succeeded_is_found() {
        let mut run = good_run();
        run.records[4].op = cas("a", Some("v3"), "v4");
        assert_eq!(failing(&run.check()), vec![LINEARIZABLE, REVISION_ORDER]);
    }

    #[test]
    fn a_client_seeing_revisions_go_backwards_is_found() {
        let mut run = good_run();
        run.records
            .push(rec(9, get("b"), 140, Some(150), got(Some("v5")), Some(6)));
        run.records
            .push(rec(9, get("a"), 151, Some(160), got(Some("v3")), Some(4)));
        assert_eq!(
            failing(&run.check()),
            vec![REVISION_ORDER, "no client sees revisions go backwards"]
        );
    }

    #[test]
    fn watch_gaps_repeats_disorder_and_stalls_are_found() {
        let run = good_run();
        let mut gap = run.history.clone();
        gap.remove(2);
        let mut repeat = run.history.clone();
        repeat.insert(3, run.history[2].clone());
        let mut disorder = run.history.clone();
        disorder.swap(1, 2);
        let stalled = run.history[..3].to_vec();
        for seen in [gap, repeat, disorder, stalled] {
            let mut run = good_run();
            run.watches[0].seen = seen.clone();
            assert_eq!(
                failing(&run.check()),
                vec!["watch streams are ordered and gap-free against the history"],
                "{seen:?}"
            );
        }
    }

    #[test]
    fn diverged_members_are_found() {
        let state = [("a", "v3"), ("b", "v5")];
        for members in [
            vec![member("m1", 7, 9, &state), member("m2", 7, 8, &state)],
            vec![member("m1", 7, 9, &state), member("m2", 6, 9, &state)],
            vec![member("m1", 7, 9, &state), member("m2", 7, 9, &state[..1])],
            vec![
                member("m1", 7, 9, &state),
                MemberFinal {
                    name: "m3".into(),
                    answer: Err("unreachable".into()),
                },
            ],
        ] {
            let mut run = good_run();
            run.members = members;
            assert_eq!(
                failing(&run.check()),
                vec!["members converge: same revision, equal HashKV, the history's state"]
            );
        }
    }
}
