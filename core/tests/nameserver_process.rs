//! Real processes on loopback: a coordination server, two nameservers and three tablets, driven by the real
//! ns_client: the election, a table across the tablets, and a `kill -9` of the active nameserver.
#![cfg(not(madsim))]

mod common;

use common::{Kill, TempDir, free_port};

use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn spawn(args: &[String]) -> Kill {
    Kill(
        Command::new(env!("CARGO_BIN_EXE_openmldb"))
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

fn ns_client(zk: &str, cmd: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_openmldb"))
        .args([
            "--role=ns_client",
            &format!("--zk_cluster={zk}"),
            "--zk_root_path=/openmldb",
            "--interactive=false",
            &format!("--cmd={cmd}"),
        ])
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

async fn until(zk: &str, cmd: &str, want: &str) -> String {
    let mut last = String::new();
    for _ in 0..200 {
        let o = ns_client(zk, cmd);
        last = format!("{}{}", text(&o), String::from_utf8_lossy(&o.stderr));
        if last.contains(want) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("`{cmd}` never showed {want:?}; last output:\n{last}");
}

#[tokio::test]
async fn real_nameservers_elect_create_a_table_and_hand_over_after_kill_9() {
    let dir = TempDir::new("mldb-ns-proc");
    let zk = format!("127.0.0.1:{}", free_port());
    let _coord = spawn(&["--role=coord".into(), format!("--endpoint={zk}")]);
    let zk_flag = format!("--zk_cluster={zk}");
    let mut tablets = Vec::new();
    let mut endpoints = Vec::new();
    for i in 0..3 {
        let ep = format!("127.0.0.1:{}", free_port());
        tablets.push(spawn(&[
            "--role=tablet".into(),
            format!("--endpoint={ep}"),
            zk_flag.clone(),
            format!("--db_root_path={}", dir.0.join(format!("tablet-{i}")).display()),
        ]));
        endpoints.push(ep);
    }
    let ns_eps: Vec<String> = (0..2).map(|_| format!("127.0.0.1:{}", free_port())).collect();
    let mut nameservers: Vec<Option<Kill>> = ns_eps
        .iter()
        .map(|ep| Some(spawn(&["--role=nameserver".into(), format!("--endpoint={ep}"), zk_flag.clone()])))
        .collect();

    let showns = until(&zk, "showns", "standby").await;
    let leader_line = showns.lines().find(|l| l.contains("leader")).unwrap().to_string();
    until(&zk, "showtablet", &endpoints[2]).await;
    let created = ns_client(&zk, "create flow 0 2 3 id:string:index ts:int64:ts v:string");
    assert_eq!(text(&created).trim(), "Create table ok", "{}", String::from_utf8_lossy(&created.stderr));
    let table = until(&zk, "showtable flow", "kNoCompress").await;
    assert_eq!(table.lines().filter(|l| l.contains(" flow ")).count(), 6, "{table}");

    // kill -9 the active nameserver: the standby takes over once the coordination session expires.
    let active = if leader_line.contains(&ns_eps[0]) { 0 } else { 1 };
    nameservers[active] = None;
    let table = until(&zk, "showtable flow", "kNoCompress").await;
    assert_eq!(table.lines().filter(|l| l.contains(" flow ")).count(), 6, "{table}");
    let showns = until(&zk, "showns", &ns_eps[1 - active]).await;
    assert!(!showns.contains(&ns_eps[active]), "{showns}");

    let bad = ns_client(&zk, "showtable a b");
    assert_eq!(bad.status.code(), Some(1));
    assert!(text(&bad).contains("usage: showtable"), "{}", text(&bad));
    drop(nameservers);
    drop(tablets);
}
