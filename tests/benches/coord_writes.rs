//! Acknowledged coordination writes per second, with fsync: our model coordinator beside real ZooKeeper, on the
//! same machine, in one run.
//!
//! `cargo build --release -p openmldb && cargo bench -p mldb-tests --bench coord_writes [-- SECONDS [CLIENTS]]`
//! (normal build, not the simulator; SECONDS of measurement per round, default 3; CLIENTS a comma list, default
//! `1,8,32`). The bench runs the `openmldb` binary next to its own executable (`target/release/openmldb`), so
//! build that first: the bench says so and fails if it is missing, and it benches whatever that binary is, so
//! rebuild it after changing the server.
//!
//! Two servers, each a separate process on 127.0.0.1 with its data in the temp dir:
//! - the model coordinator, `openmldb --role=coord --coord_data_dir=DIR`, which appends every change to its
//!   write-ahead log and fdatasyncs it before any answer that depends on it (group commit: one fsync covers every
//!   change queued while the previous one ran);
//! - ZooKeeper 3.8 standalone, started by `scripts/zookeeper.sh start PORT` (Debian's package, the test profile
//!   of that script), which fdatasyncs its transaction log before answering a write unless `forceSync=no`. The
//!   bench prints what the started server's config and command line say about `forceSync`. Without ZooKeeper
//!   installed it prints `SKIPPED zookeeper: <why>` and benches the model alone.
//!
//! Both are driven by the same client code, the crate's `Coordinator` trait opened by `coord::connect::connect`
//! (`model://127.0.0.1:PORT` and `127.0.0.1:PORT`). A round has C clients, each its own session, each writing
//! `set` of a fresh 100-byte value to its own persistent node, one write at a time, waiting for each answer. A
//! round warms up (up to 1 s, not counted: the JVM compiles, connections settle), then measures for SECONDS; the
//! backends alternate round by round (model C=1, ZooKeeper C=1, model C=8, ...), so load from elsewhere on the
//! machine falls on both alike. Two baselines with no server come first: one thread appending 100 bytes and
//! fdatasyncing, to a growing file (what the model's log does) and in place into a sparse pre-sized file (what
//! ZooKeeper's padded log does); they are this disk's ceiling for one writer that waits for every fsync.
//!
//! Reading the table:
//! - `writes/s`: acknowledged writes started in the measured window, per second, all clients together. Every one
//!   of them was on disk (fsynced) when its answer came. Failed writes are not counted; `errors` counts them.
//! - `p50`/`p99`/`p99.9`/`max`: the latency of one acknowledged write as a client saw it (send to answer), in
//!   microseconds (HdrHistogram, 3 significant digits).
//! - With one client the rate is bounded by one fsync per write, so it sits near (below) the baseline; more
//!   clients raise it only as far as the server groups their writes into one fsync. If writes/s stays flat while
//!   p50 grows with C, the server serializes fsyncs instead.
//! - The clients, both servers and anything else running here share the machine's cores (2 on the project's
//!   machines): at high C the client side is a real part of the cost, for both backends alike. Numbers from a
//!   machine that is also building or testing are noisy; the load average at the start is printed.

#[cfg(madsim)]
fn main() {
    eprintln!("this bench runs in the normal build, not the simulator: cargo bench -p mldb-tests --bench coord_writes");
}

#[cfg(not(madsim))]
fn main() -> std::process::ExitCode {
    bench::main()
}

#[cfg(not(madsim))]
mod bench {
    use std::fs::{File, OpenOptions};
    use std::io::Write as _;
    use std::net::{Ipv4Addr, TcpListener};
    use std::os::unix::fs::FileExt as _;
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, ExitCode, Stdio};
    use std::sync::Arc;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use hdrhistogram::Histogram;
    use openmldb::coord::{ClientOptions, CoordError, Coordinator, CreateMode, connect::connect, create_all};
    use tokio::time::Instant;

    const VALUE_LEN: usize = 100;
    const DEFAULT_SECONDS: f64 = 3.0;
    const DEFAULT_CLIENTS: &[usize] = &[1, 8, 32];
    const SESSION_TIMEOUT: Duration = Duration::from_secs(10);
    const ZOOKEEPER_JAR: &str = "/usr/share/java/zookeeper.jar";
    /// The size ZooKeeper pads its transaction log to ahead of the writes (`zookeeper.preAllocSize`, 64 MiB).
    const PADDED_LOG: u64 = 64 << 20;

    pub fn main() -> ExitCode {
        let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
        let seconds = match args.first().map(|s| s.parse::<f64>()) {
            None => DEFAULT_SECONDS,
            Some(Ok(s)) if s > 0.0 && s.is_finite() => s,
            Some(_) => return usage(),
        };
        let clients: Vec<usize> = match args.get(1) {
            None => DEFAULT_CLIENTS.to_vec(),
            Some(list) => match list.split(',').map(|c| c.trim().parse::<usize>()).collect::<Result<Vec<_>, _>>() {
                Ok(v) if !v.is_empty() && v.iter().all(|&c| c > 0) => v,
                _ => return usage(),
            },
        };
        let measure = Duration::from_secs_f64(seconds);
        let warmup = Duration::from_secs(1).min(measure / 2);

        let Some(bin) = openmldb_binary() else {
            return ExitCode::FAILURE;
        };
        print_machine();

        let scratch = match TempDir::new("raw") {
            Ok(d) => d,
            Err(e) => {
                eprintln!("coord_writes: {e}");
                return ExitCode::FAILURE;
            }
        };
        let mut rows = Vec::new();
        for in_place in [false, true] {
            match raw_fdatasync(&scratch.0, in_place, measure) {
                Ok(r) => rows.push(r),
                Err(e) => eprintln!("raw fdatasync baseline failed: {e}"),
            }
        }
        drop(scratch);

        let model = match ModelServer::start(&bin) {
            Ok(m) => m,
            Err(e) => {
                eprintln!("coord_writes: the model coordinator did not start: {e}");
                return ExitCode::FAILURE;
            }
        };
        println!(
            "model:     {} --role=coord, pid {}, data in {}",
            bin.display(),
            model.child.id(),
            model.data().display()
        );
        println!("           fsync: the log is fdatasynced before every answer that depends on it (group commit)");
        let mut failed = false;
        let zookeeper = match ZooKeeper::missing() {
            Some(why) => {
                println!("SKIPPED zookeeper: {why}");
                None
            }
            None => match ZooKeeper::start() {
                Ok(zk) => {
                    println!(
                        "zookeeper: scripts/zookeeper.sh start {}, pid {}, data in {}",
                        zk.port,
                        zk.pid,
                        zk.dir.display()
                    );
                    println!("           fsync: {}", zk.force_sync());
                    println!(
                        "           JVM as the script starts it: -Xmx128m, serial GC, C1 only (-XX:TieredStopAtLevel=1)"
                    );
                    Some(zk)
                }
                Err(e) => {
                    println!("FAILED zookeeper: did not start: {e}");
                    failed = true;
                    None
                }
            },
        };
        println!(
            "workload:  C sessions, each a sequential `set` of {VALUE_LEN} bytes on its own node; {:.1} s warm-up, {seconds} s measured per round",
            warmup.as_secs_f64()
        );
        println!();

        let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
            Ok(r) => r,
            Err(e) => {
                eprintln!("coord_writes: no tokio runtime: {e}");
                return ExitCode::FAILURE;
            }
        };
        let mut backends = vec![("model".to_string(), format!("model://127.0.0.1:{}", model.port))];
        if let Some(zk) = &zookeeper {
            backends.push(("zookeeper".to_string(), format!("127.0.0.1:{}", zk.port)));
        }
        for &c in &clients {
            for (name, spec) in &backends {
                let base = format!("/bench_writes/c{c}");
                match runtime.block_on(round(name, spec, c, warmup, measure, &base)) {
                    Ok(row) => {
                        eprintln!("done: {name}, {c} clients: {:.0} writes/s", row.rate());
                        rows.push(row);
                    }
                    Err(e) => {
                        println!("FAILED {name}, {c} clients: {e}");
                        failed = true;
                    }
                }
            }
        }
        drop(runtime);

        print_table(&rows);
        println!();
        println!("model server log: {}", model.log_summary());
        if let Some(zk) = &zookeeper {
            println!("zookeeper log:    {}", zk.log_summary());
        }
        drop(zookeeper);
        drop(model);
        if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
    }

    fn usage() -> ExitCode {
        eprintln!(
            "usage: cargo bench -p mldb-tests --bench coord_writes -- [SECONDS (default 3)] [CLIENTS (default 1,8,32)]"
        );
        ExitCode::from(2)
    }

    /// `target/<profile>/openmldb`: the bench itself is `target/<profile>/deps/coord_writes-<hash>`.
    fn openmldb_binary() -> Option<PathBuf> {
        let exe = std::env::current_exe().ok();
        let bin = exe.as_deref().and_then(Path::parent).and_then(Path::parent).map(|d| d.join("openmldb"));
        match bin {
            Some(b) if b.is_file() => Some(b),
            other => {
                eprintln!(
                    "coord_writes: the openmldb binary is not built ({} missing); run `cargo build --release -p openmldb` first",
                    other.map(|b| b.display().to_string()).unwrap_or_else(|| "its path".into())
                );
                None
            }
        }
    }

    fn print_machine() {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        let load: Vec<&str> = load.split_whitespace().take(3).collect();
        println!("machine:   {cores} cores, load average {} at start", load.join(" "));
        let tmp = std::env::temp_dir();
        let df = Command::new("df").arg("-T").arg(&tmp).output().ok().filter(|o| o.status.success());
        let line = df.map(|o| String::from_utf8_lossy(&o.stdout).lines().nth(1).unwrap_or("").to_string());
        match line.as_deref().map(|l| l.split_whitespace().collect::<Vec<_>>()).as_deref() {
            Some([dev, fs, .., mount]) => println!("disk:      {} on {dev} ({fs}, mounted on {mount})", tmp.display()),
            _ => println!("disk:      {} (df -T gave nothing)", tmp.display()),
        }
    }

    /// One row of the table.
    struct Row {
        backend: String,
        clients: String,
        seconds: f64,
        hist: Histogram<u64>,
        errors: u64,
        first_error: Option<String>,
    }

    impl Row {
        fn rate(&self) -> f64 {
            self.hist.len() as f64 / self.seconds
        }
    }

    fn histogram() -> Histogram<u64> {
        Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds")
    }

    fn micros(d: Duration) -> u64 {
        u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
    }

    fn print_table(rows: &[Row]) {
        println!(
            "{:<40} {:>7} {:>10} {:>9} {:>9} {:>9} {:>9} {:>7}",
            "backend", "clients", "writes/s", "p50 µs", "p99 µs", "p99.9 µs", "max µs", "errors"
        );
        for r in rows {
            let q = |q: f64| r.hist.value_at_quantile(q);
            println!(
                "{:<40} {:>7} {:>10.0} {:>9} {:>9} {:>9} {:>9} {:>7}",
                r.backend,
                r.clients,
                r.rate(),
                q(0.5),
                q(0.99),
                q(0.999),
                r.hist.max(),
                r.errors
            );
        }
        for r in rows {
            if let Some(e) = &r.first_error {
                println!("first error of {} with {} clients: {e}", r.backend, r.clients);
            }
        }
    }

    /// One thread writing 100 bytes and fdatasyncing, for `measure`: appending to a growing file, or in place into
    /// a sparse file already as long as ZooKeeper pads its log.
    fn raw_fdatasync(dir: &Path, in_place: bool, measure: Duration) -> Result<Row, String> {
        let path = dir.join(if in_place { "padded.log" } else { "appended.log" });
        let err = |e: std::io::Error| format!("{}: {e}", path.display());
        let mut f = OpenOptions::new().create(true).write(true).truncate(true).open(&path).map_err(err)?;
        if in_place {
            f.set_len(PADDED_LOG).map_err(err)?;
            f.sync_all().map_err(err)?;
        }
        let value = [b'r'; VALUE_LEN];
        let mut hist = histogram();
        let mut offset = 0u64;
        let until = Instant::now() + measure;
        while Instant::now() < until {
            let t0 = Instant::now();
            if in_place {
                f.write_all_at(&value, offset).map_err(err)?;
            } else {
                f.write_all(&value).map_err(err)?;
            }
            f.sync_data().map_err(err)?;
            hist.saturating_record(micros(t0.elapsed()));
            offset = (offset + VALUE_LEN as u64) % (PADDED_LOG - VALUE_LEN as u64);
        }
        let backend = if in_place { "raw fdatasync, in place (pre-sized file)" } else { "raw fdatasync, appending" };
        Ok(Row {
            backend: backend.into(),
            clients: "1".into(),
            seconds: measure.as_secs_f64(),
            hist,
            errors: 0,
            first_error: None,
        })
    }

    /// What one writer saw.
    struct Writer {
        hist: Histogram<u64>,
        errors: u64,
        first_error: Option<String>,
    }

    async fn round(
        name: &str,
        spec: &str,
        clients: usize,
        warmup: Duration,
        measure: Duration,
        base: &str,
    ) -> Result<Row, String> {
        let options = ClientOptions::new(SESSION_TIMEOUT);
        let sessions = futures::future::try_join_all((0..clients).map(|_| connect(spec, options.clone())))
            .await
            .map_err(|e| format!("connect to {spec}: {e}"))?;
        let result = write_round(&sessions, clients, warmup, measure, base).await;
        futures::future::join_all(sessions.iter().map(|s| s.close())).await;
        let (hist, errors, first_error) = result?;
        Ok(Row {
            backend: name.to_string(),
            clients: clients.to_string(),
            seconds: measure.as_secs_f64(),
            hist,
            errors,
            first_error,
        })
    }

    async fn write_round(
        sessions: &[Arc<dyn Coordinator>],
        clients: usize,
        warmup: Duration,
        measure: Duration,
        base: &str,
    ) -> Result<(Histogram<u64>, u64, Option<String>), String> {
        create_all(sessions[0].as_ref(), base).await.map_err(|e| format!("create {base}: {e}"))?;
        let value = vec![b'v'; VALUE_LEN];
        let paths: Vec<String> = (0..clients).map(|i| format!("{base}/w{i}")).collect();
        for (s, p) in sessions.iter().zip(&paths) {
            match s.create(p, &value, CreateMode::Persistent).await {
                Ok(_) | Err(CoordError::NodeExists(_)) => {}
                Err(e) => return Err(format!("create {p}: {e}")),
            }
        }
        let start = Instant::now() + Duration::from_millis(50);
        let (from, until) = (start + warmup, start + warmup + measure);
        let tasks: Vec<_> = sessions
            .iter()
            .zip(paths)
            .map(|(s, p)| tokio::spawn(writer(s.clone(), p, value.clone(), start, from, until)))
            .collect();
        let (mut hist, mut errors, mut first_error) = (histogram(), 0, None);
        for t in tasks {
            let w = t.await.map_err(|e| format!("writer task: {e}"))?;
            hist.add(&w.hist).map_err(|e| format!("histogram: {e}"))?;
            errors += w.errors;
            first_error = first_error.or(w.first_error);
        }
        Ok((hist, errors, first_error))
    }

    /// Writes until `until`, one at a time; counts the writes started at or after `from`.
    async fn writer(
        session: Arc<dyn Coordinator>,
        path: String,
        mut value: Vec<u8>,
        start: Instant,
        from: Instant,
        until: Instant,
    ) -> Writer {
        let mut w = Writer { hist: histogram(), errors: 0, first_error: None };
        tokio::time::sleep_until(start).await;
        for n in 0u64.. {
            let t0 = Instant::now();
            if t0 >= until {
                break;
            }
            // A fresh value each time, so no layer can skip the write as a no-op.
            value[..8].copy_from_slice(&n.to_le_bytes());
            let r = session.set(&path, &value, None).await;
            let took = t0.elapsed();
            if t0 < from {
                continue;
            }
            match r {
                Ok(_) => w.hist.saturating_record(micros(took)),
                Err(e) => {
                    w.errors += 1;
                    w.first_error.get_or_insert_with(|| e.to_string());
                }
            }
        }
        w
    }

    fn free_port() -> Result<u16, String> {
        Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port())
    }

    /// A fresh directory under the temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(what: &str) -> Result<TempDir, String> {
            let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos();
            let dir = std::env::temp_dir().join(format!("mldb-bench-{what}-{}-{nanos}", std::process::id()));
            std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            Ok(TempDir(dir))
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// `openmldb --role=coord` on a free loopback port; dropping it kills the process, then removes its directory.
    struct ModelServer {
        child: Child,
        port: u16,
        // Dropped after `drop` below has killed the process.
        dir: TempDir,
    }

    impl ModelServer {
        /// Starts a server and waits until it listens. Retries on another port if the one picked was taken.
        fn start(bin: &Path) -> Result<ModelServer, String> {
            let mut last = String::new();
            for _ in 0..3 {
                match Self::try_start(bin) {
                    Ok(s) => return Ok(s),
                    Err(e) => last = e,
                }
            }
            Err(last)
        }

        fn try_start(bin: &Path) -> Result<ModelServer, String> {
            let port = free_port()?;
            let dir = TempDir::new("model")?;
            let log = File::create(dir.0.join("server.log")).map_err(|e| format!("server.log: {e}"))?;
            let log_err = log.try_clone().map_err(|e| format!("server.log: {e}"))?;
            let child = Command::new(bin)
                .arg("--role=coord")
                .arg(format!("--endpoint=127.0.0.1:{port}"))
                .arg(format!("--coord_data_dir={}", dir.0.join("data").display()))
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log_err)
                .spawn()
                .map_err(|e| format!("{}: {e}", bin.display()))?;
            // From here on the guard owns the process: any early return kills it.
            let mut server = ModelServer { child, port, dir };
            let started = Instant::now();
            loop {
                // Printed once it is bound: an open port alone could be someone else's.
                if server.log().contains("coordination server listening on") {
                    return Ok(server);
                }
                if let Ok(Some(status)) = server.child.try_wait() {
                    return Err(format!("exited ({status}); log:\n{}", server.log()));
                }
                if started.elapsed() > Duration::from_secs(30) {
                    return Err(format!("not listening after 30 s; log:\n{}", server.log()));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }

        fn data(&self) -> PathBuf {
            self.dir.0.join("data")
        }

        fn log(&self) -> String {
            std::fs::read_to_string(self.dir.0.join("server.log")).unwrap_or_default()
        }

        /// Its warnings and errors (it runs with RUST_LOG=warn), or that there were none.
        fn log_summary(&self) -> String {
            let log = self.log();
            let bad: Vec<&str> = log.lines().filter(|l| l.contains("WARN") || l.contains("ERROR")).collect();
            if bad.is_empty() {
                return "no warnings or errors".into();
            }
            let shown: Vec<&str> = bad.iter().take(5).copied().collect();
            format!("{} warning or error lines, first ones:\n  {}", bad.len(), shown.join("\n  "))
        }
    }

    impl Drop for ModelServer {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
            if std::thread::panicking() {
                eprintln!("model server log:\n{}", self.log());
            }
        }
    }

    /// A ZooKeeper started by `scripts/zookeeper.sh start PORT` with its state file in a directory of our own;
    /// dropping it runs `stop PORT` (kills the server by its PID, removes its data dir) and removes that directory.
    struct ZooKeeper {
        script: PathBuf,
        state: TempDir,
        port: u16,
        pid: u32,
        dir: PathBuf,
    }

    impl ZooKeeper {
        /// Why ZooKeeper cannot run here, if it cannot.
        fn missing() -> Option<String> {
            if !Path::new(ZOOKEEPER_JAR).exists() {
                return Some(format!("{ZOOKEEPER_JAR} not found (scripts/zookeeper.sh install)"));
            }
            match Command::new("java").arg("-version").stdout(Stdio::null()).stderr(Stdio::null()).status() {
                Ok(s) if s.success() => None,
                Ok(s) => Some(format!("`java -version` failed: {s}")),
                Err(e) => Some(format!("no java: {e}")),
            }
        }

        fn start() -> Result<ZooKeeper, String> {
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/zookeeper.sh");
            let mut last = String::new();
            for _ in 0..3 {
                match Self::try_start(&script) {
                    Ok(zk) => return Ok(zk),
                    Err(e) => last = e,
                }
            }
            Err(last)
        }

        fn try_start(script: &Path) -> Result<ZooKeeper, String> {
            let port = free_port()?;
            let state = TempDir::new("zk-state")?;
            let out = Command::new("bash")
                .arg(script)
                .args(["start", &port.to_string()])
                .env("ZK_STATE_DIR", &state.0)
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("bash {}: {e}", script.display()))?;
            // The guard exists before anything else can fail, so a started server is always stopped.
            let mut zk = ZooKeeper { script: script.to_path_buf(), state, port, pid: 0, dir: PathBuf::new() };
            let stdout = String::from_utf8_lossy(&out.stdout).to_string();
            if !out.status.success() {
                return Err(format!("{}: {stdout}{}", out.status, String::from_utf8_lossy(&out.stderr)));
            }
            for word in stdout.lines().last().unwrap_or("").split_whitespace() {
                if let Some(pid) = word.strip_prefix("ZK_PID=") {
                    zk.pid = pid.parse().unwrap_or(0);
                } else if let Some(dir) = word.strip_prefix("ZK_DIR=") {
                    zk.dir = PathBuf::from(dir);
                }
            }
            if zk.pid == 0 || zk.dir.as_os_str().is_empty() {
                return Err(format!("unexpected output of zookeeper.sh start: {stdout}"));
            }
            Ok(zk)
        }

        /// What the running server's config file and command line say about fsync of its transaction log.
        fn force_sync(&self) -> String {
            let cfg = std::fs::read_to_string(self.dir.join("zoo.cfg")).unwrap_or_default();
            let in_cfg = cfg.lines().find_map(|l| l.trim().strip_prefix("forceSync=")).map(str::to_string);
            let cmdline = std::fs::read(format!("/proc/{}/cmdline", self.pid)).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            let in_cmdline =
                cmdline.split_whitespace().find_map(|w| w.strip_prefix("-Dzookeeper.forceSync=")).map(str::to_string);
            match (in_cfg, in_cmdline) {
                (None, None) => "zoo.cfg and the java command line leave forceSync unset: ZooKeeper's default, \
                                 forceSync=yes (the txn log is fdatasynced before a write is answered)"
                    .into(),
                (cfg, cmd) => format!("forceSync in zoo.cfg: {cfg:?}, -Dzookeeper.forceSync: {cmd:?}"),
            }
        }

        /// Its warnings and errors, and how many were slow fsyncs (ZooKeeper logs each fsync over 1 s).
        fn log_summary(&self) -> String {
            let log = std::fs::read_to_string(self.dir.join("zk.log")).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            let (mut count, mut slow, mut kinds) = (0, 0, Vec::<String>::new());
            for (i, l) in lines.iter().enumerate() {
                if !(l.contains("WARN") || l.contains("ERROR")) {
                    continue;
                }
                count += 1;
                slow += usize::from(l.contains("fsync-ing the write ahead log"));
                // `[thread] WARN class - message`, then an exception's first line if one follows.
                let mut what = l.split_once(" - ").map_or(*l, |(_, m)| m).to_string();
                if let Some(next) = lines.get(i + 1).filter(|n| !n.starts_with('[') && !n.starts_with('\t')) {
                    what = format!("{what}: {}", next.split_once(':').map_or(*next, |(head, _)| head));
                }
                if kinds.len() < 5 && !kinds.contains(&what) {
                    kinds.push(what);
                }
            }
            let mut out = format!("{count} warning or error lines, {slow} of them slow fsyncs (over 1 s)");
            if !kinds.is_empty() {
                out.push_str(", kinds:\n  ");
                out.push_str(&kinds.join("\n  "));
            }
            out
        }
    }

    impl Drop for ZooKeeper {
        fn drop(&mut self) {
            let _ = Command::new("bash")
                .arg(&self.script)
                .args(["stop", &self.port.to_string()])
                .env("ZK_STATE_DIR", &self.state.0)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .status();
        }
    }
}
