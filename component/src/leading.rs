//! `Leading`: what code that may act only while its process leads holds and checks.
//!
//! The elector extends the term each time a renewal succeeds, to the moment the request was sent
//! plus the renew deadline. Other candidates take over only a lease duration after they last saw
//! the record change, and the renew deadline is shorter than the lease duration, so a holder that
//! checks `ensure()` just before each write never writes after another candidate may have taken
//! over (clocks running at the same rate). A process stopped (SIGSTOP) past its term finds its
//! term over when it runs again, before its next write. The check uses tokio's clock, so tests
//! drive it with `tokio::time::pause`.

use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio::time::Instant;

/// The error of acting without leading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not the leader: leadership was lost or has not been won")]
pub struct NotLeading;

/// A term of leadership, shared by everything that acts in it. Clones share the term.
#[derive(Clone, Debug)]
pub struct Leading {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// `None`: leads until `end()` (no election).
    valid_until: Mutex<Option<Instant>>,
    ended: watch::Sender<bool>,
}

impl Leading {
    /// A term that ends only when `end()` is called: `--leader-elect=false`, and tests.
    pub fn always() -> Self {
        Self::with_deadline(None)
    }

    /// A term valid until `until`, extended by `extend_to`.
    pub fn until(until: Instant) -> Self {
        Self::with_deadline(Some(until))
    }

    fn with_deadline(valid_until: Option<Instant>) -> Self {
        let (ended, _) = watch::channel(false);
        Leading {
            inner: Arc::new(Inner {
                valid_until: Mutex::new(valid_until),
                ended,
            }),
        }
    }

    /// Moves the end of the term to `until` (a renewal succeeded); never shortens it, and does
    /// nothing once the term has ended — by `end()` or because its deadline passed: a lapsed
    /// term is never revived, since another candidate may have taken over since.
    pub fn extend_to(&self, until: Instant) {
        if self.is_ended() {
            return;
        }
        let mut v = self
            .inner
            .valid_until
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(cur) = v.as_mut() {
            if Instant::now() >= *cur {
                drop(v);
                self.end();
                return;
            }
            if until > *cur {
                *cur = until;
            }
        }
    }

    /// Ends the term for good (the lease was lost or released, or the process stops).
    pub fn end(&self) {
        self.inner.ended.send_replace(true);
    }

    fn is_ended(&self) -> bool {
        *self.inner.ended.borrow()
    }

    /// True while the term lasts: not ended and its deadline not passed.
    pub fn is_leading(&self) -> bool {
        if self.is_ended() {
            return false;
        }
        let v = self
            .inner
            .valid_until
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        v.is_none_or(|until| Instant::now() < until)
    }

    /// Call just before each write made as the leader.
    pub fn ensure(&self) -> Result<(), NotLeading> {
        if self.is_leading() {
            Ok(())
        } else {
            Err(NotLeading)
        }
    }

    /// Resolves when the term ends (`end()`), or when its deadline passes without an extension.
    pub async fn lost(&self) {
        let mut ended = self.inner.ended.subscribe();
        loop {
            if *ended.borrow_and_update() {
                return;
            }
            let deadline = *self
                .inner
                .valid_until
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            match deadline {
                Some(until) if Instant::now() >= until => return,
                Some(until) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(until) => {}
                        r = ended.changed() => if r.is_err() { return },
                    }
                }
                None => {
                    if ended.changed().await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_term_lasts_until_its_deadline_unless_extended() {
        let start = Instant::now();
        let l = Leading::until(start + Duration::from_secs(10));
        assert!(l.ensure().is_ok());
        tokio::time::advance(Duration::from_secs(6)).await;
        l.extend_to(start + Duration::from_secs(16));
        l.extend_to(start + Duration::from_secs(12)); // never shortens
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(l.is_leading());
        let lost = tokio::spawn({
            let l = l.clone();
            async move {
                l.lost().await;
                Instant::now()
            }
        });
        let at = lost.await.unwrap();
        assert_eq!(at, start + Duration::from_secs(16));
        assert_eq!(l.ensure(), Err(NotLeading));
        // An ended term is not extended again.
        l.extend_to(Instant::now() + Duration::from_secs(60));
        assert!(!l.is_leading());
    }

    #[tokio::test(start_paused = true)]
    async fn end_stops_an_endless_term_and_wakes_waiters() {
        let l = Leading::always();
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert!(l.is_leading());
        let waiter = tokio::spawn({
            let l = l.clone();
            async move { l.lost().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        l.end();
        waiter.await.unwrap();
        assert!(!l.is_leading());
    }
}
