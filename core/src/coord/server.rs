//! The `model` coordination server: a [`Tree`] behind the framed RPC, plus the clock that expires sessions and,
//! with a data directory, the write-ahead log that makes it durable ([`super::store`]).
//!
//! Every change is applied to the tree under its lock and queued for the log there, in the order applied; a
//! flusher task writes what is queued and fsyncs it in one go (group commit). No answer leaves before the log
//! holds every change it depends on: a write waits for its own change, a read or a poll for every change queued
//! when it looked, so no client ever sees a state a crash could take back. Session ids are drawn at random (a
//! client cannot guess another's), and each start of the server draws an incarnation that its answers carry,
//! so a client can tell that the server restarted and lost the watches it held.

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::store::{self, Store};
use super::tree::{SessionId, Tree, TreeConfig};
use super::{CoordError, CreateMode, Op, OpResult};
use crate::proto::coord as pb;
use crate::rpc::{RpcServer, ServerConfig, ServerHandle, Status};
use crate::rpc_method;
use crate::sync::Signal;

rpc_method!(pub Connect, "coord.Connect", pb::ConnectRequest => pb::ConnectResponse);
rpc_method!(pub Close, "coord.Close", pb::CloseRequest => pb::CloseResponse);
rpc_method!(pub Create, "coord.Create", pb::CreateRequest => pb::CreateResponse);
rpc_method!(pub Set, "coord.Set", pb::SetRequest => pb::SetResponse);
rpc_method!(pub Delete, "coord.Delete", pb::DeleteRequest => pb::DeleteResponse);
rpc_method!(pub Get, "coord.Get", pb::GetRequest => pb::GetResponse);
rpc_method!(pub Exists, "coord.Exists", pb::ExistsRequest => pb::ExistsResponse);
rpc_method!(pub Children, "coord.Children", pb::ChildrenRequest => pb::ChildrenResponse);
rpc_method!(pub Multi, "coord.Multi", pb::MultiRequest => pb::MultiResponse);
rpc_method!(pub Poll, "coord.Poll", pb::PollRequest => pb::PollResponse);

/// Where a durable server keeps its log and snapshots.
#[derive(Clone)]
pub struct DataDir(pub Arc<dyn crate::storage::Disk>);

impl std::fmt::Debug for DataDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataDir")
    }
}

/// Settings of one coordination server.
#[derive(Debug, Clone)]
pub struct CoordServerConfig {
    pub tree: TreeConfig,
    /// Longest a poll is held without events (clients ask for a third of their timeout).
    pub max_poll_wait: Duration,
    pub rpc: ServerConfig,
    /// The data directory; `None` keeps the tree in memory only (tests that need no restart).
    pub data: Option<DataDir>,
    /// Changes between snapshots.
    pub snapshot_every: u64,
}

impl Default for CoordServerConfig {
    fn default() -> Self {
        Self {
            tree: TreeConfig::default(),
            max_poll_wait: Duration::from_secs(20),
            rpc: ServerConfig::default(),
            data: None,
            snapshot_every: store::DEFAULT_SNAPSHOT_EVERY,
        }
    }
}

/// A running coordination server. Dropping it stops serving and stops the expiry clock.
pub struct CoordServer {
    rpc: ServerHandle,
    expirer: JoinHandle<()>,
    flusher: Option<JoinHandle<()>>,
    state: Arc<State>,
}

impl CoordServer {
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        self.rpc.local_addr()
    }
    pub fn rpc_stats(&self) -> &Arc<crate::rpc::ServerStats> {
        self.rpc.stats()
    }
    /// Open sessions right now.
    pub fn session_count(&self) -> usize {
        self.state.lock().tree.session_count()
    }
    /// Serves until the process ends (the accept loop never returns on its own).
    pub async fn join(self) {
        std::future::pending::<()>().await;
    }
}

impl Drop for CoordServer {
    fn drop(&mut self) {
        self.expirer.abort();
        if let Some(f) = &self.flusher {
            f.abort();
        }
    }
}

struct State {
    inner: Mutex<Inner>,
    origin: Instant,
    max_poll_wait: Duration,
    /// Changes the log holds durably (the in-memory server counts every change durable at once). Closed when
    /// the log cannot be written: nothing is answered after that.
    durable: Signal,
    /// Bumped when a change is queued for the log.
    queued: Signal,
    incarnation: u64,
    /// True when changes go to a log.
    logged: bool,
}

struct Inner {
    tree: Tree,
    /// Wakes the pending poll of a session when it gets events; closed when the session ends.
    wakers: BTreeMap<SessionId, Arc<Signal>>,
    /// Encoded changes not yet handed to the log, and how many.
    pending: Vec<u8>,
    pending_count: u64,
    /// Changes applied since the data directory was created (the durable ones and the pending ones).
    applied: u64,
    /// Why the log cannot be written, once it cannot.
    broken: Option<String>,
}

impl State {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("coordination state lock")
    }
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }
}

impl Inner {
    /// Queues a change that took effect for the log, with any session it ended as a side effect.
    fn log(&mut self, logged: bool, txn: pb::Txn) {
        let ended = self.tree.take_ended_by_overflow();
        for t in std::iter::once(txn).chain(ended.into_iter().map(end_txn)) {
            if logged {
                self.pending.extend(store::encode_txn(&t));
                self.pending_count += 1;
            }
            self.applied += 1;
        }
    }

    /// Wakes sessions that got events and forgets wakers of sessions that ended.
    fn after_change(&mut self) {
        for sid in self.tree.take_woken() {
            if let Some(signal) = self.wakers.get(&sid) {
                signal.bump();
            }
        }
        let tree = &self.tree;
        self.wakers.retain(|sid, signal| {
            let alive = tree.session_exists(*sid);
            if !alive {
                signal.close();
            }
            alive
        });
    }
}

fn end_txn(id: SessionId) -> pb::Txn {
    pb::Txn { kind: Some(pb::txn::Kind::EndSession(id)) }
}

/// A session id no one can guess: 63 random bits (never 0, which asks for a new session).
/// A new session's password: 128 random bits (seeded in the simulator, from the OS outside it).
fn draw_secret() -> Bytes {
    let mut secret = Vec::with_capacity(16);
    secret.extend_from_slice(&madsim::rand::random::<u64>().to_le_bytes());
    secret.extend_from_slice(&madsim::rand::random::<u64>().to_le_bytes());
    Bytes::from(secret)
}

/// The identity a new session's credentials name: none without credentials, `user:<digest>` for ZooKeeper's
/// `digest` scheme (the digest as ZooKeeper forms it, so the log and snapshots never hold a password).
fn identity_of(scheme: &str, auth: &[u8]) -> Result<Option<String>, CoordError> {
    match scheme {
        "" if auth.is_empty() => Ok(None),
        "digest" => super::tree::digest_identity(auth).map(Some),
        "" => Err(CoordError::AuthFailed("credentials without a scheme".into())),
        other => Err(CoordError::AuthFailed(format!("unknown scheme {other:?} (only \"digest\")"))),
    }
}

fn draw_session_id(tree: &Tree) -> SessionId {
    loop {
        let id = madsim::rand::random::<i64>() & i64::MAX;
        if id != 0 && !tree.session_exists(id) {
            return id;
        }
    }
}

/// The tree a data directory holds, and the store that goes on writing it.
async fn recover(config: &CoordServerConfig, disk: &DataDir) -> io::Result<(Tree, Store, u64)> {
    let invalid = |e: String| io::Error::new(io::ErrorKind::InvalidData, e);
    let found = store::recover(disk.0.as_ref()).await.map_err(invalid)?;
    let mut tree = match found.snapshot {
        Some(snap) => Tree::restore(config.tree.clone(), snap, Duration::ZERO)
            .map_err(|e| invalid(format!("coordination data: snapshot: {e}")))?,
        None => Tree::new(config.tree.clone(), 1),
    };
    let replayed = found.txns.len();
    for (i, txn) in found.txns.into_iter().enumerate() {
        tree.replay(Duration::ZERO, txn).map_err(|e| invalid(format!("coordination data: change {}: {e}", i + 1)))?;
    }
    tracing::info!(
        changes = found.total,
        replayed,
        cut_bytes = found.cut_bytes,
        sessions = tree.session_count(),
        "coordination data recovered"
    );
    let st = Store::open(disk.0.clone(), found.total, config.snapshot_every).await?;
    Ok((tree, st, found.total))
}

/// Binds `addr` and serves the coordination service until the returned server is dropped. With a data directory,
/// the tree it holds is recovered first; damage there is an error, and the server does not start.
pub async fn serve(addr: &str, config: CoordServerConfig) -> io::Result<CoordServer> {
    let tick = config.tree.tick;
    let (tree, store, applied) = match &config.data {
        Some(disk) => {
            let (tree, st, applied) = recover(&config, disk).await?;
            (tree, Some(st), applied)
        }
        None => (Tree::new(config.tree.clone(), 1), None, 0),
    };
    let state = Arc::new(State {
        inner: Mutex::new(Inner {
            tree,
            wakers: BTreeMap::new(),
            pending: Vec::new(),
            pending_count: 0,
            applied,
            broken: None,
        }),
        origin: Instant::now(),
        max_poll_wait: config.max_poll_wait,
        durable: Signal::new(applied),
        queued: Signal::new(0),
        incarnation: madsim::rand::random::<u64>() | 1,
        logged: store.is_some(),
    });
    let server = RpcServer::new("coord").with_config(config.rpc);
    let server = register(server, &state);
    let rpc = server.bind(addr).await?;
    tracing::info!(addr, durable = store.is_some(), "coordination server listening");
    let expirer = tokio::spawn(expire_loop(state.clone(), tick));
    let flusher = store.map(|st| tokio::spawn(flush_loop(state.clone(), st)));
    Ok(CoordServer { rpc, expirer, flusher, state })
}

/// Group commit: writes every change queued since the last write and fsyncs once, then lets their answers go.
/// After a write fails nothing more is answered (the tree holds changes the disk may not): as ZooKeeper, which
/// stops on a failed log write, the server refuses every request until it is restarted on a working disk.
async fn flush_loop(state: Arc<State>, mut st: Store) {
    loop {
        let seen = state.queued.get();
        let group = {
            let mut inner = state.lock();
            if inner.pending_count == 0 {
                None
            } else {
                let bytes = std::mem::take(&mut inner.pending);
                let count = std::mem::take(&mut inner.pending_count);
                assert_eq!(st.written() + count, inner.applied, "every applied change is durable or pending");
                // The snapshot is taken with the changes it follows, under the same lock: it holds exactly them.
                let snapshot = (st.written() + count - st.log_start() >= st.snapshot_every())
                    .then(|| inner.tree.snapshot(inner.applied));
                Some((bytes, count, snapshot))
            }
        };
        let Some((bytes, count, snapshot)) = group else {
            if state.queued.changed(seen).await.is_err() {
                return;
            }
            continue;
        };
        if let Err(e) = st.append(&bytes, count).await {
            fail(&state, format!("cannot write the coordination log: {e}"));
            return;
        }
        state.durable.set(st.written());
        if let Some(snap) = snapshot
            && let Err(e) = st.write_snapshot(&snap).await
        {
            // The log still holds every change: a failed snapshot costs a longer replay, nothing else.
            tracing::warn!(error = %e, "cannot write a coordination snapshot; the log goes on");
        }
    }
}

fn fail(state: &State, why: String) {
    tracing::error!(error = %why, "the coordination server stops answering");
    state.lock().broken = Some(why);
    state.durable.close();
}

/// Waits until the log holds the first `upto` changes.
async fn durable(state: &State, upto: u64) -> Result<(), CoordError> {
    if !state.logged {
        return Ok(());
    }
    state.queued.bump();
    match state.durable.wait_until(|d| d >= upto).await {
        Ok(_) => Ok(()),
        Err(_) => Err(broken(state)),
    }
}

fn broken(state: &State) -> CoordError {
    let why = state.lock().broken.clone().unwrap_or_else(|| "the coordination log is closed".into());
    CoordError::ConnectionLoss(why)
}

/// Wakes at every tick boundary and expires the sessions due.
async fn expire_loop(state: Arc<State>, tick: Duration) {
    loop {
        let now = state.now();
        let next = Duration::from_nanos(
            u64::try_from((now.as_nanos() / tick.as_nanos() + 1) * tick.as_nanos()).unwrap_or(u64::MAX),
        );
        tokio::time::sleep_until(state.origin + next).await;
        let mut inner = state.lock();
        let now = state.now();
        // The ephemeral nodes go with the session: the line names them, so a reader of the trace knows whose
        // session it was (a tablet's `/nodes/<endpoint>`, a nameserver's election node).
        let owned: Vec<(SessionId, Vec<String>)> =
            inner.tree.sessions_due(now).into_iter().map(|sid| (sid, inner.tree.ephemerals_of(sid))).collect();
        let expired = inner.tree.expire(now);
        for sid in &expired {
            let nodes = owned.iter().find(|(s, _)| s == sid).map(|(_, n)| n.join(",")).unwrap_or_default();
            tracing::info!(session = sid, nodes, "coordination session expired");
            inner.log(state.logged, end_txn(*sid));
        }
        if !expired.is_empty() {
            inner.after_change();
            drop(inner);
            state.queued.bump();
        }
    }
}

fn err(e: CoordError) -> Status {
    e.into()
}

/// Runs `f` on the tree after counting the request as a heartbeat of `session`; logs `txn` if `f` succeeded (a
/// read passes none), and answers once the log holds every change made so far.
async fn with_session<T>(
    state: &State,
    session: SessionId,
    secret: &[u8],
    txn: Option<pb::Txn>,
    f: impl FnOnce(&mut Tree) -> Result<T, CoordError>,
) -> Result<T, CoordError> {
    let (out, upto) = {
        let now = state.now();
        let mut inner = state.lock();
        if inner.broken.is_some() {
            drop(inner);
            return Err(broken(state));
        }
        inner.tree.authenticate(session, secret)?;
        inner.tree.touch(now, session)?;
        let out = f(&mut inner.tree);
        if let (Ok(_), Some(txn)) = (&out, txn) {
            inner.log(state.logged, txn);
        }
        inner.after_change();
        (out, inner.applied)
    };
    durable(state, upto).await?;
    out
}

pub(crate) fn op_from_proto(op: pb::Op) -> Result<Op, CoordError> {
    let version = |v: i32| if v < 0 { None } else { Some(v) };
    match op.op {
        Some(pb::op::Op::Create(c)) => {
            Ok(Op::Create { path: c.path, data: c.data.to_vec(), mode: CreateMode::from_proto(c.mode)? })
        }
        Some(pb::op::Op::Set(s)) => Ok(Op::Set { path: s.path, data: s.data.to_vec(), version: version(s.version) }),
        Some(pb::op::Op::Delete(d)) => Ok(Op::Delete { path: d.path, version: version(d.version) }),
        Some(pb::op::Op::Check(c)) => Ok(Op::Check { path: c.path, version: c.version }),
        None => Err(CoordError::BadArguments("empty op".into())),
    }
}

fn required<T>(v: Option<T>, what: &str) -> Result<T, Status> {
    v.ok_or_else(|| Status::invalid_argument(format!("missing {what}")))
}

fn register(server: RpcServer, state: &Arc<State>) -> RpcServer {
    use pb::txn::Kind;
    let st = state.clone();
    let server = server.add(Connect, move |req: pb::ConnectRequest| {
        let st = st.clone();
        async move {
            let now = st.now();
            let incarnation = st.incarnation;
            let (resp, upto) = {
                let mut inner = st.lock();
                if inner.broken.is_some() {
                    drop(inner);
                    return Err(err(broken(&st)));
                }
                if req.session_id != 0 {
                    inner.tree.authenticate(req.session_id, &req.secret).map_err(err)?;
                    let timeout = inner.tree.touch(now, req.session_id).map_err(err)?;
                    let resp = pb::ConnectResponse {
                        session_id: req.session_id,
                        timeout_ms: millis(timeout),
                        incarnation,
                        secret: Bytes::new(),
                    };
                    (resp, inner.applied)
                } else {
                    let identity = identity_of(&req.auth_scheme, &req.auth).map_err(err)?;
                    let sid = draw_session_id(&inner.tree);
                    let secret = draw_secret();
                    let requested = Duration::from_millis(req.timeout_ms.into());
                    let timeout = inner
                        .tree
                        .open_session_as(now, sid, requested, secret.clone(), identity.clone())
                        .map_err(err)?;
                    let open = pb::OpenSessionTxn {
                        session_id: sid,
                        timeout_ms: millis(timeout),
                        secret: secret.clone(),
                        identity: identity.clone(),
                    };
                    inner.log(st.logged, pb::Txn { kind: Some(Kind::OpenSession(open)) });
                    inner.wakers.insert(sid, Arc::new(Signal::new(0)));
                    let user = identity.as_deref().and_then(|i| i.split(':').next()).unwrap_or("");
                    tracing::info!(session = sid, timeout_ms = millis(timeout), user, "coordination session opened");
                    let resp =
                        pb::ConnectResponse { session_id: sid, timeout_ms: millis(timeout), incarnation, secret };
                    (resp, inner.applied)
                }
            };
            durable(&st, upto).await.map_err(err)?;
            Ok(resp)
        }
    });
    let st = state.clone();
    let server = server.add(Close, move |req: pb::CloseRequest| {
        let st = st.clone();
        async move {
            let upto = {
                let mut inner = st.lock();
                // Only the session's own client knows its secret: nobody else can end it.
                match inner.tree.authenticate(req.session_id, &req.secret) {
                    Ok(()) | Err(CoordError::SessionExpired) => {}
                    Err(e) => return Err(err(e)),
                }
                if inner.tree.end_session(req.session_id) {
                    tracing::info!(session = req.session_id, "coordination session closed");
                    inner.log(st.logged, end_txn(req.session_id));
                }
                inner.after_change();
                inner.applied
            };
            durable(&st, upto).await.map_err(err)?;
            Ok(pb::CloseResponse {})
        }
    });
    let st = state.clone();
    let server = server.add(Create, move |req: pb::CreateRequest| {
        let st = st.clone();
        async move {
            let op = required(req.op.clone(), "op")?;
            let mode = CreateMode::from_proto(op.mode).map_err(err)?;
            let txn = pb::Txn { kind: Some(Kind::Create(pb::CreateRequest { secret: Bytes::new(), ..req.clone() })) };
            let (path, stat) = with_session(&st, req.session_id, &req.secret, Some(txn), |t| {
                t.create(req.session_id, &op.path, op.data, mode)
            })
            .await
            .map_err(err)?;
            Ok(pb::CreateResponse { path, stat: Some(stat) })
        }
    });
    let st = state.clone();
    let server = server.add(Set, move |req: pb::SetRequest| {
        let st = st.clone();
        async move {
            let op = required(req.op.clone(), "op")?;
            let version = if op.version < 0 { None } else { Some(op.version) };
            let txn = pb::Txn { kind: Some(Kind::Set(pb::SetRequest { secret: Bytes::new(), ..req.clone() })) };
            let stat = with_session(&st, req.session_id, &req.secret, Some(txn), |t| {
                t.set(req.session_id, &op.path, op.data, version)
            })
            .await
            .map_err(err)?;
            Ok(pb::SetResponse { stat: Some(stat) })
        }
    });
    let st = state.clone();
    let server = server.add(Delete, move |req: pb::DeleteRequest| {
        let st = st.clone();
        async move {
            let op = required(req.op.clone(), "op")?;
            let version = if op.version < 0 { None } else { Some(op.version) };
            let txn = pb::Txn { kind: Some(Kind::Delete(pb::DeleteRequest { secret: Bytes::new(), ..req.clone() })) };
            with_session(&st, req.session_id, &req.secret, Some(txn), |t| t.delete(req.session_id, &op.path, version))
                .await
                .map_err(err)?;
            Ok(pb::DeleteResponse {})
        }
    });
    let st = state.clone();
    let server = server.add(Get, move |req: pb::GetRequest| {
        let st = st.clone();
        async move {
            let (data, stat) = with_session(&st, req.session_id, &req.secret, None, |t| {
                t.get(req.session_id, &req.path, req.watch_id)
            })
            .await
            .map_err(err)?;
            Ok(pb::GetResponse { data, stat: Some(stat) })
        }
    });
    let st = state.clone();
    let server = server.add(Exists, move |req: pb::ExistsRequest| {
        let st = st.clone();
        async move {
            let stat = with_session(&st, req.session_id, &req.secret, None, |t| {
                t.exists(req.session_id, &req.path, req.watch_id)
            })
            .await
            .map_err(err)?;
            Ok(pb::ExistsResponse { exists: stat.is_some(), stat })
        }
    });
    let st = state.clone();
    let server = server.add(Children, move |req: pb::ChildrenRequest| {
        let st = st.clone();
        async move {
            let (children, stat) = with_session(&st, req.session_id, &req.secret, None, |t| {
                t.children(req.session_id, &req.path, req.watch_id)
            })
            .await
            .map_err(err)?;
            Ok(pb::ChildrenResponse { children, stat: Some(stat) })
        }
    });
    let st = state.clone();
    let server = server.add(Multi, move |req: pb::MultiRequest| {
        let st = st.clone();
        async move {
            let ops = req.ops.iter().cloned().map(op_from_proto).collect::<Result<Vec<_>, _>>().map_err(err)?;
            let sid = req.session_id;
            let secret = req.secret.clone();
            let txn = pb::Txn { kind: Some(Kind::Multi(pb::MultiRequest { secret: Bytes::new(), ..req })) };
            match with_session(&st, sid, &secret, Some(txn), |t| t.multi(sid, ops)).await {
                Ok(results) => Ok(pb::MultiResponse {
                    results: results.into_iter().map(op_result_to_proto).collect(),
                    ..Default::default()
                }),
                Err(CoordError::Multi { index, source }) => Ok(pb::MultiResponse {
                    results: vec![],
                    failed: true,
                    failed_index: u32::try_from(index).unwrap_or(u32::MAX),
                    error_code: source.code(),
                    error_message: source.to_string(),
                }),
                Err(e) => Err(err(e)),
            }
        }
    });
    let st = state.clone();
    server.add(Poll, move |req: pb::PollRequest| {
        let st = st.clone();
        async move { poll(&st, req).await }
    })
}

/// Holds the poll until the session has unacknowledged events or the wait is over. Events leave only once the
/// changes that fired them are durable.
async fn poll(st: &State, req: pb::PollRequest) -> Result<pb::PollResponse, Status> {
    let wait = Duration::from_millis(req.max_wait_ms.into()).min(st.max_poll_wait);
    let deadline = Instant::now() + wait;
    let incarnation = st.incarnation;
    loop {
        let (signal, seen, events, upto) = {
            let now = st.now();
            let mut inner = st.lock();
            if inner.broken.is_some() {
                drop(inner);
                return Err(err(broken(st)));
            }
            inner.tree.authenticate(req.session_id, &req.secret).map_err(err)?;
            inner.tree.touch(now, req.session_id).map_err(err)?;
            let events = inner.tree.pending_events(req.session_id, req.ack_seq).map_err(err)?;
            if events.is_empty() {
                let signal = inner.wakers.entry(req.session_id).or_insert_with(|| Arc::new(Signal::new(0))).clone();
                let seen = signal.get();
                (signal, seen, events, inner.applied)
            } else {
                (Arc::new(Signal::new(0)), 0, events, inner.applied)
            }
        };
        if !events.is_empty() {
            let events = events
                .into_iter()
                .map(|e| pb::WatchEvent {
                    seq: e.seq,
                    watch_id: e.watch_id,
                    kind: watch_kind_to_proto(e.kind),
                    path: e.path,
                })
                .collect();
            // The poll is also the heartbeat: a slow fsync must not hold it past its wait. Events whose changes
            // are not durable by then stay queued (nothing is acknowledged) and leave with a later poll.
            match crate::rpc::timeout_at(deadline, durable(st, upto)).await {
                Ok(done) => done.map_err(err)?,
                Err(_) => return Ok(pb::PollResponse { events: vec![], incarnation }),
            }
            return Ok(pb::PollResponse { events, incarnation });
        }
        tokio::select! {
            biased;
            changed = signal.changed(seen) => {
                if changed.is_err() {
                    return Err(err(CoordError::SessionExpired));
                }
            }
            _ = tokio::time::sleep_until(deadline) => return Ok(pb::PollResponse { events: vec![], incarnation }),
        }
    }
}

fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

pub(crate) fn watch_kind_to_proto(k: super::WatchKind) -> i32 {
    use super::WatchKind as K;
    use pb::WatchEventKind as P;
    (match k {
        K::NodeCreated => P::NodeCreated,
        K::NodeDeleted => P::NodeDeleted,
        K::NodeDataChanged => P::NodeDataChanged,
        // Never queued by the server: a session that ends has no one left to tell.
        K::NodeChildrenChanged | K::SessionEnded => P::NodeChildrenChanged,
    }) as i32
}

pub(crate) fn op_to_proto(op: Op) -> pb::Op {
    let version = |v: Option<i32>| v.unwrap_or(-1);
    let op = match op {
        Op::Create { path, data, mode } => {
            pb::op::Op::Create(pb::CreateOp { path, data: data.into(), mode: mode.to_proto() })
        }
        Op::Set { path, data, version: v } => {
            pb::op::Op::Set(pb::SetOp { path, data: data.into(), version: version(v) })
        }
        Op::Delete { path, version: v } => pb::op::Op::Delete(pb::DeleteOp { path, version: version(v) }),
        Op::Check { path, version } => pb::op::Op::Check(pb::CheckOp { path, version }),
    };
    pb::Op { op: Some(op) }
}

fn op_result_to_proto(r: OpResult) -> pb::OpResult {
    match r {
        OpResult::Created { path, stat } => pb::OpResult { path, stat: Some(stat) },
        OpResult::Set { stat } => pb::OpResult { path: String::new(), stat: Some(stat) },
        OpResult::Deleted | OpResult::Checked => pb::OpResult::default(),
    }
}
