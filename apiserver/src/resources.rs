//! The resources this apiserver serves: one static descriptor per resource, from which routing,
//! storage keys, discovery and OpenAPI are all derived.

/// A subresource served under `/<resource>/<name>/<subresource>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subresource {
    /// `status`: GET / PUT / PATCH change only `.status`.
    Status,
    /// `scale`: an `autoscaling/v1` `Scale` view of `.spec.replicas`.
    Scale,
    /// `binding` (pods only): POST a `Binding` to set `.spec.nodeName`.
    Binding,
    /// `eviction` (pods only): POST a `policy/v1` `Eviction` to delete the pod within its
    /// PodDisruptionBudget.
    Eviction,
}

impl Subresource {
    pub fn name(self) -> &'static str {
        match self {
            Subresource::Status => "status",
            Subresource::Scale => "scale",
            Subresource::Binding => "binding",
            Subresource::Eviction => "eviction",
        }
    }
}

/// Everything the apiserver needs to know about one resource.
#[derive(Debug)]
pub struct ResourceInfo {
    /// API group; `""` is the core ("legacy") group served under `/api`.
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    /// The URL segment and the storage key segment (`/registry/<plural>/...`), as kube-apiserver's.
    pub plural: &'static str,
    pub singular: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    pub subresources: &'static [Subresource],
    /// Key under the etcd prefix where kube-apiserver keeps it, when it differs from `plural`
    /// (services live under `services/specs`, events under `events`).
    pub storage_segment: &'static str,
}

/// Verbs every resource here supports (kube-apiserver's full set for a stored resource).
pub const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// Namespaces have no deletecollection in kube-apiserver (deleting one deletes its contents).
const NAMESPACE_VERBS: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];

impl ResourceInfo {
    /// Core v1 services: the resource that holds cluster IPs and node ports.
    pub fn is_service(&self) -> bool {
        self.group.is_empty() && self.plural == "services"
    }

    /// The verbs discovery advertises and the handlers accept.
    pub fn verbs(&self) -> &'static [&'static str] {
        if self.plural == "namespaces" {
            NAMESPACE_VERBS
        } else {
            VERBS
        }
    }

    /// `v1` for the core group, `apps/v1` otherwise.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub fn has(&self, sub: Subresource) -> bool {
        self.subresources.contains(&sub)
    }
}

pub const RESOURCES: &[ResourceInfo] = &[
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "Namespace",
        plural: "namespaces",
        singular: "namespace",
        namespaced: false,
        short_names: &["ns"],
        categories: &[],
        subresources: &[Subresource::Status],
        storage_segment: "namespaces",
    },
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "Node",
        plural: "nodes",
        singular: "node",
        namespaced: false,
        short_names: &["no"],
        categories: &[],
        subresources: &[Subresource::Status],
        storage_segment: "minions",
    },
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "Pod",
        plural: "pods",
        singular: "pod",
        namespaced: true,
        short_names: &["po"],
        categories: &["all"],
        subresources: &[
            Subresource::Status,
            Subresource::Binding,
            Subresource::Eviction,
        ],
        storage_segment: "pods",
    },
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "Service",
        plural: "services",
        singular: "service",
        namespaced: true,
        short_names: &["svc"],
        categories: &["all"],
        subresources: &[Subresource::Status],
        storage_segment: "services/specs",
    },
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "Endpoints",
        plural: "endpoints",
        singular: "endpoints",
        namespaced: true,
        short_names: &["ep"],
        categories: &[],
        subresources: &[],
        storage_segment: "services/endpoints",
    },
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "ConfigMap",
        plural: "configmaps",
        singular: "configmap",
        namespaced: true,
        short_names: &["cm"],
        categories: &[],
        subresources: &[],
        storage_segment: "configmaps",
    },
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "Secret",
        plural: "secrets",
        singular: "secret",
        namespaced: true,
        short_names: &[],
        categories: &[],
        subresources: &[],
        storage_segment: "secrets",
    },
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "Event",
        plural: "events",
        singular: "event",
        namespaced: true,
        short_names: &["ev"],
        categories: &[],
        subresources: &[],
        storage_segment: "events",
    },
    ResourceInfo {
        group: "apps",
        version: "v1",
        kind: "Deployment",
        plural: "deployments",
        singular: "deployment",
        namespaced: true,
        short_names: &["deploy"],
        categories: &["all"],
        subresources: &[Subresource::Status, Subresource::Scale],
        storage_segment: "deployments",
    },
    ResourceInfo {
        group: "apps",
        version: "v1",
        kind: "ReplicaSet",
        plural: "replicasets",
        singular: "replicaset",
        namespaced: true,
        short_names: &["rs"],
        categories: &["all"],
        subresources: &[Subresource::Status, Subresource::Scale],
        storage_segment: "replicasets",
    },
    ResourceInfo {
        group: "coordination.k8s.io",
        version: "v1",
        kind: "Lease",
        plural: "leases",
        singular: "lease",
        namespaced: true,
        short_names: &[],
        categories: &[],
        subresources: &[],
        storage_segment: "leases",
    },
    ResourceInfo {
        group: "batch",
        version: "v1",
        kind: "Job",
        plural: "jobs",
        singular: "job",
        namespaced: true,
        short_names: &[],
        categories: &["all"],
        subresources: &[Subresource::Status],
        storage_segment: "jobs",
    },
    ResourceInfo {
        group: "batch",
        version: "v1",
        kind: "CronJob",
        plural: "cronjobs",
        singular: "cronjob",
        namespaced: true,
        short_names: &["cj"],
        categories: &["all"],
        subresources: &[Subresource::Status],
        storage_segment: "cronjobs",
    },
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "ServiceAccount",
        plural: "serviceaccounts",
        singular: "serviceaccount",
        namespaced: true,
        short_names: &["sa"],
        categories: &[],
        subresources: &[],
        storage_segment: "serviceaccounts",
    },
    ResourceInfo {
        group: "discovery.k8s.io",
        version: "v1",
        kind: "EndpointSlice",
        plural: "endpointslices",
        singular: "endpointslice",
        namespaced: true,
        short_names: &[],
        categories: &[],
        subresources: &[],
        storage_segment: "endpointslices",
    },
    ResourceInfo {
        group: "policy",
        version: "v1",
        kind: "PodDisruptionBudget",
        plural: "poddisruptionbudgets",
        singular: "poddisruptionbudget",
        namespaced: true,
        short_names: &["pdb"],
        categories: &[],
        subresources: &[Subresource::Status],
        storage_segment: "poddisruptionbudgets",
    },
    ResourceInfo {
        group: "apps",
        version: "v1",
        kind: "DaemonSet",
        plural: "daemonsets",
        singular: "daemonset",
        namespaced: true,
        short_names: &["ds"],
        categories: &["all"],
        subresources: &[Subresource::Status],
        storage_segment: "daemonsets",
    },
    ResourceInfo {
        group: "apps",
        version: "v1",
        kind: "StatefulSet",
        plural: "statefulsets",
        singular: "statefulset",
        namespaced: true,
        short_names: &["sts"],
        categories: &["all"],
        subresources: &[Subresource::Status, Subresource::Scale],
        storage_segment: "statefulsets",
    },
    ResourceInfo {
        group: "apps",
        version: "v1",
        kind: "ControllerRevision",
        plural: "controllerrevisions",
        singular: "controllerrevision",
        namespaced: true,
        short_names: &[],
        categories: &[],
        subresources: &[],
        storage_segment: "controllerrevisions",
    },
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "ReplicationController",
        plural: "replicationcontrollers",
        singular: "replicationcontroller",
        namespaced: true,
        short_names: &["rc"],
        categories: &["all"],
        subresources: &[Subresource::Status, Subresource::Scale],
        // kube-apiserver keeps replication controllers under "controllers".
        storage_segment: "controllers",
    },
];

/// The resource served at `group`/`version` under `plural`.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static ResourceInfo> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The resource whose objects are of `kind` in `api_version` (`v1`, `apps/v1`).
#[allow(dead_code)] // unused since the apiserver modules became private; to use or delete
pub fn find_kind(api_version: &str, kind: &str) -> Option<&'static ResourceInfo> {
    RESOURCES
        .iter()
        .find(|r| r.kind == kind && r.api_version() == api_version)
}

/// kube-apiserver's discovery order of the groups (its `apiVersionPriorities`, highest first);
/// a group not listed here comes after these, in the order of [`RESOURCES`].
const GROUP_ORDER: &[&str] = &[
    "",
    "apps",
    "events.k8s.io",
    "autoscaling",
    "batch",
    "policy",
    "coordination.k8s.io",
    "discovery.k8s.io",
];

/// Group-versions served, core first, in discovery order.
pub fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&'static str, &'static str)> = Vec::new();
    for r in RESOURCES {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    let rank = |g: &str| {
        GROUP_ORDER
            .iter()
            .position(|o| *o == g)
            .unwrap_or(GROUP_ORDER.len())
    };
    out.sort_by_key(|(g, _)| rank(g));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_kinds_have_kubes_names_categories_and_subresources() {
        use Subresource::{Scale, Status};
        for (group, plural, kind, short, all, subs, segment) in [
            ("batch", "jobs", "Job", &[][..], true, &[Status][..], "jobs"),
            (
                "batch",
                "cronjobs",
                "CronJob",
                &["cj"],
                true,
                &[Status],
                "cronjobs",
            ),
            (
                "",
                "serviceaccounts",
                "ServiceAccount",
                &["sa"],
                false,
                &[],
                "serviceaccounts",
            ),
            (
                "discovery.k8s.io",
                "endpointslices",
                "EndpointSlice",
                &[],
                false,
                &[],
                "endpointslices",
            ),
            (
                "apps",
                "daemonsets",
                "DaemonSet",
                &["ds"],
                true,
                &[Status],
                "daemonsets",
            ),
            (
                "apps",
                "statefulsets",
                "StatefulSet",
                &["sts"],
                true,
                &[Status, Scale],
                "statefulsets",
            ),
            (
                "apps",
                "controllerrevisions",
                "ControllerRevision",
                &[],
                false,
                &[],
                "controllerrevisions",
            ),
            (
                "",
                "replicationcontrollers",
                "ReplicationController",
                &["rc"],
                true,
                &[Status, Scale],
                "controllers",
            ),
        ] {
            let r = find(group, "v1", plural).unwrap_or_else(|| panic!("{plural} served"));
            assert_eq!(r.kind, kind);
            assert!(r.namespaced, "{plural}");
            assert_eq!(r.short_names, short, "{plural}");
            assert_eq!(r.categories == ["all"], all, "{plural}");
            assert_eq!(r.subresources, subs, "{plural}");
            assert_eq!(r.storage_segment, segment, "{plural}");
        }
    }

    #[test]
    fn groups_come_in_kubes_priority_order() {
        let groups: Vec<&str> = group_versions().iter().map(|(g, _)| *g).collect();
        let pos = |g: &str| groups.iter().position(|x| *x == g).unwrap();
        assert_eq!(pos(""), 0);
        assert!(pos("apps") < pos("batch"));
        assert!(pos("batch") < pos("coordination.k8s.io"));
        assert!(pos("coordination.k8s.io") < pos("discovery.k8s.io"));
    }
}
