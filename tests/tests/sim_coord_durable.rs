//! The `model` coordination server is durable like a standalone ZooKeeper (DESIGN 4.2): a crash and restart keep
//! the tree, the sessions whose clients come back in time (with their ephemeral nodes) and the watches those
//! clients hold; a power loss keeps every change the server answered; damage in its data directory stops it.
#![cfg(madsim)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use mldb_sim::harness::Cluster;
use mldb_sim::probes::add_coord;
use mldb_sim::runner::run_seed;
use openmldb::coord::{ClientOptions, Coordinator, CreateMode, ModelCoordinator, SessionState, WatchKind};

const TIMEOUT: Duration = Duration::from_secs(4);

fn cluster(trace: mldb_sim::trace::Trace) -> (Cluster, String) {
    let mut c = Cluster::new(trace);
    let addr = add_coord(&mut c);
    let m = c.add_machine("client-machine");
    c.add_process(m, "client", Cluster::idle(), true);
    (c, addr)
}

#[test]
fn a_restarted_server_keeps_the_tree_the_session_its_ephemeral_node_and_its_watches() {
    for seed in mldb_tests::seeds(&[3]) {
        run_seed(seed, Some(Duration::from_secs(120)), |trace| async move {
            let (mut c, addr) = cluster(trace);
            let (tx, rx) = tokio::sync::oneshot::channel();
            let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
            let a = addr.clone();
            let client = c
                .spawn_on("client", async move {
                    let s = ModelCoordinator::connect(&a, ClientOptions::new(TIMEOUT)).await.unwrap();
                    s.create("/app", b"v1", CreateMode::Persistent).await.unwrap();
                    s.create("/app/owner", b"me", CreateMode::Ephemeral).await.unwrap();
                    let first = s.create("/app/q-", b"", CreateMode::PersistentSequential).await.unwrap();
                    let (_, _, data_watch) = s.get_watch("/app").await.unwrap();
                    let (_, quiet_watch) = s.exists_watch("/app/owner").await.unwrap();
                    tx.send(()).unwrap();
                    go_rx.await.unwrap();
                    // The server is back: the same session goes on, and its node is still there.
                    let (data, _) = s.get("/app").await.unwrap();
                    assert_eq!(data, b"v1");
                    assert_eq!(s.get("/app/owner").await.unwrap().1.ephemeral_owner, s.session_id());
                    assert_eq!(s.state(), SessionState::Connected);
                    let next = s.create("/app/q-", b"", CreateMode::PersistentSequential).await.unwrap();
                    assert_eq!((first.as_str(), next.as_str()), ("/app/q-0000000001", "/app/q-0000000002"));
                    // A second session changes /app: the watch set before the restart fires.
                    let other = ModelCoordinator::connect(&a, ClientOptions::new(TIMEOUT)).await.unwrap();
                    assert_ne!(other.session_id(), s.session_id());
                    other.set("/app", b"v2", None).await.unwrap();
                    let ev = tokio::time::timeout(TIMEOUT, data_watch.changed()).await.expect("the watch fired");
                    assert_eq!((ev.kind, ev.path.as_str()), (WatchKind::NodeDataChanged, "/app"));
                    // A watch whose node did not change stays quiet until it does.
                    let quiet = tokio::time::timeout(Duration::from_millis(500), quiet_watch.changed());
                    let ev = tokio::spawn(quiet).await.unwrap();
                    assert!(ev.is_err(), "a watch on an unchanged node fired: {ev:?}");
                    s.session_id()
                })
                .unwrap();
            rx.await.unwrap();
            c.crash("coord").unwrap();
            // Back within the session timeout: the client's session survives.
            tokio::time::sleep(TIMEOUT / 4).await;
            c.start("coord").unwrap();
            tokio::time::sleep(TIMEOUT / 4).await;
            go_tx.send(()).unwrap();
            client.await.unwrap();
        });
    }
}

#[test]
fn a_power_loss_of_the_server_keeps_every_answered_change() {
    for seed in mldb_tests::seeds(&[5, 6]) {
        run_seed(seed, Some(Duration::from_secs(120)), |trace| async move {
            let (mut c, addr) = cluster(trace);
            let acked = Arc::new(Mutex::new(Vec::new()));
            let (a, log) = (addr.clone(), acked.clone());
            let writer = c
                .spawn_on("client", async move {
                    let s = ModelCoordinator::connect(&a, ClientOptions::new(TIMEOUT)).await.unwrap();
                    s.create("/w", b"", CreateMode::Persistent).await.unwrap();
                    log.lock().unwrap().push("/w".to_string());
                    // Writes in flight, several at once, until the server goes.
                    let mut i = 0u32;
                    loop {
                        let batch: Vec<_> = (i..i + 8)
                            .map(|n| {
                                let (s, log) = (s.clone(), log.clone());
                                tokio::spawn(async move {
                                    let path = format!("/w/n{n}");
                                    if s.create(&path, b"x", CreateMode::Persistent).await.is_ok() {
                                        log.lock().unwrap().push(path);
                                    }
                                })
                            })
                            .collect();
                        for b in batch {
                            let _ = b.await;
                        }
                        i += 8;
                        if s.state().is_terminal() || i > 4000 {
                            return;
                        }
                    }
                })
                .unwrap();
            tokio::time::sleep(Duration::from_millis(700)).await;
            let m = c.machine_of("coord").unwrap().id;
            c.machine_restart(m).unwrap();
            let answered: Vec<String> = acked.lock().unwrap().clone();
            assert!(answered.len() > 20, "only {} changes answered before the power loss", answered.len());
            tokio::time::sleep(Duration::from_millis(300)).await;
            c.start_machine(m).unwrap();
            let (tx, rx) = tokio::sync::oneshot::channel();
            c.spawn_on("client", async move {
                let s = ModelCoordinator::connect(&addr, ClientOptions::new(TIMEOUT)).await.unwrap();
                let children = s.children("/w").await.unwrap();
                tx.send(children).unwrap();
            })
            .unwrap();
            let children = rx.await.unwrap();
            for path in answered.iter().filter(|p| p.as_str() != "/w") {
                let name = path.trim_start_matches("/w/");
                assert!(children.iter().any(|c| c == name), "{path} was answered, then lost in the power loss");
            }
            writer.abort();
        });
    }
}
