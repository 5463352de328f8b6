//! Results on disk: `results.json` (everything measured), `results.md` (the tables), PNG charts of
//! throughput and p99 latency, and the generated part of `docs/benchmarks.md`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::apiserver::ApiserverResults;
use crate::controlplane::results::{
    ControlPlaneResults, KUBE_SCHEDULING_FLOOR_PODS_PER_SEC, KUBE_STARTUP_SLO_P99_MS,
    STARTUP_TARGET_P99_MS,
};
use crate::harness::{Results, WorkloadResult};
use crate::systems::System;
use crate::Error;

/// The generated part of `docs/benchmarks.md` sits between these lines; the rest of the file
/// (the optimisation log) is kept as written.
pub const BEGIN_MARKER: &str = "<!-- results:begin (written by `mainstay bench`) -->";
pub const END_MARKER: &str = "<!-- results:end -->";

/// Writes the results into `out_dir` and, if given, the generated part of `doc`. Chart links in
/// the doc are relative to the doc's directory.
pub fn write(results: &Results, out_dir: &Path, doc: Option<&Path>) -> Result<(), Error> {
    std::fs::create_dir_all(out_dir).map_err(Error::io(out_dir))?;
    let json = out_dir.join("results.json");
    std::fs::write(&json, serde_json::to_string_pretty(results)?).map_err(Error::io(&json))?;
    let mut charts = Vec::new();
    if !results.workloads.is_empty() {
        let throughput = out_dir.join("throughput.png");
        bar_chart(
            &throughput,
            "Throughput (operations/s, log scale; higher is better)",
            results,
            |w, s| (!w.spec.fixed_rate()).then(|| w.get(s).throughput),
        )?;
        let latency = out_dir.join("latency-p99.png");
        bar_chart(
            &latency,
            "p99 latency (ms, log scale; lower is better)",
            results,
            |w, s| Some(w.get(s).latency.p99_ms),
        )?;
        charts.push(("Throughput", throughput));
        charts.push(("p99 latency", latency));
    }
    let doc_dir = doc.and_then(Path::parent).unwrap_or(out_dir);
    let links: Vec<(&str, String)> = charts
        .iter()
        .map(|(title, path)| (*title, relative(path, doc_dir)))
        .collect();
    let markdown = markdown(results, &links);
    let md = out_dir.join("results.md");
    std::fs::write(&md, &markdown).map_err(Error::io(&md))?;
    if let Some(doc) = doc {
        let old = std::fs::read_to_string(doc).unwrap_or_default();
        let new = splice(&old, &markdown);
        std::fs::write(doc, new).map_err(Error::io(doc))?;
    }
    Ok(())
}

/// `path` relative to `base` when it lies under it, else as given.
fn relative(path: &Path, base: &Path) -> String {
    let abs = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let (p, b) = (abs(path), abs(base));
    p.strip_prefix(&b)
        .map(Path::to_path_buf)
        .unwrap_or(p)
        .display()
        .to_string()
}

/// `doc` with the text between the markers replaced by `generated` (the markers are added, at the
/// top after the title, if missing).
pub fn splice(doc: &str, generated: &str) -> String {
    let block = format!("{BEGIN_MARKER}\n{generated}{END_MARKER}\n");
    if let (Some(b), Some(e)) = (doc.find(BEGIN_MARKER), doc.find(END_MARKER)) {
        if b < e {
            let tail = &doc[e + END_MARKER.len()..];
            let tail = tail.strip_prefix('\n').unwrap_or(tail);
            return format!("{}{block}{tail}", &doc[..b]);
        }
    }
    if doc.trim().is_empty() {
        return format!("# Benchmarks: Mainstay and etcd side by side\n\n{block}");
    }
    match doc.find('\n') {
        Some(i) if doc.starts_with("# ") => format!("{}\n\n{block}{}", &doc[..i], &doc[i + 1..]),
        _ => format!("{block}\n{doc}"),
    }
}

fn ratio_cell(r: Option<f64>) -> String {
    r.map_or("—".into(), |r| format!("{r:.2}"))
}

fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.0}", bytes as f64 / 1024.0 / 1024.0)
}

/// The markdown tables.
pub fn markdown(results: &Results, charts: &[(&str, String)]) -> String {
    let m = &results.machine;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Run on {} UTC with `{}`, taking {:.1} minutes.\n\nMachine: {} ({} cores), {:.1} GiB \
         memory, Linux {}. etcd {}; Mainstay {}. Each system is {} member(s) on loopback, data on \
         the same file system, both fsyncing their log before acknowledging a write.\n",
        results.started,
        results.command,
        results.duration_seconds / 60.0,
        m.cpu,
        m.cores,
        m.memory_gib,
        m.kernel,
        m.etcd_version,
        m.mainstay_version,
        results.members
    );
    if !results.workloads.is_empty() {
        let rounds = results.workloads[0].runs.len() / 2;
        let _ = writeln!(
            out,
            "### Workloads\n\nEach workload ran {rounds} times on each system, alternating \
             (Mainstay, etcd, Mainstay, ...); the figures combine the runs. Ratio columns are \
             Mainstay over etcd: throughput ≥ 1.00 and p99 ≤ 1.00 mean Mainstay is at or ahead \
             of etcd.\n"
        );
        let _ = writeln!(
            out,
            "| Workload | Conns × clients | Ops per run | Mainstay ops/s | etcd ops/s | Throughput \
             ratio | Mainstay p99 ms | etcd p99 ms | p99 ratio | Errors (M/e) | |\n|---|---|---|\
             ---:|---:|---:|---:|---:|---:|---|---|"
        );
        for w in &results.workloads {
            let tput = |s: System| {
                if w.spec.fixed_rate() {
                    format!("{:.0} (fixed rate)", w.get(s).throughput)
                } else {
                    format!("{:.0}", w.get(s).throughput)
                }
            };
            let _ = writeln!(
                out,
                "| {} | {} × {} | {} | {} | {} | {} | {} | {} | {:.2} | {}/{} | {} |",
                w.spec.name,
                w.spec.conns,
                w.spec.clients,
                w.spec.total,
                tput(System::Mainstay),
                tput(System::Etcd),
                ratio_cell(w.throughput_ratio()),
                ms(w.mainstay.latency.p99_ms),
                ms(w.etcd.latency.p99_ms),
                w.p99_ratio(),
                w.mainstay.errors,
                w.etcd.errors,
                if w.ahead() { "✅" } else { "❌" }
            );
        }
        let ahead = results.workloads.iter().filter(|w| w.ahead()).count();
        let _ = writeln!(
            out,
            "\nMainstay is at or ahead of etcd on {ahead} of {} workloads.\n",
            results.workloads.len()
        );
        let _ = writeln!(
            out,
            "#### Latency detail (ms)\n\n| Workload | System | p50 | p90 | p99 | p99.9 | max |\n\
             |---|---|---:|---:|---:|---:|---:|"
        );
        for w in &results.workloads {
            for s in System::BOTH {
                let l = w.get(s).latency;
                let _ = writeln!(
                    out,
                    "| {} | {s} | {} | {} | {} | {} | {} |",
                    w.spec.name,
                    ms(l.p50_ms),
                    ms(l.p90_ms),
                    ms(l.p99_ms),
                    ms(l.p999_ms),
                    ms(l.max_ms)
                );
            }
        }
        let _ = writeln!(
            out,
            "\n#### Resources (all members together)\n\nCPU is the members' CPU time during \
             the workload's runs per 1000 operations; memory is resident memory after the \
             last run; disk is the data directories after it.\n\n| Workload | Mainstay CPU s/1k \
             ops | etcd CPU s/1k ops | Mainstay RSS MiB | etcd RSS MiB | Mainstay disk MiB | \
             etcd disk MiB |\n|---|---:|---:|---:|---:|---:|---:|"
        );
        for w in &results.workloads {
            let cpu = |s: System| {
                let c = w.get(s);
                format!("{:.3}", c.cpu_seconds * 1000.0 / (c.ops.max(1) as f64))
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} |",
                w.spec.name,
                cpu(System::Mainstay),
                cpu(System::Etcd),
                mib(w.mainstay.rss_bytes),
                mib(w.etcd.rss_bytes),
                mib(w.mainstay.disk_bytes),
                mib(w.etcd.disk_bytes)
            );
        }
        out.push('\n');
        for (title, link) in charts {
            let _ = writeln!(out, "![{title}]({link})\n");
        }
    }
    if !results.scale.is_empty() {
        let _ = writeln!(
            out,
            "### Scale checks\n\nOn a fresh cluster of each system.\n"
        );
        let keys: Vec<_> = System::BOTH
            .iter()
            .filter_map(|s| {
                results
                    .scale
                    .get(s)
                    .and_then(|r| r.keys.as_ref())
                    .map(|k| (s, k))
            })
            .collect();
        if !keys.is_empty() {
            let _ = writeln!(
                out,
                "| Keys loaded | System | Load puts/s (100 × 1000) | Errors | RSS per key per \
                 member | Disk per key per member | RSS after (3 members) | Disk after (3 \
                 members) |\n|---|---|---:|---:|---:|---:|---:|---:|"
            );
            for (s, k) in keys {
                let _ = writeln!(
                    out,
                    "| {} | {s} | {:.0} | {} | {:.0} B | {:.0} B | {} MiB | {} MiB |",
                    k.keys,
                    k.load_throughput,
                    k.load_errors,
                    k.rss_bytes_per_key,
                    k.disk_bytes_per_key,
                    mib(k.rss_bytes_after),
                    mib(k.disk_bytes_after)
                );
            }
            out.push('\n');
        }
        let _ = writeln!(
            out,
            "| Watchers on one member | System | Opened in | Memory per watcher | Fan-out p50 ms \
             | p99 ms | max ms | Delivered |\n|---|---|---:|---:|---:|---:|---:|---|"
        );
        for s in System::BOTH {
            for w in results.scale.get(&s).map_or(&[][..], |r| &r.watchers[..]) {
                let _ = writeln!(
                    out,
                    "| {} | {s} | {:.1} s | {:.0} B | {} | {} | {} | {} of {} |",
                    w.watchers,
                    w.open_seconds,
                    w.rss_bytes_per_watcher,
                    ms(w.latency.p50_ms),
                    ms(w.latency.p99_ms),
                    ms(w.latency.max_ms),
                    w.delivered,
                    w.expected
                );
            }
        }
        out.push('\n');
    }
    if let Some(api) = &results.apiserver {
        out.push_str(&apiserver_markdown(api));
    }
    if let Some(plane) = &results.control_plane {
        out.push_str(&control_plane_markdown(plane));
    }
    out
}

/// Operations per second: whole numbers, two decimals below 10 (a 10 000-pod list takes seconds).
fn rate(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.0}")
    }
}

fn verdict_cell(v: Option<bool>) -> &'static str {
    match v {
        Some(true) => "✅",
        Some(false) => "❌",
        None => "—",
    }
}

/// The tables of the control-plane benchmark.
pub fn control_plane_markdown(plane: &ControlPlaneResults) -> String {
    let mut out = String::from(
        "### Control plane\n\nMainstay's scheduler, controller-manager and simulated nodes (each \
         its own process, through a kubeconfig) over one `mainstay apiserver` in front of a \
         fresh 3-member cluster of each store, per shape. The shapes are Kubernetes' own \
         (scheduler_perf, ClusterLoader2); the figures they are held to are named in each \
         table.\n\n",
    );
    let errors = |e: &crate::controlplane::results::Errors| e.count.to_string();
    if let Some(r) = plane.scheduling.first() {
        let _ = writeln!(
            out,
            "#### Scheduling throughput\n\nscheduler_perf's SchedulingBasic: {} Node objects \
             (no kubelets), {} pods placed first, then {} measured pods created by {} concurrent \
             clients while `mainstay scheduler` places them. Throughput is the mean of 1 s \
             samples of bindings observed by a watch, from the first binding to the last, as \
             scheduler_perf's SchedulingThroughput average; \"overall\" counts from the first \
             create sent. kube-scheduler's CI floor for this test is {:.0} pods/s. \
             \"Scheduler alone\": the scheduler stops, as many pods again are created, and a \
             fresh scheduler places them (mean of 1 s samples; its CPU over that phase), so \
             that creating pods does not set the pace.\n\n\
             | Store | pods/s (mean of 1 s) | median 1 s | lowest 1 s | overall pods/s | \
             create→bound p50 ms | p99 ms | scheduler CPU s | apiserver CPU s | store CPU s | \
             scheduler alone pods/s | its CPU s | Errors | ≥ {:.0} |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
            r.nodes,
            r.init_pods,
            r.pods,
            plane.options.as_ref().map_or(0, |o| o.concurrency),
            KUBE_SCHEDULING_FLOOR_PODS_PER_SEC,
            KUBE_SCHEDULING_FLOOR_PODS_PER_SEC,
        );
        for r in &plane.scheduling {
            let _ = writeln!(
                out,
                "| {} | {:.0} | {:.0} | {:.0} | {:.0} | {} | {} | {:.1} | {:.1} | {:.1} | {:.0} | \
                 {:.1} | {} | {} |",
                r.system,
                r.throughput,
                r.throughput_p50,
                r.throughput_min,
                r.throughput_overall,
                ms(r.create_to_bound.p50_ms),
                ms(r.create_to_bound.p99_ms),
                r.usage.scheduler_cpu_seconds,
                r.usage.apiserver_cpu_seconds,
                r.usage.store_cpu_seconds,
                r.drain_throughput,
                r.drain_usage.scheduler_cpu_seconds,
                errors(&r.errors),
                verdict_cell(Some(r.meets_floor())),
            );
        }
        out.push('\n');
    }
    if let Some(r) = plane.startup.first() {
        let _ = writeln!(
            out,
            "#### Pod startup latency\n\nClusterLoader2's density shape on {} simulated nodes: \
             {} one-replica Deployments ({} per node; pods asking 1m cpu and 10M) created at {} \
             per second, through the controller-manager, the scheduler and the nodes \
             ({} ms in ContainerCreating). Startup is kube's SLI: from the pod's creation to its \
             Running status with every container started, both observed by a watch. Kubernetes' \
             SLO is p99 ≤ {:.0} s; our target is p99 ≤ {:.0} s.\n\n\
             | Store | pods Running | startup p50 ms | p90 ms | p99 ms | max ms | \
             created→bound p99 ms | bound→Running p99 ms | Deployment→Running p99 ms | Errors | \
             SLO | target |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
            r.nodes,
            r.pods,
            r.pods / r.nodes.max(1),
            r.rate,
            r.pod_start_delay_ms,
            KUBE_STARTUP_SLO_P99_MS / 1000.0,
            STARTUP_TARGET_P99_MS / 1000.0,
        );
        for r in &plane.startup {
            let _ = writeln!(
                out,
                "| {} | {}/{} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r.system,
                r.startup.samples,
                r.pods,
                ms(r.startup.p50_ms),
                ms(r.startup.p90_ms),
                ms(r.startup.p99_ms),
                ms(r.startup.max_ms),
                ms(r.created_to_bound.p99_ms),
                ms(r.bound_to_running.p99_ms),
                ms(r.deployment_to_running.p99_ms),
                errors(&r.errors),
                verdict_cell(Some(r.meets_slo())),
                verdict_cell(Some(r.meets_target())),
            );
        }
        out.push('\n');
    }
    if let Some(r) = plane.node_scale.first() {
        let _ = writeln!(
            out,
            "#### Simulated node scale\n\n{} nodes in one `mainstay nodes` process, then {} pods \
             (created by 1 client with {} requests in flight, placed by the scheduler). Memory per \
             node is the process's resident memory with every node Ready less a one-node \
             process's, per node; per pod, its growth once every pod runs. Then {} s of \
             heartbeats only (each node renews its Lease every 10 s and reports its status every \
             5 min): what reached the store and what it cost.\n\n\
             | Store | register s | all Running s | KiB per node | KiB per pod | process MiB | \
             store writes/s | apiserver CPU % | store CPU % (3 members) | nodes CPU % | \
             apiserver MiB | store MiB | Errors |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            r.nodes,
            r.pods,
            plane.options.as_ref().map_or(0, |o| o.concurrency),
            r.heartbeats.seconds.round(),
        );
        for r in &plane.node_scale {
            let h = &r.heartbeats;
            let pct = |cpu: f64| format!("{:.1}", 100.0 * h.per_second(cpu));
            let _ = writeln!(
                out,
                "| {} | {:.1} | {:.1} | {:.1} | {:.2} | {} | {:.1} | {} | {} | {} | {} | {} | {} |",
                r.system,
                r.register_seconds,
                r.running_seconds,
                r.rss_per_node() / 1024.0,
                r.rss_per_pod() / 1024.0,
                mib(r.pods_rss_bytes),
                h.per_second(h.store_writes as f64),
                pct(h.apiserver_cpu_seconds),
                pct(h.store_cpu_seconds),
                pct(h.nodes_cpu_seconds),
                mib(h.apiserver_rss_bytes),
                mib(h.store_rss_bytes),
                errors(&r.errors),
            );
        }
        out.push('\n');
    }
    out
}

/// The tables of the benchmark through the apiserver.
pub fn apiserver_markdown(api: &ApiserverResults) -> String {
    let o = &api.options;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "### Through the apiserver\n\nOne `mainstay apiserver` per system (plain HTTP on \
         loopback, watch cache on) in front of its 3-member cluster; the same pod workload on \
         both, each phase on both (Mainstay first in odd rounds, etcd first in even ones), \
         {} round(s). Per round: create {} pods \
         (~1.5 KB) with {} closed-loop clients, get each, list all of them {} times paginated \
         (`limit={}`) and {} times with `resourceVersion=0`, patch {} of them at {}/s while a \
         watch on the namespace reports them (delay to each event from the patch's response, \
         and from just before the patch was sent; an event that beats the response counts 0), \
         then update (PUT with resourceVersion) and delete each. Latency is measured by the \
         client, request sent to body read. The ratio is Mainstay's p99 over etcd's (≤ 1.00: \
         Mainstay at or ahead). SLO: Kubernetes' API call latency SLOs (mutating and \
         single-object calls p99 ≤ 1 s, lists p99 ≤ 30 s).\n",
        api.rounds,
        o.pods,
        o.concurrency,
        o.lists,
        o.page_size,
        o.lists,
        o.watch_events,
        o.watch_rate
    );
    let _ = writeln!(
        out,
        "| Operation | Mainstay p50 ms | Mainstay p99 ms | etcd p50 ms | etcd p99 ms | p99 ratio \
         | Mainstay ops/s | etcd ops/s | Errors (M/e) | SLO | Mainstay | etcd |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---|---|---|---|"
    );
    for op in &api.operations {
        let tput = |s: System| {
            let t = rate(op.get(s).throughput);
            if op.fixed_rate {
                format!("{t} (fixed rate)")
            } else {
                t
            }
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {:.2} | {} | {} | {}/{} | {} | {} | {} |",
            op.name,
            ms(op.mainstay.latency.p50_ms),
            ms(op.mainstay.latency.p99_ms),
            ms(op.etcd.latency.p50_ms),
            ms(op.etcd.latency.p99_ms),
            op.p99_ratio(),
            tput(System::Mainstay),
            tput(System::Etcd),
            op.mainstay.errors,
            op.etcd.errors,
            op.slo_label(),
            verdict_cell(op.slo_verdict(System::Mainstay)),
            verdict_cell(op.slo_verdict(System::Etcd)),
        );
    }
    let overall = |s: System| match api.slo_met(s) {
        Some(true) => "meets every SLO",
        Some(false) => "misses an SLO",
        None => "has no SLO verdict",
    };
    let _ = writeln!(
        out,
        "\nMainstay {}; etcd {}.\n",
        overall(System::Mainstay),
        overall(System::Etcd)
    );
    let _ = writeln!(
        out,
        "#### Through the apiserver: detail\n\n| Operation | System | Count | Errors | p50 ms | \
         p90 ms | p99 ms | max ms | ops/s |\n|---|---|---:|---:|---:|---:|---:|---:|---:|"
    );
    for op in &api.operations {
        for s in System::BOTH {
            let st = op.get(s);
            let _ = writeln!(
                out,
                "| {} | {s} | {} | {} | {} | {} | {} | {} | {} |",
                op.name,
                st.count,
                st.errors,
                ms(st.latency.p50_ms),
                ms(st.latency.p90_ms),
                ms(st.latency.p99_ms),
                ms(st.latency.max_ms),
                rate(st.throughput)
            );
        }
    }
    out.push('\n');
    out
}

const MAINSTAY_COLOR: RGBColor = RGBColor(0x1f, 0x77, 0xb4);
const ETCD_COLOR: RGBColor = RGBColor(0xff, 0x7f, 0x0e);

/// Registers a TrueType font for the charts (plotters draws text with ab_glyph, no system font
/// library); the first of the usual DejaVu locations that exists.
fn register_font() -> Result<(), Error> {
    static REGISTERED: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            const CANDIDATES: &[&str] = &[
                "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
                "/usr/share/fonts/TTF/DejaVuSans.ttf",
                "/usr/share/fonts/dejavu/DejaVuSans.ttf",
            ];
            let path = std::env::var_os("MAINSTAY_BENCH_FONT")
                .map(PathBuf::from)
                .into_iter()
                .chain(CANDIDATES.iter().map(PathBuf::from))
                .find(|p| p.exists())
                .ok_or(
                    "no TrueType font found: install fonts-dejavu-core (scripts/setup.sh) or set \
                        MAINSTAY_BENCH_FONT",
                )?;
            let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            plotters::style::register_font("sans-serif", FontStyle::Normal, Box::leak(bytes.into()))
                .map_err(|_| format!("{} is not a usable font", path.display()))
        })
        .clone()
        .map_err(Error::Chart)
}

/// Horizontal grouped bars, one group per workload, Mainstay above etcd, on a log axis.
fn bar_chart(
    path: &Path,
    title: &str,
    results: &Results,
    value: impl Fn(&WorkloadResult, System) -> Option<f64>,
) -> Result<(), Error> {
    register_font()?;
    let chart_err = |e: &dyn std::fmt::Display| Error::Chart(format!("{}: {e}", path.display()));
    let rows: Vec<(&str, Option<f64>, Option<f64>)> = results
        .workloads
        .iter()
        .map(|w| {
            (
                w.spec.name.as_str(),
                value(w, System::Mainstay),
                value(w, System::Etcd),
            )
        })
        .collect();
    let values = rows
        .iter()
        .flat_map(|r| [r.1, r.2])
        .flatten()
        .filter(|v| *v > 0.0);
    let (lo, hi) = values.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo > hi {
        return Ok(());
    }
    let (lo, hi) = (
        10f64.powf(lo.log10().floor()),
        10f64.powf(hi.log10().ceil()).max(lo * 10.0),
    );
    let n = rows.len();
    let height = 120 + 56 * n as u32;
    let root = BitMapBackend::new(path, (1100, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| chart_err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(250)
        .build_cartesian_2d((lo..hi).log_scale(), 0f64..n as f64)
        .map_err(|e| chart_err(&e))?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(0)
        .x_label_style(("sans-serif", 14))
        .draw()
        .map_err(|e| chart_err(&e))?;
    for (system, color, offset) in [
        // Mainstay's bar above etcd's.
        (System::Mainstay, MAINSTAY_COLOR, 0.5),
        (System::Etcd, ETCD_COLOR, 0.12),
    ] {
        let bars = rows.iter().enumerate().filter_map(|(i, row)| {
            let v = if system == System::Mainstay {
                row.1
            } else {
                row.2
            }?;
            // Row 0 at the top.
            let y = (n - 1 - i) as f64;
            Some(Rectangle::new(
                [(lo, y + offset), (v.max(lo), y + offset + 0.38)],
                color.filled(),
            ))
        });
        chart
            .draw_series(bars)
            .map_err(|e| chart_err(&e))?
            .label(system.to_string())
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], color.filled()));
    }
    let label_style =
        TextStyle::from(("sans-serif", 15).into_font()).pos(Pos::new(HPos::Right, VPos::Center));
    for (i, row) in rows.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(lo, (n - 1 - i) as f64 + 0.5));
        root.draw(&Text::new(
            row.0.to_string(),
            (x - 8, y),
            label_style.clone(),
        ))
        .map_err(|e| chart_err(&e))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font(("sans-serif", 15))
        .draw()
        .map_err(|e| chart_err(&e))?;
    root.present().map_err(|e| chart_err(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splice_replaces_only_the_generated_part() {
        let doc =
            format!("# Title\n\nintro\n{BEGIN_MARKER}\nold table\n{END_MARKER}\n\n## Log\nkept\n");
        let new = splice(&doc, "new table\n");
        assert_eq!(
            new,
            format!("# Title\n\nintro\n{BEGIN_MARKER}\nnew table\n{END_MARKER}\n\n## Log\nkept\n")
        );
        assert_eq!(splice(&new, "new table\n"), new, "idempotent");
        let fresh = splice("# Title\nbody\n", "t\n");
        assert!(fresh.starts_with(&format!("# Title\n\n{BEGIN_MARKER}\nt\n{END_MARKER}\n")));
        assert!(fresh.ends_with("body\n"));
    }

    #[test]
    fn apiserver_table_is_rendered() {
        use crate::apiserver::{OpResult, OpStats, Slo};
        use crate::harness::Machine;
        use crate::histogram::LatencySummary;
        use crate::systems::ApiOptions;
        let stats = |p50: f64, p99: f64, errors: u64| OpStats {
            count: 100,
            errors,
            seconds: 1.0,
            throughput: 100.0,
            latency: LatencySummary {
                samples: 100,
                p50_ms: p50,
                p99_ms: p99,
                ..Default::default()
            },
            error_samples: vec![],
        };
        let op = |name: &str, slo, fixed_rate, m: OpStats, e: OpStats| OpResult {
            name: name.into(),
            slo,
            fixed_rate,
            mainstay: m,
            etcd: e,
        };
        let results = Results {
            command: "mainstay bench --only apiserver".into(),
            members: 3,
            started: "2026-11-24 03:00".into(),
            duration_seconds: 60.0,
            machine: Machine {
                cpu: "cpu".into(),
                cores: 2,
                memory_gib: 4.0,
                kernel: "6".into(),
                etcd_version: "3.4.23".into(),
                mainstay_version: "0.1.0".into(),
            },
            workloads: vec![],
            scale: Default::default(),
            control_plane: None,
            apiserver: Some(ApiserverResults {
                options: ApiOptions::standard(1),
                rounds: 2,
                operations: vec![
                    op(
                        "create pod",
                        Slo::Mutating,
                        false,
                        stats(2.0, 8.0, 0),
                        stats(4.0, 16.0, 1),
                    ),
                    op(
                        "get pod",
                        Slo::SingleObject,
                        false,
                        stats(1.0, 3.0, 0),
                        stats(1.0, 1500.0, 0),
                    ),
                    op(
                        "watch event delay",
                        Slo::None,
                        true,
                        stats(1.0, 2.0, 0),
                        stats(1.0, 2.0, 0),
                    ),
                ],
                runs: vec![],
            }),
        };
        let md = markdown(&results, &[]);
        assert!(md.contains("### Through the apiserver"), "{md}");
        assert!(
            !md.contains("### Workloads"),
            "no workload table without workloads"
        );
        assert!(
            // etcd's one failed create fails its SLO, however fast the rest were.
            md.contains("| create pod | 2.00 | 8.00 | 4.00 | 16.0 | 0.50 | 100 | 100 | 0/1 | p99 ≤ 1 s | ✅ | ❌ |"),
            "{md}"
        );
        assert!(md.contains("| get pod | 1.00 | 3.00 | 1.00 | 1500 | 0.00 | 100 | 100 | 0/0 | p99 ≤ 1 s | ✅ | ❌ |"), "{md}");
        assert!(
            md.contains("| watch event delay |")
                && md.contains("100 (fixed rate)")
                && md.contains("| — | — | — |"),
            "{md}"
        );
        assert!(
            md.contains("Mainstay meets every SLO; etcd misses an SLO."),
            "{md}"
        );
        assert!(
            md.contains("| create pod | etcd | 100 | 1 | 4.00 |"),
            "{md}"
        );
        // The JSON round-trips with the apiserver part, and older results without it still load.
        let json = serde_json::to_string(&results).unwrap();
        let back: Results = serde_json::from_str(&json).unwrap();
        assert_eq!(back.apiserver, results.apiserver);
        let mut old: serde_json::Value = serde_json::from_str(&json).unwrap();
        old.as_object_mut().unwrap().remove("apiserver");
        let old: Results = serde_json::from_value(old).unwrap();
        assert!(old.apiserver.is_none());
    }

    #[test]
    fn control_plane_tables_are_rendered() {
        use crate::controlplane::results::{
            Errors, NodeScaleRun, PlaneUsage, SchedulingRun, StartupRun,
        };
        use crate::histogram::LatencySummary;
        use crate::systems::{PlaneOptions, System};
        let lat = |p50: f64, p99: f64, samples: u64| LatencySummary {
            samples,
            p50_ms: p50,
            p90_ms: p99,
            p99_ms: p99,
            max_ms: p99,
            ..Default::default()
        };
        let sched = |system, throughput| SchedulingRun {
            system,
            nodes: 5000,
            init_pods: 1000,
            pods: 10000,
            throughput,
            throughput_p50: throughput,
            throughput_min: throughput / 2.0,
            throughput_overall: throughput * 0.9,
            create_to_bound: lat(20.0, 150.0, 10000),
            ..SchedulingRun::default()
        };
        let startup = |system, p99, samples| StartupRun {
            system,
            nodes: 100,
            pods: 3000,
            rate: 20.0,
            pod_start_delay_ms: 100,
            startup: lat(300.0, p99, samples),
            errors: Errors {
                count: u64::from(samples < 3000),
                samples: vec![],
            },
            ..StartupRun::default()
        };
        let plane = ControlPlaneResults {
            options: Some(PlaneOptions::standard(false)),
            scheduling: vec![sched(System::Mainstay, 900.0), sched(System::Etcd, 600.0)],
            startup: vec![
                startup(System::Mainstay, 800.0, 3000),
                startup(System::Etcd, 2500.0, 2999),
            ],
            node_scale: vec![NodeScaleRun {
                system: System::Mainstay,
                nodes: 1001,
                pods: 30000,
                baseline_rss_bytes: 10 << 20,
                nodes_rss_bytes: (10 << 20) + 1000 * 4096,
                pods_rss_bytes: (10 << 20) + 1000 * 4096 + 30000 * 1024,
                heartbeats: PlaneUsage {
                    seconds: 60.0,
                    store_writes: 6000,
                    apiserver_cpu_seconds: 6.0,
                    ..PlaneUsage::default()
                },
                ..NodeScaleRun::default()
            }],
        };
        let md = control_plane_markdown(&plane);
        assert!(
            md.contains("| mainstay | 900 | 900 | 450 | 810 | 20.0 | 150 |"),
            "{md}"
        );
        assert!(
            md.contains("| 0 | ✅ |\n| etcd | 600 |") && md.contains("| 0 | ❌ |\n\n"),
            "{md}"
        );
        assert!(
            md.contains("| mainstay | 3000/3000 | 300 | 800 | 800 | 800 |"),
            "{md}"
        );
        assert!(md.contains("| 0 | ✅ | ✅ |"), "{md}");
        // A pod that never ran fails both, whatever the percentiles say.
        assert!(
            md.contains("| etcd | 2999/3000 |") && md.contains("| 1 | ❌ | ❌ |"),
            "{md}"
        );
        assert!(
            md.contains("| mainstay | 0.0 | 0.0 | 4.0 | 1.00 | 43 | 100.0 | 10.0 |"),
            "{md}"
        );
        assert_eq!(plane.failures().len(), 1, "{:?}", plane.failures());
    }
}
