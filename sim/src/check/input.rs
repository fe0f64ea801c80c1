//! What the checkers read: plain data the runner converts its records into.
//!
//! Times are [`Duration`]s since the scenario started. One table at a time: `pid` identifies a partition of the
//! table being checked ([`super::report`] aggregates tables).

use std::collections::BTreeSet;
use std::time::Duration;

/// A partition id within one table.
pub type Pid = u32;

/// One write a workload attempted, with a unique row id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteRecord {
    pub row: u64,
    /// The row's key as the replicas store it (what [`ReplicaFinal::rows`] holds).
    pub key: String,
    /// The partition the client routed it to, when known; an ack's own pid takes precedence.
    pub pid: Option<Pid>,
    pub attempted_at: Duration,
    pub outcome: WriteOutcome,
}

/// How a write ended, as the client saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    /// A leader acknowledged it: entry `offset` of partition `pid`, written in `term`.
    Acked { pid: Pid, term: u64, offset: u64, endpoint: String, at: Duration },
    /// The write was refused at `at`; it must not appear (if it does, it is "recovered", which is allowed).
    Failed { reason: String, at: Duration },
    /// Timeout or lost connection, given up at `at`: it may or may not have been applied.
    Unknown { reason: String, at: Duration },
}

/// The acknowledgement of a write, borrowed from its [`WriteOutcome::Acked`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ack<'a> {
    pub pid: Pid,
    pub term: u64,
    pub offset: u64,
    pub endpoint: &'a str,
    pub at: Duration,
}

impl WriteRecord {
    pub fn ack(&self) -> Option<Ack<'_>> {
        match &self.outcome {
            WriteOutcome::Acked { pid, term, offset, endpoint, at } => {
                Some(Ack { pid: *pid, term: *term, offset: *offset, endpoint, at: *at })
            }
            _ => None,
        }
    }

    /// The partition of the write: the ack's, else the routed one.
    pub fn pid(&self) -> Option<Pid> {
        self.ack().map(|a| a.pid).or(self.pid)
    }

    pub fn is_acked(&self) -> bool {
        self.ack().is_some()
    }

    /// When the client had its answer (or gave up).
    pub fn ended_at(&self) -> Duration {
        match &self.outcome {
            WriteOutcome::Acked { at, .. } | WriteOutcome::Failed { at, .. } | WriteOutcome::Unknown { at, .. } => *at,
        }
    }
}

/// The final state of one table after the scenario healed and (as far as it could) converged.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    pub partitions: Vec<PartitionFinal>,
    /// Ops still kInited or kDoing, one line each (op id, type, table, pid, current task).
    pub ops_stuck: Vec<String>,
}

impl Observed {
    pub fn partition(&self, pid: Pid) -> Option<&PartitionFinal> {
        self.partitions.iter().find(|p| p.pid == pid)
    }

    /// The layout as the final state lists it; the runner should prefer the layout at table creation, which
    /// still names replicas a manual `offlineendpoint` removed.
    pub fn layout(&self) -> Vec<PartitionLayout> {
        self.partitions
            .iter()
            .map(|p| PartitionLayout { pid: p.pid, replicas: p.replicas.iter().map(|r| r.endpoint.clone()).collect() })
            .collect()
    }
}

/// One partition: its term history (the nameserver's `term_offset`) and its replicas.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PartitionFinal {
    pub pid: Pid,
    /// `(term, first offset of that term)`: entries at or after that offset written in an earlier term were
    /// overwritten when the term began (they were in the un-replicated suffix of the old leader).
    pub term_offset: Vec<(u64, u64)>,
    pub replicas: Vec<ReplicaFinal>,
}

/// One replica of a partition: the nameserver's view (leader, alive) and what the tablet itself holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplicaFinal {
    pub endpoint: String,
    pub is_leader: bool,
    pub is_alive: bool,
    /// The replica's binlog offset; `None` when it could not be read.
    pub offset: Option<u64>,
    /// Every key the replica holds; `None` when it could not be read.
    pub rows: Option<BTreeSet<String>>,
    /// Keys the replica holds more than once.
    pub duplicates: Vec<String>,
}

/// The replicas a partition was created with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PartitionLayout {
    pub pid: Pid,
    pub replicas: Vec<String>,
}

/// A replica's tablet going offline or coming back, for one cause. The runner maps its faults to the tablet
/// endpoints they take offline: a machine restart to every tablet of the machine, a partition or isolation to the
/// tablets cut off from the nameserver or the coordination server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultEvent {
    pub at: Duration,
    pub kind: FaultKind,
    pub endpoint: String,
    pub cause: FaultCause,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    Down,
    /// Ends the `Down` of the same endpoint and cause (a restart after a crash, a heal, a resume, the manual start
    /// after a machine restart). An endpoint is offline while any cause is down.
    Up,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultCause {
    Crash,
    /// Power loss: unsynced binlog is gone, and the seed's automatic recovery does not apply.
    MachineRestart,
    Partition,
    Pause,
    CoordIsolation,
    /// Every nameserver cut from the tablet (in one direction at least), until the heal: no failover can use it.
    /// It counts against the service promise only, not the loss and recovery promises.
    NameserverCut,
    /// A `corrupt_tail` disk fault on the endpoint's newest binlog (a `Down` alone, at the moment it struck): it
    /// takes nothing offline; the loss bound uses it.
    CorruptTail,
    /// A `write_error` disk fault on the endpoint's machine, until it is cleared: a tablet whose disk fails writes
    /// cannot serve its replicas (its broken binlogs unload them), so it counts as offline.
    DiskError,
    /// A `slow_fsync` disk fault on the endpoint's machine, from the fault until it is cleared: it takes nothing
    /// offline, but a sync in progress then completes [`Fsync::slow`] later.
    SlowFsync,
}

/// The time of the first fault of `endpoint` with this `cause` and `kind` inside `when`.
pub fn first_fault(
    faults: &[FaultEvent],
    endpoint: &str,
    cause: FaultCause,
    kind: FaultKind,
    when: impl std::ops::RangeBounds<Duration>,
) -> Option<Duration> {
    faults
        .iter()
        .filter(|f| f.endpoint == endpoint && f.cause == cause && f.kind == kind && when.contains(&f.at))
        .map(|f| f.at)
        .min()
}

/// Where one replica's log stood from `at` on, from its tablet's `replica log` trace line (an append batch, a
/// load, a role change, a create, a drop or an unload): the replica's own record, not the nameserver's view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Position {
    pub pid: Pid,
    pub endpoint: String,
    pub at: Duration,
    /// The replica held the partition (false after a drop or an unload: it holds nothing until loaded again).
    pub held: bool,
    /// It was the partition's leader.
    pub leader: bool,
    /// Its term (as leader, or the term it last adopted as follower).
    pub term: u64,
    /// The term and offset of its log's last entry.
    pub log_term: u64,
    pub offset: u64,
}

impl Position {
    /// Whether this position's log holds entry `offset` written in `term`: its last entry is of that term and at
    /// or beyond the offset. A follower's log is a prefix of the log of the leader it matched offsets with, and
    /// only the leader of `term` writes entries of that term, so such a log holds that leader's entry at `offset`
    /// (a log that diverged from its leader breaks this, and is itself a convergence violation). A log whose last
    /// entry is of a later term may hold it too; that cannot be told from the position alone (see
    /// [`super::replicas::holds_at`], which follows a replica's positions over time).
    pub fn holds(&self, term: u64, offset: u64) -> bool {
        self.held && self.log_term == term && self.offset >= offset
    }
}

/// The positions at which a replica took the lead in a term it had not led before, in time order: the first
/// leader position of each (partition, endpoint, term).
pub fn leader_start_positions(positions: &[Position]) -> Vec<Position> {
    let mut seen: std::collections::BTreeSet<(Pid, &str, u64)> = std::collections::BTreeSet::new();
    positions
        .iter()
        .filter(|p| p.held && p.leader && seen.insert((p.pid, p.endpoint.as_str(), p.term)))
        .cloned()
        .collect()
}

/// A leader's coordination session ending on the coordination server (its ephemeral node `/nodes/<endpoint>`
/// deleted by the expiry): from then on it is no leader the cluster knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionExpiry {
    pub endpoint: String,
    pub at: Duration,
}

/// One read a reader attempted: a key of the table's first index, through the routing client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadRecord {
    pub key: String,
    /// The partition the client routed it to, when known.
    pub pid: Option<Pid>,
    pub start: Duration,
    pub end: Duration,
    pub outcome: ReadOutcome,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    /// A replica answered: the row's values if it found one, and who it was then.
    Served { pid: Pid, endpoint: String, term: u64, leader: bool, values: Option<Vec<String>> },
    /// An error or a timeout: no answer to judge.
    Failed { reason: String },
}

/// What the run recorded of one table's replicas besides the faults, from the trace and the metadata polls.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReplicaEvents<'a> {
    /// Every replica's log position over time, in time order (see [`Position`]).
    pub positions: &'a [Position],
    /// [`leader_start_positions`] of `positions`, when the caller computed them once (a run's checks ask for
    /// them per write and per read); `None`: derived from `positions` at each call.
    pub starts: Option<&'a [Position]>,
    /// Ends of tablets' coordination sessions on the server, in time order.
    pub expiries: &'a [SessionExpiry],
    /// The active nameserver's endpoint from each moment on (`None`: none active), in time order.
    pub actives: &'a [(Duration, Option<String>)],
    /// `(pid, when)` an operator ordered a leader change of the partition (`changeleader`): the first takeover
    /// after it is the operator's choice, not a leader selection's (the seed warns it may lose the un-replicated
    /// suffix, and a named candidate wins whatever its log).
    pub ordered: &'a [(Pid, Duration)],
    /// `(pid, endpoint, when)` each replica was loaded on its tablet (a restarted tablet holds nothing until then).
    pub loads: &'a [(Pid, String, Duration)],
    /// `(pid, endpoint, when, alive)`: changes of each replica's alive flag in the metadata, in time order.
    pub alive: &'a [(Pid, String, Duration, bool)],
    /// `(pid, endpoint, when)` a partition was unloaded because its binlog broke (a failed fsync).
    pub unloads: &'a [(Pid, String, Duration)],
    /// The network between tablets, in time order: see [`LinkEvent`].
    pub links: &'a [LinkEvent],
}

/// A change of the network between two servers (tablets and nameservers), as the runner applied it: a partition,
/// an isolation or a one-way clog cuts directions `from` → `to` (expanded to endpoints; cuts add up), a heal
/// restores every link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkEvent {
    Cut { at: Duration, from: String, to: String },
    Heal { at: Duration },
}

impl LinkEvent {
    pub fn at(&self) -> Duration {
        match self {
            LinkEvent::Cut { at, .. } | LinkEvent::Heal { at } => *at,
        }
    }
}

impl<'a> ReplicaEvents<'a> {
    /// Every moment a replica of `pid` took the lead in a term it had not led before: `(when, endpoint, term,
    /// offset of its last entry then)`, in time order. Entries of older terms beyond that offset were not in the
    /// new leader's log: the new term overwrites them.
    pub fn leader_starts(&self, pid: Pid) -> Vec<(Duration, &'a str, u64, u64)> {
        let positions: &'a [Position] = self.positions;
        let pick = |p: &'a Position| (p.at, p.endpoint.as_str(), p.term, p.offset);
        match self.starts {
            Some(s) => s.iter().filter(|p| p.pid == pid).map(pick).collect(),
            None => {
                let mut seen: Vec<(&str, u64)> = Vec::new();
                positions
                    .iter()
                    .filter(|p| p.pid == pid && p.held && p.leader)
                    .filter(|p| {
                        let first = !seen.contains(&(p.endpoint.as_str(), p.term));
                        if first {
                            seen.push((p.endpoint.as_str(), p.term));
                        }
                        first
                    })
                    .map(pick)
                    .collect()
            }
        }
    }
}

impl ReplicaEvents<'_> {
    /// Where `endpoint`'s replica of `pid` stood at `at`: its last position recorded at or before it.
    pub fn position_at(&self, pid: Pid, endpoint: &str, at: Duration) -> Option<&Position> {
        self.positions.iter().take_while(|p| p.at <= at).filter(|p| p.pid == pid && p.endpoint == endpoint).last()
    }

    /// When `endpoint`'s coordination session first expired at or after `from`.
    pub fn expired_after(&self, endpoint: &str, from: Duration) -> Option<Duration> {
        self.expiries.iter().filter(|e| e.endpoint == endpoint && e.at >= from).map(|e| e.at).min()
    }

    /// Whether nothing `from` sent could reach `to` at any moment of `[a, b]`: the direction was cut at `a` and no
    /// heal came before `b` (cuts only add up until a heal).
    pub fn cut_throughout(&self, from: &str, to: &str, a: Duration, b: Duration) -> bool {
        let mut cut_since = None;
        for e in self.links.iter().take_while(|e| e.at() <= b) {
            match e {
                LinkEvent::Cut { at, from: f, to: t } if f == from && t == to => {
                    cut_since.get_or_insert(*at);
                }
                LinkEvent::Heal { at } if *at > a => return false,
                LinkEvent::Heal { .. } => cut_since = None,
                LinkEvent::Cut { .. } => {}
            }
        }
        cut_since.is_some_and(|since| since <= a)
    }

    /// The first load of `pid` on `endpoint` at or after `from`.
    pub fn first_load(&self, pid: Pid, endpoint: &str, from: Duration) -> Option<Duration> {
        self.loads.iter().filter(|(p, e, at)| *p == pid && e == endpoint && *at >= from).map(|l| l.2).min()
    }

    /// The alive-flag changes of `pid` on `endpoint`, in time order.
    pub fn alive_changes<'s>(
        &'s self,
        pid: Pid,
        endpoint: &'s str,
    ) -> impl DoubleEndedIterator<Item = (Duration, bool)> + 's {
        self.alive.iter().filter(move |(p, e, _, _)| *p == pid && e == endpoint).map(|c| (c.2, c.3))
    }
}

/// Who the nameserver said led a partition, and when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderSpan {
    pub pid: Pid,
    pub endpoint: String,
    pub from: Duration,
    /// `None`: still the leader at the end.
    pub to: Option<Duration>,
}

impl LeaderSpan {
    pub fn covers(&self, at: Duration) -> bool {
        self.from <= at && self.to.is_none_or(|to| at < to)
    }
}

/// When the tablets fsync their binlog: data appended up to `interval` before a power loss may be gone. `slack`
/// covers a follower that appends a little after the leader acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fsync {
    /// `binlog_sync_to_disk_interval`.
    pub interval: Duration,
    pub slack: Duration,
    /// The longest delay a `slow_fsync` fault of the scenario adds to one fsync.
    pub slow: Duration,
}

impl Fsync {
    /// The slack [`Fsync::new`] uses: a few replication round trips.
    pub const DEFAULT_SLACK: Duration = Duration::from_millis(500);

    pub fn new(interval: Duration) -> Self {
        Fsync { interval, slack: Self::DEFAULT_SLACK, slow: Duration::ZERO }
    }
}
