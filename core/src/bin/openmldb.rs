//! `openmldb`: one binary, one role per process, flags named as OpenMLDB names them.
//!
//! `openmldb --role=coord --endpoint=127.0.0.1:2181` serves the `model` coordination service (the embedded
//! single-machine default of DESIGN 4.2). The other roles of DESIGN 4.7 arrive with their components.

use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use openmldb::coord::{CoordServerConfig, tree::TreeConfig};

#[derive(Parser, Debug)]
#[command(name = "openmldb", about = "OpenMLDB online high-availability system", version)]
struct Flags {
    /// Which process to run: coord (more roles arrive with their components).
    #[arg(long)]
    role: String,
    /// Address to listen on, ip:port.
    #[arg(long)]
    endpoint: Option<String>,
    /// Coordination server: expiry granularity in milliseconds (ZooKeeper's tickTime).
    #[arg(long, default_value_t = 200)]
    coord_tick_ms: u64,
    /// Coordination server: largest session timeout granted, in milliseconds.
    #[arg(long, default_value_t = 60_000)]
    coord_max_session_timeout: u64,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let flags = match Flags::try_parse() {
        Ok(f) => f,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { std::process::ExitCode::from(2) } else { std::process::ExitCode::SUCCESS };
        }
    };
    match run(flags).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("openmldb: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(flags: Flags) -> anyhow::Result<()> {
    match flags.role.as_str() {
        "coord" => {
            let endpoint = flags.endpoint.context("--role=coord needs --endpoint=ip:port")?;
            let tick = Duration::from_millis(flags.coord_tick_ms.max(1));
            let tree = TreeConfig {
                tick,
                min_session_timeout: tick * 2,
                max_session_timeout: Duration::from_millis(flags.coord_max_session_timeout).max(tick * 2),
                ..TreeConfig::default()
            };
            let server = openmldb::coord::serve(&endpoint, CoordServerConfig { tree, ..Default::default() })
                .await
                .with_context(|| format!("cannot listen on {endpoint}"))?;
            println!(
                "coordination server listening on {}",
                server.local_addr().map(|a| a.to_string()).unwrap_or(endpoint)
            );
            server.join().await;
            Ok(())
        }
        "nameserver" | "tablet" | "taskmanager" | "ns_client" | "client" => {
            bail!("--role={} is not available in this build yet", flags.role)
        }
        other => {
            bail!("unknown --role={other:?}; expected coord, nameserver, tablet, taskmanager, ns_client or client")
        }
    }
}
