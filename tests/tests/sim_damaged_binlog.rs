//! DESIGN 5.6 in the simulator: a damaged record in the leader's binlog while a follower restarts. The follower
//! needs entries from before the damage, which the binlog cannot give; the leader must rebuild it (a snapshot of
//! its memory) rather than retry the read forever while the follower stays alive and frozen, and must protect the
//! intact records behind the damage, so that its own later crash and restart lose no acknowledged write.
#![cfg(madsim)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use mldb_sim::runner::run_seed;
use mldb_tests::ns_cluster::{Env, Writer, acked, all_alive, replicas, table_info, unexpected};
use openmldb::proto::tablet as tpb;
use openmldb::rpc::{ClientConfig, RpcClient};
use tokio::time::Instant;

const CREATE: &str = "create flow 0 1 3 id:string:index ts:int64:ts v:string";
const TID: u32 = 1;

/// The alive replica of pid 0 with this role in a showtable output.
fn replica_of(showtable: &str, role: &str) -> String {
    replicas(showtable)
        .into_iter()
        .find(|r| r.0 == 0 && r.2 == role && r.3 == "yes")
        .map(|r| r.1)
        .unwrap_or_else(|| panic!("no alive {role} of pid 0:\n{showtable}"))
}

/// Every replica's (offset, row ids) of pid 0, by endpoint.
async fn replica_states(coord: &str) -> BTreeMap<String, (u64, BTreeSet<String>)> {
    let info = table_info(coord, TID).await;
    let mut out = BTreeMap::new();
    for m in &info.table_partition[0].partition_meta {
        let client = RpcClient::new(m.endpoint.clone(), ClientConfig::default());
        let req = tpb::DumpRequest { tid: TID, pid: 0, limit: 0 };
        if let Ok(d) = client.call(openmldb::tablet::rpc::Dump, req).await {
            out.insert(m.endpoint.clone(), (d.offset, d.rows.into_iter().map(|r| r.values[0].clone()).collect()));
        }
    }
    out
}

/// Waits until all three replicas answer with the same offset and the same rows; returns them.
async fn caught_up(env: &Env, limit: Duration) -> (u64, BTreeSet<String>) {
    let coord = env.coord.clone();
    env.on_client(async move {
        let start = Instant::now();
        loop {
            let states = replica_states(&coord).await;
            let mut values = states.values();
            if states.len() == 3
                && let Some(first) = values.next()
                && values.all(|s| s == first)
            {
                return first.clone();
            }
            let summary: Vec<String> =
                states.iter().map(|(e, (o, rows))| format!("{e}: offset {o}, {} rows", rows.len())).collect();
            assert!(start.elapsed() < limit, "replicas did not catch up within {limit:?}: {}", summary.join("; "));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
}

#[test]
fn a_follower_restarting_past_a_damaged_leader_record_is_rebuilt_and_a_leader_crash_loses_nothing() {
    for seed in mldb_tests::seeds(&[5, 6]) {
        let out = run_seed(seed, Some(Duration::from_secs(300)), |trace| async move {
            let mut env = Env::new(trace.clone(), true);
            env.ns_until("showtablet", Duration::from_secs(10), |o| o.matches("kTabletHealthy").count() == 3).await;
            assert_eq!(env.ns(CREATE).await.as_deref(), Ok("Create table ok"));
            let table = env
                .ns_until("showtable flow", Duration::from_secs(10), |o| all_alive(o) && replicas(o).len() == 3)
                .await;
            let leader_ep = replica_of(&table, "leader");
            let follower_ep = replica_of(&table, "follower");
            let (leader, follower) = (env.tablet_name(&leader_ep), env.tablet_name(&follower_ep));
            let writer = Writer::start(&env, "flow", 0, Duration::from_millis(5));
            tokio::time::sleep(Duration::from_secs(2)).await;

            // The follower goes away; while it is down the leader's last record is damaged, and writes go on
            // behind it. The follower comes back needing entries from before the damage.
            env.c.crash(&follower).unwrap();
            tokio::time::sleep(Duration::from_secs(1)).await;
            env.c.corrupt_tail(&leader, &format!("{leader}/{TID}_0/binlog/00000000.log"), 4).unwrap();
            tokio::time::sleep(Duration::from_secs(1)).await;
            env.c.start(&follower).unwrap();
            env.ns_until("showtable flow", Duration::from_secs(60), all_alive).await;
            tokio::time::sleep(Duration::from_secs(3)).await;

            // Every replica catches up: same offset, same rows, the restarted follower included.
            let log = writer.stop().await;
            let (offset, rows) = caught_up(&env, Duration::from_secs(30)).await;
            let acks = acked(&log);
            assert!(acks.len() > 200, "{} acks", acks.len());
            let keys: BTreeSet<String> = acks.iter().map(|(row, _)| mldb_tests::routing::key(*row)).collect();
            // The damaged record reached the followers before the damage, so even it is held.
            let missing: Vec<&String> = keys.iter().filter(|k| !rows.contains(*k)).collect();
            assert!(missing.is_empty(), "acknowledged rows missing after the catch-up: {missing:?}");
            eprintln!("caught up at offset {offset} with {} rows", rows.len());
            // The damage was found and protected, and the follower the binlog could not feed was rebuilt (by its
            // leader from memory, or re-added by the nameserver from the snapshot that protected the damage).
            let lines = trace.lines();
            let seen = |needle: &str| lines.iter().any(|l| l.contains(needle));
            assert!(seen("snapshot of memory written"), "the leader never protected its damaged binlog");
            assert!(!seen("replicator cannot read the binlog"), "the old silent retry is back");

            // The leader crashes and restarts: its restart must load every entry it acknowledged, the intact
            // records behind the damage included (a snapshot of its memory protects them).
            env.c.crash(&leader).unwrap();
            let ep = leader_ep.clone();
            env.ns_until("showtable flow", Duration::from_secs(30), move |o| {
                replicas(o).iter().any(|r| r.0 == 0 && r.2 == "leader" && r.3 == "yes" && r.1 != ep)
            })
            .await;
            env.c.start(&leader).unwrap();
            env.ns_until("showtable flow", Duration::from_secs(60), all_alive).await;
            let (after, rows_after) = caught_up(&env, Duration::from_secs(30)).await;
            assert_eq!(rows_after, rows, "the leader's crash changed the rows");
            assert!(after >= offset, "offset went back from {offset} to {after}");
            let attempted = log.iter().map(|a| a.row).collect();
            let held = BTreeMap::from([(0u32, rows_after)]);
            assert!(unexpected(&attempted, &held).is_empty());
        });
        eprintln!("seed {seed}: {} in {:?} simulated", out.hash, out.sim_elapsed);
    }
}
