//! The framed RPC transport in the simulator: multiplexing, deadlines against dead and frozen peers, reconnects,
//! and hostile bytes.
#![cfg(madsim)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use mldb_sim::harness::{Cluster, ProcessCtx, process_main};
use mldb_sim::runner::run_seed;
use openmldb::proto::rpc::PingRequest;
use openmldb::rpc::{ClientConfig, Ping, RpcClient, RpcError, RpcServer, ServerStats};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

const PORT: u16 = 9000;

type StatsSlot = Arc<Mutex<Option<Arc<ServerStats>>>>;

/// A cluster with a ping server (publishing its stats to the slot at every start) and an idle client process.
fn cluster(trace: mldb_sim::trace::Trace) -> (Cluster, String, StatsSlot) {
    let mut c = Cluster::new(trace);
    let slot: StatsSlot = Arc::default();
    let s = slot.clone();
    let m1 = c.add_machine("server-machine");
    let ip = c.add_process(
        m1,
        "server",
        process_main(move |ctx: ProcessCtx| {
            let s = s.clone();
            async move {
                let handle = RpcServer::new("ping").bind(&ctx.endpoint(PORT)).await.expect("bind");
                *s.lock().unwrap() = Some(handle.stats().clone());
                handle.join().await;
            }
        }),
        true,
    );
    let m2 = c.add_machine("client-machine");
    c.add_process(m2, "client", Cluster::idle(), true);
    (c, format!("{ip}:{PORT}"), slot)
}

fn ping(value: u64, delay_ms: u32) -> PingRequest {
    PingRequest { value, delay_ms }
}

#[test]
fn a_thousand_concurrent_calls_share_one_connection() {
    for seed in mldb_tests::seeds(&[1]) {
        run_seed(seed, Some(Duration::from_secs(60)), |trace| async move {
            let (c, addr, stats) = cluster(trace);
            c.spawn_on("client", async move {
                let client = RpcClient::new(addr, ClientConfig::default());
                let calls = (0..1000u64).map(|i| {
                    let client = client.clone();
                    // Varied server-side delays make the answers come back out of order.
                    async move { (i, client.call(Ping, ping(i, (i * 7919 % 50) as u32)).await) }
                });
                for (i, r) in futures::future::join_all(calls).await {
                    assert_eq!(r.expect("call answered").value, i);
                }
            })
            .unwrap()
            .await
            .unwrap();
            let stats = stats.lock().unwrap().clone().unwrap();
            assert_eq!(stats.connections(), 1, "every call used one connection");
            assert_eq!(stats.requests(), 1000);
        });
    }
}

#[test]
fn calls_to_a_killed_or_frozen_peer_fail_within_their_deadline_and_the_client_reconnects() {
    for seed in mldb_tests::seeds(&[2]) {
        run_seed(seed, Some(Duration::from_secs(60)), |trace| async move {
            let (mut c, addr, _) = cluster(trace);
            let client = RpcClient::new(addr, ClientConfig::default());
            let cl = client.clone();
            c.spawn_on("client", async move { cl.call(Ping, ping(1, 0)).await.unwrap() }).unwrap().await.unwrap();

            // A call in flight when the peer dies fails at once, as "outcome unknown".
            let cl = client.clone();
            let in_flight = c
                .spawn_on("client", async move {
                    let start = Instant::now();
                    let r = cl.call_timeout(Ping, ping(2, 5_000), Duration::from_secs(3)).await;
                    (r, start.elapsed())
                })
                .unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
            c.crash("server").unwrap();
            let (r, took) = in_flight.await.unwrap();
            let err = r.unwrap_err();
            assert!(matches!(err, RpcError::ConnectionLost { .. }), "{err:?}");
            assert!(err.outcome_unknown());
            assert!(took < Duration::from_millis(200), "noticed the dead peer after {took:?}");

            // A call to a dead peer fails within its deadline, as "not sent".
            let cl = client.clone();
            let (r, took) = c
                .spawn_on("client", async move {
                    let start = Instant::now();
                    (cl.call_timeout(Ping, ping(3, 0), Duration::from_millis(300)).await, start.elapsed())
                })
                .unwrap()
                .await
                .unwrap();
            let err = r.unwrap_err();
            assert!(matches!(err, RpcError::Unavailable { .. }), "{err:?}");
            assert!(!err.outcome_unknown());
            // Each simulated poll costs madsim ~50-100 ns of simulated time, hence a little slack.
            assert!(took <= Duration::from_millis(300) + Duration::from_micros(100), "took {took:?}");

            // The peer comes back: the same client reconnects within its bounded backoff.
            c.start("server").unwrap();
            let cl = client.clone();
            let took = c
                .spawn_on("client", async move {
                    // Calls fail fast while the client backs off; one succeeds within the backoff bound.
                    let start = Instant::now();
                    loop {
                        match cl.call(Ping, ping(4, 0)).await {
                            Ok(r) => break assert_eq!(r.value, 4),
                            Err(e) => assert!(matches!(e, RpcError::Unavailable { .. }), "{e:?}"),
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    start.elapsed()
                })
                .unwrap()
                .await
                .unwrap();
            assert!(
                took <= ClientConfig::default().max_backoff + Duration::from_millis(100),
                "reconnect took {took:?}"
            );

            // A frozen peer keeps its sockets open: the call ends at its deadline, as "outcome unknown".
            c.pause("server").unwrap();
            let cl = client.clone();
            let (r, took) = c
                .spawn_on("client", async move {
                    let start = Instant::now();
                    (cl.call_timeout(Ping, ping(5, 0), Duration::from_millis(500)).await, start.elapsed())
                })
                .unwrap()
                .await
                .unwrap();
            assert!(matches!(r, Err(RpcError::Timeout { .. })), "{r:?}");
            assert!(took >= Duration::from_millis(500) && took < Duration::from_millis(520), "took {took:?}");
            c.resume("server").unwrap();
            let cl = client.clone();
            c.spawn_on("client", async move { cl.call(Ping, ping(6, 0)).await.unwrap() }).unwrap().await.unwrap();
        });
    }
}

/// Writes `bytes` on a fresh connection and waits for the server to close it.
async fn send_raw_and_expect_close(addr: &str, bytes: Vec<u8>) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(&bytes).await.unwrap();
    s.flush().await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await;
    assert!(matches!(n, Ok(Ok(0)) | Ok(Err(_))), "the server should close the connection, got {n:?}");
}

#[test]
fn an_oversize_frame_or_garbage_closes_only_that_connection() {
    for seed in mldb_tests::seeds(&[3]) {
        let out = run_seed(seed, Some(Duration::from_secs(60)), |trace| async move {
            let (c, addr, stats) = cluster(trace.clone());
            c.spawn_on("client", async move {
                let good = RpcClient::new(addr.clone(), ClientConfig::default());
                assert_eq!(good.call(Ping, ping(1, 0)).await.unwrap().value, 1);

                // A length prefix of 4 GiB: rejected from the header alone, nothing allocated.
                send_raw_and_expect_close(&addr, vec![0xff; 4]).await;
                // A well-framed but undecodable payload of random bytes (an invalid protobuf tag first).
                let mut payload: Vec<u8> = (0..64).map(|_| madsim::rand::random::<u8>()).collect();
                payload[0] = 0x07;
                let mut frame = (payload.len() as u32).to_be_bytes().to_vec();
                frame.extend(payload);
                send_raw_and_expect_close(&addr, frame).await;

                // The server still serves, and the good connection was never disturbed.
                assert_eq!(good.call(Ping, ping(2, 0)).await.unwrap().value, 2);
                let fresh = RpcClient::new(addr, ClientConfig::default());
                assert_eq!(fresh.call(Ping, ping(3, 0)).await.unwrap().value, 3);
            })
            .unwrap()
            .await
            .unwrap();
            let stats = stats.lock().unwrap().clone().unwrap();
            assert_eq!(stats.protocol_errors(), 2);
            assert_eq!(stats.connections(), 4);
        });
        let logged = out.trace.grep("closing connection");
        assert_eq!(logged.len(), 2, "each bad connection is logged:\n{}", out.trace.to_text());
        assert!(logged[0].contains("WARN") && logged[0].contains("server"), "{}", logged[0]);
    }
}
