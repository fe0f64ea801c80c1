//! The `zookeeper` backend: a [`Coordinator`] on real ZooKeeper (3.8, Debian's `zookeeper` package) through the
//! `zookeeper-client` crate. Compiled only outside the simulator: the crate does its own socket and timer I/O
//! (`async-io`), which madsim cannot drive (`reference/zookeeper-notes.md` §3).
//!
//! How the trait's semantics map onto the crate:
//! - The session is opened *detached*: dropping the last clone of a [`ZkCoordinator`] without
//!   [`Coordinator::close`] just stops the client, as a crash would. No CloseSession is sent, so the server expires
//!   the session after its timeout and deletes its ephemeral nodes then.
//! - [`Coordinator::close`] therefore cannot simply drop the client. It lets the detached client end, resumes the
//!   session on a short-lived attached client and drops that one, which sends CloseSession: the ephemeral nodes go
//!   at once.
//! - Each one-shot watch gets a small task that awaits the crate's watcher and forwards the event to the [`Watch`].
//!   A watch ended by the end of the session reports [`WatchKind::SessionEnded`]. If the [`Watch`] is dropped, the
//!   task drops the crate's watcher, which unregisters it.
//! - The crate's session states feed a broadcast, as in the model client: SyncConnected → Connected, Disconnected →
//!   Disconnected, Expired → Expired, Closed → Closed. The crate's own timers give the timing the model copies
//!   (Disconnected after 2/5 of the timeout without a byte, Expired locally after 7/5).
//! - Nodes are created with open ACLs (`world:anyone`, all permissions). Children are returned sorted. Sequential
//!   paths carry ZooKeeper's 10-digit suffix.
//!
//! Where real ZooKeeper (3.8.0) answers differently from the model, and callers must not care:
//! - A sequential suffix counts the *creations* under the parent (deletions do not advance it), so it can be below
//!   the parent's `cversion`, which counts both. Suffixes still increase.
//! - The stat in a multi's [`OpResult::Created`] is invalid: zxids and versions -1, the rest 0 (the server answers
//!   a create inside a multi without its stat, ZOOKEEPER-4026).
//! - ZooKeeper's errors carry no path and no actual version: [`CoordError::BadVersion`] has `actual: -1`.
//! - The root has a child `zookeeper` (the server's own subtree).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{broadcast, oneshot};
use zookeeper_client as zk;

use super::{
    ClientOptions, CoordError, Coordinator, CreateMode, Op, OpResult, SessionEvents, SessionState, Stat, Watch,
    WatchEvent, WatchKind,
};

/// A session with a ZooKeeper ensemble. Clones share the session; dropping the last clone without
/// [`Coordinator::close`] behaves as a crashed client (the server expires the session later).
#[derive(Clone)]
pub struct ZkCoordinator {
    inner: Arc<Inner>,
}

struct Inner {
    connect_string: String,
    /// Nodes get the creator-all ACL (the session authenticated, as OpenMLDB does with `--zk_cert`), else
    /// `world:anyone`.
    creator_acl: bool,
    session_id: i64,
    timeout: Duration,
    op_timeout: Duration,
    /// The detached client; `None` once [`Coordinator::close`] took it.
    client: Mutex<Option<zk::Client>>,
    /// Set by `close` so the local end of the detached client is not reported before the session really closed.
    closing: AtomicBool,
    state: Mutex<SessionState>,
    events: broadcast::Sender<SessionState>,
}

impl Inner {
    fn state(&self) -> SessionState {
        *self.state.lock().expect("state lock")
    }

    /// Moves to `to` unless the session already ended; announces real changes.
    fn transition(&self, to: SessionState) {
        let mut state = self.state.lock().expect("state lock");
        if *state == to || state.is_terminal() {
            return;
        }
        *state = to;
        drop(state);
        tracing::info!(session = format_args!("{:#x}", self.session_id), state = ?to, "zookeeper session state");
        let _ = self.events.send(to);
    }

    /// The client for one operation, or why there is none.
    fn client(&self) -> Result<zk::Client, CoordError> {
        match self.state() {
            SessionState::Expired => return Err(CoordError::SessionExpired),
            SessionState::Closed => return Err(CoordError::Closed),
            _ => {}
        }
        self.client.lock().expect("client lock").clone().ok_or(CoordError::Closed)
    }

    /// Awaits one operation within the operation deadline.
    async fn call<T>(&self, op: impl Future<Output = Result<T, zk::Error>>) -> Result<T, zk::Error> {
        match tokio::time::timeout(self.op_timeout, op).await {
            Ok(r) => r,
            Err(_) => Err(zk::Error::Timeout),
        }
    }

    /// Maps a crate error of an operation on `path` (with `version` expected, if any).
    fn map_err(&self, e: zk::Error, path: &str, version: Option<i32>) -> CoordError {
        let e = map_err(e, path, version);
        if e == CoordError::SessionExpired {
            self.transition(SessionState::Expired);
        }
        e
    }
}

impl ZkCoordinator {
    /// Opens a session with the ensemble in `connect_string` (`host:port[,host:port...][/chroot]`), retrying
    /// until about the session timeout passes. The server may clamp the timeout to its
    /// `[minSessionTimeout, maxSessionTimeout]` (by default 2 and 20 ticks); [`Coordinator::session_timeout`]
    /// tells the negotiated one.
    pub async fn connect(connect_string: &str, options: ClientOptions) -> Result<Self, CoordError> {
        let mut connector = zk::Client::connector();
        if let Some(auth) = &options.auth {
            connector = connector.with_auth(&auth.scheme, auth.cert.as_bytes());
        }
        let client = connector
            .with_session_timeout(options.session_timeout)
            .with_detached()
            .connect(connect_string)
            .await
            .map_err(|e| match e {
                zk::Error::Timeout | zk::Error::NoHosts => CoordError::ConnectionLoss(format!(
                    "no ZooKeeper session with {connect_string} within {:?}",
                    options.session_timeout
                )),
                zk::Error::AuthFailed => {
                    CoordError::AuthFailed(format!("ZooKeeper at {connect_string} refused the --zk_cert credentials"))
                }
                e => map_err(e, "", None),
            })?;
        let timeout = client.session_timeout();
        let session_id = client.session_id().0;
        let states = client.state_watcher();
        let initial = map_state(client.state());
        let (events, _) = broadcast::channel(64);
        let inner = Arc::new(Inner {
            connect_string: connect_string.to_string(),
            creator_acl: options.auth.is_some(),
            session_id,
            timeout,
            op_timeout: options.op_timeout.unwrap_or(timeout),
            client: Mutex::new(Some(client)),
            closing: AtomicBool::new(false),
            state: Mutex::new(initial),
            events,
        });
        tracing::info!(
            session = format_args!("{session_id:#x}"),
            timeout_ms = timeout.as_millis() as u64,
            connect_string,
            "zookeeper session connected"
        );
        tokio::spawn(forward_states(Arc::downgrade(&inner), states));
        Ok(Self { inner })
    }
}

/// Feeds the crate's session states into the coordinator's broadcast until the session ends or the coordinator
/// is gone.
async fn forward_states(inner: Weak<Inner>, mut states: zk::StateWatcher) {
    loop {
        let s = states.changed().await;
        let Some(inner) = inner.upgrade() else { return };
        if !inner.closing.load(Ordering::SeqCst) {
            inner.transition(map_state(s));
        }
        if s.is_terminated() {
            return;
        }
    }
}

/// Waits until a crate client's session state is terminal, at most `limit`.
async fn until_terminated(states: &mut zk::StateWatcher, limit: Duration) -> bool {
    let wait = async {
        while !states.peek_state().is_terminated() {
            states.changed().await;
        }
    };
    tokio::time::timeout(limit, wait).await.is_ok()
}

fn map_state(s: zk::SessionState) -> SessionState {
    match s {
        zk::SessionState::SyncConnected | zk::SessionState::ConnectedReadOnly => SessionState::Connected,
        zk::SessionState::Disconnected => SessionState::Disconnected,
        zk::SessionState::Expired => SessionState::Expired,
        // AuthFailed (terminal: the session's credentials were refused) and Closed.
        _ => SessionState::Closed,
    }
}

/// Maps a crate error of an operation on `path`. ZooKeeper's errors carry no path and no actual version: the path
/// is the operation's (for NoChildrenForEphemerals its parent, as the model names it), the actual version -1.
fn map_err(e: zk::Error, path: &str, version: Option<i32>) -> CoordError {
    match e {
        zk::Error::NoNode => CoordError::NoNode(path.to_string()),
        zk::Error::NodeExists => CoordError::NodeExists(path.to_string()),
        zk::Error::BadVersion => {
            CoordError::BadVersion { path: path.to_string(), expected: version.unwrap_or(-1), actual: -1 }
        }
        zk::Error::NotEmpty => CoordError::NotEmpty(path.to_string()),
        zk::Error::NoChildrenForEphemerals => {
            let parent = match path.rfind('/') {
                Some(0) | None => "/",
                Some(i) => &path[..i],
            };
            CoordError::NoChildrenForEphemerals(parent.to_string())
        }
        zk::Error::SessionExpired | zk::Error::SessionMoved => CoordError::SessionExpired,
        zk::Error::NoAuth => CoordError::NoAuth(path.to_string()),
        zk::Error::AuthFailed => CoordError::AuthFailed("ZooKeeper refused the session's credentials".into()),
        zk::Error::ClientClosed => CoordError::Closed,
        zk::Error::ConnectionLoss
        | zk::Error::Timeout
        | zk::Error::NoHosts
        | zk::Error::Throttled
        | zk::Error::UnmarshalError { .. }
        | zk::Error::Custom(_) => CoordError::ConnectionLoss(e.to_string()),
        zk::Error::BadArguments(why) if path.is_empty() => CoordError::BadArguments(why.to_string()),
        zk::Error::BadArguments(why) => CoordError::BadArguments(format!("{path:?}: {why}")),
        e if path.is_empty() => CoordError::BadArguments(e.to_string()),
        e => CoordError::BadArguments(format!("{path:?}: {e}")),
    }
}

fn zk_mode(mode: CreateMode, creator_acl: bool) -> zk::CreateOptions<'static> {
    let mode = match mode {
        CreateMode::Persistent => zk::CreateMode::Persistent,
        CreateMode::Ephemeral => zk::CreateMode::Ephemeral,
        CreateMode::PersistentSequential => zk::CreateMode::PersistentSequential,
        CreateMode::EphemeralSequential => zk::CreateMode::EphemeralSequential,
    };
    mode.with_acls(if creator_acl { zk::Acls::creator_all() } else { zk::Acls::anyone_all() })
}

fn stat(s: &zk::Stat) -> Stat {
    Stat {
        czxid: s.czxid,
        mzxid: s.mzxid,
        version: s.version,
        cversion: s.cversion,
        ephemeral_owner: s.ephemeral_owner,
        num_children: s.num_children,
        data_length: s.data_length,
    }
}

/// Turns the crate's one-shot watcher into a [`Watch`], through a task that forwards its one event.
fn forward_watch(path: &str, watcher: zk::OneshotWatcher) -> Watch {
    let (mut tx, rx) = oneshot::channel();
    let watched = path.to_string();
    tokio::spawn(async move {
        let ev = tokio::select! {
            biased;
            ev = watcher.changed() => ev,
            // The Watch was dropped: dropping the crate's watcher unregisters it.
            () = tx.closed() => return,
        };
        let kind = match ev.event_type {
            zk::EventType::NodeCreated => WatchKind::NodeCreated,
            zk::EventType::NodeDeleted => WatchKind::NodeDeleted,
            zk::EventType::NodeDataChanged => WatchKind::NodeDataChanged,
            zk::EventType::NodeChildrenChanged => WatchKind::NodeChildrenChanged,
            // One-shot watchers see only terminal session events: Expired or Closed.
            zk::EventType::Session => WatchKind::SessionEnded,
        };
        let path = if ev.path.is_empty() { watched } else { ev.path };
        let _ = tx.send(WatchEvent { kind, path });
    });
    Watch::new(path.to_string(), rx)
}

#[async_trait]
impl Coordinator for ZkCoordinator {
    async fn create(&self, path: &str, data: &[u8], mode: CreateMode) -> Result<String, CoordError> {
        let c = self.inner.client()?;
        let (_, seq) = self
            .inner
            .call(c.create(path, data, &zk_mode(mode, self.inner.creator_acl)))
            .await
            .map_err(|e| self.inner.map_err(e, path, None))?;
        Ok(if mode.is_sequential() { format!("{path}{seq}") } else { path.to_string() })
    }

    async fn get(&self, path: &str) -> Result<(Vec<u8>, Stat), CoordError> {
        let c = self.inner.client()?;
        let (data, s) = self.inner.call(c.get_data(path)).await.map_err(|e| self.inner.map_err(e, path, None))?;
        Ok((data, stat(&s)))
    }

    async fn get_watch(&self, path: &str) -> Result<(Vec<u8>, Stat, Watch), CoordError> {
        let c = self.inner.client()?;
        let (data, s, w) =
            self.inner.call(c.get_and_watch_data(path)).await.map_err(|e| self.inner.map_err(e, path, None))?;
        Ok((data, stat(&s), forward_watch(path, w)))
    }

    async fn exists(&self, path: &str) -> Result<Option<Stat>, CoordError> {
        let c = self.inner.client()?;
        let s = self.inner.call(c.check_stat(path)).await.map_err(|e| self.inner.map_err(e, path, None))?;
        Ok(s.as_ref().map(stat))
    }

    async fn exists_watch(&self, path: &str) -> Result<(Option<Stat>, Watch), CoordError> {
        let c = self.inner.client()?;
        let (s, w) =
            self.inner.call(c.check_and_watch_stat(path)).await.map_err(|e| self.inner.map_err(e, path, None))?;
        Ok((s.as_ref().map(stat), forward_watch(path, w)))
    }

    async fn children(&self, path: &str) -> Result<Vec<String>, CoordError> {
        let c = self.inner.client()?;
        let mut children =
            self.inner.call(c.list_children(path)).await.map_err(|e| self.inner.map_err(e, path, None))?;
        children.sort();
        Ok(children)
    }

    async fn children_watch(&self, path: &str) -> Result<(Vec<String>, Watch), CoordError> {
        let c = self.inner.client()?;
        let (mut children, w) =
            self.inner.call(c.list_and_watch_children(path)).await.map_err(|e| self.inner.map_err(e, path, None))?;
        children.sort();
        Ok((children, forward_watch(path, w)))
    }

    async fn set(&self, path: &str, data: &[u8], version: Option<i32>) -> Result<Stat, CoordError> {
        let c = self.inner.client()?;
        let s =
            self.inner.call(c.set_data(path, data, version)).await.map_err(|e| self.inner.map_err(e, path, version))?;
        Ok(stat(&s))
    }

    async fn delete(&self, path: &str, version: Option<i32>) -> Result<(), CoordError> {
        let c = self.inner.client()?;
        self.inner.call(c.delete(path, version)).await.map_err(|e| self.inner.map_err(e, path, version))
    }

    async fn multi(&self, ops: Vec<Op>) -> Result<Vec<OpResult>, CoordError> {
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        let c = self.inner.client()?;
        let target = |op: &Op| -> (String, Option<i32>) {
            match op {
                Op::Create { path, .. } => (path.clone(), None),
                Op::Set { path, version, .. } | Op::Delete { path, version } => (path.clone(), *version),
                Op::Check { path, version } => (path.clone(), Some(*version)),
            }
        };
        let fail = |index: usize, e: zk::Error| {
            let (path, version) = target(&ops[index]);
            CoordError::Multi { index, source: Box::new(self.inner.map_err(e, &path, version)) }
        };
        let mut w = c.new_multi_writer();
        for (i, op) in ops.iter().enumerate() {
            match op {
                Op::Create { path, data, mode } => w.add_create(path, data, &zk_mode(*mode, self.inner.creator_acl)),
                Op::Set { path, data, version } => w.add_set_data(path, data, *version),
                Op::Delete { path, version } => w.add_delete(path, *version),
                Op::Check { path, version } => w.add_check_version(path, *version),
            }
            .map_err(|e| fail(i, e))?;
        }
        let commit = w.commit();
        let results = match tokio::time::timeout(self.inner.op_timeout, commit).await {
            Err(_) => return Err(self.inner.map_err(zk::Error::Timeout, "", None)),
            Ok(Err(zk::MultiWriteError::OperationFailed { index, source })) => return Err(fail(index, source)),
            Ok(Err(zk::MultiWriteError::RequestFailed { source })) => return Err(self.inner.map_err(source, "", None)),
            Ok(Ok(results)) => results,
        };
        if results.len() != ops.len() {
            return Err(CoordError::ConnectionLoss(format!(
                "multi answered {} results for {} ops",
                results.len(),
                ops.len()
            )));
        }
        results
            .into_iter()
            .map(|r| match r {
                zk::MultiWriteResult::Create { path, stat: s } => Ok(OpResult::Created { path, stat: stat(&s) }),
                zk::MultiWriteResult::SetData { stat: s } => Ok(OpResult::Set { stat: stat(&s) }),
                zk::MultiWriteResult::Delete => Ok(OpResult::Deleted),
                zk::MultiWriteResult::Check => Ok(OpResult::Checked),
                other => Err(CoordError::ConnectionLoss(format!("unexpected multi result {other:?}"))),
            })
            .collect()
    }

    /// Closes the session for real: its ephemeral nodes go at once. Takes a few milliseconds more than a plain
    /// CloseSession, because the detached client cannot send one (see the module docs).
    async fn close(&self) {
        let inner = &self.inner;
        if inner.state().is_terminal() {
            return;
        }
        let Some(client) = inner.client.lock().expect("client lock").take() else { return };
        inner.closing.store(true, Ordering::SeqCst);
        let session = client.session().clone();
        // 1. The detached client ends (without CloseSession) once no operation in flight holds a clone of it.
        let mut states = client.state_watcher();
        drop(client);
        if !until_terminated(&mut states, inner.op_timeout).await {
            tracing::warn!(session = format_args!("{:#x}", inner.session_id), "zookeeper client did not stop in time");
        }
        // 2. An attached client resumes the session; dropping it sends CloseSession and waits for the answer.
        // (Resuming while the old connection still lived would make the server drop that one, and the old client
        // would reconnect and take the session back: hence step 1 first.)
        let resume = zk::Client::connector()
            .with_session(session)
            .with_session_timeout(inner.timeout)
            .connect(&inner.connect_string);
        match tokio::time::timeout(inner.op_timeout, resume).await {
            Ok(Ok(closer)) => {
                let mut states = closer.state_watcher();
                drop(closer);
                until_terminated(&mut states, inner.op_timeout).await;
            }
            // Already gone: nothing is left to close.
            Ok(Err(zk::Error::SessionExpired)) => {}
            Ok(Err(e)) => {
                tracing::warn!(session = format_args!("{:#x}", inner.session_id), error = %e, "zookeeper close failed");
            }
            Err(_) => {
                tracing::warn!(session = format_args!("{:#x}", inner.session_id), "zookeeper close timed out");
            }
        }
        inner.transition(SessionState::Closed);
    }

    fn session_id(&self) -> i64 {
        self.inner.session_id
    }
    fn session_timeout(&self) -> Duration {
        self.inner.timeout
    }
    fn state(&self) -> SessionState {
        self.inner.state()
    }
    fn session_events(&self) -> SessionEvents {
        SessionEvents::new(self.inner.events.subscribe())
    }
}
