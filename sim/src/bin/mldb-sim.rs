//! `mldb-sim`: runs scenario files in the simulator (DESIGN 7).
//!
//! - `mldb-sim run <file-or-dir>... [--seeds N | --seed S | --from A --to B] [--jobs J]`
//! - `mldb-sim replay <file> --seed S [--trace]`
//! - `mldb-sim table [--seeds N]`
//! - `mldb-sim check-determinism <file> --seeds N`
//!
//! Exit codes: 0 every seed passed, 1 a violation, 2 a usage or scenario error.

/// The simulator allocates and frees a message, a future and a log entry per simulated event; mimalloc measurably
/// speeds that up over the system allocator (the reference benchmark in the README).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(madsim)]
mod sim_main {
    use std::io::IsTerminal;
    use std::path::{Path, PathBuf};
    use std::process::ExitCode;
    use std::sync::Mutex;

    use clap::{Parser, Subcommand};
    use indicatif::{ProgressBar, ProgressStyle};
    use mldb_sim::check::TraceHint;
    use mldb_sim::matrix::{Matrix, SEED_TABLE};
    use mldb_sim::run::{self, SeedResult};
    use mldb_sim::scenario::{self, Scenario};

    #[derive(Parser, Debug)]
    #[command(name = "mldb-sim", about = "Runs OpenMLDB HA scenarios in the deterministic simulator", version)]
    struct Cli {
        #[command(subcommand)]
        cmd: Cmd,
    }

    #[derive(Subcommand, Debug)]
    enum Cmd {
        /// Run scenario files (or every *.toml of a directory) over seeds; one line per seed.
        Run {
            #[arg(required = true)]
            paths: Vec<PathBuf>,
            /// Seeds 1..=N (default: each file's `seeds`).
            #[arg(long, conflicts_with_all = ["seed", "from"])]
            seeds: Option<u64>,
            /// Only this seed.
            #[arg(long, conflicts_with = "from")]
            seed: Option<u64>,
            /// Seeds A..=B.
            #[arg(long, requires = "to")]
            from: Option<u64>,
            #[arg(long, requires = "from")]
            to: Option<u64>,
            /// Seeds run in parallel.
            #[arg(long, default_value_t = 1)]
            jobs: usize,
        },
        /// Run one seed again: same seed, same trace hash.
        Replay {
            path: PathBuf,
            #[arg(long)]
            seed: u64,
            /// Print the whole trace.
            #[arg(long)]
            trace: bool,
        },
        /// The availability matrix: the seed's table beside what the table scenarios show.
        Table {
            /// Seeds per scenario (1..=N).
            #[arg(long, default_value_t = 3)]
            seeds: u64,
            #[arg(long, default_value_t = 1)]
            jobs: usize,
        },
        /// Run each seed twice and compare trace hashes.
        CheckDeterminism {
            path: PathBuf,
            #[arg(long, default_value_t = 3)]
            seeds: u64,
        },
    }

    fn trace_dir() -> PathBuf {
        PathBuf::from(std::env::var("MLDB_SIM_TRACE_DIR").unwrap_or_else(|_| "target/mldb-sim".into()))
    }

    fn slug(path: &Path) -> String {
        path.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_else(|| "scenario".into())
    }

    /// The one line of a seed.
    fn line(path: &Path, r: &SeedResult) -> String {
        let verdict = if r.passed() { "PASS" } else { "FAIL" };
        let mut s = format!(
            "{verdict} {} seed={} sim={:.1}s wall={:.2}s",
            path.display(),
            r.seed,
            r.sim_elapsed.as_secs_f64(),
            r.wall_elapsed.as_secs_f64()
        );
        if let Some(sum) = r.summary() {
            s.push_str(&format!(
                " acked={} lost={}/{} unexpected={}",
                sum.acked, sum.lost_allowed, sum.lost_forbidden, sum.unexpected
            ));
            match sum.failover_time {
                Some(t) => s.push_str(&format!(" failover={:.2}s", t.as_secs_f64())),
                None => s.push_str(" failover=-"),
            }
        }
        s.push_str(&format!(" hash={:016x}", r.hash));
        s
    }

    /// What a failed seed prints: its failures and violations with the trace lines that show them, the replay
    /// command, and the trace file.
    fn explain(path: &Path, r: &SeedResult) -> String {
        let mut out = String::new();
        for f in &r.failures {
            out.push_str(&format!("  failure: {f}\n"));
        }
        let lines = r.trace.lines();
        if let Some(report) = &r.report {
            for v in report.violations() {
                out.push_str(&format!("  violation: {v}\n"));
                let hint = TraceHint {
                    from: v.hint.from + r.zero,
                    to: v.hint.to.map(|t| t + r.zero),
                    needles: v.hint.needles.clone(),
                };
                for l in hint.select(&lines).into_iter().take(12) {
                    out.push_str(&format!("    | {l}\n"));
                }
            }
        }
        let dir = trace_dir();
        let file = dir.join(format!("{}-seed-{}.trace", slug(path), r.seed));
        let written = std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(&file, r.trace.to_text()));
        match written {
            Ok(()) => out.push_str(&format!("  trace: {}\n", file.display())),
            Err(e) => out.push_str(&format!("  trace not written to {}: {e}\n", file.display())),
        }
        out.push_str(&format!("  replay: mldb-sim replay {} --seed {}\n", path.display(), r.seed));
        out
    }

    fn load(paths: &[PathBuf]) -> Result<Vec<(PathBuf, Scenario)>, ExitCode> {
        scenario::load_dir_or_files(paths).map_err(|e| {
            eprintln!("error: {e}");
            ExitCode::from(2)
        })
    }

    fn progress(total: u64) -> ProgressBar {
        if total < 4 || !std::io::stderr().is_terminal() {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} seeds, {elapsed} elapsed, eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    }

    /// Runs every (scenario, seed) job on `jobs` threads; results come back in job order.
    fn run_jobs(jobs: &[(PathBuf, Scenario, u64)], threads: usize, bar: &ProgressBar) -> Vec<SeedResult> {
        let next = Mutex::new(0usize);
        let results: Mutex<Vec<Option<SeedResult>>> = Mutex::new((0..jobs.len()).map(|_| None).collect());
        std::thread::scope(|scope| {
            for _ in 0..threads.max(1) {
                scope.spawn(|| {
                    loop {
                        let i = {
                            let mut n = next.lock().expect("job counter");
                            let i = *n;
                            *n += 1;
                            i
                        };
                        let Some((path, s, seed)) = jobs.get(i) else { break };
                        let r = run::run(s, *seed);
                        bar.suspend(|| {
                            println!("{}", line(path, &r));
                            if !r.passed() {
                                print!("{}", explain(path, &r));
                            }
                        });
                        bar.inc(1);
                        results.lock().expect("results")[i] = Some(r);
                    }
                });
            }
        });
        results.into_inner().expect("results").into_iter().map(|r| r.expect("every job ran")).collect()
    }

    pub fn main() -> ExitCode {
        let cli = match Cli::try_parse() {
            Ok(c) => c,
            Err(e) => {
                let _ = e.print();
                return if e.use_stderr() { ExitCode::from(2) } else { ExitCode::SUCCESS };
            }
        };
        match cli.cmd {
            Cmd::Run { paths, seeds, seed, from, to, jobs } => {
                let scenarios = match load(&paths) {
                    Ok(s) => s,
                    Err(code) => return code,
                };
                if let (Some(a), Some(b)) = (from, to)
                    && a > b
                {
                    eprintln!("error: --from {a} is after --to {b}");
                    return ExitCode::from(2);
                }
                let mut work = Vec::new();
                for (path, s) in scenarios {
                    let list: Vec<u64> = match (seed, seeds, from, to) {
                        (Some(one), _, _, _) => vec![one],
                        (_, Some(n), _, _) => (1..=n).collect(),
                        (_, _, Some(a), Some(b)) => (a..=b).collect(),
                        _ => (1..=u64::from(s.seeds)).collect(),
                    };
                    for sd in list {
                        work.push((path.clone(), s.clone(), sd));
                    }
                }
                let bar = progress(work.len() as u64);
                let results = run_jobs(&work, jobs, &bar);
                bar.finish_and_clear();
                let failed = results.iter().filter(|r| !r.passed()).count();
                println!("{} seed(s), {} passed, {failed} failed", results.len(), results.len() - failed);
                if failed > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS }
            }
            Cmd::Replay { path, seed, trace } => {
                let s = match load(std::slice::from_ref(&path)) {
                    Ok(mut s) if s.len() == 1 => s.remove(0).1,
                    Ok(_) => {
                        eprintln!("error: replay takes one scenario file");
                        return ExitCode::from(2);
                    }
                    Err(code) => return code,
                };
                let r = run::run(&s, seed);
                println!("{}", line(&path, &r));
                if let Some(report) = &r.report {
                    print!("{}", report.detail());
                }
                if !r.passed() {
                    print!("{}", explain(&path, &r));
                }
                if trace {
                    print!("{}", r.trace.to_text());
                }
                if r.passed() { ExitCode::SUCCESS } else { ExitCode::from(1) }
            }
            Cmd::Table { seeds, jobs } => table(seeds, jobs),
            Cmd::CheckDeterminism { path, seeds } => {
                let s = match load(std::slice::from_ref(&path)) {
                    Ok(mut s) if s.len() == 1 => s.remove(0).1,
                    Ok(_) => {
                        eprintln!("error: check-determinism takes one scenario file");
                        return ExitCode::from(2);
                    }
                    Err(code) => return code,
                };
                let mut bad = 0;
                for seed in 1..=seeds {
                    let (a, b) = (run::run(&s, seed), run::run(&s, seed));
                    let report = mldb_sim::check::check_determinism(seed, a.hash, b.hash);
                    match &report.violation {
                        None => println!("PASS {} seed={seed} hash={:016x}", path.display(), a.hash),
                        Some(v) => {
                            bad += 1;
                            println!("FAIL {} seed={seed}: {v}", path.display());
                            let (la, lb) = (a.trace.lines(), b.trace.lines());
                            if let Some((i, x, y)) = mldb_sim::check::first_divergence(&la, &lb) {
                                println!("  first difference at line {i}:\n    {x:?}\n    {y:?}");
                            }
                        }
                    }
                }
                if bad > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS }
            }
        }
    }

    fn table(seeds: u64, jobs: usize) -> ExitCode {
        let mut work = Vec::new();
        for (name, src) in mldb_sim::matrix::TABLE_SCENARIOS {
            let path = PathBuf::from(format!("scenarios/table/{name}"));
            let s = match scenario::parse_str(src, &path.display().to_string()) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            for seed in 1..=seeds {
                work.push((path.clone(), s.clone(), seed));
            }
        }
        let bar = progress(work.len() as u64);
        let results = run_jobs(&work, jobs, &bar);
        bar.finish_and_clear();
        let mut matrix = Matrix::default();
        let mut failed = 0;
        for r in &results {
            if !r.passed() {
                failed += 1;
            }
            if let Some(report) = &r.report {
                matrix.add(report);
            }
        }
        println!("\nThe seed's availability table (documented):\n\n{SEED_TABLE}\n");
        println!("Observed in the simulator ({seeds} seed(s) per scenario, every partition sorted into its row):\n");
        println!("{}", matrix.render());
        let total = results.len();
        println!("\n{total} run(s), {} passed, {failed} failed", total - failed);
        if failed > 0 || !matrix.passed() { ExitCode::from(1) } else { ExitCode::SUCCESS }
    }
}

#[cfg(madsim)]
fn main() -> std::process::ExitCode {
    sim_main::main()
}

#[cfg(not(madsim))]
fn main() -> std::process::ExitCode {
    eprintln!(
        "mldb-sim runs in the simulator build (--cfg madsim): use `cargo xtask table`, or \
         `cargo srun --release --bin mldb-sim -- <command>`"
    );
    std::process::ExitCode::from(2)
}
