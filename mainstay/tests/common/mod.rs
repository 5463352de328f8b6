//! Shared helpers for the integration tests: a real `mainstay store` process on a free loopback
//! port with a temporary data directory, killed when its guard is dropped.
//!
//! The server's log (stderr) goes to a file next to the data directory; when a test fails while a
//! server is up, the guard prints the log's tail so the failure can be diagnosed.

// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

pub mod plane;

use std::fs::OpenOptions;
use std::future::Future;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use etcd_client::{Client, ConnectOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

/// How long a node may take to open its store and answer `/health`.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Upper bound for any single client call or awaited event in the tests.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(20);
/// How often readiness and other conditions are polled.
const POLL: Duration = Duration::from_millis(20);
/// Attempts at finding a free port (another process may take the one we picked before the node
/// binds it).
const PORT_ATTEMPTS: usize = 5;

pub const MEMBER_NAME: &str = "m1";

/// A temporary directory for a server (removed when dropped).
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("mainstay-test-")
        .tempdir()
        .expect("creating a temporary directory")
}

/// A port that was free a moment ago (the kernel's pick for port 0).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("binding an ephemeral loopback port")
        .port()
}

/// One `mainstay store` process. Dropping it kills the process (SIGKILL) and removes the data.
pub struct Server {
    dir: tempfile::TempDir,
    extra_args: Vec<String>,
    child: Option<Child>,
    port: u16,
    peer_port: u16,
}

impl Server {
    /// Starts a node with default flags plus `extra_args`, and waits until it answers.
    pub async fn start(extra_args: &[&str]) -> Server {
        Server::start_in(temp_dir(), extra_args).await
    }

    /// As [`Server::start`], in `dir` (its data directory is `dir/data`, which may exist already,
    /// e.g. as a mount point).
    pub async fn start_in(dir: tempfile::TempDir, extra_args: &[&str]) -> Server {
        let mut server = Server {
            dir,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            child: None,
            port: 0,
            // Peer URLs are only validated, not bound; the port stays fixed across restarts so the
            // member ID (derived from the peer URLs) does too.
            peer_port: free_port(),
        };
        server.spawn_and_wait().await;
        server
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// A client connected to this node.
    pub async fn client(&self) -> Client {
        let options = ConnectOptions::new().with_connect_timeout(Duration::from_secs(5));
        within(
            "connecting a client",
            Client::connect([self.endpoint()], Some(options)),
        )
        .await
        .expect("connecting an etcd client")
    }

    /// Whether the process is still running (it has not exited or crashed).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => c.try_wait().expect("polling the server process").is_none(),
            None => false,
        }
    }

    /// `kill -9`: no shutdown path runs, as in a power cut of the process.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill(); // SIGKILL; fails only if it already exited
            let _ = c.wait();
        }
    }

    /// Starts the node again on the same data directory (on a fresh client port).
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn_and_wait().await;
    }

    /// The server's log so far (stderr of every run of this guard).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn spawn(&mut self, port: u16) -> Child {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("opening the server log");
        let client_url = format!("http://127.0.0.1:{port}");
        let peer_url = self.peer_url();
        Command::new(env!("CARGO_BIN_EXE_mainstay"))
            .arg("store")
            .args(["--name", MEMBER_NAME])
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(["--listen-client-urls", &client_url])
            .args(["--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("{MEMBER_NAME}={peer_url}")])
            .args(&self.extra_args)
            // The node reads ETCD_* variables; the test's environment must not leak in.
            .env_remove("ETCD_NAME")
            .env_remove("ETCD_DATA_DIR")
            .env_remove("ETCD_MAX_REQUEST_BYTES")
            .env_remove("ETCD_MAX_TXN_OPS")
            .env_remove("ETCD_QUOTA_BACKEND_BYTES")
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawning the mainstay binary")
    }

    async fn spawn_and_wait(&mut self) {
        for attempt in 1..=PORT_ATTEMPTS {
            let port = free_port();
            let log_start = self.log().len();
            let mut child = self.spawn(port);
            let deadline = Instant::now() + START_TIMEOUT;
            loop {
                if let Some(status) = child.try_wait().expect("polling the server process") {
                    let log = self.log();
                    let this_run = &log[log_start.min(log.len())..];
                    if this_run.contains("Address already in use") && attempt < PORT_ATTEMPTS {
                        break; // someone took the port: try another
                    }
                    panic!("mainstay exited during startup ({status}); log:\n{this_run}");
                }
                if matches!(http_get(port, "/health").await, Ok((200, _))) {
                    self.port = port;
                    self.child = Some(child);
                    return;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "mainstay did not answer /health within {START_TIMEOUT:?}; log:\n{}",
                        self.log()
                    );
                }
                tokio::time::sleep(POLL).await;
            }
        }
        unreachable!("every attempt either returns or panics");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(60)..];
            eprintln!(
                "---- mainstay log ({}, last {} lines) ----\n{}",
                self.log_path().display(),
                tail.len(),
                tail.join("\n")
            );
        }
    }
}

/// A plain HTTP/1.1 GET on loopback: (status code, body).
pub async fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let io = async {
        let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        conn.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await?;
        let mut raw = Vec::new();
        conn.read_to_end(&mut raw).await?;
        Ok::<_, std::io::Error>(raw)
    };
    let raw = tokio::time::timeout(Duration::from_secs(5), io)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "HTTP GET timed out"))??;
    let text = String::from_utf8_lossy(&raw);
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, format!("bad HTTP: {text}"));
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(bad)?;
    let code = head
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|c| c.parse().ok())
        .ok_or_else(bad)?;
    Ok((code, body.to_string()))
}

/// Awaits `fut`, failing the test (instead of hanging) after [`CALL_TIMEOUT`].
pub async fn within<F: Future>(what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(CALL_TIMEOUT, fut).await {
        Ok(out) => out,
        Err(_) => panic!("timed out after {CALL_TIMEOUT:?}: {what}"),
    }
}

/// Polls `check` until it returns `Some`, failing the test after `limit`.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if Instant::now() > deadline {
            panic!("not within {limit:?}: {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The gRPC status inside a client error; panics on any other kind of error.
pub fn grpc_status(e: etcd_client::Error) -> tonic::Status {
    match e {
        etcd_client::Error::GRpcStatus(s) => s,
        other => panic!("expected a gRPC status, got {other:?}"),
    }
}

/// Asserts that `result` failed with exactly this gRPC code and message.
#[track_caller]
pub fn assert_status<T: std::fmt::Debug>(
    result: Result<T, etcd_client::Error>,
    code: tonic::Code,
    message: &str,
) {
    let status = grpc_status(result.expect_err("the request should have failed"));
    assert_eq!(
        (status.code(), status.message()),
        (code, message),
        "unexpected status {status:?}"
    );
}
