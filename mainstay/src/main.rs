//! `mainstay`: one binary, with a subcommand per role.
//!
//! - `mainstay store`: a store node serving etcd's v3 API, configured with etcd's flag names (and
//!   `ETCD_*` environment variables) so operators' scripts carry over.
//! - `mainstay apiserver`: a Kubernetes API server replica over the store (kube-apiserver's flags).
//! - `mainstay scheduler`, `mainstay controller-manager`: kube-scheduler and
//!   kube-controller-manager, Kubernetes clients that elect a leader with a Lease.
//! - `mainstay nodes`: simulated worker nodes (hollow kubelets); `mainstay nodes-admin` stops or
//!   starts one of them in a running process, as when its machine dies and comes back.
//! - `mainstay dev`: three masters on loopback (each a `mainstay store` member, an apiserver, a
//!   scheduler and a controller-manager, as separate processes), simulated nodes, a kubeconfig.
//! - `mainstay health`: asks a node's `/health` (for container health checks: the image has no shell).
//! - `mainstay bench`: the benchmark harness, Mainstay and etcd 3-member clusters side by side.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use mainstay_server::node::ClusterState;
use mainstay_server::{Node, NodeConfig};

mod apiserver;
mod bench;
mod chaos;
mod components;
mod dev;
mod signal;

#[derive(Parser)]
#[command(
    name = "mainstay",
    version,
    about = "A Kubernetes-style control plane with an etcd-compatible store"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a store node that speaks etcd's v3 gRPC API.
    Store(Box<StoreArgs>),
    /// Run a Kubernetes API server replica over etcd or Mainstay (kube-apiserver's flag names).
    Apiserver(Box<apiserver::ApiserverArgs>),
    /// Run a kube-scheduler: place pending pods on nodes (kube-scheduler's flag names).
    Scheduler(Box<components::SchedulerArgs>),
    /// Run a kube-controller-manager: the ReplicaSet and Deployment controllers.
    ControllerManager(Box<components::ControllerManagerArgs>),
    /// Run simulated worker nodes (hollow kubelets) that register and run pods without a runtime.
    Nodes(Box<components::NodesArgs>),
    /// Run three masters on loopback (a store member, an apiserver, a scheduler and a
    /// controller-manager each, as separate processes) and simulated nodes, until Ctrl-C.
    Dev(dev::DevArgs),
    /// Check a node's /health endpoint; exit 0 when healthy.
    Health {
        /// Client URL of the node.
        #[arg(long, default_value = "http://127.0.0.1:2379")]
        endpoint: String,
    },
    /// Benchmark a 3-member Mainstay cluster against a 3-member etcd cluster on this machine.
    Bench(bench::BenchArgs),
    /// Run the chaos suite against the docker compose cluster: faults under a recorded
    /// workload, then linearizability, durability, watch and convergence checks.
    Chaos(chaos::ChaosArgs),
    /// Stop or start one simulated node of a running `mainstay nodes` process (as when its
    /// machine dies and comes back), or list them.
    NodesAdmin(components::NodesAdminArgs),
}

fn split_urls(s: &str) -> Vec<String> {
    s.split(',')
        .map(|u| u.trim().to_string())
        .filter(|u| !u.is_empty())
        .collect()
}

#[derive(Args)]
struct StoreArgs {
    /// Human-readable name of this member.
    #[arg(long, env = "ETCD_NAME", default_value = "default")]
    name: String,
    /// Where the data lives (default: `<name>.etcd`).
    #[arg(long, env = "ETCD_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Comma-separated URLs to serve clients on.
    #[arg(
        long,
        env = "ETCD_LISTEN_CLIENT_URLS",
        default_value = "http://localhost:2379"
    )]
    listen_client_urls: String,
    /// Comma-separated client URLs advertised to the cluster.
    #[arg(
        long,
        env = "ETCD_ADVERTISE_CLIENT_URLS",
        default_value = "http://localhost:2379"
    )]
    advertise_client_urls: String,
    /// Comma-separated URLs to listen on for peer traffic.
    #[arg(
        long,
        env = "ETCD_LISTEN_PEER_URLS",
        default_value = "http://localhost:2380"
    )]
    listen_peer_urls: String,
    /// Comma-separated peer URLs advertised to the cluster.
    #[arg(
        long,
        env = "ETCD_INITIAL_ADVERTISE_PEER_URLS",
        default_value = "http://localhost:2380"
    )]
    initial_advertise_peer_urls: String,
    /// Initial cluster configuration, `name=peerURL,...`.
    #[arg(
        long,
        env = "ETCD_INITIAL_CLUSTER",
        default_value = "default=http://localhost:2380"
    )]
    initial_cluster: String,
    /// `new` or `existing`.
    #[arg(long, env = "ETCD_INITIAL_CLUSTER_STATE", default_value = "new")]
    initial_cluster_state: String,
    /// Initial cluster token; members of one cluster share it.
    #[arg(
        long,
        env = "ETCD_INITIAL_CLUSTER_TOKEN",
        default_value = "etcd-cluster"
    )]
    initial_cluster_token: String,
    /// Backend size that raises the NOSPACE alarm (0: the default, 2 GiB).
    #[arg(long, env = "ETCD_QUOTA_BACKEND_BYTES", default_value_t = 0)]
    quota_backend_bytes: u64,
    /// Largest client request accepted, in bytes.
    #[arg(long, env = "ETCD_MAX_REQUEST_BYTES", default_value_t = 1536 * 1024)]
    max_request_bytes: usize,
    /// Largest number of operations in one txn.
    #[arg(long, env = "ETCD_MAX_TXN_OPS", default_value_t = 128)]
    max_txn_ops: usize,
    /// Applied entries between snapshots of the store (after which the log behind them is
    /// discarded).
    #[arg(long, env = "ETCD_SNAPSHOT_COUNT", default_value_t = 100_000)]
    snapshot_count: u64,
    /// Time (in milliseconds) of a heartbeat interval.
    #[arg(long, env = "ETCD_HEARTBEAT_INTERVAL", default_value_t = 100)]
    heartbeat_interval: u64,
    /// Time (in milliseconds) for an election to timeout.
    #[arg(long, env = "ETCD_ELECTION_TIMEOUT", default_value_t = 1000)]
    election_timeout: u64,
    /// Seconds between checkpoints of leases' remaining TTLs by the leader.
    #[arg(
        long,
        env = "MAINSTAY_LEASE_CHECKPOINT_INTERVAL",
        default_value_t = 300
    )]
    lease_checkpoint_interval: u64,
}

impl StoreArgs {
    fn into_config(self) -> anyhow::Result<(NodeConfig, Vec<String>)> {
        if self.initial_cluster_state != "new" && self.initial_cluster_state != "existing" {
            bail!(
                "--initial-cluster-state must be \"new\" or \"existing\", not {:?}",
                self.initial_cluster_state
            );
        }
        let peer_urls = split_urls(&self.initial_advertise_peer_urls);
        if peer_urls.is_empty() {
            bail!("--initial-advertise-peer-urls is empty");
        }
        for url in peer_urls
            .iter()
            .chain(&split_urls(&self.advertise_client_urls))
        {
            mainstay_server::check_advertised_url(url)?;
        }
        // etcd's `name=url,name=url2,...`: a name may repeat for several URLs of one member.
        let mut members: Vec<(String, Vec<String>)> = Vec::new();
        for m in split_urls(&self.initial_cluster) {
            let (name, url) = m
                .split_once('=')
                .with_context(|| format!("--initial-cluster entry {m:?} is not name=URL"))?;
            mainstay_server::check_advertised_url(url)
                .with_context(|| format!("--initial-cluster entry {m:?}"))?;
            match members.iter_mut().find(|(n, _)| n == name) {
                Some((_, urls)) => urls.push(url.to_string()),
                None => members.push((name.to_string(), vec![url.to_string()])),
            }
        }
        let Some((_, mine)) = members.iter().find(|(n, _)| *n == self.name) else {
            bail!(
                "couldn't find local name {:?} in the initial cluster configuration",
                self.name
            );
        };
        for url in mine {
            if !peer_urls.contains(url) {
                bail!("--initial-cluster URL {url} for {:?} is not among --initial-advertise-peer-urls", self.name);
            }
        }
        if self.election_timeout < 5 * self.heartbeat_interval {
            bail!(
                "--election-timeout[{}ms] should be at least 5 times as --heartbeat-interval[{}ms]",
                self.election_timeout,
                self.heartbeat_interval
            );
        }
        if self.snapshot_count == 0 {
            bail!("--snapshot-count must be positive");
        }
        for url in split_urls(&self.listen_peer_urls) {
            mainstay_server::parse_listen_url(&url)?;
        }
        let listen = split_urls(&self.listen_client_urls);
        for url in &listen {
            mainstay_server::parse_listen_url(url)?;
        }
        if self.max_request_bytes == 0 || self.max_txn_ops == 0 {
            bail!("--max-request-bytes and --max-txn-ops must be positive");
        }
        let data_dir = self
            .data_dir
            .unwrap_or_else(|| PathBuf::from(format!("{}.etcd", self.name)));
        let mut config = NodeConfig::new(&self.name, data_dir);
        config.listen_peer_urls = split_urls(&self.listen_peer_urls);
        config.peer_urls = peer_urls;
        config.initial_cluster = members;
        config.initial_cluster_state = if self.initial_cluster_state == "new" {
            ClusterState::New
        } else {
            ClusterState::Existing
        };
        config.snapshot_count = self.snapshot_count;
        config.heartbeat_interval = Duration::from_millis(self.heartbeat_interval);
        config.election_timeout = Duration::from_millis(self.election_timeout);
        config.lease_checkpoint_interval =
            Duration::from_secs(self.lease_checkpoint_interval.max(1));
        config.client_urls = split_urls(&self.advertise_client_urls);
        config.cluster_token = self.initial_cluster_token;
        if self.quota_backend_bytes > 0 {
            config.quota_backend_bytes = self.quota_backend_bytes;
        }
        config.max_request_bytes = self.max_request_bytes;
        config.max_txn_ops = self.max_txn_ops;
        Ok((config, listen))
    }
}

async fn run_store(args: StoreArgs) -> anyhow::Result<()> {
    let (config, listen) = args.into_config()?;
    tracing::info!(name = %config.name, data_dir = %config.data_dir.display(), "starting store member");
    let node = Node::start(config).await?;
    tracing::info!(
        member_id = format_args!("{:x}", node.member_id),
        cluster_id = format_args!("{:x}", node.cluster_id),
        revision = node.store.current_revision(),
        "store opened"
    );
    mainstay_server::serve(node, &listen, signal::shutdown()).await?;
    Ok(())
}

/// A minimal HTTP/1.1 GET of `/health`, so the health check needs no client library or shell.
async fn check_health(endpoint: &str) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = mainstay_server::parse_listen_url(endpoint)?;
    let mut conn =
        tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr))
            .await
            .context("connect timed out")??;
    conn.write_all(
        format!("GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut body = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut body))
        .await
        .context("read timed out")??;
    let text = String::from_utf8_lossy(&body);
    let healthy = text.starts_with("HTTP/1.1 200") && text.contains("\"health\":\"true\"");
    let json = text.split("\r\n\r\n").nth(1).unwrap_or("").trim();
    println!("{endpoint}: {json}");
    if !healthy {
        bail!("{endpoint} is unhealthy");
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colour only on a terminal: `mainstay dev` and the tests send logs to files.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match Cli::parse().command {
        Command::Store(args) => run_store(*args).await,
        Command::Apiserver(args) => apiserver::run(*args).await,
        Command::Scheduler(args) => components::scheduler(*args).await,
        Command::ControllerManager(args) => components::controller_manager(*args).await,
        Command::Nodes(args) => components::nodes(*args).await,
        Command::Dev(args) => dev::run(args).await,
        Command::Health { endpoint } => check_health(&endpoint).await,
        Command::Bench(args) => bench::run(args).await,
        Command::Chaos(args) => chaos::run(args).await,
        Command::NodesAdmin(args) => components::nodes_admin(args).await,
    }
}
