//! Targets: which process (or machine) a step acts on, and `{target}` placeholders in commands.
//!
//! Parsing here is syntax only; whether a target names something in the scenario's cluster and tables is checked by
//! [`Scenario`](super::Scenario) validation, which knows both. Roles such as `active_nameserver` or
//! `leader(flow,0)` can only be resolved while the scenario runs.

use std::fmt;

/// What a target looks like, for error messages.
pub(crate) const TARGET_HINT: &str = "expected tablet-N, nameserver-N, taskmanager-N, coord, active_nameserver, \
     standby_nameserver, active_taskmanager, leader(table,pid), follower(table,pid) or machine(<process>)";

/// A process known before the run: its role and 1-based index (the coordination server is alone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProcessId {
    Coord,
    Tablet(usize),
    Nameserver(usize),
    Taskmanager(usize),
}

impl ProcessId {
    /// Parses `coord` or `<role>-<N>`; `N` is written without leading zeros, so every process has one name.
    pub fn parse(text: &str) -> Option<ProcessId> {
        if text == "coord" {
            return Some(ProcessId::Coord);
        }
        let (role, n) = text.rsplit_once('-')?;
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) || (n.len() > 1 && n.starts_with('0')) {
            return None;
        }
        let n: usize = n.parse().ok()?;
        match role {
            "tablet" => Some(ProcessId::Tablet(n)),
            "nameserver" => Some(ProcessId::Nameserver(n)),
            "taskmanager" => Some(ProcessId::Taskmanager(n)),
            _ => None,
        }
    }

    /// The 1-based index (0 for the coordination server).
    pub fn index(self) -> usize {
        match self {
            ProcessId::Coord => 0,
            ProcessId::Tablet(n) | ProcessId::Nameserver(n) | ProcessId::Taskmanager(n) => n,
        }
    }

    /// The role's name as in process names, `tablet`, `nameserver`, `taskmanager` or `coord`.
    pub fn role(self) -> &'static str {
        match self {
            ProcessId::Coord => "coord",
            ProcessId::Tablet(_) => "tablet",
            ProcessId::Nameserver(_) => "nameserver",
            ProcessId::Taskmanager(_) => "taskmanager",
        }
    }
}

impl fmt::Display for ProcessId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProcessId::Coord => f.write_str("coord"),
            p => write!(f, "{}-{}", p.role(), p.index()),
        }
    }
}

/// One partition of a declared table.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PartitionRef {
    pub table: String,
    pub pid: u32,
}

/// A target that is one process; the runner resolves the roles when the step runs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ProcessTarget {
    Process(ProcessId),
    /// The nameserver holding the leader lock.
    ActiveNameserver,
    /// A nameserver that does not hold it (the first alive one by index).
    StandbyNameserver,
    ActiveTaskmanager,
    /// The tablet leading that partition.
    Leader(PartitionRef),
    /// The first alive follower of that partition.
    Follower(PartitionRef),
}

/// A step's target: a process, or the machine a process runs on (`machine(tablet-2)`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    Process(ProcessTarget),
    Machine(ProcessTarget),
}

impl ProcessTarget {
    /// Parses one process target; the error says what is wrong, without the key.
    pub fn parse(text: &str) -> Result<ProcessTarget, String> {
        match Target::parse(text)? {
            Target::Process(p) => Ok(p),
            Target::Machine(_) => Err(format!("{text} is a machine, and a process is needed here")),
        }
    }
}

impl Target {
    /// Parses any target, `machine(..)` included; the error says what is wrong, without the key.
    pub fn parse(text: &str) -> Result<Target, String> {
        let bad = || format!("bad target {text:?}: {TARGET_HINT}");
        let text_t = text.trim();
        if let Some(inner) = call_args(text_t, "machine") {
            return match Target::parse(inner) {
                Ok(Target::Process(p)) => Ok(Target::Machine(p)),
                Ok(Target::Machine(_)) => Err(format!("bad target {text:?}: a machine of a machine")),
                Err(_) => Err(bad()),
            };
        }
        for (name, leader) in [("leader", true), ("follower", false)] {
            if let Some(args) = call_args(text_t, name) {
                let (table, pid) = args.split_once(',').ok_or_else(bad)?;
                let (table, pid) = (table.trim(), pid.trim());
                let pid_ok = !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit());
                let pid = pid.parse::<u32>().ok().filter(|_| pid_ok).ok_or_else(bad)?;
                if !valid_table_name(table) {
                    return Err(bad());
                }
                let part = PartitionRef { table: table.to_string(), pid };
                return Ok(Target::Process(if leader {
                    ProcessTarget::Leader(part)
                } else {
                    ProcessTarget::Follower(part)
                }));
            }
        }
        let p = match text_t {
            "active_nameserver" => ProcessTarget::ActiveNameserver,
            "standby_nameserver" => ProcessTarget::StandbyNameserver,
            "active_taskmanager" => ProcessTarget::ActiveTaskmanager,
            other => ProcessTarget::Process(ProcessId::parse(other).ok_or_else(bad)?),
        };
        Ok(Target::Process(p))
    }

    /// The process this target names or whose machine it names.
    pub fn process(&self) -> &ProcessTarget {
        match self {
            Target::Process(p) | Target::Machine(p) => p,
        }
    }
}

/// `name(args)` → `args`.
fn call_args<'t>(text: &'t str, name: &str) -> Option<&'t str> {
    text.strip_prefix(name)?.trim_start().strip_prefix('(')?.strip_suffix(')')
}

/// Table names follow OpenMLDB's rule (letters, digits, `_`), which also keeps them clear of target syntax.
pub(crate) fn valid_table_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

impl fmt::Display for ProcessTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProcessTarget::Process(p) => p.fmt(f),
            ProcessTarget::ActiveNameserver => f.write_str("active_nameserver"),
            ProcessTarget::StandbyNameserver => f.write_str("standby_nameserver"),
            ProcessTarget::ActiveTaskmanager => f.write_str("active_taskmanager"),
            ProcessTarget::Leader(p) => write!(f, "leader({},{})", p.table, p.pid),
            ProcessTarget::Follower(p) => write!(f, "follower({},{})", p.table, p.pid),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Process(p) => p.fmt(f),
            Target::Machine(p) => write!(f, "machine({p})"),
        }
    }
}

/// A command line for ns_client or the tablet client, with its `{target}` placeholders parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The text as written in the file.
    pub text: String,
    pub parts: Vec<CmdPart>,
}

/// A piece of a [`Command`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CmdPart {
    Text(String),
    /// `{tablet-2}`: replaced by that process's endpoint (ip:port) when the step runs. Any process target may be
    /// written, e.g. `{leader(flow,0)}`.
    Endpoint(ProcessTarget),
}

impl Command {
    /// Splits `text` at its placeholders. A `{` opens a placeholder that the next `}` closes; a lone `}` is text.
    pub fn parse(text: &str) -> Result<Command, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(CmdPart::Text(rest[..open].to_string()));
            }
            let after = &rest[open + 1..];
            let close =
                after.find('}').ok_or_else(|| format!("placeholder `{{` without a closing `}}` in {text:?}"))?;
            let inner = &after[..close];
            let target = ProcessTarget::parse(inner).map_err(|e| format!("placeholder {{{inner}}}: {e}"))?;
            parts.push(CmdPart::Endpoint(target));
            rest = &after[close + 1..];
        }
        if !rest.is_empty() {
            parts.push(CmdPart::Text(rest.to_string()));
        }
        Ok(Command { text: text.to_string(), parts })
    }

    /// The placeholders' targets, in order.
    pub fn targets(&self) -> impl Iterator<Item = &ProcessTarget> {
        self.parts.iter().filter_map(|p| match p {
            CmdPart::Endpoint(t) => Some(t),
            CmdPart::Text(_) => None,
        })
    }

    /// The command line with every placeholder replaced by `endpoint(target)`.
    pub fn render<E>(&self, mut endpoint: impl FnMut(&ProcessTarget) -> Result<String, E>) -> Result<String, E> {
        let mut out = String::with_capacity(self.text.len());
        for part in &self.parts {
            match part {
                CmdPart::Text(t) => out.push_str(t),
                CmdPart::Endpoint(target) => out.push_str(&endpoint(target)?),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(table: &str, pid: u32) -> PartitionRef {
        PartitionRef { table: table.to_string(), pid }
    }

    #[test]
    fn every_target_form_parses_and_prints_back() {
        let cases = [
            ("tablet-1", Target::Process(ProcessTarget::Process(ProcessId::Tablet(1)))),
            ("nameserver-2", Target::Process(ProcessTarget::Process(ProcessId::Nameserver(2)))),
            ("taskmanager-12", Target::Process(ProcessTarget::Process(ProcessId::Taskmanager(12)))),
            ("coord", Target::Process(ProcessTarget::Process(ProcessId::Coord))),
            ("active_nameserver", Target::Process(ProcessTarget::ActiveNameserver)),
            ("standby_nameserver", Target::Process(ProcessTarget::StandbyNameserver)),
            ("active_taskmanager", Target::Process(ProcessTarget::ActiveTaskmanager)),
            ("leader(flow,0)", Target::Process(ProcessTarget::Leader(part("flow", 0)))),
            ("follower(t_2,7)", Target::Process(ProcessTarget::Follower(part("t_2", 7)))),
            ("machine(tablet-2)", Target::Machine(ProcessTarget::Process(ProcessId::Tablet(2)))),
            ("machine(coord)", Target::Machine(ProcessTarget::Process(ProcessId::Coord))),
            ("machine(leader(flow,1))", Target::Machine(ProcessTarget::Leader(part("flow", 1)))),
        ];
        for (text, want) in cases {
            assert_eq!(Target::parse(text).as_ref(), Ok(&want), "{text}");
            assert_eq!(want.to_string(), text);
        }
        assert_eq!(Target::parse(" leader( flow , 3 ) "), Ok(Target::Process(ProcessTarget::Leader(part("flow", 3)))));
    }

    #[test]
    fn malformed_targets_are_refused() {
        for text in [
            "",
            "tablet",
            "tablet-",
            "tablet-x",
            "tablet-01",
            "tablet2",
            "disk-1",
            "leader(flow)",
            "leader(flow,-1)",
            "leader(,0)",
            "leader(fl-ow,0)",
            "leader(flow,0",
            "machine()",
            "machine(machine(tablet-1))",
            "Tablet-1",
        ] {
            assert!(Target::parse(text).is_err(), "{text:?} should be refused");
        }
        assert_eq!(
            ProcessTarget::parse("machine(tablet-1)").unwrap_err(),
            "machine(tablet-1) is a machine, and a process is needed here"
        );
    }

    #[test]
    fn commands_split_at_placeholders_and_render() {
        let cmd = Command::parse("offlineendpoint {tablet-2} now {leader(flow,0)}").unwrap();
        assert_eq!(
            cmd.parts,
            vec![
                CmdPart::Text("offlineendpoint ".into()),
                CmdPart::Endpoint(ProcessTarget::Process(ProcessId::Tablet(2))),
                CmdPart::Text(" now ".into()),
                CmdPart::Endpoint(ProcessTarget::Leader(part("flow", 0))),
            ]
        );
        let out = cmd.render(|t| Ok::<_, ()>(format!("<{t}>"))).unwrap();
        assert_eq!(out, "offlineendpoint <tablet-2> now <leader(flow,0)>");
        assert_eq!(Command::parse("showtable }").unwrap().parts, vec![CmdPart::Text("showtable }".into())]);
        assert!(Command::parse("x {tablet-1").is_err());
        assert!(Command::parse("x {nobody}").is_err());
        assert!(Command::parse("x {machine(tablet-1)}").is_err());
    }
}
