//! Objects in the store, laid out as kube-apiserver lays them out: one key per object,
//! `<prefix>/<resource>/<namespace>/<name>` (cluster-scoped: `<prefix>/<resource>/<name>`), the
//! value the object's JSON. The object's `resourceVersion` is the key's mod revision, so it is
//! not stored: it is set on every read. Writes are compare-and-swap on that revision.
//!
//! Everything goes through the etcd v3 API (the `etcd-client` crate), so the same code runs on
//! real etcd and on Mainstay.

use std::time::Duration;

use base64::Engine as _;
use etcd_client::{
    Client, Compare, CompareOp, GetOptions, KeyValue, KvClient, PutOptions, Txn, TxnOp,
    TxnOpResponse, WatchClient,
};
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::resources::ResourceInfo;

/// Bound on one etcd call: a store that stops answering turns into a 504, not a hung request.
pub const STORE_CALL_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct Storage {
    client: Client,
    prefix: String,
}

/// A stored object and its mod revision.
#[derive(Debug, Clone)]
pub struct Stored {
    pub object: Value,
    pub mod_revision: i64,
}

/// One page of a list.
#[derive(Debug)]
pub struct ListPage {
    pub items: Vec<Stored>,
    /// The revision the list was read at (the list's resourceVersion).
    pub revision: i64,
    /// Set when more items remain: the token for the next page.
    pub continue_token: Option<String>,
    /// Items left after this page, when known (no selector filtered the page).
    pub remaining: Option<i64>,
}

/// What a conditional write found instead of what it expected.
#[derive(Debug)]
pub enum WriteOutcome {
    Done {
        revision: i64,
    },
    /// The key exists (create) or has another mod revision (update/delete): its current value,
    /// if any.
    Mismatch {
        current: Option<Stored>,
    },
    /// The object was as expected, but a reservation the write needed is held by another object.
    Taken {
        reservation: String,
    },
}

/// A decoded continue token: the list's revision and the key (relative to the resource prefix)
/// to start after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContinueToken {
    pub revision: i64,
    pub start: String,
}

impl ContinueToken {
    /// kube-apiserver's format: base64url(no padding) of `{"v":"meta.k8s.io/v1","rv":N,"start":K}`.
    pub fn encode(&self) -> String {
        let raw = json!({"v": "meta.k8s.io/v1", "rv": self.revision, "start": self.start});
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw.to_string())
    }

    pub fn decode(token: &str) -> Result<Self, ApiError> {
        let bad = || {
            ApiError::bad_request("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)")
        };
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.trim_end_matches('='))
            .map_err(|_| bad())?;
        let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
        if v.get("v").and_then(Value::as_str) != Some("meta.k8s.io/v1") {
            return Err(bad());
        }
        let revision = v.get("rv").and_then(Value::as_i64).ok_or_else(bad)?;
        let start = v
            .get("start")
            .and_then(Value::as_str)
            .ok_or_else(bad)?
            .to_string();
        if revision <= 0 || start.contains("..") || start.starts_with('/') {
            return Err(bad());
        }
        Ok(ContinueToken { revision, start })
    }
}

/// The largest response accepted from the store: as etcd's own clients (and kube-apiserver's)
/// accept, 2 GiB − 1. gRPC's default of 4 MiB refused list pages and watch responses of a few
/// thousand ordinary objects, and a watch cache could neither fill nor follow. What the apiserver
/// asks for is bounded by its own page sizes instead.
pub const STORE_RESPONSE_BYTES_MAX: usize = i32::MAX as usize;

async fn bounded<T>(
    fut: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, ApiError> {
    match tokio::time::timeout(STORE_CALL_TIMEOUT, fut).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(ApiError::timeout(
            "Timeout: request did not complete within the allowed duration (etcd did not answer)",
        )),
    }
}

/// The key range just past every key that starts with `prefix`.
pub fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

impl Storage {
    pub fn new(client: Client, prefix: &str) -> Self {
        Storage {
            client,
            prefix: prefix.trim_end_matches('/').to_string(),
        }
    }

    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// A KV client that takes any response the store sends (see [`STORE_RESPONSE_BYTES_MAX`]).
    pub fn kv_client(&self) -> KvClient {
        self.client
            .kv_client()
            .max_decoding_message_size(STORE_RESPONSE_BYTES_MAX)
    }

    /// A watch client that takes any response the store sends: a catch-up response after a
    /// break may carry thousands of events in one message.
    pub fn watch_client(&self) -> WatchClient {
        self.client
            .watch_client()
            .max_decoding_message_size(STORE_RESPONSE_BYTES_MAX)
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn kv(&self) -> KvClient {
        self.kv_client()
    }

    /// `<prefix>/<segment>/` — every object of the resource, all namespaces.
    pub fn resource_prefix(&self, r: &ResourceInfo) -> String {
        format!("{}/{}/", self.prefix, r.storage_segment)
    }

    /// The prefix of a list: one namespace's objects, or all of them.
    pub fn list_prefix(&self, r: &ResourceInfo, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) if r.namespaced => format!("{}{ns}/", self.resource_prefix(r)),
            _ => self.resource_prefix(r),
        }
    }

    pub fn key(&self, r: &ResourceInfo, namespace: Option<&str>, name: &str) -> String {
        match namespace {
            Some(ns) if r.namespaced => format!("{}{ns}/{name}", self.resource_prefix(r)),
            _ => format!("{}{name}", self.resource_prefix(r)),
        }
    }

    /// Decodes a stored value and stamps its resourceVersion.
    pub fn decode(kv: &KeyValue) -> Result<Stored, ApiError> {
        let mut object: Value = serde_json::from_slice(kv.value()).map_err(|e| {
            ApiError::internal(format!(
                "object at {:?} is not JSON: {e}",
                String::from_utf8_lossy(kv.key())
            ))
        })?;
        set_resource_version(&mut object, kv.mod_revision());
        Ok(Stored {
            object,
            mod_revision: kv.mod_revision(),
        })
    }

    /// The stored form: the object without its resourceVersion (the key's revision is it).
    pub fn encode(object: &Value) -> Vec<u8> {
        let mut o = object.clone();
        if let Some(meta) = o.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("resourceVersion");
        }
        serde_json::to_vec(&o).unwrap_or_default()
    }

    /// A linearizable read of one object.
    pub async fn get(&self, key: &str) -> Result<Option<Stored>, ApiError> {
        let resp = bounded(self.kv().get(key, None)).await?;
        match resp.kvs().first() {
            Some(kv) => Ok(Some(Self::decode(kv)?)),
            None => Ok(None),
        }
    }

    /// The store's current revision (a linearizable read).
    pub async fn current_revision(&self) -> Result<i64, ApiError> {
        let resp = bounded(self.kv().get(
            format!("{}/", self.prefix),
            Some(GetOptions::new().with_count_only()),
        ))
        .await?;
        Ok(resp.header().map(|h| h.revision()).unwrap_or(0))
    }

    /// Creates `key` only if it does not exist (Txn on mod_revision == 0), taking the
    /// reservations `reserve` (which must all be free) in the same transaction.
    pub async fn create(
        &self,
        key: &str,
        object: &Value,
        lease: Option<i64>,
        reserve: &[String],
    ) -> Result<WriteOutcome, ApiError> {
        self.write(key, Some(object), 0, lease, reserve, &[]).await
    }

    /// Replaces `key` if its mod revision is still `expected`, taking `reserve` (which must be
    /// free) and giving back `release`.
    pub async fn update(
        &self,
        key: &str,
        object: &Value,
        expected: i64,
        lease: Option<i64>,
        reserve: &[String],
        release: &[String],
    ) -> Result<WriteOutcome, ApiError> {
        self.write(key, Some(object), expected, lease, reserve, release)
            .await
    }

    /// Deletes `key` if its mod revision is still `expected`, with the reservations it held.
    pub async fn delete(
        &self,
        key: &str,
        expected: i64,
        release: &[String],
    ) -> Result<WriteOutcome, ApiError> {
        self.write(key, None, expected, None, &[], release).await
    }

    /// One conditional transaction: `key` at `expected` (0: absent) and every `reserve` key
    /// free; then put `object` (or delete `key` when `None`), take `reserve`, drop `release`.
    async fn write(
        &self,
        key: &str,
        object: Option<&Value>,
        expected: i64,
        lease: Option<i64>,
        reserve: &[String],
        release: &[String],
    ) -> Result<WriteOutcome, ApiError> {
        let mut when = vec![Compare::mod_revision(key, CompareOp::Equal, expected)];
        let mut then = vec![match object {
            Some(o) => TxnOp::put(
                key,
                Self::encode(o),
                lease.map(|l| PutOptions::new().with_lease(l)),
            ),
            None => TxnOp::delete(key, None),
        }];
        let mut otherwise = vec![TxnOp::get(key, None)];
        for r in reserve {
            when.push(Compare::mod_revision(r.as_str(), CompareOp::Equal, 0));
            then.push(TxnOp::put(r.as_str(), key, None));
            otherwise.push(TxnOp::get(r.as_str(), None));
        }
        for r in release.iter().filter(|r| !reserve.contains(r)) {
            then.push(TxnOp::delete(r.as_str(), None));
        }
        let txn = Txn::new().when(when).and_then(then).or_else(otherwise);
        let resp = bounded(self.kv().txn(txn)).await?;
        let revision = resp.header().map(|h| h.revision()).unwrap_or(0);
        if resp.succeeded() {
            return Ok(WriteOutcome::Done { revision });
        }
        // The else branch ran at the revision the comparison failed at: the object first, then
        // each reservation in order.
        let mut found = resp.op_responses().into_iter().map(|op| match op {
            TxnOpResponse::Get(g) => g.kvs().first().cloned(),
            _ => None,
        });
        let current = match found.next().flatten() {
            Some(kv) => Some(Self::decode(&kv)?),
            None => None,
        };
        let object_as_expected = match &current {
            None => expected == 0,
            Some(c) => c.mod_revision == expected,
        };
        if object_as_expected {
            if let Some(held) = found.zip(reserve).find_map(|(kv, r)| kv.map(|_| r.clone())) {
                return Ok(WriteOutcome::Taken { reservation: held });
            }
        }
        Ok(WriteOutcome::Mismatch { current })
    }

    /// One page of the objects under `prefix`, read at `revision` (0 = now), starting after
    /// `start` (relative to `prefix`), keeping those `keep` accepts, at most `limit` of them
    /// (0 = all). As kube-apiserver does, a selective list keeps reading pages until it has
    /// `limit` matches or the range ends.
    pub async fn list(
        &self,
        prefix: &str,
        revision: i64,
        start: Option<&str>,
        limit: i64,
        keep: &(dyn Fn(&Value) -> bool + Send + Sync),
        selective: bool,
    ) -> Result<ListPage, ApiError> {
        let end = prefix_end(prefix);
        let mut from: Vec<u8> = match start {
            Some(s) => format!("{prefix}{s}").into_bytes(),
            None => prefix.as_bytes().to_vec(),
        };
        let mut revision = revision;
        let mut items = Vec::new();
        // Pages of at least 500 keys read per round trip; more when few match.
        let mut page = if limit > 0 { limit.max(1) } else { 0 };
        loop {
            let mut opts = GetOptions::new().with_range(end.clone());
            if revision > 0 {
                opts = opts.with_revision(revision);
            }
            if page > 0 {
                opts = opts.with_limit(page);
            }
            let resp = match bounded(self.kv().get(from.clone(), Some(opts))).await {
                Err(e) if e.message.contains("required revision has been compacted") => {
                    return Err(ApiError::expired(
                        "The resourceVersion for the provided list is too old.",
                    ))
                }
                other => other?,
            };
            if revision == 0 {
                revision = resp.header().map(|h| h.revision()).unwrap_or(0);
            }
            let kvs = resp.kvs();
            let mut last_key: Option<Vec<u8>> = None;
            for (i, kv) in kvs.iter().enumerate() {
                let stored = Self::decode(kv)?;
                if keep(&stored.object) {
                    items.push(stored);
                }
                last_key = Some(kv.key().to_vec());
                if limit > 0 && items.len() as i64 >= limit {
                    // Full: more remain if this page had more keys or etcd says so.
                    let more = i + 1 < kvs.len() || resp.more();
                    let remaining = if selective || !more {
                        None
                    } else {
                        Some(resp.count() - (i as i64 + 1))
                    };
                    let token = more.then(|| {
                        let mut k = kv.key().to_vec();
                        k.push(0);
                        ContinueToken {
                            revision,
                            start: String::from_utf8_lossy(&k[prefix.len()..]).into_owned(),
                        }
                        .encode()
                    });
                    return Ok(ListPage {
                        items,
                        revision,
                        continue_token: token,
                        remaining: remaining.filter(|r| *r > 0),
                    });
                }
            }
            match last_key {
                Some(mut k) if resp.more() => {
                    k.push(0);
                    from = k;
                    page = (page * 2).min(10_000);
                }
                _ => {
                    return Ok(ListPage {
                        items,
                        revision,
                        continue_token: None,
                        remaining: None,
                    })
                }
            }
        }
    }

    /// Every address reservation the store holds (`<prefix>/ranges/...` keys, read keys-only and
    /// linearizably): what an allocator that lost a race must avoid, whatever its cache shows.
    /// One key per allocated address, so the read is as large as the services' addresses.
    pub async fn held_reservations(&self) -> Result<Vec<String>, ApiError> {
        let from = format!("{}/ranges/", self.prefix);
        let opts = GetOptions::new()
            .with_range(prefix_end(&from))
            .with_keys_only();
        let resp = bounded(self.kv().get(from, Some(opts))).await?;
        Ok(resp
            .kvs()
            .iter()
            .filter_map(|kv| kv.key_str().ok().map(str::to_string))
            .collect())
    }

    /// Grants a lease of `ttl_secs` (events expire with theirs, as kube-apiserver's `--event-ttl`).
    pub async fn grant_lease(&self, ttl_secs: i64) -> Result<i64, ApiError> {
        let mut lease = self.client.lease_client();
        let resp = bounded(lease.grant(ttl_secs, None)).await?;
        Ok(resp.id())
    }

    /// 410 Expired when the store has compacted away the history after `revision`, i.e. when
    /// the store itself would refuse a watch starting at `revision + 1` (which must not be
    /// beyond the store's current revision). The watch cache may still hold those events, but
    /// a watch from a compacted version gets 410 as on kube-apiserver without the cache, so
    /// every replica answers alike however old its cache window is.
    pub async fn check_not_compacted(&self, revision: i64) -> Result<(), ApiError> {
        let opts = GetOptions::new()
            .with_revision(revision + 1)
            .with_count_only();
        match bounded(self.kv().get(format!("{}/", self.prefix), Some(opts))).await {
            Err(e) if e.message.contains("required revision has been compacted") => Err(
                ApiError::expired(format!("too old resource version: {revision}")),
            ),
            other => other.map(|_| ()),
        }
    }

    /// Compacts the store's history up to `revision`.
    pub async fn compact(&self, revision: i64) -> Result<(), ApiError> {
        match bounded(self.kv().compact(revision, None)).await {
            Ok(_) => Ok(()),
            Err(e) if e.message.contains("compacted") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// True when the store answers a read within `timeout` (for /readyz).
    pub async fn ping(&self, timeout: Duration) -> bool {
        let mut kv = self.kv();
        let fut = kv.get(
            format!("{}/", self.prefix),
            Some(GetOptions::new().with_count_only()),
        );
        matches!(tokio::time::timeout(timeout, fut).await, Ok(Ok(_)))
    }

    /// Compare-and-swap of a raw key (the compactor's lease on compaction turns).
    pub async fn swap_raw(
        &self,
        key: &str,
        expected_version: i64,
        value: &[u8],
    ) -> Result<(bool, i64), ApiError> {
        let txn = Txn::new()
            .when([Compare::version(key, CompareOp::Equal, expected_version)])
            .and_then([TxnOp::put(key, value.to_vec(), None)])
            .or_else([TxnOp::get(key, None)]);
        let resp = bounded(self.kv().txn(txn)).await?;
        if resp.succeeded() {
            return Ok((true, expected_version + 1));
        }
        for op in resp.op_responses() {
            if let TxnOpResponse::Get(g) = op {
                if let Some(kv) = g.kvs().first() {
                    return Ok((false, kv.version()));
                }
            }
        }
        Ok((false, 0))
    }
}

pub fn set_resource_version(object: &mut Value, revision: i64) {
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), json!(revision.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip_and_reject_garbage() {
        let t = ContinueToken {
            revision: 42,
            start: "default/web-1\u{0}".into(),
        };
        assert_eq!(ContinueToken::decode(&t.encode()).unwrap(), t);
        assert_eq!(ContinueToken::decode("!!!").unwrap_err().code, 400);
        let wrong = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(r#"{"v":"meta.k8s.io/v1","rv":0,"start":"a"}"#);
        assert_eq!(ContinueToken::decode(&wrong).unwrap_err().code, 400);
    }

    #[test]
    fn prefix_end_is_the_next_key() {
        assert_eq!(prefix_end("/registry/pods/"), b"/registry/pods0".to_vec());
    }
}
