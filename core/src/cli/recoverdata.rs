//! `recoverdata`: the one-click recovery of the seed (OpenMLDB's `openmldb_ops.py --cmd=recoverdata`, reference 7),
//! for a cluster whose tablets all went down at once, when automatic failover cannot bring the data back.
//!
//! For every partition that is not healthy (a replica not alive, not loaded, or loaded in the wrong role):
//! the replica holding the longest log leads (DESIGN 4.7: OpenMLDB's script meant to, but in practice kept the
//! last leader in metadata order), the other replicas are taken out and re-added with `recovertable`, and the tool
//! waits for the ops. It refuses before changing anything when a replica's tablet is not running, turns
//! auto_failover off while it works and back on at the end (also when it fails), and prints what it did per
//! partition. It plans only once the nameserver's own ops have finished (a failover decided just before must not
//! change a leader under the tool). A healthy cluster is left alone.
//!
//! The choices are pure ([`plan_partition`]); the rest calls the nameserver and the tablets.

use std::time::Duration;

use tokio::time::Instant;

use super::ns_client::NsClient;
use crate::nameserver::rpc as ns;
use crate::proto::nameserver as pb;
use crate::proto::tablet as tpb;
use crate::rpc::{ClientConfig, RpcClient};
use crate::tablet::rpc as t;

/// What one replica is, as the tool found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaFacts {
    pub endpoint: String,
    pub meta_leader: bool,
    pub meta_alive: bool,
    /// Loaded on its tablet, and in which role.
    pub loaded: Option<tpb::TableMode>,
    /// Its last log offset: from memory when loaded, else snapshot plus binlog on disk.
    pub offset: u64,
}

/// What to do with one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartitionPlan {
    Healthy,
    Recover {
        /// The replica that will lead.
        leader: String,
        leader_offset: u64,
        /// It must be loaded first (as a follower, leadership then moving to it with `changeleader`; as leader
        /// when it is the partition's only replica).
        load: bool,
        /// The metadata names another leader, or this replica carries a leader mark but is loaded as a follower:
        /// leadership moves with `changeleader`.
        change_leader: bool,
        /// Replicas to mark not alive first (so nothing routes to them) and then `recovertable`.
        readd: Vec<String>,
    },
}

/// Decides one partition (pure). Healthy: every replica alive and loaded, the metadata's leader loaded as leader
/// and the others as followers. Otherwise the longest log leads; ties go to the metadata's leader, then to
/// partition order.
pub fn plan_partition(replicas: &[ReplicaFacts]) -> PartitionPlan {
    let healthy = replicas.iter().all(|r| {
        r.meta_alive
            && match r.loaded {
                Some(tpb::TableMode::Leader) => r.meta_leader,
                Some(_) => !r.meta_leader,
                None => false,
            }
    }) && replicas.iter().filter(|r| r.meta_leader).count() == 1;
    if healthy || replicas.is_empty() {
        return PartitionPlan::Healthy;
    }
    let best = replicas
        .iter()
        .enumerate()
        .max_by_key(|(i, r)| (r.offset, r.meta_leader, std::cmp::Reverse(*i)))
        .map(|(_, r)| r)
        .expect("not empty");
    // Leadership moves through a leader change unless the replica already leads on its tablet: one marked leader
    // but loaded as a follower carries a mark an earlier change left (seed 407752), and one that must be loaded
    // first would keep the metadata's last term if loaded as leader, which the followers may have passed when a
    // leader change that failed probed them (fuzz seed 910486: the reloaded leader's every append was refused as
    // "term is lower" while the follower stayed marked alive). A leader change takes a term of its own. A
    // partition of one replica has no follower to change to, and none to have passed its term: it loads as leader.
    let single = replicas.len() == 1;
    let change_leader = !best.meta_leader
        || best.loaded.is_some_and(|m| m != tpb::TableMode::Leader)
        || (best.loaded.is_none() && !single);
    PartitionPlan::Recover {
        leader: best.endpoint.clone(),
        leader_offset: best.offset,
        load: best.loaded.is_none(),
        change_leader,
        readd: replicas.iter().filter(|r| r.endpoint != best.endpoint).map(|r| r.endpoint.clone()).collect(),
    }
}

/// How long to wait for a load or for the ops.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub load: Duration,
    pub ops: Duration,
    pub poll: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self { load: Duration::from_secs(600), ops: Duration::from_secs(600), poll: Duration::from_millis(500) }
    }
}

fn tablet(endpoint: &str) -> RpcClient {
    RpcClient::new(endpoint, ClientConfig { timeout: Duration::from_secs(10), ..Default::default() })
}

async fn facts(info: &pb::TableInfo, part: &pb::TablePartition) -> Result<Vec<ReplicaFacts>, String> {
    let mut out = Vec::new();
    for m in &part.partition_meta {
        let client = tablet(&m.endpoint);
        let req = tpb::GetTableStatusRequest { tid: info.tid, pid: part.pid, all: false };
        let (loaded, offset) = match client.call(t::GetTableStatus, req).await {
            Ok(s) if !s.all_table_status.is_empty() => {
                let st = &s.all_table_status[0];
                (Some(st.mode()), st.offset)
            }
            // No answer at all (a hung or unreachable tablet): asking it again for its log would only wait as long.
            Err(e) if !matches!(e, crate::rpc::RpcError::Status(_)) => {
                return Err(format!("{} pid {} on {}: no answer: {e}", info.name, part.pid, m.endpoint));
            }
            _ => {
                let req = tpb::TablePidRequest { tid: info.tid, pid: part.pid, task_info: None };
                let r = client.call(t::GetLogOffset, req).await.map_err(|e| {
                    format!("{} pid {} on {}: cannot read its log: {e}", info.name, part.pid, m.endpoint)
                })?;
                (None, r.offset)
            }
        };
        out.push(ReplicaFacts {
            endpoint: m.endpoint.clone(),
            meta_leader: m.is_leader,
            meta_alive: m.is_alive,
            loaded,
            offset,
        });
    }
    Ok(out)
}

type Planned = Vec<(pb::TableInfo, u32, PartitionPlan, Vec<ReplicaFacts>)>;

/// Reads the metadata and plans each partition from it.
async fn plan_all(nsc: &NsClient) -> Result<Planned, String> {
    let shown =
        nsc.call(ns::ShowTable, pb::ShowTableRequest::default()).await.map_err(|e| format!("showtable: {e}"))?;
    plan(&shown).await
}

/// Reads every replica's state of the tables in `shown` and plans each partition.
async fn plan(shown: &pb::ShowTableResponse) -> Result<Planned, String> {
    let mut plans = Vec::new();
    for info in &shown.table_info {
        for p in &info.table_partition {
            let f = facts(info, p).await?;
            plans.push((info.clone(), p.pid, plan_partition(&f), f));
        }
    }
    Ok(plans)
}

/// Every partition healthy: says so per partition in `report`.
fn all_healthy(plans: &Planned, report: &mut String) -> bool {
    if !plans.iter().all(|(_, _, plan, _)| *plan == PartitionPlan::Healthy) {
        return false;
    }
    for (info, pid, _, _) in plans {
        report.push_str(&format!("{} pid {pid}: healthy, nothing to do\n", info.name));
    }
    true
}

/// Waits until no op is queued or running; `Ok` holds the failed ops, `Err` says how many still run at the deadline.
async fn wait_for_ops(nsc: &NsClient, limits: Limits) -> Result<Vec<String>, String> {
    let deadline = Instant::now() + limits.ops;
    loop {
        let ops = nsc.call(ns::ShowOpStatus, pb::ShowOpStatusRequest::default()).await;
        let ops = ops.map_err(|e| format!("showopstatus: {e}"))?;
        let running = ops.op_status.iter().filter(|o| o.status == "kInited" || o.status == "kDoing").count();
        if running == 0 {
            return Ok(ops
                .op_status
                .iter()
                .filter(|o| o.status == "kFailed")
                .map(|o| format!("op {} {} {} pid {}", o.op_id, o.op_type, o.name, o.pid))
                .collect());
        }
        if Instant::now() >= deadline {
            return Err(format!("{running} op(s) still running after {:?}", limits.ops));
        }
        tokio::time::sleep(limits.poll).await;
    }
}

/// Runs recoverdata; `Ok` is the report to print, `Err` a refusal or a failure (with what was done so far).
pub async fn recoverdata(nsc: &NsClient, limits: Limits) -> Result<String, String> {
    let tablets = nsc.call(ns::ShowTablet, pb::ShowTabletRequest {}).await.map_err(|e| format!("showtablet: {e}"))?;
    let healthy = |ep: &str| tablets.tablets.iter().any(|t| t.endpoint == ep && t.state == "kTabletHealthy");
    let shown =
        nsc.call(ns::ShowTable, pb::ShowTableRequest::default()).await.map_err(|e| format!("showtable: {e}"))?;
    // Refuse before changing anything if a replica's tablet is not running.
    let mut down = Vec::new();
    for info in &shown.table_info {
        for p in &info.table_partition {
            for m in &p.partition_meta {
                if !healthy(&m.endpoint) {
                    down.push(format!("{} pid {} on {}", info.name, p.pid, m.endpoint));
                }
            }
        }
    }
    if !down.is_empty() {
        return Err(format!(
            "recoverdata refused: these replicas' tablets are not running (start them and wait for showtablet to \
             show kTabletHealthy): {}",
            down.join(", ")
        ));
    }
    let mut report = String::new();
    let first = plan(&shown).await?;
    if all_healthy(&first, &mut report) {
        report.push_str("recoverdata: every partition is healthy");
        return Ok(report);
    }
    let conf = nsc.call(ns::ConfGet, pb::ConfGetRequest { key: "auto_failover".into() }).await;
    let was_auto = conf.map_err(|e| format!("confget: {e}"))?.conf.iter().any(|c| c.value == "true");
    let set_auto = |on: bool| pb::ConfSetRequest {
        conf: Some(pb::ConfEntry { key: "auto_failover".into(), value: on.to_string() }),
    };
    if was_auto {
        nsc.call(ns::ConfSet, set_auto(false)).await.map_err(|e| format!("confset auto_failover false: {e}"))?;
        report.push_str("auto_failover set to false while recovering\n");
    }
    let result = recover_all(nsc, limits, &mut report).await;
    if was_auto {
        // Back on whatever happened: the tool must not leave the cluster without automatic failover.
        match nsc.call(ns::ConfSet, set_auto(true)).await {
            Ok(_) => report.push_str("auto_failover set back to true\n"),
            Err(e) => return Err(failed(&format!("confset auto_failover true: {e}"), &report)),
        }
    }
    match result {
        Ok(()) => {
            report.push_str("recoverdata: done");
            Ok(report)
        }
        Err(e) => Err(failed(&e, &report)),
    }
}

/// A failure's text: the reason first (a caller that shows one line shows why), then what was done before it.
fn failed(reason: &str, report: &str) -> String {
    if report.is_empty() {
        format!("recoverdata: {reason}")
    } else {
        format!(
            "recoverdata: {reason}
what it did before:
{}",
            report.trim_end()
        )
    }
}

/// The recovery proper, with auto_failover off: the nameserver's own ops (a failover decided just before) finish
/// first, and the plan is made from what they left, so the tool never acts on a leader that changed under it.
async fn recover_all(nsc: &NsClient, limits: Limits, report: &mut String) -> Result<(), String> {
    wait_for_ops(nsc, limits).await.map_err(|e| format!("before recovering: {e}"))?;
    let plans = plan_all(nsc).await?;
    if all_healthy(&plans, report) {
        return Ok(());
    }
    let mut failures = 0;
    for (info, pid, plan, facts) in &plans {
        let line = match plan {
            PartitionPlan::Healthy => Ok("healthy, nothing to do".to_string()),
            PartitionPlan::Recover { leader, leader_offset, load, change_leader, readd } => {
                recover_partition(
                    nsc,
                    info,
                    *pid,
                    facts,
                    (leader, *leader_offset, *load, *change_leader, readd),
                    limits,
                )
                .await
            }
        };
        match line {
            Ok(l) => report.push_str(&format!("{} pid {pid}: {l}\n", info.name)),
            Err(e) => {
                failures += 1;
                report.push_str(&format!("{} pid {pid}: FAILED: {e}\n", info.name));
            }
        }
    }
    // Wait for every op the recovery queued.
    let failed = wait_for_ops(nsc, limits).await?;
    if !failed.is_empty() {
        report.push_str(&format!("failed ops (see showopstatus): {}\n", failed.join(", ")));
    }
    if failures > 0 {
        return Err(format!("{failures} partition(s) failed"));
    }
    Ok(())
}

async fn recover_partition(
    nsc: &NsClient,
    info: &pb::TableInfo,
    pid: u32,
    facts: &[ReplicaFacts],
    (leader, offset, load, change_leader, readd): (&str, u64, bool, bool, &[String]),
    limits: Limits,
) -> Result<String, String> {
    let alive = |ep: &str, yes: bool| pb::UpdateTableAliveRequest {
        name: info.name.clone(),
        pids: vec![pid],
        all: false,
        endpoint: ep.to_string(),
        is_alive: yes,
    };
    // Nothing routes to the replicas that will be re-added.
    for ep in readd {
        if facts.iter().any(|f| f.endpoint == *ep && f.meta_alive) {
            already_so(nsc.call(ns::UpdateTableAlive, alive(ep, false)).await)
                .map_err(|e| format!("updatetablealive {ep} no: {e}"))?;
        }
    }
    let mut did = Vec::new();
    if load {
        let part = info.table_partition.iter().find(|p| p.pid == pid).ok_or("the partition is gone")?;
        let term = part.term_offset.iter().map(|t| t.term).max().unwrap_or(1);
        let mode = if change_leader { tpb::TableMode::Follower } else { tpb::TableMode::Leader };
        let meta = crate::nameserver::Nameserver::tablet_meta(info, pid, mode, term, vec![]);
        let client = tablet(leader);
        client
            .call(t::LoadTable, tpb::LoadTableRequest { meta: Some(meta), task_info: None })
            .await
            .map_err(|e| format!("loadtable on {leader}: {e}"))?;
        let deadline = Instant::now() + limits.load;
        loop {
            let req = tpb::GetTableStatusRequest { tid: info.tid, pid, all: false };
            match client.call(t::GetTableStatus, req).await {
                Ok(s) if s.all_table_status.first().is_some_and(|s| s.state() == tpb::TableState::Normal) => break,
                Ok(_) | Err(_) if Instant::now() < deadline => tokio::time::sleep(limits.poll).await,
                Ok(s) => return Err(format!("{leader} did not finish loading: {:?}", s.all_table_status)),
                Err(e) => return Err(format!("{leader} did not finish loading: {e}")),
            }
        }
        did.push(format!("loaded on {leader} (offset {offset})"));
    }
    let mine = facts.iter().find(|f| f.endpoint == leader);
    if change_leader && mine.is_some_and(|f| f.meta_leader) {
        // A replica marked leader is a leader change's candidate only while it is marked dead.
        if mine.is_some_and(|f| f.meta_alive) {
            already_so(nsc.call(ns::UpdateTableAlive, alive(leader, false)).await)
                .map_err(|e| format!("updatetablealive {leader} no: {e}"))?;
        }
    } else if mine.is_some_and(|f| !f.meta_alive) || change_leader {
        already_so(nsc.call(ns::UpdateTableAlive, alive(leader, true)).await)
            .map_err(|e| format!("updatetablealive {leader} yes: {e}"))?;
    }
    if change_leader {
        let ops_of = || pb::ShowOpStatusRequest { name: info.name.clone(), pid, has_pid: true };
        let before = nsc.call(ns::ShowOpStatus, ops_of()).await.map_err(|e| format!("showopstatus: {e}"))?;
        let seen = before.op_status.iter().map(|o| o.op_id).max().unwrap_or(0);
        let req = pb::ChangeLeaderRequest { name: info.name.clone(), pid, candidate_leader: leader.to_string() };
        nsc.call(ns::ChangeLeader, req).await.map_err(|e| format!("changeleader to {leader}: {e}"))?;
        // The re-adds need the new leader in the metadata: wait for the leader change to finish, and stop at once
        // if its op failed (waiting on would only run into the deadline).
        let deadline = Instant::now() + limits.ops;
        loop {
            let ops = nsc.call(ns::ShowOpStatus, ops_of()).await.map_err(|e| format!("showopstatus: {e}"))?;
            if let Some(failed) = leader_change_failed(&ops.op_status, seen) {
                return Err(format!("the leader change to {leader} failed: {failed}"));
            }
            let req = pb::ShowTableRequest { name: info.name.clone(), db: String::new() };
            let shown = nsc.call(ns::ShowTable, req).await.map_err(|e| format!("showtable: {e}"))?;
            let led = shown
                .table_info
                .iter()
                .flat_map(|t| &t.table_partition)
                .filter(|p| p.pid == pid)
                .any(|p| p.partition_meta.iter().any(|m| m.endpoint == leader && m.is_leader && m.is_alive));
            if led {
                break;
            }
            if Instant::now() >= deadline {
                return Err(format!("the leader change to {leader} did not finish in {:?}", limits.ops));
            }
            tokio::time::sleep(limits.poll).await;
        }
        did.push(format!("leadership moved to {leader}, the longest log (offset {offset})"));
    } else {
        did.push(format!("leader {leader} (offset {offset})"));
    }
    for ep in readd {
        let req = pb::RecoverTableRequest { name: info.name.clone(), pid, endpoint: ep.clone() };
        match nsc.call(ns::RecoverTable, req).await {
            // Alive again meanwhile (the nameserver recovered it): nothing left to do for it.
            Err(crate::rpc::RpcError::Status(s)) if crate::codes::Code::PartitionIsAlive.is(&s) => {}
            other => {
                other.map_err(|e| format!("recovertable {ep}: {e}"))?;
            }
        }
    }
    if !readd.is_empty() {
        did.push(format!("re-adding {}", readd.join(", ")));
    }
    Ok(did.join("; "))
}

/// The failure of the leader change queued after op `seen`, if its op failed.
fn leader_change_failed(ops: &[pb::OpStatus], seen: u64) -> Option<String> {
    ops.iter()
        .filter(|o| o.op_id > seen && o.op_type == "kChangeLeaderOP")
        .max_by_key(|o| o.op_id)
        .filter(|o| o.status == "kFailed")
        .map(|o| format!("op {} {}", o.op_id, if o.reason.is_empty() { "kFailed" } else { &o.reason }))
}

/// "No pid has update": the replica already had the state asked for (an op still finishing when auto_failover was
/// turned off got there first). That is success.
fn already_so<T: Default>(r: Result<T, crate::rpc::RpcError>) -> Result<T, crate::rpc::RpcError> {
    match r {
        Err(crate::rpc::RpcError::Status(s)) if crate::codes::Code::NoPidHasUpdate.is(&s) => Ok(T::default()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(ep: &str, leader: bool, alive: bool, loaded: Option<tpb::TableMode>, offset: u64) -> ReplicaFacts {
        ReplicaFacts { endpoint: ep.into(), meta_leader: leader, meta_alive: alive, loaded, offset }
    }

    const L: Option<tpb::TableMode> = Some(tpb::TableMode::Leader);
    const F: Option<tpb::TableMode> = Some(tpb::TableMode::Follower);

    #[test]
    fn a_failed_leader_change_ends_the_wait() {
        let op = |op_id, op_type: &str, status: &str, reason: &str| pb::OpStatus {
            op_id,
            op_type: op_type.into(),
            status: status.into(),
            reason: reason.into(),
            ..Default::default()
        };
        let ops = [
            op(3, "kChangeLeaderOP", "kFailed", "an older failure"),
            op(5, "kRecoverTableOP", "kFailed", "not a leader change"),
        ];
        assert_eq!(leader_change_failed(&ops, 4), None, "only ops queued after the request count");
        let mut ops = ops.to_vec();
        ops.push(op(6, "kChangeLeaderOP", "kDoing", ""));
        assert_eq!(leader_change_failed(&ops, 4), None, "still running");
        ops[2].status = "kFailed".into();
        ops[2].reason = "change role: write data failed".into();
        assert_eq!(leader_change_failed(&ops, 4).as_deref(), Some("op 6 change role: write data failed"));
        ops[2].status = "kDone".into();
        assert_eq!(leader_change_failed(&ops, 4), None);
    }

    #[test]
    fn a_healthy_partition_is_left_alone() {
        let p = [r("a", true, true, L, 9), r("b", false, true, F, 9), r("c", false, true, F, 8)];
        assert_eq!(plan_partition(&p), PartitionPlan::Healthy);
    }

    #[test]
    fn unhealthy_in_every_way() {
        let base = [r("a", true, true, L, 9), r("b", false, true, F, 9)];
        for broken in [
            [r("a", true, false, L, 9), base[1].clone()],
            [r("a", true, true, None, 9), base[1].clone()],
            [r("a", true, true, F, 9), base[1].clone()],
            [base[0].clone(), r("b", false, true, L, 9)],
        ] {
            assert_ne!(plan_partition(&broken), PartitionPlan::Healthy, "{broken:?}");
        }
    }

    #[test]
    fn after_a_full_restart_the_longest_log_leads() {
        // The metadata's leader lost an unsynced tail: the follower with more leads, through a leader change.
        let p = [r("a", true, true, None, 90), r("b", false, true, None, 100), r("c", false, true, None, 95)];
        assert_eq!(
            plan_partition(&p),
            PartitionPlan::Recover {
                leader: "b".into(),
                leader_offset: 100,
                load: true,
                change_leader: true,
                readd: vec!["a".into(), "c".into()],
            }
        );
    }

    #[test]
    fn ties_go_to_the_metadata_leader_then_to_partition_order() {
        let p = [r("a", false, false, None, 50), r("b", true, false, None, 50), r("c", false, false, None, 50)];
        match plan_partition(&p) {
            PartitionPlan::Recover { leader, change_leader, .. } => {
                assert_eq!((leader.as_str(), change_leader), ("b", true), "loaded first: a leader change")
            }
            other => panic!("{other:?}"),
        }
        let p = [r("a", false, false, None, 50), r("b", false, false, None, 50)];
        match plan_partition(&p) {
            PartitionPlan::Recover { leader, .. } => assert_eq!(leader, "a"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_leader_mark_on_a_loaded_follower_moves_leadership() {
        // An earlier change left a's mark; a holds the longest log but follows: leadership must move to it.
        let p = [r("a", true, false, F, 206), r("b", true, false, None, 196)];
        assert_eq!(
            plan_partition(&p),
            PartitionPlan::Recover {
                leader: "a".into(),
                leader_offset: 206,
                load: false,
                change_leader: true,
                readd: vec!["b".into()],
            }
        );
    }

    #[test]
    fn a_single_replica_loads_as_leader() {
        let p = [r("a", true, true, None, 10)];
        assert_eq!(
            plan_partition(&p),
            PartitionPlan::Recover {
                leader: "a".into(),
                leader_offset: 10,
                load: true,
                change_leader: false,
                readd: vec![],
            }
        );
    }

    #[test]
    fn a_loaded_leader_is_not_loaded_again() {
        let p = [r("a", true, true, L, 10), r("b", false, false, None, 7)];
        assert_eq!(
            plan_partition(&p),
            PartitionPlan::Recover {
                leader: "a".into(),
                leader_offset: 10,
                load: false,
                change_leader: false,
                readd: vec!["b".into()],
            }
        );
    }
}
