//! `mainstay dev`: three masters on loopback and simulated nodes, every part a separate process
//! of this same binary — for trying Mainstay without Docker. Master *i* is a store member
//! (`mainstay store`), an apiserver over the three members (HTTPS with a CA made for the run, a
//! bearer token), and a scheduler and a controller-manager that talk to apiserver *i* and elect
//! their leaders with Leases. `mainstay nodes` registers the simulated nodes. A kubeconfig names
//! the three apiservers. A process that dies is started again; Ctrl-C stops them all.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{ArgAction, Args};
use tokio::process::{Child, Command};

#[derive(Args)]
pub struct DevArgs {
    /// Directory for the members' data and every process's log (`<dir>/m1`, `<dir>/m1.log`, ...).
    #[arg(long, default_value = "mainstay-dev")]
    data_dir: PathBuf,
    /// Client port of the first member; the others use 22379 and 32379 style ports
    /// (this port + 20000, + 30000) unless it is changed.
    #[arg(long, default_value_t = 2379)]
    client_port: u16,
    /// Start from empty data directories (removes the previous run's data).
    #[arg(long)]
    fresh: bool,
    /// Port of the first apiserver; the others use the next ones. 0 starts no apiservers (and
    /// so no control plane and no nodes).
    #[arg(long, default_value_t = 6443)]
    apiserver_port: u16,
    /// Where to write the kubeconfig (default: `<data-dir>/kubeconfig`).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Run a scheduler and a controller-manager on each master.
    #[arg(long, default_value_t = true, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    control_plane: bool,
    /// How many simulated nodes to run (one `mainstay nodes` process); 0 runs none.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// The scheduler's and controller-manager's `--leader-elect-lease-duration` (renew deadline
    /// and retry period follow kube's 15:10:2 proportions).
    #[arg(long, default_value = "15s")]
    leader_elect_lease_duration: String,
}

/// How the supervisor knows a process is up.
enum Ready {
    /// A store member: its `/health` says healthy.
    Member(String),
    /// A server: it accepts connections on this port.
    Listening(u16),
    /// Started is enough.
    Started,
}

/// One supervised process: its name (and log file), its arguments, how it shows it is up.
struct Proc {
    name: String,
    args: Vec<String>,
    ready: Ready,
}

fn spawn(exe: &Path, dir: &Path, p: &Proc) -> anyhow::Result<Child> {
    let log_path = dir.join(format!("{}.log", p.name));
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    Command::new(exe)
        .args(&p.args)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", p.name))
}

async fn listening(port: u16) -> bool {
    matches!(
        tokio::time::timeout(
            Duration::from_secs(1),
            tokio::net::TcpStream::connect(("127.0.0.1", port))
        )
        .await,
        Ok(Ok(_))
    )
}

/// Whether the member's `/health` says healthy (it has a leader and no alarm).
async fn healthy(client_url: &str) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(addr) = mainstay_server::parse_listen_url(client_url) else {
        return false;
    };
    let Ok(Ok(mut conn)) =
        tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(addr)).await
    else {
        return false;
    };
    let req = format!("GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if conn.write_all(req.as_bytes()).await.is_err() {
        return false;
    }
    let mut body = Vec::new();
    match tokio::time::timeout(Duration::from_secs(1), conn.read_to_end(&mut body)).await {
        Ok(Ok(_)) => String::from_utf8_lossy(&body).contains("\"health\":\"true\""),
        _ => false,
    }
}

async fn is_ready(r: &Ready) -> bool {
    match r {
        Ready::Member(url) => healthy(url).await,
        Ready::Listening(port) => listening(*port).await,
        Ready::Started => true,
    }
}

/// Starts `procs` (appending their children to `children`) and waits until all are up.
async fn start_all(
    exe: &Path,
    dir: &Path,
    procs: &[Proc],
    children: &mut Vec<Child>,
) -> anyhow::Result<()> {
    let first = children.len();
    for p in procs {
        children.push(spawn(exe, dir, p)?);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    for (p, c) in procs.iter().zip(children[first..].iter_mut()) {
        while !is_ready(&p.ready).await {
            if let Some(status) = c.try_wait()? {
                bail!(
                    "{} exited ({status}); see {}",
                    p.name,
                    dir.join(format!("{}.log", p.name)).display()
                );
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "{} was not up within 60 s; see {}",
                    p.name,
                    dir.join(format!("{}.log", p.name)).display()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(())
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// The three members: names, client URLs, peer URLs.
fn members(args: &DevArgs) -> anyhow::Result<Vec<(String, String, String)>> {
    let base = args.client_port as u32;
    let ports = [base, base + 20000, base + 30000];
    if ports.iter().any(|p| *p + 1 > u16::MAX as u32) {
        bail!(
            "--client-port {} leaves no room for three members",
            args.client_port
        );
    }
    Ok(ports
        .iter()
        .enumerate()
        .map(|(i, p)| {
            (
                format!("m{}", i + 1),
                format!("http://127.0.0.1:{p}"),
                format!("http://127.0.0.1:{}", p + 1),
            )
        })
        .collect())
}

fn member_procs(args: &DevArgs) -> anyhow::Result<Vec<Proc>> {
    let members = members(args)?;
    let cluster = members
        .iter()
        .map(|(n, _, peer)| format!("{n}={peer}"))
        .collect::<Vec<_>>()
        .join(",");
    Ok(members
        .into_iter()
        .map(|(name, client, peer)| {
            let data = args.data_dir.join(&name).display().to_string();
            Proc {
                args: strings(&[
                    "store",
                    "--name",
                    &name,
                    "--data-dir",
                    &data,
                    "--listen-client-urls",
                    &client,
                    "--advertise-client-urls",
                    &client,
                    "--listen-peer-urls",
                    &peer,
                    "--initial-advertise-peer-urls",
                    &peer,
                    "--initial-cluster",
                    &cluster,
                    "--initial-cluster-state",
                    "new",
                    "--initial-cluster-token",
                    "mainstay-dev",
                ]),
                name,
                ready: Ready::Member(client),
            }
        })
        .collect())
}

fn apiserver_procs(
    args: &DevArgs,
    endpoints: &str,
    creds: &crate::apiserver::DevCredentials,
) -> Vec<Proc> {
    if args.apiserver_port == 0 {
        return Vec::new();
    }
    (0..3u16)
        .map(|i| {
            let port = args.apiserver_port + i;
            Proc {
                name: format!("apiserver-{}", i + 1),
                args: strings(&[
                    "apiserver",
                    "--etcd-servers",
                    endpoints,
                    "--bind-address",
                    "127.0.0.1",
                    "--secure-port",
                    &port.to_string(),
                    "--tls-cert-file",
                    &creds.cert_file.display().to_string(),
                    "--tls-private-key-file",
                    &creds.key_file.display().to_string(),
                    "--client-ca-file",
                    &creds.ca_file.display().to_string(),
                    "--token-auth-file",
                    &creds.token_file.display().to_string(),
                ]),
                ready: Ready::Listening(port),
            }
        })
        .collect()
}

/// Master *i*'s scheduler and controller-manager, each with a kubeconfig naming apiserver *i*
/// only, and the nodes (through the first apiserver).
fn control_plane_procs(args: &DevArgs, kubeconfigs: &[PathBuf], election: &[String]) -> Vec<Proc> {
    let mut procs = Vec::new();
    if args.control_plane {
        for (i, kc) in kubeconfigs.iter().enumerate() {
            let kc = kc.display().to_string();
            for (component, name) in [
                ("scheduler", format!("scheduler-{}", i + 1)),
                (
                    "controller-manager",
                    format!("controller-manager-{}", i + 1),
                ),
            ] {
                let mut a = strings(&[component, "--kubeconfig", &kc]);
                a.extend(election.iter().cloned());
                procs.push(Proc {
                    name,
                    args: a,
                    ready: Ready::Started,
                });
            }
        }
    }
    if args.nodes > 0 {
        if let Some(kc) = kubeconfigs.first() {
            procs.push(Proc {
                name: "nodes".into(),
                args: strings(&[
                    "nodes",
                    "--kubeconfig",
                    &kc.display().to_string(),
                    "--count",
                    &args.nodes.to_string(),
                ]),
                ready: Ready::Started,
            });
        }
    }
    procs
}

/// kube's 15 s : 10 s : 2 s proportions for a given lease duration.
fn election_flags(lease: &str) -> anyhow::Result<Vec<String>> {
    let d = crate::apiserver::parse_go_duration(lease)?;
    if d < Duration::from_secs(2) {
        bail!("--leader-elect-lease-duration {lease} is too short (at least 2s)");
    }
    let ms = |d: Duration| format!("{}ms", d.as_millis());
    Ok(vec![
        "--leader-elect-lease-duration".into(),
        ms(d),
        "--leader-elect-renew-deadline".into(),
        ms(d * 2 / 3),
        "--leader-elect-retry-period".into(),
        ms(d * 2 / 15),
    ])
}

pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("finding this binary")?;
    let dir = args.data_dir.clone();
    let election = election_flags(&args.leader_elect_lease_duration)?;
    if args.fresh && dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;

    let mut procs = member_procs(&args)?;
    let endpoints = members(&args)?
        .iter()
        .map(|(_, c, _)| c.clone())
        .collect::<Vec<_>>()
        .join(",");
    let mut children = Vec::new();
    eprintln!(
        "mainstay dev: starting 3 members (data and logs in {})",
        dir.display()
    );
    start_all(&exe, &dir, &procs, &mut children).await?;

    let creds = crate::apiserver::dev_credentials(&dir.join("pki"))?;
    let apis = apiserver_procs(&args, &endpoints, &creds);
    start_all(&exe, &dir, &apis, &mut children).await?;
    let servers: Vec<String> = apis
        .iter()
        .filter_map(|p| match p.ready {
            Ready::Listening(port) => Some(format!("https://127.0.0.1:{port}")),
            _ => None,
        })
        .collect();
    let kubeconfig = args
        .kubeconfig
        .clone()
        .unwrap_or_else(|| dir.join("kubeconfig"));
    let mut master_kubeconfigs = Vec::new();
    if !servers.is_empty() {
        crate::apiserver::write_kubeconfig(&kubeconfig, &creds, &servers)?;
        for (i, s) in servers.iter().enumerate() {
            let kc = dir.join(format!("master-{}.kubeconfig", i + 1));
            crate::apiserver::write_kubeconfig(&kc, &creds, std::slice::from_ref(s))?;
            master_kubeconfigs.push(kc);
        }
    }
    procs.extend(apis);
    let components = control_plane_procs(&args, &master_kubeconfigs, &election);
    start_all(&exe, &dir, &components, &mut children).await?;
    procs.extend(components);

    println!("mainstay dev: three masters are up.");
    for p in &procs {
        let how = match &p.ready {
            Ready::Member(url) => format!("client {url}"),
            Ready::Listening(port) => format!("https://127.0.0.1:{port}"),
            Ready::Started => String::new(),
        };
        println!("  {:<22} {how}  (log {}.log)", p.name, p.name);
    }
    if !servers.is_empty() {
        let kc = kubeconfig.display();
        println!();
        println!("kubectl:");
        println!("  export KUBECONFIG={kc}");
        println!("  kubectl get nodes");
        println!("  kubectl create deployment web --image=nginx --replicas=3");
        println!("  kubectl rollout status deployment/web");
        println!("  kubectl get pods -o wide");
        println!("  kubectl --context mainstay-dev-2 get pods   (through the second apiserver)");
    }
    println!();
    println!("etcdctl:");
    println!("  ETCDCTL_API=3 etcdctl --endpoints={endpoints} endpoint status -w table");
    println!();
    println!(
        "Ctrl-C stops everything (the data stays in {}); a process that dies is restarted.",
        dir.display()
    );

    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing a SIGTERM handler")?;
    // A process that dies (say, a member or a leading scheduler killed to watch the others take
    // over) is started again after a pause; a member catches up from the others.
    let mut check = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            _ = check.tick() => {
                for (p, c) in procs.iter().zip(children.iter_mut()) {
                    if let Ok(Some(status)) = c.try_wait() {
                        eprintln!("mainstay dev: {} exited ({status}); restarting it in 2 s", p.name);
                        tokio::time::sleep(Duration::from_secs(2)).await;
                        *c = spawn(&exe, &dir, p)?;
                    }
                }
            }
        }
    }
    eprintln!("mainstay dev: stopping");
    // Newest first: nodes and components, then apiservers, then members. SIGTERM lets each stop
    // cleanly (a leader releases its Lease; a member closes its store).
    for (p, c) in procs.iter().zip(children.iter_mut()).rev() {
        if let Some(pid) = c.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        if tokio::time::timeout(Duration::from_secs(10), c.wait())
            .await
            .is_err()
        {
            eprintln!(
                "mainstay dev: {} did not stop within 10 s; killing it",
                p.name
            );
            let _ = c.kill().await;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn election_flags_keep_kubes_proportions() {
        assert_eq!(
            election_flags("15s").unwrap(),
            [
                "--leader-elect-lease-duration",
                "15000ms",
                "--leader-elect-renew-deadline",
                "10000ms",
                "--leader-elect-retry-period",
                "2000ms"
            ]
        );
        assert_eq!(election_flags("4s").unwrap()[3], "2666ms");
        assert!(election_flags("1s").is_err());
    }
}
