//! Durable state of a tablet: the disk abstraction, and later the binlog, snapshots and the memtable.
//!
//! Every byte a server keeps across restarts goes through [`Disk`], so the simulator can decide what a crash
//! keeps: [`RealDisk`] is the filesystem, [`SimDisk`] is an in-memory disk whose unsynced data survives a
//! process crash but not a power loss of its machine.

pub mod disk;

pub use disk::{AppendFile, Disk, RealDisk, SimDisk};
