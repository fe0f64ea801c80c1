//! The deterministic simulator of an OpenMLDB cluster.
//!
//! - [`trace`]: the run's event trace and its hash (both builds).
//! - [`machine`]: simulated machines: an address block, a disk, processes.
//! - `harness` (simulator build): the cluster under test as madsim nodes, and every fault: crash, start,
//!   restart, machine restart (power loss), partitions, one-way clogs, isolation from the coordination server,
//!   pause/resume, packet loss and latency.
//! - `probes` (simulator build): the coordination server and a registering process as process bodies.
//! - `runner` (simulator build): one seed on a fresh thread and runtime, with its trace.

pub mod check;
pub mod machine;
pub mod matrix;
pub mod scenario;
pub mod trace;

#[cfg(madsim)]
pub mod harness;
#[cfg(madsim)]
pub mod probes;
#[cfg(madsim)]
pub mod run;
#[cfg(madsim)]
pub mod runner;
