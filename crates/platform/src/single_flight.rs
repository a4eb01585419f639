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
//! Work may hand back a tail with its outcome: more work that no caller
//! waits for, but that must finish before the key's next run may begin
//! (the API's L1 writes a loaded value to Redis in its tail, where the
//! next reader finds it). The callers take the outcome at once; the flight
//! stays up on a task of its own until the tail finishes, and callers
//! arriving meanwhile take the same outcome instead of running the work
//! again.
//!
//! A flight whose leader is dropped before it finishes (its request timed
//! out, its client went away) retires without an outcome: the callers
//! waiting on it wake, and one of them leads a new flight with its own work.

use std::collections::HashMap;
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use tokio::sync::Notify;

/// Lock stripes: callers of different keys rarely take the same lock.
const STRIPES: usize = 64;

type Flights<T> = HashMap<Box<str>, Arc<Flight<T>>>;

/// Work that finishes a flight after its callers have the outcome.
pub type Tail = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One run of a key's work, as its callers see it.
#[derive(Debug)]
struct Flight<T> {
    /// Set by the leader once the work has its outcome.
    outcome: OnceLock<T>,
    /// Woken when the outcome is set, or when the flight retires without
    /// one.
    settled: Notify,
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

impl<T: Clone + Send + Sync + 'static> SingleFlight<T> {
    /// The outcome of `work()` for `key`: of a run already in flight, joined,
    /// or else of a run of its own, which callers arriving meanwhile join.
    /// `work` is called only when this caller leads a run; the tail it
    /// hands back with its outcome, if any, runs on a task of its own, and
    /// the run is in flight until the tail finishes.
    pub async fn run<F>(self: &Arc<Self>, key: &str, work: impl FnOnce() -> F) -> T
    where
        F: Future<Output = (T, Option<Tail>)>,
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
            settled: Notify::new(),
        });
        flights.insert(key.into(), flight.clone());
        Boarded::Leading(flight)
    }

    async fn lead<F>(self: &Arc<Self>, key: &str, flight: Arc<Flight<T>>, work: F) -> T
    where
        F: Future<Output = (T, Option<Tail>)>,
    {
        let retire = Retire {
            single_flight: self,
            key,
            flight: &flight,
            armed: true,
        };
        let (outcome, tail) = work.await;
        retire.disarm();
        // Cannot be set already: only the leader sets it.
        let _ = flight.outcome.set(outcome.clone());
        match tail {
            None => self.retire(key, &flight),
            Some(tail) => {
                flight.settled.notify_waiters();
                let retire_after = RetireAfterTail {
                    single_flight: self.clone(),
                    key: key.into(),
                    flight,
                };
                tokio::spawn(async move {
                    tail.await;
                    drop(retire_after);
                });
            }
        }
        outcome
    }

    /// Waits for `flight` to settle; its outcome, or none if its leader was
    /// dropped.
    async fn join(flight: &Flight<T>) -> Option<T> {
        let mut settled = pin!(flight.settled.notified());
        // Registered before the outcome is checked, so that a flight
        // settling in between still wakes this caller.
        settled.as_mut().enable();
        if let Some(outcome) = flight.outcome.get() {
            return Some(outcome.clone());
        }
        settled.await;
        flight.outcome.get().cloned()
    }
}

impl<T> SingleFlight<T> {
    /// Takes `flight` off `key`: no caller joins it from then on, and those
    /// waiting on it wake.
    fn retire(&self, key: &str, flight: &Flight<T>) {
        self.flights(key).remove(key);
        flight.settled.notify_waiters();
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

/// Retires a flight when its leader is dropped before its work finishes.
struct Retire<'a, T> {
    single_flight: &'a SingleFlight<T>,
    key: &'a str,
    flight: &'a Flight<T>,
    /// Cleared by the leader once the work finished: it retires the
    /// flight itself, now or after the tail.
    armed: bool,
}

impl<T> Retire<'_, T> {
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl<T> Drop for Retire<'_, T> {
    fn drop(&mut self) {
        if self.armed {
            self.single_flight.retire(self.key, self.flight);
        }
    }
}

/// Retires a flight once its tail finishes, or when the tail's task is
/// dropped (the runtime shutting down) or panics.
struct RetireAfterTail<T> {
    single_flight: Arc<SingleFlight<T>>,
    key: Box<str>,
    flight: Arc<Flight<T>>,
}

impl<T> Drop for RetireAfterTail<T> {
    fn drop(&mut self) {
        self.single_flight.retire(&self.key, &self.flight);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn callers_of_one_key_in_flight_together_share_one_run() {
        let single_flight = Arc::new(SingleFlight::<usize>::default());
        let runs = AtomicUsize::new(0);
        let release = Notify::new();
        let work = || async {
            let run = runs.fetch_add(1, Ordering::SeqCst) + 1;
            release.notified().await;
            (run, None)
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
        let single_flight = Arc::new(SingleFlight::<String>::default());
        let runs = AtomicUsize::new(0);
        let release_a = Notify::new();
        let work = |outcome: &'static str| {
            let runs = &runs;
            move || async move {
                runs.fetch_add(1, Ordering::SeqCst);
                (outcome.to_owned(), None)
            }
        };
        let a = single_flight.run("a", || async {
            runs.fetch_add(1, Ordering::SeqCst);
            release_a.notified().await;
            ("a".to_owned(), None)
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
                    .run("k", std::future::pending::<(&'static str, Option<Tail>)>)
                    .await
            }
        });
        let joiner = tokio::spawn({
            let single_flight = single_flight.clone();
            async move { single_flight.run("k", || async { ("own", None) }).await }
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

    /// Work that counts its runs and hands back a tail that waits for
    /// `release`.
    fn work_with_tail(
        runs: &Arc<AtomicUsize>,
        release: &Arc<Notify>,
    ) -> impl FnOnce() -> std::future::Ready<(usize, Option<Tail>)> {
        let (runs, release) = (runs.clone(), release.clone());
        move || {
            let run = runs.fetch_add(1, Ordering::SeqCst) + 1;
            let tail: Tail = Box::pin(async move { release.notified().await });
            std::future::ready((run, Some(tail)))
        }
    }

    #[tokio::test]
    async fn callers_take_the_outcome_before_the_tail_and_share_it_until_the_tail_ends() {
        let single_flight = Arc::new(SingleFlight::<usize>::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let release = Arc::new(Notify::new());
        let leader = in_time(single_flight.run("k", work_with_tail(&runs, &release))).await;
        assert_eq!(leader, 1, "the leader does not wait for its tail");
        let later = in_time(single_flight.run("k", work_with_tail(&runs, &release))).await;
        assert_eq!(later, 1, "a caller during the tail takes its outcome");
        assert_eq!(runs.load(Ordering::SeqCst), 1);

        release.notify_one();
        in_time(async {
            while single_flight.holders("k") > 0 {
                tokio::task::yield_now().await;
            }
        })
        .await;
        let next = in_time(single_flight.run("k", || async { (7, None) })).await;
        assert_eq!(next, 7, "after the tail, a new run");
    }

    /// `call`'s outcome; the test fails if it takes more than 5 s.
    async fn in_time<F: Future>(call: F) -> F::Output {
        tokio::time::timeout(Duration::from_secs(5), call)
            .await
            .expect("finished within 5 s")
    }

    #[test]
    fn a_tail_dropped_with_its_runtime_retires_its_flight() {
        let single_flight = Arc::new(SingleFlight::<usize>::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let never = Arc::new(Notify::new());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let outcome = runtime.block_on(single_flight.run("k", work_with_tail(&runs, &never)));
        assert_eq!(outcome, 1);
        assert_eq!(
            single_flight.holders("k"),
            2,
            "up while its tail is pending"
        );
        drop(runtime);
        assert_eq!(single_flight.holders("k"), 0);
    }

    impl<T: Clone> SingleFlight<T> {
        /// Holders of the flight of `key` in flight, if any.
        fn holders(&self, key: &str) -> usize {
            self.flights(key).get(key).map_or(0, Arc::strong_count)
        }
    }
}
