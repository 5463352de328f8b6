//! Tests of the linearizability checker: hand-written histories with known answers, randomized
//! histories linearizable by construction (and mutated to be impossible), a cross-check against
//! a brute-force checker on tiny random histories, and a history of the size cluster tests record.

use super::*;
use crate::history::{Op, Outcome, Record};

fn record(client: usize, op: Op, call_ns: u64, return_ns: Option<u64>, outcome: Outcome) -> Record {
    Record {
        client,
        op,
        call_ns,
        return_ns,
        outcome,
        revision: None,
    }
}

fn get(client: usize, key: &str, value: Option<&str>, call_ns: u64, return_ns: u64) -> Record {
    record(
        client,
        Op::Get { key: key.into() },
        call_ns,
        Some(return_ns),
        Outcome::Get(value.map(String::from)),
    )
}

fn put_op(key: &str, value: &str) -> Op {
    Op::Put {
        key: key.into(),
        value: value.into(),
    }
}

fn cas_op(key: &str, expected: Option<&str>, new: &str) -> Op {
    Op::Cas {
        key: key.into(),
        expected: expected.map(String::from),
        new: new.into(),
    }
}

fn put(client: usize, key: &str, value: &str, call_ns: u64, return_ns: u64) -> Record {
    record(
        client,
        put_op(key, value),
        call_ns,
        Some(return_ns),
        Outcome::Put,
    )
}

fn cas(
    client: usize,
    key: &str,
    expected: Option<&str>,
    new: &str,
    swapped: bool,
    call_ns: u64,
    return_ns: u64,
) -> Record {
    record(
        client,
        cas_op(key, expected, new),
        call_ns,
        Some(return_ns),
        Outcome::Cas(swapped),
    )
}

fn unknown_put(client: usize, key: &str, value: &str, call_ns: u64) -> Record {
    record(client, put_op(key, value), call_ns, None, Outcome::Unknown)
}

fn unknown_cas(
    client: usize,
    key: &str,
    expected: Option<&str>,
    new: &str,
    call_ns: u64,
) -> Record {
    record(
        client,
        cas_op(key, expected, new),
        call_ns,
        None,
        Outcome::Unknown,
    )
}

fn failed_put(client: usize, key: &str, value: &str, call_ns: u64, return_ns: u64) -> Record {
    record(
        client,
        put_op(key, value),
        call_ns,
        Some(return_ns),
        Outcome::Failed,
    )
}

/// `check` without the prechecks: the search alone.
fn search_only(records: &[Record]) -> Result<(), Violation> {
    let mut by_key: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (index, record) in records.iter().enumerate() {
        by_key.entry(record.op.key()).or_default().push(index);
    }
    for (key, indexes) in by_key {
        check_key_with(records, &indexes, &CheckConfig::default(), Prechecks::Skip).map_err(
            |detail| Violation {
                key: key.to_string(),
                detail,
            },
        )?;
    }
    Ok(())
}

fn assert_linearizable(records: &[Record]) {
    if let Err(violation) = check(records) {
        panic!("expected linearizable, got: {violation}");
    }
    if let Err(violation) = search_only(records) {
        panic!("expected linearizable without prechecks, got: {violation}");
    }
}

/// Both `check` and the search alone find a violation; returns `check`'s, then the search's.
fn assert_violations(records: &[Record]) -> (Violation, Violation) {
    let violation = check(records).expect_err("expected a violation");
    assert!(
        !violation.detail.starts_with("undecided"),
        "expected a proof, got: {violation}"
    );
    let searched = search_only(records).expect_err("expected the search to find a violation");
    assert!(
        searched.detail.starts_with("no linearization exists"),
        "expected a refutation by the search, got: {searched}"
    );
    assert_eq!(violation.key, searched.key);
    (violation, searched)
}

fn assert_violation(records: &[Record]) -> Violation {
    assert_violations(records).0
}

// ---- hand-written histories ----

#[test]
fn empty_history_is_linearizable() {
    assert_linearizable(&[]);
}

#[test]
fn sequential_register_is_linearizable() {
    assert_linearizable(&[
        get(0, "k", None, 0, 10),
        put(0, "k", "a", 20, 30),
        get(1, "k", Some("a"), 40, 50),
        put(1, "k", "b", 60, 70),
        get(0, "k", Some("b"), 80, 90),
    ]);
}

#[test]
fn stale_read_after_completed_write_is_a_violation() {
    let (violation, searched) = assert_violations(&[
        put(0, "k", "a", 0, 10),
        put(1, "k", "b", 20, 30),
        get(2, "k", Some("a"), 40, 50),
    ]);
    assert_eq!(violation.key, "k");
    assert_eq!(
        violation.detail,
        "record #2 client 2: get -> Some(\"a\") [call 40 ns, return 50 ns] observed \"a\", which \
         was overwritten for good before it was called: it was written by record #0 client 0: put \
         \"a\" -> ok [call 0 ns, return 10 ns], then record #1 client 1: put \"b\" -> ok [call 20 \
         ns, return 30 ns] was called after that returned, and returned before this call"
    );
    let detail = &searched.detail;
    assert!(detail.starts_with("no linearization exists"), "{detail}");
    // The report names the stuck operation with its client, outcome and times, and the register.
    // "b" must take effect before the read is called, and would hide "a" from it for good.
    assert!(detail.contains("orders 1 of the key's 3"), "{detail}");
    assert!(detail.contains("the register holds \"a\""), "{detail}");
    assert!(
        detail.contains(
            "record #1 client 1: put \"b\" -> ok [call 20 ns, return 30 ns] (would overwrite \
             \"a\" for good, but it is still needed by record #2 client 2: get -> Some(\"a\") \
             [call 40 ns, return 50 ns])"
        ),
        "{detail}"
    );
    assert!(
        detail.contains("record #0 client 0: put \"a\" -> ok [call 0 ns, return 10 ns]"),
        "{detail}"
    );
}

#[test]
fn read_of_absent_after_completed_write_is_a_violation() {
    assert_violation(&[put(0, "k", "a", 0, 10), get(1, "k", None, 20, 30)]);
}

#[test]
fn concurrent_overlapping_operations_are_linearizable() {
    // A long write, with reads during it that see the old and then the new value.
    assert_linearizable(&[
        put(0, "k", "a", 0, 100),
        get(1, "k", None, 5, 30),
        get(2, "k", Some("a"), 10, 20),
        get(1, "k", Some("a"), 40, 50),
    ]);
    // Two concurrent writes may take effect in either order.
    assert_linearizable(&[
        put(0, "k", "a", 0, 10),
        put(1, "k", "b", 0, 10),
        get(2, "k", Some("a"), 20, 30),
    ]);
    assert_linearizable(&[
        put(0, "k", "a", 0, 10),
        put(1, "k", "b", 0, 10),
        get(2, "k", Some("b"), 20, 30),
    ]);
}

#[test]
fn new_then_old_read_during_a_write_is_a_violation() {
    // Once a read returned the new value, a later read cannot return the old one.
    assert_violation(&[
        put(0, "k", "a", 0, 100),
        get(1, "k", Some("a"), 10, 20),
        get(2, "k", None, 30, 40),
    ]);
}

#[test]
fn lost_write_is_a_violation() {
    // Both writes were acknowledged, yet reads alternate between them with no write in between.
    assert_violation(&[
        put(0, "k", "a", 0, 10),
        put(1, "k", "b", 0, 10),
        get(2, "k", Some("a"), 20, 30),
        get(2, "k", Some("b"), 40, 50),
    ]);
    // An acknowledged write that no later read sees.
    assert_violation(&[
        put(0, "k", "a", 0, 10),
        put(0, "k", "b", 20, 30),
        get(1, "k", Some("a"), 40, 50),
        get(1, "k", Some("a"), 60, 70),
    ]);
}

#[test]
fn operations_at_the_same_instant_count_as_concurrent() {
    assert_linearizable(&[put(0, "k", "a", 0, 10), get(1, "k", None, 10, 20)]);
    assert_violation(&[put(0, "k", "a", 0, 10), get(1, "k", None, 11, 20)]);
}

#[test]
fn cas_chain_is_linearizable() {
    assert_linearizable(&[
        cas(0, "k", None, "a", true, 0, 10),
        cas(1, "k", Some("a"), "b", true, 20, 30),
        cas(2, "k", Some("a"), "c", false, 40, 50),
        get(0, "k", Some("b"), 60, 70),
    ]);
}

#[test]
fn two_swaps_from_the_same_value_are_a_violation() {
    assert_violation(&[
        cas(0, "k", None, "a", true, 0, 10),
        cas(1, "k", None, "b", true, 0, 10),
    ]);
}

#[test]
fn swap_from_an_overwritten_value_is_a_violation() {
    assert_violation(&[
        put(0, "k", "a", 0, 10),
        put(1, "k", "c", 20, 30),
        cas(2, "k", Some("a"), "b", true, 40, 50),
    ]);
}

#[test]
fn failed_swap_while_the_value_matched_is_a_violation() {
    assert_violation(&[
        put(0, "k", "a", 0, 10),
        cas(1, "k", Some("a"), "b", false, 20, 30),
    ]);
    // ... but a concurrent write explains it.
    assert_linearizable(&[
        put(0, "k", "a", 0, 10),
        put(2, "k", "c", 15, 40),
        cas(1, "k", Some("a"), "b", false, 20, 30),
    ]);
}

#[test]
fn swap_whose_new_value_is_not_read_back_is_a_violation() {
    assert_violation(&[
        put(0, "k", "a", 0, 10),
        cas(1, "k", Some("a"), "b", true, 20, 30),
        get(2, "k", Some("a"), 40, 50),
    ]);
}

#[test]
fn unknown_write_never_applied_is_linearizable() {
    assert_linearizable(&[
        unknown_put(0, "k", "a", 0),
        get(1, "k", None, 10, 20),
        get(1, "k", None, 1_000, 1_010),
    ]);
}

#[test]
fn unknown_write_applied_much_later_is_linearizable() {
    assert_linearizable(&[
        unknown_put(0, "k", "a", 0),
        get(1, "k", None, 10, 20),
        put(2, "k", "b", 30, 40),
        get(1, "k", Some("b"), 50, 60),
        get(1, "k", Some("a"), 1_000, 1_010),
    ]);
}

#[test]
fn unknown_write_cannot_take_effect_before_its_call() {
    assert_violation(&[get(1, "k", Some("a"), 0, 50), unknown_put(0, "k", "a", 100)]);
}

#[test]
fn unknown_write_cannot_take_effect_twice() {
    assert_violation(&[
        unknown_put(0, "k", "a", 0),
        get(1, "k", Some("a"), 10, 20),
        put(2, "k", "b", 30, 40),
        get(1, "k", Some("a"), 50, 60),
    ]);
    // And once seen it does not disappear again.
    assert_violation(&[
        unknown_put(0, "k", "a", 0),
        get(1, "k", Some("a"), 10, 20),
        get(1, "k", None, 30, 40),
    ]);
}

#[test]
fn unknown_swap_needs_its_expected_value() {
    assert_linearizable(&[
        unknown_cas(0, "k", None, "a", 0),
        get(1, "k", Some("a"), 10, 20),
    ]);
    // The register held "b" from 20 on, so the swap from absent could only have taken effect
    // before, and then "b" overwrote it.
    assert_violation(&[
        unknown_cas(0, "k", None, "a", 0),
        put(2, "k", "b", 10, 20),
        get(1, "k", Some("a"), 30, 40),
    ]);
}

#[test]
fn unknown_write_can_explain_a_failed_swap() {
    assert_linearizable(&[
        put(0, "k", "a", 0, 10),
        unknown_put(1, "k", "x", 15),
        cas(2, "k", Some("a"), "b", false, 20, 30),
        put(0, "k", "c", 40, 50),
        get(2, "k", Some("c"), 60, 70),
    ]);
    // Without the unknown write, the failed swap is impossible.
    assert_violation(&[
        put(0, "k", "a", 0, 10),
        cas(2, "k", Some("a"), "b", false, 20, 30),
        put(0, "k", "c", 40, 50),
        get(2, "k", Some("c"), 60, 70),
    ]);
}

#[test]
fn many_unknown_writes_with_failed_swaps_are_searched() {
    // Unknown writes nobody reads, but failed swaps keep them in the search.
    let mut records = vec![put(0, "k", "v0", 0, 10)];
    for i in 0..40u64 {
        records.push(unknown_put(1, "k", &format!("u{i}"), 20 + i * 100));
    }
    for i in 0..40u64 {
        let t = 30 + i * 100;
        records.push(cas(2, "k", Some("zz"), "never", false, t, t + 10));
        records.push(get(3, "k", Some("v0"), t + 20, t + 30));
    }
    // An unknown write observed at the end; it must be linearized after every read of "v0".
    records.push(get(3, "k", Some("u39"), 10_000, 10_010));
    assert_linearizable(&records);
    records.push(get(3, "k", Some("v0"), 10_100, 10_110));
    assert_violation(&records);
}

#[test]
fn failed_and_unknown_read_operations_are_ignored() {
    assert_linearizable(&[
        failed_put(0, "k", "a", 0, 10),
        get(1, "k", None, 20, 30),
        record(2, Op::Get { key: "k".into() }, 40, None, Outcome::Unknown),
    ]);
    // A failed write had no effect: reading its value is reading a value never written.
    let violation = assert_violation(&[
        failed_put(0, "k", "a", 0, 10),
        get(1, "k", Some("a"), 20, 30),
    ]);
    assert!(
        violation.detail.contains("no operation on this key wrote"),
        "{violation}"
    );
}

#[test]
fn read_of_a_value_never_written_is_a_violation() {
    let violation =
        assert_violation(&[put(0, "k", "a", 0, 10), get(1, "k", Some("zebra"), 20, 30)]);
    assert!(
        violation
            .detail
            .contains("record #1 client 1: get -> Some(\"zebra\") [call 20 ns, return 30 ns] observed \"zebra\", a value no operation on this key wrote"),
        "{violation}"
    );
    assert_violation(&[cas(0, "k", Some("zebra"), "a", true, 0, 10)]);
}

#[test]
fn keys_are_checked_independently() {
    assert_linearizable(&[
        put(0, "a", "1", 0, 10),
        get(1, "b", None, 20, 30),
        put(1, "b", "1", 40, 50),
        get(0, "a", Some("1"), 60, 70),
    ]);
    let violation = assert_violation(&[
        put(0, "a", "1", 0, 10),
        put(0, "b", "1", 0, 10),
        get(1, "a", Some("1"), 20, 30),
        get(1, "b", None, 20, 30),
    ]);
    assert_eq!(violation.key, "b");
    assert!(violation
        .to_string()
        .starts_with("key \"b\" is not linearizable: "));
}

#[test]
fn malformed_records_are_reported() {
    let violation = check(&[record(
        0,
        Op::Get { key: "k".into() },
        0,
        Some(1),
        Outcome::Put,
    )])
    .unwrap_err();
    assert!(
        violation
            .detail
            .starts_with("malformed record: the outcome does not match the operation: record #0"),
        "{violation}"
    );
    let violation = check(&[put(0, "k", "a", 10, 5)]).unwrap_err();
    assert!(
        violation.detail.contains("returned before its call"),
        "{violation}"
    );
}

#[test]
fn definite_operation_without_return_time_must_still_take_effect() {
    let write = record(0, put_op("k", "a"), 0, None, Outcome::Put);
    assert_linearizable(&[write.clone(), get(1, "k", Some("a"), 1_000, 1_010)]);
    // It may take effect late, but it must take effect: "a" cannot be gone for good.
    assert_violation(&[
        write.clone(),
        get(1, "k", Some("a"), 10, 20),
        get(1, "k", None, 30, 40),
    ]);
    assert_linearizable(&[write, get(1, "k", None, 10, 20)]);
}

#[test]
fn exhausted_budget_is_reported_as_undecided_never_as_a_pass() {
    // Not linearizable, but no precheck sees it: the search must refute it.
    let records = [
        cas(0, "k", None, "a", true, 0, 10),
        cas(1, "k", None, "b", true, 0, 10),
    ];
    let config = CheckConfig {
        search_steps_max_per_key: 1,
    };
    let violation = check_with_config(&records, &config).unwrap_err();
    assert!(violation.detail.starts_with("undecided"), "{violation}");
    // Even on a linearizable history, running out of steps is not a pass.
    let records = [put(0, "k", "a", 0, 10), get(1, "k", Some("a"), 20, 30)];
    let violation = check_with_config(&records, &config).unwrap_err();
    assert!(violation.detail.contains("not a pass"), "{violation}");
}

#[test]
fn revisions_per_client_never_decrease() {
    let with_revision = |client, call_ns, revision| Record {
        revision,
        ..get(client, "k", None, call_ns, call_ns + 1)
    };
    assert_eq!(
        check_revisions_monotonic(&[
            with_revision(0, 0, Some(5)),
            with_revision(1, 1, Some(3)),
            with_revision(0, 2, None),
            with_revision(0, 3, Some(5)),
            with_revision(1, 4, Some(4)),
            with_revision(0, 5, Some(9)),
        ]),
        Ok(())
    );
    // Out of call order in the slice: sorted by call time per client first.
    assert_eq!(
        check_revisions_monotonic(&[with_revision(0, 5, Some(7)), with_revision(0, 1, Some(6))]),
        Ok(())
    );
    let message = check_revisions_monotonic(&[
        with_revision(0, 0, Some(5)),
        with_revision(1, 1, Some(9)),
        with_revision(0, 2, None),
        with_revision(0, 3, Some(4)),
    ])
    .unwrap_err();
    assert!(
        message.starts_with("client 0 saw revision 4 after revision 5"),
        "{message}"
    );
    assert!(message.contains("record #0 client 0"), "{message}");
    assert!(message.contains("record #3 client 0"), "{message}");
}

// ---- randomized histories ----

/// splitmix64: small, seedable and stable across versions of any crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }

    fn percent(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

#[derive(Clone, Copy)]
struct Workload {
    ops: usize,
    clients: usize,
    keys: usize,
    get_percent: u64,
    put_percent: u64,
    unknown_percent: u64,
    failed_percent: u64,
    duration_max_ns: u64,
    /// Values written are unique when 0, else drawn from this many.
    value_pool: u64,
}

const SMALL: Workload = Workload {
    ops: 300,
    clients: 5,
    keys: 2,
    get_percent: 45,
    put_percent: 30,
    unknown_percent: 4,
    failed_percent: 3,
    duration_max_ns: 50,
    value_pool: 0,
};

#[derive(Clone, Copy, PartialEq)]
enum Fate {
    Definite,
    Failed,
    Unknown,
}

/// A history of a simulated sequential register: every operation takes effect atomically at a
/// random instant inside its interval, so the history is linearizable by construction. Unknown
/// writes take effect at a random later instant (possibly long after the client gave up) or
/// never. Values are unique unless the workload draws them from a pool. Response revisions count
/// the writes taken effect, so each client's never go backwards.
fn generate(seed: u64, workload: Workload) -> Vec<Record> {
    let mut rng = Rng(seed);
    let mut client_free_ns: Vec<u64> = (0..workload.clients).map(|_| rng.below(10)).collect();
    struct Planned {
        client: usize,
        key: String,
        kind: u64, // 0 get, 1 put, 2 cas
        fate: Fate,
        call_ns: u64,
        return_ns: u64,
        effect_ns: Option<u64>,
    }
    let mut planned = Vec::with_capacity(workload.ops);
    for _ in 0..workload.ops {
        let client = rng.below(workload.clients as u64) as usize;
        let call_ns = client_free_ns[client] + 1 + rng.below(workload.duration_max_ns / 4 + 1);
        let duration = 2 + rng.below(workload.duration_max_ns);
        let roll = rng.below(100);
        let kind = if roll < workload.get_percent {
            0
        } else if roll < workload.get_percent + workload.put_percent {
            1
        } else {
            2
        };
        let fate = if rng.percent(workload.unknown_percent) {
            Fate::Unknown
        } else if rng.percent(workload.failed_percent) {
            Fate::Failed
        } else {
            Fate::Definite
        };
        let effect_ns = match fate {
            Fate::Definite => Some(call_ns + 1 + rng.below(duration - 1)),
            Fate::Failed => None,
            Fate::Unknown => rng
                .percent(50)
                .then(|| call_ns + 1 + rng.below(20 * workload.duration_max_ns)),
        };
        let return_ns = call_ns + duration;
        // A client that gave up on an unknown operation moves on after a timeout.
        client_free_ns[client] = return_ns;
        planned.push(Planned {
            client,
            key: format!("key{}", rng.below(workload.keys as u64)),
            kind,
            fate,
            call_ns,
            return_ns,
            effect_ns,
        });
    }
    let mut order: Vec<usize> = (0..planned.len()).collect();
    order.sort_by_key(|&i| (planned[i].effect_ns.unwrap_or(u64::MAX), i));
    let mut registers: HashMap<String, Option<String>> = HashMap::new();
    let mut written: HashMap<String, Vec<String>> = HashMap::new();
    let mut revision = 1i64;
    let mut records: Vec<Option<Record>> = (0..planned.len()).map(|_| None).collect();
    for i in order {
        let p = &planned[i];
        let register = registers.entry(p.key.clone()).or_default();
        let history = written.entry(p.key.clone()).or_default();
        let value = match workload.value_pool {
            0 => format!("c{}-{i}", p.client),
            pool => format!("v{}", rng.below(pool)),
        };
        let applies = p.effect_ns.is_some();
        let (op, outcome) = match p.kind {
            0 => (
                Op::Get { key: p.key.clone() },
                Outcome::Get(register.clone()),
            ),
            1 => {
                if applies {
                    *register = Some(value.clone());
                    history.push(value.clone());
                    revision += 1;
                }
                (put_op(&p.key, &value), Outcome::Put)
            }
            _ => {
                // Usually the value the client last read; sometimes an older one or absent.
                let expected = if applies && rng.percent(60) {
                    register.clone()
                } else if history.is_empty() || rng.percent(20) {
                    None
                } else {
                    Some(history[rng.below(history.len() as u64) as usize].clone())
                };
                let swapped = applies && *register == expected;
                if swapped {
                    *register = Some(value.clone());
                    history.push(value.clone());
                    revision += 1;
                }
                (
                    Op::Cas {
                        key: p.key.clone(),
                        expected,
                        new: value,
                    },
                    Outcome::Cas(swapped),
                )
            }
        };
        let (outcome, return_ns, response_revision) = match p.fate {
            Fate::Definite => (outcome, Some(p.return_ns), Some(revision)),
            Fate::Failed => (Outcome::Failed, Some(p.return_ns), None),
            Fate::Unknown => (Outcome::Unknown, None, None),
        };
        records[i] = Some(Record {
            client: p.client,
            op,
            call_ns: p.call_ns,
            return_ns,
            outcome,
            revision: response_revision,
        });
    }
    records.into_iter().map(Option::unwrap).collect()
}

fn written_value(record: &Record) -> Option<&str> {
    match (&record.op, &record.outcome) {
        (Op::Put { value, .. }, _) => Some(value),
        (Op::Cas { new, .. }, _) => Some(new),
        _ => None,
    }
}

fn certainly_wrote(record: &Record) -> bool {
    matches!(
        (&record.op, &record.outcome),
        (Op::Put { .. }, Outcome::Put) | (Op::Cas { .. }, Outcome::Cas(true))
    )
}

/// A value that read `read` cannot return in any linearization: one certainly overwritten before
/// the read was called, or one written only after it returned.
fn impossible_value(records: &[Record], read: usize, rng: &mut Rng) -> Option<String> {
    let key = records[read].op.key();
    let call_ns = records[read].call_ns;
    let return_ns = records[read].return_ns?;
    let same_key = |r: &&Record| r.op.key() == key;
    let mut choices = Vec::new();
    // Overwritten: P returned, then W was called and returned, then the read was called.
    let latest_overwrite_call = records
        .iter()
        .filter(same_key)
        .filter(|w| certainly_wrote(w) && w.return_ns.is_some_and(|r| r < call_ns))
        .map(|w| w.call_ns)
        .max();
    if let Some(overwrite_call_ns) = latest_overwrite_call {
        choices.extend(
            records
                .iter()
                .filter(same_key)
                .filter(|p| {
                    certainly_wrote(p) && p.return_ns.is_some_and(|r| r < overwrite_call_ns)
                })
                .filter_map(written_value),
        );
    }
    // From the future: written by an operation called after the read returned.
    choices.extend(
        records
            .iter()
            .filter(same_key)
            .filter(|w| w.call_ns > return_ns && w.outcome != Outcome::Failed)
            .filter_map(written_value),
    );
    if choices.is_empty() {
        return None;
    }
    Some(choices[rng.below(choices.len() as u64) as usize].to_string())
}

#[test]
fn random_histories_of_a_sequential_register_are_linearizable() {
    for seed in 0..150 {
        let records = generate(seed, SMALL);
        if let Err(violation) = check(&records) {
            panic!("seed {seed}: {violation}");
        }
        if let Err(message) = check_revisions_monotonic(&records) {
            panic!("seed {seed}: {message}");
        }
    }
}

#[test]
fn random_histories_with_heavy_concurrency_and_many_unknowns_are_linearizable() {
    let workload = Workload {
        ops: 400,
        clients: 12,
        keys: 1,
        unknown_percent: 10,
        duration_max_ns: 200,
        ..SMALL
    };
    for seed in 1_000..1_040 {
        let records = generate(seed, workload);
        if let Err(violation) = check(&records) {
            panic!("seed {seed}: {violation}");
        }
    }
}

#[test]
fn random_histories_with_reused_values_are_linearizable() {
    // Values come back: no unknown write can be simplified away, and fewer values are gone for
    // good, so this exercises the search's general case.
    for (value_pool, clients) in [(3, 4), (20, 6)] {
        let workload = Workload {
            value_pool,
            clients,
            ..SMALL
        };
        for seed in 0..60 {
            let records = generate(seed, workload);
            if let Err(violation) = check(&records) {
                panic!("seed {seed}, pool {value_pool}: {violation}");
            }
        }
    }
}

#[test]
fn random_histories_with_an_impossible_read_are_violations() {
    let mut mutated = 0;
    for seed in 0..150 {
        let mut records = generate(seed, SMALL);
        let mut rng = Rng(seed ^ 0xdead_beef);
        let reads: Vec<usize> = (0..records.len())
            .filter(|&i| matches!(records[i].outcome, Outcome::Get(_)))
            .collect();
        let read = reads[rng.below(reads.len() as u64) as usize];
        let Some(value) = impossible_value(&records, read, &mut rng) else {
            continue;
        };
        records[read].outcome = Outcome::Get(Some(value));
        mutated += 1;
        // The prechecks name the anomaly; the search alone must refute it too.
        let violation = check(&records).expect_err(&format!("seed {seed}: mutation accepted"));
        assert!(
            violation.detail.contains(&format!("record #{read} ")),
            "seed {seed}: {violation}"
        );
        match search_only(&records) {
            Ok(()) => panic!("seed {seed}: mutated read record #{read} was accepted"),
            Err(violation) => assert!(
                violation.detail.starts_with("no linearization exists"),
                "seed {seed}: {violation}"
            ),
        }
    }
    assert!(mutated > 100, "only {mutated} histories could be mutated");
}

#[test]
fn random_histories_with_a_value_never_written_are_violations() {
    for seed in 0..50 {
        let mut records = generate(seed, SMALL);
        let read = records
            .iter()
            .rposition(|r| matches!(r.outcome, Outcome::Get(_)))
            .expect("a read");
        records[read].outcome = Outcome::Get(Some("never-written".into()));
        let violation = check(&records).expect_err("violation");
        assert!(
            violation.detail.contains(&format!("record #{read} ")),
            "seed {seed}: {violation}"
        );
    }
}

#[test]
fn random_histories_with_a_swap_that_could_not_succeed_are_violations() {
    // A swap that succeeded from a value overwritten before the swap was called.
    let mut mutated = 0;
    for seed in 200..300 {
        let mut records = generate(seed, SMALL);
        let mut rng = Rng(seed);
        let Some(swap) = records
            .iter()
            .position(|r| matches!(r.outcome, Outcome::Cas(true)) && rng.percent(30))
        else {
            continue;
        };
        let Some(value) = impossible_value(&records, swap, &mut rng) else {
            continue;
        };
        if let Op::Cas { expected, .. } = &mut records[swap].op {
            *expected = Some(value);
        }
        mutated += 1;
        if check(&records).is_ok() || search_only(&records).is_ok() {
            panic!("seed {seed}: mutated swap record #{swap} was accepted");
        }
    }
    assert!(mutated > 30, "only {mutated} histories could be mutated");
}

// ---- cross-check against brute force on tiny histories ----

/// Tries every order of the operations that respects real time (an operation that returned
/// before another was called comes first; equal times count as concurrent), with unknown writes
/// optional and failed operations and unknown reads left out.
fn brute_force_linearizable(records: &[Record]) -> bool {
    struct Item {
        call_ns: u64,
        return_ns: Option<u64>,
        optional: bool,
        op: Op,
        outcome: Outcome,
    }
    let mut by_key: BTreeMap<&str, Vec<Item>> = BTreeMap::new();
    for r in records {
        let optional = match (&r.op, &r.outcome) {
            (_, Outcome::Failed) | (Op::Get { .. }, Outcome::Unknown) => continue,
            (_, Outcome::Unknown) => true,
            _ => false,
        };
        by_key.entry(r.op.key()).or_default().push(Item {
            call_ns: r.call_ns,
            return_ns: if optional { None } else { r.return_ns },
            optional,
            op: r.op.clone(),
            outcome: r.outcome.clone(),
        });
    }
    fn apply(item: &Item, register: &Option<String>) -> Option<Option<String>> {
        match (&item.op, &item.outcome) {
            (Op::Get { .. }, Outcome::Get(value)) => (value == register).then(|| register.clone()),
            (Op::Put { value, .. }, _) => Some(Some(value.clone())),
            (Op::Cas { expected, new, .. }, Outcome::Cas(true) | Outcome::Unknown) => {
                (expected == register).then(|| Some(new.clone()))
            }
            (Op::Cas { expected, .. }, Outcome::Cas(false)) => {
                (expected != register).then(|| register.clone())
            }
            _ => unreachable!(),
        }
    }
    fn search(items: &[Item], done: &mut Vec<bool>, register: &Option<String>) -> bool {
        if items
            .iter()
            .zip(done.iter())
            .all(|(item, &d)| d || item.optional)
        {
            return true;
        }
        for i in 0..items.len() {
            if done[i] {
                continue;
            }
            // Every pending definite operation must not have returned before this call.
            let blocked = items.iter().zip(done.iter()).any(|(other, &d)| {
                !d && !other.optional && other.return_ns.is_some_and(|r| r < items[i].call_ns)
            });
            if blocked {
                continue;
            }
            if let Some(after) = apply(&items[i], register) {
                done[i] = true;
                if search(items, done, &after) {
                    return true;
                }
                done[i] = false;
            }
        }
        false
    }
    by_key
        .values()
        .all(|items| search(items, &mut vec![false; items.len()], &None))
}

fn random_tiny_history(rng: &mut Rng) -> Vec<Record> {
    let values = ["a", "b", "c", "d", "e"];
    let value = |rng: &mut Rng| values[rng.below(values.len() as u64) as usize].to_string();
    let maybe_value = |rng: &mut Rng| (!rng.percent(25)).then(|| value(rng));
    let count = 1 + rng.below(7) as usize;
    (0..count)
        .map(|client| {
            let call_ns = rng.below(12);
            let return_ns = call_ns + rng.below(6);
            let key = if rng.percent(85) { "k" } else { "j" }.to_string();
            let (op, outcome) = match rng.below(3) {
                0 => (Op::Get { key }, Outcome::Get(maybe_value(rng))),
                1 => (
                    Op::Put {
                        key,
                        value: value(rng),
                    },
                    Outcome::Put,
                ),
                _ => (
                    Op::Cas {
                        key,
                        expected: maybe_value(rng),
                        new: value(rng),
                    },
                    Outcome::Cas(rng.percent(50)),
                ),
            };
            let (outcome, return_ns) = match rng.below(100) {
                0..15 => (Outcome::Unknown, None),
                15..20 => (Outcome::Failed, Some(return_ns)),
                20..22 => (outcome, None),
                _ => (outcome, Some(return_ns)),
            };
            record(client, op, call_ns, return_ns, outcome)
        })
        .collect()
}

#[test]
fn agrees_with_brute_force_on_tiny_random_histories() {
    let mut rng = Rng(7);
    let (mut linearizable, mut not) = (0, 0);
    for case in 0..20_000 {
        let records = random_tiny_history(&mut rng);
        let expected = brute_force_linearizable(&records);
        let got = check(&records);
        assert_eq!(
            got.is_ok(),
            expected,
            "case {case}: brute force says {expected}, check says {got:?}\n{records:#?}"
        );
        let searched = search_only(&records);
        assert_eq!(
            searched.is_ok(),
            expected,
            "case {case}: brute force says {expected}, the search says {searched:?}\n{records:#?}"
        );
        if expected {
            linearizable += 1;
        } else {
            not += 1;
        }
    }
    // Both answers must be well represented for the comparison to mean anything.
    assert!(
        linearizable > 3_000 && not > 3_000,
        "{linearizable} vs {not}"
    );
}

// ---- size of a cluster test's history ----

const CLUSTER_SIZE: Workload = Workload {
    ops: 20_000,
    clients: 8,
    keys: 5,
    get_percent: 50,
    put_percent: 30,
    unknown_percent: 1,
    failed_percent: 1,
    duration_max_ns: 1_000,
    value_pool: 0,
};

#[test]
fn history_of_cluster_test_size_is_checked_quickly() {
    let records = generate(42, CLUSTER_SIZE);
    let unknown = records
        .iter()
        .filter(|r| r.outcome == Outcome::Unknown)
        .count();
    let started = std::time::Instant::now();
    check(&records).unwrap_or_else(|violation| panic!("seed 42: {violation}"));
    let elapsed = started.elapsed();
    eprintln!(
        "checked {} operations ({unknown} unknown) on {} keys from {} clients in {elapsed:?}",
        records.len(),
        CLUSTER_SIZE.keys,
        CLUSTER_SIZE.clients
    );
    check_revisions_monotonic(&records).unwrap();
}

#[test]
fn violation_late_in_a_history_of_cluster_test_size_is_found() {
    let mut records = generate(43, CLUSTER_SIZE);
    let mut rng = Rng(43);
    // A stale read near the end: the whole prefix must be refuted.
    let (read, value) = (0..records.len())
        .rev()
        .filter(|&i| matches!(records[i].outcome, Outcome::Get(_)))
        .find_map(|i| impossible_value(&records, i, &mut rng).map(|v| (i, v)))
        .expect("a read to mutate");
    records[read].outcome = Outcome::Get(Some(value));
    let started = std::time::Instant::now();
    let violation = check(&records).expect_err("mutated history accepted");
    eprintln!("found by the prechecks in {:?}", started.elapsed());
    assert!(
        violation.detail.contains(&format!("record #{read} ")),
        "{violation}"
    );
    let started = std::time::Instant::now();
    let violation = search_only(&records).expect_err("mutated history accepted by the search");
    eprintln!("refuted by the search alone in {:?}", started.elapsed());
    assert!(
        violation.detail.starts_with("no linearization exists"),
        "{violation}"
    );
}
