//! OpenAPI v3 documents (`/openapi/v3` and `/openapi/v3/<api|apis/...>`), one per served
//! group-version, derived from [`RESOURCES`] and shaped as kube-apiserver 1.32 publishes them.
//!
//! kubectl 1.32 reads them three ways, and each shapes part of this module:
//! - `--validate=strict|warn` asks `query_param_verifier_v3.go` whether the PATCH operation tagged
//!   with the object's `x-kubernetes-group-version-kind` lists a `fieldValidation` parameter (by
//!   name, inline, not a `$ref`); if it does, validation is left to the server.
//! - `kubectl explain` finds the component schema carrying the kind's GVK extension and walks its
//!   `$ref`s (wrapped in `allOf` where a description sits beside them, as kube does).
//! - client-side `kubectl apply` builds strategic merge patches from `x-kubernetes-patch-*` and
//!   `x-kubernetes-list-*` on the properties; schemars lacks them, so `list_extensions` adds
//!   them from the one schema table, [`crate::machinery::schema`].
//!
//! Schemas come from k8s-openapi's schemars (0.8) implementations, so they follow the Kubernetes
//! 1.32 types without being written by hand. Documents are built once and cached serialized,
//! with their hash (sha512, upper-case hex, as kube's `?hash=`).

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use k8s_openapi::api::{apps::v1 as apps, autoscaling::v1 as autoscaling};
use k8s_openapi::api::{batch::v1 as batch, discovery::v1 as discovery};
use k8s_openapi::api::{coordination::v1 as coordination, core::v1 as core};
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use schemars::gen::{SchemaGenerator, SchemaSettings};
use schemars::schema::Schema;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha512};

use crate::machinery::schema::{self, Field, ListType, PatchStrategy, Quirk};
use crate::resources::{group_versions, ResourceInfo, Subresource, RESOURCES};

/// Builds the errors a document build can hit; none depends on client input, so they only
/// surface as a missing document (and in tests).
#[derive(Debug, thiserror::Error)]
pub enum OpenApiError {
    #[error("no OpenAPI schema known for {0}")]
    UnknownKind(String),
    #[error("serializing OpenAPI document: {0}")]
    Serialize(#[from] serde_json::Error),
}

type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

/// The k8s-openapi type behind each kind we serve (and the kinds our subresources speak).
/// A kind missing here fails the build of its document (caught by the tests).
fn kind_schema(group: &str, version: &str, kind: &str) -> Option<SchemaFn> {
    let f: SchemaFn = match (group, version, kind) {
        ("", "v1", "Namespace") => |g| g.subschema_for::<core::Namespace>(),
        ("", "v1", "Node") => |g| g.subschema_for::<core::Node>(),
        ("", "v1", "Pod") => |g| g.subschema_for::<core::Pod>(),
        ("", "v1", "Service") => |g| g.subschema_for::<core::Service>(),
        ("", "v1", "Endpoints") => |g| g.subschema_for::<core::Endpoints>(),
        ("", "v1", "ConfigMap") => |g| g.subschema_for::<core::ConfigMap>(),
        ("", "v1", "Secret") => |g| g.subschema_for::<core::Secret>(),
        ("", "v1", "Event") => |g| g.subschema_for::<core::Event>(),
        ("", "v1", "Binding") => |g| g.subschema_for::<core::Binding>(),
        ("apps", "v1", "Deployment") => |g| g.subschema_for::<apps::Deployment>(),
        ("apps", "v1", "ReplicaSet") => |g| g.subschema_for::<apps::ReplicaSet>(),
        ("autoscaling", "v1", "Scale") => |g| g.subschema_for::<autoscaling::Scale>(),
        ("coordination.k8s.io", "v1", "Lease") => |g| g.subschema_for::<coordination::Lease>(),
        ("batch", "v1", "Job") => |g| g.subschema_for::<batch::Job>(),
        ("apps", "v1", "DaemonSet") => |g| g.subschema_for::<apps::DaemonSet>(),
        ("apps", "v1", "StatefulSet") => |g| g.subschema_for::<apps::StatefulSet>(),
        ("apps", "v1", "ControllerRevision") => |g| g.subschema_for::<apps::ControllerRevision>(),
        ("", "v1", "ReplicationController") => |g| g.subschema_for::<core::ReplicationController>(),
        ("batch", "v1", "CronJob") => |g| g.subschema_for::<batch::CronJob>(),
        ("", "v1", "ServiceAccount") => |g| g.subschema_for::<core::ServiceAccount>(),
        ("discovery.k8s.io", "v1", "EndpointSlice") => {
            |g| g.subschema_for::<discovery::EndpointSlice>()
        }
        ("policy", "v1", "PodDisruptionBudget") => {
            |g| g.subschema_for::<k8s_openapi::api::policy::v1::PodDisruptionBudget>()
        }
        ("policy", "v1", "Eviction") => {
            |g| g.subschema_for::<k8s_openapi::api::policy::v1::Eviction>()
        }
        _ => return None,
    };
    Some(f)
}

/// kube's component name for a kind: the Go package path, reversed (`io.k8s.api.core.v1.Pod`).
fn schema_name(group: &str, version: &str, kind: &str) -> String {
    let pkg = match group {
        "" => "core".to_string(),
        g => g.trim_end_matches(".k8s.io").replace('.', ""),
    };
    format!("io.k8s.api.{pkg}.{version}.{kind}")
}

const META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1";

/// The `x-kubernetes-*` keys a [`schema::FIELDS`] row publishes on its property: strategic
/// merge and server-side-apply metadata from the `patchStrategy` / `patchMergeKey` tags and
/// `+listType` / `+listMapKey` / `+mapType` markers (rows marked [`Quirk::NotInOpenApi`] are
/// left out by the caller).
fn list_extensions(f: &Field) -> Vec<(&'static str, Value)> {
    let mut out = Vec::new();
    match f.list {
        ListType::Unset => {}
        ListType::Atomic => out.push(("x-kubernetes-list-type", json!("atomic"))),
        ListType::Set => out.push(("x-kubernetes-list-type", json!("set"))),
        ListType::Map { keys, .. } => {
            out.push(("x-kubernetes-list-type", json!("map")));
            out.push(("x-kubernetes-list-map-keys", json!(keys)));
        }
    }
    if f.patch != PatchStrategy::Unset {
        out.push(("x-kubernetes-patch-strategy", json!(f.patch.as_str())));
    }
    if !f.merge_key.is_empty() {
        out.push(("x-kubernetes-patch-merge-key", json!(f.merge_key)));
    }
    if f.atomic {
        out.push(("x-kubernetes-map-type", json!("atomic")));
    }
    out
}

/// `CoreV1`, `AppsV1`, `CoordinationV1`: the group-version part of kube's operationIds.
fn op_prefix(group: &str, version: &str) -> String {
    let mut out = String::new();
    let g = if group.is_empty() {
        "core"
    } else {
        group.trim_end_matches(".k8s.io")
    };
    for part in g.split('.').chain(std::iter::once(version)) {
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            out.extend(first.to_uppercase());
            out.push_str(chars.as_str());
        }
    }
    out
}

/// `core_v1`, `apps_v1`, `coordination_v1`: kube's operation tag.
fn tag(group: &str, version: &str) -> String {
    let g = if group.is_empty() {
        "core"
    } else {
        group.trim_end_matches(".k8s.io")
    };
    format!("{}_{version}", g.replace('.', "_"))
}

fn query(name: &str, description: &str, schema: Value) -> Value {
    json!({"name": name, "in": "query", "description": description, "schema": schema})
}

fn p_string(name: &str, description: &str) -> Value {
    query(
        name,
        description,
        json!({"type": "string", "uniqueItems": true}),
    )
}

fn p_bool(name: &str, description: &str) -> Value {
    query(
        name,
        description,
        json!({"type": "boolean", "uniqueItems": true}),
    )
}

fn p_int(name: &str, description: &str) -> Value {
    query(
        name,
        description,
        json!({"type": "integer", "uniqueItems": true}),
    )
}

fn param(name: &str) -> Value {
    match name {
        "allowWatchBookmarks" => p_bool(name, "allowWatchBookmarks requests watch events with type \"BOOKMARK\". Servers that do not implement bookmarks may ignore this flag and bookmarks are sent at the server's discretion. Clients should not assume bookmarks are returned at any specific interval, nor may they assume the server will send any BOOKMARK event during a session. If this is not a watch, this field is ignored."),
        "continue" => p_string(name, "The continue option should be set when retrieving more results from the server. Since this value is server defined, clients may only use the continue value from a previous query result with identical query parameters (except for the value of continue) and the server may reject a continue value it does not recognize."),
        "dryRun" => p_string(name, "When present, indicates that modifications should not be persisted. An invalid or unrecognized dryRun directive will result in an error response and no further processing of the request. Valid values are: - All: all dry run stages will be processed"),
        "fieldManager" => p_string(name, "fieldManager is a name associated with the actor or entity that is making these changes. The value must be less than or 128 characters long, and only contain printable characters, as defined by https://golang.org/pkg/unicode/#IsPrint."),
        "fieldManagerApply" => p_string("fieldManager", "fieldManager is a name associated with the actor or entity that is making these changes. The value must be less than or 128 characters long, and only contain printable characters, as defined by https://golang.org/pkg/unicode/#IsPrint. This field is required for apply requests (application/apply-patch) but optional for non-apply patch types (JsonPatch, MergePatch, StrategicMergePatch)."),
        "fieldSelector" => p_string(name, "A selector to restrict the list of returned objects by their fields. Defaults to everything."),
        "fieldValidation" => p_string(name, "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore: This will ignore any unknown fields that are silently dropped from the object, and will ignore all but the last duplicate field that the decoder encounters. - Warn: This will send a warning via the standard warning response header for each unknown field that is dropped from the object, and for each duplicate field that is encountered. The request will still succeed if there are no other errors, and will only persist the last of any duplicate fields. This is the default in v1.23+ - Strict: This will fail the request with a BadRequest error if any unknown fields would be dropped from the object, or if any duplicate fields are present. The error returned from the server will contain all unknown and duplicate fields encountered."),
        "force" => p_bool(name, "Force is going to \"force\" Apply requests. It means user will re-acquire conflicting fields owned by other people. Force flag must be unset for non-apply patch requests."),
        "gracePeriodSeconds" => p_int(name, "The duration in seconds before the object should be deleted. Value must be non-negative integer. The value zero indicates delete immediately. If this value is nil, the default grace period for the specified type will be used. Defaults to a per object value if not specified. zero means delete immediately."),
        "ignoreStoreReadErrorWithClusterBreakingPotential" => p_bool(name, "if set to true, it will trigger an unsafe deletion of the resource in case the normal deletion flow fails with a corrupt object error. A resource is considered corrupt if it can not be retrieved from the underlying storage successfully because of a) its data can not be transformed e.g. decryption failure, or b) it fails to decode into an object. NOTE: unsafe deletion ignores finalizer constraints, skips precondition checks, and removes the object from the storage. WARNING: This may potentially break the cluster if the workload associated with the resource being unsafe-deleted relies on normal deletion flow. Use only if you REALLY know what you are doing. The default value is false, and the user must opt in to enable it"),
        "labelSelector" => p_string(name, "A selector to restrict the list of returned objects by their labels. Defaults to everything."),
        "limit" => p_int(name, "limit is a maximum number of responses to return for a list call. If more items exist, the server will set the `continue` field on the list metadata to a value that can be used with the same initial query to retrieve the next set of results."),
        "orphanDependents" => p_bool(name, "Deprecated: please use the PropagationPolicy, this field will be deprecated in 1.7. Should the dependent objects be orphaned. If true/false, the \"orphan\" finalizer will be added to/removed from the object's finalizers list. Either this field or PropagationPolicy may be set, but not both."),
        "propagationPolicy" => p_string(name, "Whether and how garbage collection will be performed. Either this field or OrphanDependents may be set, but not both. The default policy is decided by the existing finalizer set in the metadata.finalizers and the resource-specific default policy. Acceptable values are: 'Orphan' - orphan the dependents; 'Background' - allow the garbage collector to delete the dependents in the background; 'Foreground' - a cascading policy that deletes all dependents in the foreground."),
        "resourceVersion" => p_string(name, "resourceVersion sets a constraint on what resource versions a request may be served from. See https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions for details.\n\nDefaults to unset"),
        "resourceVersionMatch" => p_string(name, "resourceVersionMatch determines how resourceVersion is applied to list calls. It is highly recommended that resourceVersionMatch be set for list calls where resourceVersion is set See https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions for details.\n\nDefaults to unset"),
        "sendInitialEvents" => p_bool(name, "`sendInitialEvents=true` may be set together with `watch=true`. In that case, the watch stream will begin with synthetic events to produce the current state of objects in the collection. Once all such events have been sent, a synthetic \"Bookmark\" event  will be sent."),
        "timeoutSeconds" => p_int(name, "Timeout for the list/watch call. This limits the duration of the call, regardless of any activity or inactivity."),
        "watch" => p_bool(name, "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications. Specify resourceVersion."),
        "pretty" => p_string(name, "If 'true', then the output is pretty printed. Defaults to 'false' unless the user-agent indicates a browser or command-line HTTP client (curl and wget)."),
        "namespace" => json!({"name": "namespace", "in": "path", "description": "object name and auth scope, such as for teams and projects", "required": true, "schema": {"type": "string", "uniqueItems": true}}),
        other => json!({"name": other, "in": "path", "description": format!("{other} of the object"), "required": true, "schema": {"type": "string", "uniqueItems": true}}),
    }
}

fn params(names: &[&str]) -> Value {
    Value::Array(names.iter().map(|n| param(n)).collect())
}

const LIST_PARAMS: &[&str] = &[
    "allowWatchBookmarks",
    "continue",
    "fieldSelector",
    "labelSelector",
    "limit",
    "resourceVersion",
    "resourceVersionMatch",
    "sendInitialEvents",
    "timeoutSeconds",
    "watch",
];
const WRITE_PARAMS: &[&str] = &["dryRun", "fieldManager", "fieldValidation"];
const PATCH_PARAMS: &[&str] = &["dryRun", "fieldManagerApply", "fieldValidation", "force"];
const DELETE_PARAMS: &[&str] = &[
    "dryRun",
    "gracePeriodSeconds",
    "ignoreStoreReadErrorWithClusterBreakingPotential",
    "orphanDependents",
    "propagationPolicy",
];
const DELETE_COLLECTION_PARAMS: &[&str] = &[
    "continue",
    "dryRun",
    "fieldSelector",
    "gracePeriodSeconds",
    "ignoreStoreReadErrorWithClusterBreakingPotential",
    "labelSelector",
    "limit",
    "orphanDependents",
    "propagationPolicy",
    "resourceVersion",
    "resourceVersionMatch",
    "sendInitialEvents",
    "timeoutSeconds",
];

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn content(types: &[&str], schema: &Value) -> Value {
    let mut m = Map::new();
    for t in types {
        m.insert((*t).to_string(), json!({"schema": schema}));
    }
    Value::Object(m)
}

const OBJ_TYPES: &[&str] = &[
    "application/json",
    "application/yaml",
    "application/vnd.kubernetes.protobuf",
];
const STREAM_TYPES: &[&str] = &[
    "application/json",
    "application/yaml",
    "application/vnd.kubernetes.protobuf",
    "application/json;stream=watch",
    "application/vnd.kubernetes.protobuf;stream=watch",
];
const PATCH_TYPES: &[&str] = &[
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
];

fn responses(codes: &[(&str, &str)], types: &[&str], schema: &Value) -> Value {
    let mut m = Map::new();
    for (code, desc) in codes {
        m.insert(
            (*code).to_string(),
            json!({"description": desc, "content": content(types, schema)}),
        );
    }
    m.insert("401".into(), json!({"description": "Unauthorized"}));
    Value::Object(m)
}

struct Op<'a> {
    description: String,
    id: String,
    tag: &'a str,
    action: &'a str,
    gvk: (&'a str, &'a str, &'a str),
    params: &'a [&'a str],
    body: Option<(&'a [&'a str], Value)>,
    responses: Value,
}

fn op(o: Op<'_>) -> Value {
    let mut v = json!({
        "tags": [o.tag],
        "description": o.description,
        "operationId": o.id,
        "responses": o.responses,
        "x-kubernetes-action": o.action,
        "x-kubernetes-group-version-kind": {"group": o.gvk.0, "version": o.gvk.1, "kind": o.gvk.2},
    });
    if let Value::Object(m) = &mut v {
        if !o.params.is_empty() {
            m.insert("parameters".into(), params(o.params));
        }
        if let Some((types, schema)) = o.body {
            m.insert(
                "requestBody".into(),
                json!({"content": content(types, &schema), "required": true}),
            );
        }
    }
    v
}

fn path_item(path_params: &[&str], ops: Vec<(&str, Value)>) -> Value {
    let mut m = Map::new();
    for (method, o) in ops {
        m.insert(method.to_string(), o);
    }
    m.insert("parameters".into(), params(path_params));
    Value::Object(m)
}

/// The paths kube-apiserver publishes for one resource and its subresources.
fn resource_paths(r: &ResourceInfo, out: &mut Map<String, Value>) {
    let prefix = if r.group.is_empty() {
        format!("/api/{}", r.version)
    } else {
        format!("/apis/{}/{}", r.group, r.version)
    };
    let ns = if r.namespaced { "Namespaced" } else { "" };
    let gv = op_prefix(r.group, r.version);
    let tag = tag(r.group, r.version);
    let kind = r.kind;
    let gvk = (r.group, r.version, r.kind);
    let obj = schema_ref(&schema_name(r.group, r.version, r.kind));
    let list = schema_ref(&schema_name(r.group, r.version, &format!("{kind}List")));
    let status = schema_ref(&format!("{META}.Status"));
    let delete_opts = schema_ref(&format!("{META}.DeleteOptions"));
    let watch_event = schema_ref(&format!("{META}.WatchEvent"));
    let patch = schema_ref(&format!("{META}.Patch"));
    let (coll, item, coll_params, item_params): (String, String, &[&str], &[&str]) = if r.namespaced
    {
        (
            format!("{prefix}/namespaces/{{namespace}}/{}", r.plural),
            format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", r.plural),
            &["namespace", "pretty"],
            &["name", "namespace", "pretty"],
        )
    } else {
        (
            format!("{prefix}/{}", r.plural),
            format!("{prefix}/{}/{{name}}", r.plural),
            &["pretty"],
            &["name", "pretty"],
        )
    };
    let ok = [("200", "OK")];
    let created = [("200", "OK"), ("201", "Created"), ("202", "Accepted")];
    let replaced = [("200", "OK"), ("201", "Created")];
    let deleted = [("200", "OK"), ("202", "Accepted")];

    out.insert(
        coll.clone(),
        path_item(
            coll_params,
            vec![
                (
                    "get",
                    op(Op {
                        description: format!("list or watch objects of kind {kind}"),
                        id: format!("list{gv}{ns}{kind}"),
                        tag: &tag,
                        action: "list",
                        gvk,
                        params: LIST_PARAMS,
                        body: None,
                        responses: responses(&ok, STREAM_TYPES, &list),
                    }),
                ),
                (
                    "post",
                    op(Op {
                        description: format!("create a {kind}"),
                        id: format!("create{gv}{ns}{kind}"),
                        tag: &tag,
                        action: "post",
                        gvk,
                        params: WRITE_PARAMS,
                        body: Some((&["*/*"], obj.clone())),
                        responses: responses(&created, OBJ_TYPES, &obj),
                    }),
                ),
                (
                    "delete",
                    op(Op {
                        description: format!("delete collection of {kind}"),
                        id: format!("delete{gv}Collection{ns}{kind}"),
                        tag: &tag,
                        action: "deletecollection",
                        gvk,
                        params: DELETE_COLLECTION_PARAMS,
                        body: Some((&["*/*"], delete_opts.clone())),
                        responses: responses(&ok, OBJ_TYPES, &status),
                    }),
                ),
            ],
        ),
    );
    out.insert(
        item.clone(),
        path_item(
            item_params,
            vec![
                (
                    "get",
                    op(Op {
                        description: format!("read the specified {kind}"),
                        id: format!("read{gv}{ns}{kind}"),
                        tag: &tag,
                        action: "get",
                        gvk,
                        params: &[],
                        body: None,
                        responses: responses(&ok, OBJ_TYPES, &obj),
                    }),
                ),
                (
                    "put",
                    op(Op {
                        description: format!("replace the specified {kind}"),
                        id: format!("replace{gv}{ns}{kind}"),
                        tag: &tag,
                        action: "put",
                        gvk,
                        params: WRITE_PARAMS,
                        body: Some((&["*/*"], obj.clone())),
                        responses: responses(&replaced, OBJ_TYPES, &obj),
                    }),
                ),
                (
                    "delete",
                    op(Op {
                        description: format!("delete a {kind}"),
                        id: format!("delete{gv}{ns}{kind}"),
                        tag: &tag,
                        action: "delete",
                        gvk,
                        params: DELETE_PARAMS,
                        body: Some((&["*/*"], delete_opts.clone())),
                        responses: responses(&deleted, OBJ_TYPES, &status),
                    }),
                ),
                (
                    "patch",
                    op(Op {
                        description: format!("partially update the specified {kind}"),
                        id: format!("patch{gv}{ns}{kind}"),
                        tag: &tag,
                        action: "patch",
                        gvk,
                        params: PATCH_PARAMS,
                        body: Some((PATCH_TYPES, patch.clone())),
                        responses: responses(&replaced, OBJ_TYPES, &obj),
                    }),
                ),
            ],
        ),
    );
    if r.namespaced {
        out.insert(
            format!("{prefix}/{}", r.plural),
            path_item(
                &["pretty"],
                vec![(
                    "get",
                    op(Op {
                        description: format!("list or watch objects of kind {kind}"),
                        id: format!("list{gv}{kind}ForAllNamespaces"),
                        tag: &tag,
                        action: "list",
                        gvk,
                        params: LIST_PARAMS,
                        body: None,
                        responses: responses(&ok, STREAM_TYPES, &list),
                    }),
                )],
            ),
        );
    }
    // Deprecated watch paths, still published by kube 1.32.
    let watch_coll = coll.replacen(&prefix, &format!("{prefix}/watch"), 1);
    let watch_item = item.replacen(&prefix, &format!("{prefix}/watch"), 1);
    let watch_list_params: Vec<&str> = LIST_PARAMS.to_vec();
    for (path, pp, id, action, desc) in [
        (
            watch_coll,
            coll_params,
            format!("watch{gv}{ns}{kind}List"),
            "watchlist",
            format!("watch individual changes to a list of {kind}. deprecated: use the 'watch' parameter with a list operation instead."),
        ),
        (
            watch_item,
            item_params,
            format!("watch{gv}{ns}{kind}"),
            "watch",
            format!("watch changes to an object of kind {kind}. deprecated: use the 'watch' parameter with a list operation instead, filtered to a single item with the 'fieldSelector' parameter."),
        ),
    ] {
        let mut all: Vec<&str> = watch_list_params.clone();
        all.extend_from_slice(pp);
        out.insert(
            path,
            json!({
                "get": op(Op {
                    description: desc,
                    id,
                    tag: &tag,
                    action,
                    gvk,
                    params: &[],
                    body: None,
                    responses: responses(&ok, STREAM_TYPES, &watch_event),
                }),
                "parameters": params(&all),
            }),
        );
    }
    if r.namespaced {
        let mut all: Vec<&str> = LIST_PARAMS.to_vec();
        all.push("pretty");
        out.insert(
            format!("{prefix}/watch/{}", r.plural),
            json!({
                "get": op(Op {
                    description: format!("watch individual changes to a list of {kind}. deprecated: use the 'watch' parameter with a list operation instead."),
                    id: format!("watch{gv}{kind}ListForAllNamespaces"),
                    tag: &tag,
                    action: "watchlist",
                    gvk,
                    params: &[],
                    body: None,
                    responses: responses(&ok, STREAM_TYPES, &watch_event),
                }),
                "parameters": params(&all),
            }),
        );
    }

    for &sub in r.subresources {
        let path = format!("{item}/{}", sub.name());
        match sub {
            Subresource::Status | Subresource::Scale => {
                let (sg, sv, sk, suffix, obj) = if sub == Subresource::Scale {
                    (
                        "autoscaling",
                        "v1",
                        "Scale",
                        "Scale",
                        schema_ref(&schema_name("autoscaling", "v1", "Scale")),
                    )
                } else {
                    (r.group, r.version, r.kind, "Status", obj.clone())
                };
                let sgvk = (sg, sv, sk);
                let what = sub.name();
                out.insert(
                    path,
                    path_item(
                        item_params,
                        vec![
                            (
                                "get",
                                op(Op {
                                    description: format!("read {what} of the specified {kind}"),
                                    id: format!("read{gv}{ns}{kind}{suffix}"),
                                    tag: &tag,
                                    action: "get",
                                    gvk: sgvk,
                                    params: &[],
                                    body: None,
                                    responses: responses(&ok, OBJ_TYPES, &obj),
                                }),
                            ),
                            (
                                "put",
                                op(Op {
                                    description: format!("replace {what} of the specified {kind}"),
                                    id: format!("replace{gv}{ns}{kind}{suffix}"),
                                    tag: &tag,
                                    action: "put",
                                    gvk: sgvk,
                                    params: WRITE_PARAMS,
                                    body: Some((&["*/*"], obj.clone())),
                                    responses: responses(&replaced, OBJ_TYPES, &obj),
                                }),
                            ),
                            (
                                "patch",
                                op(Op {
                                    description: format!(
                                        "partially update {what} of the specified {kind}"
                                    ),
                                    id: format!("patch{gv}{ns}{kind}{suffix}"),
                                    tag: &tag,
                                    action: "patch",
                                    gvk: sgvk,
                                    params: PATCH_PARAMS,
                                    body: Some((PATCH_TYPES, patch.clone())),
                                    responses: responses(&replaced, OBJ_TYPES, &obj),
                                }),
                            ),
                        ],
                    ),
                );
            }
            Subresource::Binding => {
                let binding = schema_ref(&schema_name("", "v1", "Binding"));
                out.insert(
                    path,
                    path_item(
                        item_params,
                        vec![(
                            "post",
                            op(Op {
                                description: format!("create binding of a {kind}"),
                                id: format!("create{gv}{ns}{kind}Binding"),
                                tag: &tag,
                                action: "post",
                                gvk: ("", "v1", "Binding"),
                                params: WRITE_PARAMS,
                                body: Some((&["*/*"], binding.clone())),
                                responses: responses(&created, OBJ_TYPES, &binding),
                            }),
                        )],
                    ),
                );
            }
            Subresource::Eviction => {
                let eviction = schema_ref(&schema_name("policy", "v1", "Eviction"));
                out.insert(
                    path,
                    path_item(
                        item_params,
                        vec![(
                            "post",
                            op(Op {
                                description: format!("create eviction of a {kind}"),
                                id: format!("create{gv}{ns}{kind}Eviction"),
                                tag: &tag,
                                action: "post",
                                gvk: ("policy", "v1", "Eviction"),
                                params: WRITE_PARAMS,
                                body: Some((&["*/*"], eviction.clone())),
                                responses: responses(&created, OBJ_TYPES, &eviction),
                            }),
                        )],
                    ),
                );
            }
        }
    }
}

/// kube's schemas put a description beside a `$ref` by wrapping the ref in `allOf` (OpenAPI 3.0
/// ignores siblings of `$ref`, and kube-openapi drops them); k8s-openapi writes them side by side.
fn wrap_refs(v: &mut Value) {
    match v {
        Value::Object(m) => {
            if m.len() > 1 {
                if let Some(r) = m.remove("$ref") {
                    m.insert("allOf".into(), json!([{"$ref": r}]));
                }
            }
            for (_, child) in m.iter_mut() {
                wrap_refs(child);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(wrap_refs),
        _ => {}
    }
}

/// Schemas whose `metadata` kube really lists as required (`core/v1` Event's Go field has no
/// `omitempty`); everywhere else it is optional.
const METADATA_REQUIRED: &[&str] = &["io.k8s.api.core.v1.Event"];

/// k8s-openapi marks `metadata` required on every kind (its Rust field is not an `Option`), which
/// kube does not: `kubectl explain` would print `metadata <ObjectMeta> -required-`.
fn unrequire_metadata(name: &str, schema: &mut Value) {
    if METADATA_REQUIRED.contains(&name) {
        return;
    }
    let Value::Object(obj) = schema else {
        return;
    };
    let empty = match obj.get_mut("required") {
        Some(Value::Array(req)) => {
            req.retain(|r| r != "metadata");
            req.is_empty()
        }
        _ => false,
    };
    if empty {
        obj.remove("required");
    }
}

fn gvk_list(gvks: &[(&str, &str, &str)]) -> Value {
    Value::Array(
        gvks.iter()
            .map(|(g, v, k)| json!({"group": g, "kind": k, "version": v}))
            .collect(),
    )
}

fn set_extension(schemas: &mut Map<String, Value>, name: &str, key: &str, value: Value) {
    if let Some(Value::Object(s)) = schemas.get_mut(name) {
        s.insert(key.to_string(), value);
    }
}

/// `PodList` and friends: k8s-openapi models lists generically, so build them as kube does.
fn list_schema(group: &str, version: &str, kind: &str, plural: &str) -> Value {
    json!({
        "description": format!("{kind}List is a list of {kind} objects."),
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": {"description": "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources", "type": "string"},
            "items": {"description": format!("List of {plural}."), "type": "array", "items": {"allOf": [schema_ref(&schema_name(group, version, kind))], "default": {}}},
            "kind": {"description": "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds", "type": "string"},
            "metadata": {"allOf": [schema_ref(&format!("{META}.ListMeta"))], "default": {}, "description": "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds"}
        },
        "x-kubernetes-group-version-kind": gvk_list(&[(group, version, &format!("{kind}List"))]),
    })
}

/// `components.schemas` for one group-version: every served kind, its list, the kinds its
/// subresources speak, the meta types every path uses, and everything they reference.
fn build_schemas(group: &str, version: &str) -> Result<Map<String, Value>, OpenApiError> {
    let mut gen = SchemaSettings::openapi3().into_generator();
    let mut kinds: Vec<(&str, &str, &str)> = Vec::new();
    let mut lists: Vec<&ResourceInfo> = Vec::new();
    for r in RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        kinds.push((r.group, r.version, r.kind));
        lists.push(r);
        if r.has(Subresource::Scale) && !kinds.contains(&("autoscaling", "v1", "Scale")) {
            kinds.push(("autoscaling", "v1", "Scale"));
        }
        if r.has(Subresource::Binding) && !kinds.contains(&("", "v1", "Binding")) {
            kinds.push(("", "v1", "Binding"));
        }
        if r.has(Subresource::Eviction) && !kinds.contains(&("policy", "v1", "Eviction")) {
            kinds.push(("policy", "v1", "Eviction"));
        }
    }
    for &(g, v, k) in &kinds {
        let f = kind_schema(g, v, k)
            .ok_or_else(|| OpenApiError::UnknownKind(format!("{g}/{v}, Kind={k}")))?;
        f(&mut gen);
    }
    gen.subschema_for::<meta::Status>();
    gen.subschema_for::<meta::DeleteOptions>();
    gen.subschema_for::<meta::WatchEvent<()>>();
    gen.subschema_for::<meta::Patch>();
    gen.subschema_for::<meta::APIResourceList>();
    gen.subschema_for::<meta::ListMeta>();

    let mut schemas = Map::new();
    for (name, schema) in gen.take_definitions() {
        let mut v = serde_json::to_value(schema)?;
        wrap_refs(&mut v);
        unrequire_metadata(&name, &mut v);
        schemas.insert(name, v);
    }
    for r in lists {
        schemas.insert(
            schema_name(r.group, r.version, &format!("{}List", r.kind)),
            list_schema(r.group, r.version, r.kind, r.plural),
        );
    }
    for &(g, v, k) in &kinds {
        set_extension(
            &mut schemas,
            &schema_name(g, v, k),
            "x-kubernetes-group-version-kind",
            gvk_list(&[(g, v, k)]),
        );
    }
    // kube registers the meta kinds in every group-version; list those served here.
    let mut meta_gvks: Vec<(&str, &str)> = vec![("", "v1")];
    if !group.is_empty() {
        meta_gvks.push((group, version));
    }
    for kind in ["DeleteOptions", "WatchEvent"] {
        let gvks: Vec<(&str, &str, &str)> = meta_gvks.iter().map(|(g, v)| (*g, *v, kind)).collect();
        set_extension(
            &mut schemas,
            &format!("{META}.{kind}"),
            "x-kubernetes-group-version-kind",
            gvk_list(&gvks),
        );
    }
    set_extension(
        &mut schemas,
        &format!("{META}.Status"),
        "x-kubernetes-group-version-kind",
        gvk_list(&[("", "v1", "Status")]),
    );
    // Patch bodies are free-form (kube: `type: object` with no properties).
    schemas.insert(
        format!("{META}.Patch"),
        json!({"description": "Patch is provided to give a concrete name and type to the Kubernetes PATCH request body.", "type": "object"}),
    );

    for f in schema::FIELDS {
        if f.quirk == Quirk::NotInOpenApi {
            continue;
        }
        let extensions = list_extensions(f);
        if extensions.is_empty() {
            continue;
        }
        for owner in schema::types_with_rows_of(f.owner) {
            let Some(Value::Object(p)) = schemas
                .get_mut(owner)
                .and_then(|s| s.get_mut("properties"))
                .and_then(|ps| ps.get_mut(f.name))
            else {
                continue;
            };
            for (key, value) in &extensions {
                p.insert(key.to_string(), value.clone());
            }
        }
    }
    for (name, quirk) in schema::ATOMIC_TYPES {
        if *quirk != Quirk::NotInOpenApi {
            set_extension(&mut schemas, name, "x-kubernetes-map-type", json!("atomic"));
        }
    }
    Ok(schemas)
}

fn doc_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// The whole v3 document for one group-version.
pub fn build_document(group: &str, version: &str) -> Result<Value, OpenApiError> {
    let schemas = build_schemas(group, version)?;
    let mut paths = Map::new();
    let gv = op_prefix(group, version);
    let prefix = format!("/{}", doc_path(group, version));
    paths.insert(
        format!("{prefix}/"),
        json!({"get": {
            "tags": [tag(group, version)],
            "description": "get available resources",
            "operationId": format!("get{gv}APIResources"),
            "responses": responses(&[("200", "OK")], OBJ_TYPES, &schema_ref(&format!("{META}.APIResourceList"))),
        }}),
    );
    for r in RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        resource_paths(r, &mut paths);
    }
    Ok(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"BearerToken": {"type": "apiKey", "description": "Bearer Token authentication", "name": "authorization", "in": "header"}},
        },
    }))
}

type Docs = BTreeMap<String, (Arc<Vec<u8>>, String)>;

fn documents() -> &'static Docs {
    static DOCS: OnceLock<Docs> = OnceLock::new();
    DOCS.get_or_init(|| {
        let mut docs = Docs::new();
        for (g, v) in group_versions() {
            // A group-version whose document cannot be built is left out (404), which kubectl
            // treats as "no schema": validation falls back to the client, explain fails.
            let Ok(bytes) = build_document(g, v).and_then(|d| Ok(serde_json::to_vec(&d)?)) else {
                continue;
            };
            let hash = Sha512::digest(&bytes)
                .iter()
                .map(|b| format!("{b:02X}"))
                .collect::<String>();
            docs.insert(doc_path(g, v), (Arc::new(bytes), hash));
        }
        docs
    })
}

/// `GET /openapi/v3`: where each group-version's document lives, with its content hash.
pub fn v3_root() -> Value {
    let paths: Map<String, Value> = documents()
        .iter()
        .map(|(path, (_, hash))| {
            (
                path.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={hash}")}),
            )
        })
        .collect();
    json!({"paths": paths})
}

/// `GET /openapi/v3/<path>` (`api/v1`, `apis/apps/v1`; a leading `/` is tolerated): the
/// serialized document and its hash. Serve with `ETag: "<hash>"`, and when the request's `?hash=`
/// equals it, `Cache-Control: public, immutable` (kubectl then caches it for good).
pub fn v3_document(path: &str) -> Option<(Arc<Vec<u8>>, String)> {
    documents()
        .get(path.trim_start_matches('/'))
        .map(|(b, h)| (Arc::clone(b), h.clone()))
}

/// Content-Type of the protobuf v2 document, as kube-openapi serves it. kubectl *asks* for
/// `application/com.github.proto-openapi.spec.v2@v1.0+protobuf` and decodes the body as gnostic's
/// `openapi_v2.Document`, but Go's mime parser rejects that `@` in a response Content-Type
/// ("mime: unexpected content after media subtype"), so answer with octet-stream.
pub const V2_PROTOBUF_CONTENT_TYPE: &str = "application/octet-stream";

/// `GET /openapi/v2`: a valid but empty swagger 2.0 document (`swagger`, `info`, empty `paths`),
/// protobuf-encoded. kubectl 1.32 falls back to v2 only for client-side schema validation, which it
/// runs when the v3 verifier says "unsupported" — always the case for `kind: List` manifests (what
/// `kubectl get -o yaml` prints). On a 404 there, `create`/`apply` of a List fail with "error
/// validating data: the server could not find the requested resource"; with no definitions every
/// item's schema lookup misses and client-side validation passes, leaving it to the server
/// (`fieldValidation` is still sent). Serve with Content-Type [`V2_PROTOBUF_CONTENT_TYPE`].
pub fn v2_protobuf() -> &'static [u8] {
    static DOC: OnceLock<Vec<u8>> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut info = Vec::new();
        pb_string(&mut info, 1, "Kubernetes"); // Info.title
        pb_string(&mut info, 2, "v1.32.0"); // Info.version
        let mut doc = Vec::new();
        pb_string(&mut doc, 1, "2.0"); // Document.swagger
        pb_bytes(&mut doc, 2, &info); // Document.info
        pb_bytes(&mut doc, 8, &[]); // Document.paths (empty, but present as swagger requires)
        doc
    })
}

/// The same empty document as JSON, for clients asking `application/json`.
#[cfg(test)]
pub fn v2_json() -> Value {
    json!({"swagger": "2.0", "info": {"title": "Kubernetes", "version": "v1.32.0"}, "paths": {}})
}

fn pb_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// A length-delimited protobuf field (wire type 2).
fn pb_bytes(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    pb_varint(out, (field << 3) | 2);
    pb_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn pb_string(out: &mut Vec<u8>, field: u64, s: &str) {
    pb_bytes(out, field, s.as_bytes());
}

#[cfg(test)]
mod tests;
