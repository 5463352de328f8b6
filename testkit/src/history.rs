//! Recorded client operations on per-key registers.

/// An operation on one key (a register). Values are strings; a missing key reads as `None`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Get {
        key: String,
    },
    Put {
        key: String,
        value: String,
    },
    /// Compare-and-swap: set `new` if the key's current value is `expected` (`None`: key absent).
    Cas {
        key: String,
        expected: Option<String>,
        new: String,
    },
}

impl Op {
    pub fn key(&self) -> &str {
        match self {
            Op::Get { key } | Op::Put { key, .. } | Op::Cas { key, .. } => key,
        }
    }
}

/// What the client learned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A read returned this value.
    Get(Option<String>),
    /// A put was acknowledged.
    Put,
    /// A compare-and-swap answered: `true` if it swapped.
    Cas(bool),
    /// Definitely had no effect (refused before it could be applied).
    Failed,
    /// May or may not have taken effect (timeout, connection lost after sending).
    Unknown,
}

/// One operation as the client saw it. Times are nanoseconds on one monotonic clock shared by all
/// clients of the run.
#[derive(Clone, Debug)]
pub struct Record {
    pub client: usize,
    pub op: Op,
    pub call_ns: u64,
    /// `None` when the outcome is `Unknown` (it may take effect at any later time).
    pub return_ns: Option<u64>,
    pub outcome: Outcome,
    /// The response header's revision, for operations that returned one.
    pub revision: Option<i64>,
}

/// A thread-safe, append-only log of records with a shared clock.
pub struct History {
    start: std::time::Instant,
    records: std::sync::Mutex<Vec<Record>>,
}

impl Default for History {
    fn default() -> Self {
        Self::new()
    }
}

impl History {
    pub fn new() -> History {
        History {
            start: std::time::Instant::now(),
            records: std::sync::Mutex::new(Vec::new()),
        }
    }
    /// Nanoseconds since the history was created.
    pub fn now_ns(&self) -> u64 {
        // u64 nanoseconds last 584 years: the conversion cannot saturate in a test run.
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
    pub fn push(&self, record: Record) {
        self.lock().push(record);
    }
    pub fn records(&self) -> Vec<Record> {
        self.lock().clone()
    }

    /// A client task that panicked while pushing must not hide every other client's records.
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Record>> {
        self.records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_keep_push_order_and_clock_is_monotonic() {
        let history = History::new();
        let first = history.now_ns();
        let second = history.now_ns();
        assert!(second >= first);
        for client in 0..3 {
            history.push(Record {
                client,
                op: Op::Get { key: "k".into() },
                call_ns: history.now_ns(),
                return_ns: Some(history.now_ns()),
                outcome: Outcome::Get(None),
                revision: Some(1),
            });
        }
        let records = history.records();
        assert_eq!(
            records.iter().map(|r| r.client).collect::<Vec<_>>(),
            vec![0, 1, 2]
        );
        assert!(records.windows(2).all(|w| w[0].call_ns <= w[1].call_ns));
    }

    #[test]
    fn history_is_shared_between_threads() {
        let history = std::sync::Arc::new(History::new());
        let threads: Vec<_> = (0..4)
            .map(|client| {
                let history = history.clone();
                std::thread::spawn(move || {
                    for _ in 0..100 {
                        let call_ns = history.now_ns();
                        history.push(Record {
                            client,
                            op: Op::Put {
                                key: "k".into(),
                                value: "v".into(),
                            },
                            call_ns,
                            return_ns: Some(history.now_ns()),
                            outcome: Outcome::Put,
                            revision: None,
                        });
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(history.records().len(), 400);
    }
}
