//! A partition's rows in memory, by index, with OpenMLDB's TTL semantics.
//!
//! [`TableSchema`] is the validated form of a [`TableMeta`]: column positions, and per index its key columns, ts
//! column and TTL. [`MemTable`] stores each row once and, per index, the row's place under its key ordered newest
//! first, so that `get`, `scan` and LATEST expiry (a rank among a key's rows) are walks from the front.
//!
//! A row lives as long as some index references it. A delete (OpenMLDB's `Delete(idx, key)`) and TTL eviction
//! both act on one index; the row itself goes when the last index lets go of it. [`MemTable::rows`] keeps that
//! partial state: each row carries the dimensions that still reference it, and applying such an entry restores
//! exactly those, so a snapshot round-trips.
//!
//! Everything is deterministic: `BTreeMap`s only, and rows are numbered by arrival.

use std::cmp::Reverse;
use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bytes::Bytes;
use prost::Message;

use crate::proto::tablet::{Dimension, LogEntry, MethodType, Row, TableMeta, TtlSt, TtlType};
use crate::storage::ttl;

/// Separator of the key columns' values in an index key (OpenMLDB's combined key).
pub const KEY_SEPARATOR: &str = "|";

/// One index of a table, with columns resolved to positions.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexDef {
    pub name: String,
    /// Positions of the key columns, in key order.
    pub key_cols: Vec<usize>,
    /// Position of the ts column.
    pub ts_col: usize,
    pub ttl: TtlSt,
}

/// A table's columns and indexes, validated. Indexes are numbered by position in the meta (idx 0, 1, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct TableSchema {
    columns: Vec<String>,
    indexes: Vec<IndexDef>,
}

/// Why a [`TableMeta`] is not a usable schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    #[error("table has no columns")]
    NoColumns,
    #[error("table has no indexes")]
    NoIndexes,
    #[error("column {position} has an empty name")]
    EmptyColumnName { position: usize },
    #[error("duplicate column name {0:?}")]
    DuplicateColumn(String),
    #[error("duplicate index name {0:?}")]
    DuplicateIndex(String),
    #[error("index {idx} ({name:?}) has no key columns")]
    NoKeyColumns { idx: usize, name: String },
    #[error("index {idx} ({name:?}) has no ts column")]
    NoTsColumn { idx: usize, name: String },
    #[error("index {idx} ({name:?}) names column {column:?}, which the table does not have")]
    UnknownColumn { idx: usize, name: String, column: String },
    #[error("index {idx} ({name:?}) has an unknown TTL type {ttl_type}")]
    UnknownTtlType { idx: usize, name: String, ttl_type: i32 },
}

/// Why a row or log entry cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RowError {
    #[error("row has {got} values, the table has {expected} columns")]
    ColumnCount { expected: usize, got: usize },
    #[error("ts column {column:?} holds {value:?}, not an integer of milliseconds")]
    BadTs { column: String, value: String },
    #[error("row value does not decode: {0}")]
    Decode(String),
    #[error("index {idx} does not exist; the table has {count} indexes")]
    NoSuchIndex { idx: u32, count: usize },
    #[error("dimension of index {idx} carries key {got:?}, but the row's key there is {expected:?}")]
    KeyMismatch { idx: u32, expected: String, got: String },
    #[error("delete entry carries no dimension")]
    DeleteWithoutDimension,
    #[error("unknown method type {0}")]
    UnknownMethod(i32),
}

impl TableSchema {
    /// Validates `meta`: at least one column and one index, unique non-empty column names, unique index names
    /// (empty names exempt), and every index with key columns and a ts column that exist and a known TTL type.
    pub fn from_meta(meta: &TableMeta) -> Result<TableSchema, SchemaError> {
        if meta.column_desc.is_empty() {
            return Err(SchemaError::NoColumns);
        }
        if meta.column_key.is_empty() {
            return Err(SchemaError::NoIndexes);
        }
        let mut positions = BTreeMap::new();
        for (position, col) in meta.column_desc.iter().enumerate() {
            if col.name.is_empty() {
                return Err(SchemaError::EmptyColumnName { position });
            }
            if positions.insert(col.name.as_str(), position).is_some() {
                return Err(SchemaError::DuplicateColumn(col.name.clone()));
            }
        }
        let mut names = BTreeSet::new();
        let mut indexes = Vec::with_capacity(meta.column_key.len());
        for (idx, key) in meta.column_key.iter().enumerate() {
            let name = key.index_name.clone();
            if !name.is_empty() && !names.insert(key.index_name.as_str()) {
                return Err(SchemaError::DuplicateIndex(name));
            }
            if key.col_name.is_empty() {
                return Err(SchemaError::NoKeyColumns { idx, name });
            }
            if key.ts_name.is_empty() {
                return Err(SchemaError::NoTsColumn { idx, name });
            }
            let resolve = |column: &String| {
                positions.get(column.as_str()).copied().ok_or_else(|| SchemaError::UnknownColumn {
                    idx,
                    name: name.clone(),
                    column: column.clone(),
                })
            };
            let key_cols = key.col_name.iter().map(resolve).collect::<Result<Vec<_>, _>>()?;
            let ts_col = resolve(&key.ts_name)?;
            let ttl = key.ttl.unwrap_or_default();
            if TtlType::try_from(ttl.ttl_type).is_err() {
                return Err(SchemaError::UnknownTtlType { idx, name, ttl_type: ttl.ttl_type });
            }
            indexes.push(IndexDef { name, key_cols, ts_col, ttl });
        }
        let columns = meta.column_desc.iter().map(|c| c.name.clone()).collect();
        Ok(TableSchema { columns, indexes })
    }

    /// Column names in schema order.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// Indexes in order; a position is the `idx` of a [`Dimension`].
    pub fn indexes(&self) -> &[IndexDef] {
        &self.indexes
    }

    /// How many indexes the table has; valid `idx` values are below it.
    pub fn index_count(&self) -> usize {
        self.indexes.len()
    }

    /// The TTL of index `idx`, as `gettablestatus` shows it; OpenMLDB's default (absolute 0: never expires)
    /// for an index that does not exist.
    pub fn ttl(&self, idx: u32) -> TtlSt {
        self.index(idx).map(|i| i.ttl).unwrap_or_default()
    }

    /// The index numbered `idx`, if any.
    pub fn index(&self, idx: u32) -> Option<&IndexDef> {
        self.indexes.get(idx as usize)
    }

    /// The position of the index named `name`.
    pub fn index_by_name(&self, name: &str) -> Option<u32> {
        self.indexes.iter().position(|i| i.name == name).map(|p| p as u32)
    }

    /// Every index's key and the row's ts (index 0's ts column): what a PUT log entry carries.
    pub fn entry_for_row(&self, row: &Row) -> Result<(Vec<Dimension>, u64), RowError> {
        let (keys, ts) = self.keys_and_ts(row)?;
        let dims = keys.into_iter().enumerate().map(|(idx, key)| Dimension { idx: idx as u32, key }).collect();
        Ok((dims, ts[0]))
    }

    /// Per index: the key and the ts.
    fn keys_and_ts(&self, row: &Row) -> Result<(Vec<String>, Vec<u64>), RowError> {
        let values = &row.values;
        if values.len() != self.columns.len() {
            return Err(RowError::ColumnCount { expected: self.columns.len(), got: values.len() });
        }
        let mut keys = Vec::with_capacity(self.indexes.len());
        let mut tss = Vec::with_capacity(self.indexes.len());
        for index in &self.indexes {
            let key = match index.key_cols.as_slice() {
                [col] => values[*col].clone(),
                cols => cols.iter().map(|&c| values[c].as_str()).collect::<Vec<_>>().join(KEY_SEPARATOR),
            };
            let raw = &values[index.ts_col];
            let ts = raw
                .parse::<u64>()
                .map_err(|_| RowError::BadTs { column: self.columns[index.ts_col].clone(), value: raw.clone() })?;
            keys.push(key);
            tss.push(ts);
        }
        Ok((keys, tss))
    }
}

/// A stored row: its bytes once, index 0's ts, and which indexes let go of it. Its keys are not kept: the index
/// maps hold them, and [`MemTable::rows`] derives them from the value again (snapshots are rare, rows many).
#[derive(Debug)]
struct StoredRow {
    value: Bytes,
    /// Index 0's ts, what a snapshot entry carries.
    ts: u64,
    /// Indexes that no longer reference the row (a delete or TTL eviction there, or a snapshot entry that did
    /// not name them); usually none, which costs no allocation.
    released: Vec<u32>,
    /// The put's request id, if it had one.
    request_id: Option<Box<str>>,
}

/// Place of a row under a key: newest ts first, and among equal ts the later write first, so a re-put with
/// the same ts is what `get` returns.
type Slot = (Reverse<u64>, Reverse<u64>);

/// A key's rows in one index, newest first. Most keys of a table hold a single row, which here needs no tree
/// node of its own (a `BTreeSet` node is ten times the slot).
#[derive(Debug)]
enum Slots {
    One(Slot),
    Many(BTreeSet<Slot>),
}

impl Slots {
    fn insert(&mut self, slot: Slot) {
        match self {
            Slots::One(first) if *first == slot => {}
            Slots::One(first) => *self = Slots::Many(BTreeSet::from([*first, slot])),
            Slots::Many(set) => {
                set.insert(slot);
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        match self {
            Slots::One(_) => 1,
            Slots::Many(set) => set.len(),
        }
    }

    fn iter(&self) -> SlotsIter<'_> {
        match self {
            Slots::One(slot) => SlotsIter::One(Some(slot)),
            Slots::Many(set) => SlotsIter::Many(set.iter()),
        }
    }

    fn into_vec(self) -> Vec<Slot> {
        match self {
            Slots::One(slot) => vec![slot],
            Slots::Many(set) => set.into_iter().collect(),
        }
    }

    /// Removes `cut` and every slot after it (older); returns them. `None` left means the key has no row.
    fn split_off(self, cut: &Slot) -> (Option<Slots>, Vec<Slot>) {
        match self {
            Slots::One(slot) if slot >= *cut => (None, vec![slot]),
            one @ Slots::One(_) => (Some(one), Vec::new()),
            Slots::Many(mut set) => {
                let tail = set.split_off(cut).into_iter().collect();
                let left = match set.len() {
                    0 => None,
                    1 => set.pop_first().map(Slots::One),
                    _ => Some(Slots::Many(set)),
                };
                (left, tail)
            }
        }
    }
}

enum SlotsIter<'a> {
    One(Option<&'a Slot>),
    Many(std::collections::btree_set::Iter<'a, Slot>),
}

impl<'a> Iterator for SlotsIter<'a> {
    type Item = &'a Slot;

    fn next(&mut self) -> Option<&'a Slot> {
        match self {
            SlotsIter::One(slot) => slot.take(),
            SlotsIter::Many(iter) => iter.next(),
        }
    }
}

/// Approximate in-memory costs for [`MemTable::mem_bytes`]: bookkeeping per row, per distinct key of an index,
/// and per index entry, on top of the row's and key's own bytes.
const ROW_OVERHEAD: u64 = 48;
const KEY_OVERHEAD: u64 = 32;
const ENTRY_OVERHEAD: u64 = 16;

/// The rows of one partition replica.
#[derive(Debug)]
pub struct MemTable {
    schema: Arc<TableSchema>,
    /// Every live row by sequence number (arrival order).
    rows: BTreeMap<u64, StoredRow>,
    /// Per index: key → its rows, newest first.
    indexes: Vec<BTreeMap<String, Slots>>,
    next_seq: u64,
    mem_bytes: u64,
    /// Request id → how many live rows were written with it (one, unless a replay holds an id the leader took
    /// again after its first row had left), for idempotent puts.
    requests: BTreeMap<String, u32>,
}

impl MemTable {
    pub fn new(schema: impl Into<Arc<TableSchema>>) -> MemTable {
        let schema = schema.into();
        let indexes = (0..schema.indexes.len()).map(|_| BTreeMap::new()).collect();
        MemTable { schema, rows: BTreeMap::new(), indexes, next_seq: 0, mem_bytes: 0, requests: BTreeMap::new() }
    }

    pub fn schema(&self) -> &Arc<TableSchema> {
        &self.schema
    }

    /// Applies a binlog or snapshot entry. A PUT's keys and per-index ts come from its row; if it carries
    /// dimensions, only those indexes take it (a snapshot row some index had let go of), and their keys must
    /// match the row's. A DELETE removes every row of `dimensions[0].key` from index `dimensions[0].idx`.
    /// Nothing changes on error.
    pub fn apply(&mut self, entry: &LogEntry) -> Result<(), RowError> {
        match MethodType::try_from(entry.method_type) {
            Ok(MethodType::Put) => self.put(entry),
            Ok(MethodType::Delete) => {
                let dim = entry.dimensions.first().ok_or(RowError::DeleteWithoutDimension)?;
                self.index_check(dim.idx)?;
                self.delete(dim.idx, &dim.key);
                Ok(())
            }
            Err(_) => Err(RowError::UnknownMethod(entry.method_type)),
        }
    }

    fn index_check(&self, idx: u32) -> Result<usize, RowError> {
        let count = self.indexes.len();
        if (idx as usize) < count { Ok(idx as usize) } else { Err(RowError::NoSuchIndex { idx, count }) }
    }

    fn put(&mut self, entry: &LogEntry) -> Result<(), RowError> {
        let row = Row::decode(&entry.value[..]).map_err(|e| RowError::Decode(e.to_string()))?;
        let (keys, ts) = self.schema.keys_and_ts(&row)?;
        // Indexes the entry names; every index when it names none.
        let mut released = Vec::new();
        if !entry.dimensions.is_empty() {
            let mut named = vec![false; keys.len()];
            for dim in &entry.dimensions {
                let idx = self.index_check(dim.idx)?;
                if dim.key != keys[idx] {
                    return Err(RowError::KeyMismatch {
                        idx: dim.idx,
                        expected: keys[idx].clone(),
                        got: dim.key.clone(),
                    });
                }
                named[idx] = true;
            }
            released = (0..keys.len() as u32).filter(|&idx| !named[idx as usize]).collect();
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        for (idx, key) in keys.into_iter().enumerate() {
            if released.contains(&(idx as u32)) {
                continue;
            }
            let slot = (Reverse(ts[idx]), Reverse(seq));
            match self.indexes[idx].entry(key) {
                Entry::Occupied(rows) => rows.into_mut().insert(slot),
                Entry::Vacant(vacant) => {
                    self.mem_bytes += KEY_OVERHEAD + vacant.key().len() as u64;
                    vacant.insert(Slots::One(slot));
                }
            }
            self.mem_bytes += ENTRY_OVERHEAD;
        }
        // A copy: an entry decoded from a network frame shares the frame's buffer, which a long-lived row
        // would otherwise pin whole.
        let value = Bytes::copy_from_slice(&entry.value);
        self.mem_bytes += ROW_OVERHEAD + value.len() as u64;
        let request_id: Option<Box<str>> = (!entry.request_id.is_empty()).then(|| entry.request_id.as_str().into());
        if let Some(id) = &request_id {
            let count = self.requests.entry(String::from(&**id)).or_insert(0);
            if *count == 0 {
                self.mem_bytes += KEY_OVERHEAD + id.len() as u64;
            }
            *count += 1;
        }
        self.rows.insert(seq, StoredRow { value, ts: ts[0], released, request_id });
        Ok(())
    }

    /// Whether a live row was written with `request_id` (an idempotent put already applied).
    pub fn holds_request(&self, request_id: &str) -> bool {
        self.requests.contains_key(request_id)
    }

    /// Removes every row of `key` from index `idx` (which exists); returns how many rows left the table.
    fn delete(&mut self, idx: u32, key: &str) -> usize {
        let idx = idx as usize;
        let Some(slots) = self.indexes[idx].remove(key) else { return 0 };
        self.mem_bytes -= KEY_OVERHEAD + key.len() as u64;
        slots.into_vec().into_iter().filter(|&(_, Reverse(seq))| self.release(idx, seq)).count()
    }

    /// Index `idx` no longer references row `seq` (its slot is already gone); drops the row if no index does.
    /// Returns whether the row left the table.
    fn release(&mut self, idx: usize, seq: u64) -> bool {
        self.mem_bytes -= ENTRY_OVERHEAD;
        let count = self.indexes.len();
        let row = self.rows.get_mut(&seq).expect("an index slot names a live row");
        debug_assert!(!row.released.contains(&(idx as u32)), "index {idx} released row {seq} twice");
        row.released.push(idx as u32);
        if row.released.len() < count {
            return false;
        }
        let row = self.rows.remove(&seq).expect("present above");
        self.mem_bytes -= ROW_OVERHEAD + row.value.len() as u64;
        if let Some(id) = row.request_id
            && let Some(count) = self.requests.get_mut(&*id)
        {
            *count -= 1;
            if *count == 0 {
                self.requests.remove(&*id);
                self.mem_bytes -= KEY_OVERHEAD + id.len() as u64;
            }
        }
        true
    }

    /// The newest row of `key` in index `idx` that has not expired at `now_ms`, with its ts in that index.
    pub fn get(&self, idx: u32, key: &str, now_ms: u64) -> Option<(u64, Bytes)> {
        let index = self.schema.index(idx)?;
        let slots = self.indexes[idx as usize].get(key)?;
        slots
            .iter()
            .enumerate()
            .find(|&(rank, &(Reverse(ts), _))| !ttl::expired(&index.ttl, ts, now_ms, rank))
            .map(|(_, &(Reverse(ts), Reverse(seq)))| (ts, self.rows[&seq].value.clone()))
    }

    /// Rows of `key` in index `idx` with `et < ts <= st` (`st == 0`: no upper bound), newest first, skipping
    /// rows expired at `now_ms`; at most `limit` of them (0: no limit). OpenMLDB's Scan range.
    pub fn scan(&self, idx: u32, key: &str, st: u64, et: u64, limit: usize, now_ms: u64) -> Vec<(u64, Bytes)> {
        let mut out = Vec::new();
        let (Some(index), Some(slots)) = (self.schema.index(idx), self.indexes.get(idx as usize)) else {
            return out;
        };
        let Some(slots) = slots.get(key) else { return out };
        for (rank, &(Reverse(ts), Reverse(seq))) in slots.iter().enumerate() {
            if ts <= et {
                break;
            }
            if (st != 0 && ts > st) || ttl::expired(&index.ttl, ts, now_ms, rank) {
                continue;
            }
            out.push((ts, self.rows[&seq].value.clone()));
            if out.len() == limit {
                break;
            }
        }
        out
    }

    /// Evicts every row expired at `now_ms` from each index, per that index's TTL. Returns how many rows left
    /// the table (a row stays while some index still holds it).
    pub fn gc(&mut self, now_ms: u64) -> usize {
        let mut dropped = 0;
        for idx in 0..self.indexes.len() {
            let ttl = self.schema.indexes[idx].ttl;
            let mut evicted: Vec<u64> = Vec::new();
            let mut emptied: Vec<String> = Vec::new();
            for (key, slots) in self.indexes[idx].iter_mut() {
                // Rows are newest first and both conditions only grow with age and rank, so the expired rows
                // are a tail: find where it starts and cut it off.
                let Some(cut) = slots
                    .iter()
                    .enumerate()
                    .find(|&(rank, &(Reverse(ts), _))| ttl::expired(&ttl, ts, now_ms, rank))
                    .map(|(_, &slot)| slot)
                else {
                    continue;
                };
                let whole = std::mem::replace(slots, Slots::One(cut));
                let (left, tail) = whole.split_off(&cut);
                evicted.extend(tail.into_iter().map(|(_, Reverse(seq))| seq));
                match left {
                    Some(left) => *slots = left,
                    None => emptied.push(key.clone()),
                }
            }
            for key in emptied {
                self.indexes[idx].remove(&key);
                self.mem_bytes -= KEY_OVERHEAD + key.len() as u64;
            }
            dropped += evicted.into_iter().filter(|&seq| self.release(idx, seq)).count();
        }
        dropped
    }

    /// Live rows: rows some index references.
    pub fn record_cnt(&self) -> u64 {
        self.rows.len() as u64
    }

    /// Approximate bytes of rows and index entries, kept as rows come and go.
    pub fn mem_bytes(&self) -> u64 {
        self.mem_bytes
    }

    /// Every live row as a PUT entry (term and log_index 0) with the dimensions that still reference it,
    /// its index-0 ts, its value and its request id, in arrival order. Applying them to an empty table rebuilds this one.
    pub fn rows(&self) -> impl Iterator<Item = LogEntry> + '_ {
        self.rows.values().map(|row| {
            let decoded = Row::decode(&row.value[..]).expect("a stored row decoded when it was put");
            let (keys, _) = self.schema.keys_and_ts(&decoded).expect("a stored row fitted the schema when it was put");
            LogEntry {
                term: 0,
                log_index: 0,
                method_type: MethodType::Put as i32,
                dimensions: keys
                    .into_iter()
                    .enumerate()
                    .filter(|(idx, _)| !row.released.contains(&(*idx as u32)))
                    .map(|(idx, key)| Dimension { idx: idx as u32, key })
                    .collect(),
                ts: row.ts,
                value: row.value.clone(),
                request_id: row.request_id.as_deref().unwrap_or_default().to_string(),
            }
        })
    }

    /// `mem_bytes` recomputed from scratch, to check the incremental count.
    #[cfg(test)]
    fn mem_bytes_recomputed(&self) -> u64 {
        let rows: u64 = self.rows.values().map(|r| ROW_OVERHEAD + r.value.len() as u64).sum();
        let index: u64 = self
            .indexes
            .iter()
            .flat_map(|i| i.iter())
            .map(|(k, slots)| KEY_OVERHEAD + k.len() as u64 + ENTRY_OVERHEAD * slots.len() as u64)
            .sum();
        let requests: u64 = self.requests.keys().map(|id| KEY_OVERHEAD + id.len() as u64).sum();
        rows + index + requests
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::tablet::{ColumnDesc, ColumnKey};
    use proptest::prelude::*;

    const MIN: u64 = 60_000;
    const NOW: u64 = 1_000_000 * MIN;

    fn col(name: &str) -> ColumnDesc {
        ColumnDesc { name: name.into(), data_type: "string".into() }
    }

    fn index(name: &str, cols: &[&str], ts: &str, ttl: TtlSt) -> ColumnKey {
        ColumnKey {
            index_name: name.into(),
            col_name: cols.iter().map(|c| c.to_string()).collect(),
            ts_name: ts.into(),
            ttl: Some(ttl),
        }
    }

    fn meta(cols: &[&str], keys: Vec<ColumnKey>) -> TableMeta {
        TableMeta { column_desc: cols.iter().map(|c| col(c)).collect(), column_key: keys, ..Default::default() }
    }

    /// Columns card, mcc, amt, ts; index 0 on card, index 1 on (card, mcc). Both on ts.
    fn two_index_schema(ttl0: TtlSt, ttl1: TtlSt) -> TableSchema {
        TableSchema::from_meta(&meta(
            &["card", "mcc", "amt", "ts"],
            vec![index("card", &["card"], "ts", ttl0), index("card_mcc", &["card", "mcc"], "ts", ttl1)],
        ))
        .unwrap()
    }

    fn one_index_schema(ttl: TtlSt) -> TableSchema {
        TableSchema::from_meta(&meta(&["k", "v", "ts"], vec![index("k", &["k"], "ts", ttl)])).unwrap()
    }

    fn row(values: &[&str]) -> Row {
        Row { values: values.iter().map(|v| v.to_string()).collect() }
    }

    fn put(values: &[&str]) -> LogEntry {
        LogEntry {
            method_type: MethodType::Put as i32,
            value: row(values).encode_to_vec().into(),
            ..Default::default()
        }
    }

    fn delete(idx: u32, key: &str) -> LogEntry {
        LogEntry {
            method_type: MethodType::Delete as i32,
            dimensions: vec![Dimension { idx, key: key.into() }],
            ..Default::default()
        }
    }

    fn decode(b: &Bytes) -> Vec<String> {
        Row::decode(b.clone()).unwrap().values
    }

    /// `(ts, first value after the key)` of a scan, for short assertions.
    fn scan_vals(t: &MemTable, idx: u32, key: &str, st: u64, et: u64, limit: usize, now: u64) -> Vec<(u64, String)> {
        t.scan(idx, key, st, et, limit, now).iter().map(|(ts, b)| (*ts, decode(b)[1].clone())).collect()
    }

    fn check_mem(t: &MemTable) {
        assert_eq!(t.mem_bytes(), t.mem_bytes_recomputed());
    }

    #[test]
    fn schema_validation() {
        let ok = || meta(&["a", "b", "ts"], vec![index("i", &["a"], "ts", ttl::absolute(0))]);
        let s = TableSchema::from_meta(&ok()).unwrap();
        assert_eq!(s.columns(), ["a", "b", "ts"]);
        assert_eq!(s.indexes()[0].key_cols, vec![0]);
        assert_eq!(s.indexes()[0].ts_col, 2);
        assert_eq!(s.index_by_name("i"), Some(0));
        assert!(s.index(1).is_none());
        assert_eq!((s.index_count(), s.ttl(0), s.ttl(1)), (1, ttl::absolute(0), TtlSt::default()));
        // No TTL at all is the default: absolute 0.
        let mut m = ok();
        m.column_key[0].ttl = None;
        assert_eq!(TableSchema::from_meta(&m).unwrap().indexes()[0].ttl, TtlSt::default());

        let err = |m: TableMeta| TableSchema::from_meta(&m).unwrap_err();
        assert_eq!(err(meta(&[], vec![index("i", &["a"], "ts", ttl::absolute(0))])), SchemaError::NoColumns);
        assert_eq!(err(meta(&["a"], vec![])), SchemaError::NoIndexes);
        let mut m = ok();
        m.column_desc[1].name = "a".into();
        assert_eq!(err(m), SchemaError::DuplicateColumn("a".into()));
        let mut m = ok();
        m.column_desc[1].name = String::new();
        assert_eq!(err(m), SchemaError::EmptyColumnName { position: 1 });
        let mut m = ok();
        m.column_key.push(index("i", &["b"], "ts", ttl::latest(1)));
        assert_eq!(err(m), SchemaError::DuplicateIndex("i".into()));
        let mut m = ok();
        m.column_key.push(index("j", &["x"], "ts", ttl::latest(1)));
        let e = err(m);
        assert_eq!(e, SchemaError::UnknownColumn { idx: 1, name: "j".into(), column: "x".into() });
        assert_eq!(e.to_string(), "index 1 (\"j\") names column \"x\", which the table does not have");
        let mut m = ok();
        m.column_key[0].ts_name = "nope".into();
        assert!(matches!(err(m), SchemaError::UnknownColumn { column, .. } if column == "nope"));
        let mut m = ok();
        m.column_key[0].ts_name = String::new();
        assert!(matches!(err(m), SchemaError::NoTsColumn { idx: 0, .. }));
        let mut m = ok();
        m.column_key[0].col_name.clear();
        assert!(matches!(err(m), SchemaError::NoKeyColumns { idx: 0, .. }));
        let mut m = ok();
        m.column_key[0].ttl.as_mut().unwrap().ttl_type = 2;
        assert!(matches!(err(m), SchemaError::UnknownTtlType { ttl_type: 2, .. }));
        // Unnamed indexes do not clash with each other.
        let m = meta(
            &["a", "ts"],
            vec![index("", &["a"], "ts", ttl::absolute(0)), index("", &["a"], "ts", ttl::latest(1))],
        );
        assert_eq!(TableSchema::from_meta(&m).unwrap().indexes().len(), 2);
    }

    #[test]
    fn entry_for_row_builds_combined_keys() {
        let s = two_index_schema(ttl::absolute(0), ttl::absolute(0));
        let (dims, ts) = s.entry_for_row(&row(&["c1", "m1", "10", "1234"])).unwrap();
        assert_eq!(ts, 1234);
        assert_eq!(dims, vec![Dimension { idx: 0, key: "c1".into() }, Dimension { idx: 1, key: "c1|m1".into() }]);

        let e = s.entry_for_row(&row(&["c1", "m1", "10"])).unwrap_err();
        assert_eq!(e, RowError::ColumnCount { expected: 4, got: 3 });
        assert_eq!(e.to_string(), "row has 3 values, the table has 4 columns");
        for bad in ["", "abc", "-1", "1.5", "99999999999999999999"] {
            let e = s.entry_for_row(&row(&["c1", "m1", "10", bad])).unwrap_err();
            assert_eq!(e, RowError::BadTs { column: "ts".into(), value: bad.into() });
        }
        let e = s.entry_for_row(&row(&["c1", "m1", "10", "x"])).unwrap_err();
        assert_eq!(e.to_string(), "ts column \"ts\" holds \"x\", not an integer of milliseconds");
    }

    #[test]
    fn entry_for_row_uses_index_zero_ts_and_checks_every_ts() {
        let s = TableSchema::from_meta(&meta(
            &["k", "t1", "t2"],
            vec![index("a", &["k"], "t2", ttl::absolute(0)), index("b", &["k"], "t1", ttl::absolute(0))],
        ))
        .unwrap();
        assert_eq!(s.entry_for_row(&row(&["k", "1", "2"])).unwrap().1, 2);
        let e = s.entry_for_row(&row(&["k", "bad", "2"])).unwrap_err();
        assert_eq!(e, RowError::BadTs { column: "t1".into(), value: "bad".into() });
    }

    #[test]
    fn put_get_scan_one_index() {
        let mut t = MemTable::new(one_index_schema(ttl::absolute(0)));
        assert_eq!(t.get(0, "a", NOW), None);
        for (v, ts) in [("v1", "10"), ("v3", "30"), ("v2", "20")] {
            t.apply(&put(&["a", v, ts])).unwrap();
        }
        t.apply(&put(&["b", "vb", "5"])).unwrap();
        let (ts, value) = t.get(0, "a", NOW).unwrap();
        assert_eq!((ts, decode(&value)), (30, vec!["a".to_string(), "v3".into(), "30".into()]));
        assert_eq!(t.get(0, "b", NOW).unwrap().0, 5);
        assert_eq!(t.get(0, "c", NOW), None);
        assert_eq!(t.get(1, "a", NOW), None, "no such index");
        assert_eq!(t.record_cnt(), 4);

        let all = vec![(30, "v3".to_string()), (20, "v2".into()), (10, "v1".into())];
        assert_eq!(scan_vals(&t, 0, "a", 0, 0, 0, NOW), all);
        // et < ts <= st.
        assert_eq!(scan_vals(&t, 0, "a", 30, 10, 0, NOW), all[..2]);
        assert_eq!(scan_vals(&t, 0, "a", 29, 9, 0, NOW), all[1..]);
        assert_eq!(scan_vals(&t, 0, "a", 20, 20, 0, NOW), vec![]);
        assert_eq!(scan_vals(&t, 0, "a", 5, 0, 0, NOW), vec![]);
        assert_eq!(scan_vals(&t, 0, "a", 0, 0, 2, NOW), all[..2]);
        assert_eq!(scan_vals(&t, 0, "a", 0, 0, 1, NOW), all[..1]);
        assert_eq!(scan_vals(&t, 0, "a", 0, 0, 10, NOW), all);
        assert!(t.scan(0, "zz", 0, 0, 0, NOW).is_empty());
        assert!(t.scan(7, "a", 0, 0, 0, NOW).is_empty());
        check_mem(&t);
    }

    #[test]
    fn duplicate_timestamps_keep_both_rows_later_write_first() {
        let mut t = MemTable::new(one_index_schema(ttl::absolute(0)));
        t.apply(&put(&["a", "first", "10"])).unwrap();
        t.apply(&put(&["a", "second", "10"])).unwrap();
        t.apply(&put(&["a", "older", "9"])).unwrap();
        assert_eq!(decode(&t.get(0, "a", NOW).unwrap().1)[1], "second");
        assert_eq!(
            scan_vals(&t, 0, "a", 0, 0, 0, NOW),
            vec![(10, "second".to_string()), (10, "first".into()), (9, "older".into())]
        );
        // Even an identical row is stored again, as OpenMLDB does.
        t.apply(&put(&["a", "first", "10"])).unwrap();
        assert_eq!(t.record_cnt(), 4);
        // LATEST counts duplicates as separate rows.
        let mut t = MemTable::new(one_index_schema(ttl::latest(1)));
        t.apply(&put(&["a", "first", "10"])).unwrap();
        t.apply(&put(&["a", "second", "10"])).unwrap();
        assert_eq!(scan_vals(&t, 0, "a", 0, 0, 0, NOW), vec![(10, "second".to_string())]);
        assert_eq!(t.gc(NOW), 1);
        assert_eq!(t.record_cnt(), 1);
        check_mem(&t);
    }

    #[test]
    fn two_indexes_and_delete_from_one() {
        let mut t = MemTable::new(two_index_schema(ttl::absolute(0), ttl::absolute(0)));
        t.apply(&put(&["c1", "m1", "1", "10"])).unwrap();
        t.apply(&put(&["c1", "m2", "2", "20"])).unwrap();
        t.apply(&put(&["c2", "m1", "3", "30"])).unwrap();
        assert_eq!(t.get(0, "c1", NOW).unwrap().0, 20);
        assert_eq!(t.get(1, "c1|m1", NOW).unwrap().0, 10);
        assert_eq!(t.get(1, "c1", NOW), None);

        // Delete key c1|m1 in index 1: the row stays, reachable through index 0.
        t.apply(&delete(1, "c1|m1")).unwrap();
        assert_eq!(t.get(1, "c1|m1", NOW), None);
        assert_eq!(scan_vals(&t, 0, "c1", 0, 0, 0, NOW), vec![(20, "m2".to_string()), (10, "m1".into())]);
        assert_eq!(t.record_cnt(), 3);
        check_mem(&t);
        // Its snapshot entry carries only index 0.
        let entries: Vec<LogEntry> = t.rows().collect();
        assert_eq!(entries[0].dimensions, vec![Dimension { idx: 0, key: "c1".into() }]);
        assert_eq!(entries[1].dimensions.len(), 2);
        assert_eq!(entries[0].ts, 10);

        // Delete c1 in index 0: the first row is referenced by no index and goes; the second stays in index 1.
        t.apply(&delete(0, "c1")).unwrap();
        assert_eq!(t.record_cnt(), 2);
        assert_eq!(t.get(0, "c1", NOW), None);
        assert_eq!(t.get(1, "c1|m2", NOW).unwrap().0, 20);
        check_mem(&t);
        // Deleting a missing key is fine.
        t.apply(&delete(0, "nope")).unwrap();
        t.apply(&delete(1, "c1|m2")).unwrap();
        t.apply(&delete(0, "c2")).unwrap();
        t.apply(&delete(1, "c2|m1")).unwrap();
        assert_eq!(t.record_cnt(), 0);
        assert_eq!(t.mem_bytes(), 0);
    }

    #[test]
    fn rows_rebuild_the_same_table() {
        let mut t = MemTable::new(two_index_schema(ttl::absolute(0), ttl::latest(5)));
        for i in 0..20u64 {
            let (card, mcc) = (format!("c{}", i % 3), format!("m{}", i % 2));
            t.apply(&put(&[&card, &mcc, &i.to_string(), &(100 + i).to_string()])).unwrap();
        }
        t.apply(&delete(1, "c0|m0")).unwrap();
        t.apply(&delete(0, "c1")).unwrap();
        let mut copy = MemTable::new(t.schema().clone());
        for e in t.rows() {
            assert_eq!((e.term, e.log_index, e.method_type), (0, 0, MethodType::Put as i32));
            copy.apply(&e).unwrap();
        }
        assert_eq!(copy.record_cnt(), t.record_cnt());
        assert_eq!(copy.mem_bytes(), t.mem_bytes());
        assert_eq!(copy.rows().collect::<Vec<_>>(), t.rows().collect::<Vec<_>>());
        for key in ["c0", "c1", "c2"] {
            assert_eq!(copy.scan(0, key, 0, 0, 0, NOW), t.scan(0, key, 0, 0, 0, NOW));
            for m in ["m0", "m1"] {
                let k = format!("{key}|{m}");
                assert_eq!(copy.scan(1, &k, 0, 0, 0, NOW), t.scan(1, &k, 0, 0, 0, NOW));
            }
        }
    }

    #[test]
    fn row_errors_change_nothing() {
        let mut t = MemTable::new(two_index_schema(ttl::absolute(0), ttl::absolute(0)));
        t.apply(&put(&["c1", "m1", "1", "10"])).unwrap();
        let before = (t.record_cnt(), t.mem_bytes(), t.rows().collect::<Vec<_>>());

        let bad_value = LogEntry { value: Bytes::from_static(&[0xff, 0xff]), ..put(&["x"]) };
        assert!(matches!(t.apply(&bad_value), Err(RowError::Decode(_))));
        assert_eq!(t.apply(&put(&["c1", "m1", "1"])), Err(RowError::ColumnCount { expected: 4, got: 3 }));
        assert_eq!(
            t.apply(&put(&["c1", "m1", "1", "soon"])),
            Err(RowError::BadTs { column: "ts".into(), value: "soon".into() })
        );
        let mut wrong_key = put(&["c1", "m1", "1", "10"]);
        wrong_key.dimensions = vec![Dimension { idx: 0, key: "c1".into() }, Dimension { idx: 1, key: "c1|m9".into() }];
        let e = t.apply(&wrong_key).unwrap_err();
        assert_eq!(e, RowError::KeyMismatch { idx: 1, expected: "c1|m1".into(), got: "c1|m9".into() });
        let mut bad_idx = put(&["c1", "m1", "1", "10"]);
        bad_idx.dimensions = vec![Dimension { idx: 2, key: "c1".into() }];
        assert_eq!(t.apply(&bad_idx), Err(RowError::NoSuchIndex { idx: 2, count: 2 }));
        assert_eq!(t.apply(&delete(2, "c1")), Err(RowError::NoSuchIndex { idx: 2, count: 2 }));
        let no_dim = LogEntry { method_type: MethodType::Delete as i32, ..Default::default() };
        assert_eq!(t.apply(&no_dim), Err(RowError::DeleteWithoutDimension));
        let odd = LogEntry { method_type: 7, ..put(&["c1", "m1", "1", "10"]) };
        assert_eq!(t.apply(&odd), Err(RowError::UnknownMethod(7)));
        assert_eq!(before, (t.record_cnt(), t.mem_bytes(), t.rows().collect::<Vec<_>>()));
        check_mem(&t);
    }

    #[test]
    fn absolute_ttl_filters_and_gc_evicts() {
        let mut t = MemTable::new(one_index_schema(ttl::absolute(10)));
        let cutoff = NOW - 10 * MIN;
        for (v, ts) in [("old", cutoff - 1), ("edge", cutoff), ("new", NOW)] {
            t.apply(&put(&["a", v, &ts.to_string()])).unwrap();
        }
        t.apply(&put(&["b", "old", &(cutoff - 5).to_string()])).unwrap();
        assert_eq!(scan_vals(&t, 0, "a", 0, 0, 0, NOW), vec![(NOW, "new".to_string()), (cutoff, "edge".into())]);
        assert_eq!(t.get(0, "b", NOW), None, "expired rows are invisible before gc");
        // Earlier, everything is visible.
        assert_eq!(t.scan(0, "a", 0, 0, 0, NOW - MIN).len(), 3);
        assert_eq!(t.gc(NOW - MIN), 0);
        assert_eq!(t.gc(NOW), 2);
        assert_eq!(t.record_cnt(), 2);
        assert_eq!(t.get(0, "b", 0), None, "gone for good");
        check_mem(&t);
        assert_eq!(t.gc(NOW), 0);
        assert_eq!(t.gc(u64::MAX), 2);
        assert_eq!((t.record_cnt(), t.mem_bytes()), (0, 0));
    }

    #[test]
    fn latest_ttl_filters_and_gc_evicts() {
        let mut t = MemTable::new(one_index_schema(ttl::latest(2)));
        for ts in [1, 5, 3, 4] {
            t.apply(&put(&["a", &format!("v{ts}"), &ts.to_string()])).unwrap();
        }
        t.apply(&put(&["b", "v", "1"])).unwrap();
        assert_eq!(scan_vals(&t, 0, "a", 0, 0, 0, 0), vec![(5, "v5".to_string()), (4, "v4".into())]);
        // Rank counts rows outside the range: ts 3 is rank 2 even when st excludes 5 and 4.
        assert_eq!(scan_vals(&t, 0, "a", 3, 0, 0, 0), vec![]);
        assert_eq!(t.get(0, "b", 0).unwrap().0, 1);
        assert_eq!(t.gc(0), 2);
        assert_eq!(t.record_cnt(), 3);
        assert_eq!(scan_vals(&t, 0, "a", 3, 0, 0, 0), vec![]);
        check_mem(&t);
        // A new put pushes the oldest out.
        t.apply(&put(&["a", "v6", "6"])).unwrap();
        assert_eq!(scan_vals(&t, 0, "a", 0, 0, 0, 0), vec![(6, "v6".to_string()), (5, "v5".into())]);
        // An older put than everything is expired at once.
        t.apply(&put(&["a", "v0", "0"])).unwrap();
        assert_eq!(t.scan(0, "a", 0, 0, 0, 0).len(), 2);
        assert_eq!(t.gc(0), 2);
        check_mem(&t);
    }

    #[test]
    fn abs_and_lat_ttl() {
        let mut t = MemTable::new(one_index_schema(ttl::abs_and_lat(10, 2)));
        let old = NOW - 11 * MIN;
        // Ranks 0..4: two fresh, then two old, then one more old.
        for (v, ts) in [("f1", NOW), ("f2", NOW - MIN), ("f3", NOW - 2 * MIN), ("o1", old), ("o2", old - 1)] {
            t.apply(&put(&["a", v, &ts.to_string()])).unwrap();
        }
        // f3 is beyond 2 but fresh; o1, o2 are old and beyond 2.
        let vals: Vec<String> = scan_vals(&t, 0, "a", 0, 0, 0, NOW).into_iter().map(|(_, v)| v).collect();
        assert_eq!(vals, ["f1", "f2", "f3"]);
        // Old rows among the newest two stay.
        let mut u = MemTable::new(one_index_schema(ttl::abs_and_lat(10, 2)));
        u.apply(&put(&["a", "o1", &old.to_string()])).unwrap();
        u.apply(&put(&["a", "o2", &(old - 1).to_string()])).unwrap();
        u.apply(&put(&["a", "o3", &(old - 2).to_string()])).unwrap();
        assert_eq!(u.get(0, "a", NOW).unwrap().0, old);
        assert_eq!(u.gc(NOW), 1);
        assert_eq!(u.record_cnt(), 2);
        assert_eq!(t.gc(NOW), 2);
        assert_eq!(t.record_cnt(), 3);
        check_mem(&t);
        check_mem(&u);
    }

    #[test]
    fn abs_or_lat_ttl() {
        let mut t = MemTable::new(one_index_schema(ttl::abs_or_lat(10, 3)));
        let old = NOW - 11 * MIN;
        for (v, ts) in [("f1", NOW), ("o1", old), ("f2", NOW - MIN), ("o2", old - 1)] {
            t.apply(&put(&["a", v, &ts.to_string()])).unwrap();
        }
        for i in 0..4 {
            t.apply(&put(&["b", &format!("f{i}"), &(NOW - i).to_string()])).unwrap();
        }
        // a: f1, f2 fresh within 3; o1 rank 2 old; o2 rank 3 both.
        let vals: Vec<String> = scan_vals(&t, 0, "a", 0, 0, 0, NOW).into_iter().map(|(_, v)| v).collect();
        assert_eq!(vals, ["f1", "f2"]);
        // b: all fresh, the fourth is beyond 3.
        assert_eq!(t.scan(0, "b", 0, 0, 0, NOW).len(), 3);
        assert_eq!(t.gc(NOW), 3);
        assert_eq!(t.record_cnt(), 5);
        check_mem(&t);
    }

    #[test]
    fn gc_on_one_index_keeps_rows_the_other_holds() {
        // Index 0 keeps everything; index 1 keeps only the newest row per key.
        let mut t = MemTable::new(two_index_schema(ttl::absolute(0), ttl::latest(1)));
        t.apply(&put(&["c1", "m1", "1", "10"])).unwrap();
        t.apply(&put(&["c1", "m1", "2", "20"])).unwrap();
        assert_eq!(t.gc(NOW), 0, "index 0 still holds the evicted row");
        assert_eq!(t.record_cnt(), 2);
        assert_eq!(t.scan(1, "c1|m1", 0, 0, 0, NOW).len(), 1);
        assert_eq!(t.scan(0, "c1", 0, 0, 0, NOW).len(), 2);
        let dims: Vec<usize> = t.rows().map(|e| e.dimensions.len()).collect();
        assert_eq!(dims, [1, 2]);
        check_mem(&t);
        // Now index 0 lets go of c1: the older row is held by nothing and goes.
        t.apply(&delete(0, "c1")).unwrap();
        assert_eq!(t.record_cnt(), 1);
        assert_eq!(t.get(1, "c1|m1", NOW).unwrap().0, 20);
        check_mem(&t);
    }

    #[test]
    fn mem_bytes_grows_and_shrinks_with_rows() {
        let mut t = MemTable::new(two_index_schema(ttl::absolute(0), ttl::absolute(0)));
        assert_eq!(t.mem_bytes(), 0);
        let e = put(&["c1", "m1", "1", "10"]);
        t.apply(&e).unwrap();
        let one = ROW_OVERHEAD + e.value.len() as u64 + 2 * ENTRY_OVERHEAD + 2 * KEY_OVERHEAD + 2 + 5;
        assert_eq!(t.mem_bytes(), one);
        // Same keys: no new key cost.
        let e2 = put(&["c1", "m1", "2", "11"]);
        t.apply(&e2).unwrap();
        assert_eq!(t.mem_bytes(), one + ROW_OVERHEAD + e2.value.len() as u64 + 2 * ENTRY_OVERHEAD);
        check_mem(&t);
        t.apply(&delete(0, "c1")).unwrap();
        t.apply(&delete(1, "c1|m1")).unwrap();
        assert_eq!(t.mem_bytes(), 0);
    }

    #[test]
    fn request_ids_are_held_while_their_row_lives_and_kept_by_a_rebuild() {
        let mut t = MemTable::new(two_index_schema(ttl::absolute(0), ttl::absolute(0)));
        let tagged = LogEntry { request_id: "import:1:0".into(), ..put(&["c1", "m1", "1", "10"]) };
        t.apply(&tagged).unwrap();
        t.apply(&put(&["c2", "m1", "2", "10"])).unwrap();
        assert!(t.holds_request("import:1:0"));
        assert!(!t.holds_request("import:1:1") && !t.holds_request(""));
        check_mem(&t);
        // A snapshot's rows rebuild the table with its ids.
        let mut copy = MemTable::new(two_index_schema(ttl::absolute(0), ttl::absolute(0)));
        for e in t.rows() {
            copy.apply(&e).unwrap();
        }
        assert!(copy.holds_request("import:1:0"));
        check_mem(&copy);
        // Held while some index still holds the row; gone with the row.
        t.apply(&delete(0, "c1")).unwrap();
        assert!(t.holds_request("import:1:0"));
        t.apply(&delete(1, "c1|m1")).unwrap();
        assert!(!t.holds_request("import:1:0"));
        check_mem(&t);
    }

    /// The naive model: every row ever put, with the indexes still holding it.
    #[derive(Debug, Default)]
    struct Model {
        /// (seq, values, per-index: present)
        rows: Vec<(u64, Vec<String>, Vec<bool>)>,
        next: u64,
    }

    impl Model {
        fn key(values: &[String], idx: usize) -> String {
            if idx == 0 { values[0].clone() } else { format!("{}|{}", values[0], values[1]) }
        }

        fn ts(values: &[String]) -> u64 {
            values[3].parse().unwrap()
        }

        /// Rows of `key` in `idx`, newest first, later writes first among equal ts.
        fn ranked(&self, idx: usize, key: &str) -> Vec<&(u64, Vec<String>, Vec<bool>)> {
            let mut rows: Vec<_> = self.rows.iter().filter(|r| r.2[idx] && Self::key(&r.1, idx) == key).collect();
            rows.sort_by_key(|r| (Reverse(Self::ts(&r.1)), Reverse(r.0)));
            rows
        }

        fn visible(&self, ttls: &[TtlSt], idx: usize, key: &str, now: u64) -> Vec<(u64, Vec<String>)> {
            self.ranked(idx, key)
                .into_iter()
                .enumerate()
                .filter(|(rank, r)| !ttl::expired(&ttls[idx], Self::ts(&r.1), now, *rank))
                .map(|(_, r)| (Self::ts(&r.1), r.1.clone()))
                .collect()
        }

        fn put(&mut self, values: Vec<String>) {
            self.rows.push((self.next, values, vec![true, true]));
            self.next += 1;
        }

        fn release(&mut self, idx: usize, pred: impl Fn(&(u64, Vec<String>, Vec<bool>)) -> bool) {
            for r in self.rows.iter_mut() {
                if r.2[idx] && pred(r) {
                    r.2[idx] = false;
                }
            }
            self.rows.retain(|r| r.2.iter().any(|&p| p));
        }

        fn delete(&mut self, idx: usize, key: &str) {
            self.release(idx, |r| Self::key(&r.1, idx) == key);
        }

        fn gc(&mut self, ttls: &[TtlSt], now: u64) -> usize {
            let before = self.rows.len();
            for (idx, ttl) in ttls.iter().enumerate() {
                let mut doomed = BTreeSet::new();
                let keys: BTreeSet<String> =
                    self.rows.iter().filter(|r| r.2[idx]).map(|r| Self::key(&r.1, idx)).collect();
                for key in keys {
                    for (rank, r) in self.ranked(idx, &key).into_iter().enumerate() {
                        if ttl::expired(ttl, Self::ts(&r.1), now, rank) {
                            doomed.insert(r.0);
                        }
                    }
                }
                self.release(idx, |r| doomed.contains(&r.0));
            }
            before - self.rows.len()
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Put { card: u8, mcc: u8, ts: u64 },
        Delete { idx: u32, card: u8, mcc: u8 },
        Gc { now: u64 },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0u8..3, 0u8..2, 0u64..20).prop_map(|(card, mcc, ts)| Op::Put { card, mcc, ts: ts * MIN }),
            1 => (0u32..2, 0u8..3, 0u8..2).prop_map(|(idx, card, mcc)| Op::Delete { idx, card, mcc }),
            1 => (0u64..30).prop_map(|now| Op::Gc { now: now * MIN }),
        ]
    }

    fn any_ttl() -> impl Strategy<Value = TtlSt> {
        (0i32..6, 0u64..8, 0u64..4).prop_map(|(kind, abs, lat)| {
            let kind = if kind == 2 { 0 } else { kind };
            TtlSt { ttl_type: kind, abs_ttl: abs, lat_ttl: lat }
        })
    }

    proptest! {
        #[test]
        fn memtable_matches_naive_model(
            ttl0 in any_ttl(),
            ttl1 in any_ttl(),
            ops in proptest::collection::vec(op(), 1..80),
            now in 0u64..30,
        ) {
            let ttls = [ttl0, ttl1];
            let mut t = MemTable::new(two_index_schema(ttl0, ttl1));
            let mut m = Model::default();
            let now = now * MIN;
            for op in ops {
                match op {
                    Op::Put { card, mcc, ts } => {
                        let values: Vec<String> =
                            vec![format!("c{card}"), format!("m{mcc}"), m.next.to_string(), ts.to_string()];
                        let r = Row { values: values.clone() };
                        // Ids repeat (seq mod 5): a replay may hold an id twice after its first row left.
                        let request_id = format!("r{}", m.next % 5);
                        t.apply(&LogEntry { value: r.encode_to_vec().into(), request_id, ..Default::default() })
                            .unwrap();
                        m.put(values);
                    }
                    Op::Delete { idx, card, mcc } => {
                        let key = if idx == 0 { format!("c{card}") } else { format!("c{card}|m{mcc}") };
                        t.apply(&delete(idx, &key)).unwrap();
                        m.delete(idx as usize, &key);
                    }
                    Op::Gc { now } => prop_assert_eq!(t.gc(now), m.gc(&ttls, now)),
                }
                prop_assert_eq!(t.record_cnt(), m.rows.len() as u64);
                prop_assert_eq!(t.mem_bytes(), t.mem_bytes_recomputed());
                for k in 0..5 {
                    let live = m.rows.iter().any(|(seq, _, _)| seq % 5 == k);
                    prop_assert_eq!(t.holds_request(&format!("r{k}")), live, "request id r{}", k);
                }
            }
            for card in 0..3 {
                for (idx, key) in [(0u32, format!("c{card}")), (1, format!("c{card}|m0")), (1, format!("c{card}|m1"))] {
                    let want = m.visible(&ttls, idx as usize, &key, now);
                    let got: Vec<(u64, Vec<String>)> =
                        t.scan(idx, &key, 0, 0, 0, now).into_iter().map(|(ts, b)| (ts, decode(&b))).collect();
                    // et = 0 is a bound like any other: rows at ts 0 are outside (et < ts).
                    let positive: Vec<_> = want.iter().filter(|(ts, _)| *ts > 0).cloned().collect();
                    prop_assert_eq!(&got, &positive);
                    prop_assert_eq!(t.get(idx, &key, now).map(|(ts, b)| (ts, decode(&b))), want.first().cloned());
                    // A bounded range and limit agree with filtering the full list.
                    let (st, et) = (12 * MIN, 4 * MIN);
                    let want: Vec<_> = want.iter().filter(|(ts, _)| *ts > et && *ts <= st).take(2).cloned().collect();
                    let got: Vec<(u64, Vec<String>)> =
                        t.scan(idx, &key, st, et, 2, now).into_iter().map(|(ts, b)| (ts, decode(&b))).collect();
                    prop_assert_eq!(got, want);
                }
            }
            // The live rows, in order, with the indexes holding them.
            let rows: Vec<(Vec<String>, usize)> =
                t.rows().map(|e| (decode(&e.value), e.dimensions.len())).collect();
            let want: Vec<(Vec<String>, usize)> =
                m.rows.iter().map(|r| (r.1.clone(), r.2.iter().filter(|&&p| p).count())).collect();
            prop_assert_eq!(rows, want);
        }
    }
}
