//! How far requests may use Redis: the cache's health state, and the
//! connection its last repair was made on.
//!
//! Both are atomics read on every cache operation, so that a request learns
//! whether to try Redis without a lock. The [`supervisor`](super::supervisor)
//! moves the state up, one step at a time; any failure moves it down at once.

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

/// How far Redis is used; each level allows what the lower ones do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub(super) enum Level {
    /// Redis is not used at all (failed, or not yet repaired).
    Down = 0,
    /// Being repaired: writes go to Redis, reads do not yet.
    WritesOnly = 1,
    /// In use.
    Up = 2,
}

impl Level {
    fn from_u8(value: u8) -> Self {
        match value {
            0 => Self::Down,
            1 => Self::WritesOnly,
            _ => Self::Up,
        }
    }
}

#[derive(Debug)]
pub(super) struct Usage {
    level: AtomicU8,
    /// The connection generation the last repair replayed the outbox on
    /// (`PrimaryConnection::generation`): a reply from any other may come
    /// from a server that missed writes, so it takes Redis down.
    repaired_on: AtomicU64,
}

impl Usage {
    /// Down, until a repair.
    pub(super) fn new() -> Self {
        Self {
            level: AtomicU8::new(Level::Down as u8),
            repaired_on: AtomicU64::new(0),
        }
    }

    pub(super) fn level(&self) -> Level {
        Level::from_u8(self.level.load(Ordering::Acquire))
    }

    pub(super) fn repaired_on(&self) -> u64 {
        self.repaired_on.load(Ordering::Acquire)
    }

    /// Stops every use of Redis. Returns whether reads were using it.
    pub(super) fn take_down(&self) -> bool {
        self.level.swap(Level::Down as u8, Ordering::AcqRel) == Level::Up as u8
    }

    /// First step of a repair, made on the connection of `generation`:
    /// writes reach Redis again (unless something took it up meanwhile).
    pub(super) fn resume_writes(&self, generation: u64) {
        self.repaired_on.store(generation, Ordering::Release);
        let _ = self.step(Level::Down, Level::WritesOnly);
    }

    /// Last step of a repair: reads use Redis again. False when a write
    /// failed meanwhile (the state went back to down).
    pub(super) fn resume_reads(&self) -> bool {
        self.step(Level::WritesOnly, Level::Up)
    }

    fn step(&self, from: Level, to: Level) -> bool {
        self.level
            .compare_exchange(from as u8, to as u8, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repair_goes_up_one_step_at_a_time_and_a_failure_between_stops_it() {
        let usage = Usage::new();
        assert_eq!(usage.level(), Level::Down);
        assert!(!usage.resume_reads(), "reads cannot resume before writes");
        usage.resume_writes(7);
        assert_eq!((usage.level(), usage.repaired_on()), (Level::WritesOnly, 7));
        assert!(!usage.take_down(), "reads were not in use yet");
        assert!(
            !usage.resume_reads(),
            "a failure during the repair voids it"
        );
        usage.resume_writes(8);
        assert!(usage.resume_reads());
        assert_eq!(usage.level(), Level::Up);
        assert!(usage.take_down());
        assert_eq!(usage.level(), Level::Down);
    }
}
