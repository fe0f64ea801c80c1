//! Deterministic wake-ups for the simulator.
//!
//! tokio's `watch` channel parks waiters in one of eight shards chosen at random, and an unbiased `select!` polls
//! its branches in random order; both draw from a per-thread generator seeded from a process-wide counter, so one
//! seed replayed twice in the same process could wake tasks in a different order. [`Signal`] is the `watch`
//! this code base needs, built on `Notify`, whose waiters form a queue; every `select!` here is `biased`.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

/// A shared counter that tasks wait on; every change wakes every waiter, in the order they began waiting.
#[derive(Debug, Default)]
pub struct Signal {
    value: Mutex<u64>,
    notify: Notify,
    closed: AtomicBool,
}

/// The signal was closed: whatever it tracked is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("signal closed")]
pub struct Closed;

impl Signal {
    pub fn new(value: u64) -> Self {
        Self { value: Mutex::new(value), notify: Notify::new(), closed: AtomicBool::new(false) }
    }

    pub fn get(&self) -> u64 {
        *self.value.lock().expect("signal lock")
    }

    /// Sets the value and wakes every waiter.
    pub fn set(&self, value: u64) {
        *self.value.lock().expect("signal lock") = value;
        self.notify.notify_waiters();
    }

    /// Raises the value to `value` if that is higher; wakes the waiters only then.
    pub fn raise(&self, value: u64) -> bool {
        let mut v = self.value.lock().expect("signal lock");
        if value <= *v {
            return false;
        }
        *v = value;
        drop(v);
        self.notify.notify_waiters();
        true
    }

    /// Adds one and wakes every waiter.
    pub fn bump(&self) {
        *self.value.lock().expect("signal lock") += 1;
        self.notify.notify_waiters();
    }

    /// Wakes every waiter for good: their waits return [`Closed`].
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    /// Waits until `pred` holds for the value, and returns that value.
    pub async fn wait_until(&self, pred: impl Fn(u64) -> bool) -> Result<u64, Closed> {
        loop {
            // Register before looking, so a change between the look and the wait is not missed.
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.closed.load(Ordering::SeqCst) {
                return Err(Closed);
            }
            let v = self.get();
            if pred(v) {
                return Ok(v);
            }
            notified.await;
        }
    }

    /// Waits until the value differs from `seen`.
    pub async fn changed(&self, seen: u64) -> Result<u64, Closed> {
        self.wait_until(|v| v != seen).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn waiters_see_changes_and_closing() {
        let s = Arc::new(Signal::new(0));
        let waiter = {
            let s = s.clone();
            tokio::spawn(async move { s.wait_until(|v| v >= 3).await })
        };
        tokio::time::sleep(Duration::from_millis(5)).await;
        s.set(1);
        assert!(s.raise(3));
        assert!(!s.raise(2));
        assert_eq!(waiter.await.unwrap(), Ok(3));
        assert_eq!(s.changed(0).await, Ok(3), "an already different value returns at once");
        let waiter = {
            let s = s.clone();
            tokio::spawn(async move { s.changed(3).await })
        };
        tokio::time::sleep(Duration::from_millis(5)).await;
        s.close();
        assert_eq!(waiter.await.unwrap(), Err(Closed));
    }
}
