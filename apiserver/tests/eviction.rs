//! The `pods/eviction` subresource through kube-rs against an in-process apiserver (on a testkit
//! store: Mainstay, or etcd with `MAINSTAY_TEST_TARGET=etcd`). No disruption controller runs
//! here: the test writes the budget's status itself, as the controller would, and checks what
//! each eviction does to the pod and to the budget.

mod support;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, EvictParams, Patch, PatchParams, PostParams};
use serde_json::{json, Value};

use support::Env;

fn api_error<T: std::fmt::Debug>(r: kube::Result<T>) -> kube::core::ErrorResponse {
    match r {
        Err(kube::Error::Api(e)) => e,
        other => panic!("expected an API error, got {other:?}"),
    }
}

async fn pod(pods: &Api<Pod>, name: &str, phase: &str, ready: bool) {
    let p: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "nginx:1"}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &p).await.unwrap();
    let status = json!({"status": {"phase": phase, "conditions": [
        {"type": "Ready", "status": if ready { "True" } else { "False" }}]}});
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
}

async fn budget_status(budgets: &Api<PodDisruptionBudget>, name: &str, status: Value) {
    budgets
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(&json!({"status": status})),
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evictions_spend_the_budget_and_are_refused_when_it_is_spent() {
    let env = Env::start().await;
    let pods: Api<Pod> = Api::default_namespaced(env.client.clone());
    let budgets: Api<PodDisruptionBudget> = Api::default_namespaced(env.client.clone());
    for name in ["a", "b", "c"] {
        pod(&pods, name, "Running", true).await;
    }
    let pdb: PodDisruptionBudget = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}},
    }))
    .unwrap();
    let created = budgets.create(&PostParams::default(), &pdb).await.unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    let s = created.status.expect("a zero status");
    assert_eq!((s.disruptions_allowed, s.expected_pods), (0, 0));

    // Not yet observed by the controller: 429, "still being processed".
    let e = api_error(pods.evict("a", &EvictParams::default()).await);
    assert_eq!(
        (e.code, e.reason.as_str()),
        (429, "TooManyRequests"),
        "{e:?}"
    );
    assert_eq!(
        e.message,
        "Cannot evict pod as it would violate the pod's disruption budget."
    );

    budget_status(
        &budgets,
        "web",
        json!({"observedGeneration": 1, "disruptionsAllowed": 1, "currentHealthy": 3,
            "desiredHealthy": 2, "expectedPods": 3}),
    )
    .await;
    let done = pods.evict("a", &EvictParams::default()).await.unwrap();
    assert!(done.is_success(), "{done:?}");
    assert_eq!(
        pods.get_opt("a").await.unwrap(),
        None,
        "an unbound pod goes at once"
    );
    let b = budgets.get("web").await.unwrap();
    let s = b.status.expect("status");
    assert_eq!(s.disruptions_allowed, 0);
    assert!(s.disrupted_pods.expect("disruptedPods").contains_key("a"));
    let c = &s.conditions.expect("conditions")[0];
    assert_eq!(
        (c.type_.as_str(), c.status.as_str(), c.reason.as_str()),
        ("DisruptionAllowed", "False", "InsufficientPods")
    );

    // Spent: kube's 429.
    let e = api_error(pods.evict("b", &EvictParams::default()).await);
    assert_eq!(
        (e.code, e.reason.as_str()),
        (429, "TooManyRequests"),
        "{e:?}"
    );
    assert_eq!(
        e.message,
        "Cannot evict pod as it would violate the pod's disruption budget."
    );
    assert!(pods.get_opt("b").await.unwrap().is_some());

    // A pod not yet running is never protected.
    pod(&pods, "pending", "Pending", false).await;
    pods.evict("pending", &EvictParams::default())
        .await
        .unwrap();
    assert_eq!(pods.get_opt("pending").await.unwrap(), None);

    // An unready pod goes without spending anything while the budget is met.
    pod(&pods, "unready", "Running", false).await;
    budget_status(
        &budgets,
        "web",
        json!({"disruptionsAllowed": 0, "currentHealthy": 2, "desiredHealthy": 2}),
    )
    .await;
    pods.evict("unready", &EvictParams::default())
        .await
        .unwrap();
    let s = budgets.get("web").await.unwrap().status.unwrap();
    assert_eq!(s.disruptions_allowed, 0);
    assert!(!s.disrupted_pods.unwrap_or_default().contains_key("unready"));

    // Two budgets for one pod: kube's 500.
    let mut other = pdb.clone();
    other.metadata.name = Some("other".into());
    budgets
        .create(&PostParams::default(), &other)
        .await
        .unwrap();
    let e = api_error(pods.evict("b", &EvictParams::default()).await);
    assert_eq!(e.code, 500, "{e:?}");
    assert_eq!(
        e.message,
        "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."
    );

    // Wrong names and missing pods.
    let e = api_error(pods.evict("nope", &EvictParams::default()).await);
    assert_eq!(e.code, 404, "{e:?}");
}
