//! The signals that stop a long-running subcommand (`store`, `apiserver`): Ctrl-C or SIGTERM.

/// Resolves when the process is asked to stop (Ctrl-C or SIGTERM).
pub async fn shutdown() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
}
