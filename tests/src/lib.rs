//! Shared pieces of the integration tests.
//!
//! - [`conformance`]: the coordination conformance suite, written once against the [`Coordinator`] trait so the
//!   `model` backend (in the simulator) and real ZooKeeper (in the production suite) answer to the same tests.
//!
//! [`Coordinator`]: openmldb::coord::Coordinator

pub mod conformance;
#[cfg(madsim)]
pub mod ns_cluster;
pub mod routing;
pub mod tablets;

/// The seeds a simulator test runs: `default`, or the range in `MLDB_SEEDS` (`"100..200"`) for a sweep.
///
/// A bad value is a test-setup error, reported as such rather than silently ignored.
pub fn seeds(default: &[u64]) -> Vec<u64> {
    match std::env::var("MLDB_SEEDS") {
        Err(_) => default.to_vec(),
        Ok(v) => {
            let (a, b) = v.split_once("..").unwrap_or_else(|| panic!("MLDB_SEEDS={v:?}: expected a range like 1..100"));
            let (a, b): (u64, u64) = (
                a.trim().parse().unwrap_or_else(|e| panic!("MLDB_SEEDS={v:?}: {e}")),
                b.trim().parse().unwrap_or_else(|e| panic!("MLDB_SEEDS={v:?}: {e}")),
            );
            (a..b).collect()
        }
    }
}
