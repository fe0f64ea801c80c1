//! The nameserver's metadata in the coordination service (reference 1.2): tables, counters, configuration.
//!
//! Every write is a compare-and-set or a create, so two nameservers that both believe they are active (one about
//! to learn it lost its lock) cannot interleave a counter or silently overwrite a table.

use prost::Message;

use crate::coord::{CoordError, Coordinator, CreateMode, Layout, create_all};
use crate::proto::nameserver::TableInfo;

/// Bound on compare-and-set retries of a counter.
const CAS_TRIES: usize = 16;

/// Reads and writes the nameserver's nodes through one coordination session.
pub struct MetaStore<'a> {
    pub coord: &'a dyn Coordinator,
    pub layout: &'a Layout,
}

impl MetaStore<'_> {
    /// Creates the persistent layout and the counters if missing; `auto_failover` seeds `/config/auto_failover`.
    pub async fn ensure_layout(&self, auto_failover: bool) -> Result<(), CoordError> {
        for dir in self.layout.persistent_dirs() {
            create_all(self.coord, &dir).await?;
        }
        for (path, initial) in [
            (self.layout.table_index(), "0".to_string()),
            (self.layout.term(), "1".to_string()),
            (self.layout.notify(), "0".to_string()),
            (self.layout.op_index(), "0".to_string()),
            (self.layout.auto_failover(), auto_failover.to_string()),
        ] {
            match self.coord.create(&path, initial.as_bytes(), CreateMode::Persistent).await {
                Ok(_) | Err(CoordError::NodeExists(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Every table, by name.
    pub async fn load_tables(&self) -> Result<Vec<TableInfo>, CoordError> {
        let mut out = Vec::new();
        for child in self.coord.children(&self.layout.db_table_data()).await? {
            let path = format!("{}/{child}", self.layout.db_table_data());
            match self.coord.get(&path).await {
                Ok((data, _)) => match TableInfo::decode(data.as_slice()) {
                    Ok(t) => out.push(t),
                    Err(e) => tracing::error!(path, error = %e, "table metadata does not decode; skipped"),
                },
                Err(CoordError::NoNode(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    pub async fn create_table(&self, info: &TableInfo) -> Result<(), CoordError> {
        self.coord
            .create(&self.layout.table_data(info.tid), &info.encode_to_vec(), CreateMode::Persistent)
            .await
            .map(|_| ())
    }

    pub async fn write_table(&self, info: &TableInfo) -> Result<(), CoordError> {
        self.coord.set(&self.layout.table_data(info.tid), &info.encode_to_vec(), None).await.map(|_| ())
    }

    pub async fn delete_table(&self, tid: u32) -> Result<(), CoordError> {
        match self.coord.delete(&self.layout.table_data(tid), None).await {
            Ok(()) | Err(CoordError::NoNode(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Adds `delta` to the decimal counter at `path` and returns the new value.
    async fn bump(&self, path: &str, delta: u64) -> Result<u64, CoordError> {
        for _ in 0..CAS_TRIES {
            let (data, stat) = self.coord.get(path).await?;
            let current: u64 = String::from_utf8_lossy(&data).trim().parse().map_err(|_| {
                CoordError::BadArguments(format!("{path} holds {:?}, not a counter", String::from_utf8_lossy(&data)))
            })?;
            let next = current + delta;
            match self.coord.set(path, next.to_string().as_bytes(), Some(stat.version)).await {
                Ok(_) => return Ok(next),
                Err(e) if e.is_bad_version() => continue,
                Err(e) => return Err(e),
            }
        }
        Err(CoordError::BadArguments(format!("{path}: too much contention")))
    }

    pub async fn counter(&self, path: &str) -> Result<u64, CoordError> {
        let (data, _) = self.coord.get(path).await?;
        String::from_utf8_lossy(&data)
            .trim()
            .parse()
            .map_err(|_| CoordError::BadArguments(format!("{path} is not a counter")))
    }

    /// The next table id.
    pub async fn alloc_tid(&self) -> Result<u32, CoordError> {
        let tid = self.bump(&self.layout.table_index(), 1).await?;
        u32::try_from(tid).map_err(|_| CoordError::BadArguments("table ids exhausted".into()))
    }

    /// Tells every client to reload the metadata.
    pub async fn bump_notify(&self) -> Result<u64, CoordError> {
        self.bump(&self.layout.notify(), 1).await
    }

    /// Reserves the next `count` op ids (reference 4.2: `/op/op_index`, the last id handed out) and returns the
    /// last of them.
    pub async fn reserve_op_ids(&self, count: u64) -> Result<u64, CoordError> {
        assert!(count > 0, "reserve at least one op id");
        self.bump(&self.layout.op_index(), count).await
    }

    /// Takes the two terms of one leader change at once (reference 3.4: fence at global + 1, lead at global + 2)
    /// and returns the global term before them. Atomic (compare-and-set), so leader changes of different
    /// partitions running concurrently never share a term.
    pub async fn take_change_leader_terms(&self) -> Result<u64, CoordError> {
        Ok(self.bump(&self.layout.term(), 2).await? - 2)
    }

    /// Raises the global term to `term` (never lowers it).
    pub async fn set_term(&self, term: u64) -> Result<(), CoordError> {
        for _ in 0..CAS_TRIES {
            let (data, stat) = self.coord.get(&self.layout.term()).await?;
            let current: u64 = String::from_utf8_lossy(&data).trim().parse().unwrap_or(0);
            if current >= term {
                return Ok(());
            }
            match self.coord.set(&self.layout.term(), term.to_string().as_bytes(), Some(stat.version)).await {
                Ok(_) => return Ok(()),
                Err(e) if e.is_bad_version() => continue,
                Err(e) => return Err(e),
            }
        }
        Err(CoordError::BadArguments("the term: too much contention".into()))
    }

    pub async fn auto_failover(&self) -> Result<bool, CoordError> {
        let (data, _) = self.coord.get(&self.layout.auto_failover()).await?;
        Ok(String::from_utf8_lossy(&data).trim() == "true")
    }

    pub async fn set_auto_failover(&self, on: bool) -> Result<(), CoordError> {
        self.coord.set(&self.layout.auto_failover(), on.to_string().as_bytes(), None).await.map(|_| ())
    }
}
