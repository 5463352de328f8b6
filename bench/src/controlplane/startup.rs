//! Pod startup latency in ClusterLoader2's density shape, scaled to one machine
//! (`clusterloader2/testing/density/config.yaml`: 30 pods per node, created at
//! `DENSITY_TEST_THROUGHPUT` = 20 pods/s; saturation pods ask 1m cpu and 10M memory). Every pod
//! comes from a one-replica Deployment (as density's latency pods do) created at the rate, so
//! the whole path runs: Deployment → controller-manager → ReplicaSet → Pod → scheduler →
//! binding → simulated node → Running. The SLI is kube's: from the pod's creation to its
//! Running status, both observed by a watch.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use serde_json::json;

use crate::controlplane::observe::Observer;
use crate::controlplane::plane::{create_all, Parts, Plane};
use crate::controlplane::results::{latencies, StartupRun};
use crate::systems::{Options, PlaneOptions, System};
use crate::Error;

const NAMESPACE: &str = "density-bench";
const NODE_PREFIX: &str = "density-node-";
/// The simulated nodes' ContainerCreating time (`mainstay nodes`' default).
const POD_START_DELAY_MS: u64 = 100;

fn deployment(name: &str) -> Result<Deployment, Error> {
    let labels = json!({"app": name, "group": "density"});
    Ok(serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{
                    "name": "pause",
                    "image": "registry.k8s.io/pause:3.10",
                    "resources": {"requests": {"cpu": "1m", "memory": "10M"}},
                }]},
            },
        },
    }))?)
}

/// The Deployment a ReplicaSet's pod belongs to: `<deployment>-<template hash>-<suffix>`.
fn deployment_of(pod: &str) -> Option<&str> {
    let mut parts = pod.rsplitn(3, '-');
    let (_suffix, _hash) = (parts.next()?, parts.next()?);
    parts.next()
}

pub async fn run(system: System, opts: &Options, p: &PlaneOptions) -> Result<StartupRun, Error> {
    let mut plane = Plane::start(system, opts, Parts::BOTH).await?;
    let nodes = plane.spawn(
        "nodes",
        &[
            "--count".into(),
            p.startup_nodes.to_string(),
            "--name-prefix".into(),
            NODE_PREFIX.into(),
            "--pod-start-delay".into(),
            format!("{POD_START_DELAY_MS}ms"),
        ],
    )?;
    let registered = plane
        .wait_nodes_ready(
            &nodes,
            NODE_PREFIX,
            p.startup_nodes,
            Duration::from_secs(60 + p.startup_nodes as u64 / 10),
        )
        .await?;
    plane.create_namespace(NAMESPACE).await?;
    let pods = p.startup_nodes * p.startup_pods_per_node;
    eprintln!(
        "bench: control plane on {system}: {} nodes Ready in {:.1} s; creating {pods} \
         Deployments at {} per second",
        p.startup_nodes,
        registered.as_secs_f64(),
        p.startup_rate
    );
    let mut run = StartupRun {
        system,
        nodes: p.startup_nodes,
        pods,
        rate: p.startup_rate,
        pod_start_delay_ms: POD_START_DELAY_MS,
        ..StartupRun::default()
    };
    let observer = Observer::start(plane.client.clone(), NAMESPACE).await?;
    let deployments: Vec<Deployment> = (0..pods)
        .map(|i| deployment(&format!("density-{i}")))
        .collect::<Result<_, _>>()?;
    let before = plane.sample(&[&nodes]).await;
    let (sent, errors) = create_all(
        &Api::<Deployment>::namespaced(plane.client.clone(), NAMESPACE),
        deployments.into_iter(),
        Some(p.startup_rate),
        p.concurrency,
    )
    .await;
    run.errors.merge(&errors);
    let expected = sent.len();
    if let Err(e) = observer
        .wait("every pod Running", Duration::from_secs(60), |c| {
            c.running >= expected
        })
        .await
    {
        run.errors.add(e.to_string());
    }
    let after = plane.sample(&[&nodes]).await;
    plane.check_alive(&[&nodes])?;
    run.usage = before.until(&after);
    run.errors.merge(&observer.errors());

    let created: HashMap<&str, Instant> = sent.iter().map(|(n, at)| (n.as_str(), *at)).collect();
    let times = observer.times();
    let of = |f: fn(&crate::controlplane::observe::PodTimes) -> Option<Instant>| {
        times.values().map(f).collect::<Vec<_>>()
    };
    run.startup = latencies(of(|t| t.seen).into_iter().zip(of(|t| t.running))).summary();
    run.created_to_bound = latencies(of(|t| t.seen).into_iter().zip(of(|t| t.bound))).summary();
    run.bound_to_running = latencies(of(|t| t.bound).into_iter().zip(of(|t| t.running))).summary();
    run.deployment_to_running = latencies(times.iter().map(|(pod, t)| {
        let sent = deployment_of(pod).and_then(|d| created.get(d).copied());
        (sent, t.running)
    }))
    .summary();
    eprintln!(
        "bench: control plane on {system}: {} of {pods} pods Running; startup p50 {:.0} ms, \
         p99 {:.0} ms (Deployment create → Running p99 {:.0} ms)",
        run.startup.samples,
        run.startup.p50_ms,
        run.startup.p99_ms,
        run.deployment_to_running.p99_ms
    );
    drop(nodes);
    Ok(run)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_map_to_their_deployment() {
        assert_eq!(
            deployment_of("density-12-7d4b9c8f6-x2x9q"),
            Some("density-12")
        );
        assert_eq!(deployment_of("density-1-abc-def"), Some("density-1"));
        assert_eq!(deployment_of("nohash"), None);
        assert_eq!(deployment_of("a-b"), None);
    }

    #[test]
    fn deployments_are_valid_one_replica_density_pods() {
        let d = deployment("density-3").unwrap();
        let spec = d.spec.unwrap();
        assert_eq!(spec.replicas, Some(1));
        let labels = spec.template.metadata.unwrap().labels.unwrap();
        assert_eq!(labels["app"], "density-3");
        assert_eq!(spec.selector.match_labels.unwrap()["app"], "density-3");
    }
}
