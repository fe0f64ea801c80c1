//! The coordination conformance suite against the `model` server on real tokio over loopback, as
//! `openmldb --role=coord` runs in production: with a data directory on the real file system, so the restart
//! case drops the server (its tasks end as in a `kill -9`) and serves the same directory again on the same port.
#![cfg(not(madsim))]

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mldb_tests::conformance::{self, Backend};
use openmldb::coord::server::{CoordServer, DataDir};
use openmldb::coord::{ClientOptions, CoordServerConfig, Coordinator, ModelCoordinator};
use openmldb::storage::RealDisk;

struct Model {
    addr: String,
    dir: PathBuf,
    server: tokio::sync::Mutex<Option<CoordServer>>,
}

fn config(dir: &std::path::Path) -> CoordServerConfig {
    CoordServerConfig { data: Some(DataDir(Arc::new(RealDisk::new(dir)))), ..Default::default() }
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
    fn spec(&self) -> String {
        format!("model://{}", self.addr)
    }
    fn restart(&self) -> Option<Pin<Box<dyn Future<Output = ()> + Send + '_>>> {
        Some(Box::pin(async move {
            let mut server = self.server.lock().await;
            drop(server.take());
            tokio::time::sleep(Duration::from_millis(200)).await;
            *server = Some(openmldb::coord::serve(&self.addr, config(&self.dir)).await.expect("serve again"));
        }))
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    let dir = std::env::temp_dir().join(format!("mldb-{name}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_on_the_model_backend_over_loopback() {
    let dir = temp_dir("coord-conformance");
    let server = openmldb::coord::serve("127.0.0.1:0", config(&dir)).await.unwrap();
    let addr = server.local_addr().unwrap().to_string();
    let backend = Model { addr, dir: dir.clone(), server: tokio::sync::Mutex::new(Some(server)) };
    for (name, case) in conformance::cases() {
        let t = Instant::now();
        case(&backend).await;
        eprintln!("conformance case {name}: ok in {:?}", t.elapsed());
    }
    drop(backend);
    let _ = std::fs::remove_dir_all(dir);
}

/// `--zk_cluster=host:port` means ZooKeeper: pointed at our server instead, the connect fails within a second
/// with an error that names the fix, not after the session timeout with "unreachable".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zookeeper_spec_pointed_at_the_model_server_fails_at_once_and_says_so() {
    let server = openmldb::coord::serve("127.0.0.1:0", CoordServerConfig::default()).await.unwrap();
    let addr = server.local_addr().unwrap().to_string();
    let start = Instant::now();
    let err = match openmldb::coord::connect(&addr, ClientOptions::new(Duration::from_secs(10))).await {
        Ok(_) => panic!("a ZooKeeper session with our model server"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("model coordinator") && err.contains(&format!("model://{addr}")), "{err}");
    assert!(start.elapsed() < Duration::from_secs(3), "took {:?}", start.elapsed());
}

/// A session is closed only by its own client: a Close naming its id without its secret changes nothing, and a
/// request that names another session's id is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_client_cannot_close_or_use_a_session_by_its_id() {
    use openmldb::coord::CreateMode;
    use openmldb::coord::server as srv;
    use openmldb::proto::coord as pb;
    use openmldb::rpc::{ClientConfig, RpcClient};
    let server = openmldb::coord::serve("127.0.0.1:0", CoordServerConfig::default()).await.unwrap();
    let addr = server.local_addr().unwrap().to_string();
    let owner = ModelCoordinator::connect(&addr, ClientOptions::new(Duration::from_secs(4))).await.unwrap();
    owner.create("/lock", b"", CreateMode::Ephemeral).await.unwrap();
    // The id is public: anyone can read it off the node.
    let watcher = ModelCoordinator::connect(&addr, ClientOptions::new(Duration::from_secs(4))).await.unwrap();
    let sid = watcher.exists("/lock").await.unwrap().unwrap().ephemeral_owner;
    assert_eq!(sid, owner.session_id());
    let rpc = RpcClient::new(addr.clone(), ClientConfig::default());
    let close = rpc.call(srv::Close, pb::CloseRequest { session_id: sid, ..Default::default() }).await;
    assert!(close.is_err(), "a Close without the secret was accepted");
    let guessed = pb::CloseRequest { session_id: sid, secret: bytes::Bytes::from_static(&[0; 16]) };
    assert!(rpc.call(srv::Close, guessed).await.is_err());
    let create = pb::CreateRequest {
        session_id: sid,
        op: Some(pb::CreateOp { path: "/theirs".into(), mode: 1, ..Default::default() }),
        ..Default::default()
    };
    let e = rpc.call(srv::Create, create).await.unwrap_err().to_string();
    assert!(e.contains("authentication failed"), "{e}");
    let poll = pb::PollRequest { session_id: sid, max_wait_ms: 10, ..Default::default() };
    assert!(rpc.call(srv::Poll, poll).await.is_err(), "a stranger kept the session alive");
    // The owner's session and node are untouched; its own close ends them.
    assert!(watcher.exists("/lock").await.unwrap().is_some());
    assert_eq!(watcher.exists("/theirs").await.unwrap(), None);
    owner.close().await;
    assert_eq!(watcher.exists("/lock").await.unwrap(), None);
    watcher.close().await;
}
