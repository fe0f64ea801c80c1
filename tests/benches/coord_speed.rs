//! How fast the simulator runs the coordination service: simulated seconds per wall second, and seeds per minute.
//!
//! `cargo sbench -p mldb-tests --bench coord_speed [-- SEEDS]` (release, simulator build, one thread).
//! Two workloads per seed:
//! - the coordination conformance suite (one client node, one server);
//! - a 60-simulated-second fault run: three registering "tablets", a client writing and watching metadata
//!   nodes, a crash and restart every 10 s, an isolation from the coordination server every 10 s.

#[cfg(not(madsim))]
fn main() {
    eprintln!("this bench runs in the simulator build: cargo sbench -p mldb-tests --bench coord_speed");
}

#[cfg(madsim)]
fn main() {
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use mldb_sim::harness::Cluster;
    use mldb_sim::probes::{add_coord, registrar};
    use mldb_sim::runner::run_seed;
    use mldb_tests::conformance::{self, Backend};
    use openmldb::coord::{ClientOptions, CoordServerConfig, Coordinator, CreateMode, ModelCoordinator, create_all};

    struct Model(String);
    impl Backend for Model {
        fn connect(&self, t: Duration) -> Pin<Box<dyn Future<Output = Box<dyn Coordinator>> + Send + '_>> {
            Box::pin(async move {
                Box::new(ModelCoordinator::connect(&self.0, ClientOptions::new(t)).await.unwrap())
                    as Box<dyn Coordinator>
            })
        }
        fn expiry_slack(&self) -> Duration {
            CoordServerConfig::default().tree.tick
        }
        fn root(&self) -> String {
            "/bench".into()
        }
        fn spec(&self) -> String {
            self.0.clone()
        }
    }

    async fn conformance_run(trace: mldb_sim::trace::Trace) {
        let mut c = Cluster::new(trace);
        let addr = add_coord(&mut c);
        let m = c.add_machine("client-machine");
        c.add_process(m, "client", Cluster::idle(), true);
        c.spawn_on("client", async move { conformance::run_all(&Model(addr)).await }).unwrap().await.unwrap();
    }

    async fn fault_run(trace: mldb_sim::trace::Trace) {
        let mut c = Cluster::new(trace);
        let addr = add_coord(&mut c);
        let t = Duration::from_secs(2);
        for i in 1..=3 {
            let m = c.add_machine(&format!("machine-{i}"));
            c.add_process(
                m,
                &format!("tablet-{i}"),
                registrar(addr.clone(), 9527, t, Arc::new(Mutex::new(vec![]))),
                true,
            );
        }
        let m = c.add_machine("client-machine");
        c.add_process(m, "client", Cluster::idle(), true);
        let a = addr.clone();
        c.spawn_on("client", async move {
            let coord = ModelCoordinator::connect(&a, ClientOptions::new(t)).await.unwrap();
            create_all(&coord, "/openmldb/table").await.unwrap();
            let _ = coord.create("/openmldb/table/notify", b"0", CreateMode::Persistent).await;
            for i in 0u64.. {
                let _ = coord.set("/openmldb/table/notify", i.to_string().as_bytes(), None).await;
                let _ = coord.children_watch("/openmldb/nodes").await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .unwrap();
        for round in 0..6u64 {
            let victim = format!("tablet-{}", round % 3 + 1);
            let cut = format!("tablet-{}", (round + 1) % 3 + 1);
            tokio::time::sleep(Duration::from_secs(4)).await;
            c.crash(&victim).unwrap();
            c.isolate_from(&cut, "coord").unwrap();
            tokio::time::sleep(Duration::from_secs(3)).await;
            c.heal();
            c.start(&victim).unwrap();
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
    }

    let seeds: u64 = std::env::args().skip(1).find(|a| !a.starts_with('-')).and_then(|a| a.parse().ok()).unwrap_or(20);
    type Body = fn(mldb_sim::trace::Trace) -> Pin<Box<dyn Future<Output = ()>>>;
    let bodies: [(&str, Body); 2] = [
        ("conformance suite", |t| Box::pin(conformance_run(t))),
        ("60 s fault run, 3 tablets", |t| Box::pin(fault_run(t))),
    ];
    for (name, body) in bodies {
        let (mut sim, mut wall) = (Duration::ZERO, Duration::ZERO);
        for seed in 0..seeds {
            let out = run_seed(seed, None, body);
            sim += out.sim_elapsed;
            wall += out.wall_elapsed;
        }
        println!(
            "{name}: {seeds} seeds, {:.1} simulated s in {:.3} wall s: {:.0} simulated s per wall s, {:.0} seeds per minute",
            sim.as_secs_f64(),
            wall.as_secs_f64(),
            sim.as_secs_f64() / wall.as_secs_f64(),
            seeds as f64 * 60.0 / wall.as_secs_f64()
        );
    }
}
