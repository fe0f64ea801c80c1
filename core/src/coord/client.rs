//! The `model` backend's client: a [`Coordinator`] over the framed RPC to our coordination server.
//!
//! A session task polls the server. The poll is the heartbeat (the server counts every request as one) and the
//! channel for watch events (acknowledged by the next poll, so none is lost across a reconnect). The same task
//! keeps the client's view of the session, as a ZooKeeper client does: Disconnected when the connection breaks or
//! after 2/3 of the timeout without contact (it then drops the connection and reconnects), back to Connected on
//! the next answer, Expired when the server says so or after 7/5 of the timeout without contact.
//!
//! *Contact* is the instant the latest answered request was **sent**, not the instant its answer arrived: the
//! server heard the session no earlier than that, so it cannot expire the session before contact plus the
//! timeout, and a client that calls itself Disconnected at 2/3 of the timeout after contact has stopped acting
//! as a session holder a third of the timeout before the server can give its nodes away. Measured from the
//! answer instead (as this client once did), a slow network shortened that margin by the round trip, which is
//! why the threshold had been cut to 2/5; and with polls held for a third of the timeout, 2/5 left the round
//! trip a fifteenth of it: at 1.6 s, latencies of 100 ms disconnected every session of a cluster in turn.
//! The poll is held for at most a sixth of the timeout, so a round trip of up to a sixth keeps the session
//! Connected without a pause between polls.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{broadcast, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::server::{self as srv, op_to_proto};
use super::{
    CoordError, Coordinator, CreateMode, Op, OpResult, SessionEvents, SessionState, Stat, Watch, WatchEvent, WatchKind,
};
use crate::proto::coord as pb;
use crate::rpc::{ClientConfig, Method, RpcClient, RpcError};

/// How a client connects.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Requested session timeout (the server may clamp it).
    pub session_timeout: Duration,
    /// Deadline of each operation; `None` means the session timeout.
    pub op_timeout: Option<Duration>,
    /// Credentials the session authenticates with (OpenMLDB's `--zk_auth_schema` and `--zk_cert`); a session
    /// with credentials creates its nodes readable and writable only by the same credentials.
    pub auth: Option<Credentials>,
}

impl ClientOptions {
    pub fn new(session_timeout: Duration) -> Self {
        Self { session_timeout, op_timeout: None, auth: None }
    }

    /// The same options, authenticating with `auth`.
    pub fn with_auth(self, auth: Option<Credentials>) -> Self {
        Self { auth, ..self }
    }
}

/// A ZooKeeper credential: a scheme (only `digest` is supported, as in OpenMLDB) and its text (`user:password`).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub scheme: String,
    pub cert: String,
}

impl std::fmt::Debug for Credentials {
    /// Never prints the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let user = self.cert.split(':').next().unwrap_or("");
        write!(f, "Credentials({}:{user}:***)", self.scheme)
    }
}

impl Credentials {
    /// Reads OpenMLDB's pair of flags: no `--zk_cert` is no credentials (the scheme defaults to `digest`, as in
    /// OpenMLDB); `digest` with `user:password` is one; anything else is an error that says what to write.
    pub fn from_flags(scheme: &str, cert: &str) -> Result<Option<Credentials>, CoordError> {
        match (scheme.trim(), cert) {
            ("" | "digest", "") => Ok(None),
            ("", _) => Err(CoordError::BadArguments("--zk_cert needs --zk_auth_schema=digest".into())),
            ("digest", c) if c.split_once(':').is_some_and(|(u, _)| !u.is_empty()) => {
                Ok(Some(Credentials { scheme: "digest".into(), cert: c.to_string() }))
            }
            ("digest", _) => Err(CoordError::BadArguments("--zk_cert is user:password for the digest scheme".into())),
            (other, _) => Err(CoordError::BadArguments(format!(
                "--zk_auth_schema={other:?}: only \"digest\" is supported, as in OpenMLDB"
            ))),
        }
    }
}

/// A session with a `model` coordination server. Clones share the session; dropping the last clone stops
/// heartbeating without closing (as a crash would: the server expires the session later). Call
/// [`Coordinator::close`] for a clean goodbye.
#[derive(Clone)]
pub struct ModelCoordinator {
    shared: Arc<Shared>,
    _task: Arc<AbortOnDrop>,
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct Shared {
    rpc: RpcClient,
    session_id: i64,
    /// The session's password from the server; every request carries it.
    secret: bytes::Bytes,
    timeout: Duration,
    op_timeout: Duration,
    state: Mutex<SessionState>,
    events: broadcast::Sender<SessionState>,
    watches: Mutex<BTreeMap<u64, Registered>>,
    next_watch: AtomicU64,
    /// The server's incarnation as last seen: a new one means it restarted and holds none of our watches.
    incarnation: AtomicU64,
    /// When the latest answered request was sent (see the module docs: the server heard the session no earlier).
    contact: Mutex<Instant>,
}

/// Which read registered a watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WatchOn {
    Data,
    Exists,
    Children,
}

/// A watch the server holds for us: what registered it and the node's stat then (`None`: it did not exist), so
/// that after a restart of the server it can be registered again and fired if the node changed meanwhile, as
/// ZooKeeper's client does with SetWatches.
struct Registered {
    tx: oneshot::Sender<WatchEvent>,
    path: String,
    on: WatchOn,
    seen: Option<Stat>,
}

/// The event a watch registered with `seen` gets when the node is now `now`, or `None` if nothing it watches
/// changed.
fn missed_event(on: WatchOn, seen: Option<&Stat>, now: Option<&Stat>) -> Option<WatchKind> {
    match (seen, now) {
        (None, None) => None,
        (None, Some(_)) => Some(WatchKind::NodeCreated),
        (Some(_), None) => Some(WatchKind::NodeDeleted),
        (Some(a), Some(b)) if a.czxid != b.czxid => Some(match on {
            WatchOn::Children => WatchKind::NodeChildrenChanged,
            WatchOn::Data | WatchOn::Exists => WatchKind::NodeDataChanged,
        }),
        (Some(a), Some(b)) => match on {
            WatchOn::Children => (a.cversion != b.cversion).then_some(WatchKind::NodeChildrenChanged),
            WatchOn::Data | WatchOn::Exists => {
                (a.version != b.version || a.mzxid != b.mzxid).then_some(WatchKind::NodeDataChanged)
            }
        },
    }
}

/// Without contact for this long the session is Disconnected (ZooKeeper's read timeout).
fn disconnect_after(timeout: Duration) -> Duration {
    timeout * 2 / 3
}

/// Without contact for this long the client takes the session for expired and stops using it.
fn expire_after(timeout: Duration) -> Duration {
    timeout * 7 / 5
}

/// How long the server may hold a poll without events: the poll, held, plus its round trip must fit twice in
/// [`disconnect_after`] (the next poll leaves only when the previous answers).
fn poll_hold(timeout: Duration) -> Duration {
    timeout / 6
}

impl Shared {
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
        tracing::info!(session = self.session_id, state = ?to, "coordination session state");
        let _ = self.events.send(to);
        if to.is_terminal() {
            let watches = std::mem::take(&mut *self.watches.lock().expect("watch lock"));
            for (_, w) in watches {
                let _ = w.tx.send(WatchEvent { kind: WatchKind::SessionEnded, path: String::new() });
            }
        }
    }

    /// An answer came to a request sent at `sent`.
    fn heard(&self, sent: Instant) {
        {
            let mut contact = self.contact.lock().expect("clock lock");
            *contact = (*contact).max(sent);
        }
        if self.state() == SessionState::Disconnected {
            self.transition(SessionState::Connected);
        }
    }

    fn since_contact(&self) -> Duration {
        self.contact.lock().expect("clock lock").elapsed()
    }

    fn map_err(&self, e: RpcError) -> CoordError {
        match e {
            RpcError::Status(s) => {
                let e = CoordError::from_wire(s.code, &s.message);
                if e == CoordError::SessionExpired {
                    self.transition(SessionState::Expired);
                }
                e
            }
            other => CoordError::ConnectionLoss(other.to_string()),
        }
    }

    /// One request on behalf of the session.
    async fn request<M: Method>(&self, method: M, req: M::Req) -> Result<M::Resp, CoordError> {
        match self.state() {
            SessionState::Expired => return Err(CoordError::SessionExpired),
            SessionState::Closed => return Err(CoordError::Closed),
            _ => {}
        }
        let sent = Instant::now();
        match self.rpc.call_timeout(method, req, self.op_timeout).await {
            Ok(resp) => {
                self.heard(sent);
                Ok(resp)
            }
            Err(e) => {
                if e.status().is_some() {
                    self.heard(sent);
                }
                Err(self.map_err(e))
            }
        }
    }

    fn new_watch(&self, path: &str, on: WatchOn) -> (u64, Watch) {
        let id = self.next_watch.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.watches.lock().expect("watch lock").insert(id, Registered { tx, path: path.to_string(), on, seen: None });
        (id, Watch::new(path.to_string(), rx))
    }

    /// Records the stat the registering read saw.
    fn watch_saw(&self, id: u64, seen: Option<Stat>) {
        if let Some(w) = self.watches.lock().expect("watch lock").get_mut(&id) {
            w.seen = seen;
        }
    }

    /// Fires watch `id` with `kind`, if it is still pending.
    fn fire(&self, id: u64, kind: WatchKind, path: String) {
        let w = self.watches.lock().expect("watch lock").remove(&id);
        if let Some(w) = w {
            let _ = w.tx.send(WatchEvent { kind, path });
        }
    }

    /// After a restart of the server: every pending watch is registered again under its id, and fired at once
    /// if its node changed while the server was down (the restarted server cannot know what we saw).
    async fn rewatch(&self) {
        let pending: Vec<(u64, String, WatchOn, Option<Stat>)> = self
            .watches
            .lock()
            .expect("watch lock")
            .iter()
            .map(|(id, w)| (*id, w.path.clone(), w.on, w.seen))
            .collect();
        let sid = self.session_id;
        for (id, path, on, seen) in pending {
            let now = match on {
                WatchOn::Data => {
                    let req = pb::GetRequest {
                        session_id: sid,
                        secret: self.secret.clone(),
                        path: path.clone(),
                        watch_id: id,
                    };
                    match self.request(srv::Get, req).await {
                        Ok(r) => Ok(Some(stat(r.stat))),
                        Err(CoordError::NoNode(_)) => Ok(None),
                        Err(e) => Err(e),
                    }
                }
                WatchOn::Exists => {
                    let req = pb::ExistsRequest {
                        session_id: sid,
                        secret: self.secret.clone(),
                        path: path.clone(),
                        watch_id: id,
                    };
                    self.request(srv::Exists, req).await.map(|r| r.exists.then(|| stat(r.stat)))
                }
                WatchOn::Children => {
                    let req = pb::ChildrenRequest {
                        session_id: sid,
                        secret: self.secret.clone(),
                        path: path.clone(),
                        watch_id: id,
                    };
                    match self.request(srv::Children, req).await {
                        Ok(r) => Ok(Some(stat(r.stat))),
                        Err(CoordError::NoNode(_)) => Ok(None),
                        Err(e) => Err(e),
                    }
                }
            };
            match now {
                Ok(now) => {
                    if let Some(kind) = missed_event(on, seen.as_ref(), now.as_ref()) {
                        self.fire(id, kind, path);
                    }
                }
                // Unknown whether it changed: firing is the safe side (every user reads the node again).
                Err(e) => {
                    tracing::debug!(session = sid, path, error = %e, "cannot register a watch again; firing it");
                    let kind = if on == WatchOn::Children {
                        WatchKind::NodeChildrenChanged
                    } else {
                        WatchKind::NodeDataChanged
                    };
                    self.fire(id, kind, path);
                }
            }
        }
    }

    fn drop_watch(&self, id: u64) {
        self.watches.lock().expect("watch lock").remove(&id);
    }
}

impl ModelCoordinator {
    /// Opens a session with the server at `addr`, retrying until the session timeout passes.
    pub async fn connect(addr: &str, options: ClientOptions) -> Result<Self, CoordError> {
        let addr = addr.strip_prefix(super::connect::MODEL_SCHEME).unwrap_or(addr);
        let rpc = RpcClient::new(
            addr,
            ClientConfig {
                timeout: options.session_timeout,
                connect_timeout: options.session_timeout / 4,
                // Reconnect fast: a session survives only if the server hears from it within its timeout.
                min_backoff: Duration::from_millis(10),
                max_backoff: options.session_timeout / 10,
                ..Default::default()
            },
        );
        let deadline = Instant::now() + options.session_timeout;
        #[cfg(not(any(madsim, doctest)))]
        let mut asked_zookeeper = false;
        let (resp, sent) = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(CoordError::ConnectionLoss(format!("no coordination server answered at {addr}")));
            }
            let req = pb::ConnectRequest {
                session_id: 0,
                timeout_ms: millis(options.session_timeout),
                auth_scheme: options.auth.as_ref().map(|a| a.scheme.clone()).unwrap_or_default(),
                auth: options.auth.as_ref().map(|a| bytes::Bytes::from(a.cert.clone())).unwrap_or_default(),
                secret: bytes::Bytes::new(),
            };
            let sent = Instant::now();
            match rpc.call_timeout(srv::Connect, req, left).await {
                Ok(resp) => break (resp, sent),
                Err(RpcError::Status(s)) => return Err(CoordError::from_wire(s.code, &s.message)),
                Err(e) => {
                    tracing::debug!(addr, error = %e, "coordination connect attempt failed");
                    // Something that accepted the connection but did not answer may be ZooKeeper: say so at once.
                    #[cfg(not(any(madsim, doctest)))]
                    if !asked_zookeeper && !matches!(e, RpcError::Unavailable { .. }) {
                        asked_zookeeper = true;
                        if super::connect::probe::zookeeper_answers(addr).await {
                            return Err(CoordError::BadArguments(format!(
                                "{addr} is a ZooKeeper server, not this project's model coordinator: write \
                                 --zk_cluster={addr} (without {})",
                                super::connect::MODEL_SCHEME
                            )));
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(50).min(left)).await;
                }
            }
        };
        let timeout = Duration::from_millis(resp.timeout_ms.into());
        let (events, _) = broadcast::channel(64);
        let shared = Arc::new(Shared {
            rpc,
            session_id: resp.session_id,
            secret: resp.secret,
            timeout,
            op_timeout: options.op_timeout.unwrap_or(timeout),
            state: Mutex::new(SessionState::Connected),
            events,
            watches: Mutex::new(BTreeMap::new()),
            next_watch: AtomicU64::new(1),
            incarnation: AtomicU64::new(resp.incarnation),
            contact: Mutex::new(sent),
        });
        tracing::info!(session = resp.session_id, timeout_ms = resp.timeout_ms, addr, "coordination session connected");
        let task = tokio::spawn(session_loop(shared.clone()));
        Ok(Self { shared, _task: Arc::new(AbortOnDrop(task)) })
    }
}

/// Heartbeats, delivers watch events and tracks the session state until it ends.
async fn session_loop(shared: Arc<Shared>) {
    let t = shared.timeout;
    let hold = poll_hold(t);
    let disconnect_after = disconnect_after(t);
    let expire_after = expire_after(t);
    let mut ack = 0u64;
    let mut backoff = Duration::from_millis(10);
    loop {
        if shared.state().is_terminal() {
            return;
        }
        let silent = shared.since_contact();
        if silent >= expire_after {
            shared.transition(SessionState::Expired);
            // Detached: the owner drops this client once it sees Expired, which ends this task.
            tokio::spawn(end_given_up_session(shared.clone()));
            return;
        }
        if silent >= disconnect_after && shared.state() == SessionState::Connected {
            disconnected(&shared).await;
        }
        // Never wait past the next state threshold without re-evaluating.
        let next_threshold = if silent < disconnect_after { disconnect_after } else { expire_after };
        let budget = (next_threshold - silent).max(Duration::from_millis(1));
        let req = pb::PollRequest {
            session_id: shared.session_id,
            secret: shared.secret.clone(),
            ack_seq: ack,
            max_wait_ms: millis(hold),
        };
        let sent = Instant::now();
        match shared.rpc.call_timeout(srv::Poll, req, budget).await {
            Ok(resp) => {
                shared.heard(sent);
                backoff = Duration::from_millis(10);
                let restarted = resp.incarnation != shared.incarnation.swap(resp.incarnation, Ordering::SeqCst);
                if restarted {
                    // The restarted server numbers this session's events from 1 again and holds no watch of ours.
                    tracing::info!(session = shared.session_id, "coordination server restarted; the session goes on");
                    ack = 0;
                }
                for ev in resp.events {
                    ack = ack.max(ev.seq);
                    shared.fire(ev.watch_id, watch_kind_from_proto(ev.kind), ev.path);
                }
                if restarted {
                    shared.rewatch().await;
                }
            }
            Err(RpcError::Status(s)) => {
                let e = CoordError::from_wire(s.code, &s.message);
                if e == CoordError::SessionExpired {
                    shared.transition(SessionState::Expired);
                    return;
                }
                tracing::warn!(session = shared.session_id, error = %e, "poll refused");
                tokio::time::sleep(backoff.min(budget)).await;
                backoff = (backoff * 2).min(hold);
            }
            Err(e) => {
                // As a ZooKeeper client: a lost connection is reported at once, not only after 2/3 of the timeout.
                tracing::debug!(session = shared.session_id, error = %e, "poll failed");
                disconnected(&shared).await;
                tokio::time::sleep(backoff.min(budget)).await;
                backoff = (backoff * 2).min(hold);
            }
        }
    }
}

/// How long a client that gave up its session keeps trying to end it at the server (see
/// [`end_given_up_session`]); a server down for longer than this restores it, and it lingers one timeout.
const GIVE_UP_CLOSE_LIMIT: Duration = Duration::from_secs(600);

/// Ends at the server a session this client gave up without word from it (silent for [`expire_after`]).
///
/// A server that was down all that time restores the session when it starts again, with a whole timeout, as
/// ZooKeeper does (DESIGN 4.2): its ephemeral nodes would stand for one more timeout although their owner has
/// moved to a new session, and a tablet could not register again nor a standby nameserver take the lock until
/// then. So the client closes the session itself as soon as the server answers, with the session's secret (the
/// server takes a Close from nobody else). The server answering that it no longer knows the session ends the task
/// too; so does [`GIVE_UP_CLOSE_LIMIT`].
async fn end_given_up_session(shared: Arc<Shared>) {
    let start = Instant::now();
    let interval = poll_hold(shared.timeout).max(Duration::from_millis(10));
    let mut wait = Duration::from_millis(10);
    while start.elapsed() < GIVE_UP_CLOSE_LIMIT {
        let req = pb::CloseRequest { session_id: shared.session_id, secret: shared.secret.clone() };
        match shared.rpc.call_timeout(srv::Close, req, shared.op_timeout).await {
            Ok(_) => {
                tracing::info!(session = shared.session_id, "a session given up is closed at the server");
                return;
            }
            Err(RpcError::Status(_)) => return,
            Err(_) => {
                shared.rpc.reset().await;
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(interval);
            }
        }
    }
}

/// Reports the session Disconnected and drops the connection: it may be half-dead (a partition keeps sockets
/// open, and a stalled stream can take long to resume), so the next request connects afresh.
async fn disconnected(shared: &Shared) {
    if shared.state() == SessionState::Connected {
        shared.transition(SessionState::Disconnected);
    }
    shared.rpc.reset().await;
}

fn watch_kind_from_proto(v: i32) -> WatchKind {
    match pb::WatchEventKind::try_from(v) {
        Ok(pb::WatchEventKind::NodeCreated) => WatchKind::NodeCreated,
        Ok(pb::WatchEventKind::NodeDeleted) => WatchKind::NodeDeleted,
        Ok(pb::WatchEventKind::NodeDataChanged) => WatchKind::NodeDataChanged,
        Ok(pb::WatchEventKind::NodeChildrenChanged) | Err(_) => WatchKind::NodeChildrenChanged,
    }
}

fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

fn stat(s: Option<Stat>) -> Stat {
    s.unwrap_or_default()
}

#[async_trait]
impl Coordinator for ModelCoordinator {
    async fn create(&self, path: &str, data: &[u8], mode: CreateMode) -> Result<String, CoordError> {
        let op = pb::CreateOp { path: path.to_string(), data: data.to_vec().into(), mode: mode.to_proto() };
        let req =
            pb::CreateRequest { session_id: self.shared.session_id, secret: self.shared.secret.clone(), op: Some(op) };
        Ok(self.shared.request(srv::Create, req).await?.path)
    }

    async fn get(&self, path: &str) -> Result<(Vec<u8>, Stat), CoordError> {
        let req = pb::GetRequest {
            session_id: self.shared.session_id,
            secret: self.shared.secret.clone(),
            path: path.to_string(),
            watch_id: 0,
        };
        let r = self.shared.request(srv::Get, req).await?;
        Ok((r.data.to_vec(), stat(r.stat)))
    }

    async fn get_watch(&self, path: &str) -> Result<(Vec<u8>, Stat, Watch), CoordError> {
        let (id, watch) = self.shared.new_watch(path, WatchOn::Data);
        let req = pb::GetRequest {
            session_id: self.shared.session_id,
            secret: self.shared.secret.clone(),
            path: path.to_string(),
            watch_id: id,
        };
        match self.shared.request(srv::Get, req).await {
            Ok(r) => {
                self.shared.watch_saw(id, Some(stat(r.stat)));
                Ok((r.data.to_vec(), stat(r.stat), watch))
            }
            Err(e) => {
                self.shared.drop_watch(id);
                Err(e)
            }
        }
    }

    async fn exists(&self, path: &str) -> Result<Option<Stat>, CoordError> {
        let req = pb::ExistsRequest {
            session_id: self.shared.session_id,
            secret: self.shared.secret.clone(),
            path: path.to_string(),
            watch_id: 0,
        };
        let r = self.shared.request(srv::Exists, req).await?;
        Ok(if r.exists { Some(stat(r.stat)) } else { None })
    }

    async fn exists_watch(&self, path: &str) -> Result<(Option<Stat>, Watch), CoordError> {
        let (id, watch) = self.shared.new_watch(path, WatchOn::Exists);
        let req = pb::ExistsRequest {
            session_id: self.shared.session_id,
            secret: self.shared.secret.clone(),
            path: path.to_string(),
            watch_id: id,
        };
        match self.shared.request(srv::Exists, req).await {
            Ok(r) => {
                let seen = if r.exists { Some(stat(r.stat)) } else { None };
                self.shared.watch_saw(id, seen);
                Ok((seen, watch))
            }
            Err(e) => {
                self.shared.drop_watch(id);
                Err(e)
            }
        }
    }

    async fn children(&self, path: &str) -> Result<Vec<String>, CoordError> {
        let req = pb::ChildrenRequest {
            session_id: self.shared.session_id,
            secret: self.shared.secret.clone(),
            path: path.to_string(),
            watch_id: 0,
        };
        Ok(self.shared.request(srv::Children, req).await?.children)
    }

    async fn children_watch(&self, path: &str) -> Result<(Vec<String>, Watch), CoordError> {
        let (id, watch) = self.shared.new_watch(path, WatchOn::Children);
        let req = pb::ChildrenRequest {
            session_id: self.shared.session_id,
            secret: self.shared.secret.clone(),
            path: path.to_string(),
            watch_id: id,
        };
        match self.shared.request(srv::Children, req).await {
            Ok(r) => {
                self.shared.watch_saw(id, Some(stat(r.stat)));
                Ok((r.children, watch))
            }
            Err(e) => {
                self.shared.drop_watch(id);
                Err(e)
            }
        }
    }

    async fn set(&self, path: &str, data: &[u8], version: Option<i32>) -> Result<Stat, CoordError> {
        let op = pb::SetOp { path: path.to_string(), data: data.to_vec().into(), version: version.unwrap_or(-1) };
        let req =
            pb::SetRequest { session_id: self.shared.session_id, secret: self.shared.secret.clone(), op: Some(op) };
        Ok(stat(self.shared.request(srv::Set, req).await?.stat))
    }

    async fn delete(&self, path: &str, version: Option<i32>) -> Result<(), CoordError> {
        let op = pb::DeleteOp { path: path.to_string(), version: version.unwrap_or(-1) };
        let req =
            pb::DeleteRequest { session_id: self.shared.session_id, secret: self.shared.secret.clone(), op: Some(op) };
        self.shared.request(srv::Delete, req).await.map(|_| ())
    }

    async fn multi(&self, ops: Vec<Op>) -> Result<Vec<OpResult>, CoordError> {
        let kinds: Vec<Op> = ops.clone();
        let req = pb::MultiRequest {
            session_id: self.shared.session_id,
            secret: self.shared.secret.clone(),
            ops: ops.into_iter().map(op_to_proto).collect(),
        };
        let r = self.shared.request(srv::Multi, req).await?;
        if r.failed {
            let source = CoordError::from_wire(r.error_code, &r.error_message);
            return Err(CoordError::Multi { index: r.failed_index as usize, source: Box::new(source) });
        }
        if r.results.len() != kinds.len() {
            return Err(CoordError::ConnectionLoss(format!(
                "multi answered {} results for {} ops",
                r.results.len(),
                kinds.len()
            )));
        }
        Ok(kinds
            .into_iter()
            .zip(r.results)
            .map(|(op, res)| match op {
                Op::Create { .. } => OpResult::Created { path: res.path, stat: stat(res.stat) },
                Op::Set { .. } => OpResult::Set { stat: stat(res.stat) },
                Op::Delete { .. } => OpResult::Deleted,
                Op::Check { .. } => OpResult::Checked,
            })
            .collect())
    }

    async fn close(&self) {
        if self.shared.state().is_terminal() {
            return;
        }
        // Closed first: a poll in flight that the server answers "expired" once the close is through must not
        // report the session Expired (an ns_client command ended with "state=Expired" on a healthy cluster).
        self.shared.transition(SessionState::Closed);
        let req = pb::CloseRequest { session_id: self.shared.session_id, secret: self.shared.secret.clone() };
        let _ = self.shared.rpc.call_timeout(srv::Close, req, self.shared.op_timeout).await;
    }

    fn session_id(&self) -> i64 {
        self.shared.session_id
    }
    fn session_timeout(&self) -> Duration {
        self.shared.timeout
    }
    /// The session's state, with the clock's word on it: a session without contact for 2/3 of its timeout is
    /// Disconnected now, even if the background task has not run yet to say so (a process resumed from a pause
    /// runs whatever is ready first; a leader asking before it acts must get the truth).
    fn state(&self) -> SessionState {
        let state = self.shared.state();
        if state == SessionState::Connected && self.shared.since_contact() >= disconnect_after(self.shared.timeout) {
            return SessionState::Disconnected;
        }
        state
    }
    fn session_events(&self) -> SessionEvents {
        SessionEvents::new(self.shared.events.subscribe())
    }
}
