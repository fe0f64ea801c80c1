//! Three tablets on real tokio over loopback with real files: replication, a follower restart that reloads from
//! its own disk and catches up, and identical content at the end.
#![cfg(not(madsim))]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mldb_tests::tablets::{self, Outcome, acked_ids, create, ids, load, meta, status, wait_offset};
use openmldb::proto::tablet::TableMode;
use openmldb::storage::{Disk, RealDisk};
use openmldb::tablet::{Tablet, TabletConfig, TabletHandle};

struct TempDir(PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn start(endpoint: &str, dir: &std::path::Path) -> TabletHandle {
    std::fs::create_dir_all(dir).unwrap();
    let mut config = TabletConfig::new(endpoint);
    config.binlog_sync_to_disk_interval = Duration::from_millis(200);
    config.replicator.coffee_time = Duration::from_millis(100);
    config.replicator.match_interval = Duration::from_millis(100);
    let disk: Arc<dyn Disk> = Arc::new(RealDisk::new(dir));
    // A restarted tablet binds the port its previous instance held; under a loaded test run that instance's
    // listener may take a while to close, so retry for up to 10 s.
    let mut last = None;
    for _ in 0..500 {
        match Tablet::start(config.clone(), disk.clone()).await {
            Ok(h) => return h,
            Err(e) => {
                last = Some(e);
                tokio::time::sleep(Duration::from_millis(20)).await
            }
        }
    }
    panic!("tablet on {endpoint} did not start: {last:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_tablets_replicate_and_a_restarted_follower_catches_up() {
    let root = TempDir(std::env::temp_dir().join(format!("mldb-tablets-{}-{}", std::process::id(), free_port())));
    let eps: Vec<String> = (0..3).map(|_| format!("127.0.0.1:{}", free_port())).collect();
    let dirs: Vec<PathBuf> = (0..3).map(|i| root.0.join(format!("tablet-{i}"))).collect();
    let mut handles = Vec::new();
    for (ep, dir) in eps.iter().zip(&dirs) {
        handles.push(Some(start(ep, dir).await));
    }
    for f in &eps[1..] {
        create(f, meta(TableMode::Follower, 1, &[])).await;
    }
    create(&eps[0], meta(TableMode::Leader, 1, &eps[1..])).await;

    let leader = tablets::client(&eps[0]);
    let first = tablets::write(&leader, 0, 300, Duration::ZERO).await;
    // The follower process goes away (its sockets close, its files stay), then comes back and reloads.
    handles[1] = None;
    let second = tablets::write(&leader, 300, 600, Duration::ZERO).await;
    handles[1] = Some(start(&eps[1], &dirs[1]).await);
    load(&eps[1], meta(TableMode::Follower, 1, &[])).await;
    let third = tablets::write(&leader, 600, 900, Duration::ZERO).await;

    let log: Vec<_> = first.into_iter().chain(second).chain(third).collect();
    assert!(log.iter().all(|(_, o)| matches!(o, Outcome::Acked { .. })));
    let leader_offset = status(&eps[0]).await.unwrap().offset;
    assert_eq!(leader_offset, 900);
    for f in &eps[1..] {
        wait_offset(f, leader_offset, Duration::from_secs(20)).await;
    }
    let expected = acked_ids(&log);
    for ep in &eps {
        assert_eq!(ids(ep).await, expected, "{ep}");
    }
    drop(handles);
}
