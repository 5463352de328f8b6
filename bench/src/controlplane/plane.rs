//! A control plane for one shape on one system: a 3-member cluster of the system, one
//! `mainstay apiserver` in front of it, and the components the shape needs (`mainstay
//! scheduler`, `mainstay controller-manager`, `mainstay nodes`), each a process talking to the
//! apiserver through a kubeconfig as kube's own components do. The benchmark's own client is
//! kube-rs on the same apiserver.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Node};
use kube::api::{ListParams, PostParams};
use kube::Api;
use mainstay_testkit::cluster::Cluster;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;

use crate::apiserver::ApiserverProcess;
use crate::controlplane::results::{Errors, PlaneUsage};
use crate::process::Child;
use crate::procstat::{self, ProcSample};
use crate::systems::{start_cluster, Options, System};
use crate::Error;

/// How long components may take to lead, and nodes to register, before the run is abandoned.
const COMPONENT_TIMEOUT: Duration = Duration::from_secs(60);
/// Upper bound of one request of the benchmark's client.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Which components a shape runs besides the apiserver.
#[derive(Clone, Copy, Debug)]
pub struct Parts {
    pub scheduler: bool,
    pub controller_manager: bool,
}

impl Parts {
    /// The scheduler alone (scheduler_perf runs no controllers).
    pub const SCHEDULER: Parts = Parts {
        scheduler: true,
        controller_manager: false,
    };
    /// The scheduler and the controller-manager.
    pub const BOTH: Parts = Parts {
        scheduler: true,
        controller_manager: true,
    };
}

/// A running plane. Fields drop in order: components, then the apiserver, then the store
/// (node processes are the shapes' own, and go before the plane).
pub struct Plane {
    pub system: System,
    scheduler: Option<Child>,
    manager: Option<Child>,
    apiserver: ApiserverProcess,
    cluster: Cluster,
    kubeconfig: PathBuf,
    bin: PathBuf,
    work_dir: PathBuf,
    pub client: kube::Client,
}

impl Plane {
    /// Starts the store, the apiserver and `parts`, and waits until the apiserver serves and
    /// each component holds its Lease.
    pub async fn start(system: System, opts: &Options, parts: Parts) -> Result<Plane, Error> {
        let cluster = start_cluster(system, opts).await;
        let apiserver =
            ApiserverProcess::start(system, &opts.mainstay_bin, &cluster, &opts.work_dir).await?;
        let url = apiserver.base_url();
        let kubeconfig = opts.work_dir.join(format!(
            "mainstay-bench-{}-{system}.kubeconfig",
            std::process::id()
        ));
        std::fs::write(&kubeconfig, kubeconfig_yaml(&url)).map_err(Error::io(&kubeconfig))?;
        let mut config = kube::Config::new(
            url.parse()
                .map_err(|e| Error::Setup(format!("apiserver URL {url}: {e}")))?,
        );
        config.read_timeout = Some(REQUEST_TIMEOUT);
        config.write_timeout = Some(REQUEST_TIMEOUT);
        let client = kube::Client::try_from(config)
            .map_err(|e| Error::Setup(format!("a kube client for {url}: {e}")))?;
        let mut plane = Plane {
            system,
            scheduler: None,
            manager: None,
            apiserver,
            cluster,
            kubeconfig,
            bin: opts.mainstay_bin.clone(),
            work_dir: opts.work_dir.clone(),
            client,
        };
        if parts.scheduler {
            plane.scheduler = Some(plane.spawn("scheduler", &[])?);
        }
        if parts.controller_manager {
            plane.manager = Some(plane.spawn("controller-manager", &[])?);
        }
        if parts.scheduler {
            plane.wait_leader("kube-scheduler").await?;
        }
        if parts.controller_manager {
            plane.wait_leader("kube-controller-manager").await?;
        }
        Ok(plane)
    }

    /// Runs `mainstay <subcommand> --kubeconfig <ours> <args>` (e.g. `nodes --count 100`).
    pub fn spawn(&self, subcommand: &str, args: &[String]) -> Result<Child, Error> {
        let mut all = vec![
            subcommand.to_string(),
            "--kubeconfig".to_string(),
            self.kubeconfig.display().to_string(),
        ];
        all.extend(args.iter().cloned());
        let name = format!(
            "{subcommand}-{}-{}",
            self.system,
            args.join("-").replace('/', "_")
        );
        Child::spawn(&name, &self.bin, &all, &self.work_dir)
    }

    /// Stops the scheduler cleanly (SIGTERM: it releases its Lease).
    pub fn stop_scheduler(&mut self) -> Result<(), Error> {
        if let Some(s) = self.scheduler.take() {
            if !s.terminate(Duration::from_secs(20)) {
                return Err(s.failure("the scheduler did not stop within 20 s of SIGTERM"));
            }
        }
        Ok(())
    }

    /// Starts a scheduler (again) and waits until it holds the Lease.
    pub async fn start_scheduler(&mut self) -> Result<(), Error> {
        self.scheduler = Some(self.spawn("scheduler", &[])?);
        self.wait_leader("kube-scheduler").await
    }

    /// An error if the apiserver, a component or one of `others` has exited (with the end of
    /// its log).
    pub fn check_alive(&self, others: &[&Child]) -> Result<(), Error> {
        let components = self.scheduler.iter().chain(&self.manager);
        let all = components
            .chain(std::iter::once(self.apiserver.child()))
            .chain(others.iter().copied());
        for c in all {
            if c.exited() {
                return Err(c.failure("a component of the plane exited"));
            }
        }
        Ok(())
    }

    /// Waits until the Lease `kube-system/<name>` has a holder.
    async fn wait_leader(&self, name: &str) -> Result<(), Error> {
        let leases: Api<Lease> = Api::namespaced(self.client.clone(), "kube-system");
        let deadline = Instant::now() + COMPONENT_TIMEOUT;
        loop {
            self.check_alive(&[])?;
            if let Ok(lease) = leases.get(name).await {
                if lease
                    .spec
                    .and_then(|s| s.holder_identity)
                    .is_some_and(|h| !h.is_empty())
                {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(Error::Setup(format!(
                    "no {name} leader within {COMPONENT_TIMEOUT:?}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until `count` nodes named `<prefix>…` are Ready; how long that took.
    pub async fn wait_nodes_ready(
        &self,
        process: &Child,
        prefix: &str,
        count: usize,
        timeout: Duration,
    ) -> Result<Duration, Error> {
        let started = Instant::now();
        let nodes: Api<Node> = Api::all(self.client.clone());
        loop {
            self.check_alive(&[process])?;
            let ready = match nodes.list(&ListParams::default()).await {
                Ok(list) => list
                    .items
                    .iter()
                    .filter(|n| n.metadata.name.as_deref().unwrap_or("").starts_with(prefix))
                    .filter(|n| node_ready(n))
                    .count(),
                Err(_) => 0,
            };
            if ready >= count {
                return Ok(started.elapsed());
            }
            if started.elapsed() > timeout {
                return Err(Error::Setup(format!(
                    "{ready} of {count} nodes Ready within {timeout:?}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    pub async fn create_namespace(&self, name: &str) -> Result<(), Error> {
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))?;
        Api::<Namespace>::all(self.client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .map_err(|e| Error::Setup(format!("creating namespace {name}: {e}")))?;
        Ok(())
    }

    /// CPU time and memory of every process (with the node processes `nodes`), and the
    /// store's revision, now.
    pub async fn sample(&mut self, nodes: &[&Child]) -> UsageSample {
        let sum = |children: &mut dyn Iterator<Item = &Child>| {
            children
                .filter_map(Child::sample)
                .fold(ProcSample::default(), |a, b| a + b)
        };
        let store = (0..self.cluster.len())
            .filter_map(|i| self.cluster.pid(i))
            .filter_map(procstat::sample)
            .fold(ProcSample::default(), |a, b| a + b);
        let revision = self.cluster.leader_revision().await;
        UsageSample {
            at: Instant::now(),
            revision,
            store,
            apiserver: self.apiserver.child().sample().unwrap_or_default(),
            scheduler: sum(&mut self.scheduler.iter()),
            manager: sum(&mut self.manager.iter()),
            nodes: sum(&mut nodes.iter().copied()),
        }
    }
}

impl Drop for Plane {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.kubeconfig);
    }
}

/// What [`Plane::sample`] read.
#[derive(Clone, Copy, Debug)]
pub struct UsageSample {
    at: Instant,
    revision: i64,
    store: ProcSample,
    apiserver: ProcSample,
    scheduler: ProcSample,
    manager: ProcSample,
    nodes: ProcSample,
}

impl UsageSample {
    /// What the plane used between `self` and `later` (memory: as of `later`).
    pub fn until(&self, later: &UsageSample) -> PlaneUsage {
        let cpu = |a: &ProcSample, b: &ProcSample| (b.cpu_seconds - a.cpu_seconds).max(0.0);
        PlaneUsage {
            seconds: later.at.duration_since(self.at).as_secs_f64(),
            store_cpu_seconds: cpu(&self.store, &later.store),
            store_rss_bytes: later.store.rss_bytes,
            apiserver_cpu_seconds: cpu(&self.apiserver, &later.apiserver),
            apiserver_rss_bytes: later.apiserver.rss_bytes,
            scheduler_cpu_seconds: cpu(&self.scheduler, &later.scheduler),
            controller_manager_cpu_seconds: cpu(&self.manager, &later.manager),
            nodes_cpu_seconds: cpu(&self.nodes, &later.nodes),
            nodes_rss_bytes: later.nodes.rss_bytes,
            store_writes: (later.revision - self.revision).max(0) as u64,
        }
    }
}

fn node_ready(n: &Node) -> bool {
    n.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn kubeconfig_yaml(url: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: bench\n  cluster:\n    server: {url}\n\
         contexts:\n- name: bench\n  context:\n    cluster: bench\n    user: bench\n\
         current-context: bench\nusers:\n- name: bench\n  user: {{}}\n"
    )
}

/// Creates `objects` through `api`, at most `concurrency` requests in flight and, with `rate`,
/// paced: the i-th is sent no earlier than i / rate s after the first. Each created object's
/// name with the instant its create was sent (failed ones are left out and counted in the
/// errors).
pub async fn create_all<K>(
    api: &Api<K>,
    objects: impl Iterator<Item = K>,
    rate: Option<f64>,
    concurrency: usize,
) -> (Vec<(String, Instant)>, Errors)
where
    K: kube::Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    let start = tokio::time::Instant::now();
    let paced = futures::stream::iter(objects.enumerate()).then(|(i, obj)| async move {
        if let Some(rate) = rate {
            let at = Duration::from_secs_f64(i as f64 / rate.max(0.001));
            tokio::time::sleep_until(start + at).await;
        }
        obj
    });
    let results: Vec<Result<(String, Instant), String>> = paced
        .map(|obj| async move {
            let name = obj.meta().name.clone().unwrap_or_default();
            let sent = Instant::now();
            match api.create(&PostParams::default(), &obj).await {
                Ok(_) => Ok((name, sent)),
                Err(e) => Err(format!("creating {name}: {e}")),
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let mut errors = Errors::default();
    let mut sent = Vec::with_capacity(results.len());
    for r in results {
        match r {
            Ok(s) => sent.push(s),
            Err(e) => errors.add(e),
        }
    }
    (sent, errors)
}
