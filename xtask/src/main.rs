//! Project chores, so that each is one command on any machine:
//!
//! - `cargo xtask test`: every test of both builds: the normal one (real tokio) and the simulator one
//!   (`--cfg madsim`, in `target/sim`).
//! - `cargo xtask lint`: `cargo fmt --check` and clippy on both builds, warnings denied.
//! - `cargo xtask table`: the main job, the simulated availability table (DESIGN section 8).

use std::path::PathBuf;
use std::process::{Command, ExitCode};

const USAGE: &str = "usage: cargo xtask <test|lint|table> [extra args: cargo test args, or mldb-sim table args]";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(task) = args.next() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let extra: Vec<String> = args.collect();
    let result = match task.as_str() {
        "test" => test(&extra),
        "lint" => lint(),
        "table" => return table(&extra),
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        other => {
            eprintln!("unknown task {other:?}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(step) => {
            eprintln!("xtask: {step} failed");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root. `cargo run` sets `CARGO_MANIFEST_DIR` for the running binary too; that one wins over the
/// compile-time value, so a binary built in another copy of the workspace (with a shared target dir) still tests
/// the workspace it was run from.
fn root() -> PathBuf {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from);
    manifest
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// Runs `cargo <args>` in the workspace root; the aliases `stest`/`sclippy` come from `.cargo/config.toml`.
fn cargo(args: &[&str], extra: &[String]) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let what = format!("cargo {} {}", args.join(" "), extra.join(" "));
    eprintln!("xtask: {}", what.trim_end());
    let status =
        Command::new(cargo).args(args).args(extra).current_dir(root()).status().map_err(|e| format!("{what}: {e}"))?;
    if status.success() { Ok(()) } else { Err(what) }
}

fn test(extra: &[String]) -> Result<(), String> {
    let mut tail = Vec::new();
    if !extra.is_empty() {
        tail.push("--".to_string());
        tail.extend(extra.iter().cloned());
    }
    cargo(&["test", "--workspace"], &tail)?;
    cargo(&["stest", "--workspace"], &tail)
}

fn lint() -> Result<(), String> {
    cargo(&["fmt", "--all", "--", "--check"], &[])?;
    cargo(&["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"], &[])?;
    cargo(&["sclippy", "--workspace", "--all-targets", "--", "-D", "warnings"], &[])
}

/// The main job: `mldb-sim table` in the simulator build, release profile; its exit code is the job's (0 every
/// row as documented or better, 1 a row worse than documented, 2 a usage or scenario error).
fn table(extra: &[String]) -> ExitCode {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut args: Vec<String> = ["srun", "--release", "--quiet", "-p", "mldb-sim", "--bin", "mldb-sim", "--", "table"]
        .map(String::from)
        .to_vec();
    args.extend(extra.iter().cloned());
    eprintln!("xtask: cargo {}", args.join(" "));
    match Command::new(cargo).args(&args).current_dir(root()).status() {
        Ok(status) => ExitCode::from(u8::try_from(status.code().unwrap_or(2)).unwrap_or(2)),
        Err(e) => {
            eprintln!("xtask: cannot run cargo: {e}");
            ExitCode::from(2)
        }
    }
}
