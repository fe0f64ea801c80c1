//! The one place a process turns its `--zk_cluster` into a coordination session (DESIGN 4.2).
//!
//! As in OpenMLDB, `--zk_cluster=host:port[,host:port...]` names a ZooKeeper ensemble. The project's own `model`
//! server is chosen explicitly, with the scheme `model://host:port` (one server: it is a standalone
//! coordinator, durable on one machine). Nothing is guessed: a spec is one or the other by its text alone.
//! ZooKeeper is not compiled into the simulator, which runs the model server on a node of its own.
//!
//! Either form may end in a path, ZooKeeper's chroot (`host:port,host:port/apps`): the session sees that node as
//! `/` ([`super::chroot`]), and the node is created if it is missing. `--zk_root_path` then lives under it, as
//! in OpenMLDB. Credentials (`--zk_auth_schema=digest --zk_cert=user:password`) travel in
//! [`ClientOptions::auth`].
//!
//! A spec that names a server of the other protocol fails at once with an error that says so: a model client
//! whose first attempt fails asks the address ZooKeeper's `srvr` question, and a ZooKeeper client that has no
//! session after half a second asks each host whether it is our server (outside the simulator only: there is no
//! ZooKeeper inside it).

use std::sync::Arc;

use super::chroot::{self, Chroot};
use super::{ClientOptions, CoordError, Coordinator, ModelCoordinator};

/// The scheme that selects the `model` backend.
pub const MODEL_SCHEME: &str = "model://";

/// Which backend a `--zk_cluster` value names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// Our coordination server at `host:port`.
    Model(String),
    /// A ZooKeeper connect string: `host:port[,host:port...]`.
    ZooKeeper(String),
}

/// A parsed `--zk_cluster`: the backend and, if the spec ends in a path, the chroot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub backend: Backend,
    /// Normalized (`/a/b`); `None` without a path or with `/` alone.
    pub chroot: Option<String>,
}

/// Reads a `--zk_cluster` value. Refuses an empty one, a model spec with several servers, addresses without a
/// port and a malformed chroot, each with what to write instead.
pub fn parse(spec: &str) -> Result<Target, CoordError> {
    let spec = spec.trim();
    let bad = |why: String| Err(CoordError::BadArguments(format!("--zk_cluster={spec:?}: {why}")));
    if spec.is_empty() {
        return bad("no address (ZooKeeper: host:port[,host:port...]; our coordinator: model://host:port)".into());
    }
    let (model, rest) = match spec.strip_prefix(MODEL_SCHEME) {
        Some(rest) => (true, rest),
        None => (false, spec),
    };
    if rest.contains("://") {
        return bad("unknown scheme (ZooKeeper takes none; our coordinator is model://host:port)".into());
    }
    let (list, chroot) = match rest.find('/') {
        Some(i) => match chroot::normalize(&rest[i..]) {
            Ok(root) => (&rest[..i], (!root.is_empty()).then_some(root)),
            Err(e) => return bad(e.to_string()),
        },
        None => (rest, None),
    };
    let hosts: Vec<&str> = list.split(',').map(str::trim).collect();
    for h in &hosts {
        let Some((host, port)) = h.rsplit_once(':') else {
            return bad(format!("{h:?} has no port"));
        };
        if host.is_empty() || port.parse::<u16>().is_err() {
            return bad(format!("{h:?} is not host:port"));
        }
    }
    let backend = if model {
        if hosts.len() != 1 {
            return bad("the model coordinator is one server: model://host:port".into());
        }
        Backend::Model(hosts[0].to_string())
    } else {
        Backend::ZooKeeper(hosts.join(","))
    };
    Ok(Target { backend, chroot })
}

/// Opens a session with the coordination service `spec` names (see [`parse`]), under its chroot if it has one.
pub async fn connect(spec: &str, options: ClientOptions) -> Result<Arc<dyn Coordinator>, CoordError> {
    let target = parse(spec)?;
    let session: Arc<dyn Coordinator> = match target.backend {
        Backend::Model(addr) => Arc::new(ModelCoordinator::connect(&addr, options).await?),
        #[cfg(not(any(madsim, doctest)))]
        Backend::ZooKeeper(hosts) => Arc::new(zookeeper(&hosts, options).await?),
        #[cfg(any(madsim, doctest))]
        Backend::ZooKeeper(hosts) => {
            return Err(CoordError::BadArguments(format!(
                "--zk_cluster={hosts}: ZooKeeper is not part of the simulator; use model://host:port"
            )));
        }
    };
    match target.chroot {
        None => Ok(session),
        Some(root) => {
            if let Err(e) = super::create_all(session.as_ref(), &root).await {
                session.close().await;
                return Err(e);
            }
            Ok(Arc::new(Chroot::new(session, &root)?))
        }
    }
}

/// A session that is renewed after it expires ([`super::Renewing`]), for the clients and tools that own no
/// ephemeral node (REPLs, recoverdata, routing clients): each new session is opened as [`connect`] opens one.
pub async fn connect_renewing(spec: &str, options: ClientOptions) -> Result<Arc<dyn Coordinator>, CoordError> {
    let spec = spec.to_string();
    let open: super::renew::Connect = Box::new(move || {
        let (spec, options) = (spec.clone(), options.clone());
        Box::pin(async move { connect(&spec, options).await })
    });
    Ok(Arc::new(super::Renewing::open(open).await?))
}

/// A ZooKeeper session, or at once an error if a host turns out to be our model server.
#[cfg(not(any(madsim, doctest)))]
async fn zookeeper(hosts: &str, options: ClientOptions) -> Result<super::ZkCoordinator, CoordError> {
    let connect = super::ZkCoordinator::connect(hosts, options);
    tokio::pin!(connect);
    tokio::select! {
        biased;
        r = &mut connect => return r,
        _ = tokio::time::sleep(probe::PATIENCE) => {}
    }
    // No session yet: either ZooKeeper is slow or down, or something else listens there.
    let hosts_list: Vec<String> = hosts.split(',').map(str::to_string).collect();
    let asked = async {
        for h in &hosts_list {
            if probe::model_answers(h).await {
                return Some(h.clone());
            }
        }
        None
    };
    tokio::pin!(asked);
    let mut asked_done = false;
    loop {
        tokio::select! {
            biased;
            r = &mut connect => return r,
            found = &mut asked, if !asked_done => match found {
                Some(h) => {
                    return Err(CoordError::BadArguments(format!(
                        "{h} is this project's model coordinator, not ZooKeeper: write --zk_cluster=model://{h}"
                    )));
                }
                None => asked_done = true,
            },
        }
    }
}

/// Questions that tell the two protocols apart (outside the simulator, where both can exist).
#[cfg(not(any(madsim, doctest)))]
pub(crate) mod probe {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use crate::coord::server as srv;
    use crate::proto::coord as pb;
    use crate::rpc::{ClientConfig, RpcClient, RpcError};

    /// How long a ZooKeeper connect may take before the hosts are asked whether they are ZooKeeper at all.
    pub const PATIENCE: Duration = Duration::from_millis(500);
    const ASK: Duration = Duration::from_secs(1);

    /// True if `addr` answers ZooKeeper's four-letter `srvr` (with its statistics, or with the refusal a server
    /// gives when the word is not whitelisted): the address is a ZooKeeper server.
    pub async fn zookeeper_answers(addr: &str) -> bool {
        let ask = async {
            let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
            s.write_all(b"srvr").await.ok()?;
            let mut buf = vec![0u8; 512];
            let mut got = 0;
            while got < buf.len() {
                match s.read(&mut buf[got..]).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got += n,
                }
            }
            let text = String::from_utf8_lossy(&buf[..got]).to_string();
            Some(text.contains("Zookeeper version") || text.contains("whitelist"))
        };
        matches!(tokio::time::timeout(ASK, ask).await, Ok(Some(true)))
    }

    /// True if `addr` answers our RPC as the model server does (a poll of no session is refused with a status).
    pub async fn model_answers(addr: &str) -> bool {
        let rpc = RpcClient::new(addr, ClientConfig { timeout: ASK, connect_timeout: ASK, ..Default::default() });
        let req = pb::PollRequest { session_id: 0, ..Default::default() };
        matches!(rpc.call(srv::Poll, req).await, Ok(_) | Err(RpcError::Status(_)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_names_its_backend_by_its_text() {
        let b = |s: &str| parse(s).unwrap().backend;
        assert_eq!(b("127.0.0.1:2181"), Backend::ZooKeeper("127.0.0.1:2181".into()));
        assert_eq!(b("a:7181, b:7182"), Backend::ZooKeeper("a:7181,b:7182".into()));
        assert_eq!(b("model://10.0.1.1:2181"), Backend::Model("10.0.1.1:2181".into()));
        let t = parse("a:1,b:2/apps/mldb/").unwrap();
        assert_eq!(t, Target { backend: Backend::ZooKeeper("a:1,b:2".into()), chroot: Some("/apps/mldb".into()) });
        assert_eq!(parse("model://a:1/x").unwrap().chroot.as_deref(), Some("/x"));
        assert_eq!(parse("a:1/").unwrap().chroot, None);
        for bad in ["", "model://a:1,b:2", "zk://a:1", "a", "a:port", ":2181", "a:1//x", "a:1/../x", "/x"] {
            assert!(matches!(parse(bad), Err(CoordError::BadArguments(_))), "{bad:?} accepted");
        }
        let e = parse("model://a:1,b:2").unwrap_err().to_string();
        assert!(e.contains("one server"), "{e}");
    }
}
