//! The tablet client (`openmldb --role=client --endpoint=<tablet>`, reference 8): one command line in, the text
//! OpenMLDB prints out.

use super::{CommandHelp, fail, help_text, table, words};
use crate::proto::tablet as pb;
use crate::rpc::RpcClient;
use crate::tablet::rpc as m;

/// Every command, with its usage, as `help` prints them.
pub const COMMANDS: &[CommandHelp] = &[
    CommandHelp {
        name: "loadtable",
        usage: "loadtable table_name tid pid ttl segment_cnt [is_leader]",
        about: "load a partition from its snapshot and binlog (is_leader: true|false, default true)",
    },
    CommandHelp {
        name: "gettablestatus",
        usage: "gettablestatus [tid pid]",
        about: "show the status of one or every partition",
    },
    CommandHelp { name: "makesnapshot", usage: "makesnapshot tid pid", about: "make a snapshot of a partition" },
    CommandHelp { name: "pausesnapshot", usage: "pausesnapshot tid pid", about: "pause snapshots (kSnapshotPaused)" },
    CommandHelp {
        name: "recoversnapshot",
        usage: "recoversnapshot tid pid",
        about: "resume snapshots (back to kTableNormal)",
    },
    CommandHelp {
        name: "sendsnapshot",
        usage: "sendsnapshot tid pid endpoint",
        about: "send a paused leader's snapshot to another tablet",
    },
    CommandHelp {
        name: "changerole",
        usage: "changerole tid pid leader|follower [term]",
        about: "make a partition leader (in term) or follower",
    },
    CommandHelp { name: "getfollower", usage: "getfollower tid pid", about: "show a leader's followers and offsets" },
    CommandHelp { name: "drop", usage: "drop tid pid", about: "drop a partition (its data goes to the recycle bin)" },
    CommandHelp { name: "help", usage: "help", about: "show this list" },
];

fn usage(name: &str) -> String {
    super::usage(COMMANDS, name)
}

fn num<T: std::str::FromStr>(name: &str, what: &str, v: &str) -> Result<T, String> {
    v.parse().map_err(|_| format!("Invalid {what} {v:?}. {}", usage(name)))
}

/// Runs one command line; `Ok` is what to print on success, `Err` what to print on failure.
pub async fn execute(client: &RpcClient, line: &str) -> Result<String, String> {
    let w = words(line);
    let Some(&cmd) = w.first() else { return Ok(String::new()) };
    let args = &w[1..];
    let tid_pid = |name: &str| -> Result<(u32, u32), String> {
        if args.len() != 2 {
            return Err(usage(name));
        }
        Ok((num(name, "tid", args[0])?, num(name, "pid", args[1])?))
    };
    match cmd {
        "help" => Ok(help_text(COMMANDS)),
        "loadtable" => {
            if !(5..=6).contains(&args.len()) {
                return Err(usage(cmd));
            }
            let tid = num(cmd, "tid", args[1])?;
            let pid = num(cmd, "pid", args[2])?;
            let _ttl: u64 = num(cmd, "ttl", args[3])?; // accepted and ignored, as in OpenMLDB
            let seg_cnt = num(cmd, "segment_cnt", args[4])?;
            let leader = match args.get(5).copied() {
                None | Some("true") => true,
                Some("false") => false,
                Some(other) => return Err(format!("Invalid is_leader {other:?}. {}", usage(cmd))),
            };
            let mode = if leader { pb::TableMode::Leader } else { pb::TableMode::Follower };
            let meta =
                pb::TableMeta { name: args[0].to_string(), tid, pid, seg_cnt, mode: mode as i32, ..Default::default() };
            let req = pb::LoadTableRequest { meta: Some(meta), task_info: None };
            client.call(m::LoadTable, req).await.map_err(|e| fail("load table", e))?;
            Ok("LoadTable ok".into())
        }
        "gettablestatus" => {
            let req = match args.len() {
                0 => pb::GetTableStatusRequest { tid: 0, pid: 0, all: true },
                2 => {
                    let (tid, pid) = tid_pid(cmd)?;
                    pb::GetTableStatusRequest { tid, pid, all: false }
                }
                _ => return Err(usage(cmd)),
            };
            let resp = client.call(m::GetTableStatus, req).await.map_err(|e| fail("get table status", e))?;
            Ok(render_status(&resp.all_table_status))
        }
        "makesnapshot" => {
            let (tid, pid) = tid_pid(cmd)?;
            let req = pb::MakeSnapshotRequest { tid, pid, offset: 0, task_info: None };
            client.call(m::MakeSnapshot, req).await.map_err(|e| fail("make snapshot", e))?;
            Ok("MakeSnapshot ok".into())
        }
        "pausesnapshot" | "recoversnapshot" | "drop" => {
            let (tid, pid) = tid_pid(cmd)?;
            let req = pb::TablePidRequest { tid, pid, task_info: None };
            let (r, what, ok) = match cmd {
                "pausesnapshot" => (client.call(m::PauseSnapshot, req).await, "pause snapshot", "PauseSnapshot ok"),
                "recoversnapshot" => {
                    (client.call(m::RecoverSnapshot, req).await, "recover snapshot", "RecoverSnapshot ok")
                }
                _ => (client.call(m::DropTable, req).await, "drop table", "DropTable ok"),
            };
            r.map_err(|e| fail(what, e))?;
            Ok(ok.into())
        }
        "sendsnapshot" => {
            if args.len() != 3 {
                return Err(usage(cmd));
            }
            let req = pb::SendSnapshotRequest {
                tid: num(cmd, "tid", args[0])?,
                pid: num(cmd, "pid", args[1])?,
                endpoint: args[2].to_string(),
                task_info: None,
            };
            client.call(m::SendSnapshot, req).await.map_err(|e| fail("send snapshot", e))?;
            Ok("SendSnapshot ok".into())
        }
        "changerole" => {
            if !(3..=4).contains(&args.len()) {
                return Err(usage(cmd));
            }
            let tid = num(cmd, "tid", args[0])?;
            let pid = num(cmd, "pid", args[1])?;
            let mode = match args[2] {
                "leader" => pb::TableMode::Leader,
                "follower" => pb::TableMode::Follower,
                other => return Err(format!("Invalid role {other:?}. {}", usage(cmd))),
            };
            let term = match args.get(3) {
                Some(t) => num(cmd, "term", t)?,
                None => {
                    let s = client
                        .call(m::GetTermPair, pb::TablePidRequest { tid, pid, task_info: None })
                        .await
                        .map_err(|e| fail("change role", e))?;
                    s.term
                }
            };
            let req = pb::ChangeRoleRequest { tid, pid, mode: mode as i32, term, replicas: vec![] };
            client.call(m::ChangeRole, req).await.map_err(|e| fail("change role", e))?;
            Ok("ChangeRole ok".into())
        }
        "getfollower" => {
            let (tid, pid) = tid_pid(cmd)?;
            let r = client
                .call(m::GetFollower, pb::TablePidRequest { tid, pid, task_info: None })
                .await
                .map_err(|e| fail("get follower", e))?;
            let rows: Vec<Vec<String>> = r
                .followers
                .iter()
                .zip(&r.follower_offsets)
                .enumerate()
                .map(|(i, (f, o))| {
                    vec![
                        i.to_string(),
                        tid.to_string(),
                        pid.to_string(),
                        r.leader_offset.to_string(),
                        f.clone(),
                        o.to_string(),
                    ]
                })
                .collect();
            Ok(table::render(&["#", "tid", "pid", "leader_offset", "follower", "offset"], &rows))
        }
        other => Err(format!("unsupported cmd {other:?}; type help to list the commands")),
    }
}

fn state_name(s: i32) -> &'static str {
    match pb::TableState::try_from(s) {
        Ok(pb::TableState::Normal) => "kTableNormal",
        Ok(pb::TableState::Loading) => "kTableLoading",
        Ok(pb::TableState::MakingSnapshot) => "kMakingSnapshot",
        Ok(pb::TableState::SnapshotPaused) => "kSnapshotPaused",
        _ => "kTableUndefined",
    }
}

fn mode_name(m: i32) -> &'static str {
    match pb::TableMode::try_from(m) {
        Ok(pb::TableMode::Leader) => "kTableLeader",
        _ => "kTableFollower",
    }
}

/// `memused` as OpenMLDB prints sizes: bytes with a K/M/G suffix.
pub fn human_bytes(b: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)];
    for (unit, size) in UNITS {
        if b >= size {
            return format!("{:.3}{unit}", b as f64 / size as f64);
        }
    }
    format!("{b}.000")
}

/// gettablestatus: `tid pid offset mode state enable_expire ttl ttl_offset memused compress_type skiplist_height`.
pub fn render_status(all: &[pb::TableStatus]) -> String {
    let rows: Vec<Vec<String>> = all
        .iter()
        .map(|s| {
            vec![
                s.tid.to_string(),
                s.pid.to_string(),
                s.offset.to_string(),
                mode_name(s.mode).to_string(),
                state_name(s.state).to_string(),
                s.is_expire.to_string(),
                "0min".to_string(),
                format!("{}s", s.time_offset),
                human_bytes(s.memused),
                "kNoCompress".to_string(),
                "0".to_string(),
            ]
        })
        .collect();
    table::render(
        &[
            "tid",
            "pid",
            "offset",
            "mode",
            "state",
            "enable_expire",
            "ttl",
            "ttl_offset",
            "memused",
            "compress_type",
            "skiplist_height",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_lists_every_command_with_its_usage() {
        let h = help_text(COMMANDS);
        for c in COMMANDS {
            assert!(h.contains(c.usage), "{} missing from help", c.name);
        }
    }

    #[test]
    fn status_rows_use_openmldb_names() {
        let s = pb::TableStatus {
            tid: 1,
            pid: 2,
            offset: 7,
            mode: pb::TableMode::Leader as i32,
            state: pb::TableState::Loading as i32,
            memused: 2048,
            ..Default::default()
        };
        let out = render_status(&[s]);
        assert!(out.lines().next().unwrap().contains("skiplist_height"));
        assert!(out.contains("kTableLeader") && out.contains("kTableLoading") && out.contains("2.000K"), "{out}");
    }
}
