//! What a run did: counted as it goes, logged as one JSON summary line plus
//! the spec's `cleanup done, deleted N expired keys`.

use serde::Serialize;

use crate::budget::StopReason;

/// Running counts, updated batch by batch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    /// Keys SCAN returned (a key SCAN returns twice counts twice).
    pub scanned: u64,
    /// Cache keys unlinked because they had no TTL.
    pub deleted_no_ttl: u64,
    /// Cache keys unlinked because their record is gone or expired.
    pub deleted_record_gone: u64,
    /// Expired records deleted from the store.
    pub rows_deleted: u64,
    /// Cache-outbox entries left by stopped API replicas, applied and cleared.
    pub outbox_applied: u64,
}

impl Tally {
    pub fn keys_deleted(&self) -> u64 {
        self.deleted_no_ttl + self.deleted_record_gone
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Complete,
    Partial,
    Failed,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_by: Option<StopReason>,
    pub dry_run: bool,
    #[serde(flatten)]
    pub tally: Tally,
    pub keys_deleted: u64,
    pub duration_seconds: f64,
}

impl Summary {
    /// Logs the summary as one JSON line (one field per count), then the
    /// spec's line.
    pub fn log(&self) {
        let status = serde_plain(&self.status);
        let stopped_by = self.stopped_by.as_ref().map(serde_plain);
        let tally = &self.tally;
        tracing::info!(
            status,
            stopped_by,
            dry_run = self.dry_run,
            scanned = tally.scanned,
            deleted_no_ttl = tally.deleted_no_ttl,
            deleted_record_gone = tally.deleted_record_gone,
            keys_deleted = self.keys_deleted,
            rows_deleted = tally.rows_deleted,
            outbox_applied = tally.outbox_applied,
            duration_seconds = self.duration_seconds,
            "cleanup summary"
        );
        let verb = if self.dry_run {
            "would delete"
        } else {
            "deleted"
        };
        tracing::info!("cleanup done, {verb} {} expired keys", self.keys_deleted);
    }
}

/// `Status::Complete` as `"complete"`: the serde name, for log fields.
fn serde_plain<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_default()
}
