//! Small process bodies the simulator tests and benches are built from, before the real servers exist:
//! the coordination server itself, and a registrar that keeps an ephemeral liveness node as a tablet does.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use openmldb::coord::{
    ClientOptions, CoordServerConfig, Coordinator, CreateMode, Layout, ModelCoordinator, SessionState, create_all,
};

use crate::harness::{Cluster, ProcessCtx, ProcessMain, process_main};

/// The port the coordination server listens on, as ZooKeeper's.
pub const COORD_PORT: u16 = 2181;

/// The `model` coordination server as a process body.
pub fn coord_server(config: CoordServerConfig) -> ProcessMain {
    process_main(move |ctx: ProcessCtx| {
        let mut config = config.clone();
        async move {
            // Durable on its machine's disk, as `--role=coord` in its data directory: a crash keeps the tree, a
            // power loss keeps what was fsynced (every change answered).
            if config.data.is_none() {
                let disk = ctx.disk.scoped("coord").expect("the coordination data directory");
                config.data = Some(openmldb::coord::server::DataDir(std::sync::Arc::new(disk)));
            }
            match openmldb::coord::serve(&ctx.endpoint(COORD_PORT), config).await {
                Ok(server) => server.join().await,
                // Damage in its data directory: it does not start, as the real server exits.
                Err(e) => tracing::error!(error = %e, "the coordination server cannot start"),
            }
        }
    })
}

/// Places the coordination server on a machine of its own, named `coord`; returns its `--zk_cluster` value
/// (`model://ip:2181`).
pub fn add_coord(cluster: &mut Cluster) -> String {
    let m = cluster.add_machine("coord-machine");
    let ip = cluster.add_process(m, "coord", coord_server(CoordServerConfig::default()), true);
    // Chosen explicitly, as every process names it: a bare host:port would be ZooKeeper (DESIGN 4.2).
    format!("{}{ip}:{COORD_PORT}", openmldb::coord::connect::MODEL_SCHEME)
}

/// What a registrar observed, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    Registered { session: i64 },
    State(SessionState),
}

/// A process that keeps an ephemeral `/nodes/<ip>:<port>` while it can, like a tablet: it registers, follows
/// its session, and after expiry registers again with a new session. Everything it sees goes to `log`.
pub fn registrar(coord: String, port: u16, session_timeout: Duration, log: Arc<Mutex<Vec<Seen>>>) -> ProcessMain {
    process_main(move |ctx: ProcessCtx| {
        let (coord, log) = (coord.clone(), log.clone());
        async move {
            let layout = Layout::default();
            let endpoint = ctx.endpoint(port);
            loop {
                let c = match ModelCoordinator::connect(&coord, ClientOptions::new(session_timeout)).await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::info!(error = %e, "coordination connect failed; retrying");
                        continue;
                    }
                };
                let mut events = c.session_events();
                let registered = match create_all(&c, &layout.nodes()).await {
                    Ok(()) => c.create(&layout.node(&endpoint), endpoint.as_bytes(), CreateMode::Ephemeral).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = registered {
                    // The previous session's node may linger until the server expires it.
                    tracing::info!(error = %e, "registration failed; retrying");
                    c.close().await;
                    tokio::time::sleep(session_timeout / 10).await;
                    continue;
                }
                log.lock().expect("registrar log").push(Seen::Registered { session: c.session_id() });
                while let Some(state) = events.next().await {
                    log.lock().expect("registrar log").push(Seen::State(state));
                    if state.is_terminal() {
                        break;
                    }
                }
            }
        }
    })
}
