//! The checkers of DESIGN 8, as pure functions over what a run recorded.
//!
//! The runner records writes, faults, leaders and the final state of every partition, converts them into the
//! plain data of [`input`], and asks:
//!
//! - [`set`]: the acknowledged-write oracle (Jepsen's set checker): lost, unexpected, recovered.
//! - [`bound`]: which lost writes the design allows (an un-replicated suffix overwritten by a later term whose
//!   leader no better candidate could have replaced, or power loss of every replica before the binlog was
//!   fsynced) and which it forbids, from the replicas' own records ([`replicas`]).
//! - [`acks`]: every acknowledgement against those records: no deposed leader acknowledging, semisync really
//!   replicated.
//! - [`reads`]: no phantom rows, no acknowledged write missed by a later leader read, no stale read.
//! - [`window`]: every unavailability window per partition, against `failover_within` where service is promised.
//! - [`converge`]: one snapshot after healing: one alive leader per partition, expected replicas alive, replicas
//!   identical, no op stuck.
//! - [`table`]: the seed's availability table as an oracle: the documented cell for what a partition went through,
//!   and the observed cell judged against it (worse fails, better is reported).
//! - [`determinism`]: the trace hash of a seed is the same on every run.
//! - [`report`]: all of it for one run, a one-line summary and a detailed text.
//!
//! Nothing here is async, does IO or reads a clock: times are [`Duration`]s since the scenario started, so every
//! checker is unit-tested directly, including that it can fail.
//!
//! Every [`Violation`] names the checker, the partition, the rows (a few keys and the count), why, and a
//! [`TraceHint`]: the window and needles with which the runner picks the trace lines that show it.

use std::fmt;
use std::time::Duration;

pub mod acks;
pub mod bound;
pub mod converge;
pub mod determinism;
pub mod input;
pub mod jobs;
pub mod reads;
pub mod replicas;
pub mod report;
pub mod set;
pub mod table;
pub mod window;

pub use acks::{AcksReport, check_acks};
pub use bound::{BoundReport, FailoverLoss, FsyncLoss, LossPolicy, LossReason, check_loss_bound};
pub use converge::{ConvergeReport, PartitionState, ReplicaDiff, check_convergence};
pub use determinism::{DeterminismReport, check_determinism, first_divergence};
pub use input::{
    Ack, FaultCause, FaultEvent, FaultKind, Fsync, LeaderSpan, LinkEvent, Observed, PartitionFinal, PartitionLayout,
    Pid, Position, ReadOutcome, ReadRecord, ReplicaEvents, ReplicaFinal, SessionExpiry, WriteOutcome, WriteRecord,
    first_fault,
};
pub use jobs::{JobFinal, JobsReport, check_jobs};
pub use reads::{ReadsReport, check_reads};
pub use report::{PartitionAvailability, Report, RunData, Summary, TableData, TableReport};
pub use set::{LostWrite, Misplaced, SetReport, Unexpected, check_set};
pub use table::{
    Aspect, AutoRecovery, CellVerdict, Comparison, DocumentedCell, Expect, Exposure, Failover, Loss, ObservedCell,
    Service, ServiceSeen, Verdict, expected_row, exposure, failovers, judge, service_seen, table_rows,
};
pub use window::{Window, WindowRules, WindowVerdict, windows};

/// How many keys a violation or a report lists before it only counts.
pub const SAMPLE: usize = 5;

/// Which checker found a violation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Checker {
    Set,
    LossBound,
    Convergence,
    Availability,
    Determinism,
    /// Exactly once: no row held twice, every row of a finished import present, no job left running.
    Jobs,
    /// Every acknowledgement against the replicas' records: no deposed leader, semisync really replicated.
    Acks,
    /// Reads: no phantom rows, no missed acknowledged write, no stale read from a deposed leader.
    Reads,
}

impl fmt::Display for Checker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Checker::Set => "set",
            Checker::LossBound => "loss-bound",
            Checker::Convergence => "convergence",
            Checker::Availability => "availability",
            Checker::Determinism => "determinism",
            Checker::Jobs => "jobs",
            Checker::Acks => "acks",
            Checker::Reads => "reads",
        })
    }
}

/// What exactly is wrong; each kind belongs to one checker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ViolationKind {
    /// A row is present that no writer ever attempted.
    Unexpected,
    /// A row is present in a partition other than the one it was written to.
    Misplaced,
    /// No alive replica of a partition could be read, so its acknowledged writes cannot be verified.
    Unverified,
    /// An acknowledged write is gone and neither a failover nor a power loss explains it.
    LostOutsideBound,
    /// An acknowledged write is gone, within the bound, but the scenario expects no loss at all.
    LostUnexpectedly,
    /// A takeover lost acknowledged writes that another replica, which could have been chosen, held.
    LaggingLeader,
    /// A leader acknowledged a write after a later term had begun elsewhere and its own session had expired.
    DeposedAck,
    /// A semi-synchronous leader acknowledged a write no follower had appended.
    SemisyncUnreplicated,
    /// A read returned a row no writer attempted, or values other than the ones written.
    ReadUnexpected,
    /// A read by the partition's leader, in a term at least the write's, missed a write acknowledged before it
    /// started (and not lost within the bound).
    ReadMissed,
    /// A read answered by a leader after a later term had begun elsewhere and its own session had expired.
    StaleRead,
    /// An unavailability window where service is promised lasted past its deadline.
    WindowTooLong,
    NoLeader,
    SeveralLeaders,
    /// A replica that should be alive after healing is not.
    NotAlive,
    /// A replica of the original layout is no longer part of the partition.
    MissingReplica,
    /// A partition of the layout is absent from the final state.
    MissingPartition,
    /// An alive replica whose offset or rows could not be read.
    Unreadable,
    OffsetsDiffer,
    RowsDiffer,
    /// An op still kInited or kDoing.
    OpStuck,
    /// An observed cell of the availability table is worse than the documented one.
    WorseThanDocumented,
    /// Two runs of one seed produced different traces.
    Nondeterministic,
    /// An alive replica holds a row more than once.
    Duplicated,
    /// A row of a finished import is missing from a partition whose leader never changed.
    ImportRowMissing,
    /// A TaskManager job neither finished nor failed.
    JobNotEnded,
}

impl ViolationKind {
    pub fn checker(self) -> Checker {
        use ViolationKind::*;
        match self {
            Unexpected | Misplaced | Unverified => Checker::Set,
            LostOutsideBound | LostUnexpectedly | LaggingLeader => Checker::LossBound,
            DeposedAck | SemisyncUnreplicated => Checker::Acks,
            ReadUnexpected | ReadMissed | StaleRead => Checker::Reads,
            WindowTooLong => Checker::Availability,
            NoLeader | SeveralLeaders | NotAlive | MissingReplica | MissingPartition | Unreadable | OffsetsDiffer
            | RowsDiffer | OpStuck => Checker::Convergence,
            WorseThanDocumented => Checker::Availability,
            Nondeterministic => Checker::Determinism,
            Duplicated | ImportRowMissing | JobNotEnded => Checker::Jobs,
        }
    }
}

/// A few keys and how many there are in all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeySample {
    pub count: usize,
    /// The first [`SAMPLE`] keys, in the order given.
    pub first: Vec<String>,
}

impl KeySample {
    pub fn of<I, S>(keys: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut sample = KeySample::default();
        for k in keys {
            if sample.first.len() < SAMPLE {
                sample.first.push(k.into());
            }
            sample.count += 1;
        }
        sample
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

impl fmt::Display for KeySample {
    /// `k1, k2, k3` or `k1, k2, k3, k4, k5 … (12 in all)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.first.join(", "))?;
        if self.count > self.first.len() {
            write!(f, " … ({} in all)", self.count)?;
        }
        Ok(())
    }
}

/// Which trace lines show a violation: those stamped inside `[from, to]` (to the end when `to` is `None`) that
/// contain one of `needles` (every line of the window when there are none), plus the nemesis' fault lines of the
/// window, which always matter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TraceHint {
    pub from: Duration,
    pub to: Option<Duration>,
    pub needles: Vec<String>,
}

impl TraceHint {
    /// The lines of `lines` (formatted by [`crate::trace::format_line`]) this hint selects.
    pub fn select<'a>(&self, lines: &'a [String]) -> Vec<&'a str> {
        lines
            .iter()
            .filter(|line| {
                let Some(at) = line_time(line) else { return false };
                let in_window = at >= self.from && self.to.is_none_or(|to| at <= to);
                in_window
                    && (self.needles.is_empty()
                        || line.contains("] nemesis:")
                        || self.needles.iter().any(|n| line.contains(n.as_str())))
            })
            .map(String::as_str)
            .collect()
    }
}

/// The simulated time of a trace line `[   12.345678s] node: event`.
pub fn line_time(line: &str) -> Option<Duration> {
    let inner = line.strip_prefix('[')?.split_once("s]")?.0.trim();
    let (secs, micros) = inner.split_once('.')?;
    Some(Duration::from_secs(secs.parse().ok()?) + Duration::from_micros(micros.parse().ok()?))
}

/// One thing a checker found wrong, with what the runner needs to show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub kind: ViolationKind,
    /// The partition, when the violation is about one.
    pub pid: Option<Pid>,
    /// Why, in a sentence that names the numbers involved.
    pub why: String,
    pub keys: KeySample,
    /// Terms, offsets and endpoints involved (also the hint's needles).
    pub terms: Vec<u64>,
    pub offsets: Vec<u64>,
    pub endpoints: Vec<String>,
    pub hint: TraceHint,
}

impl Violation {
    pub fn new(kind: ViolationKind, pid: Option<Pid>, why: impl Into<String>) -> Self {
        Violation {
            kind,
            pid,
            why: why.into(),
            keys: KeySample::default(),
            terms: vec![],
            offsets: vec![],
            endpoints: vec![],
            hint: TraceHint::default(),
        }
    }

    pub fn checker(&self) -> Checker {
        self.kind.checker()
    }

    pub fn with_keys(mut self, keys: KeySample) -> Self {
        self.keys = keys;
        self
    }

    pub fn with_terms(mut self, terms: impl IntoIterator<Item = u64>) -> Self {
        self.terms = sorted_unique(terms);
        self
    }

    pub fn with_offsets(mut self, offsets: impl IntoIterator<Item = u64>) -> Self {
        self.offsets = sorted_unique(offsets);
        self
    }

    pub fn with_endpoints<S: Into<String>>(mut self, endpoints: impl IntoIterator<Item = S>) -> Self {
        let mut eps: Vec<String> = endpoints.into_iter().map(Into::into).collect();
        eps.sort();
        eps.dedup();
        self.endpoints = eps;
        self
    }

    /// Sets the trace window; the needles are the partition (`pid=N`, as the system's log fields print it), the
    /// terms and the endpoints.
    pub fn with_window(mut self, from: Duration, to: Option<Duration>) -> Self {
        let mut needles: Vec<String> = self.endpoints.clone();
        if let Some(pid) = self.pid {
            needles.push(format!("pid={pid}"));
        }
        needles.extend(self.terms.iter().map(|t| format!("term={t}")));
        self.hint = TraceHint { from, to, needles };
        self
    }
}

fn sorted_unique<T: Ord>(items: impl IntoIterator<Item = T>) -> Vec<T> {
    let mut v: Vec<T> = items.into_iter().collect();
    v.sort();
    v.dedup();
    v
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] ", self.checker())?;
        if let Some(pid) = self.pid {
            write!(f, "pid {pid}: ")?;
        }
        f.write_str(&self.why)?;
        if !self.keys.is_empty() {
            write!(f, "; rows: {}", self.keys)?;
        }
        write!(f, " (trace from {}", secs(self.hint.from))?;
        match self.hint.to {
            Some(to) => write!(f, " to {})", secs(to)),
            None => f.write_str(" on)"),
        }
    }
}

/// `1.234s`, the way reports print times.
pub fn secs(d: Duration) -> String {
    format!("{:.3}s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::format_line;

    #[test]
    fn key_sample_counts_beyond_the_first_few() {
        let s = KeySample::of((0..12).map(|i| format!("k{i}")));
        assert_eq!(s.count, 12);
        assert_eq!(s.first.len(), SAMPLE);
        assert_eq!(s.to_string(), "k0, k1, k2, k3, k4 … (12 in all)");
        assert_eq!(KeySample::of(["a", "b"]).to_string(), "a, b");
        assert!(KeySample::of(Vec::<String>::new()).is_empty());
    }

    #[test]
    fn trace_hint_selects_the_window_and_the_needles() {
        let ms = Duration::from_millis;
        let lines = vec![
            format_line(ms(500), "tablet-1", "INFO role changed tid=1 pid=0"),
            format_line(ms(1500), "tablet-1", "INFO role changed tid=1 pid=0 term=3"),
            format_line(ms(1600), "tablet-2", "INFO role changed tid=1 pid=1"),
            format_line(ms(1700), "nemesis", "crash tablet-3"),
            format_line(ms(2500), "tablet-1", "INFO table dropped pid=0"),
        ];
        assert_eq!(line_time(&lines[1]), Some(ms(1500)));
        assert_eq!(line_time("garbage"), None);
        let v = Violation::new(ViolationKind::LostOutsideBound, Some(0), "x").with_window(ms(1000), Some(ms(2000)));
        let got = v.hint.select(&lines);
        assert_eq!(got, vec![lines[1].as_str(), lines[3].as_str()]);
        let open = TraceHint { from: ms(1000), to: None, needles: vec![] };
        assert_eq!(open.select(&lines).len(), 4);
    }

    #[test]
    fn violation_display_names_checker_partition_rows_and_window() {
        let v = Violation::new(ViolationKind::RowsDiffer, Some(3), "replicas differ")
            .with_keys(KeySample::of(["k1"]))
            .with_endpoints(["b", "a", "a"])
            .with_terms([4, 2, 4])
            .with_window(Duration::from_millis(1500), None);
        assert_eq!(v.checker(), Checker::Convergence);
        assert_eq!(v.endpoints, vec!["a", "b"]);
        assert_eq!(v.terms, vec![2, 4]);
        assert_eq!(v.hint.needles, vec!["a", "b", "pid=3", "term=2", "term=4"]);
        assert_eq!(v.to_string(), "[convergence] pid 3: replicas differ; rows: k1 (trace from 1.500s on)");
    }
}
