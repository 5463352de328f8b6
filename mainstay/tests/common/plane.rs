//! The Kubernetes side of the integration tests: `mainstay` processes (a log file each, killed
//! when dropped, their log's tail printed when the test fails), a store member with one
//! apiserver and a kubeconfig for it, the components started against it, and the waits the
//! tests share.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Node};
use kube::api::{Api, ListParams};
use tokio::time::Instant;

use super::{eventually, free_port, temp_dir, Server};

/// Bound for waiting on anything that should happen in seconds.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Leader election short enough that a test's scheduler and controller-manager lead within a
/// second of starting (kube's defaults are 15 s / 10 s / 2 s).
pub const SHORT_ELECTION: [&str; 6] = [
    "--leader-elect-lease-duration",
    "4s",
    "--leader-elect-renew-deadline",
    "3s",
    "--leader-elect-retry-period",
    "250ms",
];

/// One child process of this binary, logging to a file; killed when dropped.
pub struct Proc {
    pub name: String,
    args: Vec<String>,
    child: Child,
    log: PathBuf,
    exited: Option<ExitStatus>,
}

impl Proc {
    pub fn spawn<S: AsRef<str>>(dir: &Path, name: &str, args: &[S]) -> Proc {
        let log = dir.join(format!("{name}.log"));
        let args: Vec<String> = args.iter().map(|a| a.as_ref().to_string()).collect();
        let child = Proc::start(&log, &args);
        Proc {
            name: name.to_string(),
            args,
            child,
            log,
            exited: None,
        }
    }

    fn start(log: &Path, args: &[String]) -> Child {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("opening a log file");
        Command::new(env!("CARGO_BIN_EXE_mainstay"))
            .args(args)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .spawn()
            .expect("spawning the mainstay binary")
    }

    /// Starts the process again (as `mainstay dev` does when one dies), after it ended.
    pub fn respawn(&mut self) {
        assert!(
            self.exit_status().is_some(),
            "{} is still running",
            self.name
        );
        self.child = Proc::start(&self.log, &self.args);
        self.exited = None;
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -{sig} {}", self.name);
    }

    /// The exit status once the process has ended.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().expect("waiting on a child");
        }
        self.exited
    }

    pub async fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let until = Instant::now() + within;
        while Instant::now() < until {
            if let Some(s) = self.exit_status() {
                return Some(s);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.exit_status().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(25).collect();
            eprintln!("--- {} (last lines) ---", self.name);
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}

pub fn strings(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

/// A client of the apiserver at `url` (plain HTTP, no credentials).
pub fn client_for(url: &str) -> kube::Client {
    let config = kube::Config::new(url.parse().expect("apiserver URL"));
    kube::Client::try_from(config).expect("kube client")
}

/// Writes a kubeconfig naming the apiserver at `url`.
pub fn write_kubeconfig(path: &Path, url: &str) {
    std::fs::write(
        path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {url}\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user: {{}}\n"
        ),
    )
    .expect("writing a kubeconfig");
}

/// Waits until the apiserver behind `c` serves (the `default` namespace exists).
pub async fn serving(c: &kube::Client) {
    eventually("the apiserver serves", DEADLINE, || {
        let c = c.clone();
        async move { Api::<Namespace>::all(c).get("default").await.ok() }
    })
    .await;
}

/// The names of the nodes whose Ready condition is True.
pub async fn ready_nodes(c: &kube::Client) -> Vec<String> {
    let Ok(nodes) = Api::<Node>::all(c.clone())
        .list(&ListParams::default())
        .await
    else {
        return Vec::new();
    };
    nodes
        .items
        .into_iter()
        .filter(|n| {
            n.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .filter_map(|n| n.metadata.name)
        .collect()
}

/// Waits until at least `count` nodes are Ready.
pub async fn wait_ready_nodes(c: &kube::Client, count: usize) {
    eventually(&format!("{count} nodes Ready"), DEADLINE, || {
        let c = c.clone();
        async move { (ready_nodes(&c).await.len() >= count).then_some(()) }
    })
    .await;
}

/// A store member, one apiserver on it, and the components a test starts against that
/// apiserver; the components are stopped in reverse order of start, then the apiserver, then
/// the store.
pub struct Plane {
    procs: Vec<Proc>,
    _store: Server,
    pub kubeconfig: PathBuf,
    pub client: kube::Client,
    pub dir: tempfile::TempDir,
}

impl Plane {
    /// A store member and a serving apiserver, started with `apiserver_args` besides the
    /// address flags.
    pub async fn start(apiserver_args: &[&str]) -> Plane {
        let dir = temp_dir();
        let store = Server::start(&[]).await;
        let port = free_port().to_string();
        let mut args = strings(&[
            "apiserver",
            "--etcd-servers",
            &store.endpoint(),
            "--bind-address",
            "127.0.0.1",
            "--secure-port",
            &port,
        ]);
        args.extend(strings(apiserver_args));
        let apiserver = Proc::spawn(dir.path(), "apiserver", &args);
        let url = format!("http://127.0.0.1:{port}");
        let kubeconfig = dir.path().join("kubeconfig");
        write_kubeconfig(&kubeconfig, &url);
        let client = client_for(&url);
        serving(&client).await;
        Plane {
            procs: vec![apiserver],
            _store: store,
            kubeconfig,
            client,
            dir,
        }
    }

    /// A store, an apiserver, a scheduler and a controller-manager (leading at once), and
    /// `nodes` simulated nodes, Ready.
    pub async fn with_control_plane(nodes: usize) -> Plane {
        let mut plane = Plane::start(&[]).await;
        plane.component("scheduler", &SHORT_ELECTION);
        plane.component("controller-manager", &SHORT_ELECTION);
        plane.component("nodes", &["--count", &nodes.to_string()]);
        wait_ready_nodes(&plane.client, nodes).await;
        plane
    }

    /// Starts `mainstay <subcommand> --kubeconfig <this plane's> <args>`.
    pub fn component(&mut self, subcommand: &str, args: &[&str]) {
        let mut all = strings(&[
            subcommand,
            "--kubeconfig",
            &self.kubeconfig.display().to_string(),
        ]);
        all.extend(strings(args));
        let name = format!("{subcommand}-{}", self.procs.len());
        self.procs.push(Proc::spawn(self.dir.path(), &name, &all));
    }
}

impl Drop for Plane {
    fn drop(&mut self) {
        while let Some(p) = self.procs.pop() {
            drop(p);
        }
    }
}
