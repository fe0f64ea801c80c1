//! `openmldb`: one binary, one role per process, flags named as OpenMLDB names them.
//!
//! - `--role=coord --endpoint=ip:port [--coord_data_dir=dir]`: the `model` coordination service, durable in its
//!   data directory (DESIGN 4.2).
//! - `--role=tablet --endpoint=ip:port --db_root_path=dir [--zk_cluster=.. --zk_root_path=..]`: a tablet.
//! - `--role=client --endpoint=<tablet>`: the tablet client, interactive, or one command with
//!   `--interactive=false --cmd="..."` (exit code 0 on success, 1 on failure).
//!
//! - `--role=nameserver --endpoint=ip:port --zk_cluster=..`: a nameserver (active or standby by election).
//! - `--role=ns_client --zk_cluster=.. --zk_root_path=..`: the nameserver client, interactive or `--cmd`.
//!
//! - `--role=taskmanager --endpoint=ip:port --zk_cluster=.. [--job_data_dir=dir]`: a TaskManager (active or
//!   standby through `<root>/taskmanager/leader`); its jobs are submitted and shown with the ns_client's
//!   `submitjob`, `showjobs`, `showjob` and `stopjob`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use openmldb::cli::ns_client::NsClient;
use openmldb::cli::{repl, tablet_client};
use openmldb::coord::{ClientOptions, CoordServerConfig, Coordinator, Credentials, tree::TreeConfig};
use openmldb::nameserver::{Nameserver, NameserverConfig};
use openmldb::rpc::{ClientConfig, RpcClient};
use openmldb::storage::{Disk, RealDisk};
use openmldb::tablet::{Tablet, TabletConfig};
use openmldb::taskmanager::{TaskManager, TaskManagerConfig};

#[derive(Parser, Debug)]
#[command(name = "openmldb", about = "OpenMLDB online high-availability system", version, rename_all = "snake_case")]
struct Flags {
    /// Which process to run: coord, nameserver, tablet, taskmanager, client, ns_client, or the recoverdata tool
    /// (recoverdata, or ops with --cmd=recoverdata as OpenMLDB's ops script).
    #[arg(long)]
    role: String,
    /// Address to listen on (servers) or of the tablet to talk to (client), ip:port.
    #[arg(long)]
    endpoint: Option<String>,
    /// Coordination service: a ZooKeeper ensemble `host:port[,host:port...]` as in OpenMLDB, or this project's
    /// own coordinator `model://host:port` (`--role=coord`); either may end in a chroot path (`host:port/apps`).
    #[arg(long, default_value = "")]
    zk_cluster: String,
    /// The node every node of the cluster lives under.
    #[arg(long, default_value = openmldb::coord::layout::DEFAULT_ROOT)]
    zk_root_path: String,
    /// Coordination credentials' scheme (only `digest`), used when --zk_cert is given.
    #[arg(long, default_value = "digest")]
    zk_auth_schema: String,
    /// Coordination credentials, `user:password`: the session authenticates with them and every node it creates
    /// is readable and writable only with the same credentials (ZooKeeper's creator-all ACL).
    #[arg(long, default_value = "")]
    zk_cert: String,
    /// Coordination session timeout in milliseconds.
    #[arg(long, default_value_t = 2000)]
    zk_session_timeout: u64,
    /// Tablet: directory of the partitions' binlogs and snapshots.
    #[arg(long, default_value = "./db")]
    db_root_path: String,
    /// Tablet: binlog fsync period in milliseconds.
    #[arg(long, default_value_t = 5000)]
    binlog_sync_to_disk_interval: u64,
    /// Tablet: binlog segment size in MB.
    #[arg(long, default_value_t = 1024)]
    binlog_single_file_max_size: u64,
    /// Client: read commands from a prompt (true) or run `--cmd` once (false).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    interactive: bool,
    /// Client: the command to run with --interactive=false.
    #[arg(long)]
    cmd: Option<String>,
    /// Client: deadline of each request in milliseconds.
    #[arg(long, default_value_t = 600_000)]
    request_timeout: u64,
    /// Coordination server: expiry granularity in milliseconds (ZooKeeper's tickTime).
    #[arg(long, default_value_t = 200)]
    coord_tick_ms: u64,
    /// Coordination server: largest session timeout granted, in milliseconds.
    #[arg(long, default_value_t = 60_000)]
    coord_max_session_timeout: u64,
    /// Coordination server: its data directory (write-ahead log and snapshots, as ZooKeeper's dataDir). Every
    /// change is fsynced there before it is answered; a restart recovers the tree and the sessions from it.
    #[arg(long, default_value = "./coord_data")]
    coord_data_dir: String,
    /// Coordination server: changes between snapshots of the tree.
    #[arg(long, default_value_t = openmldb::coord::store::DEFAULT_SNAPSHOT_EVERY)]
    coord_snapshot_every: u64,
    /// Daemon: its pid file (the supervised process's pid goes to `<file>.child`).
    #[arg(long)]
    daemon_pid_file: Option<std::path::PathBuf>,
    /// Daemon: delay before restarting an exited process, in milliseconds (OpenMLDB's mon: 10 s).
    #[arg(long, default_value_t = 10_000)]
    restart_delay: u64,
    /// Daemon: restarts allowed per --restart_window before it gives up.
    #[arg(long, default_value_t = 5)]
    restart_attempts: usize,
    /// Daemon: the window of --restart_attempts, in milliseconds.
    #[arg(long, default_value_t = 60_000)]
    restart_window: u64,
    /// Daemon: stop the daemon of --daemon_pid_file and its process.
    #[arg(long, default_value_t = false)]
    stop: bool,
    /// Daemon: the supervised process's flags, after `--`.
    #[arg(last = true)]
    supervised: Vec<String>,
    /// TaskManager: the directory import files are read from and export files written to.
    #[arg(long, default_value = "./taskmanager_data")]
    job_data_dir: String,
    /// TaskManager: rows per import batch (the unit of checkpoints).
    #[arg(long, default_value_t = 500)]
    import_batch_rows: u64,
    /// Nameserver: the initial auto_failover when /config/auto_failover does not exist yet.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    auto_failover: bool,
    /// Nameserver: how long a tablet's node must stay gone before failover, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    tablet_heartbeat_timeout: u64,
    /// Nameserver: how often replica offsets are polled for showtable, in milliseconds.
    #[arg(long, default_value_t = 500)]
    get_table_status_interval: u64,
    /// Nameserver: how often a running RPC task is polled on its tablet, in milliseconds.
    #[arg(long, default_value_t = 100)]
    get_task_status_interval: u64,
    /// Nameserver: number of op queues.
    #[arg(long, default_value_t = 8)]
    name_server_task_max_concurrency: u32,
    /// Nameserver: default concurrency of failover and recovery ops.
    #[arg(long, default_value_t = 2)]
    name_server_task_concurrency: u32,
    /// Nameserver: finished ops kept for showopstatus.
    #[arg(long, default_value_t = 10_000)]
    max_op_num: usize,
    /// Nameserver: how close (in entries) a re-added replica must be to its leader before it counts as alive.
    #[arg(long, default_value_t = 100_000)]
    check_binlog_sync_progress_delta: u64,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let flags = match Flags::try_parse() {
        Ok(f) => f,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { std::process::ExitCode::from(2) } else { std::process::ExitCode::SUCCESS };
        }
    };
    // Servers log to stderr at info by default; the client roles print results and only warnings of their own
    // unless RUST_LOG asks for more. Colour codes only when stderr is a terminal (not in a log file).
    let client_role = matches!(flags.role.as_str(), "client" | "ns_client" | "recoverdata" | "ops");
    let default_filter = if client_role { "warn" } else { "info" };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default_filter.into()),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    match run(flags).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("openmldb: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(flags: Flags) -> anyhow::Result<std::process::ExitCode> {
    let endpoint = || flags.endpoint.clone().with_context(|| format!("--role={} needs --endpoint=ip:port", flags.role));
    match flags.role.as_str() {
        "coord" => {
            let endpoint = endpoint()?;
            let tick = Duration::from_millis(flags.coord_tick_ms.max(1));
            let tree = TreeConfig {
                tick,
                min_session_timeout: tick * 2,
                max_session_timeout: Duration::from_millis(flags.coord_max_session_timeout).max(tick * 2),
                ..TreeConfig::default()
            };
            let data = openmldb::coord::server::DataDir(Arc::new(RealDisk::new(&flags.coord_data_dir)));
            let config = CoordServerConfig {
                tree,
                data: Some(data),
                snapshot_every: flags.coord_snapshot_every.max(1),
                ..Default::default()
            };
            let server = openmldb::coord::serve(&endpoint, config).await.with_context(|| {
                format!("cannot start on {endpoint} with --coord_data_dir={}", flags.coord_data_dir)
            })?;
            println!(
                "coordination server listening on {}",
                server.local_addr().map(|a| a.to_string()).unwrap_or(endpoint)
            );
            server.join().await;
            Ok(std::process::ExitCode::SUCCESS)
        }
        "tablet" => {
            let endpoint = endpoint()?;
            std::fs::create_dir_all(&flags.db_root_path)
                .with_context(|| format!("cannot create --db_root_path={}", flags.db_root_path))?;
            let mut config = TabletConfig::new(&endpoint);
            config.zk_cluster = flags.zk_cluster.clone();
            config.zk_root_path = flags.zk_root_path.clone();
            config.zk_session_timeout = Duration::from_millis(flags.zk_session_timeout);
            config.zk_auth = credentials(&flags)?;
            config.binlog_sync_to_disk_interval = Duration::from_millis(flags.binlog_sync_to_disk_interval);
            config.binlog_single_file_max_size = flags.binlog_single_file_max_size.max(1) << 20;
            let disk: Arc<dyn Disk> = Arc::new(RealDisk::new(&flags.db_root_path));
            let tablet = Tablet::start(config, disk).await.with_context(|| format!("cannot listen on {endpoint}"))?;
            println!("tablet listening on {endpoint}");
            tablet.join().await;
            Ok(std::process::ExitCode::SUCCESS)
        }
        "client" => {
            let endpoint = endpoint()?;
            let timeout = Duration::from_millis(flags.request_timeout);
            let client = RpcClient::new(endpoint, ClientConfig { timeout, ..Default::default() });
            if flags.interactive {
                repl::run(|line| {
                    let client = client.clone();
                    async move { tablet_client::execute(&client, &line).await }
                })
                .await?;
                return Ok(std::process::ExitCode::SUCCESS);
            }
            let cmd = flags.cmd.context("--interactive=false needs --cmd=\"...\"")?;
            match tablet_client::execute(&client, &cmd).await {
                Ok(out) => {
                    print!("{}", with_newline(out));
                    Ok(std::process::ExitCode::SUCCESS)
                }
                Err(err) => {
                    print!("{}", with_newline(err));
                    Ok(std::process::ExitCode::FAILURE)
                }
            }
        }
        "nameserver" => {
            let endpoint = endpoint()?;
            if flags.zk_cluster.is_empty() {
                bail!("--role=nameserver needs --zk_cluster");
            }
            let mut config = NameserverConfig::new(&endpoint, &flags.zk_cluster);
            config.zk_root_path = flags.zk_root_path.clone();
            config.zk_session_timeout = Duration::from_millis(flags.zk_session_timeout);
            config.zk_auth = credentials(&flags)?;
            config.auto_failover = flags.auto_failover;
            config.tablet_heartbeat_timeout = Duration::from_millis(flags.tablet_heartbeat_timeout);
            config.get_table_status_interval = Duration::from_millis(flags.get_table_status_interval);
            config.get_task_status_interval = Duration::from_millis(flags.get_task_status_interval);
            config.name_server_task_max_concurrency = flags.name_server_task_max_concurrency;
            config.name_server_task_concurrency = flags.name_server_task_concurrency;
            config.max_op_num = flags.max_op_num;
            config.check_binlog_sync_progress_delta = flags.check_binlog_sync_progress_delta;
            if config.name_server_task_max_concurrency == 0 || config.name_server_task_concurrency == 0 {
                bail!("--name_server_task_max_concurrency and --name_server_task_concurrency must be at least 1");
            }
            let ns = Nameserver::start(config).await.with_context(|| format!("cannot listen on {endpoint}"))?;
            println!("nameserver listening on {endpoint}");
            ns.join().await;
            Ok(std::process::ExitCode::SUCCESS)
        }
        "daemon" => daemon(&flags).await,
        "recoverdata" | "ops" => {
            if flags.role == "ops" && flags.cmd.as_deref() != Some("recoverdata") {
                bail!("--role=ops supports --cmd=recoverdata only (got {:?})", flags.cmd.as_deref().unwrap_or(""));
            }
            if flags.zk_cluster.is_empty() {
                bail!("--role={} needs --zk_cluster", flags.role);
            }
            let coord = connect(&flags).await?;
            let client = NsClient::new(coord.clone(), &flags.zk_root_path, Duration::from_secs(10));
            let limits = openmldb::cli::recoverdata::Limits::default();
            let code = report(openmldb::cli::recoverdata::recoverdata(&client, limits).await);
            coord.close().await;
            Ok(code)
        }
        "ns_client" => {
            if flags.zk_cluster.is_empty() {
                bail!("--role=ns_client needs --zk_cluster");
            }
            let coord = connect(&flags).await?;
            let client =
                NsClient::new(coord.clone(), &flags.zk_root_path, Duration::from_millis(flags.request_timeout));
            let code = if flags.interactive {
                repl::run(|line| {
                    let client = &client;
                    async move { client.execute(&line).await }
                })
                .await?;
                std::process::ExitCode::SUCCESS
            } else {
                let cmd = flags.cmd.clone().context("--interactive=false needs --cmd=\"...\"")?;
                report(client.execute(&cmd).await)
            };
            coord.close().await;
            Ok(code)
        }
        "taskmanager" => {
            let endpoint = endpoint()?;
            if flags.zk_cluster.is_empty() {
                bail!("--role=taskmanager needs --zk_cluster");
            }
            if flags.import_batch_rows == 0 {
                bail!("--import_batch_rows must be at least 1");
            }
            std::fs::create_dir_all(&flags.job_data_dir)
                .with_context(|| format!("cannot create --job_data_dir={}", flags.job_data_dir))?;
            let mut config = TaskManagerConfig::new(&endpoint, &flags.zk_cluster);
            config.zk_root_path = flags.zk_root_path.clone();
            config.zk_session_timeout = Duration::from_millis(flags.zk_session_timeout);
            config.zk_auth = credentials(&flags)?;
            config.import_batch_rows = flags.import_batch_rows;
            let disk: Arc<dyn Disk> = Arc::new(RealDisk::new(&flags.job_data_dir));
            let tm = TaskManager::start(config, disk).await.with_context(|| format!("cannot listen on {endpoint}"))?;
            println!("taskmanager listening on {endpoint}");
            tm.join().await;
            Ok(std::process::ExitCode::SUCCESS)
        }
        other => {
            bail!(
                "unknown --role={other:?}; expected coord, tablet, client, nameserver, taskmanager, ns_client, daemon, recoverdata or ops"
            )
        }
    }
}

fn with_newline(mut s: String) -> String {
    if !s.is_empty() && !s.ends_with('\n') {
        s.push('\n');
    }
    s
}

/// `--role=daemon`: supervise the process given after `--`, or `--stop` a running daemon.
#[cfg(not(madsim))]
async fn daemon(flags: &Flags) -> anyhow::Result<std::process::ExitCode> {
    use openmldb::daemon::{RestartPolicy, SupervisorConfig};
    let pid_file = flags.daemon_pid_file.clone().context("--role=daemon needs --daemon_pid_file")?;
    if flags.stop {
        return match openmldb::daemon::stop(&pid_file, Duration::from_secs(10)) {
            Ok(msg) => {
                println!("{msg}");
                Ok(std::process::ExitCode::SUCCESS)
            }
            Err(msg) => {
                println!("{msg}");
                Ok(std::process::ExitCode::FAILURE)
            }
        };
    }
    if flags.supervised.is_empty() {
        bail!("--role=daemon needs the supervised process's flags after `--`, e.g. -- --role=tablet --endpoint=...");
    }
    if flags.supervised.iter().any(|a| a == "--role=daemon") {
        bail!("a daemon does not supervise another daemon");
    }
    let config = SupervisorConfig {
        policy: RestartPolicy {
            delay: Duration::from_millis(flags.restart_delay),
            max_attempts: flags.restart_attempts,
            window: Duration::from_millis(flags.restart_window),
        },
        pid_file,
        program: std::env::current_exe().context("cannot find the openmldb binary")?,
        args: flags.supervised.clone(),
    };
    let why = openmldb::daemon::supervise(config).await.context("daemon")?;
    println!("daemon: {why}");
    Ok(if why == "stopped" { std::process::ExitCode::SUCCESS } else { std::process::ExitCode::FAILURE })
}

#[cfg(madsim)]
async fn daemon(_flags: &Flags) -> anyhow::Result<std::process::ExitCode> {
    bail!("--role=daemon supervises real processes; the simulator models daemons per machine")
}

/// `--zk_auth_schema` and `--zk_cert`, checked.
fn credentials(flags: &Flags) -> anyhow::Result<Option<Credentials>> {
    Ok(Credentials::from_flags(&flags.zk_auth_schema, &flags.zk_cert)?)
}

/// A coordination session for the client roles, renewed if it expires (a REPL outlives a session: DESIGN 4.2).
async fn connect(flags: &Flags) -> anyhow::Result<Arc<dyn Coordinator>> {
    let session = ClientOptions::new(Duration::from_millis(flags.zk_session_timeout)).with_auth(credentials(flags)?);
    openmldb::coord::connect::connect_renewing(&flags.zk_cluster, session)
        .await
        .with_context(|| format!("cannot reach the coordination service at {}", flags.zk_cluster))
}

/// Prints a command's output; the exit code says whether it succeeded.
fn report(out: Result<String, String>) -> std::process::ExitCode {
    match out {
        Ok(out) => {
            print!("{}", with_newline(out));
            std::process::ExitCode::SUCCESS
        }
        Err(err) => {
            print!("{}", with_newline(err));
            std::process::ExitCode::FAILURE
        }
    }
}
