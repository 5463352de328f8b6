//! Media types and bodies: what the response is encoded as (JSON, a Table or
//! PartialObjectMetadata), reading a
//! bounded body and decoding JSON, YAML or protobuf, and the JSON, plain-text and `Status`
//! responses. No resource logic here.

use ::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use bytes::Bytes;
use serde_json::Value;

use crate::error::ApiError;
use crate::resources::ResourceInfo;

/// kube-apiserver's limit on a request body (3 MiB).
pub const REQUEST_BODY_BYTES_MAX: usize = 3 * 1024 * 1024;

/// What the response should be encoded as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Json,
    Table,
    /// `as=PartialObjectMetadata` (or `PartialObjectMetadataList`): objects reduced to their
    /// metadata, as kube-rs' metadata watches and the garbage collector ask for them.
    Metadata,
}

pub fn negotiate(headers: &HeaderMap) -> Result<Output, ApiError> {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if accept.is_empty() {
        return Ok(Output::Json);
    }
    let mut json_ok = false;
    for part in accept.split(',') {
        let mut params = part.split(';').map(str::trim);
        let media = params.next().unwrap_or("");
        let ps: Vec<(&str, &str)> = params.filter_map(|p| p.split_once('=')).collect();
        let get = |k: &str| ps.iter().find(|(pk, _)| *pk == k).map(|(_, v)| *v);
        let meta_v1 = get("g") == Some("meta.k8s.io") && matches!(get("v"), Some("v1" | "v1beta1"));
        if media == "application/json" && get("as") == Some("Table") {
            if meta_v1 {
                return Ok(Output::Table);
            }
            continue;
        }
        if media == "application/json"
            && matches!(
                get("as"),
                Some("PartialObjectMetadata" | "PartialObjectMetadataList")
            )
        {
            if meta_v1 {
                return Ok(Output::Metadata);
            }
            continue;
        }
        if get("as").is_none()
            && matches!(
                media,
                "application/json" | "*/*" | "application/*" | "application/yaml"
            )
        {
            json_ok = true;
        }
    }
    if json_ok {
        Ok(Output::Json)
    } else {
        Err(ApiError::not_acceptable(
            "only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf",
        ))
    }
}

pub fn json_response(code: StatusCode, v: &Value) -> Response {
    let body = serde_json::to_vec(v).unwrap_or_default();
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = code;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

pub fn error_response(e: &ApiError) -> Response {
    let mut r = json_response(
        StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &e.status(),
    );
    if let Some(secs) = e.retry_after_seconds() {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    r
}

/// How much of a body beyond REQUEST_BODY_BYTES_MAX is read (and dropped) before answering 413,
/// so that a client still writing its body reads the answer instead of a reset connection (Go's
/// server drains up to 256 KiB of an unread body the same way). A larger body closes the connection.
const REQUEST_BODY_DRAIN_BYTES_MAX: usize = 256 * 1024;

/// A body must arrive within this: kube-apiserver's `--request-timeout` (1 minute) for requests
/// that are not long-running. A client trickling its body cannot hold an in-flight slot longer.
pub const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Reads the body (at most REQUEST_BODY_BYTES_MAX) and decodes JSON or YAML.
pub async fn read_body(req: Request) -> Result<(Bytes, String), ApiError> {
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_string();
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let expects_continue = req
        .headers()
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if let Some(len) = declared {
        // A client waiting for "100 Continue" has sent nothing yet; one whose body could not
        // be drained would lose the answer anyway. Both are refused before reading.
        if len > REQUEST_BODY_BYTES_MAX
            && (expects_continue || len > REQUEST_BODY_BYTES_MAX + REQUEST_BODY_DRAIN_BYTES_MAX)
        {
            return Err(ApiError::too_large(REQUEST_BODY_BYTES_MAX));
        }
    }
    let read = axum::body::to_bytes(
        req.into_body(),
        REQUEST_BODY_BYTES_MAX + REQUEST_BODY_DRAIN_BYTES_MAX,
    );
    let bytes = tokio::time::timeout(BODY_READ_TIMEOUT, read)
        .await
        .map_err(|_| {
            // kube's timeout filter answers so when a request outlives --request-timeout.
            ApiError::timeout(
                "request did not complete within requested timeout - context deadline exceeded",
            )
        })?
        .map_err(|_| ApiError::too_large(REQUEST_BODY_BYTES_MAX))?;
    if bytes.len() > REQUEST_BODY_BYTES_MAX {
        return Err(ApiError::too_large(REQUEST_BODY_BYTES_MAX));
    }
    Ok((bytes, ct))
}

pub fn decode_body(r: &ResourceInfo, bytes: &[u8], ct: &str) -> Result<Value, ApiError> {
    let cannot = |e: String| {
        ApiError::bad_request(format!(
            "{} in version {:?} cannot be handled as a {}: {e}",
            r.kind, r.version, r.kind
        ))
    };
    match ct {
        "application/json" | "" => serde_json::from_slice(bytes).map_err(|e| cannot(e.to_string())),
        "application/yaml" | "application/apply-patch+yaml" => {
            crate::machinery::yaml::to_json(bytes).map_err(cannot)
        }
        "application/vnd.kubernetes.protobuf" => crate::machinery::protobuf::decode_object(bytes)
            .map_err(|e| match e {
                crate::machinery::protobuf::DecodeError::Malformed(m) => cannot(m),
                crate::machinery::protobuf::DecodeError::Unsupported(m) => {
                    ApiError::new(415, "UnsupportedMediaType", m)
                }
            }),
        other => Err(ApiError::unsupported_media_type(other)),
    }
}

pub fn plain(code: StatusCode, text: &str) -> Response {
    let mut r = Response::new(Body::from(text.to_string()));
    *r.status_mut() = code;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_headers_choose_tables() {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_static("application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"));
        assert_eq!(negotiate(&h).unwrap(), Output::Table);
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/json, */*"),
        );
        assert_eq!(negotiate(&h).unwrap(), Output::Json);
        h.insert(header::ACCEPT, HeaderValue::from_static("text/html"));
        assert_eq!(negotiate(&h).unwrap_err().code, 406);
    }

    #[test]
    fn accept_headers_choose_partial_object_metadata() {
        let mut h = HeaderMap::new();
        for accept in [
            "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1",
            "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
            "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1beta1,application/json",
        ] {
            h.insert(header::ACCEPT, HeaderValue::from_static(accept));
            assert_eq!(negotiate(&h).unwrap(), Output::Metadata, "{accept}");
        }
        // Another group or version is not offered; without a fallback that is a 406.
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static(
                "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v2",
            ),
        );
        assert_eq!(negotiate(&h).unwrap_err().code, 406);
    }

    fn body_request(len: usize, expect_continue: bool, body: Body) -> Request {
        let mut b = http::Request::post("/api/v1/namespaces/default/configmaps")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::CONTENT_LENGTH, len.to_string());
        if expect_continue {
            b = b.header(header::EXPECT, "100-continue");
        }
        b.body(body).unwrap()
    }

    #[tokio::test]
    async fn bodies_over_the_limit_are_read_then_refused() {
        let ok = vec![b' '; REQUEST_BODY_BYTES_MAX];
        let (got, ct) = read_body(body_request(ok.len(), false, Body::from(ok)))
            .await
            .unwrap();
        assert_eq!(
            (got.len(), ct.as_str()),
            (REQUEST_BODY_BYTES_MAX, "application/json")
        );

        // Just over: drained, then 413 (the client gets to read the answer).
        let over = vec![b' '; REQUEST_BODY_BYTES_MAX + 1024];
        let e = read_body(body_request(over.len(), false, Body::from(over)))
            .await
            .unwrap_err();
        assert_eq!(e.code, 413);

        // Far over, or waiting for 100 Continue: refused without touching the body.
        let untouched = || {
            Body::from_stream(futures::stream::once(async {
                panic!("the body was read");
                #[allow(unreachable_code)]
                Ok::<Bytes, std::io::Error>(Bytes::new())
            }))
        };
        let far = REQUEST_BODY_BYTES_MAX + REQUEST_BODY_DRAIN_BYTES_MAX + 1;
        let e = read_body(body_request(far, false, untouched()))
            .await
            .unwrap_err();
        assert_eq!(e.code, 413);
        let e = read_body(body_request(REQUEST_BODY_BYTES_MAX + 1, true, untouched()))
            .await
            .unwrap_err();
        assert_eq!(e.code, 413);

        // A body longer than it declared is still bounded.
        let liar = vec![b' '; REQUEST_BODY_BYTES_MAX + REQUEST_BODY_DRAIN_BYTES_MAX + 1];
        let e = read_body(body_request(10, false, Body::from(liar)))
            .await
            .unwrap_err();
        assert_eq!(e.code, 413);
    }

    /// A client that sends part of its body and then nothing holds its in-flight slot only
    /// until the request timeout, and gets kube's 504 Timeout.
    #[tokio::test(start_paused = true)]
    async fn a_trickled_body_times_out() {
        use futures::StreamExt;
        let trickle = Body::from_stream(
            futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"{\"kind\":"))])
                .chain(futures::stream::pending()),
        );
        let started = tokio::time::Instant::now();
        let e = read_body(body_request(100, false, trickle))
            .await
            .unwrap_err();
        assert_eq!((e.code, e.reason), (504, "Timeout"), "{e:?}");
        assert_eq!(started.elapsed(), BODY_READ_TIMEOUT);
    }
}
