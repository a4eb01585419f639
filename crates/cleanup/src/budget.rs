//! When to stop: the deadline, SIGTERM, and the optional rate limit. Work
//! is checked against the budget between batches, never inside one, so a
//! stop never leaves a batch half done.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Why a run stopped before finishing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    Deadline,
    Signal,
}

#[derive(Debug, Clone)]
pub struct Budget {
    started: Instant,
    deadline: Instant,
    stop_requested: Arc<AtomicBool>,
    keys_per_second: u64,
}

impl Budget {
    pub fn new(deadline: Duration, keys_per_second: u64) -> Self {
        let started = Instant::now();
        Self {
            started,
            deadline: started + deadline,
            stop_requested: Arc::new(AtomicBool::new(false)),
            keys_per_second,
        }
    }

    /// A flag that, once set (by the SIGTERM handler), stops the run at the
    /// next batch boundary.
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop_requested.clone()
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// `Some` when the run must stop now.
    pub fn exhausted(&self) -> Option<StopReason> {
        if self.stop_requested.load(Ordering::Acquire) {
            Some(StopReason::Signal)
        } else if Instant::now() >= self.deadline {
            Some(StopReason::Deadline)
        } else {
            None
        }
    }

    /// With a rate limit, waits until `examined` keys are within it (never
    /// past the deadline).
    pub async fn pace(&self, examined: u64) {
        if self.keys_per_second == 0 {
            return;
        }
        // examined / rate seconds should have passed since the start.
        let due =
            self.started + Duration::from_secs_f64(examined as f64 / self.keys_per_second as f64);
        let until = due.min(self.deadline);
        tokio::time::sleep_until(until.into()).await;
    }
}
