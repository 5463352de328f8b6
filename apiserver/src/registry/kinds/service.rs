//! Services: a cluster IP from `--service-cluster-ip-range` and node ports from 30000-32767,
//! the reservation keys that make them exclusive, and what an update keeps of them (kube's
//! `pkg/registry/core/service` allocators and `patchAllocatedValues`).

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::{json, Value};

use crate::app::App;
use crate::error::{ApiError, Cause};
use crate::resources::{self, ResourceInfo};

/// kube's default `--service-node-port-range`.
pub const NODE_PORTS: std::ops::RangeInclusive<u64> = 30000..=32767;

pub(crate) fn svc_info() -> &'static ResourceInfo {
    resources::find("", "v1", "services").expect("services is served")
}

fn svc_name(svc: &Value) -> &str {
    svc.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// The reservation keys an object holds while it exists: a service's cluster IPs and node
/// ports, `<prefix>/ranges/serviceips/<ip>` and `<prefix>/ranges/servicenodeports/<port>`.
/// They are written and removed in the same transaction as the object, so replicas that
/// allocate at the same time cannot hand out one address twice (kube keeps a bitmap object
/// under `ranges/` for the same purpose).
pub fn reservations(prefix: &str, r: &ResourceInfo, object: &Value) -> Vec<String> {
    if !r.is_service() {
        return Vec::new();
    }
    let mut keys = Vec::new();
    let ips: Vec<&str> = match object.pointer("/spec/clusterIPs").and_then(Value::as_array) {
        Some(ips) => ips.iter().filter_map(Value::as_str).collect(),
        None => object
            .pointer("/spec/clusterIP")
            .and_then(Value::as_str)
            .into_iter()
            .collect(),
    };
    for ip in ips {
        if !ip.is_empty() && ip != "None" {
            keys.push(format!("{prefix}/ranges/serviceips/{ip}"));
        }
    }
    let ports = object.pointer("/spec/ports").and_then(Value::as_array);
    for port in ports.into_iter().flatten() {
        if let Some(n) = port.get("nodePort").and_then(Value::as_u64) {
            keys.push(format!("{prefix}/ranges/servicenodeports/{n}"));
        }
    }
    keys.sort();
    keys.dedup();
    keys
}

/// A free offset in `0..size`, or `None` only when every one is used: a few random probes
/// (spreading concurrent allocators apart, as kube's random-scan allocator does), then a scan
/// from a random start, so a nearly full range still yields its last free slot.
pub fn free_slot(size: u64, used: impl Fn(u64) -> bool) -> Option<u64> {
    if size == 0 {
        return None;
    }
    for _ in 0..32 {
        let off = rand::random::<u64>() % size;
        if !used(off) {
            return Some(off);
        }
    }
    let start = rand::random::<u64>() % size;
    (0..size)
        .map(|i| (start + i) % size)
        .find(|&off| !used(off))
}

impl App {
    /// Every service this replica's watch cache holds (none without a cache).
    fn cached_services(&self) -> Vec<Arc<Value>> {
        let svc = svc_info();
        match self.cache(svc) {
            Some(c) => c.snapshot(&self.storage.resource_prefix(svc)).0,
            None => Vec::new(),
        }
    }

    /// Gives a service what it did not ask for: a cluster IP from the service range and node
    /// ports from 30000-32767 (kube's default `--service-node-port-range`), avoiding those this
    /// replica's cache shows in use and the reservations in `taken` (found held by an earlier
    /// attempt). What it asked for is checked against the ranges. The reservation keys written
    /// with the service (`Storage::reservations`) are what makes an address exclusive.
    pub fn allocate_service_addresses(
        &self,
        svc: &mut Value,
        taken: &[String],
    ) -> Result<(), ApiError> {
        let cached = self.cached_services();
        self.allocate_node_ports(svc, &cached, taken)?;
        self.allocate_cluster_ip(svc, &cached, taken)
    }

    fn allocate_cluster_ip(
        &self,
        svc: &mut Value,
        cached: &[Arc<Value>],
        taken: &[String],
    ) -> Result<(), ApiError> {
        let requested = svc
            .pointer("/spec/clusterIP")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if requested == "None"
            || svc.pointer("/spec/type").and_then(Value::as_str) == Some("ExternalName")
        {
            if requested == "None" {
                svc["spec"]["clusterIPs"] = json!(["None"]);
            }
            return Ok(());
        }
        let (base, bits) = self.config.service_cluster_ip_range;
        let size = 1u32 << (32 - bits as u32);
        let base = u32::from(base);
        if !requested.is_empty() {
            let in_range = requested
                .parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| (u32::from(ip).wrapping_sub(base)) < size);
            if !in_range {
                return Err(ApiError::invalid(
                    svc_info(),
                    svc_name(svc),
                    vec![Cause {
                        reason: "FieldValueInvalid",
                        field: "spec.clusterIPs".into(),
                        message: format!(
                            "Invalid value: []string{{{requested:?}}}: failed to allocate IP {requested}: provided IP is not in the valid range. The range of valid IPs is {}/{bits}",
                            std::net::Ipv4Addr::from(base)
                        ),
                    }],
                ));
            }
            svc["spec"]["clusterIPs"] = json!([requested]);
            return Ok(());
        }
        let mut used: HashSet<String> = cached
            .iter()
            .filter_map(|s| {
                s.pointer("/spec/clusterIP")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .collect();
        used.extend(
            taken
                .iter()
                .filter_map(|k| k.rsplit_once("/serviceips/").map(|(_, ip)| ip.to_string())),
        );
        // .1 is the kubernetes service's; skip the network and broadcast addresses.
        let ip_at = |off: u64| std::net::Ipv4Addr::from(base + 2 + off as u32).to_string();
        let off = free_slot(u64::from(size.saturating_sub(3)), |off| {
            used.contains(&ip_at(off))
        })
        .ok_or_else(|| ApiError::internal("failed to allocate a serviceIP: range is full"))?;
        let ip = ip_at(off);
        svc["spec"]["clusterIP"] = json!(ip);
        svc["spec"]["clusterIPs"] = json!([ip]);
        Ok(())
    }

    /// A NodePort or LoadBalancer service's ports without a nodePort get a free one.
    fn allocate_node_ports(
        &self,
        svc: &mut Value,
        cached: &[Arc<Value>],
        taken: &[String],
    ) -> Result<(), ApiError> {
        let typ = svc.pointer("/spec/type").and_then(Value::as_str);
        if !matches!(typ, Some("NodePort" | "LoadBalancer")) {
            return Ok(());
        }
        let name = svc_name(svc).to_string();
        let mut used: HashSet<u64> = cached
            .iter()
            .filter_map(|s| s.pointer("/spec/ports").and_then(Value::as_array))
            .flatten()
            .filter_map(|p| p.get("nodePort").and_then(Value::as_u64))
            .collect();
        used.extend(taken.iter().filter_map(|k| {
            k.rsplit_once("/servicenodeports/")
                .and_then(|(_, p)| p.parse::<u64>().ok())
        }));
        let Some(ports) = svc.pointer_mut("/spec/ports").and_then(Value::as_array_mut) else {
            return Ok(());
        };
        for (i, p) in ports.iter().enumerate() {
            if let Some(n) = p.get("nodePort").filter(|n| !n.is_null()) {
                if !n.as_u64().is_some_and(|n| NODE_PORTS.contains(&n)) {
                    return Err(ApiError::invalid(
                        svc_info(),
                        &name,
                        vec![Cause::invalid(
                            format!("spec.ports[{i}].nodePort"),
                            n,
                            &format!(
                                "provided port is not in the valid range. The range of valid ports is {}-{}",
                                NODE_PORTS.start(),
                                NODE_PORTS.end()
                            ),
                        )],
                    ));
                }
                used.insert(n.as_u64().unwrap_or(0));
            }
        }
        for p in ports.iter_mut().filter(|p| p.is_object()) {
            if p.get("nodePort").is_some_and(|n| !n.is_null()) {
                continue;
            }
            let span = NODE_PORTS.end() - NODE_PORTS.start() + 1;
            let port = free_slot(span, |off| used.contains(&(NODE_PORTS.start() + off)))
                .map(|off| NODE_PORTS.start() + off)
                .ok_or_else(|| {
                    ApiError::internal("failed to allocate a nodePort: range is full")
                })?;
            used.insert(port);
            p["nodePort"] = json!(port);
        }
        Ok(())
    }
}

/// The 422 for an address another object holds, worded as kube's allocators word it.
pub fn reservation_taken(r: &ResourceInfo, name: &str, reservation: &str, obj: &Value) -> ApiError {
    let cause = if reservation.contains("/serviceips/") {
        let ips: Vec<String> = obj
            .pointer("/spec/clusterIPs")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(|s| format!("{s:?}"))
                    .collect()
            })
            .unwrap_or_default();
        let ip = reservation.rsplit('/').next().unwrap_or("");
        Cause {
            reason: "FieldValueInvalid",
            field: "spec.clusterIPs".into(),
            message: format!(
                "Invalid value: []string{{{}}}: failed to allocate IP {ip}: provided IP is already allocated",
                ips.join(", ")
            ),
        }
    } else {
        let port: u64 = reservation
            .rsplit('/')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        let index = obj
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .and_then(|ps| {
                ps.iter()
                    .position(|p| p.get("nodePort").and_then(Value::as_u64) == Some(port))
            })
            .unwrap_or(0);
        Cause::invalid(
            format!("spec.ports[{index}].nodePort"),
            &json!(port),
            "provided port is already allocated",
        )
    };
    ApiError::invalid(r, name, vec![cause])
}

/// kube's `patchAllocatedValues`: an update that leaves out a service's cluster IP, or a node
/// port of a port that keeps its number and protocol, keeps the one allocated.
pub fn keep_allocated_values(old: &Value, new: &mut Value) {
    let typ = |s: &Value| {
        s.pointer("/spec/type")
            .and_then(Value::as_str)
            .unwrap_or("ClusterIP")
            .to_string()
    };
    let (old_type, new_type) = (typ(old), typ(new));
    let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    if old_type != "ExternalName" && new_type != "ExternalName" {
        let unset = spec
            .get("clusterIP")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty);
        if unset {
            for k in ["clusterIP", "clusterIPs"] {
                if let Some(v) = old.pointer(&format!("/spec/{k}")) {
                    spec.insert(k.into(), v.clone());
                }
            }
        }
    }
    let node_ports = |t: &str| matches!(t, "NodePort" | "LoadBalancer");
    if !(node_ports(&old_type) && node_ports(&new_type)) {
        return;
    }
    let protocol = |p: &Value| {
        p.get("protocol")
            .and_then(Value::as_str)
            .unwrap_or("TCP")
            .to_string()
    };
    let old_ports = old.pointer("/spec/ports").and_then(Value::as_array);
    let Some(new_ports) = spec.get_mut("ports").and_then(Value::as_array_mut) else {
        return;
    };
    for p in new_ports.iter_mut().filter(|p| p.is_object()) {
        if p.get("nodePort")
            .and_then(Value::as_u64)
            .is_some_and(|n| n != 0)
        {
            continue;
        }
        let was = old_ports
            .into_iter()
            .flatten()
            .find(|o| o.get("port") == p.get("port") && protocol(o) == protocol(p));
        if let Some(n) = was.and_then(|o| o.get("nodePort")).filter(|n| n.is_u64()) {
            p["nodePort"] = n.clone();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nearly_full_range_yields_its_last_free_slot() {
        // The node-port range with one port left: random probes alone (what allocation did
        // before) almost never find it.
        let span = NODE_PORTS.end() - NODE_PORTS.start() + 1;
        for free in [0, 1, span / 2, span - 1] {
            for _ in 0..20 {
                assert_eq!(free_slot(span, |off| off != free), Some(free));
            }
        }
        assert_eq!(free_slot(span, |_| true), None);
        assert_eq!(free_slot(0, |_| false), None);
        // Probes spread over the range when it is empty.
        let picks: HashSet<u64> = (0..64).filter_map(|_| free_slot(span, |_| false)).collect();
        assert!(picks.len() > 32, "{picks:?}");
    }

    #[test]
    fn an_update_without_addresses_keeps_the_allocated_ones() {
        let old = json!({"spec": {"type": "NodePort", "clusterIP": "10.96.0.7",
            "clusterIPs": ["10.96.0.7"],
            "ports": [{"port": 80, "nodePort": 30001}, {"port": 53, "protocol": "UDP", "nodePort": 30002}]}});
        let mut new = json!({"spec": {"type": "NodePort",
            "ports": [{"port": 80}, {"port": 53, "protocol": "TCP"}, {"port": 90, "nodePort": 30009}]}});
        keep_allocated_values(&old, &mut new);
        assert_eq!(new["spec"]["clusterIP"], "10.96.0.7");
        assert_eq!(new["spec"]["clusterIPs"], json!(["10.96.0.7"]));
        assert_eq!(new["spec"]["ports"][0]["nodePort"], 30001);
        // Same number, other protocol: not the same port.
        assert!(new["spec"]["ports"][1].get("nodePort").is_none());
        assert_eq!(new["spec"]["ports"][2]["nodePort"], 30009);

        // Turned ClusterIP: node ports are not carried over; the address is.
        let mut to_cluster_ip = json!({"spec": {"type": "ClusterIP", "ports": [{"port": 80}]}});
        keep_allocated_values(&old, &mut to_cluster_ip);
        assert_eq!(to_cluster_ip["spec"]["clusterIP"], "10.96.0.7");
        assert!(to_cluster_ip["spec"]["ports"][0].get("nodePort").is_none());

        // A new address asked for is the client's to ask (the reservation decides).
        let mut moved = json!({"spec": {"clusterIP": "10.96.0.9"}});
        keep_allocated_values(&old, &mut moved);
        assert_eq!(moved["spec"]["clusterIP"], "10.96.0.9");
        assert!(moved["spec"].get("clusterIPs").is_none());
    }
}
