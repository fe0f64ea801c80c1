//! The coordination conformance suite against real ZooKeeper (Debian's `zookeeper` package, 3.8) through the
//! `zookeeper` backend ([`ZkCoordinator`]).
//!
//! The test starts one standalone server of its own on a free loopback port, with the test profile of
//! `reference/zookeeper-notes.md` §1.2 (`tickTime=200`, so a 2 s session is granted as asked and expiry is
//! rounded up to at most 200 ms), and stops it by its PID at the end, also when a case fails.
//!
//! Without ZooKeeper installed (`/usr/share/java/zookeeper.jar` and `java`) the test prints a SKIPPED notice
//! and passes, unless `MLDB_REQUIRE_ZOOKEEPER=1`: then it fails. `scripts/zookeeper.sh install` installs it.
#![cfg(not(madsim))]

use std::future::Future;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mldb_tests::conformance::{self, Backend};
use openmldb::coord::{ClientOptions, Coordinator, ZkCoordinator};

const ZOOKEEPER_JAR: &str = "/usr/share/java/zookeeper.jar";
/// An SLF4J binding, so the server's warnings reach its log file (without one it logs nothing).
const SLF4J_SIMPLE_JAR: &str = "/usr/share/java/slf4j-simple.jar";
const TICK: Duration = Duration::from_millis(200);

/// One standalone ZooKeeper server; dropping it kills the server by its PID and removes its directory.
struct ZooKeeper {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl ZooKeeper {
    /// Why ZooKeeper cannot run here, if it cannot.
    fn missing() -> Option<String> {
        if !Path::new(ZOOKEEPER_JAR).exists() {
            return Some(format!("{ZOOKEEPER_JAR} not found (apt-get install zookeeper)"));
        }
        match Command::new("java").arg("-version").stdout(Stdio::null()).stderr(Stdio::null()).status() {
            Ok(s) if s.success() => None,
            Ok(s) => Some(format!("`java -version` failed: {s}")),
            Err(e) => Some(format!("no java: {e}")),
        }
    }

    /// Starts a server on a free loopback port and waits until it serves. Retries on another port if the one
    /// picked was taken in the meantime.
    fn start() -> ZooKeeper {
        let mut last = String::new();
        for _ in 0..3 {
            match Self::try_start() {
                Ok(zk) => return zk,
                Err(e) => {
                    eprintln!("zookeeper did not start: {e}");
                    last = e;
                }
            }
        }
        panic!("zookeeper did not start: {last}");
    }

    fn try_start() -> Result<ZooKeeper, String> {
        let port = free_port()?;
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos();
        let dir = std::env::temp_dir().join(format!("mldb-zk-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(dir.join("data")).map_err(|e| format!("{}: {e}", dir.display()))?;
        Self::start_in(dir, port)
    }

    /// Kills the server with SIGKILL and starts it again on the same data directory and port.
    fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        eprintln!("zookeeper (pid {}) killed", self.child.id());
        let dir = self.dir.clone();
        // The old guard must not remove the directory the new server uses.
        let fresh = Self::start_in(dir, self.port).unwrap_or_else(|e| panic!("zookeeper did not restart: {e}"));
        let old = std::mem::replace(self, fresh);
        std::mem::forget(old);
    }

    /// Starts a server on `port` with its data under `dir` (kept if it holds data already).
    fn start_in(dir: PathBuf, port: u16) -> Result<ZooKeeper, String> {
        // The test profile of reference/zookeeper-notes.md §1.2.
        let cfg = format!(
            "tickTime={tick}\nminSessionTimeout={min}\nmaxSessionTimeout=60000\ndataDir={data}\nclientPort={port}\n\
             clientPortAddress=127.0.0.1\nmaxClientCnxns=0\nadmin.enableServer=false\n4lw.commands.whitelist=\n",
            tick = TICK.as_millis(),
            min = 2 * TICK.as_millis(),
            data = dir.join("data").display(),
        );
        std::fs::write(dir.join("zoo.cfg"), cfg).map_err(|e| format!("zoo.cfg: {e}"))?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("zk.log"))
            .map_err(|e| format!("zk.log: {e}"))?;
        let log_err = log.try_clone().map_err(|e| format!("zk.log: {e}"))?;
        let mut classpath = ZOOKEEPER_JAR.to_string();
        if Path::new(SLF4J_SIMPLE_JAR).exists() {
            classpath = format!("{classpath}:{SLF4J_SIMPLE_JAR}");
        }
        let child = Command::new("java")
            .args(["-Xms32m", "-Xmx128m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"])
            .arg("-Dorg.slf4j.simpleLogger.defaultLogLevel=warn")
            .args(["-cp", &classpath, "org.apache.zookeeper.server.ZooKeeperServerMain"])
            .arg(dir.join("zoo.cfg"))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| format!("java: {e}"))?;
        // From here on the guard owns the process: any early return kills it.
        let mut zk = ZooKeeper { child, dir, port };
        let started = Instant::now();
        loop {
            if zk.serving() {
                eprintln!(
                    "zookeeper serving on 127.0.0.1:{port} (pid {}) after {:?}",
                    zk.child.id(),
                    started.elapsed()
                );
                return Ok(zk);
            }
            if let Ok(Some(status)) = zk.child.try_wait() {
                return Err(format!("zookeeper exited ({status}); log:\n{}", zk.log()));
            }
            if started.elapsed() > Duration::from_secs(30) {
                return Err(format!("zookeeper not serving after 30 s; log:\n{}", zk.log()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The readiness probe of the notes (§1.3): `srvr` (always whitelisted) answers with a `Mode:` line only once
    /// the server serves; an open port is not enough.
    fn serving(&self) -> bool {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else { return false };
        let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
        let mut out = String::new();
        s.write_all(b"srvr").is_ok() && s.read_to_string(&mut out).is_ok() && out.contains("Mode: standalone")
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("zk.log")).unwrap_or_default()
    }
}

impl Drop for ZooKeeper {
    fn drop(&mut self) {
        let pid = self.child.id();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let log = self.log();
        if std::thread::panicking() && !log.is_empty() {
            eprintln!("zookeeper log:\n{log}");
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        eprintln!("zookeeper (pid {pid}) stopped");
    }
}

fn free_port() -> Result<u16, String> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port: {e}"))?
        .port())
}

struct Zk {
    addr: String,
    root: String,
    server: std::sync::Mutex<ZooKeeper>,
}

impl Backend for Zk {
    fn connect(&self, session_timeout: Duration) -> Pin<Box<dyn Future<Output = Box<dyn Coordinator>> + Send + '_>> {
        Box::pin(async move {
            let c = ZkCoordinator::connect(&self.addr, ClientOptions::new(session_timeout)).await.expect("connect");
            Box::new(c) as Box<dyn Coordinator>
        })
    }
    fn expiry_slack(&self) -> Duration {
        // The server expires a session at its deadline rounded up to the next tick; the rest is the JVM's and a
        // loaded 2-core machine's scheduling noise (measured: node gone 2.19-2.20 s after a 2 s session's last
        // heartbeat, i.e. the whole tick is used; see the run's printed timings).
        TICK + Duration::from_millis(200)
    }
    fn root(&self) -> String {
        self.root.clone()
    }
    fn spec(&self) -> String {
        self.addr.clone()
    }
    fn restart(&self) -> Option<Pin<Box<dyn Future<Output = ()> + Send + '_>>> {
        Some(Box::pin(async move {
            tokio::task::block_in_place(|| self.server.lock().expect("server lock").restart());
        }))
    }
}

#[test]
fn conformance_suite_on_real_zookeeper() {
    if let Some(why) = ZooKeeper::missing() {
        if std::env::var("MLDB_REQUIRE_ZOOKEEPER").is_ok_and(|v| v == "1") {
            panic!("MLDB_REQUIRE_ZOOKEEPER=1 but ZooKeeper cannot run here: {why}");
        }
        eprintln!(
            "SKIPPED conformance_suite_on_real_zookeeper: {why}. Install it with `scripts/zookeeper.sh install`."
        );
        return;
    }
    // Started outside the runtime, so the guard is dropped (and the server killed) even when a case panics.
    let server = ZooKeeper::start();
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos();
    let addr = server.addr();
    let root = format!("/conformance-{}-{nanos}", std::process::id());
    let backend = Zk { addr: addr.clone(), root, server: std::sync::Mutex::new(server) };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(async {
        let started = Instant::now();
        // As conformance::run_all, timing each case.
        for (name, case) in conformance::cases() {
            let t = Instant::now();
            case(&backend).await;
            eprintln!("conformance case {name}: ok in {:?}", t.elapsed());
        }
        eprintln!("conformance suite on real ZooKeeper: {:?}", started.elapsed());
        several_addresses_and_the_other_protocol(&addr).await;
    });
    drop(rt);
    drop(backend);
}

/// The seed's form of `--zk_cluster`, several addresses: a dead first address does not stop the session. And the
/// model scheme pointed at ZooKeeper fails within a second, saying what the address is.
async fn several_addresses_and_the_other_protocol(addr: &str) {
    let dead = format!("127.0.0.1:{}", free_port().expect("a free port"));
    let spec = format!("{dead},{addr}");
    let c = openmldb::coord::connect(&spec, ClientOptions::new(Duration::from_secs(4))).await.expect(&spec);
    assert!(c.exists("/").await.unwrap().is_some());
    c.close().await;
    eprintln!("several addresses ({spec}): ok");
    let start = Instant::now();
    let spec = format!("model://{addr}");
    let err = match openmldb::coord::connect(&spec, ClientOptions::new(Duration::from_secs(10))).await {
        Ok(_) => panic!("a model session with ZooKeeper"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("ZooKeeper server") && err.contains(&format!("--zk_cluster={addr}")), "{err}");
    assert!(start.elapsed() < Duration::from_secs(3), "took {:?}", start.elapsed());
    eprintln!("model scheme at ZooKeeper: refused in {:?}: {err}", start.elapsed());
}
