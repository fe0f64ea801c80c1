//! Runs one seed: a fresh OS thread, a fresh madsim runtime, a trace that captures the run.

use std::future::Future;
use std::time::Duration;

use madsim::runtime::Runtime;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;

use crate::trace::{Trace, TraceLayer, TraceSubscriber};

/// What one seeded run produced.
pub struct RunOutcome<T> {
    pub seed: u64,
    pub value: T,
    pub trace: Trace,
    /// The trace hash: equal for equal seeds, the identity of a run.
    pub hash: u64,
    /// Simulated time the run took.
    pub sim_elapsed: Duration,
    /// Real time the run took.
    pub wall_elapsed: Duration,
}

/// Runs `body` under seed `seed` and returns its value and trace. A panic inside the run is re-raised here.
///
/// Each run gets its own thread, because madsim seeds std's hash maps only on a thread that has not made one yet
/// (madsim-notes 7.1), and its own tracing subscriber (thread-local), so parallel runs never mix traces.
/// `MLDB_SIM_LOG=<filter>` also prints the run's log to stderr, e.g. `MLDB_SIM_LOG=debug`.
pub fn run_seed<T, F, Fut>(seed: u64, time_limit: Option<Duration>, body: F) -> RunOutcome<T>
where
    T: Send + 'static,
    F: FnOnce(Trace) -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
{
    run_seed_into(seed, time_limit, Trace::new(), body)
}

/// [`run_seed`] recording into `trace`, which the caller keeps: after a panic (a broken invariant, the time
/// limit) it still holds every line up to it, which is what shows where a run went wrong.
pub fn run_seed_into<T, F, Fut>(seed: u64, time_limit: Option<Duration>, trace: Trace, body: F) -> RunOutcome<T>
where
    T: Send + 'static,
    F: FnOnce(Trace) -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
{
    run_seed_logged(seed, time_limit, trace, std::env::var("MLDB_SIM_LOG").ok(), body)
}

/// [`run_seed_into`] with the console filter given: `Some` prints the run's log to stderr as well, through
/// tracing-subscriber's registry; `None` records the trace alone, through the lighter [`TraceSubscriber`].
/// Both record the same lines.
pub(crate) fn run_seed_logged<T, F, Fut>(
    seed: u64,
    time_limit: Option<Duration>,
    trace: Trace,
    console: Option<String>,
    body: F,
) -> RunOutcome<T>
where
    T: Send + 'static,
    F: FnOnce(Trace) -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
{
    // Built on the caller's thread: the console's filter makes hash maps, and madsim seeds a thread's std hash
    // maps only if none was made on it yet (madsim-notes 7.1).
    let dispatch = match console {
        Some(filter) => tracing::Dispatch::new(
            tracing_subscriber::registry().with(TraceLayer::new(trace.clone()).with_filter(LevelFilter::INFO)).with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_filter(tracing_subscriber::EnvFilter::new(filter)),
            ),
        ),
        None => tracing::Dispatch::new(TraceSubscriber::new(trace.clone())),
    };
    let thread = std::thread::Builder::new()
        .name(format!("seed-{seed}"))
        .spawn(move || {
            // Spans madsim opens when the runtime starts must belong to this dispatcher.
            let _guard = tracing::dispatcher::set_default(&dispatch);
            let mut rt = Runtime::with_seed_and_config(seed, madsim::Config::default());
            if let Some(limit) = time_limit {
                rt.set_time_limit(limit);
            }
            // Real time, outside the runtime: it measures the simulator, it does not drive it.
            let wall = std::time::Instant::now();
            let t = trace.clone();
            let (value, sim_elapsed) = rt.block_on(async move {
                t.start_clock();
                let value = body(t.clone()).await;
                (value, t.elapsed())
            });
            let wall_elapsed = wall.elapsed();
            let hash = trace.hash();
            RunOutcome { seed, value, trace, hash, sim_elapsed, wall_elapsed }
        })
        .expect("spawn a thread for the seed");
    match thread.join() {
        Ok(outcome) => outcome,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

#[cfg(all(test, madsim))]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_run_leaves_its_trace_with_the_caller() {
        let trace = Trace::new();
        let into = trace.clone();
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run_seed_into(7, Some(Duration::from_secs(5)), into, |t| async move {
                t.record("runner", "before the hang");
                // Sleeps past the time limit: madsim panics with "time limit exceeded".
                tokio::time::sleep(Duration::from_secs(60)).await;
            })
        }));
        assert!(out.is_err(), "the time limit ends the run with a panic");
        trace.record_after_end("runner", "the run panicked");
        let lines = trace.lines();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].ends_with("runner: before the hang"), "{lines:?}");
        assert!(lines[1].starts_with("[       0.000000s] runner: the run panicked"), "{lines:?}");
    }
}
