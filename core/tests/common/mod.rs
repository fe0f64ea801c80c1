//! What the real-process tests share: killing children on drop, temporary directories, free loopback ports.
#![allow(dead_code)]

use std::process::{Child, Command, Output, Stdio};

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

/// Starts `openmldb` with `args`, output discarded; killed when dropped.
pub fn spawn(args: &[String]) -> Kill {
    Kill(
        Command::new(env!("CARGO_BIN_EXE_openmldb"))
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// Runs one ns_client command against the coordination service at `zk` (root `/openmldb`).
pub fn ns_client(zk: &str, cmd: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_openmldb"))
        .args([
            "--role=ns_client",
            &format!("--zk_cluster=model://{zk}"),
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
