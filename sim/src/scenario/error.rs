//! The one error of scenario loading: where (file, line, key) and what.

use std::fmt;

/// A scenario file that cannot be read or is not a valid format v1 scenario.
///
/// Displayed as `file:line: key: message`, e.g.
/// `leader.toml:25: step[3].target: target tablet-4 names nothing: the cluster has 3 tablets`.
/// Array indexes in key paths are 0-based, as in [`Scenario::steps`](super::Scenario::steps); the line tells which
/// one a human means.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ScenarioError {
    /// The file's path (or the origin given to [`parse_str`](super::parse_str)).
    pub origin: String,
    /// 1-based line of the offending key or table, when the problem has a place in the file.
    pub line: Option<usize>,
    /// Key path such as `step[3].target`; empty when the problem is the whole file (unreadable, bad TOML).
    pub key: String,
    pub message: String,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.origin)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}
