//! The tablet: partition replicas in memory, binlog and snapshots on disk, asynchronous replication, and the
//! RPCs the nameserver and the tools drive (reference sections 1.4, 2, 3, 8).
//!
//! - [`partition`]: one replica's state and its write and follower paths.
//! - [`replicator`]: the leader's per-follower catch-up loop.
//! - [`rebuild`]: snapshots of memory, for a follower the binlog cannot feed and a leader whose binlog is damaged.
//! - [`server`]: the [`Tablet`] and its RPC handlers, loading, snapshots, and background loops.
//! - [`registration`]: `/nodes/<endpoint>` in the coordination service, and leader self-fencing.
//! - [`tasks`]: the record of nameserver tasks the tablet runs.
//! - [`codes`]: OpenMLDB's return codes.

pub mod codes;
pub mod partition;
pub mod rebuild;
pub mod registration;
pub mod replicator;
pub mod rpc;
pub mod server;
pub mod tasks;

use std::time::Duration;

pub use replicator::ReplicatorConfig;
pub use server::{Tablet, TabletHandle};

/// A tablet's flags, by their OpenMLDB names.
#[derive(Debug, Clone)]
pub struct TabletConfig {
    /// `endpoint`: the address it listens on and registers as.
    pub endpoint: String,
    /// `zk_cluster`: the coordination service; empty runs without registration (standalone, tests).
    pub zk_cluster: String,
    /// `zk_root_path`.
    pub zk_root_path: String,
    /// `zk_session_timeout`.
    pub zk_session_timeout: Duration,
    /// `zk_auth_schema` and `zk_cert`: the coordination session's credentials, if any.
    pub zk_auth: Option<crate::coord::Credentials>,
    /// `binlog_sync_to_disk_interval`: the fsync period of every binlog.
    pub binlog_sync_to_disk_interval: Duration,
    /// `binlog_single_file_max_size`, in bytes here (OpenMLDB's flag is in MB).
    pub binlog_single_file_max_size: u64,
    /// `gc_interval`: how often expired rows are evicted.
    pub gc_interval: Duration,
    /// How long a semi-synchronous write waits for a follower before it reports failure.
    pub semisync_timeout: Duration,
    pub replicator: ReplicatorConfig,
    /// Deliberately broken behaviours, for tests only ([`crate::planted`]).
    pub planted: crate::planted::Planted,
}

impl TabletConfig {
    /// How the tablet's coordination session is opened.
    pub fn coord_options(&self) -> crate::coord::ClientOptions {
        crate::coord::ClientOptions::new(self.zk_session_timeout).with_auth(self.zk_auth.clone())
    }

    pub fn new(endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            zk_cluster: String::new(),
            zk_root_path: crate::coord::layout::DEFAULT_ROOT.to_string(),
            zk_session_timeout: Duration::from_millis(2000),
            zk_auth: None,
            binlog_sync_to_disk_interval: Duration::from_millis(5000),
            binlog_single_file_max_size: 64 << 20,
            gc_interval: Duration::from_secs(60),
            semisync_timeout: Duration::from_secs(2),
            replicator: ReplicatorConfig::default(),
            planted: crate::planted::Planted::default(),
        }
    }
}
