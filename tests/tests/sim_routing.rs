//! The routing client in the simulator: a coordination server, three tablets, and the test in the role of the
//! nameserver (it creates the partitions with CreateTable, publishes `TableInfo`, bumps `notify`, and fails
//! partitions over with ChangeRole). The client routes each row to its partition's alive leader, reports
//! (pid, term, offset) for every acknowledged write, follows failovers, and never turns a write that may have
//! been applied into a failure.
#![cfg(madsim)]

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use mldb_sim::harness::{Cluster, ProcessCtx, ProcessMain, process_main};
use mldb_sim::probes::add_coord;
use mldb_sim::runner::run_seed;
use mldb_sim::trace::Trace;
use mldb_tests::routing::{
    Attempt, MetaWriter, TABLE, TID, acks_of, change_role, create_partitions, ids, key, replica, row, row_in, status,
};
use openmldb::client::{ClientError, RoutingClient, RoutingConfig, partition_of};
use openmldb::coord::layout::DEFAULT_ROOT;
use openmldb::coord::{ClientOptions, Coordinator, ModelCoordinator};
use openmldb::proto::nameserver::{TableInfo, TermPair};
use openmldb::proto::tablet::{Row, TableMode};
use openmldb::rpc::ClientConfig;
use openmldb::storage::Disk;
use openmldb::tablet::codes::Code;
use openmldb::tablet::{Tablet, TabletConfig};
use tokio::time::Instant;

const PORT: u16 = 9527;
const PARTITIONS: u32 = 2;
/// How soon the client must follow a published change.
const FOLLOW_WITHIN: Duration = Duration::from_secs(1);

fn tablet_main() -> ProcessMain {
    process_main(|ctx: ProcessCtx| async move {
        let disk = ctx.disk.scoped(&ctx.name).expect("scope the machine's disk");
        disk.create_dir_all("").await.expect("create the tablet's data dir");
        let mut config = TabletConfig::new(ctx.endpoint(PORT));
        config.replicator.coffee_time = Duration::from_millis(200);
        config.replicator.match_interval = Duration::from_millis(200);
        let tablet = Tablet::start(config, Arc::new(disk) as Arc<dyn Disk>).await.expect("start the tablet");
        tablet.join().await;
    })
}

/// The coordination server, three standalone tablets (`tablet-1..3`, endpoints `eps[0..3]`) and a client machine.
struct Env {
    c: Cluster,
    eps: Vec<String>,
    coord: String,
}

impl Env {
    fn new(trace: Trace) -> Env {
        let mut c = Cluster::new(trace);
        let coord = add_coord(&mut c);
        let mut eps = Vec::new();
        for i in 1..=3 {
            let m = c.add_machine(&format!("machine-{i}"));
            let ip = c.add_process(m, &format!("tablet-{i}"), tablet_main(), true);
            eps.push(format!("{ip}:{PORT}"));
        }
        let m = c.add_machine("client-machine");
        c.add_process(m, "client", Cluster::idle(), true);
        Env { c, eps, coord }
    }

    /// Runs `fut` on the client machine and waits for it.
    async fn on_client<F>(&self, fut: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.c.spawn_on("client", fut).expect("the client process").await.expect("the client task")
    }

    /// On the client: a coordination session, the table's partitions on the tablets (partition p led by
    /// `eps[p]`), its `TableInfo` published with a notify, and a routing client.
    async fn start(&self, config: RoutingConfig) -> Started {
        let (coord, eps) = (self.coord.clone(), self.eps.clone());
        self.on_client(async move {
            let session = loop {
                match ModelCoordinator::connect(&coord, ClientOptions::new(Duration::from_secs(5))).await {
                    Ok(s) => break Arc::new(s) as Arc<dyn Coordinator>,
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            };
            let ns = Arc::new(MetaWriter::new(session.clone(), DEFAULT_ROOT).await.expect("metadata dirs"));
            let info = create_partitions(&eps, PARTITIONS).await;
            ns.publish(&info, true).await.expect("publish the table");
            let client = RoutingClient::connect(session, DEFAULT_ROOT, config).await.expect("routing client");
            Started { ns, info, client }
        })
        .await
    }
}

/// What [`Env::start`] made: the stand-in nameserver, the table as published, the client.
struct Started {
    ns: Arc<MetaWriter>,
    info: TableInfo,
    client: RoutingClient,
}

/// The nameserver's failover of `pid` to `to` in `term`: ChangeRole on the new leader, `from` marked dead (it keeps
/// is_leader, as in OpenMLDB), the new term's first offset recorded, published with a notify if `bump`. Returns
/// the new leader's offset at promotion and the notify value.
async fn fail_over(
    ns: &MetaWriter,
    info: &mut TableInfo,
    pid: u32,
    (from, to): (&str, &str),
    term: u64,
    followers: &[String],
    bump: bool,
) -> (u64, Option<u64>) {
    change_role(to, pid, TableMode::Leader, term, followers).await;
    // Read after the promotion: a leader takes no more entries from the old one.
    let offset = status(to, pid).await.expect("the new leader holds the partition").offset;
    replica(info, pid, from).is_alive = false;
    replica(info, pid, to).is_leader = true;
    info.table_partition[pid as usize].term_offset.push(TermPair { term, offset: offset + 1 });
    let notify = ns.publish(info, bump).await.expect("publish the failover");
    (offset, notify)
}

/// Waits until the client has seen `notify`; returns how long it took.
async fn followed(client: &RoutingClient, notify: u64) -> Duration {
    let start = Instant::now();
    while client.notify_seen() < Some(notify) {
        assert!(start.elapsed() < FOLLOW_WITHIN, "the client did not follow notify {notify} within {FOLLOW_WITHIN:?}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    start.elapsed()
}

fn run<F, Fut>(seed: u64, body: F) -> Trace
where
    F: FnOnce(Trace) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    run_seed(seed, Some(Duration::from_secs(120)), body).trace
}

fn fast_timeout(timeout: Duration) -> RoutingConfig {
    RoutingConfig { rpc: ClientConfig { timeout, ..ClientConfig::default() }, ..RoutingConfig::default() }
}

#[test]
fn writes_land_on_each_partitions_leader_with_its_term_and_offsets() {
    for seed in mldb_tests::seeds(&[61]) {
        run(seed, |trace| async move {
            let env = Env::new(trace);
            let Started { client, .. } = env.start(RoutingConfig::default()).await;
            let eps = env.eps.clone();
            env.on_client(async move {
                let mut log = Vec::new();
                for i in 0..200 {
                    log.push((i, client.put(TABLE, row(i)).await.expect("every write is acknowledged")));
                }
                let mut next = [1u64; PARTITIONS as usize];
                for (i, ack) in &log {
                    let pid = partition_of(&key(*i), PARTITIONS);
                    assert_eq!((ack.tid, ack.pid, ack.term), (TID, pid, 1), "row {i}");
                    assert_eq!(ack.endpoint, eps[pid as usize], "row {i} went to its partition's leader");
                    assert_eq!(ack.offset, next[pid as usize], "row {i}: offsets follow the partition's binlog");
                    next[pid as usize] += 1;
                }
                for pid in 0..PARTITIONS {
                    let (leader, written) = (&eps[pid as usize], next[pid as usize] - 1);
                    assert!(written > 60, "both partitions get rows: {next:?}");
                    assert_eq!(status(leader, pid).await.unwrap().offset, written);
                    let expected: BTreeSet<_> =
                        log.iter().filter(|(_, a)| a.pid == pid).map(|(i, _)| key(*i)).collect();
                    assert_eq!(ids(leader, pid).await, expected, "partition {pid} holds exactly its rows");
                }

                // Reads by index 0 ask one partition; by index 1 (v = "v<i % 5>") every partition.
                let five = client.get(TABLE, &key(5), 0).await.unwrap().expect("row 5");
                assert_eq!((five.ts, five.row), (1005, row(5)));
                assert_eq!(client.get(TABLE, "row-none", 0).await.unwrap(), None);
                assert_eq!(client.get(TABLE, "v3", 1).await.unwrap().map(|f| f.row), Some(row(198)));
                let newest: Vec<u64> =
                    client.scan(TABLE, "v3", 1, 0, 0, 4).await.unwrap().iter().map(|f| f.ts).collect();
                assert_eq!(newest, [1198, 1193, 1188, 1183]);
                let pids: BTreeSet<u32> =
                    [198, 193, 188, 183].iter().map(|&i| partition_of(&key(i), PARTITIONS)).collect();
                assert_eq!(pids.len(), 2, "the merged scan drew on both partitions");
                let ranged: Vec<u64> =
                    client.scan(TABLE, "v3", 1, 1100, 1080, 0).await.unwrap().iter().map(|f| f.ts).collect();
                assert_eq!(ranged, [1098, 1093, 1088, 1083]);
                assert_eq!(client.scan(TABLE, &key(7), 0, 0, 0, 0).await.unwrap().len(), 1);

                // Deletes are writes with acks: one partition by index 0, every partition by index 1.
                let pid5 = partition_of(&key(5), PARTITIONS);
                let acks = client.delete(TABLE, &key(5), 0).await.unwrap();
                assert_eq!(acks.len(), 1);
                assert_eq!((acks[0].pid, acks[0].term, acks[0].offset), (pid5, 1, next[pid5 as usize]));
                assert_eq!(client.get(TABLE, &key(5), 0).await.unwrap(), None);
                let acks = client.delete(TABLE, "v3", 1).await.unwrap();
                assert_eq!(acks.iter().map(|a| a.pid).collect::<Vec<_>>(), [0, 1]);
                assert_eq!(client.get(TABLE, "v3", 1).await.unwrap(), None);

                // Requests that cannot be right are refused before or by the tablet, with what was wrong.
                let short = Row { values: vec!["x".into()] };
                let e = client.put(TABLE, short).await.unwrap_err();
                assert!(matches!(e, ClientError::BadRequest { .. }), "{e}");
                assert!(e.to_string().contains("row has 1 values, the table has 3 columns"), "{e}");
                let e = client.get(TABLE, "x", 2).await.unwrap_err();
                assert!(matches!(e, ClientError::BadRequest { .. }), "{e}");
                let e = client.scan(TABLE, "x", 0, 10, 20, 0).await.unwrap_err();
                assert!(matches!(e, ClientError::BadRequest { .. }), "{e}");
                let bad_ts = Row { values: vec![key(9_999), "soon".into(), "v".into()] };
                match client.put(TABLE, bad_ts).await {
                    Err(ClientError::Refused { status, pid, .. }) => {
                        assert_eq!(status.code, Code::InvalidDimensionParameter as i32, "{status}");
                        assert_eq!(pid, partition_of(&key(9_999), PARTITIONS));
                    }
                    other => panic!("a row with a bad ts is refused by the tablet: {other:?}"),
                }
                assert_eq!(client.stats().retries, 0, "nothing needed a retry");
            })
            .await;
        });
    }
}

/// A leader crashes under a steady writer; 300 ms later the nameserver fails its partition over. The client
/// retries what it could not send, follows the notify, and writes on in the new term.
async fn follow_a_failover(trace: Trace) {
    let mut env = Env::new(trace);
    let Started { ns, mut info, client } = env.start(RoutingConfig::default()).await;
    let eps = env.eps.clone();
    let w = client.clone();
    let writer = env
        .c
        .spawn_on("client", async move {
            let mut log = Vec::new();
            for i in 0..400 {
                let result = w.put(TABLE, row(i)).await;
                log.push(Attempt { row: i, at: Instant::now(), result });
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            log
        })
        .unwrap();

    tokio::time::sleep(Duration::from_secs(1)).await;
    env.c.crash("tablet-1").unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (e, c) = (eps.clone(), client.clone());
    let (promoted_at, published, follow) = env
        .on_client(async move {
            // tablet-1 led partition 0 and followed partition 1.
            let published = Instant::now();
            let (offset, notify) =
                fail_over(&ns, &mut info, 0, (&e[0], &e[1]), 2, std::slice::from_ref(&e[2]), true).await;
            replica(&mut info, 1, &e[0]).is_alive = false;
            let follow = followed(&c, notify.unwrap()).await;
            assert_eq!(c.route(TABLE, &key(row_in(0, PARTITIONS, 0))).unwrap(), (0, Some(e[1].clone())));
            (offset, published, follow)
        })
        .await;
    tracing::info!(?follow, "the client followed the failover");
    let log = writer.await.unwrap();

    let unknown: Vec<_> = log.iter().filter(|a| a.result.as_ref().is_err_and(ClientError::outcome_unknown)).collect();
    for a in &log {
        if let Err(e) = &a.result {
            assert!(e.outcome_unknown(), "row {}: only an in-flight write may fail, as unknown: {e}", a.row);
        }
    }
    assert!(unknown.len() <= 1, "one writer has at most one write in flight at the crash: {unknown:?}");

    let p0 = acks_of(&log, 0);
    let (old, new): (Vec<_>, Vec<_>) = p0.iter().partition(|(_, a)| a.term == 1);
    assert!(!old.is_empty() && !new.is_empty(), "partition 0 was written in both terms");
    for (n, (i, a)) in old.iter().enumerate() {
        assert_eq!((a.endpoint.as_str(), a.offset), (eps[0].as_str(), n as u64 + 1), "row {i}");
    }
    for (n, (i, a)) in new.iter().enumerate() {
        assert_eq!(a.term, 2, "row {i}");
        assert_eq!((a.endpoint.as_str(), a.offset), (eps[1].as_str(), promoted_at + 1 + n as u64), "row {i}");
    }
    let first_new = log.iter().find(|a| a.result.as_ref().is_ok_and(|r| r.term == 2)).unwrap();
    assert!(
        first_new.at >= published && first_new.at.saturating_duration_since(published) < FOLLOW_WITHIN,
        "the first write of term 2 came {:?} after the failover began",
        first_new.at.saturating_duration_since(published)
    );
    for (n, (i, a)) in acks_of(&log, 1).iter().enumerate() {
        assert_eq!((a.endpoint.as_str(), a.term, a.offset), (eps[1].as_str(), 1, n as u64 + 1), "row {i}");
    }
    assert!(client.stats().retries > 0, "writes during the outage were retried");

    // The new leader holds everything its log had at promotion plus what it acknowledged since; the old
    // leader's unreplicated suffix (term 1, offset > promotion offset) is the bounded loss of async replication.
    let last = new.last().unwrap().1.offset;
    let e = eps.clone();
    let held = env
        .on_client(async move {
            assert_eq!(status(&e[1], 0).await.unwrap().offset, last);
            ids(&e[1], 0).await
        })
        .await;
    let kept: BTreeSet<String> =
        p0.iter().filter(|(_, a)| a.term == 2 || a.offset <= promoted_at).map(|(i, _)| key(*i)).collect();
    assert!(kept.is_subset(&held), "lost: {:?}", kept.difference(&held).collect::<Vec<_>>());
    let extra: Vec<_> = held.difference(&kept).collect();
    let maybe: BTreeSet<String> = unknown.iter().map(|a| key(a.row)).collect();
    let lost_allowed: BTreeSet<String> =
        p0.iter().filter(|(_, a)| a.term == 1 && a.offset > promoted_at).map(|(i, _)| key(*i)).collect();
    assert!(extra.iter().all(|k| maybe.contains(*k)), "rows nobody acknowledged: {extra:?}");
    tracing::info!(lost = lost_allowed.len(), "unreplicated suffix of the crashed leader");
}

#[test]
fn the_client_follows_a_failover_and_writes_on_in_the_new_term() {
    for seed in mldb_tests::seeds(&[62]) {
        let trace = run(seed, follow_a_failover);
        assert!(!trace.grep("the client followed the failover").is_empty(), "{}", trace.to_text());
    }
}

/// Same seed, same trace, also when the seed runs twice in one process: a regression test for tokio's `watch`
/// and unbiased `select!`, which draw from a per-process generator (the code base uses `sync::Signal` and biased
/// selects instead).
#[test]
fn a_failover_run_is_deterministic() {
    let a = run_seed(71, Some(Duration::from_secs(120)), follow_a_failover);
    let b = run_seed(71, Some(Duration::from_secs(120)), follow_a_failover);
    assert_eq!(a.trace.lines(), b.trace.lines());
    let c = run_seed(72, Some(Duration::from_secs(120)), follow_a_failover);
    assert_ne!(a.hash, c.hash);
}

#[test]
fn a_write_in_flight_to_a_paused_or_crashed_leader_is_unknown_and_later_writes_move_on() {
    for seed in mldb_tests::seeds(&[63]) {
        run(seed, |trace| async move {
            let mut env = Env::new(trace);
            let Started { ns, mut info, client } = env.start(fast_timeout(Duration::from_millis(500))).await;
            let eps = env.eps.clone();
            // Five rows of partition 0.
            let mut k = [0u64; 5];
            for n in 0..5 {
                k[n] = row_in(0, PARTITIONS, if n == 0 { 0 } else { k[n - 1] + 1 });
            }
            let c = client.clone();
            env.on_client(async move { c.put(TABLE, row(k[0])).await.unwrap() }).await;

            // A paused leader never answers: the write times out, and may or may not have been applied.
            env.c.pause("tablet-1").unwrap();
            let c = client.clone();
            let paused = env
                .on_client(async move {
                    let start = Instant::now();
                    let e = c.put(TABLE, row(k[1])).await.unwrap_err();
                    (e, start.elapsed())
                })
                .await;
            match &paused {
                (ClientError::Unknown { pid: 0, endpoint, .. }, took) => {
                    assert_eq!(endpoint, &eps[0]);
                    assert!(*took >= Duration::from_millis(500) && *took < Duration::from_millis(600), "{took:?}");
                }
                other => panic!("a write to a paused leader is unknown: {other:?}"),
            }
            assert!(paused.0.to_string().contains("outcome unknown"), "{}", paused.0);

            // The nameserver moves partition 0 to tablet-2; the next write goes there, in term 2.
            let (e, c, n) = (eps.clone(), client.clone(), ns.clone());
            let mut info = env
                .on_client(async move {
                    let (offset, notify) =
                        fail_over(&n, &mut info, 0, (&e[0], &e[1]), 2, std::slice::from_ref(&e[2]), true).await;
                    followed(&c, notify.unwrap()).await;
                    let ack = c.put(TABLE, row(k[2])).await.unwrap();
                    assert_eq!(
                        (ack.pid, ack.term, ack.offset, ack.endpoint.as_str()),
                        (0, 2, offset + 1, e[1].as_str())
                    );
                    info
                })
                .await;

            // Resumed, the deposed leader processes the request that timed out: "unknown" was the truth.
            env.c.resume("tablet-1").unwrap();
            tokio::time::sleep(Duration::from_millis(300)).await;
            let e = eps.clone();
            let on_old = env.on_client(async move { ids(&e[0], 0).await }).await;
            assert!(on_old.contains(&key(k[1])), "the timed-out write was applied by the old leader after all");

            // Now a crash with a write in flight: the connection breaks after the request was sent.
            env.c.pause("tablet-2").unwrap();
            let c = client.clone();
            let in_flight = env.c.spawn_on("client", async move { c.put(TABLE, row(k[3])).await }).unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
            env.c.crash("tablet-2").unwrap();
            match in_flight.await.unwrap() {
                Err(ClientError::Unknown { pid: 0, endpoint, .. }) => assert_eq!(endpoint, eps[1]),
                other => panic!("a write in flight to a crashed leader is unknown: {other:?}"),
            }

            // The next write finds the leader unreachable (not sent), refreshes and retries until the metadata
            // points elsewhere, then lands on the new leader.
            let retries_before = client.stats().retries;
            let c = client.clone();
            let later = env
                .c
                .spawn_on("client", async move {
                    let result = c.put(TABLE, row(k[4])).await;
                    (result, Instant::now())
                })
                .unwrap();
            tokio::time::sleep(Duration::from_millis(300)).await;
            let (e, n) = (eps.clone(), ns.clone());
            let moved_at = env
                .on_client(async move {
                    let at = Instant::now();
                    fail_over(&n, &mut info, 0, (&e[1], &e[2]), 3, &[], true).await;
                    at
                })
                .await;
            let (result, at) = later.await.unwrap();
            let ack = result.expect("the retried write lands once the metadata moves");
            assert_eq!((ack.pid, ack.term, ack.endpoint.as_str()), (0, 3, eps[2].as_str()));
            assert!(at >= moved_at, "acknowledged only once the failover began");
            assert!(client.stats().retries > retries_before, "the write was retried");
        });
    }
}

#[test]
fn a_stale_leader_refusal_refreshes_the_metadata_without_a_notify() {
    for seed in mldb_tests::seeds(&[64]) {
        run(seed, |trace| async move {
            let env = Env::new(trace);
            let Started { ns, mut info, client } = env.start(RoutingConfig::default()).await;
            let eps = env.eps.clone();
            env.on_client(async move {
                let k1 = row_in(1, PARTITIONS, 0);
                let k2 = row_in(1, PARTITIONS, k1 + 1);
                let first = client.put(TABLE, row(k1)).await.unwrap();
                assert_eq!((first.pid, first.term, first.endpoint.as_str()), (1, 1, eps[1].as_str()));
                // Partition 1 moves from tablet-2 to tablet-3, which demotes tablet-2; nobody bumps notify.
                let (offset, _) =
                    fail_over(&ns, &mut info, 1, (&eps[1], &eps[2]), 2, std::slice::from_ref(&eps[0]), false).await;
                change_role(&eps[1], 1, TableMode::Follower, 2, &[]).await;
                tokio::time::sleep(Duration::from_millis(200)).await;
                assert_eq!(client.route(TABLE, &key(k2)).unwrap(), (1, Some(eps[1].clone())), "no notify, no reload");
                let before = client.stats();
                let ack = client.put(TABLE, row(k2)).await.unwrap();
                assert_eq!((ack.pid, ack.term, ack.offset, ack.endpoint.as_str()), (1, 2, offset + 1, eps[2].as_str()));
                let after = client.stats();
                assert_eq!(after.retries, before.retries + 1, "one refusal (table is follower), one retry");
                assert_eq!(after.reloads, before.reloads + 1, "the refusal reloaded the metadata");
            })
            .await;
        });
    }
}

#[test]
fn an_unreachable_leader_is_unavailable_and_not_applied_until_the_metadata_moves() {
    for seed in mldb_tests::seeds(&[65]) {
        run(seed, |trace| async move {
            let mut env = Env::new(trace);
            let budget = RoutingConfig { max_retry_time: Duration::from_secs(1), ..RoutingConfig::default() };
            let Started { ns, mut info, client } = env.start(budget).await;
            let eps = env.eps.clone();
            env.c.crash("tablet-1").unwrap();
            let k1 = row_in(0, PARTITIONS, 0);
            let k2 = row_in(0, PARTITIONS, k1 + 1);
            let c = client.clone();
            let (gave_up, took) = env
                .on_client(async move {
                    let start = Instant::now();
                    (c.put(TABLE, row(k1)).await.unwrap_err(), start.elapsed())
                })
                .await;
            match &gave_up {
                ClientError::Unavailable { pid: 0, attempts, .. } => assert!(*attempts > 2, "{gave_up}"),
                other => panic!("an unreachable leader is unavailable after retries: {other}"),
            }
            assert!(!gave_up.outcome_unknown() && gave_up.to_string().contains("not applied"), "{gave_up}");
            assert!(took >= Duration::from_secs(1) && took < Duration::from_secs(2), "{took:?}");

            // Another write starts while the metadata still names the dead leader; the failover lands within
            // its budget (published without a notify: only the retry's refresh can see it).
            let c = client.clone();
            let retried = env.c.spawn_on("client", async move { c.put(TABLE, row(k2)).await }).unwrap();
            tokio::time::sleep(Duration::from_millis(300)).await;
            let e = eps.clone();
            let offset = env
                .on_client(async move {
                    fail_over(&ns, &mut info, 0, (&e[0], &e[1]), 2, std::slice::from_ref(&e[2]), false).await.0
                })
                .await;
            let ack = retried.await.unwrap().expect("the write lands on the new leader");
            assert_eq!((ack.pid, ack.term, ack.offset, ack.endpoint.as_str()), (0, 2, offset + 1, eps[1].as_str()));
            let e = eps.clone();
            let held = env.on_client(async move { ids(&e[1], 0).await }).await;
            assert!(held.contains(&key(k2)) && !held.contains(&key(k1)), "the unavailable write was not applied");
        });
    }
}

#[test]
fn a_missing_table_and_a_leaderless_partition_are_clear_errors() {
    for seed in mldb_tests::seeds(&[66]) {
        run(seed, |trace| async move {
            let env = Env::new(trace);
            let budget = RoutingConfig { max_retry_time: Duration::from_millis(500), ..RoutingConfig::default() };
            let Started { ns, mut info, client } = env.start(budget).await;
            let eps = env.eps.clone();
            env.on_client(async move {
                let e = client.put("nope", row(1)).await.unwrap_err();
                assert_eq!(e, ClientError::NoSuchTable { table: "nope".into() });
                assert!(e.to_string().contains("table \"nope\" does not exist"), "{e}");
                assert!(matches!(client.get("nope", "k", 0).await, Err(ClientError::NoSuchTable { .. })));
                assert_eq!(client.table_info("db.flow").unwrap().tid, TID, "a table may be named with its db");

                // Partition 0's leader is dead and nobody took over yet.
                let (k0, k1) = (row_in(0, PARTITIONS, 0), row_in(1, PARTITIONS, 0));
                replica(&mut info, 0, &eps[0]).is_alive = false;
                let notify = ns.publish(&info, true).await.unwrap().unwrap();
                followed(&client, notify).await;
                let start = Instant::now();
                match client.put(TABLE, row(k0)).await {
                    Err(e @ ClientError::NoAliveLeader { pid: 0, .. }) => {
                        assert!(e.to_string().contains("has no alive leader"), "{e}");
                        assert!(start.elapsed() >= Duration::from_millis(500), "it waited out its budget");
                    }
                    other => panic!("a leaderless partition is reported as such: {other:?}"),
                }
                assert_eq!(client.put(TABLE, row(k1)).await.unwrap().pid, 1, "the other partition still works");

                // Its leader comes back: writes flow again.
                replica(&mut info, 0, &eps[0]).is_alive = true;
                let notify = ns.publish(&info, true).await.unwrap().unwrap();
                followed(&client, notify).await;
                assert_eq!(client.put(TABLE, row(k0)).await.unwrap().endpoint, eps[0]);

                // A table published after the last notify is found by the reload its first use triggers.
                let mut late = info.clone();
                late.tid = TID + 1;
                late.name = "late".into();
                ns.publish(&late, false).await.unwrap();
                // (No tablet holds it, so the read ends unavailable: found, routed, refused as "table is not exist".)
                match client.get("late", "k", 0).await {
                    Err(ClientError::Unavailable { table, last, .. }) => {
                        assert_eq!(table, "late");
                        assert!(last.contains("table is not exist"), "{last}");
                    }
                    other => panic!("the late table is found and routed: {other:?}"),
                }
                assert_eq!(client.table_info("late").unwrap().tid, TID + 1);
            })
            .await;
        });
    }
}
