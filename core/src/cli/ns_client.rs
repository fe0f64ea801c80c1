//! The nameserver client (`openmldb --zk_cluster=.. --zk_root_path=.. --role=ns_client`, reference 7 and the
//! seed's transcripts): finds the active nameserver through the coordination service and prints what OpenMLDB
//! prints.

use std::sync::Arc;
use std::time::Duration;

use super::tablet_client::human_bytes;
use super::{CommandHelp, fail, help_text, table, words};
use crate::coord::{Coordinator, Layout};
use crate::nameserver::codes::Code;
use crate::nameserver::rpc as m;
use crate::proto::nameserver as pb;
use crate::proto::tablet as tpb;
use crate::rpc::{ClientConfig, Method, RpcClient, RpcError};
use crate::storage::ttl;

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
    CommandHelp { name: "help", usage: "help", about: "show this list" },
];

fn usage(name: &str) -> String {
    super::usage(COMMANDS, name)
}

/// A session with whichever nameserver is active.
pub struct NsClient {
    coord: Arc<dyn Coordinator>,
    layout: Layout,
    timeout: Duration,
}

impl NsClient {
    pub fn new(coord: Arc<dyn Coordinator>, root: &str, timeout: Duration) -> Self {
        Self { coord, layout: Layout::new(root), timeout }
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
    async fn call<M: Method>(&self, method: M, req: M::Req) -> Result<M::Resp, RpcError>
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

    /// Runs one command line; `Ok` is what to print on success, `Err` what to print on failure.
    pub async fn execute(&self, line: &str) -> Result<String, String> {
        let w = words(line);
        let Some(&cmd) = w.first() else { return Ok(String::new()) };
        let args = &w[1..];
        match cmd {
            "help" => Ok(help_text(COMMANDS)),
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
            other => Err(format!("unsupported cmd {other:?}; type help to list the commands")),
        }
    }
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

    #[test]
    fn help_lists_every_command_with_its_usage() {
        let h = help_text(COMMANDS);
        for c in COMMANDS {
            assert!(h.contains(c.usage), "{}", c.name);
        }
    }
}
