//! The checker on hand-made histories: one that keeps the contract passes;
//! stale, invented, future and lost reads and writes are caught.

use super::*;

fn op(key: &str, replica: usize, from: u64, to: u64, outcome: Outcome) -> Operation {
    Operation {
        key: key.into(),
        replica,
        invoked: Duration::from_millis(from),
        completed: Duration::from_millis(to),
        outcome,
        detail: None,
    }
}

fn written(value: &str) -> Outcome {
    Outcome::Written(value.into())
}

fn read(value: &str) -> Outcome {
    Outcome::Read(value.into())
}

const NO_SLACK: Duration = Duration::ZERO;

#[test]
fn a_history_that_keeps_the_contract_passes() {
    let history = [
        op("k", 0, 0, 10, written("a")),
        op("k", 0, 20, 30, read("a")),
        op("k", 1, 25, 40, written("b")),
        // Overlaps the write of b: either value will do.
        op("k", 0, 35, 45, read("a")),
        op("k", 0, 50, 60, read("b")),
        op("k", 1, 70, 80, Outcome::Deleted),
        op("k", 0, 90, 95, Outcome::NotFound),
        op("never", 0, 0, 5, Outcome::NotFound),
    ];
    let report = check(&history, NO_SLACK);
    assert!(report.violations.is_empty(), "{:?}", report.violations);
    assert_eq!(report.reads_checked, 5);
    let stored = HashMap::from([("k".to_owned(), None)]);
    assert!(check_final(&history, &stored).is_empty());
}

#[test]
fn stale_invented_and_future_reads_are_caught() {
    let cases = [
        // The value written before a completed overwrite.
        vec![
            op("k", 0, 0, 10, written("a")),
            op("k", 0, 20, 30, written("b")),
            op("k", 0, 40, 50, read("a")),
        ],
        // A value nobody wrote.
        vec![op("k", 0, 0, 10, read("x"))],
        // A value written only after the read completed.
        vec![
            op("k", 0, 0, 10, read("a")),
            op("k", 0, 20, 30, written("a")),
        ],
        // 404 after a completed write, no delete anywhere.
        vec![
            op("k", 0, 0, 10, written("a")),
            op("k", 1, 20, 30, Outcome::NotFound),
        ],
        // The deleted value after the delete completed.
        vec![
            op("k", 0, 0, 10, written("a")),
            op("k", 0, 20, 30, Outcome::Deleted),
            op("k", 0, 40, 50, read("a")),
        ],
        // 404 from a delete that a completed write followed.
        vec![
            op("k", 0, 0, 10, Outcome::Deleted),
            op("k", 0, 20, 30, written("a")),
            op("k", 0, 40, 50, Outcome::NotFound),
        ],
    ];
    for history in cases {
        let report = check(&history, NO_SLACK);
        assert_eq!(report.violations.len(), 1, "{history:#?}");
    }
}

#[test]
fn another_replica_may_lag_within_the_bound_only() {
    let history = [
        op("k", 0, 0, 10, written("a")),
        op("k", 0, 20, 30, written("b")),
        // Replica 1, 5 ms after b completed: within a 50 ms bound.
        op("k", 1, 35, 40, read("a")),
        // Replica 1, 90 ms after: beyond it.
        op("k", 1, 120, 125, read("a")),
        // Replica 0 itself: never.
        op("k", 0, 31, 33, read("a")),
    ];
    let report = check(&history, Duration::from_millis(50));
    assert_eq!(report.violations.len(), 2, "{:?}", report.violations);
    assert_eq!(report.largest_window(), Duration::from_millis(5));
}

#[test]
fn a_change_of_unknown_outcome_excuses_but_never_convicts() {
    let history = [
        op("k", 0, 0, 10, written("a")),
        op(
            "k",
            0,
            20,
            30,
            Outcome::Unknown {
                write: Some("b".into()),
            },
        ),
        op("k", 0, 40, 50, read("a")),
        op("k", 0, 60, 70, read("b")),
        op("k", 0, 80, 90, read("a")),
    ];
    assert!(check(&history, NO_SLACK).violations.is_empty());
}

#[test]
fn a_lost_write_is_caught_after_the_run() {
    let history = [
        op("k", 0, 0, 10, written("a")),
        op("k", 1, 20, 30, written("b")),
    ];
    let lost = HashMap::from([("k".to_owned(), Some("a".to_owned()))]);
    assert_eq!(check_final(&history, &lost).len(), 1);
    let kept = HashMap::from([("k".to_owned(), Some("b".to_owned()))]);
    assert!(check_final(&history, &kept).is_empty());
}
