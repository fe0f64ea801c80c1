//! What the trace says of the replicas, in the checkers' terms (DESIGN 8: judge from evidence the nameserver does
//! not write):
//!
//! - [`positions`]: every replica's log position over time, from its tablet's `replica log` lines
//!   (`[t] tablet-2: replica log tid=1 pid=0 leader=false term=3 log_term=3 offset=812 why=append`);
//! - [`expiries`]: the ends of tablets' coordination sessions, from the coordination server's own line, which
//!   names the ephemeral nodes the expiry deleted (`/…/nodes/<endpoint>` is a tablet's registration);
//! - [`actives`]: which nameserver was active, from the nameservers' `became active` / `stepped down` lines;
//! - [`written_values`]: the values written for each key a reader read.
//!
//! Times are scenario times: lines from the setup, before time zero, count as time zero.

use std::collections::BTreeMap;
use std::time::Duration;

use openmldb::proto::nameserver::TableInfo;

use super::workload;
use crate::check::{Position, ReadRecord, SessionExpiry, WriteRecord};

/// `(scenario time, node, event)` of a trace line `[   12.345678s] node: event`.
fn split(line: &str, zero: Duration) -> Option<(Duration, &str, &str)> {
    let (time, rest) = line.strip_prefix('[')?.split_once("s] ")?;
    let at = Duration::try_from_secs_f64(time.trim().parse::<f64>().ok()?).ok()?;
    let (node, event) = rest.split_once(": ")?;
    Some((at.saturating_sub(zero), node, event))
}

/// The value of field `name` in an event's `k=v` tokens.
fn field<'a>(event: &'a str, name: &str) -> Option<&'a str> {
    event.split_whitespace().find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
}

/// Every replica's positions, by table name, in time order. A line whose tid names no table of `tables` (a table
/// dropped before the end and not in the metadata any more) is skipped.
pub fn positions(
    lines: &[String],
    zero: Duration,
    endpoints: &BTreeMap<String, String>,
    tables: &[TableInfo],
) -> BTreeMap<String, Vec<Position>> {
    let mut out: BTreeMap<String, Vec<Position>> = BTreeMap::new();
    for line in lines.iter().filter(|l| l.contains(": replica log ")) {
        let parsed = (|| {
            let (at, node, event) = split(line, zero)?;
            let event = event.strip_prefix("replica log ")?;
            let num = |name: &str| field(event, name)?.parse::<u64>().ok();
            let tid = u32::try_from(num("tid")?).ok()?;
            let why = field(event, "why")?;
            let table = tables.iter().find(|t| t.tid == tid)?.name.clone();
            let position = Position {
                pid: u32::try_from(num("pid")?).ok()?,
                endpoint: endpoints.get(node)?.clone(),
                at,
                held: !matches!(why, "drop" | "unload"),
                leader: field(event, "leader")? == "true",
                term: num("term")?,
                log_term: num("log_term")?,
                offset: num("offset")?,
            };
            Some((table, position))
        })();
        if let Some((table, p)) = parsed {
            let list = out.entry(table).or_default();
            if line.ends_with("why=rebuild") {
                // A rebuild replaces the log with the leader's image: whatever the replica held before is gone,
                // as after a drop, and it holds the image from now on.
                list.push(Position { held: false, ..p.clone() });
            }
            list.push(p);
        }
    }
    out
}

/// Every expiry of a tablet's session on the coordination server, in time order.
pub fn expiries(lines: &[String], zero: Duration) -> Vec<SessionExpiry> {
    let mut out = Vec::new();
    for line in lines.iter().filter(|l| l.contains(": coordination session expired ")) {
        let Some((at, _, event)) = split(line, zero) else { continue };
        let Some(nodes) = field(event, "nodes") else { continue };
        for path in nodes.split(',') {
            if let Some((_, endpoint)) = path.rsplit_once("/nodes/")
                && !endpoint.is_empty()
            {
                out.push(SessionExpiry { endpoint: endpoint.to_string(), at });
            }
        }
    }
    out
}

/// The active nameserver's endpoint from each change on, in time order.
pub fn actives(
    lines: &[String],
    zero: Duration,
    endpoints: &BTreeMap<String, String>,
) -> Vec<(Duration, Option<String>)> {
    let mut out: Vec<(Duration, Option<String>)> = Vec::new();
    let mut active: Option<String> = None;
    for line in
        lines.iter().filter(|l| l.contains(": nameserver became active") || l.contains(": nameserver stepped down"))
    {
        let Some((at, node, event)) = split(line, zero) else { continue };
        let Some(endpoint) = endpoints.get(node) else { continue };
        if event.starts_with("nameserver became active") {
            active = Some(endpoint.clone());
        } else if active.as_ref() == Some(endpoint) {
            active = None;
        } else {
            continue;
        }
        out.push((at, active.clone()));
    }
    out
}

/// The values written for each key `reads` read that a writer of `writes` attempted.
pub fn written_values(reads: &[ReadRecord], writes: &[WriteRecord]) -> BTreeMap<String, Vec<String>> {
    let by_key: BTreeMap<&str, &WriteRecord> = writes.iter().map(|w| (w.key.as_str(), w)).collect();
    let mut out = BTreeMap::new();
    for r in reads {
        if out.contains_key(&r.key) {
            continue;
        }
        let Some(w) = by_key.get(r.key.as_str()) else { continue };
        let writer = r.key.strip_prefix('w').and_then(|k| k.split_once('-')).and_then(|(i, _)| i.parse().ok());
        if let Some(writer) = writer {
            out.insert(r.key.clone(), workload::row(writer, w.row).values);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::format_line;

    fn eps() -> BTreeMap<String, String> {
        [("tablet-1", "10.0.0.1:9527"), ("nameserver-1", "10.0.0.1:7527"), ("nameserver-2", "10.0.0.2:7527")]
            .into_iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn positions_expiries_and_actives_are_read_from_their_lines() {
        let ms = Duration::from_millis;
        let lines = vec![
            format_line(
                ms(500),
                "tablet-1",
                "replica log tid=1 pid=0 leader=true term=1 log_term=0 offset=0 why=create",
            ),
            format_line(
                ms(1500),
                "tablet-1",
                "replica log tid=1 pid=0 leader=false term=2 log_term=1 offset=7 why=role",
            ),
            format_line(
                ms(1600),
                "tablet-1",
                "replica log tid=9 pid=0 leader=false term=2 log_term=1 offset=7 why=role",
            ),
            format_line(
                ms(1700),
                "tablet-1",
                "replica log tid=1 pid=0 leader=false term=2 log_term=1 offset=7 why=drop",
            ),
            format_line(
                ms(2000),
                "coord",
                "coordination session expired session=5 nodes=/openmldb/nodes/10.0.0.1:9527",
            ),
            format_line(ms(2100), "coord", "coordination session expired session=6 nodes="),
            format_line(ms(900), "nameserver-1", "nameserver became active"),
            format_line(ms(2200), "nameserver-2", "nameserver stepped down"),
            format_line(ms(2300), "nameserver-1", "nameserver stepped down"),
            format_line(ms(2400), "nameserver-2", "nameserver became active"),
        ];
        let tables = vec![TableInfo { name: "flow".into(), tid: 1, ..Default::default() }];
        let p = positions(&lines, ms(1000), &eps(), &tables);
        let flow = &p["flow"];
        assert_eq!(flow.len(), 3, "tid 9 names no table");
        assert_eq!((flow[0].at, flow[0].leader, flow[0].held), (Duration::ZERO, true, true));
        assert_eq!((flow[1].at, flow[1].term, flow[1].log_term, flow[1].offset), (ms(500), 2, 1, 7));
        assert!(!flow[2].held);
        let e = expiries(&lines, ms(1000));
        assert_eq!(e, vec![SessionExpiry { endpoint: "10.0.0.1:9527".into(), at: ms(1000) }]);
        let a = actives(&lines, ms(0), &eps());
        assert_eq!(
            a,
            vec![
                (ms(900), Some("10.0.0.1:7527".to_string())),
                (ms(2300), None),
                (ms(2400), Some("10.0.0.2:7527".to_string())),
            ]
        );
    }
}
