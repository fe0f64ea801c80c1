//! The retry policy as pure functions: what a failed call means ([`classify`]), whether the budget allows
//! another attempt ([`may_retry`]) and how long to wait before it ([`backoff`]).
//!
//! The rule that matters to the checkers: a write whose request may have reached the tablet
//! ([`RpcError::outcome_unknown`]) is never retried and is reported as "outcome unknown", because retrying it
//! could apply it twice and failing it would claim it was not applied. Only what certainly had no effect and
//! can be fixed by routing elsewhere is retried: stale routing refused by the tablet, an unreachable tablet (the
//! request was not sent), or a partition that has no alive leader at the moment.

use std::time::Duration;

use crate::rpc::RpcError;
use crate::tablet::codes::Code;

/// Whether a call changes data. Reads are idempotent, so a read whose answer was lost is simply asked again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

/// What to do about a failed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// It certainly had no effect, and fresh metadata may route it to a replica that accepts it: refresh,
    /// back off, try again (within the budget).
    RetryAfterRefresh,
    /// Refused for a reason routing cannot fix (bad row, unknown index, ...): report it; it was not applied.
    Fail,
    /// It may have been applied: report "outcome unknown" and never retry it.
    Unknown,
}

/// Tablet codes that mean "this replica is not (or not yet) the one to ask": the metadata the request was routed
/// by is stale, or the replica is between roles.
pub const STALE_ROUTING: [Code; 4] =
    [Code::TableIsFollower, Code::TableIsNotExist, Code::LeaderFenced, Code::TableIsLoading];

/// Whether a tablet status code means the routing was stale.
pub fn is_stale_routing(code: i32) -> bool {
    STALE_ROUTING.iter().any(|c| *c as i32 == code)
}

/// Classifies a failed call.
pub fn classify(err: &RpcError, access: Access) -> Decision {
    match (err, access) {
        // Never sent: no effect anywhere.
        (RpcError::Unavailable { .. }, _) => Decision::RetryAfterRefresh,
        (RpcError::Timeout { .. } | RpcError::ConnectionLost { .. }, Access::Write) => Decision::Unknown,
        (RpcError::Timeout { .. } | RpcError::ConnectionLost { .. }, Access::Read) => Decision::RetryAfterRefresh,
        (RpcError::Status(s), _) if is_stale_routing(s.code) => Decision::RetryAfterRefresh,
        // A semi-synchronous write that no follower confirmed in time is in the leader's binlog already.
        (RpcError::Status(s), Access::Write) if Code::FailToAppendEntriesToReplicator.is(s) => Decision::Unknown,
        (RpcError::Status(_), _) => Decision::Fail,
        // The tablet answered OK, so a write took effect, but the answer is unreadable.
        (RpcError::Decode { .. }, Access::Write) => Decision::Unknown,
        (RpcError::Decode { .. }, Access::Read) => Decision::Fail,
    }
}

/// Whether another attempt may start after `attempts` attempts and `elapsed` time.
pub fn may_retry(attempts: u32, elapsed: Duration, max_attempts: u32, max_time: Duration) -> bool {
    attempts < max_attempts && elapsed < max_time
}

/// The wait before attempt `attempts + 1`: `min` doubled per attempt made so far beyond the first, capped at `max`.
/// The caller adds jitter.
pub fn backoff(attempts: u32, min: Duration, max: Duration) -> Duration {
    let doublings = attempts.saturating_sub(1).min(31);
    min.saturating_mul(1u32 << doublings).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::Status;

    fn status(code: Code) -> RpcError {
        RpcError::Status(code.status())
    }

    #[test]
    fn unsent_requests_are_retried() {
        let e = RpcError::Unavailable { addr: "a:1".into(), reason: "connection refused".into() };
        assert_eq!(classify(&e, Access::Write), Decision::RetryAfterRefresh);
        assert_eq!(classify(&e, Access::Read), Decision::RetryAfterRefresh);
    }

    #[test]
    fn a_write_that_may_have_arrived_is_unknown_never_retried() {
        let timeout = RpcError::Timeout { addr: "a:1".into(), method: "tablet.Put", after: Duration::from_secs(1) };
        let lost = RpcError::ConnectionLost { addr: "a:1".into(), reason: "closed by peer".into() };
        let undecodable = RpcError::Decode { addr: "a:1".into(), reason: "truncated".into() };
        for e in [&timeout, &lost, &undecodable] {
            assert_eq!(classify(e, Access::Write), Decision::Unknown, "{e}");
        }
        assert_eq!(classify(&status(Code::FailToAppendEntriesToReplicator), Access::Write), Decision::Unknown);
        // Reads have no effect to be unsure about.
        assert_eq!(classify(&timeout, Access::Read), Decision::RetryAfterRefresh);
        assert_eq!(classify(&lost, Access::Read), Decision::RetryAfterRefresh);
        assert_eq!(classify(&undecodable, Access::Read), Decision::Fail);
    }

    #[test]
    fn stale_routing_refusals_are_retried_after_a_refresh() {
        for code in STALE_ROUTING {
            assert!(is_stale_routing(code as i32));
            assert_eq!(classify(&status(code), Access::Write), Decision::RetryAfterRefresh, "{code:?}");
            assert_eq!(classify(&status(code), Access::Read), Decision::RetryAfterRefresh, "{code:?}");
        }
        assert_eq!(
            classify(&RpcError::Status(Code::TableIsFollower.with("tid 1 pid 0")), Access::Write),
            Decision::RetryAfterRefresh
        );
    }

    #[test]
    fn other_refusals_fail() {
        for code in [
            Code::InvalidDimensionParameter,
            Code::IdxNameNotFound,
            Code::WriteDataFailed,
            Code::StLessThanEt,
            Code::PutFailed,
            Code::TermIsLower,
        ] {
            assert!(!is_stale_routing(code as i32));
            assert_eq!(classify(&status(code), Access::Write), Decision::Fail, "{code:?}");
            assert_eq!(classify(&status(code), Access::Read), Decision::Fail, "{code:?}");
        }
        let internal = RpcError::Status(Status::internal("boom"));
        assert_eq!(classify(&internal, Access::Write), Decision::Fail);
        assert_eq!(classify(&status(Code::FailToAppendEntriesToReplicator), Access::Read), Decision::Fail);
    }

    #[test]
    fn the_budget_bounds_attempts_and_time() {
        let max = Duration::from_secs(5);
        assert!(may_retry(1, Duration::ZERO, 3, max));
        assert!(may_retry(2, Duration::from_millis(4_999), 3, max));
        assert!(!may_retry(3, Duration::ZERO, 3, max));
        assert!(!may_retry(1, max, 3, max));
        assert!(!may_retry(0, Duration::ZERO, 0, max), "zero attempts allowed: never retry");
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let (min, max) = (Duration::from_millis(20), Duration::from_millis(500));
        let waits: Vec<_> = (1..=7).map(|a| backoff(a, min, max).as_millis()).collect();
        assert_eq!(waits, [20, 40, 80, 160, 320, 500, 500]);
        assert_eq!(backoff(0, min, max), min);
        assert_eq!(backoff(u32::MAX, min, max), max, "no overflow");
    }
}
