//! The benchmark through the apiserver: one `mainstay apiserver` on each cluster (a 3-member
//! Mainstay cluster and a 3-member etcd cluster), and the same pod workload against both, phase by
//! phase; Mainstay goes first in odd rounds and etcd in even ones.
//!
//! Per round, in one namespace:
//! 1. create N pods (~1.5 KB each) with C closed-loop clients;
//! 2. get each pod;
//! 3. list all N pods paginated as kubectl and client-go do (`limit=P`, following `continue`; the
//!    whole list is one operation and each page another), then `resourceVersion=0` lists (served
//!    by the watch cache);
//! 4. open a watch on the namespace and patch pods at a steady rate from another connection; the
//!    delay is from the patch's response to its event on the watch;
//! 5. update (PUT with the resourceVersion last seen) and delete every pod.
//!
//! Every request is bounded by [`REQUEST_TIMEOUT`]; a failed request counts as an error and is not
//! in the latency histogram. Latency is from sending a request to having its whole body, measured
//! in this process (kube's SLIs measure inside the apiserver, so these include the loopback hop).
//! The verdicts use Kubernetes' API call latency SLOs: p99 ≤ 1 s for mutating and single-object
//! calls, p99 ≤ 30 s for lists.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::header::{ACCEPT, CONTENT_TYPE};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use mainstay_testkit::cluster::Cluster;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::histogram::{Latencies, LatencySummary};
use crate::process::{free_port, Child};
use crate::systems::{start_cluster, Options, System};
use crate::Error;

// `apiserver::ApiOptions` stays a valid path (`mainstay bench` uses it).
pub use crate::systems::ApiOptions;

/// Upper bound for one HTTP request (headers and whole body).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the apiserver may take to answer `GET /readyz` with 200.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the watch may take to deliver the last events after the last patch.
const WATCH_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest watch line accepted (a pod event is a few KB).
const MAX_WATCH_LINE: usize = 16 << 20;
/// How many error messages an operation keeps.
const ERROR_SAMPLES: usize = 5;
/// The namespace the pods live in.
pub const NAMESPACE: &str = "mainstay-bench";

/// Which Kubernetes API call latency SLO an operation falls under.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Slo {
    /// POST, PUT, PATCH, DELETE of one object: p99 ≤ 1 s.
    Mutating,
    /// GET of one object (scope=resource): p99 ≤ 1 s.
    SingleObject,
    /// LIST (scope=namespace or cluster): p99 ≤ 30 s.
    List,
    /// Not an API call with an SLO (watch event delivery).
    None,
}

impl Slo {
    /// The p99 threshold in milliseconds.
    pub fn threshold_ms(self) -> Option<f64> {
        match self {
            Slo::Mutating | Slo::SingleObject => Some(1_000.0),
            Slo::List => Some(30_000.0),
            Slo::None => None,
        }
    }

    /// Whether `stats` meets the SLO: `None` when there is no SLO or no sample to judge.
    /// Met when the p99 of the calls is within the threshold and none failed (a failed call
    /// has no latency to count, so it fails the SLO outright).
    pub fn verdict(self, stats: &OpStats) -> Option<bool> {
        let threshold = self.threshold_ms()?;
        if stats.errors > 0 {
            return Some(false);
        }
        (stats.latency.samples > 0).then_some(stats.latency.p99_ms <= threshold)
    }

    fn label(self) -> String {
        match self.threshold_ms() {
            Some(t) if t >= 1_000.0 => format!("p99 ≤ {:.0} s", t / 1_000.0),
            Some(t) => format!("p99 ≤ {t:.0} ms"),
            None => "—".into(),
        }
    }
}

/// One operation's figures on one system (one round, or all rounds together).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct OpStats {
    /// Successful operations.
    pub count: u64,
    pub errors: u64,
    pub seconds: f64,
    /// Operations per second over the phase's wall time.
    pub throughput: f64,
    pub latency: LatencySummary,
    pub error_samples: Vec<String>,
}

/// One operation on both systems, all rounds together.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct OpResult {
    pub name: String,
    pub slo: Slo,
    /// Whether the rate is set by the benchmark (the watch's patches), not by the server.
    pub fixed_rate: bool,
    pub mainstay: OpStats,
    pub etcd: OpStats,
}

impl OpResult {
    pub fn get(&self, system: System) -> &OpStats {
        match system {
            System::Mainstay => &self.mainstay,
            System::Etcd => &self.etcd,
        }
    }

    /// Mainstay's p50 latency over etcd's.
    pub fn p50_ratio(&self) -> f64 {
        self.mainstay.latency.p50_ms / self.etcd.latency.p50_ms.max(1e-9)
    }

    /// Mainstay's p99 latency over etcd's.
    pub fn p99_ratio(&self) -> f64 {
        self.mainstay.latency.p99_ms / self.etcd.latency.p99_ms.max(1e-9)
    }

    pub fn slo_verdict(&self, system: System) -> Option<bool> {
        self.slo.verdict(self.get(system))
    }

    pub fn slo_label(&self) -> String {
        self.slo.label()
    }
}

/// One round of every operation on one system.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ApiRun {
    pub system: System,
    pub round: u32,
    /// (operation, figures) in the order they ran.
    pub operations: Vec<(String, OpStats)>,
}

/// The apiserver benchmark's results.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ApiserverResults {
    pub options: ApiOptions,
    pub rounds: u32,
    /// Every operation, all rounds together, in the order they ran.
    pub operations: Vec<OpResult>,
    pub runs: Vec<ApiRun>,
}

impl ApiserverResults {
    /// Whether every operation with an SLO met it on `system` (`None` if none was judged).
    pub fn slo_met(&self, system: System) -> Option<bool> {
        let verdicts: Vec<bool> = self
            .operations
            .iter()
            .filter_map(|o| o.slo_verdict(system))
            .collect();
        (!verdicts.is_empty()).then(|| verdicts.iter().all(|v| *v))
    }

    /// One line per operation and round with failed requests.
    pub fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        for run in &self.runs {
            for (name, stats) in run.operations.iter().filter(|(_, s)| s.errors > 0) {
                out.push(format!(
                    "apiserver {name} on {} (round {}): {} errors, e.g. {:?}",
                    run.system, run.round, stats.errors, stats.error_samples
                ));
            }
        }
        out
    }
}

/// Successes, errors and latencies of one operation in one phase.
#[derive(Clone, Default)]
pub struct Tally {
    pub latencies: Latencies,
    pub count: u64,
    pub errors: u64,
    pub error_samples: Vec<String>,
    /// Wall time of the phase.
    pub elapsed: Duration,
}

impl Tally {
    pub fn ok(&mut self, latency: Duration) {
        self.latencies.record(latency);
        self.count += 1;
    }

    pub fn error(&mut self, e: String) {
        self.errors += 1;
        if self.error_samples.len() < ERROR_SAMPLES {
            self.error_samples.push(e);
        }
    }

    /// Adds `other`'s samples and counts (not its wall time).
    pub fn merge(&mut self, other: &Tally) {
        self.latencies.merge(&other.latencies);
        self.count += other.count;
        self.errors += other.errors;
        for e in &other.error_samples {
            if self.error_samples.len() < ERROR_SAMPLES {
                self.error_samples.push(e.clone());
            }
        }
    }

    pub fn stats(&self) -> OpStats {
        let seconds = self.elapsed.as_secs_f64();
        OpStats {
            count: self.count,
            errors: self.errors,
            seconds,
            throughput: self.count as f64 / seconds.max(1e-9),
            latency: self.latencies.summary(),
            error_samples: self.error_samples.clone(),
        }
    }
}

/// The operations in the order they run, with their SLO class and whether the rate is fixed.
fn operations(o: &ApiOptions) -> Vec<(String, Slo, bool)> {
    vec![
        ("create pod".into(), Slo::Mutating, false),
        ("get pod".into(), Slo::SingleObject, false),
        (
            format!("list {} pods, paginated (whole list)", o.pods),
            Slo::List,
            false,
        ),
        (
            format!("list page (limit={})", o.page_size),
            Slo::List,
            false,
        ),
        (
            "list resourceVersion=0 (watch cache)".into(),
            Slo::List,
            false,
        ),
        (
            format!("patch pod ({}/s)", o.watch_rate),
            Slo::Mutating,
            true,
        ),
        ("watch event delay (from response)".into(), Slo::None, true),
        ("watch event delay (from send)".into(), Slo::None, true),
        ("update pod (PUT)".into(), Slo::Mutating, false),
        ("delete pod".into(), Slo::Mutating, false),
    ]
}

/// Runs the benchmark: a cluster and an apiserver per system, then `rounds` rounds of the
/// workload, each phase on both systems (Mainstay first in odd rounds, etcd first in even ones).
pub async fn run(opts: &Options, api: &ApiOptions) -> Result<ApiserverResults, Error> {
    let rounds = opts.rounds.max(1);
    let mut targets = Vec::new();
    for system in System::BOTH {
        let cluster = start_cluster(system, opts).await;
        let process =
            ApiserverProcess::start(system, &opts.mainstay_bin, &cluster, &opts.work_dir).await?;
        eprintln!(
            "bench: apiserver on {system} ready at {} (log {})",
            process.base_url(),
            process.child().log().display()
        );
        let target = Target::new(system, cluster, process, api);
        target.ensure_namespace().await?;
        targets.push(target);
    }
    let names = operations(api);
    // (operation index, system) → all rounds' samples together.
    let mut merged: BTreeMap<(usize, System), Tally> = BTreeMap::new();
    let mut runs = Vec::new();
    for round in 1..=rounds {
        let mut per_system: BTreeMap<System, Vec<Tally>> = BTreeMap::new();
        for phase in Phase::ALL {
            let order: Vec<&Target> = if round % 2 == 1 {
                targets.iter().collect()
            } else {
                targets.iter().rev().collect()
            };
            for target in order {
                let tallies = target.phase(phase, round, api).await;
                for t in &tallies {
                    log_phase(
                        target.system,
                        round,
                        &names,
                        per_system.get(&target.system),
                        t,
                    );
                    per_system.entry(target.system).or_default().push(t.clone());
                }
            }
        }
        for (system, tallies) in per_system {
            let mut operations = Vec::new();
            for (i, t) in tallies.iter().enumerate() {
                let entry = merged.entry((i, system)).or_default();
                entry.merge(t);
                entry.elapsed += t.elapsed;
                operations.push((names[i].0.clone(), t.stats()));
            }
            runs.push(ApiRun {
                system,
                round,
                operations,
            });
        }
    }
    runs.sort_by_key(|r| (r.round, r.system));
    let operations = names
        .iter()
        .enumerate()
        .map(|(i, (name, slo, fixed_rate))| {
            let stats = |s: System| merged.get(&(i, s)).map(Tally::stats).unwrap_or_default();
            OpResult {
                name: name.clone(),
                slo: *slo,
                fixed_rate: *fixed_rate,
                mainstay: stats(System::Mainstay),
                etcd: stats(System::Etcd),
            }
        })
        .collect();
    // Each apiserver stops before its cluster (the fields' drop order).
    drop(targets);
    Ok(ApiserverResults {
        options: api.clone(),
        rounds,
        operations,
        runs,
    })
}

fn log_phase(
    system: System,
    round: u32,
    names: &[(String, Slo, bool)],
    done: Option<&Vec<Tally>>,
    t: &Tally,
) {
    let index = done.map_or(0, Vec::len);
    let name = names.get(index).map_or("?", |n| n.0.as_str());
    let s = t.stats();
    eprintln!(
        "bench: apiserver {name:<40} {system:<8} round {round}: {:>8.2} ops/s  p50 {:>8.3} ms  \
         p99 {:>8.3} ms  errors {}  ({:.1} s)",
        s.throughput, s.latency.p50_ms, s.latency.p99_ms, s.errors, s.seconds
    );
    for e in &s.error_samples {
        eprintln!("bench:     error: {e}");
    }
}

#[derive(Clone, Copy, Debug)]
enum Phase {
    Create,
    Get,
    List,
    Watch,
    Update,
    Delete,
}

impl Phase {
    const ALL: [Phase; 6] = [
        Phase::Create,
        Phase::Get,
        Phase::List,
        Phase::Watch,
        Phase::Update,
        Phase::Delete,
    ];
}

/// A pod's name.
pub fn pod_name(i: u64) -> String {
    format!("bench-{i:06}")
}

/// A pod as a Deployment's ReplicaSet would create it (~1.5 KB of JSON): labels, an owner, one
/// container with ports, resources, environment and probes.
pub fn pod_body(namespace: &str, i: u64) -> Value {
    let env: Vec<Value> = [
        ("LOG_LEVEL", "info"),
        ("HTTP_PORT", "8080"),
        ("METRICS_PORT", "9090"),
        ("CACHE_SIZE_MB", "256"),
        ("FEATURE_FLAGS", "checkout-v2,search-ranking,async-export"),
        (
            "UPSTREAM_URL",
            "http://inventory.mainstay-bench.svc.cluster.local:8080",
        ),
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://otel-collector.observability:4317",
        ),
    ]
    .iter()
    .map(|(k, v)| json!({"name": k, "value": v}))
    .collect();
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod_name(i),
            "namespace": namespace,
            "labels": {
                "app.kubernetes.io/name": "bench-api",
                "app.kubernetes.io/component": "backend",
                "app.kubernetes.io/part-of": "mainstay-bench",
                "pod-template-hash": "6d9f8b7c5d",
                "shard": format!("{}", i % 16),
            },
            "annotations": {
                "prometheus.io/scrape": "true",
                "prometheus.io/port": "9090",
            },
        },
        "spec": {
            "containers": [{
                "name": "api",
                "image": "registry.example.com/mainstay-bench/api:1.27.3",
                "args": ["--config=/etc/api/config.yaml", "--port=8080"],
                "ports": [
                    {"name": "http", "containerPort": 8080, "protocol": "TCP"},
                    {"name": "metrics", "containerPort": 9090, "protocol": "TCP"},
                ],
                "env": env,
                "resources": {
                    "requests": {"cpu": "250m", "memory": "256Mi"},
                    "limits": {"cpu": "1", "memory": "512Mi"},
                },
                "readinessProbe": {
                    "httpGet": {"path": "/readyz", "port": 8080},
                    "periodSeconds": 5,
                },
                "livenessProbe": {
                    "httpGet": {"path": "/livez", "port": 8080},
                    "initialDelaySeconds": 10,
                },
                "imagePullPolicy": "IfNotPresent",
            }],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "nodeSelector": {"kubernetes.io/os": "linux"},
        },
    })
}

/// The fields of a list response the benchmark reads.
#[derive(Deserialize)]
struct ListBody {
    #[serde(default)]
    metadata: ListMeta,
    #[serde(default)]
    items: Vec<serde::de::IgnoredAny>,
}

#[derive(Deserialize, Default)]
struct ListMeta {
    #[serde(rename = "resourceVersion", default)]
    resource_version: Option<String>,
    #[serde(rename = "continue", default)]
    cont: Option<String>,
}

/// The fields of an object the benchmark reads.
#[derive(Deserialize, Default)]
struct ObjectMeta {
    #[serde(default)]
    metadata: Meta,
}

#[derive(Deserialize, Default)]
struct Meta {
    #[serde(default)]
    name: Option<String>,
    #[serde(rename = "resourceVersion", default)]
    resource_version: Option<String>,
}

#[derive(Deserialize)]
struct WatchEvent {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    object: Value,
}

/// `e` and its sources, `: `-separated (hyper's errors say little at the top).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// A bounded HTTP/1.1 client for one apiserver.
#[derive(Clone)]
struct Api {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
}

impl Api {
    fn new(base: String, max_idle: usize) -> Api {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(max_idle)
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Api { client, base }
    }

    fn request(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Bytes,
    ) -> Result<Request<Full<Bytes>>, String> {
        let mut builder = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header(ACCEPT, "application/json");
        if let Some(ct) = content_type {
            builder = builder.header(CONTENT_TYPE, ct);
        }
        builder
            .body(Full::new(body))
            .map_err(|e| format!("building a request for {path}: {e}"))
    }

    /// Sends a request and reads the whole answer, within [`REQUEST_TIMEOUT`]; the answer's body
    /// if its status is one of `want`.
    async fn call(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Bytes,
        want: &[StatusCode],
    ) -> Result<Bytes, String> {
        let what = format!("{method} {path}");
        let request = self.request(method, path, content_type, body)?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| format!("{what}: {}", error_chain(&e)))?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("{what}: reading the body: {}", error_chain(&e)))?
                .to_bytes();
            Ok::<_, String>((status, body))
        };
        let (status, body) = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| format!("{what}: no answer within {REQUEST_TIMEOUT:?}"))??;
        if want.contains(&status) {
            Ok(body)
        } else {
            let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
            Err(format!("{what}: {status}: {text}"))
        }
    }

    /// Like [`Api::call`], and how long it took.
    async fn timed(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Bytes,
        want: &[StatusCode],
    ) -> Result<(Duration, Bytes), String> {
        let started = Instant::now();
        let body = self.call(method, path, content_type, body, want).await?;
        Ok((started.elapsed(), body))
    }
}

const OK: &[StatusCode] = &[StatusCode::OK];

/// One system under test: its cluster, its apiserver and what the benchmark knows of its pods.
struct Target {
    system: System,
    // Held for their lifetime only. Fields drop in order: the apiserver stops before its cluster.
    _process: ApiserverProcess,
    _cluster: Cluster,
    api: Api,
    /// The watch's own connection.
    watch_api: Api,
    /// Each pod's object as last returned by the server (`None`: not created, or deleted).
    pods: Arc<Vec<Mutex<Option<Bytes>>>>,
}

impl Target {
    fn new(
        system: System,
        cluster: Cluster,
        process: ApiserverProcess,
        opts: &ApiOptions,
    ) -> Target {
        let base = process.base_url();
        Target {
            system,
            api: Api::new(base.clone(), opts.concurrency),
            watch_api: Api::new(base, 1),
            _process: process,
            _cluster: cluster,
            pods: Arc::new((0..opts.pods).map(|_| Mutex::new(None)).collect()),
        }
    }

    fn pods_path(&self) -> String {
        format!("/api/v1/namespaces/{NAMESPACE}/pods")
    }

    async fn ensure_namespace(&self) -> Result<(), Error> {
        let body =
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}});
        self.api
            .call(
                Method::POST,
                "/api/v1/namespaces",
                Some("application/json"),
                Bytes::from(body.to_string()),
                &[StatusCode::CREATED, StatusCode::OK, StatusCode::CONFLICT],
            )
            .await
            .map(|_| ())
            .map_err(|e| {
                Error::Setup(format!(
                    "creating namespace {NAMESPACE} on {}: {e}",
                    self.system
                ))
            })
    }

    /// The tallies of `phase`, in [`operations`]' order.
    async fn phase(&self, phase: Phase, round: u32, opts: &ApiOptions) -> Vec<Tally> {
        let (api, pods, base) = (self.api.clone(), self.pods.clone(), self.pods_path());
        let n = opts.pods;
        let c = opts.concurrency;
        match phase {
            Phase::Create => {
                let op = move |i: u64| {
                    let (api, pods, path) = (api.clone(), pods.clone(), base.clone());
                    async move {
                        let body = Bytes::from(pod_body(NAMESPACE, i).to_string());
                        let (took, answer) = api
                            .timed(
                                Method::POST,
                                &path,
                                Some("application/json"),
                                body,
                                &[StatusCode::CREATED, StatusCode::OK],
                            )
                            .await?;
                        store(&pods, i, answer);
                        Ok(took)
                    }
                };
                vec![closed_loop(n, c, op).await]
            }
            Phase::Get => {
                let op = move |i: u64| {
                    let (api, pods, path) = (api.clone(), pods.clone(), base.clone());
                    async move {
                        let (took, answer) = api
                            .timed(
                                Method::GET,
                                &format!("{path}/{}", pod_name(i)),
                                None,
                                Bytes::new(),
                                OK,
                            )
                            .await?;
                        let meta: ObjectMeta = serde_json::from_slice(&answer)
                            .map_err(|e| format!("get {}: {e}", pod_name(i)))?;
                        if meta.metadata.name.as_deref() != Some(pod_name(i).as_str()) {
                            return Err(format!(
                                "get {} returned {:?}",
                                pod_name(i),
                                meta.metadata.name
                            ));
                        }
                        store(&pods, i, answer);
                        Ok(took)
                    }
                };
                vec![closed_loop(n, c, op).await]
            }
            Phase::List => self.lists(opts).await.to_vec(),
            Phase::Watch => self.watch(opts).await.to_vec(),
            Phase::Update => {
                let op = move |i: u64| {
                    let (api, pods, path) = (api.clone(), pods.clone(), base.clone());
                    async move {
                        let current = pods[i as usize]
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .clone()
                            .ok_or_else(|| format!("update {}: never created", pod_name(i)))?;
                        let mut pod: Value = serde_json::from_slice(&current)
                            .map_err(|e| format!("update {}: {e}", pod_name(i)))?;
                        pod["metadata"]["annotations"]["bench.mainstay.io/updated"] =
                            json!(round.to_string());
                        pod["metadata"]["labels"]["version"] = json!(format!("r{round}"));
                        let (took, answer) = api
                            .timed(
                                Method::PUT,
                                &format!("{path}/{}", pod_name(i)),
                                Some("application/json"),
                                Bytes::from(pod.to_string()),
                                OK,
                            )
                            .await?;
                        store(&pods, i, answer);
                        Ok(took)
                    }
                };
                vec![closed_loop(n, c, op).await]
            }
            Phase::Delete => {
                let op = move |i: u64| {
                    let (api, pods, path) = (api.clone(), pods.clone(), base.clone());
                    async move {
                        let (took, _) = api
                            .timed(
                                Method::DELETE,
                                &format!("{path}/{}", pod_name(i)),
                                None,
                                Bytes::new(),
                                &[StatusCode::OK, StatusCode::ACCEPTED],
                            )
                            .await?;
                        *pods[i as usize].lock().unwrap_or_else(|e| e.into_inner()) = None;
                        Ok(took)
                    }
                };
                vec![closed_loop(n, c, op).await]
            }
        }
    }

    fn created(&self) -> u64 {
        self.pods
            .iter()
            .filter(|p| p.lock().unwrap_or_else(|e| e.into_inner()).is_some())
            .count() as u64
    }

    /// Paginated lists (whole list, and each page), then `resourceVersion=0` lists, one at a time.
    async fn lists(&self, opts: &ApiOptions) -> [Tally; 3] {
        let (mut whole, mut pages, mut cached) =
            (Tally::default(), Tally::default(), Tally::default());
        let expected = self.created();
        let path = self.pods_path();
        let started = Instant::now();
        for _ in 0..opts.lists {
            let list_started = Instant::now();
            let mut cont: Option<String> = None;
            let mut items = 0u64;
            let mut failed = None;
            loop {
                let mut page_path = format!("{path}?limit={}", opts.page_size);
                if let Some(c) = &cont {
                    page_path.push_str("&continue=");
                    page_path.push_str(&percent_encode(c));
                }
                let page = self
                    .api
                    .timed(Method::GET, &page_path, None, Bytes::new(), OK)
                    .await
                    .and_then(|(took, body)| {
                        let list: ListBody = serde_json::from_slice(&body)
                            .map_err(|e| format!("GET {page_path}: {e}"))?;
                        Ok((took, list))
                    });
                match page {
                    Ok((took, list)) => {
                        pages.ok(took);
                        items += list.items.len() as u64;
                        cont = list.metadata.cont.filter(|c| !c.is_empty());
                        if cont.is_none() {
                            break;
                        }
                    }
                    Err(e) => {
                        pages.error(e.clone());
                        failed = Some(e);
                        break;
                    }
                }
            }
            match failed {
                Some(e) => whole.error(format!("a page failed: {e}")),
                None if items != expected => {
                    whole.error(format!("listed {items} pods, expected {expected}"))
                }
                None => whole.ok(list_started.elapsed()),
            }
        }
        whole.elapsed = started.elapsed();
        pages.elapsed = whole.elapsed;
        let started = Instant::now();
        for _ in 0..opts.lists {
            let answer = self
                .api
                .timed(
                    Method::GET,
                    &format!("{path}?resourceVersion=0"),
                    None,
                    Bytes::new(),
                    OK,
                )
                .await
                .and_then(|(took, body)| {
                    let list = serde_json::from_slice::<ListBody>(&body)
                        .map_err(|e| format!("GET {path}?resourceVersion=0: {e}"))?;
                    // The cache must hold every pod: an empty or stale one answers fast.
                    match list.items.len() as u64 {
                        n if n == expected => Ok(took),
                        n => Err(format!(
                            "GET {path}?resourceVersion=0 listed {n} pods, expected {expected}"
                        )),
                    }
                });
            match answer {
                Ok(took) => cached.ok(took),
                Err(e) => cached.error(e),
            }
        }
        cached.elapsed = started.elapsed();
        [whole, pages, cached]
    }

    /// Patches at a fixed rate while a watch on the namespace reports them: the patches' own
    /// latency, the delay from each patch's response to its event, and from just before the patch
    /// was sent to its event.
    async fn watch(&self, opts: &ApiOptions) -> [Tally; 3] {
        let (mut patches, mut delays, mut from_send) =
            (Tally::default(), Tally::default(), Tally::default());
        let path = self.pods_path();
        let created = self.created();
        if created == 0 {
            patches.error("no pods to patch".into());
            return [patches, delays, from_send];
        }
        let opened = match self.open_watch(&path, opts.watch_events).await {
            Ok(w) => w,
            Err(e) => {
                delays.error(e);
                return [patches, delays, from_send];
            }
        };
        let WatchHandle {
            arrivals,
            errors: watch_errors,
            stop,
            task,
        } = opened;
        // (resourceVersion, when the patch was sent, when its response arrived)
        let mut written: Vec<(i64, Instant, Instant)> = Vec::new();
        let mut ticker =
            tokio::time::interval(Duration::from_secs_f64(1.0 / opts.watch_rate.max(1) as f64));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let started = Instant::now();
        let live: Vec<u64> = (0..opts.pods)
            .filter(|i| {
                self.pods[*i as usize]
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .is_some()
            })
            .collect();
        for k in 0..opts.watch_events {
            ticker.tick().await;
            let i = live[(k % live.len() as u64) as usize];
            let patch =
                json!({"metadata": {"annotations": {"bench.mainstay.io/seq": k.to_string()}}});
            let sent = Instant::now();
            let answer = self
                .api
                .timed(
                    Method::PATCH,
                    &format!("{path}/{}", pod_name(i)),
                    Some("application/merge-patch+json"),
                    Bytes::from(patch.to_string()),
                    OK,
                )
                .await;
            let responded = Instant::now();
            match answer.and_then(|(took, body)| {
                let meta: ObjectMeta = serde_json::from_slice(&body)
                    .map_err(|e| format!("patch {}: {e}", pod_name(i)))?;
                let rv = meta
                    .metadata
                    .resource_version
                    .as_deref()
                    .and_then(|v| v.parse::<i64>().ok())
                    .ok_or_else(|| format!("patch {}: no resourceVersion", pod_name(i)))?;
                store(&self.pods, i, body);
                Ok((took, rv))
            }) {
                Ok((took, rv)) => {
                    patches.ok(took);
                    written.push((rv, sent, responded));
                }
                Err(e) => patches.error(e),
            }
        }
        patches.elapsed = started.elapsed();
        // Wait for the last events.
        let deadline = Instant::now() + WATCH_DRAIN_TIMEOUT;
        loop {
            let all = {
                let seen = arrivals.lock().unwrap_or_else(|e| e.into_inner());
                written.iter().all(|(rv, _, _)| seen.contains_key(rv))
            };
            if all || Instant::now() >= deadline || task.is_finished() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        stop.store(true, Ordering::Relaxed);
        task.abort();
        let seen = std::mem::take(&mut *arrivals.lock().unwrap_or_else(|e| e.into_inner()));
        for (rv, sent, responded) in &written {
            match seen.get(rv) {
                Some(arrived) => {
                    // An event can beat the response that reports its write: a delay of 0.
                    delays.ok(arrived.saturating_duration_since(*responded));
                    from_send.ok(arrived.saturating_duration_since(*sent));
                }
                None => {
                    let e = format!(
                        "no watch event for resourceVersion {rv} within \
                         {WATCH_DRAIN_TIMEOUT:?} of the last patch"
                    );
                    delays.error(e.clone());
                    from_send.error(e);
                }
            }
        }
        // Every watch error counts; the tally keeps a few messages as samples.
        delays.merge(&watch_errors.lock().unwrap_or_else(|e| e.into_inner()));
        delays.elapsed = patches.elapsed;
        from_send.elapsed = patches.elapsed;
        [patches, delays, from_send]
    }

    /// Opens a watch on the pods of the namespace from the current resourceVersion (as an
    /// informer does after its list) and reads it in a task.
    async fn open_watch(&self, path: &str, expected: u64) -> Result<WatchHandle, String> {
        let body = self
            .api
            .call(
                Method::GET,
                &format!("{path}?limit=1"),
                None,
                Bytes::new(),
                OK,
            )
            .await?;
        let list: ListBody = serde_json::from_slice(&body).map_err(|e| format!("list: {e}"))?;
        let rv = list
            .metadata
            .resource_version
            .ok_or("a list without resourceVersion")?;
        let watch_path = format!("{path}?watch=1&resourceVersion={rv}&timeoutSeconds=600");
        let request = self
            .watch_api
            .request(Method::GET, &watch_path, None, Bytes::new())?;
        let response =
            tokio::time::timeout(REQUEST_TIMEOUT, self.watch_api.client.request(request))
                .await
                .map_err(|_| format!("GET {watch_path}: no answer within {REQUEST_TIMEOUT:?}"))?
                .map_err(|e| format!("GET {watch_path}: {}", error_chain(&e)))?;
        if response.status() != StatusCode::OK {
            return Err(format!("GET {watch_path}: {}", response.status()));
        }
        let arrivals: Arc<Mutex<HashMap<i64, Instant>>> = Arc::default();
        let errors: Arc<Mutex<Tally>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        // Bounded: a few times the events the benchmark causes.
        let cap = (expected as usize).saturating_mul(4).max(1024);
        let task = {
            let (arrivals, errors, stop) = (arrivals.clone(), errors.clone(), stop.clone());
            tokio::spawn(async move {
                let mut body = response.into_body();
                let mut buffer: Vec<u8> = Vec::new();
                let record_error = |e: String| {
                    errors.lock().unwrap_or_else(|e| e.into_inner()).error(e);
                };
                while !stop.load(Ordering::Relaxed) {
                    let frame = match body.frame().await {
                        None => break,
                        Some(Err(e)) => {
                            record_error(format!("the watch broke: {}", error_chain(&e)));
                            break;
                        }
                        Some(Ok(frame)) => frame,
                    };
                    let arrived = Instant::now();
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    buffer.extend_from_slice(&data);
                    while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = buffer.drain(..=end).collect();
                        match parse_event(&line) {
                            Ok(Some(rv)) => {
                                let mut seen = arrivals.lock().unwrap_or_else(|e| e.into_inner());
                                if seen.len() < cap {
                                    seen.entry(rv).or_insert(arrived);
                                }
                            }
                            Ok(None) => {}
                            Err(e) => record_error(e),
                        }
                    }
                    if buffer.len() > MAX_WATCH_LINE {
                        record_error(format!("a watch line over {MAX_WATCH_LINE} bytes"));
                        break;
                    }
                }
            })
        };
        Ok(WatchHandle {
            arrivals,
            errors,
            stop,
            task,
        })
    }
}

struct WatchHandle {
    arrivals: Arc<Mutex<HashMap<i64, Instant>>>,
    errors: Arc<Mutex<Tally>>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

/// A watch line's object resourceVersion (`None` for bookmarks and blank lines); an `ERROR`
/// event is an error.
fn parse_event(line: &[u8]) -> Result<Option<i64>, String> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let event: WatchEvent =
        serde_json::from_slice(line).map_err(|e| format!("a watch line: {e}"))?;
    match event.kind.as_str() {
        "ADDED" | "MODIFIED" | "DELETED" => event
            .object
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .and_then(|v| v.parse().ok())
            .map(Some)
            .ok_or_else(|| format!("a {} event without resourceVersion", event.kind)),
        "BOOKMARK" => Ok(None),
        "ERROR" => Err(format!("the watch sent an ERROR event: {}", event.object)),
        other => Err(format!("a watch event of type {other:?}")),
    }
}

fn store(pods: &[Mutex<Option<Bytes>>], i: u64, object: Bytes) {
    if let Some(slot) = pods.get(i as usize) {
        *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(object);
    }
}

/// Percent-encodes a query value (continue tokens are base64, with `=`, `+` and `/`).
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Runs `op(0..n)` on `concurrency` closed-loop clients; `op` returns its own latency (so that
/// preparing a request is not timed).
async fn closed_loop<F, Fut>(n: u64, concurrency: usize, op: F) -> Tally
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<Duration, String>> + Send + 'static,
{
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency.max(1))
        .map(|_| {
            let (op, next) = (op.clone(), next.clone());
            tokio::spawn(async move {
                let mut tally = Tally::default();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    match op(i).await {
                        Ok(took) => tally.ok(took),
                        Err(e) => tally.error(e),
                    }
                }
                tally
            })
        })
        .collect();
    let mut total = Tally::default();
    for task in tasks {
        match task.await {
            Ok(t) => total.merge(&t),
            Err(e) => total.error(format!("a client task failed: {e}")),
        }
    }
    total.elapsed = started.elapsed();
    total
}

/// A `mainstay apiserver` process. Dropping it kills the process.
pub(crate) struct ApiserverProcess {
    child: Child,
    port: u16,
}

impl ApiserverProcess {
    /// Starts an apiserver on a free loopback port against `cluster`'s members (with `extra`
    /// flags) and waits for `GET /readyz` to answer 200.
    pub(crate) async fn start(
        system: System,
        bin: &Path,
        cluster: &Cluster,
        work_dir: &Path,
    ) -> Result<ApiserverProcess, Error> {
        let port = free_port()?;
        let args: Vec<String> = vec![
            "apiserver".into(),
            "--etcd-servers".into(),
            cluster.endpoints().join(","),
            "--bind-address".into(),
            "127.0.0.1".into(),
            "--secure-port".into(),
            port.to_string(),
        ];
        let child = Child::spawn(&format!("apiserver-{system}-{port}"), bin, &args, work_dir)?;
        let process = ApiserverProcess { child, port };
        process.wait_ready(system).await?;
        Ok(process)
    }

    pub(crate) fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub(crate) fn child(&self) -> &Child {
        &self.child
    }

    async fn wait_ready(&self, system: System) -> Result<(), Error> {
        let api = Api::new(self.base_url(), 1);
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if self.child.exited() {
                return Err(self
                    .child
                    .failure(&format!("the apiserver on {system} exited")));
            }
            let probe = tokio::time::timeout(
                Duration::from_secs(2),
                api.call(Method::GET, "/readyz", None, Bytes::new(), OK),
            )
            .await;
            let last = match probe {
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(e)) => e,
                Err(_) => "GET /readyz: no answer within 2 s".into(),
            };
            if Instant::now() >= deadline {
                return Err(self.child.failure(&format!(
                    "the apiserver on {system} was not ready within {READY_TIMEOUT:?} ({last})"
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(samples_ms: &[u64]) -> OpStats {
        let mut t = Tally::default();
        for ms in samples_ms {
            t.ok(Duration::from_millis(*ms));
        }
        t.elapsed = Duration::from_secs(2);
        t.stats()
    }

    #[test]
    fn tally_percentiles_and_throughput() {
        let samples: Vec<u64> = (1..=1000).collect();
        let mut t = Tally::default();
        for ms in &samples {
            t.ok(Duration::from_millis(*ms));
        }
        t.error("boom".into());
        t.elapsed = Duration::from_secs(4);
        let s = t.stats();
        assert_eq!((s.count, s.errors), (1000, 1));
        assert!((s.throughput - 250.0).abs() < 1e-9, "{s:?}");
        assert!((s.latency.p50_ms - 500.0).abs() < 1.0, "{s:?}");
        assert!((s.latency.p90_ms - 900.0).abs() < 1.0, "{s:?}");
        assert!((s.latency.p99_ms - 990.0).abs() < 1.0, "{s:?}");
        assert!((s.latency.max_ms - 1000.0).abs() < 1.0, "{s:?}");
        assert_eq!(s.error_samples, vec!["boom".to_string()]);
        // Merging keeps every sample, and at most ERROR_SAMPLES messages.
        let mut merged = t.clone();
        for _ in 0..10 {
            merged.error("again".into());
        }
        merged.merge(&t);
        assert_eq!(merged.count, 2000);
        assert_eq!(merged.errors, 12);
        assert_eq!(merged.error_samples.len(), ERROR_SAMPLES);
    }

    #[test]
    fn slo_verdicts() {
        let fast = stats(&[5, 10, 20]);
        let slow = stats(&vec![1_500; 100]);
        assert_eq!(Slo::Mutating.verdict(&fast), Some(true));
        assert_eq!(Slo::SingleObject.verdict(&fast), Some(true));
        assert_eq!(Slo::Mutating.verdict(&slow), Some(false));
        assert_eq!(Slo::SingleObject.verdict(&slow), Some(false));
        // A 1.5 s list is well within the 30 s list SLO; a 40 s one is not.
        assert_eq!(Slo::List.verdict(&slow), Some(true));
        assert_eq!(Slo::List.verdict(&stats(&vec![40_000; 100])), Some(false));
        // Just under the threshold passes (the histogram keeps 3 significant digits).
        assert_eq!(Slo::Mutating.verdict(&stats(&[990])), Some(true));
        assert_eq!(Slo::Mutating.verdict(&stats(&[1_010])), Some(false));
        // No SLO, or no sample: no verdict.
        assert_eq!(Slo::None.verdict(&fast), None);
        assert_eq!(Slo::Mutating.verdict(&OpStats::default()), None);
        assert_eq!(Slo::Mutating.label(), "p99 ≤ 1 s");
        assert_eq!(Slo::List.label(), "p99 ≤ 30 s");
        assert_eq!(Slo::None.label(), "—");
    }

    #[test]
    fn results_judge_and_report_failures() {
        let op = |name: &str, slo, m: OpStats, e: OpStats| OpResult {
            name: name.into(),
            slo,
            fixed_rate: false,
            mainstay: m,
            etcd: e,
        };
        let mut failing = stats(&[5]);
        failing.errors = 2;
        failing.error_samples = vec!["409".into()];
        let results = ApiserverResults {
            options: ApiOptions::standard(1),
            rounds: 1,
            operations: vec![
                op("create pod", Slo::Mutating, stats(&[5]), stats(&[10])),
                op("get pod", Slo::SingleObject, stats(&[1]), stats(&[2_000])),
                op("watch event delay", Slo::None, stats(&[1]), stats(&[1])),
            ],
            runs: vec![ApiRun {
                system: System::Etcd,
                round: 1,
                operations: vec![("create pod".into(), failing)],
            }],
        };
        assert_eq!(results.slo_met(System::Mainstay), Some(true));
        assert_eq!(results.slo_met(System::Etcd), Some(false));
        assert!((results.operations[0].p99_ratio() - 0.5).abs() < 0.01);
        let failures = results.failures();
        assert_eq!(failures.len(), 1);
        assert!(failures[0].contains("create pod on etcd (round 1): 2 errors"));
    }

    #[test]
    fn pod_bodies_are_realistic_and_distinct() {
        let body = pod_body(NAMESPACE, 42).to_string();
        assert!(
            (1_200..=1_900).contains(&body.len()),
            "{} bytes",
            body.len()
        );
        let pod: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(pod["metadata"]["name"], "bench-000042");
        assert_eq!(pod["metadata"]["namespace"], NAMESPACE);
        assert!(pod["spec"]["containers"][0]["resources"]["limits"].is_object());
        assert!(
            pod["spec"]["containers"][0]["env"]
                .as_array()
                .unwrap()
                .len()
                >= 5
        );
        assert_ne!(pod_body(NAMESPACE, 1), pod_body(NAMESPACE, 2));
    }

    #[test]
    fn watch_lines() {
        let modified = br#"{"type":"MODIFIED","object":{"kind":"Pod","metadata":{"name":"a","resourceVersion":"17"}}}"#;
        assert_eq!(parse_event(modified), Ok(Some(17)));
        assert_eq!(parse_event(b"\n"), Ok(None));
        let bookmark = br#"{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"20"}}}"#;
        assert_eq!(parse_event(bookmark), Ok(None));
        let error = br#"{"type":"ERROR","object":{"kind":"Status","code":410}}"#;
        assert!(parse_event(error).unwrap_err().contains("ERROR"));
        assert!(parse_event(b"{not json").is_err());
    }

    #[test]
    fn continue_tokens_are_encoded() {
        assert_eq!(percent_encode("eyJ2Ijo+/=="), "eyJ2Ijo%2B%2F%3D%3D");
        assert_eq!(percent_encode("a-b_c.d~e"), "a-b_c.d~e");
    }

    #[test]
    fn operations_match_phases() {
        // create, get, 3 lists, patch + 2 watch delays, update, delete
        assert_eq!(operations(&ApiOptions::standard(1)).len(), 10);
    }

    #[tokio::test]
    async fn closed_loop_runs_each_index_once() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let op = {
            let seen = seen.clone();
            move |i: u64| {
                let seen = seen.clone();
                async move {
                    seen.lock().unwrap().push(i);
                    if i.is_multiple_of(10) {
                        Err(format!("op {i}"))
                    } else {
                        Ok(Duration::from_millis(1))
                    }
                }
            }
        };
        let t = closed_loop(100, 7, op).await;
        assert_eq!((t.count, t.errors), (90, 10));
        let mut seen = seen.lock().unwrap().clone();
        seen.sort_unstable();
        assert_eq!(seen, (0..100).collect::<Vec<_>>());
    }
}
