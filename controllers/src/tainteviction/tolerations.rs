//! Which NoExecute taints a pod tolerates, and for how long (kube's `ToleratesTaint`,
//! `GetMatchingTolerations` and the taint eviction controller's `getMinTolerationTime`). No I/O.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Taint, Toleration};

use crate::nodelifecycle::taints::NO_EXECUTE;

/// `Toleration.ToleratesTaint`.
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    let effect = t.effect.as_deref().unwrap_or("");
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = t.key.as_deref().unwrap_or("");
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match t.operator.as_deref().unwrap_or("") {
        "" | "Equal" => t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        "Exists" => true,
        _ => false,
    }
}

/// `GetMatchingTolerations`: the first toleration of each taint, or None when a taint is not
/// tolerated.
pub fn matching<'a>(
    taints: &[Taint],
    tolerations: &'a [Toleration],
) -> Option<Vec<&'a Toleration>> {
    let mut used = Vec::new();
    for taint in taints {
        used.push(tolerations.iter().find(|t| tolerates(t, taint))?);
    }
    Some(used)
}

/// The NoExecute taints among `taints`.
pub fn no_execute(taints: &[Taint]) -> Vec<Taint> {
    taints
        .iter()
        .filter(|t| t.effect == NO_EXECUTE)
        .cloned()
        .collect()
}

/// What to do with a pod on a node with these NoExecute taints (`processPodOnNode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// No taints, or tolerated forever: cancel any scheduled deletion.
    Keep,
    /// A taint is not tolerated: delete now.
    DeleteNow,
    /// Tolerated for this long (the shortest `tolerationSeconds` among the tolerations used).
    DeleteAfter(Duration),
}

pub fn verdict(taints: &[Taint], tolerations: &[Toleration]) -> Verdict {
    if taints.is_empty() {
        return Verdict::Keep;
    }
    let Some(used) = matching(taints, tolerations) else {
        return Verdict::DeleteNow;
    };
    // getMinTolerationTime: no tolerations used -> 0; a non-positive seconds -> 0; none set ->
    // forever.
    if used.is_empty() {
        return Verdict::DeleteAfter(Duration::ZERO);
    }
    let mut min: Option<i64> = None;
    for t in used {
        if let Some(s) = t.toleration_seconds {
            if s <= 0 {
                return Verdict::DeleteAfter(Duration::ZERO);
            }
            min = Some(min.map_or(s, |m: i64| m.min(s)));
        }
    }
    match min {
        None => Verdict::Keep,
        Some(s) => Verdict::DeleteAfter(Duration::from_secs(s as u64)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nodelifecycle::taints::{taint, TAINT_NOT_READY, TAINT_UNREACHABLE};

    fn tol(key: &str, op: &str, value: &str, effect: &str, secs: Option<i64>) -> Toleration {
        let s = |v: &str| (!v.is_empty()).then(|| v.to_string());
        Toleration {
            key: s(key),
            operator: s(op),
            value: s(value),
            effect: s(effect),
            toleration_seconds: secs,
        }
    }

    fn valued(key: &str, value: &str) -> Taint {
        Taint {
            value: Some(value.into()),
            ..taint(key, NO_EXECUTE)
        }
    }

    #[test]
    fn toleration_matching_as_kube() {
        let t = valued("k", "v");
        assert!(tolerates(&tol("k", "Equal", "v", "NoExecute", None), &t));
        assert!(
            tolerates(&tol("k", "", "v", "", None), &t),
            "empty effect is any"
        );
        assert!(!tolerates(&tol("k", "Equal", "w", "NoExecute", None), &t));
        assert!(!tolerates(&tol("k", "Equal", "v", "NoSchedule", None), &t));
        assert!(tolerates(&tol("k", "Exists", "", "", None), &t));
        assert!(
            tolerates(&tol("", "Exists", "", "", None), &t),
            "empty key + Exists: all"
        );
        assert!(!tolerates(&tol("other", "Exists", "", "", None), &t));
        assert!(!tolerates(&tol("k", "Bogus", "v", "", None), &t));
    }

    #[test]
    fn verdicts_as_kubes_taint_eviction_tests() {
        let unreachable = [taint(TAINT_UNREACHABLE, NO_EXECUTE)];
        let both = [
            taint(TAINT_UNREACHABLE, NO_EXECUTE),
            taint(TAINT_NOT_READY, NO_EXECUTE),
        ];
        let for_secs = |s| tol(TAINT_UNREACHABLE, "Exists", "", "NoExecute", Some(s));
        let cases: Vec<(&[Taint], Vec<Toleration>, Verdict)> = vec![
            (&[], vec![], Verdict::Keep),
            (&unreachable, vec![], Verdict::DeleteNow),
            (
                &unreachable,
                vec![for_secs(5)],
                Verdict::DeleteAfter(Duration::from_secs(5)),
            ),
            (
                &unreachable,
                vec![for_secs(0)],
                Verdict::DeleteAfter(Duration::ZERO),
            ),
            (
                &unreachable,
                vec![for_secs(-3)],
                Verdict::DeleteAfter(Duration::ZERO),
            ),
            (
                &unreachable,
                vec![tol(TAINT_UNREACHABLE, "Exists", "", "NoExecute", None)],
                Verdict::Keep,
            ),
            (&both, vec![for_secs(5)], Verdict::DeleteNow),
            (
                &both,
                vec![
                    for_secs(300),
                    tol(TAINT_NOT_READY, "Exists", "", "NoExecute", Some(7)),
                ],
                Verdict::DeleteAfter(Duration::from_secs(7)),
            ),
            (&both, vec![tol("", "Exists", "", "", None)], Verdict::Keep),
        ];
        for (taints, tols, want) in cases {
            assert_eq!(verdict(taints, &tols), want, "{taints:?} {tols:?}");
        }
        // Only the first matching toleration of a taint counts.
        let tols = vec![for_secs(100), for_secs(2)];
        assert_eq!(
            verdict(&unreachable, &tols),
            Verdict::DeleteAfter(Duration::from_secs(100))
        );
    }

    #[test]
    fn only_no_execute_taints_count() {
        let t = vec![
            taint("a", "NoSchedule"),
            taint("b", NO_EXECUTE),
            taint("c", "PreferNoSchedule"),
        ];
        assert_eq!(no_execute(&t), vec![taint("b", NO_EXECUTE)]);
    }
}
