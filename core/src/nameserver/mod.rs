//! The nameserver: table metadata, partition placement, tablet liveness, and the OP/TASK engine that drives
//! failover and recovery (reference sections 2, 4 and 5; DESIGN 4.4).
//!
//! Decisions are pure and effects are at the edges (DESIGN 2). The rooms:
//! - [`decide`]: every choice the nameserver makes, as plain functions over plain data: where partitions go,
//!   which follower becomes leader, whether a returning replica's log still fits the history, how a replica is
//!   re-added, which op queue an op joins. No IO, no clocks, no randomness; exhaustively unit-tested.
//!
//! The metadata itself is [`crate::proto::nameserver`] (`TableInfo`, `TablePartition`, `PartitionMeta`,
//! `TermPair`), stored whole per table in the coordination service.

pub mod decide;
