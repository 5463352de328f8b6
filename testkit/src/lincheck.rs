//! Linearizability checking of per-key register histories (Wing–Gong search with Lowe's
//! memoisation), partitioned by key (P-compositionality).
//!
//! Per key, every operation becomes a call event and a return event in one doubly linked list
//! sorted by time (as in porcupine, anishathalye/porcupine `checkSingle`). The operations whose
//! calls come before the first return event still in the list are the candidates: one of them
//! must take effect next. Taking one effect (*linearizing* it) applies it to the register and
//! removes its events from the list; when no candidate can go next, the search backtracks to its
//! latest choice. Lowe's memoisation skips a configuration (set of linearized operations, register
//! value) already explored. The search is a loop with an explicit stack, so deep histories cannot
//! overflow the thread's stack, and it stops after a step budget with an "undecided" violation.
//!
//! Unknown writes are optional: they have no return event, so they may take effect at any point
//! after their call, or never. The check succeeds once every definite operation is linearized.
//!
//! What keeps the search fast, each step exact (no linearization is lost or gained):
//! - Prechecks name the common anomalies directly (a value never written, read before it was
//!   written, read after it was certainly overwritten).
//! - An unknown write of a value nobody else writes becomes definite if a definite operation
//!   observed its value (it took effect before that observer returned), and is dropped if no
//!   operation could depend on it.
//! - A read or failed swap the register allows now is linearized now, without trying
//!   alternatives: it can always be moved to this point.
//! - A step that would overwrite, for good, a value a pending definite operation still has to
//!   read is refused.
//! - An optional operation must be followed by an operation that it enables (any linearization
//!   can be brought to that form), and interchangeable optional operations go in call order.
//! - The memo merges values no operation reads or compares against, and counts an optional swap
//!   whose expected value is gone for good as done.
//! - Candidates are tried earliest deadline first, where a write's deadline is also the return
//!   of the first operation that needs its value.
//!
//! The search is fast when each write writes a value of its own (as etcd's robustness tests do:
//! client and sequence number in the value). With values written many times and many unknown
//! operations, fewer of these reductions apply and a key can exhaust the budget.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

use crate::history::{Op, Outcome, Record};

/// Why a history is not linearizable.
#[derive(Clone, Debug)]
pub struct Violation {
    pub key: String,
    /// A human-readable explanation: the smallest stuck prefix found, the operations involved.
    pub detail: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "key {:?} is not linearizable: {}", self.key, self.detail)
    }
}

/// Search steps allowed per key by [`check`]; a step is one candidate tried. Histories of tens of
/// thousands of operations need a few steps per operation to pass, and usually well under a
/// million to refute. The default is some tens of seconds of search in an unoptimised build.
pub const SEARCH_STEPS_MAX_PER_KEY_DEFAULT: u64 = 20_000_000;

/// Limits of [`check_with_config`].
#[derive(Clone, Debug)]
pub struct CheckConfig {
    /// When one key's search takes more steps than this, the check stops and reports the key as
    /// undecided (a [`Violation`], never a pass).
    pub search_steps_max_per_key: u64,
}

impl Default for CheckConfig {
    fn default() -> Self {
        CheckConfig {
            search_steps_max_per_key: SEARCH_STEPS_MAX_PER_KEY_DEFAULT,
        }
    }
}

/// Checks every key's sub-history. Registers start absent (`None`). `Failed` operations are
/// ignored; `Unknown` writes may have taken effect at any time after their call (or never);
/// `Unknown` reads are ignored.
pub fn check(records: &[Record]) -> Result<(), Violation> {
    check_with_config(records, &CheckConfig::default())
}

/// [`check`] with explicit limits. Keys are checked in lexicographic order; the first violation
/// is returned.
pub fn check_with_config(records: &[Record], config: &CheckConfig) -> Result<(), Violation> {
    let mut by_key: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (index, record) in records.iter().enumerate() {
        by_key.entry(record.op.key()).or_default().push(index);
    }
    for (key, indexes) in by_key {
        check_key(records, &indexes, config).map_err(|detail| Violation {
            key: key.to_string(),
            detail,
        })?;
    }
    Ok(())
}

/// Revisions each client saw never go backwards (in the client's own call order).
pub fn check_revisions_monotonic(records: &[Record]) -> Result<(), String> {
    let mut order: Vec<usize> = (0..records.len()).collect();
    // Stable on equal call times: the order records were pushed in.
    order.sort_by_key(|&index| (records[index].client, records[index].call_ns));
    // (client, revision, record index) of the latest response that carried a revision.
    let mut last: Option<(usize, i64, usize)> = None;
    for index in order {
        let record = &records[index];
        let Some(revision) = record.revision else {
            continue;
        };
        if let Some((client, last_revision, last_index)) = last {
            if client == record.client && revision < last_revision {
                return Err(format!(
                    "client {} saw revision {} after revision {}: first {}, then {}",
                    record.client,
                    revision,
                    last_revision,
                    describe(last_index, &records[last_index]),
                    describe(index, record),
                ));
            }
        }
        last = Some((record.client, revision, index));
    }
    Ok(())
}

/// One record as a line of a report: `record #12 client 3: get -> Some("v") [call 100 ns, return
/// 250 ns]`.
pub fn describe(index: usize, record: &Record) -> String {
    let op = match &record.op {
        Op::Get { .. } => "get".to_string(),
        Op::Put { value, .. } => format!("put {value:?}"),
        Op::Cas { expected, new, .. } => format!("cas(expected {expected:?}, new {new:?})"),
    };
    let outcome = match &record.outcome {
        Outcome::Get(value) => format!("{value:?}"),
        Outcome::Put => "ok".to_string(),
        Outcome::Cas(true) => "swapped".to_string(),
        Outcome::Cas(false) => "not swapped".to_string(),
        Outcome::Failed => "failed".to_string(),
        Outcome::Unknown => "unknown".to_string(),
    };
    let returned = match record.return_ns {
        Some(return_ns) => format!("return {return_ns} ns"),
        None => "no return".to_string(),
    };
    format!(
        "record #{index} client {}: {op} -> {outcome} [call {} ns, {returned}]",
        record.client, record.call_ns
    )
}

/// Register values are interned per key; `ABSENT` is the key without a value.
type Value = u32;
const ABSENT: Value = 0;
/// In memo keys: any written value that no operation reads or compares against.
const UNREAD: Value = Value::MAX;

/// What one operation requires of the register and what it leaves there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Effect {
    Read(Value),
    Write(Value),
    /// A swap that happened (or, for an unknown CAS, the only way it can matter).
    Swap {
        expected: Value,
        new: Value,
    },
    /// A CAS that answered "not swapped": the register did not hold `expected`.
    NoSwap {
        expected: Value,
    },
}

impl Effect {
    /// The register after this operation, or `None` if the operation cannot take effect now.
    fn step(self, register: Value) -> Option<Value> {
        match self {
            Effect::Read(value) => (register == value).then_some(register),
            Effect::Write(value) => Some(value),
            Effect::Swap { expected, new } => (register == expected).then_some(new),
            Effect::NoSwap { expected } => (register != expected).then_some(register),
        }
    }

    fn written(self) -> Option<Value> {
        match self {
            Effect::Write(value) | Effect::Swap { new: value, .. } => Some(value),
            Effect::Read(_) | Effect::NoSwap { .. } => None,
        }
    }

    /// The value this operation needs the register to hold.
    fn observed(self) -> Option<Value> {
        match self {
            Effect::Read(value)
            | Effect::Swap {
                expected: value, ..
            } => Some(value),
            Effect::Write(_) | Effect::NoSwap { .. } => None,
        }
    }
}

/// One operation of a key's search.
#[derive(Clone, Debug)]
struct SearchOp {
    /// Index in the caller's records, for reports.
    record: usize,
    effect: Effect,
    call_ns: u64,
    /// `None`: optional (an unknown write); it may take effect at any time after its call or
    /// never. Definite operations returned (`u64::MAX` if a malformed record has no return time:
    /// it must still take effect, at any time after its call).
    return_ns: Option<u64>,
}

fn check_key(records: &[Record], indexes: &[usize], config: &CheckConfig) -> Result<(), String> {
    check_key_with(records, indexes, config, Prechecks::Run)
}

/// Whether to look for the common anomalies directly before searching. They only make reports
/// clearer and refutations faster: the search alone reaches the same verdict (tests run both).
#[derive(Clone, Copy, PartialEq)]
enum Prechecks {
    Run,
    #[cfg(test)]
    Skip,
}

fn check_key_with(
    records: &[Record],
    indexes: &[usize],
    config: &CheckConfig,
    prechecks: Prechecks,
) -> Result<(), String> {
    let mut values = Interner::default();
    let mut ops = Vec::with_capacity(indexes.len());
    for &index in indexes {
        let record = &records[index];
        let effect = match (&record.op, &record.outcome) {
            (_, Outcome::Failed) | (Op::Get { .. }, Outcome::Unknown) => continue,
            (Op::Get { .. }, Outcome::Get(value)) => Effect::Read(values.intern(value.as_deref())),
            (Op::Put { value, .. }, Outcome::Put | Outcome::Unknown) => {
                Effect::Write(values.intern(Some(value)))
            }
            (Op::Cas { expected, new, .. }, Outcome::Cas(true) | Outcome::Unknown) => {
                Effect::Swap {
                    expected: values.intern(expected.as_deref()),
                    new: values.intern(Some(new)),
                }
            }
            (Op::Cas { expected, .. }, Outcome::Cas(false)) => Effect::NoSwap {
                expected: values.intern(expected.as_deref()),
            },
            _ => {
                return Err(format!(
                    "malformed record: the outcome does not match the operation: {}",
                    describe(index, record)
                ))
            }
        };
        let return_ns = if record.outcome == Outcome::Unknown {
            None
        } else {
            match record.return_ns {
                Some(return_ns) if return_ns < record.call_ns => {
                    return Err(format!(
                        "malformed record: returned before its call: {}",
                        describe(index, record)
                    ))
                }
                Some(return_ns) => Some(return_ns),
                None => Some(u64::MAX),
            }
        };
        ops.push(SearchOp {
            record: index,
            effect,
            call_ns: record.call_ns,
            return_ns,
        });
    }
    if prechecks == Prechecks::Run {
        reject_values_never_written(&ops, records, &values)?;
        reject_stale_and_future_observations(&ops, records, &values)?;
    }
    let ops = simplify_unknown_writes(ops);
    Search::new(ops, &values, records).run(config.search_steps_max_per_key)
}

/// A read (or swap) of a value that no operation wrote can never be linearized; saying so
/// directly is clearer than the search's report.
fn reject_values_never_written(
    ops: &[SearchOp],
    records: &[Record],
    values: &Interner,
) -> Result<(), String> {
    let written: HashSet<Value> = ops.iter().filter_map(|op| op.effect.written()).collect();
    for op in ops {
        // An unknown CAS expecting an unwritten value simply never took effect.
        if op.return_ns.is_none() {
            continue;
        }
        if let Some(value) = op.effect.observed() {
            if value != ABSENT && !written.contains(&value) {
                return Err(format!(
                    "{} observed {}, a value no operation on this key wrote",
                    describe(op.record, &records[op.record]),
                    values.show(value)
                ));
            }
        }
    }
    Ok(())
}

/// An operation that observed a value (read it, or swapped from it) can only have done so after a
/// writer of the value was called and before the value was certainly overwritten. Checking both
/// directly names the operations of the two most common anomalies (a read from the future, a
/// stale read) and spares the search an exhaustive refutation of everything before them.
fn reject_stale_and_future_observations(
    ops: &[SearchOp],
    records: &[Record],
    values: &Interner,
) -> Result<(), String> {
    struct Writers {
        /// The writer called first.
        first_call: usize,
        /// The writer that returned last, unless an unknown write may write it at any time.
        last_return: Option<usize>,
    }
    let mut writers: HashMap<Value, Writers> = HashMap::new();
    for (index, op) in ops.iter().enumerate() {
        let Some(value) = op.effect.written() else {
            continue;
        };
        let entry = writers.entry(value).or_insert(Writers {
            first_call: index,
            last_return: Some(index),
        });
        if op.call_ns < ops[entry.first_call].call_ns {
            entry.first_call = index;
        }
        entry.last_return = match (entry.last_return, op.return_ns) {
            (Some(last), Some(return_ns)) if ops[last].return_ns >= Some(return_ns) => Some(last),
            (Some(_), Some(_)) => Some(index),
            _ => None,
        };
    }
    // Writes that certainly took effect, by call time, with the earliest return among those
    // called at or after each one: "some write was called after t1 and returned before t2".
    let mut certain: Vec<usize> = (0..ops.len())
        .filter(|&index| ops[index].return_ns.is_some() && ops[index].effect.written().is_some())
        .collect();
    certain.sort_by_key(|&index| ops[index].call_ns);
    let mut earliest_return_after: Vec<usize> = certain.clone();
    for position in (0..certain.len().saturating_sub(1)).rev() {
        let later = earliest_return_after[position + 1];
        if ops[later].return_ns < ops[certain[position]].return_ns {
            earliest_return_after[position] = later;
        }
    }
    for op in ops {
        let (Some(return_ns), Some(value)) = (op.return_ns, op.effect.observed()) else {
            continue;
        };
        let observer = describe(op.record, &records[op.record]);
        // The initial absence is "written" before everything and certainly done.
        let last_writer = if value == ABSENT {
            None
        } else {
            let Some(writers) = writers.get(&value) else {
                continue;
            };
            let first = &ops[writers.first_call];
            if first.call_ns > return_ns {
                return Err(format!(
                    "{observer} observed {}, but the first operation writing it was called only \
                     after that returned: {}",
                    values.show(value),
                    describe(first.record, &records[first.record])
                ));
            }
            let Some(last_writer) = writers.last_return else {
                continue;
            };
            Some(last_writer)
        };
        // Certain writes called after the value's last writer returned.
        let position = match last_writer {
            None => 0,
            Some(writer) => certain
                .partition_point(|&index| ops[index].call_ns <= ops[writer].return_ns.unwrap_or(0)),
        };
        let Some(&overwrite) = earliest_return_after.get(position) else {
            continue;
        };
        if ops[overwrite].return_ns.is_some_and(|r| r < op.call_ns) {
            let written_by = match last_writer {
                None => "the key started absent".to_string(),
                Some(writer) => format!(
                    "it was written by {}",
                    describe(ops[writer].record, &records[ops[writer].record])
                ),
            };
            return Err(format!(
                "{observer} observed {}, which was overwritten for good before it was called: \
                 {written_by}, then {} was called after that returned, and returned before this \
                 call",
                values.show(value),
                describe(ops[overwrite].record, &records[ops[overwrite].record])
            ));
        }
    }
    Ok(())
}

/// Makes unknown writes definite or drops them where that loses no linearization (see the module
/// documentation). Only writes of a value no other operation writes are touched.
fn simplify_unknown_writes(mut ops: Vec<SearchOp>) -> Vec<SearchOp> {
    let mut writers: HashMap<Value, usize> = HashMap::new();
    for op in &ops {
        if let Some(value) = op.effect.written() {
            *writers.entry(value).or_default() += 1;
        }
    }
    // Dropping an unknown swap can make the write it expected droppable: repeat to a fixpoint.
    loop {
        let mut changed = false;
        let mut first_definite_observer: HashMap<Value, u64> = HashMap::new();
        let mut observed_by_optional: HashSet<Value> = HashSet::new();
        let mut last_no_swap_return_ns: Option<u64> = None;
        for op in &ops {
            match (op.return_ns, op.effect) {
                (Some(return_ns), Effect::NoSwap { .. }) => {
                    last_no_swap_return_ns = last_no_swap_return_ns.max(Some(return_ns));
                }
                (Some(return_ns), effect) => {
                    if let Some(value) = effect.observed() {
                        let first = first_definite_observer.entry(value).or_insert(return_ns);
                        *first = (*first).min(return_ns);
                    }
                }
                (None, effect) => {
                    if let Some(value) = effect.observed() {
                        observed_by_optional.insert(value);
                    }
                }
            }
        }
        let mut kept = Vec::with_capacity(ops.len());
        for mut op in ops {
            let unique_write = op
                .effect
                .written()
                .filter(|value| writers.get(value) == Some(&1));
            if let (None, Some(value)) = (op.return_ns, unique_write) {
                if let Some(&deadline_ns) = first_definite_observer.get(&value) {
                    // Its value was observed and nothing else wrote it: it took effect, before
                    // that observer returned. (An observer that returned before this call is a
                    // violation the search will report; leave the write optional for it.)
                    if deadline_ns >= op.call_ns {
                        op.return_ns = Some(deadline_ns);
                        changed = true;
                    }
                } else if !observed_by_optional.contains(&value)
                    && last_no_swap_return_ns.is_none_or(|last| last < op.call_ns)
                {
                    // No operation needs the register to hold this value, and no failed swap
                    // could need the register to hold something else: taking effect changes no
                    // outcome, so it may as well never have.
                    writers.remove(&value);
                    changed = true;
                    continue;
                }
            }
            kept.push(op);
        }
        ops = kept;
        if !changed {
            return ops;
        }
    }
}

#[derive(Default)]
struct Interner {
    ids: HashMap<String, Value>,
    names: Vec<String>,
}

impl Interner {
    fn intern(&mut self, value: Option<&str>) -> Value {
        let Some(value) = value else {
            return ABSENT;
        };
        if let Some(&id) = self.ids.get(value) {
            return id;
        }
        self.names.push(value.to_string());
        let id = Value::try_from(self.names.len()).expect("fewer than 2^32 values per key");
        self.ids.insert(value.to_string(), id);
        id
    }

    fn show(&self, value: Value) -> String {
        match value {
            ABSENT => "nothing (the key is absent)".to_string(),
            value => format!("{:?}", self.names[value as usize - 1]),
        }
    }

    fn len(&self) -> usize {
        self.names.len() + 1
    }
}

/// The set of linearized operations, with a canonical compact form for the memo: bits of
/// definite operations (numbered in call order) are mostly a run of ones followed by a few
/// scattered bits, so the memo stores the run's length instead of its words.
struct Linearized {
    words: Vec<u64>,
    /// Words `[0, definite_words)` hold definite operations; the rest optional ones.
    definite_words: usize,
    /// `words[..full_words]` are all ones.
    full_words: usize,
}

impl Linearized {
    fn new(definite: usize, optional: usize) -> Linearized {
        let definite_words = definite.div_ceil(64);
        Linearized {
            words: vec![0; definite_words + optional.div_ceil(64)],
            definite_words,
            full_words: 0,
        }
    }

    fn bit(&self, op: usize, definite: usize) -> (usize, u64) {
        let position = if op < definite {
            op
        } else {
            self.definite_words * 64 + (op - definite)
        };
        (position / 64, 1 << (position % 64))
    }

    fn insert(&mut self, (word, mask): (usize, u64)) {
        self.words[word] |= mask;
        while self.full_words < self.definite_words && self.words[self.full_words] == u64::MAX {
            self.full_words += 1;
        }
    }

    fn contains(&self, (word, mask): (usize, u64)) -> bool {
        self.words[word] & mask != 0
    }

    fn remove(&mut self, (word, mask): (usize, u64)) {
        self.words[word] &= !mask;
        if word < self.full_words {
            self.full_words = word;
        }
    }

    /// Where the optional words start in a memo key.
    const MEMO_KEY_OPTIONAL_START: usize = 3;

    /// `[register, obligation, full words, optional words.., definite words after the full ones up
    /// to the last non-zero one..]`: equal exactly when the sets, registers and obligations are.
    fn memo_key(&self, register: Value, obligation: u64) -> Box<[u64]> {
        let definite = &self.words[..self.definite_words];
        let last_nonzero = definite
            .iter()
            .rposition(|&word| word != 0)
            .map_or(0, |i| i + 1);
        let middle = &definite[self.full_words..last_nonzero.max(self.full_words)];
        let optional = &self.words[self.definite_words..];
        let mut key = Vec::with_capacity(3 + optional.len() + middle.len());
        key.push(u64::from(register));
        key.push(obligation);
        key.push(self.full_words as u64);
        key.extend_from_slice(optional);
        key.extend_from_slice(middle);
        key.into_boxed_slice()
    }
}

/// FxHash-style: the memo hashes millions of short word slices, and std's SipHash is several
/// times slower in the unoptimised builds tests run in.
#[derive(Default)]
struct WordHasher(u64);

impl Hasher for WordHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.write_u64(u64::from_le_bytes(chunk.try_into().expect("8 bytes")));
        }
        for &byte in chunks.remainder() {
            self.write_u64(u64::from(byte));
        }
    }

    fn write_u64(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_usize(&mut self, word: usize) {
        self.write_u64(word as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type Memo = HashSet<Box<[u64]>, BuildHasherDefault<WordHasher>>;

const HEAD: usize = 0;
const NONE: usize = usize::MAX;

/// One event of the list: a call (with the index of its return event, or `NONE` for an optional
/// operation) or a return.
#[derive(Clone, Copy)]
struct Event {
    op: usize,
    /// For a call: its return event. For a return: `NONE`.
    matching_return: usize,
    is_call: bool,
    previous: usize,
    next: usize,
}

/// The deepest point the search reached before it had to backtrack.
struct Stuck {
    linearized_definite: usize,
    register: Value,
    /// The operation that must take effect before anything called after its return, and cannot.
    op: usize,
    /// Operations called before that return and not yet linearized (in call order; it is one),
    /// and why each could not go next.
    candidates: Vec<(usize, Blocked)>,
    /// The last operations of the partial linearization, oldest first.
    tail: Vec<usize>,
    /// The linearized set (`Linearized::words`).
    linearized: Vec<u64>,
}

#[derive(Clone, Copy)]
enum Blocked {
    Impossible,
    LosesNeededValue,
    DeadEnd,
}

const REPORT_OPS_MAX: usize = 12;

/// Which values operations still need, to refuse a step that would overwrite the last copy of a
/// value a definite operation has yet to observe: values are gone for good once every operation
/// that writes them has taken effect, so such a step can only lead to a dead end.
struct Needs {
    /// Per value: definite operations not yet linearized that read it or expect it.
    observers_left: Vec<u32>,
    /// Per value: operations not yet linearized that write it.
    writers_left: Vec<u32>,
}

impl Needs {
    fn new(definite: &[SearchOp], all: &[SearchOp], values: usize) -> Needs {
        let mut needs = Needs {
            observers_left: vec![0; values],
            writers_left: vec![0; values],
        };
        for op in definite {
            if let Some(value) = op.effect.observed() {
                needs.observers_left[value as usize] += 1;
            }
        }
        for op in all {
            if let Some(value) = op.effect.written() {
                needs.writers_left[value as usize] += 1;
            }
        }
        needs
    }

    /// Whether `op` taking effect, moving the register from `register` to `after`, loses a
    /// value still needed.
    fn would_lose(&self, op: &SearchOp, register: Value, after: Value) -> bool {
        if after == register || self.writers_left[register as usize] > 0 {
            return false;
        }
        let consumed = u32::from(op.return_ns.is_some() && op.effect.observed() == Some(register));
        self.observers_left[register as usize] > consumed
    }

    fn take(&mut self, op: &SearchOp, definite: bool) {
        if let (true, Some(value)) = (definite, op.effect.observed()) {
            self.observers_left[value as usize] -= 1;
        }
        if let Some(value) = op.effect.written() {
            self.writers_left[value as usize] -= 1;
        }
    }

    fn untake(&mut self, op: &SearchOp, definite: bool) {
        if let (true, Some(value)) = (definite, op.effect.observed()) {
            self.observers_left[value as usize] += 1;
        }
        if let Some(value) = op.effect.written() {
            self.writers_left[value as usize] += 1;
        }
    }
}

struct Search<'a> {
    /// Definite operations first (in call order), then optional ones.
    ops: Vec<SearchOp>,
    definite: usize,
    /// `events[HEAD]` is the head sentinel; the list ends with `NONE`.
    events: Vec<Event>,
    /// Per value: itself, or `UNREAD` for a value no operation reads or compares against.
    canonical: Vec<Value>,
    /// Per optional operation (indexed from `definite`): its class of interchangeable optional
    /// operations and its rank in the class by call time.
    class: Vec<(usize, usize)>,
    /// Optional swaps: (operation, expected value, the operations that write that value).
    optional_swaps: Vec<(usize, Value, Vec<usize>)>,
    /// Per operation: the order in which to try it among candidates (see `candidates`).
    priority: Vec<(u64, usize)>,
    values: &'a Interner,
    records: &'a [Record],
}

impl<'a> Search<'a> {
    fn new(mut ops: Vec<SearchOp>, values: &'a Interner, records: &'a [Record]) -> Search<'a> {
        ops.sort_by_key(|op| (op.return_ns.is_none(), op.call_ns, op.record));
        let definite = ops.iter().filter(|op| op.return_ns.is_some()).count();

        let mut compared = vec![false; values.len()];
        for op in &ops {
            match op.effect {
                Effect::Read(value)
                | Effect::Swap {
                    expected: value, ..
                }
                | Effect::NoSwap { expected: value } => compared[value as usize] = true,
                Effect::Write(_) => {}
            }
        }
        let canonical: Vec<Value> = (0..values.len())
            .map(|value| {
                let value = Value::try_from(value).expect("values fit their type");
                if compared[value as usize] || value == ABSENT {
                    value
                } else {
                    UNREAD
                }
            })
            .collect();
        let canonical_effect = |effect: Effect| match effect {
            Effect::Write(value) => Effect::Write(canonical[value as usize]),
            Effect::Swap { expected, new } => Effect::Swap {
                expected,
                new: canonical[new as usize],
            },
            other => other,
        };
        // Optional operations are sorted by call time, so ranks follow call order.
        let mut classes: HashMap<Effect, (usize, usize)> = HashMap::new();
        let mut class = Vec::with_capacity(ops.len() - definite);
        for op in &ops[definite..] {
            let next_class = classes.len();
            let entry = classes
                .entry(canonical_effect(op.effect))
                .or_insert((next_class, 0));
            class.push(*entry);
            entry.1 += 1;
        }
        let mut writers: HashMap<Value, Vec<usize>> = HashMap::new();
        for (index, op) in ops.iter().enumerate() {
            if let Some(value) = op.effect.written() {
                writers.entry(value).or_default().push(index);
            }
        }
        // A write is tried by the time its value is needed: the earliest return of a definite
        // operation that reads or expects it, if earlier than its own return.
        let mut needed_by_ns: HashMap<Value, u64> = HashMap::new();
        for op in &ops {
            if let (Some(return_ns), Some(value)) = (op.return_ns, op.effect.observed()) {
                let needed = needed_by_ns.entry(value).or_insert(return_ns);
                *needed = (*needed).min(return_ns);
            }
        }
        let priority = ops
            .iter()
            .enumerate()
            .map(|(index, op)| {
                let needed = op
                    .effect
                    .written()
                    .and_then(|value| needed_by_ns.get(&value).copied());
                let deadline = op.return_ns.unwrap_or(u64::MAX);
                (
                    needed.map_or(deadline, |needed| needed.min(deadline)),
                    index,
                )
            })
            .collect();
        let optional_swaps = (definite..ops.len())
            .filter_map(|index| match ops[index].effect {
                Effect::Swap { expected, .. } => Some((
                    index,
                    expected,
                    writers.get(&expected).cloned().unwrap_or_default(),
                )),
                _ => None,
            })
            .collect();

        // (time, return after call at equal times, op): a return and a call at the same instant
        // count as concurrent, which never rejects a history a finer clock would accept.
        let mut times: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * ops.len());
        for (index, op) in ops.iter().enumerate() {
            times.push((op.call_ns, false, index));
            if let Some(return_ns) = op.return_ns {
                times.push((return_ns, true, index));
            }
        }
        times.sort_unstable();
        let mut events = Vec::with_capacity(times.len() + 1);
        events.push(Event {
            op: NONE,
            matching_return: NONE,
            is_call: false,
            previous: NONE,
            next: NONE,
        });
        let mut call_event = vec![NONE; ops.len()];
        for (position, &(_, is_return, op)) in times.iter().enumerate() {
            let event = position + 1;
            if is_return {
                events[call_event[op]].matching_return = event;
            } else {
                call_event[op] = event;
            }
            events.push(Event {
                op,
                matching_return: NONE,
                is_call: !is_return,
                previous: event - 1,
                next: if position + 1 < times.len() {
                    event + 1
                } else {
                    NONE
                },
            });
        }
        events[HEAD].next = if times.is_empty() { NONE } else { 1 };
        Search {
            ops,
            definite,
            events,
            canonical,
            class,
            optional_swaps,
            priority,
            values,
            records,
        }
    }

    /// Removes a call event and its return event from the list.
    fn lift(&mut self, call: usize) {
        self.unlink(call);
        let matching = self.events[call].matching_return;
        if matching != NONE {
            self.unlink(matching);
        }
    }

    /// Undoes the latest `lift` (dancing links: the removed events still point at their old
    /// neighbours, which are back in the list because lifts are undone in reverse order).
    fn unlift(&mut self, call: usize) {
        let matching = self.events[call].matching_return;
        if matching != NONE {
            self.relink(matching);
        }
        self.relink(call);
    }

    fn unlink(&mut self, event: usize) {
        let Event { previous, next, .. } = self.events[event];
        self.events[previous].next = next;
        if next != NONE {
            self.events[next].previous = previous;
        }
    }

    fn relink(&mut self, event: usize) {
        let Event { previous, next, .. } = self.events[event];
        self.events[previous].next = event;
        if next != NONE {
            self.events[next].previous = event;
        }
    }

    /// The memo key of a configuration: two configurations with equal keys have exactly the same
    /// futures, so the second one need not be explored.
    fn memo_key(
        &self,
        linearized: &Linearized,
        register: Value,
        obligation: Option<Value>,
    ) -> Box<[u64]> {
        let obligation =
            obligation.map_or(u64::MAX, |value| u64::from(self.canonical[value as usize]));
        let mut key = linearized.memo_key(self.canonical[register as usize], obligation);
        for (op, expected, writers) in &self.optional_swaps {
            let (word, mask) = linearized.bit(*op, self.definite);
            let gone_for_good = register != *expected
                && writers
                    .iter()
                    .all(|&writer| linearized.contains(linearized.bit(writer, self.definite)));
            if gone_for_good {
                key[Linearized::MEMO_KEY_OPTIONAL_START + word - linearized.definite_words] |= mask;
            }
        }
        key
    }

    /// The call events that may be linearized next: those before the first return event still
    /// in the list (whose operation must take effect before anything called later). Earliest
    /// deadline first, where a write's deadline is also the earliest return of an operation
    /// that needs its value; optional operations nothing needs come last. Also returns that
    /// return event.
    fn candidates(&self, candidates: &mut Vec<usize>) -> usize {
        candidates.clear();
        let mut entry = self.events[HEAD].next;
        while entry != NONE && self.events[entry].is_call {
            candidates.push(entry);
            entry = self.events[entry].next;
        }
        candidates.sort_by_key(|&event| self.priority[self.events[event].op]);
        entry
    }

    fn run(mut self, steps_max: u64) -> Result<(), String> {
        struct Frame {
            call: usize,
            register_before: Value,
            /// Taken without trying alternatives: see `run`.
            forced: bool,
            /// Where to continue in the candidates of the configuration before this choice.
            next_candidate: usize,
            obligation_before: Option<Value>,
        }
        let mut linearized = Linearized::new(self.definite, self.ops.len() - self.definite);
        let mut memo = Memo::default();
        let mut frames: Vec<Frame> = Vec::new();
        let mut register = ABSENT;
        let mut definite_left = self.definite;
        // Per class of interchangeable optional operations: how many were linearized.
        let mut class_taken = vec![0usize; self.class.iter().map(|c| c.0 + 1).max().unwrap_or(0)];
        let mut needs = Needs::new(&self.ops[..self.definite], &self.ops, self.values.len());
        let mut stuck: Option<Stuck> = None;
        let mut candidates = Vec::new();
        let mut resume_at = 0;
        let mut steps: u64 = 0;
        // After an optional operation took effect, moving the register from this value: the next
        // operation must be one that the new value allows and the old one did not. Any
        // linearization can be brought to that form without changing what anything observed:
        // an optional operation followed by a write (or by nothing) can be dropped, and one
        // followed by an operation the old value allowed too (a read or failed swap, which
        // leave the register as it is) can be moved after that operation.
        let mut obligation: Option<Value> = None;
        while definite_left > 0 {
            let allowed = |effect: Effect| match obligation {
                None => true,
                Some(before) => {
                    !matches!(effect, Effect::Write(_)) && effect.step(before).is_none()
                }
            };
            let blocking_return = self.candidates(&mut candidates);
            // A definite operation is left, so its return event is still in the list.
            assert_ne!(blocking_return, NONE, "no return event left");
            let mut chosen = None;
            let mut forced = false;
            let mut options = resume_at..candidates.len();
            if resume_at == 0 {
                // A read or failed swap the register allows now can be linearized now, with no
                // alternative explored: in any linearization from here it can be moved to this
                // point (everything that returned before its call is already linearized, and it
                // leaves the register as it is), so this configuration succeeds iff that one does.
                let preserving = candidates.iter().position(|&event| {
                    let effect = self.ops[self.events[event].op].effect;
                    matches!(effect, Effect::Read(_) | Effect::NoSwap { .. })
                        && effect.step(register).is_some()
                        && allowed(effect)
                });
                if let Some(position) = preserving {
                    options = position..position + 1;
                    forced = true;
                }
            }
            for position in options {
                steps += 1;
                if steps > steps_max {
                    return Err(format!(
                        "undecided: the search gave up after {steps_max} steps (neither a \
                         linearization nor a proof that none exists was found; this is not a \
                         pass). {}",
                        self.report(stuck.as_ref())
                    ));
                }
                let op = self.events[candidates[position]].op;
                let in_turn = op < self.definite || {
                    let (class, rank) = self.class[op - self.definite];
                    class_taken[class] == rank
                };
                let effect = self.ops[op].effect;
                let Some(after) = effect.step(register).filter(|_| in_turn && allowed(effect))
                else {
                    continue;
                };
                let optional = op >= self.definite;
                // An optional operation that leaves the register as it was is never needed.
                if (optional && after == register)
                    || needs.would_lose(&self.ops[op], register, after)
                {
                    continue;
                }
                let bit = linearized.bit(op, self.definite);
                linearized.insert(bit);
                let obligation_after = optional.then_some(register);
                if memo.insert(self.memo_key(&linearized, after, obligation_after)) {
                    chosen = Some((position, after));
                    break;
                }
                linearized.remove(bit);
            }
            if let Some((position, after)) = chosen {
                let call = candidates[position];
                let op = self.events[call].op;
                frames.push(Frame {
                    call,
                    register_before: register,
                    forced,
                    next_candidate: position + 1,
                    obligation_before: obligation,
                });
                obligation = (op >= self.definite).then_some(register);
                register = after;
                needs.take(&self.ops[op], op < self.definite);
                if op < self.definite {
                    definite_left -= 1;
                } else {
                    class_taken[self.class[op - self.definite].0] += 1;
                }
                self.lift(call);
                resume_at = 0;
                continue;
            }
            // Nothing can take effect before the blocking operation must have: undo the latest
            // choice that had alternatives.
            let linearized_definite = self.definite - definite_left;
            if stuck
                .as_ref()
                .is_none_or(|s| linearized_definite > s.linearized_definite)
            {
                let tail = frames[frames.len().saturating_sub(REPORT_OPS_MAX)..]
                    .iter()
                    .map(|frame| self.events[frame.call].op)
                    .collect();
                let mut pending: Vec<(usize, Blocked)> = candidates
                    .iter()
                    .map(|&event| {
                        let op = self.events[event].op;
                        let blocked = match self.ops[op].effect.step(register) {
                            None => Blocked::Impossible,
                            Some(after) if needs.would_lose(&self.ops[op], register, after) => {
                                Blocked::LosesNeededValue
                            }
                            Some(_) => Blocked::DeadEnd,
                        };
                        (op, blocked)
                    })
                    .collect();
                pending.sort_by_key(|&(op, _)| (self.ops[op].call_ns, op));
                stuck = Some(Stuck {
                    linearized_definite,
                    register,
                    op: self.events[blocking_return].op,
                    candidates: pending,
                    tail,
                    linearized: linearized.words.clone(),
                });
            }
            loop {
                let Some(frame) = frames.pop() else {
                    return Err(format!(
                        "no linearization exists. {}",
                        self.report(stuck.as_ref())
                    ));
                };
                let op = self.events[frame.call].op;
                linearized.remove(linearized.bit(op, self.definite));
                if op < self.definite {
                    definite_left += 1;
                } else {
                    class_taken[self.class[op - self.definite].0] -= 1;
                }
                register = frame.register_before;
                obligation = frame.obligation_before;
                needs.untake(&self.ops[op], op < self.definite);
                self.unlift(frame.call);
                if !frame.forced {
                    resume_at = frame.next_candidate;
                    break;
                }
            }
        }
        Ok(())
    }

    fn line(&self, op: usize) -> String {
        let record = self.ops[op].record;
        describe(record, &self.records[record])
    }

    fn report(&self, stuck: Option<&Stuck>) -> String {
        use std::fmt::Write as _;
        let Some(stuck) = stuck else {
            return "The search never reached a return event.".to_string();
        };
        let mut text = String::new();
        let register = self.values.show(stuck.register);
        let _ = write!(
            text,
            "The longest partial linearization found orders {} of the key's {} definite \
             operations ({} unknown writes may also take effect); after it the register holds \
             {register}, and this operation has returned but cannot take effect:\n  {}",
            stuck.linearized_definite,
            self.definite,
            self.ops.len() - self.definite,
            self.line(stuck.op)
        );
        let _ = write!(
            text,
            "\nOperations that could take effect at that point (called and not yet linearized):"
        );
        for &(op, blocked) in stuck.candidates.iter().take(REPORT_OPS_MAX) {
            let why = match blocked {
                Blocked::Impossible => format!("impossible while the register holds {register}"),
                Blocked::LosesNeededValue => {
                    // Definite operations' bits are their indexes.
                    let observer = (0..self.definite).find(|&other| {
                        other != op
                            && self.ops[other].effect.observed() == Some(stuck.register)
                            && stuck.linearized[other / 64] & (1 << (other % 64)) == 0
                    });
                    match observer {
                        Some(observer) => format!(
                            "would overwrite {register} for good, but it is still needed by {}",
                            self.line(observer)
                        ),
                        None => format!("would overwrite {register} for good, but it is needed"),
                    }
                }
                Blocked::DeadEnd => {
                    "possible here, but no linearization continues through it".to_string()
                }
            };
            let _ = write!(text, "\n  {} ({why})", self.line(op));
        }
        if stuck.candidates.len() > REPORT_OPS_MAX {
            let _ = write!(
                text,
                "\n  ... and {} more",
                stuck.candidates.len() - REPORT_OPS_MAX
            );
        }
        let _ = write!(text, "\nEnd of that partial linearization (oldest first):");
        if stuck.tail.is_empty() {
            let _ = write!(text, "\n  (empty: no operation could take effect first)");
        }
        for &op in &stuck.tail {
            let _ = write!(text, "\n  {}", self.line(op));
        }
        text
    }
}

#[cfg(test)]
mod tests;
