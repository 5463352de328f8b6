//! The settings of the node controllers (node lifecycle, taint eviction, node IPAM, pod GC),
//! with kube-controller-manager 1.32's flag defaults.

use std::time::Duration;

/// kube's `NodeLifecycleControllerConfiguration`, `NodeIPAMControllerConfiguration` and
/// `PodGCControllerConfiguration` fields this manager reads.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeControllersConfig {
    /// `--node-monitor-period` (5 s): how often node health is checked.
    pub node_monitor_period: Duration,
    /// `--node-monitor-grace-period` (50 s from 1.32): silence after which a node is Unknown.
    pub node_monitor_grace_period: Duration,
    /// `--node-startup-grace-period` (1 min): the same for a node that never posted status.
    pub node_startup_grace_period: Duration,
    /// `--node-eviction-rate` (0.1 nodes/s): NoExecute taints added per second in a healthy
    /// zone.
    pub node_eviction_rate: f64,
    /// `--secondary-node-eviction-rate` (0.01): the same in a partially disrupted zone larger
    /// than `large_cluster_size_threshold`.
    pub secondary_node_eviction_rate: f64,
    /// `--large-cluster-size-threshold` (50).
    pub large_cluster_size_threshold: usize,
    /// `--unhealthy-zone-threshold` (0.55).
    pub unhealthy_zone_threshold: f64,
    /// `--allocate-node-cidrs` (false): the node IPAM controller gives nodes pod CIDRs.
    pub allocate_node_cidrs: bool,
    /// `--cluster-cidr`: the range pod CIDRs come from.
    pub cluster_cidr: Option<String>,
    /// `--node-cidr-mask-size-ipv4` / `--node-cidr-mask-size` (24).
    pub node_cidr_mask_size_ipv4: u8,
    /// `--terminated-pod-gc-threshold` (12500; 0 or less turns the terminated-pod sweep off).
    pub terminated_pod_gc_threshold: i64,
}

impl Default for NodeControllersConfig {
    fn default() -> Self {
        NodeControllersConfig {
            node_monitor_period: Duration::from_secs(5),
            node_monitor_grace_period: Duration::from_secs(50),
            node_startup_grace_period: Duration::from_secs(60),
            node_eviction_rate: 0.1,
            secondary_node_eviction_rate: 0.01,
            large_cluster_size_threshold: 50,
            unhealthy_zone_threshold: 0.55,
            allocate_node_cidrs: false,
            cluster_cidr: None,
            node_cidr_mask_size_ipv4: 24,
            terminated_pod_gc_threshold: 12_500,
        }
    }
}

// The rates and thresholds are finite by construction (flags parse them, and `validate`
// refuses NaN), so equality is an equivalence.
impl Eq for NodeControllersConfig {}

impl NodeControllersConfig {
    /// Refuses settings kube refuses or that would make no sense.
    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in [
            ("--node-eviction-rate", self.node_eviction_rate),
            (
                "--secondary-node-eviction-rate",
                self.secondary_node_eviction_rate,
            ),
            ("--unhealthy-zone-threshold", self.unhealthy_zone_threshold),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(format!("{name} must be a non-negative number, got {v}"));
            }
        }
        if self.node_monitor_period.is_zero() {
            return Err("--node-monitor-period must be positive".into());
        }
        if self.allocate_node_cidrs && self.cluster_cidr.as_deref().unwrap_or("").is_empty() {
            return Err("--cluster-cidr is required when --allocate-node-cidrs is true".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_kube_1_32s() {
        let c = NodeControllersConfig::default();
        assert_eq!(c.node_monitor_period, Duration::from_secs(5));
        assert_eq!(c.node_monitor_grace_period, Duration::from_secs(50));
        assert_eq!(c.node_startup_grace_period, Duration::from_secs(60));
        assert_eq!(c.node_eviction_rate, 0.1);
        assert_eq!(c.secondary_node_eviction_rate, 0.01);
        assert_eq!(c.large_cluster_size_threshold, 50);
        assert_eq!(c.unhealthy_zone_threshold, 0.55);
        assert!(!c.allocate_node_cidrs);
        assert_eq!(c.node_cidr_mask_size_ipv4, 24);
        assert_eq!(c.terminated_pod_gc_threshold, 12_500);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn bad_settings_are_refused() {
        let c = NodeControllersConfig {
            node_eviction_rate: f64::NAN,
            ..Default::default()
        };
        assert!(c.validate().is_err());
        let c = NodeControllersConfig {
            allocate_node_cidrs: true,
            ..Default::default()
        };
        assert_eq!(
            c.validate().unwrap_err(),
            "--cluster-cidr is required when --allocate-node-cidrs is true"
        );
    }
}
