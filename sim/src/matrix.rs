//! The availability matrix (DESIGN 8, `mldb-sim table`): every partition of every seed of the table's scenarios,
//! sorted into the row of the seed's table its faults put it in, aggregated, and printed beside what the seed
//! documents. Pure: it reads reports, it runs nothing.

use std::collections::BTreeMap;
use std::time::Duration;

use comfy_table::{ContentArrangement, Table, presets};

use crate::check::{Comparison, Report, Window, WindowVerdict};

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
    /// Per closed unavailability window: from the fault that opened it to the next acknowledged write.
    pub failovers: Vec<Duration>,
    /// The longest unavailability window (first failed write to the next acknowledged one).
    pub longest_window: Option<Duration>,
    /// Windows past their deadline.
    pub windows_too_long: usize,
    /// The takeover that lost the most: `(lost, un-replicated suffix)`.
    pub largest_failover: Option<(usize, Option<u64>)>,
    pub reads_checked: usize,
    pub reads_bad: usize,
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
        self.worse == 0 && self.windows_too_long == 0 && self.reads_bad == 0
    }
}

/// The matrix being filled.
#[derive(Debug, Default)]
pub struct Matrix {
    rows: BTreeMap<(usize, usize, bool, bool), Row>,
}

impl Matrix {
    /// Adds every partition of one seed's report.
    pub fn add(&mut self, report: &Report) {
        for t in &report.tables {
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
                row.failovers.extend(a.windows.iter().filter_map(Window::failover));
                row.longest_window = row.longest_window.max(a.windows.iter().filter_map(Window::length).max());
                row.windows_too_long += a.windows.iter().filter(|w| w.verdict == WindowVerdict::TooLong).count();
                let pid = a.exposure.pid;
                for f in t.bound.per_failover.iter().filter(|f| f.pid == pid) {
                    if row.largest_failover.is_none_or(|(lost, _)| f.lost > lost) {
                        row.largest_failover = Some((f.lost, f.suffix));
                    }
                }
                let (checked, bad) = t.reads.per_pid.get(&pid).copied().unwrap_or_default();
                row.reads_checked += checked;
                row.reads_bad += bad;
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
            "failover p50 / p99 / max",
            "longest outage",
            "lost per failover / suffix",
            "reads checked / bad",
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
            let failover = match percentiles(&r.failovers) {
                Some((p50, p99, max)) => format!("{p50:.1}s / {p99:.1}s / {max:.1}s"),
                None => "-".to_string(),
            };
            let longest = match r.longest_window {
                Some(w) if r.windows_too_long > 0 => {
                    format!("{:.1}s ({} too long)", w.as_secs_f64(), r.windows_too_long)
                }
                Some(w) => format!("{:.1}s", w.as_secs_f64()),
                None => "-".to_string(),
            };
            let per_failover = match r.largest_failover {
                Some((lost, Some(suffix))) => format!("{lost} / {suffix}"),
                Some((lost, None)) => format!("{lost} / ?"),
                None => "-".to_string(),
            };
            let reads =
                if r.reads_checked == 0 { "-".to_string() } else { format!("{} / {}", r.reads_checked, r.reads_bad) };
            let verdict = if r.worse > 0 || r.windows_too_long > 0 || r.reads_bad > 0 {
                format!("FAIL ({} worse, {} too long, {} bad reads)", r.worse, r.windows_too_long, r.reads_bad)
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
                failover,
                longest,
                per_failover,
                reads,
                verdict,
            ]);
        }
        table.to_string()
    }
}

/// p50, p99 and the maximum of `v` (nearest rank), or `None` when it is empty.
pub fn percentiles(v: &[Duration]) -> Option<(f64, f64, f64)> {
    if v.is_empty() {
        return None;
    }
    let mut v = v.to_vec();
    v.sort();
    let rank = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1].as_secs_f64();
    Some((rank(0.50), rank(0.99), v[v.len() - 1].as_secs_f64()))
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
