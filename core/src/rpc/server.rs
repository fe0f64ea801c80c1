//! The server side: an accept loop, one reader and one writer task per connection, one task per request.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use prost::Message;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio_util::codec::{FramedRead, FramedWrite};

use super::{DEFAULT_MAX_FRAME, MAX_PING_DELAY, Method, Ping, Status, encode_envelope, frame_codec};
use crate::proto::rpc::{Envelope, FrameKind, PingResponse};

type BoxFuture = Pin<Box<dyn Future<Output = Result<Bytes, Status>> + Send>>;
type Handler = Arc<dyn Fn(Bytes) -> BoxFuture + Send + Sync>;

/// Limits of one server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest frame accepted; a longer one closes the connection.
    pub max_frame: usize,
    /// Requests of one connection being handled at once; reading pauses beyond it (backpressure).
    pub max_inflight_per_conn: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self { max_frame: DEFAULT_MAX_FRAME, max_inflight_per_conn: 4096 }
    }
}

/// Counters a test or an operator can read.
#[derive(Debug, Default)]
pub struct ServerStats {
    pub connections: AtomicU64,
    pub requests: AtomicU64,
    /// Connections closed because of an oversize or undecodable frame.
    pub protocol_errors: AtomicU64,
}

impl ServerStats {
    pub fn protocol_errors(&self) -> u64 {
        self.protocol_errors.load(Ordering::Relaxed)
    }
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }
}

/// A set of async handlers, one per [`Method`], served on one listener.
pub struct RpcServer {
    name: String,
    handlers: BTreeMap<&'static str, Handler>,
    config: ServerConfig,
}

impl RpcServer {
    /// A server named `name` (used in logs). It answers [`Ping`] out of the box.
    pub fn new(name: impl Into<String>) -> Self {
        let server = Self { name: name.into(), handlers: BTreeMap::new(), config: ServerConfig::default() };
        server.add(Ping, |req: crate::proto::rpc::PingRequest| async move {
            let delay = std::time::Duration::from_millis(req.delay_ms.into()).min(MAX_PING_DELAY);
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            Ok(PingResponse { value: req.value })
        })
    }

    pub fn with_config(mut self, config: ServerConfig) -> Self {
        self.config = config;
        self
    }

    /// Registers the handler of method `M`; a later registration of the same method replaces the earlier one.
    pub fn add<M, F, Fut>(mut self, _method: M, handler: F) -> Self
    where
        M: Method,
        F: Fn(M::Req) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<M::Resp, Status>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let erased: Handler = Arc::new(move |payload: Bytes| {
            let handler = handler.clone();
            Box::pin(async move {
                let req = M::Req::decode(payload)
                    .map_err(|e| Status::invalid_argument(format!("{}: undecodable request: {e}", M::NAME)))?;
                let resp = handler(req).await?;
                Ok(Bytes::from(resp.encode_to_vec()))
            })
        });
        self.handlers.insert(M::NAME, erased);
        self
    }

    /// Binds `addr` and serves in a background task until the returned handle is dropped or shut down.
    pub async fn bind(self, addr: &str) -> io::Result<ServerHandle> {
        let listener = TcpListener::bind(addr).await?;
        Ok(self.serve(listener))
    }

    /// Serves an already bound listener in a background task.
    pub fn serve(self, listener: TcpListener) -> ServerHandle {
        let local_addr = listener.local_addr().ok();
        let stats = Arc::new(ServerStats::default());
        let shared = Arc::new(Shared { name: self.name, handlers: self.handlers, config: self.config });
        let task = tokio::spawn(accept_loop(listener, shared, stats.clone()));
        ServerHandle { local_addr, stats, task }
    }
}

/// A running server. Dropping it stops the accept loop and closes every connection.
pub struct ServerHandle {
    local_addr: Option<SocketAddr>,
    stats: Arc<ServerStats>,
    task: JoinHandle<()>,
}

impl ServerHandle {
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }
    pub fn stats(&self) -> &Arc<ServerStats> {
        &self.stats
    }
    /// Waits until the accept loop ends (it only ends if the listener fails).
    pub async fn join(mut self) {
        let _ = (&mut self.task).await;
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Shared {
    name: String,
    handlers: BTreeMap<&'static str, Handler>,
    config: ServerConfig,
}

/// Aborts the tasks it holds when dropped, so stopping the accept loop also closes its connections.
struct TaskSet(Vec<JoinHandle<()>>);

impl Drop for TaskSet {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, stats: Arc<ServerStats>) {
    let mut conns = TaskSet(Vec::new());
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                stats.connections.fetch_add(1, Ordering::Relaxed);
                conns.0.retain(|t| !t.is_finished());
                conns.0.push(tokio::spawn(serve_connection(stream, peer, shared.clone(), stats.clone())));
            }
            Err(e) => {
                // Accept errors (e.g. too many open files) are transient: log, pause, go on.
                tracing::warn!(server = %shared.name, error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

async fn serve_connection(stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>, stats: Arc<ServerStats>) {
    super::no_delay(&stream, &peer);
    let (read_half, write_half) = tokio::io::split(stream);
    let mut reader = FramedRead::new(read_half, frame_codec(shared.config.max_frame));
    let mut writer = FramedWrite::new(write_half, frame_codec(shared.config.max_frame));
    let inflight = shared.config.max_inflight_per_conn.max(1);
    let (tx, mut rx) = mpsc::channel::<Envelope>(inflight);

    // The writer batches whatever responses are ready, then flushes once (the simulated stream sends on flush).
    let writer_task = TaskSet(vec![tokio::spawn(async move {
        while let Some(env) = rx.recv().await {
            if writer.feed(encode_envelope(&env)).await.is_err() {
                return;
            }
            while let Ok(env) = rx.try_recv() {
                if writer.feed(encode_envelope(&env)).await.is_err() {
                    return;
                }
            }
            if SinkExt::<Bytes>::flush(&mut writer).await.is_err() {
                return;
            }
        }
    })]);

    let permits = Arc::new(Semaphore::new(inflight));
    loop {
        let frame = match reader.next().await {
            None => break,
            Some(Ok(frame)) => frame,
            Some(Err(e)) => {
                stats.protocol_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(server = %shared.name, %peer, error = %e, "closing connection: bad frame");
                break;
            }
        };
        let env = match Envelope::decode(frame.freeze()) {
            Ok(env) if env.kind() == FrameKind::Request => env,
            Ok(env) => {
                stats.protocol_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(server = %shared.name, %peer, kind = ?env.kind(), "closing connection: not a request");
                break;
            }
            Err(e) => {
                stats.protocol_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(server = %shared.name, %peer, error = %e, "closing connection: undecodable frame");
                break;
            }
        };
        stats.requests.fetch_add(1, Ordering::Relaxed);
        let Ok(permit) = permits.clone().acquire_owned().await else { break };
        let handler = shared.handlers.get(env.method.as_str()).cloned();
        let tx = tx.clone();
        tokio::spawn(async move {
            let result = match handler {
                Some(h) => h(env.payload).await,
                None => Err(Status::new(Status::UNIMPLEMENTED, format!("unknown method {:?}", env.method))),
            };
            let (payload, status) = match result {
                Ok(payload) => (payload, None),
                Err(status) => {
                    (Bytes::new(), Some(crate::proto::rpc::Status { code: status.code, message: status.message }))
                }
            };
            let resp =
                Envelope { id: env.id, kind: FrameKind::Response as i32, method: String::new(), payload, status };
            let _ = tx.send(resp).await;
            drop(permit);
        });
    }
    drop(writer_task);
}
