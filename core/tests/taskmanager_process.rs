//! Real processes on loopback, on each coordination backend: a nameserver, two tablets and two TaskManagers. An
//! import from a CSV file on the shared data dir, an export, rows written through the routing client, `kill -9`
//! of the active TaskManager during a generated import and the standby finishing it, `kill -9` of the
//! coordination server with the job history kept; the job commands' errors; a dropped table's running job stopped.
#![cfg(not(madsim))]

mod common;

use common::{
    Backend, Coord, Kill, TempDir, free_port, missing_rows, ns_client, ns_until, put_rows, routing, serially, spawn,
};

fn text(o: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn real_taskmanagers_hand_a_job_over_after_kill_9_on_the_embedded_coordinator() {
    serially(real_taskmanagers(Backend::Model));
}

#[test]
fn real_taskmanagers_hand_a_job_over_after_kill_9_on_zookeeper() {
    serially(real_taskmanagers(Backend::ZooKeeper));
}

async fn real_taskmanagers(backend: Backend) {
    let dir = TempDir::new("mldb-tm-proc");
    let Some(mut coord) = Coord::start(backend, &dir.0, "real_taskmanagers_hand_a_job_over_after_kill_9_on_zookeeper")
    else {
        return;
    };
    let data = dir.0.join("shared");
    std::fs::create_dir_all(&data).unwrap();
    let zk = coord.spec();
    let zk_flag = coord.flag();
    let mut procs = Vec::new();
    for i in 0..2 {
        procs.push(spawn(&[
            "--role=tablet".into(),
            format!("--endpoint=127.0.0.1:{}", free_port()),
            zk_flag.clone(),
            format!("--db_root_path={}", dir.0.join(format!("tablet-{i}")).display()),
        ]));
    }
    procs.push(spawn(&["--role=nameserver".into(), format!("--endpoint=127.0.0.1:{}", free_port()), zk_flag.clone()]));
    // Both TaskManagers share one data dir, as they would share a mount in production.
    let tm_eps: Vec<String> = (0..2).map(|_| format!("127.0.0.1:{}", free_port())).collect();
    let mut tms: Vec<Option<Kill>> = tm_eps
        .iter()
        .map(|ep| {
            Some(spawn(&[
                "--role=taskmanager".into(),
                format!("--endpoint={ep}"),
                zk_flag.clone(),
                format!("--job_data_dir={}", data.display()),
                "--import_batch_rows=200".into(),
            ]))
        })
        .collect();

    ns_until(&zk, "showtablet", |o| o.matches("kTabletHealthy").count() == 2).await;
    let created = ns_client(&zk, "create t 0 2 2 id:string:index ts:int64:ts v:string");
    assert!(text(&created).contains("Create table ok"), "{}", text(&created));

    // An import from a CSV file, then an export of the table back to a file.
    std::fs::write(data.join("in.csv"), "id,ts,v\na,1,x\nb,2,y\nc,3,z\n").unwrap();
    let out = ns_until(&zk, "submitjob import t in.csv", |o| o.contains("ImportOnlineData")).await;
    assert!(out.contains(" 1 "), "{out}");
    ns_until(&zk, "showjob 1", |o| o.contains("Finished") && o.contains("3/3")).await;
    ns_client(&zk, "submitjob export t out/t.csv");
    ns_until(&zk, "showjob 2", |o| o.contains("Finished")).await;
    let mut exported: Vec<String> =
        std::fs::read_to_string(data.join("out/t.csv")).unwrap().lines().map(str::to_string).collect();
    exported.sort();
    assert_eq!(exported, ["a,1,x", "b,2,y", "c,3,z", "id,ts,v"]);

    // Rows an application writes through the routing client sit beside the imported ones (keys k0..k299).
    put_rows(&routing(&zk).await, "t", 0..300).await;

    // A generated import; kill -9 the active TaskManager once it has made progress.
    ns_client(&zk, "submitjob import t gen:20000");
    let running = ns_until(&zk, "showjob 3", |o| o.contains("Running") && !o.contains(" 0/20000")).await;
    let active = if running.contains(&tm_eps[0]) { 0 } else { 1 };
    tms[active] = None;
    let done = ns_until(&zk, "showjob 3", |o| o.contains("Finished") || o.contains("Failed")).await;
    assert!(done.contains("Finished") && done.contains("20000/20000"), "{done}");
    assert!(done.contains(&tm_eps[1 - active]), "the standby finished it: {done}");

    // kill -9 of the coordination server and a restart on its data: the job history is kept.
    coord.kill_and_restart();
    let history = ns_until(&zk, "showjobs", |o| o.contains("20000/20000")).await;
    assert!(history.contains("3/3"), "{backend:?}: {history}");

    // Every row once: an export of the table has 3 + 300 + 20000 rows and a header, no key twice.
    ns_until(&zk, "submitjob export t all.csv", |o| o.contains("ExportOnlineData")).await;
    ns_until(&zk, "showjob 4", |o| o.contains("Finished")).await;
    let all = std::fs::read_to_string(data.join("all.csv")).unwrap();
    let keys: std::collections::BTreeSet<&str> = all.lines().skip(1).map(|l| l.split(',').next().unwrap()).collect();
    assert_eq!(all.lines().count(), 1 + 3 + 300 + 20_000);
    assert_eq!(keys.len(), 3 + 300 + 20_000, "a key appears twice");
    assert_eq!(missing_rows(&zk, "t", 0..300).await, Vec::<String>::new(), "{backend:?}");

    // Errors are clear and change nothing.
    let bad = ns_client(&zk, "submitjob import nosuch gen:1");
    assert_eq!(bad.status.code(), Some(1));
    assert!(text(&bad).contains("table is not exist"), "{}", text(&bad));
    let bad = ns_client(&zk, "submitjob import t missing.csv");
    let id = text(&bad);
    assert!(id.contains("ImportOnlineData"), "{id}");
    let failed = ns_until(&zk, "showjob 5", |o| o.contains("Failed")).await;
    assert!(failed.contains("cannot read \"missing.csv\""), "{failed}");
    assert!(text(&ns_client(&zk, "showjob 99")).contains("job is not exist"));
    assert!(text(&ns_client(&zk, "submitjob frobnicate t")).contains("usage: submitjob"));
    assert!(text(&ns_client(&zk, "stopjob 1")).contains("job is finished"));

    // Dropping a table stops its running jobs: the nameserver finds the active TaskManager and asks it.
    let created = ns_client(&zk, "create t2 0 2 2 id:string:index ts:int64:ts v:string");
    assert!(text(&created).contains("Create table ok"), "{}", text(&created));
    ns_client(&zk, "submitjob import t2 gen:2000000");
    ns_until(&zk, "showjob 6", |o| o.contains("Running") && !o.contains(" 0/2000000")).await;
    assert!(text(&ns_client(&zk, "drop t2")).contains("drop ok"));
    let killed = ns_until(&zk, "showjob 6", |o| o.contains("Killed") || o.contains("Finished")).await;
    assert!(killed.contains("Killed") && killed.contains("table t2 was dropped"), "{killed}");
    drop(tms);
    drop(procs);
}
