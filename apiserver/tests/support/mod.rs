//! Harness for the kube-rs tests: a store from `mainstay-testkit` (etcd or mainstay, chosen by
//! `MAINSTAY_TEST_TARGET`), apiserver replicas served in-process on loopback, kube clients, a TCP
//! proxy that can cut a client off, and bounded waits.

#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mainstay_apiserver::{App, Config};
use mainstay_testkit::cluster::Cluster;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Bound for every wait on a condition in these tests.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// One apiserver replica serving plain HTTP on a loopback port.
pub struct Server {
    pub app: Arc<App>,
    pub addr: SocketAddr,
    pub task: JoinHandle<()>,
}

impl Server {
    pub async fn start(cluster: &Cluster) -> Server {
        Server::start_with(cluster, |_| {}).await
    }

    pub async fn start_with(cluster: &Cluster, tweak: impl FnOnce(&mut Config)) -> Server {
        let mut config = Config {
            etcd_servers: cluster.endpoints(),
            bind_address: [127, 0, 0, 1].into(),
            ..Default::default()
        };
        tweak(&mut config);
        let app = mainstay_apiserver::build(config)
            .await
            .expect("apiserver starts");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let served = app.clone();
        let task = tokio::spawn(async move {
            if let Err(e) = mainstay_apiserver::serve_on(served, listener).await {
                panic!("apiserver stopped: {e}");
            }
        });
        Server { app, addr, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn client(&self) -> kube::Client {
        client_for(&self.url())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub fn client_for(url: &str) -> kube::Client {
    let config = kube::Config::new(url.parse().expect("apiserver URL"));
    kube::Client::try_from(config).expect("kube client")
}

/// A store of one member and one apiserver on it.
pub struct Env {
    pub server: Server,
    pub client: kube::Client,
    /// Dropped last: the store outlives the apiserver.
    pub cluster: Cluster,
}

impl Env {
    pub async fn start() -> Env {
        Env::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Env {
        let cluster = Cluster::start(1).await;
        let server = Server::start_with(&cluster, tweak).await;
        let client = server.client();
        Env {
            server,
            client,
            cluster,
        }
    }

    /// The store's current revision.
    pub async fn store_revision(&self) -> i64 {
        let mut c = self.cluster.client(0).await;
        c.get("/mainstay-test/revision-probe", None)
            .await
            .expect("store get")
            .header()
            .expect("header")
            .revision()
    }

    /// Compacts the store at its current revision (physically, so it is done on return).
    pub async fn compact_store(&self) -> i64 {
        let rev = self.store_revision().await;
        let mut c = self.cluster.client(0).await;
        c.compact(
            rev,
            Some(etcd_client::CompactionOptions::new().with_physical()),
        )
        .await
        .expect("compaction");
        rev
    }
}

/// Polls `check` until it returns `Some`, failing the test with `what` after [`DEADLINE`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {DEADLINE:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Awaits `fut`, failing the test with `what` after [`DEADLINE`].
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(DEADLINE, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {DEADLINE:?} waiting for {what}"),
    }
}

/// A TCP proxy to an apiserver that can cut every connection and refuse new ones while cut.
pub struct Proxy {
    pub addr: SocketAddr,
    cut: watch::Sender<bool>,
    /// Connections being forwarded.
    open: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let (cut, _) = watch::channel(false);
        let cut_rx = cut.subscribe();
        let open = Arc::new(AtomicUsize::new(0));
        let counter = open.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut down, _)) = listener.accept().await else {
                    continue;
                };
                if *cut_rx.borrow() {
                    drop(down);
                    continue;
                }
                let mut cut_rx = cut_rx.clone();
                counter.fetch_add(1, Ordering::SeqCst);
                let counter = counter.clone();
                tokio::spawn(async move {
                    if let Ok(mut up) = TcpStream::connect(upstream).await {
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut down, &mut up) => {}
                            _ = cut_rx.wait_for(|cut| *cut) => {}
                        }
                    }
                    // Both sockets are closed before the count drops.
                    drop(down);
                    counter.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Proxy {
            addr,
            cut,
            open,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Closes every proxied connection and refuses new ones until [`Proxy::restore`]; returns
    /// once no byte can pass any more.
    pub async fn cut(&self) {
        self.cut.send_replace(true);
        eventually("the proxy's connections to close", || async {
            (self.open.load(Ordering::SeqCst) == 0).then_some(())
        })
        .await;
    }

    pub fn restore(&self) {
        self.cut.send_replace(false);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
