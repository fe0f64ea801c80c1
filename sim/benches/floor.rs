//! What a message costs the simulator: the floor under the reference benchmark.
//!
//! Each figure is wall time on one core inside a madsim runtime with the scenarios' default network (1–10 ms
//! one way). A write of the reference scenario costs one Put RPC and, as the replicator batches, about three
//! quarters of an AppendEntries RPC (seed 1: 58,017 Puts, 42,679 AppendEntries), so these round trips bound
//! its cost from below whatever the code around them does (README, reference benchmark).
//!
//! `taskset -c 0 cargo sbench -p mldb-sim --bench floor`

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(madsim)]
mod floor {
    use std::net::{IpAddr, Ipv4Addr};
    use std::time::Duration;

    use madsim::net::NetSim;
    use madsim::runtime::{Handle, Runtime};
    use openmldb::proto::rpc::PingRequest;
    use openmldb::rpc::{ClientConfig, Ping, RpcClient, RpcServer};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const SERVER: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));

    /// Runs `body` in a fresh runtime with the scenarios' default latency; returns (wall, simulated) seconds.
    fn measure<F, Fut>(body: F) -> (f64, f64)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + 'static,
    {
        let rt = Runtime::with_seed_and_config(1, madsim::Config::default());
        let wall = std::time::Instant::now();
        let sim = rt.block_on(async move {
            NetSim::current().update_config(|c| {
                c.packet_loss_rate = 0.0;
                c.send_latency = Duration::from_millis(1)..Duration::from_millis(10);
            });
            let start = tokio::time::Instant::now();
            body().await;
            start.elapsed()
        });
        (wall.elapsed().as_secs_f64(), sim.as_secs_f64())
    }

    /// `server` on one node and, 50 ms later, `client` on another; measured until the client ends.
    fn pair<S, C>(server: S, client: C) -> (f64, f64)
    where
        S: std::future::Future<Output = ()> + Send + 'static,
        C: std::future::Future<Output = ()> + Send + 'static,
    {
        measure(move || async move {
            let node = |ip| Handle::current().create_node().ip(ip).build();
            // Dropping a handle detaches its task.
            drop(node(SERVER).spawn(server));
            node(CLIENT)
                .spawn(async move {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    client.await;
                })
                .await
                .expect("client");
        })
    }

    /// `calls` Ping RPCs of [`RpcClient`] from one node to another, `parallel` at a time.
    fn rpc(calls: usize, parallel: usize) -> (f64, f64) {
        let server = async {
            let h = RpcServer::new("floor").bind("10.0.0.1:9000").await.expect("bind");
            h.join().await;
        };
        pair(server, async move {
            let c = RpcClient::new("10.0.0.1:9000", ClientConfig::default());
            let mut tasks = Vec::new();
            for _ in 0..parallel {
                let c = c.clone();
                tasks.push(tokio::spawn(async move {
                    for i in 0..calls / parallel {
                        c.call(Ping, PingRequest { value: i as u64, delay_ms: 0 }).await.expect("ping");
                    }
                }));
            }
            for t in tasks {
                t.await.expect("join");
            }
        })
    }

    /// `rounds` round trips of an 8-byte message over a bare simulated TCP stream.
    fn tcp(rounds: usize) -> (f64, f64) {
        let server = async {
            let l = tokio::net::TcpListener::bind("10.0.0.1:9000").await.expect("bind");
            let (mut s, _) = l.accept().await.expect("accept");
            let mut buf = [0u8; 8];
            while s.read_exact(&mut buf).await.is_ok() {
                s.write_all(&buf).await.expect("write");
                s.flush().await.expect("flush");
            }
        };
        pair(server, async move {
            let mut s = tokio::net::TcpStream::connect("10.0.0.1:9000").await.expect("connect");
            let mut buf = [0u8; 8];
            for i in 0..rounds as u64 {
                s.write_all(&i.to_le_bytes()).await.expect("write");
                s.flush().await.expect("flush");
                s.read_exact(&mut buf).await.expect("read");
            }
        })
    }

    /// `rounds` round trips of an 8-byte datagram between madsim endpoints.
    fn datagram(rounds: usize) -> (f64, f64) {
        let server = async {
            let ep = madsim::net::Endpoint::bind("10.0.0.1:9000").await.expect("bind");
            let mut buf = [0u8; 8];
            while let Ok((n, from)) = ep.recv_from(1, &mut buf).await {
                ep.send_to(from, 2, &buf[..n]).await.expect("send");
            }
        };
        pair(server, async move {
            let ep = madsim::net::Endpoint::bind("10.0.0.2:9000").await.expect("bind");
            let mut buf = [0u8; 8];
            for i in 0..rounds as u64 {
                ep.send_to("10.0.0.1:9000", 1, &i.to_le_bytes()).await.expect("send");
                ep.recv_from(2, &mut buf).await.expect("recv");
            }
        })
    }

    /// `rounds` sleeps of 1 ms on one task: the cost of a timer and a wake-up alone.
    fn timers(rounds: usize) -> (f64, f64) {
        measure(move || async move {
            for _ in 0..rounds {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    }

    pub fn main() {
        let n = 100_000;
        let report = |what: &str, count: usize, (wall, sim): (f64, f64)| {
            println!(
                "{what:<44} {count:>7} in {wall:>6.3} s wall, {sim:>7.1} s simulated: {:>6.2} us each",
                wall * 1e6 / count as f64
            );
        };
        report("timer: 1 ms sleep and wake-up", n, timers(n));
        report("datagram round trip (8 bytes each way)", n, datagram(n));
        report("bare TCP round trip (8 bytes each way)", n, tcp(n));
        report("RpcClient Ping round trip, one at a time", n, rpc(n, 1));
        report("RpcClient Ping round trip, 64 in flight", n, rpc(n, 64));
    }
}

#[cfg(madsim)]
fn main() {
    floor::main();
}

#[cfg(not(madsim))]
fn main() {
    eprintln!("the floor benchmark runs in the simulator build: cargo sbench -p mldb-sim --bench floor");
}
