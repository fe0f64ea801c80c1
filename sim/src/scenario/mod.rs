//! Scenario files, format v1 (DESIGN 7): parsing and validation, pure (no IO but reading the files).
//!
//! A scenario file is checked completely before anything runs, so a typo fails in a second with a message naming
//! the file, line and key instead of after minutes of simulation:
//!
//! - unknown keys anywhere, unknown flags, verbs and values are errors, with a "did you mean" when one is close;
//! - every step's verb gets exactly its keys: a missing one or one that belongs to another verb is an error;
//! - targets must name something: `tablet-4` with 3 tablets, an undeclared table or a pid beyond the table's
//!   partitions are errors, and so is a `{placeholder}` in a command that names nothing.
//!
//! Choices DESIGN 7 leaves open, made here:
//!
//! - `duration` defaults to `"120s"`; durations also take decimals (`"1.5s"`), see [`parse_duration`];
//! - `after = "previous"` may leave out `wait` (0 s); the first step's previous is the scenario's start;
//! - `at` and workload `start`/`stop` must lie within `duration`; workload `rate` may be fractional;
//! - `{target}` placeholders take any process target, e.g. `{leader(flow,0)}`, not only `{tablet-2}`;
//! - `disk_fault` options: `delay` (slow_fsync, default 1 s), `path` and `bytes` (corrupt_tail, default: the
//!   runner's choice of file, 4 bytes), and an added kind `clear` that removes the machine's disk faults;
//! - a `semisync` table needs at least 2 replicas; table names are letters, digits and `_`;
//! - key paths in errors index arrays from 0 (`step[0]` is the first step).

mod duration;
mod error;
mod flags;
mod model;
mod read;
mod target;
mod validate;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

pub use duration::{format_duration, parse_duration};
pub use error::ScenarioError;
pub use flags::{FlagKind, FlagSpec, KNOWN_FLAGS, flag_spec};
pub use model::{
    Action, ClientExpect, Cluster, Condition, DiskFault, Expect, FlagValue, Loss, MachineRef, NetworkConditions,
    Recovery, Replication, Scenario, Service, Step, StepTime, TableSpec, Workload, WorkloadKind,
};
pub use target::{CmdPart, Command, PartitionRef, ProcessId, ProcessTarget, Target};

/// Parses and validates one scenario; `origin` names it in errors (usually the file's path).
pub fn parse_str(src: &str, origin: &str) -> Result<Scenario, ScenarioError> {
    let doc = read::Doc { src, origin };
    let tree = toml::de::DeTable::parse(src).map_err(|e| {
        let span = e.span();
        doc.err("", span, format!("invalid TOML: {}", e.message().trim_end()))
    })?;
    validate::scenario(&read::Table::root(&doc, tree.get_ref()))
}

/// Reads and parses one scenario file.
pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
    let origin = path.display().to_string();
    let src = std::fs::read_to_string(path).map_err(|e| io_error(&origin, &e))?;
    parse_str(&src, &origin)
}

/// Loads every scenario the command line names: a file as itself, a directory as every `*.toml` in it, sorted by
/// file name. A directory without any is an error, since running nothing would look like passing.
pub fn load_dir_or_files(paths: &[PathBuf]) -> Result<Vec<(PathBuf, Scenario)>, ScenarioError> {
    let mut out = Vec::new();
    for path in paths {
        if path.is_dir() {
            let origin = path.display().to_string();
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| io_error(&origin, &e))?
                .map(|entry| entry.map(|e| e.path()))
                .collect::<Result<_, _>>()
                .map_err(|e| io_error(&origin, &e))?;
            files.retain(|f| f.extension().is_some_and(|x| x == "toml") && f.is_file());
            files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
            if files.is_empty() {
                return Err(ScenarioError {
                    origin,
                    line: None,
                    key: String::new(),
                    message: "no *.toml scenario file in this directory".into(),
                });
            }
            for f in files {
                let s = load(&f)?;
                out.push((f, s));
            }
        } else {
            out.push((path.clone(), load(path)?));
        }
    }
    Ok(out)
}

fn io_error(origin: &str, e: &std::io::Error) -> ScenarioError {
    ScenarioError { origin: origin.to_string(), line: None, key: String::new(), message: format!("cannot read: {e}") }
}
