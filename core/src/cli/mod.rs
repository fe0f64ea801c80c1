//! The command-line clients: parsing, rendering in OpenMLDB's formats, and the REPL loop shared by the clients.
//!
//! - [`ns_client`]: `openmldb --role=ns_client`, through whichever nameserver is active.
//! - [`repl`]: the interactive loop.
//! - [`table`]: column tables as OpenMLDB's CLI prints them.
//! - [`tablet_client`]: `openmldb --role=client --endpoint=<tablet>`.

pub mod ns_client;
pub mod repl;
pub mod table;
pub mod tablet_client;

/// A command's usage line and what it does, for `help` and for usage errors.
#[derive(Debug, Clone, Copy)]
pub struct CommandHelp {
    pub name: &'static str,
    pub usage: &'static str,
    pub about: &'static str,
}

/// The `help` text: every command with its usage.
pub fn help_text(commands: &[CommandHelp]) -> String {
    let width = commands.iter().map(|c| c.usage.len()).max().unwrap_or(0);
    let mut out = String::new();
    for c in commands {
        out.push_str(&format!("  {:width$}  {}\n", c.usage, c.about));
    }
    out
}

/// Splits a command line into words (whitespace-separated; no quoting is needed by any command).
pub fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}
