//! The ns_client's output after a seeded failover and recovery, as insta snapshots: showtable, showtablet,
//! showopstatus and confget, column for column. A change to a format (or to what a seed does) shows up as a
//! snapshot diff to review.
#![cfg(madsim)]

use std::time::Duration;

use mldb_sim::runner::run_seed;
use mldb_tests::ns_cluster::{Env, all_alive, ops_settled, replicas, session};
use openmldb::client::{RoutingClient, RoutingConfig};
use openmldb::coord::layout::DEFAULT_ROOT;

#[test]
fn ns_client_output_after_a_failover_and_recovery() {
    let outputs = run_seed(3, Some(Duration::from_secs(200)), |trace| async move {
        let mut env = Env::new(trace, true);
        env.ns_until("showtablet", Duration::from_secs(10), |o| o.matches("kTabletHealthy").count() == 3).await;
        assert_eq!(
            env.ns("create flow 0 2 3 id:string:index ts:int64:ts v:string").await.as_deref(),
            Ok("Create table ok")
        );
        env.ns_until("showtable flow", Duration::from_secs(10), |o| all_alive(o) && replicas(o).len() == 6).await;
        let coord = env.coord.clone();
        env.on_client(async move {
            let client = RoutingClient::connect(session(&coord).await, DEFAULT_ROOT, RoutingConfig::default())
                .await
                .expect("routing client");
            for i in 0..200 {
                client.put("flow", mldb_tests::routing::row(i)).await.expect("write");
            }
        })
        .await;
        // Let the status poll see every replica's offset.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let before = env.ns("showtable flow").await.unwrap();
        let victim = replicas(&before).into_iter().find(|r| r.0 == 0 && r.2 == "leader").unwrap().1;
        let name = env.tablet_name(&victim);
        env.c.crash(&name).unwrap();
        let v = victim.clone();
        let failed_over = env
            .ns_until("showtable flow", Duration::from_secs(30), move |o| {
                replicas(o).iter().filter(|r| r.1 == v).all(|r| r.3 == "no")
                    && (0..2).all(|pid| replicas(o).iter().any(|r| r.0 == pid && r.2 == "leader" && r.3 == "yes"))
            })
            .await;
        let offline = env.ns("showtablet").await.unwrap();
        env.c.start(&name).unwrap();
        env.ns_until("showopstatus", Duration::from_secs(60), |o| {
            ops_settled(o) && o.contains("kReAddReplicaNoSendOP")
        })
        .await;
        env.ns_until("showtable flow", Duration::from_secs(60), all_alive).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let after = env.ns("showtable flow").await.unwrap();
        let tablets = env.ns("showtablet").await.unwrap();
        let ops = env.ns("showopstatus").await.unwrap();
        let ops_pid = env.ns("showopstatus flow 1").await.unwrap();
        let conf = env.ns("confget").await.unwrap();
        [before, failed_over, offline, after, tablets, ops, ops_pid, conf]
    });
    let [before, failed_over, offline, after, tablets, ops, ops_pid, conf] = outputs.value;
    insta::assert_snapshot!("showtable_before", before);
    insta::assert_snapshot!("showtable_failed_over", failed_over);
    insta::assert_snapshot!("showtablet_offline", offline);
    insta::assert_snapshot!("showtable_recovered", after);
    insta::assert_snapshot!("showtablet_recovered", tablets);
    insta::assert_snapshot!("showopstatus", ops);
    insta::assert_snapshot!("showopstatus_flow_1", ops_pid);
    insta::assert_snapshot!("confget", conf);
}
