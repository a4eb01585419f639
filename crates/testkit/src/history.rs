//! A history checker for a key-value service: record every operation's
//! invocation, completion and result under concurrency and faults, then
//! check the history against the consistency contract, without knowing how
//! the service could break it.
//!
//! The contract (`docs/api.md`, "Consistency"):
//! - a read returns a value some write of that key wrote, and that write
//!   had begun before the read completed (nothing invented);
//! - a read never returns a value that a later change of its key had
//!   replaced before the read began, nor 404 when a write had completed
//!   before the read began and no delete could have come between (no stale
//!   read). This holds strictly on the replica that served the change, and
//!   everywhere once `cross_replica_bound` has passed since the change
//!   completed;
//! - after the run, the store holds for every key the value of a last
//!   completed change (no lost write).
//!
//! Values must be unique per write: a value names the write that made it.
//! A change that failed (a 5xx, a time-out, a reset connection) may still
//! have taken effect at any later time; it counts as a change that never
//! completes, which only ever excuses reads, never convicts them.

use std::collections::HashMap;
use std::time::Duration;

/// What an operation did, as the client saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A write acknowledged (201) with this value.
    Written(String),
    /// A delete acknowledged (204).
    Deleted,
    /// A read that found this value (200).
    Read(String),
    /// A read or delete that found nothing (404).
    NotFound,
    /// A write or delete whose result is unknown (5xx, time-out, reset).
    Unknown { write: Option<String> },
    /// A read that failed (5xx, time-out): nothing to check.
    ReadFailed,
}

/// One operation of one client.
#[derive(Debug, Clone)]
pub struct Operation {
    pub key: String,
    /// Which replica served it.
    pub replica: usize,
    /// Since the start of the run.
    pub invoked: Duration,
    pub completed: Duration,
    pub outcome: Outcome,
    /// What the service said of how it served the operation (the cache
    /// level a read came from, the version it carried), printed with a
    /// violation to start the search; never checked.
    pub detail: Option<String>,
}

/// A change of a key that may have taken effect.
#[derive(Debug, Clone)]
struct Change<'a> {
    /// `None` for a delete.
    value: Option<&'a str>,
    replica: usize,
    invoked: Duration,
    /// `None` when it never completed: it may take effect at any time.
    completed: Option<Duration>,
    detail: Option<&'a str>,
}

impl Change<'_> {
    /// Completed before `at`, counting `slack` for a reader on another
    /// replica.
    fn completed_before(&self, at: Duration, reader: usize, slack: Duration) -> bool {
        let slack = if reader == self.replica {
            Duration::ZERO
        } else {
            slack
        };
        self.completed.is_some_and(|done| done + slack < at)
    }

    /// Began after `other` completed: certainly later.
    fn follows(&self, other: &Change<'_>) -> bool {
        other.completed.is_some_and(|done| self.invoked > done)
    }
}

/// What a check found.
#[derive(Debug, Default)]
pub struct Report {
    pub operations: usize,
    pub reads_checked: usize,
    pub violations: Vec<String>,
    /// For reads on another replica than the change they missed: how long
    /// after the change completed they still saw the older state.
    pub cross_replica_windows: Vec<Duration>,
}

impl Report {
    pub fn largest_window(&self) -> Duration {
        self.cross_replica_windows
            .iter()
            .copied()
            .max()
            .unwrap_or_default()
    }

    /// The 99th percentile of the cross-replica windows seen.
    pub fn window_p99(&self) -> Duration {
        let mut windows = self.cross_replica_windows.clone();
        windows.sort_unstable();
        windows
            .get((windows.len() * 99).div_ceil(100).saturating_sub(1))
            .copied()
            .unwrap_or_default()
    }
}

/// Checks `history` against the contract. `cross_replica_bound` is how long
/// another replica may still show the previous state (zero: never).
pub fn check(history: &[Operation], cross_replica_bound: Duration) -> Report {
    let mut by_key: HashMap<&str, Vec<&Operation>> = HashMap::new();
    for operation in history {
        by_key.entry(&operation.key).or_default().push(operation);
    }
    let mut report = Report {
        operations: history.len(),
        ..Report::default()
    };
    for (key, operations) in by_key {
        let changes = changes_of(&operations);
        for read in &operations {
            let found = match &read.outcome {
                Outcome::Read(value) => Some(value.as_str()),
                Outcome::NotFound => None,
                _ => continue,
            };
            report.reads_checked += 1;
            check_read(key, read, found, &changes, cross_replica_bound, &mut report);
        }
    }
    report
}

fn changes_of<'a>(operations: &[&'a Operation]) -> Vec<Change<'a>> {
    operations
        .iter()
        .filter_map(|operation| {
            let (value, completed) = match &operation.outcome {
                Outcome::Written(value) => (Some(value.as_str()), Some(operation.completed)),
                Outcome::Deleted => (None, Some(operation.completed)),
                Outcome::Unknown { write } => (write.as_deref(), None),
                _ => return None,
            };
            Some(Change {
                value,
                replica: operation.replica,
                invoked: operation.invoked,
                completed,
                detail: operation.detail.as_deref(),
            })
        })
        .collect()
}

fn check_read(
    key: &str,
    read: &Operation,
    found: Option<&str>,
    changes: &[Change<'_>],
    bound: Duration,
    report: &mut Report,
) {
    let at = read.invoked;
    let what = || {
        format!(
            "{key}: read on replica {} during {:?}..{:?} returned {found:?}{}",
            read.replica,
            read.invoked,
            read.completed,
            in_parentheses(read.detail.as_deref())
        )
    };
    // The changes the read may have seen: for a value, its write; for a
    // 404, any delete (or none: the key may never have been written).
    let sources: Vec<&Change<'_>> = match found {
        Some(value) => {
            let writes: Vec<_> = changes
                .iter()
                .filter(|change| change.value == Some(value))
                .collect();
            if writes.is_empty() {
                report
                    .violations
                    .push(format!("{}: no write wrote it", what()));
                return;
            }
            if writes.iter().all(|write| write.invoked > read.completed) {
                report
                    .violations
                    .push(format!("{}: written only after the read", what()));
                return;
            }
            writes
        }
        None => changes
            .iter()
            .filter(|change| change.value.is_none() && change.invoked < read.completed)
            .collect(),
    };
    // Stale: every state the read could show had been replaced, before the
    // read began, by a change that certainly came after it.
    let replaced = |source: Option<&Change<'_>>, slack: Duration| {
        changes.iter().any(|change| {
            change.completed_before(at, read.replica, slack)
                && source.is_none_or(|source| change.follows(source))
                && (found.is_some() || change.value.is_some())
        })
    };
    let stale = |slack: Duration| {
        if sources.is_empty() {
            // A 404 with no delete to explain it: stale once any write had
            // completed before the read.
            replaced(None, slack)
        } else {
            sources.iter().all(|source| replaced(Some(source), slack))
        }
    };
    if stale(bound) {
        // Name the newest change the read missed, to start the search.
        let missed = changes
            .iter()
            .filter(|change| change.completed_before(at, read.replica, bound))
            .max_by_key(|change| change.completed)
            .map(|change| {
                format!(
                    "{:?} by replica {} during {:?}..{:?}{}",
                    change.value,
                    change.replica,
                    change.invoked,
                    change.completed,
                    in_parentheses(change.detail)
                )
            });
        report.violations.push(format!(
            "{}: stale; the newest change completed before it: {}",
            what(),
            missed.unwrap_or_default()
        ));
    } else if stale(Duration::ZERO) {
        // Stale only by the cross-replica allowance: note how long after
        // the newest change it missed the read began.
        let newest = changes
            .iter()
            .filter(|change| change.replica != read.replica)
            .filter_map(|change| change.completed.filter(|done| *done < at))
            .max()
            .unwrap_or_default();
        report.cross_replica_windows.push(at.saturating_sub(newest));
    }
}

/// An operation's detail as a violation names it, after a space.
fn in_parentheses(detail: Option<&str>) -> String {
    detail
        .map(|detail| format!(" ({detail})"))
        .unwrap_or_default()
}

/// Checks the final state after the run: `stored` is what the store (or a
/// replica) holds for each key of `history` (`None`: nothing). It must be
/// the state left by a change that no other change certainly followed.
pub fn check_final(history: &[Operation], stored: &HashMap<String, Option<String>>) -> Vec<String> {
    let mut by_key: HashMap<&str, Vec<&Operation>> = HashMap::new();
    for operation in history {
        by_key.entry(&operation.key).or_default().push(operation);
    }
    let mut violations = Vec::new();
    for (key, operations) in by_key {
        let changes = changes_of(&operations);
        if changes.is_empty() {
            continue;
        }
        let last: Vec<Option<&str>> = changes
            .iter()
            .filter(|change| !changes.iter().any(|other| other.follows(change)))
            .map(|change| change.value)
            .collect();
        let held = stored.get(key).cloned().flatten();
        if !last.contains(&held.as_deref()) {
            violations.push(format!(
                "{key}: holds {held:?} after the run; the last changes left one of {last:?}"
            ));
        }
    }
    violations
}

#[cfg(test)]
mod tests;
