//! Workloads (DESIGN 6): writers through the routing client, each write a unique row, recorded as attempted and
//! then acknowledged with (pid, term, offset), refused, or of unknown outcome; readers that read rows back and
//! record what they saw and who served it. Rates are in operations per simulated second. A writer issues each
//! write on schedule without waiting for the previous answer (many clients, as in Jepsen), at most
//! [`MAX_IN_FLIGHT`] at once per partition: a leaderless partition holds its own slots and never starves the
//! others of evidence; a write whose partition has none free is skipped (counted, not attempted). A write is
//! never retried by the workload (the routing client's own bounded retries are part of the system under test).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use openmldb::client::{RoutingClient, RoutingConfig};
use openmldb::coord::Coordinator;
use openmldb::coord::layout::DEFAULT_ROOT;
use openmldb::proto::tablet as tpb;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::check::{ReadOutcome, ReadRecord, WriteOutcome, WriteRecord};

/// Writes of one writer to one partition waiting for their answer at once; beyond it the partition's writes are
/// skipped until one answers.
pub const MAX_IN_FLIGHT: usize = 64;

/// Reads of one reader to one partition waiting for their answer at once; beyond it that partition's reads are
/// skipped.
pub const MAX_READS_IN_FLIGHT: usize = 32;

/// How many of a writer's most recently acknowledged rows a reader picks from.
pub const RECENT_ACKS: usize = 1024;

/// The rows a writer had acknowledged most recently, for the readers of its table (bounded: [`RECENT_ACKS`]).
#[derive(Debug, Default)]
pub struct RecentAcks {
    pub writer: usize,
    rows: std::sync::Mutex<std::collections::VecDeque<u64>>,
}

impl RecentAcks {
    pub fn new(writer: usize) -> Self {
        RecentAcks { writer, rows: Default::default() }
    }

    fn push(&self, row: u64) {
        let mut rows = self.rows.lock().expect("recent acks");
        if rows.len() == RECENT_ACKS {
            rows.pop_front();
        }
        rows.push_back(row);
    }

    /// The `n`-th pick: spread over the recent rows without randomness (the run stays deterministic).
    fn pick(&self, n: u64) -> Option<u64> {
        let rows = self.rows.lock().expect("recent acks");
        if rows.is_empty() {
            return None;
        }
        let i = (n.wrapping_mul(7919) % rows.len() as u64) as usize;
        rows.get(i).copied()
    }
}

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

/// What a writer did: every attempt, and how many writes it skipped because their partition had
/// [`MAX_IN_FLIGHT`] writes waiting.
#[derive(Debug, Default)]
pub struct Written {
    pub records: Vec<WriteRecord>,
    pub skipped: u64,
}

/// The body of a writer (spawn it on the client process): writes rows `0..` at `rate`, until its stop time or
/// `stop` is set; returns every attempt. Each acknowledged row goes to `recent` for the table's readers.
pub async fn writer(
    spec: WorkloadSpec,
    session: Arc<dyn Coordinator>,
    stop: Arc<AtomicBool>,
    recent: Arc<RecentAcks>,
) -> Written {
    let client = Arc::new(connect(session).await);
    let interval = Duration::from_secs_f64(1.0 / spec.rate);
    let log = Arc::new(std::sync::Mutex::new(Vec::new()));
    // One set of slots per partition (and one for writes the client could not route).
    let mut slots: std::collections::BTreeMap<Option<u32>, Arc<tokio::sync::Semaphore>> = Default::default();
    let mut skipped = 0u64;
    let begin = spec.zero + spec.start;
    tokio::time::sleep_until(begin).await;
    let mut tasks = Vec::new();
    for i in 0u64.. {
        let due = begin + interval.mul_f64(i as f64);
        if Instant::now() < due {
            tokio::time::sleep_until(due).await;
        }
        let now = spec.zero.elapsed();
        if stop.load(Ordering::SeqCst) || spec.stop.is_some_and(|s| now >= s) {
            break;
        }
        let key = key(spec.index, i);
        let pid = client.route(&spec.table, &key).ok().map(|(pid, _)| pid);
        let free = slots.entry(pid).or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT))).clone();
        let Ok(slot) = free.try_acquire_owned() else {
            skipped += 1;
            continue;
        };
        let recent = recent.clone();
        let (client, log, table, zero, index) =
            (client.clone(), log.clone(), spec.table.clone(), spec.zero, spec.index);
        tasks.push(tokio::spawn(async move {
            let result = client.put(&table, row(index, i)).await;
            let at = zero.elapsed();
            let outcome = match result {
                Ok(ack) => {
                    recent.push(i);
                    WriteOutcome::Acked { pid: ack.pid, term: ack.term, offset: ack.offset, endpoint: ack.endpoint, at }
                }
                Err(e) if e.outcome_unknown() => WriteOutcome::Unknown { reason: e.to_string(), at },
                Err(e) => WriteOutcome::Failed { reason: e.to_string(), at },
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
    if skipped > 0 {
        tracing::info!(writer = spec.index, skipped, "writes skipped: their partition had every slot waiting");
    }
    Written { records: log, skipped }
}

/// The body of a reader: reads rows back at `rate`, each through the routing client's first index, and records
/// what came back and which replica served it. Nine reads in ten pick among the rows `recent` holds (written and
/// acknowledged), one in ten a key no writer ever writes (it must not be found).
pub async fn reader(
    spec: WorkloadSpec,
    session: Arc<dyn Coordinator>,
    recent: Option<Arc<RecentAcks>>,
    stop: Arc<AtomicBool>,
) -> Vec<ReadRecord> {
    let client = Arc::new(connect(session).await);
    let interval = Duration::from_secs_f64(1.0 / spec.rate);
    let log = Arc::new(std::sync::Mutex::new(Vec::new()));
    // Per partition, as for writes: reads hanging on one partition never starve the others.
    let mut slots: std::collections::BTreeMap<Option<u32>, Arc<tokio::sync::Semaphore>> = Default::default();
    let begin = spec.zero + spec.start;
    tokio::time::sleep_until(begin).await;
    let mut tasks = Vec::new();
    for i in 0u64.. {
        let due = begin + interval.mul_f64(i as f64);
        if Instant::now() < due {
            tokio::time::sleep_until(due).await;
        }
        let start = spec.zero.elapsed();
        if stop.load(Ordering::SeqCst) || spec.stop.is_some_and(|s| start >= s) {
            break;
        }
        let key = match recent.as_ref() {
            Some(r) if i % 10 != 9 => match r.pick(i) {
                Some(row) => key(r.writer, row),
                None => continue,
            },
            // A key of no writer's form: never written, so never found.
            _ => format!("never-{}-{i:09}", spec.index),
        };
        let pid = client.route(&spec.table, &key).ok().map(|(pid, _)| pid);
        let free =
            slots.entry(pid).or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(MAX_READS_IN_FLIGHT))).clone();
        let Ok(slot) = free.try_acquire_owned() else { continue };
        let (client, log, table, zero) = (client.clone(), log.clone(), spec.table.clone(), spec.zero);
        tasks.push(tokio::spawn(async move {
            let result = client.get_served(&table, &key).await;
            let end = zero.elapsed();
            let outcome = match result {
                Ok(r) => ReadOutcome::Served {
                    pid: r.pid,
                    endpoint: r.endpoint,
                    term: r.term,
                    leader: r.leader,
                    values: r.row.map(|f| f.row.values),
                },
                Err(e) => ReadOutcome::Failed { reason: e.to_string() },
            };
            log.lock().expect("read log").push(ReadRecord { key, pid, start, end, outcome });
            drop(slot);
        }));
        tasks.retain(|t| !t.is_finished());
    }
    for t in tasks {
        let _ = t.await;
    }
    let mut log = std::mem::take(&mut *log.lock().expect("read log"));
    log.sort_by(|a, b| (a.start, &a.key).cmp(&(b.start, &b.key)));
    log
}
