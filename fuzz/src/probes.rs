//! Coverage probes: which failover paths a fuzz run exercised, counted from the trace lines of its runs (the
//! system logs each path at INFO or above, so the probes need no hooks in the code under test).

use std::collections::BTreeMap;

/// A probe: its name and the texts a trace line must all contain to count.
pub const PROBES: &[(&str, &[&str])] = &[
    ("op kChangeLeaderOP", &["op finished", "op=kChangeLeaderOP"]),
    ("op kOfflineReplicaOP", &["op finished", "op=kOfflineReplicaOP"]),
    ("op kRecoverTableOP", &["op finished", "op=kRecoverTableOP"]),
    ("op kReAddReplicaOP (full)", &["op finished", "op=kReAddReplicaOP"]),
    ("op kReAddReplicaNoSendOP", &["op finished", "op=kReAddReplicaNoSendOP"]),
    ("op kReAddReplicaWithDropOP", &["op finished", "op=kReAddReplicaWithDropOP"]),
    ("op kReAddReplicaSimplifyOP", &["op finished", "op=kReAddReplicaSimplifyOP"]),
    ("op kReLoadTableOP", &["op finished", "op=kReLoadTableOP"]),
    ("op kUpdatePartitionStatusOP", &["op finished", "op=kUpdatePartitionStatusOP"]),
    ("op failed", &["op finished", "status=kFailed"]),
    ("tablet failed over", &["failing over a tablet"]),
    ("returning tablet recovered", &["recovering a returning tablet"]),
    ("back within the grace period", &["tablet is back within the grace period"]),
    ("nameserver election", &["nameserver became active"]),
    ("op resumed by a new nameserver", &["resumed task found on its tablet"]),
    ("leader self-fencing", &["leader fenced until the nameserver confirms it"]),
    ("torn binlog tail cut", &["binlog recovery cut a damaged final record"]),
    ("snapshot made", &["snapshot made"]),
    ("snapshot sent", &["snapshot sent"]),
    ("broken binlog: partition unloaded", &["binlog broken: partition unloaded"]),
    ("reload refused: a longer log elsewhere", &["op finished", "holds a longer log"]),
    ("fenced leader confirmed", &["leader confirmed"]),
    ("leader on its own demoted at a probe", &["leads on its own: demoted before the probe"]),
    ("stale task refused", &["stale task refused"]),
    ("dead replica recovered by the periodic pass", &["a dead replica on a healthy tablet is recovered"]),
    ("tablet restarted unseen", &["it restarted unseen"]),
    ("taskmanager election", &["taskmanager became active"]),
    ("import resumed after takeover", &["resuming job"]),
    ("import rows in doubt written again", &["rows in doubt written again"]),
    ("duplicate put dropped", &["duplicate put dropped"]),
    ("job failed", &["job failed"]),
];

/// Hits per probe, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProbeCounts {
    /// Trace lines that matched, summed over runs.
    pub hits: BTreeMap<&'static str, u64>,
    /// Runs in which the probe matched at least once.
    pub runs: BTreeMap<&'static str, u64>,
}

impl ProbeCounts {
    /// Counts one run's trace lines.
    pub fn of_run(lines: &[String]) -> ProbeCounts {
        let mut c = ProbeCounts::default();
        for (name, needles) in PROBES {
            let n = lines.iter().filter(|l| needles.iter().all(|needle| l.contains(needle))).count() as u64;
            c.hits.insert(name, n);
            c.runs.insert(name, u64::from(n > 0));
        }
        c
    }

    pub fn add(&mut self, other: &ProbeCounts) {
        for (k, v) in &other.hits {
            *self.hits.entry(k).or_default() += v;
        }
        for (k, v) in &other.runs {
            *self.runs.entry(k).or_default() += v;
        }
    }

    /// The probes as a table: name, runs that hit it, lines.
    pub fn render(&self) -> String {
        let mut t = comfy_table::Table::new();
        t.load_preset(comfy_table::presets::ASCII_MARKDOWN);
        t.set_header(["probe", "runs", "hits"]);
        for (name, _) in PROBES {
            t.add_row([
                name.to_string(),
                self.runs.get(name).copied().unwrap_or(0).to_string(),
                self.hits.get(name).copied().unwrap_or(0).to_string(),
            ]);
        }
        t.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_count_lines_with_every_needle() {
        let lines = vec![
            "[1.0s] nameserver-1: op finished op_id=3 op=kChangeLeaderOP status=kDone".to_string(),
            "[2.0s] nameserver-1: op started op_id=4 op=kChangeLeaderOP".to_string(),
            "[3.0s] tablet-1: binlog recovery cut a damaged final record".to_string(),
        ];
        let c = ProbeCounts::of_run(&lines);
        assert_eq!(c.hits["op kChangeLeaderOP"], 1);
        assert_eq!(c.hits["torn binlog tail cut"], 1);
        assert_eq!(c.hits["op kRecoverTableOP"], 0);
        let mut total = ProbeCounts::default();
        total.add(&c);
        total.add(&c);
        assert_eq!(total.runs["op kChangeLeaderOP"], 2);
        assert!(total.render().contains("| op kChangeLeaderOP"));
    }
}
