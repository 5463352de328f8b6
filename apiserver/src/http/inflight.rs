//! kube-apiserver's max-in-flight filter (`--max-requests-inflight`,
//! `--max-mutating-requests-inflight`): at most so many read-only and so many mutating requests
//! are served at once; one more gets 429 TooManyRequests with `Retry-After: 1` at once, without
//! queueing. Long-running requests (watches) and health probes are not counted; watches are
//! bounded by the connection cap and each watcher's queue instead. Zero means no limit, as in
//! kube. (kube 1.32 turns these numbers into API Priority and Fairness shares, which queue for a
//! while before refusing; Mainstay refuses at once, as kube does with APF disabled.)

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;

/// Which budget a request draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    ReadOnly,
    Mutating,
}

impl Kind {
    /// kube's split: every verb but get/list/watch (and HEAD, OPTIONS) mutates.
    pub fn of(method: &http::Method) -> Kind {
        match *method {
            http::Method::GET | http::Method::HEAD | http::Method::OPTIONS => Kind::ReadOnly,
            _ => Kind::Mutating,
        }
    }

    /// The `request_kind` label of `apiserver_current_inflight_requests`.
    pub fn label(self) -> &'static str {
        match self {
            Kind::ReadOnly => "readOnly",
            Kind::Mutating => "mutating",
        }
    }
}

struct Budget {
    slots: Arc<Semaphore>,
    max: usize,
}

impl Budget {
    fn new(max: usize) -> Option<Budget> {
        (max > 0).then(|| Budget {
            slots: Arc::new(Semaphore::new(max)),
            max,
        })
    }
}

/// The two budgets.
pub struct Limits {
    read_only: Option<Budget>,
    mutating: Option<Budget>,
}

/// Held while a request is served; gives its slot back when dropped.
pub struct Admitted(#[allow(dead_code)] Option<OwnedSemaphorePermit>);

impl Limits {
    pub fn new(read_only_max: usize, mutating_max: usize) -> Limits {
        Limits {
            read_only: Budget::new(read_only_max),
            mutating: Budget::new(mutating_max),
        }
    }

    fn budget(&self, kind: Kind) -> Option<&Budget> {
        match kind {
            Kind::ReadOnly => self.read_only.as_ref(),
            Kind::Mutating => self.mutating.as_ref(),
        }
    }

    /// Takes a slot, or refuses with kube's 429.
    pub fn admit(&self, kind: Kind) -> Result<Admitted, ApiError> {
        match self.budget(kind) {
            None => Ok(Admitted(None)),
            Some(b) => b
                .slots
                .clone()
                .try_acquire_owned()
                .map(|p| Admitted(Some(p)))
                .map_err(|_| ApiError::too_many_requests(1)),
        }
    }

    /// Requests of this kind being served now (0 when unlimited: they are not counted).
    pub fn current(&self, kind: Kind) -> usize {
        self.budget(kind)
            .map(|b| b.max - b.slots.available_permits())
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_budget_refuses_with_429_and_a_freed_slot_admits_again() {
        let l = Limits::new(2, 1);
        let a = l.admit(Kind::ReadOnly).unwrap();
        let _b = l.admit(Kind::ReadOnly).unwrap();
        let e = l
            .admit(Kind::ReadOnly)
            .err()
            .expect("a third read is refused");
        assert_eq!((e.code, e.reason), (429, "TooManyRequests"));
        assert_eq!(e.message, "Too many requests, please try again later.");
        assert_eq!(e.status()["details"]["retryAfterSeconds"], 1);
        assert_eq!(l.current(Kind::ReadOnly), 2);
        // The mutating budget is separate.
        let m = l.admit(Kind::Mutating).unwrap();
        assert!(l.admit(Kind::Mutating).is_err());
        drop(a);
        drop(m);
        assert_eq!(l.current(Kind::ReadOnly), 1);
        assert!(l.admit(Kind::ReadOnly).is_ok());
        assert!(l.admit(Kind::Mutating).is_ok());
    }

    #[test]
    fn zero_means_no_limit() {
        let l = Limits::new(0, 0);
        let held: Vec<_> = (0..10_000)
            .map(|_| l.admit(Kind::Mutating).unwrap())
            .collect();
        assert_eq!(held.len(), 10_000);
        assert_eq!(l.current(Kind::Mutating), 0);
    }

    #[test]
    fn verbs_split_like_kube() {
        assert_eq!(Kind::of(&http::Method::GET), Kind::ReadOnly);
        assert_eq!(Kind::of(&http::Method::HEAD), Kind::ReadOnly);
        for m in [
            http::Method::POST,
            http::Method::PUT,
            http::Method::PATCH,
            http::Method::DELETE,
        ] {
            assert_eq!(Kind::of(&m), Kind::Mutating);
        }
    }
}
