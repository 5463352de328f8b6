//! Server-side `meta.k8s.io/v1` Table output, as kube-apiserver 1.32 renders it for
//! `kubectl get` (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`).
//!
//! Columns and cells follow `pkg/printers/internalversion/printers.go`. kube-apiserver always
//! generates the wide form (every column, priority 1 included) and kubectl hides priority-1
//! columns unless `-o wide`, so rows here always carry every cell. Kinds without a printer get
//! kube's default table (`Name`, `Created At`). Objects are the stored JSON; missing or
//! ill-typed fields read as Go's zero values, never a panic.

use serde_json::{json, Map, Value};

use crate::machinery::selectors::{format_labels, LabelSelector};
use crate::machinery::time::{format_rfc3339, parse_rfc3339, GO_ZERO_TIME};

/// `?includeObject=`: what each row's `object` carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    Metadata,
    Object,
}

impl IncludeObject {
    /// `None`, `Metadata` or `Object`; an empty value is kube's default, `Metadata`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "None" => Some(IncludeObject::None),
            "" | "Metadata" => Some(IncludeObject::Metadata),
            "Object" => Some(IncludeObject::Object),
            _ => None,
        }
    }
}

/// meta.k8s.io/v1 Table for these objects (one kind). The caller sets
/// metadata.resourceVersion / continue / remainingItemCount on the result.
pub fn table(
    api_version: &str,
    kind: &str,
    items: &[Value],
    include: IncludeObject,
    now_unix_secs: i64,
) -> Value {
    let group = api_version.split_once('/').map(|(g, _)| g).unwrap_or("");
    let printer = printer_for(group, kind);
    let columns: Vec<Value> = match printer {
        Some(p) => p.columns().iter().map(Column::to_json).collect(),
        None => DEFAULT_COLUMNS.iter().map(Column::to_json).collect(),
    };
    let rows: Vec<Value> = items
        .iter()
        .map(|obj| {
            let (cells, conditions) = match printer {
                Some(p) => p.cells(obj, now_unix_secs),
                None => (default_cells(obj), None),
            };
            let mut row = Map::new();
            row.insert("cells".into(), Value::Array(cells));
            if let Some(c) = conditions {
                row.insert("conditions".into(), c);
            }
            // kube encodes an emptied RawExtension as `null` rather than leaving it out.
            let object = match include {
                IncludeObject::None => Value::Null,
                IncludeObject::Object => obj.clone(),
                IncludeObject::Metadata => json!({
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
                }),
            };
            row.insert("object".into(), object);
            Value::Object(row)
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {},
        "columnDefinitions": columns,
        "rows": rows,
    })
}

// ---------------------------------------------------------------------------------------------
// Column definitions
// ---------------------------------------------------------------------------------------------

struct Column {
    name: &'static str,
    ty: &'static str,
    format: &'static str,
    description: &'static str,
    priority: i32,
}

impl Column {
    fn to_json(&self) -> Value {
        // TableColumnDefinition has no omitempty tags: every field is always present.
        json!({
            "name": self.name,
            "type": self.ty,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }
}

const fn col(name: &'static str, ty: &'static str, description: &'static str) -> Column {
    Column {
        name,
        ty,
        format: "",
        description,
        priority: 0,
    }
}

const fn wide(name: &'static str, ty: &'static str, description: &'static str) -> Column {
    Column {
        name,
        ty,
        format: "",
        description,
        priority: 1,
    }
}

const NAME_COL: Column = Column {
    name: "Name",
    ty: "string",
    format: "name",
    description: D_NAME,
    priority: 0,
};
const AGE_COL: Column = col("Age", "string", D_CREATION);

// Descriptions are the field docs kube reads with SwaggerDoc() (same text as the OpenAPI).
const D_NAME: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
const D_CREATION: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";
const D_POD_IP: &str = "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.";
const D_NODE_NAME: &str = "NodeName indicates in which node this pod is scheduled. If empty, this pod is a candidate for scheduling by the scheduler defined in schedulerName. Once this field is set, the kubelet for this node becomes responsible for the lifecycle of this pod. This field should not be used to express a desire for the pod to be scheduled on a specific node. https://kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/#nodename";
const D_NOMINATED: &str = "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods. This field does not guarantee that the pod will be scheduled on this node. Scheduler may decide to place the pod elsewhere if other nodes become available sooner. Scheduler may also decide to give the resources on this node to a higher priority pod that is created after preemption. As a result, this field may be different than PodSpec.nodeName when the pod is scheduled.";
const D_READINESS_GATES: &str = "If specified, all readiness gates will be evaluated for pod readiness. A pod is ready when all its containers are ready AND all conditions specified in the readiness gates have status equal to \"True\" More info: https://git.k8s.io/enhancements/keps/sig-network/580-pod-readiness-gates";
const D_SVC_TYPE: &str = "type determines how the Service is exposed. Defaults to ClusterIP. Valid options are ExternalName, ClusterIP, NodePort, and LoadBalancer. \"ClusterIP\" allocates a cluster-internal IP address for load-balancing to endpoints. Endpoints are determined by the selector or if that is not specified, by manual construction of an Endpoints object or EndpointSlice objects. If clusterIP is \"None\", no virtual IP is allocated and the endpoints are published as a set of endpoints rather than a virtual IP. \"NodePort\" builds on ClusterIP and allocates a port on every node which routes to the same endpoints as the clusterIP. \"LoadBalancer\" builds on NodePort and creates an external load-balancer (if supported in the current cloud) which routes to the same endpoints as the clusterIP. \"ExternalName\" aliases this service to the specified externalName. Several other fields do not apply to ExternalName services. More info: https://kubernetes.io/docs/concepts/services-networking/service/#publishing-services-service-types";
const D_CLUSTER_IP: &str = "clusterIP is the IP address of the service and is usually assigned randomly. If an address is specified manually, is in-range (as per system configuration), and is not in use, it will be allocated to the service; otherwise creation of the service will fail. This field may not be changed through updates unless the type field is also being changed to ExternalName (which requires this field to be blank) or the type field is being changed from ExternalName (in which case this field may optionally be specified, as describe above).  Valid values are \"None\", empty string (\"\"), or a valid IP address. Setting this to \"None\" makes a \"headless service\" (no virtual IP), which is useful when direct endpoint connections are preferred and proxying is not required.  Only applies to types ClusterIP, NodePort, and LoadBalancer. If this field is specified when creating a Service of type ExternalName, creation will fail. This field will be wiped when updating a Service to type ExternalName. More info: https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies";
const D_EXTERNAL_IPS: &str = "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.  These IPs are not managed by Kubernetes.  The user is responsible for ensuring that traffic arrives at a node with this IP.  A common example is external load-balancers that are not part of the Kubernetes system.";
const D_PORTS: &str = "The list of ports that are exposed by this service. More info: https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies";
const D_SVC_SELECTOR: &str = "Route service traffic to pods with label keys and values matching this selector. If empty or not present, the service is assumed to have an external process managing its endpoints, which Kubernetes will not modify. Only applies to types ClusterIP, NodePort, and LoadBalancer. Ignored if type is ExternalName. More info: https://kubernetes.io/docs/concepts/services-networking/service/";
const D_SUBSETS: &str = "The set of all endpoints is the union of all subsets. Addresses are placed into subsets according to the IPs they share. A single address with multiple ports, some of which are ready and some of which are not (because they come from different containers) will result in the address being displayed in different subsets for the different ports. No address will appear in both Addresses and NotReadyAddresses in the same subset. Sets of addresses and ports that comprise a service.";
const D_KUBELET_VERSION: &str = "Kubelet Version reported by the node.";
const D_ADDRESSES: &str = "List of addresses reachable to the node. Queried from cloud provider, if available. More info: https://kubernetes.io/docs/reference/node/node-status/#addresses Note: This field is declared as mergeable, but the merge key is not sufficiently unique, which can cause data corruption when it is merged. Callers should instead use a full-replacement patch. See https://pr.k8s.io/79391 for an example. Consumers should assume that addresses can change during the lifetime of a Node. However, there are some exceptions where this may not be possible, such as Pods that inherit a Node's address in its own status or consumers of the downward API (status.hostIP).";
const D_OS_IMAGE: &str =
    "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).";
const D_KERNEL: &str =
    "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).";
const D_RUNTIME: &str = "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).";
const D_EV_LAST: &str = "The time at which the most recent occurrence of this event was recorded.";
const D_EV_TYPE: &str =
    "Type of this event (Normal, Warning), new types could be added in the future";
const D_EV_REASON: &str = "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.";
const D_EV_OBJECT: &str = "The object that this event is about.";
const D_FIELD_PATH: &str = "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2]. For example, if the object reference is to a container within a pod, this would take on a value like: \"spec.containers{name}\" (where \"name\" refers to the name of the container that triggered the event) or if no container name is specified \"spec.containers[2]\" (container with index 2 in this pod). This syntax is chosen only to have some well-defined way of referencing a part of an object.";
const D_EV_SOURCE: &str =
    "The component reporting this event. Should be a short machine understandable string.";
const D_EV_MESSAGE: &str = "A human-readable description of the status of this operation.";
const D_EV_FIRST: &str =
    "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)";
const D_EV_COUNT: &str = "The number of times this event has occurred.";
const D_SECRET_TYPE: &str = "Used to facilitate programmatic handling of secret data. More info: https://kubernetes.io/docs/concepts/configuration/secret/#secret-types";
const D_SECRET_DATA: &str = "Data contains the secret data. Each key must consist of alphanumeric characters, '-', '_' or '.'. The serialized form of the secret data is a base64 encoded string, representing the arbitrary (possibly non-string) data value here. Described in https://tools.ietf.org/html/rfc4648#section-4";
const D_CM_DATA: &str = "Data contains the configuration data. Each key must consist of alphanumeric characters, '-', '_' or '.'. Values with non-UTF-8 byte sequences must use the BinaryData field. The keys stored in Data must not overlap with the keys in the BinaryData field, this is enforced during validation process.";
const D_DEP_UPDATED: &str = "Total number of non-terminated pods targeted by this deployment that have the desired template spec.";
const D_DEP_AVAILABLE: &str =
    "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.";
const D_DEP_SELECTOR: &str = "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment. It must match the pod template's labels.";
const D_RS_DESIRED: &str = "Replicas is the number of desired replicas. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller/#what-is-a-replicationcontroller";
const D_RS_CURRENT: &str = "Replicas is the most recently observed number of replicas. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller/#what-is-a-replicationcontroller";
const D_RS_READY: &str =
    "readyReplicas is the number of pods targeted by this ReplicaSet with a Ready Condition.";
const D_RS_SELECTOR: &str = "Selector is a label query over pods that should match the replica count. Label keys and values that must match in order to be controlled by this replica set. It must match the pod template's labels. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors";
const D_HOLDER: &str = "holderIdentity contains the identity of the holder of a current lease. If Coordinated Leader Election is used, the holder identity must be equal to the elected LeaseCandidate.metadata.name field.";
const D_CONTAINERS: &str = "Names of each container in the template.";
const D_IMAGES: &str = "Images referenced by each container in the template.";

const DEFAULT_COLUMNS: &[Column] = &[NAME_COL, col("Created At", "date", D_CREATION)];

const POD_COLUMNS: &[Column] = &[
    NAME_COL,
    col(
        "Ready",
        "string",
        "The aggregate readiness state of this pod for accepting traffic.",
    ),
    col(
        "Status",
        "string",
        "The aggregate status of the containers in this pod.",
    ),
    col("Restarts", "string", "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
    AGE_COL,
    wide("IP", "string", D_POD_IP),
    wide("Node", "string", D_NODE_NAME),
    wide("Nominated Node", "string", D_NOMINATED),
    wide("Readiness Gates", "string", D_READINESS_GATES),
];

const NAMESPACE_COLUMNS: &[Column] = &[
    NAME_COL,
    col("Status", "string", "The status of the namespace"),
    AGE_COL,
];

const NODE_COLUMNS: &[Column] = &[
    NAME_COL,
    col("Status", "string", "The status of the node"),
    col("Roles", "string", "The roles of the node"),
    AGE_COL,
    col("Version", "string", D_KUBELET_VERSION),
    wide("Internal-IP", "string", D_ADDRESSES),
    wide("External-IP", "string", D_ADDRESSES),
    wide("OS-Image", "string", D_OS_IMAGE),
    wide("Kernel-Version", "string", D_KERNEL),
    wide("Container-Runtime", "string", D_RUNTIME),
];

const SERVICE_COLUMNS: &[Column] = &[
    NAME_COL,
    col("Type", "string", D_SVC_TYPE),
    col("Cluster-IP", "string", D_CLUSTER_IP),
    col("External-IP", "string", D_EXTERNAL_IPS),
    col("Port(s)", "string", D_PORTS),
    AGE_COL,
    wide("Selector", "string", D_SVC_SELECTOR),
];

const ENDPOINTS_COLUMNS: &[Column] = &[NAME_COL, col("Endpoints", "string", D_SUBSETS), AGE_COL];

const CONFIGMAP_COLUMNS: &[Column] = &[NAME_COL, col("Data", "string", D_CM_DATA), AGE_COL];

const SECRET_COLUMNS: &[Column] = &[
    NAME_COL,
    col("Type", "string", D_SECRET_TYPE),
    col("Data", "string", D_SECRET_DATA),
    AGE_COL,
];

const EVENT_COLUMNS: &[Column] = &[
    col("Last Seen", "string", D_EV_LAST),
    col("Type", "string", D_EV_TYPE),
    col("Reason", "string", D_EV_REASON),
    col("Object", "string", D_EV_OBJECT),
    wide("Subobject", "string", D_FIELD_PATH),
    wide("Source", "string", D_EV_SOURCE),
    col("Message", "string", D_EV_MESSAGE),
    wide("First Seen", "string", D_EV_FIRST),
    wide("Count", "string", D_EV_COUNT),
    Column {
        name: "Name",
        ty: "string",
        format: "name",
        description: D_NAME,
        priority: 1,
    },
];

const DEPLOYMENT_COLUMNS: &[Column] = &[
    NAME_COL,
    col("Ready", "string", "Number of the pod with ready state"),
    col("Up-to-date", "string", D_DEP_UPDATED),
    col("Available", "string", D_DEP_AVAILABLE),
    AGE_COL,
    wide("Containers", "string", D_CONTAINERS),
    wide("Images", "string", D_IMAGES),
    wide("Selector", "string", D_DEP_SELECTOR),
];

const REPLICASET_COLUMNS: &[Column] = &[
    NAME_COL,
    col("Desired", "integer", D_RS_DESIRED),
    col("Current", "integer", D_RS_CURRENT),
    col("Ready", "integer", D_RS_READY),
    AGE_COL,
    wide("Containers", "string", D_CONTAINERS),
    wide("Images", "string", D_IMAGES),
    wide("Selector", "string", D_RS_SELECTOR),
];

const LEASE_COLUMNS: &[Column] = &[NAME_COL, col("Holder", "string", D_HOLDER), AGE_COL];

const PDB_COLUMNS: &[Column] = &[
    NAME_COL,
    col("Min Available", "string", "The minimum number of pods that must be available simultaneously.  This can be either an integer or a string specifying a percentage, e.g. \"28%\"."),
    col("Max Unavailable", "string", "The maximum number of pods that may be unavailable simultaneously.  This can be either an integer or a string specifying a percentage, e.g. \"28%\"."),
    col("Allowed Disruptions", "integer", "Calculated number of pods that may be disrupted at this time."),
    AGE_COL,
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Printer {
    Namespace,
    Node,
    Pod,
    Service,
    Endpoints,
    ConfigMap,
    Secret,
    Event,
    Deployment,
    ReplicaSet,
    Lease,
    Job,
    CronJob,
    DaemonSet,
    StatefulSet,
    ControllerRevision,
    ReplicationController,
    ServiceAccount,
    EndpointSlice,
    PodDisruptionBudget,
}

fn printer_for(group: &str, kind: &str) -> Option<Printer> {
    Some(match (group, kind) {
        ("", "Namespace") => Printer::Namespace,
        ("", "Node") => Printer::Node,
        ("", "Pod") => Printer::Pod,
        ("", "Service") => Printer::Service,
        ("", "Endpoints") => Printer::Endpoints,
        ("", "ConfigMap") => Printer::ConfigMap,
        ("", "Secret") => Printer::Secret,
        // events.k8s.io serves the same stored Events through the same printer.
        ("", "Event") | ("events.k8s.io", "Event") => Printer::Event,
        ("apps", "Deployment") => Printer::Deployment,
        ("apps", "ReplicaSet") => Printer::ReplicaSet,
        ("coordination.k8s.io", "Lease") => Printer::Lease,
        ("batch", "Job") => Printer::Job,
        ("batch", "CronJob") => Printer::CronJob,
        ("apps", "DaemonSet") => Printer::DaemonSet,
        ("apps", "StatefulSet") => Printer::StatefulSet,
        ("apps", "ControllerRevision") => Printer::ControllerRevision,
        ("", "ReplicationController") => Printer::ReplicationController,
        ("", "ServiceAccount") => Printer::ServiceAccount,
        ("discovery.k8s.io", "EndpointSlice") => Printer::EndpointSlice,
        ("policy", "PodDisruptionBudget") => Printer::PodDisruptionBudget,
        _ => return None,
    })
}

impl Printer {
    fn columns(self) -> &'static [Column] {
        match self {
            Printer::Namespace => NAMESPACE_COLUMNS,
            Printer::Node => NODE_COLUMNS,
            Printer::Pod => POD_COLUMNS,
            Printer::Service => SERVICE_COLUMNS,
            Printer::Endpoints => ENDPOINTS_COLUMNS,
            Printer::ConfigMap => CONFIGMAP_COLUMNS,
            Printer::Secret => SECRET_COLUMNS,
            Printer::Event => EVENT_COLUMNS,
            Printer::Deployment => DEPLOYMENT_COLUMNS,
            Printer::ReplicaSet => REPLICASET_COLUMNS,
            Printer::Lease => LEASE_COLUMNS,
            Printer::Job => JOB_COLUMNS,
            Printer::CronJob => CRONJOB_COLUMNS,
            Printer::DaemonSet => DAEMONSET_COLUMNS,
            Printer::StatefulSet => STATEFULSET_COLUMNS,
            Printer::ControllerRevision => CONTROLLER_REVISION_COLUMNS,
            Printer::ReplicationController => REPLICATION_CONTROLLER_COLUMNS,
            Printer::ServiceAccount => SERVICE_ACCOUNT_COLUMNS,
            Printer::EndpointSlice => ENDPOINT_SLICE_COLUMNS,
            Printer::PodDisruptionBudget => PDB_COLUMNS,
        }
    }

    /// The row's cells (all of them, wide included) and its `conditions`, if any.
    fn cells(self, obj: &Value, now: i64) -> (Vec<Value>, Option<Value>) {
        let name = Value::from(st(obj, &["metadata", "name"]));
        let age = Value::from(age_of(obj, now));
        let cells = match self {
            Printer::Pod => return pod_cells(obj, now),
            Printer::Namespace => vec![name, st(obj, &["status", "phase"]).into(), age],
            Printer::Node => node_cells(obj, name, age),
            Printer::Service => service_cells(obj, name, age),
            Printer::Endpoints => vec![name, format_endpoints(obj).into(), age],
            Printer::ConfigMap => {
                let n = obj_len(obj, "data") + obj_len(obj, "binaryData");
                vec![name, n.into(), age]
            }
            Printer::Secret => vec![
                name,
                st(obj, &["type"]).into(),
                obj_len(obj, "data").into(),
                age,
            ],
            Printer::Event => event_cells(obj, now),
            Printer::Deployment => deployment_cells(obj, name, age),
            Printer::ReplicaSet => {
                let (names, images) = container_cells(obj);
                vec![
                    name,
                    replicas(obj).into(),
                    int(obj, &["status", "replicas"]).into(),
                    int(obj, &["status", "readyReplicas"]).into(),
                    age,
                    names.into(),
                    images.into(),
                    LabelSelector::format_json(obj.get("spec").and_then(|s| s.get("selector")))
                        .into(),
                ]
            }
            Printer::Lease => vec![name, st(obj, &["spec", "holderIdentity"]).into(), age],
            Printer::Job => job_cells(obj, name, age, now),
            Printer::CronJob => cronjob_cells(obj, name, age, now),
            Printer::DaemonSet => daemonset_cells(obj, name, age),
            Printer::StatefulSet => statefulset_cells(obj, name, age),
            Printer::ControllerRevision => controller_revision_cells(obj, name, age),
            Printer::ReplicationController => replication_controller_cells(obj, name, age),
            Printer::ServiceAccount => service_account_cells(obj, name, age),
            Printer::EndpointSlice => endpoint_slice_cells(obj, name, age),
            Printer::PodDisruptionBudget => vec![
                name,
                int_or_string(obj, &["spec", "minAvailable"]).into(),
                int_or_string(obj, &["spec", "maxUnavailable"]).into(),
                int(obj, &["status", "disruptionsAllowed"]).into(),
                age,
            ],
        };
        (cells, None)
    }
}

// ---------------------------------------------------------------------------------------------
// JSON access with Go zero-value defaults
// ---------------------------------------------------------------------------------------------

fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    (!cur.is_null()).then_some(cur)
}

fn st<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    at(v, path).and_then(Value::as_str).unwrap_or_default()
}

fn int(v: &Value, path: &[&str]) -> i64 {
    at(v, path).and_then(Value::as_i64).unwrap_or(0)
}

fn boolean(v: &Value, path: &[&str]) -> bool {
    at(v, path).and_then(Value::as_bool).unwrap_or(false)
}

fn arr<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    at(v, path)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// `IntOrString.String()` of an optional field, `N/A` when unset (printPodDisruptionBudget).
fn int_or_string(v: &Value, path: &[&str]) -> String {
    match at(v, path) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "N/A".to_string(),
    }
}

fn obj_len(v: &Value, key: &str) -> i64 {
    v.get(key)
        .and_then(Value::as_object)
        .map_or(0, |m| m.len() as i64)
}

/// `spec.replicas`, which defaulting sets to 1 when absent.
fn replicas(obj: &Value) -> i64 {
    at(obj, &["spec", "replicas"])
        .and_then(Value::as_i64)
        .unwrap_or(1)
}

/// A timestamp field as Unix seconds; None for absent, unparsable or Go's zero time.
fn time_at(v: &Value, path: &[&str]) -> Option<i64> {
    at(v, path)
        .and_then(Value::as_str)
        .and_then(parse_rfc3339)
        .filter(|t| *t != GO_ZERO_TIME)
}

/// `translateTimestampSince`.
fn since(t: Option<i64>, now: i64) -> String {
    match t {
        Some(t) => human_duration(now - t),
        None => "<unknown>".to_string(),
    }
}

fn age_of(obj: &Value, now: i64) -> String {
    since(time_at(obj, &["metadata", "creationTimestamp"]), now)
}

/// `k8s.io/apimachinery/pkg/util/duration.HumanDuration`, for a whole number of seconds.
pub fn human_duration(seconds: i64) -> String {
    // Up to 2s in the future counts as "now" (clock skew between machines).
    if seconds < -1 {
        return "<invalid>".to_string();
    } else if seconds < 0 {
        return "0s".to_string();
    } else if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        if s == 0 {
            return format!("{minutes}m");
        }
        return format!("{minutes}m{s}s");
    } else if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        if m == 0 {
            return format!("{hours}h");
        }
        return format!("{hours}h{m}m");
    } else if hours < 48 {
        return format!("{hours}h");
    } else if hours < 24 * 8 {
        let h = hours % 24;
        if h == 0 {
            return format!("{}d", hours / 24);
        }
        return format!("{}d{h}h", hours / 24);
    } else if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    } else if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        if dy == 0 {
            return format!("{}y", hours / 24 / 365);
        }
        return format!("{}y{dy}d", hours / 24 / 365);
    }
    format!("{}y", hours / 24 / 365)
}

// ---------------------------------------------------------------------------------------------
// Printers
// ---------------------------------------------------------------------------------------------

fn default_cells(obj: &Value) -> Vec<Value> {
    let created = time_at(obj, &["metadata", "creationTimestamp"]).unwrap_or(GO_ZERO_TIME);
    vec![
        st(obj, &["metadata", "name"]).into(),
        format_rfc3339(created).into(),
    ]
}

/// `layoutContainerCells` over `spec.template.spec.containers`.
fn container_cells(obj: &Value) -> (String, String) {
    let containers = arr(obj, &["spec", "template", "spec", "containers"]);
    let names: Vec<&str> = containers.iter().map(|c| st(c, &["name"])).collect();
    let images: Vec<&str> = containers.iter().map(|c| st(c, &["image"])).collect();
    (names.join(","), images.join(","))
}

fn terminated_finished(status: &Value) -> Option<i64> {
    time_at(status, &["lastState", "terminated", "finishedAt"])
}

fn has_condition(status: &Value, ty: &str) -> bool {
    arr(status, &["conditions"])
        .iter()
        .any(|c| st(c, &["type"]) == ty && st(c, &["status"]) == "True")
}

/// `printPod`: READY, STATUS (with kube's reason logic), RESTARTS, AGE and the wide cells.
fn pod_cells(pod: &Value, now: i64) -> (Vec<Value>, Option<Value>) {
    let empty = Value::Null;
    let spec = pod.get("spec").unwrap_or(&empty);
    let status = pod.get("status").unwrap_or(&empty);
    let mut restarts: i64 = 0;
    let mut ric_restarts: i64 = 0;
    let mut total = arr(spec, &["containers"]).len();
    let mut ready = 0usize;
    let mut last_restart: Option<i64> = None;
    let mut last_ric_restart: Option<i64> = None;

    let phase = st(status, &["phase"]);
    let mut reason = phase.to_string();
    if !st(status, &["reason"]).is_empty() {
        reason = st(status, &["reason"]).to_string();
    }
    for c in arr(status, &["conditions"]) {
        if st(c, &["type"]) == "PodScheduled" && st(c, &["reason"]) == "SchedulingGated" {
            reason = "SchedulingGated".to_string();
        }
    }
    let conditions = match phase {
        "Succeeded" => Some(
            json!([{"type": "Completed", "status": "True", "reason": "Succeeded",
            "message": "The pod has completed successfully."}]),
        ),
        "Failed" => Some(
            json!([{"type": "Completed", "status": "True", "reason": "Failed",
            "message": "The pod failed."}]),
        ),
        _ => None,
    };

    // Sidecars: init containers with restartPolicy Always count as regular containers.
    let init_specs = arr(spec, &["initContainers"]);
    let restartable = |name: &str| {
        init_specs
            .iter()
            .any(|c| st(c, &["name"]) == name && st(c, &["restartPolicy"]) == "Always")
    };
    total += init_specs
        .iter()
        .filter(|c| st(c, &["restartPolicy"]) == "Always")
        .count();

    let later = |cur: Option<i64>, t: Option<i64>| match (cur, t) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (None, t) => t,
        (a, None) => a,
    };

    let mut initializing = false;
    for (i, c) in arr(status, &["initContainerStatuses"]).iter().enumerate() {
        let name = st(c, &["name"]);
        restarts += int(c, &["restartCount"]);
        last_restart = later(last_restart, terminated_finished(c));
        let sidecar = restartable(name);
        if sidecar {
            ric_restarts += int(c, &["restartCount"]);
            last_ric_restart = later(last_ric_restart, terminated_finished(c));
        }
        let terminated = at(c, &["state", "terminated"]);
        let waiting = at(c, &["state", "waiting"]);
        if terminated.is_some_and(|t| int(t, &["exitCode"]) == 0) {
            continue;
        }
        if sidecar && boolean(c, &["started"]) {
            if boolean(c, &["ready"]) {
                ready += 1;
            }
            continue;
        }
        if let Some(t) = terminated {
            reason = if st(t, &["reason"]).is_empty() {
                if int(t, &["signal"]) != 0 {
                    format!("Init:Signal:{}", int(t, &["signal"]))
                } else {
                    format!("Init:ExitCode:{}", int(t, &["exitCode"]))
                }
            } else {
                format!("Init:{}", st(t, &["reason"]))
            };
        } else if let Some(w) = waiting.filter(|w| {
            let r = st(w, &["reason"]);
            !r.is_empty() && r != "PodInitializing"
        }) {
            reason = format!("Init:{}", st(w, &["reason"]));
        } else {
            reason = format!("Init:{}/{}", i, init_specs.len());
        }
        initializing = true;
        break;
    }

    if !initializing || has_condition(status, "Initialized") {
        restarts = ric_restarts;
        last_restart = last_ric_restart;
        let mut has_running = false;
        for c in arr(status, &["containerStatuses"]).iter().rev() {
            restarts += int(c, &["restartCount"]);
            last_restart = later(last_restart, terminated_finished(c));
            let waiting = at(c, &["state", "waiting"]);
            let terminated = at(c, &["state", "terminated"]);
            if let Some(w) = waiting.filter(|w| !st(w, &["reason"]).is_empty()) {
                reason = st(w, &["reason"]).to_string();
            } else if let Some(t) = terminated {
                reason = if !st(t, &["reason"]).is_empty() {
                    st(t, &["reason"]).to_string()
                } else if int(t, &["signal"]) != 0 {
                    format!("Signal:{}", int(t, &["signal"]))
                } else {
                    format!("ExitCode:{}", int(t, &["exitCode"]))
                };
            } else if boolean(c, &["ready"]) && at(c, &["state", "running"]).is_some() {
                has_running = true;
                ready += 1;
            }
        }
        // A completed container next to a still running one: the pod is not "Completed".
        if reason == "Completed" && has_running {
            reason = if has_condition(status, "Ready") {
                "Running".to_string()
            } else {
                "NotReady".to_string()
            };
        }
    }

    let deleting = at(pod, &["metadata", "deletionTimestamp"]).is_some();
    if deleting && st(status, &["reason"]) == "NodeLost" {
        reason = "Unknown".to_string();
    } else if deleting && phase != "Failed" && phase != "Succeeded" {
        reason = "Terminating".to_string();
    }

    let restarts_str = match last_restart {
        Some(t) if restarts != 0 => format!("{restarts} ({} ago)", since(Some(t), now)),
        _ => restarts.to_string(),
    };

    let or_none = |s: &str| {
        if s.is_empty() {
            "<none>".to_string()
        } else {
            s.to_string()
        }
    };
    let pod_ip = arr(status, &["podIPs"])
        .first()
        .map(|ip| st(ip, &["ip"]))
        .unwrap_or_else(|| st(status, &["podIP"]));
    let gates = arr(spec, &["readinessGates"]);
    let readiness_gates = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let conds = arr(status, &["conditions"]);
        let true_count = gates
            .iter()
            .filter(|g| {
                let ty = st(g, &["conditionType"]);
                conds
                    .iter()
                    .find(|c| st(c, &["type"]) == ty)
                    .is_some_and(|c| st(c, &["status"]) == "True")
            })
            .count();
        format!("{true_count}/{}", gates.len())
    };

    let cells = vec![
        st(pod, &["metadata", "name"]).into(),
        format!("{ready}/{total}").into(),
        reason.into(),
        restarts_str.into(),
        age_of(pod, now).into(),
        or_none(pod_ip).into(),
        or_none(st(spec, &["nodeName"])).into(),
        or_none(st(status, &["nominatedNodeName"])).into(),
        readiness_gates.into(),
    ];
    (cells, conditions)
}

fn node_cells(node: &Value, name: Value, age: Value) -> Vec<Value> {
    // Only the Ready condition feeds STATUS.
    let mut status: Vec<String> = Vec::new();
    if let Some(c) = arr(node, &["status", "conditions"])
        .iter()
        .rev()
        .find(|c| st(c, &["type"]) == "Ready")
    {
        status.push(if st(c, &["status"]) == "True" {
            "Ready".to_string()
        } else {
            "NotReady".to_string()
        });
    }
    if status.is_empty() {
        status.push("Unknown".to_string());
    }
    if boolean(node, &["spec", "unschedulable"]) {
        status.push("SchedulingDisabled".to_string());
    }

    let mut roles = std::collections::BTreeSet::new();
    if let Some(labels) = at(node, &["metadata", "labels"]).and_then(Value::as_object) {
        for (k, v) in labels {
            if let Some(role) = k.strip_prefix("node-role.kubernetes.io/") {
                if !role.is_empty() {
                    roles.insert(role.to_string());
                }
            } else if k == "kubernetes.io/role" {
                let v = v.as_str().unwrap_or_default();
                if !v.is_empty() {
                    roles.insert(v.to_string());
                }
            }
        }
    }
    let roles = if roles.is_empty() {
        "<none>".to_string()
    } else {
        roles.into_iter().collect::<Vec<_>>().join(",")
    };

    let address = |ty: &str| {
        arr(node, &["status", "addresses"])
            .iter()
            .find(|a| st(a, &["type"]) == ty)
            .map(|a| st(a, &["address"]).to_string())
            .unwrap_or_else(|| "<none>".to_string())
    };
    let info = |k: &str| {
        let v = st(node, &["status", "nodeInfo", k]);
        if v.is_empty() {
            "<unknown>".to_string()
        } else {
            v.to_string()
        }
    };
    vec![
        name,
        status.join(",").into(),
        roles.into(),
        age,
        st(node, &["status", "nodeInfo", "kubeletVersion"]).into(),
        address("InternalIP").into(),
        address("ExternalIP").into(),
        info("osImage").into(),
        info("kernelVersion").into(),
        info("containerRuntimeVersion").into(),
    ]
}

fn service_cells(svc: &Value, name: Value, age: Value) -> Vec<Value> {
    let spec = svc.get("spec").unwrap_or(&Value::Null);
    let svc_type = st(spec, &["type"]);
    let cluster_ip = arr(spec, &["clusterIPs"])
        .first()
        .and_then(Value::as_str)
        .or_else(|| at(spec, &["clusterIP"]).and_then(Value::as_str))
        .filter(|s| !s.is_empty())
        .unwrap_or("<none>");
    let external_ips: Vec<&str> = arr(spec, &["externalIPs"])
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let external = match svc_type {
        "ClusterIP" | "NodePort" => {
            if external_ips.is_empty() {
                "<none>".to_string()
            } else {
                external_ips.join(",")
            }
        }
        "LoadBalancer" => {
            // A sorted set of ingress IPs (or hostnames); never clipped, as the server is wide.
            let lb: std::collections::BTreeSet<&str> =
                arr(svc, &["status", "loadBalancer", "ingress"])
                    .iter()
                    .filter_map(|i| {
                        let ip = st(i, &["ip"]);
                        let host = st(i, &["hostname"]);
                        if !ip.is_empty() {
                            Some(ip)
                        } else if !host.is_empty() {
                            Some(host)
                        } else {
                            None
                        }
                    })
                    .collect();
            let mut all: Vec<&str> = lb.into_iter().collect();
            if !external_ips.is_empty() {
                all.extend(external_ips);
                all.join(",")
            } else if !all.is_empty() {
                all.join(",")
            } else {
                "<pending>".to_string()
            }
        }
        "ExternalName" => st(spec, &["externalName"]).to_string(),
        _ => "<unknown>".to_string(),
    };
    let ports: Vec<String> = arr(spec, &["ports"])
        .iter()
        .map(|p| {
            // Stored services are defaulted; TCP is the API default should one slip through.
            let proto = match st(p, &["protocol"]) {
                "" => "TCP",
                other => other,
            };
            let port = int(p, &["port"]);
            let node_port = int(p, &["nodePort"]);
            if node_port > 0 {
                format!("{port}:{node_port}/{proto}")
            } else {
                format!("{port}/{proto}")
            }
        })
        .collect();
    let ports = if ports.is_empty() {
        "<none>".to_string()
    } else {
        ports.join(",")
    };
    vec![
        name,
        svc_type.into(),
        cluster_ip.into(),
        external.into(),
        ports.into(),
        age,
        format_labels(at(spec, &["selector"]).and_then(Value::as_object)).into(),
    ]
}

/// `formatEndpoints(endpoints, nil)`: up to three `ip:port`, then `+ N more...`.
fn format_endpoints(ep: &Value) -> String {
    let subsets = arr(ep, &["subsets"]);
    if subsets.is_empty() {
        return "<none>".to_string();
    }
    const MAX: usize = 3;
    let mut list: Vec<String> = Vec::new();
    let mut more = false;
    let mut count = 0usize;
    for ss in subsets {
        let addresses = arr(ss, &["addresses"]);
        let ports = arr(ss, &["ports"]);
        if ports.is_empty() {
            // Headless services may have no ports.
            count += addresses.len();
            for a in addresses {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(st(a, &["ip"]).to_string());
            }
            continue;
        }
        for p in ports {
            count += addresses.len();
            for a in addresses {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                let ip = st(a, &["ip"]);
                let port = int(p, &["port"]);
                // net.JoinHostPort brackets IPv6 addresses.
                if ip.contains(':') {
                    list.push(format!("[{ip}]:{port}"));
                } else {
                    list.push(format!("{ip}:{port}"));
                }
            }
        }
    }
    let ret = list.join(",");
    if more {
        format!("{ret} + {} more...", count.saturating_sub(MAX))
    } else {
        ret
    }
}

/// An events.k8s.io/v1 Event in core/v1 field names (the conversion kube applies before
/// printing); core Events pass through unchanged.
fn core_event(ev: &Value) -> std::borrow::Cow<'_, Value> {
    let Some(m) = ev.as_object() else {
        return std::borrow::Cow::Borrowed(ev);
    };
    if m.contains_key("involvedObject") || !(m.contains_key("regarding") || m.contains_key("note"))
    {
        return std::borrow::Cow::Borrowed(ev);
    }
    let mut out = m.clone();
    for (from, to) in [
        ("regarding", "involvedObject"),
        ("note", "message"),
        ("deprecatedSource", "source"),
        ("deprecatedFirstTimestamp", "firstTimestamp"),
        ("deprecatedLastTimestamp", "lastTimestamp"),
        ("deprecatedCount", "count"),
        ("reportingController", "reportingComponent"),
    ] {
        if let Some(v) = out.remove(from) {
            out.insert(to.to_string(), v);
        }
    }
    std::borrow::Cow::Owned(Value::Object(out))
}

fn event_cells(ev: &Value, now: i64) -> Vec<Value> {
    let ev = &*core_event(ev);
    let first = match time_at(ev, &["firstTimestamp"]) {
        Some(t) => since(Some(t), now),
        None => since(time_at(ev, &["eventTime"]), now),
    };
    let mut last = match time_at(ev, &["lastTimestamp"]) {
        Some(t) => since(Some(t), now),
        None => first.clone(),
    };
    let mut count = int(ev, &["count"]);
    if let Some(series) = at(ev, &["series"]) {
        last = since(time_at(series, &["lastObservedTime"]), now);
        count = int(series, &["count"]);
    } else if count == 0 {
        // Singleton events don't have a count set in the new API.
        count = 1;
    }
    let kind = st(ev, &["involvedObject", "kind"]).to_lowercase();
    let obj_name = st(ev, &["involvedObject", "name"]);
    let target = if obj_name.is_empty() {
        kind
    } else {
        format!("{kind}/{obj_name}")
    };
    let first_non_empty = |a: &str, b: &str| {
        if a.is_empty() {
            b.to_string()
        } else {
            a.to_string()
        }
    };
    let component = first_non_empty(
        st(ev, &["source", "component"]),
        st(ev, &["reportingComponent"]),
    );
    let instance = first_non_empty(st(ev, &["source", "host"]), st(ev, &["reportingInstance"]));
    let source = if instance.is_empty() {
        component
    } else {
        format!("{component}, {instance}")
    };
    vec![
        last.into(),
        st(ev, &["type"]).into(),
        st(ev, &["reason"]).into(),
        target.into(),
        st(ev, &["involvedObject", "fieldPath"]).into(),
        source.into(),
        go_trim_space(st(ev, &["message"])).into(),
        first.into(),
        count.into(),
        st(ev, &["metadata", "name"]).into(),
    ]
}

/// `strings.TrimSpace`: Unicode white space at both ends.
fn go_trim_space(s: &str) -> &str {
    s.trim_matches(char::is_whitespace)
}

fn deployment_cells(d: &Value, name: Value, age: Value) -> Vec<Value> {
    let desired = replicas(d);
    let ready = int(d, &["status", "readyReplicas"]);
    // A nil selector converts to "select nothing", which prints as "".
    let selector =
        match LabelSelector::from_json(at(d, &["spec", "selector"]).unwrap_or(&Value::Null)) {
            Ok(s) => s.to_string(),
            Err(_) => "<invalid>".to_string(),
        };
    let (names, images) = container_cells(d);
    vec![
        name,
        format!("{ready}/{desired}").into(),
        int(d, &["status", "updatedReplicas"]).into(),
        int(d, &["status", "availableReplicas"]).into(),
        age,
        names.into(),
        images.into(),
        selector.into(),
    ]
}

// ---------------------------------------------------------------------------------------------
// The workload controllers' kinds: Jobs, CronJobs, DaemonSets, StatefulSets, ControllerRevisions,
// ReplicationControllers, ServiceAccounts, EndpointSlices (kube 1.32's `printJob`,
// `printCronJob`, `printDaemonSet`, `printStatefulSet`, `printControllerRevision`,
// `printReplicationController`, `printServiceAccount`, `printEndpointSlice`)
// ---------------------------------------------------------------------------------------------

const D_JOB_SUCCEEDED: &str = "The number of pods which reached phase Succeeded. The value increases monotonically for a given spec. However, it may decrease in reaction to scale down of elastic indexed jobs.";
const D_JOB_SELECTOR: &str = "A label query over pods that should match the pod count. Normally, the system sets this field for you. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors";
const D_CJ_SCHEDULE: &str = "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron.";
const D_CJ_TIMEZONE: &str = "The time zone name for the given schedule, see https://en.wikipedia.org/wiki/List_of_tz_database_time_zones. If not specified, this will default to the time zone of the kube-controller-manager process. The set of valid time zone names and the time zone offset is loaded from the system-wide time zone database by the API server during CronJob validation and the controller manager during execution. If no system-wide time zone database can be found a bundled version of the database is used instead. If the time zone name becomes invalid during the lifetime of a CronJob or due to a change in host configuration, the controller will stop creating new new Jobs and will create a system event with the reason UnknownTimeZone. More information can be found in https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/#time-zones";
const D_CJ_SUSPEND: &str = "This flag tells the controller to suspend subsequent executions, it does not apply to already started executions.  Defaults to false.";
const D_CJ_ACTIVE: &str = "A list of pointers to currently running jobs.";
const D_CJ_LAST: &str = "Information when was the last time the job was successfully scheduled.";
const D_DS_DESIRED: &str = "The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod). More info: https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/";
const D_DS_CURRENT: &str = "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod. More info: https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/";
const D_DS_READY: &str = "numberReady is the number of nodes that should be running the daemon pod and have one or more of the daemon pod running with a Ready Condition.";
const D_DS_UPDATED: &str = "The total number of nodes that are running updated daemon pod";
const D_DS_AVAILABLE: &str = "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)";
const D_NODE_SELECTOR: &str = "NodeSelector is a selector which must be true for the pod to fit on a node. Selector which must match a node's labels for the pod to be scheduled on that node. More info: https://kubernetes.io/docs/concepts/configuration/assign-pod-node/";
const D_DS_SELECTOR: &str = "A label query over pods that are managed by the daemon set. Must match in order to be controlled. It must match the pod template's labels. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors";
const D_CR_CONTROLLER: &str = "Controller of the object";
const D_CR_REVISION: &str = "Revision indicates the revision of the state represented by Data.";
const D_RC_DESIRED: &str = "Replicas is the number of desired replicas. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller#what-is-a-replicationcontroller";
const D_RC_CURRENT: &str = "Replicas is the most recently observed number of replicas. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller#what-is-a-replicationcontroller";
const D_RC_READY: &str = "The number of ready replicas for this replication controller.";
const D_RC_SELECTOR: &str = "Selector is a label query over pods that should match the Replicas count. If Selector is empty, it is defaulted to the labels present on the Pod template. Label keys and values that must match in order to be controlled by this replication controller, if empty defaulted to labels on Pod template. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors";
const D_SA_SECRETS: &str = "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use. Pods are only limited to this list if this service account has a \"kubernetes.io/enforce-mountable-secrets\" annotation set to \"true\". The \"kubernetes.io/enforce-mountable-secrets\" annotation is deprecated since v1.32. Prefer separate namespaces to isolate access to mounted secrets. This field should not be used to find auto-generated service account token secrets for use outside of pods. Instead, tokens can be requested directly using the TokenRequest API, or service account token secrets can be manually created. More info: https://kubernetes.io/docs/concepts/configuration/secret";
const D_ES_ADDRESS_TYPE: &str = "addressType specifies the type of address carried by this EndpointSlice. All addresses in this slice must be the same type. This field is immutable after creation. The following address types are currently supported: * IPv4: Represents an IPv4 Address. * IPv6: Represents an IPv6 Address. * FQDN: Represents a Fully Qualified Domain Name.";
const D_ES_PORTS: &str = "ports specifies the list of network ports exposed by each endpoint in this slice. Each port must have a unique name. When ports is empty, it indicates that there are no defined ports. When a port is defined with a nil port value, it indicates \"all ports\". Each slice may include a maximum of 100 ports.";
const D_ES_ENDPOINTS: &str = "endpoints is a list of unique endpoints in this slice. Each slice may include a maximum of 1000 endpoints.";

const JOB_COLUMNS: &[Column] = &[
    NAME_COL,
    col("Status", "string", "Status of the job."),
    col("Completions", "string", D_JOB_SUCCEEDED),
    col("Duration", "string", "Time required to complete the job."),
    AGE_COL,
    wide("Containers", "string", D_CONTAINERS),
    wide("Images", "string", D_IMAGES),
    wide("Selector", "string", D_JOB_SELECTOR),
];

const CRONJOB_COLUMNS: &[Column] = &[
    NAME_COL,
    col("Schedule", "string", D_CJ_SCHEDULE),
    col("Timezone", "string", D_CJ_TIMEZONE),
    col("Suspend", "boolean", D_CJ_SUSPEND),
    col("Active", "integer", D_CJ_ACTIVE),
    col("Last Schedule", "string", D_CJ_LAST),
    AGE_COL,
    wide("Containers", "string", D_CONTAINERS),
    wide("Images", "string", D_IMAGES),
    wide("Selector", "string", D_JOB_SELECTOR),
];

const DAEMONSET_COLUMNS: &[Column] = &[
    NAME_COL,
    col("Desired", "integer", D_DS_DESIRED),
    col("Current", "integer", D_DS_CURRENT),
    col("Ready", "integer", D_DS_READY),
    col("Up-to-date", "integer", D_DS_UPDATED),
    col("Available", "integer", D_DS_AVAILABLE),
    col("Node Selector", "string", D_NODE_SELECTOR),
    AGE_COL,
    wide("Containers", "string", D_CONTAINERS),
    wide("Images", "string", D_IMAGES),
    wide("Selector", "string", D_DS_SELECTOR),
];

const STATEFULSET_COLUMNS: &[Column] = &[
    NAME_COL,
    col("Ready", "string", "Number of the pod with ready state"),
    AGE_COL,
    wide("Containers", "string", D_CONTAINERS),
    wide("Images", "string", D_IMAGES),
];

const CONTROLLER_REVISION_COLUMNS: &[Column] = &[
    NAME_COL,
    col("Controller", "string", D_CR_CONTROLLER),
    col("Revision", "integer", D_CR_REVISION),
    AGE_COL,
];

const REPLICATION_CONTROLLER_COLUMNS: &[Column] = &[
    NAME_COL,
    col("Desired", "integer", D_RC_DESIRED),
    col("Current", "integer", D_RC_CURRENT),
    col("Ready", "integer", D_RC_READY),
    AGE_COL,
    wide("Containers", "string", D_CONTAINERS),
    wide("Images", "string", D_IMAGES),
    wide("Selector", "string", D_RC_SELECTOR),
];

const SERVICE_ACCOUNT_COLUMNS: &[Column] =
    &[NAME_COL, col("Secrets", "string", D_SA_SECRETS), AGE_COL];

const ENDPOINT_SLICE_COLUMNS: &[Column] = &[
    NAME_COL,
    col("AddressType", "string", D_ES_ADDRESS_TYPE),
    col("Ports", "string", D_ES_PORTS),
    col("Endpoints", "string", D_ES_ENDPOINTS),
    AGE_COL,
];

fn has_true_condition(obj: &Value, ty: &str) -> bool {
    arr(obj, &["status", "conditions"])
        .iter()
        .any(|c| st(c, &["type"]) == ty && st(c, &["status"]) == "True")
}

fn selector_cell(obj: &Value, path: &[&str]) -> Value {
    LabelSelector::format_json(at(obj, path)).into()
}

/// `printBoolPtr`.
fn bool_ptr(v: Option<&Value>) -> &'static str {
    match v.and_then(Value::as_bool) {
        None => "<unset>",
        Some(true) => "True",
        Some(false) => "False",
    }
}

fn job_cells(job: &Value, name: Value, age: Value, now: i64) -> Vec<Value> {
    let succeeded = int(job, &["status", "succeeded"]);
    let completions = match at(job, &["spec", "completions"]).and_then(Value::as_i64) {
        Some(c) => format!("{succeeded}/{c}"),
        None => {
            let parallelism = int(job, &["spec", "parallelism"]);
            if parallelism > 1 {
                format!("{succeeded}/1 of {parallelism}")
            } else {
                format!("{succeeded}/1")
            }
        }
    };
    let duration = match (
        time_at(job, &["status", "startTime"]),
        time_at(job, &["status", "completionTime"]),
    ) {
        (None, _) => String::new(),
        (Some(start), None) => human_duration(now - start),
        (Some(start), Some(end)) => human_duration(end - start),
    };
    let status = if has_true_condition(job, "Complete") {
        "Complete"
    } else if has_true_condition(job, "Failed") {
        "Failed"
    } else if at(job, &["metadata", "deletionTimestamp"]).is_some() {
        "Terminating"
    } else if has_true_condition(job, "Suspended") {
        "Suspended"
    } else if has_true_condition(job, "FailureTarget") {
        "FailureTarget"
    } else if has_true_condition(job, "SuccessCriteriaMet") {
        "SuccessCriteriaMet"
    } else {
        "Running"
    };
    let (names, images) = container_cells(job);
    vec![
        name,
        status.into(),
        completions.into(),
        duration.into(),
        age,
        names.into(),
        images.into(),
        selector_cell(job, &["spec", "selector"]),
    ]
}

fn cronjob_cells(cj: &Value, name: Value, age: Value, now: i64) -> Vec<Value> {
    let last = match time_at(cj, &["status", "lastScheduleTime"]) {
        Some(t) => since(Some(t), now),
        None => "<none>".to_string(),
    };
    let tz = at(cj, &["spec", "timeZone"])
        .and_then(Value::as_str)
        .unwrap_or("<none>");
    let containers = arr(
        cj,
        &[
            "spec",
            "jobTemplate",
            "spec",
            "template",
            "spec",
            "containers",
        ],
    );
    let names: Vec<&str> = containers.iter().map(|c| st(c, &["name"])).collect();
    let images: Vec<&str> = containers.iter().map(|c| st(c, &["image"])).collect();
    vec![
        name,
        st(cj, &["spec", "schedule"]).into(),
        tz.into(),
        bool_ptr(at(cj, &["spec", "suspend"])).into(),
        (arr(cj, &["status", "active"]).len() as i64).into(),
        last.into(),
        age,
        names.join(",").into(),
        images.join(",").into(),
        selector_cell(cj, &["spec", "jobTemplate", "spec", "selector"]),
    ]
}

fn daemonset_cells(ds: &Value, name: Value, age: Value) -> Vec<Value> {
    let (names, images) = container_cells(ds);
    let node_selector =
        at(ds, &["spec", "template", "spec", "nodeSelector"]).and_then(Value::as_object);
    vec![
        name,
        int(ds, &["status", "desiredNumberScheduled"]).into(),
        int(ds, &["status", "currentNumberScheduled"]).into(),
        int(ds, &["status", "numberReady"]).into(),
        int(ds, &["status", "updatedNumberScheduled"]).into(),
        int(ds, &["status", "numberAvailable"]).into(),
        format_labels(node_selector).into(),
        age,
        names.into(),
        images.into(),
        selector_cell(ds, &["spec", "selector"]),
    ]
}

fn statefulset_cells(sts: &Value, name: Value, age: Value) -> Vec<Value> {
    let (names, images) = container_cells(sts);
    let ready = int(sts, &["status", "readyReplicas"]);
    vec![
        name,
        format!("{ready}/{}", replicas(sts)).into(),
        age,
        names.into(),
        images.into(),
    ]
}

/// `formatResourceName` of the controller owner: `<kind>.<group>/<name>` in lower case.
fn controller_revision_cells(cr: &Value, name: Value, age: Value) -> Vec<Value> {
    let owner = arr(cr, &["metadata", "ownerReferences"])
        .iter()
        .find(|o| o.get("controller").and_then(Value::as_bool) == Some(true));
    let controller = match owner {
        None => "<none>".to_string(),
        Some(o) => {
            let kind = st(o, &["kind"]);
            let group = st(o, &["apiVersion"])
                .rsplit_once('/')
                .map_or("", |(g, _)| g);
            let owner_name = st(o, &["name"]);
            if kind.is_empty() && group.is_empty() {
                owner_name.to_string()
            } else if group.is_empty() {
                format!("{}/{owner_name}", kind.to_lowercase())
            } else {
                format!(
                    "{}.{}/{owner_name}",
                    kind.to_lowercase(),
                    group.to_lowercase()
                )
            }
        }
    };
    vec![name, controller.into(), int(cr, &["revision"]).into(), age]
}

fn replication_controller_cells(rc: &Value, name: Value, age: Value) -> Vec<Value> {
    let (names, images) = container_cells(rc);
    let selector = at(rc, &["spec", "selector"]).and_then(Value::as_object);
    vec![
        name,
        replicas(rc).into(),
        int(rc, &["status", "replicas"]).into(),
        int(rc, &["status", "readyReplicas"]).into(),
        age,
        names.into(),
        images.into(),
        format_labels(selector).into(),
    ]
}

fn service_account_cells(sa: &Value, name: Value, age: Value) -> Vec<Value> {
    vec![name, (arr(sa, &["secrets"]).len() as i64).into(), age]
}

/// `listWithMoreString`: the first three, then "+ N more...".
fn list_with_more(items: &[String], count: usize) -> String {
    const MAX: usize = 3;
    let ret = items.join(",");
    if count > MAX {
        return format!("{ret} + {} more...", count - MAX);
    }
    if ret.is_empty() {
        "<unset>".to_string()
    } else {
        ret
    }
}

fn endpoint_slice_cells(es: &Value, name: Value, age: Value) -> Vec<Value> {
    let ports = arr(es, &["ports"]);
    let shown_ports: Vec<String> = ports
        .iter()
        .take(3)
        .map(|p| match at(p, &["port"]).and_then(Value::as_i64) {
            Some(n) => n.to_string(),
            None => match at(p, &["name"]).and_then(Value::as_str) {
                Some(n) => n.to_string(),
                None => "*".to_string(),
            },
        })
        .collect();
    let addresses: Vec<&str> = arr(es, &["endpoints"])
        .iter()
        .flat_map(|e| {
            arr(e, &["addresses"])
                .iter()
                .map(|a| a.as_str().unwrap_or(""))
        })
        .collect();
    let shown: Vec<String> = addresses.iter().take(3).map(|a| a.to_string()).collect();
    vec![
        name,
        st(es, &["addressType"]).into(),
        list_with_more(&shown_ports, ports.len()).into(),
        list_with_more(&shown, addresses.len()).into(),
        age,
    ]
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod workload_tests;
