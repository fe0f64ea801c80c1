//! The ops the failover tests do not reach: a single-replica partition's kUpdatePartitionStatusOP and
//! kReLoadTableOP, and replica management with kAddReplicaOP, kDelReplicaOP and kMigrateOP, under writes.
#![cfg(madsim)]

use std::time::Duration;

use mldb_sim::runner::run_seed;
use mldb_tests::ns_cluster::{
    Env, Writer, acked, all_alive, converged, lost_beyond_bound, ops_settled, replicas, rows, table_info,
};

/// Waits until showopstatus shows `op` kDone and nothing queued or failed.
async fn op_done(env: &Env, op: &'static str) -> String {
    let ops = env
        .ns_until("showopstatus", Duration::from_secs(60), move |o| {
            ops_settled(o) && rows(o).iter().any(|r| r[1] == op && r[4] == "kDone")
        })
        .await;
    assert!(!ops.contains("kFailed"), "{ops}");
    ops
}

#[test]
fn a_single_replica_partition_is_marked_dead_then_reloaded() {
    for seed in mldb_tests::seeds(&[17]) {
        run_seed(seed, Some(Duration::from_secs(200)), |trace| async move {
            let mut env = Env::new(trace, true);
            env.ns_until("showtablet", Duration::from_secs(10), |o| o.matches("kTabletHealthy").count() == 3).await;
            let create = "create single 0 1 1 id:string:index ts:int64:ts v:string";
            assert_eq!(env.ns(create).await.as_deref(), Ok("Create table ok"));
            let table = env.ns_until("showtable single", Duration::from_secs(10), |o| replicas(o).len() == 1).await;
            let ep = replicas(&table)[0].1.clone();
            let writer = Writer::start(&env, "single", 0, Duration::from_millis(20));
            tokio::time::sleep(Duration::from_secs(2)).await;
            let name = env.tablet_name(&ep);
            let crashed = tokio::time::Instant::now();
            env.c.crash(&name).unwrap();
            env.ns_until("showtable single", Duration::from_secs(20), |o| replicas(o)[0].3 == "no").await;
            op_done(&env, "kUpdatePartitionStatusOP").await;
            let started = tokio::time::Instant::now();
            env.c.start(&name).unwrap();
            env.ns_until("showtable single", Duration::from_secs(30), all_alive).await;
            op_done(&env, "kReLoadTableOP").await;
            tokio::time::sleep(Duration::from_secs(1)).await;
            let log = writer.stop().await;
            let after_restart = log.iter().filter(|a| a.result.is_ok()).count();
            assert!(after_restart > 50, "writes acked: {after_restart}");
            // While the only replica was down nothing was acknowledged (writes failed or waited in retries).
            let during = log
                .iter()
                .filter(|a| a.result.is_ok() && a.at > crashed + Duration::from_millis(100) && a.at < started)
                .count();
            assert_eq!(during, 0, "writes acknowledged while the only replica was down");
            let co = env.coord.clone();
            let (info, held) = env
                .on_client(async move {
                    let held = converged(&co, 1, Duration::from_secs(10)).await;
                    (table_info(&co, 1).await, held)
                })
                .await;
            // A process crash keeps the page cache: nothing acknowledged is lost.
            let lost = lost_beyond_bound(&acked(&log), &held, &info);
            assert!(lost.is_empty(), "{lost:?}");
            assert_eq!(acked(&log).len(), held[&0].len());
        });
    }
}

#[test]
fn replicas_are_added_deleted_and_migrated_under_writes() {
    for seed in mldb_tests::seeds(&[19]) {
        run_seed(seed, Some(Duration::from_secs(300)), |trace| async move {
            let env = Env::new(trace, true);
            env.ns_until("showtablet", Duration::from_secs(10), |o| o.matches("kTabletHealthy").count() == 3).await;
            let create = "create flow 0 1 2 id:string:index ts:int64:ts v:string";
            assert_eq!(env.ns(create).await.as_deref(), Ok("Create table ok"));
            let table = env.ns_until("showtable flow", Duration::from_secs(10), |o| replicas(o).len() == 2).await;
            let holders: Vec<String> = replicas(&table).into_iter().map(|r| r.1).collect();
            let spare = env.tablets.iter().find(|t| !holders.contains(t)).unwrap().clone();
            let writer = Writer::start(&env, "flow", 0, Duration::from_millis(20));
            tokio::time::sleep(Duration::from_secs(1)).await;

            assert_eq!(env.ns(&format!("addreplica flow 0 {spare}")).await.as_deref(), Ok("AddReplica ok"));
            op_done(&env, "kAddReplicaOP").await;
            let table = env
                .ns_until("showtable flow", Duration::from_secs(20), |o| all_alive(o) && replicas(o).len() == 3)
                .await;
            eprintln!("{table}");

            let follower = replicas(&table).into_iter().find(|r| r.2 == "follower" && r.1 != spare).unwrap().1;
            assert_eq!(env.ns(&format!("delreplica flow 0 {follower}")).await.as_deref(), Ok("DelReplica ok"));
            op_done(&env, "kDelReplicaOP").await;
            let f = follower.clone();
            let table = env
                .ns_until("showtable flow", Duration::from_secs(20), move |o| {
                    replicas(o).len() == 2 && !replicas(o).iter().any(|r| r.1 == f)
                })
                .await;
            eprintln!("{table}");

            // Migrate the spare's replica back to the freed tablet (a manual command: auto_failover off).
            assert_eq!(env.ns("confset auto_failover false").await.as_deref(), Ok("set auto_failover ok"));
            let leader = replicas(&table).into_iter().find(|r| r.2 == "leader").unwrap().1;
            let src = replicas(&table).into_iter().find(|r| r.2 == "follower").unwrap().1;
            assert!(env.ns(&format!("migrate {leader} flow 0 {follower}")).await.unwrap_err().contains("leader"));
            assert_eq!(
                env.ns(&format!("migrate {src} flow 0 {follower}")).await.as_deref(),
                Ok("partition migrate ok")
            );
            op_done(&env, "kMigrateOP").await;
            let (s, f) = (src.clone(), follower.clone());
            let table = env
                .ns_until("showtable flow", Duration::from_secs(30), move |o| {
                    let r = replicas(o);
                    r.len() == 2 && r.iter().any(|x| x.1 == f && x.3 == "yes") && !r.iter().any(|x| x.1 == s)
                })
                .await;
            eprintln!("{table}");
            let log = writer.stop().await;
            let co = env.coord.clone();
            let (info, held) = env
                .on_client(async move {
                    let held = converged(&co, 1, Duration::from_secs(30)).await;
                    (table_info(&co, 1).await, held)
                })
                .await;
            let lost = lost_beyond_bound(&acked(&log), &held, &info);
            assert!(lost.is_empty(), "{lost:?}");
            assert_eq!(acked(&log).len(), held[&0].len(), "every acknowledged row and nothing else");
        });
    }
}
