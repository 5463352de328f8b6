//! Checking what a watcher saw against the store's history.

/// One change, as a watch event or as read back from the store's history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub revision: i64,
    pub key: Vec<u8>,
    /// `None` for a delete.
    pub value: Option<Vec<u8>>,
}

/// `seen` (in the order received, possibly across reconnects) must equal exactly the changes of
/// `history` with revision >= `start_revision` (and <= the last revision in `seen`, if the watcher
/// stopped early: pass `until` = Some(rev) to require completeness up to `rev`). Order, gaps and
/// duplicates are all reported.
pub fn check_watch(
    seen: &[Change],
    history: &[Change],
    start_revision: i64,
    until: Option<i64>,
) -> Result<(), String> {
    // Changes of one revision (a transaction) keep the order `history` lists them in.
    let mut history: Vec<&Change> = history.iter().collect();
    history.sort_by_key(|change| change.revision);
    let last_seen = seen.iter().map(|change| change.revision).max();
    let end_revision = match (until, last_seen) {
        (Some(until), Some(last)) => until.max(last),
        (Some(until), None) => until,
        (None, Some(last)) => last,
        (None, None) => return Ok(()),
    };
    let expected: Vec<&Change> = history
        .into_iter()
        .filter(|change| (start_revision..=end_revision).contains(&change.revision))
        .collect();

    for (position, change) in seen.iter().enumerate() {
        let want = expected.get(position).copied();
        if want == Some(change) {
            continue;
        }
        let context = match want {
            Some(want) => format!(
                "event #{position} is {} but {} was expected",
                show(change),
                show(want)
            ),
            None => format!(
                "event #{position} is {}, after all {} expected events (revisions \
                 {start_revision}..={end_revision}) were received",
                show(change),
                expected.len()
            ),
        };
        let why = if change.revision < start_revision {
            format!("its revision is before the watch's start revision {start_revision}")
        } else if seen[..position].contains(change) {
            "duplicate of an event already received".to_string()
        } else if position > 0 && change.revision < seen[position - 1].revision {
            format!(
                "out of order (revision {} after revision {})",
                change.revision,
                seen[position - 1].revision
            )
        } else if let Some(want) = want {
            if change.revision == want.revision && change.key == want.key {
                "different value".to_string()
            } else if let Some(later) = seen[position + 1..].iter().position(|c| c == want) {
                format!(
                    "out of order (the expected event arrived later, as event #{})",
                    position + 1 + later
                )
            } else if expected.contains(&change) {
                format!("missing {}", show(want))
            } else {
                "the history has no such change".to_string()
            }
        } else {
            "the history has no such change".to_string()
        };
        return Err(format!("{context}: {why}"));
    }
    if let Some(want) = expected.get(seen.len()) {
        return Err(format!(
            "missing {} and {} more expected events (revisions \
             {start_revision}..={end_revision}): received only {} of {}",
            show(want),
            expected.len() - seen.len() - 1,
            seen.len(),
            expected.len()
        ));
    }
    Ok(())
}

fn show(change: &Change) -> String {
    let key = String::from_utf8_lossy(&change.key);
    match &change.value {
        Some(value) => format!(
            "put {key:?}={:?} at revision {}",
            String::from_utf8_lossy(value),
            change.revision
        ),
        None => format!("delete {key:?} at revision {}", change.revision),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(revision: i64, key: &str, value: &str) -> Change {
        Change {
            revision,
            key: key.as_bytes().to_vec(),
            value: Some(value.as_bytes().to_vec()),
        }
    }

    fn delete(revision: i64, key: &str) -> Change {
        Change {
            revision,
            key: key.as_bytes().to_vec(),
            value: None,
        }
    }

    fn history() -> Vec<Change> {
        vec![
            put(2, "a", "1"),
            put(3, "b", "1"),
            // One transaction: two changes at revision 4.
            put(4, "a", "2"),
            delete(4, "b"),
            put(5, "a", "3"),
            put(6, "c", "1"),
        ]
    }

    fn error(seen: &[Change], start_revision: i64, until: Option<i64>) -> String {
        check_watch(seen, &history(), start_revision, until).unwrap_err()
    }

    #[test]
    fn exact_stream_passes() {
        let history = history();
        assert_eq!(check_watch(&history, &history, 1, None), Ok(()));
        assert_eq!(check_watch(&history, &history, 2, Some(6)), Ok(()));
        assert_eq!(check_watch(&history[2..], &history, 4, Some(6)), Ok(()));
    }

    #[test]
    fn watcher_that_stopped_early_passes_without_until() {
        let history = history();
        assert_eq!(check_watch(&history[..4], &history, 1, None), Ok(()));
        assert_eq!(check_watch(&[], &history, 1, None), Ok(()));
    }

    #[test]
    fn stopping_early_fails_with_until() {
        let history = history();
        let message = check_watch(&history[..4], &history, 1, Some(6)).unwrap_err();
        assert!(
            message.contains("missing put \"a\"=\"3\" at revision 5"),
            "{message}"
        );
        let message = check_watch(&[], &history, 3, Some(3)).unwrap_err();
        assert!(
            message.contains("missing put \"b\"=\"1\" at revision 3"),
            "{message}"
        );
    }

    #[test]
    fn gap_is_reported_as_missing() {
        let h = history();
        let seen = vec![h[0].clone(), h[1].clone(), h[4].clone(), h[5].clone()];
        let message = error(&seen, 1, None);
        assert!(message.contains("event #2"), "{message}");
        assert!(
            message.contains("missing put \"a\"=\"2\" at revision 4"),
            "{message}"
        );
    }

    #[test]
    fn half_a_transaction_is_reported_as_missing() {
        let h = history();
        let seen = vec![h[2].clone(), h[4].clone()];
        let message = error(&seen, 4, None);
        assert!(
            message.contains("missing delete \"b\" at revision 4"),
            "{message}"
        );
    }

    #[test]
    fn duplicate_is_reported() {
        let h = history();
        let seen = vec![h[0].clone(), h[1].clone(), h[1].clone(), h[2].clone()];
        assert!(error(&seen, 1, None).contains("duplicate"));
        // A duplicate after the last expected event, too.
        let mut seen = h.clone();
        seen.push(h[5].clone());
        assert!(error(&seen, 1, None).contains("duplicate"));
    }

    #[test]
    fn reordering_is_reported() {
        let h = history();
        let seen = vec![h[0].clone(), h[2].clone(), h[1].clone()];
        let message = error(&seen, 1, None);
        // Revision 4 arrived before revision 3.
        assert!(message.contains("event #1"), "{message}");
        assert!(message.contains("out of order"), "{message}");
        let seen = vec![h[0].clone(), h[1].clone(), h[3].clone(), h[2].clone()];
        let message = error(&seen, 1, None);
        assert!(message.contains("event #2"), "{message}");
        assert!(message.contains("out of order"), "{message}");
    }

    #[test]
    fn going_back_in_revision_is_reported_as_out_of_order() {
        let h = history();
        let seen = vec![h[0].clone(), h[1].clone(), h[2].clone(), h[0].clone()];
        // h[0] repeated is a duplicate; a change never received before but older is out of order.
        assert!(error(&seen, 1, None).contains("duplicate"));
        let seen = vec![h[0].clone(), h[2].clone(), h[3].clone(), h[1].clone()];
        let message = error(&seen, 1, None);
        assert!(message.contains("event #1"), "{message}");
        assert!(message.contains("arrived later, as event #3"), "{message}");
        // An older change arriving after newer ones when the expected one never arrives.
        let seen = vec![
            h[0].clone(),
            h[1].clone(),
            h[2].clone(),
            h[3].clone(),
            h[0].clone(),
        ];
        assert!(error(&seen, 1, None).contains("duplicate"));
        let seen = vec![h[1].clone(), h[2].clone(), h[3].clone(), put(2, "a", "1")];
        let message = error(&seen, 3, None);
        assert!(
            message.contains("before the watch's start revision"),
            "{message}"
        );
    }

    #[test]
    fn different_value_is_reported() {
        let h = history();
        let seen = vec![h[0].clone(), put(3, "b", "other")];
        let message = error(&seen, 1, None);
        assert!(message.contains("different value"), "{message}");
        let seen = vec![h[0].clone(), delete(3, "b")];
        assert!(error(&seen, 1, None).contains("different value"));
    }

    #[test]
    fn change_not_in_history_is_reported() {
        let h = history();
        let seen = vec![h[0].clone(), put(3, "zzz", "1")];
        let message = error(&seen, 1, None);
        assert!(message.contains("no such change"), "{message}");
        let mut seen = h.clone();
        seen.push(put(9, "a", "9"));
        let message = error(&seen, 1, None);
        assert!(message.contains("after all 6 expected events"), "{message}");
        assert!(message.contains("no such change"), "{message}");
    }

    #[test]
    fn events_before_the_start_revision_are_reported() {
        let h = history();
        let message = error(&h[..], 3, None);
        assert!(
            message.contains("before the watch's start revision 3"),
            "{message}"
        );
        assert!(
            message.contains("event #0 is put \"a\"=\"1\" at revision 2"),
            "{message}"
        );
    }

    #[test]
    fn history_order_does_not_matter_across_revisions() {
        let h = history();
        let mut shuffled = h.clone();
        shuffled.reverse();
        // Reversed, the two changes of revision 4 swap too; the stable sort keeps them swapped.
        let expected_order = vec![
            h[0].clone(),
            h[1].clone(),
            h[3].clone(),
            h[2].clone(),
            h[4].clone(),
            h[5].clone(),
        ];
        assert_eq!(check_watch(&expected_order, &shuffled, 1, Some(6)), Ok(()));
    }
}
