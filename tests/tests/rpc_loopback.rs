//! The framed RPC transport on real tokio over loopback: the same guarantees as in the simulator, on real sockets.
#![cfg(not(madsim))]

use std::time::Duration;

use openmldb::proto::rpc::PingRequest;
use openmldb::rpc::{ClientConfig, Ping, RpcClient, RpcError, RpcServer, ServerHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

async fn server_on(addr: &str) -> ServerHandle {
    // A just-dropped listener may linger for a moment before its port is free again.
    for _ in 0..100 {
        if let Ok(h) = RpcServer::new("ping").bind(addr).await {
            return h;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("could not bind {addr}");
}

fn ping(value: u64, delay_ms: u32) -> PingRequest {
    PingRequest { value, delay_ms }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_calls_share_one_connection() {
    let server = server_on("127.0.0.1:0").await;
    let addr = server.local_addr().unwrap().to_string();
    let client = RpcClient::new(addr, ClientConfig::default());
    let calls = (0..1000u64).map(|i| {
        let client = client.clone();
        async move { (i, client.call(Ping, ping(i, (i * 7919 % 20) as u32)).await) }
    });
    for (i, r) in futures::future::join_all(calls).await {
        assert_eq!(r.expect("call answered").value, i);
    }
    assert_eq!(server.stats().connections(), 1);
    assert_eq!(server.stats().requests(), 1000);
}

#[tokio::test]
async fn a_dead_peer_fails_calls_within_the_deadline_and_a_restarted_one_is_reconnected() {
    let server = server_on("127.0.0.1:0").await;
    let addr = server.local_addr().unwrap().to_string();
    let client = RpcClient::new(addr.clone(), ClientConfig::default());
    assert_eq!(client.call(Ping, ping(1, 0)).await.unwrap().value, 1);

    let in_flight = tokio::spawn({
        let client = client.clone();
        async move { client.call_timeout(Ping, ping(2, 10_000), Duration::from_secs(5)).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let killed = Instant::now();
    drop(server);
    let err = in_flight.await.unwrap().unwrap_err();
    assert!(err.outcome_unknown(), "{err:?}");
    assert!(killed.elapsed() < Duration::from_secs(2), "noticed the dead peer after {:?}", killed.elapsed());

    let start = Instant::now();
    let err = client.call_timeout(Ping, ping(3, 0), Duration::from_millis(300)).await.unwrap_err();
    assert!(matches!(err, RpcError::Unavailable { .. }), "{err:?}");
    assert!(start.elapsed() < Duration::from_millis(600), "took {:?}", start.elapsed());

    let _server = server_on(&addr).await;
    // Calls fail fast while the client backs off; one succeeds once the backoff allows a new attempt.
    let start = Instant::now();
    loop {
        match client.call_timeout(Ping, ping(4, 0), Duration::from_secs(5)).await {
            Ok(r) => break assert_eq!(r.value, 4),
            Err(e) => assert!(matches!(e, RpcError::Unavailable { .. }), "{e:?}"),
        }
        assert!(start.elapsed() < Duration::from_secs(3), "no reconnect within the backoff bound");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let start = Instant::now();
    let err = client.call_timeout(Ping, ping(5, 2_000), Duration::from_millis(200)).await.unwrap_err();
    assert!(matches!(err, RpcError::Timeout { .. }), "{err:?}");
    assert!(start.elapsed() >= Duration::from_millis(200));
}

async fn send_raw_and_expect_close(addr: &str, bytes: &[u8]) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    s.flush().await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await;
    assert!(matches!(n, Ok(Ok(0)) | Ok(Err(_))), "the server should close the connection, got {n:?}");
}

#[tokio::test]
async fn an_oversize_frame_or_garbage_closes_only_that_connection() {
    let server = server_on("127.0.0.1:0").await;
    let addr = server.local_addr().unwrap().to_string();
    let good = RpcClient::new(addr.clone(), ClientConfig::default());
    assert_eq!(good.call(Ping, ping(1, 0)).await.unwrap().value, 1);

    send_raw_and_expect_close(&addr, &[0xff; 4]).await;
    // Deterministic "random" garbage: a xorshift stream behind a valid length prefix, invalid tag first.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut payload: Vec<u8> = (0..256)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    payload[0] = 0x07;
    let mut frame = (payload.len() as u32).to_be_bytes().to_vec();
    frame.extend(&payload);
    send_raw_and_expect_close(&addr, &frame).await;

    assert_eq!(good.call(Ping, ping(2, 0)).await.unwrap().value, 2);
    assert_eq!(server.stats().protocol_errors(), 2);
}
