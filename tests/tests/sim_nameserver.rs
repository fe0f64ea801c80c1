//! Nameservers in the simulator: the election and takeover, tables created and dropped across tablets, the tablet
//! map, configuration, and the ns_client's output.
#![cfg(madsim)]

use std::sync::Arc;
use std::time::Duration;

use mldb_sim::harness::Cluster;
use mldb_sim::probes::add_coord;
use mldb_sim::runner::run_seed;
use mldb_tests::ns_cluster::{NS_PORT, SESSION, TABLET_PORT, ns_main, tablet_main};
use openmldb::cli::ns_client::NsClient;
use openmldb::coord::{ClientOptions, ModelCoordinator};
use openmldb::proto::nameserver as pb;
use openmldb::proto::tablet as tpb;
use openmldb::rpc::{ClientConfig, RpcClient};
use tokio::time::Instant;

/// The seed's best practice: three machines, each with a tablet; nameservers on the first two.
fn cluster(trace: mldb_sim::trace::Trace) -> (Cluster, String, Vec<String>, Vec<String>) {
    let mut c = Cluster::new(trace);
    let coord = add_coord(&mut c);
    let (mut tablets, mut nameservers) = (Vec::new(), Vec::new());
    for i in 1..=3 {
        let m = c.add_machine(&format!("machine-{i}"));
        let ip = c.add_process(m, &format!("tablet-{i}"), tablet_main(coord.clone()), true);
        tablets.push(format!("{ip}:{TABLET_PORT}"));
        if i <= 2 {
            let ip = c.add_process(m, &format!("nameserver-{i}"), ns_main(coord.clone(), true), true);
            nameservers.push(format!("{ip}:{NS_PORT}"));
        }
    }
    let m = c.add_machine("client-machine");
    c.add_process(m, "client", Cluster::idle(), true);
    (c, coord, tablets, nameservers)
}

async fn ns_client(coord: &str) -> NsClient {
    let session = ModelCoordinator::connect(coord, ClientOptions::new(SESSION)).await.expect("connect");
    NsClient::new(Arc::new(session), "/openmldb", Duration::from_secs(2))
}

/// Runs `cmd` until its output contains `want`.
async fn until(ns: &NsClient, cmd: &str, want: &str, limit: Duration) -> String {
    let start = Instant::now();
    loop {
        let out = match ns.execute(cmd).await {
            Ok(o) | Err(o) => o,
        };
        if out.contains(want) {
            return out;
        }
        assert!(start.elapsed() < limit, "`{cmd}` did not show {want:?} within {limit:?}; last:\n{out}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn rows(out: &str) -> Vec<Vec<String>> {
    out.lines().skip(2).map(|l| l.split_whitespace().map(str::to_string).collect()).collect()
}

#[test]
fn nameservers_elect_one_create_and_drop_tables_and_hand_over_on_a_crash() {
    for seed in mldb_tests::seeds(&[61]) {
        let out = run_seed(seed, Some(Duration::from_secs(120)), |trace| async move {
            let (mut c, coord, tablets, nameservers) = cluster(trace);
            let (co, nss, tbs) = (coord.clone(), nameservers.clone(), tablets.clone());
            c.spawn_on("client", async move {
                let ns = ns_client(&co).await;
                let showns = until(&ns, "showns", "standby", Duration::from_secs(10)).await;
                let roles = rows(&showns);
                assert_eq!(roles.len(), 2, "{showns}");
                assert_eq!(roles[0][1], "leader");
                assert_eq!(ns.active().await.unwrap(), roles[0][0]);
                let showtablet = until(&ns, "showtablet", &tbs[2], Duration::from_secs(10)).await;
                assert_eq!(rows(&showtablet).iter().filter(|r| r[1] == "kTabletHealthy").count(), 3, "{showtablet}");

                let out = ns.execute("create flow 0 2 3 id:string:index ts:int64:ts v:string").await;
                assert_eq!(out.as_deref(), Ok("Create table ok"));
                assert!(
                    ns.execute("create flow 0 2 3 id:string:index ts:int64:ts")
                        .await
                        .unwrap_err()
                        .contains("already exists")
                );
                let table = until(&ns, "showtable flow", "0.000", Duration::from_secs(5)).await;
                let replicas = rows(&table);
                assert_eq!(replicas.len(), 6, "{table}");
                for pid in ["0", "1"] {
                    let of_pid: Vec<_> = replicas.iter().filter(|r| r[2] == pid).collect();
                    assert_eq!(of_pid.iter().filter(|r| r[4] == "leader").count(), 1, "{table}");
                    assert!(of_pid.iter().all(|r| r[6] == "yes"), "{table}");
                }
                // Every tablet holds its partitions.
                for t in &tbs {
                    let client = RpcClient::new(t.clone(), ClientConfig::default());
                    let s = client
                        .call(
                            openmldb::tablet::rpc::GetTableStatus,
                            tpb::GetTableStatusRequest { tid: 0, pid: 0, all: true },
                        )
                        .await
                        .unwrap();
                    assert_eq!(s.all_table_status.len(), 2, "{t}");
                }
                // The standby refuses.
                let standby = roles[1][0].clone();
                assert!(nss.contains(&standby));
                let err = RpcClient::new(standby, ClientConfig::default())
                    .call(openmldb::nameserver::rpc::ShowTable, pb::ShowTableRequest::default())
                    .await
                    .unwrap_err();
                assert!(err.to_string().contains("nameserver is not leader"), "{err}");
            })
            .unwrap()
            .await
            .unwrap();

            // The active nameserver crashes: the standby takes over with the metadata.
            let (co, nss) = (coord.clone(), nameservers.clone());
            let active = c
                .spawn_on("client", async move { ns_client(&co).await.active().await.unwrap() })
                .unwrap()
                .await
                .unwrap();
            let victim = if active == nss[0] { "nameserver-1" } else { "nameserver-2" };
            let crashed = Instant::now();
            c.crash(victim).unwrap();
            let co = coord.clone();
            let took = c
                .spawn_on("client", async move {
                    let ns = ns_client(&co).await;
                    let table = until(&ns, "showtable flow", "flow", Duration::from_secs(10)).await;
                    assert_eq!(rows(&table).len(), 6);
                    let showns = ns.execute("showns").await.unwrap();
                    assert_eq!(rows(&showns).len(), 1, "{showns}");
                    assert_ne!(rows(&showns)[0][0], active);
                    crashed.elapsed()
                })
                .unwrap()
                .await
                .unwrap();
            assert!(took <= SESSION + Duration::from_secs(3), "takeover took {took:?}");

            let co = coord.clone();
            c.spawn_on("client", async move {
                let ns = ns_client(&co).await;
                assert_eq!(ns.execute("confset auto_failover false").await.as_deref(), Ok("set auto_failover ok"));
                assert!(
                    rows(&ns.execute("confget").await.unwrap()).contains(&vec!["auto_failover".into(), "false".into()])
                );
                assert!(ns.execute("confset auto_failover maybe").await.is_err());
            })
            .unwrap()
            .await
            .unwrap();

            // A tablet goes away: it is offline in showtablet once its session expires.
            c.crash("tablet-3").unwrap();
            let (co, tbs) = (coord.clone(), tablets.clone());
            c.spawn_on("client", async move {
                let ns = ns_client(&co).await;
                let out = until(&ns, "showtablet", "kTabletOffline", Duration::from_secs(10)).await;
                let offline: Vec<_> = rows(&out).into_iter().filter(|r| r[1] == "kTabletOffline").collect();
                assert_eq!(offline.len(), 1);
                assert_eq!(offline[0][0], tbs[2]);
                assert_eq!(ns.execute("drop flow").await.as_deref(), Ok("drop ok"));
                assert!(ns.execute("showtable flow").await.unwrap_err().contains("table is not exist"));
            })
            .unwrap()
            .await
            .unwrap();
        });
        assert!(!out.trace.grep("nameserver became active").is_empty());
        assert!(!out.trace.grep("table created").is_empty());
    }
}
