//! `mainstay health`, the container health check (the image has no shell or curl): exit 0 for a
//! healthy node, non-zero for an unreachable one.

mod common;

use std::process::Command;

use common::{free_port, Server};

fn health(endpoint: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_mainstay"))
        .args(["health", "--endpoint", endpoint])
        .output()
        .expect("running mainstay health")
}

#[tokio::test]
async fn health_command_reports_a_live_node_and_fails_on_a_dead_one() {
    let server = Server::start(&[]).await;
    let ok = health(&server.endpoint());
    assert!(ok.status.success(), "{ok:?}");
    assert!(String::from_utf8_lossy(&ok.stdout).contains("\"health\":\"true\""));
    let dead = health(&format!("http://127.0.0.1:{}", free_port()));
    assert!(!dead.status.success(), "{dead:?}");
    let bad = health("not-a-url");
    assert!(!bad.status.success(), "{bad:?}");
}
