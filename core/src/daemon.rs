//! The daemon (DESIGN 4.6, OpenMLDB's `mon`): supervises one `openmldb` process, restarting it after
//! `restart_delay` whenever it exits, at most `restart_attempts` times per `restart_window`, so a process that
//! cannot start does not restart forever. `openmldb --role=daemon --daemon_pid_file=F -- <the process's flags>`
//! runs it; `openmldb --role=daemon --daemon_pid_file=F --stop` stops the daemon and its process.
//!
//! The restart decision is pure ([`RestartPolicy::decide`]); the supervisor loop is IO and runs only on the real
//! runtime (the simulator models daemons per machine in its harness instead).

use std::collections::VecDeque;
use std::time::Duration;

/// When to restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    pub delay: Duration,
    pub max_attempts: usize,
    pub window: Duration,
}

/// What to do after the process exited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Restart it after this long.
    RestartAfter(Duration),
    /// `max_attempts` restarts already happened within the window: stop supervising.
    GiveUp { attempts: usize },
}

impl RestartPolicy {
    /// Decides after an exit at `now`, given the times of the restarts so far (oldest first; times are any
    /// monotonic clock reading, as durations since a fixed origin). Restarts older than the window are forgotten.
    pub fn decide(&self, now: Duration, restarts: &mut VecDeque<Duration>) -> Decision {
        while restarts.front().is_some_and(|t| now.saturating_sub(*t) >= self.window) {
            restarts.pop_front();
        }
        if restarts.len() >= self.max_attempts {
            return Decision::GiveUp { attempts: restarts.len() };
        }
        Decision::RestartAfter(self.delay)
    }
}

// Not while rustdoc collects doctests either: the simulator build's doctest pass parses this crate without
// `--cfg madsim` but against madsim-tokio, which has no Unix signals.
#[cfg(not(any(madsim, doctest)))]
pub use supervisor::{SupervisorConfig, stop, supervise};

#[cfg(not(any(madsim, doctest)))]
mod supervisor {
    use std::collections::VecDeque;
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command};
    use std::time::Duration;

    use tokio::signal::unix::{SignalKind, signal};
    use tokio::time::Instant;

    use super::{Decision, RestartPolicy};

    #[derive(Debug, Clone)]
    pub struct SupervisorConfig {
        pub policy: RestartPolicy,
        /// The daemon's pid is written here, the process's to `<pid_file>.child`.
        pub pid_file: PathBuf,
        /// The program and the arguments of the supervised process.
        pub program: PathBuf,
        pub args: Vec<String>,
    }

    fn child_pid_file(pid_file: &Path) -> PathBuf {
        let mut p = pid_file.as_os_str().to_owned();
        p.push(".child");
        PathBuf::from(p)
    }

    fn spawn(config: &SupervisorConfig) -> std::io::Result<Child> {
        let child = Command::new(&config.program).args(&config.args).spawn()?;
        std::fs::write(child_pid_file(&config.pid_file), format!("{}\n", child.id()))?;
        tracing::info!(pid = child.id(), program = %config.program.display(), "daemon started the process");
        Ok(child)
    }

    /// Supervises until stopped (SIGTERM or SIGINT: the process is killed too) or until the policy gives up.
    /// Returns the reason it ended.
    pub async fn supervise(config: SupervisorConfig) -> std::io::Result<String> {
        std::fs::write(&config.pid_file, format!("{}\n", std::process::id()))?;
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let origin = Instant::now();
        let mut restarts = VecDeque::new();
        let mut child = spawn(&config)?;
        loop {
            tokio::select! {
                biased;
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
            let Some(status) = child.try_wait()? else { continue };
            tracing::warn!(%status, "the supervised process exited");
            match config.policy.decide(origin.elapsed(), &mut restarts) {
                Decision::GiveUp { attempts } => {
                    let _ = std::fs::remove_file(child_pid_file(&config.pid_file));
                    let _ = std::fs::remove_file(&config.pid_file);
                    return Ok(format!("gave up after {attempts} restarts within {:?}", config.policy.window));
                }
                Decision::RestartAfter(delay) => {
                    tokio::select! {
                        biased;
                        _ = term.recv() => return Ok(cleanup(&config, None)),
                        _ = int.recv() => return Ok(cleanup(&config, None)),
                        _ = tokio::time::sleep(delay) => {}
                    }
                    restarts.push_back(origin.elapsed());
                    child = spawn(&config)?;
                }
            }
        }
        Ok(cleanup(&config, Some(child)))
    }

    fn cleanup(config: &SupervisorConfig, child: Option<Child>) -> String {
        if let Some(mut child) = child {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(child_pid_file(&config.pid_file));
        let _ = std::fs::remove_file(&config.pid_file);
        "stopped".into()
    }

    /// Stops the daemon whose pid file is `pid_file` (and so its process), waiting up to `wait` for it to go.
    pub fn stop(pid_file: &Path, wait: Duration) -> Result<String, String> {
        let text = std::fs::read_to_string(pid_file).map_err(|e| format!("cannot read {}: {e}", pid_file.display()))?;
        let pid: u32 = text.trim().parse().map_err(|_| format!("{} holds {text:?}, not a pid", pid_file.display()))?;
        let status = Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
        match status {
            Ok(s) if s.success() => {}
            _ => return Err(format!("daemon {pid} is not running (stale pid file {})", pid_file.display())),
        }
        let deadline = std::time::Instant::now() + wait;
        while pid_file.exists() {
            if std::time::Instant::now() > deadline {
                return Err(format!("daemon {pid} did not stop within {wait:?}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(format!("daemon {pid} stopped"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn restarts_after_the_delay_until_the_window_is_full() {
        let p = RestartPolicy { delay: s(10), max_attempts: 3, window: s(60) };
        let mut history = VecDeque::new();
        for t in [0, 5, 10] {
            assert_eq!(p.decide(s(t), &mut history), Decision::RestartAfter(s(10)));
            history.push_back(s(t));
        }
        assert_eq!(p.decide(s(20), &mut history), Decision::GiveUp { attempts: 3 });
        // Once the oldest restarts leave the window, restarting is allowed again.
        assert_eq!(p.decide(s(61), &mut history), Decision::RestartAfter(s(10)));
        assert_eq!(history, VecDeque::from([s(5), s(10)]));
    }

    #[test]
    fn zero_attempts_never_restarts() {
        let p = RestartPolicy { delay: s(1), max_attempts: 0, window: s(60) };
        assert_eq!(p.decide(s(0), &mut VecDeque::new()), Decision::GiveUp { attempts: 0 });
    }
}
