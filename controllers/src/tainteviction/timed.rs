//! kube's `TimedWorkerQueue`: per pod, a deletion due at a time, cancellable. A deletion that
//! ran stays as done (so the same pod is not deleted twice) until it is cancelled (the pod is
//! gone). Driven by tokio's clock: the caller sleeps until [`next_due`](Timed::next_due) and
//! takes [`take_due`](Timed::take_due). No I/O.
//!
//! Bound: one entry per pod key; keys are pods of the watched cache (plus, briefly, pods
//! deleted since their deletion ran).

use std::collections::{BTreeSet, HashMap};

use tokio::time::Instant;

use super::tolerations::Verdict;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    Scheduled {
        created: Instant,
        fire: Instant,
    },
    /// Fired (running or ran); kept so the pod is not added again.
    Done,
}

#[derive(Debug, Default)]
pub struct Timed {
    work: HashMap<String, Work>,
    by_time: BTreeSet<(Instant, String)>,
}

impl Timed {
    pub fn get(&self, key: &str) -> Option<Work> {
        self.work.get(key).copied()
    }

    /// `AddWork`: nothing when the key already has work.
    pub fn add(&mut self, key: &str, created: Instant, fire: Instant) -> bool {
        if self.work.contains_key(key) {
            return false;
        }
        self.work
            .insert(key.to_string(), Work::Scheduled { created, fire });
        self.by_time.insert((fire, key.to_string()));
        true
    }

    /// `CancelWork`: true when the key had work (scheduled or done).
    pub fn cancel(&mut self, key: &str) -> bool {
        match self.work.remove(key) {
            Some(Work::Scheduled { fire, .. }) => {
                self.by_time.remove(&(fire, key.to_string()));
                true
            }
            Some(Work::Done) => true,
            None => false,
        }
    }

    pub fn next_due(&self) -> Option<Instant> {
        self.by_time.first().map(|(t, _)| *t)
    }

    /// The keys due at `now`, marked done.
    pub fn take_due(&mut self, now: Instant) -> Vec<String> {
        let mut out = Vec::new();
        while let Some((t, _)) = self.by_time.first() {
            if *t > now {
                break;
            }
            let Some((_, key)) = self.by_time.pop_first() else {
                break;
            };
            self.work.insert(key.clone(), Work::Done);
            out.push(key);
        }
        out
    }

    /// The deletion failed: forgotten, so a later event schedules it again (kube deletes the
    /// worker on error).
    pub fn failed(&mut self, key: &str) {
        if self.work.get(key) == Some(&Work::Done) {
            self.work.remove(key);
        }
    }

    /// kube's `processPodOnNode` on the timers: what `verdict` means for the pod `key` seen
    /// at `now`. Returns (a deletion was cancelled — the Event to record —, a deletion was
    /// scheduled).
    pub fn apply(&mut self, key: &str, verdict: Verdict, now: Instant) -> (bool, bool) {
        match verdict {
            Verdict::Keep => (self.cancel(key), false),
            Verdict::DeleteNow => {
                let cancelled = self.cancel(key);
                (cancelled, self.add(key, now, now))
            }
            Verdict::DeleteAfter(d) => {
                let trigger = now + d;
                let mut start = now;
                let mut cancelled = false;
                if let Some(Work::Scheduled { created, .. }) = self.get(key) {
                    start = created;
                    // The deletion scheduled earlier stands (it started counting first).
                    if start + d < trigger {
                        return (false, false);
                    }
                    cancelled = self.cancel(key);
                }
                (cancelled, self.add(key, start, trigger))
            }
        }
    }

    pub fn len(&self) -> usize {
        self.work.len()
    }

    pub fn is_empty(&self) -> bool {
        self.work.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn work_fires_once_when_due_and_can_be_cancelled() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut q = Timed::default();
        assert!(q.add("ns/a", t0, t0 + 5 * s));
        assert!(!q.add("ns/a", t0, t0), "one work per pod");
        assert!(q.add("ns/b", t0, t0 + 2 * s));
        assert_eq!(q.next_due(), Some(t0 + 2 * s));
        assert!(q.take_due(t0 + s).is_empty());
        assert_eq!(q.take_due(t0 + 2 * s), ["ns/b"]);
        assert_eq!(q.get("ns/b"), Some(Work::Done));
        assert!(!q.add("ns/b", t0, t0), "done work is not added again");
        assert!(q.cancel("ns/a"));
        assert!(q.take_due(t0 + 10 * s).is_empty());
        assert!(!q.cancel("ns/a"));
        assert!(q.cancel("ns/b"), "done work cancels too (the pod is gone)");
        assert!(q.is_empty());
        assert!(q.add("ns/c", t0, t0));
        assert_eq!(q.take_due(t0), ["ns/c"]);
        q.failed("ns/c");
        assert!(
            q.add("ns/c", t0, t0),
            "a failed deletion can be scheduled again"
        );
        assert_eq!(q.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn verdicts_schedule_cancel_and_keep_the_first_start() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut q = Timed::default();
        // Tolerated for 5 s: due at t0 + 5.
        assert_eq!(q.apply("p", Verdict::DeleteAfter(5 * s), t0), (false, true));
        // Seen again at t0 + 2 with the same toleration: the first schedule stands.
        assert_eq!(
            q.apply("p", Verdict::DeleteAfter(5 * s), t0 + 2 * s),
            (false, false)
        );
        assert_eq!(q.next_due(), Some(t0 + 5 * s));
        // The taint goes: cancelled (an Event).
        assert_eq!(q.apply("p", Verdict::Keep, t0 + 3 * s), (true, false));
        assert_eq!(q.apply("p", Verdict::Keep, t0 + 3 * s), (false, false));
        // Not tolerated: now, replacing any schedule.
        q.apply("p", Verdict::DeleteAfter(60 * s), t0 + 3 * s);
        assert_eq!(q.apply("p", Verdict::DeleteNow, t0 + 4 * s), (true, true));
        assert_eq!(q.take_due(t0 + 4 * s), ["p"]);
        // Fired: a new look while the pod lives cancels (Event) and schedules again, as kube's
        // processPodOnNode does for an untolerated taint.
        assert_eq!(q.apply("p", Verdict::DeleteNow, t0 + 5 * s), (true, true));
    }
}
