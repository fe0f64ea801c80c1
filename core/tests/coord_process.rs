//! The real `openmldb --role=coord` process on loopback: silent sessions expire; `kill -9` and a restart keep the
//! tree, the sessions that reconnect in time, their ephemeral nodes and their watches (its write-ahead log in
//! `--coord_data_dir`); a server started on an empty data directory knows no session; damage in the data
//! directory stops it with the file named; bad flags are usage errors.
#![cfg(not(madsim))]

mod common;

use common::{Kill, TempDir, free_port};

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

fn start_server(addr: &str, data: &std::path::Path) -> Kill {
    Kill(
        Command::new(env!("CARGO_BIN_EXE_openmldb"))
            .args(["--role=coord", &format!("--endpoint={addr}"), &format!("--coord_data_dir={}", data.display())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

#[tokio::test]
async fn a_real_coordination_process_expires_silent_sessions_and_keeps_its_tree_across_kill_9() {
    let dir = TempDir::new("mldb-coord-proc");
    let data = dir.0.join("coord");
    let addr = format!("127.0.0.1:{}", free_port());
    let mut server = start_server(&addr, &data);
    let watcher = ModelCoordinator::connect(&addr, ClientOptions::new(Duration::from_secs(4))).await.unwrap();

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

    // The watcher's own state before the kill: a persistent node, an ephemeral one, a watch on the first.
    watcher.create("/table", b"t1", CreateMode::Persistent).await.unwrap();
    watcher.create("/nodes", b"", CreateMode::Ephemeral).await.unwrap();
    let (_, _, data_watch) = watcher.get_watch("/table").await.unwrap();

    // kill -9 and a restart within the watcher's timeout: Disconnected, then Connected again, same session.
    let mut events = watcher.session_events();
    let _ = server.0.kill();
    let _ = server.0.wait();
    server = start_server(&addr, &data);
    let mut seen = Vec::new();
    while let Ok(Some(state)) = tokio::time::timeout(Duration::from_secs(5), events.next()).await {
        seen.push(state);
        if state == SessionState::Connected || state.is_terminal() {
            break;
        }
    }
    assert_eq!(seen, vec![SessionState::Disconnected, SessionState::Connected]);
    assert_eq!(watcher.get("/table").await.unwrap().0, b"t1");
    assert_eq!(watcher.get("/nodes").await.unwrap().1.ephemeral_owner, watcher.session_id());
    assert_eq!(watcher.exists("/tablet").await.unwrap(), None);
    // The watch set before the kill fires on a change after it.
    let other = ModelCoordinator::connect(&addr, ClientOptions::new(Duration::from_secs(2))).await.unwrap();
    other.set("/table", b"t2", None).await.unwrap();
    let ev = tokio::time::timeout(Duration::from_secs(5), data_watch.changed()).await.unwrap();
    assert_eq!(ev.kind, WatchKind::NodeDataChanged);
    other.close().await;

    // Started on an empty data directory, the server knows no session: the watcher learns it is Expired.
    let mut events = watcher.session_events();
    let _ = server.0.kill();
    let _ = server.0.wait();
    let empty = dir.0.join("empty");
    server = start_server(&addr, &empty);
    let mut seen = Vec::new();
    while let Ok(Some(state)) = tokio::time::timeout(Duration::from_secs(8), events.next()).await {
        seen.push(state);
        if state.is_terminal() {
            break;
        }
    }
    assert_eq!(seen, vec![SessionState::Disconnected, SessionState::Expired]);
    let fresh = ModelCoordinator::connect(&addr, ClientOptions::new(Duration::from_secs(2))).await.unwrap();
    assert_eq!(fresh.exists("/table").await.unwrap(), None);
    fresh.close().await;
    drop(server);

    // Damage in the data directory: the server refuses to start and names the file.
    let log = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("log."))
        .find(|p| std::fs::metadata(p).unwrap().len() > 20)
        .expect("a log with changes");
    let mut bytes = std::fs::read(&log).unwrap();
    bytes[12] ^= 0xff;
    std::fs::write(&log, bytes).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_openmldb"))
        .args(["--role=coord", &format!("--endpoint={addr}"), &format!("--coord_data_dir={}", data.display())])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let name = log.file_name().unwrap().to_string_lossy().to_string();
    assert!(err.contains(&name) && err.contains("at byte"), "{err}");
}

/// An interactive ns_client outlives its coordination session (DESIGN 4.2): the coordination server is stopped
/// (SIGSTOP) for longer than the session timeout, so the client's session ends; after SIGCONT the next command
/// runs on a new session instead of failing with "session expired" for good.
#[tokio::test]
async fn an_interactive_ns_client_opens_a_new_session_after_its_session_expired() {
    use std::io::{BufRead, BufReader, Write};
    let dir = TempDir::new("mldb-repl-renew");
    let addr = format!("127.0.0.1:{}", free_port());
    let coord = start_server(&addr, &dir.0.join("coord"));
    let zk = format!("--zk_cluster=model://{addr}");
    let ns_ep = format!("127.0.0.1:{}", free_port());
    let _ns = common::spawn(&["--role=nameserver".into(), format!("--endpoint={ns_ep}"), zk.clone()]);
    let mut repl = Kill(
        Command::new(env!("CARGO_BIN_EXE_openmldb"))
            .args(["--role=ns_client", &zk, "--zk_session_timeout=1000"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut stdin = repl.0.stdin.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    for stream in [
        Box::new(repl.0.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(repl.0.stderr.take().unwrap()),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    // Sends `showns` until a line names the nameserver as leader; returns everything read meanwhile.
    let mut ask_until_leader = || {
        let mut seen = String::new();
        for _ in 0..100 {
            writeln!(stdin, "showns").unwrap();
            stdin.flush().unwrap();
            std::thread::sleep(Duration::from_millis(200));
            while let Ok(line) = rx.try_recv() {
                seen.push_str(&line);
                seen.push('\n');
            }
            if seen.lines().any(|l| l.contains(&ns_ep) && l.contains("leader")) {
                return seen;
            }
            seen.clear();
        }
        panic!("the REPL never showed the leader; last output:\n{seen}");
    };
    ask_until_leader();
    let pid = coord.0.id().to_string();
    assert!(Command::new("kill").args(["-STOP", &pid]).status().unwrap().success());
    std::thread::sleep(Duration::from_millis(3000));
    assert!(Command::new("kill").args(["-CONT", &pid]).status().unwrap().success());
    let after = ask_until_leader();
    assert!(!after.contains("session expired"), "{after}");
    assert!(repl.0.try_wait().unwrap().is_none(), "the REPL exited");
    drop(stdin);
}
