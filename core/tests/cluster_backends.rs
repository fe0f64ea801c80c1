//! One whole cluster of real processes (three tablets, two nameservers, a TaskManager) on each coordination
//! backend: the embedded coordinator (`--role=coord`, `model://`) and real ZooKeeper from Debian's package
//! (`scripts/zookeeper.sh`). Both run the same script, with a chroot on `--zk_cluster`, a `--zk_root_path` and
//! credentials (`--zk_cert`), as a secured OpenMLDB deployment would: rows written through the routing client (a
//! TaskManager import), then `kill -9` of a tablet, of the coordination server (restarted on its data), and of the
//! active nameserver; after each, the cluster serves and every row is still there (an export counts them). A
//! client without the credentials is refused with a message that says why.
//!
//! Without ZooKeeper installed the ZooKeeper half prints SKIPPED and passes, unless `MLDB_REQUIRE_ZOOKEEPER=1`
//! (CI sets it): then it fails.
#![cfg(not(madsim))]

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use common::{Backend, Coord, Kill, TempDir, free_port, replicas, serially, spawn};

const CERT: &str = "--zk_cert=openmldb:s3cret";

/// Dropped in field order: the processes, then the coordination server, then the directory.
struct Cluster {
    tablets: Vec<Option<Kill>>,
    tablet_eps: Vec<String>,
    nameservers: Vec<Option<Kill>>,
    ns_eps: Vec<String>,
    tm: Option<Kill>,
    coord: Coord,
    dir: TempDir,
}

impl Cluster {
    fn flags(&self) -> Vec<String> {
        vec![format!("--zk_cluster={}", chrooted(&self.coord)), "--zk_root_path=/openmldb".into(), CERT.into()]
    }

    fn start(dir: TempDir, coord: Coord) -> Cluster {
        let mut c = Cluster {
            dir,
            coord,
            tablets: Vec::new(),
            tablet_eps: Vec::new(),
            nameservers: Vec::new(),
            ns_eps: Vec::new(),
            tm: None,
        };
        let flags = c.flags();
        for i in 0..3 {
            let ep = format!("127.0.0.1:{}", free_port());
            let mut args = vec!["--role=tablet".into(), format!("--endpoint={ep}")];
            args.push(format!("--db_root_path={}", c.dir.0.join(format!("tablet-{i}")).display()));
            args.extend(flags.iter().cloned());
            c.tablets.push(Some(spawn(&args)));
            c.tablet_eps.push(ep);
        }
        for _ in 0..2 {
            let ep = format!("127.0.0.1:{}", free_port());
            let mut args = vec!["--role=nameserver".into(), format!("--endpoint={ep}")];
            args.extend(flags.iter().cloned());
            c.nameservers.push(Some(spawn(&args)));
            c.ns_eps.push(ep);
        }
        let data = c.dir.0.join("jobs");
        std::fs::create_dir_all(&data).unwrap();
        let mut args = vec!["--role=taskmanager".into(), format!("--endpoint=127.0.0.1:{}", free_port())];
        args.push(format!("--job_data_dir={}", data.display()));
        args.extend(flags.iter().cloned());
        c.tm = Some(spawn(&args));
        c
    }

    fn ns_with(&self, flags: &[String], cmd: &str) -> Output {
        Command::new(env!("CARGO_BIN_EXE_openmldb"))
            .arg("--role=ns_client")
            .args(flags)
            .args(["--interactive=false", &format!("--cmd={cmd}")])
            .output()
            .unwrap()
    }

    fn ns(&self, cmd: &str) -> String {
        text(&self.ns_with(&self.flags(), cmd))
    }

    /// Runs `cmd` every 100 ms until `pred` holds, for at most a minute.
    async fn until(&self, cmd: &str, pred: impl Fn(&str) -> bool) -> String {
        let mut last = String::new();
        for _ in 0..600 {
            last = self.ns(cmd);
            if pred(&last) {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("`{cmd}` never reached the expected output; last output:\n{last}");
    }

    /// Exports the table to a file and returns its distinct keys (the header aside) and its row count.
    async fn export(&self, job: u32) -> (usize, usize) {
        let file = format!("export-{job}.csv");
        let out = self.ns(&format!("submitjob export t {file}"));
        assert!(out.contains("ExportOnlineData"), "{out}");
        let done = self.until(&format!("showjob {job}"), |o| o.contains("Finished") || o.contains("Failed")).await;
        assert!(done.contains("Finished"), "{done}");
        let all = std::fs::read_to_string(self.dir.0.join("jobs").join(file)).unwrap();
        let keys: std::collections::BTreeSet<&str> =
            all.lines().skip(1).map(|l| l.split(',').next().unwrap_or("")).collect();
        (keys.len(), all.lines().count().saturating_sub(1))
    }
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn every_partition_led(showtable: &str, dead: Option<&str>) -> bool {
    let r = replicas(showtable, "t");
    r.len() == 6
        && ["0", "1"].iter().all(|pid| r.iter().any(|x| x.0 == *pid && x.2 == "leader" && x.3 == "yes"))
        && dead.is_none_or(|ep| r.iter().filter(|x| x.1 == ep).all(|x| x.3 == "no"))
}

async fn the_script(mut c: Cluster, backend: &str) {
    const ROWS: usize = 3000;
    c.until("showtablet", |o| o.matches("kTabletHealthy").count() == 3).await;
    let created = c.ns("create t 0 2 3 id:string:index ts:int64:ts v:string");
    assert!(created.contains("Create table ok"), "{created}");
    let out = c.ns(&format!("submitjob import t gen:{ROWS}"));
    assert!(out.contains("ImportOnlineData"), "{out}");
    let done = c.until("showjob 1", |o| o.contains("Finished") || o.contains("Failed")).await;
    assert!(done.contains(&format!("{ROWS}/{ROWS}")), "{done}");
    assert_eq!(c.export(2).await, (ROWS, ROWS), "{backend}: rows after the import");

    // Without the credentials a client reaches the coordination service but none of the cluster's nodes.
    let stranger = vec![format!("--zk_cluster={}", chrooted(&c.coord)), "--zk_root_path=/openmldb".to_string()];
    let refused = c.ns_with(&stranger, "showtablet");
    assert_eq!(refused.status.code(), Some(1), "{backend}: {}", text(&refused));
    assert!(text(&refused).contains("not authorized"), "{backend}: {}", text(&refused));

    // kill -9 the leader of partition 0: another replica leads, and the rows are all there.
    let table = c.until("showtable t", |o| every_partition_led(o, None)).await;
    let leader = replicas(&table, "t").into_iter().find(|r| r.0 == "0" && r.2 == "leader").unwrap().1;
    let victim = c.tablet_eps.iter().position(|e| *e == leader).unwrap();
    c.tablets[victim] = None;
    let t0 = std::time::Instant::now();
    c.until("showtable t", |o| every_partition_led(o, Some(&leader))).await;
    eprintln!("{backend}: a new leader {:?} after kill -9 of {leader}", t0.elapsed());
    assert_eq!(c.export(3).await, (ROWS, ROWS), "{backend}: rows after the tablet's kill -9");

    // kill -9 of the coordination server, started again on its data: the cluster and its metadata are back.
    c.coord.kill_and_restart();
    let tablets = c.until("showtablet", |o| o.matches("kTabletHealthy").count() == 2).await;
    assert!(tablets.contains("kTabletOffline"), "{backend}: {tablets}");
    c.until("showtable t", |o| every_partition_led(o, Some(&leader))).await;
    assert!(c.ns("showjob 1").contains(&format!("{ROWS}/{ROWS}")), "{backend}: the job history survived");
    assert_eq!(c.export(4).await, (ROWS, ROWS), "{backend}: rows after the coordination server's kill -9");

    // kill -9 of the active nameserver: the standby takes over and serves the same table.
    let showns = c.until("showns", |o| o.contains("leader") && o.contains("standby")).await;
    let line = showns.lines().find(|l| l.contains("leader")).unwrap().to_string();
    let active = if line.contains(&c.ns_eps[0]) { 0 } else { 1 };
    c.nameservers[active] = None;
    let standby = c.ns_eps[1 - active].clone();
    c.until("showns", |o| o.lines().any(|l| l.contains(&standby) && l.contains("leader"))).await;
    c.until("showtable t", |o| every_partition_led(o, Some(&leader))).await;
    assert_eq!(c.export(5).await, (ROWS, ROWS), "{backend}: rows after the nameserver's kill -9");
}

/// The run's `--zk_cluster`: the service with a chroot.
fn chrooted(coord: &Coord) -> String {
    format!("{}/secured/cluster", coord.spec())
}

async fn on(backend: Backend, test: &str) {
    let dir = TempDir::new("mldb-cluster");
    let Some(coord) = Coord::start(backend, &dir.0, test) else { return };
    the_script(Cluster::start(dir, coord), &format!("{backend:?}")).await;
}

#[test]
fn a_secured_cluster_on_the_embedded_coordinator_survives_kill_9_of_each_role() {
    serially(on(Backend::Model, "a_secured_cluster_on_the_embedded_coordinator_survives_kill_9_of_each_role"));
}

#[test]
fn a_secured_cluster_on_real_zookeeper_survives_kill_9_of_each_role() {
    serially(on(Backend::ZooKeeper, "a_secured_cluster_on_real_zookeeper_survives_kill_9_of_each_role"));
}
