//! The scheduler's metrics, registered on a `mainstay_component::Metrics` registry (so the
//! component's `/metrics` serves them) under kube-scheduler's names:
//! `scheduler_schedule_attempts_total{result,profile}`,
//! `scheduler_pod_scheduling_sli_duration_seconds` (first queued → bound; kube's buckets
//! `0.01 · 2^i`, i < 20) and `scheduler_pending_pods{queue}`; plus two of our own,
//! `scheduler_queue_full_total` and `scheduler_assumed_pods_expired_total`.

use std::time::Duration;

use mainstay_component::metrics::{
    exponential_buckets, CounterSeries, GaugeSeries, HistogramSeries, Metrics as Registry,
};

use crate::queue::QueueCounts;

/// Attempt results, as kube labels them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptResult {
    Scheduled,
    Unschedulable,
    Error,
}

/// Handles on the scheduler's series (cheap to update on the hot path).
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    scheduled: CounterSeries,
    unschedulable: CounterSeries,
    error: CounterSeries,
    e2e: HistogramSeries,
    pending_active: GaugeSeries,
    pending_backoff: GaugeSeries,
    pending_unschedulable: GaugeSeries,
    pending_gated: GaugeSeries,
    queue_full: CounterSeries,
    assumed_expired: CounterSeries,
}

impl Metrics {
    /// Registers the scheduler's families on `registry`; `profile` is the scheduler name
    /// (kube's `profile` label).
    pub fn new(registry: &Registry, profile: &str) -> Metrics {
        let attempts = registry.counter(
            "scheduler_schedule_attempts_total",
            "Number of attempts to schedule pods, by the result. 'unschedulable' means a pod could not be scheduled, while 'error' means an internal scheduler problem.",
            &["result", "profile"],
        );
        let e2e = registry.histogram(
            "scheduler_pod_scheduling_sli_duration_seconds",
            "E2e latency for a pod being scheduled, from the time the pod enters the scheduling queue until it is bound.",
            &[],
            &exponential_buckets(0.01, 2.0, 20),
        );
        let pending = registry.gauge(
            "scheduler_pending_pods",
            "Number of pending pods, by the queue type. 'active' means number of pods in activeQ; 'backoff' means number of pods in backoffQ; 'unschedulable' means number of pods in unschedulablePods that the scheduler attempted to schedule and failed; 'gated' is the number of unschedulable pods that the scheduler never attempted to schedule because they are gated.",
            &["queue"],
        );
        let queue_full = registry.counter(
            "scheduler_queue_full_total",
            "Pending pods not queued because the scheduling queue was full.",
            &[],
        );
        let assumed_expired = registry.counter(
            "scheduler_assumed_pods_expired_total",
            "Assumed pods whose binding the pod watch never confirmed.",
            &[],
        );
        Metrics {
            registry: registry.clone(),
            scheduled: attempts.with(&["scheduled", profile]),
            unschedulable: attempts.with(&["unschedulable", profile]),
            error: attempts.with(&["error", profile]),
            e2e: e2e.with(&[]),
            pending_active: pending.with(&["active"]),
            pending_backoff: pending.with(&["backoff"]),
            pending_unschedulable: pending.with(&["unschedulable"]),
            pending_gated: pending.with(&["gated"]),
            queue_full: queue_full.with(&[]),
            assumed_expired: assumed_expired.with(&[]),
        }
    }

    fn series(&self, r: AttemptResult) -> &CounterSeries {
        match r {
            AttemptResult::Scheduled => &self.scheduled,
            AttemptResult::Unschedulable => &self.unschedulable,
            AttemptResult::Error => &self.error,
        }
    }

    pub fn attempt(&self, r: AttemptResult) {
        self.series(r).inc();
    }

    pub fn attempts(&self, r: AttemptResult) -> u64 {
        self.series(r).get() as u64
    }

    /// A pod was bound `d` after it was first queued.
    pub fn observe_e2e(&self, d: Duration) {
        self.e2e.observe(d.as_secs_f64());
    }

    pub fn set_pending(&self, c: QueueCounts) {
        // A pod being scheduled or bound is still pending: kube counts it as active.
        self.pending_active.set((c.active + c.in_flight) as f64);
        self.pending_backoff.set(c.backoff as f64);
        self.pending_unschedulable.set(c.unschedulable as f64);
        self.pending_gated.set(c.gated as f64);
    }

    pub fn queue_full(&self) {
        self.queue_full.inc();
    }

    pub fn assumed_expired(&self, n: usize) {
        self.assumed_expired.add(n as f64);
    }

    /// The whole registry (the scheduler's families and anything else registered on it) in
    /// Prometheus' text format.
    pub fn render_prometheus(&self) -> String {
        self.registry.render()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histogram_and_gauges() {
        let m = Metrics::new(&Registry::new(), "default-scheduler");
        m.attempt(AttemptResult::Scheduled);
        m.attempt(AttemptResult::Scheduled);
        m.attempt(AttemptResult::Unschedulable);
        assert_eq!(m.attempts(AttemptResult::Scheduled), 2);
        m.observe_e2e(Duration::from_millis(15));
        m.observe_e2e(Duration::from_secs(3));
        m.set_pending(QueueCounts {
            active: 2,
            backoff: 1,
            unschedulable: 4,
            gated: 0,
            in_flight: 1,
        });
        let text = m.render_prometheus();
        for line in [
            "scheduler_schedule_attempts_total{result=\"scheduled\",profile=\"default-scheduler\"} 2",
            "scheduler_schedule_attempts_total{result=\"unschedulable\",profile=\"default-scheduler\"} 1",
            "scheduler_schedule_attempts_total{result=\"error\",profile=\"default-scheduler\"} 0",
            "scheduler_pod_scheduling_sli_duration_seconds_bucket{le=\"0.01\"} 0",
            "scheduler_pod_scheduling_sli_duration_seconds_bucket{le=\"0.02\"} 1",
            "scheduler_pod_scheduling_sli_duration_seconds_bucket{le=\"2.56\"} 1",
            "scheduler_pod_scheduling_sli_duration_seconds_bucket{le=\"5.12\"} 2",
            "scheduler_pod_scheduling_sli_duration_seconds_bucket{le=\"+Inf\"} 2",
            "scheduler_pod_scheduling_sli_duration_seconds_count 2",
            "scheduler_pending_pods{queue=\"active\"} 3",
            "scheduler_pending_pods{queue=\"unschedulable\"} 4",
            "scheduler_queue_full_total 0",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
    }
}
