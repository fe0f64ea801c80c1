//! The command-line clients: parsing, rendering in OpenMLDB's formats, and the REPL loop shared by the clients.
//!
//! - [`ns_client`]: `openmldb --role=ns_client`, through whichever nameserver is active.
//! - [`data`]: the ns_client's data commands (put, get, scan, count, preview, delete) on the routing client.
//! - [`recoverdata`]: the one-click recovery (`openmldb --role=recoverdata`, or `--role=ops --cmd=recoverdata`).
//! - [`repl`]: the interactive loop.
//! - [`table`]: column tables as OpenMLDB's CLI prints them.
//! - [`tablet_client`]: `openmldb --role=client --endpoint=<tablet>`.

pub mod data;
pub mod ns_client;
pub mod recoverdata;
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

/// The usage error of command `name`, as OpenMLDB prints it.
pub fn usage(commands: &[CommandHelp], name: &str) -> String {
    let c = commands.iter().find(|c| c.name == name).expect("known command");
    format!("Bad format. usage: {}", c.usage)
}

/// A failed request, as OpenMLDB prints it: the server's message, or why there was no answer.
pub fn fail(what: &str, e: crate::rpc::RpcError) -> String {
    match e {
        crate::rpc::RpcError::Status(s) => format!("Fail to {what}. error msg: {}", s.message),
        other => format!("Fail to {what}. error msg: {other}"),
    }
}

/// Splits a command line into words (whitespace-separated; no quoting is needed by any command).
pub fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}
