//! What every client in the tests shares: bounded connection and request times, connecting to a
//! cluster's endpoints, telling a request that certainly never reached a server from one that may
//! have been applied, and etcd's key-range arithmetic. The cluster harness, the workloads and the
//! watchers all build on this; it uses nothing else of the crate.

use std::time::Duration;

use etcd_client::{Client, ConnectOptions};

/// Upper bound for a single client request made by the harness.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Upper bound for establishing a connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Client options used by the harness and workloads: bounded connect and request times, and
/// HTTP/2 keep-alive so a dead connection is noticed.
pub fn client_options(request_timeout: Option<Duration>) -> ConnectOptions {
    let options = ConnectOptions::new()
        .with_connect_timeout(CONNECT_TIMEOUT)
        .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2));
    match request_timeout {
        Some(t) => options.with_timeout(t),
        None => options,
    }
}

/// A client of these endpoints with [`client_options`] (request timeout [`REQUEST_TIMEOUT`]).
pub async fn connect(endpoints: &[String]) -> Client {
    connect_with(endpoints, client_options(Some(REQUEST_TIMEOUT))).await
}

/// A client of these endpoints with these options. Connecting is lazy (the first request
/// connects), so this does not fail for a member that is down.
pub async fn connect_with(endpoints: &[String], options: ConnectOptions) -> Client {
    tokio::time::timeout(REQUEST_TIMEOUT, Client::connect(endpoints, Some(options)))
        .await
        .unwrap_or_else(|_| panic!("creating a client for {endpoints:?} timed out"))
        .unwrap_or_else(|e| panic!("creating a client for {endpoints:?}: {e}"))
}

/// Whether the request certainly never reached a server: the connection could not be made
/// (refused, or the connect attempt timed out). Everything else may have been applied.
pub fn certainly_not_sent(e: &etcd_client::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return true;
            }
        }
        let text = err.to_string();
        if text.contains("tcp connect error")
            || text.contains("Connection refused")
            || text.contains("error trying to connect")
        {
            return true;
        }
        source = err.source();
    }
    false
}

/// The revision in a response's header (0 when there is none).
pub fn header_revision(header: Option<&etcd_client::ResponseHeader>) -> i64 {
    header.map(|h| h.revision()).unwrap_or(0)
}

/// The end of the range of keys starting with `prefix` (etcd's `GetPrefixRangeEnd`): the prefix
/// with its last byte below 0xff incremented and what follows dropped, or `[0]` ("to the end of
/// the key space") when every byte is 0xff. The store has the same rule; the test-side crates
/// reach servers only through the client API, so they share this one.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_is_etcds() {
        assert_eq!(prefix_end(b"/a/"), b"/a0".to_vec());
        assert_eq!(prefix_end(&[b'a', 0xff]), vec![b'b']);
        assert_eq!(prefix_end(&[0xff, 0xff]), vec![0]);
    }
}
