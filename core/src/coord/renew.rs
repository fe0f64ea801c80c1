//! A session that is renewed: a [`Coordinator`] that opens a new session when its current one has ended.
//!
//! A session is not forever (DESIGN 4.2): a pause of the coordination server or a cut longer than the timeout
//! expires it, and every call on it fails from then on. A client that owns no ephemeral node (a routing client
//! reading metadata, a REPL, the simulator's observers) loses nothing with its session but the session itself,
//! so for it "Expired" means "open a new session and read the state again". [`Renewing`] does exactly that, at
//! the next call after the end: the call runs on a fresh session, and a watch of the old session reports
//! [`WatchKind::SessionEnded`](super::WatchKind::SessionEnded), so a follower of a node reads it again.
//!
//! Servers that own ephemeral nodes (a tablet's registration, a nameserver's election node) must not use it: a new
//! session there means registering again, which is theirs to decide.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use super::{CoordError, Coordinator, CreateMode, Op, OpResult, SessionEvents, SessionState, Stat, Watch};

/// Opens a session; [`Renewing`] calls it once at the start and once after every end of a session.
pub type Connect =
    Box<dyn Fn() -> Pin<Box<dyn Future<Output = Result<Arc<dyn Coordinator>, CoordError>> + Send>> + Send + Sync>;

/// A coordinator that renews its session after Expired (see the module doc).
pub struct Renewing {
    current: Mutex<Arc<dyn Coordinator>>,
    /// One renewal at a time: calls that find the session ended wait for the same new one.
    renewing: tokio::sync::Mutex<()>,
    connect: Connect,
    renewals: AtomicU64,
}

impl Renewing {
    /// Opens the first session with `connect`.
    pub async fn open(connect: Connect) -> Result<Renewing, CoordError> {
        let first = connect().await?;
        Ok(Renewing {
            current: Mutex::new(first),
            renewing: tokio::sync::Mutex::new(()),
            connect,
            renewals: AtomicU64::new(0),
        })
    }

    /// How many times a new session was opened after the first.
    pub fn renewals(&self) -> u64 {
        self.renewals.load(Ordering::SeqCst)
    }

    fn now(&self) -> Arc<dyn Coordinator> {
        self.current.lock().expect("session lock").clone()
    }

    /// The current session, after opening a new one if it has ended.
    async fn session(&self) -> Result<Arc<dyn Coordinator>, CoordError> {
        // Only an expiry ends a session against its owner's will; a closed one stays closed.
        let s = self.now();
        if s.state() != SessionState::Expired {
            return Ok(s);
        }
        let _one = self.renewing.lock().await;
        let s = self.now();
        if s.state() != SessionState::Expired {
            return Ok(s);
        }
        let old = s.session_id();
        let fresh = (self.connect)().await?;
        tracing::info!(old, new = fresh.session_id(), "coordination session ended; a new one is open");
        *self.current.lock().expect("session lock") = fresh.clone();
        self.renewals.fetch_add(1, Ordering::SeqCst);
        Ok(fresh)
    }

    /// Runs `op` on the current session; if the session ended under it, once more on a new one.
    async fn call<T, F, Fut>(&self, op: F) -> Result<T, CoordError>
    where
        F: Fn(Arc<dyn Coordinator>) -> Fut,
        Fut: Future<Output = Result<T, CoordError>>,
    {
        let s = self.session().await?;
        match op(s.clone()).await {
            Err(CoordError::SessionExpired) if s.state() == SessionState::Expired => op(self.session().await?).await,
            other => other,
        }
    }
}

#[async_trait]
impl Coordinator for Renewing {
    async fn create(&self, path: &str, data: &[u8], mode: CreateMode) -> Result<String, CoordError> {
        self.call(|s| async move { s.create(path, data, mode).await }).await
    }
    async fn get(&self, path: &str) -> Result<(Vec<u8>, Stat), CoordError> {
        self.call(|s| async move { s.get(path).await }).await
    }
    async fn get_watch(&self, path: &str) -> Result<(Vec<u8>, Stat, Watch), CoordError> {
        self.call(|s| async move { s.get_watch(path).await }).await
    }
    async fn exists(&self, path: &str) -> Result<Option<Stat>, CoordError> {
        self.call(|s| async move { s.exists(path).await }).await
    }
    async fn exists_watch(&self, path: &str) -> Result<(Option<Stat>, Watch), CoordError> {
        self.call(|s| async move { s.exists_watch(path).await }).await
    }
    async fn children(&self, path: &str) -> Result<Vec<String>, CoordError> {
        self.call(|s| async move { s.children(path).await }).await
    }
    async fn children_watch(&self, path: &str) -> Result<(Vec<String>, Watch), CoordError> {
        self.call(|s| async move { s.children_watch(path).await }).await
    }
    async fn set(&self, path: &str, data: &[u8], version: Option<i32>) -> Result<Stat, CoordError> {
        self.call(|s| async move { s.set(path, data, version).await }).await
    }
    async fn delete(&self, path: &str, version: Option<i32>) -> Result<(), CoordError> {
        self.call(|s| async move { s.delete(path, version).await }).await
    }
    async fn multi(&self, ops: Vec<Op>) -> Result<Vec<OpResult>, CoordError> {
        self.call(|s| {
            let ops = ops.clone();
            async move { s.multi(ops).await }
        })
        .await
    }
    async fn close(&self) {
        self.now().close().await
    }
    fn session_id(&self) -> i64 {
        self.now().session_id()
    }
    fn session_timeout(&self) -> Duration {
        self.now().session_timeout()
    }
    /// The current session's state, except that an ended one reads as Disconnected: the next call opens a new
    /// session, so for its users the service is only out of reach for now.
    fn state(&self) -> SessionState {
        match self.now().state() {
            SessionState::Expired => SessionState::Disconnected,
            s => s,
        }
    }
    /// The current session's stream (a renewal starts a new stream; read [`Renewing::state`] after an end).
    fn session_events(&self) -> SessionEvents {
        self.now().session_events()
    }
}
