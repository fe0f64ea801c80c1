//! Workloads (DESIGN 6): writers through the routing client, each write a unique row, recorded as attempted and
//! then acknowledged with (pid, term, offset), refused, or of unknown outcome; readers that read back rows.
//! Rates are in operations per simulated second. A writer issues each write on schedule without waiting for the
//! previous answer (many clients, as in Jepsen), at most [`MAX_IN_FLIGHT`] at once; a write is never retried by
//! the workload (the routing client's own bounded retries are part of the system under test).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use openmldb::client::{RoutingClient, RoutingConfig};
use openmldb::coord::Coordinator;
use openmldb::coord::layout::DEFAULT_ROOT;
use openmldb::proto::tablet as tpb;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::check::{WriteOutcome, WriteRecord};

/// Writes of one writer waiting for their answer at once; beyond it the schedule slips.
pub const MAX_IN_FLIGHT: usize = 64;

/// The key of row `row` of writer `writer`: unique across the run.
pub fn key(writer: usize, row: u64) -> String {
    format!("w{writer}-{row:09}")
}

/// The values of a row of the scenario tables' schema: `id string (index), ts int64 (ts), v string`.
pub fn row(writer: usize, row: u64) -> tpb::Row {
    tpb::Row { values: vec![key(writer, row), (1_000 + row).to_string(), format!("v{}", row % 7)] }
}

/// A running writer or reader.
pub struct Running {
    pub task: JoinHandle<Vec<WriteRecord>>,
}

/// What a reader counts.
#[derive(Debug, Default)]
pub struct ReadCounts {
    pub ok: AtomicU64,
    pub failed: AtomicU64,
}

pub struct WorkloadSpec {
    pub index: usize,
    pub table: String,
    pub rate: f64,
    /// Scenario time zero.
    pub zero: Instant,
    pub start: Duration,
    pub stop: Option<Duration>,
}

async fn connect(session: Arc<dyn Coordinator>) -> RoutingClient {
    loop {
        match RoutingClient::connect(session.clone(), DEFAULT_ROOT, RoutingConfig::default()).await {
            Ok(c) => return c,
            Err(e) => {
                tracing::info!(error = %e, "workload cannot read the metadata yet; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// The body of a writer (spawn it on the client process): writes rows `0..` at `rate`, until its stop time or
/// `stop` is set; returns every attempt.
pub async fn writer(spec: WorkloadSpec, session: Arc<dyn Coordinator>, stop: Arc<AtomicBool>) -> Vec<WriteRecord> {
    let client = Arc::new(connect(session).await);
    let interval = Duration::from_secs_f64(1.0 / spec.rate);
    let log = Arc::new(std::sync::Mutex::new(Vec::new()));
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    let begin = spec.zero + spec.start;
    tokio::time::sleep_until(begin).await;
    let mut tasks = Vec::new();
    for i in 0u64.. {
        let due = begin + interval.mul_f64(i as f64);
        if Instant::now() < due {
            tokio::time::sleep_until(due).await;
        }
        let Ok(slot) = slots.clone().acquire_owned().await else { break };
        let now = spec.zero.elapsed();
        if stop.load(Ordering::SeqCst) || spec.stop.is_some_and(|s| now >= s) {
            break;
        }
        let key = key(spec.index, i);
        let pid = client.route(&spec.table, &key).ok().map(|(pid, _)| pid);
        let (client, log, table, zero, index) =
            (client.clone(), log.clone(), spec.table.clone(), spec.zero, spec.index);
        tasks.push(tokio::spawn(async move {
            let result = client.put(&table, row(index, i)).await;
            let at = zero.elapsed();
            let outcome = match result {
                Ok(ack) => {
                    WriteOutcome::Acked { pid: ack.pid, term: ack.term, offset: ack.offset, endpoint: ack.endpoint, at }
                }
                Err(e) if e.outcome_unknown() => WriteOutcome::Unknown { reason: e.to_string() },
                Err(e) => WriteOutcome::Failed { reason: e.to_string() },
            };
            log.lock().expect("write log").push(WriteRecord { row: i, key, pid, attempted_at: now, outcome });
            drop(slot);
        }));
        tasks.retain(|t| !t.is_finished());
    }
    for t in tasks {
        let _ = t.await;
    }
    let mut log = std::mem::take(&mut *log.lock().expect("write log"));
    log.sort_by_key(|w| w.row);
    log
}

/// The body of a reader: reads back rows of writer 0 at `rate` (a row it may or may not have written yet).
pub async fn reader(spec: WorkloadSpec, session: Arc<dyn Coordinator>, counts: Arc<ReadCounts>, stop: Arc<AtomicBool>) {
    let client = connect(session).await;
    let interval = Duration::from_secs_f64(1.0 / spec.rate);
    let begin = spec.zero + spec.start;
    tokio::time::sleep_until(begin).await;
    for i in 0u64.. {
        let due = begin + interval.mul_f64(i as f64);
        if Instant::now() < due {
            tokio::time::sleep_until(due).await;
        }
        if stop.load(Ordering::SeqCst) || spec.stop.is_some_and(|s| spec.zero.elapsed() >= s) {
            break;
        }
        match client.get(&spec.table, &key(0, i / 2), 0).await {
            Ok(_) => counts.ok.fetch_add(1, Ordering::Relaxed),
            Err(_) => counts.failed.fetch_add(1, Ordering::Relaxed),
        };
    }
}
