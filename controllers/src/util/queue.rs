//! A work queue with client-go's `workqueue` guarantees: a key waits in the queue at most once
//! however often it is added, a key being processed is never handed to a second worker (an add
//! meanwhile is kept and handed out after `done`), keys can be added after a delay, and failed
//! keys come back with a per-key exponential backoff.
//!
//! The backoff is client-go's `ItemExponentialFailureRateLimiter` (5 ms doubling per failure up
//! to 1000 s, reset by `forget`). client-go's default controller limiter also takes the maximum
//! with an overall 10 qps / 100 burst token bucket; that bucket is not done here.
//!
//! Bound: the queue, the delayed set, the processing set and the failure counts each hold a key
//! at most once, and keys name objects of the watched caches, so none outgrows the number of
//! objects (plus those deleted since their key was last handed out).

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// client-go's `DefaultControllerRateLimiter` per-item part: 5 ms, doubling, at most 1000 s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(5),
            max: Duration::from_secs(1000),
        }
    }
}

impl Backoff {
    /// The delay before retry number `failures + 1`.
    pub fn delay(&self, failures: u32) -> Duration {
        let factor = 1u32.checked_shl(failures).unwrap_or(0);
        if factor == 0 {
            return self.max;
        }
        self.base
            .checked_mul(factor)
            .unwrap_or(self.max)
            .min(self.max)
    }
}

#[derive(Default)]
struct State {
    queue: VecDeque<String>,
    /// Keys waiting in `queue`, or added while being processed.
    dirty: HashSet<String>,
    processing: HashSet<String>,
    /// Delayed keys: when each is due (the earliest asked for), and the same ordered by time.
    waiting: HashMap<String, Instant>,
    timers: BTreeSet<(Instant, String)>,
    failures: HashMap<String, u32>,
    shutting_down: bool,
}

impl State {
    /// Returns true when the key was put in the queue (a worker should be woken).
    fn add(&mut self, key: &str) -> bool {
        if self.shutting_down || self.dirty.contains(key) {
            return false;
        }
        self.dirty.insert(key.to_string());
        if self.processing.contains(key) {
            return false;
        }
        self.queue.push_back(key.to_string());
        true
    }

    fn promote_due(&mut self, now: Instant) {
        while let Some((at, _)) = self.timers.first() {
            if *at > now {
                break;
            }
            if let Some((_, key)) = self.timers.pop_first() {
                self.waiting.remove(&key);
                self.add(&key);
            }
        }
    }
}

/// A deduplicating, delaying, rate-limited queue of `namespace/name` keys.
pub struct WorkQueue {
    state: Mutex<State>,
    notify: Notify,
    backoff: Backoff,
}

impl Default for WorkQueue {
    fn default() -> Self {
        Self::new(Backoff::default())
    }
}

impl WorkQueue {
    pub fn new(backoff: Backoff) -> Self {
        WorkQueue {
            state: Mutex::new(State::default()),
            notify: Notify::new(),
            backoff,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `key` unless it is already queued.
    pub fn add(&self, key: &str) {
        if self.lock().add(key) {
            self.notify.notify_one();
        }
    }

    /// Queues `key` after `delay`; an earlier pending time for the key wins.
    pub fn add_after(&self, key: &str, delay: Duration) {
        if delay.is_zero() {
            return self.add(key);
        }
        let at = Instant::now() + delay;
        let mut st = self.lock();
        if st.shutting_down {
            return;
        }
        match st.waiting.get(key).copied() {
            Some(existing) if existing <= at => return,
            Some(existing) => {
                st.timers.remove(&(existing, key.to_string()));
            }
            None => {}
        }
        st.waiting.insert(key.to_string(), at);
        st.timers.insert((at, key.to_string()));
        drop(st);
        // A waiting worker may be sleeping towards a later deadline: let one recompute.
        self.notify.notify_one();
    }

    /// Queues `key` after its backoff, and counts the failure.
    pub fn add_rate_limited(&self, key: &str) {
        let delay = {
            let mut st = self.lock();
            let n = st.failures.entry(key.to_string()).or_insert(0);
            let d = self.backoff.delay(*n);
            *n = n.saturating_add(1);
            d
        };
        self.add_after(key, delay);
    }

    /// Clears the key's failure count (a sync succeeded).
    pub fn forget(&self, key: &str) {
        self.lock().failures.remove(key);
    }

    /// Failures counted for `key` since it was last forgotten.
    pub fn num_requeues(&self, key: &str) -> u32 {
        self.lock().failures.get(key).copied().unwrap_or(0)
    }

    /// Keys ready to be handed out.
    pub fn len(&self) -> usize {
        self.lock().queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits for a key to process; `None` once shut down. The caller must call `done(key)`.
    pub async fn get(&self) -> Option<String> {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            // Registered before looking, so an add between the look and the wait wakes us.
            notified.as_mut().enable();
            let deadline = {
                let mut st = self.lock();
                if st.shutting_down {
                    return None;
                }
                st.promote_due(Instant::now());
                if let Some(key) = st.queue.pop_front() {
                    st.dirty.remove(&key);
                    st.processing.insert(key.clone());
                    let more = !st.queue.is_empty();
                    drop(st);
                    if more {
                        // Due timers promoted here woke nobody: pass the wake-up on.
                        self.notify.notify_one();
                    }
                    return Some(key);
                }
                st.timers.first().map(|(at, _)| *at)
            };
            match deadline {
                Some(at) => {
                    tokio::select! {
                        _ = &mut notified => {}
                        _ = tokio::time::sleep_until(at) => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    /// Marks `key` processed; if it was added meanwhile, it is queued again.
    pub fn done(&self, key: &str) {
        let mut st = self.lock();
        st.processing.remove(key);
        if st.dirty.contains(key) && !st.shutting_down {
            st.queue.push_back(key.to_string());
            drop(st);
            self.notify.notify_one();
        }
    }

    /// Stops handing out keys: every `get` returns `None` from now on.
    pub fn shut_down(&self) {
        self.lock().shutting_down = true;
        self.notify.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    async fn next(q: &WorkQueue) -> String {
        tokio::time::timeout(Duration::from_secs(3600), q.get())
            .await
            .expect("a key within an hour")
            .expect("not shut down")
    }

    #[test]
    fn backoff_doubles_from_5ms_to_1000s() {
        let b = Backoff::default();
        assert_eq!(b.delay(0), Duration::from_millis(5));
        assert_eq!(b.delay(1), Duration::from_millis(10));
        assert_eq!(b.delay(10), Duration::from_millis(5 * 1024));
        assert_eq!(b.delay(17), Duration::from_millis(5 << 17));
        assert_eq!(
            b.delay(18),
            Duration::from_secs(1000),
            "5ms*2^18 = 1310s, capped"
        );
        assert_eq!(b.delay(40), Duration::from_secs(1000));
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(1000));
    }

    #[tokio::test(start_paused = true)]
    async fn a_key_is_queued_once_and_never_handed_out_twice_at_a_time() {
        let q = WorkQueue::default();
        q.add("ns/a");
        q.add("ns/a");
        q.add("ns/b");
        assert_eq!(q.len(), 2);
        assert_eq!(next(&q).await, "ns/a");
        // Added while processing: held back until done.
        q.add("ns/a");
        assert_eq!(next(&q).await, "ns/b");
        assert!(q.is_empty());
        let blocked = tokio::time::timeout(Duration::from_secs(1), q.get()).await;
        assert!(
            blocked.is_err(),
            "ns/a must not be handed out while processing"
        );
        q.done("ns/a");
        assert_eq!(next(&q).await, "ns/a");
        q.done("ns/a");
        q.done("ns/b");
        assert!(q.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn delayed_keys_come_at_their_time_and_the_earliest_wins() {
        let q = Arc::new(WorkQueue::default());
        let start = Instant::now();
        q.add_after("ns/a", Duration::from_secs(10));
        q.add_after("ns/a", Duration::from_secs(30));
        q.add_after("ns/b", Duration::from_secs(20));
        let worker = tokio::spawn({
            let q = q.clone();
            async move {
                let mut got = Vec::new();
                for _ in 0..2 {
                    let k = next(&q).await;
                    got.push((k.clone(), Instant::now() - start));
                    q.done(&k);
                }
                got
            }
        });
        // An earlier time for b, set while the worker sleeps towards a's.
        tokio::task::yield_now().await;
        q.add_after("ns/b", Duration::from_secs(5));
        let got = worker.await.expect("joins");
        assert_eq!(
            got,
            vec![
                ("ns/b".to_string(), Duration::from_secs(5)),
                ("ns/a".to_string(), Duration::from_secs(10)),
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn failures_back_off_exponentially_until_forgotten() {
        let q = WorkQueue::default();
        let mut delays = Vec::new();
        for _ in 0..4 {
            let t = Instant::now();
            q.add_rate_limited("ns/a");
            let k = next(&q).await;
            delays.push(Instant::now() - t);
            q.done(&k);
        }
        let ms = Duration::from_millis;
        assert_eq!(delays, vec![ms(5), ms(10), ms(20), ms(40)]);
        assert_eq!(q.num_requeues("ns/a"), 4);
        q.forget("ns/a");
        assert_eq!(q.num_requeues("ns/a"), 0);
        let t = Instant::now();
        q.add_rate_limited("ns/a");
        next(&q).await;
        assert_eq!(Instant::now() - t, ms(5));
    }

    #[tokio::test(start_paused = true)]
    async fn several_workers_share_keys_and_shut_down_together() {
        let q = Arc::new(WorkQueue::default());
        let (tx, mut rx) = tokio::sync::mpsc::channel(16);
        let mut workers = Vec::new();
        for _ in 0..3 {
            let (q, tx) = (q.clone(), tx.clone());
            workers.push(tokio::spawn(async move {
                while let Some(k) = q.get().await {
                    // Hold the key a while so the others must take the rest.
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    let _ = tx.send(k.clone()).await;
                    q.done(&k);
                }
            }));
        }
        let start = Instant::now();
        for k in ["ns/a", "ns/b", "ns/c"] {
            q.add(k);
        }
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(rx.recv().await.expect("a key"));
        }
        got.sort();
        assert_eq!(got, ["ns/a", "ns/b", "ns/c"]);
        assert_eq!(
            Instant::now() - start,
            Duration::from_secs(1),
            "processed in parallel"
        );
        q.shut_down();
        for w in workers {
            w.await.expect("worker stops");
        }
        q.add("ns/d");
        assert!(q.get().await.is_none());
    }
}
