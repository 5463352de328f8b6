//! What discovery says the collector works with (kube's `GetDeletableResources` and its REST
//! mapper): every preferred-version resource that supports `list`, `watch` and `delete` is
//! monitored (Events excepted, kube's `DefaultIgnoredResources`), and every version of every
//! kind maps `apiVersion` + `kind` (an owner reference's coordinates) to its resource and scope.
//! Pure: the discovery calls are made in `mod.rs`.

use std::collections::{BTreeMap, HashMap};

use kube::discovery::ApiResource;

/// A resource and its scope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mapping {
    pub resource: ApiResource,
    pub namespaced: bool,
}

/// One resource as discovery listed it.
#[derive(Clone, Debug)]
pub struct Found {
    pub resource: ApiResource,
    pub namespaced: bool,
    pub verbs: Vec<String>,
    /// Listed in its group's preferred version.
    pub preferred: bool,
}

/// kube's `DefaultIgnoredResources`: Events in `v1` and `events.k8s.io`.
pub fn is_ignored(group: &str, plural: &str) -> bool {
    plural == "events" && (group.is_empty() || group == "events.k8s.io")
}

/// The key a monitored resource is known by: `<apiVersion>/<plural>`.
pub fn key(resource: &ApiResource) -> String {
    format!("{}/{}", resource.api_version, resource.plural)
}

/// The mapper and the set of resources to monitor.
#[derive(Clone, Debug, Default)]
pub struct Resources {
    by_kind: HashMap<(String, String), Mapping>,
    monitored: BTreeMap<String, Mapping>,
}

impl Resources {
    pub fn from_found(found: impl IntoIterator<Item = Found>) -> Resources {
        let mut r = Resources::default();
        for f in found {
            let mapping = Mapping {
                resource: f.resource.clone(),
                namespaced: f.namespaced,
            };
            let deletable = ["list", "watch", "delete"]
                .iter()
                .all(|v| f.verbs.iter().any(|have| have == v));
            if f.preferred && deletable && !is_ignored(&f.resource.group, &f.resource.plural) {
                r.monitored.insert(key(&f.resource), mapping.clone());
            }
            r.by_kind.insert(
                (f.resource.api_version.clone(), f.resource.kind.clone()),
                mapping,
            );
        }
        r
    }

    /// The resource an owner reference's `apiVersion` and `kind` name.
    pub fn mapping(&self, api_version: &str, kind: &str) -> Option<&Mapping> {
        self.by_kind
            .get(&(api_version.to_string(), kind.to_string()))
    }

    /// The resources to watch, by key.
    pub fn monitored(&self) -> &BTreeMap<String, Mapping> {
        &self.monitored
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(
        group: &str,
        version: &str,
        kind: &str,
        plural: &str,
        verbs: &[&str],
        preferred: bool,
    ) -> Found {
        let api_version = if group.is_empty() {
            version.to_string()
        } else {
            format!("{group}/{version}")
        };
        Found {
            resource: ApiResource {
                group: group.into(),
                version: version.into(),
                api_version,
                kind: kind.into(),
                plural: plural.into(),
            },
            namespaced: kind != "Namespace",
            verbs: verbs.iter().map(|v| v.to_string()).collect(),
            preferred,
        }
    }

    #[test]
    fn deletable_preferred_resources_are_monitored_and_every_version_is_mapped() {
        let all = [
            "create", "delete", "get", "list", "patch", "update", "watch",
        ];
        let r = Resources::from_found([
            found("", "v1", "ConfigMap", "configmaps", &all, true),
            found("", "v1", "Namespace", "namespaces", &all, true),
            found("", "v1", "Event", "events", &all, true),
            found("events.k8s.io", "v1", "Event", "events", &all, true),
            found("apps", "v1", "Deployment", "deployments", &all, true),
            found(
                "autoscaling",
                "v2",
                "HorizontalPodAutoscaler",
                "horizontalpodautoscalers",
                &all,
                true,
            ),
            found(
                "autoscaling",
                "v1",
                "HorizontalPodAutoscaler",
                "horizontalpodautoscalers",
                &all,
                false,
            ),
            found(
                "authorization.k8s.io",
                "v1",
                "SelfSubjectAccessReview",
                "selfsubjectaccessreviews",
                &["create"],
                true,
            ),
            found("", "v1", "Binding", "bindings", &["create"], true),
            found(
                "",
                "v1",
                "ComponentStatus",
                "componentstatuses",
                &["get", "list"],
                true,
            ),
        ]);
        let keys: Vec<&str> = r.monitored().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "apps/v1/deployments",
                "autoscaling/v2/horizontalpodautoscalers",
                "v1/configmaps",
                "v1/namespaces",
            ]
        );
        let hpa_v1 = r
            .mapping("autoscaling/v1", "HorizontalPodAutoscaler")
            .expect("mapped");
        assert_eq!(hpa_v1.resource.plural, "horizontalpodautoscalers");
        assert!(hpa_v1.namespaced);
        assert!(!r.mapping("v1", "Namespace").expect("mapped").namespaced);
        assert!(
            r.mapping("apps/v1beta1", "Deployment").is_none(),
            "versions not served do not map"
        );
        assert!(
            r.mapping("v1", "Event").is_some(),
            "ignored for monitoring, still mapped"
        );
    }
}
