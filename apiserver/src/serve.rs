//! Starting a server: `build` connects to the store, makes the `App`, bootstraps (retrying
//! while the store elects a leader) and starts the watch caches and the compactor; `serve` and
//! `serve_on` hand the router (`http`) to the accept loop, over TLS when certificates are
//! configured; `run` does both.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::app::{App, Config};
use crate::error::ApiError;
use crate::http::{authn, tls};
use crate::resources::RESOURCES;
use crate::storage::cacher::Cacher;
use crate::storage::etcd::Storage;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("apiserver: cannot connect to etcd at {0:?}: {1}")]
    Etcd(Vec<String>, etcd_client::Error),
    #[error("apiserver: cannot listen on {0}: {1}")]
    Listen(SocketAddr, std::io::Error),
    #[error("apiserver: {0}")]
    Config(String),
    #[error("apiserver: bootstrap: {0}")]
    Bootstrap(ApiError),
}

/// Connects to etcd, bootstraps, fills the watch caches and serves until the process ends.
pub async fn run(config: Config) -> Result<(), ServeError> {
    let app = build(config).await?;
    serve(app).await
}

/// Connects to the store and prepares the app (exposed for tests that serve it themselves).
pub async fn build(config: Config) -> Result<Arc<App>, ServeError> {
    let opts = etcd_client::ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(5))
        .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5))
        .with_keep_alive_while_idle(true);
    let client = etcd_client::Client::connect(config.etcd_servers.clone(), Some(opts))
        .await
        .map_err(|e| ServeError::Etcd(config.etcd_servers.clone(), e))?;
    let storage = Storage::new(client, &config.etcd_prefix);
    let tokens = match &config.token_auth_file {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| {
                ServeError::Config(format!("--token-auth-file {}: {e}", p.display()))
            })?;
            Some(authn::parse_token_file(&text).map_err(ServeError::Config)?)
        }
        None => None,
    };
    let mut caches = HashMap::new();
    if config.watch_cache {
        for r in RESOURCES {
            caches.insert((r.group, r.plural), Cacher::new(r, &storage));
        }
    }
    let app = Arc::new(App::new(config, storage.clone(), tokens, caches));
    // The store may still be electing a leader: retry bootstrap for a while.
    let mut tries = 0;
    loop {
        match app.bootstrap().await {
            Ok(()) => break,
            Err(e) if tries < 30 => {
                tries += 1;
                tracing::warn!(error = %e, "bootstrap: store not ready, retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(ServeError::Bootstrap(e)),
        }
    }
    for c in app.caches() {
        tokio::spawn(c.clone().run(storage.clone()));
    }
    tokio::spawn(app.clone().compactor());
    Ok(app)
}

/// Serves the API on `bind_address:secure_port`, over TLS when certificates are configured.
pub async fn serve(app: Arc<App>) -> Result<(), ServeError> {
    let addr = SocketAddr::new(app.config.bind_address, app.config.secure_port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| ServeError::Listen(addr, e))?;
    serve_on(app, listener).await
}

pub async fn serve_on(app: Arc<App>, listener: tokio::net::TcpListener) -> Result<(), ServeError> {
    let addr = listener
        .local_addr()
        .map_err(|e| ServeError::Config(e.to_string()))?;
    let router = crate::http::router(app.clone());
    let acceptor = match (&app.config.tls_cert_file, &app.config.tls_private_key_file) {
        (Some(cert), Some(key)) => {
            let acceptor = tls::acceptor(cert, key, app.config.client_ca_file.as_deref())
                .map_err(ServeError::Config)?;
            tracing::info!(%addr, "apiserver serving HTTPS");
            Some(acceptor)
        }
        (None, None) => {
            tracing::info!(%addr, "apiserver serving plain HTTP (no --tls-cert-file)");
            None
        }
        _ => {
            return Err(ServeError::Config(
                "--tls-cert-file and --tls-private-key-file go together".into(),
            ))
        }
    };
    tls::serve(listener, acceptor, router).await;
    Ok(())
}
