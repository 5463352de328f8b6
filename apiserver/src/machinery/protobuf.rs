//! Decoding of Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`).
//!
//! A body is the magic `k8s\0` followed by a `runtime.Unknown` message
//! (`typeMeta = 1 {apiVersion = 1, kind = 2}`, `raw = 2`, `contentEncoding = 3`,
//! `contentType = 4`) whose `raw` is the object's own protobuf encoding, following the
//! `generated.proto` files of k8s.io/api and k8s.io/apimachinery.
//!
//! The object is turned into the JSON value the same object sent as JSON would give: a small
//! wire-format reader walks each message driven by a per-message table (field number → JSON
//! name and kind). Go's marshaller writes every non-pointer scalar even when zero, so fields
//! that are `omitempty` in the Go types drop zero values, while pointer fields (written only
//! when set) and non-`omitempty` fields keep them. Unknown field numbers are skipped, as the
//! JSON path drops unknown fields; a message type missing from the table is reported as
//! unsupported; malformed input is an error, never a panic.

use base64::Engine;
use serde_json::{Map, Value};

use super::time;

/// The 4-byte prefix of every Kubernetes protobuf body.
pub const MAGIC: &[u8; 4] = b"k8s\0";

/// Nesting bound for messages (the deepest served object is far shallower).
const DEPTH_MAX: usize = 48;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The bytes are not valid protobuf for the expected message (a 400).
    Malformed(String),
    /// The type is not one this server can decode from protobuf (a 415).
    Unsupported(String),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Malformed(m) | DecodeError::Unsupported(m) => f.write_str(m),
        }
    }
}

fn malformed(m: impl Into<String>) -> DecodeError {
    DecodeError::Malformed(m.into())
}

/// How a field's value becomes JSON.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// string, `omitempty` (empty dropped)
    Str,
    /// string that is kept even when empty (pointer or non-`omitempty`)
    StrKeep,
    /// varint integer, `omitempty` (zero dropped)
    Int,
    /// varint integer kept even when zero
    IntKeep,
    /// bool, `omitempty`
    Bool,
    /// bool kept even when false
    BoolKeep,
    /// embedded message, emitted whenever present on the wire
    Msg(&'static str),
    /// embedded message whose fields are inlined into the parent (Go embedded struct)
    Inline(&'static str),
    /// meta/v1 Time (RFC 3339, seconds); zero dropped
    Time,
    /// meta/v1 MicroTime (RFC 3339, microseconds); zero dropped
    MicroTime,
    /// intstr.IntOrString
    IntOrStr,
    /// resource.Quantity
    Quantity,
    /// meta/v1 FieldsV1 (raw JSON)
    FieldsV1,
    /// repeated string
    RepStr,
    /// repeated message
    RepMsg(&'static str),
    /// map<string, string>
    MapStr,
    /// map<string, bytes> (base64 values)
    MapBytes,
    /// map<string, Quantity> (ResourceList)
    MapQty,
}

type Fields = &'static [(u32, &'static str, Kind)];

use Kind::*;

/// The field table of message type `name`.
fn fields(name: &str) -> Option<Fields> {
    Some(match name {
        // ---- meta/v1 ----
        "ObjectMeta" => &[
            (1, "name", Str),
            (2, "generateName", Str),
            (3, "namespace", Str),
            (4, "selfLink", Str),
            (5, "uid", Str),
            (6, "resourceVersion", Str),
            (7, "generation", Int),
            (8, "creationTimestamp", Time),
            (9, "deletionTimestamp", Time),
            (10, "deletionGracePeriodSeconds", IntKeep),
            (11, "labels", MapStr),
            (12, "annotations", MapStr),
            (13, "ownerReferences", RepMsg("OwnerReference")),
            (14, "finalizers", RepStr),
            (17, "managedFields", RepMsg("ManagedFieldsEntry")),
        ],
        "OwnerReference" => &[
            (5, "apiVersion", StrKeep),
            (1, "kind", StrKeep),
            (3, "name", StrKeep),
            (4, "uid", StrKeep),
            (6, "controller", BoolKeep),
            (7, "blockOwnerDeletion", BoolKeep),
        ],
        "ManagedFieldsEntry" => &[
            (1, "manager", Str),
            (2, "operation", Str),
            (3, "apiVersion", Str),
            (4, "time", Time),
            (6, "fieldsType", Str),
            (7, "fieldsV1", FieldsV1),
            (8, "subresource", Str),
        ],
        "LabelSelector" => &[
            (1, "matchLabels", MapStr),
            (2, "matchExpressions", RepMsg("LabelSelectorRequirement")),
        ],
        "LabelSelectorRequirement" => &[
            (1, "key", StrKeep),
            (2, "operator", StrKeep),
            (3, "values", RepStr),
        ],
        "Condition" => &[
            (1, "type", StrKeep),
            (2, "status", StrKeep),
            (3, "observedGeneration", Int),
            (4, "lastTransitionTime", Time),
            (5, "reason", StrKeep),
            (6, "message", StrKeep),
        ],
        // ---- core/v1 ----
        "Namespace" => &[
            (1, "metadata", Msg("ObjectMeta")),
            (2, "spec", Msg("NamespaceSpec")),
            (3, "status", Msg("NamespaceStatus")),
        ],
        "NamespaceSpec" => &[(1, "finalizers", RepStr)],
        "NamespaceStatus" => &[
            (1, "phase", Str),
            (2, "conditions", RepMsg("NamespaceCondition")),
        ],
        "NamespaceCondition" => &[
            (1, "type", StrKeep),
            (2, "status", StrKeep),
            (4, "lastTransitionTime", Time),
            (5, "reason", Str),
            (6, "message", Str),
        ],
        "ConfigMap" => &[
            (1, "metadata", Msg("ObjectMeta")),
            (4, "immutable", BoolKeep),
            (2, "data", MapStr),
            (3, "binaryData", MapBytes),
        ],
        "Secret" => &[
            (1, "metadata", Msg("ObjectMeta")),
            (5, "immutable", BoolKeep),
            (2, "data", MapBytes),
            (4, "stringData", MapStr),
            (3, "type", Str),
        ],
        "Service" => &[
            (1, "metadata", Msg("ObjectMeta")),
            (2, "spec", Msg("ServiceSpec")),
            (3, "status", Msg("ServiceStatus")),
        ],
        "ServiceSpec" => &[
            (1, "ports", RepMsg("ServicePort")),
            (2, "selector", MapStr),
            (3, "clusterIP", Str),
            (18, "clusterIPs", RepStr),
            (4, "type", Str),
            (5, "externalIPs", RepStr),
            (7, "sessionAffinity", Str),
            (8, "loadBalancerIP", Str),
            (9, "loadBalancerSourceRanges", RepStr),
            (10, "externalName", Str),
            (11, "externalTrafficPolicy", Str),
            (12, "healthCheckNodePort", Int),
            (13, "publishNotReadyAddresses", Bool),
            (14, "sessionAffinityConfig", Msg("SessionAffinityConfig")),
            (19, "ipFamilies", RepStr),
            (17, "ipFamilyPolicy", StrKeep),
            (20, "allocateLoadBalancerNodePorts", BoolKeep),
            (21, "loadBalancerClass", StrKeep),
            (22, "internalTrafficPolicy", StrKeep),
            (23, "trafficDistribution", StrKeep),
        ],
        "ServicePort" => &[
            (1, "name", Str),
            (2, "protocol", Str),
            (6, "appProtocol", StrKeep),
            (3, "port", IntKeep),
            (4, "targetPort", IntOrStr),
            (5, "nodePort", Int),
        ],
        "SessionAffinityConfig" => &[(1, "clientIP", Msg("ClientIPConfig"))],
        "ClientIPConfig" => &[(1, "timeoutSeconds", IntKeep)],
        "ServiceStatus" => &[
            (1, "loadBalancer", Msg("LoadBalancerStatus")),
            (2, "conditions", RepMsg("Condition")),
        ],
        "LoadBalancerStatus" => &[(1, "ingress", RepMsg("LoadBalancerIngress"))],
        "LoadBalancerIngress" => &[
            (1, "ip", Str),
            (2, "hostname", Str),
            (3, "ipMode", StrKeep),
            (4, "ports", RepMsg("PortStatus")),
        ],
        "PortStatus" => &[
            (1, "port", IntKeep),
            (2, "protocol", StrKeep),
            (3, "error", StrKeep),
        ],
        "ObjectReference" => &[
            (1, "kind", Str),
            (2, "namespace", Str),
            (3, "name", Str),
            (4, "uid", Str),
            (5, "apiVersion", Str),
            (6, "resourceVersion", Str),
            (7, "fieldPath", Str),
        ],
        "LocalObjectReference" => &[(1, "name", Str)],
        "Endpoints" => &[
            (1, "metadata", Msg("ObjectMeta")),
            (2, "subsets", RepMsg("EndpointSubset")),
        ],
        "EndpointSubset" => &[
            (1, "addresses", RepMsg("EndpointAddress")),
            (2, "notReadyAddresses", RepMsg("EndpointAddress")),
            (3, "ports", RepMsg("EndpointPort")),
        ],
        "EndpointAddress" => &[
            (1, "ip", StrKeep),
            (3, "hostname", Str),
            (4, "nodeName", StrKeep),
            (2, "targetRef", Msg("ObjectReference")),
        ],
        "EndpointPort" => &[
            (1, "name", Str),
            (2, "port", IntKeep),
            (3, "protocol", Str),
            (4, "appProtocol", StrKeep),
        ],
        "Event" => &[
            (1, "metadata", Msg("ObjectMeta")),
            (2, "involvedObject", Msg("ObjectReference")),
            (3, "reason", Str),
            (4, "message", Str),
            (5, "source", Msg("EventSource")),
            (6, "firstTimestamp", Time),
            (7, "lastTimestamp", Time),
            (8, "count", Int),
            (9, "type", Str),
            (10, "eventTime", MicroTime),
            (11, "series", Msg("EventSeries")),
            (12, "action", Str),
            (13, "related", Msg("ObjectReference")),
            (14, "reportingComponent", StrKeep),
            (15, "reportingInstance", StrKeep),
        ],
        "EventSource" => &[(1, "component", Str), (2, "host", Str)],
        "EventSeries" => &[(1, "count", Int), (2, "lastObservedTime", MicroTime)],
        "Binding" => &[
            (1, "metadata", Msg("ObjectMeta")),
            (2, "target", Msg("ObjectReference")),
        ],
        "Node" => &[
            (1, "metadata", Msg("ObjectMeta")),
            (2, "spec", Msg("NodeSpec")),
            (3, "status", Msg("NodeStatus")),
        ],
        "NodeSpec" => &[
            (1, "podCIDR", Str),
            (7, "podCIDRs", RepStr),
            (3, "providerID", Str),
            (4, "unschedulable", Bool),
            (5, "taints", RepMsg("Taint")),
            (2, "externalID", Str),
        ],
        "Taint" => &[
            (1, "key", StrKeep),
            (2, "value", Str),
            (3, "effect", StrKeep),
            (4, "timeAdded", Time),
        ],
        "NodeStatus" => &[
            (1, "capacity", MapQty),
            (2, "allocatable", MapQty),
            (3, "phase", Str),
            (4, "conditions", RepMsg("NodeCondition")),
            (5, "addresses", RepMsg("NodeAddress")),
            (6, "daemonEndpoints", Msg("NodeDaemonEndpoints")),
            (7, "nodeInfo", Msg("NodeSystemInfo")),
            (9, "volumesInUse", RepStr),
        ],
        "NodeCondition" => &[
            (1, "type", StrKeep),
            (2, "status", StrKeep),
            (3, "lastHeartbeatTime", Time),
            (4, "lastTransitionTime", Time),
            (5, "reason", Str),
            (6, "message", Str),
        ],
        "NodeAddress" => &[(1, "type", StrKeep), (2, "address", StrKeep)],
        "NodeDaemonEndpoints" => &[(1, "kubeletEndpoint", Msg("DaemonEndpoint"))],
        "DaemonEndpoint" => &[(1, "Port", IntKeep)],
        "NodeSystemInfo" => &[
            (1, "machineID", StrKeep),
            (2, "systemUUID", StrKeep),
            (3, "bootID", StrKeep),
            (4, "kernelVersion", StrKeep),
            (5, "osImage", StrKeep),
            (6, "containerRuntimeVersion", StrKeep),
            (7, "kubeletVersion", StrKeep),
            (8, "kubeProxyVersion", StrKeep),
            (9, "operatingSystem", StrKeep),
            (10, "architecture", StrKeep),
        ],
        "Pod" => &[
            (1, "metadata", Msg("ObjectMeta")),
            (2, "spec", Msg("PodSpec")),
            (3, "status", Msg("PodStatus")),
        ],
        "PodTemplateSpec" => &[
            (1, "metadata", Msg("ObjectMeta")),
            (2, "spec", Msg("PodSpec")),
        ],
        "PodSpec" => &[
            (1, "volumes", RepMsg("Volume")),
            (20, "initContainers", RepMsg("Container")),
            (2, "containers", RepMsg("Container")),
            (3, "restartPolicy", Str),
            (4, "terminationGracePeriodSeconds", IntKeep),
            (5, "activeDeadlineSeconds", IntKeep),
            (6, "dnsPolicy", Str),
            (7, "nodeSelector", MapStr),
            (8, "serviceAccountName", Str),
            (9, "serviceAccount", Str),
            (21, "automountServiceAccountToken", BoolKeep),
            (10, "nodeName", Str),
            (11, "hostNetwork", Bool),
            (12, "hostPID", Bool),
            (13, "hostIPC", Bool),
            (27, "shareProcessNamespace", BoolKeep),
            (15, "imagePullSecrets", RepMsg("LocalObjectReference")),
            (16, "hostname", Str),
            (17, "subdomain", Str),
            (19, "schedulerName", Str),
            (22, "tolerations", RepMsg("Toleration")),
            (24, "priorityClassName", Str),
            (25, "priority", IntKeep),
            (29, "runtimeClassName", StrKeep),
            (30, "enableServiceLinks", BoolKeep),
            (31, "preemptionPolicy", StrKeep),
            (32, "overhead", MapQty),
            (35, "setHostnameAsFQDN", BoolKeep),
            (37, "hostUsers", BoolKeep),
        ],
        "Toleration" => &[
            (1, "key", Str),
            (2, "operator", Str),
            (3, "value", Str),
            (4, "effect", Str),
            (5, "tolerationSeconds", IntKeep),
        ],
        "Container" => &[
            (1, "name", StrKeep),
            (2, "image", Str),
            (3, "command", RepStr),
            (4, "args", RepStr),
            (5, "workingDir", Str),
            (6, "ports", RepMsg("ContainerPort")),
            (19, "envFrom", RepMsg("EnvFromSource")),
            (7, "env", RepMsg("EnvVar")),
            (8, "resources", Msg("ResourceRequirements")),
            (24, "restartPolicy", StrKeep),
            (9, "volumeMounts", RepMsg("VolumeMount")),
            (10, "livenessProbe", Msg("Probe")),
            (11, "readinessProbe", Msg("Probe")),
            (22, "startupProbe", Msg("Probe")),
            (13, "terminationMessagePath", Str),
            (20, "terminationMessagePolicy", Str),
            (14, "imagePullPolicy", Str),
            (16, "stdin", Bool),
            (17, "stdinOnce", Bool),
            (18, "tty", Bool),
        ],
        "ContainerPort" => &[
            (1, "name", Str),
            (2, "hostPort", Int),
            (3, "containerPort", IntKeep),
            (4, "protocol", Str),
            (5, "hostIP", Str),
        ],
        "EnvVar" => &[
            (1, "name", StrKeep),
            (2, "value", Str),
            (3, "valueFrom", Msg("EnvVarSource")),
        ],
        "EnvVarSource" => &[
            (1, "fieldRef", Msg("ObjectFieldSelector")),
            (2, "resourceFieldRef", Msg("ResourceFieldSelector")),
            (3, "configMapKeyRef", Msg("ConfigMapKeySelector")),
            (4, "secretKeyRef", Msg("SecretKeySelector")),
        ],
        "ObjectFieldSelector" => &[(1, "apiVersion", Str), (2, "fieldPath", StrKeep)],
        "ResourceFieldSelector" => &[
            (1, "containerName", Str),
            (2, "resource", StrKeep),
            (3, "divisor", Quantity),
        ],
        "ConfigMapKeySelector" | "SecretKeySelector" => &[
            (1, "localObjectReference", Inline("LocalObjectReference")),
            (2, "key", StrKeep),
            (3, "optional", BoolKeep),
        ],
        "EnvFromSource" => &[
            (1, "prefix", Str),
            (2, "configMapRef", Msg("ConfigMapEnvSource")),
            (3, "secretRef", Msg("SecretEnvSource")),
        ],
        "ConfigMapEnvSource" | "SecretEnvSource" => &[
            (1, "localObjectReference", Inline("LocalObjectReference")),
            (2, "optional", BoolKeep),
        ],
        "ResourceRequirements" => &[
            (1, "limits", MapQty),
            (2, "requests", MapQty),
            (3, "claims", RepMsg("ResourceClaim")),
        ],
        "ResourceClaim" => &[(1, "name", StrKeep), (2, "request", Str)],
        "VolumeMount" => &[
            (1, "name", StrKeep),
            (2, "readOnly", Bool),
            (7, "recursiveReadOnly", StrKeep),
            (3, "mountPath", StrKeep),
            (4, "subPath", Str),
            (5, "mountPropagation", StrKeep),
            (6, "subPathExpr", Str),
        ],
        "Probe" => &[
            (1, "handler", Inline("ProbeHandler")),
            (2, "initialDelaySeconds", Int),
            (3, "timeoutSeconds", Int),
            (4, "periodSeconds", Int),
            (5, "successThreshold", Int),
            (6, "failureThreshold", Int),
            (7, "terminationGracePeriodSeconds", IntKeep),
        ],
        "ProbeHandler" => &[
            (1, "exec", Msg("ExecAction")),
            (2, "httpGet", Msg("HTTPGetAction")),
            (3, "tcpSocket", Msg("TCPSocketAction")),
            (4, "grpc", Msg("GRPCAction")),
        ],
        "ExecAction" => &[(1, "command", RepStr)],
        "HTTPGetAction" => &[
            (1, "path", Str),
            (2, "port", IntOrStr),
            (3, "host", Str),
            (4, "scheme", Str),
            (5, "httpHeaders", RepMsg("HTTPHeader")),
        ],
        "HTTPHeader" => &[(1, "name", StrKeep), (2, "value", StrKeep)],
        "TCPSocketAction" => &[(1, "port", IntOrStr), (2, "host", Str)],
        "GRPCAction" => &[(1, "port", IntKeep), (2, "service", StrKeep)],
        "Volume" => &[
            (1, "name", StrKeep),
            (2, "volumeSource", Inline("VolumeSource")),
        ],
        "VolumeSource" => &[
            (1, "hostPath", Msg("HostPathVolumeSource")),
            (2, "emptyDir", Msg("EmptyDirVolumeSource")),
            (6, "secret", Msg("SecretVolumeSource")),
            (
                10,
                "persistentVolumeClaim",
                Msg("PersistentVolumeClaimVolumeSource"),
            ),
            (16, "downwardAPI", Msg("DownwardAPIVolumeSource")),
            (19, "configMap", Msg("ConfigMapVolumeSource")),
        ],
        "DownwardAPIVolumeSource" => &[
            (1, "items", RepMsg("DownwardAPIVolumeFile")),
            (2, "defaultMode", IntKeep),
        ],
        "DownwardAPIVolumeFile" => &[
            (1, "path", StrKeep),
            (2, "fieldRef", Msg("ObjectFieldSelector")),
            (3, "resourceFieldRef", Msg("ResourceFieldSelector")),
            (4, "mode", IntKeep),
        ],
        "HostPathVolumeSource" => &[(1, "path", StrKeep), (2, "type", StrKeep)],
        "EmptyDirVolumeSource" => &[(1, "medium", Str), (2, "sizeLimit", Quantity)],
        "SecretVolumeSource" => &[
            (1, "secretName", Str),
            (2, "items", RepMsg("KeyToPath")),
            (3, "defaultMode", IntKeep),
            (4, "optional", BoolKeep),
        ],
        "ConfigMapVolumeSource" => &[
            (1, "localObjectReference", Inline("LocalObjectReference")),
            (2, "items", RepMsg("KeyToPath")),
            (3, "defaultMode", IntKeep),
            (4, "optional", BoolKeep),
        ],
        "PersistentVolumeClaimVolumeSource" => &[(1, "claimName", StrKeep), (2, "readOnly", Bool)],
        "KeyToPath" => &[
            (1, "key", StrKeep),
            (2, "path", StrKeep),
            (3, "mode", IntKeep),
        ],
        "PodStatus" => &[
            (1, "phase", Str),
            (2, "conditions", RepMsg("PodCondition")),
            (3, "message", Str),
            (4, "reason", Str),
            (11, "nominatedNodeName", Str),
            (5, "hostIP", Str),
            (6, "podIP", Str),
            (12, "podIPs", RepMsg("PodIP")),
            (7, "startTime", Time),
            (9, "qosClass", Str),
        ],
        "PodCondition" => &[
            (1, "type", StrKeep),
            (2, "status", StrKeep),
            (3, "lastProbeTime", Time),
            (4, "lastTransitionTime", Time),
            (5, "reason", Str),
            (6, "message", Str),
        ],
        "PodIP" => &[(1, "ip", StrKeep)],
        // ---- apps/v1 ----
        "Deployment" => &[
            (1, "metadata", Msg("ObjectMeta")),
            (2, "spec", Msg("DeploymentSpec")),
            (3, "status", Msg("DeploymentStatus")),
        ],
        "DeploymentSpec" => &[
            (1, "replicas", IntKeep),
            (2, "selector", Msg("LabelSelector")),
            (3, "template", Msg("PodTemplateSpec")),
            (4, "strategy", Msg("DeploymentStrategy")),
            (5, "minReadySeconds", Int),
            (6, "revisionHistoryLimit", IntKeep),
            (7, "paused", Bool),
            (9, "progressDeadlineSeconds", IntKeep),
        ],
        "DeploymentStrategy" => &[
            (1, "type", Str),
            (2, "rollingUpdate", Msg("RollingUpdateDeployment")),
        ],
        "RollingUpdateDeployment" => &[(1, "maxUnavailable", IntOrStr), (2, "maxSurge", IntOrStr)],
        "DeploymentStatus" => &[
            (1, "observedGeneration", Int),
            (2, "replicas", Int),
            (3, "updatedReplicas", Int),
            (7, "readyReplicas", Int),
            (4, "availableReplicas", Int),
            (5, "unavailableReplicas", Int),
            (6, "conditions", RepMsg("DeploymentCondition")),
            (8, "collisionCount", IntKeep),
        ],
        "DeploymentCondition" => &[
            (1, "type", StrKeep),
            (2, "status", StrKeep),
            (6, "lastUpdateTime", Time),
            (7, "lastTransitionTime", Time),
            (4, "reason", Str),
            (5, "message", Str),
        ],
        "ReplicaSet" => &[
            (1, "metadata", Msg("ObjectMeta")),
            (2, "spec", Msg("ReplicaSetSpec")),
            (3, "status", Msg("ReplicaSetStatus")),
        ],
        "ReplicaSetSpec" => &[
            (1, "replicas", IntKeep),
            (4, "minReadySeconds", Int),
            (2, "selector", Msg("LabelSelector")),
            (3, "template", Msg("PodTemplateSpec")),
        ],
        "ReplicaSetStatus" => &[
            (1, "replicas", IntKeep),
            (2, "fullyLabeledReplicas", Int),
            (4, "readyReplicas", Int),
            (5, "availableReplicas", Int),
            (3, "observedGeneration", Int),
            (6, "conditions", RepMsg("ReplicaSetCondition")),
        ],
        "ReplicaSetCondition" => &[
            (1, "type", StrKeep),
            (2, "status", StrKeep),
            (3, "lastTransitionTime", Time),
            (4, "reason", Str),
            (5, "message", Str),
        ],
        // ---- autoscaling/v1 ----
        "Scale" => &[
            (1, "metadata", Msg("ObjectMeta")),
            (2, "spec", Msg("ScaleSpec")),
            (3, "status", Msg("ScaleStatus")),
        ],
        "ScaleSpec" => &[(1, "replicas", Int)],
        "ScaleStatus" => &[(1, "replicas", IntKeep), (2, "selector", Str)],
        // ---- batch/v1 ----
        "Job" => &[
            (1, "metadata", Msg("ObjectMeta")),
            (2, "spec", Msg("JobSpec")),
            (3, "status", Msg("JobStatus")),
        ],
        "JobSpec" => &[
            (1, "parallelism", IntKeep),
            (2, "completions", IntKeep),
            (3, "activeDeadlineSeconds", IntKeep),
            (4, "selector", Msg("LabelSelector")),
            (5, "manualSelector", BoolKeep),
            (6, "template", Msg("PodTemplateSpec")),
            (7, "backoffLimit", IntKeep),
            (8, "ttlSecondsAfterFinished", IntKeep),
            (9, "completionMode", StrKeep),
            (10, "suspend", BoolKeep),
            (12, "backoffLimitPerIndex", IntKeep),
            (13, "maxFailedIndexes", IntKeep),
            (14, "podReplacementPolicy", StrKeep),
            (15, "managedBy", StrKeep),
        ],
        "JobStatus" => &[
            (2, "startTime", Time),
            (3, "completionTime", Time),
            (4, "active", Int),
            (5, "succeeded", Int),
            (6, "failed", Int),
        ],
        "JobTemplateSpec" => &[
            (1, "metadata", Msg("ObjectMeta")),
            (2, "spec", Msg("JobSpec")),
        ],
        "CronJob" => &[
            (1, "metadata", Msg("ObjectMeta")),
            (2, "spec", Msg("CronJobSpec")),
            (3, "status", Msg("CronJobStatus")),
        ],
        "CronJobSpec" => &[
            (1, "schedule", Str),
            (8, "timeZone", StrKeep),
            (2, "startingDeadlineSeconds", IntKeep),
            (3, "concurrencyPolicy", Str),
            (4, "suspend", BoolKeep),
            (5, "jobTemplate", Msg("JobTemplateSpec")),
            (6, "successfulJobsHistoryLimit", IntKeep),
            (7, "failedJobsHistoryLimit", IntKeep),
        ],
        "CronJobStatus" => &[
            (1, "active", RepMsg("ObjectReference")),
            (4, "lastScheduleTime", Time),
            (5, "lastSuccessfulTime", Time),
        ],
        // ---- core/v1 ServiceAccount ----
        "ServiceAccount" => &[
            (1, "metadata", Msg("ObjectMeta")),
            (2, "secrets", RepMsg("ObjectReference")),
            (3, "imagePullSecrets", RepMsg("LocalObjectReference")),
            (4, "automountServiceAccountToken", BoolKeep),
        ],
        // ---- coordination/v1 ----
        "Lease" => &[
            (1, "metadata", Msg("ObjectMeta")),
            (2, "spec", Msg("LeaseSpec")),
        ],
        "LeaseSpec" => &[
            (1, "holderIdentity", StrKeep),
            (2, "leaseDurationSeconds", IntKeep),
            (3, "acquireTime", MicroTime),
            (4, "renewTime", MicroTime),
            (5, "leaseTransitions", IntKeep),
            (6, "strategy", StrKeep),
            (7, "preferredHolder", StrKeep),
        ],
        // ---- policy/v1 (and v1beta1's Eviction, the same message) ----
        "Eviction" => &[
            (1, "metadata", Msg("ObjectMeta")),
            (2, "deleteOptions", Msg("DeleteOptions")),
        ],
        "DeleteOptions" => &[
            (1, "gracePeriodSeconds", IntKeep),
            (2, "preconditions", Msg("Preconditions")),
            (3, "orphanDependents", BoolKeep),
            (4, "propagationPolicy", StrKeep),
            (5, "dryRun", RepStr),
            (
                6,
                "ignoreStoreReadErrorWithClusterBreakingPotential",
                BoolKeep,
            ),
        ],
        "Preconditions" => &[(1, "uid", StrKeep), (2, "resourceVersion", StrKeep)],
        "PodDisruptionBudget" => &[
            (1, "metadata", Msg("ObjectMeta")),
            (2, "spec", Msg("PodDisruptionBudgetSpec")),
        ],
        "PodDisruptionBudgetSpec" => &[
            (1, "minAvailable", IntOrStr),
            (2, "selector", Msg("LabelSelector")),
            (3, "maxUnavailable", IntOrStr),
            (4, "unhealthyPodEvictionPolicy", StrKeep),
        ],
        _ => return None,
    })
}

/// The top-level message type for an object of `kind` in `api_version`.
fn top_level(api_version: &str, kind: &str) -> Option<&'static str> {
    Some(match (api_version, kind) {
        ("v1", "Namespace") => "Namespace",
        ("v1", "ConfigMap") => "ConfigMap",
        ("v1", "Secret") => "Secret",
        ("v1", "Service") => "Service",
        ("v1", "Pod") => "Pod",
        ("v1", "Endpoints") => "Endpoints",
        ("v1", "Event") => "Event",
        ("v1", "Node") => "Node",
        ("v1", "Binding") => "Binding",
        ("apps/v1", "Deployment") => "Deployment",
        ("apps/v1", "ReplicaSet") => "ReplicaSet",
        ("autoscaling/v1", "Scale") => "Scale",
        ("coordination.k8s.io/v1", "Lease") => "Lease",
        ("batch/v1", "Job") => "Job",
        ("batch/v1", "CronJob") => "CronJob",
        ("v1", "ServiceAccount") => "ServiceAccount",
        ("policy/v1" | "policy/v1beta1", "Eviction") => "Eviction",
        ("policy/v1", "PodDisruptionBudget") => "PodDisruptionBudget",
        _ => return None,
    })
}

// ---------------------------------------------------------------- wire format

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

/// One field's value as read off the wire.
enum Wire<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = *self
                .buf
                .get(self.pos)
                .ok_or_else(|| malformed("truncated varint"))?;
            self.pos += 1;
            if i == 9 && b > 1 {
                return Err(malformed("varint overflows 64 bits"));
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(malformed("varint too long"))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or_else(|| malformed("length-delimited field runs past the end of its message"))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    /// The next field: its number and value.
    fn field(&mut self) -> Result<(u32, Wire<'a>), DecodeError> {
        let key = self.varint()?;
        let num = key >> 3;
        if num == 0 || num > u64::from(u32::MAX >> 3) {
            return Err(malformed(format!("invalid field number {num}")));
        }
        let num = num as u32;
        let w = match key & 7 {
            0 => Wire::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Wire::Fixed
            }
            2 => {
                let len = self.varint()?;
                let len = usize::try_from(len).map_err(|_| malformed("length too large"))?;
                Wire::Bytes(self.take(len)?)
            }
            5 => {
                self.take(4)?;
                Wire::Fixed
            }
            t => {
                return Err(malformed(format!(
                    "unsupported wire type {t} (field {num})"
                )))
            }
        };
        Ok((num, w))
    }
}

fn want_bytes<'a>(w: Wire<'a>, what: &str) -> Result<&'a [u8], DecodeError> {
    match w {
        Wire::Bytes(b) => Ok(b),
        _ => Err(malformed(format!(
            "field {what:?}: expected a length-delimited value"
        ))),
    }
}

fn want_varint(w: Wire<'_>, what: &str) -> Result<u64, DecodeError> {
    match w {
        Wire::Varint(v) => Ok(v),
        _ => Err(malformed(format!("field {what:?}: expected a varint"))),
    }
}

fn utf8(b: &[u8], what: &str) -> Result<String, DecodeError> {
    String::from_utf8(b.to_vec())
        .map_err(|_| malformed(format!("field {what:?}: string is not valid UTF-8")))
}

fn b64(b: &[u8]) -> Value {
    Value::String(base64::engine::general_purpose::STANDARD.encode(b))
}

// ---------------------------------------------------------------- decoding

/// Decodes a `k8s\0`-prefixed protobuf body into the object's JSON value.
pub fn decode_object(body: &[u8]) -> Result<Value, DecodeError> {
    let rest = body
        .strip_prefix(MAGIC.as_slice())
        .ok_or_else(|| malformed("protobuf body does not start with the k8s\\0 prefix"))?;
    let mut api_version = String::new();
    let mut kind = String::new();
    let mut raw: &[u8] = &[];
    let mut encoding = String::new();
    let mut content_type = String::new();
    let mut r = Reader::new(rest);
    while !r.done() {
        let (num, w) = r.field()?;
        match num {
            1 => {
                let mut t = Reader::new(want_bytes(w, "typeMeta")?);
                while !t.done() {
                    let (n, w) = t.field()?;
                    match n {
                        1 => api_version = utf8(want_bytes(w, "apiVersion")?, "apiVersion")?,
                        2 => kind = utf8(want_bytes(w, "kind")?, "kind")?,
                        _ => {}
                    }
                }
            }
            2 => raw = want_bytes(w, "raw")?,
            3 => encoding = utf8(want_bytes(w, "contentEncoding")?, "contentEncoding")?,
            4 => content_type = utf8(want_bytes(w, "contentType")?, "contentType")?,
            _ => {}
        }
    }
    if !encoding.is_empty() {
        return Err(DecodeError::Unsupported(format!(
            "protobuf content encoding {encoding:?} is not supported"
        )));
    }
    if !content_type.is_empty() && content_type != "application/vnd.kubernetes.protobuf" {
        return Err(DecodeError::Unsupported(format!(
            "embedded content type {content_type:?} is not supported"
        )));
    }
    if kind.is_empty() {
        return Err(malformed("protobuf body has no kind in its typeMeta"));
    }
    let msg = top_level(&api_version, &kind).ok_or_else(|| {
        DecodeError::Unsupported(format!(
            "decoding {kind} ({api_version}) from protobuf is not supported; send it as application/json"
        ))
    })?;
    let mut out = Map::new();
    if !api_version.is_empty() {
        out.insert("apiVersion".into(), Value::String(api_version));
    }
    out.insert("kind".into(), Value::String(kind));
    decode_into(msg, raw, &mut out, 0)?;
    Ok(Value::Object(out))
}

/// Decodes message `msg` from `buf` as a JSON object.
fn decode_message(msg: &'static str, buf: &[u8], depth: usize) -> Result<Value, DecodeError> {
    let mut out = Map::new();
    decode_into(msg, buf, &mut out, depth)?;
    Ok(Value::Object(out))
}

fn decode_into(
    msg: &'static str,
    buf: &[u8],
    out: &mut Map<String, Value>,
    depth: usize,
) -> Result<(), DecodeError> {
    if depth > DEPTH_MAX {
        return Err(malformed("protobuf messages nested too deeply"));
    }
    let table = fields(msg).ok_or_else(|| {
        DecodeError::Unsupported(format!(
            "message type {msg} is not supported in protobuf; send the object as application/json"
        ))
    })?;
    let mut r = Reader::new(buf);
    while !r.done() {
        let (num, w) = r.field()?;
        let Some(&(_, name, kind)) = table.iter().find(|f| f.0 == num) else {
            continue; // unknown field: dropped, as the JSON path drops unknown fields
        };
        let key = || name.to_string();
        match kind {
            Str | StrKeep => {
                let s = utf8(want_bytes(w, name)?, name)?;
                if s.is_empty() && matches!(kind, Str) {
                    out.remove(name);
                } else {
                    out.insert(key(), Value::String(s));
                }
            }
            Int | IntKeep => {
                // int32 and int64 alike: negative int32s are sign-extended to 64 bits.
                let v = want_varint(w, name)? as i64;
                if v == 0 && matches!(kind, Int) {
                    out.remove(name);
                } else {
                    out.insert(key(), Value::from(v));
                }
            }
            Bool | BoolKeep => {
                let v = want_varint(w, name)? != 0;
                if !v && matches!(kind, Bool) {
                    out.remove(name);
                } else {
                    out.insert(key(), Value::Bool(v));
                }
            }
            Msg(m) => {
                let b = want_bytes(w, name)?;
                // A repeated occurrence of a singular message merges into the first.
                match out.get_mut(name) {
                    Some(Value::Object(existing)) => decode_into(m, b, existing, depth + 1)?,
                    _ => {
                        out.insert(key(), decode_message(m, b, depth + 1)?);
                    }
                }
            }
            Inline(m) => decode_into(m, want_bytes(w, name)?, out, depth + 1)?,
            Time | MicroTime => {
                let b = want_bytes(w, name)?;
                match timestamp(b, matches!(kind, MicroTime))? {
                    Some(s) => out.insert(key(), Value::String(s)),
                    None => out.remove(name),
                };
            }
            IntOrStr => {
                out.insert(key(), int_or_string(want_bytes(w, name)?)?);
            }
            Quantity => {
                out.insert(key(), Value::String(quantity(want_bytes(w, name)?)?));
            }
            FieldsV1 => {
                let b = want_bytes(w, name)?;
                let mut f = Reader::new(b);
                let mut raw: &[u8] = &[];
                while !f.done() {
                    if let (1, w) = f.field()? {
                        raw = want_bytes(w, "Raw")?;
                    }
                }
                let v: Value = if raw.is_empty() {
                    Value::Object(Map::new())
                } else {
                    serde_json::from_slice(raw)
                        .map_err(|e| malformed(format!("fieldsV1 is not JSON: {e}")))?
                };
                out.insert(key(), v);
            }
            RepStr => {
                let s = utf8(want_bytes(w, name)?, name)?;
                push(out, name, Value::String(s));
            }
            RepMsg(m) => {
                let v = decode_message(m, want_bytes(w, name)?, depth + 1)?;
                push(out, name, v);
            }
            MapStr | MapBytes | MapQty => {
                let (k, v) = map_entry(want_bytes(w, name)?, kind, name)?;
                let entry = out
                    .entry(name.to_string())
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(m) = entry {
                    m.insert(k, v);
                }
            }
        }
    }
    Ok(())
}

fn push(out: &mut Map<String, Value>, name: &str, v: Value) {
    match out
        .entry(name.to_string())
        .or_insert_with(|| Value::Array(Vec::new()))
    {
        Value::Array(a) => a.push(v),
        other => *other = Value::Array(vec![v]),
    }
}

fn map_entry(buf: &[u8], kind: Kind, name: &str) -> Result<(String, Value), DecodeError> {
    let mut r = Reader::new(buf);
    let mut key = String::new();
    let mut val = match kind {
        MapBytes => b64(&[]),
        MapQty => Value::String("0".into()),
        _ => Value::String(String::new()),
    };
    while !r.done() {
        let (num, w) = r.field()?;
        match num {
            1 => key = utf8(want_bytes(w, name)?, name)?,
            2 => {
                let b = want_bytes(w, name)?;
                val = match kind {
                    MapBytes => b64(b),
                    MapQty => Value::String(quantity(b)?),
                    _ => Value::String(utf8(b, name)?),
                };
            }
            _ => {}
        }
    }
    Ok((key, val))
}

fn int_or_string(buf: &[u8]) -> Result<Value, DecodeError> {
    let mut r = Reader::new(buf);
    let (mut typ, mut int_val, mut str_val) = (0u64, 0i64, String::new());
    while !r.done() {
        let (num, w) = r.field()?;
        match num {
            1 => typ = want_varint(w, "type")?,
            2 => int_val = want_varint(w, "intVal")? as i32 as i64,
            3 => str_val = utf8(want_bytes(w, "strVal")?, "strVal")?,
            _ => {}
        }
    }
    Ok(if typ == 1 {
        Value::String(str_val)
    } else {
        Value::from(int_val)
    })
}

fn quantity(buf: &[u8]) -> Result<String, DecodeError> {
    let mut r = Reader::new(buf);
    let mut s = String::new();
    while !r.done() {
        if let (1, w) = r.field()? {
            s = utf8(want_bytes(w, "quantity")?, "quantity")?;
        }
    }
    if s.is_empty() {
        s = "0".into();
    }
    Ok(s)
}

/// A meta/v1 Time or MicroTime as JSON text; `None` for the zero time (an empty message).
fn timestamp(buf: &[u8], micro: bool) -> Result<Option<String>, DecodeError> {
    if buf.is_empty() {
        return Ok(None);
    }
    let mut r = Reader::new(buf);
    let (mut secs, mut nanos) = (0i64, 0i64);
    while !r.done() {
        let (num, w) = r.field()?;
        match num {
            1 => secs = want_varint(w, "seconds")? as i64,
            2 => nanos = want_varint(w, "nanos")? as i32 as i64,
            _ => {}
        }
    }
    if !(0..1_000_000_000).contains(&nanos) {
        return Err(malformed("timestamp nanos out of range"));
    }
    // Years 0001..=9999 only, as RFC 3339 allows.
    if !(time::GO_ZERO_TIME..=253_402_300_799).contains(&secs) {
        return Err(malformed("timestamp out of range"));
    }
    Ok(Some(if micro {
        time::format_rfc3339_micros(secs, nanos / 1000)
    } else {
        time::format_rfc3339(secs)
    }))
}

#[cfg(test)]
mod tests;
