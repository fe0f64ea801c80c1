//! The property every case must keep: the checkers of DESIGN 8 hold, with the expectations the availability-table
//! oracle derives from the schedule (the rendered scenario has no `[expect]`), and the run is deterministic.
//!
//! A step that fails is a violation (a `recoverdata` that fails, a `submitjob` the TaskManager refuses, a
//! `wait_until` that times out), except the failures the schedule made impossible by construction: each is named
//! by an [`Excuse`], matched on the step's verb and its failure text, and counted. A panic, a setup failure or a
//! run past its duration is a violation too.

use std::collections::{BTreeMap, BTreeSet};

use mldb_sim::run;
use openmldb::planted::Planted;

use crate::case::FuzzCase;
use crate::probes::ProbeCounts;

/// A step failure the random schedule made impossible by construction, so not the system's fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Excuse {
    /// `pause` of a process a crash (or a power loss) left down: the harness refuses, `<name> is not running`.
    PauseNotRunning,
    /// A `leader(table,pid)` or `follower(table,pid)` target while the partition has no alive replica of that
    /// role (every replica down, or only the leader left): `<target>: no alive leader now`.
    NoAliveReplica,
    /// `corrupt_tail` of a tablet that holds no partition, so no binlog: `<name> has no binlog file to corrupt`.
    NoBinlogToCorrupt,
    /// `recoverdata` (any failure) while another fault of the schedule is in force, as the run's trace of the
    /// nemesis shows it between the step's start and its failure: a process down, paused or started less than
    /// 2 s before, a network cut or clog not healed, a lossy network, a disk fault. The seed's procedure runs
    /// it on a cluster whose processes are all started and healthy; the schedule overlaps it with other faults.
    RecoverdataDuringAFault,
    /// `corrupt_tail` of the segment the renderer names (`1_<pid>/binlog/00000000.log`) on a replica that does not
    /// hold it (a re-added replica started its binlog at a later segment): the disk's `no such file or directory`.
    NoSuchSegment,
}

/// Each excuse: its name, the verbs it applies to, and the texts the failure must all contain.
pub const EXCUSES: &[(Excuse, &str, &[&str], &[&str])] = &[
    (Excuse::PauseNotRunning, "pause of a process that is not running", &["pause"], &[" is not running"]),
    (
        Excuse::NoAliveReplica,
        "a role target that names nothing at that moment (no alive leader/follower)",
        &[
            "crash",
            "restart",
            "start",
            "machine_restart",
            "pause",
            "resume",
            "disk_fault",
            "isolate",
            "isolate_from_coord",
            "clog",
            "partition",
        ],
        &[": no alive "],
    ),
    (
        Excuse::NoBinlogToCorrupt,
        "corrupt_tail of a tablet without a binlog",
        &["disk_fault"],
        &[" has no binlog file to corrupt"],
    ),
    (
        Excuse::NoSuchSegment,
        "corrupt_tail of a binlog segment the replica does not hold",
        &["disk_fault"],
        &["corrupt_tail", "/binlog/", "no such file or directory"],
    ),
];

/// The name of [`Excuse::RecoverdataDuringAFault`] (it needs the trace, so it is not in [`EXCUSES`]' table).
pub const RECOVERDATA_DURING_A_FAULT: &str = "recoverdata while another fault of the schedule is in force";

impl Excuse {
    pub fn name(self) -> &'static str {
        if self == Excuse::RecoverdataDuringAFault {
            return RECOVERDATA_DURING_A_FAULT;
        }
        EXCUSES.iter().find(|(e, ..)| *e == self).map_or("?", |(_, name, ..)| name)
    }
}

/// The excuse for a runner failure (`step <n> (line <l>, <verb>): <text>`), or None when it is a violation.
pub fn excuse(failure: &str) -> Option<Excuse> {
    let rest = failure.strip_prefix("step ")?;
    let (head, text) = rest.split_once("): ")?;
    let verb = head.rsplit_once(", ")?.1;
    EXCUSES
        .iter()
        .find(|(_, _, verbs, needles)| {
            verbs.contains(&verb)
                && needles.iter().all(|n| text.contains(n))
                // A role-target excuse must be the resolver's own words, not text an output happens to hold.
                && !text.contains('\n')
        })
        .map(|(e, ..)| *e)
}

/// The excuse for a runner failure given the run's trace: [`excuse`], or [`Excuse::RecoverdataDuringAFault`]
/// when the failure is a `recoverdata` step's and [`fault_in_force`] says so.
pub fn excuse_in(failure: &str, trace: &[String]) -> Option<Excuse> {
    if let Some(e) = excuse(failure) {
        return Some(e);
    }
    let rest = failure.strip_prefix("step ")?;
    let (head, _) = rest.split_once("): ")?;
    let (_, tail) = head.split_once("(line ")?;
    let (line, verb) = tail.split_once(", ")?;
    (verb == "recoverdata" && fault_in_force(trace, line.parse().ok()?)).then_some(Excuse::RecoverdataDuringAFault)
}

/// The simulated seconds of a trace line `[   12.5s] node: text`, and its text after the node.
fn trace_line(l: &str) -> Option<(f64, &str, &str)> {
    let (time, rest) = l.strip_prefix('[')?.split_once("s] ")?;
    let (node, text) = rest.split_once(": ")?;
    Some((time.trim().parse().ok()?, node, text))
}

/// Seconds of a `Duration`'s `Debug` text as the nemesis prints it ("1s", "250ms", "1.5s", "800µs").
fn parse_debug_secs(text: &str) -> Option<f64> {
    let (num, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = text.strip_suffix("µs") {
        (n, 1e-6)
    } else if let Some(n) = text.strip_suffix("ns") {
        (n, 1e-9)
    } else {
        (text.strip_suffix('s')?, 1.0)
    };
    num.parse::<f64>().ok().map(|v| v * scale)
}

/// Whether, from the start of the step on scenario line `line` to its failure, the nemesis held a fault in force
/// (see [`Excuse::RecoverdataDuringAFault`]). Reads the nemesis's own trace lines only.
pub fn fault_in_force(trace: &[String], line: u64) -> bool {
    let started = format!("(line {line}): ");
    let failed = format!("(line {line}) failed: ");
    let mut held = Held::default();
    let (mut inside, mut seen) = (false, false);
    for l in trace {
        let Some((t, node, text)) = trace_line(l) else { continue };
        if node == "runner" && text.starts_with("step ") {
            if text.contains(&started) {
                inside = true;
            } else if text.contains(&failed) {
                return seen;
            }
        }
        if node == "nemesis" {
            held.nemesis(t, text);
        } else if let Some(tablet) = held.lost_registration(node, text) {
            // Its session ended (a cut from the coordination server just shorter than the timeout can end it
            // just after the heal): not ready again until it registered anew (seed 750701 of campaign 74).
            held.starting.insert(tablet);
        } else if held.starting.contains(node) && ready_line(node, text) {
            held.starting.remove(node);
            held.last_start = t;
        }
        if inside {
            seen |= held.in_force(t);
        }
    }
    false
}

/// Whether a process's own trace line says it is ready: a tablet once it registered (a restarted one first waits
/// for its previous session's node to expire: seed 798910), a nameserver once it holds a coordination session,
/// the coordination server once it listens (after its recovery), another process at its "started" line.
fn ready_line(node: &str, text: &str) -> bool {
    if node.starts_with("tablet-") {
        text.starts_with("tablet registered")
    } else if node == "coord" {
        text.starts_with("coordination server listening")
    } else if node.starts_with("nameserver-") {
        // It serves nothing before it holds a session: a one-way cut from the coordination server kept a started
        // nameserver out for 3 s (seed 947943 of campaign 76).
        text.starts_with("coordination session connected")
    } else {
        text.split_whitespace().nth(1) == Some("started")
    }
}

/// The faults the nemesis's trace lines hold in force, for [`fault_in_force`].
#[derive(Debug)]
struct Held {
    machine_of: BTreeMap<String, String>,
    /// Each process's address, as placed.
    ip_of: BTreeMap<String, String>,
    down: BTreeSet<String>,
    paused: BTreeSet<String>,
    disk: BTreeSet<String>,
    /// Started by the nemesis, not yet at its own [`ready_line`] (a tablet's boot syncs what an earlier run left
    /// behind, which a slow disk stretches to seconds: seed 806725).
    starting: BTreeSet<String>,
    /// The delay of each slow fsync in force, in seconds.
    slow: BTreeMap<String, f64>,
    /// A cleared slow fsync still delays the fsync already waiting, by up to its delay.
    slow_until: f64,
    cut: bool,
    lossy: bool,
    last_start: f64,
}

impl Default for Held {
    fn default() -> Self {
        Held {
            machine_of: BTreeMap::new(),
            ip_of: BTreeMap::new(),
            down: BTreeSet::new(),
            paused: BTreeSet::new(),
            disk: BTreeSet::new(),
            starting: BTreeSet::new(),
            slow: BTreeMap::new(),
            slow_until: f64::MIN,
            cut: false,
            lossy: false,
            last_start: f64::MIN,
        }
    }
}

impl Held {
    fn nemesis(&mut self, t: f64, text: &str) {
        let words: Vec<&str> = text.split_whitespace().collect();
        match words.as_slice() {
            ["placed", p, "on", m, rest @ ..] => {
                self.machine_of.insert(p.to_string(), m.to_string());
                if let ["at", ip, ..] = rest {
                    self.ip_of.insert(p.to_string(), ip.to_string());
                }
            }
            ["crash", p] => {
                self.down.insert(p.to_string());
            }
            ["machine_restart", m, ..] => {
                let m = m.trim_end_matches(':');
                self.down.extend(self.machine_of.iter().filter(|(_, x)| *x == m).map(|(p, _)| p.clone()));
            }
            ["start" | "restart", p] => {
                self.down.remove(*p);
                self.paused.remove(*p);
                self.starting.insert(p.to_string());
                self.last_start = t;
            }
            ["pause", p] => {
                self.paused.insert(p.to_string());
            }
            ["resume", p] => {
                self.paused.remove(*p);
            }
            ["partition", ..] | ["isolate", ..] | ["clog", ..] => self.cut = true,
            ["heal"] => self.cut = false,
            ["network", loss, ..] => self.lossy = *loss != "loss=0",
            ["disk_fault", "cleared", m] => {
                self.disk.remove(*m);
                if let Some(d) = self.slow.remove(*m) {
                    self.slow_until = self.slow_until.max(t + d);
                }
            }
            ["disk_fault", "slow_fsync", m, delay] => {
                self.disk.insert(m.to_string());
                self.slow.insert(m.to_string(), parse_debug_secs(delay).unwrap_or(0.0));
            }
            ["disk_fault", "write_error", m, ..] => {
                self.disk.insert(m.to_string());
            }
            _ => {}
        }
    }

    /// The tablet a trace line says lost its registration: the coordination server expired the session that
    /// held its `/nodes/<ip>:<port>`, or the tablet itself saw its session Expired.
    fn lost_registration(&self, node: &str, text: &str) -> Option<String> {
        if node.starts_with("tablet-")
            && text.starts_with("coordination session state")
            && text.ends_with("state=Expired")
        {
            return Some(node.to_string());
        }
        if node != "coord" || !text.starts_with("coordination session expired") {
            return None;
        }
        let nodes = text.split_whitespace().find_map(|w| w.strip_prefix("nodes="))?;
        let ip = nodes.split(',').find_map(|n| n.rsplit_once("/nodes/"))?.1.rsplit_once(':')?.0;
        self.ip_of.iter().find(|(p, i)| i.as_str() == ip && p.starts_with("tablet-")).map(|(p, _)| p.clone())
    }

    fn in_force(&self, t: f64) -> bool {
        !self.down.is_empty()
            || !self.paused.is_empty()
            || !self.disk.is_empty()
            || !self.starting.is_empty()
            || self.cut
            || self.lossy
            || t - self.last_start < 2.0
            || t < self.slow_until
    }
}

/// What one case did.
#[derive(Debug, Clone, Default)]
pub struct CaseOutcome {
    /// Empty when the property held.
    pub violations: Vec<String>,
    pub probes: ProbeCounts,
    pub trace_hash: u64,
    /// Simulated seconds the run took.
    pub sim_secs: f64,
    /// Step failures excused by construction, by excuse name.
    pub excused: BTreeMap<&'static str, u64>,
}

/// Runs `case` (twice when `determinism`, comparing trace hashes) with `planted` bugs switched on.
pub fn run_case(case: &FuzzCase, planted: Planted, determinism: bool) -> CaseOutcome {
    let text = case.to_toml("fuzz case");
    let scenario = match mldb_sim::scenario::parse_str(&text, "fuzz-case.toml") {
        Ok(s) => s,
        Err(e) => {
            return CaseOutcome {
                violations: vec![format!("the case rendered an invalid scenario: {e}")],
                ..Default::default()
            };
        }
    };
    let r = run::run_planted(&scenario, case.seed, planted);
    let mut violations: Vec<String> = r
        .report
        .as_ref()
        .map(|rep| rep.violations().iter().map(|v| format!("{:?} (pid {:?}): {}", v.kind, v.pid, v.why)).collect())
        .unwrap_or_default();
    let lines = r.trace.lines();
    let mut excused: BTreeMap<&'static str, u64> = BTreeMap::new();
    for f in &r.failures {
        match excuse_in(f, &lines) {
            Some(e) => *excused.entry(e.name()).or_default() += 1,
            None => violations.push(f.clone()),
        }
    }
    if determinism && violations.is_empty() {
        let again = run::run_planted(&scenario, case.seed, planted);
        if again.hash != r.hash {
            violations.push(format!(
                "nondeterministic: seed {} gave trace hashes {:016x} and {:016x}",
                case.seed, r.hash, again.hash
            ));
        }
    }
    CaseOutcome {
        violations,
        probes: ProbeCounts::of_run(&lines),
        trace_hash: r.hash,
        sim_secs: r.sim_elapsed.as_secs_f64(),
        excused,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_named_step_failures_are_excused() {
        for (text, want) in [
            ("step 3 (line 40, pause): tablet-2 is not running", Excuse::PauseNotRunning),
            (
                "step 5 (line 61, crash): Leader(PartitionRef { table: \"fuzz\", pid: 1 }): no alive leader now",
                Excuse::NoAliveReplica,
            ),
            (
                "step 6 (line 66, restart): Follower(PartitionRef { table: \"fuzz\", pid: 0 }): no alive follower now",
                Excuse::NoAliveReplica,
            ),
            ("step 2 (line 30, disk_fault): tablet-5 has no binlog file to corrupt", Excuse::NoBinlogToCorrupt),
            (
                "step 7 (line 70, disk_fault): corrupt_tail tablet-1/1_0/binlog/00000000.log: no such file or directory",
                Excuse::NoSuchSegment,
            ),
        ] {
            assert_eq!(excuse(text), Some(want), "{text}");
        }
        assert_eq!(Excuse::PauseNotRunning.name(), "pause of a process that is not running");
    }

    fn trace(lines: &[&str]) -> Vec<String> {
        lines.iter().map(|l| l.to_string()).collect()
    }

    #[test]
    fn a_recoverdata_failure_is_excused_only_while_a_fault_is_in_force() {
        let failure = "step 5 (line 47, recoverdata): fuzz pid 0 on 10.0.2.1:9527: no answer: connection refused";
        let head = [
            "[       0.000000s] nemesis: placed tablet-1 on machine-1 at 10.0.2.1",
            "[       0.000000s] nemesis: placed nameserver-1 on machine-1 at 10.0.2.2",
            "[      18.744000s] nemesis: machine_restart machine-1: killed 2 process(es), lost 0 unsynced byte(s)",
            "[      25.659000s] nemesis: start tablet-1",
            "[      25.659000s] nemesis: start nameserver-1",
            "[      25.660000s] tablet-1: tablet started endpoint=10.0.2.1:9527",
            "[      25.700000s] tablet-1: tablet registered value=startup_10.0.2.1:9527",
            "[      25.700000s] nameserver-1: nameserver started endpoint=10.0.2.2:7527",
            "[      25.710000s] nameserver-1: coordination session connected session=9 timeout_ms=2000",
        ];
        // A nameserver started but without a session yet (a cut from the coordination server) is in force.
        let mut t = trace(&head[..head.len() - 1]);
        t.extend(trace(&[
            "[      28.659000s] runner: step 4 (line 47): recoverdata",
            "[      28.700000s] runner: step 4 (line 47) failed: no nameserver is running",
        ]));
        assert_eq!(excuse_in(failure, &t), Some(Excuse::RecoverdataDuringAFault));
        // The only tablet isolated as the recoverdata starts.
        let mut t = trace(&head);
        t.extend(trace(&[
            "[      28.659000s] nemesis: isolate tablet-1",
            "[      28.659000s] runner: step 4 (line 47): recoverdata",
            "[      28.700000s] runner: step 4 (line 47) failed: fuzz pid 0 on 10.0.2.1:9527: no answer",
        ]));
        assert_eq!(excuse_in(failure, &t), Some(Excuse::RecoverdataDuringAFault));
        // A tablet still down (a crash not started again).
        let mut t = trace(&head);
        t.extend(trace(&[
            "[      27.000000s] nemesis: crash tablet-1",
            "[      28.659000s] runner: step 4 (line 47): recoverdata",
            "[      28.700000s] runner: step 4 (line 47) failed: no answer",
        ]));
        assert_eq!(excuse_in(failure, &t), Some(Excuse::RecoverdataDuringAFault));
        // Every process started 3 s before and nothing else in force: the failure is a violation.
        let mut t = trace(&head);
        t.extend(trace(&[
            "[      28.659000s] runner: step 4 (line 47): recoverdata",
            "[      28.700000s] runner: step 4 (line 47) failed: fuzz pid 0 on 10.0.2.1:9527: no answer",
        ]));
        assert_eq!(excuse_in(failure, &t), None);
        // A fault healed before the step does not count; a cut while it runs does.
        let mut t = trace(&head);
        t.extend(trace(&[
            "[      26.000000s] nemesis: clog coord -> tablet-1",
            "[      27.000000s] nemesis: heal",
            "[      28.659000s] runner: step 4 (line 47): recoverdata",
            "[      28.700000s] runner: step 4 (line 47) failed: no answer",
        ]));
        assert_eq!(excuse_in(failure, &t), None);
        t.insert(t.len() - 1, "[      28.690000s] nemesis: partition [[\"tablet-1\"], [\"coord\"]]".into());
        assert_eq!(excuse_in(failure, &t), Some(Excuse::RecoverdataDuringAFault));
        // A process started by the nemesis is in force until it is ready (a tablet registered), and the grace runs from there
        // (a boot behind a slow disk, seed 806725); a cleared slow fsync lingers for its delay.
        let booting = [
            "[       0.000000s] nemesis: placed tablet-1 on machine-1 at 10.0.2.1",
            "[      20.000000s] nemesis: disk_fault slow_fsync tablet-1 1500ms",
            "[      21.000000s] nemesis: crash tablet-1",
            "[      22.000000s] nemesis: start tablet-1",
            "[      27.300000s] nemesis: disk_fault cleared tablet-1",
            "[      28.000000s] runner: step 4 (line 47): recoverdata",
            "[      28.100000s] runner: step 4 (line 47) failed: tablets are not running",
        ];
        assert_eq!(excuse_in(failure, &trace(&booting)), Some(Excuse::RecoverdataDuringAFault));
        let mut t = trace(&booting[..5]);
        t.push("[      27.400000s] tablet-1: tablet registered value=startup_10.0.2.1:9527".into());
        t.extend(trace(&booting[5..]));
        assert_eq!(excuse_in(failure, &t), Some(Excuse::RecoverdataDuringAFault), "1.5 s of slow fsync linger");
        let mut t = trace(&booting[..5]);
        t.push("[      24.000000s] tablet-1: tablet started endpoint=10.0.2.1:9527".into());
        t.push("[      25.000000s] tablet-1: tablet registered value=startup_10.0.2.1:9527".into());
        t[4] = "[      25.300000s] nemesis: disk_fault cleared tablet-1".into();
        t.extend(trace(&booting[5..]));
        assert_eq!(excuse_in(failure, &t), None, "started, cleared and past every grace");
        // Another verb's failure in the same state is not excused by it.
        let other = "step 5 (line 47, wait_until): wait_until AllAlive: not reached within 10s";
        assert_eq!(excuse_in(other, &t), None);
    }

    #[test]
    fn a_tablet_whose_session_ended_is_in_force_until_it_registered_again() {
        let failure = "step 5 (line 47, recoverdata): recoverdata refused: these replicas' tablets are not running";
        let base = [
            "[       0.000000s] nemesis: placed tablet-1 on machine-1 at 10.0.2.1",
            "[      20.000000s] nemesis: isolate tablet-1 from coord",
            "[      21.800000s] nemesis: heal",
        ];
        let end = [
            "[      21.900000s] runner: step 4 (line 47): recoverdata",
            "[      21.990000s] runner: step 4 (line 47) failed: tablets are not running",
        ];
        let with = |mid: &[&str]| trace(&base.iter().chain(mid).chain(&end).copied().collect::<Vec<_>>());
        assert_eq!(excuse_in(failure, &with(&[])), None, "healed, and the session lived");
        // The server expired the session that held its node just after the heal.
        let expired =
            "[      21.850000s] coord: coordination session expired session=7 nodes=/openmldb/nodes/10.0.2.1:9527";
        assert_eq!(excuse_in(failure, &with(&[expired])), Some(Excuse::RecoverdataDuringAFault));
        // Or the tablet saw it Expired; another process's expiry does not count.
        let saw = "[      21.850000s] tablet-1: coordination session state session=7 state=Expired";
        assert_eq!(excuse_in(failure, &with(&[saw])), Some(Excuse::RecoverdataDuringAFault));
        let ns = "[      21.850000s] coord: coordination session expired session=8 nodes=/openmldb/leader/lock_request0000000001";
        assert_eq!(excuse_in(failure, &with(&[ns])), None);
        // Registered again, and past the grace: no excuse.
        let again = "[      21.860000s] tablet-1: tablet registered value=10.0.2.1:9527";
        let late = trace(&[
            base[0],
            base[1],
            base[2],
            expired,
            again,
            "[      25.900000s] runner: step 4 (line 47): recoverdata",
            "[      25.990000s] runner: step 4 (line 47) failed: tablets are not running",
        ]);
        assert_eq!(excuse_in(failure, &late), None);
    }

    #[test]
    fn durations_parse_as_the_nemesis_prints_them() {
        assert_eq!(parse_debug_secs("1s"), Some(1.0));
        assert_eq!(parse_debug_secs("250ms"), Some(0.25));
        assert_eq!(parse_debug_secs("1.5s"), Some(1.5));
        assert!((parse_debug_secs("800µs").unwrap() - 0.0008).abs() < 1e-12);
        assert_eq!(parse_debug_secs("soon"), None);
    }

    #[test]
    fn every_other_step_failure_is_a_violation() {
        for text in [
            // The operator's tools failing are the system's failures.
            "step 9 (line 80, recoverdata): tablet-2 pid 0: recovertable failed",
            "step 1 (line 30, ns_client): `submitjob import imports gen:200` failed but expect_ok = true:\nno taskmanager",
            "step 4 (line 50, wait_until): wait_until AllAlive: not reached within 10s",
            // An excuse's text under another verb, or in an output, is not excused.
            "step 3 (line 40, recoverdata): tablet-2 is not running",
            "step 3 (line 40, ns_client): `showtable` output contains \"x\":\ntablet-2 is not running",
            // The metadata not readable, a target's process unknown: not by construction.
            "step 5 (line 61, crash): cannot read the tables' metadata: session expired",
            "step 5 (line 61, crash): no process serves 10.0.0.9:9527",
            // Not a step at all.
            "setup: create table fuzz: no tablet",
            "the steps ran until 100s, past the scenario's duration 90s",
        ] {
            assert_eq!(excuse(text), None, "{text}");
        }
    }
}
