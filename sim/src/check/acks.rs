//! Every acknowledged write against the replicas' records (DESIGN 8), lost or not:
//!
//! - **Deposed leader.** A write acknowledged in term T by a replica after another replica of the partition had
//!   taken the lead in a later term and the acknowledging replica's coordination session had expired on the
//!   server: a leader that failed to fence itself (DESIGN 5.1). The moment the write reached the leader is taken
//!   as late as the evidence allows and no later: its send time, or the end of a pause of the leader's process
//!   that held it ([`earliest_service`]); an acknowledgement that may have been made before both events passes.
//! - **Semi-synchronous.** On a `semisync` table, a write acknowledged before any follower's log showed the entry
//!   (DESIGN 5.3: at least one follower appended it first). The followers' `replica log` lines are written when
//!   the append completes, before their answer leaves, so the evidence always precedes a correct acknowledgement.

use std::collections::BTreeMap;
use std::time::Duration;

use super::input::{FaultEvent, PartitionLayout, Pid, ReplicaEvents, WriteRecord};
use super::replicas::earliest_service;
use super::{KeySample, Violation, ViolationKind, secs};

/// What the acknowledgement checks found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AcksReport {
    /// Acknowledged writes checked.
    pub checked: usize,
    /// `(row key, pid, term, endpoint)` of writes a deposed leader acknowledged.
    pub deposed: Vec<(String, Pid, u64, String)>,
    /// `(row key, pid, term, offset)` of semisync writes acknowledged before any follower had them.
    pub unreplicated: Vec<(String, Pid, u64, u64)>,
    pub violations: Vec<Violation>,
}

/// The first moment at or before `by` that a replica of `pid` other than `endpoint` took the lead in a term
/// later than `term`, with who it was and the term.
pub fn newer_leader_before(
    ev: ReplicaEvents<'_>,
    pid: Pid,
    endpoint: &str,
    term: u64,
    by: Duration,
) -> Option<(Duration, String, u64)> {
    ev.leader_starts(pid)
        .into_iter()
        .find(|&(at, ep, t, _)| at <= by && t > term && ep != endpoint)
        .map(|(at, ep, t, _)| (at, ep.to_string(), t))
}

/// A write a deposed leader acknowledged: who had taken the lead (`by`, in `new_term`) when, and when the
/// acknowledging leader's session had expired.
struct Deposed<'a> {
    write: &'a WriteRecord,
    began: Duration,
    expired: Duration,
    by: String,
    new_term: u64,
}

/// Checks every acknowledged write of one table.
pub fn check_acks(
    writes: &[WriteRecord],
    layouts: &[PartitionLayout],
    faults: &[FaultEvent],
    ev: ReplicaEvents<'_>,
    semisync: bool,
) -> AcksReport {
    let mut report = AcksReport::default();
    if ev.positions.is_empty() {
        return report;
    }
    let mut deposed: BTreeMap<(Pid, u64, String), Vec<Deposed<'_>>> = BTreeMap::new();
    let mut unreplicated: BTreeMap<Pid, Vec<&WriteRecord>> = BTreeMap::new();
    let reached = if semisync { Reached::of(ev.positions) } else { Reached::default() };
    for w in writes {
        let Some(a) = w.ack() else { continue };
        if a.offset == 0 {
            // A duplicate idempotent put: nothing was written.
            continue;
        }
        report.checked += 1;
        let served = earliest_service(a.endpoint, faults, w.attempted_at, a.at);
        if let Some((began, by, term)) = newer_leader_before(ev, a.pid, a.endpoint, a.term, served)
            && let Some(expired) = ev.expired_after(a.endpoint, leader_since(ev, a.pid, a.endpoint, a.term))
            && expired <= served
        {
            report.deposed.push((w.key.clone(), a.pid, a.term, a.endpoint.to_string()));
            let seen = Deposed { write: w, began, expired, by, new_term: term };
            deposed.entry((a.pid, a.term, a.endpoint.to_string())).or_default().push(seen);
        }
        let followers = layouts.iter().find(|l| l.pid == a.pid).map_or(0, |l| l.replicas.len().saturating_sub(1));
        if semisync && followers > 0 {
            let replicated = reached.by(a.pid, a.term, a.offset, a.endpoint).is_some_and(|t| t <= a.at);
            if !replicated {
                report.unreplicated.push((w.key.clone(), a.pid, a.term, a.offset));
                unreplicated.entry(a.pid).or_default().push(w);
            }
        }
    }
    for ((pid, term, endpoint), ws) in deposed {
        let Deposed { began, expired, by, new_term, .. } = &ws[0];
        let why = format!(
            "{} writes acknowledged by {endpoint} as leader of term {term} after {by} had taken the lead in term \
             {new_term} at {} and {endpoint}'s coordination session had expired at {}: a deposed leader kept \
             acknowledging (DESIGN 5.1)",
            ws.len(),
            secs(*began),
            secs(*expired)
        );
        let from = (*began).min(*expired);
        report.violations.push(
            Violation::new(ViolationKind::DeposedAck, Some(pid), why)
                .with_keys(KeySample::of(ws.iter().map(|w| w.write.key.as_str())))
                .with_terms([term, *new_term])
                .with_endpoints([endpoint.clone(), by.clone()])
                .with_window(from, ws.iter().filter_map(|w| w.write.ack().map(|a| a.at)).max()),
        );
    }
    for (pid, ws) in unreplicated {
        let first = ws[0].ack().expect("acknowledged");
        let why = format!(
            "{} writes of a semisync table acknowledged before any follower's log held them (first: term {} offset \
             {} by {} at {}): DESIGN 5.3 acknowledges only what a follower appended",
            ws.len(),
            first.term,
            first.offset,
            first.endpoint,
            secs(first.at)
        );
        report.violations.push(
            Violation::new(ViolationKind::SemisyncUnreplicated, Some(pid), why)
                .with_keys(KeySample::of(ws.iter().map(|w| w.key.as_str())))
                .with_terms(ws.iter().filter_map(|w| w.ack().map(|a| a.term)))
                .with_offsets(ws.iter().filter_map(|w| w.ack().map(|a| a.offset)))
                .with_endpoints([first.endpoint.to_string()])
                .with_window(ws[0].attempted_at, Some(first.at)),
        );
    }
    report
}

/// For the semisync check: per (pid, last log term, endpoint), that replica's positions with that last term in
/// time order, with the running maximum of their offsets, so "when did a replica other than the leader first hold
/// entry (term, offset)" is a binary search instead of a scan of every position per write.
#[derive(Default)]
struct Reached<'a> {
    by_log: BTreeMap<LogKey<'a>, Vec<(Duration, u64)>>,
}

/// (pid, last log term, endpoint).
type LogKey<'a> = (Pid, u64, &'a str);

impl<'a> Reached<'a> {
    fn of(positions: &'a [super::input::Position]) -> Self {
        let mut by_log: BTreeMap<LogKey<'a>, Vec<(Duration, u64)>> = BTreeMap::new();
        for p in positions.iter().filter(|p| p.held) {
            let v = by_log.entry((p.pid, p.log_term, p.endpoint.as_str())).or_default();
            let top = v.last().map_or(0, |l| l.1).max(p.offset);
            v.push((p.at, top));
        }
        Reached { by_log }
    }

    /// The first time a replica of `pid` other than `leader` held entry (`term`, `offset`).
    fn by(&self, pid: Pid, term: u64, offset: u64, leader: &str) -> Option<Duration> {
        self.by_log
            .range((pid, term, "")..)
            .take_while(|((p, t, _), _)| *p == pid && *t == term)
            .filter(|((_, _, ep), _)| *ep != leader)
            .filter_map(|(_, v)| v.get(v.partition_point(|&(_, o)| o < offset)).map(|&(at, _)| at))
            .min()
    }
}

/// When `endpoint` took the lead of `pid` in `term` (zero when no position says so: it led from the start).
pub fn leader_since(ev: ReplicaEvents<'_>, pid: Pid, endpoint: &str, term: u64) -> Duration {
    ev.leader_starts(pid)
        .into_iter()
        .find(|&(_, ep, t, _)| ep == endpoint && t == term)
        .map_or(Duration::ZERO, |(at, ..)| at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::input::{FaultCause, FaultKind, Position, SessionExpiry, WriteOutcome};
    use crate::check::set::tests::ms;

    fn pos(ep: &str, at: u64, leader: bool, term: u64, log_term: u64, offset: u64) -> Position {
        Position { pid: 0, endpoint: ep.into(), at: ms(at), held: true, leader, term, log_term, offset }
    }

    fn acked(row: u64, ep: &str, term: u64, offset: u64, sent: u64, at: u64) -> WriteRecord {
        WriteRecord {
            row,
            key: format!("k{row}"),
            pid: Some(0),
            attempted_at: ms(sent),
            outcome: WriteOutcome::Acked { pid: 0, term, offset, endpoint: ep.into(), at: ms(at) },
        }
    }

    fn layout() -> Vec<PartitionLayout> {
        vec![PartitionLayout { pid: 0, replicas: vec!["t1".into(), "t2".into(), "t3".into()] }]
    }

    #[test]
    fn a_write_acknowledged_after_a_new_term_and_the_session_expiry_is_a_deposed_ack() {
        // t1 leads term 1 from 0; its session expires at 3 s; t2 leads term 2 from 4 s.
        let ps = vec![pos("t1", 0, true, 1, 0, 0), pos("t2", 4000, true, 2, 1, 10)];
        let exp = [SessionExpiry { endpoint: "t1".into(), at: ms(3000) }];
        let ev = ReplicaEvents { positions: &ps, expiries: &exp, ..Default::default() };
        let writes = vec![
            acked(1, "t1", 1, 10, 2000, 2010),
            acked(2, "t1", 1, 11, 3500, 3510),
            acked(3, "t1", 1, 12, 4500, 4510),
            acked(4, "t2", 2, 11, 4500, 4510),
        ];
        let r = check_acks(&writes, &layout(), &[], ev, false);
        assert_eq!(r.checked, 4);
        assert_eq!(r.deposed, vec![("k3".to_string(), 0, 1, "t1".to_string())]);
        assert_eq!(r.violations.len(), 1);
        assert_eq!(r.violations[0].kind, ViolationKind::DeposedAck);
        assert!(r.violations[0].why.contains("term 2"), "{}", r.violations[0].why);
        // Without the expiry the old leader may not have known: no violation.
        let ev = ReplicaEvents { positions: &ps, ..Default::default() };
        assert!(check_acks(&writes, &layout(), &[], ev, false).violations.is_empty());
    }

    #[test]
    fn a_write_held_by_a_pause_counts_from_the_resume() {
        let ps = vec![pos("t1", 0, true, 1, 0, 0), pos("t2", 4000, true, 2, 1, 10)];
        let exp = [SessionExpiry { endpoint: "t1".into(), at: ms(3000) }];
        let ev = ReplicaEvents { positions: &ps, expiries: &exp, ..Default::default() };
        let pause = |at, kind| FaultEvent { at: ms(at), kind, endpoint: "t1".into(), cause: FaultCause::Pause };
        // Sent at 1 s to a leader paused from 0.5 s to 6 s, answered at 6.01 s: it acted after both events.
        let writes = vec![acked(1, "t1", 1, 10, 1000, 6010)];
        let faults = vec![pause(500, FaultKind::Down), pause(6000, FaultKind::Up)];
        let r = check_acks(&writes, &layout(), &faults, ev, false);
        assert_eq!(r.violations.len(), 1, "{:?}", r.violations);
        // Not paused: it may have acted at 1 s.
        assert!(check_acks(&writes, &layout(), &[], ev, false).violations.is_empty());
    }

    #[test]
    fn a_semisync_ack_needs_a_follower_position_first() {
        let ps = vec![pos("t1", 0, true, 1, 0, 0), pos("t2", 100, false, 1, 1, 5), pos("t3", 300, false, 1, 1, 6)];
        let ev = ReplicaEvents { positions: &ps, ..Default::default() };
        let writes = vec![
            acked(1, "t1", 1, 5, 90, 110),
            acked(2, "t1", 1, 6, 150, 200),
            acked(3, "t1", 1, 6, 150, 310),
            acked(4, "t1", 1, 0, 150, 200),
        ];
        let r = check_acks(&writes[..3], &layout(), &[], ev, true);
        assert_eq!(r.unreplicated, vec![("k2".to_string(), 0, 1, 6)]);
        assert_eq!(r.violations.len(), 1);
        assert_eq!(r.violations[0].kind, ViolationKind::SemisyncUnreplicated);
        // Asynchronous: nothing to check; a duplicate (offset 0) never is.
        assert!(check_acks(&writes, &layout(), &[], ev, false).violations.is_empty());
        assert!(check_acks(&writes[3..], &layout(), &[], ev, true).violations.is_empty());
    }
}
