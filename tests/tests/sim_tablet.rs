//! Tablets in the simulator: one leader and two followers on three machines under a write load, through crashes,
//! machine restarts, a torn binlog tail, a deposed leader, and semi-synchronous replication.
#![cfg(madsim)]

use std::sync::Arc;
use std::time::Duration;

use mldb_sim::harness::{Cluster, ProcessCtx, ProcessMain, process_main};
use mldb_sim::runner::run_seed;
use mldb_tests::tablets::{self, Outcome, acked_ids, create, ids, load, meta, status, wait_offset};
use openmldb::proto::tablet::{ReplicationMode, TableMode};
use openmldb::storage::Disk;
use openmldb::tablet::{Tablet, TabletConfig};

const PORT: u16 = 9527;
const SYNC_INTERVAL: Duration = Duration::from_secs(1);

fn tablet_main() -> ProcessMain {
    process_main(|ctx: ProcessCtx| async move {
        let disk = ctx.disk.scoped(&ctx.name).expect("scope the machine's disk");
        disk.create_dir_all("").await.expect("create the tablet's data dir");
        let mut config = TabletConfig::new(ctx.endpoint(PORT));
        config.binlog_sync_to_disk_interval = SYNC_INTERVAL;
        config.replicator.coffee_time = Duration::from_millis(200);
        config.replicator.match_interval = Duration::from_millis(200);
        let tablet = Tablet::start(config, Arc::new(disk) as Arc<dyn Disk>).await.expect("start the tablet");
        tablet.join().await;
    })
}

/// Three tablets on three machines and a client machine; returns the tablets' endpoints.
fn three_tablets(trace: mldb_sim::trace::Trace) -> (Cluster, Vec<String>) {
    let mut c = Cluster::new(trace);
    let mut eps = Vec::new();
    for i in 1..=3 {
        let m = c.add_machine(&format!("machine-{i}"));
        let ip = c.add_process(m, &format!("tablet-{i}"), tablet_main(), true);
        eps.push(format!("{ip}:{PORT}"));
    }
    let m = c.add_machine("client-machine");
    c.add_process(m, "client", Cluster::idle(), true);
    (c, eps)
}

/// Creates the partition: followers on tablets 2 and 3, the leader on tablet 1.
async fn create_partition(eps: &[String], replication: ReplicationMode) {
    for f in &eps[1..] {
        create(f, meta(TableMode::Follower, 1, &[])).await;
    }
    let mut leader = meta(TableMode::Leader, 1, &eps[1..]);
    leader.replication = replication as i32;
    create(&eps[0], leader).await;
}

fn run<F, Fut>(seed: u64, body: F)
where
    F: FnOnce(mldb_sim::trace::Trace) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let out = run_seed(seed, Some(Duration::from_secs(300)), body);
    assert!(!out.trace.is_empty());
}

#[test]
fn a_restarted_follower_catches_up_with_identical_content() {
    for seed in mldb_tests::seeds(&[31]) {
        run(seed, |trace| async move {
            let (mut c, eps) = three_tablets(trace);
            let e = eps.clone();
            c.spawn_on("client", async move { create_partition(&e, ReplicationMode::Async).await })
                .unwrap()
                .await
                .unwrap();
            let leader = tablets::client(&eps[0]);
            let writer = c
                .spawn_on("client", async move { tablets::write(&leader, 0, 1500, Duration::from_millis(5)).await })
                .unwrap();

            tokio::time::sleep(Duration::from_secs(2)).await;
            c.crash("tablet-2").unwrap();
            tokio::time::sleep(Duration::from_secs(2)).await;
            c.start("tablet-2").unwrap();
            let e = eps.clone();
            c.spawn_on("client", async move { load(&e[1], meta(TableMode::Follower, 1, &[])).await })
                .unwrap()
                .await
                .unwrap();

            let log = writer.await.unwrap();
            assert!(
                log.iter().all(|(_, o)| matches!(o, Outcome::Acked { .. })),
                "the leader stayed up: every write acked"
            );
            let e = eps.clone();
            c.spawn_on("client", async move {
                let leader_offset = status(&e[0]).await.unwrap().offset;
                assert_eq!(leader_offset, 1500);
                for f in &e[1..] {
                    let s = wait_offset(f, leader_offset, Duration::from_secs(30)).await;
                    assert_eq!(s.offset, leader_offset);
                }
                let expected = acked_ids(&log);
                for ep in &e {
                    assert_eq!(ids(ep).await, expected, "{ep} holds exactly the acknowledged rows");
                }
            })
            .unwrap()
            .await
            .unwrap();
        });
    }
}

#[test]
fn a_follower_machine_restart_loses_only_its_unsynced_tail_and_catches_up() {
    for seed in mldb_tests::seeds(&[32]) {
        run(seed, |trace| async move {
            let (mut c, eps) = three_tablets(trace);
            let e = eps.clone();
            c.spawn_on("client", async move { create_partition(&e, ReplicationMode::Async).await })
                .unwrap()
                .await
                .unwrap();
            let leader = tablets::client(&eps[0]);
            let writer = c
                .spawn_on("client", async move { tablets::write(&leader, 0, 1500, Duration::from_millis(5)).await })
                .unwrap();

            tokio::time::sleep(Duration::from_millis(3_500)).await;
            let e = eps.clone();
            let before =
                c.spawn_on("client", async move { status(&e[2]).await.unwrap().offset }).unwrap().await.unwrap();
            c.machine_restart(c.machine_of("tablet-3").unwrap().id).unwrap();
            // Keep the leader away while the follower reloads, to see what its own disk kept.
            c.partition(&[vec!["tablet-1".into()], vec!["tablet-3".into()]]).unwrap();
            c.start("tablet-3").unwrap();
            let e = eps.clone();
            let after = c
                .spawn_on("client", async move {
                    load(&e[2], meta(TableMode::Follower, 1, &[])).await;
                    wait_offset(&e[2], 0, Duration::from_secs(10)).await.offset
                })
                .unwrap()
                .await
                .unwrap();
            // At 5 ms per write, one sync interval holds at most ~200 writes, plus one replication batch.
            assert!(after <= before, "a power loss cannot add entries: {after} > {before}");
            assert!(before - after <= 200 + 32 + 50, "lost more than the unsynced tail: {before} -> {after}");
            c.heal();

            let log = writer.await.unwrap();
            let e = eps.clone();
            c.spawn_on("client", async move {
                let leader_offset = status(&e[0]).await.unwrap().offset;
                wait_offset(&e[2], leader_offset, Duration::from_secs(30)).await;
                assert_eq!(ids(&e[2]).await, acked_ids(&log));
            })
            .unwrap()
            .await
            .unwrap();
        });
    }
}

#[test]
fn a_leader_process_crash_loses_nothing_on_its_disk() {
    for seed in mldb_tests::seeds(&[33]) {
        run(seed, |trace| async move {
            let (mut c, eps) = three_tablets(trace);
            let e = eps.clone();
            c.spawn_on("client", async move { create_partition(&e, ReplicationMode::Async).await })
                .unwrap()
                .await
                .unwrap();
            let leader = tablets::client(&eps[0]);
            let writer = c
                .spawn_on("client", async move { tablets::write(&leader, 0, 1000, Duration::from_millis(3)).await })
                .unwrap();
            tokio::time::sleep(Duration::from_millis(1_777)).await;
            c.crash("tablet-1").unwrap();
            let log = writer.await.unwrap();
            let acked = acked_ids(&log);
            assert!(!acked.is_empty() && acked.len() < 1000, "the crash hit mid-load: {} acked", acked.len());
            c.start("tablet-1").unwrap();
            let e = eps.clone();
            c.spawn_on("client", async move {
                load(&e[0], meta(TableMode::Leader, 1, &e[1..])).await;
                wait_offset(&e[0], 0, Duration::from_secs(10)).await;
                let held = ids(&e[0]).await;
                assert!(acked.is_subset(&held), "every acknowledged write survives a process crash");
            })
            .unwrap()
            .await
            .unwrap();
        });
    }
}

#[test]
fn a_torn_final_record_is_cut_off_on_load() {
    for seed in mldb_tests::seeds(&[34]) {
        let out = run_seed(seed, Some(Duration::from_secs(120)), |trace| async move {
            let (mut c, eps) = three_tablets(trace);
            let e = eps.clone();
            c.spawn_on("client", async move {
                create(&e[0], meta(TableMode::Leader, 1, &[])).await;
                let log = tablets::write(&tablets::client(&e[0]), 0, 100, Duration::from_millis(1)).await;
                assert_eq!(acked_ids(&log).len(), 100);
            })
            .unwrap()
            .await
            .unwrap();
            c.crash("tablet-1").unwrap();
            let disk = c.disk_of("tablet-1").unwrap();
            disk.tear_tail("tablet-1/1_0/binlog/00000000.log", 5).expect("tear the binlog tail");
            c.start("tablet-1").unwrap();
            let e = eps.clone();
            c.spawn_on("client", async move {
                load(&e[0], meta(TableMode::Leader, 1, &[])).await;
                let s = wait_offset(&e[0], 0, Duration::from_secs(10)).await;
                assert_eq!(s.offset, 99, "the torn 100th record is cut off");
                assert_eq!(ids(&e[0]).await.len(), 99);
            })
            .unwrap()
            .await
            .unwrap();
        });
        assert!(
            !out.trace.grep("WARN").iter().filter(|l| l.contains("cut")).collect::<Vec<_>>().is_empty(),
            "{}",
            out.trace.to_text()
        );
    }
}

#[test]
fn followers_refuse_a_deposed_leaders_appends() {
    for seed in mldb_tests::seeds(&[35]) {
        let out = run_seed(seed, Some(Duration::from_secs(120)), |trace| async move {
            let (c, eps) = three_tablets(trace);
            let e = eps.clone();
            c.spawn_on("client", async move {
                create_partition(&e, ReplicationMode::Async).await;
                let old = tablets::client(&e[0]);
                tablets::write(&old, 0, 50, Duration::from_millis(2)).await;
                wait_offset(&e[2], 50, Duration::from_secs(10)).await;
                // The nameserver's failover: tablet-2 becomes leader in term 3 with tablet-3 as its follower.
                let req = tablets::change_role(TableMode::Leader, 3, &[e[2].clone()]);
                tablets::client(&e[1]).call(openmldb::tablet::rpc::ChangeRole, req).await.unwrap();
                let new = tablets::client(&e[1]);
                tablets::write(&new, 1000, 1020, Duration::from_millis(2)).await;
                wait_offset(&e[2], 70, Duration::from_secs(10)).await;
                // The deposed leader still takes writes (it runs without coordination here), but nobody follows it.
                let stale = tablets::write(&old, 2000, 2030, Duration::from_millis(2)).await;
                assert_eq!(acked_ids(&stale).len(), 30);
                tokio::time::sleep(Duration::from_secs(3)).await;
                let held = ids(&e[2]).await;
                assert!(held.is_disjoint(&acked_ids(&stale)), "a follower took entries from the deposed leader");
                assert!(acked_ids(&tablets::write(&new, 3000, 3001, Duration::ZERO).await).len() == 1);
            })
            .unwrap()
            .await
            .unwrap();
        });
        assert!(!out.trace.grep("follower refused entries").is_empty(), "{}", out.trace.to_text());
    }
}

#[test]
fn semisync_acknowledged_writes_are_on_a_follower() {
    for seed in mldb_tests::seeds(&[36]) {
        run(seed, |trace| async move {
            let (mut c, eps) = three_tablets(trace);
            let e = eps.clone();
            c.spawn_on("client", async move { create_partition(&e, ReplicationMode::Semisync).await })
                .unwrap()
                .await
                .unwrap();
            let leader = tablets::client(&eps[0]);
            let writer = c
                .spawn_on("client", async move { tablets::write(&leader, 0, 2000, Duration::from_millis(2)).await })
                .unwrap();
            tokio::time::sleep(Duration::from_millis(1_500)).await;
            c.crash("tablet-1").unwrap();
            let log = writer.await.unwrap();
            let acked = acked_ids(&log);
            assert!(acked.len() > 20, "writes were acknowledged before the crash: {}", acked.len());
            let e = eps.clone();
            c.spawn_on("client", async move {
                let mut on_followers = ids(&e[1]).await;
                on_followers.extend(ids(&e[2]).await);
                let missing: Vec<_> = acked.difference(&on_followers).collect();
                assert!(missing.is_empty(), "acknowledged but on no follower: {missing:?}");
            })
            .unwrap()
            .await
            .unwrap();
        });
    }
}

/// The replication scenario whose trace identifies a run.
async fn replication_run(trace: mldb_sim::trace::Trace) {
    let (mut c, eps) = three_tablets(trace);
    let e = eps.clone();
    c.spawn_on("client", async move { create_partition(&e, ReplicationMode::Async).await }).unwrap().await.unwrap();
    let leader = tablets::client(&eps[0]);
    let writer =
        c.spawn_on("client", async move { tablets::write(&leader, 0, 400, Duration::from_millis(5)).await }).unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    c.crash("tablet-3").unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    c.start("tablet-3").unwrap();
    let e = eps.clone();
    c.spawn_on("client", async move { load(&e[2], meta(TableMode::Follower, 1, &[])).await }).unwrap().await.unwrap();
    writer.await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
}

#[test]
fn a_replication_run_is_deterministic() {
    let a = run_seed(51, Some(Duration::from_secs(60)), replication_run);
    let b = run_seed(51, Some(Duration::from_secs(60)), replication_run);
    assert!(
        a.trace.grep("table loaded").len() == 1 && a.trace.grep("replicator matched").len() >= 3,
        "{}",
        a.trace.to_text()
    );
    assert_eq!(a.trace.lines(), b.trace.lines());
    let c = run_seed(52, Some(Duration::from_secs(60)), replication_run);
    assert_ne!(a.hash, c.hash);
}
