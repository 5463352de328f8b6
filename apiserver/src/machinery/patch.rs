//! PATCH bodies applied to stored objects: JSON patch (RFC 6902), JSON merge patch (RFC 7386) and
//! Kubernetes strategic merge patch, with the status codes and messages kube-apiserver 1.32 uses.
//!
//! Behaviour follows the Go code kube-apiserver runs, not only the RFCs, because clients (kubectl,
//! controllers) are written against kube's behaviour:
//! - JSON patch: `gopkg.in/evanphx/json-patch.v4` (e.g. `replace` of a missing object member adds
//!   it, negative array indices count from the end, `add` without `value` adds `null`);
//! - merge patch: the same library's `MergePatch`;
//! - strategic merge patch: `k8s.io/apimachinery/pkg/util/strategicpatch` `StrategicMergeMapPatch`
//!   (apply side only; this module never computes patches), driven by the `patchStrategy` /
//!   `patchMergeKey` struct tags of the k8s.io/api 1.32 types served here, as
//!   [`super::schema`] lists them.
//!
//! Where Go would leave directive keys or raw patch values in its intermediate map (and rely on the
//! typed decode afterwards to drop them), we clean them here, because the result is stored as is:
//! a patch value with no counterpart in the object is merged into an empty value, so its nulls
//! vanish and its directives apply (Go keeps e.g. `{"name":"x","$patch":"delete"}` in a brand-new
//! list as the element `{"name":"x"}`; we drop it). `$deleteFromPrimitiveList` on a missing list
//! is a no-op (Go would store the deletion list as the list).
//!
//! Outputs and error texts were compared with `kubectl patch --local` (kubectl 1.32.4, which
//! links the same libraries) on a Deployment for about 30 strategic, json and merge patches.

use serde_json::{Map, Value};

use super::schema::{self, PatchStrategy, TypeName};
pub(crate) use identity::canon;
use identity::{key_identity, value_set, ElemKind, Positions};

mod identity;

/// Why a patch could not be applied. Each variant maps to the HTTP status and `Status` message
/// kube-apiserver would return; `Display` carries the detailed text (for logs).
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    /// Malformed patch body (kube: `errors.NewBadRequest(msg)`, 400, reason `BadRequest`).
    #[error("{0}")]
    BadRequest(String),
    /// The patch is well formed but cannot be applied, e.g. a JSON patch `test` failed or a path
    /// is missing. kube wraps it in `NewGenericServerResponse(422, ...)`, which replaces the text
    /// with a generic message; the detail stays here for logs.
    #[error("{0}")]
    Unprocessable(String),
    /// kube's `errors.NewInvalid` (422, reason `Invalid`); the string is the full message.
    #[error("{0}")]
    Invalid(String),
    /// Too many JSON patch operations (413).
    #[error("Request entity too large: {0}")]
    TooLarge(String),
    /// Errors kube returns unconverted from strategicpatch (e.g. a bad `$patch` value or a list
    /// element without its merge key): `ErrorToAPIStatus` turns them into 500 with an empty reason
    /// and the error text as message.
    #[error("{0}")]
    Internal(String),
}

/// The message kube puts in a 422 built by `NewGenericServerResponse`.
const GENERIC_422: &str = "the server rejected our request due to an error in our request";

impl PatchError {
    /// HTTP status code kube-apiserver 1.32 answers with.
    pub fn status_code(&self) -> u16 {
        match self {
            PatchError::BadRequest(_) => 400,
            PatchError::Unprocessable(_) | PatchError::Invalid(_) => 422,
            PatchError::TooLarge(_) => 413,
            PatchError::Internal(_) => 500,
        }
    }

    /// `Status.reason` kube uses (`""` is `StatusReasonUnknown`).
    pub fn reason(&self) -> &'static str {
        match self {
            PatchError::BadRequest(_) => "BadRequest",
            PatchError::Unprocessable(_) | PatchError::Invalid(_) => "Invalid",
            PatchError::TooLarge(_) => "RequestEntityTooLarge",
            PatchError::Internal(_) => "",
        }
    }

    /// Whether this is a malformed-body error (400).
    #[cfg(test)]
    pub fn is_bad_request(&self) -> bool {
        matches!(self, PatchError::BadRequest(_))
    }

    /// `Status.message` as kube-apiserver sends it.
    pub fn message(&self) -> String {
        match self {
            PatchError::Unprocessable(_) => GENERIC_422.to_string(),
            other => other.to_string(),
        }
    }
}

type PResult<T> = Result<T, PatchError>;

// ------------------------------------------------------------------------------------------------
// Go-style formatting, for error texts that quote values the way kube prints them (`%v`).
// ------------------------------------------------------------------------------------------------

fn go_fmt(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(a) => {
            let parts: Vec<String> = a.iter().map(go_fmt).collect();
            format!("[{}]", parts.join(" "))
        }
        Value::Object(m) => {
            // Go prints map keys sorted.
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .iter()
                .map(|k| format!("{}:{}", k, m.get(*k).map(go_fmt).unwrap_or_default()))
                .collect();
            format!("map[{}]", parts.join(" "))
        }
    }
}

fn go_fmt_map(m: &Map<String, Value>) -> String {
    go_fmt(&Value::Object(m.clone()))
}

/// `reflect.TypeOf(x)` of a value decoded by Go's encoding/json (ints preserved as int64).
fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "%!s(<nil>)",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float64",
        Value::Number(_) => "int64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

fn json_kind_word(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

// ------------------------------------------------------------------------------------------------
// application/json-patch+json
// ------------------------------------------------------------------------------------------------

/// kube-apiserver's `maxJSONPatchOperations`.
const MAX_JSON_PATCH_OPERATIONS: usize = 10000;

/// Applies an RFC 6902 JSON patch (with json-patch v4's leniencies, as kube does).
pub fn json_patch(doc: &Value, patch: &[u8]) -> PResult<Value> {
    let parsed: Value =
        serde_json::from_slice(patch).map_err(|e| PatchError::BadRequest(e.to_string()))?;
    let ops = match parsed {
        // Go decodes `null` into a nil Patch: no operations.
        Value::Null => Vec::new(),
        Value::Array(ops) => ops,
        other => {
            return Err(PatchError::BadRequest(format!(
                "json: cannot unmarshal {} into Go value of type jsonpatch.Patch",
                json_kind_word(&other)
            )))
        }
    };
    for op in &ops {
        if !matches!(op, Value::Object(_) | Value::Null) {
            return Err(PatchError::BadRequest(format!(
                "json: cannot unmarshal {} into Go value of type jsonpatch.Operation",
                json_kind_word(op)
            )));
        }
    }
    if ops.len() > MAX_JSON_PATCH_OPERATIONS {
        return Err(PatchError::TooLarge(format!(
            "The allowed maximum operations in a JSON patch is {}, got {}",
            MAX_JSON_PATCH_OPERATIONS,
            ops.len()
        )));
    }
    let mut out = doc.clone();
    for op in &ops {
        apply_op(&mut out, op).map_err(PatchError::Unprocessable)?;
    }
    Ok(out)
}

fn op_str<'a>(op: &'a Value, field: &str) -> Option<&'a str> {
    op.get(field).and_then(Value::as_str)
}

fn apply_op(doc: &mut Value, op: &Value) -> Result<(), String> {
    let kind = op_str(op, "op").unwrap_or("unknown");
    let path =
        || op_str(op, "path").ok_or_else(|| format!("{kind} operation failed to decode path"));
    let from =
        || op_str(op, "from").ok_or_else(|| format!("{kind} operation failed to decode from"));
    // json-patch v4 stores an absent `value` as a nil node, which serialises as null.
    let value = || op.get("value").cloned().unwrap_or(Value::Null);
    match kind {
        "add" => {
            let p = path()?;
            add_at(doc, p, value())
        }
        "remove" => {
            let p = path()?;
            remove_at(doc, p).map(|_| ())
        }
        "replace" => {
            let p = path()?;
            let (parent, key) = parent_of(doc, p).ok_or_else(|| {
                format!("replace operation does not apply: doc is missing path: {p}: missing value")
            })?;
            match parent {
                // v4 does not check that the member exists: replace then behaves like add.
                Value::Object(m) => {
                    m.insert(key, value());
                    Ok(())
                }
                Value::Array(a) => {
                    let i = existing_index(a, &key).ok_or_else(|| {
                        format!("replace operation does not apply: doc is missing key: {p}: missing value")
                    })?;
                    if let Some(slot) = a.get_mut(i) {
                        *slot = value();
                    }
                    Ok(())
                }
                _ => Err(format!(
                    "replace operation does not apply: doc is missing path: {p}"
                )),
            }
        }
        "move" => {
            let f = from()?;
            let v = remove_at(doc, f).map_err(|e| format!("move operation does not apply: {e}"))?;
            let p = path()?;
            add_at(doc, p, v)
        }
        "copy" => {
            let f = from()?;
            let v = get_at(doc, f).cloned().ok_or_else(|| {
                format!(
                    "copy operation does not apply: doc is missing from path: {f}: missing value"
                )
            })?;
            let p = path()?;
            add_at(doc, p, v)
        }
        "test" => {
            let p = path()?;
            let expected = op.get("value").unwrap_or(&Value::Null);
            match get_at(doc, p) {
                Some(actual) if actual == expected => Ok(()),
                // A missing member equals an explicit null in v4.
                None if expected.is_null() && parent_of_ref(doc, p).is_some() => Ok(()),
                _ => Err(format!("testing value {p} failed: test failed")),
            }
        }
        other => Err(format!("Unexpected kind: {other}")),
    }
}

/// RFC 6901 token unescaping (`~1` before `~0`, as the RFC requires).
fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

fn split_pointer(path: &str) -> Option<(Vec<String>, String)> {
    let rest = path.strip_prefix('/')?;
    let mut tokens: Vec<String> = rest.split('/').map(unescape).collect();
    let last = tokens.pop()?;
    Some((tokens, last))
}

/// Index of an existing element (negative counts from the end, as json-patch v4 allows).
fn existing_index(a: &[Value], token: &str) -> Option<usize> {
    let i: i64 = token.parse().ok()?;
    let len = a.len() as i64;
    let i = if i < 0 { i + len } else { i };
    if (0..len).contains(&i) {
        usize::try_from(i).ok()
    } else {
        None
    }
}

fn child_mut<'a>(v: &'a mut Value, token: &str) -> Option<&'a mut Value> {
    match v {
        Value::Object(m) => m.get_mut(token),
        Value::Array(a) => {
            let i = existing_index(a, token)?;
            a.get_mut(i)
        }
        _ => None,
    }
}

fn child_ref<'a>(v: &'a Value, token: &str) -> Option<&'a Value> {
    match v {
        Value::Object(m) => m.get(token),
        Value::Array(a) => a.get(existing_index(a, token)?),
        _ => None,
    }
}

/// The container holding the last token of `path`, and that token.
fn parent_of<'a>(doc: &'a mut Value, path: &str) -> Option<(&'a mut Value, String)> {
    let (tokens, last) = split_pointer(path)?;
    let mut cur = doc;
    for t in &tokens {
        cur = child_mut(cur, t)?;
    }
    if matches!(cur, Value::Object(_) | Value::Array(_)) {
        Some((cur, last))
    } else {
        None
    }
}

fn parent_of_ref<'a>(doc: &'a Value, path: &str) -> Option<(&'a Value, String)> {
    let (tokens, last) = split_pointer(path)?;
    let mut cur = doc;
    for t in &tokens {
        cur = child_ref(cur, t)?;
    }
    if matches!(cur, Value::Object(_) | Value::Array(_)) {
        Some((cur, last))
    } else {
        None
    }
}

fn get_at<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    let (parent, last) = parent_of_ref(doc, path)?;
    child_ref(parent, &last)
}

fn add_at(doc: &mut Value, path: &str, value: Value) -> Result<(), String> {
    let missing =
        || format!("add operation does not apply: doc is missing path: \"{path}\": missing value");
    let (parent, key) = parent_of(doc, path).ok_or_else(missing)?;
    match parent {
        Value::Object(m) => {
            m.insert(key, value);
            Ok(())
        }
        Value::Array(a) => {
            if key == "-" {
                a.push(value);
                return Ok(());
            }
            let bad = || {
                format!("error in add for path: '{path}': Unable to access invalid index: {key}: invalid index referenced")
            };
            let i: i64 = key.parse().map_err(|_| {
                format!(
                    "error in add for path: '{path}': value was not a proper array index: '{key}'"
                )
            })?;
            let len = a.len() as i64 + 1;
            if i >= len || i < -len {
                return Err(bad());
            }
            let i = if i < 0 { i + len } else { i };
            let i = usize::try_from(i).map_err(|_| bad())?;
            a.insert(i, value);
            Ok(())
        }
        _ => Err(missing()),
    }
}

fn remove_at(doc: &mut Value, path: &str) -> Result<Value, String> {
    let (parent, key) = parent_of(doc, path).ok_or_else(|| {
        format!("remove operation does not apply: doc is missing path: \"{path}\": missing value")
    })?;
    match parent {
        Value::Object(m) => m.remove(&key).ok_or_else(|| {
            format!("error in remove for path: '{path}': Unable to remove nonexistent key: {key}: missing value")
        }),
        Value::Array(a) => {
            let i = existing_index(a, &key).ok_or_else(|| {
                format!("error in remove for path: '{path}': Unable to access invalid index: {key}: invalid index referenced")
            })?;
            Ok(a.remove(i))
        }
        _ => Err(format!("remove operation does not apply: doc is missing path: \"{path}\"")),
    }
}

// ------------------------------------------------------------------------------------------------
// application/merge-patch+json
// ------------------------------------------------------------------------------------------------

/// json-patch v4's error for a patch that is not a JSON object.
const BAD_JSON_PATCH: &str = "Invalid JSON Patch";

/// Applies an RFC 7386 JSON merge patch.
pub fn merge_patch(doc: &Value, patch: &[u8]) -> PResult<Value> {
    let parsed: Value = serde_json::from_slice(patch)
        .map_err(|_| PatchError::BadRequest(BAD_JSON_PATCH.to_string()))?;
    match parsed {
        Value::Object(p) => {
            let mut out = doc.clone();
            merge_into(&mut out, p);
            Ok(out)
        }
        // json-patch v4 turns an array patch into the whole document, which kube then fails to
        // decode as the object: a 422 from `errors.NewInvalid`.
        Value::Array(_) => Err(PatchError::Invalid(format!(
            " \"\" is invalid: patch: Invalid value: \"{}\": json: cannot unmarshal array into Go value of type map[string]interface {{}}",
            String::from_utf8_lossy(patch).trim()
        ))),
        _ => Err(PatchError::BadRequest(BAD_JSON_PATCH.to_string())),
    }
}

fn merge_into(target: &mut Value, patch: Map<String, Value>) {
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(t) = target else {
        return;
    };
    for (k, v) in patch {
        match v {
            Value::Null => {
                t.remove(&k);
            }
            Value::Object(pm) => match t.get_mut(&k) {
                Some(cur @ Value::Object(_)) => merge_into(cur, pm),
                _ => {
                    let mut fresh = Value::Object(Map::new());
                    merge_into(&mut fresh, pm);
                    t.insert(k, fresh);
                }
            },
            other => {
                t.insert(k, prune_nulls(other));
            }
        }
    }
}

/// Values copied from a merge patch lose their null members, as json-patch v4 prunes them.
fn prune_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, prune_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(prune_nulls).collect()),
        other => other,
    }
}

// ------------------------------------------------------------------------------------------------
// Strategic merge patch: schema
// ------------------------------------------------------------------------------------------------

/// A field's `patchStrategy` tag, as far as applying a patch cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strategy {
    /// No tag: lists are replaced, maps (structs) are merged.
    None,
    /// `patchStrategy:"merge"` (with or without `retainKeys`, which only matters when computing
    /// patches): lists merge by `patchMergeKey`, or as a set when the elements are primitives.
    Merge,
    /// `patchStrategy:"retainKeys"` alone: only affects patch computation; applied like `None`.
    RetainKeys,
}

/// What the walk knows about a field.
#[derive(Debug, Clone, Copy)]
struct FieldMeta {
    /// Struct type of the field (or of its list elements); `None` = no tagged fields below.
    ty: Option<TypeName>,
    strategy: Strategy,
    merge_key: &'static str,
}

const NO_META: FieldMeta = FieldMeta {
    ty: None,
    strategy: Strategy::None,
    merge_key: "",
};

/// Strategic merge patch's view of a [`schema::FIELDS`] row: the `child` link to walk, and the
/// `patchStrategy` / `patchMergeKey` tags. Fields without a row merge as plain maps with
/// replaced lists, which is what untagged fields do in strategicpatch anyway.
fn lookup(ty: Option<TypeName>, field: &str) -> FieldMeta {
    let Some(row) = ty.and_then(|ty| schema::field(ty, field)) else {
        return NO_META;
    };
    FieldMeta {
        ty: row.child,
        strategy: match row.patch {
            PatchStrategy::Unset => Strategy::None,
            PatchStrategy::Merge | PatchStrategy::MergeRetainKeys => Strategy::Merge,
            PatchStrategy::RetainKeys => Strategy::RetainKeys,
        },
        merge_key: row.merge_key,
    }
}

// ------------------------------------------------------------------------------------------------
// Strategic merge patch: apply
// ------------------------------------------------------------------------------------------------

const DIRECTIVE_MARKER: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";
const SET_ELEMENT_ORDER: &str = "$setElementOrder";

// mergepatch / strategicpatch error texts as of 1.32 (checked against kubectl 1.32's copy).
const ERR_BAD_PRIMITIVE_LIST: &str = "invalid patch format of primitive list";
const ERR_BAD_RETAIN_KEYS: &str = "invalid patch format of retainKeys";
const ERR_BAD_SET_ELEMENT_ORDER: &str = "invalid patch format of setElementOrder list";
const ERR_NO_LIST_OF_LISTS: &str = "lists of lists are not supported";

/// Applies a strategic merge patch to an object of the given apiVersion/kind. Kinds without a
/// schema here get plain merge semantics (maps merge, lists are replaced), directives included.
pub fn strategic_merge_patch(
    api_version: &str,
    kind: &str,
    doc: &Value,
    patch: &[u8],
) -> PResult<Value> {
    let parsed: Value =
        serde_json::from_slice(patch).map_err(|e| PatchError::BadRequest(e.to_string()))?;
    let patch = match parsed {
        // Go unmarshals `null` into the map as a no-op.
        Value::Null => return Ok(doc.clone()),
        Value::Object(m) => m,
        other => {
            return Err(PatchError::BadRequest(format!(
                "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
                json_kind_word(&other)
            )))
        }
    };
    let Value::Object(original) = doc else {
        return Err(PatchError::BadRequest("invalid JSON document".to_string()));
    };
    let merged = merge_map(
        original.clone(),
        patch,
        schema::root_type(api_version, kind),
    )?;
    Ok(Value::Object(merged))
}

fn bad_arg_type(expected: &str, actual: &Value) -> PatchError {
    PatchError::Internal(format!(
        "expected a {expected}, but received a {}",
        go_type(actual)
    ))
}

fn no_merge_key(m: &Map<String, Value>, key: &str) -> PatchError {
    PatchError::Internal(format!(
        "map: {} does not contain declared merge key: {key}",
        go_fmt_map(m)
    ))
}

/// strategicpatch `mergeMap` with `MergeParallelList` and `IgnoreUnmatchedNulls` (the options of
/// `StrategicMergeMapPatch`).
fn merge_map(
    mut original: Map<String, Value>,
    mut patch: Map<String, Value>,
    ty: Option<&'static str>,
) -> PResult<Map<String, Value>> {
    if let Some(directive) = patch.get(DIRECTIVE_MARKER) {
        return match directive.as_str() {
            Some("replace") => {
                patch.remove(DIRECTIVE_MARKER);
                // Go returns the rest of the patch verbatim; clean nested directives and nulls.
                merge_map(Map::new(), patch, ty)
            }
            Some("delete") => Ok(Map::new()),
            _ => Err(PatchError::Internal(format!(
                "unknown patch type: {} in map: {}",
                go_fmt(directive),
                go_fmt_map(&patch)
            ))),
        };
    }

    apply_retain_keys(&mut original, &mut patch)?;
    merge_set_element_order(&mut original, &mut patch, ty)?;

    for (key, patch_v) in patch {
        let (k, is_delete_list) = if key.starts_with(DELETE_FROM_PRIMITIVE_LIST) {
            (extract_key(&key, DELETE_FROM_PRIMITIVE_LIST)?, true)
        } else {
            (key, false)
        };

        if patch_v.is_null() {
            original.remove(&k);
            continue;
        }

        let meta = lookup(ty, &k);
        let Some(orig_v) = original.remove(&k) else {
            // Go would copy a deletion list into a missing list (turning "delete these" into
            // "set these"); nothing to delete is the evident intent.
            if !is_delete_list {
                original.insert(k, new_value(patch_v, meta)?);
            }
            continue;
        };

        let merged = match (orig_v, patch_v) {
            (Value::Object(om), Value::Object(pm)) => {
                // No 1.32 type on our path carries patchStrategy "replace" on a struct, so maps
                // always merge.
                Value::Object(merge_map(om, pm, meta.ty)?)
            }
            (Value::Array(oa), Value::Array(pa)) => {
                if meta.strategy == Strategy::Merge {
                    Value::Array(merge_slice(oa, pa, meta, is_delete_list)?)
                } else {
                    new_value(Value::Array(pa), meta)?
                }
            }
            (_, p) => new_value(p, meta)?,
        };
        original.insert(k, merged);
    }
    Ok(original)
}

/// A patch value landing where the original has nothing to merge with: Go copies it verbatim and
/// lets the typed decode drop directive keys; we resolve its directives and nulls instead, as a
/// merge into an empty value.
fn new_value(v: Value, meta: FieldMeta) -> PResult<Value> {
    match v {
        Value::Object(m) => Ok(Value::Object(merge_map(Map::new(), m, meta.ty)?)),
        Value::Array(a) => {
            if meta.strategy == Strategy::Merge {
                Ok(Value::Array(merge_slice(Vec::new(), a, meta, false)?))
            } else {
                a.into_iter()
                    .map(|e| match e {
                        Value::Object(m) => Ok(Value::Object(merge_map(Map::new(), m, meta.ty)?)),
                        other => Ok(other),
                    })
                    .collect::<PResult<Vec<_>>>()
                    .map(Value::Array)
            }
        }
        other => Ok(other),
    }
}

/// `extractKey`: `"<prefix>/<field>"` → `field`.
fn extract_key(key: &str, prefix: &str) -> PResult<String> {
    match key.split_once('/') {
        Some((p, rest)) if p == prefix => Ok(rest.to_string()),
        _ => Err(PatchError::BadRequest(
            if prefix == DELETE_FROM_PRIMITIVE_LIST {
                ERR_BAD_PRIMITIVE_LIST
            } else {
                ERR_BAD_SET_ELEMENT_ORDER
            }
            .to_string(),
        )),
    }
}

/// `applyRetainKeysDirective`: drop original keys not listed; every non-null patch key must be
/// listed.
fn apply_retain_keys(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
) -> PResult<()> {
    let Some(list) = patch.remove(RETAIN_KEYS) else {
        return Ok(());
    };
    let Value::Array(list) = list else {
        return Err(PatchError::BadRequest(ERR_BAD_RETAIN_KEYS.to_string()));
    };
    let names: std::collections::HashSet<&str> = list.iter().filter_map(Value::as_str).collect();
    let listed = |k: &str| names.contains(k);
    for (k, v) in patch.iter() {
        if v.is_null()
            || k.starts_with(DELETE_FROM_PRIMITIVE_LIST)
            || k.starts_with(SET_ELEMENT_ORDER)
        {
            continue;
        }
        if !listed(k) {
            return Err(PatchError::BadRequest(ERR_BAD_RETAIN_KEYS.to_string()));
        }
    }
    original.retain(|k, _| listed(k));
    Ok(())
}

fn elem_kind(lists: &[&[Value]]) -> PResult<Option<ElemKind>> {
    let mut found: Option<ElemKind> = None;
    for list in lists {
        for v in list.iter() {
            let k = match v {
                Value::Array(_) => ElemKind::List,
                Value::Object(_) => ElemKind::Map,
                Value::String(_) => ElemKind::Scalar("string"),
                Value::Number(_) => ElemKind::Scalar("number"),
                Value::Bool(_) => ElemKind::Scalar("bool"),
                Value::Null => ElemKind::Scalar("null"),
            };
            match found {
                // Go checks for a list only on the first element; a later one is a type mismatch.
                None if k == ElemKind::List => {
                    return Err(PatchError::Unprocessable(ERR_NO_LIST_OF_LISTS.to_string()))
                }
                None => found = Some(k),
                Some(prev) if prev != k => {
                    let all: Vec<String> = lists
                        .iter()
                        .map(|l| go_fmt(&Value::Array(l.to_vec())))
                        .collect();
                    return Err(PatchError::Internal(format!(
                        "list element types are not identical: [{}]",
                        all.join(" ")
                    )));
                }
                Some(_) => {}
            }
        }
    }
    Ok(found)
}

/// strategicpatch `mergeSlice` for a field with `patchStrategy:"merge"`.
fn merge_slice(
    original: Vec<Value>,
    patch: Vec<Value>,
    meta: FieldMeta,
    is_delete_list: bool,
) -> PResult<Vec<Value>> {
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    let Some(kind) = elem_kind(&[&original, &patch])? else {
        return Ok(original);
    };
    let merge_key = meta.merge_key;

    if kind != ElemKind::Map {
        let in_patch = value_set(&patch);
        if is_delete_list {
            return Ok(original
                .into_iter()
                .filter(|v| !in_patch.contains(&canon(v)))
                .collect());
        }
        let mut both = original.clone();
        both.extend(patch.iter().cloned());
        let merged = deduplicate_scalars(both);
        let (patch_items, server_only): (Vec<Value>, Vec<Value>) = merged
            .into_iter()
            .partition(|v| in_patch.contains(&canon(v)));
        return normalize_element_order(patch_items, server_only, &patch, &original, "", kind);
    }

    if merge_key.is_empty() {
        return Err(PatchError::Internal(
            "cannot merge lists without merge key for type struct".to_string(),
        ));
    }

    // mergeSliceWithSpecialElements
    let mut original = original;
    let mut plain_patch = Vec::new();
    let mut replace = false;
    // The merge key values `$patch: delete` items name, removed in one pass below.
    let mut deleted = std::collections::HashSet::new();
    for v in patch {
        let Value::Object(m) = v else {
            return Err(bad_arg_type("map[string]interface {}", &v));
        };
        match m.get(DIRECTIVE_MARKER) {
            None => plain_patch.push(m),
            Some(directive) => match directive.as_str() {
                Some("delete") => {
                    let Some(key_value) = m.get(merge_key) else {
                        return Err(no_merge_key(&m, merge_key));
                    };
                    deleted.insert(canon(key_value));
                }
                Some("replace") => replace = true,
                Some("merge") => {
                    return Err(PatchError::Internal(
                        "merging lists cannot yet be specified in the patch".to_string(),
                    ))
                }
                _ => {
                    return Err(PatchError::Internal(format!(
                        "unknown patch type: {} in map: {}",
                        go_fmt(directive),
                        go_fmt_map(&m)
                    )))
                }
            },
        }
    }
    if !deleted.is_empty() {
        let mut kept = Vec::with_capacity(original.len());
        for (i, o) in original.into_iter().enumerate() {
            let Value::Object(om) = &o else {
                return Err(PatchError::Internal(format!(
                    "value for key {i} is not a map."
                )));
            };
            if !om
                .get(merge_key)
                .is_some_and(|k| deleted.contains(&canon(k)))
            {
                kept.push(o);
            }
        }
        original = kept;
    }
    let plain_patch: Vec<Value> = if replace {
        // `$patch: replace`: the rest of the patch list becomes the list.
        original = plain_patch
            .into_iter()
            .map(|m| merge_map(Map::new(), m, meta.ty).map(Value::Object))
            .collect::<PResult<_>>()?;
        Vec::new()
    } else {
        plain_patch.into_iter().map(Value::Object).collect()
    };

    // mergeSliceWithoutSpecialElements
    let server_order = original.clone();
    let mut merged = original;
    // Each merge key value's first item in `merged`.
    let mut at_key = std::collections::HashMap::with_capacity(merged.len());
    for (i, o) in merged.iter().enumerate() {
        let Value::Object(om) = o else {
            return Err(PatchError::Internal(format!(
                "value for key {i} is not a map."
            )));
        };
        if let Some(k) = om.get(merge_key) {
            at_key.entry(canon(k)).or_insert(i);
        }
    }
    for v in &plain_patch {
        let Value::Object(pm) = v else {
            return Err(bad_arg_type("map[string]interface {}", v));
        };
        let Some(key_value) = pm.get(merge_key) else {
            return Err(no_merge_key(pm, merge_key));
        };
        let key = canon(key_value);
        match at_key.get(&key).and_then(|&i| merged.get_mut(i)) {
            Some(slot) => {
                let Value::Object(om) = std::mem::take(slot) else {
                    return Err(PatchError::Internal("value is not a map.".to_string()));
                };
                *slot = Value::Object(merge_map(om, pm.clone(), meta.ty)?);
            }
            None => {
                at_key.insert(key, merged.len());
                merged.push(Value::Object(merge_map(Map::new(), pm.clone(), meta.ty)?));
            }
        }
    }

    let (patch_items, server_only) = partition_maps(merged, &plain_patch, merge_key)?;
    normalize_element_order(
        patch_items,
        server_only,
        &plain_patch,
        &server_order,
        merge_key,
        kind,
    )
}

/// Go's `deduplicateScalars`: each value once. Go's order differs (a duplicate is overwritten by
/// the last item), but its only caller sorts the result fully by patch and server order, so the
/// first occurrence is kept here, in one pass.
fn deduplicate_scalars(s: Vec<Value>) -> Vec<Value> {
    let mut seen = std::collections::HashSet::with_capacity(s.len());
    s.into_iter().filter(|v| seen.insert(canon(v))).collect()
}

/// `partitionMapsByPresentInList`.
fn partition_maps(
    merged: Vec<Value>,
    partition_by: &[Value],
    merge_key: &str,
) -> PResult<(Vec<Value>, Vec<Value>)> {
    let mut in_patch = Vec::new();
    let mut server_only = Vec::new();
    let keys: std::collections::HashSet<String> = partition_by
        .iter()
        .filter_map(|p| key_identity(p, merge_key))
        .collect();
    for v in merged {
        let Value::Object(m) = &v else {
            return Err(bad_arg_type("map[string]interface {}", &v));
        };
        let Some(kv) = m.get(merge_key) else {
            return Err(no_merge_key(m, merge_key));
        };
        if keys.contains(&canon(kv)) {
            in_patch.push(v);
        } else {
            server_only.push(v);
        }
    }
    Ok((in_patch, server_only))
}

/// `normalizeSliceOrder`: stable sort of `to_sort` by position in `order`; `$patch: delete`
/// items go last. Items absent from `order` keep their relative order at the end (Go's
/// comparator is not a strict order for them; in practice they do not occur).
fn normalize_slice_order(
    to_sort: Vec<Value>,
    order: &[Value],
    merge_key: &str,
    kind: ElemKind,
) -> PResult<Vec<Value>> {
    let mut to_delete = Vec::new();
    let mut keep = Vec::with_capacity(to_sort.len());
    if kind == ElemKind::Map {
        for v in to_sort.iter().chain(order.iter()) {
            let Value::Object(m) = v else {
                return Err(bad_arg_type("map[string]interface {}", v));
            };
            if !m.contains_key(merge_key) {
                return Err(no_merge_key(m, merge_key));
            }
        }
        for v in to_sort {
            if v.get(DIRECTIVE_MARKER).and_then(Value::as_str) == Some("delete") {
                to_delete.push(v);
            } else {
                keep.push(v);
            }
        }
    } else {
        keep = to_sort;
    }
    let positions = Positions::of(order, merge_key, kind);
    let mut keyed: Vec<(usize, Value)> = keep
        .into_iter()
        .map(|v| (positions.get(&v).unwrap_or(usize::MAX), v))
        .collect();
    // Stable: items at the same position keep their relative order.
    keyed.sort_by_key(|(at, _)| *at);
    let mut keep: Vec<Value> = keyed.into_iter().map(|(_, v)| v).collect();
    keep.extend(to_delete);
    Ok(keep)
}

/// `normalizeElementOrder` + `mergeSortedSlice`: patch items in patch order, server-only items in
/// server order, interleaved where both positions are known in the server order.
fn normalize_element_order(
    patch: Vec<Value>,
    server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    merge_key: &str,
    kind: ElemKind,
) -> PResult<Vec<Value>> {
    let right = normalize_slice_order(patch, patch_order, merge_key, kind)?;
    let left = normalize_slice_order(server_only, server_order, merge_key, kind)?;
    let positions = Positions::of(server_order, merge_key, kind);
    let mut out = Vec::with_capacity(left.len() + right.len());
    let mut left = left.into_iter().peekable();
    let mut right = right.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => match (positions.get(l), positions.get(r)) {
                (Some(li), Some(ri)) => li < ri,
                _ => false,
            },
        };
        let next = if take_left { left.next() } else { right.next() };
        if let Some(v) = next {
            out.push(v);
        }
    }
    Ok(out)
}

/// `mergePatchIntoOriginal`: each `$setElementOrder/<field>` merges that field's patch list now
/// and orders the result: `$setElementOrder` first, then patch order, then live order.
fn merge_set_element_order(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
    ty: Option<&'static str>,
) -> PResult<()> {
    let keys: Vec<String> = patch
        .keys()
        .filter(|k| k.starts_with(SET_ELEMENT_ORDER))
        .cloned()
        .collect();
    for key in keys {
        let Some(order) = patch.remove(&key) else {
            continue;
        };
        let Value::Array(order) = order else {
            return Err(bad_arg_type("[]interface {}", &order));
        };
        let field = extract_key(&key, SET_ELEMENT_ORDER)?;
        let original_list = match original.get(&field) {
            None => None,
            Some(Value::Array(a)) => Some(a.clone()),
            Some(other) => return Err(bad_arg_type("[]interface {}", other)),
        };
        let patch_list = match patch.get(&field) {
            None => None,
            Some(Value::Array(a)) => Some(a.clone()),
            // A null here means "delete the field": leave it to the main loop.
            Some(Value::Null) => continue,
            Some(other) => return Err(bad_arg_type("[]interface {}", other)),
        };
        let meta = lookup(ty, &field);
        let merge_key = if meta.strategy == Strategy::Merge {
            meta.merge_key
        } else {
            ""
        };
        if let Some(pl) = &patch_list {
            validate_patch_with_set_order_list(pl, &order, merge_key)?;
        }

        let orig_for_order = original_list.clone().unwrap_or_default();
        let merged = match (original_list, patch_list) {
            (Some(o), None) => o,
            (None, Some(p)) => match new_value(Value::Array(p), meta)? {
                Value::Array(a) => a,
                _ => Vec::new(),
            },
            (Some(o), Some(p)) => {
                if meta.strategy == Strategy::Merge {
                    merge_slice(o, p, meta, false)?
                } else {
                    match new_value(Value::Array(p), meta)? {
                        Value::Array(a) => a,
                        _ => Vec::new(),
                    }
                }
            }
            (None, None) => continue,
        };

        let kind = elem_kind(&[&merged])?.unwrap_or(if merge_key.is_empty() {
            ElemKind::Scalar("")
        } else {
            ElemKind::Map
        });
        let (patch_items, server_only) = if kind == ElemKind::Map {
            if merge_key.is_empty() {
                // A list of maps without a merge key is replaced; nothing to order by.
                original.insert(field.clone(), Value::Array(merged));
                patch.remove(&field);
                continue;
            }
            partition_maps(merged, &order, merge_key)?
        } else {
            let in_order = value_set(&order);
            merged
                .into_iter()
                .partition(|v| in_order.contains(&canon(v)))
        };
        let both = normalize_element_order(
            patch_items,
            server_only,
            &order,
            &orig_for_order,
            merge_key,
            kind,
        )?;
        original.insert(field.clone(), Value::Array(both));
        patch.remove(&field);
    }
    Ok(())
}

/// `validatePatchWithSetOrderList`: the patch list's items must appear in `$setElementOrder`
/// in the same relative order.
fn validate_patch_with_set_order_list(
    patch_list: &[Value],
    order: &[Value],
    merge_key: &str,
) -> PResult<()> {
    if order.is_empty() || patch_list.is_empty() {
        return Ok(());
    }
    let non_delete: Vec<&Value> = if merge_key.is_empty() {
        patch_list.iter().collect()
    } else {
        let mut out = Vec::new();
        for v in patch_list {
            let Value::Object(m) = v else {
                return Err(bad_arg_type("map[string]interface {}", v));
            };
            if m.get(DIRECTIVE_MARKER).and_then(Value::as_str) != Some("delete") {
                out.push(v);
            }
        }
        out
    };
    let (mut pi, mut oi) = (0, 0);
    while let (Some(p), Some(o)) = (non_delete.get(pi), order.get(oi)) {
        if p.as_object()
            .is_some_and(|m| m.contains_key(DIRECTIVE_MARKER))
        {
            pi += 1;
            continue;
        }
        let equal = if merge_key.is_empty() {
            *p == o
        } else {
            let (Some(pm), Some(om)) = (p.as_object(), o.as_object()) else {
                return Err(bad_arg_type("map[string]interface {}", o));
            };
            let Some(pk) = pm.get(merge_key) else {
                return Err(no_merge_key(pm, merge_key));
            };
            let Some(ok) = om.get(merge_key) else {
                return Err(no_merge_key(om, merge_key));
            };
            pk == ok
        };
        if equal {
            pi += 1;
        }
        oi += 1;
    }
    if pi < non_delete.len() && oi >= order.len() {
        return Err(PatchError::Internal(format!(
            "The order in patch list:\n{}\n doesn't match {SET_ELEMENT_ORDER} list:\n{}\n",
            go_fmt(&Value::Array(patch_list.to_vec())),
            go_fmt(&Value::Array(order.to_vec()))
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
