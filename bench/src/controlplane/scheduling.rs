//! Scheduling throughput in scheduler_perf's SchedulingBasic shape
//! (`test/integration/scheduler_perf/misc/performance-config.yaml`): Node objects with no
//! kubelet behind them (`node-default.yaml`: 4 cpu, 32Gi, 110 pods, Ready), init pods placed
//! first, then the measured pods (`pod-default.yaml`: one pause container asking 100m and
//! 500Mi), all created as fast as the client goes while `mainstay scheduler` places them. Only
//! the store, the apiserver and the scheduler run, as in scheduler_perf.
//!
//! On a small machine creating the pods can be what sets the pace (each pod is a create, a
//! binding and an Event through the same apiserver and store), so a last phase measures the
//! scheduler alone: the scheduler stops, as many pods again are created, and a fresh scheduler
//! places them all.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use serde_json::json;

use crate::controlplane::observe::Observer;
use crate::controlplane::plane::{create_all, Parts, Plane};
use crate::controlplane::results::{latencies, sample_stats, throughput_samples, SchedulingRun};
use crate::systems::{Options, PlaneOptions, System};
use crate::Error;

const NAMESPACE: &str = "sched-bench";

/// The least rate (pods/s) a phase is given time for before it counts as failed.
const SLOWEST_RATE: f64 = 25.0;

fn node(i: usize) -> Result<Node, Error> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": format!("scheduler-perf-{i}")},
        "spec": {},
        "status": {
            "capacity": {"pods": "110", "cpu": "4", "memory": "32Gi"},
            "conditions": [{"type": "Ready", "status": "True"}],
            "phase": "Running",
        },
    }))?)
}

fn pod(name: String) -> Result<Pod, Error> {
    let resources = json!({"cpu": "100m", "memory": "500Mi"});
    Ok(serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{
            "name": "pause",
            "image": "registry.k8s.io/pause:3.10",
            "ports": [{"containerPort": 80}],
            "resources": {"limits": resources, "requests": resources},
        }]},
    }))?)
}

fn phase_timeout(pods: usize) -> Duration {
    Duration::from_secs(30) + Duration::from_secs_f64(pods as f64 / SLOWEST_RATE)
}

pub async fn run(system: System, opts: &Options, p: &PlaneOptions) -> Result<SchedulingRun, Error> {
    let mut plane = Plane::start(system, opts, Parts::SCHEDULER).await?;
    plane.create_namespace(NAMESPACE).await?;
    let mut run = SchedulingRun {
        system,
        nodes: p.sched_nodes,
        init_pods: p.sched_init_pods,
        pods: p.sched_pods,
        ..SchedulingRun::default()
    };
    let nodes: Vec<Node> = (0..p.sched_nodes).map(node).collect::<Result<_, _>>()?;
    let started = Instant::now();
    let (_, errors) = create_all(
        &Api::<Node>::all(plane.client.clone()),
        nodes.into_iter(),
        None,
        p.concurrency,
    )
    .await;
    run.errors.merge(&errors);
    eprintln!(
        "bench: control plane on {system}: {} nodes created in {:.1} s",
        p.sched_nodes,
        started.elapsed().as_secs_f64()
    );

    let observer = Observer::start(plane.client.clone(), NAMESPACE).await?;
    let pods: Api<Pod> = Api::namespaced(plane.client.clone(), NAMESPACE);
    let init: Vec<Pod> = (0..p.sched_init_pods)
        .map(|i| pod(format!("init-pod-{i}")))
        .collect::<Result<_, _>>()?;
    let (_, errors) = create_all(&pods, init.into_iter(), None, p.concurrency).await;
    run.errors.merge(&errors);
    let init_count = p.sched_init_pods;
    observer
        .wait("the init pods bound", phase_timeout(init_count), |c| {
            c.bound >= init_count
        })
        .await?;
    plane.check_alive(&[])?;

    let measured: Vec<Pod> = (0..p.sched_pods)
        .map(|i| pod(format!("pod-{i}")))
        .collect::<Result<_, _>>()?;
    let before = plane.sample(&[]).await;
    let t0 = Instant::now();
    let (sent, errors) = create_all(&pods, measured.into_iter(), None, p.concurrency).await;
    run.create_seconds = t0.elapsed().as_secs_f64();
    run.errors.merge(&errors);
    let expected = init_count + sent.len();
    if let Err(e) = observer
        .wait("the measured pods bound", phase_timeout(sent.len()), |c| {
            c.bound >= expected
        })
        .await
    {
        run.errors.add(e.to_string());
    }
    let after = plane.sample(&[]).await;
    plane.check_alive(&[])?;
    run.usage = before.until(&after);
    run.errors.merge(&observer.errors());

    let drained = drain(&mut plane, &observer, p, expected, &mut run).await?;
    let times = observer.times();
    let binds: Vec<Instant> = sent
        .iter()
        .filter_map(|(name, _)| times.get(name).and_then(|t| t.bound))
        .collect();
    let (mean, p50, min) = sample_stats(&throughput_samples(&binds));
    run.throughput = mean;
    run.throughput_p50 = p50;
    run.throughput_min = min;
    if let Some(last) = binds.iter().max() {
        run.throughput_overall =
            binds.len() as f64 / last.duration_since(t0).as_secs_f64().max(1e-9);
    }
    let drain_binds: Vec<Instant> = drained
        .iter()
        .filter_map(|(name, _)| times.get(name).and_then(|t| t.bound))
        .collect();
    run.drain_throughput = sample_stats(&throughput_samples(&drain_binds)).0;
    run.create_to_bound = latencies(
        sent.iter()
            .map(|(name, at)| (Some(*at), times.get(name).and_then(|t| t.bound))),
    )
    .summary();
    eprintln!(
        "bench: control plane on {system}: {} pods bound on {} nodes at {:.0} pods/s \
         (1 s samples' mean; {:.0} overall), create→bound p99 {:.0} ms; a fresh scheduler \
         placed {} waiting pods at {:.0} pods/s",
        binds.len(),
        p.sched_nodes,
        run.throughput,
        run.throughput_overall,
        run.create_to_bound.p99_ms,
        drain_binds.len(),
        run.drain_throughput
    );
    Ok(run)
}

/// The scheduler alone: stops it, creates `p.sched_pods` more pods, starts a fresh scheduler
/// and waits until it has placed them (`already` pods were bound before). The pods created.
async fn drain(
    plane: &mut Plane,
    observer: &Observer,
    p: &PlaneOptions,
    already: usize,
    run: &mut SchedulingRun,
) -> Result<Vec<(String, Instant)>, Error> {
    plane.stop_scheduler()?;
    let pods: Api<Pod> = Api::namespaced(plane.client.clone(), NAMESPACE);
    let waiting: Vec<Pod> = (0..p.sched_pods)
        .map(|i| pod(format!("drain-pod-{i}")))
        .collect::<Result<_, _>>()?;
    let (sent, errors) = create_all(&pods, waiting.into_iter(), None, p.concurrency).await;
    run.errors.merge(&errors);
    let before = plane.sample(&[]).await;
    let started = Instant::now();
    plane.start_scheduler().await?;
    let expected = already + sent.len();
    if let Err(e) = observer
        .wait("the waiting pods bound", phase_timeout(sent.len()), |c| {
            c.bound >= expected
        })
        .await
    {
        run.errors.add(e.to_string());
    }
    run.drain_seconds = started.elapsed().as_secs_f64();
    let after = plane.sample(&[]).await;
    plane.check_alive(&[])?;
    run.drain_usage = before.until(&after);
    Ok(sent)
}
