//! Fault fuzzing (issue 7): proptest draws a cluster shape, flag values around their defaults, a workload and a
//! schedule of faults over every nemesis verb of the scenario format; each case runs in the simulator and must
//! keep the checkers of DESIGN 8 with the oracle's expectations, deterministically. A failing case shrinks to a
//! small schedule and is written as a scenario file that `mldb-sim replay` reproduces.
//!
//! - [`case`]: the case model and its rendering as a scenario file.
//! - [`strategy`]: the proptest strategies.
//! - [`property`]: one case run and judged.
//! - [`probes`]: coverage counters over the trace (each op type, re-add variant, election, fencing, torn tail).
//! - [`campaign`]: many cases, shrinking, persistence, figures.

//!
//! `property` and `campaign` run the simulator, so they exist in the simulator build only (`--cfg madsim`).

#[cfg(madsim)]
pub mod campaign;
pub mod case;
pub mod probes;
#[cfg(madsim)]
pub mod property;
pub mod strategy;
