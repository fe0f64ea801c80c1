//! The `model` coordination server: a [`Tree`] behind the framed RPC, plus the clock that expires sessions.

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

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

/// Settings of one coordination server.
#[derive(Debug, Clone)]
pub struct CoordServerConfig {
    pub tree: TreeConfig,
    /// Longest a poll is held without events (clients ask for a third of their timeout).
    pub max_poll_wait: Duration,
    pub rpc: ServerConfig,
}

impl Default for CoordServerConfig {
    fn default() -> Self {
        Self { tree: TreeConfig::default(), max_poll_wait: Duration::from_secs(20), rpc: ServerConfig::default() }
    }
}

/// A running coordination server. Dropping it stops serving and stops the expiry clock.
pub struct CoordServer {
    rpc: ServerHandle,
    expirer: JoinHandle<()>,
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
    }
}

struct State {
    inner: Mutex<Inner>,
    origin: Instant,
    max_poll_wait: Duration,
}

struct Inner {
    tree: Tree,
    /// Wakes the pending poll of a session when it gets events; closed when the session ends.
    wakers: BTreeMap<SessionId, Arc<Signal>>,
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

/// Binds `addr` and serves the coordination service until the returned server is dropped.
pub async fn serve(addr: &str, config: CoordServerConfig) -> io::Result<CoordServer> {
    // Session ids of a restarted server must not collide with ids its previous life handed out.
    let base = (i64::from(madsim::rand::random::<u32>() & 0x7fff_ffff) << 24) | 1;
    let tick = config.tree.tick;
    let state = Arc::new(State {
        inner: Mutex::new(Inner { tree: Tree::new(config.tree, base), wakers: BTreeMap::new() }),
        origin: Instant::now(),
        max_poll_wait: config.max_poll_wait,
    });
    let server = RpcServer::new("coord").with_config(config.rpc);
    let server = register(server, &state);
    let rpc = server.bind(addr).await?;
    tracing::info!(addr, "coordination server listening");
    let expirer = tokio::spawn(expire_loop(state.clone(), tick));
    Ok(CoordServer { rpc, expirer, state })
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
        }
        if !expired.is_empty() {
            inner.after_change();
        }
    }
}

fn err(e: CoordError) -> Status {
    e.into()
}

/// Runs `f` on the tree after counting the request as a heartbeat of `session`.
fn with_session<T>(
    state: &State,
    session: SessionId,
    f: impl FnOnce(&mut Tree) -> Result<T, CoordError>,
) -> Result<T, Status> {
    let now = state.now();
    let mut inner = state.lock();
    inner.tree.touch(now, session).map_err(err)?;
    let out = f(&mut inner.tree);
    inner.after_change();
    out.map_err(err)
}

fn op_from_proto(op: pb::Op) -> Result<Op, CoordError> {
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
    let st = state.clone();
    let server = server.add(Connect, move |req: pb::ConnectRequest| {
        let st = st.clone();
        async move {
            let now = st.now();
            let mut inner = st.lock();
            if req.session_id != 0 {
                let timeout = inner.tree.touch(now, req.session_id).map_err(err)?;
                return Ok(pb::ConnectResponse { session_id: req.session_id, timeout_ms: millis(timeout) });
            }
            let (sid, timeout) = inner.tree.open_session(now, Duration::from_millis(req.timeout_ms.into()));
            inner.wakers.insert(sid, Arc::new(Signal::new(0)));
            tracing::info!(session = sid, timeout_ms = millis(timeout), "coordination session opened");
            Ok(pb::ConnectResponse { session_id: sid, timeout_ms: millis(timeout) })
        }
    });
    let st = state.clone();
    let server = server.add(Close, move |req: pb::CloseRequest| {
        let st = st.clone();
        async move {
            let mut inner = st.lock();
            if inner.tree.end_session(req.session_id) {
                tracing::info!(session = req.session_id, "coordination session closed");
            }
            inner.after_change();
            Ok(pb::CloseResponse {})
        }
    });
    let st = state.clone();
    let server = server.add(Create, move |req: pb::CreateRequest| {
        let st = st.clone();
        async move {
            let op = required(req.op, "op")?;
            let mode = CreateMode::from_proto(op.mode).map_err(err)?;
            let (path, stat) =
                with_session(&st, req.session_id, |t| t.create(req.session_id, &op.path, op.data, mode))?;
            Ok(pb::CreateResponse { path, stat: Some(stat) })
        }
    });
    let st = state.clone();
    let server = server.add(Set, move |req: pb::SetRequest| {
        let st = st.clone();
        async move {
            let op = required(req.op, "op")?;
            let version = if op.version < 0 { None } else { Some(op.version) };
            let stat = with_session(&st, req.session_id, |t| t.set(req.session_id, &op.path, op.data, version))?;
            Ok(pb::SetResponse { stat: Some(stat) })
        }
    });
    let st = state.clone();
    let server = server.add(Delete, move |req: pb::DeleteRequest| {
        let st = st.clone();
        async move {
            let op = required(req.op, "op")?;
            let version = if op.version < 0 { None } else { Some(op.version) };
            with_session(&st, req.session_id, |t| t.delete(req.session_id, &op.path, version))?;
            Ok(pb::DeleteResponse {})
        }
    });
    let st = state.clone();
    let server = server.add(Get, move |req: pb::GetRequest| {
        let st = st.clone();
        async move {
            let (data, stat) = with_session(&st, req.session_id, |t| t.get(req.session_id, &req.path, req.watch_id))?;
            Ok(pb::GetResponse { data, stat: Some(stat) })
        }
    });
    let st = state.clone();
    let server = server.add(Exists, move |req: pb::ExistsRequest| {
        let st = st.clone();
        async move {
            let stat = with_session(&st, req.session_id, |t| t.exists(req.session_id, &req.path, req.watch_id))?;
            Ok(pb::ExistsResponse { exists: stat.is_some(), stat })
        }
    });
    let st = state.clone();
    let server = server.add(Children, move |req: pb::ChildrenRequest| {
        let st = st.clone();
        async move {
            let (children, stat) =
                with_session(&st, req.session_id, |t| t.children(req.session_id, &req.path, req.watch_id))?;
            Ok(pb::ChildrenResponse { children, stat: Some(stat) })
        }
    });
    let st = state.clone();
    let server = server.add(Multi, move |req: pb::MultiRequest| {
        let st = st.clone();
        async move {
            let ops = req.ops.into_iter().map(op_from_proto).collect::<Result<Vec<_>, _>>().map_err(err)?;
            match with_session(&st, req.session_id, |t| Ok(t.multi(req.session_id, ops)))? {
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

/// Holds the poll until the session has unacknowledged events or the wait is over.
async fn poll(st: &State, req: pb::PollRequest) -> Result<pb::PollResponse, Status> {
    let wait = Duration::from_millis(req.max_wait_ms.into()).min(st.max_poll_wait);
    let deadline = Instant::now() + wait;
    loop {
        let (signal, seen) = {
            let now = st.now();
            let mut inner = st.lock();
            inner.tree.touch(now, req.session_id).map_err(err)?;
            let events = inner.tree.pending_events(req.session_id, req.ack_seq).map_err(err)?;
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
                return Ok(pb::PollResponse { events });
            }
            let signal = inner.wakers.entry(req.session_id).or_insert_with(|| Arc::new(Signal::new(0))).clone();
            let seen = signal.get();
            (signal, seen)
        };
        tokio::select! {
            biased;
            changed = signal.changed(seen) => {
                if changed.is_err() {
                    return Err(err(CoordError::SessionExpired));
                }
            }
            _ = tokio::time::sleep_until(deadline) => return Ok(pb::PollResponse { events: vec![] }),
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
