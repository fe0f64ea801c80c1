//! The nameserver: table metadata, partition placement, tablet liveness, and the OP/TASK engine that drives
//! failover and recovery (reference sections 2, 4 and 5; DESIGN 4.4).
//!
//! Decisions are pure and effects are at the edges (DESIGN 2). The rooms, bottom to top; each calls only the
//! rooms below it (`tests/nameserver_layers.rs` checks the `use` and `super::` paths):
//! - [`decide`]: every choice the nameserver makes, as plain functions over plain data: where partitions go,
//!   which follower becomes leader, whether a returning replica's log still fits the history, how a replica is
//!   re-added, which op queue an op joins. No IO, no clocks, no randomness; exhaustively unit-tested.
//!   [`ops`] (op types and their task lists), [`opbook`] (the op queues and history), [`meta`] (tables, counters
//!   and configuration in the coordination service, written by compare-and-set), [`codes`] (OpenMLDB's nameserver
//!   return codes) and [`rpc`] (the methods) sit beside it at the bottom.
//! - `state`: the [`Nameserver`] itself, the in-memory state the active nameserver works on, the tablet map's
//!   types, what an op is created with, the named deadlines, and the small accessors every room calls.
//! - `opstore`: creating, persisting and finishing ops, and loading them at takeover.
//! - `tasks`: the task bodies: metadata edits, RPC tasks on the tablets, leader selection and change, recovery.
//! - `engine`: the queue workers, running each op task by task.
//! - `failover`: the reactions to tablets going away and coming back, and the offlineendpoint / recoverendpoint
//!   algorithms.
//! - `manual`: the ns_client commands.
//! - [`server`]: the process: its coordination session, the election (the first `/leader/lock_request` node
//!   leads; a Disconnected leader steps down at once), the tablet map from `/nodes`, and the RPC handlers; the
//!   only room that starts the engine's workers.
//!
//! The metadata itself is [`crate::proto::nameserver`] (`TableInfo`, `TablePartition`, `PartitionMeta`,
//! `TermPair`), stored whole per table in the coordination service.

pub mod codes;
pub mod decide;
mod engine;
mod failover;
mod manual;
pub mod meta;
pub mod opbook;
pub mod ops;
mod opstore;
pub mod rpc;
pub mod server;
mod state;
mod tasks;

pub use server::NameserverHandle;
pub use state::{Nameserver, NameserverConfig};
