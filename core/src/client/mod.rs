//! Clients of the cluster's data path.
//!
//! - [`routing`]: the routing SDK every writer and reader uses: table metadata from the coordination service,
//!   each request to its partition's alive leader, refresh-and-retry on stale routing, and for every
//!   acknowledged write the (pid, term, offset) the checkers need.
//! - [`partition`]: which partition a key belongs to ([`partition_of`], the one hash everyone uses) and which
//!   replica serves it, as pure functions over a `TableInfo`.
//! - [`policy`]: the retry policy as pure functions: retry after a refresh, fail, or report "outcome unknown".
//! - [`values`]: column values checked against their declared types before a user's row is written.

pub mod partition;
pub mod policy;
pub mod routing;
pub mod values;

pub use partition::{alive_leader, key_hash, partition_of, row_key};
pub use policy::{Access, Decision, classify};
pub use routing::{ClientError, FoundRow, RoutingClient, RoutingConfig, RoutingStats, ServedRead, WriteAck};
