//! The coordination conformance suite: ZooKeeper semantics every backend must show.
//!
//! A backend provides a [`Backend`]: a way to open sessions, the `--zk_cluster` spec that names its server, the
//! bounds of its timing, and (where the test can) a restart of its server. Dropping a coordinator without `close`
//! must behave as a crashed client (no goodbye, the server expires the session). The chroot and credential cases
//! open their sessions through `openmldb::coord::connect`, as every role does.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use std::sync::Arc;

use openmldb::coord::{
    ClientOptions, CoordError, Coordinator, CreateMode, Credentials, Op, OpResult, SessionState, WatchKind, create_all,
};
use tokio::time::Instant;

/// How the suite reaches one backend.
pub trait Backend: Send + Sync {
    /// Opens a session with the given timeout.
    fn connect(&self, session_timeout: Duration) -> Pin<Box<dyn Future<Output = Box<dyn Coordinator>> + Send + '_>>;
    /// How late after its deadline the server may expire a session (ZooKeeper: one tick).
    fn expiry_slack(&self) -> Duration;
    /// A root under which this run's nodes live (distinct per run against a shared server).
    fn root(&self) -> String;
    /// The `--zk_cluster` value that names the server (`model://host:port` or `host:port[,...]`).
    fn spec(&self) -> String;
    /// Kills the server (as `kill -9` or a crash would) and starts it again on its data, returning once it serves;
    /// `None` if this backend's harness cannot restart it (the restart case then says it skipped).
    fn restart(&self) -> Option<Pin<Box<dyn Future<Output = ()> + Send + '_>>> {
        None
    }
}

/// A session through `openmldb::coord::connect`, with the spec's server, a chroot suffix and options.
async fn open(b: &dyn Backend, chroot: &str, options: ClientOptions) -> Arc<dyn Coordinator> {
    let spec = format!("{}{chroot}", b.spec());
    openmldb::coord::connect(&spec, options).await.unwrap_or_else(|e| panic!("connect {spec}: {e}"))
}

fn digest(cert: &str) -> ClientOptions {
    ClientOptions::new(T).with_auth(Some(Credentials { scheme: "digest".into(), cert: cert.into() }))
}

type TestFn = for<'a> fn(&'a dyn Backend) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Every case of the suite, by name.
pub fn cases() -> Vec<(&'static str, TestFn)> {
    vec![
        ("create_get_set_delete", |b| Box::pin(create_get_set_delete(b))),
        ("cas_conflict_is_a_version_error", |b| Box::pin(cas_conflict_is_a_version_error(b))),
        ("sequential_names_increase", |b| Box::pin(sequential_names_increase(b))),
        ("watches_fire_exactly_once", |b| Box::pin(watches_fire_exactly_once(b))),
        ("multi_is_all_or_nothing", |b| Box::pin(multi_is_all_or_nothing(b))),
        ("close_removes_ephemerals_at_once", |b| Box::pin(close_removes_ephemerals_at_once(b))),
        ("expiry_timing", |b| Box::pin(expiry_timing(b))),
        ("a_chroot_is_a_subtree_seen_as_root", |b| Box::pin(a_chroot_is_a_subtree_seen_as_root(b))),
        ("credentials_guard_the_nodes_they_create", |b| Box::pin(credentials_guard_the_nodes_they_create(b))),
        ("a_restart_keeps_the_tree_and_the_session", |b| Box::pin(a_restart_keeps_the_tree_and_the_session(b))),
    ]
}

/// Runs every case in order; a failing case panics with its name.
pub async fn run_all(backend: &dyn Backend) {
    for (name, case) in cases() {
        tracing::info!(case = name, "conformance case");
        case(backend).await;
    }
}

const T: Duration = Duration::from_secs(2);

async fn setup(b: &dyn Backend, case: &str) -> (Box<dyn Coordinator>, String) {
    let c = b.connect(T).await;
    let dir = format!("{}/{case}", b.root());
    create_all(c.as_ref(), &dir).await.expect("create the case's directory");
    (c, dir)
}

pub async fn create_get_set_delete(b: &dyn Backend) {
    let (c, dir) = setup(b, "basic").await;
    let p = format!("{dir}/a");
    assert_eq!(c.create(&p, b"v0", CreateMode::Persistent).await.unwrap(), p);
    assert!(matches!(c.create(&p, b"x", CreateMode::Persistent).await, Err(CoordError::NodeExists(_))));
    assert!(matches!(
        c.create(&format!("{dir}/none/x"), b"", CreateMode::Persistent).await,
        Err(CoordError::NoNode(_))
    ));
    let (data, stat) = c.get(&p).await.unwrap();
    assert_eq!((data.as_slice(), stat.version), (&b"v0"[..], 0));
    assert_eq!(c.set(&p, b"v1", None).await.unwrap().version, 1);
    c.create(&format!("{p}/child"), b"", CreateMode::Persistent).await.unwrap();
    assert!(matches!(c.delete(&p, None).await, Err(CoordError::NotEmpty(_))));
    assert_eq!(c.children(&p).await.unwrap(), vec!["child".to_string()]);
    assert_eq!(c.get(&p).await.unwrap().1.num_children, 1);
    c.delete(&format!("{p}/child"), None).await.unwrap();
    c.delete(&p, Some(1)).await.unwrap();
    assert_eq!(c.exists(&p).await.unwrap(), None);
    assert!(matches!(c.get(&p).await, Err(CoordError::NoNode(_))));
    let e = format!("{dir}/eph");
    c.create(&e, b"", CreateMode::Ephemeral).await.unwrap();
    assert_eq!(c.exists(&e).await.unwrap().unwrap().ephemeral_owner, c.session_id());
    assert!(matches!(
        c.create(&format!("{e}/x"), b"", CreateMode::Persistent).await,
        Err(CoordError::NoChildrenForEphemerals(_))
    ));
    c.close().await;
}

pub async fn cas_conflict_is_a_version_error(b: &dyn Backend) {
    let (c, dir) = setup(b, "cas").await;
    let other = b.connect(T).await;
    let p = format!("{dir}/counter");
    c.create(&p, b"0", CreateMode::Persistent).await.unwrap();
    let (_, stat) = c.get(&p).await.unwrap();
    // Another session wins the race ...
    other.set(&p, b"1", Some(stat.version)).await.unwrap();
    // ... so this compare-and-set, and a versioned delete, must fail and change nothing.
    let err = c.set(&p, b"1", Some(stat.version)).await.unwrap_err();
    assert!(err.is_bad_version(), "{err:?}");
    assert!(c.delete(&p, Some(stat.version)).await.unwrap_err().is_bad_version());
    let (data, now) = c.get(&p).await.unwrap();
    assert_eq!((data.as_slice(), now.version), (&b"1"[..], stat.version + 1));
    c.close().await;
    other.close().await;
}

pub async fn sequential_names_increase(b: &dyn Backend) {
    let (c, dir) = setup(b, "seq").await;
    let prefix = format!("{dir}/lock_request");
    let mut names = Vec::new();
    for i in 0..20 {
        let mode = if i % 2 == 0 { CreateMode::EphemeralSequential } else { CreateMode::PersistentSequential };
        let p = c.create(&prefix, b"", mode).await.unwrap();
        let suffix = &p[prefix.len()..];
        assert_eq!(suffix.len(), 10, "{p}");
        assert!(suffix.bytes().all(|d| d.is_ascii_digit()), "{p}");
        if let Some(last) = names.last() {
            assert!(p > *last, "{p} not after {last}");
        }
        if i % 5 == 0 {
            c.delete(&p, None).await.unwrap();
        }
        names.push(p);
    }
    let mut listed = c.children(&dir).await.unwrap();
    let sorted = {
        let mut s = listed.clone();
        s.sort();
        s
    };
    assert_eq!(listed, sorted, "children are listed sorted");
    listed.retain(|n| n.starts_with("lock_request"));
    assert_eq!(listed.len(), 16);
    c.close().await;
}

pub async fn watches_fire_exactly_once(b: &dyn Backend) {
    let (c, dir) = setup(b, "watch").await;
    let w = b.connect(T).await;
    let p = format!("{dir}/n");

    // An exists watch on an absent node fires on creation.
    let (none, created) = w.exists_watch(&p).await.unwrap();
    assert!(none.is_none());
    let (_, children) = w.children_watch(&dir).await.unwrap();
    c.create(&p, b"a", CreateMode::Ephemeral).await.unwrap();
    let ev = created.changed().await;
    assert_eq!((ev.kind, ev.path.as_str()), (WatchKind::NodeCreated, p.as_str()));
    let ev = children.changed().await;
    assert_eq!((ev.kind, ev.path.as_str()), (WatchKind::NodeChildrenChanged, dir.as_str()));

    // Two data watches see only the first of two changes; a third set after them sees the second.
    let (_, _, d1) = w.get_watch(&p).await.unwrap();
    let (_, _, d2) = w.get_watch(&p).await.unwrap();
    c.set(&p, b"b", None).await.unwrap();
    let (_, _, d3) = w.get_watch(&p).await.unwrap();
    c.set(&p, b"c", None).await.unwrap();
    for d in [d1, d2, d3] {
        let ev = d.changed().await;
        assert_eq!(ev.kind, WatchKind::NodeDataChanged);
    }

    // A watch that fired is gone: this set is seen by no earlier watch, only by the fresh one below.
    let (_, _, gone) = w.get_watch(&p).await.unwrap();
    let (_, kids) = w.children_watch(&dir).await.unwrap();
    // The ephemeral owner's session ends: the node goes and both watches fire once.
    c.close().await;
    let ev = gone.changed().await;
    assert_eq!(ev.kind, WatchKind::NodeDeleted);
    let ev = kids.changed().await;
    assert_eq!(ev.kind, WatchKind::NodeChildrenChanged);

    // Nothing else is pending: a new watch fires for the next change only, and not before it.
    let (_, later) = w.exists_watch(&p).await.unwrap();
    let fired_early = tokio::time::timeout(Duration::from_millis(300), later.changed()).await;
    assert!(fired_early.is_err(), "a watch fired without a change: {fired_early:?}");
    w.close().await;
}

pub async fn multi_is_all_or_nothing(b: &dyn Backend) {
    let (c, dir) = setup(b, "multi").await;
    let m = format!("{dir}/m");
    c.create(&m, b"0", CreateMode::Persistent).await.unwrap();
    let (_, watch) = c.children_watch(&m).await.unwrap();
    let err = c
        .multi(vec![
            Op::Create { path: format!("{m}/a"), data: vec![], mode: CreateMode::Persistent },
            Op::Set { path: m.clone(), data: b"1".to_vec(), version: Some(0) },
            Op::Check { path: m.clone(), version: 0 },
        ])
        .await
        .unwrap_err();
    // The set bumped the version inside the transaction, so the check at index 2 fails.
    match err {
        CoordError::Multi { index, source } => {
            assert_eq!(index, 2);
            assert!(source.is_bad_version(), "{source:?}");
        }
        other => panic!("expected a multi error, got {other:?}"),
    }
    let (data, stat) = c.get(&m).await.unwrap();
    assert_eq!((data.as_slice(), stat.version, stat.num_children), (&b"0"[..], 0, 0), "nothing applied");
    assert_eq!(c.exists(&format!("{m}/a")).await.unwrap(), None);

    let results = c
        .multi(vec![
            Op::Check { path: m.clone(), version: 0 },
            Op::Create { path: format!("{m}/a"), data: b"x".to_vec(), mode: CreateMode::Persistent },
            Op::Set { path: m.clone(), data: b"1".to_vec(), version: Some(0) },
            Op::Delete { path: format!("{m}/a"), version: None },
            Op::Create { path: format!("{m}/seq-"), data: vec![], mode: CreateMode::PersistentSequential },
        ])
        .await
        .unwrap();
    assert_eq!(results.len(), 5);
    match &results[4] {
        OpResult::Created { path, .. } => assert!(path.starts_with(&format!("{m}/seq-")) && path.len() == m.len() + 15),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(c.get(&m).await.unwrap().1.version, 1);
    // The watch fires once for the committed transaction, not for the failed one.
    assert_eq!(watch.changed().await.kind, WatchKind::NodeChildrenChanged);
    c.close().await;
}

pub async fn close_removes_ephemerals_at_once(b: &dyn Backend) {
    let (c, dir) = setup(b, "close").await;
    let w = b.connect(T).await;
    let p = format!("{dir}/e");
    c.create(&p, b"", CreateMode::Ephemeral).await.unwrap();
    let (_, watch) = w.exists_watch(&p).await.unwrap();
    let start = Instant::now();
    c.close().await;
    assert_eq!(watch.changed().await.kind, WatchKind::NodeDeleted);
    assert!(start.elapsed() < T / 4, "a clean close removes ephemerals at once, took {:?}", start.elapsed());
    assert!(matches!(c.exists(&p).await, Err(CoordError::Closed | CoordError::SessionExpired)));
    w.close().await;
}

/// A client that stops heartbeating (dropped without close, as in a crash): its ephemeral node goes no earlier
/// than the timeout after its last heartbeat and no later than the timeout plus the server's expiry slack.
pub async fn expiry_timing(b: &dyn Backend) {
    let (c, dir) = setup(b, "expiry").await;
    let w = b.connect(T).await;
    let p = format!("{dir}/e");
    c.create(&p, b"", CreateMode::Ephemeral).await.unwrap();
    let (_, watch) = w.exists_watch(&p).await.unwrap();
    let timeout = c.session_timeout();
    // This request is a heartbeat: the last one the server can be sure of, before the crash.
    let before_last = Instant::now();
    c.exists(&p).await.unwrap();
    let crash = Instant::now();
    drop(c);
    assert_eq!(watch.changed().await.kind, WatchKind::NodeDeleted);
    let gone = Instant::now();
    // A heartbeat in flight at the crash may still arrive: allow one network delay after it.
    let in_flight = Duration::from_millis(50);
    assert!(gone >= before_last + timeout, "node gone after {:?}, before the timeout {timeout:?}", gone - before_last);
    assert!(
        gone <= crash + in_flight + timeout + b.expiry_slack(),
        "node gone {:?} after the crash; bound {:?}",
        gone - crash,
        timeout + b.expiry_slack() + in_flight
    );
    w.close().await;
}

/// A spec ending in a path: the session sees that node as `/`, and everything it reports comes back without the
/// prefix; the node is created if missing; a session without the chroot sees the same nodes under it.
pub async fn a_chroot_is_a_subtree_seen_as_root(b: &dyn Backend) {
    let plain = open(b, "", ClientOptions::new(T)).await;
    let root = format!("{}/chroot/cluster", b.root());
    assert_eq!(plain.exists(&root).await.unwrap(), None);
    let c = open(b, &root, ClientOptions::new(T)).await;
    assert!(plain.exists(&root).await.unwrap().is_some(), "connect creates the chroot");
    assert!(c.exists("/").await.unwrap().is_some());
    assert_eq!(c.create("/a", b"1", CreateMode::Persistent).await.unwrap(), "/a");
    assert_eq!(plain.get(&format!("{root}/a")).await.unwrap().0, b"1");
    let seq = c.create("/a/s-", b"", CreateMode::EphemeralSequential).await.unwrap();
    assert!(seq.starts_with("/a/s-") && seq.len() == "/a/s-".len() + 10, "{seq}");
    assert_eq!(c.children("/").await.unwrap(), vec!["a".to_string()]);
    // Watches report paths under the chroot.
    let (_, kids) = c.children_watch("/a").await.unwrap();
    let (_, _, data) = c.get_watch("/a").await.unwrap();
    plain.create(&format!("{root}/a/x"), b"", CreateMode::Persistent).await.unwrap();
    plain.set(&format!("{root}/a"), b"2", None).await.unwrap();
    let ev = kids.changed().await;
    assert_eq!((ev.kind, ev.path.as_str()), (WatchKind::NodeChildrenChanged, "/a"));
    let ev = data.changed().await;
    assert_eq!((ev.kind, ev.path.as_str()), (WatchKind::NodeDataChanged, "/a"));
    // Errors and multi results too.
    assert_eq!(c.get("/none").await.unwrap_err(), CoordError::NoNode("/none".into()));
    match c.multi(vec![Op::Create { path: "/m-".into(), data: vec![], mode: CreateMode::PersistentSequential }]).await {
        Ok(r) => assert!(matches!(&r[0], OpResult::Created { path, .. } if path.starts_with("/m-")), "{r:?}"),
        Err(e) => panic!("multi under a chroot: {e}"),
    }
    c.close().await;
    plain.close().await;
}

/// OpenMLDB's `--zk_auth_schema=digest --zk_cert=user:password`: a session with credentials creates nodes only
/// the same credentials may read, change or create children under; others (none, or a wrong password) get NoAuth,
/// and may still see that the node exists.
pub async fn credentials_guard_the_nodes_they_create(b: &dyn Backend) {
    let (setup_session, dir) = setup(b, "auth").await;
    let alice = open(b, "", digest("alice:secret")).await;
    let p = format!("{dir}/guarded");
    alice.create(&p, b"mine", CreateMode::Persistent).await.unwrap();
    alice.create(&format!("{p}/child"), b"", CreateMode::Persistent).await.unwrap();
    let stranger = open(b, "", ClientOptions::new(T)).await;
    let wrong = open(b, "", digest("alice:guess")).await;
    for who in [&stranger, &wrong] {
        assert!(who.exists(&p).await.unwrap().is_some(), "exists needs no permission");
        assert!(matches!(who.get(&p).await, Err(CoordError::NoAuth(_))), "{:?}", who.get(&p).await);
        assert!(matches!(who.children(&p).await, Err(CoordError::NoAuth(_))));
        assert!(matches!(who.set(&p, b"theirs", None).await, Err(CoordError::NoAuth(_))));
        assert!(matches!(who.create(&format!("{p}/x"), b"", CreateMode::Persistent).await, Err(CoordError::NoAuth(_))));
        assert!(matches!(who.delete(&format!("{p}/child"), None).await, Err(CoordError::NoAuth(_))));
    }
    // The same credentials in another session have every permission.
    let again = open(b, "", digest("alice:secret")).await;
    assert_eq!(again.get(&p).await.unwrap().0, b"mine");
    assert_eq!(again.children(&p).await.unwrap(), vec!["child".to_string()]);
    again.delete(&format!("{p}/child"), None).await.unwrap();
    again.set(&p, b"still mine", None).await.unwrap();
    assert_eq!(alice.get(&p).await.unwrap().0, b"still mine");
    for s in [alice, stranger, wrong, again] {
        s.close().await;
    }
    setup_session.close().await;
}

/// The server is killed and started again on its data: the tree is back, and a session whose client reconnects
/// within its timeout goes on with the same id and its ephemeral node (ZooKeeper's behaviour, ours too).
pub async fn a_restart_keeps_the_tree_and_the_session(b: &dyn Backend) {
    let long = Duration::from_secs(10);
    let c = b.connect(long).await;
    let dir = format!("{}/restart", b.root());
    create_all(c.as_ref(), &dir).await.unwrap();
    c.create(&format!("{dir}/p"), b"kept", CreateMode::Persistent).await.unwrap();
    c.create(&format!("{dir}/e"), b"", CreateMode::Ephemeral).await.unwrap();
    let sid = c.session_id();
    let Some(restart) = b.restart() else {
        eprintln!("SKIPPED conformance case a_restart_keeps_the_tree_and_the_session: this harness cannot restart");
        c.close().await;
        return;
    };
    restart.await;
    let start = Instant::now();
    let data = loop {
        match c.get(&format!("{dir}/p")).await {
            Ok((data, _)) => break data,
            Err(e) => {
                assert!(start.elapsed() < long, "the session did not come back after the restart: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert_eq!(data, b"kept");
    assert_eq!(c.session_id(), sid);
    assert_eq!(c.get(&format!("{dir}/e")).await.unwrap().1.ephemeral_owner, sid, "the ephemeral node survived");
    while c.state() != SessionState::Connected {
        assert!(start.elapsed() < long, "session state {:?} after the restart", c.state());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A new session sees the same tree; the old one still closes cleanly.
    let other = b.connect(T).await;
    assert!(other.exists(&format!("{dir}/e")).await.unwrap().is_some());
    c.close().await;
    assert_eq!(other.exists(&format!("{dir}/e")).await.unwrap(), None);
    other.close().await;
}
