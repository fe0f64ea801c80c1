//! Manual failover and recovery in the simulator (the seed's "High Availability and Recovery" transcript):
//! `confset auto_failover false`, a crash that nothing fails over by itself, `offlineendpoint`, a restart,
//! `recoverendpoint`; a follower-only crash in automatic mode; and the checks of the manual commands.
#![cfg(madsim)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use mldb_sim::runner::run_seed;
use mldb_tests::ns_cluster::{
    Env, Writer, acked, all_alive, lost_beyond_bound, ops_settled, replicas, rows, unexpected,
};
use mldb_tests::routing::{Attempt, key};
use openmldb::proto::nameserver::TableInfo;

const CREATE: &str = "create flow 0 2 3 id:string:index ts:int64:ts v:string";
const TID: u32 = 1;
const REFUSED: &str = "auto_failover is enabled";
const READD_OPS: [&str; 4] =
    ["kReAddReplicaOP", "kReAddReplicaNoSendOP", "kReAddReplicaSimplifyOP", "kReAddReplicaWithDropOP"];

/// Creates the table and waits until showtable reports every replica.
async fn create_table(env: &Env) -> String {
    env.ns_until("showtablet", Duration::from_secs(10), |o| o.matches("kTabletHealthy").count() == 3).await;
    assert_eq!(env.ns(CREATE).await.as_deref(), Ok("Create table ok"));
    env.ns_until("showtable flow", Duration::from_secs(10), |o| all_alive(o) && replicas(o).len() == 6).await
}

/// The alive leader endpoint of `pid` in a showtable output, if any.
fn alive_leader(showtable: &str, pid: u32) -> Option<String> {
    replicas(showtable).into_iter().find(|r| r.0 == pid && r.2 == "leader" && r.3 == "yes").map(|r| r.1)
}

/// The alive leader endpoint of `pid` in a showtable output.
fn leader_of(showtable: &str, pid: u32) -> String {
    alive_leader(showtable, pid).unwrap_or_else(|| panic!("no alive leader of pid {pid}:\n{showtable}"))
}

/// The pids `endpoint` leads (alive) in a showtable output.
fn led_by(showtable: &str, endpoint: &str) -> Vec<u32> {
    replicas(showtable)
        .into_iter()
        .filter(|r| r.1 == endpoint && r.2 == "leader" && r.3 == "yes")
        .map(|r| r.0)
        .collect()
}

/// The is_alive column of every replica on `endpoint`.
fn alive_flags(showtable: &str, endpoint: &str) -> Vec<String> {
    replicas(showtable).into_iter().filter(|r| r.1 == endpoint).map(|r| r.3).collect()
}

/// The state column of `endpoint` in a showtablet output.
fn tablet_state(showtablet: &str, endpoint: &str) -> Option<String> {
    rows(showtablet).into_iter().find(|r| r.first().map(String::as_str) == Some(endpoint)).map(|r| r[1].clone())
}

/// showopstatus rows as (op_type, pid, status).
fn ops(showopstatus: &str) -> Vec<(String, u32, String)> {
    rows(showopstatus).into_iter().map(|r| (r[1].clone(), r[3].parse().expect("pid"), r[4].clone())).collect()
}

/// showopstatus has, for `pid`, a kRecoverTableOP and one of the re-add ops, both kDone.
fn recovery_done(showopstatus: &str, pid: u32) -> bool {
    let o = ops(showopstatus);
    let done = |t: &str| o.iter().any(|x| x.0 == t && x.1 == pid && x.2 == "kDone");
    done("kRecoverTableOP") && READD_OPS.iter().any(|t| done(t))
}

/// showopstatus has ops and every one is kDone.
fn assert_all_done(showopstatus: &str) {
    let o = ops(showopstatus);
    assert!(!o.is_empty() && o.iter().all(|x| x.2 == "kDone"), "not every op is kDone:\n{showopstatus}");
}

/// Either output of a command, as printed.
fn text(r: &Result<String, String>) -> &str {
    match r {
        Ok(o) | Err(o) => o,
    }
}

/// Stops the writer, waits until the replicas converge, and returns the log, the metadata and what each pid holds.
async fn stop_and_converge(env: &Env, writer: Writer) -> (Vec<Attempt>, TableInfo, BTreeMap<u32, BTreeSet<String>>) {
    eprintln!("stopping the writer");
    let log = writer.stop().await;
    eprintln!("writer stopped: {} attempts, {} acked", log.len(), acked(&log).len());
    let (info, held) = env.converged_table(TID).await;
    eprintln!("converged: {:?}", held.iter().map(|(p, ids)| (*p, ids.len())).collect::<Vec<_>>());
    (log, info, held)
}

/// The loss bound and no unexpected rows.
fn check_writes(log: &[Attempt], info: &TableInfo, held: &BTreeMap<u32, BTreeSet<String>>, min_acks: usize) {
    let acks = acked(log);
    assert!(acks.len() > min_acks, "{} acks", acks.len());
    let lost = lost_beyond_bound(&acks, held, info);
    assert!(lost.is_empty(), "{lost:?}");
    let attempted = log.iter().map(|a| a.row).collect();
    let extra = unexpected(&attempted, held);
    assert!(extra.is_empty(), "{extra:?}");
}

#[test]
fn manual_mode_replays_the_seed_transcript() {
    for seed in mldb_tests::seeds(&[7]) {
        let out = run_seed(seed, Some(Duration::from_secs(300)), |trace| async move {
            let mut env = Env::new(trace, true);
            let table = create_table(&env).await;
            eprintln!("created:\n{table}");
            let victim_ep = leader_of(&table, 0);
            let victim = env.tablet_name(&victim_ep);
            let led = led_by(&table, &victim_ep);
            let writer = Writer::start(&env, "flow", 0, Duration::from_millis(20));
            tokio::time::sleep(Duration::from_secs(2)).await;

            let refused = env.ns(&format!("offlineendpoint {victim_ep}")).await;
            eprintln!("offlineendpoint with auto_failover on: {refused:?}");
            assert!(refused.as_ref().is_err_and(|e| e.contains(REFUSED)), "{refused:?}");

            assert_eq!(env.ns("confset auto_failover false").await.as_deref(), Ok("set auto_failover ok"));
            let conf = env.ns("confget").await;
            eprintln!("{}", text(&conf));
            assert!(conf.as_ref().is_ok_and(|o| o.contains("auto_failover") && o.contains("false")), "{conf:?}");
            tokio::time::sleep(Duration::from_secs(1)).await;

            env.c.crash(&victim).unwrap();
            let ep = victim_ep.clone();
            let tablets = env
                .ns_until("showtablet", Duration::from_secs(20), move |o| {
                    tablet_state(o, &ep).as_deref() == Some("kTabletOffline")
                })
                .await;
            eprintln!("after the crash:\n{tablets}");

            // Nothing fails over by itself.
            tokio::time::sleep(Duration::from_secs(5)).await;
            let table = env.ns("showtable flow").await.unwrap();
            eprintln!("5s later:\n{table}");
            let flags = alive_flags(&table, &victim_ep);
            assert!(flags.len() == 2 && flags.iter().all(|f| f == "yes"), "{table}");
            for pid in &led {
                assert_eq!(alive_leader(&table, *pid).as_deref(), Some(victim_ep.as_str()), "{table}");
            }
            let status = env.ns("showopstatus").await.unwrap();
            eprintln!("{status}");
            assert!(ops(&status).is_empty(), "{status}");

            // The commands refused while auto_failover was on are taken now: they fail, if at all, for another
            // reason.
            let other = env.tablets.iter().find(|t| **t != victim_ep).unwrap().clone();
            for cmd in [
                "cancelop 424242".to_string(),
                "changeleader flow 9".to_string(),
                format!("recovertable flow 0 {victim_ep}"),
                format!("migrate {victim_ep} flow 9 {other}"),
            ] {
                let r = env.ns(&cmd).await;
                eprintln!("{cmd}: {r:?}");
                assert!(!text(&r).contains(REFUSED), "{cmd}: {r:?}");
            }

            let r = env.ns(&format!("offlineendpoint {victim_ep}")).await;
            eprintln!("offlineendpoint: {r:?}");
            assert_eq!(r.as_deref(), Ok("offline endpoint ok"));
            let (ep, led2) = (victim_ep.clone(), led.clone());
            let table = env
                .ns_until("showtable flow", Duration::from_secs(30), move |o| {
                    let r = replicas(o);
                    let dead = r.iter().filter(|x| x.1 == ep).all(|x| x.3 == "no");
                    let leaders = led2.iter().all(|pid| alive_leader(o, *pid).is_some_and(|l| l != ep));
                    dead && leaders
                })
                .await;
            eprintln!("after offlineendpoint:\n{table}");
            eprintln!("{}", env.ns("showopstatus").await.unwrap());
            tokio::time::sleep(Duration::from_secs(2)).await;

            env.c.start(&victim).unwrap();
            let ep = victim_ep.clone();
            let tablets = env
                .ns_until("showtablet", Duration::from_secs(30), move |o| {
                    tablet_state(o, &ep).as_deref() == Some("kTabletHealthy")
                })
                .await;
            eprintln!("after the restart:\n{tablets}");
            let r = env.ns(&format!("recoverendpoint {victim_ep}")).await;
            eprintln!("recoverendpoint: {r:?}");
            assert_eq!(r.as_deref(), Ok("recover endpoint ok"));

            let status = env
                .ns_until("showopstatus", Duration::from_secs(60), |o| {
                    (ops_settled(o) && (0..2).all(|pid| recovery_done(o, pid))) || o.contains("kFailed")
                })
                .await;
            eprintln!("{status}");
            assert_all_done(&status);
            let recovered = env.ns_until("showtable flow", Duration::from_secs(60), all_alive).await;
            eprintln!("after recoverendpoint:\n{recovered}");

            let (log, info, held) = stop_and_converge(&env, writer).await;
            check_writes(&log, &info, &held, 100);
        });
        eprintln!("seed {seed}: {} in {:?} simulated", out.hash, out.sim_elapsed);
    }
}

#[test]
fn a_follower_only_crash_loses_nothing() {
    for seed in mldb_tests::seeds(&[7]) {
        let out = run_seed(seed, Some(Duration::from_secs(300)), |trace| async move {
            let mut env = Env::new(trace, true);
            let table = create_table(&env).await;
            eprintln!("created:\n{table}");
            let leaders: Vec<String> = (0..2).map(|pid| leader_of(&table, pid)).collect();
            let victim_ep = env.tablets.iter().find(|t| !leaders.contains(t)).expect("a tablet leading none").clone();
            let victim = env.tablet_name(&victim_ep);
            let writer = Writer::start(&env, "flow", 0, Duration::from_millis(20));
            tokio::time::sleep(Duration::from_secs(3)).await;

            env.c.crash(&victim).unwrap();
            let (ep, l) = (victim_ep.clone(), leaders.clone());
            let table = env
                .ns_until("showtable flow", Duration::from_secs(30), move |o| {
                    let dead = alive_flags(o, &ep).iter().all(|f| f == "no");
                    dead && (0..2).all(|pid| alive_leader(o, pid).as_ref() == Some(&l[pid as usize]))
                })
                .await;
            eprintln!("after the crash:\n{table}");
            tokio::time::sleep(Duration::from_secs(2)).await;
            let table = env.ns("showtable flow").await.unwrap();
            for pid in 0..2 {
                assert_eq!(alive_leader(&table, pid).as_ref(), Some(&leaders[pid as usize]), "{table}");
            }

            env.c.start(&victim).unwrap();
            let recovered = env.ns_until("showtable flow", Duration::from_secs(60), all_alive).await;
            eprintln!("after recovery:\n{recovered}");
            for pid in 0..2 {
                assert_eq!(alive_leader(&recovered, pid).as_ref(), Some(&leaders[pid as usize]), "{recovered}");
            }
            let status = env.ns_until("showopstatus", Duration::from_secs(60), ops_settled).await;
            eprintln!("{status}");
            assert_all_done(&status);
            assert!((0..2).all(|pid| recovery_done(&status, pid)), "{status}");

            let (log, info, held) = stop_and_converge(&env, writer).await;
            check_writes(&log, &info, &held, 100);
            let lost: Vec<String> = acked(&log)
                .into_iter()
                .filter(|(row, ack)| !held.get(&ack.pid).is_some_and(|ids| ids.contains(&key(*row))))
                .map(|(row, ack)| format!("row {row} acked as pid {} term {} offset {}", ack.pid, ack.term, ack.offset))
                .collect();
            assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
        });
        eprintln!("seed {seed}: {} in {:?} simulated", out.hash, out.sim_elapsed);
    }
}

#[test]
fn manual_commands_check_their_arguments() {
    for seed in mldb_tests::seeds(&[7]) {
        let out = run_seed(seed, Some(Duration::from_secs(300)), |trace| async move {
            let env = Env::new(trace, true);
            let table = create_table(&env).await;
            eprintln!("created:\n{table}");
            let old_leader = leader_of(&table, 0);
            let other = env.tablets.iter().find(|t| **t != old_leader).unwrap().clone();
            let writer = Writer::start(&env, "flow", 0, Duration::from_millis(20));
            tokio::time::sleep(Duration::from_secs(2)).await;

            // auto_failover on: the failover commands are refused, whatever their arguments.
            for cmd in [
                format!("offlineendpoint {old_leader}"),
                format!("recoverendpoint {old_leader}"),
                "changeleader flow 0".to_string(),
                format!("recovertable flow 0 {old_leader}"),
                format!("updatetablealive flow * {old_leader} no"),
                format!("migrate {other} flow 0 {old_leader}"),
                "cancelop 1".to_string(),
            ] {
                let r = env.ns(&cmd).await;
                eprintln!("{cmd}: {r:?}");
                assert!(r.as_ref().is_err_and(|e| e.contains(REFUSED)), "{cmd}: {r:?}");
            }
            // addreplica, delreplica and makesnapshot are not failover commands.
            for cmd in [
                format!("addreplica flow 0 {other}"),
                format!("delreplica flow 0 {old_leader}"),
                "makesnapshot flow 0".into(),
            ] {
                let r = env.ns(&cmd).await;
                eprintln!("{cmd}: {r:?}");
                assert!(!text(&r).contains(REFUSED), "{cmd}: {r:?}");
                if cmd.starts_with("makesnapshot") {
                    assert_eq!(r.as_deref(), Ok("MakeSnapshot ok"));
                }
            }

            assert_eq!(env.ns("confset auto_failover false").await.as_deref(), Ok("set auto_failover ok"));

            let r = env.ns("changeleader flow 0").await;
            eprintln!("changeleader flow 0: {r:?}");
            assert!(r.as_ref().is_err_and(|e| e.contains("leader is alive")), "{r:?}");
            let r = env.ns("changeleader flow 0 auto").await;
            eprintln!("changeleader flow 0 auto: {r:?}");
            assert!(r.as_ref().is_ok_and(|o| o.starts_with("change leader ok")), "{r:?}");
            let ep = old_leader.clone();
            let table = env
                .ns_until("showtable flow", Duration::from_secs(30), move |o| {
                    let old_dead = replicas(o).iter().any(|x| x.0 == 0 && x.1 == ep && x.3 == "no");
                    old_dead && alive_leader(o, 0).is_some_and(|l| l != ep)
                })
                .await;
            eprintln!("after changeleader auto:\n{table}");
            let new_leader = leader_of(&table, 0);

            let r = env.ns(&format!("recovertable flow 0 {old_leader}")).await;
            eprintln!("recovertable flow 0 {old_leader}: {r:?}");
            assert_eq!(r.as_deref(), Ok("recover table ok"));
            let recovered = env.ns_until("showtable flow", Duration::from_secs(60), all_alive).await;
            eprintln!("after recovertable:\n{recovered}");
            assert_eq!(leader_of(&recovered, 0), new_leader);
            let status = env.ns_until("showopstatus", Duration::from_secs(60), ops_settled).await;
            eprintln!("{status}");
            assert_all_done(&status);
            assert!(status.contains("kChangeLeaderOP") && recovery_done(&status, 0), "{status}");

            let (log, info, held) = stop_and_converge(&env, writer).await;
            check_writes(&log, &info, &held, 50);

            // updatetablealive on a tablet that leads nothing: a metadata edit, refused when it changes nothing.
            let leaders: Vec<String> = (0..2).map(|pid| leader_of(&recovered, pid)).collect();
            let idle = env.tablets.iter().find(|t| !leaders.contains(t)).expect("a tablet leading none").clone();
            let cmd = format!("updatetablealive flow * {idle} no");
            let r = env.ns(&cmd).await;
            eprintln!("{cmd}: {r:?}");
            assert_eq!(r.as_deref(), Ok("update ok"));
            let table = env.ns("showtable flow").await.unwrap();
            eprintln!("{table}");
            assert!(alive_flags(&table, &idle).iter().all(|f| f == "no"), "{table}");
            let r = env.ns(&cmd).await;
            eprintln!("{cmd} again: {r:?}");
            assert!(r.as_ref().is_err_and(|e| e.contains("no pid has update")), "{r:?}");
            let cmd = format!("updatetablealive flow * {idle} yes");
            assert_eq!(env.ns(&cmd).await.as_deref(), Ok("update ok"));

            let cmd = format!("recovertable flow 0 {new_leader}");
            let r = env.ns(&cmd).await;
            eprintln!("{cmd}: {r:?}");
            assert!(r.as_ref().is_err_and(|e| e.contains("table is alive, need not recover")), "{r:?}");

            let snapshots = |o: &str| ops(o).into_iter().filter(|x| x.0 == "kMakeSnapshotOP" && x.1 == 0).count();
            let before = snapshots(&env.ns("showopstatus").await.unwrap());
            let r = env.ns("makesnapshot flow 0").await;
            eprintln!("makesnapshot flow 0: {r:?}");
            assert_eq!(r.as_deref(), Ok("MakeSnapshot ok"));
            let status = env
                .ns_until("showopstatus", Duration::from_secs(60), move |o| snapshots(o) > before && ops_settled(o))
                .await;
            eprintln!("{status}");
            let done = ops(&status).iter().filter(|x| x.0 == "kMakeSnapshotOP" && x.1 == 0 && x.2 == "kDone").count();
            assert_eq!(done, before + 1, "{status}");
            assert_all_done(&status);
        });
        eprintln!("seed {seed}: {} in {:?} simulated", out.hash, out.sim_elapsed);
    }
}
