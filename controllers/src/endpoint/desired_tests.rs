//! Table tests after kube's `endpoints_controller_test.go` (`TestSyncEndpointsItems*`,
//! `TestSyncEndpointsHeadlessService`, `TestPodToEndpointAddressForService`, capacity).

use super::*;
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, PodCondition, PodIP, PodSpec, PodStatus, ServiceSpec,
};

pub(crate) fn svc(name: &str, ports: &[(&str, i32, IntOrString)]) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("ns".into()),
            labels: Some([("team".to_string(), "a".to_string())].into()),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            selector: Some([("app".to_string(), "web".to_string())].into()),
            ports: Some(
                ports
                    .iter()
                    .map(|(n, p, t)| ServicePort {
                        name: Some(n.to_string()),
                        port: *p,
                        target_port: Some(t.clone()),
                        protocol: Some("TCP".into()),
                        ..Default::default()
                    })
                    .collect(),
            ),
            cluster_ip: Some("10.96.0.10".into()),
            ..Default::default()
        }),
        status: None,
    }
}

pub(crate) fn pod(name: &str, ip: &str, ready: bool) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("ns".into()),
            uid: Some(format!("uid-{name}")),
            labels: Some([("app".to_string(), "web".to_string())].into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: Some("node-1".into()),
            containers: vec![Container {
                name: "c".into(),
                ports: Some(vec![ContainerPort {
                    name: Some("http".into()),
                    container_port: 8080,
                    protocol: Some("TCP".into()),
                    ..Default::default()
                }]),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: Some(PodStatus {
            phase: Some("Running".into()),
            pod_ip: (!ip.is_empty()).then(|| ip.to_string()),
            pod_ips: (!ip.is_empty()).then(|| vec![PodIP { ip: ip.into() }]),
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: if ready { "True" } else { "False" }.into(),
                ..Default::default()
            }]),
            ..Default::default()
        }),
    }
}

fn ips(a: &Option<Vec<EndpointAddress>>) -> Vec<String> {
    a.iter().flatten().map(|x| x.ip.clone()).collect()
}

#[test]
fn ready_and_not_ready_pods_with_ports_resolved_by_name_and_number() {
    let s = svc(
        "web",
        &[
            ("http", 80, IntOrString::String("http".into())),
            ("raw", 81, IntOrString::Int(9000)),
        ],
    );
    let a = pod("a", "10.0.0.2", true);
    let b = pod("b", "10.0.0.1", true);
    let c = pod("c", "10.0.0.3", false);
    let no_ip = pod("d", "", true);
    let mut other = pod("e", "10.0.0.9", true);
    other.metadata.labels = Some([("app".to_string(), "db".to_string())].into());
    let mut done = pod("f", "10.0.0.8", true);
    done.status.as_mut().expect("s").phase = Some("Succeeded".into());
    let ep = desired_endpoints(&s, &[&a, &b, &c, &no_ip, &other, &done]);
    let subsets = ep.subsets.expect("subsets");
    assert_eq!(subsets.len(), 1);
    assert_eq!(ips(&subsets[0].addresses), ["10.0.0.1", "10.0.0.2"]);
    assert_eq!(ips(&subsets[0].not_ready_addresses), ["10.0.0.3"]);
    let ports: Vec<(Option<String>, i32)> = subsets[0]
        .ports
        .iter()
        .flatten()
        .map(|p| (p.name.clone(), p.port))
        .collect();
    assert_eq!(
        ports,
        [(Some("http".into()), 8080), (Some("raw".into()), 9000)]
    );
    let addr = &subsets[0].addresses.as_ref().expect("a")[0];
    assert_eq!(addr.node_name.as_deref(), Some("node-1"));
    assert_eq!(
        addr.target_ref.as_ref().and_then(|r| r.name.as_deref()),
        Some("b")
    );
    assert_eq!(ep.metadata.labels.as_ref().expect("l")["team"], "a");
}

#[test]
fn a_pod_without_the_named_port_is_left_out_of_that_port() {
    let s = svc("web", &[("grpc", 90, IntOrString::String("grpc".into()))]);
    let ep = desired_endpoints(&s, &[&pod("a", "10.0.0.2", true)]);
    assert!(ep.subsets.is_none());
}

#[test]
fn publish_not_ready_addresses_makes_every_pod_ready_and_keeps_terminating_ones() {
    let mut s = svc("web", &[("http", 80, IntOrString::Int(8080))]);
    s.spec.as_mut().expect("spec").publish_not_ready_addresses = Some(true);
    let mut t = pod("t", "10.0.0.5", false);
    t.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        Utc::now(),
    ));
    let ep = desired_endpoints(&s, &[&pod("a", "10.0.0.2", false), &t]);
    let subsets = ep.subsets.expect("subsets");
    assert_eq!(ips(&subsets[0].addresses), ["10.0.0.2", "10.0.0.5"]);
    assert!(subsets[0].not_ready_addresses.is_none());
    // Without it, a terminating pod is gone.
    let s = svc("web", &[("http", 80, IntOrString::Int(8080))]);
    assert!(desired_endpoints(&s, &[&t]).subsets.is_none());
}

#[test]
fn headless_services_without_ports_publish_addresses_and_hostnames() {
    let mut s = svc("db", &[]);
    s.spec.as_mut().expect("spec").cluster_ip = Some("None".into());
    let mut p = pod("a", "10.0.0.2", true);
    let spec = p.spec.as_mut().expect("spec");
    spec.hostname = Some("db-0".into());
    spec.subdomain = Some("db".into());
    let ep = desired_endpoints(&s, &[&p]);
    let subsets = ep.subsets.expect("subsets");
    assert!(subsets[0].ports.is_none());
    assert_eq!(
        subsets[0].addresses.as_ref().expect("a")[0]
            .hostname
            .as_deref(),
        Some("db-0")
    );
    assert_eq!(
        ep.metadata
            .labels
            .as_ref()
            .expect("l")
            .get(HEADLESS_LABEL)
            .map(String::as_str),
        Some("")
    );
    // A non-headless service without ports publishes nothing.
    assert!(desired_endpoints(&svc("x", &[]), &[&p]).subsets.is_none());
}

#[test]
fn beyond_capacity_addresses_are_truncated_and_annotated() {
    let s = svc("web", &[("http", 80, IntOrString::Int(8080))]);
    let pods: Vec<Pod> = (0..1005)
        .map(|i| {
            pod(
                &format!("p{i}"),
                &format!("10.1.{}.{}", i / 250, i % 250),
                i % 2 == 0,
            )
        })
        .collect();
    let refs: Vec<&Pod> = pods.iter().collect();
    let ep = desired_endpoints(&s, &refs);
    let subsets = ep.subsets.as_ref().expect("subsets");
    let ready = ips(&subsets[0].addresses).len();
    let not_ready = ips(&subsets[0].not_ready_addresses).len();
    assert_eq!(ready, 503, "ready ones are kept first");
    assert_eq!(ready + not_ready, MAX_CAPACITY);
    assert_eq!(
        ep.metadata.annotations.as_ref().expect("a")[OVER_CAPACITY_ANNOTATION],
        "truncated"
    );
}

#[test]
fn only_content_changes_need_a_write() {
    let s = svc("web", &[("http", 80, IntOrString::Int(8080))]);
    let a = pod("a", "10.0.0.2", true);
    let desired = desired_endpoints(&s, &[&a]);
    assert!(needs_write(None, &desired));
    let mut same = desired.clone();
    same.metadata.annotations =
        Some([(TRIGGER_TIME_ANNOTATION.to_string(), "x".to_string())].into());
    assert!(!needs_write(Some(&same), &desired));
    let other = desired_endpoints(&s, &[&pod("a", "10.0.0.2", false)]);
    assert!(needs_write(Some(&other), &desired));
}

#[test]
fn services_without_selector_or_external_names_are_not_managed() {
    let mut s = svc("web", &[]);
    assert!(is_managed(&s));
    s.spec.as_mut().expect("spec").type_ = Some("ExternalName".into());
    assert!(!is_managed(&s));
    let mut s = svc("web", &[]);
    s.spec.as_mut().expect("spec").selector = None;
    assert!(!is_managed(&s));
}
