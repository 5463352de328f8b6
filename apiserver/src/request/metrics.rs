//! Prometheus metrics under kube-apiserver's names, so dashboards and alerts written for it read
//! ours: `apiserver_request_total`, `apiserver_request_duration_seconds`,
//! `apiserver_longrunning_requests`, `apiserver_storage_objects`, `apiserver_watch_cache_*`,
//! `apiserver_current_inflight_requests`. The router counts requests, the watch handler holds a
//! `WatchGuard`; rendering is given the watch caches' and in-flight budgets' numbers, so this file
//! knows nothing of the app.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::request::info::RequestLabels;

/// kube-apiserver's request-duration buckets (seconds).
const BUCKETS: &[f64] = &[
    0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0,
    10.0, 15.0, 20.0, 30.0, 45.0, 60.0,
];

/// Distinct label sets kept: verbs × resources × codes is small, but a bound keeps a client
/// that invents paths from growing the registry.
const SERIES_MAX: usize = 10_000;

#[derive(Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

#[derive(Default)]
struct Inner {
    totals: BTreeMap<(RequestKey, u16), u64>,
    durations: BTreeMap<RequestKey, Histogram>,
}

type RequestKey = (String, String, String, String, String, String);

fn key(l: &RequestLabels) -> RequestKey {
    (
        l.verb.to_string(),
        l.group.to_string(),
        l.version.to_string(),
        l.resource.to_string(),
        l.subresource.clone(),
        l.scope.to_string(),
    )
}

#[derive(Default, Clone)]
pub struct Metrics {
    inner: Arc<Mutex<Inner>>,
    watches: Arc<AtomicI64>,
}

/// Counts an open watch while alive.
pub struct WatchGuard(Arc<AtomicI64>);

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn count(&self, l: &RequestLabels, code: u16) {
        let mut g = self.lock();
        let k = (key(l), code);
        if g.totals.len() < SERIES_MAX || g.totals.contains_key(&k) {
            *g.totals.entry(k).or_insert(0) += 1;
        }
    }

    pub fn observe(&self, l: &RequestLabels, code: u16, took: Duration) {
        self.count(l, code);
        let mut g = self.lock();
        let k = key(l);
        if g.durations.len() >= SERIES_MAX && !g.durations.contains_key(&k) {
            return;
        }
        let h = g.durations.entry(k).or_default();
        if h.counts.is_empty() {
            h.counts = vec![0; BUCKETS.len()];
        }
        let secs = took.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                h.counts[i] += 1;
            }
        }
        h.sum += secs;
        h.count += 1;
    }

    pub fn watch_guard(&self) -> WatchGuard {
        self.watches.fetch_add(1, Ordering::Relaxed);
        WatchGuard(self.watches.clone())
    }

    /// The text exposition format; `objects` are (resource, count) from the watch caches.
    pub fn render_with(&self, objects: &[(String, usize, i64)]) -> String {
        let g = self.lock();
        let mut out = String::new();
        let labels = |k: &RequestKey| {
            format!(
                "component=\"apiserver\",dry_run=\"\",group=\"{}\",resource=\"{}\",scope=\"{}\",subresource=\"{}\",verb=\"{}\",version=\"{}\"",
                k.1, k.3, k.5, k.4, k.0, k.2
            )
        };
        out.push_str("# HELP apiserver_request_total Counter of apiserver requests broken out for each verb, dry run value, group, version, resource, scope, component, and HTTP response code.\n# TYPE apiserver_request_total counter\n");
        for ((k, code), n) in &g.totals {
            let _ = writeln!(
                out,
                "apiserver_request_total{{code=\"{code}\",{}}} {n}",
                labels(k)
            );
        }
        out.push_str("# HELP apiserver_request_duration_seconds Response latency distribution in seconds for each verb, dry run value, group, version, resource, subresource, scope and component.\n# TYPE apiserver_request_duration_seconds histogram\n");
        for (k, h) in &g.durations {
            let l = labels(k);
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "apiserver_request_duration_seconds_bucket{{{l},le=\"{b}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(
                out,
                "apiserver_request_duration_seconds_bucket{{{l},le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "apiserver_request_duration_seconds_sum{{{l}}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "apiserver_request_duration_seconds_count{{{l}}} {}",
                h.count
            );
        }
        out.push_str("# HELP apiserver_longrunning_requests Gauge of all active long-running apiserver requests broken out by verb, group, version, resource, scope and component.\n# TYPE apiserver_longrunning_requests gauge\n");
        let _ = writeln!(
            out,
            "apiserver_longrunning_requests{{component=\"apiserver\",verb=\"WATCH\"}} {}",
            self.watches.load(Ordering::Relaxed)
        );
        out.push_str("# HELP apiserver_storage_objects Number of stored objects at the time of last check split by kind.\n# TYPE apiserver_storage_objects gauge\n");
        for (res, n, _) in objects {
            let _ = writeln!(out, "apiserver_storage_objects{{resource=\"{res}\"}} {n}");
        }
        out.push_str("# HELP apiserver_watch_cache_resource_version Current resource version of watch cache broken by resource type.\n# TYPE apiserver_watch_cache_resource_version gauge\n");
        for (res, _, rv) in objects {
            let _ = writeln!(
                out,
                "apiserver_watch_cache_resource_version{{resource=\"{res}\"}} {rv}"
            );
        }
        out
    }
}

impl Metrics {
    /// The whole exposition: `render_with`'s families plus the in-flight gauge, whose
    /// `inflight` are (request_kind, requests being served) per budget.
    pub fn render(&self, objects: &[(String, usize, i64)], inflight: &[(&str, usize)]) -> String {
        let mut out = self.render_with(objects);
        out.push_str("# HELP apiserver_current_inflight_requests Number of requests being served now, per in-flight budget (request_kind).\n# TYPE apiserver_current_inflight_requests gauge\n");
        for (kind, current) in inflight {
            let _ = writeln!(
                out,
                "apiserver_current_inflight_requests{{request_kind=\"{kind}\"}} {current}"
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::default();
        let l = RequestLabels {
            verb: "LIST",
            group: "",
            version: "v1",
            resource: "pods",
            subresource: String::new(),
            scope: "namespace",
        };
        m.observe(&l, 200, Duration::from_millis(30));
        m.observe(&l, 200, Duration::from_millis(3));
        let text = m.render_with(&[("pods".into(), 3, 42)]);
        assert!(text.contains("apiserver_request_total{code=\"200\",component=\"apiserver\",dry_run=\"\",group=\"\",resource=\"pods\",scope=\"namespace\",subresource=\"\",verb=\"LIST\",version=\"v1\"} 2"));
        assert!(text.contains("le=\"0.005\"} 1"));
        assert!(text.contains("le=\"0.05\"} 2"));
        assert!(text.contains("apiserver_storage_objects{resource=\"pods\"} 3"));
        let text = m.render(&[], &[("readOnly", 2), ("mutating", 0)]);
        assert!(text.contains("apiserver_current_inflight_requests{request_kind=\"readOnly\"} 2\n"));
        assert!(text.contains("apiserver_current_inflight_requests{request_kind=\"mutating\"} 0\n"));
    }
}
