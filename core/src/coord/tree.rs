//! The coordination server's state machine: the node tree, sessions, one-shot watches and session expiry.
//!
//! Sans-IO: time is an explicit argument (a [`Duration`] since the server started), nothing here sleeps or
//! sends. The async server ([`super::server`]) feeds it requests and clock ticks and delivers what it queues.
//!
//! Watch events are queued per session with increasing sequence numbers and stay queued until the client's
//! next poll acknowledges them, so an event survives a lost response or a reconnect: each watch fires exactly
//! once.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use bytes::Bytes;

use super::{CoordError, CreateMode, Op, OpResult, Stat, WatchKind};
use crate::proto::coord as pb;

/// A session id. Ids are never reused within one server's life.
pub type SessionId = i64;

/// Limits of the server.
#[derive(Debug, Clone)]
pub struct TreeConfig {
    /// Expiry granularity: a session expires at the first tick boundary at or after its deadline.
    pub tick: Duration,
    pub min_session_timeout: Duration,
    pub max_session_timeout: Duration,
    /// Undelivered watch events one session may have; beyond it the session is expired (as ZooKeeper closes a
    /// client whose outbound queue overflows) rather than silently dropping an event.
    pub max_queued_events: usize,
    /// Largest node value.
    pub max_data_len: usize,
}

impl Default for TreeConfig {
    fn default() -> Self {
        Self {
            tick: Duration::from_millis(200),
            min_session_timeout: Duration::from_millis(400),
            max_session_timeout: Duration::from_secs(60),
            max_queued_events: 100_000,
            max_data_len: 1 << 20,
        }
    }
}

/// A watch event queued for a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedEvent {
    pub seq: u64,
    pub watch_id: u64,
    pub kind: WatchKind,
    pub path: String,
}

#[derive(Debug, Clone)]
struct Node {
    data: Bytes,
    stat: Stat,
    children: BTreeSet<String>,
    /// Who may read, change, and create or delete children of this node: `None` is anyone (ZooKeeper's
    /// `world:anyone`); `Some(id)` is only sessions authenticated as `id` (ZooKeeper's creator-all ACL, which a
    /// session that authenticated gets on every node it creates, as OpenMLDB asks with `--zk_cert`).
    acl: Option<String>,
    /// Children ever created here: the next sequential suffix. As measured on ZooKeeper 3.8, deletions do not
    /// advance it.
    created_children: i32,
}

#[derive(Debug)]
struct Session {
    timeout: Duration,
    /// The session's password, drawn by the server and known only to the session's client: every request on
    /// the session must carry it (ids are visible to anyone as `ephemeral_owner`; the secret is not).
    secret: Bytes,
    /// The identity the session authenticated as, if any (see [`Node::acl`]).
    identity: Option<String>,
    /// Expiry time, already rounded up to a tick boundary.
    deadline: Duration,
    events: VecDeque<QueuedEvent>,
    next_seq: u64,
}

/// Which watch list a change triggers.
#[derive(Debug, Clone, Copy)]
enum Trigger {
    Data(WatchKind),
    Child(WatchKind),
}

/// The whole server state.
#[derive(Debug)]
pub struct Tree {
    config: TreeConfig,
    nodes: BTreeMap<String, Node>,
    zxid: i64,
    sessions: BTreeMap<SessionId, Session>,
    next_session: SessionId,
    data_watches: BTreeMap<String, BTreeSet<(SessionId, u64)>>,
    child_watches: BTreeMap<String, BTreeSet<(SessionId, u64)>>,
    /// Sessions that got events since the last [`Tree::take_woken`].
    woken: BTreeSet<SessionId>,
    /// Sessions a change ended as a side effect (their event queue overflowed), for the write-ahead log.
    ended_by_overflow: Vec<SessionId>,
}

/// The prior state of every node a multi touched, to restore on failure.
type UndoLog = BTreeMap<String, Option<Node>>;

impl Tree {
    /// An empty tree holding only `/`. `session_base` seeds session ids so a restarted server never hands out an
    /// id a client of its previous life still holds.
    pub fn new(config: TreeConfig, session_base: i64) -> Self {
        assert!(config.tick > Duration::ZERO, "tick must be positive");
        let mut nodes = BTreeMap::new();
        nodes.insert(
            "/".to_string(),
            Node {
                data: Bytes::new(),
                stat: Stat::default(),
                children: BTreeSet::new(),
                acl: None,
                created_children: 0,
            },
        );
        Self {
            config,
            nodes,
            zxid: 0,
            sessions: BTreeMap::new(),
            next_session: session_base.max(1),
            data_watches: BTreeMap::new(),
            child_watches: BTreeMap::new(),
            woken: BTreeSet::new(),
            ended_by_overflow: Vec::new(),
        }
    }

    pub fn config(&self) -> &TreeConfig {
        &self.config
    }

    // ---- sessions -------------------------------------------------------------------------------------------

    /// Clamps a requested timeout to the server's bounds.
    pub fn negotiate(&self, requested: Duration) -> Duration {
        requested.clamp(self.config.min_session_timeout, self.config.max_session_timeout)
    }

    fn deadline(&self, now: Duration, timeout: Duration) -> Duration {
        let t = now + timeout;
        let tick = self.config.tick.as_nanos();
        let rounded = t.as_nanos().div_ceil(tick) * tick;
        Duration::from_nanos(u64::try_from(rounded).unwrap_or(u64::MAX))
    }

    /// Opens an unauthenticated session with an empty secret and returns its id and negotiated timeout (for
    /// tests of the tree; the server draws ids and secrets itself, with [`Tree::open_session_as`]).
    pub fn open_session(&mut self, now: Duration, requested: Duration) -> (SessionId, Duration) {
        let id = self.next_session;
        self.next_session += 1;
        let timeout = self.open_session_as(now, id, requested, Bytes::new(), None).expect("a fresh id is free");
        (id, timeout)
    }

    /// Opens a session under an id and secret the caller drew (the server draws them at random, so they cannot be
    /// guessed), authenticated as `identity` if given. Fails if the id is taken or not positive.
    pub fn open_session_as(
        &mut self,
        now: Duration,
        id: SessionId,
        requested: Duration,
        secret: Bytes,
        identity: Option<String>,
    ) -> Result<Duration, CoordError> {
        if id <= 0 || self.sessions.contains_key(&id) {
            return Err(CoordError::BadArguments(format!("session id {id} is taken or invalid")));
        }
        let timeout = self.negotiate(requested);
        let deadline = self.deadline(now, timeout);
        let session = Session { timeout, secret, identity, deadline, events: VecDeque::new(), next_seq: 1 };
        self.sessions.insert(id, session);
        Ok(timeout)
    }

    /// Checks that a request on session `id` carries its secret. An unknown session is expired; a wrong secret
    /// is refused without touching the session (a stranger can neither keep it alive nor end it).
    pub fn authenticate(&self, id: SessionId, secret: &[u8]) -> Result<(), CoordError> {
        let s = self.sessions.get(&id).ok_or(CoordError::SessionExpired)?;
        if !same_secret(&s.secret, secret) {
            return Err(CoordError::AuthFailed(format!("wrong secret for session {id:#x}")));
        }
        Ok(())
    }

    /// Sessions a change ended as a side effect since the last call (see [`Tree::fire`]).
    pub fn take_ended_by_overflow(&mut self) -> Vec<SessionId> {
        std::mem::take(&mut self.ended_by_overflow)
    }

    /// Records a sign of life from `id`. Fails if the session is unknown (expired, closed, or never existed).
    pub fn touch(&mut self, now: Duration, id: SessionId) -> Result<Duration, CoordError> {
        let timeout = self.sessions.get(&id).ok_or(CoordError::SessionExpired)?.timeout;
        let deadline = self.deadline(now, timeout);
        let s = self.sessions.get_mut(&id).expect("session checked above");
        s.deadline = s.deadline.max(deadline);
        Ok(timeout)
    }

    pub fn session_exists(&self, id: SessionId) -> bool {
        self.sessions.contains_key(&id)
    }

    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// The earliest session deadline, if any session is open.
    pub fn next_deadline(&self) -> Option<Duration> {
        self.sessions.values().map(|s| s.deadline).min()
    }

    /// Expires every session whose deadline is at or before `now`; returns their ids.
    /// The sessions whose deadline is at or before `now`: what [`Tree::expire`] would end.
    pub fn sessions_due(&self, now: Duration) -> Vec<SessionId> {
        self.sessions.iter().filter(|(_, s)| s.deadline <= now).map(|(id, _)| *id).collect()
    }

    pub fn expire(&mut self, now: Duration) -> Vec<SessionId> {
        let due = self.sessions_due(now);
        for id in &due {
            self.end_session(*id);
        }
        due
    }

    /// The ephemeral nodes session `id` owns, in path order.
    pub fn ephemerals_of(&self, id: SessionId) -> Vec<String> {
        self.nodes.iter().filter(|(_, n)| n.stat.ephemeral_owner == id).map(|(p, _)| p.clone()).collect()
    }

    /// Ends a session now (closed by its owner, or expired): deletes its ephemeral nodes, firing watches, and
    /// forgets its watches and queued events.
    pub fn end_session(&mut self, id: SessionId) -> bool {
        if self.sessions.remove(&id).is_none() {
            return false;
        }
        for set in self.data_watches.values_mut().chain(self.child_watches.values_mut()) {
            set.retain(|(sid, _)| *sid != id);
        }
        self.data_watches.retain(|_, s| !s.is_empty());
        self.child_watches.retain(|_, s| !s.is_empty());
        // Deepest first is not needed: ephemeral nodes cannot have children.
        let owned: Vec<String> =
            self.nodes.iter().filter(|(_, n)| n.stat.ephemeral_owner == id).map(|(p, _)| p.clone()).collect();
        if !owned.is_empty() {
            self.zxid += 1;
            let mut triggers = Vec::new();
            for path in owned {
                let mut undo = UndoLog::new();
                self.delete_node(&path, None, &mut undo, &mut triggers).expect("ephemeral node is a deletable leaf");
            }
            self.fire(triggers);
        }
        self.woken.remove(&id);
        true
    }

    // ---- durability ---------------------------------------------------------------------------------------

    /// The durable part of the state after `txns` logged changes: nodes (parents before children) and sessions.
    /// Watches and queued events are not in it: a restarted server has neither (its clients learn of the restart
    /// and fire their watches themselves).
    pub fn snapshot(&self, txns: u64) -> pb::TreeSnapshot {
        pb::TreeSnapshot {
            txns,
            zxid: self.zxid,
            nodes: self
                .nodes
                .iter()
                .map(|(path, n)| pb::SnapshotNode {
                    path: path.clone(),
                    data: n.data.clone(),
                    stat: Some(n.stat),
                    created_children: n.created_children,
                    acl: n.acl.clone(),
                })
                .collect(),
            sessions: self
                .sessions
                .iter()
                .map(|(id, s)| pb::SnapshotSession {
                    session_id: *id,
                    timeout_ms: u32::try_from(s.timeout.as_millis()).unwrap_or(u32::MAX),
                    secret: s.secret.clone(),
                    identity: s.identity.clone(),
                })
                .collect(),
        }
    }

    /// A tree from a snapshot, at `now`. Every restored session gets a whole timeout from now, as ZooKeeper gives
    /// the sessions it reloads: its client may reconnect and keep it, or it expires with its ephemeral nodes.
    pub fn restore(config: TreeConfig, snap: pb::TreeSnapshot, now: Duration) -> Result<Self, String> {
        let mut tree = Tree::new(config, 1);
        tree.zxid = snap.zxid;
        for n in snap.nodes {
            validate_path(&n.path, false).map_err(|e| format!("snapshot node: {e}"))?;
            let node = Node {
                data: n.data,
                stat: n.stat.unwrap_or_default(),
                children: BTreeSet::new(),
                acl: n.acl,
                created_children: n.created_children,
            };
            if n.path != "/" {
                let parent = parent_of(&n.path).expect("non-root path has a parent");
                let name = n.path[parent.len()..].trim_start_matches('/').to_string();
                let p =
                    tree.nodes.get_mut(parent).ok_or_else(|| format!("snapshot node {} before its parent", n.path))?;
                p.children.insert(name);
            }
            tree.nodes.insert(n.path, node);
        }
        for s in snap.sessions {
            tree.open_session_as(now, s.session_id, Duration::from_millis(s.timeout_ms.into()), s.secret, s.identity)
                .map_err(|e| format!("snapshot session: {e}"))?;
        }
        Ok(tree)
    }

    /// Replays one logged change at `now` (recovery). A change that took effect once takes effect again on the
    /// same state; one that does not is damage, reported as such.
    pub fn replay(&mut self, now: Duration, txn: pb::Txn) -> Result<(), String> {
        use pb::txn::Kind;
        let op = |o: Option<pb::Op>| -> Result<Op, String> {
            super::server::op_from_proto(o.ok_or("empty op")?).map_err(|e| e.to_string())
        };
        let result = match txn.kind.ok_or("empty change")? {
            Kind::OpenSession(o) => self
                .open_session_as(now, o.session_id, Duration::from_millis(o.timeout_ms.into()), o.secret, o.identity)
                .map(|_| ()),
            Kind::EndSession(id) => {
                self.end_session(id);
                Ok(())
            }
            Kind::Create(r) => {
                let c = r.op.ok_or("create without an op")?;
                let mode = CreateMode::from_proto(c.mode).map_err(|e| e.to_string())?;
                self.create(r.session_id, &c.path, c.data, mode).map(|_| ())
            }
            Kind::Set(r) => {
                let o = r.op.ok_or("set without an op")?;
                self.set(r.session_id, &o.path, o.data, (o.version >= 0).then_some(o.version)).map(|_| ())
            }
            Kind::Delete(r) => {
                let o = r.op.ok_or("delete without an op")?;
                self.delete(r.session_id, &o.path, (o.version >= 0).then_some(o.version))
            }
            Kind::Multi(r) => {
                let ops = r.ops.into_iter().map(|o| op(Some(o))).collect::<Result<Vec<_>, _>>()?;
                self.multi(r.session_id, ops).map(|_| ())
            }
        };
        result.map_err(|e| format!("a logged change does not apply again: {e}"))
    }

    // ---- events ---------------------------------------------------------------------------------------------

    /// Drops the events `id` acknowledged (seq <= `ack`) and returns the rest, oldest first.
    pub fn pending_events(&mut self, id: SessionId, ack: u64) -> Result<Vec<QueuedEvent>, CoordError> {
        let s = self.sessions.get_mut(&id).ok_or(CoordError::SessionExpired)?;
        while s.events.front().is_some_and(|e| e.seq <= ack) {
            s.events.pop_front();
        }
        Ok(s.events.iter().cloned().collect())
    }

    /// Sessions that have new events since the last call.
    pub fn take_woken(&mut self) -> BTreeSet<SessionId> {
        std::mem::take(&mut self.woken)
    }

    fn fire(&mut self, triggers: Vec<(String, Trigger)>) {
        let mut overflowed = Vec::new();
        for (path, trigger) in triggers {
            let (watches, kind) = match trigger {
                Trigger::Data(k) => (self.data_watches.remove(&path), k),
                Trigger::Child(k) => (self.child_watches.remove(&path), k),
            };
            for (sid, watch_id) in watches.into_iter().flatten() {
                let Some(s) = self.sessions.get_mut(&sid) else { continue };
                let seq = s.next_seq;
                s.next_seq += 1;
                s.events.push_back(QueuedEvent { seq, watch_id, kind, path: path.clone() });
                if s.events.len() > self.config.max_queued_events {
                    overflowed.push(sid);
                }
                self.woken.insert(sid);
            }
        }
        for sid in overflowed {
            tracing::warn!(session = sid, "watch event queue overflowed; expiring the session");
            if self.end_session(sid) {
                self.ended_by_overflow.push(sid);
            }
        }
    }

    // ---- reads ----------------------------------------------------------------------------------------------

    fn stat_of(node: &Node) -> Stat {
        let mut stat = node.stat;
        stat.num_children = i32::try_from(node.children.len()).unwrap_or(i32::MAX);
        stat.data_length = i32::try_from(node.data.len()).unwrap_or(i32::MAX);
        stat
    }

    fn add_watch(&mut self, children: bool, path: &str, session: SessionId, watch_id: u64) {
        if watch_id == 0 {
            return;
        }
        let map = if children { &mut self.child_watches } else { &mut self.data_watches };
        map.entry(path.to_string()).or_default().insert((session, watch_id));
    }

    /// Reads a node; a non-zero `watch_id` watches its next change (only if it exists).
    pub fn get(&mut self, session: SessionId, path: &str, watch_id: u64) -> Result<(Bytes, Stat), CoordError> {
        validate_path(path, false)?;
        let node = self.nodes.get(path).ok_or_else(|| CoordError::NoNode(path.to_string()))?;
        self.check_acl(session, node, path)?;
        let out = (node.data.clone(), Self::stat_of(node));
        self.add_watch(false, path, session, watch_id);
        Ok(out)
    }

    /// Stat of a node if it exists; a non-zero `watch_id` watches it either way.
    pub fn exists(&mut self, session: SessionId, path: &str, watch_id: u64) -> Result<Option<Stat>, CoordError> {
        validate_path(path, false)?;
        let stat = self.nodes.get(path).map(Self::stat_of);
        self.add_watch(false, path, session, watch_id);
        Ok(stat)
    }

    /// Sorted child names; a non-zero `watch_id` watches the set of children (only if the node exists).
    pub fn children(
        &mut self,
        session: SessionId,
        path: &str,
        watch_id: u64,
    ) -> Result<(Vec<String>, Stat), CoordError> {
        validate_path(path, false)?;
        let node = self.nodes.get(path).ok_or_else(|| CoordError::NoNode(path.to_string()))?;
        self.check_acl(session, node, path)?;
        let out = (node.children.iter().cloned().collect(), Self::stat_of(node));
        self.add_watch(true, path, session, watch_id);
        Ok(out)
    }

    // ---- writes ---------------------------------------------------------------------------------------------

    pub fn create(
        &mut self,
        session: SessionId,
        path: &str,
        data: Bytes,
        mode: CreateMode,
    ) -> Result<(String, Stat), CoordError> {
        match self.multi(session, vec![Op::Create { path: path.to_string(), data: data.to_vec(), mode }]) {
            Ok(mut r) => match r.pop() {
                Some(OpResult::Created { path, stat }) => Ok((path, stat)),
                other => unreachable!("a create yields a Created result, got {other:?}"),
            },
            Err(CoordError::Multi { source, .. }) => Err(*source),
            Err(e) => Err(e),
        }
    }

    pub fn set(
        &mut self,
        session: SessionId,
        path: &str,
        data: Bytes,
        version: Option<i32>,
    ) -> Result<Stat, CoordError> {
        match self.multi(session, vec![Op::Set { path: path.to_string(), data: data.to_vec(), version }]) {
            Ok(mut r) => match r.pop() {
                Some(OpResult::Set { stat }) => Ok(stat),
                other => unreachable!("a set yields a Set result, got {other:?}"),
            },
            Err(CoordError::Multi { source, .. }) => Err(*source),
            Err(e) => Err(e),
        }
    }

    pub fn delete(&mut self, session: SessionId, path: &str, version: Option<i32>) -> Result<(), CoordError> {
        match self.multi(session, vec![Op::Delete { path: path.to_string(), version }]) {
            Ok(_) => Ok(()),
            Err(CoordError::Multi { source, .. }) => Err(*source),
            Err(e) => Err(e),
        }
    }

    /// Applies every op in order, or none: on the first failure every change is undone and no watch fires.
    pub fn multi(&mut self, session: SessionId, ops: Vec<Op>) -> Result<Vec<OpResult>, CoordError> {
        if !self.sessions.contains_key(&session) {
            return Err(CoordError::SessionExpired);
        }
        let saved_zxid = self.zxid;
        self.zxid += 1;
        let mut undo = UndoLog::new();
        let mut triggers = Vec::new();
        let mut results = Vec::with_capacity(ops.len());
        for (index, op) in ops.into_iter().enumerate() {
            match self.apply_op(session, op, &mut undo, &mut triggers) {
                Ok(r) => results.push(r),
                Err(e) => {
                    for (path, prior) in undo {
                        match prior {
                            Some(node) => self.nodes.insert(path, node),
                            None => self.nodes.remove(&path),
                        };
                    }
                    self.zxid = saved_zxid;
                    return Err(CoordError::Multi { index, source: Box::new(e) });
                }
            }
        }
        self.fire(triggers);
        Ok(results)
    }

    fn remember(&self, undo: &mut UndoLog, path: &str) {
        if !undo.contains_key(path) {
            undo.insert(path.to_string(), self.nodes.get(path).cloned());
        }
    }

    fn apply_op(
        &mut self,
        session: SessionId,
        op: Op,
        undo: &mut UndoLog,
        triggers: &mut Vec<(String, Trigger)>,
    ) -> Result<OpResult, CoordError> {
        match op {
            Op::Create { path, data, mode } => {
                let (path, stat) = self.create_node(session, &path, data.into(), mode, undo, triggers)?;
                Ok(OpResult::Created { path, stat })
            }
            Op::Set { path, data, version } => {
                validate_path(&path, false)?;
                self.check_len(&data)?;
                let zxid = self.zxid;
                let node = self.nodes.get(&path).ok_or_else(|| CoordError::NoNode(path.clone()))?;
                self.check_acl(session, node, &path)?;
                check_version(&path, version, node.stat.version)?;
                self.remember(undo, &path);
                let node = self.nodes.get_mut(&path).expect("checked above");
                node.data = data.into();
                node.stat.version += 1;
                node.stat.mzxid = zxid;
                let stat = Self::stat_of(node);
                triggers.push((path, Trigger::Data(WatchKind::NodeDataChanged)));
                Ok(OpResult::Set { stat })
            }
            Op::Delete { path, version } => {
                validate_path(&path, false)?;
                if let Some(parent) = parent_of(&path).and_then(|p| self.nodes.get(p).map(|n| (p, n))) {
                    self.check_acl(session, parent.1, parent.0)?;
                }
                self.delete_node(&path, version, undo, triggers)?;
                Ok(OpResult::Deleted)
            }
            Op::Check { path, version } => {
                validate_path(&path, false)?;
                let node = self.nodes.get(&path).ok_or_else(|| CoordError::NoNode(path.clone()))?;
                self.check_acl(session, node, &path)?;
                check_version(&path, Some(version), node.stat.version)?;
                Ok(OpResult::Checked)
            }
        }
    }

    /// Refuses `session` access to `node` at `path` unless the node is open to anyone or the session is
    /// authenticated as the node's creator.
    fn check_acl(&self, session: SessionId, node: &Node, path: &str) -> Result<(), CoordError> {
        let Some(acl) = &node.acl else { return Ok(()) };
        match self.sessions.get(&session).and_then(|s| s.identity.as_ref()) {
            Some(id) if id == acl => Ok(()),
            _ => Err(CoordError::NoAuth(path.to_string())),
        }
    }

    fn check_len(&self, data: &[u8]) -> Result<(), CoordError> {
        if data.len() > self.config.max_data_len {
            return Err(CoordError::BadArguments(format!(
                "value of {} bytes exceeds the limit of {}",
                data.len(),
                self.config.max_data_len
            )));
        }
        Ok(())
    }

    fn create_node(
        &mut self,
        session: SessionId,
        path: &str,
        data: Bytes,
        mode: CreateMode,
        undo: &mut UndoLog,
        triggers: &mut Vec<(String, Trigger)>,
    ) -> Result<(String, Stat), CoordError> {
        validate_path(path, mode.is_sequential())?;
        self.check_len(&data)?;
        let parent_path = parent_of(path).ok_or_else(|| CoordError::NodeExists("/".to_string()))?;
        let parent = self.nodes.get(parent_path).ok_or_else(|| CoordError::NoNode(parent_path.to_string()))?;
        self.check_acl(session, parent, parent_path)?;
        if parent.stat.ephemeral_owner != 0 {
            return Err(CoordError::NoChildrenForEphemerals(parent_path.to_string()));
        }
        let path = if mode.is_sequential() {
            // As ZooKeeper: the suffix counts the children ever created under the parent, so it only increases.
            format!("{path}{:010}", parent.created_children)
        } else {
            path.to_string()
        };
        if self.nodes.contains_key(&path) {
            return Err(CoordError::NodeExists(path));
        }
        let zxid = self.zxid;
        self.remember(undo, parent_path);
        self.remember(undo, &path);
        let parent = self.nodes.get_mut(parent_path).expect("checked above");
        parent.stat.cversion += 1;
        parent.created_children += 1;
        let name = path[parent_path.len()..].trim_start_matches('/').to_string();
        parent.children.insert(name);
        let stat = Stat {
            czxid: zxid,
            mzxid: zxid,
            ephemeral_owner: if mode.is_ephemeral() { session } else { 0 },
            ..Stat::default()
        };
        let acl = self.sessions.get(&session).and_then(|s| s.identity.clone());
        let node = Node { data, stat, children: BTreeSet::new(), acl, created_children: 0 };
        let out = Self::stat_of(&node);
        self.nodes.insert(path.clone(), node);
        triggers.push((path.clone(), Trigger::Data(WatchKind::NodeCreated)));
        triggers.push((parent_path.to_string(), Trigger::Child(WatchKind::NodeChildrenChanged)));
        Ok((path, out))
    }

    fn delete_node(
        &mut self,
        path: &str,
        version: Option<i32>,
        undo: &mut UndoLog,
        triggers: &mut Vec<(String, Trigger)>,
    ) -> Result<(), CoordError> {
        validate_path(path, false)?;
        if path == "/" {
            return Err(CoordError::BadArguments("the root cannot be deleted".into()));
        }
        let node = self.nodes.get(path).ok_or_else(|| CoordError::NoNode(path.to_string()))?;
        check_version(path, version, node.stat.version)?;
        if !node.children.is_empty() {
            return Err(CoordError::NotEmpty(path.to_string()));
        }
        let parent_path = parent_of(path).expect("non-root path has a parent");
        self.remember(undo, path);
        self.remember(undo, parent_path);
        self.nodes.remove(path);
        let parent = self.nodes.get_mut(parent_path).expect("parent of an existing node exists");
        parent.children.remove(path[parent_path.len()..].trim_start_matches('/'));
        parent.stat.cversion += 1;
        triggers.push((path.to_string(), Trigger::Data(WatchKind::NodeDeleted)));
        triggers.push((path.to_string(), Trigger::Child(WatchKind::NodeDeleted)));
        triggers.push((parent_path.to_string(), Trigger::Child(WatchKind::NodeChildrenChanged)));
        Ok(())
    }
}

/// The identity of a `digest` credential `user:password`, as ZooKeeper forms it: `user:base64(sha1(user:password))`.
pub fn digest_identity(auth: &[u8]) -> Result<String, CoordError> {
    use base64::Engine;
    use sha1::Digest;
    let text = std::str::from_utf8(auth).map_err(|_| CoordError::AuthFailed("credentials are not UTF-8".into()))?;
    let Some((user, _)) = text.split_once(':') else {
        return Err(CoordError::AuthFailed("a digest credential is user:password".into()));
    };
    if user.is_empty() {
        return Err(CoordError::AuthFailed("a digest credential names a user".into()));
    }
    let digest = sha1::Sha1::digest(auth);
    Ok(format!("{user}:{}", base64::engine::general_purpose::STANDARD.encode(digest)))
}

/// Compares two secrets in time that depends only on their lengths.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn check_version(path: &str, expected: Option<i32>, actual: i32) -> Result<(), CoordError> {
    match expected {
        Some(v) if v != actual => Err(CoordError::BadVersion { path: path.to_string(), expected: v, actual }),
        _ => Ok(()),
    }
}

fn parent_of(path: &str) -> Option<&str> {
    if path == "/" {
        return None;
    }
    let idx = path.rfind('/')?;
    Some(if idx == 0 { "/" } else { &path[..idx] })
}

/// ZooKeeper's path rules: absolute, no empty, `.` or `..` components, no trailing slash (except `/`, and a
/// sequential create's prefix, which may end in `/`).
pub fn validate_path(path: &str, sequential: bool) -> Result<(), CoordError> {
    let bad = |why: &str| Err(CoordError::BadArguments(format!("invalid path {path:?}: {why}")));
    if !path.starts_with('/') {
        return bad("must start with '/'");
    }
    if path == "/" {
        return Ok(());
    }
    let body = if sequential { path.strip_suffix('/').unwrap_or(path) } else { path };
    if body.ends_with('/') || body.is_empty() {
        return bad("must not end with '/'");
    }
    for part in body[1..].split('/') {
        if part.is_empty() {
            return bad("empty component");
        }
        if part == "." || part == ".." {
            return bad("relative component");
        }
        if part.chars().any(|c| c == '\0' || c.is_control()) {
            return bad("control character");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn tree() -> (Tree, SessionId) {
        let mut t = Tree::new(TreeConfig::default(), 1);
        let (sid, _) = t.open_session(Duration::ZERO, 2 * S);
        (t, sid)
    }

    #[test]
    fn create_get_set_delete_with_versions() {
        let (mut t, s) = tree();
        assert_eq!(t.create(s, "/a", "x".into(), CreateMode::Persistent).unwrap().0, "/a");
        assert_eq!(t.create(s, "/a", "y".into(), CreateMode::Persistent), Err(CoordError::NodeExists("/a".into())));
        assert_eq!(t.create(s, "/b/c", "".into(), CreateMode::Persistent), Err(CoordError::NoNode("/b".into())));
        let (data, stat) = t.get(s, "/a", 0).unwrap();
        assert_eq!((&data[..], stat.version), (&b"x"[..], 0));
        assert!(t.set(s, "/a", "z".into(), Some(1)).unwrap_err().is_bad_version());
        assert_eq!(t.set(s, "/a", "z".into(), Some(0)).unwrap().version, 1);
        assert_eq!(t.set(s, "/a", "w".into(), None).unwrap().version, 2);
        t.create(s, "/a/k", "".into(), CreateMode::Persistent).unwrap();
        assert_eq!(t.delete(s, "/a", None), Err(CoordError::NotEmpty("/a".into())));
        assert!(t.delete(s, "/a/k", Some(3)).unwrap_err().is_bad_version());
        t.delete(s, "/a/k", Some(0)).unwrap();
        t.delete(s, "/a", None).unwrap();
        assert_eq!(t.exists(s, "/a", 0).unwrap(), None);
    }

    #[test]
    fn sequential_names_have_ten_digits_and_increase() {
        let (mut t, s) = tree();
        t.create(s, "/l", "".into(), CreateMode::Persistent).unwrap();
        let mut prev = String::new();
        for i in 0..12 {
            let (p, _) = t.create(s, "/l/lock_request", "".into(), CreateMode::EphemeralSequential).unwrap();
            assert_eq!(p.len(), "/l/lock_request".len() + 10, "{p}");
            assert!(p > prev, "{p} after {prev}");
            if i % 3 == 0 {
                t.delete(s, &p, None).unwrap();
            }
            prev = p;
        }
        // Deletions do not advance the suffix, as on ZooKeeper 3.8: 12 creations so far, so the next is 12.
        let (p, _) = t.create(s, "/l/x", "".into(), CreateMode::PersistentSequential).unwrap();
        assert_eq!(p, "/l/x0000000012");
        let (p, _) = t.create(s, "/l/", "".into(), CreateMode::PersistentSequential).unwrap();
        assert!(p.starts_with("/l/") && p.len() == 13, "{p}");
    }

    #[test]
    fn ephemeral_nodes_go_with_their_session_and_cannot_have_children() {
        let (mut t, s) = tree();
        let (s2, _) = t.open_session(Duration::ZERO, 2 * S);
        t.create(s, "/n", "".into(), CreateMode::Persistent).unwrap();
        t.create(s2, "/n/e", "".into(), CreateMode::Ephemeral).unwrap();
        assert_eq!(
            t.create(s, "/n/e/x", "".into(), CreateMode::Persistent),
            Err(CoordError::NoChildrenForEphemerals("/n/e".into()))
        );
        assert_eq!(t.get(s, "/n/e", 0).unwrap().1.ephemeral_owner, s2);
        let (_, _) = t.children(s, "/n", 7).unwrap();
        assert!(t.end_session(s2));
        assert_eq!(t.children(s, "/n", 0).unwrap().0, Vec::<String>::new());
        let ev = t.pending_events(s, 0).unwrap();
        assert_eq!(ev.len(), 1);
        assert_eq!((ev[0].watch_id, ev[0].kind, ev[0].path.as_str()), (7, WatchKind::NodeChildrenChanged, "/n"));
        assert_eq!(t.create(s2, "/x", "".into(), CreateMode::Persistent), Err(CoordError::SessionExpired));
    }

    #[test]
    fn expiry_happens_at_the_timeout_rounded_up_to_a_tick() {
        let mut t = Tree::new(TreeConfig::default(), 1);
        let (s, timeout) = t.open_session(ms(50), 2 * S);
        assert_eq!(timeout, 2 * S);
        t.create(s, "/e", "".into(), CreateMode::Ephemeral).unwrap();
        t.touch(ms(1030), s).unwrap();
        // last heard at 1030 ms: deadline 3030 ms, rounded up to the 200 ms tick: 3200 ms.
        assert_eq!(t.next_deadline(), Some(ms(3200)));
        assert!(t.expire(ms(3199)).is_empty());
        assert_eq!(t.expire(ms(3200)), vec![s]);
        assert!(!t.session_exists(s));
        assert_eq!(t.touch(ms(3300), s), Err(CoordError::SessionExpired));
    }

    #[test]
    fn timeouts_are_clamped_to_the_server_bounds() {
        let mut t = Tree::new(TreeConfig::default(), 1);
        assert_eq!(t.open_session(Duration::ZERO, ms(10)).1, ms(400));
        assert_eq!(t.open_session(Duration::ZERO, 600 * S).1, 60 * S);
    }

    #[test]
    fn watches_fire_once_with_the_right_kind() {
        let (mut t, s) = tree();
        t.exists(s, "/w", 1).unwrap();
        t.create(s, "/w", "".into(), CreateMode::Persistent).unwrap();
        t.get(s, "/w", 2).unwrap();
        t.children(s, "/w", 3).unwrap();
        t.set(s, "/w", "v".into(), None).unwrap();
        t.set(s, "/w", "v2".into(), None).unwrap(); // watch 2 already fired: nothing more
        t.exists(s, "/w", 4).unwrap();
        t.delete(s, "/w", None).unwrap();
        let ev: Vec<_> = t.pending_events(s, 0).unwrap().into_iter().map(|e| (e.seq, e.watch_id, e.kind)).collect();
        assert_eq!(
            ev,
            vec![
                (1, 1, WatchKind::NodeCreated),
                (2, 2, WatchKind::NodeDataChanged),
                (3, 4, WatchKind::NodeDeleted),
                (4, 3, WatchKind::NodeDeleted),
            ]
        );
        assert_eq!(t.pending_events(s, 2).unwrap().len(), 2);
        assert!(t.pending_events(s, 4).unwrap().is_empty());
        assert!(t.take_woken().contains(&s));
    }

    #[test]
    fn get_and_children_on_a_missing_node_set_no_watch() {
        let (mut t, s) = tree();
        assert!(t.get(s, "/m", 1).is_err());
        assert!(t.children(s, "/m", 2).is_err());
        t.create(s, "/m", "".into(), CreateMode::Persistent).unwrap();
        assert!(t.pending_events(s, 0).unwrap().is_empty());
    }

    #[test]
    fn multi_is_all_or_nothing() {
        let (mut t, s) = tree();
        t.create(s, "/m", "0".into(), CreateMode::Persistent).unwrap();
        t.children(s, "/", 9).unwrap();
        let err = t
            .multi(
                s,
                vec![
                    Op::Create { path: "/m/a".into(), data: vec![], mode: CreateMode::Persistent },
                    Op::Set { path: "/m".into(), data: b"1".to_vec(), version: Some(0) },
                    Op::Delete { path: "/nope".into(), version: None },
                ],
            )
            .unwrap_err();
        match err {
            CoordError::Multi { index, source } => {
                assert_eq!(index, 2);
                assert_eq!(*source, CoordError::NoNode("/nope".into()));
            }
            other => panic!("unexpected {other:?}"),
        }
        let (data, stat) = t.get(s, "/m", 0).unwrap();
        assert_eq!((&data[..], stat.version, stat.num_children), (&b"0"[..], 0, 0));
        assert!(t.pending_events(s, 0).unwrap().is_empty(), "a failed multi fires no watch");
        let r = t
            .multi(
                s,
                vec![
                    Op::Check { path: "/m".into(), version: 0 },
                    Op::Create { path: "/m/a".into(), data: vec![], mode: CreateMode::Persistent },
                    Op::Set { path: "/m".into(), data: b"1".to_vec(), version: Some(0) },
                    Op::Create { path: "/x".into(), data: vec![], mode: CreateMode::Persistent },
                ],
            )
            .unwrap();
        assert_eq!(r.len(), 4);
        assert_eq!(t.get(s, "/m", 0).unwrap().1.num_children, 1);
        assert_eq!(t.pending_events(s, 0).unwrap().len(), 1);
    }

    #[test]
    fn event_queue_overflow_expires_the_session_instead_of_dropping_events() {
        let config = TreeConfig { max_queued_events: 2, ..TreeConfig::default() };
        let mut t = Tree::new(config, 1);
        let (s, _) = t.open_session(Duration::ZERO, 2 * S);
        let (w, _) = t.open_session(Duration::ZERO, 2 * S);
        for i in 0..3 {
            let p = format!("/n{i}");
            t.exists(w, &p, i + 1).unwrap();
            t.create(s, &p, "".into(), CreateMode::Persistent).unwrap();
        }
        assert!(!t.session_exists(w));
        assert!(t.session_exists(s));
    }

    #[test]
    fn path_validation() {
        for bad in ["", "a", "/a/", "//", "/a//b", "/a/./b", "/a/.."] {
            assert!(validate_path(bad, false).is_err(), "{bad:?}");
        }
        for good in ["/", "/a", "/a/b-1:2", "/openmldb/nodes/10.0.0.1:9527"] {
            assert!(validate_path(good, false).is_ok(), "{good:?}");
        }
        assert!(validate_path("/a/", true).is_ok());
    }

    #[test]
    fn a_session_is_used_only_with_its_secret_and_nodes_only_by_their_creators_identity() {
        let mut t = Tree::new(TreeConfig::default(), 1);
        let me = digest_identity(b"alice:pw").unwrap();
        // As ZooKeeper's DigestAuthenticationProvider: base64(sha1("alice:pw")).
        assert_eq!(me, "alice:V55/p2T0OpjQ+low3NVAH4aLvm0=");
        assert_ne!(me, digest_identity(b"alice:other").unwrap(), "the password is part of the identity");
        assert!(digest_identity(b"nocolon").is_err() && digest_identity(b":pw").is_err());
        t.open_session_as(S, 10, ms(2000), Bytes::from_static(b"k10"), Some(me.clone())).unwrap();
        t.open_session_as(S, 11, ms(2000), Bytes::from_static(b"k11"), None).unwrap();
        t.open_session_as(S, 12, ms(2000), Bytes::from_static(b"k12"), Some(me)).unwrap();
        assert!(t.authenticate(10, b"k10").is_ok());
        assert!(matches!(t.authenticate(10, b"k11"), Err(CoordError::AuthFailed(_))));
        assert!(matches!(t.authenticate(10, b""), Err(CoordError::AuthFailed(_))));
        assert_eq!(t.authenticate(99, b"k10"), Err(CoordError::SessionExpired));
        t.create(10, "/c", Bytes::from_static(b"v"), CreateMode::Persistent).unwrap();
        t.create(11, "/open", Bytes::new(), CreateMode::Persistent).unwrap();
        // The stranger (11) may see that /c exists, nothing more.
        assert!(t.exists(11, "/c", 0).unwrap().is_some());
        let no = Err(CoordError::NoAuth("/c".into()));
        assert_eq!(t.get(11, "/c", 0).map(|_| ()), no);
        assert_eq!(t.children(11, "/c", 0).map(|_| ()), no);
        assert_eq!(t.set(11, "/c", Bytes::new(), None).map(|_| ()), no);
        assert_eq!(t.create(11, "/c/x", Bytes::new(), CreateMode::Persistent).map(|_| ()), no);
        assert!(matches!(
            t.multi(11, vec![Op::Check { path: "/c".into(), version: 0 }]),
            Err(CoordError::Multi { .. })
        ));
        // Another session with the same credentials (12) may do everything; anyone may use /open.
        t.create(12, "/c/x", Bytes::new(), CreateMode::Persistent).unwrap();
        assert_eq!(t.delete(11, "/c/x", None), no);
        t.delete(12, "/c/x", None).unwrap();
        t.set(10, "/open", Bytes::from_static(b"w"), None).unwrap();
        assert_eq!(t.get(11, "/open", 0).unwrap().0, Bytes::from_static(b"w"));
    }

    #[test]
    fn a_snapshot_restores_the_tree_and_replayed_changes_rebuild_it_exactly() {
        use pb::txn::Kind;
        let create = |sid, path: &str, mode: CreateMode| pb::Txn {
            kind: Some(Kind::Create(pb::CreateRequest {
                session_id: sid,
                op: Some(pb::CreateOp { path: path.into(), data: Bytes::from_static(b"d"), mode: mode.to_proto() }),
                ..Default::default()
            })),
        };
        let txns = vec![
            pb::Txn {
                kind: Some(Kind::OpenSession(pb::OpenSessionTxn {
                    session_id: 77,
                    timeout_ms: 1000,
                    secret: Bytes::from_static(b"s77"),
                    identity: None,
                })),
            },
            create(77, "/a", CreateMode::Persistent),
            create(77, "/a/s-", CreateMode::PersistentSequential),
            create(77, "/a/e", CreateMode::Ephemeral),
            pb::Txn {
                kind: Some(Kind::Set(pb::SetRequest {
                    session_id: 77,
                    op: Some(pb::SetOp { path: "/a".into(), data: Bytes::from_static(b"v2"), version: 0 }),
                    ..Default::default()
                })),
            },
            pb::Txn {
                kind: Some(Kind::OpenSession(pb::OpenSessionTxn {
                    session_id: 78,
                    timeout_ms: 1000,
                    secret: Bytes::from_static(b"s78"),
                    identity: None,
                })),
            },
            create(78, "/b", CreateMode::Ephemeral),
            pb::Txn {
                kind: Some(Kind::OpenSession(pb::OpenSessionTxn {
                    session_id: 79,
                    timeout_ms: 1000,
                    secret: Bytes::from_static(b"s79"),
                    identity: Some("u:x".into()),
                })),
            },
            create(79, "/p", CreateMode::Persistent),
            pb::Txn { kind: Some(Kind::EndSession(78)) },
        ];
        let mut live = Tree::new(TreeConfig::default(), 1);
        for t in txns.clone() {
            live.replay(S, t).unwrap();
        }
        let snap = live.snapshot(txns.len() as u64);
        assert_eq!(snap.sessions.iter().map(|s| s.session_id).collect::<Vec<_>>(), vec![77, 79]);
        assert!(snap.nodes.iter().any(|n| n.path == "/a/s-0000000000"));
        assert!(!snap.nodes.iter().any(|n| n.path == "/b"), "an ended session's node is gone");
        // Restored, the tree answers as before and goes on numbering where it stopped.
        let mut back = Tree::restore(TreeConfig::default(), snap.clone(), ms(5000)).unwrap();
        assert_eq!(back.snapshot(txns.len() as u64), snap);
        assert_eq!(back.get(77, "/a", 0).unwrap().0, Bytes::from_static(b"v2"));
        assert_eq!(back.get(77, "/a/e", 0).unwrap().1.ephemeral_owner, 77);
        let (next, _) = back.create(77, "/a/s-", Bytes::new(), CreateMode::PersistentSequential).unwrap();
        assert_eq!(next, "/a/s-0000000002");
        // Secrets, identities and access lists come back: only 79's own credentials reach its node.
        assert!(back.authenticate(77, b"s77").is_ok());
        assert!(matches!(back.authenticate(77, b"s78"), Err(CoordError::AuthFailed(_))));
        assert_eq!(back.get(77, "/p", 0), Err(CoordError::NoAuth("/p".into())));
        assert!(back.get(79, "/p", 0).is_ok());
        // The restored sessions have a whole timeout from the restore, then expire with their nodes.
        assert!(back.expire(ms(5900)).is_empty());
        assert_eq!(back.expire(ms(6200)), vec![77, 79]);
        assert!(back.get(1, "/a/e", 0).is_err());
        // A change that cannot apply again is damage.
        let mut fresh = Tree::new(TreeConfig::default(), 1);
        assert!(fresh.replay(S, create(77, "/x", CreateMode::Persistent)).is_err(), "no such session");
    }
}
