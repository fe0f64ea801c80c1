//! Simulated machines and disks: a process crash keeps the page cache, a machine restart loses exactly the
//! unsynced tail, and a restarted machine's processes wait to be started by hand.
#![cfg(madsim)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use mldb_sim::harness::{Cluster, ProcessCtx, process_main};
use mldb_sim::runner::run_seed;
use openmldb::storage::Disk;

/// What the writer made durable so far: the number of records covered by its last completed sync.
#[derive(Default)]
struct Progress {
    written: usize,
    synced: usize,
}

fn record(i: usize) -> Vec<u8> {
    format!("record-{i:06}\n").into_bytes()
}

/// Appends a record every 10 ms and syncs after every 7th; continues where the file ends after a restart.
fn writer(progress: Arc<Mutex<Progress>>) -> mldb_sim::harness::ProcessMain {
    process_main(move |ctx: ProcessCtx| {
        let progress = progress.clone();
        async move {
            let disk = ctx.disk.scoped(&ctx.name).unwrap_or_else(|_| {
                panic!("scope the disk of {}", ctx.name);
            });
            disk.create_dir_all("").await.unwrap();
            let mut f = disk.open_append("log").await.unwrap();
            let mut i = (f.len() as usize) / record(0).len();
            loop {
                f.append(&record(i)).await.unwrap();
                i += 1;
                progress.lock().unwrap().written = i;
                if i.is_multiple_of(7) {
                    f.sync().await.unwrap();
                    progress.lock().unwrap().synced = i;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    })
}

/// Waits until the writer has records past its last sync, so the fault that follows has a tail to lose.
async fn until_unsynced_tail(progress: &Mutex<Progress>) -> (usize, usize) {
    loop {
        let (w, s) = {
            let p = progress.lock().unwrap();
            (p.written, p.synced)
        };
        if w > s {
            return (w, s);
        }
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
}

fn expected(n: usize) -> Vec<u8> {
    (0..n).flat_map(record).collect()
}

#[test]
fn a_crash_keeps_unsynced_data_and_a_machine_restart_loses_exactly_the_unsynced_tail() {
    for seed in mldb_tests::seeds(&[5]) {
        run_seed(seed, Some(Duration::from_secs(60)), |trace| async move {
            let mut c = Cluster::new(trace.clone());
            let m = c.add_machine("machine-a");
            let progress = Arc::new(Mutex::new(Progress::default()));
            c.add_process(m, "tablet-1", writer(progress.clone()), true);
            let disk = c.machine(m).disk.clone();

            tokio::time::sleep(Duration::from_millis(1_234)).await;
            let (written, _) = until_unsynced_tail(&progress).await;
            c.crash("tablet-1").unwrap();
            assert_eq!(disk.read("tablet-1/log").await.unwrap(), expected(written), "a process crash loses nothing");

            c.start("tablet-1").unwrap();
            tokio::time::sleep(Duration::from_millis(1_555)).await;
            let (written, synced) = until_unsynced_tail(&progress).await;
            assert!(written > synced);
            c.machine_restart(m).unwrap();
            assert!(!c.is_running("tablet-1"), "processes stay down after a machine restart");
            assert_eq!(
                disk.read("tablet-1/log").await.unwrap(),
                expected(synced),
                "exactly the synced prefix survives"
            );
            assert!(!trace.grep("machine_restart machine-a").is_empty());

            tokio::time::sleep(Duration::from_secs(1)).await;
            assert_eq!(disk.read("tablet-1/log").await.unwrap(), expected(synced), "nothing runs until started");
            c.start_machine(m).unwrap();
            tokio::time::sleep(Duration::from_millis(500)).await;
            let written = progress.lock().unwrap().written;
            assert!(written > synced);
            assert_eq!(
                disk.read("tablet-1/log").await.unwrap(),
                expected(written),
                "the writer continues from the tail"
            );
        });
    }
}

/// A task whose future holds its own waker (here through a channel it waits on, whose sender it keeps) outlives
/// the runtime unless its process is killed: madsim drops no task when a run ends. `shutdown` kills every
/// process, and one yield lets the executor drop their tasks (a run of the reference scenario leaked about 90 MB
/// per seed before).
#[test]
fn shutdown_drops_every_task_of_every_process() {
    let held = Arc::new(());
    let weak = Arc::downgrade(&held);
    let out = run_seed(1, Some(Duration::from_secs(10)), move |trace| async move {
        let mut cluster = Cluster::new(trace);
        let m = cluster.add_machine("m");
        let held = Mutex::new(Some(held));
        let main = process_main(move |_ctx: ProcessCtx| {
            let held = held.lock().unwrap().take();
            async move {
                let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
                let _keep = (tx, held);
                // Never answered: the channel keeps this task's waker, and the task keeps the channel.
                rx.recv().await;
            }
        });
        cluster.add_process(m, "p", main, true);
        tokio::time::sleep(Duration::from_millis(10)).await;
        cluster.shutdown();
        tokio::task::yield_now().await;
    });
    drop(out);
    assert_eq!(weak.strong_count(), 0, "the process's task was dropped with everything it held");
}
