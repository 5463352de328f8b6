//! What a write means, for every kind (kube's `registry/generic/registry/store.go`): preparing
//! and inserting a new object, the read-transform-CAS update loop, and deletion with
//! preconditions, finalizers and graceful pod deletion. Per-kind behaviour comes from
//! `strategy` and `kinds`.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::app::App;
use crate::error::{ApiError, Cause};
use crate::machinery::{apply, meta, validation};
use crate::registry::admission;
use crate::registry::deletion::{self, DeleteOptions, Plan};
use crate::registry::kinds::{namespace, service};
use crate::registry::strategy::{self, FieldValidation};
use crate::registry::ObjectRef;
use crate::resources::{self, ResourceInfo, Subresource};
use crate::storage::etcd::WriteOutcome;

/// Conflicting writes retried by one unconditional update or patch before it reports 409.
const UPDATE_RETRIES: usize = 16;

/// Everything a write needs from the query string.
pub struct WriteOpts {
    pub dry_run: bool,
    pub validation: FieldValidation,
    pub manager: String,
}

/// Warnings for unknown fields, or the Strict error.
fn field_checks(
    unknown: &[String],
    mode: FieldValidation,
    warnings: &mut Vec<String>,
) -> Result<(), ApiError> {
    if unknown.is_empty() || mode == FieldValidation::Ignore {
        return Ok(());
    }
    let msgs: Vec<String> = unknown
        .iter()
        .map(|f| format!("unknown field {f:?}"))
        .collect();
    if mode == FieldValidation::Strict {
        return Err(ApiError::bad_request(format!(
            "strict decoding error: {}",
            msgs.join(", ")
        )));
    }
    warnings.extend(msgs);
    Ok(())
}

/// Decodes against the type, applies defaults and validates; `Ok` is the object to store.
fn finish_object(
    t: &ObjectRef,
    obj: Value,
    validation: FieldValidation,
    warnings: &mut Vec<String>,
) -> Result<Value, ApiError> {
    let (mut typed, unknown) = strategy::decode_typed(t.r, &obj)?;
    field_checks(&unknown, validation, warnings)?;
    strategy::apply_defaults(t.r, &mut typed);
    let mut causes = Vec::new();
    strategy::validate_meta(t.r, &typed, &mut causes);
    strategy::validate_kind(t.r, &typed, &mut causes);
    if !causes.is_empty() {
        let name = meta::meta_str(&typed, "name").unwrap_or("").to_string();
        return Err(ApiError::invalid(t.r, &name, causes));
    }
    Ok(typed)
}

/// NamespaceLifecycle on a create: the namespace must exist and not be Terminating.
async fn require_namespace(app: &Arc<App>, t: &ObjectRef, obj: &Value) -> Result<(), ApiError> {
    let Some(ns) = t.ns() else { return Ok(()) };
    let nsr = resources::find("", "v1", "namespaces")
        .ok_or_else(|| ApiError::internal("no namespaces"))?;
    match app.storage.get(&app.storage.key(nsr, None, ns)).await? {
        None => Err(ApiError::namespace_not_found(ns)),
        Some(s) if admission::is_terminating(&s.object) => Err(admission::namespace_terminating(
            t.r,
            &admission::admission_name(obj, name_was_generated(obj)),
            ns,
        )),
        Some(_) => Ok(()),
    }
}

/// Whether `metadata.name` is `generateName` plus the five characters the create handler added.
fn name_was_generated(obj: &Value) -> bool {
    let (Some(name), Some(generate)) = (
        meta::meta_str(obj, "name"),
        meta::meta_str(obj, "generateName").filter(|g| !g.is_empty()),
    ) else {
        return false;
    };
    let base: String = generate.chars().take(63 - 5).collect();
    name.len() == base.len() + 5 && name.starts_with(&base)
}

/// The DefaultTolerationSeconds settings of this server.
fn toleration_defaults(app: &App) -> admission::DefaultTolerationSeconds {
    admission::DefaultTolerationSeconds {
        not_ready_seconds: app.config.default_not_ready_toleration_seconds,
        unreachable_seconds: app.config.default_unreachable_toleration_seconds,
    }
}

fn is_pods(t: &ObjectRef) -> bool {
    t.r.group.is_empty() && t.r.plural == "pods" && t.sub.is_none()
}

/// Everything a new object gets before it is stored: server-set metadata, its initial status,
/// decoding against its type, defaults and validation. (Services get their addresses when they
/// are stored, in `insert_new`.)
pub fn prepare_new(
    t: &ObjectRef,
    mut obj: Value,
    validation: FieldValidation,
    warnings: &mut Vec<String>,
) -> Result<Value, ApiError> {
    {
        let m = meta::meta_mut(&mut obj);
        for k in [
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
        ] {
            m.remove(k);
        }
        m.insert("uid".into(), json!(meta::new_uid()));
        m.insert("creationTimestamp".into(), json!(meta::now()));
        if strategy::tracks_generation(t.r) {
            m.insert("generation".into(), json!(1));
        } else {
            m.remove("generation");
        }
    }
    strategy::initial_status(t.r, &mut obj);
    strategy::prepare_for_create(t.r, &mut obj);
    let obj = finish_object(t, obj, validation, warnings)?;
    let name = meta::meta_str(&obj, "name").unwrap_or("").to_string();
    if !validation::path_segment_ok(&name) {
        return Err(ApiError::invalid(
            t.r,
            &name,
            vec![Cause::invalid(
                "metadata.name",
                &json!(name),
                "may not contain '/' or '%'",
            )],
        ));
    }
    Ok(obj)
}

/// Stores a prepared new object (Txn on mod_revision 0). `None`: the name is taken. A service
/// gets its cluster IP and node ports here, reserved in the same transaction; an address another
/// service took meanwhile is allocated again, one the client asked for is refused (422).
pub async fn insert_new(
    app: &Arc<App>,
    t: &ObjectRef,
    obj: Value,
    dry_run: bool,
) -> Result<Option<Value>, ApiError> {
    require_namespace(app, t, &obj).await?;
    // Mutating admission runs after the field manager recorded the client's fields (as kube's
    // create handler orders them), so what it adds has no manager.
    let mut obj = obj;
    if is_pods(t) {
        admission::default_toleration_seconds(&mut obj, toleration_defaults(app));
    }
    // A service's addresses as the client sent them; each try allocates the rest afresh.
    let unallocated = t.r.is_service().then(|| obj.clone());
    let requested = service::reservations(app.storage.prefix(), t.r, &obj);
    let mut taken: Vec<String> = Vec::new();
    let name = meta::meta_str(&obj, "name").unwrap_or("").to_string();
    let key = app.storage.key(t.r, t.ns(), &name);
    // Each lost race means another service got an address, and the next try avoids every
    // address the store holds, so tries run out only under a storm of creates.
    const ALLOCATION_TRIES: usize = 16;
    for _ in 0..ALLOCATION_TRIES {
        if let Some(unallocated) = &unallocated {
            obj = unallocated.clone();
            app.allocate_service_addresses(&mut obj, &taken)?;
        }
        if dry_run {
            return Ok(Some(obj));
        }
        let lease = if t.r.plural == "events" {
            Some(app.event_lease().await?)
        } else {
            None
        };
        let reserve = service::reservations(app.storage.prefix(), t.r, &obj);
        match app.storage.create(&key, &obj, lease, &reserve).await? {
            WriteOutcome::Done { revision } => {
                crate::storage::etcd::set_resource_version(&mut obj, revision);
                return Ok(Some(obj));
            }
            WriteOutcome::Mismatch { .. } => return Ok(None),
            WriteOutcome::Taken { reservation } if requested.contains(&reservation) => {
                return Err(service::reservation_taken(t.r, &name, &reservation, &obj));
            }
            // Another replica (or a create this cache has not seen yet) took an address:
            // allocate again around everything the store holds.
            WriteOutcome::Taken { .. } => taken = app.storage.held_reservations().await?,
        }
    }
    Err(ApiError::internal(format!(
        "failed to allocate addresses for {} {name:?}: {ALLOCATION_TRIES} tries found them taken",
        crate::error::qualified(t.r)
    )))
}

/// Compares two objects ignoring resourceVersion and managedFields timestamps.
fn same_content(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
            m.remove("managedFields");
        }
        v
    };
    strip(a) == strip(b)
}

/// The update loop shared by PUT and PATCH: read, transform, CAS; retry on a concurrent write
/// unless the caller pinned a resourceVersion.
pub async fn guaranteed_update<F>(
    app: &Arc<App>,
    t: &ObjectRef,
    opts: &WriteOpts,
    warnings: &mut Vec<String>,
    mut transform: F,
) -> Result<Value, ApiError>
where
    F: FnMut(&Value, &mut Vec<String>) -> Result<(Value, Option<String>), ApiError>,
{
    let key = app.storage.key(t.r, t.ns(), t.name());
    let status_write = t.subresource() == Some(Subresource::Status);
    let mut taken: Vec<String> = Vec::new();
    for _ in 0..UPDATE_RETRIES {
        let current = app
            .storage
            .get(&key)
            .await?
            .ok_or_else(|| ApiError::not_found(t.r, t.name()))?;
        let (mut new, precondition_rv) = transform(&current.object, warnings)?;
        if let Some(rv) = &precondition_rv {
            if *rv != current.mod_revision.to_string() {
                return Err(ApiError::conflict(t.r, t.name()));
            }
        }
        if meta::meta_str(&new, "name") != Some(t.name()) {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({})",
                meta::meta_str(&new, "name").unwrap_or(""),
                t.name()
            )));
        }
        strategy::check_uid_unchanged(t, &current.object, &new)?;
        strategy::carry_over(t, &current.object, &mut new, status_write);
        if is_pods(t) {
            admission::default_toleration_seconds(&mut new, toleration_defaults(app));
        }
        let mut new = finish_object(t, new, opts.validation, warnings)?;
        strategy::prepare_for_update(t, &current.object, &mut new, status_write);
        if !status_write {
            strategy::validate_update(t, &current.object, &new)?;
        }
        // Addresses the client's object names; any others are allocated here.
        let requested = service::reservations(app.storage.prefix(), t.r, &new);
        if t.r.is_service() && !status_write {
            // A service turned NodePort, or away from ExternalName, gets what it now needs.
            app.allocate_service_addresses(&mut new, &taken)?;
        }
        let now = meta::now();
        if !same_content(&current.object, &new) {
            apply::record_update(
                &t.r.api_version(),
                t.r.kind,
                Some(&current.object),
                &mut new,
                &apply::ApplyOptions {
                    manager: &opts.manager,
                    force: false,
                    now: &now,
                    subresource: t.sub.as_deref(),
                },
            );
        }
        if same_content(&current.object, &new)
            && new.pointer("/metadata/managedFields")
                == current.object.pointer("/metadata/managedFields")
        {
            return Ok(current.object);
        }
        if opts.dry_run {
            return Ok(new);
        }
        // Removing the last finalizer of an object being deleted deletes it, unless a grace
        // period is still running (a pod waiting for its kubelet): kube's ShouldDeleteDuringUpdate
        // (for a namespace, once its spec.finalizers are empty too).
        let finalizers_done = new.pointer("/metadata/deletionTimestamp").is_some()
            && namespace::spec_finalizers_done(t.r, &new)
            && new
                .pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .is_none_or(|f| f.is_empty())
            && current
                .object
                .pointer("/metadata/deletionGracePeriodSeconds")
                .and_then(Value::as_i64)
                .is_none_or(|g| g == 0);
        let held = service::reservations(app.storage.prefix(), t.r, &current.object);
        let outcome = if finalizers_done {
            app.storage
                .delete(&key, current.mod_revision, &held)
                .await?
        } else {
            // A changed node port or address is reserved, and the old one given back, with it.
            let wanted = service::reservations(app.storage.prefix(), t.r, &new);
            let reserve: Vec<String> = wanted
                .iter()
                .filter(|k| !held.contains(k))
                .cloned()
                .collect();
            let release: Vec<String> = held
                .iter()
                .filter(|k| !wanted.contains(k))
                .cloned()
                .collect();
            app.storage
                .update(&key, &new, current.mod_revision, None, &reserve, &release)
                .await?
        };
        match outcome {
            WriteOutcome::Done { revision } => {
                crate::storage::etcd::set_resource_version(&mut new, revision);
                return Ok(new);
            }
            WriteOutcome::Mismatch { current: None } => {
                return Err(ApiError::not_found(t.r, t.name()))
            }
            WriteOutcome::Mismatch { .. } if precondition_rv.is_some() => {
                return Err(ApiError::conflict(t.r, t.name()))
            }
            WriteOutcome::Mismatch { .. } => continue,
            WriteOutcome::Taken { reservation } if requested.contains(&reservation) => {
                return Err(service::reservation_taken(
                    t.r,
                    t.name(),
                    &reservation,
                    &new,
                ))
            }
            // One allocated here was taken meanwhile: read again and allocate again, around
            // every address the store holds.
            WriteOutcome::Taken { .. } => taken = app.storage.held_reservations().await?,
        }
    }
    Err(ApiError::conflict(t.r, t.name()))
}

/// DELETE of one object: kube's generic `Store.Delete` (and the namespace storage's), with what
/// to write decided by `deletion::plan`. Returns the object as it is left (or was, if removed).
pub async fn delete_one(
    app: &Arc<App>,
    r: &'static ResourceInfo,
    ns: Option<&str>,
    name: &str,
    opts: &DeleteOptions,
) -> Result<Value, ApiError> {
    let key = app.storage.key(r, ns, name);
    for _ in 0..UPDATE_RETRIES {
        let cur = app
            .storage
            .get(&key)
            .await?
            .ok_or_else(|| ApiError::not_found(r, name))?;
        if let Some(uid) = &opts.precondition_uid {
            let have = meta::meta_str(&cur.object, "uid").unwrap_or("");
            if uid != have {
                return Err(ApiError::conflict_with(r, name, &format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {have}")));
            }
        }
        if let Some(rv) = &opts.precondition_resource_version {
            if *rv != cur.mod_revision.to_string() {
                return Err(ApiError::conflict_with(r, name, &format!("Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}", cur.mod_revision)));
            }
        }
        let plan = deletion::plan(r, &cur.object, opts, std::time::SystemTime::now())?;
        let outcome = match plan {
            Plan::Unchanged => return Ok(cur.object),
            Plan::Update(new) if opts.dry_run => return Ok(new),
            Plan::Remove if opts.dry_run => return Ok(cur.object),
            Plan::Update(mut new) => match app
                .storage
                .update(&key, &new, cur.mod_revision, None, &[], &[])
                .await?
            {
                WriteOutcome::Done { revision } => {
                    crate::storage::etcd::set_resource_version(&mut new, revision);
                    return Ok(new);
                }
                other => other,
            },
            Plan::Remove => {
                let held = service::reservations(app.storage.prefix(), r, &cur.object);
                match app.storage.delete(&key, cur.mod_revision, &held).await? {
                    WriteOutcome::Done { .. } => return Ok(cur.object),
                    other => other,
                }
            }
        };
        match outcome {
            WriteOutcome::Mismatch { current: None } => return Err(ApiError::not_found(r, name)),
            // Changed meanwhile (only metadata is written here: no reservation was asked for):
            // read again and decide again.
            _ => continue,
        }
    }
    Err(ApiError::conflict(r, name))
}
