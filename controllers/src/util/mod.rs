//! Helpers every controller shares: the watch-fed cache, the work queue, pod predicates, and how
//! API errors are read.

pub mod cache;
pub mod pod;
pub mod queue;

use std::future::Future;
use std::time::Duration;

use mainstay_component::Leading;
use tokio::task::JoinSet;

use crate::Error;

/// Tries of one write the API server answers with 429 TooManyRequests (client-go retries those
/// itself, up to 10 times, after the server's Retry-After; kube-rs does not retry).
pub const THROTTLED_TRIES_MAX: u32 = 10;
/// The pause after a 429: kube-apiserver's `Retry-After: 1`.
pub const THROTTLED_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Waits for the end of the term while a controller's tasks run. A task that panicked is a bug:
/// the panic goes on.
pub async fn supervise(tasks: &mut JoinSet<()>, leading: &Leading, controller: &str) {
    loop {
        tokio::select! {
            _ = leading.lost() => return,
            joined = tasks.join_next() => match joined {
                Some(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Some(_) => tracing::warn!(controller, "a task ended early"),
                None => {
                    leading.lost().await;
                    return;
                }
            },
        }
    }
}

/// The HTTP status of an API error, if the server answered.
pub fn api_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(r) => Some(r.code),
        _ => None,
    }
}

pub fn is_not_found(e: &kube::Error) -> bool {
    api_code(e) == Some(404)
}

pub fn is_conflict(e: &kube::Error) -> bool {
    api_code(e) == Some(409)
}

pub fn is_invalid(e: &kube::Error) -> bool {
    api_code(e) == Some(422)
}

/// The text kube's Go errors print (`StatusError.Error()` is the server's message), for
/// conditions and Events.
pub fn error_message(e: &Error) -> String {
    match e {
        Error::Kube(kube::Error::Api(r)) => r.message.clone(),
        other => other.to_string(),
    }
}

/// Runs `write` after `leading.ensure()`, again after a pause when the server answers 429,
/// up to [`THROTTLED_TRIES_MAX`] tries.
pub async fn write_with_retry<T, F, Fut>(
    leading: &mainstay_component::Leading,
    mut write: F,
) -> crate::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let mut tries = 0;
    loop {
        leading.ensure()?;
        tries += 1;
        match write().await {
            Err(e) if api_code(&e) == Some(429) && tries < THROTTLED_TRIES_MAX => {
                tokio::time::sleep(THROTTLED_RETRY_AFTER).await;
            }
            r => return r.map_err(Error::from),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::ErrorResponse;
    use mainstay_component::Leading;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn api(code: u16, message: &str) -> kube::Error {
        kube::Error::Api(ErrorResponse {
            status: "Failure".into(),
            message: message.into(),
            reason: String::new(),
            code,
        })
    }

    #[test]
    fn messages_are_the_servers_text() {
        let e = Error::from(api(403, "pods \"x\" is forbidden: quota"));
        assert_eq!(error_message(&e), "pods \"x\" is forbidden: quota");
        assert!(is_not_found(&api(404, "")));
        assert!(is_conflict(&api(409, "")));
        assert!(is_invalid(&api(422, "")));
        assert!(!is_not_found(&api(409, "")));
    }

    #[tokio::test(start_paused = true)]
    async fn throttled_writes_are_retried_and_others_are_not() {
        let leading = Leading::always();
        let calls = AtomicU32::new(0);
        let r: crate::Result<u32> = write_with_retry(&leading, || async {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            if n < 2 {
                Err(api(429, "too many requests"))
            } else {
                Ok(n)
            }
        })
        .await;
        assert_eq!(r.ok(), Some(2));

        let calls = AtomicU32::new(0);
        let r: crate::Result<()> = write_with_retry(&leading, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(api(500, "boom"))
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        let calls = AtomicU32::new(0);
        let _: crate::Result<()> = write_with_retry(&leading, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(api(429, "too many requests"))
        })
        .await;
        assert_eq!(calls.load(Ordering::SeqCst), THROTTLED_TRIES_MAX);
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_is_written_without_leading() {
        let leading = Leading::always();
        leading.end();
        let calls = AtomicU32::new(0);
        let r: crate::Result<()> = write_with_retry(&leading, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
        .await;
        assert!(matches!(r, Err(Error::NotLeading(_))));
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    }
}
