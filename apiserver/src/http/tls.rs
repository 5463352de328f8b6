//! Serving connections, plain or HTTPS: the serving certificate, optional client-certificate
//! authentication against `--client-ca-file` (the certificate's CN is the user, as kube-apiserver
//! reads it; its O entries, kube's groups, are not read yet), HTTP/1.1 and HTTP/2 (by ALPN over
//! TLS, by prior knowledge over plain TCP), and the cap on open connections.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

/// Set by this layer on requests whose client presented a verified certificate; removed from
/// every incoming request first, so a client cannot claim it.
pub const CLIENT_CERT_USER_HEADER: &str = "x-mainstay-client-cert-user";

/// A TLS handshake that takes longer is dropped (a slow client cannot hold a task forever).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A request's headers must arrive within this (HTTP/1; a slow client cannot hold a connection
/// by trickling them).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Streams (requests and watches) at once on one HTTP/2 connection: Go's server default, which
/// kube-apiserver keeps.
const HTTP2_STREAMS_MAX: u32 = 250;
/// HTTP/2 connections are pinged when idle this long, and closed when a ping goes unanswered.
const HTTP2_KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(30);
const HTTP2_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// Connections served at once, plain or TLS; further accepts wait.
const CONNECTIONS_MAX: usize = 4096;
/// A connection with no request in progress for this long is closed (kube-apiserver's
/// `IdleTimeout` for HTTP/1 and HTTP/2), so idle clients cannot fill [`CONNECTIONS_MAX`]. A
/// watch is a request in progress for as long as it runs.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

fn read_certs(path: &Path) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))
}

pub fn acceptor(cert: &Path, key: &Path, client_ca: Option<&Path>) -> Result<TlsAcceptor, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = read_certs(cert)?;
    let key_pem = std::fs::read(key).map_err(|e| format!("{}: {e}", key.display()))?;
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| format!("{}: {e}", key.display()))?
        .ok_or_else(|| format!("{}: no private key", key.display()))?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in read_certs(ca)? {
                roots.add(c).map_err(|e| format!("{}: {e}", ca.display()))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .allow_unauthenticated()
            .build()
            .map_err(|e| e.to_string())?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| e.to_string())?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The CN of a verified client certificate.
fn cert_user(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert
        .subject()
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    Some(cn)
}

/// Serves connections, over TLS when `acceptor` is given, at most CONNECTIONS_MAX at once.
/// Plain and TLS connections go through the same path, so the client-certificate user header is
/// stripped from every request whichever way it came.
pub async fn serve(
    listener: tokio::net::TcpListener,
    acceptor: Option<TlsAcceptor>,
    router: Router,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(CONNECTIONS_MAX));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let (tcp, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let router = router.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match acceptor {
                None => serve_connection(TokioIo::new(tcp), None, router).await,
                Some(acceptor) => {
                    let Ok(Ok(tls)) =
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
                    else {
                        return;
                    };
                    let user = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .and_then(|c| cert_user(c.as_ref()));
                    serve_connection(TokioIo::new(tls), user, router).await
                }
            }
        });
    }
}

async fn serve_connection<I>(io: TokioIo<I>, user: Option<String>, router: Router)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    serve_connection_idle_after(io, user, router, IDLE_TIMEOUT).await
}

async fn serve_connection_idle_after<I>(
    io: TokioIo<I>,
    user: Option<String>,
    router: Router,
    idle_timeout: Duration,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let activity = Activity::default();
    let tracked = activity.clone();
    let service =
        hyper::service::service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
            req.headers_mut().remove(CLIENT_CERT_USER_HEADER);
            if let Some(u) = user
                .as_deref()
                .and_then(|u| http::HeaderValue::from_str(u).ok())
            {
                req.headers_mut().insert(CLIENT_CERT_USER_HEADER, u);
            }
            // In progress from here until its response body is done or dropped.
            let guard = tracked.start();
            let response = router.clone().oneshot(req.map(axum::body::Body::new));
            async move {
                let response = response.await?;
                Ok::<_, std::convert::Infallible>(response.map(|body| {
                    axum::body::Body::new(TrackedBody {
                        body,
                        _guard: guard,
                    })
                }))
            }
        });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(HTTP2_STREAMS_MAX)
        .keep_alive_interval(HTTP2_KEEP_ALIVE_INTERVAL)
        .keep_alive_timeout(HTTP2_KEEP_ALIVE_TIMEOUT);
    let connection = builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => return,
        _ = activity.idle_for(idle_timeout) => {}
    }
    // Idle: finish what is in flight (nothing, or a request that just arrived) and close.
    connection.as_mut().graceful_shutdown();
    let _ = connection.await;
}

/// Requests in progress on one connection, and when the last one ended.
#[derive(Clone, Default)]
struct Activity(Arc<std::sync::Mutex<ActivityState>>);

struct ActivityState {
    in_progress: usize,
    idle_since: tokio::time::Instant,
}

impl Default for ActivityState {
    fn default() -> Self {
        ActivityState {
            in_progress: 0,
            idle_since: tokio::time::Instant::now(),
        }
    }
}

impl Activity {
    fn start(&self) -> ActivityGuard {
        let mut s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        s.in_progress += 1;
        ActivityGuard(self.clone())
    }

    /// Resolves once no request has been in progress for `timeout`.
    async fn idle_for(&self, timeout: Duration) {
        loop {
            let wake = {
                let s = self.0.lock().unwrap_or_else(|e| e.into_inner());
                if s.in_progress == 0 && s.idle_since.elapsed() >= timeout {
                    return;
                }
                if s.in_progress == 0 {
                    s.idle_since + timeout
                } else {
                    tokio::time::Instant::now() + timeout
                }
            };
            tokio::time::sleep_until(wake).await;
        }
    }
}

struct ActivityGuard(Activity);

impl Drop for ActivityGuard {
    fn drop(&mut self) {
        let mut s = (self.0).0.lock().unwrap_or_else(|e| e.into_inner());
        s.in_progress -= 1;
        if s.in_progress == 0 {
            s.idle_since = tokio::time::Instant::now();
        }
    }
}

/// A response body that keeps its request counted as in progress until it is done or dropped.
struct TrackedBody {
    body: axum::body::Body,
    /// Dropped with the body.
    _guard: ActivityGuard,
}

impl hyper::body::Body for TrackedBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;

    /// Serves one connection with `idle` as its idle timeout; returns an HTTP/2 client on it and
    /// the task driving the client's side.
    async fn connect(
        idle: Duration,
    ) -> (
        hyper::client::conn::http2::SendRequest<axum::body::Body>,
        tokio::task::JoinHandle<()>,
    ) {
        let router = Router::new().route("/quick", get(|| async { "ok" })).route(
            "/stream",
            get(|| async {
                // A response that never ends, as a watch with nothing to say.
                axum::body::Body::from_stream(futures::stream::pending::<
                    Result<axum::body::Bytes, std::io::Error>,
                >())
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            serve_connection_idle_after(TokioIo::new(tcp), None, router, idle).await;
        });
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
                .await
                .unwrap();
        let driver = tokio::spawn(async move {
            let _ = conn.await;
        });
        (send, driver)
    }

    async fn quick(
        send: &mut hyper::client::conn::http2::SendRequest<axum::body::Body>,
    ) -> Result<u16, hyper::Error> {
        let req = http::Request::get("http://localhost/quick")
            .body(axum::body::Body::empty())
            .unwrap();
        Ok(send.send_request(req).await?.status().as_u16())
    }

    /// An HTTP/2 connection without requests is closed after the idle timeout (HTTP/2 pings
    /// alone kept it open for as long as the client answered them).
    #[tokio::test]
    async fn an_idle_connection_is_closed() {
        let (mut send, driver) = connect(Duration::from_secs(1)).await;
        assert_eq!(quick(&mut send).await.unwrap(), 200);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(quick(&mut send).await.unwrap(), 200, "not idle long enough");
        tokio::time::timeout(Duration::from_secs(10), driver)
            .await
            .expect("the server closes an idle connection")
            .unwrap();
        assert!(quick(&mut send).await.is_err());
    }

    /// A request in progress (a watch) keeps its connection open however long it runs.
    #[tokio::test]
    async fn a_long_request_keeps_its_connection() {
        let (mut send, driver) = connect(Duration::from_millis(300)).await;
        let req = http::Request::get("http://localhost/stream")
            .body(axum::body::Body::empty())
            .unwrap();
        let streaming = send.send_request(req).await.unwrap();
        assert_eq!(streaming.status().as_u16(), 200);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(
            !driver.is_finished(),
            "closed while a response was streaming"
        );
        assert_eq!(quick(&mut send).await.unwrap(), 200);
        // Once it ends, the connection is idle and closes.
        drop(streaming);
        tokio::time::timeout(Duration::from_secs(10), driver)
            .await
            .expect("closed once idle")
            .unwrap();
    }
}
