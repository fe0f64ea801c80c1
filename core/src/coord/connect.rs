//! The one place a process turns its `--zk_cluster` into a coordination session (DESIGN 4.2).
//!
//! As in OpenMLDB, `--zk_cluster=host:port[,host:port...]` names a ZooKeeper ensemble. The project's own `model`
//! server is chosen explicitly, with the scheme `model://host:port` (one server: it is a standalone
//! coordinator, durable on one machine). Nothing is guessed: a spec is one or the other by its text alone.
//! ZooKeeper is not compiled into the simulator, which runs the model server on a node of its own.

use std::sync::Arc;

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

/// Reads a `--zk_cluster` value. Refuses an empty one, a model spec with several servers, and addresses
/// without a port, each with what to write instead.
pub fn parse(spec: &str) -> Result<Backend, CoordError> {
    let spec = spec.trim();
    let bad = |why: String| Err(CoordError::BadArguments(format!("--zk_cluster={spec:?}: {why}")));
    if spec.is_empty() {
        return bad("no address (ZooKeeper: host:port[,host:port...]; our coordinator: model://host:port)".into());
    }
    let (model, list) = match spec.strip_prefix(MODEL_SCHEME) {
        Some(rest) => (true, rest),
        None => (false, spec),
    };
    if list.contains("://") {
        return bad("unknown scheme (ZooKeeper takes none; our coordinator is model://host:port)".into());
    }
    let hosts: Vec<&str> = list.split(',').map(str::trim).collect();
    for h in &hosts {
        let Some((host, port)) = h.rsplit_once(':') else {
            return bad(format!("{h:?} has no port"));
        };
        if host.is_empty() || port.parse::<u16>().is_err() {
            return bad(format!("{h:?} is not host:port"));
        }
    }
    if model {
        if hosts.len() != 1 {
            return bad("the model coordinator is one server: model://host:port".into());
        }
        return Ok(Backend::Model(hosts[0].to_string()));
    }
    Ok(Backend::ZooKeeper(hosts.join(",")))
}

/// Opens a session with the coordination service `spec` names (see [`parse`]).
pub async fn connect(spec: &str, options: ClientOptions) -> Result<Arc<dyn Coordinator>, CoordError> {
    match parse(spec)? {
        Backend::Model(addr) => Ok(Arc::new(ModelCoordinator::connect(&addr, options).await?)),
        #[cfg(not(any(madsim, doctest)))]
        Backend::ZooKeeper(hosts) => Ok(Arc::new(super::ZkCoordinator::connect(&hosts, options).await?)),
        #[cfg(any(madsim, doctest))]
        Backend::ZooKeeper(hosts) => Err(CoordError::BadArguments(format!(
            "--zk_cluster={hosts}: ZooKeeper is not part of the simulator; use model://host:port"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_names_its_backend_by_its_text() {
        assert_eq!(parse("127.0.0.1:2181").unwrap(), Backend::ZooKeeper("127.0.0.1:2181".into()));
        assert_eq!(parse("a:7181, b:7182").unwrap(), Backend::ZooKeeper("a:7181,b:7182".into()));
        assert_eq!(parse("model://10.0.1.1:2181").unwrap(), Backend::Model("10.0.1.1:2181".into()));
        for bad in ["", "model://a:1,b:2", "zk://a:1", "a", "a:port", ":2181"] {
            assert!(matches!(parse(bad), Err(CoordError::BadArguments(_))), "{bad:?} accepted");
        }
        let e = parse("model://a:1,b:2").unwrap_err().to_string();
        assert!(e.contains("one server"), "{e}");
    }
}
