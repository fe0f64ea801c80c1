//! Real processes, on each coordination backend: the daemon supervises a tablet; after `kill -9` of the tablet it
//! starts it again, the tablet registers anew, the nameserver recovers its replicas and every row written through
//! the routing client is there; `--stop` stops the daemon and its tablet.
#![cfg(not(madsim))]

mod common;

use common::{
    Backend, Coord, TempDir, free_port, missing_rows, ns_client, ns_until as until, put_rows, replicated, routing,
    serially, spawn,
};

use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default().contains(") Z ")
}

const ROWS: usize = 300;

#[test]
fn the_daemon_restarts_a_killed_tablet_on_the_embedded_coordinator() {
    serially(the_daemon_restarts_a_killed_tablet(Backend::Model));
}

#[test]
fn the_daemon_restarts_a_killed_tablet_on_zookeeper() {
    serially(the_daemon_restarts_a_killed_tablet(Backend::ZooKeeper));
}

async fn the_daemon_restarts_a_killed_tablet(backend: Backend) {
    let dir = TempDir::new("mldb-daemon-proc");
    let Some(coord) = Coord::start(backend, &dir.0, "the_daemon_restarts_a_killed_tablet_on_zookeeper") else {
        return;
    };
    let zk = coord.spec();
    let zk_flag = coord.flag();
    let eps: Vec<String> = (0..3).map(|_| format!("127.0.0.1:{}", free_port())).collect();
    let tablet_args = |i: usize| {
        vec![
            "--role=tablet".to_string(),
            format!("--endpoint={}", eps[i]),
            zk_flag.clone(),
            format!("--db_root_path={}", dir.0.join(format!("tablet-{i}")).display()),
        ]
    };
    let _t0 = spawn(&tablet_args(0));
    let _t1 = spawn(&tablet_args(1));
    let pid_file = dir.0.join("tablet-2.pid");
    let mut daemon_args = vec![
        "--role=daemon".to_string(),
        format!("--daemon_pid_file={}", pid_file.display()),
        "--restart_delay=300".to_string(),
        "--".to_string(),
    ];
    daemon_args.extend(tablet_args(2));
    let daemon = spawn(&daemon_args);
    let _ns = spawn(&["--role=nameserver".into(), format!("--endpoint=127.0.0.1:{}", free_port()), zk_flag.clone()]);
    until(&zk, "showtablet", |o| o.matches("kTabletHealthy").count() == 3).await;
    let created = ns_client(&zk, "create flow 0 2 3 id:string:index ts:int64:ts v:string");
    assert!(String::from_utf8_lossy(&created.stdout).contains("Create table ok"));
    until(&zk, "showtable flow", |o| o.matches(" yes ").count() == 6).await;
    put_rows(&routing(&zk).await, "flow", 0..ROWS).await;
    until(&zk, "showtable flow", |o| replicated(o, "flow", 3, ROWS as u64)).await;

    // kill -9 the supervised tablet: the daemon starts a new one, which registers and is recovered.
    let child_file = dir.0.join("tablet-2.pid.child");
    let first = read_pid(&child_file).expect("the daemon wrote the tablet's pid");
    assert!(Command::new("kill").args(["-9", &first.to_string()]).status().unwrap().success());
    let mut second = None;
    for _ in 0..100 {
        if let Some(p) = read_pid(&child_file).filter(|p| *p != first && alive(*p)) {
            second = Some(p);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let second = second.expect("the daemon restarted the tablet");
    until(&zk, "showtable flow", |o| o.matches(" yes ").count() == 6 && !o.contains(" no ")).await;
    let ops = until(&zk, "showopstatus", |o| o.contains("kRecoverTableOP") && !o.contains("kDoing")).await;
    assert!(!ops.contains("kFailed"), "{ops}");
    assert_eq!(missing_rows(&zk, "flow", 0..ROWS).await, Vec::<String>::new(), "{backend:?}: after the restart");

    // --stop: the daemon and its tablet go away, the pid files too.
    let out = Command::new(env!("CARGO_BIN_EXE_openmldb"))
        .args(["--role=daemon", &format!("--daemon_pid_file={}", pid_file.display()), "--stop"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!alive(second), "the tablet is gone with its daemon");
    assert!(!pid_file.exists() && !child_file.exists());
    let again = Command::new(env!("CARGO_BIN_EXE_openmldb"))
        .args(["--role=daemon", &format!("--daemon_pid_file={}", pid_file.display()), "--stop"])
        .output()
        .unwrap();
    assert!(!again.status.success(), "stopping a stopped daemon is an error");
    drop(daemon);
}
