//! OpenMLDB's online high-availability system, re-implemented in Rust.
//!
//! One code base for two runtimes: built normally it runs on tokio with real files and sockets; built with
//! `--cfg madsim` every clock, socket and random draw belongs to the deterministic simulator.
//!
//! Rooms, one per concept:
//! - [`proto`]: the wire messages (prost, from `proto/*.proto`).
//! - [`rpc`]: length-prefixed frames over TCP, request ids, deadlines, reconnects.
//! - [`coord`]: the coordination service (ZooKeeper semantics): the trait, our model server and client,
//!   and the node layout under `zk_root_path`.
//! - [`storage`]: the disk abstraction (real filesystem and simulated disk with crash semantics), the binlog,
//!   snapshots and the in-memory table.
//! - [`tablet`]: partitions, replication, and the tablet's RPCs.
//! - [`taskmanager`]: the job engine (import, export, snapshot) with active/standby failover.

pub mod cli;
pub mod client;
pub mod codes;
pub mod coord;
pub mod daemon;
pub mod nameserver;
pub mod planted;
pub mod proto;
pub mod rpc;
pub mod storage;
pub mod sync;
pub mod tablet;
pub mod taskmanager;
