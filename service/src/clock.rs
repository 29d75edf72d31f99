//! The time Raft runs on. A node of its own process runs on real time. The nodes of a lab run on
//! one shared [`Clock`] that the lab can slow down (every timer, heartbeat, lease and RPC deadline
//! of openraft stretched alike, so slow motion stays correct Raft), freeze (a pause: no timer
//! fires, no lease ages, no vote request expires while a learner steps messages by hand) and move
//! forward by hand (a "time out" while frozen).
//!
//! openraft asks for the time through its runtime (`raft::runtime`), which has no `self`: the
//! clock is found in a tokio task-local that the runtime carries into every task openraft
//! spawns. Code outside such a task (HTTP handlers, our own timers) runs on real time.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

tokio::task_local! {
    static CURRENT: Arc<Clock>;
}

/// How fast a lab clock runs, from an anchor on: `at` on this clock was `real` in real time.
#[derive(Clone, Copy, Debug)]
struct Rate {
    real: Instant,
    at: Instant,
    /// Real seconds per clock second (1 = real time); meaningless while frozen.
    slowdown: f64,
    frozen: bool,
}

impl Rate {
    fn now(&self) -> Instant {
        if self.frozen {
            return self.at;
        }
        self.at + self.real.elapsed().div_f64(self.slowdown)
    }
}

/// A frozen clock still lets a task sleep this long or less, without moving: openraft batches
/// storage completions with a 1 µs sleep (`io_completion_forwarder`), and a follower frozen in it
/// never answered an AppendEntries a learner delivered by hand. No Raft timer is this short.
const MICRO_SLEEP: Duration = Duration::from_millis(1);

/// The slowest a lab clock may run: 50 real seconds per clock second.
pub const MAX_SLOWDOWN: f64 = 50.0;

/// A clock that can be slowed, frozen and advanced; shared by the nodes of one lab.
#[derive(Debug)]
pub struct Clock {
    rate: watch::Sender<Rate>,
}

impl Default for Clock {
    fn default() -> Self {
        let now = Instant::now();
        Clock {
            rate: watch::channel(Rate {
                real: now,
                at: now,
                slowdown: 1.0,
                frozen: false,
            })
            .0,
        }
    }
}

impl Clock {
    pub fn now(&self) -> Instant {
        self.rate.borrow().now()
    }

    /// Re-anchors at the current instant and applies `change`; every sleeper re-plans.
    fn change(&self, change: impl FnOnce(&mut Rate)) {
        self.rate.send_modify(|rate| {
            let now = rate.now();
            *rate = Rate {
                real: Instant::now(),
                at: now,
                ..*rate
            };
            change(rate);
        });
    }

    /// Stops (or restarts) time: nothing that waits on this clock wakes while it is frozen.
    pub fn freeze(&self, frozen: bool) {
        self.change(|rate| rate.frozen = frozen);
    }

    pub fn is_frozen(&self) -> bool {
        self.rate.borrow().frozen
    }

    /// Runs this clock `slowdown` times slower than real time (1 to [`MAX_SLOWDOWN`]).
    pub fn set_slowdown(&self, slowdown: f64) -> Result<(), String> {
        if !(1.0..=MAX_SLOWDOWN).contains(&slowdown) {
            return Err(format!(
                "a slowdown of {slowdown} is out of range: 1 (real time) to {MAX_SLOWDOWN}"
            ));
        }
        self.change(|rate| rate.slowdown = slowdown);
        Ok(())
    }

    pub fn slowdown(&self) -> f64 {
        self.rate.borrow().slowdown
    }

    /// Moves the clock forward by `by` at once: whatever was due by then fires.
    pub fn advance(&self, by: Duration) {
        self.change(|rate| rate.at += by);
    }

    /// How long a transport deadline of `ttl` on this clock lasts in real time. While frozen a
    /// message is only ever moving because a learner delivered it by hand: it gets at least
    /// `FROZEN_FLOOR`, so a slow fsync never turns one step into a failure.
    pub fn real_deadline(&self, ttl: Duration) -> Duration {
        const FROZEN_FLOOR: Duration = Duration::from_secs(5);
        let rate = *self.rate.borrow();
        if rate.frozen {
            ttl.max(FROZEN_FLOOR)
        } else {
            ttl.mul_f64(rate.slowdown)
        }
    }

    /// Waits until this clock reads `deadline` or later.
    pub async fn sleep_until(self: Arc<Self>, deadline: Instant) {
        let mut rate = self.rate.subscribe();
        loop {
            let now = *rate.borrow_and_update();
            let left = deadline.saturating_duration_since(now.now());
            if left.is_zero() {
                return;
            }
            if now.frozen && left <= MICRO_SLEEP {
                return;
            }
            if now.frozen {
                // The sender lives in `self`, so `changed` cannot fail while we hold it.
                let _ = rate.changed().await;
                continue;
            }
            tokio::select! {
                _ = tokio::time::sleep(left.mul_f64(now.slowdown)) => {}
                _ = rate.changed() => {}
            }
        }
    }

    /// Runs `future` with this clock as the current one (and every task openraft spawns from it).
    pub fn scope<F: Future>(
        self: &Arc<Self>,
        future: F,
    ) -> impl Future<Output = F::Output> + use<F> {
        CURRENT.scope(self.clone(), future)
    }
}

/// The current task's clock, if it runs on one.
pub fn current() -> Option<Arc<Clock>> {
    CURRENT.try_with(Arc::clone).ok()
}

/// The time on `clock`, or real time without one.
pub fn now_on(clock: Option<&Clock>) -> Instant {
    clock.map_or_else(Instant::now, Clock::now)
}

/// Waits until `clock` reads `deadline`, or until real time does without one.
pub async fn sleep_until_on(clock: Option<Arc<Clock>>, deadline: Instant) {
    match clock {
        Some(clock) => clock.sleep_until(deadline).await,
        None => tokio::time::sleep_until(deadline).await,
    }
}

/// The time on the current task's clock, or real time.
pub fn now() -> Instant {
    CURRENT
        .try_with(|clock| clock.now())
        .unwrap_or_else(|_| Instant::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_frozen_clock_stands_still_and_wakes_no_sleeper_until_it_runs_or_advances() {
        let clock = Arc::new(Clock::default());
        clock.freeze(true);
        let t0 = clock.now();
        let sleeper = tokio::spawn(clock.clone().sleep_until(t0 + Duration::from_millis(30)));
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert_eq!(clock.now(), t0, "frozen time does not move");
        assert!(!sleeper.is_finished(), "nothing wakes while frozen");
        let micro = clock.clone().sleep_until(t0 + Duration::from_micros(1));
        tokio::time::timeout(Duration::from_secs(5), micro)
            .await
            .expect("a micro-sleep passes even while frozen");
        assert_eq!(clock.now(), t0, "and does not move the clock");
        clock.advance(Duration::from_millis(30));
        tokio::time::timeout(Duration::from_secs(5), sleeper)
            .await
            .expect("an advance past the deadline wakes the sleeper")
            .unwrap();
        assert_eq!(clock.now(), t0 + Duration::from_millis(30));
    }

    #[tokio::test]
    async fn a_slowed_clock_runs_slower_and_its_sleepers_take_longer() {
        let clock = Arc::new(Clock::default());
        assert!(clock.set_slowdown(0.5).is_err() && clock.set_slowdown(51.0).is_err());
        clock.set_slowdown(10.0).unwrap();
        let (real, on_clock) = (Instant::now(), clock.now());
        clock
            .clone()
            .sleep_until(on_clock + Duration::from_millis(10))
            .await;
        assert!(real.elapsed() >= Duration::from_millis(100), "10 ms ×10");
        assert!(clock.now() - on_clock >= Duration::from_millis(10));
        assert_eq!(
            clock.real_deadline(Duration::from_millis(10)),
            Duration::from_millis(100)
        );
    }

    #[tokio::test]
    async fn the_current_clock_is_the_scoped_one_and_real_time_elsewhere() {
        let clock = Arc::new(Clock::default());
        clock.freeze(true);
        let frozen_at = clock.now();
        tokio::time::sleep(Duration::from_millis(5)).await;
        let seen = clock.scope(async { now() }).await;
        assert_eq!(seen, frozen_at);
        assert!(now() > frozen_at, "outside a scope: real time");
        assert!(current().is_none());
    }
}
