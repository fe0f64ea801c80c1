//! Real processes on loopback, on each coordination backend (our `--role=coord` and Debian's ZooKeeper): two
//! nameservers and three tablets, driven by the real ns_client, with rows written and read back through the
//! routing client. The election, a table across the tablets, `kill -9` of the active nameserver and of the
//! coordination server; `kill -9` of a leader's tablet, its failover and its recovery after a restart.
#![cfg(not(madsim))]

mod common;

use common::{
    Backend, Coord, Kill, TempDir, free_port, missing_rows, ns_client, ns_until, put_rows, replicas, replicated,
    routing, serially, spawn,
};

use std::process::Output;

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

async fn until(zk: &str, cmd: &str, want: &str) -> String {
    ns_until(zk, cmd, |o| o.contains(want)).await
}

const ROWS: usize = 400;

async fn elect_create_and_hand_over(backend: Backend) {
    let dir = TempDir::new("mldb-ns-proc");
    let Some(mut coord) = Coord::start(backend, &dir.0, "real_nameservers_elect_and_hand_over_on_zookeeper") else {
        return;
    };
    let zk = coord.spec();
    let mut tablets = Vec::new();
    let mut endpoints = Vec::new();
    for i in 0..3 {
        let ep = format!("127.0.0.1:{}", free_port());
        tablets.push(spawn(&[
            "--role=tablet".into(),
            format!("--endpoint={ep}"),
            coord.flag(),
            format!("--db_root_path={}", dir.0.join(format!("tablet-{i}")).display()),
        ]));
        endpoints.push(ep);
    }
    let ns_eps: Vec<String> = (0..2).map(|_| format!("127.0.0.1:{}", free_port())).collect();
    let mut nameservers: Vec<Option<Kill>> = ns_eps
        .iter()
        .map(|ep| Some(spawn(&["--role=nameserver".into(), format!("--endpoint={ep}"), coord.flag()])))
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
    put_rows(&routing(&zk).await, "flow", 0..ROWS).await;

    // kill -9 the active nameserver: the standby takes over once the coordination session expires.
    let active = if leader_line.contains(&ns_eps[0]) { 0 } else { 1 };
    nameservers[active] = None;
    let table = until(&zk, "showtable flow", "kNoCompress").await;
    assert_eq!(table.lines().filter(|l| l.contains(" flow ")).count(), 6, "{table}");
    let showns = until(&zk, "showns", &ns_eps[1 - active]).await;
    assert!(!showns.contains(&ns_eps[active]), "{showns}");
    assert_eq!(missing_rows(&zk, "flow", 0..ROWS).await, Vec::<String>::new(), "{backend:?}: after the nameserver");

    // kill -9 of the coordination server and a restart on its data: the table, its leaders and its rows are
    // there, and the cluster takes writes again.
    coord.kill_and_restart();
    ns_until(&zk, "showtable flow", |o| {
        let r = replicas(o, "flow");
        r.len() == 6 && r.iter().all(|x| x.3 == "yes")
    })
    .await;
    put_rows(&routing(&zk).await, "flow", ROWS..2 * ROWS).await;
    assert_eq!(missing_rows(&zk, "flow", 0..2 * ROWS).await, Vec::<String>::new(), "{backend:?}: after the coord");

    let bad = ns_client(&zk, "showtable a b");
    assert_eq!(bad.status.code(), Some(1));
    assert!(text(&bad).contains("usage: showtable"), "{}", text(&bad));
    drop(nameservers);
    drop(tablets);
}

#[test]
fn real_nameservers_elect_and_hand_over_on_the_embedded_coordinator() {
    serially(elect_create_and_hand_over(Backend::Model));
}

#[test]
fn real_nameservers_elect_and_hand_over_on_zookeeper() {
    serially(elect_create_and_hand_over(Backend::ZooKeeper));
}

async fn tablet_kill_9_fails_over_and_recovers(backend: Backend) {
    let dir = TempDir::new("mldb-failover-proc");
    let Some(coord) = Coord::start(backend, &dir.0, "real_tablet_kill_9_fails_over_on_zookeeper") else {
        return;
    };
    let zk = coord.spec();
    let endpoints: Vec<String> = (0..3).map(|_| format!("127.0.0.1:{}", free_port())).collect();
    let tablet_args = |i: usize| {
        vec![
            "--role=tablet".to_string(),
            format!("--endpoint={}", endpoints[i]),
            coord.flag(),
            format!("--db_root_path={}", dir.0.join(format!("tablet-{i}")).display()),
        ]
    };
    let mut tablets: Vec<Option<Kill>> = (0..3).map(|i| Some(spawn(&tablet_args(i)))).collect();
    let ns_ep = format!("127.0.0.1:{}", free_port());
    let _ns = spawn(&["--role=nameserver".into(), format!("--endpoint={ns_ep}"), coord.flag()]);
    ns_until(&zk, "showtablet", |o| o.matches("kTabletHealthy").count() == 3).await;
    let created = ns_client(&zk, "create flow 0 2 3 id:string:index ts:int64:ts v:string");
    assert_eq!(text(&created).trim(), "Create table ok", "{}", String::from_utf8_lossy(&created.stderr));
    ns_until(&zk, "showtable flow", |o| replicas(o, "flow").len() == 6).await;
    put_rows(&routing(&zk).await, "flow", 0..ROWS).await;
    // Replication is asynchronous: the kill below comes once every follower holds every acknowledged row, so
    // none may be missing after the failover.
    let table = ns_until(&zk, "showtable flow", |o| replicated(o, "flow", 3, ROWS as u64)).await;
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
    let tablets_shown = ns_client(&zk, "showtablet");
    assert!(tablets_shown.stdout.windows(14).any(|w| w == b"kTabletOffline"), "{failed_over}");
    assert!(
        tablets_shown.stderr.is_empty(),
        "an ns_client prints results, not logs: {}",
        String::from_utf8_lossy(&tablets_shown.stderr)
    );
    assert_eq!(missing_rows(&zk, "flow", 0..ROWS).await, Vec::<String>::new(), "{backend:?}: after the failover");
    // The ns_client's data commands follow the new leaders too; a value of the wrong type is refused.
    let put = ns_client(&zk, "put flow cli-1 1700000000000 hello");
    assert_eq!(text(&put).trim(), "Put ok", "{put:?}");
    let bad = ns_client(&zk, "put flow cli-2 soon hello");
    assert!(!bad.status.success() && text(&bad).contains("column ts is int64"), "{bad:?}");
    let got = text(&ns_client(&zk, "get flow cli-1"));
    assert!(got.contains("1700000000000") && got.contains("hello"), "{got}");
    assert_eq!(text(&ns_client(&zk, "count flow cli-1")).trim(), "count: 1");
    assert_eq!(text(&ns_client(&zk, "count flow cli-2")).trim(), "count: 0", "the refused row was not written");
    put_rows(&routing(&zk).await, "flow", ROWS..2 * ROWS).await;

    // Started again on the same data directory: recovered by the nameserver's ops, caught up on what was
    // written while it was down.
    tablets[victim] = Some(spawn(&tablet_args(victim)));
    ns_until(&zk, "showtable flow", |o| replicated(o, "flow", 3, 2 * ROWS as u64)).await;
    let ops = ns_until(&zk, "showopstatus", |o| o.contains("kRecoverTableOP") && !o.contains("kDoing")).await;
    assert!(!ops.contains("kFailed") && !ops.contains("kInited"), "{ops}");
    assert!(ops.contains("kChangeLeaderOP"), "{ops}");
    assert_eq!(missing_rows(&zk, "flow", 0..2 * ROWS).await, Vec::<String>::new(), "{backend:?}: after the recovery");
    let manual = ns_client(&zk, "offlineendpoint 127.0.0.1:1");
    assert!(
        String::from_utf8_lossy(&manual.stderr).contains("auto_failover is enabled")
            || text(&manual).contains("auto_failover is enabled"),
        "{manual:?}"
    );
    drop(tablets);
}

#[test]
fn real_tablet_kill_9_fails_over_on_the_embedded_coordinator() {
    serially(tablet_kill_9_fails_over_and_recovers(Backend::Model));
}

#[test]
fn real_tablet_kill_9_fails_over_on_zookeeper() {
    serially(tablet_kill_9_fails_over_and_recovers(Backend::ZooKeeper));
}
