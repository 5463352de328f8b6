//! `mainstay bench`: the benchmark harness (see `mainstay-bench`), Mainstay and etcd side by side.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use mainstay_bench::apiserver::ApiOptions;
use mainstay_bench::systems::PlaneOptions;
use mainstay_bench::{harness, report};

#[derive(Args)]
pub struct BenchArgs {
    /// A smoke run: every workload and check, with operation counts divided by 50 and small scale
    /// checks. Its numbers are not benchmarks.
    #[arg(long)]
    quick: bool,
    /// Run only workloads whose name contains this (repeatable); `apiserver` is the benchmark
    /// through the apiserver and `control-plane` the scheduler, controller-manager and nodes
    /// benchmark (`--only apiserver`, `--only control-plane` run them alone, without the scale
    /// checks).
    #[arg(long)]
    only: Vec<String>,
    /// Skip the benchmark through the apiserver (pods created, read, listed, watched, updated and
    /// deleted through one `mainstay apiserver` per system).
    #[arg(long)]
    no_apiserver: bool,
    /// Skip the control-plane benchmark (scheduling throughput, pod startup latency, simulated
    /// node scale).
    #[arg(long)]
    no_control_plane: bool,
    /// Skip the scale checks (1M keys, 10k and 100k watchers).
    #[arg(long)]
    no_scale_checks: bool,
    /// Runs of each workload on each system, alternating.
    #[arg(long, default_value_t = 2)]
    rounds: u32,
    /// Where results.json, results.md and the charts go.
    #[arg(long, default_value = "docs/benchmarks")]
    out_dir: PathBuf,
    /// The document whose generated section gets the tables; `none` to leave it alone.
    #[arg(long, default_value = "docs/benchmarks.md")]
    doc: String,
    /// The etcd 3.4 executable.
    #[arg(long, default_value = "etcd")]
    etcd_bin: PathBuf,
    /// Where the clusters' data directories are made (default: the temporary directory).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Members per cluster (the published numbers use 3).
    #[arg(long, default_value_t = 3)]
    members: usize,
    /// Fail (exit 1) if any request failed or any watch event was not delivered.
    #[arg(long)]
    strict: bool,
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let mainstay_bin = std::env::current_exe().context("locating the mainstay executable")?;
    let (scale, keys, watchers) = if args.quick {
        (50, 20_000, vec![1_000, 5_000])
    } else {
        (1, 1_000_000, vec![10_000, 100_000])
    };
    // `apiserver` and `control-plane` in --only select those benchmarks; the scale checks run
    // unless every --only names one of them.
    let names = |part: &str| args.only.iter().any(|o| part.contains(o.as_str()));
    let parts_only = !args.only.is_empty()
        && args.only.iter().all(|o| {
            ["apiserver", "control-plane"]
                .iter()
                .any(|p| p.contains(o.as_str()))
        });
    let apiserver = (!args.no_apiserver && (args.only.is_empty() || names("apiserver")))
        .then(|| ApiOptions::standard(scale));
    let control_plane = (!args.no_control_plane
        && (args.only.is_empty() || names("control-plane")))
    .then(|| PlaneOptions::standard(args.quick));
    let (keys, watchers) = if args.no_scale_checks || parts_only {
        (0, vec![])
    } else {
        (keys, watchers)
    };
    let command = std::iter::once("mainstay".to_string())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ");
    let options = harness::Options {
        scale,
        rounds: args.rounds.max(1),
        only: args.only,
        scale_keys: keys,
        scale_watchers: watchers,
        mainstay_bin,
        etcd_bin: args.etcd_bin,
        work_dir: args.work_dir.unwrap_or_else(std::env::temp_dir),
        members: args.members,
        command,
        apiserver,
        control_plane,
    };
    let results = harness::run(&options).await?;
    let doc = (args.doc != "none").then(|| PathBuf::from(&args.doc));
    report::write(&results, &args.out_dir, doc.as_deref())?;
    let ahead = results.workloads.iter().filter(|w| w.ahead()).count();
    if args.strict {
        let failed = harness::failures(&results);
        if !failed.is_empty() {
            anyhow::bail!("errors in the benchmark runs:\n{}", failed.join("\n"));
        }
    }
    if let Some(api) = &results.apiserver {
        let verdict = |s: harness::System| match api.slo_met(s) {
            Some(true) => "meets every SLO",
            Some(false) => "misses an SLO",
            None => "has no SLO verdict",
        };
        eprintln!(
            "bench: through the apiserver, Mainstay {}, etcd {}",
            verdict(harness::System::Mainstay),
            verdict(harness::System::Etcd)
        );
    }
    if let Some(plane) = &results.control_plane {
        for r in &plane.scheduling {
            eprintln!(
                "bench: scheduling on {}: {:.0} pods/s (kube-scheduler's floor {:.0})",
                r.system,
                r.throughput,
                mainstay_bench::controlplane::results::KUBE_SCHEDULING_FLOOR_PODS_PER_SEC
            );
        }
        for r in &plane.startup {
            eprintln!(
                "bench: pod startup on {}: p99 {:.0} ms over {} pods",
                r.system, r.startup.p99_ms, r.startup.samples
            );
        }
    }
    eprintln!(
        "bench: done in {:.1} min; Mainstay at or ahead of etcd on {ahead} of {} workloads; \
         results in {}",
        results.duration_seconds / 60.0,
        results.workloads.len(),
        args.out_dir.display()
    );
    Ok(())
}
