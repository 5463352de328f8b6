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

/// Unix seconds of Go's zero `time.Time` (0001-01-01T00:00:00Z).
const GO_ZERO_TIME: i64 = -62_135_596_800;

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// RFC 3339 (`2006-01-02T15:04:05.999999999Z07:00`) to Unix seconds, fractions truncated.
fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = b.get(from..from + len)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    if b.len() < 20 || b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    if !matches!(b.get(10), Some(b'T' | b't'))
        || b.get(13) != Some(&b':')
        || b.get(16) != Some(&b':')
    {
        return None;
    }
    let (y, mo, d) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (h, mi, sec) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return None;
        }
    }
    let offset = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(sign @ (b'+' | b'-')) if i + 6 == b.len() && b.get(i + 3) == Some(&b':') => {
            let off = num(i + 1, 2)? * 3600 + num(i + 4, 2)? * 60;
            if *sign == b'+' {
                off
            } else {
                -off
            }
        }
        _ => return None,
    };
    Some(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec - offset)
}

/// `time.Time.UTC().Format(time.RFC3339)`.
fn format_rfc3339(t: i64) -> String {
    let (y, m, d) = civil_from_days(t.div_euclid(86_400));
    let secs = t.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000; // 2023-11-14T22:13:20Z

    fn ts(secs_ago: i64) -> String {
        format_rfc3339(NOW - secs_ago)
    }

    fn one(api_version: &str, kind: &str, obj: Value) -> Value {
        let t = table(api_version, kind, &[obj], IncludeObject::None, NOW);
        t["rows"][0]["cells"].clone()
    }

    fn col_names(t: &Value) -> Vec<(String, i64)> {
        t["columnDefinitions"]
            .as_array()
            .expect("columns")
            .iter()
            .map(|c| {
                (
                    c["name"].as_str().unwrap_or_default().to_string(),
                    c["priority"].as_i64().unwrap_or(-1),
                )
            })
            .collect()
    }

    #[test]
    fn human_duration_matches_kube() {
        for (secs, want) in [
            (-2, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (5, "5s"),
            (119, "119s"),
            (120, "2m"),
            (123, "2m3s"),
            (599, "9m59s"),
            (600, "10m"),
            (3 * 3600 - 1, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 4 * 60, "3h4m"),
            (8 * 3600, "8h"),
            (47 * 3600 + 59 * 60, "47h"),
            (48 * 3600, "2d"),
            (51 * 3600, "2d3h"),
            (8 * 86400, "8d"),
            (729 * 86400, "729d"),
            (730 * 86400, "2y"),
            (733 * 86400, "2y3d"),
            (8 * 365 * 86400, "8y"),
            (20 * 365 * 86400, "20y"),
        ] {
            assert_eq!(human_duration(secs), want, "{secs}s");
        }
    }

    #[test]
    fn rfc3339_parse_and_format() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20Z"), Some(NOW));
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20.123456Z"), Some(NOW));
        assert_eq!(parse_rfc3339("2023-11-15T00:13:20+02:00"), Some(NOW));
        assert_eq!(parse_rfc3339("0001-01-01T00:00:00Z"), Some(GO_ZERO_TIME));
        assert_eq!(parse_rfc3339("garbage"), None);
        assert_eq!(parse_rfc3339("2023-13-14T22:13:20Z"), None);
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20"), None);
        assert_eq!(format_rfc3339(NOW), "2023-11-14T22:13:20Z");
        assert_eq!(format_rfc3339(GO_ZERO_TIME), "0001-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn include_object_parse() {
        assert_eq!(IncludeObject::parse("None"), Some(IncludeObject::None));
        assert_eq!(
            IncludeObject::parse("Metadata"),
            Some(IncludeObject::Metadata)
        );
        assert_eq!(IncludeObject::parse(""), Some(IncludeObject::Metadata));
        assert_eq!(IncludeObject::parse("Object"), Some(IncludeObject::Object));
        assert_eq!(IncludeObject::parse("object"), None);
    }

    #[test]
    fn table_shape_and_row_objects() {
        let ns = json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "default", "creationTimestamp": ts(90), "uid": "u"},
            "status": {"phase": "Active"}});
        let t = table(
            "v1",
            "Namespace",
            std::slice::from_ref(&ns),
            IncludeObject::Metadata,
            NOW,
        );
        assert_eq!(t["kind"], "Table");
        assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(t["metadata"], json!({}));
        assert_eq!(
            t["columnDefinitions"][0],
            json!({"name": "Name", "type": "string", "format": "name", "description": D_NAME, "priority": 0})
        );
        assert_eq!(t["rows"][0]["cells"], json!(["default", "Active", "90s"]));
        assert_eq!(
            t["rows"][0]["object"],
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                   "metadata": ns["metadata"].clone()})
        );
        assert!(t["rows"][0].get("conditions").is_none());
        let t = table(
            "v1",
            "Namespace",
            std::slice::from_ref(&ns),
            IncludeObject::Object,
            NOW,
        );
        assert_eq!(t["rows"][0]["object"], ns);
        let t = table("v1", "Namespace", &[ns], IncludeObject::None, NOW);
        assert_eq!(t["rows"][0]["object"], Value::Null);
        let t = table("v1", "Namespace", &[], IncludeObject::None, NOW);
        assert_eq!(t["rows"], json!([]));
    }

    #[test]
    fn empty_objects_do_not_panic() {
        for (av, kind) in [
            ("v1", "Namespace"),
            ("v1", "Node"),
            ("v1", "Pod"),
            ("v1", "Service"),
            ("v1", "Endpoints"),
            ("v1", "ConfigMap"),
            ("v1", "Secret"),
            ("v1", "Event"),
            ("apps/v1", "Deployment"),
            ("apps/v1", "ReplicaSet"),
            ("coordination.k8s.io/v1", "Lease"),
            ("v1", "ServiceAccount"),
        ] {
            for obj in [
                json!({}),
                json!(null),
                json!([1]),
                json!({"metadata": 5, "spec": "x", "status": []}),
            ] {
                let t = table(av, kind, &[obj], IncludeObject::Metadata, NOW);
                let cols = t["columnDefinitions"].as_array().map_or(0, Vec::len);
                let cells = t["rows"][0]["cells"].as_array().map_or(0, Vec::len);
                assert_eq!(cols, cells, "{kind}");
            }
        }
    }

    #[test]
    fn default_table() {
        let t = table(
            "v1",
            "ServiceAccount",
            &[json!({"metadata": {"name": "sa", "creationTimestamp": "2023-11-14T22:13:20Z"}})],
            IncludeObject::None,
            NOW,
        );
        assert_eq!(
            col_names(&t),
            vec![("Name".into(), 0), ("Created At".into(), 0)]
        );
        assert_eq!(t["columnDefinitions"][1]["type"], "date");
        assert_eq!(t["rows"][0]["cells"], json!(["sa", "2023-11-14T22:13:20Z"]));
        let cells = one("v1", "ServiceAccount", json!({"metadata": {"name": "x"}}));
        assert_eq!(cells, json!(["x", "0001-01-01T00:00:00Z"]));
    }

    #[test]
    fn namespace_and_unknown_age() {
        let cells = one("v1", "Namespace", json!({"metadata": {"name": "a"}}));
        assert_eq!(cells, json!(["a", "", "<unknown>"]));
        let cells = one(
            "v1",
            "Namespace",
            json!({"metadata": {"name": "a", "creationTimestamp": ts(-10)}}),
        );
        assert_eq!(cells[2], "<invalid>");
    }

    fn running_pod() -> Value {
        json!({
            "metadata": {"name": "web", "namespace": "default", "creationTimestamp": ts(3600)},
            "spec": {"nodeName": "node1", "containers": [{"name": "a"}, {"name": "b"}]},
            "status": {
                "phase": "Running",
                "podIP": "10.1.0.5",
                "podIPs": [{"ip": "10.1.0.5"}],
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [
                    {"name": "a", "ready": true, "restartCount": 0, "state": {"running": {"startedAt": ts(3000)}}},
                    {"name": "b", "ready": true, "restartCount": 2,
                     "state": {"running": {"startedAt": ts(300)}},
                     "lastState": {"terminated": {"exitCode": 1, "finishedAt": ts(300)}}}
                ]
            }
        })
    }

    #[test]
    fn pod_columns_and_running_row() {
        let t = table("v1", "Pod", &[running_pod()], IncludeObject::None, NOW);
        assert_eq!(
            col_names(&t),
            vec![
                ("Name".into(), 0),
                ("Ready".into(), 0),
                ("Status".into(), 0),
                ("Restarts".into(), 0),
                ("Age".into(), 0),
                ("IP".into(), 1),
                ("Node".into(), 1),
                ("Nominated Node".into(), 1),
                ("Readiness Gates".into(), 1),
            ]
        );
        assert_eq!(t["columnDefinitions"][3]["type"], "string");
        assert_eq!(
            t["rows"][0]["cells"],
            json!([
                "web",
                "2/2",
                "Running",
                "2 (5m ago)",
                "60m",
                "10.1.0.5",
                "node1",
                "<none>",
                "<none>"
            ])
        );
    }

    #[test]
    fn pod_status_reasons() {
        // Pending, unscheduled.
        let cells = one(
            "v1",
            "Pod",
            json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]},
                   "status": {"phase": "Pending"}}),
        );
        assert_eq!(
            cells,
            json!([
                "p",
                "0/1",
                "Pending",
                "0",
                "<unknown>",
                "<none>",
                "<none>",
                "<none>",
                "<none>"
            ])
        );

        // ContainerCreating.
        let cells = one(
            "v1",
            "Pod",
            json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]},
                   "status": {"phase": "Pending", "containerStatuses": [
                       {"name": "a", "ready": false, "restartCount": 0,
                        "state": {"waiting": {"reason": "ContainerCreating"}}}]}}),
        );
        assert_eq!(cells[2], "ContainerCreating");

        // CrashLoopBackOff with restarts and age of last restart.
        let cells = one(
            "v1",
            "Pod",
            json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]},
                   "status": {"phase": "Running", "containerStatuses": [
                       {"name": "a", "ready": false, "restartCount": 5,
                        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                        "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": ts(42)}}}]}}),
        );
        assert_eq!(cells[1], "0/1");
        assert_eq!(cells[2], "CrashLoopBackOff");
        assert_eq!(cells[3], "5 (42s ago)");

        // Completed, with the Succeeded row condition.
        let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]},
               "status": {"phase": "Succeeded", "containerStatuses": [
                   {"name": "a", "ready": false, "restartCount": 0,
                    "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}});
        let t = table("v1", "Pod", &[pod], IncludeObject::None, NOW);
        assert_eq!(t["rows"][0]["cells"][2], "Completed");
        assert_eq!(
            t["rows"][0]["conditions"],
            json!([{"type": "Completed", "status": "True", "reason": "Succeeded",
                    "message": "The pod has completed successfully."}])
        );

        // Terminated without a reason.
        let cells = one(
            "v1",
            "Pod",
            json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]},
                   "status": {"phase": "Failed", "containerStatuses": [
                       {"name": "a", "state": {"terminated": {"exitCode": 137, "signal": 9}}}]}}),
        );
        assert_eq!(cells[2], "Signal:9");

        // Completed container beside a running one.
        let cells = one(
            "v1",
            "Pod",
            json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
                   "status": {"phase": "Running", "containerStatuses": [
                       {"name": "a", "ready": true, "state": {"running": {}}},
                       {"name": "b", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}}),
        );
        assert_eq!(cells[2], "NotReady");
        assert_eq!(cells[1], "1/2");

        // Terminating.
        let mut pod = running_pod();
        pod["metadata"]["deletionTimestamp"] = json!(ts(1));
        assert_eq!(one("v1", "Pod", pod.clone())[2], "Terminating");
        pod["status"]["reason"] = json!("NodeLost");
        assert_eq!(one("v1", "Pod", pod)[2], "Unknown");

        // SchedulingGated.
        let cells = one(
            "v1",
            "Pod",
            json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]},
                   "status": {"phase": "Pending", "conditions": [
                       {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}}),
        );
        assert_eq!(cells[2], "SchedulingGated");
    }

    #[test]
    fn pod_init_containers() {
        let base = |statuses: Value| {
            json!({"metadata": {"name": "p"},
                   "spec": {"initContainers": [{"name": "i1"}, {"name": "i2"}],
                            "containers": [{"name": "a"}]},
                   "status": {"phase": "Pending", "initContainerStatuses": statuses,
                              "containerStatuses": [{"name": "a", "state": {"waiting": {"reason": "PodInitializing"}}}]}})
        };
        let cells = one(
            "v1",
            "Pod",
            base(json!([
                {"name": "i1", "state": {"terminated": {"exitCode": 0}}},
                {"name": "i2", "state": {"running": {}}}
            ])),
        );
        assert_eq!(cells[2], "Init:1/2");
        let cells = one(
            "v1",
            "Pod",
            base(
                json!([{"name": "i1", "restartCount": 3, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]),
            ),
        );
        assert_eq!(cells[2], "Init:CrashLoopBackOff");
        assert_eq!(cells[3], "3");
        let cells = one(
            "v1",
            "Pod",
            base(json!([{"name": "i1", "state": {"terminated": {"exitCode": 2}}}])),
        );
        assert_eq!(cells[2], "Init:ExitCode:2");
        let cells = one(
            "v1",
            "Pod",
            base(
                json!([{"name": "i1", "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}]),
            ),
        );
        assert_eq!(cells[2], "Init:Error");
        let cells = one(
            "v1",
            "Pod",
            base(json!([{"name": "i1", "state": {"waiting": {"reason": "PodInitializing"}}}])),
        );
        assert_eq!(cells[2], "Init:0/2");

        // A started sidecar (restartPolicy Always) counts as a container.
        let pod = json!({"metadata": {"name": "p"},
            "spec": {"initContainers": [{"name": "side", "restartPolicy": "Always"}],
                     "containers": [{"name": "a"}]},
            "status": {"phase": "Running",
                       "conditions": [{"type": "Initialized", "status": "True"}],
                       "initContainerStatuses": [{"name": "side", "started": true, "ready": true,
                                                  "restartCount": 1, "state": {"running": {}}}],
                       "containerStatuses": [{"name": "a", "ready": true, "restartCount": 1,
                                              "state": {"running": {}}}]}});
        let cells = one("v1", "Pod", pod);
        assert_eq!(cells[1], "2/2");
        assert_eq!(cells[2], "Running");
        assert_eq!(cells[3], "2");
    }

    #[test]
    fn pod_readiness_gates_and_nominated() {
        let mut pod = running_pod();
        pod["spec"]["readinessGates"] = json!([{"conditionType": "x"}, {"conditionType": "y"}]);
        pod["status"]["conditions"] =
            json!([{"type": "x", "status": "True"}, {"type": "y", "status": "False"}]);
        pod["status"]["nominatedNodeName"] = json!("n2");
        let cells = one("v1", "Pod", pod);
        assert_eq!(cells[7], "n2");
        assert_eq!(cells[8], "1/2");
    }

    #[test]
    fn node_rows() {
        let node = json!({
            "metadata": {"name": "n1", "creationTimestamp": ts(86400 * 3),
                         "labels": {"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/": "x",
                                    "kubernetes.io/role": "worker"}},
            "spec": {"unschedulable": true},
            "status": {
                "conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}],
                "addresses": [{"type": "InternalIP", "address": "192.168.1.2"}, {"type": "Hostname", "address": "n1"}],
                "nodeInfo": {"kubeletVersion": "v1.32.0", "osImage": "Debian", "kernelVersion": "6.1",
                             "containerRuntimeVersion": "containerd://1.7"}
            }
        });
        let t = table("v1", "Node", &[node], IncludeObject::None, NOW);
        assert_eq!(
            col_names(&t)
                .iter()
                .map(|c| c.0.as_str())
                .collect::<Vec<_>>(),
            [
                "Name",
                "Status",
                "Roles",
                "Age",
                "Version",
                "Internal-IP",
                "External-IP",
                "OS-Image",
                "Kernel-Version",
                "Container-Runtime"
            ]
        );
        assert_eq!(
            t["rows"][0]["cells"],
            json!([
                "n1",
                "Ready,SchedulingDisabled",
                "control-plane,worker",
                "3d",
                "v1.32.0",
                "192.168.1.2",
                "<none>",
                "Debian",
                "6.1",
                "containerd://1.7"
            ])
        );
        let cells = one(
            "v1",
            "Node",
            json!({"metadata": {"name": "n"},
            "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}),
        );
        assert_eq!(
            cells,
            json!([
                "n",
                "NotReady",
                "<none>",
                "<unknown>",
                "",
                "<none>",
                "<none>",
                "<unknown>",
                "<unknown>",
                "<unknown>"
            ])
        );
        assert_eq!(one("v1", "Node", json!({}))[1], "Unknown");
    }

    #[test]
    fn service_rows() {
        let svc = json!({"metadata": {"name": "kubernetes", "creationTimestamp": ts(600)},
            "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.1", "clusterIPs": ["10.96.0.1"],
                     "ports": [{"port": 443, "protocol": "TCP", "targetPort": 6443}],
                     "selector": {"b": "2", "a": "1"}}});
        assert_eq!(
            one("v1", "Service", svc),
            json!([
                "kubernetes",
                "ClusterIP",
                "10.96.0.1",
                "<none>",
                "443/TCP",
                "10m",
                "a=1,b=2"
            ])
        );
        let np = json!({"metadata": {"name": "np"},
            "spec": {"type": "NodePort", "clusterIPs": ["10.96.0.9"], "externalIPs": ["1.2.3.4"],
                     "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]}});
        let cells = one("v1", "Service", np);
        assert_eq!(cells[3], "1.2.3.4");
        assert_eq!(cells[4], "80:30080/TCP,53/UDP");
        assert_eq!(cells[6], "<none>");
        let lb = json!({"metadata": {"name": "lb"}, "spec": {"type": "LoadBalancer", "clusterIP": "None"},
            "status": {"loadBalancer": {"ingress": [{"ip": "5.6.7.8"}, {"hostname": "a.example.com"}, {"ip": "1.1.1.1"}]}}});
        let cells = one("v1", "Service", lb);
        assert_eq!(cells[2], "None");
        assert_eq!(cells[3], "1.1.1.1,5.6.7.8,a.example.com");
        assert_eq!(cells[4], "<none>");
        let pending = json!({"metadata": {"name": "lb"}, "spec": {"type": "LoadBalancer"}});
        assert_eq!(one("v1", "Service", pending)[3], "<pending>");
        let ext = json!({"metadata": {"name": "e"}, "spec": {"type": "ExternalName", "externalName": "db.example.com"}});
        let cells = one("v1", "Service", ext);
        assert_eq!(cells[2], "<none>");
        assert_eq!(cells[3], "db.example.com");
    }

    #[test]
    fn endpoints_rows() {
        let ep = json!({"metadata": {"name": "e"}, "subsets": [
            {"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}], "ports": [{"port": 80}, {"port": 443}]}
        ]});
        assert_eq!(
            one("v1", "Endpoints", ep)[1],
            "10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 1 more..."
        );
        let ep = json!({"metadata": {"name": "e"}, "subsets": [{"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 80}]}]});
        assert_eq!(one("v1", "Endpoints", ep)[1], "[fd00::1]:80");
        let ep =
            json!({"metadata": {"name": "e"}, "subsets": [{"addresses": [{"ip": "10.0.0.1"}]}]});
        assert_eq!(one("v1", "Endpoints", ep)[1], "10.0.0.1");
        assert_eq!(
            one("v1", "Endpoints", json!({"metadata": {"name": "e"}}))[1],
            "<none>"
        );
    }

    #[test]
    fn configmap_secret_lease_rows() {
        let cm = json!({"metadata": {"name": "c", "creationTimestamp": ts(5)},
            "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}});
        assert_eq!(one("v1", "ConfigMap", cm), json!(["c", 3, "5s"]));
        let s = json!({"metadata": {"name": "s", "creationTimestamp": ts(123)}, "type": "Opaque", "data": {"k": "dg=="}});
        let t = table("v1", "Secret", &[s], IncludeObject::None, NOW);
        assert_eq!(
            col_names(&t)
                .iter()
                .map(|c| c.0.as_str())
                .collect::<Vec<_>>(),
            ["Name", "Type", "Data", "Age"]
        );
        assert_eq!(t["rows"][0]["cells"], json!(["s", "Opaque", 1, "2m3s"]));
        let l = json!({"metadata": {"name": "l", "creationTimestamp": ts(86400 * 10)}, "spec": {"holderIdentity": "me"}});
        assert_eq!(
            one("coordination.k8s.io/v1", "Lease", l),
            json!(["l", "me", "10d"])
        );
        assert_eq!(
            one(
                "coordination.k8s.io/v1",
                "Lease",
                json!({"metadata": {"name": "l"}})
            )[1],
            ""
        );
    }

    #[test]
    fn event_rows() {
        let ev = json!({"metadata": {"name": "p.123", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "p", "fieldPath": "spec.containers{a}"},
            "reason": "Pulled", "message": "  Pulled image  \n", "type": "Normal",
            "source": {"component": "kubelet", "host": "node1"},
            "firstTimestamp": ts(600), "lastTimestamp": ts(30), "count": 3});
        let t = table("v1", "Event", &[ev], IncludeObject::None, NOW);
        assert_eq!(
            col_names(&t),
            vec![
                ("Last Seen".into(), 0),
                ("Type".into(), 0),
                ("Reason".into(), 0),
                ("Object".into(), 0),
                ("Subobject".into(), 1),
                ("Source".into(), 1),
                ("Message".into(), 0),
                ("First Seen".into(), 1),
                ("Count".into(), 1),
                ("Name".into(), 1),
            ]
        );
        assert_eq!(
            t["rows"][0]["cells"],
            json!([
                "30s",
                "Normal",
                "Pulled",
                "pod/p",
                "spec.containers{a}",
                "kubelet, node1",
                "Pulled image",
                "10m",
                3,
                "p.123"
            ])
        );
        // New-style event: eventTime, series, reportingController.
        let ev = json!({"metadata": {"name": "e"}, "involvedObject": {"kind": "Node"},
            "eventTime": "2023-11-14T22:12:20.000000Z", "reportingComponent": "sched",
            "reportingInstance": "sched-1",
            "series": {"count": 4, "lastObservedTime": "2023-11-14T22:13:10.500000Z"}});
        let cells = one("v1", "Event", ev);
        assert_eq!(cells[0], "10s");
        assert_eq!(cells[3], "node");
        assert_eq!(cells[5], "sched, sched-1");
        assert_eq!(cells[7], "60s");
        assert_eq!(cells[8], 4);
        let cells = one("v1", "Event", json!({"metadata": {"name": "e"}}));
        assert_eq!(cells[0], "<unknown>");
        assert_eq!(cells[8], 1);

        // events.k8s.io/v1 field names.
        let ev = json!({"metadata": {"name": "e2"}, "regarding": {"kind": "Pod", "name": "p"},
            "note": "hello", "reason": "Scheduled", "type": "Normal",
            "reportingController": "default-scheduler", "eventTime": "2023-11-14T22:13:00.000000Z",
            "deprecatedCount": 2});
        assert_eq!(
            one("events.k8s.io/v1", "Event", ev),
            json!([
                "20s",
                "Normal",
                "Scheduled",
                "pod/p",
                "",
                "default-scheduler",
                "hello",
                "20s",
                2,
                "e2"
            ])
        );
    }

    #[test]
    fn deployment_and_replicaset_rows() {
        let d = json!({"metadata": {"name": "web", "creationTimestamp": ts(7200)},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1"}, {"name": "side", "image": "busybox"}]}}},
            "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}});
        let t = table("apps/v1", "Deployment", &[d], IncludeObject::None, NOW);
        assert_eq!(
            col_names(&t)
                .iter()
                .map(|c| c.0.as_str())
                .collect::<Vec<_>>(),
            [
                "Name",
                "Ready",
                "Up-to-date",
                "Available",
                "Age",
                "Containers",
                "Images",
                "Selector"
            ]
        );
        assert_eq!(
            t["rows"][0]["cells"],
            json!([
                "web",
                "2/3",
                3,
                2,
                "120m",
                "nginx,side",
                "nginx:1,busybox",
                "app=web"
            ])
        );
        let cells = one(
            "apps/v1",
            "Deployment",
            json!({"metadata": {"name": "d"}, "spec": {"replicas": 0}}),
        );
        assert_eq!(cells[1], "0/0");
        assert_eq!(cells[7], "");
        let bad = json!({"metadata": {"name": "d"}, "spec": {"selector": {"matchExpressions": [{"key": "a", "operator": "Nope"}]}}});
        assert_eq!(one("apps/v1", "Deployment", bad)[7], "<invalid>");

        let rs = json!({"metadata": {"name": "web-abc", "creationTimestamp": ts(60)},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web", "pod-template-hash": "abc"}},
                     "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1"}]}}},
            "status": {"replicas": 3, "readyReplicas": 1}});
        let t = table("apps/v1", "ReplicaSet", &[rs], IncludeObject::None, NOW);
        assert_eq!(
            col_names(&t)
                .iter()
                .map(|c| (c.0.as_str(), c.1))
                .collect::<Vec<_>>(),
            [
                ("Name", 0),
                ("Desired", 0),
                ("Current", 0),
                ("Ready", 0),
                ("Age", 0),
                ("Containers", 1),
                ("Images", 1),
                ("Selector", 1)
            ]
        );
        assert_eq!(
            t["rows"][0]["cells"],
            json!([
                "web-abc",
                3,
                3,
                1,
                "60s",
                "nginx",
                "nginx:1",
                "app=web,pod-template-hash=abc"
            ])
        );
        assert_eq!(one("apps/v1", "ReplicaSet", json!({}))[7], "<none>");
    }
}
