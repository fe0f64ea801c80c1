//! The coordination conformance suite against the `model` server on real tokio over loopback, as
//! `openmldb --role=coord` runs in production.
#![cfg(not(madsim))]

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use mldb_tests::conformance::{self, Backend};
use openmldb::coord::{ClientOptions, CoordServerConfig, Coordinator, ModelCoordinator};

struct Model {
    addr: String,
}

impl Backend for Model {
    fn connect(&self, session_timeout: Duration) -> Pin<Box<dyn Future<Output = Box<dyn Coordinator>> + Send + '_>> {
        Box::pin(async move {
            let c = ModelCoordinator::connect(&self.addr, ClientOptions::new(session_timeout)).await.expect("connect");
            Box::new(c) as Box<dyn Coordinator>
        })
    }
    fn expiry_slack(&self) -> Duration {
        // One tick, plus scheduling noise of a real machine.
        CoordServerConfig::default().tree.tick + Duration::from_millis(100)
    }
    fn root(&self) -> String {
        "/conformance".into()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_on_the_model_backend_over_loopback() {
    let server = openmldb::coord::serve("127.0.0.1:0", CoordServerConfig::default()).await.unwrap();
    let addr = server.local_addr().unwrap().to_string();
    conformance::run_all(&Model { addr }).await;
}
