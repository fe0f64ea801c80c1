//! The client side: one lazily opened connection per peer, shared by every concurrent call.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex as SyncMutex};
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use prost::Message;
use tokio::net::TcpStream;
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::codec::{FramedRead, FramedWrite};

use super::{DEFAULT_MAX_FRAME, Method, RpcError, Status, encode_envelope, frame_codec};
use crate::proto::rpc::{Envelope, FrameKind};

/// Deadlines and limits of one client.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Deadline of a call made with [`RpcClient::call`].
    pub timeout: Duration,
    /// Longest a single connect attempt may take.
    pub connect_timeout: Duration,
    /// First wait after a failed connect; doubles per failure up to `max_backoff`.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// Largest frame accepted or sent.
    pub max_frame: usize,
    /// Requests queued for the connection's writer before callers wait.
    pub send_queue: usize,
    /// Drop the connection when a call times out with nothing at all read on it since the call was sent (see
    /// [`RpcClient::call_timeout`]). For control-plane clients, whose next call must not queue behind a stream
    /// stalled by a cut; not for data-path clients, whose requests already in a peer's socket are exactly what a
    /// paused leader must be seen refusing (DESIGN 5.1).
    pub drop_stalled: bool,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(1),
            min_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_secs(1),
            max_frame: DEFAULT_MAX_FRAME,
            send_queue: 1024,
            drop_stalled: false,
        }
    }
}

/// A client of one peer address. Cloning is cheap; clones share the connection.
#[derive(Clone)]
pub struct RpcClient {
    inner: Arc<Inner>,
}

struct Inner {
    addr: String,
    config: ClientConfig,
    slot: Mutex<Slot>,
    next_id: AtomicU64,
}

/// The connection state: a live connection, or when the next connect may be tried.
struct Slot {
    conn: Option<Arc<Conn>>,
    next_attempt: Option<Instant>,
    backoff: Duration,
    last_error: String,
}

/// Calls awaiting an answer, by request id (ordered, so failing them all on a broken connection wakes the
/// callers in a deterministic order).
type Pending = SyncMutex<BTreeMap<u64, oneshot::Sender<Result<Envelope, RpcError>>>>;

/// One TCP connection: a writer queue, the table of calls awaiting an answer, and its reader task.
struct Conn {
    tx: mpsc::Sender<Envelope>,
    shared: Arc<ConnShared>,
    tasks: [JoinHandle<()>; 2],
}

struct ConnShared {
    pending: Pending,
    closed: AtomicBool,
    /// When the reader last got a frame: a connection silent for a whole call deadline is taken for dead.
    last_read: SyncMutex<Instant>,
}

impl ConnShared {
    /// Marks the connection dead and fails every call still waiting on it.
    fn close(&self, addr: &str, reason: &str) {
        self.closed.store(true, Ordering::SeqCst);
        let drained = std::mem::take(&mut *self.pending.lock().expect("pending lock"));
        for (_, waiter) in drained {
            let _ = waiter.send(Err(RpcError::ConnectionLost { addr: addr.to_string(), reason: reason.to_string() }));
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl RpcClient {
    /// A client of `addr` ("ip:port" or "host:port"); nothing is connected until the first call.
    pub fn new(addr: impl Into<String>, config: ClientConfig) -> Self {
        let backoff = config.min_backoff;
        Self {
            inner: Arc::new(Inner {
                addr: addr.into(),
                config,
                slot: Mutex::new(Slot { conn: None, next_attempt: None, backoff, last_error: String::new() }),
                next_id: AtomicU64::new(1),
            }),
        }
    }

    pub fn addr(&self) -> &str {
        &self.inner.addr
    }

    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// Calls `M` with the configured default deadline.
    pub async fn call<M: Method>(&self, _method: M, req: M::Req) -> Result<M::Resp, RpcError> {
        self.call_timeout(_method, req, self.inner.config.timeout).await
    }

    /// Calls `M`; the whole call (connecting included) ends by `timeout`.
    pub async fn call_timeout<M: Method>(
        &self,
        _method: M,
        req: M::Req,
        timeout: Duration,
    ) -> Result<M::Resp, RpcError> {
        let deadline = Instant::now() + timeout;
        let addr = &self.inner.addr;
        let conn = self.connection(deadline).await?;
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (done_tx, done_rx) = oneshot::channel();
        conn.shared.pending.lock().expect("pending lock").insert(id, done_tx);
        let env = Envelope {
            id,
            kind: FrameKind::Request as i32,
            method: M::NAME.to_string(),
            payload: Bytes::from(req.encode_to_vec()),
            status: None,
        };
        // From here on the request may reach the peer, so failures are "outcome unknown".
        let sent_at = Instant::now();
        let sent = super::timeout_at(deadline, conn.tx.send(env)).await;
        let result = match sent {
            Ok(Ok(())) => match super::timeout_at(deadline, done_rx).await {
                Ok(Ok(r)) => r,
                Ok(Err(_)) => Err(RpcError::ConnectionLost { addr: addr.clone(), reason: "connection closed".into() }),
                Err(_) => {
                    // Nothing at all came back since the request left: the stream is stalled (a cut keeps the
                    // socket open, and a stalled stream retransmits with a backoff that outlives a heal by
                    // seconds). Drop it, so the next call connects afresh instead of queueing behind it.
                    if self.inner.config.drop_stalled && *conn.shared.last_read.lock().expect("read clock") < sent_at {
                        conn.shared.close(addr, "no answer on the connection for a whole call deadline");
                    }
                    Err(RpcError::Timeout { addr: addr.clone(), method: M::NAME, after: timeout })
                }
            },
            Ok(Err(_)) => Err(RpcError::ConnectionLost { addr: addr.clone(), reason: "connection closed".into() }),
            Err(_) => Err(RpcError::Timeout { addr: addr.clone(), method: M::NAME, after: timeout }),
        };
        conn.shared.pending.lock().expect("pending lock").remove(&id);
        let env = result?;
        if let Some(status) = env.status.filter(|s| s.code != Status::OK) {
            return Err(RpcError::Status(Status { code: status.code, message: status.message }));
        }
        M::Resp::decode(env.payload).map_err(|e| RpcError::Decode { addr: addr.clone(), reason: e.to_string() })
    }

    /// Drops the current connection; the next call connects afresh (used after a suspected partition).
    pub async fn reset(&self) {
        let mut slot = self.inner.slot.lock().await;
        if let Some(conn) = slot.conn.take() {
            conn.shared.close(&self.inner.addr, "reset by client");
        }
    }

    /// Ends the backoff after a failed connect: the caller knows the peer is back (a restarted tablet registered
    /// again), so the next call connects at once instead of failing fast until the backoff window passes.
    pub async fn retry_now(&self) {
        let mut slot = self.inner.slot.lock().await;
        slot.next_attempt = None;
        slot.backoff = self.inner.config.min_backoff;
    }

    /// The live connection, or one connect attempt if there is none and the backoff allows it.
    ///
    /// Calls fail fast while a peer is unreachable: one attempt per call at most, and none during the backoff
    /// window after a failed attempt, so a caller with many requests (a writer, a replicator) learns at once and
    /// decides itself when to retry, while the peer sees at most one attempt per backoff period.
    async fn connection(&self, deadline: Instant) -> Result<Arc<Conn>, RpcError> {
        let inner = &self.inner;
        let unavailable = |reason: String| RpcError::Unavailable { addr: inner.addr.clone(), reason };
        let mut slot = super::timeout_at(deadline, inner.slot.lock())
            .await
            .map_err(|_| unavailable("deadline passed waiting for the connection".into()))?;
        if let Some(conn) = &slot.conn {
            if !conn.shared.closed.load(Ordering::SeqCst) {
                return Ok(conn.clone());
            }
            slot.conn = None;
        }
        if let Some(at) = slot.next_attempt
            && Instant::now() < at
        {
            return Err(unavailable(format!("backing off after: {}", slot.last_error)));
        }
        let attempt_deadline = deadline.min(Instant::now() + inner.config.connect_timeout);
        let error = match super::timeout_at(attempt_deadline, TcpStream::connect(inner.addr.as_str())).await {
            Ok(Ok(stream)) => {
                slot.backoff = inner.config.min_backoff;
                slot.next_attempt = None;
                let conn = Arc::new(self.start_connection(stream));
                slot.conn = Some(conn.clone());
                return Ok(conn);
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => "connect timed out".to_string(),
        };
        // Bounded exponential backoff with jitter, so a crowd of clients does not reconnect in lockstep.
        let jitter = 0.5 + madsim::rand::random::<f64>() * 0.5;
        slot.next_attempt = Some(Instant::now() + slot.backoff.mul_f64(jitter));
        slot.backoff = (slot.backoff * 2).min(inner.config.max_backoff);
        slot.last_error = error.clone();
        tracing::debug!(addr = %inner.addr, %error, "connect failed");
        Err(unavailable(error))
    }

    fn start_connection(&self, stream: TcpStream) -> Conn {
        let addr = self.inner.addr.clone();
        super::no_delay(&stream, &addr);
        let max_frame = self.inner.config.max_frame;
        let (read_half, write_half) = tokio::io::split(stream);
        let shared = Arc::new(ConnShared {
            pending: SyncMutex::new(BTreeMap::new()),
            closed: AtomicBool::new(false),
            last_read: SyncMutex::new(Instant::now()),
        });
        let (tx, mut rx) = mpsc::channel::<Envelope>(self.inner.config.send_queue.max(1));

        let writer_shared = shared.clone();
        let writer_addr = addr.clone();
        let writer = tokio::spawn(async move {
            let mut writer = FramedWrite::new(write_half, frame_codec(max_frame));
            while let Some(env) = rx.recv().await {
                let mut ok = writer.feed(encode_envelope(&env)).await.is_ok();
                while ok {
                    match rx.try_recv() {
                        Ok(env) => ok = writer.feed(encode_envelope(&env)).await.is_ok(),
                        Err(_) => break,
                    }
                }
                if !ok || SinkExt::<Bytes>::flush(&mut writer).await.is_err() {
                    writer_shared.close(&writer_addr, "write failed");
                    return;
                }
            }
        });

        let reader_shared = shared.clone();
        let reader = tokio::spawn(async move {
            let mut reader = FramedRead::new(read_half, frame_codec(max_frame));
            let reason = loop {
                match reader.next().await {
                    None => break "closed by peer".to_string(),
                    Some(Err(e)) => {
                        tracing::warn!(%addr, error = %e, "closing connection: bad frame from server");
                        break format!("bad frame: {e}");
                    }
                    Some(Ok(frame)) => {
                        *reader_shared.last_read.lock().expect("read clock") = Instant::now();
                        match Envelope::decode(frame.freeze()) {
                            Ok(env) if env.kind() == FrameKind::Response => {
                                let waiter = reader_shared.pending.lock().expect("pending lock").remove(&env.id);
                                // A response nobody waits for belongs to a call that already timed out.
                                if let Some(waiter) = waiter {
                                    let _ = waiter.send(Ok(env));
                                }
                            }
                            Ok(_) | Err(_) => {
                                tracing::warn!(%addr, "closing connection: undecodable response");
                                break "undecodable response".to_string();
                            }
                        }
                    }
                }
            };
            reader_shared.close(&addr, &reason);
        });
        Conn { tx, shared, tasks: [reader, writer] }
    }
}
