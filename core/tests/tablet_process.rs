//! Real `openmldb --role=tablet` processes driven by the real tablet client (`--role=client --interactive=false
//! --cmd=...`): status, snapshots, a kill -9 and a reload from disk, help, and bad commands.
#![cfg(not(madsim))]

mod common;

use common::{Kill, TempDir, free_port};

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use openmldb::proto::tablet as pb;
use openmldb::rpc::{ClientConfig, RpcClient};
use openmldb::tablet::rpc as m;

fn start_tablet(endpoint: &str, dir: &std::path::Path) -> Kill {
    Kill(
        Command::new(env!("CARGO_BIN_EXE_openmldb"))
            .args([
                "--role=tablet",
                &format!("--endpoint={endpoint}"),
                &format!("--db_root_path={}", dir.display()),
                "--binlog_sync_to_disk_interval=100",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

fn client(endpoint: &str, cmd: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_openmldb"))
        .args(["--role=client", &format!("--endpoint={endpoint}"), "--interactive=false", &format!("--cmd={cmd}")])
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// Runs `cmd` until its output contains `want` (the tablet may still be starting or loading).
async fn until(endpoint: &str, cmd: &str, want: &str) -> String {
    for _ in 0..100 {
        let out = stdout(&client(endpoint, cmd));
        if out.contains(want) {
            return out;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("`{cmd}` never printed {want:?}: last output {:?}", stdout(&client(endpoint, cmd)));
}

fn meta() -> pb::TableMeta {
    pb::TableMeta {
        name: "flow".into(),
        tid: 1,
        pid: 0,
        seg_cnt: 8,
        mode: pb::TableMode::Leader as i32,
        term: 1,
        column_desc: vec![
            pb::ColumnDesc { name: "id".into(), data_type: "string".into() },
            pb::ColumnDesc { name: "ts".into(), data_type: "int64".into() },
        ],
        column_key: vec![pb::ColumnKey {
            index_name: "id".into(),
            col_name: vec!["id".into()],
            ts_name: "ts".into(),
            ttl: None,
        }],
        ..Default::default()
    }
}

#[tokio::test]
async fn the_tablet_client_drives_a_real_tablet_through_a_kill_and_a_reload() {
    let dir = TempDir::new("mldb-tablet-proc");
    let endpoint = format!("127.0.0.1:{}", free_port());
    let mut tablet = start_tablet(&endpoint, &dir.0);
    until(&endpoint, "gettablestatus", "skiplist_height").await;

    let rpc = RpcClient::new(endpoint.clone(), ClientConfig::default());
    rpc.call(m::CreateTable, pb::CreateTableRequest { meta: Some(meta()) }).await.unwrap();
    for i in 0..50u64 {
        let row = pb::Row { values: vec![format!("k{i}"), (100 + i).to_string()] };
        rpc.call(m::Put, pb::PutRequest { tid: 1, pid: 0, row: Some(row), request_id: String::new() }).await.unwrap();
    }
    let status = stdout(&client(&endpoint, "gettablestatus 1 0"));
    let header = status.lines().next().unwrap();
    for col in
        ["tid", "pid", "offset", "mode", "state", "enable_expire", "ttl", "ttl_offset", "memused", "compress_type"]
    {
        assert!(header.contains(col), "{header}");
    }
    assert!(status.contains("50") && status.contains("kTableLeader") && status.contains("kTableNormal"), "{status}");

    assert_eq!(stdout(&client(&endpoint, "makesnapshot 1 0")).trim(), "MakeSnapshot ok");
    until(&endpoint, "gettablestatus 1 0", "kTableNormal").await;
    assert_eq!(stdout(&client(&endpoint, "pausesnapshot 1 0")).trim(), "PauseSnapshot ok");
    until(&endpoint, "gettablestatus 1 0", "kSnapshotPaused").await;
    assert_eq!(stdout(&client(&endpoint, "recoversnapshot 1 0")).trim(), "RecoverSnapshot ok");

    // kill -9, start again: the tablet holds nothing until loadtable restores snapshot + binlog.
    let _ = tablet.0.kill();
    let _ = tablet.0.wait();
    tablet = start_tablet(&endpoint, &dir.0);
    until(&endpoint, "gettablestatus 1 0", "table is not exist").await;
    assert_eq!(stdout(&client(&endpoint, "loadtable flow 1 0 144000 8")).trim(), "LoadTable ok");
    let out = until(&endpoint, "gettablestatus 1 0", "kTableNormal").await;
    assert!(out.contains(" 50 "), "every write is back: {out}");
    let again = client(&endpoint, "loadtable flow 1 0 144000 8");
    assert_eq!(again.status.code(), Some(1));
    assert!(stdout(&again).contains("table already exists"), "{}", stdout(&again));

    let help = stdout(&client(&endpoint, "help"));
    for c in openmldb::cli::tablet_client::COMMANDS {
        assert!(help.contains(c.usage), "{help}");
    }
    let bad = client(&endpoint, "makesnapshot 1");
    assert_eq!(bad.status.code(), Some(1));
    assert!(stdout(&bad).contains("usage: makesnapshot tid pid"), "{}", stdout(&bad));
    let unknown = client(&endpoint, "frobnicate");
    assert_eq!(unknown.status.code(), Some(1));
    // The interactive client reads commands one per line until `quit`.
    let mut repl = Command::new(env!("CARGO_BIN_EXE_openmldb"))
        .args(["--role=client", &format!("--endpoint={endpoint}")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = repl.stdin.take().unwrap();
        stdin.write_all(b"gettablestatus 1 0\nmakesnapshot 1\nquit\n").unwrap();
    }
    let out = repl.wait_with_output().unwrap();
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(text.contains("kTableNormal") && text.contains("usage: makesnapshot tid pid"), "{text}");

    assert_eq!(stdout(&client(&endpoint, "drop 1 0")).trim(), "DropTable ok");
    drop(tablet);
}

/// A server's log written to a file carries no terminal colour codes; a client role prints its result and no
/// log lines.
#[tokio::test]
async fn logs_to_a_file_are_plain_and_clients_print_results_only() {
    let dir = TempDir::new("mldb-plain-logs");
    std::fs::create_dir_all(&dir.0).unwrap();
    let endpoint = format!("127.0.0.1:{}", free_port());
    let log_path = dir.0.join("tablet.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let tablet = Kill(
        Command::new(env!("CARGO_BIN_EXE_openmldb"))
            .args(["--role=tablet", &format!("--endpoint={endpoint}"), &format!("--db_root_path={}", dir.0.display())])
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap(),
    );
    until(&endpoint, "gettablestatus", "tid").await;
    let out = client(&endpoint, "gettablestatus");
    assert!(out.status.success(), "{out:?}");
    assert!(out.stderr.is_empty(), "a client prints results, not logs: {:?}", String::from_utf8_lossy(&out.stderr));
    drop(tablet);
    let written = std::fs::read_to_string(&log_path).unwrap();
    assert!(written.contains("INFO"), "the server logged nothing: {written:?}");
    assert!(!written.contains('\u{1b}'), "colour codes in a log file: {written:?}");
}
