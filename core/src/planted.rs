//! Deliberately broken behaviours ("planted bugs"), for the tests that prove each checker of the simulator can
//! fail (issue 5) and for the fuzzer to find. Every field breaks one guarantee; all default to off, and nothing
//! but a test sets them.

/// The switches, carried in the tablet's, the nameserver's and the TaskManager's configuration.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Planted {
    /// Tablet: every n-th put is acknowledged (with the current term and offset) without being written at all:
    /// an acknowledged write that was never in the binlog.
    pub ack_without_append_every: u64,
    /// Tablet: every n-th put also writes a row whose key no client ever sent.
    pub phantom_row_every: u64,
    /// Tablet: a follower appends every n-th replicated entry to its binlog but never applies it to memory, so
    /// its rows diverge from the leader's while the offsets agree.
    pub follower_skips_apply_every: u64,
    /// Nameserver: a tablet that goes away is never failed over.
    pub never_fail_over: bool,
    /// Nameserver: logs a counter shared by every run of the process, so one seed's trace differs between runs.
    pub nondeterministic_trace: bool,
    /// TaskManager: import rows are written as plain puts, without their request ids, so a resumed import's
    /// pending batch writes the rows acknowledged before the takeover twice.
    pub import_without_request_ids: bool,
    /// Tablet: a partition whose binlog broke (a failed fsync) stays loaded, refusing every write, as in
    /// OpenMLDB; nothing fails it over.
    pub keep_broken_partitions: bool,
    /// Nameserver: a leader reloaded from its own disk keeps its old term, so entries it writes after losing its
    /// unsynced tail sit at offsets a follower holds other entries for, and both logs look like one history.
    pub reload_in_the_same_term: bool,
    /// Tablet: a leader answers reads while fenced or while its coordination session is in doubt, so a deposed
    /// leader cut off from the coordination service serves rows a newer leader has overwritten.
    pub stale_leader_reads: bool,
    /// Tablet: a leader keeps acknowledging writes after its coordination session expired (no self-fencing).
    pub ack_after_session_expired: bool,
    /// Tablet: a semi-synchronous leader acknowledges a write without waiting for any follower to append it.
    pub semisync_ack_unreplicated: bool,
    /// Nameserver: leader selection takes the alive follower with the shortest log instead of the longest.
    pub leader_choice_shortest_log: bool,
    /// Nameserver: every automatic failover of a tablet waits this long before it starts (0: off).
    pub failover_delay_ms: u64,
}

impl Planted {
    pub fn any(&self) -> bool {
        *self != Planted::default()
    }
}

/// The counter behind [`Planted::nondeterministic_trace`]: deliberately process-wide.
pub static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
