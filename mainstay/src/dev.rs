//! `mainstay dev`: a 3-member cluster on loopback, each member a separate `mainstay store`
//! process of this same binary, and two `mainstay apiserver` replicas over it (HTTPS with a CA made
//! for the run, a bearer token), with a kubeconfig naming them — for trying Mainstay without
//! Docker. Ctrl-C stops all of them.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use tokio::process::{Child, Command};

#[derive(Args)]
pub struct DevArgs {
    /// Directory for the members' data and logs (`<dir>/m1`, `<dir>/m1.log`, ...).
    #[arg(long, default_value = "mainstay-dev")]
    data_dir: PathBuf,
    /// Client port of the first member; the others use 22379 and 32379 style ports
    /// (this port + 20000, + 30000) unless it is changed.
    #[arg(long, default_value_t = 2379)]
    client_port: u16,
    /// Start from empty data directories (removes the previous run's data).
    #[arg(long)]
    fresh: bool,
    /// Port of the first apiserver; the second uses the next one. 0 starts no apiservers.
    #[arg(long, default_value_t = 6443)]
    apiserver_port: u16,
    /// Where to write the kubeconfig (default: `<data-dir>/kubeconfig`).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
}

/// One apiserver replica: its port and the command line it runs with.
struct Apiserver {
    name: String,
    port: u16,
    args: Vec<String>,
}

fn apiservers(
    args: &DevArgs,
    endpoints: &str,
    creds: &crate::apiserver::DevCredentials,
) -> Vec<Apiserver> {
    if args.apiserver_port == 0 {
        return Vec::new();
    }
    (0..2u16)
        .map(|i| {
            let port = args.apiserver_port + i;
            Apiserver {
                name: format!("apiserver-{}", i + 1),
                port,
                args: vec![
                    "apiserver".into(),
                    "--etcd-servers".into(),
                    endpoints.into(),
                    "--bind-address".into(),
                    "127.0.0.1".into(),
                    "--secure-port".into(),
                    port.to_string(),
                    "--tls-cert-file".into(),
                    creds.cert_file.display().to_string(),
                    "--tls-private-key-file".into(),
                    creds.key_file.display().to_string(),
                    "--client-ca-file".into(),
                    creds.ca_file.display().to_string(),
                    "--token-auth-file".into(),
                    creds.token_file.display().to_string(),
                ],
            }
        })
        .collect()
}

fn spawn_apiserver(exe: &PathBuf, args: &DevArgs, a: &Apiserver) -> anyhow::Result<Child> {
    let log_path = args.data_dir.join(format!("{}.log", a.name));
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    Command::new(exe)
        .args(&a.args)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", a.name))
}

/// An apiserver listens only after it reached the store and created the system namespaces.
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

struct Member {
    name: String,
    client_url: String,
    peer_url: String,
}

fn members(args: &DevArgs) -> anyhow::Result<Vec<Member>> {
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
        .map(|(i, p)| Member {
            name: format!("m{}", i + 1),
            client_url: format!("http://127.0.0.1:{p}"),
            peer_url: format!("http://127.0.0.1:{}", p + 1),
        })
        .collect())
}

async fn spawn(exe: &PathBuf, args: &DevArgs, m: &Member, cluster: &str) -> anyhow::Result<Child> {
    let log_path = args.data_dir.join(format!("{}.log", m.name));
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    let child = Command::new(exe)
        .arg("store")
        .args(["--name", &m.name])
        .arg("--data-dir")
        .arg(args.data_dir.join(&m.name))
        .args(["--listen-client-urls", &m.client_url])
        .args(["--advertise-client-urls", &m.client_url])
        .args(["--listen-peer-urls", &m.peer_url])
        .args(["--initial-advertise-peer-urls", &m.peer_url])
        .args(["--initial-cluster", cluster])
        .args(["--initial-cluster-state", "new"])
        .args(["--initial-cluster-token", "mainstay-dev"])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting member {}", m.name))?;
    Ok(child)
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

pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("finding this binary")?;
    if args.fresh && args.data_dir.exists() {
        std::fs::remove_dir_all(&args.data_dir)
            .with_context(|| format!("removing {}", args.data_dir.display()))?;
    }
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let members = members(&args)?;
    let cluster = members
        .iter()
        .map(|m| format!("{}={}", m.name, m.peer_url))
        .collect::<Vec<_>>()
        .join(",");
    let mut children = Vec::new();
    for m in &members {
        children.push(spawn(&exe, &args, m, &cluster).await?);
    }
    let endpoints = members
        .iter()
        .map(|m| m.client_url.as_str())
        .collect::<Vec<_>>()
        .join(",");
    eprintln!(
        "mainstay dev: starting 3 members (data and logs in {})",
        args.data_dir.display()
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let mut all = true;
        for m in &members {
            all &= healthy(&m.client_url).await;
        }
        if all {
            break;
        }
        for (m, c) in members.iter().zip(children.iter_mut()) {
            if let Some(status) = c.try_wait()? {
                bail!(
                    "member {} exited ({status}); see {}",
                    m.name,
                    args.data_dir.join(format!("{}.log", m.name)).display()
                );
            }
        }
        if tokio::time::Instant::now() > deadline {
            bail!(
                "the cluster did not become healthy within 60 s; see the logs in {}",
                args.data_dir.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let creds = crate::apiserver::dev_credentials(&args.data_dir.join("pki"))?;
    let apis = apiservers(&args, &endpoints, &creds);
    let mut api_children = Vec::new();
    for a in &apis {
        api_children.push(spawn_apiserver(&exe, &args, a)?);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    for (a, c) in apis.iter().zip(api_children.iter_mut()) {
        while !listening(a.port).await {
            if let Some(status) = c.try_wait()? {
                bail!(
                    "{} exited ({status}); see {}",
                    a.name,
                    args.data_dir.join(format!("{}.log", a.name)).display()
                );
            }
            if tokio::time::Instant::now() > deadline {
                bail!("{} did not start listening within 60 s", a.name);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let kubeconfig = args
        .kubeconfig
        .clone()
        .unwrap_or_else(|| args.data_dir.join("kubeconfig"));
    if !apis.is_empty() {
        let servers: Vec<String> = apis
            .iter()
            .map(|a| format!("https://127.0.0.1:{}", a.port))
            .collect();
        crate::apiserver::write_kubeconfig(&kubeconfig, &creds, &servers)?;
    }
    println!("mainstay dev: a 3-member cluster is up.");
    for m in &members {
        println!("  {}  client {}  peer {}", m.name, m.client_url, m.peer_url);
    }
    for a in &apis {
        println!("  {}  https://127.0.0.1:{}", a.name, a.port);
    }
    if !apis.is_empty() {
        println!();
        println!("kubectl:");
        println!("  kubectl --kubeconfig {} get ns", kubeconfig.display());
        println!(
            "  kubectl --kubeconfig {} --context mainstay-dev-2 get svc   (the second replica)",
            kubeconfig.display()
        );
    }
    println!();
    println!("Try it:");
    println!("  ETCDCTL_API=3 etcdctl --endpoints={endpoints} put greeting hello");
    println!("  ETCDCTL_API=3 etcdctl --endpoints={endpoints} get greeting");
    println!("  ETCDCTL_API=3 etcdctl --endpoints={endpoints} endpoint status -w table");
    println!();
    println!(
        "Ctrl-C stops the cluster (the data stays in {}); a member that dies is restarted.",
        args.data_dir.display()
    );

    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing a SIGTERM handler")?;
    // A member that dies (say, killed to watch the others elect a new leader) is started again
    // with its data after a pause, and catches up.
    let mut check = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            _ = check.tick() => {
                for (m, c) in members.iter().zip(children.iter_mut()) {
                    if let Ok(Some(status)) = c.try_wait() {
                        eprintln!("mainstay dev: member {} exited ({status}); restarting it in 2 s", m.name);
                        tokio::time::sleep(Duration::from_secs(2)).await;
                        *c = spawn(&exe, &args, m, &cluster).await?;
                    }
                }
                for (a, c) in apis.iter().zip(api_children.iter_mut()) {
                    if let Ok(Some(status)) = c.try_wait() {
                        eprintln!("mainstay dev: {} exited ({status}); restarting it in 2 s", a.name);
                        tokio::time::sleep(Duration::from_secs(2)).await;
                        *c = spawn_apiserver(&exe, &args, a)?;
                    }
                }
            }
        }
    }
    eprintln!("mainstay dev: stopping the apiservers and the members");
    for c in api_children.iter_mut() {
        let _ = c.kill().await;
    }
    for c in &children {
        if let Some(pid) = c.id() {
            // SIGTERM: each member shuts down cleanly.
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
    }
    for c in children.iter_mut() {
        if tokio::time::timeout(Duration::from_secs(10), c.wait())
            .await
            .is_err()
        {
            let _ = c.kill().await;
        }
    }
    Ok(())
}
