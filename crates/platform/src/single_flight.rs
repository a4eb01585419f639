//! Single flight: callers of one key at one moment share one run of its
//! work, and each gets a clone of the outcome.
//!
//! The API's L1 coalesces its store loads with this. moka's `try_get_with`,
//! which it used before, does the same through the cache's own concurrent
//! map, a waiter behind an async lock and epoch-based reclamation, and was
//! the largest share of what L1 added to a Redis miss (docs/decisions.md,
//! record 36). Here a lone caller takes a striped lock twice (to register
//! its flight, then to retire it) and allocates its key and one flight.
//!
//! A flight whose leader is dropped before it finishes (its request timed
//! out, its client went away) retires without an outcome: the callers
//! waiting on it wake, and one of them leads a new flight with its own work.

use std::collections::HashMap;
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use tokio::sync::Notify;

/// Lock stripes: callers of different keys rarely take the same lock.
const STRIPES: usize = 64;

type Flights<T> = HashMap<Box<str>, Arc<Flight<T>>>;

/// One run of a key's work, as its callers see it.
#[derive(Debug)]
struct Flight<T> {
    /// Set by the leader just before the flight retires.
    outcome: OnceLock<T>,
    /// Woken when the flight retires, with or without an outcome.
    retired: Notify,
}

enum Boarded<T> {
    Leading(Arc<Flight<T>>),
    Joined(Arc<Flight<T>>),
}

#[derive(Debug)]
pub struct SingleFlight<T> {
    stripes: Box<[Mutex<Flights<T>>]>,
}

impl<T: Clone> Default for SingleFlight<T> {
    fn default() -> Self {
        Self {
            stripes: (0..STRIPES).map(|_| Mutex::default()).collect(),
        }
    }
}

impl<T: Clone> SingleFlight<T> {
    /// The outcome of `work()` for `key`: of a run already in flight, joined,
    /// or else of a run of its own, which callers arriving meanwhile join.
    /// `work` is called only when this caller leads a run.
    pub async fn run<F>(&self, key: &str, work: impl FnOnce() -> F) -> T
    where
        F: Future<Output = T>,
    {
        loop {
            match self.board(key) {
                Boarded::Leading(flight) => return self.lead(key, flight, work()).await,
                Boarded::Joined(flight) => {
                    if let Some(outcome) = Self::join(&flight).await {
                        return outcome;
                    }
                    // Its leader was dropped: lead (or join) the next flight.
                }
            }
        }
    }

    /// The flight of `key` in flight, or a new one that this caller leads.
    fn board(&self, key: &str) -> Boarded<T> {
        let mut flights = self.flights(key);
        if let Some(flight) = flights.get(key) {
            return Boarded::Joined(flight.clone());
        }
        let flight = Arc::new(Flight {
            outcome: OnceLock::new(),
            retired: Notify::new(),
        });
        flights.insert(key.into(), flight.clone());
        Boarded::Leading(flight)
    }

    async fn lead<F>(&self, key: &str, flight: Arc<Flight<T>>, work: F) -> T
    where
        F: Future<Output = T>,
    {
        let retire = Retire {
            single_flight: self,
            key,
            flight,
        };
        let outcome = work.await;
        // Cannot be set already: only the leader sets it.
        let _ = retire.flight.outcome.set(outcome.clone());
        drop(retire);
        outcome
    }

    /// Waits for `flight` to retire; its outcome, or none if its leader was
    /// dropped.
    async fn join(flight: &Flight<T>) -> Option<T> {
        let mut retired = pin!(flight.retired.notified());
        // Registered before the outcome is checked, so that a flight
        // retiring in between still wakes this caller.
        retired.as_mut().enable();
        if let Some(outcome) = flight.outcome.get() {
            return Some(outcome.clone());
        }
        retired.await;
        flight.outcome.get().cloned()
    }

    fn flights(&self, key: &str) -> MutexGuard<'_, Flights<T>> {
        let stripe = crate::hash::stripe_of(key, STRIPES);
        // Nothing can be left half done under this lock: a caller that
        // panicked while holding it left the map as sound as before.
        self.stripes[stripe]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Retires a flight when its leader finishes or is dropped: no caller
/// joins it from then on, and those waiting on it wake.
struct Retire<'a, T: Clone> {
    single_flight: &'a SingleFlight<T>,
    key: &'a str,
    flight: Arc<Flight<T>>,
}

impl<T: Clone> Drop for Retire<'_, T> {
    fn drop(&mut self) {
        self.single_flight.flights(self.key).remove(self.key);
        self.flight.retired.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn callers_of_one_key_in_flight_together_share_one_run() {
        let single_flight = SingleFlight::<usize>::default();
        let runs = AtomicUsize::new(0);
        let release = Notify::new();
        let work = || async {
            let run = runs.fetch_add(1, Ordering::SeqCst) + 1;
            release.notified().await;
            run
        };
        let callers = futures::future::join_all((0..5).map(|_| single_flight.run("k", work)));
        let releaser = async {
            // Every caller has joined by the time this runs: each polled
            // once, the first leading, the rest waiting on its flight.
            tokio::task::yield_now().await;
            release.notify_one();
        };
        let (outcomes, ()) = tokio::time::timeout(Duration::from_secs(5), async {
            tokio::join!(callers, releaser)
        })
        .await
        .expect("every caller is woken when the flight retires");
        assert_eq!(outcomes, vec![1; 5]);
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn keys_fly_apart_and_a_finished_flight_is_not_reused() {
        let single_flight = SingleFlight::<String>::default();
        let runs = AtomicUsize::new(0);
        let release_a = Notify::new();
        let work = |outcome: &'static str| {
            let runs = &runs;
            move || async move {
                runs.fetch_add(1, Ordering::SeqCst);
                outcome.to_owned()
            }
        };
        let a = single_flight.run("a", || async {
            runs.fetch_add(1, Ordering::SeqCst);
            release_a.notified().await;
            "a".to_owned()
        });
        // A key that shares "a"'s stripe, asked for while "a" is in flight.
        let b_key = (0..)
            .map(|i| format!("b{i}"))
            .find(|key| {
                crate::hash::stripe_of(key, STRIPES) == crate::hash::stripe_of("a", STRIPES)
            })
            .expect("some key shares the stripe");
        let b = async {
            let b = single_flight.run(&b_key, work("b")).await;
            release_a.notify_one();
            b
        };
        let (a, b) = tokio::time::timeout(Duration::from_secs(5), async { tokio::join!(a, b) })
            .await
            .expect("neither key waits on the other");
        assert_eq!((a.as_str(), b.as_str()), ("a", "b"));
        assert_eq!(single_flight.run("a", work("again")).await, "again");
        assert_eq!(runs.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_caller_waiting_on_a_dropped_leader_runs_its_own_work() {
        let single_flight = Arc::new(SingleFlight::<&'static str>::default());
        let leader = tokio::spawn({
            let single_flight = single_flight.clone();
            async move {
                single_flight
                    .run("k", std::future::pending::<&'static str>)
                    .await
            }
        });
        let joiner = tokio::spawn({
            let single_flight = single_flight.clone();
            async move { single_flight.run("k", || async { "own" }).await }
        });
        // Held by the map, the leader and the joiner once both have run.
        tokio::time::timeout(Duration::from_secs(5), async {
            while single_flight.holders("k") < 3 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the second caller joins the first one's flight");
        leader.abort();
        let outcome = tokio::time::timeout(Duration::from_secs(5), joiner)
            .await
            .expect("the joiner is not left waiting")
            .unwrap();
        assert_eq!(outcome, "own");
        assert_eq!(single_flight.holders("k"), 0);
    }

    impl<T: Clone> SingleFlight<T> {
        /// Holders of the flight of `key` in flight, if any.
        fn holders(&self, key: &str) -> usize {
            self.flights(key).get(key).map_or(0, Arc::strong_count)
        }
    }
}
