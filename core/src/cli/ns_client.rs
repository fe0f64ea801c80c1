//! The nameserver client (`openmldb --zk_cluster=.. --zk_root_path=.. --role=ns_client`, reference 7 and the
//! seed's transcripts): finds the active nameserver through the coordination service and prints what OpenMLDB
//! prints.

use std::sync::Arc;
use std::time::Duration;

use super::data;
use super::tablet_client::human_bytes;
use super::{CommandHelp, fail, help_text, table, words};
use crate::client::{RoutingClient, RoutingConfig};
use crate::coord::{Coordinator, Layout};
use crate::nameserver::codes::Code;
use crate::nameserver::rpc as m;
use crate::proto::nameserver as pb;
use crate::proto::tablet as tpb;
use crate::proto::taskmanager as jpb;
use crate::rpc::{ClientConfig, Method, RpcClient, RpcError};
use crate::storage::ttl;
use crate::taskmanager::{TmClient, job as tm_job, rpc as tm};

pub const COMMANDS: &[CommandHelp] = &[
    CommandHelp {
        name: "showtable",
        usage: "showtable [table_name]",
        about: "show every replica of one or every table",
    },
    CommandHelp { name: "showtablet", usage: "showtablet", about: "show the tablets and their health" },
    CommandHelp { name: "showns", usage: "showns", about: "show the nameservers: the leader and the standbys" },
    CommandHelp { name: "confget", usage: "confget [key]", about: "show the configuration (auto_failover)" },
    CommandHelp { name: "confset", usage: "confset auto_failover true|false", about: "change the configuration" },
    CommandHelp {
        name: "create",
        usage: "create table_name ttl partition_num replica_num col:type[:index|:ts] ...",
        about: "create a table: `:index` columns form the key, the `:ts` column orders rows; ttl in minutes",
    },
    CommandHelp { name: "drop", usage: "drop table_name", about: "drop a table" },
    CommandHelp {
        name: "showopstatus",
        usage: "showopstatus [table_name [pid]]",
        about: "show the ops, of every table, one table or one partition",
    },
    CommandHelp {
        name: "offlineendpoint",
        usage: "offlineendpoint endpoint [concurrency]",
        about: "move every leader off a tablet and mark its replicas not alive",
    },
    CommandHelp {
        name: "recoverendpoint",
        usage: "recoverendpoint endpoint [need_restore(true|false)] [concurrency]",
        about: "recover every replica of a healthy tablet",
    },
    CommandHelp {
        name: "changeleader",
        usage: "changeleader table_name pid [candidate_leader|auto]",
        about: "give a partition a new leader (needs auto_failover false)",
    },
    CommandHelp {
        name: "recovertable",
        usage: "recovertable table_name pid endpoint",
        about: "recover one replica that is not alive",
    },
    CommandHelp {
        name: "updatetablealive",
        usage: "updatetablealive table_name pid|* endpoint yes|no",
        about: "set is_alive of an endpoint's replica in one or every partition",
    },
    CommandHelp {
        name: "addreplica",
        usage: "addreplica table_name pid_group endpoint",
        about: "add a follower on endpoint; pid_group is n, a,b,c or a-b",
    },
    CommandHelp {
        name: "delreplica",
        usage: "delreplica table_name pid_group endpoint",
        about: "delete the follower on endpoint; pid_group is n, a,b,c or a-b",
    },
    CommandHelp {
        name: "migrate",
        usage: "migrate src_endpoint table_name pid_group des_endpoint",
        about: "move followers from one tablet to another",
    },
    CommandHelp {
        name: "makesnapshot",
        usage: "makesnapshot table_name pid [end_offset]",
        about: "make a snapshot of a partition's leader",
    },
    CommandHelp { name: "cancelop", usage: "cancelop op_id", about: "cancel an op that has not finished" },
    CommandHelp {
        name: "deleteop",
        usage: "deleteop op_id|done|failed|canceled",
        about: "forget one finished op, or every op of a status",
    },
    CommandHelp { name: "showtaskmanager", usage: "showtaskmanager", about: "show the active TaskManager" },
    CommandHelp { name: "showjobs", usage: "showjobs", about: "show the TaskManager's jobs" },
    CommandHelp { name: "showjob", usage: "showjob job_id", about: "show one job of the TaskManager" },
    CommandHelp {
        name: "submitjob",
        usage: "submitjob import table_name file|gen:rows[:prefix] | export table_name file | snapshot table_name",
        about: "submit a job to the active TaskManager; files are relative to its --job_data_dir",
    },
    CommandHelp { name: "stopjob", usage: "stopjob job_id", about: "stop a job that has not ended" },
    CommandHelp { name: "help", usage: "help", about: "show this list" },
];

fn usage(name: &str) -> String {
    super::usage(COMMANDS, name)
}

/// A session with whichever nameserver is active (and, for the job commands, whichever TaskManager is).
pub struct NsClient {
    coord: Arc<dyn Coordinator>,
    layout: Layout,
    timeout: Duration,
    tm: TmClient,
    /// The routing client of the data commands, made at the first one (it loads every table's metadata).
    routing: tokio::sync::OnceCell<RoutingClient>,
}

impl NsClient {
    pub fn new(coord: Arc<dyn Coordinator>, root: &str, timeout: Duration) -> Self {
        Self {
            tm: TmClient::new(coord.clone(), root, timeout),
            coord,
            layout: Layout::new(root),
            timeout,
            routing: tokio::sync::OnceCell::new(),
        }
    }

    /// A data command (`put`, `get`, `scan`, `count`, `preview`, `delete`; see [`data`]).
    async fn data(&self, words: &[&str]) -> Result<String, String> {
        let cmd = data::parse(words)?;
        let root = self.layout.root().to_string();
        let routing = self
            .routing
            .get_or_try_init(|| RoutingClient::connect(self.coord.clone(), &root, RoutingConfig::default()))
            .await
            .map_err(|e| format!("Fail to load the tables. error msg: {e}"))?;
        // A table created since the last load (the notify watch may not have fired yet) is looked up afresh.
        if routing.table_info(cmd.table()).is_err() {
            let _ = routing.refresh().await;
        }
        data::run(routing, cmd).await
    }

    /// The active nameserver: the value of the first `/leader/lock_request` node (reference 1.3).
    pub async fn active(&self) -> Result<String, String> {
        let mut children =
            self.coord.children(&self.layout.leader()).await.map_err(|e| format!("cannot list nameservers: {e}"))?;
        children.sort();
        let first = children.first().ok_or("no nameserver is running")?;
        let (data, _) = self
            .coord
            .get(&format!("{}/{first}", self.layout.leader()))
            .await
            .map_err(|e| format!("cannot read the active nameserver: {e}"))?;
        Ok(String::from_utf8_lossy(&data).to_string())
    }

    /// Calls the active nameserver; if it is not (or no longer) the leader, looks again a few times.
    pub async fn call<M: Method>(&self, method: M, req: M::Req) -> Result<M::Resp, RpcError>
    where
        M::Req: Clone,
    {
        let mut last = None;
        for attempt in 0..5u32 {
            let endpoint =
                self.active().await.map_err(|e| RpcError::Unavailable { addr: "nameserver".into(), reason: e })?;
            let client = RpcClient::new(endpoint, ClientConfig { timeout: self.timeout, ..Default::default() });
            match client.call(method, req.clone()).await {
                Err(RpcError::Status(s)) if Code::NameserverIsNotLeader.is(&s) => last = Some(RpcError::Status(s)),
                Err(e @ RpcError::Unavailable { .. }) => last = Some(e),
                other => return other,
            }
            tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
        }
        Err(last.expect("at least one attempt"))
    }

    /// Creates a table from its full description (what `create` builds from its arguments, plus options the
    /// command line has no syntax for, such as the replication mode).
    pub async fn create_table(&self, info: pb::TableInfo) -> Result<(), String> {
        self.call(m::CreateTable, pb::CreateTableRequest { table_info: Some(info) })
            .await
            .map(drop)
            .map_err(|e| fail("create table", e))
    }

    /// Runs one command line; `Ok` is what to print on success, `Err` what to print on failure.
    pub async fn execute(&self, line: &str) -> Result<String, String> {
        let w = words(line);
        let Some(&cmd) = w.first() else { return Ok(String::new()) };
        let args = &w[1..];
        if data::is_data_command(cmd) {
            return self.data(&w).await;
        }
        match cmd {
            "help" => Ok(help_text(&[COMMANDS, data::COMMANDS].concat())),
            "showtable" => {
                if args.len() > 1 {
                    return Err(usage(cmd));
                }
                let req = pb::ShowTableRequest { name: args.first().unwrap_or(&"").to_string(), db: String::new() };
                let resp = self.call(m::ShowTable, req).await.map_err(|e| fail("show table", e))?;
                Ok(render_showtable(&resp.replicas))
            }
            "showtablet" => {
                let resp =
                    self.call(m::ShowTablet, pb::ShowTabletRequest {}).await.map_err(|e| fail("show tablet", e))?;
                let rows: Vec<Vec<String>> = resp
                    .tablets
                    .iter()
                    .map(|t| vec![t.endpoint.clone(), t.state.clone(), human_age(t.age_ms)])
                    .collect();
                Ok(table::render(&["endpoint", "state", "age"], &rows))
            }
            "showns" => {
                let resp = self
                    .call(m::ShowNameServer, pb::ShowNameServerRequest {})
                    .await
                    .map_err(|e| fail("show nameserver", e))?;
                let rows: Vec<Vec<String>> =
                    resp.nameservers.iter().map(|n| vec![n.endpoint.clone(), n.role.clone()]).collect();
                Ok(table::render(&["endpoint", "role"], &rows))
            }
            "confget" => {
                if args.len() > 1 {
                    return Err(usage(cmd));
                }
                let req = pb::ConfGetRequest { key: args.first().unwrap_or(&"").to_string() };
                let resp = self.call(m::ConfGet, req).await.map_err(|e| fail("get conf", e))?;
                let rows: Vec<Vec<String>> = resp.conf.iter().map(|c| vec![c.key.clone(), c.value.clone()]).collect();
                Ok(table::render(&["key", "value"], &rows))
            }
            "confset" => {
                if args.len() != 2 {
                    return Err(usage(cmd));
                }
                let req =
                    pb::ConfSetRequest { conf: Some(pb::ConfEntry { key: args[0].into(), value: args[1].into() }) };
                self.call(m::ConfSet, req).await.map_err(|e| fail("set conf", e))?;
                Ok(format!("set {} ok", args[0]))
            }
            "create" => {
                let info = parse_create(args)?;
                self.call(m::CreateTable, pb::CreateTableRequest { table_info: Some(info) })
                    .await
                    .map_err(|e| fail("create table", e))?;
                Ok("Create table ok".into())
            }
            "drop" => {
                if args.len() != 1 {
                    return Err(usage(cmd));
                }
                let req = pb::DropTableRequest { name: args[0].into(), db: String::new() };
                self.call(m::DropTable, req).await.map_err(|e| fail("drop table", e))?;
                Ok("drop ok".into())
            }
            "showtaskmanager" => {
                let active = self.tm.active().await.map_err(|e| format!("Fail to show taskmanager. error msg: {e}"))?;
                Ok(table::render(&["endpoint", "role"], &[vec![active, "leader".into()]]))
            }
            "showjobs" => {
                if !args.is_empty() {
                    return Err(usage(cmd));
                }
                let resp =
                    self.tm.call(tm::ShowJobs, jpb::ShowJobsRequest {}).await.map_err(|e| fail("show jobs", e))?;
                Ok(render_jobs(&resp.jobs))
            }
            "showjob" | "stopjob" => {
                let [id] = args else { return Err(usage(cmd)) };
                let id = number::<u64>(id).ok_or_else(|| format!("Invalid job_id {id:?}. {}", usage(cmd)))?;
                let job = if cmd == "showjob" {
                    self.tm.call(tm::ShowJob, jpb::ShowJobRequest { id }).await.map_err(|e| fail("show job", e))?.job
                } else {
                    self.tm
                        .call(tm::StopJob, jpb::StopJobRequest { id, reason: String::new() })
                        .await
                        .map_err(|e| fail("stop job", e))?
                        .job
                };
                Ok(render_jobs(job.as_slice()))
            }
            "submitjob" => {
                let req = match args {
                    ["import", table, source] => ("import", table, *source),
                    ["export", table, file] => ("export", table, *file),
                    ["snapshot", table] => ("snapshot", table, ""),
                    _ => return Err(usage(cmd)),
                };
                let req =
                    jpb::SubmitJobRequest { job_type: req.0.into(), table: req.1.to_string(), path: req.2.into() };
                let resp = self.tm.call(tm::SubmitJob, req).await.map_err(|e| fail("submit job", e))?;
                Ok(render_jobs(resp.job.as_slice()))
            }
            _ => self.send(parse_request(line)?).await,
        }
    }

    /// Sends one parsed op/manual command to the active nameserver; `Ok` and `Err` as for [`NsClient::execute`].
    pub async fn send(&self, req: Request) -> Result<String, String> {
        match req {
            Request::ShowOpStatus(r) => {
                let resp = self.call(m::ShowOpStatus, r).await.map_err(|e| fail("show op status", e))?;
                Ok(render_opstatus(&resp.op_status))
            }
            Request::OfflineEndpoint(r) => {
                self.call(m::OfflineEndpoint, r).await.map_err(|e| fail("offline endpoint", e))?;
                Ok("offline endpoint ok".into())
            }
            Request::RecoverEndpoint(r) => {
                self.call(m::RecoverEndpoint, r).await.map_err(|e| fail("recover endpoint", e))?;
                Ok("recover endpoint ok".into())
            }
            Request::ChangeLeader(r) => {
                self.call(m::ChangeLeader, r).await.map_err(|e| fail("change leader", e))?;
                Ok("change leader ok. If there are writing operations while changing a leader, it may cause data loss."
                    .into())
            }
            Request::RecoverTable(r) => {
                self.call(m::RecoverTable, r).await.map_err(|e| fail("recover table", e))?;
                Ok("recover table ok".into())
            }
            Request::UpdateTableAlive(r) => {
                self.call(m::UpdateTableAlive, r).await.map_err(|e| fail("update table alive", e))?;
                Ok("update ok".into())
            }
            Request::AddReplica(r) => {
                self.call(m::AddReplica, r).await.map_err(|e| fail("add replica", e))?;
                Ok("AddReplica ok".into())
            }
            Request::DelReplica(r) => {
                self.call(m::DelReplica, r).await.map_err(|e| fail("delete replica", e))?;
                Ok("DelReplica ok".into())
            }
            Request::Migrate(r) => {
                self.call(m::Migrate, r).await.map_err(|e| fail("migrate", e))?;
                Ok("partition migrate ok".into())
            }
            Request::MakeSnapshot(r) => {
                self.call(m::MakeSnapshot, r).await.map_err(|e| fail("make snapshot", e))?;
                Ok("MakeSnapshot ok".into())
            }
            Request::CancelOp(r) => {
                self.call(m::CancelOp, r).await.map_err(|e| fail("cancel op", e))?;
                Ok("Cancel op ok".into())
            }
            Request::DeleteOp(r) => {
                self.call(m::DeleteOp, r).await.map_err(|e| fail("delete op", e))?;
                Ok("delete op ok".into())
            }
        }
    }
}

/// Jobs as `showjobs` prints them, by id.
pub fn render_jobs(jobs: &[jpb::JobInfo]) -> String {
    let rows: Vec<Vec<String>> = jobs
        .iter()
        .map(|j| {
            vec![
                j.id.to_string(),
                j.job_type.clone(),
                tm_job::state_name(j.state()).to_string(),
                j.table.clone(),
                j.path.clone(),
                tm_job::progress(j),
                j.owner.clone(),
                j.attempts.to_string(),
                j.error.clone(),
            ]
        })
        .collect();
    table::render(&["id", "job_type", "state", "table", "path", "progress", "endpoint", "attempts", "error"], &rows)
}

/// One op or manual command, parsed from its command line and ready to send (see [`parse_request`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    ShowOpStatus(pb::ShowOpStatusRequest),
    OfflineEndpoint(pb::OfflineEndpointRequest),
    RecoverEndpoint(pb::RecoverEndpointRequest),
    ChangeLeader(pb::ChangeLeaderRequest),
    RecoverTable(pb::RecoverTableRequest),
    UpdateTableAlive(pb::UpdateTableAliveRequest),
    AddReplica(pb::ReplicaChangeRequest),
    DelReplica(pb::ReplicaChangeRequest),
    Migrate(pb::MigrateRequest),
    MakeSnapshot(pb::MakeSnapshotNsRequest),
    CancelOp(pb::CancelOpRequest),
    DeleteOp(pb::DeleteOpRequest),
}

/// The most partitions one pid group may name (OpenMLDB's limit on `a-b`).
pub const MAX_PID_GROUP: u64 = 10_000;

/// Parses the command line of an op or manual command (`showopstatus`, `offlineendpoint`, `recoverendpoint`,
/// `changeleader`, `recovertable`, `updatetablealive`, `addreplica`, `delreplica`, `migrate`, `makesnapshot`,
/// `cancelop`, `deleteop`) into its request, without touching the network. A malformed line gives the usage line.
pub fn parse_request(line: &str) -> Result<Request, String> {
    let w = words(line);
    let Some(&cmd) = w.first() else { return Err("empty command".into()) };
    let a = &w[1..];
    let n = a.len();
    let arity = |min: usize, max: usize| if (min..=max).contains(&n) { Ok(()) } else { Err(usage(cmd)) };
    let bad = |what: &str, v: &str| format!("Invalid {what} {v:?}. {}", usage(cmd));
    let pid = |v: &str| number::<u32>(v).ok_or_else(|| bad("pid", v));
    let concurrency = |v: Option<&&str>| match v {
        None => Ok(0),
        Some(v) => number::<u32>(v).filter(|&c| c > 0).ok_or_else(|| bad("concurrency", v)),
    };
    let pids = |v: &str| parse_pid_group(v).map_err(|e| format!("Invalid pid_group {v:?}: {e}. {}", usage(cmd)));
    let req = match cmd {
        "showopstatus" => {
            arity(0, 2)?;
            Request::ShowOpStatus(pb::ShowOpStatusRequest {
                name: a.first().unwrap_or(&"").to_string(),
                pid: a.get(1).map(|v| pid(v)).transpose()?.unwrap_or(0),
                has_pid: n == 2,
            })
        }
        "offlineendpoint" => {
            arity(1, 2)?;
            Request::OfflineEndpoint(pb::OfflineEndpointRequest {
                endpoint: a[0].into(),
                concurrency: concurrency(a.get(1))?,
            })
        }
        "recoverendpoint" => {
            arity(1, 3)?;
            let need_restore = match a.get(1) {
                None => false,
                Some(v) if v.eq_ignore_ascii_case("true") => true,
                Some(v) if v.eq_ignore_ascii_case("false") => false,
                Some(v) => return Err(bad("need_restore", v)),
            };
            Request::RecoverEndpoint(pb::RecoverEndpointRequest {
                endpoint: a[0].into(),
                need_restore,
                concurrency: concurrency(a.get(2))?,
            })
        }
        "changeleader" => {
            arity(2, 3)?;
            Request::ChangeLeader(pb::ChangeLeaderRequest {
                name: a[0].into(),
                pid: pid(a[1])?,
                candidate_leader: a.get(2).unwrap_or(&"").to_string(),
            })
        }
        "recovertable" => {
            arity(3, 3)?;
            Request::RecoverTable(pb::RecoverTableRequest { name: a[0].into(), pid: pid(a[1])?, endpoint: a[2].into() })
        }
        "updatetablealive" => {
            arity(4, 4)?;
            let all = a[1] == "*";
            let is_alive = match a[3] {
                "yes" => true,
                "no" => false,
                v => return Err(bad("is_alive", v)),
            };
            Request::UpdateTableAlive(pb::UpdateTableAliveRequest {
                name: a[0].into(),
                pids: if all { Vec::new() } else { vec![pid(a[1])?] },
                all,
                endpoint: a[2].into(),
                is_alive,
            })
        }
        "addreplica" | "delreplica" => {
            arity(3, 3)?;
            let r = pb::ReplicaChangeRequest { name: a[0].into(), pids: pids(a[1])?, endpoint: a[2].into() };
            if cmd == "addreplica" { Request::AddReplica(r) } else { Request::DelReplica(r) }
        }
        "migrate" => {
            arity(4, 4)?;
            Request::Migrate(pb::MigrateRequest {
                src_endpoint: a[0].into(),
                name: a[1].into(),
                pids: pids(a[2])?,
                des_endpoint: a[3].into(),
            })
        }
        "makesnapshot" => {
            arity(2, 3)?;
            let end_offset = match a.get(2) {
                None => 0,
                Some(v) => number::<u64>(v).ok_or_else(|| bad("end_offset", v))?,
            };
            Request::MakeSnapshot(pb::MakeSnapshotNsRequest { name: a[0].into(), pid: pid(a[1])?, end_offset })
        }
        "cancelop" => {
            arity(1, 1)?;
            Request::CancelOp(pb::CancelOpRequest { op_id: number(a[0]).ok_or_else(|| bad("op_id", a[0]))? })
        }
        "deleteop" => {
            arity(1, 1)?;
            Request::DeleteOp(match a[0] {
                s @ ("done" | "failed" | "canceled") => pb::DeleteOpRequest { op_id: 0, status: s.into() },
                v => pb::DeleteOpRequest { op_id: number(v).ok_or_else(|| bad("op_id", v))?, status: String::new() },
            })
        }
        other => return Err(format!("unsupported cmd {other:?}; type help to list the commands")),
    };
    Ok(req)
}

/// A non-negative decimal number: ASCII digits only (no sign, no spaces), within `T`'s range.
fn number<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A pid group as `addreplica`, `delreplica` and `migrate` take it: `n`, `a,b,c` or `a-b` (inclusive). The pids
/// come back sorted and without repeats; an empty group, a reversed range, a non-number or more than
/// [`MAX_PID_GROUP`] pids is an error.
pub fn parse_pid_group(s: &str) -> Result<Vec<u32>, String> {
    let num = |v: &str| number::<u32>(v).ok_or_else(|| format!("{v:?} is not a pid"));
    if s.is_empty() {
        return Err("empty pid group".into());
    }
    let mut pids: Vec<u32> = if let Some((a, b)) = s.split_once('-') {
        let (a, b) = (num(a)?, num(b)?);
        if a > b {
            return Err(format!("range {a}-{b} is reversed"));
        }
        if u64::from(b - a) + 1 > MAX_PID_GROUP {
            return Err(format!("range {a}-{b} has more than {MAX_PID_GROUP} pids"));
        }
        (a..=b).collect()
    } else {
        s.split(',').map(num).collect::<Result<_, _>>()?
    };
    pids.sort_unstable();
    pids.dedup();
    if pids.len() as u64 > MAX_PID_GROUP {
        return Err(format!("more than {MAX_PID_GROUP} pids"));
    }
    Ok(pids)
}

/// A time of showopstatus: milliseconds since the epoch as `YYYYMMDDHHMMSS` in UTC, or `-` for 0 (not yet).
pub fn format_op_time(ms: u64) -> String {
    if ms == 0 {
        return "-".into();
    }
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, mo, d) = civil_from_days(days);
    format!("{y:04}{mo:02}{d:02}{:02}{:02}{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// The proleptic Gregorian (year, month, day) of `days` since 1970-01-01 (Howard Hinnant's `civil_from_days`,
/// for days on or after the epoch).
pub fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], from March
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// showopstatus's execute_time, `<secs>s`: end−start once the op ended, now−start while it runs, `0s` before it
/// started. Both times are cut to whole seconds first, so the difference matches the printed times.
pub fn execute_time(op: &pb::OpStatus) -> String {
    let secs = |ms: u64| ms / 1000;
    let elapsed = match (op.start_time, op.end_time) {
        (0, _) => 0,
        (start, 0) => secs(op.now).saturating_sub(secs(start)),
        (start, end) => secs(end).saturating_sub(secs(start)),
    };
    format!("{elapsed}s")
}

/// showopstatus in the seed's columns: `op_id op_type name pid status start_time execute_time end_time cur_task`,
/// sorted by op_id.
pub fn render_opstatus(ops: &[pb::OpStatus]) -> String {
    let mut ops: Vec<&pb::OpStatus> = ops.iter().collect();
    ops.sort_by_key(|o| o.op_id);
    let rows: Vec<Vec<String>> = ops
        .iter()
        .map(|o| {
            vec![
                o.op_id.to_string(),
                o.op_type.clone(),
                o.name.clone(),
                o.pid.to_string(),
                o.status.clone(),
                format_op_time(o.start_time),
                execute_time(o),
                format_op_time(o.end_time),
                if o.cur_task.is_empty() { "-".into() } else { o.cur_task.clone() },
            ]
        })
        .collect();
    table::render(
        &["op_id", "op_type", "name", "pid", "status", "start_time", "execute_time", "end_time", "cur_task"],
        &rows,
    )
}

/// `create table_name ttl partition_num replica_num col:type[:index|:ts] ...`
pub fn parse_create(args: &[&str]) -> Result<pb::TableInfo, String> {
    if args.len() < 6 {
        return Err(usage("create"));
    }
    let bad = |what: &str, v: &str| format!("Invalid {what} {v:?}. {}", usage("create"));
    let ttl = ttl::parse(args[1]).map_err(|e| format!("Invalid ttl {:?}: {e}", args[1]))?;
    let partition_num: u32 = args[2].parse().map_err(|_| bad("partition_num", args[2]))?;
    let replica_num: u32 = args[3].parse().map_err(|_| bad("replica_num", args[3]))?;
    let (mut columns, mut keys, mut ts) = (Vec::new(), Vec::new(), None);
    for spec in &args[4..] {
        let parts: Vec<&str> = spec.split(':').collect();
        let (name, data_type) = match parts.as_slice() {
            [n, t] | [n, t, _] if !n.is_empty() && !t.is_empty() => (n.to_string(), t.to_string()),
            _ => return Err(bad("column", spec)),
        };
        match parts.get(2) {
            None => {}
            Some(&"index") => keys.push(name.clone()),
            Some(&"ts") if ts.is_none() => ts = Some(name.clone()),
            Some(_) => return Err(bad("column", spec)),
        }
        if crate::client::values::ColumnType::parse(&data_type).is_none() {
            return Err(format!(
                "Invalid column type {data_type:?} of {name}: one of bool, smallint, int, bigint, float, double, \
                 string, varchar, timestamp, date (or int16, int32, int64, uint16, uint32, uint64). {}",
                usage("create")
            ));
        }
        columns.push(tpb::ColumnDesc { name, data_type });
    }
    let ts_name = ts.ok_or_else(|| format!("one column must be marked :ts. {}", usage("create")))?;
    if keys.is_empty() {
        return Err(format!("at least one column must be marked :index. {}", usage("create")));
    }
    Ok(pb::TableInfo {
        name: args[0].to_string(),
        partition_num,
        replica_num,
        column_key: vec![tpb::ColumnKey { index_name: keys.join("_"), col_name: keys, ts_name, ttl: Some(ttl) }],
        column_desc: columns,
        ..Default::default()
    })
}

/// showtable in the seed's columns: `name tid pid endpoint role ttl is_alive compress_type offset record_cnt
/// memused`; `offset` is `-` until the replica's tablet reported it.
pub fn render_showtable(replicas: &[pb::ReplicaStatus]) -> String {
    let rows: Vec<Vec<String>> = replicas
        .iter()
        .map(|r| {
            vec![
                r.name.clone(),
                r.tid.to_string(),
                r.pid.to_string(),
                r.endpoint.clone(),
                if r.is_leader { "leader" } else { "follower" }.to_string(),
                r.ttl.map(|t| t.to_string()).unwrap_or_else(|| "0min".into()),
                if r.is_alive { "yes" } else { "no" }.to_string(),
                "kNoCompress".to_string(),
                if r.reported { r.offset.to_string() } else { "-".into() },
                r.record_cnt.to_string(),
                human_bytes(r.memused),
            ]
        })
        .collect();
    table::render(
        &[
            "name",
            "tid",
            "pid",
            "endpoint",
            "role",
            "ttl",
            "is_alive",
            "compress_type",
            "offset",
            "record_cnt",
            "memused",
        ],
        &rows,
    )
}

/// showtablet's age: the largest whole unit, as `3h`, `7m`, `12s`, `2d`.
pub fn human_age(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn showtable_has_the_seed_columns_in_order() {
        let r = pb::ReplicaStatus {
            name: "flow".into(),
            tid: 4,
            pid: 0,
            endpoint: "172.27.128.32:8541".into(),
            is_leader: true,
            is_alive: false,
            ..Default::default()
        };
        let out = render_showtable(&[r]);
        let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
        assert_eq!(
            header,
            [
                "name",
                "tid",
                "pid",
                "endpoint",
                "role",
                "ttl",
                "is_alive",
                "compress_type",
                "offset",
                "record_cnt",
                "memused"
            ]
        );
        let row: Vec<&str> = out.lines().nth(2).unwrap().split_whitespace().collect();
        assert_eq!(
            row,
            ["flow", "4", "0", "172.27.128.32:8541", "leader", "0min", "no", "kNoCompress", "-", "0", "0.000"]
        );
    }

    #[test]
    fn create_parses_columns_index_and_ts() {
        let info = parse_create(&["flow", "0", "2", "3", "id:string:index", "ts:int64:ts", "v:string"]).unwrap();
        assert_eq!((info.partition_num, info.replica_num, info.column_desc.len()), (2, 3, 3));
        assert_eq!(info.column_key[0].col_name, vec!["id".to_string()]);
        assert_eq!(info.column_key[0].ts_name, "ts");
        assert!(parse_create(&["flow", "0", "2", "3", "id:string:index", "v:string"]).unwrap_err().contains(":ts"));
        assert!(parse_create(&["flow", "x", "2", "3", "id:string:index", "ts:int64:ts"]).is_err());
        assert!(parse_create(&["flow", "0", "2"]).unwrap_err().contains("usage"));
    }

    #[test]
    fn ages_use_the_largest_unit() {
        assert_eq!(human_age(12_000), "12s");
        assert_eq!(human_age(7 * 60_000 + 5), "7m");
        assert_eq!(human_age(3 * 3_600_000), "3h");
        assert_eq!(human_age(2 * 86_400_000), "2d");
    }

    fn ok(line: &str) -> Request {
        parse_request(line).unwrap_or_else(|e| panic!("{line}: {e}"))
    }

    /// The line is refused with the command's usage line.
    fn refused(line: &str) {
        let cmd = line.split_whitespace().next().unwrap();
        let e = parse_request(line).expect_err(line);
        assert!(e.contains(&usage(cmd)), "{line}: {e}");
    }

    fn op(op_id: u64, op_type: &str, pid: u32, status: &str, start: u64, end: u64, cur_task: &str) -> pb::OpStatus {
        pb::OpStatus {
            op_id,
            op_type: op_type.into(),
            name: "flow".into(),
            pid,
            status: status.into(),
            start_time: start,
            end_time: end,
            cur_task: cur_task.into(),
            now: 1_535_141_188_000,
            reason: String::new(),
        }
    }

    #[test]
    fn pid_groups_parse_single_lists_and_ranges() {
        assert_eq!(parse_pid_group("3"), Ok(vec![3]));
        assert_eq!(parse_pid_group("0,2,5"), Ok(vec![0, 2, 5]));
        assert_eq!(parse_pid_group("5,2,2"), Ok(vec![2, 5]));
        assert_eq!(parse_pid_group("1-4"), Ok(vec![1, 2, 3, 4]));
        assert_eq!(parse_pid_group("7-7"), Ok(vec![7]));
        assert_eq!(parse_pid_group("0-9999").map(|p| p.len()), Ok(10_000));
        for bad in [
            "",
            ",",
            "1,",
            ",1",
            "1,,2",
            "4-1",
            "a",
            "1,a",
            "1-a",
            "-1",
            "1-",
            "-",
            "1-2-3",
            "1-3,5",
            "+1",
            " 1",
            "1.5",
            "0-10000",
            "4294967296",
            "0-4294967295",
        ] {
            assert!(parse_pid_group(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn op_times_are_utc_civil_dates() {
        assert_eq!(format_op_time(0), "-");
        assert_eq!(format_op_time(1), "19700101000000");
        assert_eq!(format_op_time(1_535_140_718_000), "20180824195838");
        assert_eq!(format_op_time(1_535_140_718_999), "20180824195838");
        assert_eq!(format_op_time(951_782_400_000), "20000229000000");
        assert_eq!(format_op_time(951_868_799_000), "20000229235959");
        assert_eq!(format_op_time(4_107_542_400_000), "21000301000000");
        assert_eq!(format_op_time(1_704_067_199_000), "20231231235959");
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(59), (1970, 3, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
    }

    #[test]
    fn execute_time_is_end_or_now_minus_start() {
        let start = 1_535_140_718_000;
        assert_eq!(execute_time(&op(1, "kChangeLeaderOP", 0, "kDone", start, start + 2_000, "-")), "2s");
        // Cut to whole seconds first: 19:58:38.900 to 19:58:40.100 prints as 2s, as the times do.
        assert_eq!(execute_time(&op(1, "kChangeLeaderOP", 0, "kDone", start + 900, start + 2_100, "-")), "2s");
        let running = op(1, "kReAddReplicaOP", 0, "kDoing", start, 0, "kLoadTable");
        assert_eq!(execute_time(&running), "470s");
        assert_eq!(execute_time(&op(1, "kReAddReplicaOP", 0, "kInited", 0, 0, "-")), "0s");
        assert_eq!(execute_time(&op(1, "kReAddReplicaOP", 0, "kCanceled", 0, start, "-")), "0s");
        assert_eq!(execute_time(&pb::OpStatus { now: start - 5_000, ..running }), "0s");
    }

    #[test]
    fn showopstatus_renders_the_seed_columns_sorted_by_op_id() {
        // 2018-08-24 hh:mm:ss UTC; `op` sets now to 20:06:28.
        let t = |hhmmss: u64| {
            let (h, m, s) = (hhmmss / 10_000, hhmmss / 100 % 100, hhmmss % 100);
            1_535_068_800_000 + (h * 3600 + m * 60 + s) * 1000
        };
        assert_eq!(t(200628), op(0, "", 0, "", 0, 0, "").now);
        let ops = [
            op(61, "kReAddReplicaOP", 1, "kDoing", t(200624), 0, "kLoadTable"),
            op(55, "kChangeLeaderOP", 0, "kDone", t(200135), t(200135), ""),
            op(58, "kRecoverTableOP", 0, "kDone", t(200623), t(200624), "-"),
            op(62, "kMigrateOP", 3, "kInited", 0, 0, ""),
        ];
        let rule = "-".repeat(104);
        let expected = [
            "  op_id  op_type          name  pid  status   start_time      execute_time  end_time        cur_task",
            &rule,
            "  55     kChangeLeaderOP  flow  0    kDone    20180824200135  0s            20180824200135  -",
            "  58     kRecoverTableOP  flow  0    kDone    20180824200623  1s            20180824200624  -",
            "  61     kReAddReplicaOP  flow  1    kDoing   20180824200624  4s            -               kLoadTable",
            "  62     kMigrateOP       flow  3    kInited  -               0s            -               -",
            "",
        ];
        assert_eq!(render_opstatus(&ops), expected.join("\n"));
        assert_eq!(
            render_opstatus(&[]),
            "  op_id  op_type  name  pid  status  start_time  execute_time  end_time  cur_task\n\
             -----------------------------------------------------------------------------------\n"
        );
    }

    #[test]
    fn showopstatus_takes_a_table_and_a_pid() {
        assert_eq!(ok("showopstatus"), Request::ShowOpStatus(pb::ShowOpStatusRequest::default()));
        assert_eq!(
            ok("showopstatus flow"),
            Request::ShowOpStatus(pb::ShowOpStatusRequest { name: "flow".into(), ..Default::default() })
        );
        assert_eq!(
            ok("showopstatus flow 0"),
            Request::ShowOpStatus(pb::ShowOpStatusRequest { name: "flow".into(), pid: 0, has_pid: true })
        );
        refused("showopstatus flow x");
        refused("showopstatus flow -1");
        refused("showopstatus flow 0 1");
    }

    #[test]
    fn offlineendpoint_takes_a_positive_concurrency() {
        let ep = "172.27.128.32:8541";
        assert_eq!(
            ok(&format!("offlineendpoint {ep}")),
            Request::OfflineEndpoint(pb::OfflineEndpointRequest { endpoint: ep.into(), concurrency: 0 })
        );
        assert_eq!(
            ok(&format!("offlineendpoint {ep} 3")),
            Request::OfflineEndpoint(pb::OfflineEndpointRequest { endpoint: ep.into(), concurrency: 3 })
        );
        refused("offlineendpoint");
        refused(&format!("offlineendpoint {ep} 0"));
        refused(&format!("offlineendpoint {ep} x"));
        refused(&format!("offlineendpoint {ep} -2"));
        refused(&format!("offlineendpoint {ep} 2 3"));
    }

    #[test]
    fn recoverendpoint_takes_need_restore_and_concurrency() {
        let ep = "172.27.128.32:8541";
        let req = |need_restore, concurrency| {
            Request::RecoverEndpoint(pb::RecoverEndpointRequest { endpoint: ep.into(), need_restore, concurrency })
        };
        assert_eq!(ok(&format!("recoverendpoint {ep}")), req(false, 0));
        assert_eq!(ok(&format!("recoverendpoint {ep} TRUE")), req(true, 0));
        assert_eq!(ok(&format!("recoverendpoint {ep} false 4")), req(false, 4));
        assert_eq!(ok(&format!("recoverendpoint {ep} True 1")), req(true, 1));
        refused("recoverendpoint");
        refused(&format!("recoverendpoint {ep} yes"));
        refused(&format!("recoverendpoint {ep} true 0"));
        refused(&format!("recoverendpoint {ep} true x"));
        refused(&format!("recoverendpoint {ep} true 1 2"));
    }

    #[test]
    fn changeleader_takes_a_candidate_or_auto() {
        let req = |pid, candidate_leader: &str| {
            Request::ChangeLeader(pb::ChangeLeaderRequest {
                name: "flow".into(),
                pid,
                candidate_leader: candidate_leader.into(),
            })
        };
        assert_eq!(ok("changeleader flow 1"), req(1, ""));
        assert_eq!(ok("changeleader flow 1 auto"), req(1, "auto"));
        assert_eq!(ok("changeleader flow 0 172.27.128.31:8541"), req(0, "172.27.128.31:8541"));
        refused("changeleader flow");
        refused("changeleader flow x");
        refused("changeleader flow 1 auto extra");
    }

    #[test]
    fn recovertable_takes_table_pid_endpoint() {
        assert_eq!(
            ok("recovertable flow 1 172.27.128.32:8541"),
            Request::RecoverTable(pb::RecoverTableRequest {
                name: "flow".into(),
                pid: 1,
                endpoint: "172.27.128.32:8541".into()
            })
        );
        refused("recovertable flow 1");
        refused("recovertable flow x 172.27.128.32:8541");
        refused("recovertable flow 1 172.27.128.32:8541 extra");
    }

    #[test]
    fn updatetablealive_takes_a_pid_or_star_and_yes_or_no() {
        let ep = "172.27.2.52:9991";
        assert_eq!(
            ok(&format!("updatetablealive t1 * {ep} no")),
            Request::UpdateTableAlive(pb::UpdateTableAliveRequest {
                name: "t1".into(),
                pids: vec![],
                all: true,
                endpoint: ep.into(),
                is_alive: false
            })
        );
        assert_eq!(
            ok(&format!("updatetablealive t1 2 {ep} yes")),
            Request::UpdateTableAlive(pb::UpdateTableAliveRequest {
                name: "t1".into(),
                pids: vec![2],
                all: false,
                endpoint: ep.into(),
                is_alive: true
            })
        );
        refused(&format!("updatetablealive t1 * {ep}"));
        refused(&format!("updatetablealive t1 * {ep} maybe"));
        refused(&format!("updatetablealive t1 x {ep} yes"));
        refused(&format!("updatetablealive t1 ** {ep} yes"));
        refused(&format!("updatetablealive t1 1 {ep} yes extra"));
    }

    #[test]
    fn addreplica_and_delreplica_take_a_pid_group() {
        let ep = "172.27.128.33:8541";
        let r = |pids: Vec<u32>| pb::ReplicaChangeRequest { name: "flow".into(), pids, endpoint: ep.into() };
        assert_eq!(ok(&format!("addreplica flow 1 {ep}")), Request::AddReplica(r(vec![1])));
        assert_eq!(ok(&format!("addreplica flow 0,2 {ep}")), Request::AddReplica(r(vec![0, 2])));
        assert_eq!(ok(&format!("delreplica flow 1-3 {ep}")), Request::DelReplica(r(vec![1, 2, 3])));
        for cmd in ["addreplica", "delreplica"] {
            refused(&format!("{cmd} flow 1"));
            refused(&format!("{cmd} flow 3-1 {ep}"));
            refused(&format!("{cmd} flow x {ep}"));
            refused(&format!("{cmd} flow 0-20000 {ep}"));
            refused(&format!("{cmd} flow 1 {ep} extra"));
        }
    }

    #[test]
    fn migrate_takes_src_table_pid_group_des() {
        assert_eq!(
            ok("migrate 10.0.1.1:9527 flow 1,3 10.0.2.1:9527"),
            Request::Migrate(pb::MigrateRequest {
                src_endpoint: "10.0.1.1:9527".into(),
                name: "flow".into(),
                pids: vec![1, 3],
                des_endpoint: "10.0.2.1:9527".into()
            })
        );
        refused("migrate 10.0.1.1:9527 flow 1");
        refused("migrate 10.0.1.1:9527 flow 2-1 10.0.2.1:9527");
        refused("migrate 10.0.1.1:9527 flow 1, 10.0.2.1:9527");
        refused("migrate 10.0.1.1:9527 flow 1 10.0.2.1:9527 extra");
    }

    #[test]
    fn makesnapshot_takes_an_end_offset() {
        let req =
            |end_offset| Request::MakeSnapshot(pb::MakeSnapshotNsRequest { name: "flow".into(), pid: 2, end_offset });
        assert_eq!(ok("makesnapshot flow 2"), req(0));
        assert_eq!(ok("makesnapshot flow 2 18446744073709551615"), req(u64::MAX));
        refused("makesnapshot flow");
        refused("makesnapshot flow x");
        refused("makesnapshot flow 2 -1");
        refused("makesnapshot flow 2 18446744073709551616");
        refused("makesnapshot flow 2 3 4");
    }

    #[test]
    fn cancelop_and_deleteop_take_an_op_id() {
        assert_eq!(ok("cancelop 55"), Request::CancelOp(pb::CancelOpRequest { op_id: 55 }));
        refused("cancelop");
        refused("cancelop x");
        refused("cancelop 1 2");
        assert_eq!(ok("deleteop 55"), Request::DeleteOp(pb::DeleteOpRequest { op_id: 55, status: String::new() }));
        for status in ["done", "failed", "canceled"] {
            assert_eq!(
                ok(&format!("deleteop {status}")),
                Request::DeleteOp(pb::DeleteOpRequest { op_id: 0, status: status.into() })
            );
        }
        refused("deleteop");
        refused("deleteop doing");
        refused("deleteop -1");
        refused("deleteop done failed");
    }

    #[test]
    fn parse_request_knows_only_the_op_commands() {
        assert!(parse_request("showtable").unwrap_err().contains("unsupported cmd"));
        assert!(parse_request("bogus 1").unwrap_err().contains("unsupported cmd"));
        assert!(parse_request("").is_err());
    }

    #[test]
    fn help_lists_every_command_with_its_usage() {
        let h = help_text(COMMANDS);
        for c in COMMANDS {
            assert!(h.contains(c.usage), "{}", c.name);
        }
    }
}
