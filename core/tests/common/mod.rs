//! What the real-process tests share: killing children on drop, temporary directories, free loopback ports, the
//! coordination service of a run on either backend (our `--role=coord` or Debian's ZooKeeper), the ns_client, and
//! rows written and read back through the routing client.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use openmldb::client::routing::{RoutingClient, RoutingConfig};
use openmldb::coord::ClientOptions;
use openmldb::proto::tablet as pb;

/// A child process killed (SIGKILL) and reaped when dropped.
pub struct Kill(pub Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A directory removed when dropped.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    /// A fresh directory name under the system temp dir, unique to this process and call.
    pub fn new(prefix: &str) -> Self {
        Self(std::env::temp_dir().join(format!("{prefix}-{}-{}", std::process::id(), free_port())))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A loopback port that was free a moment ago, taken from below the kernel's ephemeral range (32768 and up): a
/// port the kernel hands out (port 0) can go to another process's outgoing connection (a client of the
/// coordination server) before the server meant for it binds, which then fails for good. Each test process walks
/// its own stretch, starting from its pid, and skips ports something holds.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const FIRST: u32 = 10_000;
    const SPAN: u32 = 22_000;
    let start = std::process::id().wrapping_mul(97) % SPAN;
    for _ in 0..SPAN {
        let port = (FIRST + (start + NEXT.fetch_add(1, Ordering::Relaxed)) % SPAN) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {FIRST}..{}", FIRST + SPAN);
}

/// Starts `openmldb` with `args`, output discarded (or, with `MLDB_TEST_LOG_DIR` set, appended to a file there
/// named by the process's role and endpoint, for reading a failure); killed when dropped.
pub fn spawn(args: &[String]) -> Kill {
    let log = std::env::var_os("MLDB_TEST_LOG_DIR").map(|dir| {
        let flag = |name: &str| args.iter().find_map(|a| a.strip_prefix(name)).unwrap_or("none").replace(':', "_");
        let path = Path::new(&dir).join(format!("{}-{}.log", flag("--role="), flag("--endpoint=")));
        std::fs::OpenOptions::new().create(true).append(true).open(path).expect("the test log file")
    });
    let stderr = match log {
        Some(file) => Stdio::from(file),
        None => Stdio::null(),
    };
    Kill(Command::new(env!("CARGO_BIN_EXE_openmldb")).args(args).stdout(Stdio::null()).stderr(stderr).spawn().unwrap())
}

/// Runs one ns_client command against the coordination service `zk` (a `--zk_cluster` value; root `/openmldb`).
pub fn ns_client(zk: &str, cmd: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_openmldb"))
        .args([
            "--role=ns_client",
            &format!("--zk_cluster={zk}"),
            "--zk_root_path=/openmldb",
            "--interactive=false",
            &format!("--cmd={cmd}"),
        ])
        .output()
        .unwrap()
}

/// Runs an ns_client command every 100 ms until `pred` holds for its output (stdout and stderr), for about 30 s.
pub async fn ns_until(zk: &str, cmd: &str, pred: impl Fn(&str) -> bool) -> String {
    let mut last = String::new();
    for _ in 0..300 {
        let o = ns_client(zk, cmd);
        last = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        if pred(&last) {
            return last;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("`{cmd}` never reached the expected output; last output:\n{last}");
}

/// (pid, endpoint, role, is_alive) of every replica of `table` in a showtable output.
pub fn replicas(showtable: &str, table: &str) -> Vec<(String, String, String, String)> {
    showtable
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|w| w.len() >= 7 && w[0] == table)
        .map(|w| (w[2].to_string(), w[3].to_string(), w[4].to_string(), w[6].to_string()))
        .collect()
}

/// One test of a binary at a time: a real-process cluster is six or more processes (and a JVM for ZooKeeper), and
/// two of them at once on a two-core machine stretch every timeout they depend on.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Which coordination service a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Our coordinator, `openmldb --role=coord` with a data directory, named `model://host:port`.
    Model,
    /// Debian's ZooKeeper started by `scripts/zookeeper.sh`, named `host:port` as in OpenMLDB.
    ZooKeeper,
}

/// The coordination service of one run; stopped when dropped.
pub enum Coord {
    Model { addr: String, data: PathBuf, process: Option<Kill> },
    ZooKeeper { port: u16, state: PathBuf },
}

fn zookeeper_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/zookeeper.sh")
}

/// Why ZooKeeper cannot run here, if it cannot.
pub fn zookeeper_missing() -> Option<String> {
    if !Path::new("/usr/share/java/zookeeper.jar").exists() {
        return Some("/usr/share/java/zookeeper.jar not found (scripts/zookeeper.sh install)".into());
    }
    match Command::new("java").arg("-version").output() {
        Ok(o) if o.status.success() => None,
        _ => Some("no java".into()),
    }
}

impl Coord {
    /// Starts the coordination service of `backend` with its state under `dir`. `None` (after printing SKIPPED
    /// with the reason) when ZooKeeper cannot run here, unless `MLDB_REQUIRE_ZOOKEEPER=1` (CI sets it): then it
    /// panics.
    pub fn start(backend: Backend, dir: &Path, test: &str) -> Option<Coord> {
        std::fs::create_dir_all(dir).unwrap();
        match backend {
            Backend::Model => {
                let addr = format!("127.0.0.1:{}", free_port());
                let data = dir.join("coord");
                let process = Some(Self::spawn_model(&addr, &data));
                Some(Coord::Model { addr, data, process })
            }
            Backend::ZooKeeper => {
                if let Some(why) = zookeeper_missing() {
                    if std::env::var("MLDB_REQUIRE_ZOOKEEPER").is_ok_and(|v| v == "1") {
                        panic!("MLDB_REQUIRE_ZOOKEEPER=1 but ZooKeeper cannot run here: {why}");
                    }
                    eprintln!("SKIPPED {test}: {why}");
                    return None;
                }
                let port = free_port();
                let state = dir.join("zk-state");
                std::fs::create_dir_all(&state).unwrap();
                let zk = Coord::ZooKeeper { port, state };
                zk.script("start");
                Some(zk)
            }
        }
    }

    fn spawn_model(addr: &str, data: &Path) -> Kill {
        spawn(&["--role=coord".into(), format!("--endpoint={addr}"), format!("--coord_data_dir={}", data.display())])
    }

    fn script(&self, verb: &str) -> Output {
        let Coord::ZooKeeper { port, state } = self else { unreachable!("only ZooKeeper has a script") };
        let out = Command::new("bash")
            .arg(zookeeper_script())
            .args([verb, &port.to_string()])
            .env("ZK_STATE_DIR", state)
            .output()
            .expect("bash");
        assert!(out.status.success(), "zookeeper.sh {verb}: {}", String::from_utf8_lossy(&out.stderr));
        out
    }

    /// The `--zk_cluster` value that names this service.
    pub fn spec(&self) -> String {
        match self {
            Coord::Model { addr, .. } => format!("model://{addr}"),
            Coord::ZooKeeper { port, .. } => format!("127.0.0.1:{port}"),
        }
    }

    /// `--zk_cluster=` with [`Coord::spec`].
    pub fn flag(&self) -> String {
        format!("--zk_cluster={}", self.spec())
    }

    /// `kill -9` of the coordination server, and a start on its data directory.
    pub fn kill_and_restart(&mut self) {
        match self {
            Coord::Model { addr, data, process } => {
                *process = None;
                std::thread::sleep(Duration::from_millis(300));
                *process = Some(Self::spawn_model(addr, data));
            }
            Coord::ZooKeeper { .. } => {
                self.script("restart");
            }
        }
    }
}

impl Drop for Coord {
    fn drop(&mut self) {
        if let Coord::ZooKeeper { .. } = self {
            self.script("stop");
        }
    }
}

/// A routing client on a session of its own with `spec` (root `/openmldb`), as an application would hold one.
pub async fn routing(spec: &str) -> RoutingClient {
    let coord = openmldb::coord::connect(spec, ClientOptions::new(Duration::from_secs(10))).await.unwrap();
    RoutingClient::connect(Arc::clone(&coord), "/openmldb", RoutingConfig::default()).await.unwrap()
}

/// The row of key `k{i}` in a table `id:string:index ts:int64:ts v:string`.
pub fn row(i: usize) -> pb::Row {
    pb::Row { values: vec![format!("k{i}"), (1_000 + i).to_string(), format!("v{i}")] }
}

/// Writes the rows of `keys` to `table` through the routing client; every one must be acknowledged.
pub async fn put_rows(client: &RoutingClient, table: &str, keys: std::ops::Range<usize>) {
    for i in keys {
        if let Err(e) = client.put(table, row(i)).await {
            panic!("put of k{i} into {table}: {e}");
        }
    }
}

/// Reads every key of `keys` from `table` through a fresh routing client and returns the ones missing or
/// different from what [`put_rows`] wrote. A read that fails is retried for up to 30 s (the table may be between
/// leaders); after that the key counts as missing.
pub async fn missing_rows(spec: &str, table: &str, keys: std::ops::Range<usize>) -> Vec<String> {
    let client = routing(spec).await;
    let mut missing = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    for i in keys {
        let key = format!("k{i}");
        loop {
            match client.get(table, &key, 0).await {
                Ok(Some(found)) if found.row == row(i) => break,
                Ok(other) => {
                    missing.push(format!("{key}: {other:?}"));
                    break;
                }
                Err(e) if tokio::time::Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => {
                    missing.push(format!("{key}: {e}"));
                    break;
                }
            }
        }
    }
    missing
}

/// Runs `test` on a runtime of its own while holding [`serial`].
pub fn serially<F: std::future::Future>(test: F) -> F::Output {
    let _one_at_a_time = serial();
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(test)
}

/// True when every replica of `table` in a showtable output is alive and, per partition, all are at one offset
/// of at least `min_offset`: what was acknowledged has reached every follower.
pub fn replicated(showtable: &str, table: &str, replicas_per_pid: usize, min_offset: u64) -> bool {
    let mut by_pid: std::collections::BTreeMap<String, Vec<u64>> = Default::default();
    for w in showtable.lines().map(|l| l.split_whitespace().collect::<Vec<_>>()) {
        if w.len() >= 9 && w[0] == table {
            if w[6] != "yes" {
                return false;
            }
            by_pid.entry(w[2].to_string()).or_default().push(w[8].parse().unwrap_or(0));
        }
    }
    !by_pid.is_empty()
        && by_pid.values().all(|o| o.len() == replicas_per_pid && o.iter().all(|x| *x == o[0]))
        && by_pid.values().map(|o| o[0]).sum::<u64>() >= min_offset
}
