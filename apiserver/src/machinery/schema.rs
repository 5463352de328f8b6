//! One table of what the Kubernetes 1.32 Go types say about merging: per (type, field) the
//! field's type, its `+listType` / `+listMapKey` markers, its `patchStrategy` / `patchMergeKey`
//! tags and `+mapType=atomic`; plus the structs marked `+structType=atomic`.
//!
//! Three consumers derive their view from it, each in its own module:
//! - the OpenAPI documents publish the markers as `x-kubernetes-list-type`,
//!   `x-kubernetes-list-map-keys`, `x-kubernetes-patch-strategy`, `x-kubernetes-patch-merge-key`
//!   and `x-kubernetes-map-type` (`handlers/openapi.rs`);
//! - strategic merge patch walks the `child` links from a kind's root type and reads the patch
//!   strategy and merge key (`machinery/patch.rs`);
//! - server-side apply walks the same links and turns list types, map keys and atomic
//!   maps/structs into rules per field path (`machinery/apply/rules.rs`).
//!
//! Scope: the fields on a path to a marker, for the kinds served (ObjectMeta, PodSpec and
//! Container, PodStatus, Service, Node, Namespace, Endpoints, Event, Deployment, ReplicaSet).
//! A `child` link is listed only where a consumer walks below the field; rows of types nobody
//! links to (e.g. `PodSecurityContext`) are read by the OpenAPI view alone.
//!
//! Where a consumer's old hand-written table disagreed with the others, the row keeps every
//! consumer's behaviour and says so in its [`Quirk`] column.
//!
//! Architecture Invariant: this module knows nothing about its consumers; it is data plus
//! lookups, and uses nothing else in the crate.

/// A component schema name as kube publishes it (`io.k8s.api.core.v1.PodSpec`).
pub type TypeName = &'static str;

macro_rules! meta_v1 {
    ($t:literal) => {
        concat!("io.k8s.apimachinery.pkg.apis.meta.v1.", $t)
    };
}
macro_rules! core_v1 {
    ($t:literal) => {
        concat!("io.k8s.api.core.v1.", $t)
    };
}
macro_rules! apps_v1 {
    ($t:literal) => {
        concat!("io.k8s.api.apps.v1.", $t)
    };
}

/// `+listType` of a list field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListType {
    /// No marker: not a list, or a list kube leaves unmarked.
    Unset,
    /// `+listType=atomic`: replaced and owned as a whole.
    Atomic,
    /// `+listType=set`: scalars, merged as a set.
    Set,
    /// `+listType=map` with its `+listMapKey`s, and the schema defaults of key fields an element
    /// may omit (kube keys `{"containerPort": 80}` as `protocol: TCP`).
    Map {
        keys: &'static [&'static str],
        defaults: &'static [(&'static str, &'static str)],
    },
}

/// `patchStrategy` struct tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchStrategy {
    Unset,
    /// `patchStrategy:"merge"`: lists merge by `patchMergeKey` (or as a set of primitives).
    Merge,
    /// `patchStrategy:"merge,retainKeys"`.
    MergeRetainKeys,
    /// `patchStrategy:"retainKeys"`.
    RetainKeys,
}

impl PatchStrategy {
    /// The tag's text, as `x-kubernetes-patch-strategy` publishes it.
    pub fn as_str(self) -> &'static str {
        match self {
            PatchStrategy::Unset => "",
            PatchStrategy::Merge => "merge",
            PatchStrategy::MergeRetainKeys => "merge,retainKeys",
            PatchStrategy::RetainKeys => "retainKeys",
        }
    }
}

/// A row on which a consumer deliberately departs from the markers, kept so that merging the
/// three old tables into this one changed no behaviour. Removing a quirk is a behaviour change
/// for that consumer and wants its own commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quirk {
    None,
    /// Kube publishes this marker, our OpenAPI documents leave it out; patch and apply use it.
    NotInOpenApi,
    /// Server-side apply has no rule here. For a list that is the same as `atomic` (apply's
    /// default for unlisted lists) unless a client sends an object where the list belongs.
    NotInApply,
    /// Server-side apply treats the list as a map with these keys, though kube 1.32 marks it
    /// `atomic` (and the OpenAPI documents say so).
    ApplyListMap(&'static [&'static str]),
}

/// One (type, field) row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub owner: TypeName,
    /// JSON name of the field.
    pub name: &'static str,
    /// Struct type of the field, or of its list elements, where a consumer walks below it.
    pub child: Option<TypeName>,
    pub list: ListType,
    pub patch: PatchStrategy,
    /// `patchMergeKey`; empty when none.
    pub merge_key: &'static str,
    /// `+mapType=atomic` on a map field (atomic structs are in [`ATOMIC_TYPES`] instead).
    pub atomic: bool,
    pub quirk: Quirk,
}

const fn f(owner: TypeName, name: &'static str) -> Field {
    Field {
        owner,
        name,
        child: None,
        list: ListType::Unset,
        patch: PatchStrategy::Unset,
        merge_key: "",
        atomic: false,
        quirk: Quirk::None,
    }
}

impl Field {
    const fn child(self, ty: TypeName) -> Field {
        Field {
            child: Some(ty),
            ..self
        }
    }
    const fn atomic_list(self) -> Field {
        Field {
            list: ListType::Atomic,
            ..self
        }
    }
    const fn set(self) -> Field {
        Field {
            list: ListType::Set,
            ..self
        }
    }
    const fn map(self, keys: &'static [&'static str]) -> Field {
        Field {
            list: ListType::Map {
                keys,
                defaults: &[],
            },
            ..self
        }
    }
    const fn map_defaults(
        self,
        keys: &'static [&'static str],
        defaults: &'static [(&'static str, &'static str)],
    ) -> Field {
        Field {
            list: ListType::Map { keys, defaults },
            ..self
        }
    }
    const fn merge(self, merge_key: &'static str) -> Field {
        Field {
            patch: PatchStrategy::Merge,
            merge_key,
            ..self
        }
    }
    const fn merge_retain_keys(self, merge_key: &'static str) -> Field {
        Field {
            patch: PatchStrategy::MergeRetainKeys,
            merge_key,
            ..self
        }
    }
    const fn retain_keys(self) -> Field {
        Field {
            patch: PatchStrategy::RetainKeys,
            ..self
        }
    }
    const fn atomic_map(self) -> Field {
        Field {
            atomic: true,
            ..self
        }
    }
    const fn quirk(self, quirk: Quirk) -> Field {
        Field { quirk, ..self }
    }
}

const OBJECT_META: TypeName = meta_v1!("ObjectMeta");
const OWNER_REFERENCE: TypeName = meta_v1!("OwnerReference");
const LABEL_SELECTOR: TypeName = meta_v1!("LabelSelector");
const LABEL_SELECTOR_REQUIREMENT: TypeName = meta_v1!("LabelSelectorRequirement");
const POD: TypeName = core_v1!("Pod");
const POD_TEMPLATE_SPEC: TypeName = core_v1!("PodTemplateSpec");
const POD_SPEC: TypeName = core_v1!("PodSpec");
const POD_STATUS: TypeName = core_v1!("PodStatus");
const POD_SECURITY_CONTEXT: TypeName = core_v1!("PodSecurityContext");
const POD_DNS_CONFIG: TypeName = core_v1!("PodDNSConfig");
const HOST_ALIAS: TypeName = core_v1!("HostAlias");
const VOLUME: TypeName = core_v1!("Volume");
const CONTAINER: TypeName = core_v1!("Container");
const EPHEMERAL_CONTAINER: TypeName = core_v1!("EphemeralContainer");
const ENV_VAR: TypeName = core_v1!("EnvVar");
const ENV_VAR_SOURCE: TypeName = core_v1!("EnvVarSource");
const RESOURCE_REQUIREMENTS: TypeName = core_v1!("ResourceRequirements");
const LOCAL_OBJECT_REFERENCE: TypeName = core_v1!("LocalObjectReference");
const CONFIG_MAP_KEY_SELECTOR: TypeName = core_v1!("ConfigMapKeySelector");
const SECRET_KEY_SELECTOR: TypeName = core_v1!("SecretKeySelector");
const OBJECT_FIELD_SELECTOR: TypeName = core_v1!("ObjectFieldSelector");
const RESOURCE_FIELD_SELECTOR: TypeName = core_v1!("ResourceFieldSelector");
const AFFINITY: TypeName = core_v1!("Affinity");
const NODE_AFFINITY: TypeName = core_v1!("NodeAffinity");
const NODE_SELECTOR: TypeName = core_v1!("NodeSelector");
const NODE_SELECTOR_TERM: TypeName = core_v1!("NodeSelectorTerm");
const NODE_SELECTOR_REQUIREMENT: TypeName = core_v1!("NodeSelectorRequirement");
const POD_AFFINITY: TypeName = core_v1!("PodAffinity");
const POD_ANTI_AFFINITY: TypeName = core_v1!("PodAntiAffinity");
const POD_AFFINITY_TERM: TypeName = core_v1!("PodAffinityTerm");
const TOPOLOGY_SPREAD_CONSTRAINT: TypeName = core_v1!("TopologySpreadConstraint");
const CAPABILITIES: TypeName = core_v1!("Capabilities");
const EXEC_ACTION: TypeName = core_v1!("ExecAction");
const HTTP_GET_ACTION: TypeName = core_v1!("HTTPGetAction");
const PROJECTED_VOLUME_SOURCE: TypeName = core_v1!("ProjectedVolumeSource");
const CONFIG_MAP_VOLUME_SOURCE: TypeName = core_v1!("ConfigMapVolumeSource");
const SECRET_VOLUME_SOURCE: TypeName = core_v1!("SecretVolumeSource");
const DOWNWARD_API_VOLUME_SOURCE: TypeName = core_v1!("DownwardAPIVolumeSource");
const NODE: TypeName = core_v1!("Node");
const NODE_SPEC: TypeName = core_v1!("NodeSpec");
const NODE_STATUS: TypeName = core_v1!("NodeStatus");
const NAMESPACE: TypeName = core_v1!("Namespace");
const NAMESPACE_SPEC: TypeName = core_v1!("NamespaceSpec");
const NAMESPACE_STATUS: TypeName = core_v1!("NamespaceStatus");
const SERVICE: TypeName = core_v1!("Service");
const SERVICE_SPEC: TypeName = core_v1!("ServiceSpec");
const SERVICE_STATUS: TypeName = core_v1!("ServiceStatus");
const LOAD_BALANCER_STATUS: TypeName = core_v1!("LoadBalancerStatus");
const LOAD_BALANCER_INGRESS: TypeName = core_v1!("LoadBalancerIngress");
const ENDPOINTS: TypeName = core_v1!("Endpoints");
const ENDPOINT_SUBSET: TypeName = core_v1!("EndpointSubset");
const CONFIG_MAP: TypeName = core_v1!("ConfigMap");
const SECRET: TypeName = core_v1!("Secret");
const EVENT: TypeName = core_v1!("Event");
const OBJECT_REFERENCE: TypeName = core_v1!("ObjectReference");
const DEPLOYMENT: TypeName = apps_v1!("Deployment");
const DEPLOYMENT_SPEC: TypeName = apps_v1!("DeploymentSpec");
const DEPLOYMENT_STATUS: TypeName = apps_v1!("DeploymentStatus");
const REPLICA_SET: TypeName = apps_v1!("ReplicaSet");
const REPLICA_SET_SPEC: TypeName = apps_v1!("ReplicaSetSpec");
const REPLICA_SET_STATUS: TypeName = apps_v1!("ReplicaSetStatus");
const LEASE: TypeName = "io.k8s.api.coordination.v1.Lease";
const JOB: TypeName = "io.k8s.api.batch.v1.Job";
const JOB_SPEC: TypeName = "io.k8s.api.batch.v1.JobSpec";
const JOB_STATUS: TypeName = "io.k8s.api.batch.v1.JobStatus";
const JOB_TEMPLATE_SPEC: TypeName = "io.k8s.api.batch.v1.JobTemplateSpec";
const POD_FAILURE_POLICY: TypeName = "io.k8s.api.batch.v1.PodFailurePolicy";
const POD_FAILURE_POLICY_RULE: TypeName = "io.k8s.api.batch.v1.PodFailurePolicyRule";
const SUCCESS_POLICY: TypeName = "io.k8s.api.batch.v1.SuccessPolicy";
const CRON_JOB: TypeName = "io.k8s.api.batch.v1.CronJob";
const CRON_JOB_SPEC: TypeName = "io.k8s.api.batch.v1.CronJobSpec";
const CRON_JOB_STATUS: TypeName = "io.k8s.api.batch.v1.CronJobStatus";
const SERVICE_ACCOUNT: TypeName = core_v1!("ServiceAccount");
const ENDPOINT_SLICE: TypeName = "io.k8s.api.discovery.v1.EndpointSlice";
const DISCOVERY_ENDPOINT: TypeName = "io.k8s.api.discovery.v1.Endpoint";
const ENDPOINT_HINTS: TypeName = "io.k8s.api.discovery.v1.EndpointHints";
const PDB: TypeName = "io.k8s.api.policy.v1.PodDisruptionBudget";
const PDB_SPEC: TypeName = "io.k8s.api.policy.v1.PodDisruptionBudgetSpec";
const PDB_STATUS: TypeName = "io.k8s.api.policy.v1.PodDisruptionBudgetStatus";
const DAEMON_SET: TypeName = apps_v1!("DaemonSet");
const DAEMON_SET_SPEC: TypeName = apps_v1!("DaemonSetSpec");
const DAEMON_SET_STATUS: TypeName = apps_v1!("DaemonSetStatus");
const STATEFUL_SET: TypeName = apps_v1!("StatefulSet");
const STATEFUL_SET_SPEC: TypeName = apps_v1!("StatefulSetSpec");
const STATEFUL_SET_STATUS: TypeName = apps_v1!("StatefulSetStatus");
const CONTROLLER_REVISION: TypeName = apps_v1!("ControllerRevision");
const REPLICATION_CONTROLLER: TypeName = core_v1!("ReplicationController");
const REPLICATION_CONTROLLER_SPEC: TypeName = core_v1!("ReplicationControllerSpec");
const REPLICATION_CONTROLLER_STATUS: TypeName = core_v1!("ReplicationControllerStatus");
const SCALE: TypeName = "io.k8s.api.autoscaling.v1.Scale";

const NAME: &[&str] = &["name"];
const TYPE: &[&str] = &["type"];
const IP: &[&str] = &["ip"];
const PROTOCOL_TCP: &[(&str, &str)] = &[("protocol", "TCP")];
const REQUIRED_DURING: &str = "requiredDuringSchedulingIgnoredDuringExecution";
const PREFERRED_DURING: &str = "preferredDuringSchedulingIgnoredDuringExecution";

/// The table: markers and tags from k8s.io/api and k8s.io/apimachinery at 1.32 (list types
/// checked against k8s-openapi 0.25's v1_32 merge strategies).
#[rustfmt::skip]
pub const FIELDS: &[Field] = &[
    // metav1.ObjectMeta
    f(OBJECT_META, "finalizers").set().merge(""),
    f(OBJECT_META, "ownerReferences").child(OWNER_REFERENCE).map(&["uid"]).merge("uid"),
    f(OBJECT_META, "managedFields").atomic_list(),
    // metav1.LabelSelector
    f(LABEL_SELECTOR, "matchExpressions").atomic_list(),
    f(LABEL_SELECTOR_REQUIREMENT, "values").atomic_list(),
    // core/v1 PodTemplateSpec, PodSpec
    f(POD_TEMPLATE_SPEC, "metadata").child(OBJECT_META),
    f(POD_TEMPLATE_SPEC, "spec").child(POD_SPEC),
    f(POD_SPEC, "volumes").child(VOLUME).map(NAME).merge_retain_keys("name"),
    f(POD_SPEC, "initContainers").child(CONTAINER).map(NAME).merge("name"),
    f(POD_SPEC, "containers").child(CONTAINER).map(NAME).merge("name"),
    f(POD_SPEC, "ephemeralContainers").child(EPHEMERAL_CONTAINER).map(NAME).merge("name"),
    f(POD_SPEC, "imagePullSecrets").child(LOCAL_OBJECT_REFERENCE).map(NAME).merge("name"),
    f(POD_SPEC, "hostAliases").map(IP).merge("ip"),
    f(POD_SPEC, "tolerations").atomic_list(),
    f(POD_SPEC, "readinessGates").atomic_list(),
    f(POD_SPEC, "topologySpreadConstraints").child(TOPOLOGY_SPREAD_CONSTRAINT)
        .map(&["topologyKey", "whenUnsatisfiable"]).merge("topologyKey"),
    f(POD_SPEC, "schedulingGates").map(NAME).merge("name"),
    f(POD_SPEC, "resourceClaims").map(NAME).merge_retain_keys("name"),
    f(POD_SPEC, "nodeSelector").atomic_map().quirk(Quirk::NotInOpenApi),
    f(POD_SPEC, "affinity").child(AFFINITY),
    f(POD_SECURITY_CONTEXT, "supplementalGroups").atomic_list(),
    f(POD_SECURITY_CONTEXT, "sysctls").atomic_list(),
    f(POD_DNS_CONFIG, "nameservers").atomic_list(),
    f(POD_DNS_CONFIG, "options").atomic_list(),
    f(POD_DNS_CONFIG, "searches").atomic_list(),
    f(HOST_ALIAS, "hostnames").atomic_list(),
    // core/v1 Affinity and its terms
    f(AFFINITY, "nodeAffinity").child(NODE_AFFINITY),
    f(NODE_AFFINITY, REQUIRED_DURING).child(NODE_SELECTOR),
    f(NODE_AFFINITY, PREFERRED_DURING).atomic_list().quirk(Quirk::NotInApply),
    f(NODE_SELECTOR, "nodeSelectorTerms").atomic_list(),
    f(NODE_SELECTOR_TERM, "matchExpressions").atomic_list(),
    f(NODE_SELECTOR_TERM, "matchFields").atomic_list(),
    f(NODE_SELECTOR_REQUIREMENT, "values").atomic_list(),
    f(POD_AFFINITY, PREFERRED_DURING).atomic_list(),
    f(POD_AFFINITY, REQUIRED_DURING).atomic_list(),
    f(POD_ANTI_AFFINITY, PREFERRED_DURING).atomic_list(),
    f(POD_ANTI_AFFINITY, REQUIRED_DURING).atomic_list(),
    f(POD_AFFINITY_TERM, "namespaces").atomic_list(),
    f(POD_AFFINITY_TERM, "matchLabelKeys").atomic_list(),
    f(POD_AFFINITY_TERM, "mismatchLabelKeys").atomic_list(),
    f(TOPOLOGY_SPREAD_CONSTRAINT, "labelSelector").child(LABEL_SELECTOR),
    f(TOPOLOGY_SPREAD_CONSTRAINT, "matchLabelKeys").atomic_list().quirk(Quirk::NotInApply),
    // core/v1 Container (EphemeralContainer has the same rows: see SAME_FIELDS_AS)
    f(CONTAINER, "ports").map_defaults(&["containerPort", "protocol"], PROTOCOL_TCP).merge("containerPort"),
    f(CONTAINER, "env").child(ENV_VAR).map(NAME).merge("name"),
    f(CONTAINER, "envFrom").atomic_list(),
    f(CONTAINER, "volumeMounts").map(&["mountPath"]).merge("mountPath"),
    f(CONTAINER, "volumeDevices").map(&["devicePath"]).merge("devicePath"),
    f(CONTAINER, "resizePolicy").atomic_list(),
    f(CONTAINER, "args").atomic_list().quirk(Quirk::NotInApply),
    f(CONTAINER, "command").atomic_list().quirk(Quirk::NotInApply),
    f(CONTAINER, "resources").child(RESOURCE_REQUIREMENTS),
    f(ENV_VAR, "valueFrom").child(ENV_VAR_SOURCE),
    f(ENV_VAR_SOURCE, "configMapKeyRef").child(CONFIG_MAP_KEY_SELECTOR),
    f(ENV_VAR_SOURCE, "secretKeyRef").child(SECRET_KEY_SELECTOR),
    f(ENV_VAR_SOURCE, "fieldRef").child(OBJECT_FIELD_SELECTOR),
    f(ENV_VAR_SOURCE, "resourceFieldRef").child(RESOURCE_FIELD_SELECTOR),
    f(RESOURCE_REQUIREMENTS, "claims").map(NAME),
    f(CAPABILITIES, "add").atomic_list(),
    f(CAPABILITIES, "drop").atomic_list(),
    f(EXEC_ACTION, "command").atomic_list(),
    f(HTTP_GET_ACTION, "httpHeaders").atomic_list(),
    // core/v1 volume sources
    f(PROJECTED_VOLUME_SOURCE, "sources").atomic_list(),
    f(CONFIG_MAP_VOLUME_SOURCE, "items").atomic_list(),
    f(SECRET_VOLUME_SOURCE, "items").atomic_list(),
    f(DOWNWARD_API_VOLUME_SOURCE, "items").atomic_list(),
    // core/v1 PodStatus
    f(POD_STATUS, "conditions").map(TYPE).merge("type"),
    f(POD_STATUS, "podIPs").map(IP).merge("ip"),
    f(POD_STATUS, "hostIPs").atomic_list().merge("ip").quirk(Quirk::ApplyListMap(IP)),
    f(POD_STATUS, "containerStatuses").atomic_list(),
    f(POD_STATUS, "initContainerStatuses").atomic_list(),
    f(POD_STATUS, "ephemeralContainerStatuses").atomic_list(),
    f(POD_STATUS, "resourceClaimStatuses").map(NAME).merge_retain_keys("name"),
    // core/v1 Service
    f(SERVICE_SPEC, "ports").map_defaults(&["port", "protocol"], PROTOCOL_TCP).merge("port"),
    f(SERVICE_SPEC, "selector").atomic_map().quirk(Quirk::NotInOpenApi),
    f(SERVICE_SPEC, "clusterIPs").atomic_list(),
    f(SERVICE_SPEC, "externalIPs").atomic_list(),
    f(SERVICE_SPEC, "ipFamilies").atomic_list(),
    f(SERVICE_SPEC, "loadBalancerSourceRanges").atomic_list(),
    f(SERVICE_STATUS, "conditions").map(TYPE).merge("type"),
    f(SERVICE_STATUS, "loadBalancer").child(LOAD_BALANCER_STATUS),
    f(LOAD_BALANCER_STATUS, "ingress").atomic_list(),
    f(LOAD_BALANCER_INGRESS, "ports").atomic_list(),
    // core/v1 Endpoints
    f(ENDPOINTS, "subsets").atomic_list(),
    f(ENDPOINT_SUBSET, "addresses").atomic_list(),
    f(ENDPOINT_SUBSET, "notReadyAddresses").atomic_list(),
    f(ENDPOINT_SUBSET, "ports").atomic_list(),
    // core/v1 Node
    f(NODE_SPEC, "podCIDRs").set().merge(""),
    f(NODE_SPEC, "taints").atomic_list(),
    f(NODE_STATUS, "conditions").map(TYPE).merge("type"),
    f(NODE_STATUS, "addresses").map(TYPE).merge("type"),
    f(NODE_STATUS, "images").atomic_list(),
    f(NODE_STATUS, "volumesInUse").atomic_list(),
    f(NODE_STATUS, "volumesAttached").atomic_list(),
    f(NODE_STATUS, "runtimeHandlers").atomic_list().quirk(Quirk::NotInOpenApi),
    // core/v1 Namespace
    f(NAMESPACE_SPEC, "finalizers").atomic_list(),
    f(NAMESPACE_STATUS, "conditions").map(TYPE).merge("type"),
    // core/v1 Event
    f(EVENT, "involvedObject").child(OBJECT_REFERENCE),
    f(EVENT, "related").child(OBJECT_REFERENCE),
    // apps/v1 Deployment, ReplicaSet
    f(DEPLOYMENT_SPEC, "selector").child(LABEL_SELECTOR),
    f(DEPLOYMENT_SPEC, "template").child(POD_TEMPLATE_SPEC),
    f(DEPLOYMENT_SPEC, "strategy").retain_keys(),
    f(DEPLOYMENT_STATUS, "conditions").map(TYPE).merge("type"),
    f(REPLICA_SET_SPEC, "selector").child(LABEL_SELECTOR),
    f(REPLICA_SET_SPEC, "template").child(POD_TEMPLATE_SPEC),
    f(REPLICA_SET_STATUS, "conditions").map(TYPE).merge("type"),
    // batch/v1 Job, CronJob
    f(JOB_SPEC, "selector").child(LABEL_SELECTOR),
    f(JOB_SPEC, "template").child(POD_TEMPLATE_SPEC),
    f(JOB_SPEC, "podFailurePolicy").child(POD_FAILURE_POLICY),
    f(JOB_SPEC, "successPolicy").child(SUCCESS_POLICY),
    f(POD_FAILURE_POLICY, "rules").child(POD_FAILURE_POLICY_RULE).atomic_list(),
    f(POD_FAILURE_POLICY_RULE, "onPodConditions").atomic_list(),
    f(SUCCESS_POLICY, "rules").atomic_list(),
    f(JOB_STATUS, "conditions").atomic_list().merge("type"),
    f(JOB_TEMPLATE_SPEC, "metadata").child(OBJECT_META),
    f(JOB_TEMPLATE_SPEC, "spec").child(JOB_SPEC),
    f(CRON_JOB_SPEC, "jobTemplate").child(JOB_TEMPLATE_SPEC),
    f(CRON_JOB_STATUS, "active").atomic_list(),
    // core/v1 ServiceAccount
    f(SERVICE_ACCOUNT, "secrets").child(OBJECT_REFERENCE).map(NAME).merge("name"),
    f(SERVICE_ACCOUNT, "imagePullSecrets").atomic_list(),
    // discovery.k8s.io/v1 EndpointSlice
    f(ENDPOINT_SLICE, "endpoints").child(DISCOVERY_ENDPOINT).atomic_list(),
    f(ENDPOINT_SLICE, "ports").atomic_list(),
    f(DISCOVERY_ENDPOINT, "addresses").set(),
    f(DISCOVERY_ENDPOINT, "hints").child(ENDPOINT_HINTS),
    f(ENDPOINT_HINTS, "forZones").atomic_list(),
    // apps/v1 DaemonSet, StatefulSet; core/v1 ReplicationController
    f(DAEMON_SET_SPEC, "selector").child(LABEL_SELECTOR),
    f(DAEMON_SET_SPEC, "template").child(POD_TEMPLATE_SPEC),
    f(DAEMON_SET_STATUS, "conditions").map(TYPE).merge("type"),
    f(STATEFUL_SET_SPEC, "selector").child(LABEL_SELECTOR),
    f(STATEFUL_SET_SPEC, "template").child(POD_TEMPLATE_SPEC),
    f(STATEFUL_SET_SPEC, "volumeClaimTemplates").atomic_list(),
    f(STATEFUL_SET_STATUS, "conditions").map(TYPE).merge("type"),
    f(REPLICATION_CONTROLLER_SPEC, "selector").atomic_map(),
    f(REPLICATION_CONTROLLER_SPEC, "template").child(POD_TEMPLATE_SPEC),
    f(REPLICATION_CONTROLLER_STATUS, "conditions").map(TYPE).merge("type"),
    // The kinds' roots
    f(POD, "metadata").child(OBJECT_META),
    f(POD, "spec").child(POD_SPEC),
    f(POD, "status").child(POD_STATUS),
    f(NODE, "metadata").child(OBJECT_META),
    f(NODE, "spec").child(NODE_SPEC),
    f(NODE, "status").child(NODE_STATUS),
    f(NAMESPACE, "metadata").child(OBJECT_META),
    f(NAMESPACE, "spec").child(NAMESPACE_SPEC),
    f(NAMESPACE, "status").child(NAMESPACE_STATUS),
    f(SERVICE, "metadata").child(OBJECT_META),
    f(SERVICE, "spec").child(SERVICE_SPEC),
    f(SERVICE, "status").child(SERVICE_STATUS),
    f(ENDPOINTS, "metadata").child(OBJECT_META),
    f(CONFIG_MAP, "metadata").child(OBJECT_META),
    f(SECRET, "metadata").child(OBJECT_META),
    f(EVENT, "metadata").child(OBJECT_META),
    f(DEPLOYMENT, "metadata").child(OBJECT_META),
    f(DEPLOYMENT, "spec").child(DEPLOYMENT_SPEC),
    f(DEPLOYMENT, "status").child(DEPLOYMENT_STATUS),
    f(REPLICA_SET, "metadata").child(OBJECT_META),
    f(REPLICA_SET, "spec").child(REPLICA_SET_SPEC),
    f(REPLICA_SET, "status").child(REPLICA_SET_STATUS),
    f(LEASE, "metadata").child(OBJECT_META),
    f(SCALE, "metadata").child(OBJECT_META),
    f(JOB, "metadata").child(OBJECT_META),
    f(JOB, "spec").child(JOB_SPEC),
    f(JOB, "status").child(JOB_STATUS),
    f(CRON_JOB, "metadata").child(OBJECT_META),
    f(CRON_JOB, "spec").child(CRON_JOB_SPEC),
    f(CRON_JOB, "status").child(CRON_JOB_STATUS),
    f(SERVICE_ACCOUNT, "metadata").child(OBJECT_META),
    f(ENDPOINT_SLICE, "metadata").child(OBJECT_META),
    // policy/v1 PodDisruptionBudget
    f(PDB_SPEC, "selector").child(LABEL_SELECTOR),
    f(PDB_STATUS, "conditions").map(TYPE).merge("type"),
    f(PDB, "metadata").child(OBJECT_META),
    f(PDB, "spec").child(PDB_SPEC),
    f(PDB, "status").child(PDB_STATUS),
    f(DAEMON_SET, "metadata").child(OBJECT_META),
    f(DAEMON_SET, "spec").child(DAEMON_SET_SPEC),
    f(DAEMON_SET, "status").child(DAEMON_SET_STATUS),
    f(STATEFUL_SET, "metadata").child(OBJECT_META),
    f(STATEFUL_SET, "spec").child(STATEFUL_SET_SPEC),
    f(STATEFUL_SET, "status").child(STATEFUL_SET_STATUS),
    f(CONTROLLER_REVISION, "metadata").child(OBJECT_META),
    f(REPLICATION_CONTROLLER, "metadata").child(OBJECT_META),
    f(REPLICATION_CONTROLLER, "spec").child(REPLICATION_CONTROLLER_SPEC),
    f(REPLICATION_CONTROLLER, "status").child(REPLICATION_CONTROLLER_STATUS),
];

/// Types whose fields are another type's rows: `EphemeralContainer` embeds
/// `EphemeralContainerCommon`, which repeats `Container`'s fields with the same tags.
pub const SAME_FIELDS_AS: &[(TypeName, TypeName)] = &[(EPHEMERAL_CONTAINER, CONTAINER)];

/// Structs marked `+structType=atomic` (`x-kubernetes-map-type: atomic`): references and
/// selectors that server-side apply replaces and owns whole.
#[rustfmt::skip]
pub const ATOMIC_TYPES: &[(TypeName, Quirk)] = &[
    (LABEL_SELECTOR, Quirk::None),
    (LOCAL_OBJECT_REFERENCE, Quirk::None),
    (CONFIG_MAP_KEY_SELECTOR, Quirk::None),
    (SECRET_KEY_SELECTOR, Quirk::None),
    (OBJECT_FIELD_SELECTOR, Quirk::None),
    (RESOURCE_FIELD_SELECTOR, Quirk::None),
    (core_v1!("ConfigMapEnvSource"), Quirk::None),
    (core_v1!("SecretEnvSource"), Quirk::None),
    (NODE_SELECTOR, Quirk::None),
    (NODE_SELECTOR_TERM, Quirk::None),
    (core_v1!("ConfigMapProjection"), Quirk::None),
    (core_v1!("SecretProjection"), Quirk::None),
    (core_v1!("TypedLocalObjectReference"), Quirk::None),
    (OBJECT_REFERENCE, Quirk::None),
    (OWNER_REFERENCE, Quirk::NotInOpenApi),
];

/// `(apiVersion, kind)` → the kind's root type.
#[rustfmt::skip]
pub const KINDS: &[(&str, &str, TypeName)] = &[
    ("v1", "Namespace", NAMESPACE),
    ("v1", "Node", NODE),
    ("v1", "Pod", POD),
    ("v1", "Service", SERVICE),
    ("v1", "Endpoints", ENDPOINTS),
    ("v1", "ConfigMap", CONFIG_MAP),
    ("v1", "Secret", SECRET),
    ("v1", "Event", EVENT),
    ("apps/v1", "Deployment", DEPLOYMENT),
    ("apps/v1", "ReplicaSet", REPLICA_SET),
    ("coordination.k8s.io/v1", "Lease", LEASE),
    ("autoscaling/v1", "Scale", SCALE),
    ("batch/v1", "Job", JOB),
    ("batch/v1", "CronJob", CRON_JOB),
    ("v1", "ServiceAccount", SERVICE_ACCOUNT),
    ("discovery.k8s.io/v1", "EndpointSlice", ENDPOINT_SLICE),
    ("policy/v1", "PodDisruptionBudget", PDB),
    ("apps/v1", "DaemonSet", DAEMON_SET),
    ("apps/v1", "StatefulSet", STATEFUL_SET),
    ("apps/v1", "ControllerRevision", CONTROLLER_REVISION),
    ("v1", "ReplicationController", REPLICATION_CONTROLLER),
];

/// Every kind's `metadata`.
pub const ROOT_META: TypeName = OBJECT_META;

/// The type whose rows `ty` has (itself, unless listed in [`SAME_FIELDS_AS`]).
fn rows_owner(ty: TypeName) -> TypeName {
    SAME_FIELDS_AS
        .iter()
        .find(|(t, _)| *t == ty)
        .map_or(ty, |(_, same)| same)
}

/// The rows of a type.
pub fn fields_of(ty: TypeName) -> impl Iterator<Item = &'static Field> {
    let owner = rows_owner(ty);
    FIELDS.iter().filter(move |f| f.owner == owner)
}

/// One row, if the table has it.
pub fn field(ty: TypeName, name: &str) -> Option<&'static Field> {
    fields_of(ty).find(|f| f.name == name)
}

/// `ty` and the types that share its rows: where the OpenAPI view publishes a row.
pub fn types_with_rows_of(ty: TypeName) -> impl Iterator<Item = TypeName> {
    std::iter::once(ty).chain(
        SAME_FIELDS_AS
            .iter()
            .filter(move |(_, same)| *same == ty)
            .map(|(t, _)| *t),
    )
}

/// Whether `ty` is an atomic struct, and with which quirk.
pub fn atomic_type(ty: TypeName) -> Option<Quirk> {
    ATOMIC_TYPES.iter().find(|(t, _)| *t == ty).map(|(_, q)| *q)
}

/// The root type of `(apiVersion, kind)`.
pub fn root_type(api_version: &str, kind: &str) -> Option<TypeName> {
    KINDS
        .iter()
        .find(|(v, k, _)| *v == api_version && *k == kind)
        .map(|(_, _, t)| *t)
}

/// The root type of the first served kind of that name (apply is keyed by kind alone).
pub fn root_type_of_kind(kind: &str) -> Option<TypeName> {
    KINDS
        .iter()
        .find(|(_, k, _)| *k == kind)
        .map(|(_, _, t)| *t)
}
