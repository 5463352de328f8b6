//! What a node and a pod cost in memory: the pure per-node state with 30 running pods each
//! (the benchmark's density), and the per-node runtime pieces (queue, task, Event recorder).
//! Heap bytes are counted by an allocator that counts per thread, so tests running in
//! parallel do not disturb the figures. `cargo test -p mainstay-nodesim memory -- --nocapture`
//! prints them.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::Ipv4Addr;
use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use tokio::time::Instant;

use crate::ipam::Ipam;
use crate::node::default_pod_cidr;
use crate::pod::observe::observe;
use crate::pod::sim::{Clock, NodePods, SimConfig, WriteOutcome};

struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
}

// SAFETY: defers to the system allocator; only adds bookkeeping in a thread-local integer
// without a destructor (so no allocation happens inside the allocator).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = LIVE.try_with(|c| c.set(c.get() + layout.size() as isize));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let _ = LIVE.try_with(|c| c.set(c.get() - layout.size() as isize));
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = LIVE.try_with(|c| c.set(c.get() + new_size as isize - layout.size() as isize));
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live() -> isize {
    LIVE.with(Cell::get)
}

const NODES: usize = 1000;
const PODS_PER_NODE: usize = 30;

fn sim_config() -> SimConfig {
    SimConfig {
        start_delay: Duration::ZERO,
        crash_loop_backoff: Duration::from_secs(10),
        max_pods: 110,
        pod_events: false,
    }
}

#[test]
fn memory_per_node_and_per_pod() {
    let t0 = Instant::now();
    let clock = Clock {
        instant: t0,
        wall: Utc::now(),
    };
    let before = live();
    let mut nodes: Vec<NodePods> = (0..NODES)
        .map(|i| {
            NodePods::new(
                sim_config(),
                Ipv4Addr::new(172, 16, 0, 10),
                Ipam::new(default_pod_cidr(i)),
                clock,
            )
        })
        .collect();
    let empty_nodes = live() - before;
    // Realistic pods: a Deployment's pod with one container, a probe and resources.
    for (i, node) in nodes.iter_mut().enumerate() {
        for j in 0..PODS_PER_NODE {
            let pod = serde_json::from_value(json!({
                "metadata": {"name": format!("web-7d9c5b8f6d-{i:04}{j:02}"), "namespace": "default",
                    "uid": format!("6f1c2b9e-0d3a-4f7e-9c1b-{i:06}{j:06}")},
                "spec": {"nodeName": "n", "containers": [{"name": "nginx", "image": "nginx:1.27",
                    "readinessProbe": {"initialDelaySeconds": 0, "httpGet": {"port": 80}},
                    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}
            }))
            .unwrap();
            let (_, o) = observe(&pod).unwrap();
            node.observe(o, t0);
        }
        // Run them: every write done, as in steady state.
        node.advance(t0);
        while let Some(w) = node.next_write(t0) {
            node.write_done(&w, WriteOutcome::Done, t0);
            node.advance(t0);
        }
        assert_eq!(node.ips_in_use() as usize, PODS_PER_NODE);
    }
    let with_pods = live() - before;
    let per_node = empty_nodes as f64 / NODES as f64;
    let per_pod = (with_pods - empty_nodes) as f64 / (NODES * PODS_PER_NODE) as f64;
    println!(
        "pure state: {per_node:.0} B per empty node, {per_pod:.0} B per running pod \
         ({NODES} nodes x {PODS_PER_NODE} pods: {:.1} MiB)",
        with_pods as f64 / (1 << 20) as f64
    );
    // Bounds that catch a regression (keeping whole Pods, say) without being brittle.
    assert!(per_node < 2048.0, "{per_node} B per node");
    assert!(per_pod < 1024.0, "{per_pod} B per pod");
    drop(nodes);
}

#[test]
fn memory_of_the_per_node_runtime_pieces() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client =
            kube::Client::try_from(kube::Config::new("http://127.0.0.1:9".parse().unwrap()))
                .unwrap();
        let before = live();
        let mut queues = Vec::with_capacity(NODES);
        for _ in 0..NODES {
            let (tx, mut rx) = tokio::sync::mpsc::channel::<Box<u64>>(64);
            let task = tokio::spawn(async move { while rx.recv().await.is_some() {} });
            queues.push((tx, task));
        }
        tokio::task::yield_now().await;
        let queue_and_task = (live() - before) as f64 / NODES as f64;
        let before = live();
        let mut recorders = Vec::with_capacity(NODES);
        for i in 0..NODES {
            recorders.push(mainstay_component::events::Recorder::new(
                client.clone(),
                "kubelet",
                Some(format!("mainstay-node-{i}")),
            ));
        }
        tokio::task::yield_now().await;
        let recorder = (live() - before) as f64 / NODES as f64;
        println!(
            "runtime per node: {queue_and_task:.0} B for the pod queue and task, \
             {recorder:.0} B for the Event recorder"
        );
        assert!(queue_and_task < 8.0 * 1024.0, "{queue_and_task} B per node");
        assert!(recorder < 64.0 * 1024.0, "{recorder} B per recorder");
        let keep = (queues, recorders);
        drop(keep);
    });
}
