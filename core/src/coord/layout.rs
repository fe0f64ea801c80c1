//! The node layout OpenMLDB keeps under `zk_root_path` (reference 1.2), in one place.

/// Default `zk_root_path`.
pub const DEFAULT_ROOT: &str = "/openmldb";

/// Prefix of a tablet's `/nodes/<endpoint>` value on its first registration after a process start.
pub const STARTUP_PREFIX: &str = "startup_";

/// Paths under one cluster root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    root: String,
}

impl Layout {
    /// `root` is `zk_root_path`; a trailing slash is ignored.
    pub fn new(root: &str) -> Self {
        let root = root.trim_end_matches('/');
        Self { root: if root.is_empty() { String::new() } else { root.to_string() } }
    }

    pub fn root(&self) -> &str {
        &self.root
    }
    fn at(&self, rest: &str) -> String {
        format!("{}{rest}", self.root)
    }

    /// Parent of tablet liveness nodes.
    pub fn nodes(&self) -> String {
        self.at("/nodes")
    }
    /// A tablet's ephemeral liveness node.
    pub fn node(&self, endpoint: &str) -> String {
        self.at(&format!("/nodes/{endpoint}"))
    }
    /// Parent of the nameserver election nodes.
    pub fn leader(&self) -> String {
        self.at("/leader")
    }
    /// Prefix of the ephemeral sequential election nodes: `<root>/leader/lock_request<10 digits>`.
    pub fn leader_lock_prefix(&self) -> String {
        self.at("/leader/lock_request")
    }
    pub fn table(&self) -> String {
        self.at("/table")
    }
    /// Next table id counter.
    pub fn table_index(&self) -> String {
        self.at("/table/table_index")
    }
    /// Global leader term counter.
    pub fn term(&self) -> String {
        self.at("/table/term")
    }
    /// Parent of TableInfo nodes, one per table id.
    pub fn db_table_data(&self) -> String {
        self.at("/table/db_table_data")
    }
    pub fn table_data(&self, tid: u32) -> String {
        self.at(&format!("/table/db_table_data/{tid}"))
    }
    /// Counter bumped after every metadata change; clients watch it and reload.
    pub fn notify(&self) -> String {
        self.at("/table/notify")
    }
    pub fn op(&self) -> String {
        self.at("/op")
    }
    /// Last allocated op id.
    pub fn op_index(&self) -> String {
        self.at("/op/op_index")
    }
    /// Parent of persisted unfinished ops.
    pub fn op_data(&self) -> String {
        self.at("/op/op_data")
    }
    pub fn op_node(&self, op_id: u64) -> String {
        self.at(&format!("/op/op_data/{op_id}"))
    }
    pub fn config(&self) -> String {
        self.at("/config")
    }
    pub fn auto_failover(&self) -> String {
        self.at("/config/auto_failover")
    }
    pub fn taskmanager(&self) -> String {
        self.at("/taskmanager")
    }
    /// The active TaskManager's ephemeral node.
    pub fn taskmanager_leader(&self) -> String {
        self.at("/taskmanager/leader")
    }

    /// The persistent parents that must exist before a cluster runs.
    pub fn persistent_dirs(&self) -> Vec<String> {
        vec![self.nodes(), self.leader(), self.db_table_data(), self.op_data(), self.config(), self.taskmanager()]
    }

    /// The value a tablet writes at its first registration after a process start.
    pub fn startup_value(endpoint: &str) -> String {
        format!("{STARTUP_PREFIX}{endpoint}")
    }
}

impl Default for Layout {
    fn default() -> Self {
        Self::new(DEFAULT_ROOT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_reference_layout() {
        let l = Layout::new("/openmldb/");
        assert_eq!(l.node("10.0.0.1:9527"), "/openmldb/nodes/10.0.0.1:9527");
        assert_eq!(l.leader_lock_prefix(), "/openmldb/leader/lock_request");
        assert_eq!(l.table_data(3), "/openmldb/table/db_table_data/3");
        assert_eq!(l.notify(), "/openmldb/table/notify");
        assert_eq!(l.op_node(7), "/openmldb/op/op_data/7");
        assert_eq!(l.auto_failover(), "/openmldb/config/auto_failover");
        assert_eq!(l.taskmanager_leader(), "/openmldb/taskmanager/leader");
        assert_eq!(Layout::startup_value("h:1"), "startup_h:1");
        assert_eq!(Layout::new("/").nodes(), "/nodes");
    }
}
