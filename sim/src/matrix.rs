//! The availability matrix (DESIGN 8, `mldb-sim table`): every partition of every seed of the table's scenarios,
//! sorted into the row of the seed's table its faults put it in, aggregated, and printed beside what the seed
//! documents. Pure: it reads reports, it runs nothing.

use std::collections::BTreeMap;
use std::time::Duration;

use comfy_table::{ContentArrangement, Table, presets};

use crate::check::{Comparison, Report, TableData, WriteOutcome};

/// One row of the matrix: a documented cell and what every partition that fell in it showed.
#[derive(Debug, Clone, Default)]
pub struct Row {
    pub replicas: usize,
    pub offline: usize,
    pub leader_among: bool,
    pub machine_restart: bool,
    pub documented: [String; 3],
    /// Partition-seeds observed in this row.
    pub samples: usize,
    pub service_ok: usize,
    pub lost_within: usize,
    pub lost_forbidden: usize,
    pub largest_loss: usize,
    pub auto_recovered: usize,
    /// Crash → the partition's first acknowledged write by another leader.
    pub writable_again: Vec<Duration>,
    pub worse: usize,
    pub better: usize,
}

impl Row {
    fn key(&self) -> (usize, usize, bool, bool) {
        (self.replicas, self.offline, self.leader_among, self.machine_restart)
    }

    pub fn label(&self) -> String {
        let mut s = format!("{} replica(s): {} offline", self.replicas, self.offline);
        if self.offline > 0 {
            s.push_str(if self.leader_among { ", leader among them" } else { ", followers only" });
        }
        if self.machine_restart {
            s.push_str(", machine restart");
        }
        s
    }

    pub fn passed(&self) -> bool {
        self.worse == 0
    }
}

/// The matrix being filled.
#[derive(Debug, Default)]
pub struct Matrix {
    rows: BTreeMap<(usize, usize, bool, bool), Row>,
}

/// When each failover's partition took a write again: the first ack after the leader went down, by another
/// leader.
fn writable_again(data: &TableData, pid: u32, down_at: Duration, old: &str) -> Option<Duration> {
    data.writes
        .iter()
        .filter_map(|w| match &w.outcome {
            WriteOutcome::Acked { pid: p, endpoint, at, .. } if *p == pid && *at >= down_at && endpoint != old => {
                Some(*at - down_at)
            }
            _ => None,
        })
        .min()
}

impl Matrix {
    /// Adds every partition of one seed's report; `data` is what the report was built from (the writes give the
    /// time a partition became writable again).
    pub fn add(&mut self, report: &Report, data: &[TableData]) {
        for t in &report.tables {
            let table_data = data.iter().find(|d| d.name == t.name);
            for a in &t.availability {
                let d = &a.verdict.documented;
                if d.offline == 0 {
                    continue;
                }
                let key = (d.replicas, d.offline, d.leader_among, d.machine_restart);
                let row = self.rows.entry(key).or_insert_with(|| Row {
                    replicas: d.replicas,
                    offline: d.offline,
                    leader_among: d.leader_among,
                    machine_restart: d.machine_restart,
                    documented: [d.service.mark().into(), d.loss.mark().into(), d.auto_recovery.mark().into()],
                    ..Row::default()
                });
                let o = &a.verdict.observed;
                row.samples += 1;
                row.service_ok += usize::from(o.service_ok);
                row.lost_within += o.lost_acked;
                row.lost_forbidden += o.lost_forbidden;
                row.largest_loss = row.largest_loss.max(o.lost_acked + o.lost_forbidden);
                row.auto_recovered += usize::from(o.auto_recovered);
                if let Some(data) = table_data {
                    for f in &a.failovers {
                        if let Some(w) = writable_again(data, f.pid, f.down_at, &f.old_leader) {
                            row.writable_again.push(w);
                        }
                    }
                }
                row.worse += a.verdict.cells.iter().filter(|c| c.comparison == Comparison::Worse).count();
                row.better += a.verdict.cells.iter().filter(|c| c.comparison == Comparison::Better).count();
            }
        }
    }

    pub fn rows(&self) -> impl Iterator<Item = &Row> {
        self.rows.values()
    }

    pub fn passed(&self) -> bool {
        self.rows.values().all(Row::passed)
    }

    /// The matrix as text: per row, the documented cell beside the observed one.
    pub fn render(&self) -> String {
        let mut table = Table::new();
        table.load_preset(presets::ASCII_MARKDOWN).set_content_arrangement(ContentArrangement::Disabled);
        table.set_header(vec![
            "shard",
            "seeds × partitions",
            "service (doc / seen)",
            "data integrity (doc / seen)",
            "auto recovery (doc / seen)",
            "writable again after",
            "verdict",
        ]);
        for r in self.rows.values() {
            let n = r.samples;
            let service = format!(
                "{} / {}",
                r.documented[0],
                if r.service_ok == n { "✓".into() } else { format!("✘ ({} of {n} ✓)", r.service_ok) }
            );
            let loss = match (r.lost_within, r.lost_forbidden) {
                (0, 0) => "none lost".to_string(),
                (w, 0) => format!("{w} lost in the un-replicated suffix (largest {})", r.largest_loss),
                (w, f) => format!("{f} lost OUTSIDE the bound, {w} within"),
            };
            let recovery = format!(
                "{} / {}",
                r.documented[2],
                if r.auto_recovered == n { "✓".to_string() } else { format!("{} of {n}", r.auto_recovered) }
            );
            let writable = if r.writable_again.is_empty() {
                "-".to_string()
            } else {
                let mut v = r.writable_again.clone();
                v.sort();
                format!("median {:.1}s, max {:.1}s", v[v.len() / 2].as_secs_f64(), v[v.len() - 1].as_secs_f64())
            };
            let verdict = if r.worse > 0 {
                format!("FAIL ({} worse)", r.worse)
            } else if r.better > 0 {
                "pass (better)".to_string()
            } else {
                "pass".to_string()
            };
            table.add_row(vec![
                r.label(),
                n.to_string(),
                service,
                format!("{} / {loss}", r.documented[1]),
                recovery,
                writable,
                verdict,
            ]);
        }
        table.to_string()
    }
}

/// The scenarios of the availability table, compiled in so `table` runs from anywhere.
pub const TABLE_SCENARIOS: &[(&str, &str)] = &[
    ("row1_follower_crash.toml", include_str!("../../scenarios/table/row1_follower_crash.toml")),
    ("row1_leader_crash.toml", include_str!("../../scenarios/table/row1_leader_crash.toml")),
    ("row2_followers_crash.toml", include_str!("../../scenarios/table/row2_followers_crash.toml")),
    ("row2_leader_and_follower_crash.toml", include_str!("../../scenarios/table/row2_leader_and_follower_crash.toml")),
    ("row3_all_crash.toml", include_str!("../../scenarios/table/row3_all_crash.toml")),
    ("one_replica_one_tablet.toml", include_str!("../../scenarios/table/one_replica_one_tablet.toml")),
    ("two_replicas_two_tablets.toml", include_str!("../../scenarios/table/two_replicas_two_tablets.toml")),
    ("row1_machine_restart.toml", include_str!("../../scenarios/table/row1_machine_restart.toml")),
];

/// The seed's table, as documented, for printing above the observed matrix.
pub const SEED_TABLE: &str = "\
| Offline tablets of the shard | Service | Data integrity                                                      | Auto recovery (non machine restart) |
|------------------------------|---------|---------------------------------------------------------------------|-------------------------------------|
| 1                            | ✓       | follower: maintained; leader with writes: small loss may occur      | ✓                                   |
| 2                            | ✓       | followers: maintained; leader among them with writes: small loss    | ✘                                   |
| 3                            | ✘       | ✘                                                                   | ✘                                   |
| 1 replica, 1 tablet          | no high availability mechanism                                                              |
| 2 replicas, 2 tablets        | 1 offline: ✓, small loss, auto recovery ✓; 2 offline: ✘                                      |";

impl Matrix {
    /// Row keys, for tests.
    pub fn keys(&self) -> Vec<(usize, usize, bool, bool)> {
        self.rows.values().map(Row::key).collect()
    }
}
