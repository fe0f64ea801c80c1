//! Real processes on loopback: a coordination server, two nameservers and three tablets, driven by the real
//! ns_client: the election, a table across the tablets, and a `kill -9` of the active nameserver.
#![cfg(not(madsim))]

mod common;

use common::{Kill, TempDir, free_port, ns_client, ns_until, replicas, spawn};

use std::process::Output;
use std::time::Duration;

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
    let _coord = spawn(&[
        "--role=coord".into(),
        format!("--endpoint={zk}"),
        format!("--coord_data_dir={}", dir.0.join("coord").display()),
    ]);
    let zk_flag = format!("--zk_cluster=model://{zk}");
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
    // Every tablet registered (they start in any order; creating with 3 replicas needs all three).
    for ep in &endpoints {
        until(&zk, "showtablet", ep).await;
    }
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

#[tokio::test]
async fn real_tablet_kill_9_fails_over_and_its_restart_is_recovered() {
    let dir = TempDir::new("mldb-failover-proc");
    let zk = format!("127.0.0.1:{}", free_port());
    let _coord = spawn(&[
        "--role=coord".into(),
        format!("--endpoint={zk}"),
        format!("--coord_data_dir={}", dir.0.join("coord").display()),
    ]);
    let zk_flag = format!("--zk_cluster=model://{zk}");
    let endpoints: Vec<String> = (0..3).map(|_| format!("127.0.0.1:{}", free_port())).collect();
    let tablet_args = |i: usize| {
        vec![
            "--role=tablet".to_string(),
            format!("--endpoint={}", endpoints[i]),
            zk_flag.clone(),
            format!("--db_root_path={}", dir.0.join(format!("tablet-{i}")).display()),
        ]
    };
    let mut tablets: Vec<Option<Kill>> = (0..3).map(|i| Some(spawn(&tablet_args(i)))).collect();
    let ns_ep = format!("127.0.0.1:{}", free_port());
    let _ns = spawn(&["--role=nameserver".into(), format!("--endpoint={ns_ep}"), zk_flag.clone()]);
    ns_until(&zk, "showtablet", |o| o.matches("kTabletHealthy").count() == 3).await;
    let created = ns_client(&zk, "create flow 0 2 3 id:string:index ts:int64:ts v:string");
    assert_eq!(text(&created).trim(), "Create table ok", "{}", String::from_utf8_lossy(&created.stderr));
    let table = ns_until(&zk, "showtable flow", |o| replicas(o, "flow").len() == 6).await;
    let leader = replicas(&table, "flow").into_iter().find(|r| r.0 == "0" && r.2 == "leader").unwrap().1;
    let victim = endpoints.iter().position(|e| *e == leader).unwrap();

    // kill -9 the leader of pid 0: after the session timeout and tablet_heartbeat_timeout, a new leader.
    tablets[victim] = None;
    let ep = leader.clone();
    let failed_over = ns_until(&zk, "showtable flow", |o| {
        let r = replicas(o, "flow");
        r.iter().filter(|x| x.1 == ep).all(|x| x.3 == "no")
            && ["0", "1"].iter().all(|pid| r.iter().any(|x| x.0 == *pid && x.2 == "leader" && x.3 == "yes"))
    })
    .await;
    assert!(ns_client(&zk, "showtablet").stdout.windows(14).any(|w| w == b"kTabletOffline"), "{failed_over}");

    // Started again on the same data directory: recovered by the nameserver's ops.
    tablets[victim] = Some(spawn(&tablet_args(victim)));
    ns_until(&zk, "showtable flow", |o| {
        replicas(o, "flow").len() == 6 && replicas(o, "flow").iter().all(|r| r.3 == "yes")
    })
    .await;
    let ops = ns_until(&zk, "showopstatus", |o| o.contains("kRecoverTableOP") && !o.contains("kDoing")).await;
    assert!(!ops.contains("kFailed") && !ops.contains("kInited"), "{ops}");
    assert!(ops.contains("kChangeLeaderOP"), "{ops}");
    let manual = ns_client(&zk, "offlineendpoint 127.0.0.1:1");
    assert!(
        String::from_utf8_lossy(&manual.stderr).contains("auto_failover is enabled")
            || text(&manual).contains("auto_failover is enabled"),
        "{manual:?}"
    );
    drop(tablets);
}
