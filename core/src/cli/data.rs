//! The ns_client's data commands (OpenMLDB's CLI): `put`, `get`, `scan`, `count`, `preview` and `delete`, on
//! the routing client, so each goes to its partition's alive leader and follows a failover like any writer.
//!
//! A command line is parsed into a [`DataCommand`] first ([`parse`], pure: usage errors need no cluster), then
//! run against the table's current metadata ([`run`]): index names resolve to positions, `put` checks every
//! value against its column's type ([`crate::client::values`]) before anything is sent, and results print as
//! OpenMLDB's tables.

use super::{CommandHelp, table};
use crate::client::values::check_row;
use crate::client::{ClientError, RoutingClient};
use crate::proto::nameserver::TableInfo;
use crate::proto::tablet as tpb;

pub const COMMANDS: &[CommandHelp] = &[
    CommandHelp {
        name: "put",
        usage: "put table_name value1 value2 ...",
        about: "write a row (values in column order)",
    },
    CommandHelp { name: "get", usage: "get table_name key [index_name]", about: "show the newest row of a key" },
    CommandHelp {
        name: "scan",
        usage: "scan table_name key [index_name] start_time end_time [limit]",
        about: "show the rows of a key with end_time < ts <= start_time (start_time 0: no bound), newest first",
    },
    CommandHelp { name: "count", usage: "count table_name key [index_name]", about: "count the rows of a key" },
    CommandHelp { name: "preview", usage: "preview table_name [limit]", about: "show some rows of every partition" },
    CommandHelp { name: "delete", usage: "delete table_name key [index_name]", about: "delete every row of a key" },
];

/// How many rows `preview` shows when no limit is given, and at most.
pub const PREVIEW_DEFAULT: u32 = 100;
pub const PREVIEW_MAX: u32 = 10_000;

/// One parsed data command. `index` is an index name (`None`: the first index).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataCommand {
    Put { table: String, values: Vec<String> },
    Get { table: String, key: String, index: Option<String> },
    Scan { table: String, key: String, index: Option<String>, st: u64, et: u64, limit: u32 },
    Count { table: String, key: String, index: Option<String> },
    Preview { table: String, limit: u32 },
    Delete { table: String, key: String, index: Option<String> },
}

impl DataCommand {
    /// The table the command is about.
    pub fn table(&self) -> &str {
        match self {
            DataCommand::Put { table, .. }
            | DataCommand::Get { table, .. }
            | DataCommand::Scan { table, .. }
            | DataCommand::Count { table, .. }
            | DataCommand::Preview { table, .. }
            | DataCommand::Delete { table, .. } => table,
        }
    }
}

/// Whether `name` is one of these commands.
pub fn is_data_command(name: &str) -> bool {
    COMMANDS.iter().any(|c| c.name == name)
}

fn usage(name: &str) -> String {
    super::usage(COMMANDS, name)
}

/// Parses a data command's words (the command first). Errors are what to print.
pub fn parse(words: &[&str]) -> Result<DataCommand, String> {
    let Some((&cmd, args)) = words.split_first() else { return Err("no command".into()) };
    let num = |what: &str, v: &str| -> Result<u64, String> {
        v.parse().map_err(|_| format!("Invalid {what} {v:?}: not a number. {}", usage(cmd)))
    };
    let keyed = |args: &[&str]| -> Result<(String, String, Option<String>), String> {
        match args {
            [t, k] => Ok((t.to_string(), k.to_string(), None)),
            [t, k, i] => Ok((t.to_string(), k.to_string(), Some(i.to_string()))),
            _ => Err(usage(cmd)),
        }
    };
    Ok(match cmd {
        "put" => match args {
            [t, values @ ..] if !values.is_empty() => {
                DataCommand::Put { table: t.to_string(), values: values.iter().map(|v| v.to_string()).collect() }
            }
            _ => return Err(usage(cmd)),
        },
        "get" => {
            let (table, key, index) = keyed(args)?;
            DataCommand::Get { table, key, index }
        }
        "count" => {
            let (table, key, index) = keyed(args)?;
            DataCommand::Count { table, key, index }
        }
        "delete" => {
            let (table, key, index) = keyed(args)?;
            DataCommand::Delete { table, key, index }
        }
        "scan" => {
            // `scan t k st et [limit]` or `scan t k index st et [limit]`: an index name is not a number.
            let (table, key, rest) = match args {
                [t, k, rest @ ..] => (t.to_string(), k.to_string(), rest),
                _ => return Err(usage(cmd)),
            };
            let (index, times) = match rest.first() {
                Some(first) if first.parse::<u64>().is_err() => (Some(first.to_string()), &rest[1..]),
                _ => (None, rest),
            };
            let (st, et, limit) = match times {
                [st, et] => (num("start_time", st)?, num("end_time", et)?, 0),
                [st, et, l] => (num("start_time", st)?, num("end_time", et)?, num("limit", l)?),
                _ => return Err(usage(cmd)),
            };
            if st != 0 && st < et {
                return Err(format!("start_time {st} is less than end_time {et}. {}", usage(cmd)));
            }
            let limit = u32::try_from(limit).map_err(|_| format!("Invalid limit {limit}. {}", usage(cmd)))?;
            DataCommand::Scan { table, key, index, st, et, limit }
        }
        "preview" => match args {
            [t] => DataCommand::Preview { table: t.to_string(), limit: PREVIEW_DEFAULT },
            [t, l] => {
                let limit = num("limit", l)?;
                if limit == 0 || limit > u64::from(PREVIEW_MAX) {
                    return Err(format!("Invalid limit {limit}: 1 to {PREVIEW_MAX}. {}", usage(cmd)));
                }
                DataCommand::Preview { table: t.to_string(), limit: limit as u32 }
            }
            _ => return Err(usage(cmd)),
        },
        other => return Err(format!("unsupported cmd {other}")),
    })
}

/// The position of index `name` in the table (`None`: the first).
fn index_of(info: &TableInfo, name: Option<&str>) -> Result<u32, String> {
    let Some(name) = name else { return Ok(0) };
    info.column_key.iter().position(|k| k.index_name == name).map(|i| i as u32).ok_or_else(|| {
        let names: Vec<&str> = info.column_key.iter().map(|k| k.index_name.as_str()).collect();
        format!("index {name} does not exist in table {}; its indexes: {}", info.name, names.join(", "))
    })
}

fn client_error(what: &str, e: ClientError) -> String {
    format!("Fail to {what}. error msg: {e}")
}

fn columns(info: &TableInfo) -> Vec<&str> {
    info.column_desc.iter().map(|c| c.name.as_str()).collect()
}

/// Rows with their ts, as OpenMLDB's `get` and `scan` print them: `#`, `ts`, then the columns.
fn render_rows(info: &TableInfo, rows: &[(u64, tpb::Row)]) -> String {
    let mut headers = vec!["#", "ts"];
    headers.extend(columns(info));
    let cells: Vec<Vec<String>> = rows
        .iter()
        .enumerate()
        .map(|(i, (ts, row))| {
            let mut r = vec![(i + 1).to_string(), ts.to_string()];
            r.extend(row.values.iter().cloned());
            r
        })
        .collect();
    table::render(&headers, &cells)
}

/// Runs a parsed command on the cluster; `Ok` is what to print on success, `Err` what to print on failure.
pub async fn run(client: &RoutingClient, cmd: DataCommand) -> Result<String, String> {
    let info_of = |name: &str| client.table_info(name).map_err(|e| client_error("find the table", e));
    match cmd {
        DataCommand::Put { table, values } => {
            let info = info_of(&table)?;
            check_row(&info.column_desc, &values).map_err(|e| format!("Put failed: {e}"))?;
            client.put(&table, tpb::Row { values }).await.map_err(|e| client_error("put", e))?;
            Ok("Put ok".into())
        }
        DataCommand::Get { table, key, index } => {
            let info = info_of(&table)?;
            let idx = index_of(&info, index.as_deref())?;
            match client.get(&table, &key, idx).await.map_err(|e| client_error("get", e))? {
                Some(found) => Ok(render_rows(&info, &[(found.ts, found.row)])),
                None => Err(format!("Fail to get value! error msg: key {key} not found")),
            }
        }
        DataCommand::Scan { table, key, index, st, et, limit } => {
            let info = info_of(&table)?;
            let idx = index_of(&info, index.as_deref())?;
            let rows = client.scan(&table, &key, idx, st, et, limit).await.map_err(|e| client_error("scan", e))?;
            let rows: Vec<(u64, tpb::Row)> = rows.into_iter().map(|r| (r.ts, r.row)).collect();
            Ok(render_rows(&info, &rows))
        }
        DataCommand::Count { table, key, index } => {
            let info = info_of(&table)?;
            let idx = index_of(&info, index.as_deref())?;
            let rows = client.scan(&table, &key, idx, 0, 0, 0).await.map_err(|e| client_error("count", e))?;
            Ok(format!("count: {}", rows.len()))
        }
        DataCommand::Preview { table, limit } => {
            let info = info_of(&table)?;
            let rows = client.preview(&table, limit).await.map_err(|e| client_error("preview", e))?;
            let mut headers = vec!["#"];
            headers.extend(columns(&info));
            let cells: Vec<Vec<String>> = rows
                .into_iter()
                .enumerate()
                .map(|(i, row)| std::iter::once((i + 1).to_string()).chain(row.values).collect())
                .collect();
            Ok(table::render(&headers, &cells))
        }
        DataCommand::Delete { table, key, index } => {
            let info = info_of(&table)?;
            let idx = index_of(&info, index.as_deref())?;
            client.delete(&table, &key, idx).await.map_err(|e| client_error("delete", e))?;
            Ok("delete ok".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(line: &str) -> Result<DataCommand, String> {
        parse(&super::super::words(line))
    }

    #[test]
    fn commands_parse_in_openmldb_syntax() {
        assert_eq!(
            p("put t k1 1.5 100"),
            Ok(DataCommand::Put { table: "t".into(), values: vec!["k1".into(), "1.5".into(), "100".into()] })
        );
        assert_eq!(p("get t k1"), Ok(DataCommand::Get { table: "t".into(), key: "k1".into(), index: None }));
        assert_eq!(
            p("count t k1 by_card"),
            Ok(DataCommand::Count { table: "t".into(), key: "k1".into(), index: Some("by_card".into()) })
        );
        assert_eq!(
            p("scan t k1 0 0"),
            Ok(DataCommand::Scan { table: "t".into(), key: "k1".into(), index: None, st: 0, et: 0, limit: 0 })
        );
        assert_eq!(
            p("scan t k1 by_card 200 100 5"),
            Ok(DataCommand::Scan {
                table: "t".into(),
                key: "k1".into(),
                index: Some("by_card".into()),
                st: 200,
                et: 100,
                limit: 5
            })
        );
        assert_eq!(p("preview t"), Ok(DataCommand::Preview { table: "t".into(), limit: PREVIEW_DEFAULT }));
        assert_eq!(p("delete t k1"), Ok(DataCommand::Delete { table: "t".into(), key: "k1".into(), index: None }));
    }

    #[test]
    fn bad_command_lines_get_their_usage() {
        for line in ["put t", "get t", "get t k i extra", "scan t k 1", "scan t k i 1 2 3 4", "preview", "delete"] {
            let err = p(line).expect_err(line);
            assert!(err.contains("usage:"), "{line}: {err}");
        }
        assert!(p("scan t k 100 200").unwrap_err().contains("less than end_time"));
        assert!(p("scan t k 5 x").unwrap_err().contains("Invalid end_time"));
        assert!(p("preview t 0").unwrap_err().contains("Invalid limit"));
        assert!(p(&format!("preview t {}", PREVIEW_MAX + 1)).unwrap_err().contains("Invalid limit"));
        assert!(p("scan t k 1 0 99999999999").unwrap_err().contains("Invalid limit"));
    }

    #[test]
    fn index_names_resolve_to_positions() {
        let key = |n: &str| tpb::ColumnKey { index_name: n.into(), ..Default::default() };
        let info = TableInfo { name: "t".into(), column_key: vec![key("a"), key("b")], ..Default::default() };
        assert_eq!(index_of(&info, None), Ok(0));
        assert_eq!(index_of(&info, Some("b")), Ok(1));
        assert!(index_of(&info, Some("c")).unwrap_err().contains("its indexes: a, b"));
    }

    #[test]
    fn rows_print_with_their_ts_under_the_columns() {
        let col = |n: &str| tpb::ColumnDesc { name: n.into(), data_type: "string".into() };
        let info = TableInfo { column_desc: vec![col("card"), col("amount")], ..Default::default() };
        let row = tpb::Row { values: vec!["c1".into(), "7".into()] };
        let out = render_rows(&info, &[(1700, row)]);
        let mut lines = out.lines();
        let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
        assert_eq!(header, ["#", "ts", "card", "amount"]);
        assert!(lines.next().unwrap().starts_with("---"));
        assert_eq!(lines.next().unwrap().split_whitespace().collect::<Vec<_>>(), ["1", "1700", "c1", "7"]);
    }
}
