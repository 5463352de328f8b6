//! WATCH: newline-delimited events from the watch cache (or a store watch without one),
//! filtered by namespace and selectors, with bookmarks and `sendInitialEvents`.

use std::sync::Arc;
use std::time::Duration;

use ::http::{header, HeaderValue};
use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use serde_json::{json, Value};

use super::common::{include_object, unix_now, Filter};
use crate::app::App;
use crate::error::{ApiError, Cause};
use crate::machinery::meta;
use crate::registry::{printers, ObjectRef};
use crate::request::info::{flag, Query};
use crate::request::negotiate::{error_response, Output};
use crate::storage::cacher::{EventKind, Start};

/// How often a watch that asked for bookmarks gets one.
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(15);
/// kube-apiserver's `--min-request-timeout`: a watch without timeoutSeconds ends between 1800
/// and 3600 s.
const WATCH_TIMEOUT_MIN_SECS: u64 = 1800;

/// A watch: NDJSON events from the watch cache, filtered by namespace and selectors.
pub(super) async fn watch_response(
    app: &Arc<App>,
    t: &ObjectRef,
    q: &Query,
    out: Output,
) -> Response {
    match watch_stream(app, t, q, out).await {
        Ok(r) => r,
        Err(e) if e.code == 410 => {
            // As kube-apiserver: a watch from a compacted version is a 200 with one ERROR event.
            let line = json!({"type": "ERROR", "object": e.status()});
            let mut body = serde_json::to_vec(&line).unwrap_or_default();
            body.push(b'\n');
            let mut r = Response::new(Body::from(body));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        }
        Err(e) => error_response(&e),
    }
}

async fn watch_stream(
    app: &Arc<App>,
    t: &ObjectRef,
    q: &Query,
    out: Output,
) -> Result<Response, ApiError> {
    let filter = Filter::new(t.r, q)?;
    let cache = app.cache(t.r);
    let bookmarks = flag(q, "allowWatchBookmarks");
    let send_initial = flag(q, "sendInitialEvents");
    let rv = q.get("resourceVersion").filter(|s| !s.is_empty()).cloned();
    let timeout = match q.get("timeoutSeconds").and_then(|s| s.parse::<u64>().ok()) {
        Some(s) => Duration::from_secs(s),
        None => Duration::from_secs(
            WATCH_TIMEOUT_MIN_SECS + rand::random::<u64>() % WATCH_TIMEOUT_MIN_SECS,
        ),
    };
    let start = match (rv.as_deref(), cache) {
        (None, Some(cache)) => {
            // Unset: the state now, then changes; "now" is the store's, so wait for the cache.
            let now = app.storage.current_revision().await?;
            cache.wait_for(now, Duration::from_secs(3)).await?;
            Start::Now
        }
        (None | Some("0"), _) => Start::Now,
        (Some(v), cache) => {
            let n: i64 = v.parse().map_err(|_| {
                ApiError::bad_request(format!(
                    "resourceVersion: Invalid value: {v:?}: must be a non-negative integer"
                ))
            })?;
            match cache {
                Some(cache) if send_initial => {
                    cache.wait_for(n, Duration::from_secs(3)).await?;
                    Start::Now
                }
                None if send_initial => Start::Now,
                Some(cache) => {
                    if n > cache.revision() {
                        cache.wait_for(n, Duration::from_secs(3)).await?;
                    } else if n < cache.revision() {
                        app.storage.check_not_compacted(n).await?;
                    }
                    Start::After(n)
                }
                None => {
                    app.storage.check_not_compacted(n).await?;
                    Start::After(n)
                }
            }
        }
    };
    if send_initial && !bookmarks {
        return Err(ApiError::invalid(
            t.r,
            "",
            vec![Cause::forbidden(
                "allowWatchBookmarks",
                "sendInitialEvents requires setting allowWatchBookmarks to true",
            )],
        ));
    }
    let pinned = filter
        .fields
        .as_ref()
        .and_then(|f| f.name_pinned().map(str::to_string));
    let key_prefix = match &pinned {
        Some(n) => app.storage.key(t.r, t.ns(), n),
        None => app.storage.list_prefix(t.r, t.ns()),
    };
    let mut sub = match cache {
        Some(cache) => cache.subscribe(&key_prefix, start)?,
        // --watch-cache=false: this request gets its own store watch.
        None => crate::storage::cacher::direct_watch(&app.storage, &key_prefix, start).await?,
    };
    let start_revision = sub.start_revision;
    let initial = std::mem::take(&mut sub.initial);
    let api_version = t.r.api_version();
    let kind = t.r.kind;
    let include = include_object(q)?;
    let mut wrote_header = false;
    let mut encode = move |typ: &str, obj: &Value| -> Bytes {
        let object = match out {
            Output::Json => obj.clone(),
            // Bookmarks are reduced too (kube-rs decodes them as PartialObjectMetadata); an
            // ERROR's Status stays as it is.
            Output::Metadata => crate::machinery::meta::partial_object_metadata(obj),
            Output::Table if typ == "BOOKMARK" || typ == "ERROR" => obj.clone(),
            Output::Table => {
                let mut tbl = printers::table(
                    &api_version,
                    kind,
                    std::slice::from_ref(obj),
                    include,
                    unix_now(),
                );
                if wrote_header {
                    tbl["columnDefinitions"] = json!([]);
                }
                wrote_header = true;
                if let Some(rv) = obj.pointer("/metadata/resourceVersion") {
                    tbl["metadata"]["resourceVersion"] = rv.clone();
                }
                tbl
            }
        };
        let mut line =
            serde_json::to_vec(&json!({"type": typ, "object": object})).unwrap_or_default();
        line.push(b'\n');
        Bytes::from(line)
    };
    let bookmark_api_version = t.r.api_version();
    let bookmark = move |rev: i64, initial_end: bool| -> Value {
        let mut m = json!({"resourceVersion": rev.to_string()});
        if initial_end {
            m["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        json!({"kind": kind, "apiVersion": bookmark_api_version, "metadata": m})
    };
    let pinned_name = pinned.clone();
    let stream = async_stream_events(
        sub,
        initial,
        start_revision,
        filter,
        pinned_name,
        bookmarks,
        send_initial,
        timeout,
        app.metrics.watch_guard(),
    )
    .map(move |item| {
        let bytes = match item {
            WatchItem::Event(typ, obj) => encode(typ, &obj),
            WatchItem::Bookmark(rev, end) => encode("BOOKMARK", &bookmark(rev, end)),
        };
        Ok::<Bytes, std::io::Error>(bytes)
    });
    let mut r = Response::new(Body::from_stream(stream));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    Ok(r)
}

enum WatchItem {
    Event(&'static str, Value),
    Bookmark(i64, bool),
}

/// The watch as a stream: initial events, then live ones, bookmarks, until timeout or until the
/// cache drops the subscription.
#[allow(clippy::too_many_arguments)]
fn async_stream_events(
    mut sub: crate::storage::cacher::Subscription,
    initial: Vec<Arc<crate::storage::cacher::Event>>,
    start_revision: i64,
    filter: Filter,
    pinned: Option<String>,
    bookmarks: bool,
    send_initial: bool,
    timeout: Duration,
    guard: crate::request::metrics::WatchGuard,
) -> impl futures::Stream<Item = WatchItem> + Send {
    let (tx, rx) = tokio::sync::mpsc::channel::<WatchItem>(64);
    tokio::spawn(async move {
        let _guard = guard;
        let deadline = tokio::time::Instant::now() + timeout;
        let keep = |e: &crate::storage::cacher::Event| -> Option<(&'static str, Value)> {
            if let Some(n) = &pinned {
                if meta::meta_str(&e.object, "name") != Some(n.as_str()) {
                    return None;
                }
            }
            let cur = filter.matches(&e.object);
            let prev = e.prev.as_ref().map(|p| filter.matches(p));
            match e.kind {
                EventKind::Added => cur.then(|| ("ADDED", (*e.object).clone())),
                EventKind::Modified => match (prev.unwrap_or(false), cur) {
                    (true, true) => Some(("MODIFIED", (*e.object).clone())),
                    (false, true) => Some(("ADDED", (*e.object).clone())),
                    (true, false) => Some(("DELETED", (*e.object).clone())),
                    (false, false) => None,
                },
                EventKind::Deleted => {
                    (prev.unwrap_or(cur)).then(|| ("DELETED", (*e.object).clone()))
                }
            }
        };
        let mut last_sent = start_revision;
        for e in &initial {
            if let Some((typ, obj)) = keep(e) {
                if tx.send(WatchItem::Event(typ, obj)).await.is_err() {
                    return;
                }
            }
        }
        if send_initial
            && tx
                .send(WatchItem::Bookmark(start_revision, true))
                .await
                .is_err()
        {
            return;
        }
        let mut tick = tokio::time::interval(BOOKMARK_INTERVAL);
        tick.tick().await;
        loop {
            tokio::select! {
                ev = sub.rx.recv() => {
                    let Some(ev) = ev else { return };
                    if ev.revision <= start_revision {
                        continue;
                    }
                    last_sent = last_sent.max(ev.revision);
                    if let Some((typ, obj)) = keep(&ev) {
                        if tx.send(WatchItem::Event(typ, obj)).await.is_err() {
                            return;
                        }
                    }
                }
                _ = tick.tick(), if bookmarks => {
                    // Every event up to the cache's revision is already queued: drain them
                    // first so the bookmark never claims a version not yet delivered.
                    let rev = sub.cache_revision();
                    while let Ok(ev) = sub.rx.try_recv() {
                        if ev.revision <= start_revision { continue; }
                        last_sent = last_sent.max(ev.revision);
                        if let Some((typ, obj)) = keep(&ev) {
                            if tx.send(WatchItem::Event(typ, obj)).await.is_err() {
                                return;
                            }
                        }
                    }
                    let rev = rev.max(last_sent);
                    if tx.send(WatchItem::Bookmark(rev, false)).await.is_err() {
                        return;
                    }
                }
                _ = tokio::time::sleep_until(deadline) => return,
                _ = tx.closed() => return,
            }
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}
