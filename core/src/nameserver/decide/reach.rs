//! Whether the active nameserver still reaches the tablets it must act on, and whether it should step down
//! because it does not (DESIGN 5.5).
//!
//! OpenMLDB's active nameserver keeps its lock for as long as its coordination session lives, even when it cannot
//! reach a single tablet: a leader's tablet that crashes then leaves its partitions leaderless ("no alive follower
//! answered the fencing probe") although the standby could reach every follower. Here the active nameserver keeps
//! a [`Reachability`] record of every tablet call it makes (the periodic status poll of every tablet, the fencing
//! probes), and [`decide_step_down`] turns that record into a decision:
//!
//! - It steps down only when a standby is in the election: without one, a nameserver that cannot reach the
//!   tablets is still the only one that may act once they are back.
//! - It steps down when no registered tablet has answered for the whole window (a cut between it and the
//!   tablets), or when a partition needs a leader and none of the candidates on registered tablets has answered
//!   for the whole window (a cut from exactly the tablets it must fail over), or when a registered tablet that
//!   holds a partition's alive leader has not answered for the whole window: such a leader may be fenced,
//!   waiting for a confirmation only the active nameserver gives (DESIGN 5.1), and a one-way cut from it turned
//!   a partition with no replica offline into an outage until the heal (the fuzzer's seed 125880).
//! - "Has not answered for the window" means at least [`MIN_FAILURES`] calls failed, the first of them asked at
//!   least the window ago, and none answered since: one call that timed out (a pause of the nameserver itself,
//!   one lost packet) is not a cut.
//! - It must not flap: the caller doubles the window after each recent step-down ([`step_down_window`]), and a
//!   nameserver that steps down joins the election again at the back, so it leads again only when the others
//!   are gone or step down in turn.
//!
//! Pure: the caller passes the time; nothing here reads a clock.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

/// How many calls to a tablet must have failed in a row before it counts as unreachable. Two, so that the single
/// call a pause of the nameserver (or one lost packet) lets time out is not taken for a cut: after a pause the
/// next poll answers and clears it.
pub const MIN_FAILURES: u32 = 2;

/// The base step-down window: how long every tablet (or every candidate of a leaderless partition) must have
/// failed to answer before the active nameserver gives up its lock. Three seconds: longer than a status poll's
/// deadline plus its period (so at least two polls failed) and than a tablet's session expiry (2 s by default: a
/// tablet that is really gone leaves `/nodes` before it counts against the nameserver), yet short enough that a
/// standby takes over and fails a crashed leader over within the failover budget of DESIGN 8 (7/5 × session
/// timeout + heartbeat timeout + 3 s, 6.8 s with the defaults).
pub const STEP_DOWN_WINDOW: Duration = Duration::from_secs(3);

/// How long a step-down counts as recent for [`step_down_window`]: a minute, far longer than a takeover, so two
/// nameservers that both cannot reach the tablets hand the lock back and forth ever more slowly.
pub const STEP_DOWN_MEMORY: Duration = Duration::from_secs(60);

/// The longest the window grows to: 2^4 × the base (48 s with the defaults).
pub const MAX_WINDOW_DOUBLINGS: u32 = 4;

/// The window to use after `recent` step-downs within [`STEP_DOWN_MEMORY`]: the base doubled per step-down, up
/// to [`MAX_WINDOW_DOUBLINGS`].
pub fn step_down_window(base: Duration, recent: usize) -> Duration {
    let doublings = u32::try_from(recent).unwrap_or(u32::MAX).min(MAX_WINDOW_DOUBLINGS);
    base.saturating_mul(1 << doublings)
}

/// What the calls to one tablet showed since it last answered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Link {
    /// When the last call that got an answer was made.
    last_answer: Option<Instant>,
    /// When the first call that failed since then was made.
    failing_since: Option<Instant>,
    /// How many calls failed since then.
    failures: u32,
}

/// The record of every tablet call's outcome, by endpoint. A call is recorded with the time it was *made*, so a
/// call that was made before a later answered one cannot mark the tablet unreachable again.
#[derive(Debug, Clone, Default)]
pub struct Reachability {
    links: BTreeMap<String, Link>,
}

impl Reachability {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a call to `endpoint` made at `asked_at`: `answered` is true for any answer, an error status
    /// included ("table is not exist" is an answer: the tablet is reachable).
    pub fn record(&mut self, endpoint: &str, asked_at: Instant, answered: bool) {
        let link = self.links.entry(endpoint.to_string()).or_default();
        if answered {
            if link.last_answer.is_none_or(|t| t <= asked_at) {
                *link = Link { last_answer: Some(asked_at), failing_since: None, failures: 0 };
            }
            return;
        }
        if link.last_answer.is_some_and(|t| t > asked_at) {
            return; // Older than an answer already seen.
        }
        link.failing_since = Some(link.failing_since.map_or(asked_at, |s| s.min(asked_at)));
        link.failures = link.failures.saturating_add(1);
    }

    /// How long `endpoint` has not answered, if it counts as unreachable (at least [`MIN_FAILURES`] failed
    /// calls since its last answer).
    pub fn unreachable_for(&self, endpoint: &str, now: Instant) -> Option<Duration> {
        let link = self.links.get(endpoint)?;
        let since = link.failing_since?;
        (link.failures >= MIN_FAILURES).then(|| now.saturating_duration_since(since))
    }

    /// Whether `endpoint` has not answered for at least `window`.
    pub fn cut_for(&self, endpoint: &str, now: Instant, window: Duration) -> bool {
        self.unreachable_for(endpoint, now).is_some_and(|d| d >= window)
    }

    /// Forgets everything (a new term as active nameserver starts with no evidence).
    pub fn clear(&mut self) {
        self.links.clear();
    }

    /// Forgets the tablets not in `keep` (gone from `/nodes`), so the record stays bounded by the cluster size.
    pub fn retain(&mut self, keep: &[String]) {
        self.links.retain(|e, _| keep.contains(e));
    }
}

/// What [`decide_step_down`] looks at besides the record.
#[derive(Debug, Clone, Default)]
pub struct StepDownFacts {
    /// The tablets registered in `/nodes` (healthy).
    pub healthy_tablets: Vec<String>,
    /// Per partition that needs a leader (none alive, followers to ask): its name, pid and the candidates on
    /// healthy tablets.
    pub leaderless: Vec<(String, u32, Vec<String>)>,
    /// The healthy tablets that hold some partition's alive-marked leader.
    pub leader_tablets: Vec<String>,
    /// Whether another nameserver is in the election.
    pub standby: bool,
    /// The window to apply ([`step_down_window`]).
    pub window: Duration,
}

/// Why the active nameserver steps down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepDownReason {
    /// No registered tablet answered for the window.
    NoTabletAnswers { tablets: Vec<String> },
    /// A partition needs a leader and none of its candidates answered for the window.
    CandidatesUnreachable { name: String, pid: u32, candidates: Vec<String> },
    /// A tablet holding alive leaders answered nothing for the window.
    LeadersUnreachable { tablet: String },
}

impl std::fmt::Display for StepDownReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StepDownReason::NoTabletAnswers { tablets } => {
                write!(f, "no registered tablet answered ({})", tablets.join(", "))
            }
            StepDownReason::CandidatesUnreachable { name, pid, candidates } => write!(
                f,
                "table {name} pid {pid} needs a leader and none of its candidates answered ({})",
                candidates.join(", ")
            ),
            StepDownReason::LeadersUnreachable { tablet } => {
                write!(f, "{tablet} holds alive leaders and answered nothing (they may wait for a confirmation)")
            }
        }
    }
}

/// Whether the active nameserver should give up its lock now (DESIGN 5.5); see the module doc for the rules.
pub fn decide_step_down(reach: &Reachability, facts: &StepDownFacts, now: Instant) -> Option<StepDownReason> {
    if !facts.standby || facts.healthy_tablets.is_empty() {
        return None;
    }
    let cut = |e: &String| reach.cut_for(e, now, facts.window);
    if facts.healthy_tablets.iter().all(cut) {
        return Some(StepDownReason::NoTabletAnswers { tablets: facts.healthy_tablets.clone() });
    }
    if let Some((name, pid, candidates)) = facts.leaderless.iter().find(|(_, _, c)| !c.is_empty() && c.iter().all(cut))
    {
        return Some(StepDownReason::CandidatesUnreachable {
            name: name.clone(),
            pid: *pid,
            candidates: candidates.clone(),
        });
    }
    facts.leader_tablets.iter().find(|e| cut(e)).map(|e| StepDownReason::LeadersUnreachable { tablet: e.clone() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> Instant {
        Instant::now()
    }

    fn s(secs: f64) -> Duration {
        Duration::from_secs_f64(secs)
    }

    fn eps(list: &[&str]) -> Vec<String> {
        list.iter().map(|e| e.to_string()).collect()
    }

    fn facts(healthy: &[&str], standby: bool) -> StepDownFacts {
        StepDownFacts {
            healthy_tablets: eps(healthy),
            leaderless: vec![],
            leader_tablets: vec![],
            standby,
            window: STEP_DOWN_WINDOW,
        }
    }

    /// Failed calls to `ep` every 0.5 s from `from` to `to` (seconds after t).
    fn fail(r: &mut Reachability, ep: &str, t: Instant, from: f64, to: f64) {
        let mut at = from;
        while at <= to {
            r.record(ep, t + s(at), false);
            at += 0.5;
        }
    }

    #[test]
    fn one_failure_is_not_a_cut_however_old() {
        let t = t0();
        let mut r = Reachability::new();
        r.record("a", t, false);
        assert_eq!(r.unreachable_for("a", t + s(10.0)), None);
        r.record("a", t + s(1.0), false);
        assert_eq!(r.unreachable_for("a", t + s(10.0)), Some(s(10.0)));
    }

    #[test]
    fn an_answer_clears_and_an_older_failure_does_not_undo_it() {
        let t = t0();
        let mut r = Reachability::new();
        fail(&mut r, "a", t, 0.0, 4.0);
        assert!(r.cut_for("a", t + s(4.0), STEP_DOWN_WINDOW));
        r.record("a", t + s(4.5), true);
        assert_eq!(r.unreachable_for("a", t + s(5.0)), None);
        // A call made before that answer, timing out after it: stale evidence.
        r.record("a", t + s(4.2), false);
        r.record("a", t + s(4.3), false);
        assert_eq!(r.unreachable_for("a", t + s(9.0)), None);
    }

    #[test]
    fn a_paused_nameserver_sees_one_timeout_per_tablet_and_stays() {
        // Paused for 3 s: the poll made just before times out at the resume; the next poll answers.
        let t = t0();
        let mut r = Reachability::new();
        let f = facts(&["a", "b", "c"], true);
        for ep in ["a", "b", "c"] {
            r.record(ep, t, true);
            r.record(ep, t + s(0.5), false);
        }
        assert_eq!(decide_step_down(&r, &f, t + s(3.5)), None);
        for ep in ["a", "b", "c"] {
            r.record(ep, t + s(3.6), true);
        }
        assert_eq!(decide_step_down(&r, &f, t + s(10.0)), None);
    }

    #[test]
    fn cut_from_every_tablet_with_a_standby_steps_down_after_the_window() {
        let t = t0();
        let mut r = Reachability::new();
        for ep in ["a", "b", "c"] {
            fail(&mut r, ep, t, 0.0, 3.5);
        }
        let f = facts(&["a", "b", "c"], true);
        assert_eq!(decide_step_down(&r, &f, t + s(2.9)), None, "not before the window");
        assert_eq!(
            decide_step_down(&r, &f, t + s(3.0)),
            Some(StepDownReason::NoTabletAnswers { tablets: eps(&["a", "b", "c"]) })
        );
    }

    #[test]
    fn without_a_standby_it_never_steps_down() {
        let t = t0();
        let mut r = Reachability::new();
        for ep in ["a", "b"] {
            fail(&mut r, ep, t, 0.0, 30.0);
        }
        let mut f = facts(&["a", "b"], false);
        f.leaderless = vec![("flow".into(), 0, eps(&["a"]))];
        assert_eq!(decide_step_down(&r, &f, t + s(30.0)), None);
    }

    #[test]
    fn no_registered_tablet_is_nothing_to_reach() {
        let r = Reachability::new();
        assert_eq!(decide_step_down(&r, &facts(&[], true), t0()), None);
    }

    #[test]
    fn one_tablet_answering_keeps_it_unless_a_leaderless_partition_needs_only_the_cut_ones() {
        let t = t0();
        let mut r = Reachability::new();
        fail(&mut r, "b", t, 0.0, 4.0);
        fail(&mut r, "c", t, 0.0, 4.0);
        r.record("a", t + s(4.0), true);
        let mut f = facts(&["a", "b", "c"], true);
        assert_eq!(decide_step_down(&r, &f, t + s(4.0)), None);
        // A partition with a candidate it reaches: stays.
        f.leaderless = vec![("flow".into(), 1, eps(&["a", "b"]))];
        assert_eq!(decide_step_down(&r, &f, t + s(4.0)), None);
        // One whose every candidate is cut: steps down.
        f.leaderless.push(("flow".into(), 2, eps(&["b", "c"])));
        assert_eq!(
            decide_step_down(&r, &f, t + s(4.0)),
            Some(StepDownReason::CandidatesUnreachable { name: "flow".into(), pid: 2, candidates: eps(&["b", "c"]) })
        );
        // A leaderless partition with no candidate at all is not the nameserver's reachability problem.
        f.leaderless = vec![("flow".into(), 3, vec![])];
        assert_eq!(decide_step_down(&r, &f, t + s(4.0)), None);
    }

    #[test]
    fn a_cut_leader_tablet_steps_down_after_the_window_and_a_cut_follower_tablet_does_not() {
        let t = t0();
        let mut r = Reachability::new();
        fail(&mut r, "b", t, 0.0, 4.0);
        r.record("a", t + s(4.0), true);
        let mut f = facts(&["a", "b"], true);
        assert_eq!(decide_step_down(&r, &f, t + s(4.0)), None, "b holds followers only");
        f.leader_tablets = eps(&["a", "b"]);
        assert_eq!(decide_step_down(&r, &f, t + s(2.9)), None, "not before the window");
        assert_eq!(
            decide_step_down(&r, &f, t + s(4.0)),
            Some(StepDownReason::LeadersUnreachable { tablet: "b".into() })
        );
        f.standby = false;
        assert_eq!(decide_step_down(&r, &f, t + s(4.0)), None, "no standby: it stays");
    }

    #[test]
    fn a_tablet_never_asked_is_not_cut() {
        let t = t0();
        let mut r = Reachability::new();
        fail(&mut r, "a", t, 0.0, 5.0);
        assert_eq!(decide_step_down(&r, &facts(&["a", "b"], true), t + s(5.0)), None);
    }

    #[test]
    fn the_window_doubles_per_recent_step_down_and_is_capped() {
        let base = Duration::from_secs(3);
        let got: Vec<u64> = (0..8).map(|n| step_down_window(base, n).as_secs()).collect();
        assert_eq!(got, vec![3, 6, 12, 24, 48, 48, 48, 48]);
        assert_eq!(step_down_window(base, usize::MAX), Duration::from_secs(48));
    }

    #[test]
    fn retain_forgets_tablets_gone_from_nodes() {
        let t = t0();
        let mut r = Reachability::new();
        fail(&mut r, "a", t, 0.0, 4.0);
        fail(&mut r, "b", t, 0.0, 4.0);
        r.retain(&eps(&["b"]));
        assert_eq!(r.unreachable_for("a", t + s(4.0)), None);
        assert!(r.unreachable_for("b", t + s(4.0)).is_some());
        r.clear();
        assert_eq!(r.unreachable_for("b", t + s(4.0)), None);
    }
}
