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
    /// DaemonSets synced at once.
    #[arg(long, default_value_t = 2)]
    concurrent_daemonset_syncs: usize,
    /// StatefulSets synced at once.
    #[arg(long, default_value_t = 5)]
    concurrent_statefulset_syncs: usize,
    /// ReplicationControllers synced at once.
    #[arg(long, default_value_t = 5)]
    concurrent_rc_syncs: usize,
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
    #[command(flatten)]
    node: NodeControllerArgs,
}

/// The node controllers' flags (kube-controller-manager's names and 1.32 defaults).
#[derive(Args)]
pub struct NodeControllerArgs {
    /// How often node health is checked.
    #[arg(long, default_value = "5s")]
    node_monitor_period: String,
    /// Silence (no Lease renewal, no status) after which a node is marked Unknown.
    #[arg(long, default_value = "50s")]
    node_monitor_grace_period: String,
    /// The same for a node that never posted its status.
    #[arg(long, default_value = "1m")]
    node_startup_grace_period: String,
    /// NoExecute taints added per second in a healthy zone.
    #[arg(long, default_value_t = 0.1)]
    node_eviction_rate: f64,
    /// The same in a partially disrupted zone larger than --large-cluster-size-threshold.
    #[arg(long, default_value_t = 0.01)]
    secondary_node_eviction_rate: f64,
    /// Zones with more nodes than this keep tainting (slower) when partially disrupted.
    #[arg(long, default_value_t = 50)]
    large_cluster_size_threshold: usize,
    /// The share of not-Ready nodes that makes a zone partially disrupted.
    #[arg(long, default_value_t = 0.55)]
    unhealthy_zone_threshold: f64,
    /// Give nodes pod CIDRs from --cluster-cidr (node IPAM).
    #[arg(long, default_value_t = false, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    allocate_node_cidrs: bool,
    /// The range pod CIDRs come from.
    #[arg(long)]
    cluster_cidr: Option<String>,
    /// The size of each node's IPv4 pod CIDR.
    #[arg(long, default_value_t = 24)]
    node_cidr_mask_size: u8,
    /// The same (overrides --node-cidr-mask-size).
    #[arg(long)]
    node_cidr_mask_size_ipv4: Option<u8>,
    /// Terminated pods kept before the oldest are deleted (0 or less: never).
    #[arg(long, default_value_t = 12_500)]
    terminated_pod_gc_threshold: i64,
}

impl NodeControllerArgs {
    fn config(&self) -> anyhow::Result<mainstay_controllers::nodeconfig::NodeControllersConfig> {
        let cfg = mainstay_controllers::nodeconfig::NodeControllersConfig {
            node_monitor_period: parse_go_duration(&self.node_monitor_period)?,
            node_monitor_grace_period: parse_go_duration(&self.node_monitor_grace_period)?,
            node_startup_grace_period: parse_go_duration(&self.node_startup_grace_period)?,
            node_eviction_rate: self.node_eviction_rate,
            secondary_node_eviction_rate: self.secondary_node_eviction_rate,
            large_cluster_size_threshold: self.large_cluster_size_threshold,
            unhealthy_zone_threshold: self.unhealthy_zone_threshold,
            allocate_node_cidrs: self.allocate_node_cidrs,
            cluster_cidr: self.cluster_cidr.clone(),
            node_cidr_mask_size_ipv4: self
                .node_cidr_mask_size_ipv4
                .unwrap_or(self.node_cidr_mask_size),
            terminated_pod_gc_threshold: self.terminated_pod_gc_threshold,
        };
        cfg.validate().map_err(anyhow::Error::msg)?;
        Ok(cfg)
    }
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
    /// Register each node with a pod CIDR of its own; `false` waits for the one the node IPAM
    /// controller (`--allocate-node-cidrs`) assigns.
    #[arg(long, default_value_t = true, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    register_pod_cidr: bool,
    /// kubelet's `nodeLeaseDurationSeconds`: each node's Lease lasts this long and is renewed
    /// every quarter of it (kubelet: 40, renewed every 10 s).
    #[arg(long, default_value_t = 40)]
    node_lease_duration_seconds: u32,
}

/// `mainstay nodes-admin`: stop or start one node of a running `mainstay nodes` process, as
/// when its machine dies and comes back (over the process's `--secure-port`).
#[derive(Args)]
pub struct NodesAdminArgs {
    /// `stop`, `start` or `list`.
    action: String,
    /// The node (not for `list`).
    node: Option<String>,
    /// The `mainstay nodes` process's `--bind-address:--secure-port`.
    #[arg(long, default_value = "127.0.0.1:10250")]
    address: String,
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
        concurrent_daemonset_syncs: args.concurrent_daemonset_syncs,
        concurrent_statefulset_syncs: args.concurrent_statefulset_syncs,
        concurrent_rc_syncs: args.concurrent_rc_syncs,
        concurrent_cron_job_syncs: args.concurrent_cron_job_syncs,
        concurrent_ttl_after_finished_syncs: args.concurrent_ttl_after_finished_syncs,
        concurrent_serviceaccount_syncs: args.concurrent_serviceaccount_syncs,
        concurrent_endpoint_syncs: args.concurrent_endpoint_syncs,
        concurrent_service_endpoint_syncs: args.concurrent_service_endpoint_syncs,
        max_endpoints_per_slice: usize::from(args.max_endpoints_per_slice),
        node: args.node.config()?,
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
        register_pod_cidr: args.register_pod_cidr,
        lease_duration_seconds: i32::try_from(args.node_lease_duration_seconds)
            .context("--node-lease-duration-seconds")?,
        lease_renew_interval: std::time::Duration::from_secs(u64::from(
            args.node_lease_duration_seconds,
        )) / 4,
        ..Default::default()
    };
    let control = mainstay_nodesim::NodeControl::new(&cfg);
    // Health and metrics, plus the admin routes that stop and start single nodes.
    if let Some(port) = args.component.secure_port.filter(|p| *p != 0) {
        let addr: SocketAddr = format!("{}:{port}", args.component.bind_address)
            .parse()
            .with_context(|| format!("--bind-address {:?}", args.component.bind_address))?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        let (metrics, control) = (metrics.clone(), control.clone());
        tokio::spawn(async move {
            if let Err(e) =
                mainstay_nodesim::serve_admin(listener, metrics, control, crate::signal::shutdown())
                    .await
            {
                tracing::error!("admin endpoint: {e}");
            }
        });
    }
    mainstay_nodesim::run_with_control(client, cfg, control, crate::signal::shutdown())
        .await
        .context("simulated nodes")?;
    Ok(())
}

/// One plain HTTP/1.1 request to a `mainstay nodes` process's admin port.
async fn admin_request(address: &str, method: &str, path: &str) -> anyhow::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tokio::net::TcpStream::connect(address),
    )
    .await
    .context("connecting timed out")?
    .with_context(|| format!("connecting to {address}"))?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await?;
    let mut buf = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        s.take(1 << 20).read_to_end(&mut buf),
    )
    .await
    .context("reading the reply timed out")??;
    let text = String::from_utf8_lossy(&buf);
    let code: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("not an HTTP reply")?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    Ok((code, body.to_string()))
}

pub async fn nodes_admin(args: NodesAdminArgs) -> anyhow::Result<()> {
    let (method, path) = match (args.action.as_str(), args.node.as_deref()) {
        ("list", _) => ("GET", "/nodes".to_string()),
        (verb @ ("stop" | "start"), Some(node)) => ("POST", format!("/nodes/{node}/{verb}")),
        (verb @ ("stop" | "start"), None) => anyhow::bail!("{verb} needs a node name"),
        (other, _) => anyhow::bail!("unknown action {other:?}: stop, start or list"),
    };
    let (code, body) = admin_request(&args.address, method, &path).await?;
    print!("{body}");
    if !(200..300).contains(&code) {
        anyhow::bail!("{method} {path}: HTTP {code}");
    }
    Ok(())
}
