//! A small metrics registry: counters, gauges and histograms with labels, rendered in the
//! Prometheus text format 0.0.4 (what kube's components serve on `/metrics`).
//!
//! `Metrics` is a cheap, clone-able handle; components register their families on it
//! (`metrics.counter("scheduler_schedule_attempts_total", "…", &["result", "profile"])`) and keep
//! the returned handle. Registering the same name again with the same type and labels returns the
//! same family, so two components in one process can share one registry. Every family holds at
//! most [`SERIES_PER_FAMILY_MAX`] label combinations: further ones are not recorded, and counted in
//! [`Metrics::dropped_series_total`].

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The most label combinations one family records.
pub const SERIES_PER_FAMILY_MAX: usize = 2000;

/// Prometheus' default histogram buckets, in seconds.
pub const DEFAULT_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// `count` buckets starting at `start`, each `factor` times the previous one (Prometheus'
/// `ExponentialBuckets`).
pub fn exponential_buckets(start: f64, factor: f64, count: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(count);
    let mut b = start;
    for _ in 0..count {
        out.push(b);
        b *= factor;
    }
    out
}

/// The registry handle. Clones share the registry.
#[derive(Clone, Default)]
pub struct Metrics {
    inner: Arc<Registry>,
}

#[derive(Default)]
struct Registry {
    families: Mutex<BTreeMap<String, Arc<Family>>>,
    dropped_series: AtomicU64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

struct Family {
    name: String,
    help: String,
    kind: Kind,
    label_names: Vec<String>,
    /// Upper bounds, strictly increasing, without +Inf.
    buckets: Vec<f64>,
    series: Mutex<BTreeMap<Vec<String>, Arc<Cell>>>,
    registry: std::sync::Weak<Registry>,
}

/// One series' value.
struct Cell {
    /// f64 bits (counter, gauge).
    value: AtomicU64,
    /// Histogram state; empty for counters and gauges.
    histogram: Mutex<HistogramState>,
}

#[derive(Default, Clone)]
struct HistogramState {
    /// Per bucket (not cumulative), plus one for +Inf.
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Cell {
    fn new(buckets: usize) -> Cell {
        Cell {
            value: AtomicU64::new(0f64.to_bits()),
            histogram: Mutex::new(HistogramState {
                counts: vec![0; if buckets == 0 { 0 } else { buckets + 1 }],
                sum: 0.0,
                count: 0,
            }),
        }
    }

    fn get(&self) -> f64 {
        f64::from_bits(self.value.load(Ordering::Relaxed))
    }

    fn set(&self, v: f64) {
        self.value.store(v.to_bits(), Ordering::Relaxed);
    }

    fn add(&self, d: f64) {
        let _ = self
            .value
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + d).to_bits())
            });
    }

    fn observe(&self, buckets: &[f64], v: f64) {
        let mut h = self.histogram.lock().unwrap_or_else(|e| e.into_inner());
        let i = buckets
            .iter()
            .position(|b| v <= *b)
            .unwrap_or(buckets.len());
        if let Some(c) = h.counts.get_mut(i) {
            *c += 1;
        }
        h.sum += v;
        h.count += 1;
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics::default()
    }

    /// A monotonically increasing value (`*_total`).
    pub fn counter(&self, name: &str, help: &str, labels: &[&str]) -> Counter {
        Counter(self.family(name, help, Kind::Counter, labels, &[]))
    }

    /// A value that goes up and down.
    pub fn gauge(&self, name: &str, help: &str, labels: &[&str]) -> Gauge {
        Gauge(self.family(name, help, Kind::Gauge, labels, &[]))
    }

    /// A distribution over `buckets` (upper bounds; sorted and deduplicated here; +Inf is implied).
    pub fn histogram(&self, name: &str, help: &str, labels: &[&str], buckets: &[f64]) -> Histogram {
        Histogram(self.family(name, help, Kind::Histogram, labels, buckets))
    }

    /// Label combinations not recorded because a family was full.
    pub fn dropped_series_total(&self) -> u64 {
        self.inner.dropped_series.load(Ordering::Relaxed)
    }

    fn family(
        &self,
        name: &str,
        help: &str,
        kind: Kind,
        labels: &[&str],
        buckets: &[f64],
    ) -> Arc<Family> {
        let mut buckets: Vec<f64> = buckets.iter().copied().filter(|b| b.is_finite()).collect();
        buckets.sort_by(f64::total_cmp);
        buckets.dedup();
        if kind == Kind::Histogram && buckets.is_empty() {
            buckets = DEFAULT_BUCKETS.to_vec();
        }
        let label_names: Vec<String> = labels.iter().map(|l| l.to_string()).collect();
        let fresh = || {
            let f = Arc::new(Family {
                name: name.to_string(),
                help: help.to_string(),
                kind,
                label_names: label_names.clone(),
                buckets: buckets.clone(),
                series: Mutex::new(BTreeMap::new()),
                registry: Arc::downgrade(&self.inner),
            });
            if label_names.is_empty() {
                // An unlabelled metric is rendered (as 0) from the start, as Prometheus' clients do.
                f.series
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(Vec::new(), Arc::new(Cell::new(f.buckets.len())));
            }
            f
        };
        let well_formed = valid_name(name)
            && labels.iter().all(|l| {
                valid_name(l) && !l.starts_with("__") && !(kind == Kind::Histogram && *l == "le")
            });
        if !well_formed {
            tracing::error!(
                name,
                ?labels,
                "invalid metric or label name: metric not exported"
            );
            return fresh();
        }
        let mut families = self
            .inner
            .families
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(existing) = families.get(name) {
            if existing.kind == kind
                && existing.label_names == label_names
                && existing.buckets == buckets
            {
                return existing.clone();
            }
            tracing::error!(
                name,
                "metric registered twice with a different type, labels or buckets: the second is not exported"
            );
            return fresh();
        }
        let f = fresh();
        families.insert(name.to_string(), f.clone());
        f
    }

    /// The registry in the Prometheus text format 0.0.4; families and series sorted by name.
    pub fn render(&self) -> String {
        let families: Vec<Arc<Family>> = self
            .inner
            .families
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        let mut out = String::new();
        for f in families {
            f.render(&mut out);
        }
        out
    }
}

impl Family {
    /// The series for `values`; a detached one (recorded nowhere) when the label count is wrong
    /// or the family is full.
    fn series(&self, values: &[&str]) -> Arc<Cell> {
        if values.len() != self.label_names.len() {
            debug_assert!(
                false,
                "metric {}: {} label values for labels {:?}",
                self.name,
                values.len(),
                self.label_names
            );
            return Arc::new(Cell::new(self.buckets.len()));
        }
        let key: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = series.get(&key) {
            return c.clone();
        }
        if series.len() >= SERIES_PER_FAMILY_MAX {
            if let Some(r) = self.registry.upgrade() {
                let n = r.dropped_series.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_power_of_two() {
                    tracing::warn!(metric = %self.name, dropped_series_total = n, "metric has too many label combinations: new ones are not recorded");
                }
            }
            return Arc::new(Cell::new(self.buckets.len()));
        }
        let c = Arc::new(Cell::new(self.buckets.len()));
        series.insert(key, c.clone());
        c
    }

    fn render(&self, out: &mut String) {
        let series: Vec<(Vec<String>, Arc<Cell>)> = self
            .series
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if series.is_empty() {
            return;
        }
        let _ = writeln!(out, "# HELP {} {}", self.name, escape_help(&self.help));
        let _ = writeln!(out, "# TYPE {} {}", self.name, self.kind.as_str());
        for (values, cell) in series {
            let labels: Vec<(&str, &str)> = self
                .label_names
                .iter()
                .map(String::as_str)
                .zip(values.iter().map(String::as_str))
                .collect();
            match self.kind {
                Kind::Counter | Kind::Gauge => {
                    sample(out, &self.name, "", &labels, None, cell.get());
                }
                Kind::Histogram => {
                    let h = cell
                        .histogram
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .clone();
                    let mut cumulative = 0u64;
                    for (i, bound) in self.buckets.iter().enumerate() {
                        cumulative += h.counts.get(i).copied().unwrap_or(0);
                        let le = format_value(*bound);
                        sample(
                            out,
                            &self.name,
                            "_bucket",
                            &labels,
                            Some(&le),
                            cumulative as f64,
                        );
                    }
                    sample(
                        out,
                        &self.name,
                        "_bucket",
                        &labels,
                        Some("+Inf"),
                        h.count as f64,
                    );
                    sample(out, &self.name, "_sum", &labels, None, h.sum);
                    sample(out, &self.name, "_count", &labels, None, h.count as f64);
                }
            }
        }
    }
}

fn sample(
    out: &mut String,
    name: &str,
    suffix: &str,
    labels: &[(&str, &str)],
    le: Option<&str>,
    v: f64,
) {
    out.push_str(name);
    out.push_str(suffix);
    if !labels.is_empty() || le.is_some() {
        out.push('{');
        let mut first = true;
        for (k, val) in labels.iter().copied().chain(le.map(|le| ("le", le))) {
            if !first {
                out.push(',');
            }
            first = false;
            let _ = write!(out, "{k}=\"{}\"", escape_label_value(val));
        }
        out.push('}');
    }
    out.push(' ');
    out.push_str(&format_value(v));
    out.push('\n');
}

fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

fn escape_label_value(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

/// A counter family. Clones share it.
#[derive(Clone)]
pub struct Counter(Arc<Family>);

impl Counter {
    pub fn inc(&self, label_values: &[&str]) {
        self.add(label_values, 1.0);
    }

    /// Adds `v`; negative or non-finite values are ignored (a counter only goes up).
    pub fn add(&self, label_values: &[&str], v: f64) {
        self.with(label_values).add(v);
    }

    pub fn get(&self, label_values: &[&str]) -> f64 {
        self.with(label_values).get()
    }

    /// The series for these label values, to keep on a hot path.
    pub fn with(&self, label_values: &[&str]) -> CounterSeries {
        CounterSeries(self.0.series(label_values))
    }
}

/// One counter series.
#[derive(Clone)]
pub struct CounterSeries(Arc<Cell>);

impl CounterSeries {
    pub fn inc(&self) {
        self.add(1.0);
    }

    pub fn add(&self, v: f64) {
        if v.is_finite() && v >= 0.0 {
            self.0.add(v);
        }
    }

    pub fn get(&self) -> f64 {
        self.0.get()
    }
}

/// A gauge family. Clones share it.
#[derive(Clone)]
pub struct Gauge(Arc<Family>);

impl Gauge {
    pub fn set(&self, label_values: &[&str], v: f64) {
        self.with(label_values).set(v);
    }

    pub fn inc(&self, label_values: &[&str]) {
        self.with(label_values).add(1.0);
    }

    pub fn dec(&self, label_values: &[&str]) {
        self.with(label_values).add(-1.0);
    }

    pub fn add(&self, label_values: &[&str], v: f64) {
        self.with(label_values).add(v);
    }

    pub fn get(&self, label_values: &[&str]) -> f64 {
        self.with(label_values).get()
    }

    /// The series for these label values, to keep on a hot path.
    pub fn with(&self, label_values: &[&str]) -> GaugeSeries {
        GaugeSeries(self.0.series(label_values))
    }
}

/// One gauge series.
#[derive(Clone)]
pub struct GaugeSeries(Arc<Cell>);

impl GaugeSeries {
    pub fn set(&self, v: f64) {
        self.0.set(v);
    }

    pub fn add(&self, v: f64) {
        self.0.add(v);
    }

    pub fn get(&self) -> f64 {
        self.0.get()
    }
}

/// A histogram family. Clones share it.
#[derive(Clone)]
pub struct Histogram(Arc<Family>);

impl Histogram {
    pub fn observe(&self, label_values: &[&str], v: f64) {
        self.with(label_values).observe(v);
    }

    /// The series for these label values, to keep on a hot path.
    pub fn with(&self, label_values: &[&str]) -> HistogramSeries {
        HistogramSeries {
            family: self.0.clone(),
            cell: self.0.series(label_values),
        }
    }
}

/// One histogram series.
#[derive(Clone)]
pub struct HistogramSeries {
    family: Arc<Family>,
    cell: Arc<Cell>,
}

impl HistogramSeries {
    pub fn observe(&self, v: f64) {
        if !v.is_nan() {
            self.cell.observe(&self.family.buckets, v);
        }
    }

    /// Observations so far and their sum.
    pub fn count_and_sum(&self) -> (u64, f64) {
        let h = self
            .cell
            .histogram
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        (h.count, h.sum)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_gauges_in_text_format() {
        let m = Metrics::new();
        let attempts = m.counter(
            "scheduler_schedule_attempts_total",
            "Number of attempts to schedule pods, by the result.",
            &["result", "profile"],
        );
        attempts.inc(&["scheduled", "default-scheduler"]);
        attempts.add(&["scheduled", "default-scheduler"], 2.0);
        attempts.inc(&["unschedulable", "default-scheduler"]);
        attempts.add(&["error", "default-scheduler"], -5.0); // ignored, but the series exists
        let up = m.gauge("leader_election_master_status", "Leader or not.", &["name"]);
        up.set(&["kube-scheduler"], 1.0);
        let plain = m.gauge("process_open_fds", "Open fds.", &[]);
        plain.set(&[], 12.5);
        // A labelled family without series is not rendered at all.
        let _ = m.counter("unused_total", "Unused.", &["x"]);

        let text = m.render();
        assert_eq!(
            text,
            "# HELP leader_election_master_status Leader or not.\n\
             # TYPE leader_election_master_status gauge\n\
             leader_election_master_status{name=\"kube-scheduler\"} 1\n\
             # HELP process_open_fds Open fds.\n\
             # TYPE process_open_fds gauge\n\
             process_open_fds 12.5\n\
             # HELP scheduler_schedule_attempts_total Number of attempts to schedule pods, by the result.\n\
             # TYPE scheduler_schedule_attempts_total counter\n\
             scheduler_schedule_attempts_total{result=\"error\",profile=\"default-scheduler\"} 0\n\
             scheduler_schedule_attempts_total{result=\"scheduled\",profile=\"default-scheduler\"} 3\n\
             scheduler_schedule_attempts_total{result=\"unschedulable\",profile=\"default-scheduler\"} 1\n"
        );
    }

    #[test]
    fn renders_histograms_cumulatively() {
        let m = Metrics::new();
        let h = m.histogram(
            "scheduler_scheduling_attempt_duration_seconds",
            "Scheduling attempt latency.",
            &["result"],
            &[0.1, 0.01, 1.0, 0.1],
        );
        // Powers of two, so that the sum is exact.
        for v in [0.0078125, 0.0625, 0.0625, 0.5, 3.0] {
            h.observe(&["scheduled"], v);
        }
        let text = m.render();
        let expected = "\
# HELP scheduler_scheduling_attempt_duration_seconds Scheduling attempt latency.
# TYPE scheduler_scheduling_attempt_duration_seconds histogram
scheduler_scheduling_attempt_duration_seconds_bucket{result=\"scheduled\",le=\"0.01\"} 1
scheduler_scheduling_attempt_duration_seconds_bucket{result=\"scheduled\",le=\"0.1\"} 3
scheduler_scheduling_attempt_duration_seconds_bucket{result=\"scheduled\",le=\"1\"} 4
scheduler_scheduling_attempt_duration_seconds_bucket{result=\"scheduled\",le=\"+Inf\"} 5
scheduler_scheduling_attempt_duration_seconds_sum{result=\"scheduled\"} 3.6328125
scheduler_scheduling_attempt_duration_seconds_count{result=\"scheduled\"} 5
";
        assert_eq!(text, expected);
        assert_eq!(h.with(&["scheduled"]).count_and_sum().0, 5);
    }

    #[test]
    fn escapes_help_and_label_values() {
        let m = Metrics::new();
        let c = m.counter("x_total", "a \\ b\nc", &["path"]);
        c.inc(&["say \"hi\"\\\n"]);
        let text = m.render();
        assert!(text.contains("# HELP x_total a \\\\ b\\nc\n"), "{text}");
        assert!(
            text.contains("x_total{path=\"say \\\"hi\\\"\\\\\\n\"} 1\n"),
            "{text}"
        );
    }

    #[test]
    fn registering_twice_shares_the_family() {
        let m = Metrics::new();
        let a = m.counter("events_total", "h", &["k"]);
        let b = m.clone().counter("events_total", "h", &["k"]);
        a.inc(&["v"]);
        b.inc(&["v"]);
        assert_eq!(a.get(&["v"]), 2.0);
        // A clash is not exported, and does not disturb the first.
        let clash = m.gauge("events_total", "h", &["k"]);
        clash.set(&["v"], 100.0);
        assert!(m.render().contains("events_total{k=\"v\"} 2\n"));
        assert!(!m.render().contains("100"));
    }

    #[test]
    fn label_cardinality_is_bounded() {
        let m = Metrics::new();
        let c = m.counter("requests_total", "h", &["id"]);
        for i in 0..(SERIES_PER_FAMILY_MAX + 10) {
            c.inc(&[&i.to_string()]);
        }
        assert_eq!(m.dropped_series_total(), 10);
        let lines = m
            .render()
            .lines()
            .filter(|l| l.starts_with("requests_total{"))
            .count();
        assert_eq!(lines, SERIES_PER_FAMILY_MAX);
        // Existing series keep counting.
        c.inc(&["0"]);
        assert_eq!(c.get(&["0"]), 2.0);
    }

    #[test]
    fn invalid_names_are_not_exported() {
        let m = Metrics::new();
        m.counter("bad-name", "h", &[]).inc(&[]);
        m.histogram("h_seconds", "h", &["le"], &[1.0])
            .observe(&["x"], 1.0);
        assert_eq!(m.render(), "");
    }

    #[test]
    fn values_format_like_prometheus() {
        assert_eq!(format_value(1.0), "1");
        assert_eq!(format_value(0.25), "0.25");
        assert_eq!(format_value(f64::INFINITY), "+Inf");
        assert_eq!(format_value(f64::NAN), "NaN");
        assert_eq!(
            exponential_buckets(0.001, 2.0, 3),
            vec![0.001, 0.002, 0.004]
        );
    }
}
