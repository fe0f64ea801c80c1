//! The coordination service in the simulator: the conformance suite on the `model` backend, sessions under
//! network faults and crashes, and the determinism of a seeded run.
#![cfg(madsim)]

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mldb_sim::harness::Cluster;
use mldb_sim::probes::{self, Seen, add_coord};
use mldb_sim::runner::run_seed;
use mldb_tests::conformance::{self, Backend};
use openmldb::coord::{
    ClientOptions, CoordServerConfig, Coordinator, Layout, ModelCoordinator, SessionState, WatchKind,
};
use tokio::time::Instant;

const TIMEOUT: Duration = Duration::from_secs(2);

/// A cluster with the coordination server on a machine of its own and `clients` idle client machines.
fn cluster(trace: mldb_sim::trace::Trace, clients: &[&str]) -> (Cluster, String) {
    let mut c = Cluster::new(trace);
    let addr = add_coord(&mut c);
    for name in clients {
        let m = c.add_machine(&format!("{name}-machine"));
        c.add_process(m, name, Cluster::idle(), true);
    }
    (c, addr)
}

/// A registrar on port 9527 with the test's session timeout.
fn registrar(coord: String, log: Arc<Mutex<Vec<Seen>>>) -> mldb_sim::harness::ProcessMain {
    probes::registrar(coord, 9527, TIMEOUT, log)
}

struct Model {
    addr: String,
    /// Asks the test's main task (which holds the cluster) to crash and start the coordination node.
    restart: tokio::sync::mpsc::Sender<tokio::sync::oneshot::Sender<()>>,
}

impl Backend for Model {
    fn connect(&self, session_timeout: Duration) -> Pin<Box<dyn Future<Output = Box<dyn Coordinator>> + Send + '_>> {
        Box::pin(async move {
            let c = ModelCoordinator::connect(&self.addr, ClientOptions::new(session_timeout)).await.expect("connect");
            Box::new(c) as Box<dyn Coordinator>
        })
    }
    fn expiry_slack(&self) -> Duration {
        CoordServerConfig::default().tree.tick
    }
    fn root(&self) -> String {
        "/conformance".into()
    }
    fn spec(&self) -> String {
        self.addr.clone()
    }
    fn restart(&self) -> Option<Pin<Box<dyn Future<Output = ()> + Send + '_>>> {
        Some(Box::pin(async move {
            let (done, wait) = tokio::sync::oneshot::channel();
            self.restart.send(done).await.expect("the main task listens");
            wait.await.expect("the main task restarted the server");
        }))
    }
}

#[test]
fn conformance_suite_on_the_model_backend() {
    for seed in mldb_tests::seeds(&[7]) {
        let out = run_seed(seed, Some(Duration::from_secs(600)), |trace| async move {
            let (mut c, addr) = cluster(trace, &["client"]);
            let (restart, mut asked) = tokio::sync::mpsc::channel(1);
            let suite = c.spawn_on("client", async move { conformance::run_all(&Model { addr, restart }).await });
            let mut suite = suite.unwrap();
            loop {
                tokio::select! {
                    done = &mut suite => break done.unwrap(),
                    Some(reply) = asked.recv() => {
                        c.crash("coord").unwrap();
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        c.start("coord").unwrap();
                        let _ = reply.send(());
                    }
                }
            }
        });
        println!("conformance seed {seed}: {:?} simulated in {:?}", out.sim_elapsed, out.wall_elapsed);
    }
}

async fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[test]
fn isolation_from_the_coordination_server_expires_the_session_and_the_process_registers_again() {
    for seed in mldb_tests::seeds(&[11]) {
        run_seed(seed, Some(Duration::from_secs(120)), |trace| async move {
            let (mut c, addr) = cluster(trace.clone(), &["watcher"]);
            let a = c.add_machine("machine-a");
            let log = Arc::new(Mutex::new(Vec::new()));
            let ip = c.add_process(a, "tablet-a", registrar(addr.clone(), log.clone()), true);
            let node = Layout::default().node(&format!("{ip}:9527"));

            let l = log.clone();
            wait_for("first registration", Duration::from_secs(5), || l.lock().unwrap().len() == 1).await;
            let first = match log.lock().unwrap()[0] {
                Seen::Registered { session } => session,
                ref other => panic!("unexpected {other:?}"),
            };

            // A watcher on another machine watches the node.
            let (watch_tx, watch_rx) = tokio::sync::oneshot::channel();
            let (addr2, node2) = (addr.clone(), node.clone());
            c.spawn_on("watcher", async move {
                let w = ModelCoordinator::connect(&addr2, ClientOptions::new(TIMEOUT)).await.unwrap();
                let (stat, watch) = w.exists_watch(&node2).await.unwrap();
                assert!(stat.is_some(), "the node is there before the fault");
                let ev = watch.changed().await;
                let _ = watch_tx.send((ev, Instant::now()));
                std::future::pending::<()>().await;
            })
            .unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;

            let cut = Instant::now();
            c.isolate_from("tablet-a", "coord").unwrap();
            let (ev, gone_at) = watch_rx.await.unwrap();
            assert_eq!(ev.kind, WatchKind::NodeDeleted);
            let gone = gone_at - cut;
            // The last heartbeat reached the server at most a third of the timeout (+ network) before the cut.
            assert!(gone >= TIMEOUT * 2 / 3 - Duration::from_millis(20), "node gone too early: {gone:?}");
            assert!(gone <= TIMEOUT + CoordServerConfig::default().tree.tick, "node gone too late: {gone:?}");

            let l = log.clone();
            wait_for("Expired on the isolated side", Duration::from_secs(5), || {
                l.lock().unwrap().contains(&Seen::State(SessionState::Expired))
            })
            .await;
            let seen = log.lock().unwrap().clone();
            assert_eq!(
                seen,
                vec![
                    Seen::Registered { session: first },
                    Seen::State(SessionState::Disconnected),
                    Seen::State(SessionState::Expired)
                ]
            );

            c.heal();
            let l = log.clone();
            wait_for("registration after heal", Duration::from_secs(10), || l.lock().unwrap().len() == 4).await;
            match log.lock().unwrap()[3] {
                Seen::Registered { session } => assert_ne!(session, first, "a new session after expiry"),
                ref other => panic!("unexpected {other:?}"),
            }
            assert!(!trace.grep("coordination session expired").is_empty());
        });
    }
}

#[test]
fn a_short_disconnection_keeps_the_session() {
    for seed in mldb_tests::seeds(&[12]) {
        run_seed(seed, Some(Duration::from_secs(60)), |trace| async move {
            let (mut c, addr) = cluster(trace, &[]);
            let a = c.add_machine("machine-a");
            let log = Arc::new(Mutex::new(Vec::new()));
            c.add_process(a, "tablet-a", registrar(addr.clone(), log.clone()), true);
            let l = log.clone();
            wait_for("registration", Duration::from_secs(5), || l.lock().unwrap().len() == 1).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            // Longer than 2/5 of the timeout (Disconnected); short enough that, with the last heartbeat up to a third
            // of the timeout before the cut, the client is back before the server's deadline.
            c.isolate_from("tablet-a", "coord").unwrap();
            tokio::time::sleep(TIMEOUT / 2).await;
            c.heal();
            let l = log.clone();
            wait_for("reconnection", Duration::from_secs(5), || l.lock().unwrap().len() == 3).await;
            tokio::time::sleep(TIMEOUT * 2).await;
            let seen = log.lock().unwrap().clone();
            assert!(matches!(seen[0], Seen::Registered { .. }));
            assert_eq!(&seen[1..], &[Seen::State(SessionState::Disconnected), Seen::State(SessionState::Connected)]);
        });
    }
}

#[test]
fn a_crash_removes_the_node_and_a_restart_registers_again() {
    for seed in mldb_tests::seeds(&[13]) {
        run_seed(seed, Some(Duration::from_secs(60)), |trace| async move {
            let (mut c, addr) = cluster(trace, &["watcher"]);
            let a = c.add_machine("machine-a");
            let log = Arc::new(Mutex::new(Vec::new()));
            let ip = c.add_process(a, "tablet-a", registrar(addr.clone(), log.clone()), true);
            let node = Layout::default().node(&format!("{ip}:9527"));
            let l = log.clone();
            wait_for("registration", Duration::from_secs(5), || l.lock().unwrap().len() == 1).await;

            let (tx, rx) = tokio::sync::oneshot::channel();
            let (addr2, node2) = (addr.clone(), node.clone());
            c.spawn_on("watcher", async move {
                let w = ModelCoordinator::connect(&addr2, ClientOptions::new(TIMEOUT)).await.unwrap();
                let (_, watch) = w.exists_watch(&node2).await.unwrap();
                let _ = tx.send((watch.changed().await, Instant::now()));
                std::future::pending::<()>().await;
            })
            .unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
            let crash = Instant::now();
            c.crash("tablet-a").unwrap();
            let (ev, at) = rx.await.unwrap();
            assert_eq!(ev.kind, WatchKind::NodeDeleted);
            assert!(at - crash <= TIMEOUT + CoordServerConfig::default().tree.tick, "{:?}", at - crash);
            assert!(at - crash >= TIMEOUT * 2 / 3 - Duration::from_millis(20), "{:?}", at - crash);
            c.start("tablet-a").unwrap();
            let l = log.clone();
            wait_for("registration after restart", Duration::from_secs(5), || l.lock().unwrap().len() == 2).await;
        });
    }
}

/// The coordination scenario whose trace identifies a run: two registrars, an isolation, a crash, a restart.
async fn determinism_scenario(trace: mldb_sim::trace::Trace) {
    let (mut c, addr) = cluster(trace, &[]);
    let mut logs = Vec::new();
    for name in ["tablet-1", "tablet-2"] {
        let m = c.add_machine(&format!("{name}-machine"));
        let log = Arc::new(Mutex::new(Vec::new()));
        c.add_process(m, name, registrar(addr.clone(), log.clone()), true);
        logs.push(log);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    c.isolate_from("tablet-1", "coord").unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    c.heal();
    c.crash("tablet-2").unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    c.start("tablet-2").unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
}

#[test]
fn same_seed_same_trace_hash_and_different_seeds_differ() {
    let a = run_seed(21, Some(Duration::from_secs(60)), determinism_scenario);
    let b = run_seed(21, Some(Duration::from_secs(60)), determinism_scenario);
    println!("{}", a.trace.to_text());
    assert!(a.trace.len() > 10, "the trace records the run:\n{}", a.trace.to_text());
    assert_eq!(a.trace.lines(), b.trace.lines());
    assert_eq!(a.hash, b.hash);
    let c = run_seed(22, Some(Duration::from_secs(60)), determinism_scenario);
    assert_ne!(a.hash, c.hash, "different seeds should differ (session ids and timings are seeded)");
}

/// A client whose session ended without word from the server (the server was down for longer than 7/5 of the
/// timeout) closes it at the restarted server, which restored it with a whole timeout: its ephemeral node goes at
/// once instead of standing for another timeout and keeping its owner from registering again.
#[test]
fn a_session_given_up_while_the_server_was_down_is_closed_when_it_returns() {
    for seed in mldb_tests::seeds(&[14]) {
        run_seed(seed, Some(Duration::from_secs(60)), |trace| async move {
            let (mut c, addr) = cluster(trace, &["owner", "watcher"]);
            let (created_tx, created) = tokio::sync::oneshot::channel();
            let a = addr.clone();
            c.spawn_on("owner", async move {
                let owner = ModelCoordinator::connect(&a, ClientOptions::new(TIMEOUT)).await.unwrap();
                owner.create("/owned", b"", openmldb::coord::CreateMode::Ephemeral).await.unwrap();
                let _ = created_tx.send(());
                // Held, never closed: it ends by itself (Expired) while the server is down.
                let _owner = owner;
                std::future::pending::<()>().await;
            })
            .unwrap();
            created.await.unwrap();
            c.crash("coord").unwrap();
            tokio::time::sleep(TIMEOUT * 2).await;
            c.start("coord").unwrap();
            let started = Instant::now();
            let a = addr.clone();
            let gone = c
                .spawn_on("watcher", async move {
                    let w = loop {
                        if let Ok(w) = ModelCoordinator::connect(&a, ClientOptions::new(TIMEOUT)).await {
                            break w;
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    };
                    while w.exists("/owned").await.unwrap().is_some() {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    Instant::now()
                })
                .unwrap()
                .await
                .unwrap();
            // The server restored the session until `started + TIMEOUT`; its owner closed it long before.
            assert!(
                gone - started < TIMEOUT / 2,
                "the given-up session's node stood {:?} after the restart",
                gone - started
            );
        });
    }
}
