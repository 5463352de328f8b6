//! Simulated node scale: one `mainstay nodes` process holding many nodes and their pods (kwok's
//! claim is 1k nodes and 100k pods; kubemark runs one hollow node per process). Measured: the
//! process's resident memory per node and per pod (against a one-node process's), how long the
//! nodes take to register and the pods to run, and the load the heartbeats alone (Lease
//! renewals every 10 s, status reports) put on the apiserver and the store.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use serde_json::json;

use crate::controlplane::observe::Observer;
use crate::controlplane::plane::{create_all, Parts, Plane};
use crate::controlplane::results::NodeScaleRun;
use crate::process::Child;
use crate::systems::{Options, PlaneOptions, System};
use crate::Error;

const NAMESPACE: &str = "scale-bench";
const NODE_PREFIX: &str = "scale-node-";
/// Let a burst's writes and frees settle before memory is read.
const SETTLE: Duration = Duration::from_secs(3);

fn pod(i: usize) -> Result<Pod, Error> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": format!("scale-pod-{i}"), "labels": {"group": "scale"}},
        "spec": {"containers": [{
            "name": "pause",
            "image": "registry.k8s.io/pause:3.10",
            "resources": {"requests": {"cpu": "1m", "memory": "10M"}},
        }]},
    }))?)
}

fn rss(child: &Child) -> Result<u64, Error> {
    child
        .sample()
        .map(|s| s.rss_bytes)
        .ok_or_else(|| child.failure("reading its memory"))
}

pub async fn run(system: System, opts: &Options, p: &PlaneOptions) -> Result<NodeScaleRun, Error> {
    let mut plane = Plane::start(system, opts, Parts::SCHEDULER).await?;
    let mut run = NodeScaleRun {
        system,
        nodes: p.scale_nodes,
        pods: p.scale_pods,
        ..NodeScaleRun::default()
    };

    // What a process costs before its nodes: one node, tainted so that no pod lands on it.
    let baseline = plane.spawn(
        "nodes",
        &[
            "--count".into(),
            "1".into(),
            "--name-prefix".into(),
            "baseline-node-".into(),
            "--taints".into(),
            "mainstay.dev/bench=baseline:NoSchedule".into(),
        ],
    )?;
    plane
        .wait_nodes_ready(&baseline, "baseline-node-", 1, Duration::from_secs(60))
        .await?;
    tokio::time::sleep(SETTLE).await;
    run.baseline_rss_bytes = rss(&baseline)?;
    drop(baseline);

    let register_timeout = Duration::from_secs(60 + p.scale_nodes as u64 / 10);
    let nodes = plane.spawn(
        "nodes",
        &[
            "--count".into(),
            p.scale_nodes.to_string(),
            "--name-prefix".into(),
            NODE_PREFIX.into(),
        ],
    )?;
    run.register_seconds = plane
        .wait_nodes_ready(&nodes, NODE_PREFIX, p.scale_nodes, register_timeout)
        .await?
        .as_secs_f64();
    tokio::time::sleep(SETTLE).await;
    run.nodes_rss_bytes = rss(&nodes)?;
    eprintln!(
        "bench: control plane on {system}: {} nodes Ready in {:.1} s, {:.1} MiB resident",
        p.scale_nodes,
        run.register_seconds,
        run.nodes_rss_bytes as f64 / (1 << 20) as f64
    );

    plane.create_namespace(NAMESPACE).await?;
    let observer = Observer::start(plane.client.clone(), NAMESPACE).await?;
    let pods: Vec<Pod> = (0..p.scale_pods).map(pod).collect::<Result<_, _>>()?;
    let t0 = Instant::now();
    let (sent, errors) = create_all(
        &Api::<Pod>::namespaced(plane.client.clone(), NAMESPACE),
        pods.into_iter(),
        None,
        p.concurrency,
    )
    .await;
    run.errors.merge(&errors);
    let expected = sent.len();
    let running_timeout = Duration::from_secs(120) + Duration::from_millis(expected as u64 * 20);
    if let Err(e) = observer
        .wait("every pod Running", running_timeout, |c| {
            c.running >= expected
        })
        .await
    {
        run.errors.add(e.to_string());
    }
    run.running_seconds = t0.elapsed().as_secs_f64();
    run.errors.merge(&observer.errors());
    drop(observer);
    plane.check_alive(&[&nodes])?;
    tokio::time::sleep(SETTLE).await;
    run.pods_rss_bytes = rss(&nodes)?;
    eprintln!(
        "bench: control plane on {system}: {expected} pods Running after {:.1} s, {:.1} MiB \
         resident; {} s of heartbeats only",
        run.running_seconds,
        run.pods_rss_bytes as f64 / (1 << 20) as f64,
        p.heartbeat_window_secs
    );

    let before = plane.sample(&[&nodes]).await;
    tokio::time::sleep(Duration::from_secs(p.heartbeat_window_secs)).await;
    let after = plane.sample(&[&nodes]).await;
    plane.check_alive(&[&nodes])?;
    run.heartbeats = before.until(&after);
    Ok(run)
}
