//! The server flags a scenario may set in `[flags]`, by their OpenMLDB names.
//!
//! A closed list, so that a misspelt flag is an error instead of a silently ignored setting (a scenario that
//! believes it turned `auto_failover` off but did not would measure the wrong thing). The runner hands each value
//! to the processes that take it; units are OpenMLDB's.

/// The type of a flag's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagKind {
    Bool,
    /// A non-negative integer, at least `min`.
    Int {
        min: u64,
    },
    String,
}

/// One known flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlagSpec {
    pub name: &'static str,
    pub kind: FlagKind,
    /// Who reads it, what it does and its unit.
    pub doc: &'static str,
}

const fn int(name: &'static str, min: u64, doc: &'static str) -> FlagSpec {
    FlagSpec { name, kind: FlagKind::Int { min }, doc }
}

/// Every flag `[flags]` accepts.
pub const KNOWN_FLAGS: &[FlagSpec] = &[
    FlagSpec {
        name: "auto_failover",
        kind: FlagKind::Bool,
        doc: "nameserver: fail over and recover automatically (the initial /config/auto_failover)",
    },
    int("zk_session_timeout", 1, "every process: coordination session timeout, ms"),
    int("tablet_heartbeat_timeout", 0, "nameserver: how long a tablet's node must stay gone before failover, ms"),
    int("get_table_status_interval", 1, "nameserver: replica offset polling period, ms"),
    int("get_task_status_interval", 1, "nameserver: running task polling period, ms"),
    int("name_server_task_max_concurrency", 1, "nameserver: number of op queues"),
    int("name_server_task_concurrency", 1, "nameserver: queues failover and recovery ops spread over"),
    int("max_op_num", 1, "nameserver: finished ops kept for showopstatus"),
    int("check_binlog_sync_progress_delta", 0, "nameserver: entries a re-added replica may lag and count as alive"),
    int("partition_num", 1, "nameserver: partitions of a table created without partitionnum"),
    int("request_timeout", 1, "nameserver and clients: deadline of each request, ms"),
    int("binlog_sync_to_disk_interval", 1, "tablet: binlog fsync period, ms"),
    int("binlog_single_file_max_size", 1, "tablet: binlog segment size, MB"),
    int("binlog_sync_batch_size", 1, "tablet: entries per replication batch"),
    int("binlog_sync_wait_time", 1, "tablet: replicator idle wait, ms"),
    int("binlog_coffee_time", 0, "tablet: replicator back-off after a failed sync, ms"),
    int("binlog_match_logoffset_interval", 1, "tablet: replicator offset probe retry period, ms"),
    int("gc_interval", 1, "tablet: expired row eviction period, minutes"),
    int("import_batch_rows", 1, "taskmanager: rows per import batch (the unit of checkpoints)"),
    int("restart_delay", 0, "daemon (OpenMLDB's mon): delay before an exited process is restarted, ms"),
];

/// The spec of a known flag.
pub fn flag_spec(name: &str) -> Option<&'static FlagSpec> {
    KNOWN_FLAGS.iter().find(|f| f.name == name)
}
