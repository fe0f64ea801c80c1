//! A session seen from under a node: ZooKeeper's chroot, the same on every backend.
//!
//! A connect string may end in a path, as ZooKeeper's does (`host:port,host:port/apps/openmldb`): the session
//! then sees that node as `/`. [`Chroot`] does it above the trait, so the model server and ZooKeeper behave alike
//! and the conformance suite holds both to it: every path a caller passes gets the root in front, every path that
//! comes back (created names, watch events, errors) loses it. The root must exist before nodes are created under
//! it, as in ZooKeeper; [`super::connect`] creates it when it opens the session.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{CoordError, Coordinator, CreateMode, Op, OpResult, SessionEvents, SessionState, Stat, Watch};

/// A [`Coordinator`] whose `/` is `root` of the one it wraps.
pub struct Chroot {
    inner: Arc<dyn Coordinator>,
    root: String,
}

impl Chroot {
    /// Wraps `inner` so that `root` (an absolute path, not `/`) is its root.
    pub fn new(inner: Arc<dyn Coordinator>, root: &str) -> Result<Self, CoordError> {
        let root = normalize(root)?;
        if root.is_empty() {
            return Err(CoordError::BadArguments("a chroot of / is no chroot".into()));
        }
        Ok(Self { inner, root })
    }

    pub fn root(&self) -> &str {
        &self.root
    }

    fn full(&self, path: &str) -> String {
        if path == "/" { self.root.clone() } else { format!("{}{path}", self.root) }
    }

    fn op(&self, op: Op) -> Op {
        match op {
            Op::Create { path, data, mode } => Op::Create { path: self.full(&path), data, mode },
            Op::Set { path, data, version } => Op::Set { path: self.full(&path), data, version },
            Op::Delete { path, version } => Op::Delete { path: self.full(&path), version },
            Op::Check { path, version } => Op::Check { path: self.full(&path), version },
        }
    }
}

/// Checks a chroot and drops a trailing slash: `/a/b/` is `/a/b`; `/` is the empty string (no chroot).
pub fn normalize(root: &str) -> Result<String, CoordError> {
    let bad = |why: &str| Err(CoordError::BadArguments(format!("chroot {root:?}: {why}")));
    if !root.starts_with('/') {
        return bad("must start with /");
    }
    let trimmed = root.trim_end_matches('/');
    if trimmed.split('/').skip(1).any(|part| part.is_empty() || part == "." || part == "..") {
        return bad("has an empty, . or .. component");
    }
    Ok(trimmed.to_string())
}

/// `path` as seen under `root`: the root itself is `/`; a path outside it is returned as it is (it cannot name a
/// node of this session, but an error about it should still say which).
pub(crate) fn strip(root: &str, path: &str) -> String {
    match path.strip_prefix(root) {
        Some("") => "/".to_string(),
        Some(rest) if rest.starts_with('/') => rest.to_string(),
        _ => path.to_string(),
    }
}

fn strip_err(root: &str, e: CoordError) -> CoordError {
    let s = |p: String| strip(root, &p);
    match e {
        CoordError::NoNode(p) => CoordError::NoNode(s(p)),
        CoordError::NodeExists(p) => CoordError::NodeExists(s(p)),
        CoordError::BadVersion { path, expected, actual } => CoordError::BadVersion { path: s(path), expected, actual },
        CoordError::NotEmpty(p) => CoordError::NotEmpty(s(p)),
        CoordError::NoChildrenForEphemerals(p) => CoordError::NoChildrenForEphemerals(s(p)),
        CoordError::NoAuth(p) => CoordError::NoAuth(s(p)),
        CoordError::Multi { index, source } => CoordError::Multi { index, source: Box::new(strip_err(root, *source)) },
        other => other,
    }
}

#[async_trait]
impl Coordinator for Chroot {
    async fn create(&self, path: &str, data: &[u8], mode: CreateMode) -> Result<String, CoordError> {
        let root = &self.root;
        self.inner.create(&self.full(path), data, mode).await.map(|p| strip(root, &p)).map_err(|e| strip_err(root, e))
    }
    async fn get(&self, path: &str) -> Result<(Vec<u8>, Stat), CoordError> {
        self.inner.get(&self.full(path)).await.map_err(|e| strip_err(&self.root, e))
    }
    async fn get_watch(&self, path: &str) -> Result<(Vec<u8>, Stat, Watch), CoordError> {
        let (data, stat, w) = self.inner.get_watch(&self.full(path)).await.map_err(|e| strip_err(&self.root, e))?;
        Ok((data, stat, w.under(&self.root)))
    }
    async fn exists(&self, path: &str) -> Result<Option<Stat>, CoordError> {
        self.inner.exists(&self.full(path)).await.map_err(|e| strip_err(&self.root, e))
    }
    async fn exists_watch(&self, path: &str) -> Result<(Option<Stat>, Watch), CoordError> {
        let (stat, w) = self.inner.exists_watch(&self.full(path)).await.map_err(|e| strip_err(&self.root, e))?;
        Ok((stat, w.under(&self.root)))
    }
    async fn children(&self, path: &str) -> Result<Vec<String>, CoordError> {
        self.inner.children(&self.full(path)).await.map_err(|e| strip_err(&self.root, e))
    }
    async fn children_watch(&self, path: &str) -> Result<(Vec<String>, Watch), CoordError> {
        let (names, w) = self.inner.children_watch(&self.full(path)).await.map_err(|e| strip_err(&self.root, e))?;
        Ok((names, w.under(&self.root)))
    }
    async fn set(&self, path: &str, data: &[u8], version: Option<i32>) -> Result<Stat, CoordError> {
        self.inner.set(&self.full(path), data, version).await.map_err(|e| strip_err(&self.root, e))
    }
    async fn delete(&self, path: &str, version: Option<i32>) -> Result<(), CoordError> {
        self.inner.delete(&self.full(path), version).await.map_err(|e| strip_err(&self.root, e))
    }
    async fn multi(&self, ops: Vec<Op>) -> Result<Vec<OpResult>, CoordError> {
        let ops = ops.into_iter().map(|op| self.op(op)).collect();
        let results = self.inner.multi(ops).await.map_err(|e| strip_err(&self.root, e))?;
        Ok(results
            .into_iter()
            .map(|r| match r {
                OpResult::Created { path, stat } => OpResult::Created { path: strip(&self.root, &path), stat },
                other => other,
            })
            .collect())
    }
    async fn close(&self) {
        self.inner.close().await
    }
    fn session_id(&self) -> i64 {
        self.inner.session_id()
    }
    fn session_timeout(&self) -> Duration {
        self.inner.session_timeout()
    }
    fn state(&self) -> SessionState {
        self.inner.state()
    }
    fn session_events(&self) -> SessionEvents {
        self.inner.session_events()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_in_and_out_of_the_root() {
        assert_eq!(normalize("/a/b/").unwrap(), "/a/b");
        assert_eq!(normalize("/").unwrap(), "");
        for bad in ["a", "/a//b", "/a/../b", "/./a"] {
            assert!(normalize(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(strip("/a/b", "/a/b"), "/");
        assert_eq!(strip("/a/b", "/a/b/c"), "/c");
        assert_eq!(strip("/a/b", "/a/bc"), "/a/bc");
        assert_eq!(strip("/a/b", "/x"), "/x");
        let e = strip_err("/r", CoordError::Multi { index: 1, source: Box::new(CoordError::NoNode("/r/x".into())) });
        assert_eq!(e, CoordError::Multi { index: 1, source: Box::new(CoordError::NoNode("/x".into())) });
    }
}
