//! Issue 5's benchmark: the reference scenario (`benches/reference.toml`), seeds one after another on one core,
//! release build. Prints simulated seconds per wall second and seeds per minute.
//!
//! `cargo sbench -p mldb-sim --bench reference -- [seeds]` (default 5).

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(madsim)]
fn main() {
    let seeds: u64 = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(5);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/reference.toml");
    let s = mldb_sim::scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let (mut sim, mut wall) = (0.0f64, 0.0f64);
    let mut failed = 0;
    for seed in 1..=seeds {
        let r = mldb_sim::run::run(&s, seed);
        let sum = r.summary().map(|s| s.to_string()).unwrap_or_default();
        println!(
            "seed {seed}: {} sim {:.1}s wall {:.2}s ({:.0}x) {sum}",
            if r.passed() { "PASS" } else { "FAIL" },
            r.sim_elapsed.as_secs_f64(),
            r.wall_elapsed.as_secs_f64(),
            r.sim_elapsed.as_secs_f64() / r.wall_elapsed.as_secs_f64()
        );
        if !r.passed() {
            failed += 1;
            for f in &r.failures {
                println!("  {f}");
            }
        }
        sim += r.sim_elapsed.as_secs_f64();
        wall += r.wall_elapsed.as_secs_f64();
    }
    println!(
        "reference scenario: {seeds} seeds, {failed} failed; {:.0} simulated seconds per wall second; {:.1} seeds per minute",
        sim / wall,
        seeds as f64 * 60.0 / wall
    );
}

#[cfg(not(madsim))]
fn main() {
    eprintln!("the reference benchmark runs in the simulator build: cargo sbench -p mldb-sim --bench reference");
}
