//! What every cluster starts with: the system namespaces and the `kubernetes` service.

use serde_json::json;

use crate::app::App;
use crate::error::ApiError;
use crate::machinery::meta;
use crate::registry::kinds::service;
use crate::registry::strategy;
use crate::resources;
use crate::storage::etcd::WriteOutcome;

/// Namespaces that exist from the start, as in every Kubernetes cluster.
pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

impl App {
    /// Creates what every cluster starts with: the system namespaces and the `kubernetes` service.
    pub(crate) async fn bootstrap(&self) -> Result<(), ApiError> {
        let nsr = resources::find("", "v1", "namespaces").expect("namespaces");
        for ns in SYSTEM_NAMESPACES {
            let mut obj = json!({
                "apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": ns, "uid": meta::new_uid(), "creationTimestamp": meta::now()},
                "spec": {}, "status": {},
            });
            strategy::initial_status(nsr, &mut obj);
            strategy::apply_defaults(nsr, &mut obj);
            self.storage
                .create(&self.storage.key(nsr, None, ns), &obj, None, &[])
                .await?;
        }
        let svc = service::svc_info();
        let (base, _) = self.config.service_cluster_ip_range;
        let ip = std::net::Ipv4Addr::from(u32::from(base) + 1).to_string();
        let mut obj = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kubernetes", "namespace": "default", "uid": meta::new_uid(),
                "creationTimestamp": meta::now(),
                "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"clusterIP": ip, "clusterIPs": [ip],
                "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": self.config.secure_port}]},
        });
        strategy::apply_defaults(svc, &mut obj);
        let reserve = service::reservations(self.storage.prefix(), svc, &obj);
        match self
            .storage
            .create(
                &self.storage.key(svc, Some("default"), "kubernetes"),
                &obj,
                None,
                &reserve,
            )
            .await?
        {
            // Another replica made it first; or an older cluster has it without the reservation,
            // and it stays: allocation still avoids the addresses the cache shows in use.
            WriteOutcome::Done { .. }
            | WriteOutcome::Mismatch { .. }
            | WriteOutcome::Taken { .. } => Ok(()),
        }
    }
}
