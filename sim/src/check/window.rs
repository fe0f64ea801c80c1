//! Availability with time (DESIGN 8): per partition, every unavailability window, judged against a deadline.
//!
//! A window opens at the first write that failed or stayed unanswered and closes at the first acknowledgement of
//! a write sent at or after it (a client saw service again). It is measured from the fault that opened it: the
//! latest event that touched the partition (a fault or a recovery of one of its replicas, or a change of the
//! control plane: a nameserver, the coordination server, the network) at or before the first failed write ended;
//! a window with no such event is measured from its own start. It must close within `failover_within` of that
//! fault; while every failover is blocked (the coordination server or every nameserver out of action: a
//! *blocker*) the clock waits, and the deadline is `failover_within` after the blocker lifted. One blocker is a
//! partition's own, the named excuse *leader unseen* ([`super::replicas::unseen_leader`]): its last leader ran
//! registered and cut from every nameserver, so no nameserver could tell it was gone.
//!
//! Only evidence counts against a window: it is too long when a write sent at or after its deadline still failed,
//! or a write the routing client kept retrying was refused after it.
//! A window the workload stopped writing to before its deadline is unjudged, and says so.

use std::time::Duration;

use super::input::{Pid, WriteRecord};
use super::{Violation, ViolationKind, secs};

/// How one window compares with its deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowVerdict {
    /// Closed by its deadline.
    InTime,
    /// A write sent at or after the deadline still failed, or one was refused after it.
    TooLong,
    /// No write was sent between the deadline and the window's close (or the end): no evidence either way.
    Unjudged,
    /// The availability table promises no service for this partition: measured, not judged.
    NotPromised,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    pub pid: Pid,
    /// When the first write that failed or stayed unanswered was sent.
    pub opened: Duration,
    /// The first acknowledgement of a write sent at or after `opened` (`None`: none came).
    pub closed: Option<Duration>,
    /// The event it is measured from (`None`: its own start).
    pub fault: Option<Duration>,
    pub deadline: Duration,
    /// Writes sent inside it that failed or stayed unanswered.
    pub failed: usize,
    pub verdict: WindowVerdict,
}

impl Window {
    /// From the first failed write to the first acknowledgement after it.
    pub fn length(&self) -> Option<Duration> {
        self.closed.map(|c| c.saturating_sub(self.opened))
    }

    /// From the fault to service again: the failover time this window shows.
    pub fn failover(&self) -> Option<Duration> {
        self.closed.map(|c| c.saturating_sub(self.fault.unwrap_or(self.opened)))
    }
}

/// What the windows of one partition are judged with.
#[derive(Clone, Copy, Debug)]
pub struct WindowRules<'a> {
    /// Times of the events that may open a window of this partition, in any order.
    pub events: &'a [Duration],
    /// `(from, to)` intervals in which every failover was blocked (`to = None`: until the end).
    pub blockers: &'a [(Duration, Option<Duration>)],
    pub within: Duration,
    /// The availability table promises service to this partition.
    pub promised: bool,
}

/// The deadline of a window measured from `base`: `within` later, pushed past every blocker that overlaps the
/// time until it (`Duration::MAX` when one never lifts).
pub fn deadline(base: Duration, within: Duration, blockers: &[(Duration, Option<Duration>)]) -> Duration {
    let mut due = base.saturating_add(within);
    // Each pass can only push the deadline later; a blocker is used at most once.
    let mut used = vec![false; blockers.len()];
    loop {
        let mut moved = false;
        for (i, &(from, to)) in blockers.iter().enumerate() {
            let overlaps = !used[i] && from <= due && to.is_none_or(|t| t >= base);
            if overlaps {
                used[i] = true;
                let lifted = to.map_or(Duration::MAX, |t| t.saturating_add(within));
                if lifted > due {
                    due = lifted;
                    moved = true;
                }
            }
        }
        if !moved {
            return due;
        }
    }
}

/// How long after a write was sent an event still counts as what made it fail: a write in flight normally
/// answers within milliseconds, so an event this soon after the first failed write was sent is what hit it (a
/// crash while it was on the wire), and a later one is not.
pub const OPENING_GRACE: Duration = Duration::from_millis(250);

/// The event a window opened by a write sent at `sent` (and answered, or given up, at `ended`) is measured from:
/// the first event that came while that write was in flight, within [`OPENING_GRACE`]; else the last event
/// before it was sent; else none.
pub fn opening_event(events: &[Duration], sent: Duration, ended: Duration) -> Option<Duration> {
    let in_flight = sent.saturating_add(OPENING_GRACE).min(ended);
    events
        .iter()
        .copied()
        .filter(|&e| e > sent && e <= in_flight)
        .min()
        .or_else(|| events.iter().copied().filter(|&e| e <= sent).max())
}

/// Every unavailability window of `pid`'s writes (`writes` may hold other partitions' too: they are skipped).
pub fn windows(writes: &[WriteRecord], pid: Pid, rules: WindowRules<'_>) -> Vec<Window> {
    let mut ws: Vec<&WriteRecord> = writes.iter().filter(|w| w.pid() == Some(pid)).collect();
    ws.sort_by_key(|w| w.attempted_at);
    // The first acknowledgement among the writes from each index on.
    let mut first_ack: Vec<Option<Duration>> = vec![None; ws.len() + 1];
    for i in (0..ws.len()).rev() {
        let here = ws[i].ack().map(|a| a.at);
        first_ack[i] = match (here, first_ack[i + 1]) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    let mut out = Vec::new();
    let mut i = 0;
    while i < ws.len() {
        if ws[i].is_acked() {
            i += 1;
            continue;
        }
        let opened = ws[i].attempted_at;
        let closed = first_ack[i];
        // An event before the window whose failover already ended (a write of the partition was acknowledged
        // after it, before this window opened) did not open it: the window is judged from its own first failed
        // write (a lone write lost to packet loss 6 s after a recovery was charged to it: seed 819946).
        let fault = opening_event(rules.events, opened, ws[i].ended_at()).filter(|&e| {
            e > opened || !ws[..i].iter().any(|w| w.attempted_at > e && w.ack().is_some_and(|a| a.at <= opened))
        });
        let due = deadline(fault.unwrap_or(opened), rules.within, rules.blockers);
        let end = closed.unwrap_or(Duration::MAX);
        let inside: Vec<&&WriteRecord> = ws[i..].iter().take_while(|w| w.attempted_at < end).collect();
        let failed = inside.iter().filter(|w| !w.is_acked()).count();
        // Evidence past the deadline: a write sent after it that failed or went unanswered, or one refused after
        // it (the routing client retried it until then). An unanswered write only counts from when it was sent:
        // it may have gone to a leader already replaced.
        let late_failure = inside.iter().any(|w| {
            w.attempted_at >= due || (matches!(w.outcome, super::input::WriteOutcome::Failed { .. }) && w.ended_at() >= due)
        } && !w.is_acked());
        let verdict = if !rules.promised {
            WindowVerdict::NotPromised
        } else if late_failure {
            WindowVerdict::TooLong
        } else if closed.is_some_and(|c| c <= due) {
            WindowVerdict::InTime
        } else {
            // Still open, or closed late with no write sent between the deadline and the close.
            WindowVerdict::Unjudged
        };
        out.push(Window { pid, opened, closed, fault, deadline: due, failed, verdict });
        i += inside.len().max(1);
    }
    out
}

/// One violation per window too long.
pub fn window_violations(windows: &[Window], within: Duration) -> Vec<Violation> {
    windows
        .iter()
        .filter(|w| w.verdict == WindowVerdict::TooLong)
        .map(|w| {
            let from = w.fault.unwrap_or(w.opened);
            let how_long = match w.closed {
                Some(c) => format!("service came back at {} ({} after the fault)", secs(c), secs(c - from)),
                None => "service never came back while writes were sent".to_string(),
            };
            Violation::new(
                ViolationKind::WindowTooLong,
                Some(w.pid),
                format!(
                    "writes failed from {} ({} failed); the fault at {} allowed failover until {} \
                     (failover_within {}), but {how_long}",
                    secs(w.opened),
                    w.failed,
                    secs(from),
                    secs(w.deadline),
                    secs(within)
                ),
            )
            .with_window(from, w.closed)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::WriteRecord;
    use crate::check::set::tests::{acked, failed, ms, unknown};

    fn rules<'a>(events: &'a [Duration], blockers: &'a [(Duration, Option<Duration>)]) -> WindowRules<'a> {
        WindowRules { events, blockers, within: ms(5000), promised: true }
    }

    /// Writes of pid 0 every 100 ms from `from` to `to` (exclusive), acked or failed.
    fn run(from: u64, to: u64, ok: bool, first_row: u64) -> Vec<WriteRecord> {
        (from..to)
            .step_by(100)
            .enumerate()
            .map(|(i, at)| {
                let row = first_row + i as u64;
                if ok { acked(row, 0, 1, row, at + 5) } else { failed(row, 0, at) }
            })
            .collect()
    }

    #[test]
    fn a_window_closed_within_the_deadline_passes_and_is_measured_from_its_fault() {
        let mut ws = run(0, 10_000, true, 0);
        ws.extend(run(10_000, 13_000, false, 100));
        ws.extend(run(13_000, 20_000, true, 200));
        let events = [ms(9_990)];
        let got = windows(&ws, 0, rules(&events, &[]));
        assert_eq!(got.len(), 1);
        let w = &got[0];
        assert_eq!((w.opened, w.closed, w.fault), (ms(10_000), Some(ms(13_005)), Some(ms(9_990))));
        assert_eq!(w.verdict, WindowVerdict::InTime);
        assert_eq!(w.failed, 30);
        assert_eq!(w.failover(), Some(ms(3_015)));
        assert_eq!(w.length(), Some(ms(3_005)));
        assert!(window_violations(&got, ms(5000)).is_empty());
    }

    #[test]
    fn a_window_past_its_deadline_is_a_violation_and_a_later_fault_does_not_excuse_it() {
        let mut ws = run(0, 10_000, true, 0);
        ws.extend(run(10_000, 25_000, false, 100));
        ws.extend(run(25_000, 30_000, true, 300));
        // A fault at 10 s opened it; another at 20 s (of some other process) came after it opened.
        let events = [ms(9_990), ms(20_000)];
        let got = windows(&ws, 0, rules(&events, &[]));
        assert_eq!(got[0].verdict, WindowVerdict::TooLong);
        assert_eq!(got[0].deadline, ms(14_990));
        let v = window_violations(&got, ms(5000));
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].kind, ViolationKind::WindowTooLong);
        assert!(v[0].why.contains("until 14.990s"), "{}", v[0].why);
    }

    #[test]
    fn a_failure_after_service_came_back_is_judged_from_its_own_start() {
        // A fault at 10 s, service back at 12 s, then one write lost at 17 s (past the fault's deadline).
        let mut ws = run(0, 10_000, true, 0);
        ws.extend(run(10_000, 12_000, false, 100));
        ws.extend(run(12_000, 17_000, true, 200));
        ws.extend(run(17_000, 17_100, false, 300));
        ws.extend(run(17_100, 20_000, true, 400));
        let events = [ms(9_990)];
        let got = windows(&ws, 0, rules(&events, &[]));
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].fault, got[0].verdict), (Some(ms(9_990)), WindowVerdict::InTime));
        assert_eq!((got[1].fault, got[1].deadline, got[1].verdict), (None, ms(22_000), WindowVerdict::InTime));
        // Without a write served in between, the fault's deadline holds.
        let mut dark = run(0, 10_000, true, 0);
        dark.extend(run(10_000, 17_100, false, 100));
        dark.extend(run(17_100, 20_000, true, 400));
        assert_eq!(windows(&dark, 0, rules(&events, &[]))[0].verdict, WindowVerdict::TooLong);
    }

    #[test]
    fn a_blocker_moves_the_deadline_after_it_lifts() {
        let mut ws = run(0, 10_000, true, 0);
        ws.extend(run(10_000, 25_000, false, 100));
        ws.extend(run(25_000, 30_000, true, 300));
        let events = [ms(9_990)];
        let blockers = [(ms(12_000), Some(ms(21_000)))];
        let got = windows(&ws, 0, rules(&events, &blockers));
        assert_eq!(got[0].deadline, ms(26_000));
        assert_eq!(got[0].verdict, WindowVerdict::InTime);
        // A blocker that never lifts leaves no deadline.
        assert_eq!(deadline(ms(10), ms(5), &[(ms(12), None)]), Duration::MAX);
        // One that ended before the fault changes nothing.
        assert_eq!(deadline(ms(100), ms(5), &[(ms(10), Some(ms(20)))]), ms(105));
    }

    #[test]
    fn an_unclosed_window_is_too_long_only_with_failures_after_the_deadline() {
        let mut ws = run(0, 10_000, true, 0);
        ws.extend(run(10_000, 12_000, false, 100));
        let events = [ms(9_990)];
        let got = windows(&ws, 0, rules(&events, &[]));
        assert_eq!((got[0].closed, got[0].verdict), (None, WindowVerdict::Unjudged));
        ws.extend(run(12_000, 16_000, false, 200));
        let got = windows(&ws, 0, rules(&events, &[]));
        assert_eq!(got[0].verdict, WindowVerdict::TooLong);
        let v = window_violations(&got, ms(5000));
        assert!(v[0].why.contains("never came back"), "{}", v[0].why);
        // A write sent before the deadline and refused after it (retried all the while) is evidence too; one that
        // went unanswered is not (it may have gone to a leader already replaced).
        let mut ws = run(0, 10_000, true, 0);
        let mut refused = failed(100, 0, 11_000);
        if let crate::check::WriteOutcome::Failed { at, .. } = &mut refused.outcome {
            *at = ms(21_000);
        }
        ws.push(refused.clone());
        ws.extend(run(22_000, 23_000, true, 200));
        assert_eq!(windows(&ws, 0, rules(&events, &[]))[0].verdict, WindowVerdict::TooLong);
        let unanswered = WriteRecord {
            outcome: crate::check::WriteOutcome::Unknown { reason: "timeout".into(), at: ms(21_000) },
            ..refused
        };
        let ws: Vec<WriteRecord> = run(0, 10_000, true, 0).into_iter().chain([unanswered]).collect();
        assert_eq!(windows(&ws, 0, rules(&events, &[]))[0].verdict, WindowVerdict::Unjudged);
        let not = WindowRules { promised: false, ..rules(&events, &[]) };
        assert_eq!(windows(&ws, 0, not)[0].verdict, WindowVerdict::NotPromised);
    }

    #[test]
    fn an_unanswered_write_sent_just_before_the_fault_is_measured_from_the_fault() {
        let mut ws = run(0, 10_000, true, 0);
        // Sent at 9.95 s, given up at 10.5 s; the crash came at 10 s.
        let mut u = unknown(100, 0, 9_950);
        if let crate::check::WriteOutcome::Unknown { at, .. } = &mut u.outcome {
            *at = ms(10_500);
        }
        ws.push(u);
        ws.extend(run(10_000, 12_000, false, 200));
        ws.extend(run(12_000, 13_000, true, 300));
        let events = [ms(5_000), ms(10_000)];
        let got = windows(&ws, 0, rules(&events, &[]));
        assert_eq!(got[0].fault, Some(ms(10_000)));
        assert_eq!(got[0].opened, ms(9_950));
        // A write that hangs for seconds is measured from what came before it, not from a later event.
        assert_eq!(opening_event(&[ms(1_000), ms(5_000)], ms(2_000), ms(7_000)), Some(ms(1_000)));
        assert_eq!(opening_event(&[ms(1_000), ms(2_100)], ms(2_000), ms(7_000)), Some(ms(2_100)));
        assert_eq!(opening_event(&[ms(3_000)], ms(2_000), ms(7_000)), None);
        // Other partitions' writes are not this partition's evidence.
        assert!(windows(&ws, 1, rules(&events, &[])).is_empty());
    }
}
