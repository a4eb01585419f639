//! The changes this replica wrote through to Redis, remembered until the
//! supervisor's routine replay of the outbox has passed them.
//!
//! That replay makes sure Redis holds nothing older than each outbox entry
//! once the entry has outlived its retention: it covers changes whose
//! write-through was lost, such as those of a replica that died between its
//! commit and its write to Redis. A change whose write-through Redis
//! answered, and whose entry Redis keeps until that replay, needs no such
//! cover, so the replay passes over the ones remembered here. Every other
//! change, another replica's included, is still replayed. After Redis
//! failed or restarted, the repair replays the whole outbox and asks
//! nothing of this.
//!
//! A change is remembered by a 64-bit fingerprint of its key and version,
//! keyed at random per process. An entry the replay asks about shares a
//! fingerprint with one of the changes remembered with odds of at most
//! their number (below 2^20) in 2^64; one passed over by mistake would
//! only lose the cover of a write-through that was lost.

use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// At most this many changes are remembered; past it, changes are not
/// remembered, and the replay sends them to Redis as it would without this.
/// It bounds the memory whatever the write rate.
const MOST_REMEMBERED: usize = 1 << 20;

/// How long past the outbox's retention a change is remembered: the
/// supervisor replays once a second, and a replay may take a while.
const GRACE: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub struct WrittenThrough {
    fingerprints: RandomState,
    started: Instant,
    /// How long a change is remembered.
    keep: Duration,
    remembered: Mutex<Seconds>,
}

/// The fingerprints remembered, by the second (since `started`) they were
/// noted in, oldest first.
#[derive(Debug)]
struct Seconds {
    seconds: VecDeque<(u64, HashSet<u64>)>,
    len: usize,
    most: usize,
}

impl WrittenThrough {
    /// Remembers changes for the outbox's `retention` and a grace period.
    pub fn new(retention: Duration) -> Self {
        Self {
            fingerprints: RandomState::new(),
            started: Instant::now(),
            keep: retention + GRACE,
            remembered: Mutex::new(Seconds::new(MOST_REMEMBERED)),
        }
    }

    /// Notes that Redis answered the write-through of `key` at `version`
    /// with an entry that `lasts` that long: from then on it held that
    /// version or a newer one. An entry that lapses before the replay
    /// would pass over it is not remembered: once the key is empty, a
    /// reader's fill can bring back an older version, which the replay
    /// then puts right.
    pub fn note(&self, key: &str, version: i64, lasts: Duration) {
        if lasts < self.keep {
            return;
        }
        let fingerprint = self.fingerprints.hash_one((key, version));
        let second = self.started.elapsed().as_secs();
        let Ok(mut remembered) = self.remembered.lock() else {
            return;
        };
        remembered.forget_before(second.saturating_sub(self.keep.as_secs()));
        remembered.insert(second, fingerprint);
    }

    /// Whether Redis answered the write-through of `key` at `version`
    /// recently enough to be remembered.
    pub fn holds(&self, key: &str, version: i64) -> bool {
        let fingerprint = self.fingerprints.hash_one((key, version));
        let Ok(remembered) = self.remembered.lock() else {
            return false;
        };
        // The replay asks about the oldest changes first.
        remembered
            .seconds
            .iter()
            .any(|(_, fingerprints)| fingerprints.contains(&fingerprint))
    }
}

impl Seconds {
    fn new(most: usize) -> Self {
        Self {
            seconds: VecDeque::new(),
            len: 0,
            most,
        }
    }

    fn insert(&mut self, second: u64, fingerprint: u64) {
        if self.len >= self.most {
            return;
        }
        if self
            .seconds
            .back()
            .is_none_or(|(newest, _)| *newest != second)
        {
            self.seconds.push_back((second, HashSet::new()));
        }
        if let Some((_, fingerprints)) = self.seconds.back_mut()
            && fingerprints.insert(fingerprint)
        {
            self.len += 1;
        }
    }

    fn forget_before(&mut self, oldest_kept: u64) {
        while let Some((second, fingerprints)) = self.seconds.front() {
            if *second >= oldest_kept {
                break;
            }
            self.len -= fingerprints.len();
            self.seconds.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AN_HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn holds_what_was_noted_and_nothing_else() {
        let written = WrittenThrough::new(Duration::from_secs(10));
        written.note("a", 1, AN_HOUR);
        written.note("b", 7, AN_HOUR);
        assert!(written.holds("a", 1));
        assert!(written.holds("b", 7));
        assert!(!written.holds("a", 2), "another version");
        assert!(!written.holds("b", 1), "another key's version");
        assert!(!written.holds("c", 7));
    }

    #[test]
    fn an_entry_that_lapses_before_the_replay_is_not_remembered() {
        let written = WrittenThrough::new(Duration::from_secs(10));
        written.note("short", 1, Duration::from_secs(14));
        written.note("long", 1, Duration::from_secs(15));
        assert!(!written.holds("short", 1));
        assert!(written.holds("long", 1));
    }

    #[test]
    fn forgets_whole_seconds_past_the_window() {
        let mut seconds = Seconds::new(100);
        for (second, fingerprint) in [(3, 30), (3, 31), (4, 40), (6, 60), (6, 60)] {
            seconds.insert(second, fingerprint);
        }
        assert_eq!(seconds.len, 4, "a fingerprint noted twice counts once");
        seconds.forget_before(4);
        assert_eq!(seconds.len, 2);
        assert_eq!(
            seconds.seconds.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            [4, 6]
        );
        seconds.forget_before(7);
        assert_eq!(seconds.len, 0);
        assert!(seconds.seconds.is_empty());
    }

    #[test]
    fn remembers_no_more_than_its_bound() {
        let mut seconds = Seconds::new(3);
        for fingerprint in 0..5 {
            seconds.insert(1, fingerprint);
        }
        assert_eq!(seconds.len, 3);
        seconds.forget_before(2);
        seconds.insert(2, 9);
        assert_eq!(seconds.len, 1, "room again once the old second is gone");
    }
}
