//! Framed RPC over `tokio::net::TcpStream`, the same bytes in the simulator and in production.
//!
//! A frame is a 4-byte big-endian length and one prost-encoded [`Envelope`]. Requests carry a client-chosen id,
//! so any number of calls share one connection and complete in any order. Every call has a deadline. A client
//! reconnects on demand with bounded, jittered exponential backoff, and fails calls fast while its peer is
//! unreachable (one connect attempt per call, none inside the backoff window). A frame above the configured maximum, or one
//! that does not decode, closes that connection with a logged error; the codec checks the length before it
//! allocates, so a hostile length prefix costs nothing. Both ends set TCP_NODELAY on every connection.
//!
//! Adding an RPC is one message pair in a `.proto` file, one [`rpc_method!`] line, and one handler passed to
//! [`RpcServer::add`].

mod client;
mod server;

pub use client::{ClientConfig, RpcClient};
pub use server::{RpcServer, ServerConfig, ServerHandle, ServerStats};

use std::time::Duration;

use crate::proto::rpc::Envelope;

/// A remote procedure: its wire name and its request and response messages.
pub trait Method: Copy + Send + Sync + 'static {
    /// Name on the wire, `"<service>.<Method>"`.
    const NAME: &'static str;
    type Req: prost::Message + Default + Send + 'static;
    type Resp: prost::Message + Default + Send + 'static;
}

/// Declares a [`Method`]: `rpc_method!(pub Ping, "rpc.Ping", PingRequest => PingResponse);`
#[macro_export]
macro_rules! rpc_method {
    ($vis:vis $name:ident, $wire:expr, $req:ty => $resp:ty) => {
        #[doc = concat!("RPC `", $wire, "`.")]
        #[derive(Debug, Clone, Copy)]
        $vis struct $name;
        impl $crate::rpc::Method for $name {
            const NAME: &'static str = $wire;
            type Req = $req;
            type Resp = $resp;
        }
    };
}

rpc_method!(pub Ping, "rpc.Ping", crate::proto::rpc::PingRequest => crate::proto::rpc::PingResponse);

/// Upper bound of the server-side delay a [`Ping`] may ask for.
pub const MAX_PING_DELAY: Duration = Duration::from_secs(60);

/// Default maximum frame size: 16 MiB, ample for a batch of binlog entries or a table's metadata.
pub const DEFAULT_MAX_FRAME: usize = 16 << 20;

/// An application-level outcome carried back to the caller: a code and a message.
///
/// Code 0 is success. Codes below 100 are the transport's own (below); services define theirs from 100 up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("status {code}: {message}")]
pub struct Status {
    pub code: i32,
    pub message: String,
}

impl Status {
    pub const OK: i32 = 0;
    pub const INVALID_ARGUMENT: i32 = 3;
    pub const UNIMPLEMENTED: i32 = 12;
    pub const INTERNAL: i32 = 13;
    pub const UNAVAILABLE: i32 = 14;

    pub fn new(code: i32, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(Self::INVALID_ARGUMENT, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(Self::INTERNAL, message)
    }
}

/// Why a call failed, from the caller's point of view.
///
/// The distinction that matters to a writer: [`RpcError::Unavailable`] means the request was never sent, so it
/// certainly had no effect; [`RpcError::Timeout`] and [`RpcError::ConnectionLost`] mean it may or may not have
/// been applied ([`RpcError::outcome_unknown`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RpcError {
    /// No connection could be made before the deadline; the request was not sent.
    #[error("{addr} unavailable: {reason}")]
    Unavailable { addr: String, reason: String },
    /// The deadline passed after the request was sent.
    #[error("call {method} to {addr} timed out after {after:?}")]
    Timeout { addr: String, method: &'static str, after: Duration },
    /// The connection broke after the request was sent.
    #[error("connection to {addr} lost: {reason}")]
    ConnectionLost { addr: String, reason: String },
    /// The server answered with a non-OK status.
    #[error(transparent)]
    Status(#[from] Status),
    /// The response did not decode as the expected message.
    #[error("bad response from {addr}: {reason}")]
    Decode { addr: String, reason: String },
}

impl RpcError {
    /// True when the request may have been applied although no answer arrived.
    pub fn outcome_unknown(&self) -> bool {
        matches!(self, RpcError::Timeout { .. } | RpcError::ConnectionLost { .. })
    }

    /// The server's status, if it answered.
    pub fn status(&self) -> Option<&Status> {
        match self {
            RpcError::Status(s) => Some(s),
            _ => None,
        }
    }
}

/// The codec both sides use: big-endian u32 length, then the payload, at most `max_frame` bytes.
fn frame_codec(max_frame: usize) -> tokio_util::codec::LengthDelimitedCodec {
    tokio_util::codec::LengthDelimitedCodec::builder()
        .length_field_length(4)
        .big_endian()
        .max_frame_length(max_frame)
        .new_codec()
}

/// Turns Nagle's algorithm off on a new connection, both ends. A call is one small frame that waits for its
/// answer: with Nagle on, the second frame in flight waits for the peer's delayed ACK (40 ms on Linux), which
/// made real writes about 40 times slower (issue 19; the simulator's streams have no such delay, so only a real
/// run shows it). A failure is logged and the connection kept: it still works, only slower.
fn no_delay(stream: &tokio::net::TcpStream, peer: &dyn std::fmt::Display) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::warn!(%peer, error = %e, "cannot set TCP_NODELAY; calls on this connection may wait for delayed ACKs");
    }
}

fn encode_envelope(env: &Envelope) -> bytes::Bytes {
    use prost::Message;
    bytes::Bytes::from(env.encode_to_vec())
}

/// `tokio::time::timeout_at`, which madsim's time module lacks.
pub(crate) async fn timeout_at<F: std::future::Future>(
    deadline: tokio::time::Instant,
    fut: F,
) -> Result<F::Output, tokio::time::error::Elapsed> {
    tokio::time::timeout(deadline.saturating_duration_since(tokio::time::Instant::now()), fut).await
}
