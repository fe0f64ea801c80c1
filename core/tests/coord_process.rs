//! The real `openmldb --role=coord` process on loopback: silent sessions expire, `kill -9` and a restart of the
//! server end every session (its tree is in memory), and bad flags are usage errors.
#![cfg(not(madsim))]

mod common;

use common::{Kill, free_port};

use std::process::{Command, Stdio};
use std::time::Duration;

use openmldb::coord::{ClientOptions, Coordinator, CreateMode, ModelCoordinator, SessionState, WatchKind};

#[test]
fn bad_flags_are_a_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_openmldb")).arg("--role=nonsense").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown --role"));
    let out = Command::new(env!("CARGO_BIN_EXE_openmldb")).arg("--no-such-flag").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(env!("CARGO_BIN_EXE_openmldb")).arg("--role=coord").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--endpoint"));
}

fn start_server(addr: &str) -> Kill {
    Kill(
        Command::new(env!("CARGO_BIN_EXE_openmldb"))
            .args(["--role=coord", &format!("--endpoint={addr}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

#[tokio::test]
async fn a_real_coordination_process_expires_silent_sessions_and_a_restart_ends_every_session() {
    let addr = format!("127.0.0.1:{}", free_port());
    let mut server = start_server(&addr);
    let watcher = ModelCoordinator::connect(&addr, ClientOptions::new(Duration::from_secs(2))).await.unwrap();

    // A client that goes silent (dropped without a goodbye, as a crashed process) loses its ephemeral node
    // between 2/3 of its timeout (its last heartbeat may be that old) and the timeout plus a tick.
    let timeout = Duration::from_millis(1000);
    let owner = ModelCoordinator::connect(&addr, ClientOptions::new(timeout)).await.unwrap();
    owner.create("/tablet", b"", CreateMode::Ephemeral).await.unwrap();
    let (stat, watch) = watcher.exists_watch("/tablet").await.unwrap();
    assert!(stat.is_some());
    let start = tokio::time::Instant::now();
    drop(owner);
    let ev = tokio::time::timeout(Duration::from_secs(5), watch.changed()).await.unwrap();
    assert_eq!(ev.kind, WatchKind::NodeDeleted);
    let took = start.elapsed();
    assert!(took >= timeout * 2 / 3 && took <= timeout + Duration::from_millis(500), "{took:?}");

    // kill -9 of the server: the model server keeps its tree in memory, so a restarted one knows no session.
    // The watcher notices (Disconnected), and the new server tells it its session is gone (Expired).
    let mut events = watcher.session_events();
    let _ = server.0.kill();
    let _ = server.0.wait();
    server = start_server(&addr);
    let mut seen = Vec::new();
    while let Ok(Some(state)) = tokio::time::timeout(Duration::from_secs(5), events.next()).await {
        seen.push(state);
        if state.is_terminal() {
            break;
        }
    }
    assert_eq!(seen, vec![SessionState::Disconnected, SessionState::Expired]);
    let fresh = ModelCoordinator::connect(&addr, ClientOptions::new(Duration::from_secs(2))).await.unwrap();
    assert_eq!(fresh.exists("/tablet").await.unwrap(), None);
    fresh.close().await;
    drop(server);
}
