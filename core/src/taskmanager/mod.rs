//! The TaskManager (DESIGN 4.5, reference 1.5): a job engine whose jobs survive the failover of its active
//! instance.
//!
//! - [`job`]: the pure decisions: job types and states, takeover, import batches, the rows still missing.
//! - [`source`]: import sources (CSV files, generated rows) and the CSV an export writes.
//! - [`store`]: jobs as versioned nodes in the coordination service.
//! - [`server`]: the process: election, RPCs, the runners.
//! - [`client`]: finding and calling the active instance.
//!
//! OpenMLDB keeps its jobs in the system table `__INTERNAL_DB.JOB_INFO`; here they live in the coordination
//! service under `<root>/taskmanager/jobs`, beside the nameserver's ops, so the jobs survive exactly what the
//! cluster's metadata survives and need no table to exist first.

pub mod client;
pub mod job;
pub mod rpc;
pub mod server;
pub mod source;
pub mod store;

pub use client::TmClient;
pub use server::{TaskManager, TaskManagerConfig, TaskManagerHandle};
