//! Fills of Redis that go out after their reads were answered.
//!
//! A read that missed Redis and found the record in the store answers
//! first and fills Redis after: its client need not wait a Redis round
//! trip for a write it does not need, and concurrent readers of the key
//! still share the read until the fill lands (the load's tail, see
//! [`platform::single_flight`]). What the fills in flight may hold is
//! bounded: a fill past the bound is sent before its read is answered, as a
//! write-through is, so a Redis slower than the store cannot pile them up.
//! `/metrics` shows what they hold (`cache_fills_in_flight_bytes`) and how
//! many went out before their answer (`cache_fills_before_answer_total`).

use std::sync::Arc;

use platform::single_flight::Tail;
use store::domain::Key;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::l1::LocalCache;
use super::{PreparedWrite, RedisCache};

/// How much the fills in flight may hold at once.
pub const MAX_IN_FLIGHT_BYTES: usize = 4 << 20;

/// What a fill in flight counts beside its key and entry: its task and
/// command.
const OVERHEAD_BYTES: usize = 512;

/// The bytes the fills in flight hold, within a bound; clones share it.
#[derive(Debug, Clone)]
pub struct Fills {
    /// One permit a byte, of the bound.
    in_flight: Arc<Semaphore>,
    max_bytes: usize,
}

impl Fills {
    pub fn new(max_bytes: usize) -> Self {
        Self {
            in_flight: Arc::new(Semaphore::new(max_bytes)),
            max_bytes,
        }
    }

    /// The bytes the fills in flight hold now, their overhead included.
    pub fn in_flight_bytes(&self) -> usize {
        self.max_bytes
            .saturating_sub(self.in_flight.available_permits())
    }

    /// The fill of `key` with `write`, to run once the read is answered;
    /// or, past the bound, `write` handed back for the caller to send now.
    pub fn later(
        &self,
        cache: &Arc<RedisCache>,
        l1: &Arc<LocalCache>,
        key: &Key,
        write: PreparedWrite,
    ) -> Result<Tail, PreparedWrite> {
        let Some(permit) = self.reserve(write.entry_bytes() + key.as_str().len()) else {
            return Err(write);
        };
        let (cache, l1, key) = (cache.clone(), l1.clone(), key.clone());
        Ok(Box::pin(async move {
            cache.send_and_note(&l1, &key, &write).await;
            drop(permit);
        }))
    }

    fn reserve(&self, bytes: usize) -> Option<OwnedSemaphorePermit> {
        let permits = u32::try_from(bytes.saturating_add(OVERHEAD_BYTES)).ok()?;
        self.in_flight.clone().try_acquire_many_owned(permits).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_in_flight_hold_no_more_than_the_bound() {
        let fills = Fills::new(4 * OVERHEAD_BYTES);
        assert_eq!(fills.in_flight_bytes(), 0);
        let first = fills.reserve(OVERHEAD_BYTES).expect("within the bound");
        assert_eq!(fills.in_flight_bytes(), 2 * OVERHEAD_BYTES);
        assert!(
            fills.reserve(2 * OVERHEAD_BYTES).is_none(),
            "three overheads over two used"
        );
        let second = fills.reserve(0).expect("one overhead left");
        assert_eq!(fills.in_flight_bytes(), 3 * OVERHEAD_BYTES);
        drop(first);
        assert!(
            fills.reserve(OVERHEAD_BYTES).is_some(),
            "freed when it lands"
        );
        drop(second);
        assert_eq!(fills.in_flight_bytes(), 0);
        assert!(fills.reserve(usize::MAX).is_none(), "larger than any bound");
    }
}
