//! The nameserver: table metadata, partition placement, tablet liveness, and the OP/TASK engine that drives
//! failover and recovery (reference sections 2, 4 and 5; DESIGN 4.4).
//!
//! Decisions are pure and effects are at the edges (DESIGN 2). The rooms:
//! - [`server`]: the process: its coordination session, the election (the first `/leader/lock_request` node
//!   leads; a Disconnected leader steps down at once), the tablet map from `/nodes`, and the RPC handlers.
//! - [`meta`]: tables, counters and configuration in the coordination service, written by compare-and-set.
//! - [`codes`]: OpenMLDB's nameserver return codes.
//! - [`decide`]: every choice the nameserver makes, as plain functions over plain data: where partitions go,
//!   which follower becomes leader, whether a returning replica's log still fits the history, how a replica is
//!   re-added, which op queue an op joins. No IO, no clocks, no randomness; exhaustively unit-tested.
//!
//! The metadata itself is [`crate::proto::nameserver`] (`TableInfo`, `TablePartition`, `PartitionMeta`,
//! `TermPair`), stored whole per table in the coordination service.

pub mod codes;
pub mod decide;
mod exec;
mod failover;
mod manual;
pub mod meta;
pub mod opbook;
pub mod ops;
pub mod rpc;
pub mod server;

pub use server::{Nameserver, NameserverConfig, NameserverHandle};
