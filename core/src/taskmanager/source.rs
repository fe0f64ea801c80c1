//! Where an import's rows come from and how an export's rows are written: pure parsing and rendering.
//!
//! - A file: CSV on the TaskManager's data dir (`--job_data_dir`), one row per line, values in the table's column
//!   order, comma-separated, no quoting (OpenMLDB's rows carry values as strings). A first line equal to the
//!   column names is a header and is skipped. Every active TaskManager must see the same file (a shared mount in
//!   production), as OpenMLDB's TaskManagers read from HDFS.
//! - `gen:<rows>[:<prefix>]`: rows made up from their number, the same on every machine. The simulator has no
//!   shared file system, so its import scenarios use these; the checkers regenerate the keys to verify them.

use crate::client::values::{ColumnType, check_row};
use crate::proto::nameserver::TableInfo;
use crate::proto::tablet::ColumnDesc;

/// The most rows one import may hold in memory.
pub const MAX_IMPORT_ROWS: u64 = 10_000_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Generated { rows: u64, prefix: String },
    File(String),
}

impl Source {
    pub fn parse(s: &str) -> Result<Source, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("the import source is empty; give a file path or gen:<rows>[:<prefix>]".into());
        }
        let Some(spec) = s.strip_prefix("gen:") else { return Ok(Source::File(s.to_string())) };
        let (rows, prefix) = match spec.split_once(':') {
            Some((r, p)) => (r, p),
            None => (spec, "imp"),
        };
        let rows: u64 = rows.parse().map_err(|_| format!("bad row count {rows:?} in {s:?}: expected gen:<rows>"))?;
        if rows > MAX_IMPORT_ROWS {
            return Err(format!("{rows} rows is more than one import takes ({MAX_IMPORT_ROWS})"));
        }
        if prefix.is_empty() || prefix.contains(|c: char| c == ',' || c.is_whitespace()) {
            return Err(format!("bad prefix {prefix:?} in {s:?}: no commas or spaces"));
        }
        Ok(Source::Generated { rows, prefix: prefix.to_string() })
    }
}

/// The key of generated row `i`: unique per prefix.
pub fn generated_key(prefix: &str, i: u64) -> String {
    format!("{prefix}-{i:09}")
}

/// Generated row `i` for `info`'s columns: index 0's first key column holds [`generated_key`], every other column
/// a value of its declared type (integers and timestamps `1000 + i`, floats `1000 + i` and a half, booleans
/// alternating, dates within January 2024), strings and unknown types a short string.
pub fn generated_row(info: &TableInfo, prefix: &str, i: u64) -> Vec<String> {
    let key_col = info.column_key.first().and_then(|k| k.col_name.first()).map(String::as_str);
    let key_col = key_col.or(info.column_desc.first().map(|c| c.name.as_str()));
    info.column_desc
        .iter()
        .map(|c| {
            if Some(c.name.as_str()) == key_col {
                return generated_key(prefix, i);
            }
            match ColumnType::parse(&c.data_type) {
                Some(ColumnType::Int16 | ColumnType::UInt16) => (1_000 + i % 30_000).to_string(),
                Some(ColumnType::Int32 | ColumnType::UInt32) => (1_000 + i % 2_000_000_000).to_string(),
                Some(ColumnType::Int64 | ColumnType::UInt64 | ColumnType::Timestamp) => (1_000 + i).to_string(),
                Some(ColumnType::Float | ColumnType::Double) => format!("{}.5", 1_000 + i),
                Some(ColumnType::Bool) => i.is_multiple_of(2).to_string(),
                Some(ColumnType::Date) => format!("2024-01-{:02}", 1 + i % 28),
                Some(ColumnType::String) | None => format!("i{}", i % 7),
            }
        })
        .collect()
}

/// The rows of a CSV text for a table with `columns`, every value checked against its column's type; an error
/// names the line (and the import writes nothing).
pub fn parse_csv(text: &str, columns: &[ColumnDesc]) -> Result<Vec<Vec<String>>, String> {
    let header = columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(",");
    let mut rows = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() || (n == 0 && line == header) {
            continue;
        }
        let values: Vec<String> = line.split(',').map(str::to_string).collect();
        if values.len() != columns.len() {
            return Err(format!(
                "line {}: {} values, the table has {} columns ({header})",
                n + 1,
                values.len(),
                columns.len()
            ));
        }
        check_row(columns, &values).map_err(|e| format!("line {}: {e}", n + 1))?;
        if rows.len() as u64 >= MAX_IMPORT_ROWS {
            return Err(format!("more than {MAX_IMPORT_ROWS} rows; split the file"));
        }
        rows.push(values);
    }
    Ok(rows)
}

/// A CSV text with a header line, as [`parse_csv`] reads it back. A value holding a comma or a line break cannot
/// be written without quoting, which this format has not: it is an error naming the row.
pub fn render_csv(columns: &[String], rows: &[Vec<String>]) -> Result<String, String> {
    let mut out = columns.join(",");
    out.push('\n');
    for (i, r) in rows.iter().enumerate() {
        if let Some(v) = r.iter().find(|v| v.contains([',', '\n', '\r'])) {
            return Err(format!("row {i} has a value with a comma or line break ({v:?}); CSV export cannot hold it"));
        }
        out.push_str(&r.join(","));
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::tablet::{ColumnDesc, ColumnKey};

    fn info() -> TableInfo {
        let col = |n: &str, t: &str| ColumnDesc { name: n.into(), data_type: t.into() };
        TableInfo {
            column_desc: vec![col("v", "string"), col("id", "string"), col("ts", "int64")],
            column_key: vec![ColumnKey { col_name: vec!["id".into()], ts_name: "ts".into(), ..Default::default() }],
            ..Default::default()
        }
    }

    #[test]
    fn sources_parse_with_clear_errors() {
        assert_eq!(Source::parse("gen:10"), Ok(Source::Generated { rows: 10, prefix: "imp".into() }));
        assert_eq!(Source::parse("gen:3:a1"), Ok(Source::Generated { rows: 3, prefix: "a1".into() }));
        assert_eq!(Source::parse("data/rows.csv"), Ok(Source::File("data/rows.csv".into())));
        assert!(Source::parse("").unwrap_err().contains("empty"));
        assert!(Source::parse("gen:x").unwrap_err().contains("bad row count"));
        assert!(Source::parse("gen:1:a,b").unwrap_err().contains("bad prefix"));
        assert!(Source::parse("gen:99999999999").unwrap_err().contains("more than"));
    }

    #[test]
    fn generated_rows_put_the_key_in_the_index_column() {
        assert_eq!(generated_row(&info(), "p", 12), vec!["i5", "p-000000012", "1012"]);
        assert_ne!(generated_row(&info(), "p", 1), generated_row(&info(), "p", 2));
    }

    #[test]
    fn generated_rows_fit_every_declared_type() {
        let col = |n: &str, t: &str| ColumnDesc { name: n.into(), data_type: t.into() };
        let types = ["double", "float", "bool", "date", "smallint", "timestamp", "uint32", "varchar"];
        let mut columns = vec![col("id", "string")];
        columns.extend(types.iter().map(|t| col(&format!("c_{t}"), t)));
        let info = TableInfo {
            column_desc: columns.clone(),
            column_key: vec![ColumnKey { col_name: vec!["id".into()], ..Default::default() }],
            ..Default::default()
        };
        for i in [0, 1, 27, 28, 99_999] {
            let row = generated_row(&info, "p", i);
            assert_eq!(check_row(&columns, &row), Ok(()), "row {i}: {row:?}");
        }
    }

    #[test]
    fn csv_round_trips_and_reports_bad_lines() {
        let names: Vec<String> = ["id", "ts", "v"].iter().map(|s| s.to_string()).collect();
        let cols: Vec<ColumnDesc> = [("id", "string"), ("ts", "int64"), ("v", "string")]
            .iter()
            .map(|(n, t)| ColumnDesc { name: n.to_string(), data_type: t.to_string() })
            .collect();
        let rows = vec![vec!["a".to_string(), "1".into(), "x".into()], vec!["b".into(), "2".into(), "".into()]];
        let text = render_csv(&names, &rows).unwrap();
        assert_eq!(text, "id,ts,v\na,1,x\nb,2,\n");
        assert_eq!(parse_csv(&text, &cols).unwrap(), rows);
        // No header is fine too, and CRLF line ends.
        assert_eq!(parse_csv("a,1,x\r\nb,2,\r\n", &cols).unwrap(), rows);
        assert_eq!(
            parse_csv("a,1,x\nb,2\n", &cols).unwrap_err(),
            "line 2: 2 values, the table has 3 columns (id,ts,v)"
        );
        assert_eq!(
            parse_csv("a,1,x\nb,i3,y\n", &cols).unwrap_err(),
            "line 2: column ts is int64: \"i3\" is not a int64 value"
        );
        assert!(render_csv(&names, &[vec!["a,b".into(), "1".into(), "x".into()]]).unwrap_err().contains("row 0"));
    }
}
