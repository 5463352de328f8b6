//! When each node's next heartbeat (Lease renewal, status post) is due. One `Periodic` holds
//! the due times of every node of the process in a heap, so one task serves them all. The
//! first round is spread evenly over the interval, and each later period is stretched by up
//! to 4% (client-go's `JitterUntil(.., 0.04, ..)` that kubelet's lease controller uses), so
//! thousands of nodes never beat in step. Failures retry sooner, with kubelet's backoff from
//! 200 ms doubling to 7 s. No I/O; time is passed in.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use tokio::time::Instant;

/// Extra length of each period, as a fraction of it (kubelet and kwok: 0.04).
pub const JITTER_FACTOR: f64 = 0.04;
/// First retry after a failed heartbeat (kubelet's lease controller).
pub const RETRY_INITIAL: Duration = Duration::from_millis(200);
/// Longest wait between retries (kubelet's `maxBackoff` for leases).
pub const RETRY_MAX: Duration = Duration::from_secs(7);

/// `base * 2^(failures-1)`, capped at `max`; `failures` counts the failed tries so far
/// (at least 1).
pub fn backoff(base: Duration, max: Duration, failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(30);
    base.saturating_mul(1u32 << doublings).min(max)
}

/// splitmix64: a tiny deterministic generator, so schedules are reproducible in tests.
#[derive(Debug, Clone)]
pub struct SplitMix(u64);

impl SplitMix {
    pub fn new(seed: u64) -> SplitMix {
        SplitMix(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[derive(Debug, Clone)]
struct Slot {
    /// None while the slot's work is running (it is then not in the heap).
    due: Option<Instant>,
    failures: u32,
    /// When the slot last succeeded.
    last_ok: Option<Instant>,
}

/// Due times of `n` slots repeating every `interval`.
#[derive(Debug, Clone)]
pub struct Periodic {
    interval: Duration,
    slots: Vec<Slot>,
    /// (due, slot); an entry whose due differs from its slot's is stale and skipped.
    heap: BinaryHeap<Reverse<(Instant, usize)>>,
    rng: SplitMix,
}

impl Periodic {
    /// Slot `i` of `n` is first due at `start + interval * i / n`.
    pub fn new(n: usize, start: Instant, interval: Duration, seed: u64) -> Periodic {
        let mut p = Periodic {
            interval,
            slots: Vec::with_capacity(n),
            heap: BinaryHeap::with_capacity(n),
            rng: SplitMix::new(seed),
        };
        for i in 0..n {
            let offset = interval.mul_f64(i as f64 / n as f64);
            let due = start + offset;
            p.slots.push(Slot {
                due: Some(due),
                failures: 0,
                last_ok: None,
            });
            p.heap.push(Reverse((due, i)));
        }
        p
    }

    /// The earliest due time, if any slot is waiting.
    pub fn next_due(&mut self) -> Option<Instant> {
        self.drop_stale();
        self.heap.peek().map(|Reverse((due, _))| *due)
    }

    /// A slot due at or before `now`, taken out until `finish` is called for it.
    pub fn pop_due(&mut self, now: Instant) -> Option<usize> {
        self.drop_stale();
        match self.heap.peek() {
            Some(Reverse((due, slot))) if *due <= now => {
                let slot = *slot;
                self.heap.pop();
                self.slots[slot].due = None;
                Some(slot)
            }
            _ => None,
        }
    }

    /// The slot's work ended at `now`: next due one jittered interval later, or after a
    /// backoff when it failed. Ignored for a slot that is not running.
    pub fn finish(&mut self, slot: usize, ok: bool, now: Instant) {
        let Some(s) = self.slots.get_mut(slot) else {
            return;
        };
        if s.due.is_some() {
            return;
        }
        let wait = if ok {
            s.failures = 0;
            s.last_ok = Some(now);
            self.interval
                .mul_f64(1.0 + JITTER_FACTOR * self.rng.next_f64())
        } else {
            s.failures = s.failures.saturating_add(1);
            backoff(RETRY_INITIAL, RETRY_MAX, s.failures).min(self.interval)
        };
        let due = now + wait;
        s.due = Some(due);
        self.heap.push(Reverse((due, slot)));
    }

    /// Brings a waiting slot forward to no later than `last success + min_gap` (and not before
    /// `now`): a change that should be reported soon, but not more often than `min_gap`.
    /// A running slot is left alone (its next due time is set when it finishes).
    pub fn expedite(&mut self, slot: usize, now: Instant, min_gap: Duration) {
        let Some(s) = self.slots.get_mut(slot) else {
            return;
        };
        let Some(due) = s.due else {
            return;
        };
        let earliest = s.last_ok.map_or(now, |t| (t + min_gap).max(now));
        if earliest < due {
            s.due = Some(earliest);
            self.heap.push(Reverse((earliest, slot)));
        }
    }

    /// Makes the slot due now (unless its work is running).
    pub fn due_now(&mut self, slot: usize, now: Instant) {
        let Some(s) = self.slots.get_mut(slot) else {
            return;
        };
        if s.due.is_some() {
            s.due = Some(now);
            self.heap.push(Reverse((now, slot)));
        }
    }

    /// Consecutive failures of a slot.
    #[cfg(test)]
    pub fn failures(&self, slot: usize) -> u32 {
        self.slots.get(slot).map_or(0, |s| s.failures)
    }

    fn drop_stale(&mut self) {
        while let Some(Reverse((due, slot))) = self.heap.peek() {
            if self.slots[*slot].due == Some(*due) {
                return;
            }
            self.heap.pop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn backoff_doubles_from_200ms_to_7s() {
        let b = |n| backoff(RETRY_INITIAL, RETRY_MAX, n);
        assert_eq!(b(1), Duration::from_millis(200));
        assert_eq!(b(2), Duration::from_millis(400));
        assert_eq!(b(5), Duration::from_millis(3200));
        assert_eq!(b(6), Duration::from_millis(6400));
        assert_eq!(b(7), RETRY_MAX);
        assert_eq!(b(1000), RETRY_MAX);
    }

    #[test]
    fn first_round_is_spread_over_the_interval() {
        let t0 = Instant::now();
        let mut p = Periodic::new(1000, t0, 10 * SEC, 1);
        // In each tenth of the interval, a tenth of the nodes.
        let mut per_second = [0usize; 10];
        let mut popped = 0;
        for s in 0..10u64 {
            let now = t0 + Duration::from_secs(s) + Duration::from_millis(999);
            while p.pop_due(now).is_some() {
                per_second[s as usize] += 1;
                popped += 1;
            }
        }
        assert_eq!(popped, 1000);
        assert!(per_second.iter().all(|&n| n == 100), "{per_second:?}");
    }

    #[test]
    fn success_waits_an_interval_with_at_most_4_percent_jitter() {
        let t0 = Instant::now();
        let mut p = Periodic::new(200, t0, 10 * SEC, 7);
        let mut waits = Vec::new();
        let mut now = t0 + 10 * SEC;
        while let Some(slot) = p.pop_due(now) {
            p.finish(slot, true, now);
        }
        // Every slot is waiting again; none is due within 10 s.
        assert!(p.next_due().unwrap() >= now + 10 * SEC);
        now += 11 * SEC;
        while let Some(slot) = p.pop_due(now) {
            waits.push(slot);
        }
        assert_eq!(waits.len(), 200);
        // Not all at once: the jitter gives different due times.
        let mut q = Periodic::new(2, t0, 10 * SEC, 7);
        let a = q.pop_due(t0).unwrap();
        q.finish(a, true, t0);
        let d1 = q.next_due().unwrap();
        assert!(d1 >= t0 + 5 * SEC);
    }

    #[test]
    fn failure_retries_with_backoff_and_resets_on_success() {
        let t0 = Instant::now();
        let mut p = Periodic::new(1, t0, 10 * SEC, 3);
        let s = p.pop_due(t0).unwrap();
        assert_eq!(
            p.pop_due(t0),
            None,
            "a running slot is not handed out twice"
        );
        p.finish(s, false, t0);
        assert_eq!(p.next_due(), Some(t0 + Duration::from_millis(200)));
        let t1 = t0 + Duration::from_millis(200);
        let s = p.pop_due(t1).unwrap();
        p.finish(s, false, t1);
        assert_eq!(p.next_due(), Some(t1 + Duration::from_millis(400)));
        assert_eq!(p.failures(0), 2);
        let t2 = t1 + Duration::from_millis(400);
        let s = p.pop_due(t2).unwrap();
        p.finish(s, true, t2);
        assert_eq!(p.failures(0), 0);
        let due = p.next_due().unwrap();
        assert!(due >= t2 + 10 * SEC && due < t2 + Duration::from_millis(10_400));
    }

    #[test]
    fn expedite_honours_the_minimum_gap() {
        let t0 = Instant::now();
        let mut p = Periodic::new(1, t0, 300 * SEC, 3);
        let s = p.pop_due(t0).unwrap();
        p.finish(s, true, t0);
        // A change 2 s after the last post is reported 10 s after it, not at once.
        p.expedite(0, t0 + 2 * SEC, 10 * SEC);
        assert_eq!(p.next_due(), Some(t0 + 10 * SEC));
        assert_eq!(p.pop_due(t0 + 9 * SEC), None);
        assert_eq!(p.pop_due(t0 + 10 * SEC), Some(0));
        // Only one entry is live: the stale one (at ~300 s) is skipped.
        p.finish(0, true, t0 + 10 * SEC);
        p.expedite(0, t0 + 30 * SEC, 10 * SEC);
        assert_eq!(p.pop_due(t0 + 30 * SEC), Some(0));
        assert_eq!(p.next_due(), None);
        // Expediting a running slot does nothing.
        p.expedite(0, t0 + 31 * SEC, 10 * SEC);
        assert_eq!(p.next_due(), None);
    }

    #[test]
    fn due_now_skips_the_minimum_gap() {
        let t0 = Instant::now();
        let mut p = Periodic::new(1, t0, 300 * SEC, 3);
        let s = p.pop_due(t0).unwrap();
        p.finish(s, true, t0);
        // A restarted node posts at once, whatever its last post.
        p.due_now(0, t0 + SEC);
        assert_eq!(p.pop_due(t0 + SEC), Some(0));
        // A running slot is left alone.
        p.due_now(0, t0 + 2 * SEC);
        assert_eq!(p.next_due(), None);
    }
}
