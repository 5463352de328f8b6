//! What the simulated nodes look like and how often they talk to the API server, plus the
//! parsers for the binary's `--register-with-taints` and `--node-labels` flags. No I/O.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Taint;

use crate::error::Error;
use crate::quantity;

/// The simulated nodes of one process: `count` nodes named `<name_prefix><index>` for index in
/// `first_index..first_index + count`, so several processes can hold disjoint ranges.
#[derive(Debug, Clone)]
pub struct NodesConfig {
    pub count: usize,
    /// `mainstay-node-` by default.
    pub name_prefix: String,
    pub first_index: usize,
    /// capacity = allocatable, as Kubernetes quantities.
    pub cpu: String,
    pub memory: String,
    /// kubelet's `maxPods` (110): also the admission limit for pods on a node.
    pub pods: u32,
    pub ephemeral_storage: String,
    /// Added to kubelet's own labels (`kubernetes.io/hostname`, `kubernetes.io/os`, ...).
    pub labels: BTreeMap<String, String>,
    /// Registered with the node, as kubelet's `--register-with-taints`.
    pub taints: Vec<Taint>,
    /// kubelet's `nodeLeaseDurationSeconds` (40).
    pub lease_duration_seconds: i32,
    /// How often each node renews its Lease (kubelet: 10 s, a quarter of the duration).
    pub lease_renew_interval: Duration,
    /// How often each node re-posts an unchanged status (kubelet's `nodeStatusReportFrequency`,
    /// 5 min when Leases carry the heartbeat). A status that someone else changed is restored
    /// within `NODE_STATUS_UPDATE_FREQUENCY` (10 s) instead.
    pub status_report_interval: Duration,
    /// Time a pod spends in ContainerCreating before its containers run.
    pub pod_start_delay: Duration,
    /// Writes (node, lease and pod status patches, creates, deletes) in flight at once, across
    /// all nodes of the process.
    pub write_concurrency: usize,
    /// First wait of kubelet's CrashLoopBackOff before restarting an exited container; it
    /// doubles per restart up to 5 min (kubelet: 10 s).
    pub crash_loop_backoff: Duration,
    /// Record kubelet's per-container Events (Pulled, Created, Started, Killing, BackOff).
    /// Off by default, as in kwok: at 30,000 pods they are three times the pod status writes.
    /// Node Events (Starting, NodeReady, ...) are always recorded.
    pub pod_events: bool,
    /// Register each node with a pod CIDR of its own (kubelet's `--pod-cidr`). Off: nodes
    /// register without one and take the CIDR the node IPAM controller assigns
    /// (`--allocate-node-cidrs`); until then their pods wait for an address.
    pub register_pod_cidr: bool,
}

/// kubelet's `nodeStatusUpdateFrequency`: how soon a node status changed by someone else (the
/// node lifecycle controller marking it `Unknown`) is put right.
pub const NODE_STATUS_UPDATE_FREQUENCY: Duration = Duration::from_secs(10);

/// The most a CrashLoopBackOff waits (kubelet's `MaxContainerBackOff`).
pub const MAX_CONTAINER_BACKOFF: Duration = Duration::from_secs(300);

impl Default for NodesConfig {
    fn default() -> Self {
        NodesConfig {
            count: 1,
            name_prefix: "mainstay-node-".to_string(),
            first_index: 0,
            cpu: "8".to_string(),
            memory: "32Gi".to_string(),
            pods: 110,
            ephemeral_storage: "100Gi".to_string(),
            labels: BTreeMap::new(),
            taints: Vec::new(),
            lease_duration_seconds: 40,
            lease_renew_interval: Duration::from_secs(10),
            status_report_interval: Duration::from_secs(300),
            pod_start_delay: Duration::from_millis(100),
            write_concurrency: 32,
            crash_loop_backoff: Duration::from_secs(10),
            pod_events: false,
            register_pod_cidr: true,
        }
    }
}

impl NodesConfig {
    /// The node names this configuration holds, in index order.
    pub fn node_name(&self, index: usize) -> String {
        format!("{}{}", self.name_prefix, index)
    }

    /// Checks what the API server would otherwise reject one node at a time.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |m: String| Err(Error::Config(m));
        if self.first_index.checked_add(self.count).is_none() {
            return bad("first_index + count overflows".into());
        }
        if self.write_concurrency == 0 {
            return bad("write_concurrency must be at least 1".into());
        }
        if self.lease_duration_seconds <= 0 {
            return bad("lease_duration_seconds must be positive".into());
        }
        if self.lease_renew_interval.is_zero() || self.status_report_interval.is_zero() {
            return bad("lease_renew_interval and status_report_interval must be positive".into());
        }
        for (what, q) in [
            ("cpu", &self.cpu),
            ("memory", &self.memory),
            ("ephemeral_storage", &self.ephemeral_storage),
        ] {
            if quantity::parse_nanos(q).is_none() {
                return bad(format!("{what} {q:?} is not a Kubernetes quantity"));
            }
        }
        // The longest name must still be a DNS subdomain label set (253 characters).
        let last = self.node_name(self.first_index + self.count.saturating_sub(1));
        if !is_dns1123_subdomain(&last) {
            return bad(format!(
                "node name {last:?} is not a DNS-1123 subdomain (check name_prefix)"
            ));
        }
        for (k, v) in &self.labels {
            check_label(k, v).map_err(Error::Config)?;
        }
        Ok(())
    }
}

/// Parses one taint in kubectl's and kubelet's `key[=value]:Effect` form, e.g.
/// `kwok.x-k8s.io/node=fake:NoSchedule`.
pub fn parse_taint(s: &str) -> Result<Taint, Error> {
    let err = |reason: &str| Error::Taint {
        taint: s.to_string(),
        reason: reason.to_string(),
    };
    let (kv, effect) = s
        .rsplit_once(':')
        .ok_or_else(|| err("expected key[=value]:Effect"))?;
    if !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
        return Err(err(
            "effect must be NoSchedule, PreferNoSchedule or NoExecute",
        ));
    }
    let (key, value) = match kv.split_once('=') {
        Some((k, v)) => (k, Some(v)),
        None => (kv, None),
    };
    check_label(key, value.unwrap_or("")).map_err(|r| err(&r))?;
    Ok(Taint {
        key: key.to_string(),
        value: value.filter(|v| !v.is_empty()).map(str::to_string),
        effect: effect.to_string(),
        time_added: None,
    })
}

/// Parses kubelet's `--node-labels` form, `a=b,c=d` (an empty string is no labels).
pub fn parse_labels(s: &str) -> Result<BTreeMap<String, String>, Error> {
    let mut out = BTreeMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let err = |reason: String| Error::Labels {
            labels: s.to_string(),
            reason,
        };
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| err(format!("{part:?} is not key=value")))?;
        check_label(k, v).map_err(err)?;
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

/// A label (or taint) key: an optional DNS subdomain prefix and `/`, then a name of at most 63
/// characters; a value of at most 63 of the same characters, or empty.
fn check_label(key: &str, value: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        if !is_dns1123_subdomain(p) {
            return Err(format!("key prefix {p:?} is not a DNS-1123 subdomain"));
        }
    }
    if name.is_empty() || !is_label_name(name) {
        return Err(format!("key {key:?} is not a qualified name"));
    }
    if !value.is_empty() && !is_label_name(value) {
        return Err(format!("value {value:?} is not a valid label value"));
    }
    Ok(())
}

/// `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`, at most 63 characters.
fn is_label_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            let b = l.as_bytes();
            !b.is_empty()
                && b.len() <= 63
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taint_forms() {
        let t = parse_taint("kwok.x-k8s.io/node=fake:NoSchedule").unwrap();
        assert_eq!(t.key, "kwok.x-k8s.io/node");
        assert_eq!(t.value.as_deref(), Some("fake"));
        assert_eq!(t.effect, "NoSchedule");
        let t = parse_taint("dedicated:NoExecute").unwrap();
        assert_eq!((t.key.as_str(), t.value), ("dedicated", None));
        let t = parse_taint("a=:PreferNoSchedule").unwrap();
        assert_eq!(t.value, None);
        for bad in [
            "",
            "key=value",
            "key=value:Sometimes",
            ":NoSchedule",
            "=v:NoSchedule",
            "Bad_Prefix/k=v:NoSchedule",
            "k=v v:NoSchedule",
        ] {
            assert!(parse_taint(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn labels_forms() {
        let l = parse_labels("a=b, example.com/zone=z1,empty=").unwrap();
        assert_eq!(l.len(), 3);
        assert_eq!(l["a"], "b");
        assert_eq!(l["example.com/zone"], "z1");
        assert_eq!(l["empty"], "");
        assert!(parse_labels("").unwrap().is_empty());
        assert!(parse_labels("a").is_err());
        assert!(parse_labels("a=b,-x=y").is_err());
        assert!(parse_labels(&format!("k={}", "v".repeat(64))).is_err());
    }

    #[test]
    fn validation_catches_what_the_api_server_would_reject() {
        assert!(NodesConfig::default().validate().is_ok());
        let c = NodesConfig {
            name_prefix: "Node_".into(),
            ..NodesConfig::default()
        };
        assert!(c.validate().is_err());
        let c = NodesConfig {
            memory: "lots".into(),
            ..NodesConfig::default()
        };
        assert!(c.validate().is_err());
        let c = NodesConfig {
            write_concurrency: 0,
            ..NodesConfig::default()
        };
        assert!(c.validate().is_err());
        let c = NodesConfig {
            first_index: usize::MAX,
            count: 2,
            ..NodesConfig::default()
        };
        assert!(c.validate().is_err());
    }
}
