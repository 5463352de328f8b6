//! ObjectMeta helpers: reading and writing `metadata`, uids, generateName suffixes and the
//! RFC 3339 timestamps metav1.Time serializes. Pure functions over `serde_json::Value`.

use std::time::SystemTime;

use rand::Rng;
use serde_json::{json, Map, Value};

pub use super::time::rfc3339;

/// The current time as metav1.Time serializes it.
pub fn now() -> String {
    rfc3339(SystemTime::now())
}

/// A random v4 UUID (the object's uid).
pub fn new_uid() -> String {
    let mut b: [u8; 16] = rand::rng().random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// generateName's suffix: 5 characters from kube's alphabet (no vowels, no look-alikes).
pub fn name_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// An object reduced to `meta.k8s.io/v1` PartialObjectMetadata (kind, apiVersion and
/// metadata), as kube-apiserver answers `as=PartialObjectMetadata`. A `Status` (an error or a
/// delete's answer) is returned as it is.
pub fn partial_object_metadata(obj: &Value) -> Value {
    if obj.get("kind").and_then(Value::as_str) == Some("Status") {
        return obj.clone();
    }
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

/// A list of PartialObjectMetadata with the list's own metadata (resourceVersion, continue).
pub fn partial_object_metadata_list(list_meta: Value, items: &[Value]) -> Value {
    json!({
        "kind": "PartialObjectMetadataList",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "items": items.iter().map(partial_object_metadata).collect::<Vec<_>>(),
    })
}

pub fn meta(obj: &Value) -> Option<&Map<String, Value>> {
    obj.get("metadata").and_then(Value::as_object)
}

pub fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    meta(obj)
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

pub fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    match obj.get_mut("metadata") {
        Some(Value::Object(m)) => m,
        _ => unreachable!("metadata was just made an object"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_object_metadata_keeps_only_metadata() {
        let pod = json!({"kind": "Pod", "apiVersion": "v1",
            "metadata": {"name": "p", "uid": "u", "ownerReferences": [{"uid": "o"}]},
            "spec": {"containers": []}, "status": {}});
        let p = partial_object_metadata(&pod);
        assert_eq!(
            p,
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": {"name": "p", "uid": "u", "ownerReferences": [{"uid": "o"}]}})
        );
        let status = json!({"kind": "Status", "status": "Success"});
        assert_eq!(partial_object_metadata(&status), status);
        let l = partial_object_metadata_list(json!({"resourceVersion": "7"}), &[pod]);
        assert_eq!(l["kind"], "PartialObjectMetadataList");
        assert_eq!(l["metadata"]["resourceVersion"], "7");
        assert_eq!(l["items"][0]["metadata"]["name"], "p");
        assert!(l["items"][0].get("spec").is_none());
    }
    use std::time::UNIX_EPOCH;

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + std::time::Duration::from_secs(1_795_000_000);
        assert_eq!(rfc3339(t), "2026-11-18T11:06:40Z");
    }

    #[test]
    fn uids_look_like_uuids() {
        let u = new_uid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
    }
}
