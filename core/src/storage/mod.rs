//! Durable and in-memory state of a tablet.
//!
//! - [`disk`]: every byte a server keeps across restarts goes through [`Disk`], so the simulator can decide what
//!   a crash keeps: [`RealDisk`] is the filesystem, [`SimDisk`] an in-memory disk whose unsynced data survives a
//!   process crash but not a power loss of its machine.
//! - [`record`]: the CRC-checked framing of binlog and snapshot files.
//! - [`binlog`]: a partition's write-ahead log in segment files: append, roll, sync, recover, read from an offset.
//! - [`ttl`] and [`memtable`]: a partition's rows in memory, by index, with OpenMLDB's four TTL kinds.
//! - [`snapshot`]: merged images of a partition and their MANIFEST.

pub mod binlog;
pub mod disk;
pub mod memtable;
pub mod record;
pub mod snapshot;
pub mod ttl;

pub use disk::{AppendFile, Disk, RealDisk, SimDisk};
