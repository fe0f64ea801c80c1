//! The nameserver's decisions, as pure functions over plain data (DESIGN 2: decisions are pure, effects are at
//! the edges). Nothing here does IO, awaits, reads a clock or draws a random number: the caller gathers the
//! facts (metadata, tablet answers), calls a function, and carries out what it returns.
//!
//! One file per decision, named for the question it answers:
//! - [`placement`]: where a new table's partitions go, and which replica leads (reference 2, `SetPartitionInfo`).
//! - [`leader`]: which follower becomes leader when a partition loses its leader, and the new terms
//!   (reference 3.4 and 5.3, `SelectLeader`; DESIGN 5.2).
//! - [`liveness`]: whether a replica may be marked dead (reference 5.1, `UpdateEndpointTableAlive`).
//! - [`term`]: whether a returning replica's log is a prefix of the partition's history (reference 3.4 and 5.6,
//!   `MatchTermOffset`).
//! - [`recover`]: how a returning replica is re-added: the four re-add variants (reference 5.6,
//!   `RecoverEndpointTable`).
//! - [`queue`]: which op queue an op joins (reference 4.2, `AddOPData`).
//! - [`reconcile`]: which alive marks the tablets' own reports contradict (not in OpenMLDB).
//! - [`reach`]: whether the active nameserver still reaches the tablets, and whether it steps down because it
//!   does not (DESIGN 5.5).

pub mod leader;
pub mod liveness;
pub mod placement;
pub mod queue;
pub mod reach;
pub mod reconcile;
pub mod recover;
pub mod term;

pub use leader::{
    AheadFollower, ChangeLeaderTerms, LeaderChoice, Probe, SelectLeaderError, followers_to_probe,
    precheck_select_leader, select_leader,
};
pub use liveness::may_mark_dead;
pub use placement::{
    DEFAULT_REPLICA_NUM, PartitionPlacement, Placement, PlacementError, TabletLoad, place_partitions, tablet_loads,
};
pub use queue::queue_index;
pub use reach::{Reachability, StepDownFacts, StepDownReason, decide_step_down, step_down_window};
pub use reconcile::{Busy, NotLoaded, Reconciliation, TableView, reconcile_alive_marks};
pub use recover::{
    LeaderLog, OFFLINE_LEADER_ENDPOINT, ReAddOp, ReAddPlan, RecoverDecision, RecoverTableError, RecoverTarget,
    decide_recover_table, scan_recover_target,
};
pub use term::{Divergence, TermMatch, match_term_offset};
