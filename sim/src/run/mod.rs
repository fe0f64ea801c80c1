//! Runs one scenario under one seed (DESIGN 6 to 8): builds the cluster, creates the tables, runs the workloads
//! and the steps at their simulated times, heals, waits for convergence, observes every replica, and hands it all
//! to the checkers.
//!
//! - [`setup`]: flags and placement;
//! - [`world`]: targets, the nemesis, the daemon model, the client steps, the fault timeline;
//! - [`workload`]: writers and readers through the routing client;
//! - [`observe`]: leader spans and the final replicas;
//! - [`evidence`]: what the trace says of the replicas (log positions, session expiries, the active nameserver).

pub mod evidence;
pub mod observe;
pub mod setup;
pub mod workload;
pub mod world;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use openmldb::planted::Planted;
use openmldb::proto::nameserver as pb;
use tokio::time::Instant;

use crate::check::{
    self, AutoRecovery, Fsync, LossPolicy, PartitionLayout, Report, RunData, Summary, TableData, WriteRecord,
};
use crate::runner::run_seed_into;
use crate::scenario::{self, Scenario, StepTime, WorkloadKind};
use crate::trace::Trace;
use setup::{Flags, build};
use world::{POLL, World};

/// Convergence bound when the scenario names none.
pub const DEFAULT_CONVERGE_WITHIN: Duration = Duration::from_secs(60);

/// The result of one seed of one scenario.
pub struct SeedResult {
    pub seed: u64,
    pub report: Option<Report>,
    /// What the report was built from.
    pub data: Option<RunData>,
    /// Trace time at the scenario's time zero (setup comes before it): add it to a report's times to find
    /// their trace lines.
    pub zero: Duration,
    /// Steps that failed (expectations, timeouts, targets naming nothing), and a run that panicked.
    pub failures: Vec<String>,
    pub hash: u64,
    pub trace: Trace,
    pub sim_elapsed: Duration,
    pub wall_elapsed: Duration,
}

impl SeedResult {
    pub fn passed(&self) -> bool {
        self.failures.is_empty() && self.report.as_ref().is_some_and(Report::passed)
    }

    pub fn summary(&self) -> Option<Summary> {
        self.report.as_ref().map(Report::summary)
    }
}

/// Runs `scenario` under `seed`. A panic inside the simulation (a broken invariant, the time limit) becomes a
/// failure of this seed, not of the caller.
pub fn run(scenario: &Scenario, seed: u64) -> SeedResult {
    run_planted(scenario, seed, Planted::default())
}

/// [`run`] with planted bugs switched on in every tablet and nameserver: how the tests prove that each checker
/// can fail.
pub fn run_planted(scenario: &Scenario, seed: u64, planted: Planted) -> SeedResult {
    let converge = scenario.expect.converge_within.unwrap_or(DEFAULT_CONVERGE_WITHIN);
    let limit = scenario.duration + converge + Duration::from_secs(120);
    let s = scenario.clone();
    let wall = std::time::Instant::now();
    let partial = Trace::new();
    let into = partial.clone();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run_seed_into(seed, Some(limit), into, move |trace| async move { body(s, trace, planted).await })
    }));
    match outcome {
        Ok(out) => {
            let (report, data, failures, zero) = out.value;
            SeedResult {
                seed,
                report: Some(report),
                data: Some(data),
                zero,
                failures,
                hash: out.hash,
                trace: out.trace,
                sim_elapsed: out.sim_elapsed,
                wall_elapsed: out.wall_elapsed,
            }
        }
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into());
            // The clock stopped with the runtime: the line carries the time of the last event.
            partial.record_after_end("runner", format_args!("the run panicked: {msg}"));
            SeedResult {
                seed,
                report: None,
                data: None,
                zero: Duration::ZERO,
                failures: vec![format!("the run panicked: {msg}")],
                hash: 0,
                trace: partial,
                sim_elapsed: Duration::ZERO,
                wall_elapsed: wall.elapsed(),
            }
        }
    }
}

/// The table a scenario's `[[table]]` describes: the runner's schema (`id` key, `ts` order, `v`).
fn table_info(spec: &scenario::TableSpec, cluster: &scenario::Cluster) -> pb::TableInfo {
    let mut info = openmldb::cli::ns_client::parse_create(&[
        &spec.name,
        "0",
        &spec.partitions.to_string(),
        &spec.replica_count(cluster).to_string(),
        "id:string:index",
        "ts:int64:ts",
        "v:string",
    ])
    .expect("the runner's schema parses");
    info.replication = match spec.replication {
        scenario::Replication::Async => openmldb::proto::tablet::ReplicationMode::Async,
        scenario::Replication::Semisync => openmldb::proto::tablet::ReplicationMode::Semisync,
    } as i32;
    info
}

async fn body(s: Scenario, trace: Trace, planted: Planted) -> (Report, RunData, Vec<String>, Duration) {
    let mut flags = Flags::of(&s);
    flags.tablet.planted = planted;
    flags.nameserver.planted = planted;
    flags.taskmanager.planted = planted;
    let built = build(&s, &flags, trace.clone());
    let mut w = World::new(built, s.clone(), flags, trace.clone()).await;
    let mut failures = Vec::new();

    // Setup, before time zero: every tablet registered, a nameserver active, the tables created.
    let tablets = s.cluster.tablets;
    let ns = w.ns_client();
    let ready = w
        .on_client(async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                if let Ok(out) = ns.execute("showtablet").await
                    && out.matches("kTabletHealthy").count() == tablets
                {
                    return true;
                }
                if Instant::now() > deadline {
                    return false;
                }
                tokio::time::sleep(POLL).await;
            }
        })
        .await;
    if !ready {
        failures.push("setup: the tablets did not all register with an active nameserver within 60 s".into());
    }
    for spec in &s.tables {
        let info = table_info(spec, &s.cluster);
        let ns = w.ns_client();
        if let Err(e) = w.on_client(async move { ns.create_table(info).await }).await {
            failures.push(format!("setup: create table {}: {e}", spec.name));
        }
    }
    // The layouts as created: they still name replicas a manual command later removes.
    let created = w.tables().await;
    let layouts = |name: &str| -> Vec<PartitionLayout> {
        created
            .iter()
            .find(|t| t.name == name)
            .map(|t| {
                t.table_partition
                    .iter()
                    .map(|p| PartitionLayout {
                        pid: p.pid,
                        replicas: p.partition_meta.iter().map(|m| m.endpoint.clone()).collect(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    // Let every replica settle (the leaders' replicators connect) before time zero.
    w.sleep(Duration::from_millis(500)).await;
    w.start = Instant::now();
    let zero = trace.elapsed();
    w.log(format_args!("scenario {:?} starts", s.name));

    // The leader observer and the workloads, on the client machine.
    let spans: observe::Spans = Default::default();
    let alive: observe::AliveChanges = Default::default();
    let poller = w
        .b
        .cluster
        .spawn_on(setup::CLIENT, observe::leader_poller(w.session.clone(), w.start, POLL, spans.clone(), alive.clone()))
        .expect("the client process");
    let end_reads = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    let mut readers = Vec::new();
    // Each table's first writer shares its acknowledged rows with the table's readers.
    let mut recent: BTreeMap<String, Arc<workload::RecentAcks>> = BTreeMap::new();
    for (i, wl) in s.workloads.iter().enumerate() {
        if wl.kind == WorkloadKind::Write && !recent.contains_key(&wl.table) {
            recent.insert(wl.table.clone(), Arc::new(workload::RecentAcks::new(i)));
        }
    }
    for (i, wl) in s.workloads.iter().enumerate() {
        let spec = workload::WorkloadSpec {
            index: i,
            table: wl.table.clone(),
            rate: wl.rate,
            zero: w.start,
            start: wl.start,
            stop: wl.stop,
        };
        match wl.kind {
            WorkloadKind::Write => {
                // Only the table's first writer feeds the readers; the others keep their rows to themselves.
                let shared = match recent.get(&wl.table) {
                    Some(r) if r.writer == i => r.clone(),
                    _ => Arc::new(workload::RecentAcks::new(i)),
                };
                let fut = workload::writer(spec, w.session.clone(), w.stop_writes.clone(), shared);
                let task = w.b.cluster.spawn_on(setup::CLIENT, fut).expect("the client process");
                writers.push((wl.table.clone(), task));
            }
            WorkloadKind::Read => {
                let fut = workload::reader(spec, w.session.clone(), recent.get(&wl.table).cloned(), end_reads.clone());
                readers.push((wl.table.clone(), w.b.cluster.spawn_on(setup::CLIENT, fut).expect("the client process")));
            }
        }
    }

    // The steps, in file order, each at its time.
    let mut previous_end = w.start;
    for (i, step) in s.steps.iter().enumerate() {
        let due = match step.time {
            StepTime::At(d) => w.start + d,
            StepTime::AfterPrevious(wait) => previous_end + wait,
        };
        w.advance_to(due).await;
        w.log(format_args!("step {i} (line {}): {}", step.line, step.action.verb()));
        if let Err(e) = w.exec(&step.action).await {
            w.log(format_args!("step {i} (line {}) failed: {e}", step.line));
            failures.push(format!("step {} (line {}, {}): {e}", i + 1, step.line, step.action.verb()));
        }
        previous_end = Instant::now();
    }
    // Workloads with a stop time run until it; the others stop after the last step.
    let last_stop = s.workloads.iter().filter_map(|wl| wl.stop).max().map(|d| w.start + d);
    if let Some(stop) = last_stop {
        w.advance_to(stop).await;
    }
    if w.now() > s.duration {
        failures.push(format!("the steps ran until {:?}, past the scenario's duration {:?}", w.now(), s.duration));
    }
    w.stop_writes.store(true, Ordering::SeqCst);
    end_reads.store(true, Ordering::SeqCst);
    let mut writes: Vec<(String, Vec<WriteRecord>)> = Vec::new();
    for (table, task) in writers {
        writes.push((table, task.await.map(|w| w.records).unwrap_or_default()));
    }
    let mut reads: Vec<(String, Vec<check::ReadRecord>)> = Vec::new();
    for (table, task) in readers {
        reads.push((table, task.await.unwrap_or_default()));
    }

    // Heal, let the daemons finish, and wait for convergence.
    w.final_heal();
    let healed_at = w.now();
    let converge = s.expect.converge_within.unwrap_or(DEFAULT_CONVERGE_WITHIN);
    let manual_expected = matches!(s.expect.recovery, Some(scenario::Recovery::None));
    let deadline = Instant::now() + converge;
    let (observed, recovered, ops_stuck, jobs) = loop {
        let running = w.running_tablets();
        let tables = w.tables().await;
        let mut observed = Vec::new();
        for t in &tables {
            let info = t.clone();
            let r = running.clone();
            let obs = w.on_client(async move { observe::observe_table(&info, &r).await }).await;
            observed.push((t.name.clone(), obs));
        }
        let ops_stuck = w.ops_stuck().await.unwrap_or_else(|| vec!["showopstatus could not be read".into()]);
        let session = w.session.clone();
        let infos = tables.clone();
        let jobs = w.on_client(async move { observe::read_jobs(session, &infos).await }).await.unwrap_or_default();
        let jobs_ended = jobs.iter().all(|(_, j)| j.ended());
        let expected: BTreeSet<String> = if manual_expected { BTreeSet::new() } else { running.clone() };
        let converged = observed.iter().all(|(name, o)| {
            let mut o = o.clone();
            o.ops_stuck = ops_stuck.clone();
            check::check_convergence(&o, &layouts(name), &expected, healed_at).converged()
        });
        // Recovered, per partition: every replica alive again on a running tablet (a tablet left down has not).
        let recovered: BTreeSet<(String, u32)> = observed
            .iter()
            .flat_map(|(name, o)| {
                o.partitions
                    .iter()
                    .filter(|p| p.replicas.iter().all(|r| r.is_alive && running.contains(&r.endpoint)))
                    .map(move |p| (name.clone(), p.pid))
            })
            .collect();
        let converge_expected = !matches!(s.expect.recovery, Some(scenario::Recovery::None));
        // A daemon restart still due (its delay runs past the last step) is part of the automatic recovery.
        let daemon_due = w.next_daemon().is_some();
        if (converged && jobs_ended && !daemon_due) || !converge_expected || Instant::now() >= deadline {
            w.log(format_args!(
                "observed: converged={converged} jobs_ended={jobs_ended} after {:?}",
                w.now() - healed_at
            ));
            break (observed, recovered, ops_stuck, jobs);
        }
        w.sleep(Duration::from_millis(500)).await;
    };
    poller.abort();
    let expected_alive: BTreeSet<String> = if manual_expected { BTreeSet::new() } else { w.running_tablets() };

    let loss = match s.expect.loss {
        Some(scenario::Loss::None) => LossPolicy::None,
        Some(scenario::Loss::Any) => LossPolicy::Any,
        _ => LossPolicy::Bounded,
    };
    let expect = check::Expect {
        service: s.expect.service.map(|v| match v {
            scenario::Service::Available => check::Service::Available,
            scenario::Service::Unavailable => check::Service::Unavailable,
        }),
        loss: s.expect.loss.map(|v| match v {
            scenario::Loss::None => check::Loss::None,
            scenario::Loss::Bounded => check::Loss::Bounded,
            scenario::Loss::Any => check::Loss::NoGuarantee,
        }),
        recovery: s.expect.recovery.map(|v| match v {
            scenario::Recovery::Auto => AutoRecovery::Yes,
            scenario::Recovery::Manual => AutoRecovery::Manual,
            scenario::Recovery::None => AutoRecovery::No,
        }),
    };
    let spans = spans.lock().expect("spans").clone();
    let alive = alive.lock().expect("alive changes").clone();
    let lines = trace.lines();
    let loads = replica_events(&lines, ": table loaded ", zero, &w.b.endpoints, &created);
    let unloads = replica_events(&lines, ": WARN binlog broken: partition unloaded", zero, &w.b.endpoints, &created);
    let all_tables = w.tables().await;
    let positions = evidence::positions(&lines, zero, &w.b.endpoints, &all_tables);
    let expiries = evidence::expiries(&lines, zero);
    let actives = evidence::actives(&lines, zero, &w.b.endpoints);
    let tables = s
        .tables
        .iter()
        .map(|spec| {
            let mut obs = observed.iter().find(|(n, _)| *n == spec.name).map(|(_, o)| o.clone()).unwrap_or_default();
            obs.ops_stuck = ops_stuck.clone();
            let table_writes: Vec<WriteRecord> =
                writes.iter().filter(|(t, _)| *t == spec.name).flat_map(|(_, r)| r.clone()).collect();
            let table_reads: Vec<check::ReadRecord> =
                reads.iter().filter(|(t, _)| *t == spec.name).flat_map(|(_, r)| r.clone()).collect();
            let written_values = evidence::written_values(&table_reads, &table_writes);
            TableData {
                name: spec.name.clone(),
                writes: table_writes,
                reads: table_reads,
                written_values,
                positions: positions.get(&spec.name).cloned().unwrap_or_default(),
                ordered: w.ordered.iter().filter(|o| o.0 == spec.name).map(|o| (o.1, o.2)).collect(),
                observed: obs,
                layouts: layouts(&spec.name),
                leaders: spans.get(&spec.name).cloned().unwrap_or_default(),
                loss,
                expect,
                jobs: jobs.iter().filter(|(t, _)| *t == spec.name).map(|(_, j)| j.clone()).collect(),
                semisync: spec.replication == scenario::Replication::Semisync,
                loads: loads.get(&spec.name).cloned().unwrap_or_default(),
                unloads: unloads.get(&spec.name).cloned().unwrap_or_default(),
                alive: alive.get(&spec.name).cloned().unwrap_or_default(),
            }
        })
        .collect();
    let run = RunData {
        tables,
        faults: w.faults.clone(),
        links: w.links.clone(),
        fsync: Fsync {
            slow: s
                .steps
                .iter()
                .filter_map(|st| match &st.action {
                    scenario::Action::DiskFault { fault: scenario::DiskFault::SlowFsync { delay }, .. } => Some(*delay),
                    _ => None,
                })
                .max()
                .unwrap_or_default(),
            ..Fsync::new(w.flags.tablet.binlog_sync_to_disk_interval)
        },
        expected_alive,
        healed_at,
        auto_recovered: !w.manual_recovery,
        recovered,
        determinism: None,
        manual_partitions: w.manual_partitions.clone(),
        converge: !matches!(s.expect.recovery, Some(scenario::Recovery::None)),
        expiries,
        actives,
        control: w.control.clone(),
        blockers: w.blockers.clone(),
        failover_within: s.expect.failover_within.unwrap_or_else(|| default_failover_within(&w.flags)),
    };
    let report = Report::build(&run);
    w.log(format_args!("report: {}", report.summary()));
    trace.seal();
    w.b.cluster.shutdown();
    tokio::task::yield_now().await;
    (report, run, failures, zero)
}

/// DESIGN 8's default for `[expect] failover_within`: the client declares a silent session Expired at 7/5 of
/// its timeout, the nameserver waits `tablet_heartbeat_timeout` more before it fails the tablet over, and 3 s
/// cover the failover's own ops and the clients finding the new leader.
pub fn default_failover_within(flags: &Flags) -> Duration {
    flags.zk_session_timeout.mul_f64(1.4) + flags.nameserver.tablet_heartbeat_timeout + Duration::from_secs(3)
}

/// When something happened to each replica on its tablet, by table, read from the tablets' trace lines holding
/// `needle` (e.g. `[time] tablet-2: table loaded tid=1 pid=0 ...`), in scenario time.
fn replica_events(
    lines: &[String],
    needle: &str,
    zero: Duration,
    endpoints: &BTreeMap<String, String>,
    tables: &[openmldb::proto::nameserver::TableInfo],
) -> BTreeMap<String, Vec<(u32, String, Duration)>> {
    let mut out: BTreeMap<String, Vec<(u32, String, Duration)>> = BTreeMap::new();
    for line in lines.iter().filter(|l| l.contains(needle)) {
        let parsed = (|| {
            let (time, rest) = line.strip_prefix('[')?.split_once("s] ")?;
            let at = Duration::try_from_secs_f64(time.trim().parse::<f64>().ok()?).ok()?;
            let (node, event) = rest.split_once(": ")?;
            let field = |name: &str| -> Option<u32> {
                event.split_whitespace().find_map(|kv| kv.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
            };
            let (tid, pid) = (field("tid")?, field("pid")?);
            let table = tables.iter().find(|t| t.tid == tid)?.name.clone();
            Some((table, pid, endpoints.get(node)?.clone(), at.checked_sub(zero)?))
        })();
        if let Some((table, pid, endpoint, at)) = parsed {
            out.entry(table).or_default().push((pid, endpoint, at));
        }
    }
    out
}

#[cfg(all(test, madsim))]
mod tests {
    use super::*;

    /// The light subscriber of a run without console output and the registry of a run with it record the same
    /// trace: each line, with the node it ran on.
    #[test]
    fn both_subscribers_record_the_same_trace() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/flows/network_disconnection.toml");
        let s = scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let limit = s.duration + Duration::from_secs(240);
        let run = |console: Option<String>| {
            let s = s.clone();
            crate::runner::run_seed_logged(1, Some(limit), Trace::new(), console, move |trace| async move {
                body(s, trace, Planted::default()).await.2
            })
        };
        let light = run(None);
        let registry = run(Some("off".into()));
        assert!(light.value.is_empty(), "{:?}", light.value);
        assert_eq!(light.trace.lines(), registry.trace.lines());
        assert_eq!(light.hash, registry.hash);
        let tablet_lines = light.trace.lines().iter().filter(|l| l.contains("] tablet-")).count();
        assert!(tablet_lines > 0, "events carry the node they ran on");
    }
}
