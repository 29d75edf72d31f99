//! openraft's async runtime for raftkv: tokio, with openraft's time (every `now`, sleep and
//! timeout: election timers, heartbeats, leader leases, vote-request deadlines, back-offs) read
//! from the task's [`crate::clock`] when it runs on one, real time otherwise. Tasks openraft
//! spawns inherit the clock of the task that spawned them, so a lab's nodes all run on the lab's
//! clock while a node of its own process never notices.

use std::fmt;
use std::future::Future;
use std::ops::{Add, AddAssign, Sub, SubAssign};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use openraft::{AsyncRuntime, OptionalSend, TokioRuntime};

use crate::clock;

type Tokio = TokioRuntime;

/// tokio, on the task's clock.
#[derive(Debug)]
pub struct ClockRuntime(Tokio);

/// An instant on the task's clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ClockInstant(tokio::time::Instant);

impl Add<Duration> for ClockInstant {
    type Output = Self;
    fn add(self, d: Duration) -> Self {
        ClockInstant(self.0 + d)
    }
}

impl AddAssign<Duration> for ClockInstant {
    fn add_assign(&mut self, d: Duration) {
        self.0 += d;
    }
}

impl Sub<Duration> for ClockInstant {
    type Output = Self;
    fn sub(self, d: Duration) -> Self {
        ClockInstant(self.0 - d)
    }
}

impl SubAssign<Duration> for ClockInstant {
    fn sub_assign(&mut self, d: Duration) {
        self.0 -= d;
    }
}

impl Sub for ClockInstant {
    type Output = Duration;
    fn sub(self, earlier: Self) -> Duration {
        self.0.saturating_duration_since(earlier.0)
    }
}

impl ClockInstant {
    /// The same instant as tokio's (on the clock it was read from).
    pub fn tokio(self) -> tokio::time::Instant {
        self.0
    }
}

impl openraft::Instant for ClockInstant {
    fn now() -> Self {
        ClockInstant(clock::now())
    }
}

/// A sleep on the task's clock.
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A deadline on the task's clock passed first.
#[derive(Debug)]
pub struct Elapsed;

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline has elapsed")
    }
}

pin_project_lite::pin_project! {
    /// `future`, unless `sleep` ends first.
    pub struct Timeout<F> {
        #[pin]
        future: F,
        sleep: Sleep,
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(out) = this.future.poll(cx) {
            return Poll::Ready(Ok(out));
        }
        this.sleep.as_mut().poll(cx).map(|()| Err(Elapsed))
    }
}

impl AsyncRuntime for ClockRuntime {
    type JoinError = <Tokio as AsyncRuntime>::JoinError;
    type JoinHandle<T: OptionalSend + 'static> = <Tokio as AsyncRuntime>::JoinHandle<T>;
    type Sleep = Sleep;
    type Instant = ClockInstant;
    type TimeoutError = Elapsed;
    type Timeout<R, T: Future<Output = R> + OptionalSend> = Timeout<T>;
    type ThreadLocalRng = <Tokio as AsyncRuntime>::ThreadLocalRng;
    type Mpsc = <Tokio as AsyncRuntime>::Mpsc;
    type Watch = <Tokio as AsyncRuntime>::Watch;
    type Oneshot = <Tokio as AsyncRuntime>::Oneshot;
    type Mutex<T: OptionalSend + 'static> = <Tokio as AsyncRuntime>::Mutex<T>;

    fn spawn<T>(future: T) -> Self::JoinHandle<T::Output>
    where
        T: Future + OptionalSend + 'static,
        T::Output: OptionalSend + 'static,
    {
        // The spawned task runs on the spawner's clock (RaftCore, replication, the state
        // machine worker, the tick task are all spawned while the node creates its Raft, in the
        // clock's scope).
        match clock::current() {
            Some(clock) => tokio::spawn(clock.scope(future)),
            None => tokio::spawn(future),
        }
    }

    fn sleep(duration: Duration) -> Sleep {
        Self::sleep_until(<ClockInstant as openraft::Instant>::now() + duration)
    }

    fn sleep_until(deadline: ClockInstant) -> Sleep {
        Box::pin(clock::sleep_until_on(clock::current(), deadline.0))
    }

    fn timeout<R, F: Future<Output = R> + OptionalSend>(
        duration: Duration,
        future: F,
    ) -> Timeout<F> {
        Timeout {
            future,
            sleep: Self::sleep(duration),
        }
    }

    fn timeout_at<R, F: Future<Output = R> + OptionalSend>(
        deadline: ClockInstant,
        future: F,
    ) -> Timeout<F> {
        Timeout {
            future,
            sleep: Self::sleep_until(deadline),
        }
    }

    fn is_panic(join_error: &Self::JoinError) -> bool {
        Tokio::is_panic(join_error)
    }

    fn thread_rng() -> Self::ThreadLocalRng {
        Tokio::thread_rng()
    }

    fn new(threads: usize) -> Self {
        ClockRuntime(Tokio::new(threads))
    }

    fn block_on<F, T>(&mut self, future: F) -> T
    where
        F: Future<Output = T>,
    {
        self.0.block_on(future)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::Clock;

    #[tokio::test]
    async fn openraft_timeouts_do_not_run_while_the_lab_clock_is_frozen() {
        let clock = Arc::new(Clock::default());
        clock.freeze(true);
        let pending = std::future::pending::<()>();
        // The task is spawned inside the scope (and so runs on the lab's clock); it is handed out
        // in a Vec so that the async block does not yield a bare future.
        let spawned = clock.scope(async {
            vec![ClockRuntime::spawn(ClockRuntime::timeout(
                Duration::from_millis(10),
                pending,
            ))]
        });
        let task = spawned.await.pop().unwrap();
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(!task.is_finished(), "a frozen clock never times out");
        clock.advance(Duration::from_millis(10));
        let out = tokio::time::timeout(Duration::from_secs(5), task).await;
        assert!(matches!(out, Ok(Ok(Err(Elapsed)))), "advancing fires it");
        let real = ClockRuntime::timeout(Duration::from_millis(1), std::future::pending::<()>());
        assert!(real.await.is_err(), "outside the lab: real time");
    }
}
