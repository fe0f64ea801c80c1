//! The nameserver's view of the tablets against the tablets themselves, in the simulator: an active nameserver
//! cut off from every tablet steps down for the standby (DESIGN 5.5) but never without one, and alive marks a
//! tablet contradicts are corrected for the one replica concerned, never by failing the whole tablet over.
#![cfg(madsim)]

use std::time::Duration;

use mldb_sim::runner::run_seed;
use mldb_tests::ns_cluster::{Env, Writer, acked, all_alive, first_ack_after, lost_beyond_bound, replicas, rows};
use openmldb::proto::tablet as tpb;
use openmldb::rpc::{ClientConfig, RpcClient};
use tokio::time::Instant;

const CREATE: &str = "create flow 0 4 3 id:string:index ts:int64:ts v:string";
const TID: u32 = 1;

async fn create_table(env: &Env) -> String {
    env.ns_until("showtablet", Duration::from_secs(10), |o| o.matches("kTabletHealthy").count() == 3).await;
    assert_eq!(env.ns(CREATE).await.as_deref(), Ok("Create table ok"));
    env.ns_until("showtable flow", Duration::from_secs(10), |o| all_alive(o) && replicas(o).len() == 12).await
}

/// The endpoint showns lists as leader.
async fn active_ns(env: &Env) -> String {
    let out = env.ns_until("showns", Duration::from_secs(10), |o| o.contains("leader")).await;
    rows(&out).into_iter().find(|r| r[1] == "leader").map(|r| r[0].clone()).expect("a leader row")
}

fn ns_name(env: &Env, endpoint: &str) -> String {
    let i = env.nameservers.iter().position(|n| n == endpoint).expect("a nameserver endpoint");
    format!("nameserver-{}", i + 1)
}

fn leader_of(showtable: &str, pid: u32) -> String {
    replicas(showtable)
        .into_iter()
        .find(|r| r.0 == pid && r.2 == "leader" && r.3 == "yes")
        .map(|r| r.1)
        .unwrap_or_else(|| panic!("no alive leader of pid {pid}:\n{showtable}"))
}

fn tablet_names() -> Vec<String> {
    (1..=3).map(|i| format!("tablet-{i}")).collect()
}

#[test]
fn an_active_nameserver_cut_from_every_tablet_steps_down_and_the_standby_fails_a_crash_over() {
    for seed in mldb_tests::seeds(&[3, 4]) {
        run_seed(seed, Some(Duration::from_secs(300)), |trace| async move {
            let mut env = Env::new(trace, true);
            let table = create_table(&env).await;
            let first = active_ns(&env).await;
            let writer = Writer::start(&env, "flow", 0, Duration::from_millis(20));
            tokio::time::sleep(Duration::from_secs(2)).await;

            // Both nameservers keep their sessions; only the active one loses the tablets.
            env.c.partition(&[vec![ns_name(&env, &first)], tablet_names()]).unwrap();
            let cut = Instant::now();
            let f = first.clone();
            env.ns_until("showns", Duration::from_secs(10), move |o| {
                rows(o).iter().any(|r| r[1] == "leader" && r[0] != f)
            })
            .await;
            let stepped_down = cut.elapsed();
            eprintln!("the cut nameserver stepped down after {stepped_down:?}");
            assert!(stepped_down < Duration::from_secs(8), "{stepped_down:?}");
            // It joined again as the standby and does not take the lock back while the standby reaches the tablets.
            tokio::time::sleep(Duration::from_secs(5)).await;
            let now_active = active_ns(&env).await;
            assert_ne!(now_active, first, "the cut nameserver took the lock back");
            let showns = env.ns("showns").await.unwrap_or_else(|e| e);
            assert!(showns.contains(&first) && showns.contains("standby"), "{showns}");

            // A leader crash is failed over by the nameserver that reaches the followers.
            let victim_ep = leader_of(&table, 0);
            let victim = env.tablet_name(&victim_ep);
            let crashed = Instant::now();
            env.c.crash(&victim).unwrap();
            let ep = victim_ep.clone();
            env.ns_until("showtable flow", Duration::from_secs(15), move |o| {
                replicas(o).iter().any(|x| x.0 == 0 && x.2 == "leader" && x.3 == "yes" && x.1 != ep)
            })
            .await;
            tokio::time::sleep(Duration::from_secs(2)).await;
            env.c.start(&victim).unwrap();
            env.c.heal();
            env.ns_until("showtable flow", Duration::from_secs(60), all_alive).await;
            let log = writer.stop().await;
            let back = first_ack_after(&log, 0, crashed, &victim_ep).expect("pid 0 writable again");
            eprintln!("pid 0 was writable again {:?} after the crash", back - crashed);
            assert!(back - crashed < Duration::from_secs(8), "{:?}", back - crashed);
            let (info, held) = env.converged_table(TID).await;
            let lost = lost_beyond_bound(&acked(&log), &held, &info);
            assert!(lost.is_empty(), "{lost:?}");
        });
    }
}

#[test]
fn without_a_standby_a_cut_nameserver_keeps_the_lock() {
    for seed in mldb_tests::seeds(&[5]) {
        run_seed(seed, Some(Duration::from_secs(300)), |trace| async move {
            let mut env = Env::new(trace, true);
            create_table(&env).await;
            let first = active_ns(&env).await;
            let other = env.nameservers.iter().find(|n| **n != first).cloned().expect("two nameservers");
            env.c.crash(&ns_name(&env, &other)).unwrap();
            let f = first.clone();
            env.ns_until("showns", Duration::from_secs(10), move |o| rows(o).len() == 1 && o.contains(&f)).await;
            env.c.partition(&[vec![ns_name(&env, &first)], tablet_names()]).unwrap();
            tokio::time::sleep(Duration::from_secs(12)).await;
            assert_eq!(active_ns(&env).await, first, "stepped down with no standby to take over");
            env.c.heal();
            env.ns_until("showtable flow", Duration::from_secs(30), all_alive).await;
        });
    }
}

#[test]
fn a_replica_its_tablet_does_not_hold_is_corrected_alone() {
    for seed in mldb_tests::seeds(&[6]) {
        run_seed(seed, Some(Duration::from_secs(300)), |trace| async move {
            let env = Env::new(trace, true);
            let table = create_table(&env).await;
            // A follower replica unloaded behind the nameserver's back (its mark stays alive).
            let reps = replicas(&table);
            let (pid, victim) =
                reps.iter().find(|r| r.2 == "follower").map(|r| (r.0, r.1.clone())).expect("a follower");
            let ep = victim.clone();
            env.on_client(async move {
                let client = RpcClient::new(ep, ClientConfig::default());
                let req = tpb::TablePidRequest { tid: TID, pid, task_info: None };
                client.call(openmldb::tablet::rpc::DropTable, req).await.expect("drop the replica on its tablet");
            })
            .await;
            // Until it is recovered, the victim's other replicas stay alive and its leaders keep leading.
            let others: Vec<(u32, String)> =
                reps.iter().filter(|r| r.1 == victim && r.0 != pid).map(|r| (r.0, r.2.clone())).collect();
            let start = Instant::now();
            let mut corrected = false;
            loop {
                let out = env.ns("showtable flow").await.unwrap_or_else(|e| e);
                let now = replicas(&out);
                for (p, role) in &others {
                    let r = now.iter().find(|r| r.0 == *p && r.1 == victim).expect("replica listed");
                    assert_eq!((&r.2, r.3.as_str()), (role, "yes"), "pid {p} on {victim} was failed over:\n{out}");
                }
                let mine = now.iter().find(|r| r.0 == pid && r.1 == victim).expect("replica listed");
                corrected |= mine.3 == "no";
                if corrected && all_alive(&out) {
                    break;
                }
                assert!(start.elapsed() < Duration::from_secs(40), "not corrected and recovered:\n{out}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let ops = env.ns("showopstatus").await.unwrap_or_else(|e| e);
            eprintln!("{ops}");
            assert!(!ops.contains("kChangeLeaderOP"), "no leader changed:\n{ops}");
            assert!(rows(&ops).iter().all(|r| r[3] == pid.to_string()), "only pid {pid} had ops:\n{ops}");
        });
    }
}
