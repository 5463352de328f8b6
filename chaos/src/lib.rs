//! Mainstay's chaos suite: it brings up the docker compose store cluster, runs a recorded client
//! workload and watch streams against it while it kills, pauses, partitions and restarts
//! members, then checks the record.
//!
//! What it owns:
//! - [`compose`]: the compose project and the `docker` commands that inject and heal faults.
//! - The workload is the testkit's: closed-loop `etcd-client` clients making puts, linearizable
//!   gets and compare-and-swaps on a few shared keys, every call recorded with its call and return
//!   times and outcome (ok, failed, unknown), and watch streams that resume from their next
//!   revision on another member when they break.
//! - [`nemesis`]: the faults (kill leader, kill follower, pause, partition, restart all), each
//!   timed: write unavailability after injection, recovery after heal.
//! - [`check`]: the checks on the record (no lost acknowledged write, every change made once,
//!   per-key linearizability, revision order against real time, per-client revision
//!   monotonicity, gap-free watch streams, converged members with equal HashKV), each tested
//!   against histories with planted violations.
//! - [`Report`]: the short report and its JSON.
//!
//! Rules: it knows nothing of Mainstay's internals. It reaches the members only through the
//! etcd v3 API on their published client ports and through `docker`, so the same suite could
//! judge any etcd-compatible cluster in containers.

pub mod check;
pub mod client;
pub mod compose;
pub mod error;
pub mod nemesis;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mainstay_testkit::history::{History, Op, Outcome, Record};
use mainstay_testkit::watchcheck::Change;
use mainstay_testkit::watching::{collect_watch, ResumingWatcher};
use mainstay_testkit::workload::{Endpoints, RegisterWorkload, Stop};
use rand::rngs::StdRng;
use rand::seq::SliceRandom as _;
use rand::SeedableRng as _;
use serde::Serialize;

pub use error::Error;

use check::{Finding, MemberAnswer, MemberFinal, WatchLog};
use compose::Compose;
use nemesis::{Clock, FaultKind, FaultRecord, Member, RECOVERY_LIMIT};

/// The workload's keys live under this prefix; probes write outside it.
const PREFIX: &str = "/chaos/";
/// Written under the prefix once the faults are over; not part of the workload's history.
const END_MARKER: &str = "/chaos/~end";
/// Bound on each status, hash and range call of the final checks.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub compose_file: PathBuf,
    /// The compose project name (its containers, network and volumes are made fresh).
    pub project: String,
    /// The store members' compose services, and the client URL each publishes on this host.
    pub services: Vec<(String, String)>,
    /// The image the compose file should run (its `MAINSTAY_IMAGE`), if not its default.
    pub image: Option<String>,
    /// Faults of each kind (the short profile); ignored when `duration` is set.
    pub faults_per_kind: usize,
    /// Inject faults, kinds in turn, until this much time has passed.
    pub duration: Option<Duration>,
    pub clients: usize,
    pub keys: usize,
    pub watchers: usize,
    /// Bound on each client call; a write that times out is recorded as unknown.
    pub op_timeout: Duration,
    pub seed: u64,
    /// Where `chaos-report.json` (and on failure `chaos-history.txt`) go.
    pub out_dir: PathBuf,
    /// Leave the cluster running afterwards (it is removed by default).
    pub keep_running: bool,
}

/// Counts of the recorded client calls.
#[derive(Debug, Default, Serialize)]
pub struct OpCounts {
    pub total: usize,
    pub ok: usize,
    pub failed: usize,
    pub unknown: usize,
    /// "failed get" / "unknown put" ... → count.
    pub failures_by_kind: BTreeMap<String, usize>,
}

/// What a run found.
#[derive(Debug, Serialize)]
pub struct Report {
    pub seconds: f64,
    pub faults: Vec<FaultRecord>,
    pub operations: OpCounts,
    pub history_events: usize,
    pub watch_events: Vec<usize>,
    pub watch_reconnects: Vec<u64>,
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.findings.iter().all(Finding::passed)
    }

    /// The short report printed at the end of a run.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let o = &self.operations;
        let _ = writeln!(
            s,
            "chaos: {} faults in {:.0} s; {} client calls: {} ok, {} failed, {} unknown outcome; \
             {} history events; watch streams delivered {:?} events, reconnected {:?} times",
            self.faults.len(),
            self.seconds,
            o.total,
            o.ok,
            o.failed,
            o.unknown,
            self.history_events,
            self.watch_events,
            self.watch_reconnects,
        );
        let _ = writeln!(
            s,
            "\n{:<18} {:>6}  {:>26}  {:>26}",
            "fault", "count", "writes unavailable p50/max", "recovered p50/max"
        );
        // Pause and partition hit the leader and a follower in turn: a row for each.
        let rows = FaultKind::ALL.iter().flat_map(|&kind| match kind {
            FaultKind::Pause | FaultKind::Partition => {
                vec![(kind, Some(true)), (kind, Some(false))]
            }
            _ => vec![(kind, None)],
        });
        for (kind, on_leader) in rows {
            let records: Vec<&FaultRecord> = self
                .faults
                .iter()
                .filter(|f| f.kind == kind)
                .filter(|f| on_leader.is_none_or(|l| f.target.ends_with("(leader)") == l))
                .collect();
            if records.is_empty() {
                continue;
            }
            let unavailable: Vec<f64> = records.iter().filter_map(|f| f.unavailable_ms).collect();
            let recovered: Vec<f64> = records.iter().filter_map(|f| f.recovered_ms).collect();
            let name = match on_leader {
                Some(true) => format!("{} leader", kind.name()),
                Some(false) => format!("{} follower", kind.name()),
                None => kind.name().to_string(),
            };
            let _ = writeln!(
                s,
                "{name:<18} {:>6}  {:>26}  {:>26}",
                records.len(),
                p50_max(&unavailable),
                p50_max(&recovered)
            );
        }
        if !o.failures_by_kind.is_empty() {
            let _ = writeln!(s, "\nfailed or unknown calls by kind:");
            let mut kinds: Vec<_> = o.failures_by_kind.iter().collect();
            kinds.sort_by_key(|(_, n)| std::cmp::Reverse(**n));
            for (kind, n) in kinds {
                let _ = writeln!(s, "  {n:>7}  {kind}");
            }
        }
        let _ = writeln!(s, "\nchecks:");
        for f in &self.findings {
            let _ = writeln!(
                s,
                "  {} {} ({} checked{})",
                if f.passed() { "PASS" } else { "FAIL" },
                f.name,
                f.checked,
                if f.passed() {
                    String::new()
                } else {
                    format!(", {} violations", f.violations)
                }
            );
            for e in &f.examples {
                let _ = writeln!(s, "       {e}");
            }
        }
        let _ = writeln!(
            s,
            "\nverdict: {}",
            if self.passed() { "PASS" } else { "FAIL" }
        );
        s
    }
}

fn p50_max(values: &[f64]) -> String {
    if values.is_empty() {
        return "-".into();
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    format!("{:.0} ms / {:.0} ms", v[v.len() / 2], v[v.len() - 1])
}

/// Brings the compose cluster up fresh, runs the workload through the faults, checks the
/// record, and (unless asked to keep it) takes the cluster down again.
pub async fn run(options: &Options) -> Result<Report, Error> {
    let mut env = vec![("MAINSTAY_RESTART".to_string(), "no".to_string())];
    if let Some(image) = &options.image {
        env.push(("MAINSTAY_IMAGE".to_string(), image.clone()));
    }
    let compose = Compose::new(options.compose_file.clone(), options.project.clone(), env).await?;
    compose.up_fresh().await?;
    let result = run_on_cluster(options, &compose).await;
    if !options.keep_running {
        let down = compose.down().await;
        if result.is_ok() {
            down?;
        }
    }
    result
}

async fn run_on_cluster(options: &Options, compose: &Compose) -> Result<Report, Error> {
    let started = Instant::now();
    let clock = Clock(started);
    let mut members = Vec::new();
    for (service, url) in &options.services {
        let container = compose.container(service).await?;
        let network = compose::network_of(&container).await?;
        members.push(Member {
            service: service.clone(),
            container,
            network,
            channel: client::channel(url)?,
            member_id: 0,
        });
    }
    wait_for_members(&mut members).await?;
    let start_revision = nemesis::probe_until_write(&members, RECOVERY_LIMIT)
        .await
        .ok_or_else(|| Error::Cluster("the new cluster took no write".into()))?
        + 1;

    let urls: Vec<String> = options.services.iter().map(|(_, u)| u.clone()).collect();
    let endpoints = Endpoints::new(urls.clone());
    let history = Arc::new(History::new());
    let stop = Stop::new();
    let workload = RegisterWorkload {
        clients: options.clients,
        keys: (0..options.keys).map(|k| format!("{PREFIX}k{k}")).collect(),
        get_percent: 40,
        cas_percent: 30,
        op_timeout: options.op_timeout,
        think_time: Duration::ZERO,
        seed: options.seed,
    };
    let clients = workload.spawn(&endpoints, &history, &stop);
    // A watcher gives up (and the run fails) only if it cannot catch up long after the faults.
    let watcher_limit = options
        .duration
        .unwrap_or(Duration::from_secs(60 * options.faults_per_kind as u64))
        + Duration::from_secs(600);
    let watchers: Vec<ResumingWatcher> = (0..options.watchers)
        .map(|i| {
            ResumingWatcher::spawn(endpoints.clone(), i, PREFIX, start_revision, watcher_limit)
        })
        .collect();

    let faults = inject_faults(options, &members, clock).await;

    stop.stop();
    for c in clients {
        let _ = c.await;
    }
    let records = history.records();
    nemesis::heal_all(&members).await;
    nemesis::wait_recovered(&members, RECOVERY_LIMIT)
        .await
        .map_err(Error::Cluster)?;
    // An end marker under the prefix: the history and every watcher must reach its revision
    // (probe writes outside the prefix move the store's revision past the last workload change).
    let end_revision = nemesis::put_marker(&members, END_MARKER, RECOVERY_LIMIT)
        .await
        .ok_or_else(|| Error::Cluster("the healed cluster took no write".into()))?;
    let final_revision = settled_revision(&members).await?;
    // The store's history of the workload's keys, read after the run from the first revision.
    let without_marker = |changes: Vec<Change>| -> Vec<Change> {
        changes
            .into_iter()
            .filter(|c| c.key != END_MARKER.as_bytes())
            .collect()
    };
    let changes = without_marker(collect_watch(&urls[0], PREFIX, 1, end_revision).await);
    let last_change = changes.last().map_or(0, |c| c.revision);
    let mut watches = Vec::new();
    let mut reconnects = Vec::new();
    for (i, w) in watchers.into_iter().enumerate() {
        reconnects.push(w.reconnects() as u64);
        let seen = without_marker(w.finish(end_revision, RECOVERY_LIMIT).await);
        watches.push(WatchLog {
            watcher: i,
            start_revision,
            seen,
        });
    }
    let finals = member_finals(&members, final_revision).await;

    let mut findings = check::check_all(&records, &changes, last_change, &watches, &finals);
    findings.push(faults_finding(options, &faults));
    let report = Report {
        seconds: started.elapsed().as_secs_f64(),
        operations: count_ops(&records),
        history_events: changes.len(),
        watch_events: watches.iter().map(|w| w.seen.len()).collect(),
        watch_reconnects: reconnects,
        faults,
        findings,
    };
    save(
        options,
        &report,
        (!report.passed()).then_some((&records, &changes)),
    )?;
    Ok(report)
}

/// Waits until every member answers and one of them leads; learns each member's id.
async fn wait_for_members(members: &mut [Member]) -> Result<(), Error> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let statuses = nemesis::statuses(members, Duration::from_secs(1)).await;
        if statuses.iter().all(|s| matches!(s, Ok(s) if s.leader != 0)) {
            for (m, s) in members.iter_mut().zip(statuses.iter().flatten()) {
                m.member_id = s.member_id;
            }
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::Cluster(format!(
                "the members were not all up with a leader within 120 s: {statuses:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The faults: every kind in a shuffled turn, `faults_per_kind` turns (or turns until
/// `duration` has passed).
async fn inject_faults(options: &Options, members: &[Member], clock: Clock) -> Vec<FaultRecord> {
    let mut rng = StdRng::seed_from_u64(options.seed);
    let mut records = Vec::new();
    let started = Instant::now();
    for round in 0.. {
        let more = match options.duration {
            Some(d) => started.elapsed() < d,
            None => round < options.faults_per_kind,
        };
        if !more {
            break;
        }
        let mut kinds = FaultKind::ALL;
        kinds.shuffle(&mut rng);
        for kind in kinds {
            let record = nemesis::fault(kind, round, members, clock, &mut rng).await;
            println!(
                "chaos: {:>4} s  {:<14} {:<32} unavailable {:>8}  recovered {:>8}{}",
                record.injected_ms / 1000,
                kind.name(),
                record.target,
                record
                    .unavailable_ms
                    .map_or("-".into(), |v| format!("{v:.0} ms")),
                record
                    .recovered_ms
                    .map_or("-".into(), |v| format!("{v:.0} ms")),
                record
                    .error
                    .as_ref()
                    .map_or(String::new(), |e| format!("  ERROR {e}"))
            );
            records.push(record);
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    records
}

/// With the workload stopped: the revision every member has reached.
async fn settled_revision(members: &[Member]) -> Result<i64, Error> {
    let deadline = tokio::time::Instant::now() + RECOVERY_LIMIT;
    loop {
        let statuses = nemesis::statuses(members, CHECK_TIMEOUT).await;
        let revisions: Vec<i64> = statuses.iter().flatten().map(|s| s.revision).collect();
        if revisions.len() == members.len() && revisions.windows(2).all(|w| w[0] == w[1]) {
            return Ok(revisions[0]);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::Cluster(format!(
                "the members did not settle on one revision: {statuses:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Each member's HashKV and its keys at the final revision.
async fn member_finals(members: &[Member], revision: i64) -> Vec<MemberFinal> {
    let mut finals = Vec::new();
    for m in members {
        let answer = async {
            let (hash_kv, compact_revision) =
                client::hash_kv(m.channel.clone(), revision, CHECK_TIMEOUT).await?;
            let mut state =
                client::prefix_state(m.channel.clone(), PREFIX, revision, CHECK_TIMEOUT).await?;
            state.remove(END_MARKER);
            let status = client::status(m.channel.clone(), CHECK_TIMEOUT).await?;
            Ok(MemberAnswer {
                revision: status.revision,
                hash_kv,
                compact_revision,
                state,
            })
        }
        .await;
        finals.push(MemberFinal {
            name: m.service.clone(),
            answer,
        });
    }
    finals
}

/// Every fault was injected and healed, the cluster recovered from each, and each kind ran as
/// often as asked.
fn faults_finding(options: &Options, faults: &[FaultRecord]) -> Finding {
    let mut f = Finding::new("every fault was injected and healed, and the cluster recovered");
    f.checked = faults.len();
    for r in faults {
        if let Some(e) = &r.error {
            f.violation(format!(
                "{} on {} at {} s: {e}",
                r.kind.name(),
                r.target,
                r.injected_ms / 1000
            ));
        }
    }
    if options.duration.is_none() {
        for kind in FaultKind::ALL {
            let n = faults.iter().filter(|r| r.kind == kind).count();
            if n < options.faults_per_kind {
                f.violation(format!(
                    "{}: {n} faults, {} asked for",
                    kind.name(),
                    options.faults_per_kind
                ));
            }
        }
    }
    f
}

fn count_ops(records: &[Record]) -> OpCounts {
    let mut c = OpCounts {
        total: records.len(),
        ..Default::default()
    };
    for r in records {
        let call = match r.op {
            Op::Get { .. } => "get",
            Op::Put { .. } => "put",
            Op::Cas { .. } => "cas",
        };
        match r.outcome {
            Outcome::Failed => {
                c.failed += 1;
                *c.failures_by_kind
                    .entry(format!("failed {call}"))
                    .or_default() += 1;
            }
            Outcome::Unknown => {
                c.unknown += 1;
                *c.failures_by_kind
                    .entry(format!("unknown {call}"))
                    .or_default() += 1;
            }
            _ => c.ok += 1,
        }
    }
    c
}

/// Writes the report's JSON, and the client record and history when a check failed.
fn save(
    options: &Options,
    report: &Report,
    record: Option<(&[Record], &[Change])>,
) -> Result<(), Error> {
    let io = |path: &PathBuf| {
        let path = path.display().to_string();
        move |source| Error::Io { path, source }
    };
    std::fs::create_dir_all(&options.out_dir).map_err(io(&options.out_dir))?;
    let path = options.out_dir.join("chaos-report.json");
    let json = serde_json::to_vec_pretty(report).unwrap_or_default();
    std::fs::write(&path, json).map_err(io(&path))?;
    if let Some((records, changes)) = record {
        let path = options.out_dir.join("chaos-history.txt");
        let mut text = String::new();
        for (i, r) in records.iter().enumerate() {
            let _ = writeln!(
                text,
                "{} revision {:?}",
                mainstay_testkit::lincheck::describe(i, r),
                r.revision
            );
        }
        for c in changes {
            let _ = writeln!(
                text,
                "history: revision {} {} = {:?}",
                c.revision,
                String::from_utf8_lossy(&c.key),
                c.value.as_deref().map(String::from_utf8_lossy)
            );
        }
        std::fs::write(&path, text).map_err(io(&path))?;
    }
    Ok(())
}
