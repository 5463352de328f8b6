//! Small JSON helpers the kinds' defaults and validation share: setting a default where a
//! field is absent, kube's field checks (non-negative, immutable, one of), and a selector
//! checked against its pod template's labels.

use serde_json::{json, Value};

use crate::error::Cause;
use crate::machinery::selectors::LabelSelector;

/// Sets `pointer` (a JSON pointer) to `value` when absent or null, creating parent objects;
/// a parent that is not an object is left for validation to report.
pub fn set_default(obj: &mut Value, pointer: &str, value: Value) {
    let mut parts: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
    let Some(last) = parts.pop() else { return };
    let mut cur = obj;
    for p in parts {
        if !cur.get(p).is_some_and(Value::is_object) {
            if cur.get(p).is_some_and(|v| !v.is_null()) {
                return;
            }
            cur[p] = json!({});
        }
        cur = &mut cur[p];
    }
    if !cur.is_object() {
        return;
    }
    if cur.get(last).is_none_or(Value::is_null) {
        cur[last] = value;
    }
}

/// The JSON-pointer form of a dotted field path (`spec.template` → `/spec/template`).
fn pointer_of(field: &str) -> String {
    format!("/{}", field.replace('.', "/"))
}

/// kube's `ValidateNonnegativeField` on an integer at `field`, if present.
pub fn non_negative(obj: &Value, field: &str, causes: &mut Vec<Cause>) {
    if let Some(n) = obj.pointer(&pointer_of(field)).and_then(Value::as_i64) {
        if n < 0 {
            causes.push(Cause::invalid(
                field,
                &json!(n),
                "must be greater than or equal to 0",
            ));
        }
    }
}

/// kube's `ValidateImmutableField`: `field` may not change between `old` and `new`.
pub fn immutable(old: &Value, new: &Value, field: &str, causes: &mut Vec<Cause>) {
    let p = pointer_of(field);
    let (o, n) = (old.pointer(&p), new.pointer(&p));
    let absent = |v: Option<&Value>| v.is_none_or(Value::is_null);
    if o != n && !(absent(o) && absent(n)) {
        causes.push(Cause::invalid(
            field,
            n.unwrap_or(&Value::Null),
            "field is immutable",
        ));
    }
}

/// `field.NotSupported` when the string at `field` is set and not one of `allowed`.
pub fn one_of(obj: &Value, field: &str, allowed: &[&str], causes: &mut Vec<Cause>) {
    if let Some(v) = obj.pointer(&pointer_of(field)).and_then(Value::as_str) {
        if !allowed.contains(&v) {
            causes.push(Cause::unsupported(field, v, allowed));
        }
    }
}

/// `field.Required` when the value at `field` is absent, null or an empty string.
pub fn required(obj: &Value, field: &str, causes: &mut Vec<Cause>) {
    match obj.pointer(&pointer_of(field)) {
        None | Some(Value::Null) => causes.push(Cause::required(field)),
        Some(Value::String(s)) if s.is_empty() => causes.push(Cause::required(field)),
        _ => {}
    }
}

/// The checks apps/v1 controllers share (kube's `ValidateDaemonSetSpec`,
/// `ValidateStatefulSetSpec`): a selector is required, may not be empty, and must select the
/// template's labels. `spec` is the path of the object's spec (`spec`).
pub fn selector_selects_template(obj: &Value, what: &str, causes: &mut Vec<Cause>) {
    let selector = obj.pointer("/spec/selector").filter(|s| !s.is_null());
    let Some(selector) = selector else {
        causes.push(Cause::required("spec.selector"));
        return;
    };
    let Ok(parsed) = LabelSelector::from_json(selector) else {
        causes.push(Cause::invalid(
            "spec.selector",
            selector,
            "invalid label selector",
        ));
        return;
    };
    let empty = selector
        .get("matchLabels")
        .and_then(Value::as_object)
        .is_none_or(|m| m.is_empty())
        && selector
            .get("matchExpressions")
            .and_then(Value::as_array)
            .is_none_or(|m| m.is_empty());
    if empty {
        causes.push(Cause::invalid(
            "spec.selector",
            selector,
            &format!("empty selector is invalid for {what}"),
        ));
        return;
    }
    template_matches(
        obj,
        "/spec/template",
        &parsed,
        "spec.template.metadata.labels",
        causes,
    );
}

/// The template at `template_pointer` must carry labels the selector selects.
pub fn template_matches(
    obj: &Value,
    template_pointer: &str,
    selector: &LabelSelector,
    field: &str,
    causes: &mut Vec<Cause>,
) {
    let labels = obj
        .pointer(&format!("{template_pointer}/metadata/labels"))
        .and_then(Value::as_object);
    if !selector.matches(labels) {
        causes.push(Cause::invalid(
            field,
            &json!(labels.cloned().unwrap_or_default()),
            "`selector` does not match template `labels`",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_default_fills_only_what_is_missing() {
        let mut v = json!({"spec": {"a": 1, "n": null, "s": "x"}});
        set_default(&mut v, "/spec/a", json!(2));
        set_default(&mut v, "/spec/n", json!(3));
        set_default(&mut v, "/spec/b/c", json!(4));
        set_default(&mut v, "/spec/s/d", json!(5));
        assert_eq!(
            v,
            json!({"spec": {"a": 1, "n": 3, "s": "x", "b": {"c": 4}}})
        );
    }

    #[test]
    fn immutable_and_non_negative_name_the_field() {
        let mut causes = Vec::new();
        immutable(
            &json!({"spec": {"x": 1}}),
            &json!({"spec": {"x": 2}}),
            "spec.x",
            &mut causes,
        );
        immutable(
            &json!({"spec": {}}),
            &json!({"spec": {"x": null}}),
            "spec.x",
            &mut causes,
        );
        non_negative(&json!({"spec": {"y": -1}}), "spec.y", &mut causes);
        let rendered: Vec<String> = causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        assert_eq!(
            rendered,
            vec![
                "spec.x: Invalid value: 2: field is immutable",
                "spec.y: Invalid value: -1: must be greater than or equal to 0"
            ]
        );
    }
}
