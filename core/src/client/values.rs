//! Column values against their declared types.
//!
//! Rows travel as strings (`Row.values`) and the tablets store them as given; the declared type of each column
//! (`ColumnDesc.data_type`) is checked here, at the edges where a user's values come in: the ns_client's `put`
//! and the TaskManager's imports. A value that does not parse as its column's type is refused with the column
//! named, and nothing is written.
//!
//! The type names are OpenMLDB's SQL names (`bool`, `smallint`, `int`, `bigint`, `float`, `double`, `string`,
//! `varchar`, `timestamp`, `date`) and the old ns_client's (`int16`, `int32`, `int64`, `uint16`, `uint32`,
//! `uint64`), in any letter case. A timestamp is milliseconds since the epoch, a date `YYYY-MM-DD`.

use crate::proto::tablet::ColumnDesc;

/// A declared column type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Bool,
    Int16,
    Int32,
    Int64,
    UInt16,
    UInt32,
    UInt64,
    Float,
    Double,
    String,
    Timestamp,
    Date,
}

impl ColumnType {
    /// The type a `data_type` names, or `None` for a name this system does not know.
    pub fn parse(name: &str) -> Option<ColumnType> {
        Some(match name.to_ascii_lowercase().as_str() {
            "bool" | "boolean" => ColumnType::Bool,
            "smallint" | "int16" => ColumnType::Int16,
            "int" | "integer" | "int32" => ColumnType::Int32,
            "bigint" | "int64" => ColumnType::Int64,
            "uint16" => ColumnType::UInt16,
            "uint32" => ColumnType::UInt32,
            "uint64" => ColumnType::UInt64,
            "float" => ColumnType::Float,
            "double" => ColumnType::Double,
            "string" | "varchar" => ColumnType::String,
            "timestamp" => ColumnType::Timestamp,
            "date" => ColumnType::Date,
            _ => return None,
        })
    }

    /// Whether `value` is a value of this type.
    pub fn accepts(self, value: &str) -> bool {
        match self {
            ColumnType::Bool => matches!(value.to_ascii_lowercase().as_str(), "true" | "false"),
            ColumnType::Int16 => value.parse::<i16>().is_ok(),
            ColumnType::Int32 => value.parse::<i32>().is_ok(),
            ColumnType::Int64 => value.parse::<i64>().is_ok(),
            ColumnType::UInt16 => value.parse::<u16>().is_ok(),
            ColumnType::UInt32 => value.parse::<u32>().is_ok(),
            ColumnType::UInt64 => value.parse::<u64>().is_ok(),
            ColumnType::Float => value.parse::<f32>().is_ok_and(f32::is_finite),
            ColumnType::Double => value.parse::<f64>().is_ok_and(f64::is_finite),
            ColumnType::String => true,
            ColumnType::Timestamp => value.parse::<i64>().is_ok_and(|ms| ms >= 0),
            ColumnType::Date => is_date(value),
        }
    }
}

/// `YYYY-MM-DD` naming a day of the proleptic Gregorian calendar (year 1 to 9999).
fn is_date(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    let [y, m, d] = parts.as_slice() else { return false };
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return false;
    }
    let (Ok(y), Ok(m), Ok(d)) = (y.parse::<u32>(), m.parse::<u32>(), d.parse::<u32>()) else { return false };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    y >= 1 && (1..=days).contains(&d)
}

/// Why a row does not fit its table's columns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("the table has {expected} columns, the row {got} values")]
    ColumnCount { expected: usize, got: usize },
    #[error("column {column} is {data_type}: {value:?} is not a {data_type} value")]
    BadValue { column: String, data_type: String, value: String },
    #[error("column {column} has type {data_type:?}, which this system does not know")]
    UnknownType { column: String, data_type: String },
}

/// Checks every value of a row against its column's declared type, in column order; the first misfit is the
/// error.
pub fn check_row(columns: &[ColumnDesc], values: &[String]) -> Result<(), ValueError> {
    if columns.len() != values.len() {
        return Err(ValueError::ColumnCount { expected: columns.len(), got: values.len() });
    }
    for (c, v) in columns.iter().zip(values) {
        let ty = ColumnType::parse(&c.data_type)
            .ok_or_else(|| ValueError::UnknownType { column: c.name.clone(), data_type: c.data_type.clone() })?;
        if !ty.accepts(v) {
            return Err(ValueError::BadValue {
                column: c.name.clone(),
                data_type: c.data_type.clone(),
                value: v.clone(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(specs: &[(&str, &str)]) -> Vec<ColumnDesc> {
        specs.iter().map(|(n, t)| ColumnDesc { name: n.to_string(), data_type: t.to_string() }).collect()
    }

    fn row(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| v.to_string()).collect()
    }

    #[test]
    fn values_fit_their_types() {
        let c = cols(&[("id", "bigint"), ("price", "double"), ("name", "string"), ("ts", "timestamp")]);
        assert_eq!(check_row(&c, &row(&["7", "1.5", "x", "1700000000000"])), Ok(()));
        assert_eq!(
            check_row(&c, &row(&["7", "i3", "x", "1"])),
            Err(ValueError::BadValue { column: "price".into(), data_type: "double".into(), value: "i3".into() })
        );
        assert!(matches!(check_row(&c, &row(&["7"])), Err(ValueError::ColumnCount { expected: 4, got: 1 })));
        assert!(check_row(&c, &row(&["7", "NaN", "x", "1"])).is_err(), "no NaN in a double column");
        assert!(check_row(&c, &row(&["7", "1", "x", "-1"])).is_err(), "no negative timestamp");
        let unknown = cols(&[("a", "blob")]);
        assert!(matches!(check_row(&unknown, &row(&["x"])), Err(ValueError::UnknownType { .. })));
    }

    #[test]
    fn integer_widths_and_names() {
        assert!(ColumnType::parse("SMALLINT").unwrap().accepts("-32768"));
        assert!(!ColumnType::Int16.accepts("32768"));
        assert!(ColumnType::Int32.accepts("2147483647") && !ColumnType::Int32.accepts("2147483648"));
        assert!(!ColumnType::UInt32.accepts("-1"));
        assert!(ColumnType::parse("varchar") == Some(ColumnType::String));
        assert!(ColumnType::Bool.accepts("TRUE") && !ColumnType::Bool.accepts("1"));
        assert_eq!(ColumnType::parse("text"), None);
    }

    #[test]
    fn dates_are_days_of_the_calendar() {
        assert!(ColumnType::Date.accepts("2024-02-29"));
        assert!(!ColumnType::Date.accepts("2023-02-29"));
        assert!(!ColumnType::Date.accepts("1900-02-29"));
        assert!(ColumnType::Date.accepts("2000-02-29"));
        assert!(!ColumnType::Date.accepts("2024-13-01"));
        assert!(!ColumnType::Date.accepts("2024-1-01"));
        assert!(!ColumnType::Date.accepts("0000-01-01"));
    }
}
