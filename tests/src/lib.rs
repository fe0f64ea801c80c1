//! Shared pieces of the integration tests.
//!
//! - [`conformance`]: the coordination conformance suite, written once against the [`Coordinator`] trait so the
//!   `model` backend (in the simulator) and real ZooKeeper (in the production suite) answer to the same tests.
//!
//! [`Coordinator`]: openmldb::coord::Coordinator

pub mod conformance;
