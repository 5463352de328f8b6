//! `mainstay scheduler`, `mainstay controller-manager` and `mainstay nodes`: Kubernetes clients
//! that reach the cluster only through the Kubernetes API (a kubeconfig), with kube's flag names
//! where they mean the same. The scheduler and the controller-manager campaign for a Lease and
//! act only while they hold it; a leader that loses it exits with status 1, as kube's do, and one
//! asked to stop releases it first.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{ArgAction, Args};
use mainstay_component::election::{self, ElectionConfig};
use mainstay_component::metrics::Metrics;
use mainstay_component::Leading;

use crate::apiserver::parse_go_duration;

/// kube's `--leader-elect*` flags (component-base's defaults).
#[derive(Args, Clone)]
pub struct LeaderElectionArgs {
    /// Campaign for a Lease and act only while holding it.
    #[arg(long, default_value_t = true, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    leader_elect: bool,
    /// How long a Lease holds after its last renewal before others may take it.
    #[arg(long, default_value = "15s")]
    leader_elect_lease_duration: String,
    /// How long the leader keeps trying to renew before it stops acting.
    #[arg(long, default_value = "10s")]
    leader_elect_renew_deadline: String,
    /// The wait between tries to acquire or renew.
    #[arg(long, default_value = "2s")]
    leader_elect_retry_period: String,
    /// The Lease's namespace.
    #[arg(long, default_value = "kube-system")]
    leader_elect_resource_namespace: String,
    /// The Lease's name (default: the component's, `kube-scheduler` or `kube-controller-manager`).
    #[arg(long)]
    leader_elect_resource_name: Option<String>,
}

/// What every component takes: where the cluster is, and where to serve health and metrics.
#[derive(Args, Clone)]
pub struct ComponentArgs {
    /// The kubeconfig naming the apiserver and credentials (default: `$KUBECONFIG`, then
    /// `~/.kube/config`).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Address for `/healthz`, `/readyz` and `/metrics` (plain HTTP).
    #[arg(long, default_value = "127.0.0.1")]
    bind_address: String,
    /// Port for `/healthz`, `/readyz` and `/metrics`; 0 serves none.
    #[arg(long)]
    secure_port: Option<u16>,
}

#[derive(Args)]
pub struct SchedulerArgs {
    #[command(flatten)]
    component: ComponentArgs,
    #[command(flatten)]
    election: LeaderElectionArgs,
    /// The `spec.schedulerName` of the pods this scheduler places.
    #[arg(long, default_value = "default-scheduler")]
    scheduler_name: String,
    /// Backoff of a pod that could not be placed, first retry.
    #[arg(long, default_value = "1s")]
    pod_initial_backoff: String,
    /// Backoff of a pod that could not be placed, longest.
    #[arg(long, default_value = "10s")]
    pod_max_backoff: String,
}

#[derive(Args)]
pub struct ControllerManagerArgs {
    #[command(flatten)]
    component: ComponentArgs,
    #[command(flatten)]
    election: LeaderElectionArgs,
    /// Controllers to run: `*` (all on by default), `name` to enable, `-name` to disable.
    #[arg(long, value_delimiter = ',', default_value = "*")]
    controllers: Vec<String>,
    /// Deployments synced at once.
    #[arg(long, default_value_t = 5)]
    concurrent_deployment_syncs: usize,
    /// ReplicaSets synced at once.
    #[arg(long, default_value_t = 5)]
    concurrent_replicaset_syncs: usize,
    /// Namespaces being deleted that are emptied at once.
    #[arg(long, default_value_t = 10)]
    concurrent_namespace_syncs: usize,
    /// Garbage collector workers per queue.
    #[arg(long, default_value_t = 20)]
    concurrent_gc_syncs: usize,
    /// Jobs synced at once.
    #[arg(long, default_value_t = 5)]
    concurrent_job_syncs: usize,
    /// CronJobs synced at once.
    #[arg(long, default_value_t = 5)]
    concurrent_cron_job_syncs: usize,
    /// Finished Jobs checked for their TTL at once.
    #[arg(long, default_value_t = 5)]
    concurrent_ttl_after_finished_syncs: usize,
    /// Namespaces given their ServiceAccounts at once.
    #[arg(long, default_value_t = 5)]
    concurrent_serviceaccount_syncs: usize,
    /// Services' Endpoints synced at once.
    #[arg(long, default_value_t = 5)]
    concurrent_endpoint_syncs: usize,
    /// Services' EndpointSlices synced at once.
    #[arg(long, default_value_t = 5)]
    concurrent_service_endpoint_syncs: usize,
    /// Endpoints per EndpointSlice at most (1 to 1000).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..=1000))]
    max_endpoints_per_slice: u16,
}

#[derive(Args)]
pub struct NodesArgs {
    #[command(flatten)]
    component: ComponentArgs,
    /// How many nodes this process simulates.
    #[arg(long, default_value_t = 3)]
    count: usize,
    /// Node names are this prefix and a number.
    #[arg(long, default_value = "mainstay-node-")]
    name_prefix: String,
    /// The number of the first node (several processes can share a prefix).
    #[arg(long, default_value_t = 0)]
    first_index: usize,
    /// Each node's cpu capacity.
    #[arg(long, default_value = "8")]
    cpu: String,
    /// Each node's memory capacity.
    #[arg(long, default_value = "32Gi")]
    memory: String,
    /// Each node's pod capacity (kubelet's maxPods).
    #[arg(long, default_value_t = 110)]
    pods: u32,
    /// Extra node labels, `key=value,...`.
    #[arg(long, default_value = "")]
    labels: String,
    /// Node taints, `key=value:Effect,...`.
    #[arg(long, value_delimiter = ',')]
    taints: Vec<String>,
    /// How long a pod stays in ContainerCreating.
    #[arg(long, default_value = "100ms")]
    pod_start_delay: String,
    /// How often a node posts its status when nothing changed (its Lease is renewed every 10 s).
    #[arg(long, default_value = "5m")]
    node_status_report_frequency: String,
}

impl LeaderElectionArgs {
    fn config(&self, default_name: &str, metrics: &Metrics) -> anyhow::Result<ElectionConfig> {
        let mut cfg = ElectionConfig::new(
            &self.leader_elect_resource_namespace,
            self.leader_elect_resource_name
                .as_deref()
                .unwrap_or(default_name),
        );
        cfg.lease_duration = parse_go_duration(&self.leader_elect_lease_duration)?;
        cfg.renew_deadline = parse_go_duration(&self.leader_elect_renew_deadline)?;
        cfg.retry_period = parse_go_duration(&self.leader_elect_retry_period)?;
        cfg.metrics = Some(metrics.clone());
        Ok(cfg)
    }
}

async fn client(c: &ComponentArgs, agent: &str) -> anyhow::Result<kube::Client> {
    mainstay_component::client::client(c.kubeconfig.as_deref(), agent)
        .await
        .context("building the Kubernetes client")
}

/// Serves `/healthz`, `/readyz` and `/metrics` when a port was given.
fn serve(c: &ComponentArgs, metrics: &Metrics) -> anyhow::Result<()> {
    let Some(port) = c.secure_port.filter(|p| *p != 0) else {
        return Ok(());
    };
    let addr: SocketAddr = format!("{}:{port}", c.bind_address)
        .parse()
        .with_context(|| format!("--bind-address {:?}", c.bind_address))?;
    let metrics = metrics.clone();
    tokio::spawn(async move {
        if let Err(e) = mainstay_component::serve::serve_health(
            addr,
            metrics,
            || true,
            crate::signal::shutdown(),
        )
        .await
        {
            tracing::error!("health endpoint: {e}");
        }
    });
    Ok(())
}

/// Runs `lead` as the elected leader (or always, with `--leader-elect=false`) until shutdown.
/// A `lead` that fails ends the process with its error (as kube's components exit), rather than
/// holding the Lease while doing nothing; the Lease then expires and another candidate takes it.
async fn elected<F, Fut>(
    client: kube::Client,
    e: &LeaderElectionArgs,
    lease_name: &str,
    metrics: &Metrics,
    lead: F,
) -> anyhow::Result<()>
where
    F: FnOnce(Leading) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let (failed_tx, failed_rx) = tokio::sync::oneshot::channel::<anyhow::Error>();
    let lead = move |leading: Leading| async move {
        if let Err(e) = lead(leading).await {
            let _ = failed_tx.send(e);
            std::future::pending::<()>().await;
        }
    };
    if !e.leader_elect {
        let leading = Leading::always();
        let outcome = tokio::select! {
            _ = lead(leading.clone()) => Ok(()),
            Ok(e) = failed_rx => Err(e),
            _ = crate::signal::shutdown() => Ok(()),
        };
        leading.end();
        return outcome;
    }
    let cfg = e.config(lease_name, metrics)?;
    tokio::select! {
        r = election::run_elected(client, cfg, crate::signal::shutdown(), lead) => {
            r.context("leader election")
        }
        Ok(e) = failed_rx => Err(e),
    }
}

pub async fn scheduler(args: SchedulerArgs) -> anyhow::Result<()> {
    let client = client(&args.component, "mainstay-scheduler").await?;
    let metrics = Metrics::default();
    serve(&args.component, &metrics)?;
    let cfg = mainstay_scheduler::SchedulerConfig {
        scheduler_name: args.scheduler_name.clone(),
        pod_initial_backoff: parse_go_duration(&args.pod_initial_backoff)?,
        pod_max_backoff: parse_go_duration(&args.pod_max_backoff)?,
        ..Default::default()
    };
    let scheduler_metrics = mainstay_scheduler::Metrics::new(&metrics, &cfg.scheduler_name);
    let c = client.clone();
    elected(
        client,
        &args.election,
        "kube-scheduler",
        &metrics,
        move |leading| async move {
            mainstay_scheduler::run_with_metrics(c, cfg, leading, scheduler_metrics)
                .await
                .context("scheduler")
        },
    )
    .await
}

pub async fn controller_manager(args: ControllerManagerArgs) -> anyhow::Result<()> {
    // Refuse unknown controller names before campaigning.
    mainstay_controllers::enabled_controllers(&args.controllers)?;
    let client = client(&args.component, "mainstay-controller-manager").await?;
    let metrics = Metrics::default();
    serve(&args.component, &metrics)?;
    let cfg = mainstay_controllers::ManagerConfig {
        controllers: args.controllers.clone(),
        concurrent_deployment_syncs: args.concurrent_deployment_syncs,
        concurrent_replicaset_syncs: args.concurrent_replicaset_syncs,
        concurrent_namespace_syncs: args.concurrent_namespace_syncs,
        concurrent_gc_syncs: args.concurrent_gc_syncs,
        concurrent_job_syncs: args.concurrent_job_syncs,
        concurrent_cron_job_syncs: args.concurrent_cron_job_syncs,
        concurrent_ttl_after_finished_syncs: args.concurrent_ttl_after_finished_syncs,
        concurrent_serviceaccount_syncs: args.concurrent_serviceaccount_syncs,
        concurrent_endpoint_syncs: args.concurrent_endpoint_syncs,
        concurrent_service_endpoint_syncs: args.concurrent_service_endpoint_syncs,
        max_endpoints_per_slice: usize::from(args.max_endpoints_per_slice),
    };
    let c = client.clone();
    elected(
        client,
        &args.election,
        "kube-controller-manager",
        &metrics,
        move |leading| async move {
            mainstay_controllers::run(c, cfg, leading)
                .await
                .context("controller-manager")
        },
    )
    .await
}

pub async fn nodes(args: NodesArgs) -> anyhow::Result<()> {
    let client = client(&args.component, "mainstay-nodes").await?;
    let metrics = Metrics::default();
    serve(&args.component, &metrics)?;
    let taints = args
        .taints
        .iter()
        .filter(|t| !t.is_empty())
        .map(|t| mainstay_nodesim::parse_taint(t))
        .collect::<Result<Vec<_>, _>>()?;
    let cfg = mainstay_nodesim::NodesConfig {
        count: args.count,
        name_prefix: args.name_prefix.clone(),
        first_index: args.first_index,
        cpu: args.cpu.clone(),
        memory: args.memory.clone(),
        pods: args.pods,
        labels: mainstay_nodesim::parse_labels(&args.labels)?,
        taints,
        pod_start_delay: parse_go_duration(&args.pod_start_delay)?,
        status_report_interval: parse_go_duration(&args.node_status_report_frequency)?,
        ..Default::default()
    };
    mainstay_nodesim::run(client, cfg, crate::signal::shutdown())
        .await
        .context("simulated nodes")?;
    Ok(())
}
