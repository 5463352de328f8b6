//! A component's health and metrics endpoints: `/healthz`, `/livez`, `/readyz` and `/metrics`.
//!
//! kube-scheduler (10259) and kube-controller-manager (10257) serve these over **HTTPS** with
//! delegated authentication and authorization. Mainstay's components serve them over **plain
//! HTTP** without authentication: bind them to loopback or a trusted network.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

use crate::error::Error;
use crate::metrics::Metrics;

/// The `Content-Type` of the Prometheus text format.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Clone)]
struct Health {
    metrics: Metrics,
    ready: Arc<dyn Fn() -> bool + Send + Sync>,
}

/// Binds `addr` and serves until `shutdown` resolves. `/healthz` and `/livez` answer "ok" while
/// the process serves; `/readyz` answers "ok" while `ready()` is true, else 500.
pub async fn serve_health(
    addr: SocketAddr,
    metrics: Metrics,
    ready: impl Fn() -> bool + Send + Sync + 'static,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })?;
    serve_health_on(listener, metrics, ready, shutdown).await
}

/// [`serve_health`] on a listener already bound (port 0 in tests, say).
pub async fn serve_health_on(
    listener: TcpListener,
    metrics: Metrics,
    ready: impl Fn() -> bool + Send + Sync + 'static,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "serving /healthz, /livez, /readyz and /metrics over plain HTTP");
    }
    axum::serve(listener, health_router(metrics, ready))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(Error::Serve)
}

/// The routes, to mount elsewhere if wanted.
pub fn health_router(metrics: Metrics, ready: impl Fn() -> bool + Send + Sync + 'static) -> Router {
    let state = Health {
        metrics,
        ready: Arc::new(ready),
    };
    Router::new()
        .route("/healthz", get(ok))
        .route("/livez", get(ok))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(state)
}

async fn ok() -> &'static str {
    "ok"
}

async fn readyz(State(h): State<Health>) -> Response {
    if (h.ready)() {
        "ok".into_response()
    } else {
        (StatusCode::INTERNAL_SERVER_ERROR, "readyz check failed").into_response()
    }
}

async fn metrics_text(State(h): State<Health>) -> Response {
    (
        [(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
        h.metrics.render(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    async fn body(r: Response) -> String {
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 20)
            .await
            .expect("body");
        String::from_utf8(bytes.to_vec()).expect("utf-8")
    }

    fn state(ready: Arc<AtomicBool>) -> Health {
        let metrics = Metrics::new();
        metrics
            .counter(
                "scheduler_schedule_attempts_total",
                "Attempts.",
                &["result"],
            )
            .inc(&["scheduled"]);
        Health {
            metrics,
            ready: Arc::new(move || ready.load(Ordering::Relaxed)),
        }
    }

    #[tokio::test]
    async fn readyz_follows_the_readiness_check() {
        let ready = Arc::new(AtomicBool::new(false));
        let h = state(ready.clone());
        let r = readyz(State(h.clone())).await;
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
        ready.store(true, Ordering::Relaxed);
        let r = readyz(State(h)).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(body(r).await, "ok");
        assert_eq!(ok().await, "ok");
    }

    #[tokio::test]
    async fn metrics_are_served_in_text_format() {
        let r = metrics_text(State(state(Arc::new(AtomicBool::new(true))))).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            r.headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
            Some(METRICS_CONTENT_TYPE)
        );
        assert!(body(r)
            .await
            .contains("scheduler_schedule_attempts_total{result=\"scheduled\"} 1\n"));
    }
}
