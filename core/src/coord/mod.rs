//! Coordination with ZooKeeper semantics: sessions, ephemeral and sequential nodes, versioned writes, one-shot
//! watches, atomic multi, and a stream of session states.
//!
//! - [`Coordinator`] is what every server and tool programs against.
//! - [`tree`] is the sans-IO heart of our own server: the node tree, sessions, watches and expiry as a plain
//!   state machine over explicit time, unit-tested directly.
//! - [`server`] serves a [`tree::Tree`] over the framed RPC ([`serve`]); [`client`] is its
//!   [`Coordinator`] ([`ModelCoordinator`]). Together they are the `model` backend: the coordination node of the
//!   simulator and `openmldb --role=coord` in production.
//! - [`connect`] turns a `--zk_cluster` value into a session: `host:port[,...]` is ZooKeeper, as in OpenMLDB;
//!   `model://host:port` is our server. Every role and tool connects through it.
//! - [`chroot`]: a session seen from under a node, as a connect string's `/path` suffix asks (both backends).
//! - [`layout`] names every node OpenMLDB keeps under `zk_root_path`.
//! - [`renew`]: [`Renewing`], a session renewed after it expired, for clients that own no ephemeral node.
//! - `zk` (outside the simulator only) is the `zookeeper` backend: [`Coordinator`] on real ZooKeeper.
//!
//! Timing follows measured ZooKeeper behaviour (`reference/zookeeper-notes.md`): the server expires a silent
//! session at its timeout rounded up to the next tick; a client declares itself Disconnected after 2/3 of the
//! timeout without contact (ZooKeeper's read timeout; contact is the send of the latest answered request, see
//! [`client`]) and Expired after 7/5; a client that reconnects in time keeps its session. The real client crate
//! behind `zk` uses its own timers (measured: Disconnected at about 2/5 without a byte).

pub mod chroot;
pub mod client;
pub mod connect;
pub mod layout;
pub mod renew;
pub mod server;
pub mod store;
pub mod tree;
// Not while rustdoc collects doctests either: the simulator build's doctest pass parses this crate without
// `--cfg madsim` but against the simulator's dependencies, which lack `zookeeper-client`.
#[cfg(not(any(madsim, doctest)))]
pub mod zk;

use std::time::Duration;

use async_trait::async_trait;

pub use client::{ClientOptions, Credentials, ModelCoordinator};
pub use connect::connect;
pub use layout::Layout;
pub use renew::Renewing;
pub use server::{CoordServerConfig, serve};
#[cfg(not(any(madsim, doctest)))]
pub use zk::ZkCoordinator;

/// Node metadata, as ZooKeeper's `Stat`.
pub use crate::proto::coord::Stat;

/// How a node is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CreateMode {
    Persistent,
    /// Deleted when the creating session ends (closed or expired).
    Ephemeral,
    /// The name gets a 10-digit, per-parent increasing suffix.
    PersistentSequential,
    EphemeralSequential,
}

impl CreateMode {
    pub fn is_ephemeral(self) -> bool {
        matches!(self, CreateMode::Ephemeral | CreateMode::EphemeralSequential)
    }
    pub fn is_sequential(self) -> bool {
        matches!(self, CreateMode::PersistentSequential | CreateMode::EphemeralSequential)
    }
    fn to_proto(self) -> i32 {
        use crate::proto::coord::CreateMode as P;
        (match self {
            CreateMode::Persistent => P::Persistent,
            CreateMode::Ephemeral => P::Ephemeral,
            CreateMode::PersistentSequential => P::PersistentSequential,
            CreateMode::EphemeralSequential => P::EphemeralSequential,
        }) as i32
    }
    fn from_proto(v: i32) -> Result<Self, CoordError> {
        use crate::proto::coord::CreateMode as P;
        match P::try_from(v) {
            Ok(P::Persistent) => Ok(CreateMode::Persistent),
            Ok(P::Ephemeral) => Ok(CreateMode::Ephemeral),
            Ok(P::PersistentSequential) => Ok(CreateMode::PersistentSequential),
            Ok(P::EphemeralSequential) => Ok(CreateMode::EphemeralSequential),
            Err(_) => Err(CoordError::BadArguments(format!("unknown create mode {v}"))),
        }
    }
}

/// The state of a client's session, as its session-state stream reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionState {
    /// Answers arrive; the session is alive.
    Connected,
    /// No contact for 2/3 of the timeout (model) or about 2/5 (the real client crate), or the connection broke.
    /// The session may still be alive on the server; a leader must stop
    /// acting as leader now, because the server may expire it before the client can tell.
    Disconnected,
    /// The session is gone (the server said so, or 7/5 of the timeout passed without contact). Terminal: its
    /// ephemeral nodes are deleted and a new client must be made.
    Expired,
    /// Closed by its owner. Terminal.
    Closed,
}

impl SessionState {
    pub fn is_terminal(self) -> bool {
        matches!(self, SessionState::Expired | SessionState::Closed)
    }
}

/// What a fired watch reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WatchKind {
    NodeCreated,
    NodeDeleted,
    NodeDataChanged,
    NodeChildrenChanged,
    /// The session ended before the watch fired; it never will.
    SessionEnded,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchEvent {
    pub kind: WatchKind,
    pub path: String,
}

/// A one-shot watch: resolves once, with the first change of what it watches.
#[derive(Debug)]
pub struct Watch {
    path: String,
    rx: tokio::sync::oneshot::Receiver<WatchEvent>,
    /// The chroot the event's path is reported under (empty: none; see [`chroot`]).
    root: String,
}

impl Watch {
    pub(crate) fn new(path: String, rx: tokio::sync::oneshot::Receiver<WatchEvent>) -> Self {
        Self { path, rx, root: String::new() }
    }
    /// The same watch, its paths seen from under `root` (of the paths it reports now).
    pub(crate) fn under(self, root: &str) -> Self {
        let path = chroot::strip(root, &self.path);
        Self { path, rx: self.rx, root: format!("{}{root}", self.root) }
    }
    pub fn path(&self) -> &str {
        &self.path
    }
    /// Waits for the event. A watch whose session ended reports [`WatchKind::SessionEnded`].
    pub async fn changed(self) -> WatchEvent {
        let Watch { path, rx, root } = self;
        match rx.await {
            Ok(e) if !root.is_empty() => WatchEvent { kind: e.kind, path: chroot::strip(&root, &e.path) },
            Ok(e) => e,
            Err(_) => WatchEvent { kind: WatchKind::SessionEnded, path },
        }
    }
}

/// One operation of an atomic [`Coordinator::multi`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Create {
        path: String,
        data: Vec<u8>,
        mode: CreateMode,
    },
    /// `version: None` matches any version.
    Set {
        path: String,
        data: Vec<u8>,
        version: Option<i32>,
    },
    Delete {
        path: String,
        version: Option<i32>,
    },
    /// Fails the multi unless the node exists with this version.
    Check {
        path: String,
        version: i32,
    },
}

/// The result of one op of a successful multi.
#[derive(Debug, Clone, PartialEq)]
pub enum OpResult {
    Created { path: String, stat: Stat },
    Set { stat: Stat },
    Deleted,
    Checked,
}

/// Errors of coordination calls, named as ZooKeeper names them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoordError {
    #[error("no node {0}")]
    NoNode(String),
    #[error("node {0} already exists")]
    NodeExists(String),
    #[error("bad version for {path}: expected {expected}, node has {actual}")]
    BadVersion { path: String, expected: i32, actual: i32 },
    #[error("node {0} has children")]
    NotEmpty(String),
    #[error("ephemeral node {0} cannot have children")]
    NoChildrenForEphemerals(String),
    #[error("bad arguments: {0}")]
    BadArguments(String),
    #[error("session expired")]
    SessionExpired,
    #[error("session closed")]
    Closed,
    /// No answer from the server; the operation may or may not have been applied.
    #[error("connection loss: {0}")]
    ConnectionLoss(String),
    #[error("multi op {index} failed: {source}")]
    Multi { index: usize, source: Box<CoordError> },
    /// The node's access list does not admit this session (ZooKeeper's NOAUTH): another user's cluster, or a
    /// client started without that cluster's `--zk_cert`.
    #[error("not authorized for {0} (the node belongs to another --zk_cert user)")]
    NoAuth(String),
    /// The server refused the session's credentials (ZooKeeper's AUTHFAILED): a wrong `--zk_cert`, or a request
    /// naming a session whose secret it does not carry.
    #[error("authentication failed: {0}")]
    AuthFailed(String),
}

impl CoordError {
    /// Wire code of this error in [`crate::rpc::Status`]; coordination codes live in 200..300.
    pub fn code(&self) -> i32 {
        match self {
            CoordError::NoNode(_) => 201,
            CoordError::NodeExists(_) => 202,
            CoordError::BadVersion { .. } => 203,
            CoordError::NotEmpty(_) => 204,
            CoordError::NoChildrenForEphemerals(_) => 205,
            CoordError::BadArguments(_) => 206,
            CoordError::SessionExpired => 207,
            CoordError::Closed => 208,
            CoordError::ConnectionLoss(_) => 209,
            CoordError::Multi { .. } => 210,
            CoordError::NoAuth(_) => 211,
            CoordError::AuthFailed(_) => 212,
        }
    }

    /// Rebuilds an error from its wire form. `BadVersion` loses its numbers' structure only in the message.
    pub fn from_wire(code: i32, message: &str) -> Self {
        let path = || message.split_whitespace().find(|w| w.starts_with('/')).unwrap_or("").trim_end_matches(':');
        match code {
            201 => CoordError::NoNode(path().to_string()),
            202 => CoordError::NodeExists(path().to_string()),
            203 => CoordError::BadVersion { path: path().to_string(), expected: -1, actual: -1 },
            204 => CoordError::NotEmpty(path().to_string()),
            205 => CoordError::NoChildrenForEphemerals(path().to_string()),
            207 => CoordError::SessionExpired,
            208 => CoordError::Closed,
            209 => CoordError::ConnectionLoss(message.to_string()),
            211 => CoordError::NoAuth(path().to_string()),
            212 => CoordError::AuthFailed(message.trim_start_matches("authentication failed: ").to_string()),
            _ => CoordError::BadArguments(message.to_string()),
        }
    }

    /// True for version conflicts, whatever detail survived the wire.
    pub fn is_bad_version(&self) -> bool {
        matches!(self, CoordError::BadVersion { .. })
    }
}

impl From<CoordError> for crate::rpc::Status {
    fn from(e: CoordError) -> Self {
        crate::rpc::Status::new(e.code(), e.to_string())
    }
}

/// A coordination session. Every method but the last three talks to the service.
///
/// Implemented by [`ModelCoordinator`] (our server) and, outside the simulator, by the ZooKeeper backend.
#[async_trait]
pub trait Coordinator: Send + Sync {
    /// Creates a node and returns its path (with the suffix, for sequential nodes).
    async fn create(&self, path: &str, data: &[u8], mode: CreateMode) -> Result<String, CoordError>;
    async fn get(&self, path: &str) -> Result<(Vec<u8>, Stat), CoordError>;
    /// Reads a node and watches its next change (data change or deletion).
    async fn get_watch(&self, path: &str) -> Result<(Vec<u8>, Stat, Watch), CoordError>;
    async fn exists(&self, path: &str) -> Result<Option<Stat>, CoordError>;
    /// Like [`Coordinator::exists`], and watches creation, change or deletion (also of an absent node).
    async fn exists_watch(&self, path: &str) -> Result<(Option<Stat>, Watch), CoordError>;
    /// Child names, sorted.
    async fn children(&self, path: &str) -> Result<Vec<String>, CoordError>;
    /// Child names, sorted, and a watch on the next change of the set of children.
    async fn children_watch(&self, path: &str) -> Result<(Vec<String>, Watch), CoordError>;
    /// Sets the data if the version matches (`None`: any version) and returns the new stat.
    async fn set(&self, path: &str, data: &[u8], version: Option<i32>) -> Result<Stat, CoordError>;
    async fn delete(&self, path: &str, version: Option<i32>) -> Result<(), CoordError>;
    /// Applies every op or none; on failure the error is [`CoordError::Multi`] with the failing op's index.
    async fn multi(&self, ops: Vec<Op>) -> Result<Vec<OpResult>, CoordError>;
    /// Ends the session now: its ephemeral nodes go at once.
    async fn close(&self);

    fn session_id(&self) -> i64;
    /// The negotiated session timeout.
    fn session_timeout(&self) -> Duration;
    fn state(&self) -> SessionState;
    /// A stream of the session's state changes from now on.
    fn session_events(&self) -> SessionEvents;
}

/// Creates `path` and any missing ancestors as persistent nodes with empty data (like `mkdir -p`).
pub async fn create_all<C: Coordinator + ?Sized>(coord: &C, path: &str) -> Result<(), CoordError> {
    let mut prefix = String::new();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        prefix.push('/');
        prefix.push_str(part);
        match coord.create(&prefix, b"", CreateMode::Persistent).await {
            Ok(_) | Err(CoordError::NodeExists(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Receives session state changes. Lagging far behind skips to the newest states rather than blocking the client.
pub struct SessionEvents {
    rx: tokio::sync::broadcast::Receiver<SessionState>,
}

impl SessionEvents {
    pub(crate) fn new(rx: tokio::sync::broadcast::Receiver<SessionState>) -> Self {
        Self { rx }
    }
    /// The next state change; `None` once the client is gone.
    pub async fn next(&mut self) -> Option<SessionState> {
        loop {
            match self.rx.recv().await {
                Ok(s) => return Some(s),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}
