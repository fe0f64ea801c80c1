//! The tablet's liveness in the coordination service (reference 1.4) and its self-fencing (DESIGN 5.1).
//!
//! The tablet keeps the ephemeral `/nodes/<endpoint>`, valued `startup_<endpoint>` at the first registration of
//! the process and `<endpoint>` after a session loss. While its session is in doubt (Disconnected) every leader
//! partition refuses writes; when the session comes back the writes resume; when it expired, the nameserver may
//! have moved the leaders, so they stay fenced until the nameserver confirms their role (ChangeRole, LoadTable).
//!
//! Deliberate difference: OpenMLDB exits when the old session's node still exists and lets its daemon restart it;
//! this tablet retries in-process until the server expires the old session, with the same outcome.

use std::sync::Arc;

use super::Tablet;
use crate::coord::{CoordError, CreateMode, Layout, SessionState, create_all};

pub async fn run(tablet: Arc<Tablet>) {
    let layout = Layout::new(&tablet.config.zk_root_path);
    let endpoint = tablet.config.endpoint.clone();
    let timeout = tablet.config.zk_session_timeout;
    let mut first = true;
    loop {
        let coord = match crate::coord::connect(&tablet.config.zk_cluster, tablet.config.coord_options()).await {
            Ok(c) => c,
            Err(e) => {
                tracing::info!(error = %e, "coordination service unreachable; retrying");
                continue;
            }
        };
        let mut events = coord.session_events();
        let value = if first { Layout::startup_value(&endpoint) } else { endpoint.clone() };
        let registered = match create_all(coord.as_ref(), &layout.nodes()).await {
            Ok(()) => coord.create(&layout.node(&endpoint), value.as_bytes(), CreateMode::Ephemeral).await,
            Err(e) => Err(e),
        };
        match registered {
            Ok(_) => {
                first = false;
                tablet.set_session(Some(coord.clone()));
                tablet.set_session_ok(true);
                tracing::info!(value, "tablet registered");
            }
            Err(e) => {
                if matches!(e, CoordError::NodeExists(_)) {
                    tracing::info!("previous session's node still exists; waiting for it to expire");
                } else {
                    tracing::info!(error = %e, "registration failed; retrying");
                }
                coord.close().await;
                tokio::time::sleep(timeout / 4).await;
                continue;
            }
        }
        while let Some(state) = events.next().await {
            match state {
                SessionState::Connected => tablet.set_session_ok(true),
                SessionState::Disconnected => tablet.set_session_ok(false),
                SessionState::Expired | SessionState::Closed => {
                    tablet.set_session_ok(false);
                    tablet.fence_leaders().await;
                    break;
                }
            }
        }
    }
}
