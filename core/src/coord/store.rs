//! The model server's data directory: a write-ahead log of the tree's changes and snapshots of the whole tree,
//! so that a restarted server has every change it ever answered (DESIGN 4.2, "durable like a standalone
//! ZooKeeper").
//!
//! Files, each a sequence of [`crate::storage::record`] frames (length, CRC, payload):
//! - `log.<n>`: the changes after the first `n` ([`pb::Txn`], one per record), appended and fsynced in groups
//!   before any of them is answered;
//! - `snapshot.<n>`: the tree after `n` changes ([`pb::TreeSnapshot`], one record), written to a temporary file,
//!   fsynced and renamed, so it is whole or absent. Each snapshot starts a new log; older files are removed.
//!
//! Recovery ([`recover`]) loads the newest snapshot and replays the logs from it on. A log whose last record is
//! cut short (a crash or power loss in the middle of an append) is cut back to its last whole record, with a
//! warning; anything else that does not decode (a checksum mismatch, a gap between files, a cut record before
//! the end) is damage: recovery stops with an error naming the file and the byte offset, and the server does not
//! start on a tree it cannot trust.
//!
//! Deciding what to write is pure ([`plan_recovery`] over file names, [`decode_log`] over bytes); the IO sits
//! in [`recover`] and [`Store`].

use std::sync::Arc;

use prost::Message;

use crate::proto::coord as pb;
use crate::storage::record::{self, Decoded};
use crate::storage::{AppendFile, Disk};

/// Changes between snapshots, by default: recovery replays at most this many records.
pub const DEFAULT_SNAPSHOT_EVERY: u64 = 20_000;

/// Most bytes one group commit writes: a burst of changes is split into several appends, each fsynced.
pub const MAX_GROUP_BYTES: usize = 4 << 20;

fn log_name(n: u64) -> String {
    format!("log.{n:020}")
}

fn snapshot_name(n: u64) -> String {
    format!("snapshot.{n:020}")
}

/// What a data directory holds, by file name: `(n, name)` of every snapshot and every log, in order of `n`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Listing {
    pub snapshots: Vec<(u64, String)>,
    pub logs: Vec<(u64, String)>,
    /// Leftovers of an interrupted snapshot write, to remove.
    pub temporary: Vec<String>,
}

impl Listing {
    /// Sorts the names of a data directory into snapshots, logs and leftovers; other files are not ours and stay.
    pub fn of(names: &[String]) -> Self {
        let mut out = Listing::default();
        for name in names {
            if name.ends_with(".tmp") {
                out.temporary.push(name.clone());
            } else if let Some(n) = name.strip_prefix("snapshot.").and_then(|n| n.parse().ok()) {
                out.snapshots.push((n, name.clone()));
            } else if let Some(n) = name.strip_prefix("log.").and_then(|n| n.parse().ok()) {
                out.logs.push((n, name.clone()));
            }
        }
        out.snapshots.sort();
        out.logs.sort();
        out
    }
}

/// What recovery reads: the snapshot to start from (if any) and the logs after it, in order.
#[derive(Debug, PartialEq, Eq)]
pub struct RecoveryPlan {
    pub snapshot: Option<(u64, String)>,
    pub logs: Vec<(u64, String)>,
    /// Files a completed snapshot made obsolete (a crash came before their removal).
    pub obsolete: Vec<String>,
}

/// The newest snapshot and the logs that continue it. Logs before it are obsolete: a snapshot is written only
/// after every change it holds is in the log, and a new log starts at it.
pub fn plan_recovery(listing: &Listing) -> RecoveryPlan {
    let snapshot = listing.snapshots.last().cloned();
    let from = snapshot.as_ref().map_or(0, |s| s.0);
    let logs = listing.logs.iter().filter(|(n, _)| *n >= from).cloned().collect();
    let obsolete = listing
        .snapshots
        .iter()
        .filter(|(n, _)| *n < from)
        .chain(listing.logs.iter().filter(|(n, _)| *n < from))
        .map(|(_, name)| name.clone())
        .collect();
    RecoveryPlan { snapshot, logs, obsolete }
}

/// The changes a log file holds, and where its valid part ends.
#[derive(Debug, PartialEq)]
pub struct DecodedLog {
    pub txns: Vec<pb::Txn>,
    /// Bytes of whole records; a torn tail starts here.
    pub valid_len: u64,
    /// Bytes after `valid_len` (a torn last record), 0 for a clean end.
    pub torn: u64,
}

/// Decodes a whole log file. `Err` names the byte offset of the damage.
pub fn decode_log(bytes: &[u8]) -> Result<DecodedLog, String> {
    let mut txns = Vec::new();
    let mut at = 0usize;
    loop {
        match record::decode(&bytes[at..]) {
            Decoded::End => return Ok(DecodedLog { txns, valid_len: at as u64, torn: 0 }),
            Decoded::Torn { available } => {
                return Ok(DecodedLog { txns, valid_len: at as u64, torn: available as u64 });
            }
            Decoded::Corrupt { reason } => return Err(format!("damaged record at byte {at}: {reason}")),
            Decoded::Record { payload, len } => {
                let txn = pb::Txn::decode(payload)
                    .map_err(|e| format!("record at byte {at} is no coordination change: {e}"))?;
                txns.push(txn);
                at += len;
            }
        }
    }
}

/// What recovery found: the state to start from and the changes to replay over it.
pub struct Recovered {
    pub snapshot: Option<pb::TreeSnapshot>,
    pub txns: Vec<pb::Txn>,
    /// Changes recorded in all (the snapshot's and the logs').
    pub total: u64,
    /// Bytes of a torn last record that were cut off.
    pub cut_bytes: u64,
}

/// Reads a data directory: the newest snapshot and every change logged after it. Cuts a torn tail of the last
/// log (with a warning) and removes leftovers; refuses damage anywhere else, naming the file and offset.
pub async fn recover(disk: &dyn Disk) -> Result<Recovered, String> {
    let io = |what: &str, e: std::io::Error| format!("coordination data: {what}: {e}");
    disk.create_dir_all("").await.map_err(|e| io("create the data directory", e))?;
    let listing = Listing::of(&disk.list_dir("").await.map_err(|e| io("list the data directory", e))?);
    let plan = plan_recovery(&listing);
    let (snapshot, mut total) = match &plan.snapshot {
        None => (None, 0),
        Some((n, name)) => {
            let bytes = disk.read(name).await.map_err(|e| io(name, e))?;
            let snap = match record::decode(&bytes) {
                Decoded::Record { payload, .. } => pb::TreeSnapshot::decode(payload)
                    .map_err(|e| format!("coordination data: {name}: not a snapshot: {e}"))?,
                Decoded::End | Decoded::Torn { .. } => {
                    return Err(format!("coordination data: {name} at byte 0: cut short ({} bytes)", bytes.len()));
                }
                Decoded::Corrupt { reason } => return Err(format!("coordination data: {name} at byte 0: {reason}")),
            };
            if snap.txns != *n {
                return Err(format!("coordination data: {name} holds {} changes, its name says {n}", snap.txns));
            }
            (Some(snap), *n)
        }
    };
    let mut txns = Vec::new();
    let mut cut_bytes = 0;
    for (i, (n, name)) in plan.logs.iter().enumerate() {
        if *n != total {
            return Err(format!(
                "coordination data: {name} starts after change {n}, but the files before it end at change {total}: \
                 changes are missing"
            ));
        }
        let bytes = disk.read(name).await.map_err(|e| io(name, e))?;
        let decoded = decode_log(&bytes).map_err(|e| format!("coordination data: {name}: {e}"))?;
        if decoded.torn > 0 {
            if i + 1 != plan.logs.len() {
                return Err(format!(
                    "coordination data: {name}: a record cut short at byte {} in a log that is not the last",
                    decoded.valid_len
                ));
            }
            tracing::warn!(
                file = %name,
                at = decoded.valid_len,
                cut_bytes = decoded.torn,
                "coordination log ends in a record cut short (a crash during an append): cut back"
            );
            disk.truncate(name, decoded.valid_len).await.map_err(|e| io(name, e))?;
            disk.sync_file(name).await.map_err(|e| io(name, e))?;
            cut_bytes = decoded.torn;
        }
        total += decoded.txns.len() as u64;
        txns.extend(decoded.txns);
    }
    for name in plan.obsolete.iter().chain(&listing.temporary) {
        disk.remove_file(name).await.map_err(|e| io(name, e))?;
    }
    Ok(Recovered { snapshot, txns, total, cut_bytes })
}

/// The writing side: appends groups of changes to the current log and writes snapshots.
pub struct Store {
    disk: Arc<dyn Disk>,
    log: Box<dyn AppendFile>,
    /// Changes in all files so far (the current log starts at `log_start`).
    written: u64,
    log_start: u64,
    snapshot_every: u64,
}

impl Store {
    /// Opens the store after [`recover`] found `total` changes: a new log starts there (the recovered files are
    /// left as they are, so a crash now loses nothing).
    pub async fn open(disk: Arc<dyn Disk>, total: u64, snapshot_every: u64) -> std::io::Result<Self> {
        assert!(snapshot_every > 0, "snapshot_every must be positive");
        let name = log_name(total);
        let log = disk.open_append(&name).await?;
        disk.sync_dir("").await?;
        Ok(Self { disk, log, written: total, log_start: total, snapshot_every })
    }

    /// Changes durable so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Appends `count` encoded changes and fsyncs them: when this returns `Ok`, they survive a power loss.
    pub async fn append(&mut self, bytes: &[u8], count: u64) -> std::io::Result<()> {
        self.log.append(bytes).await?;
        self.log.sync().await?;
        self.written += count;
        Ok(())
    }

    /// Where the current log starts (the changes before it are in a snapshot or older logs).
    pub fn log_start(&self) -> u64 {
        self.log_start
    }

    /// Changes between snapshots.
    pub fn snapshot_every(&self) -> u64 {
        self.snapshot_every
    }

    /// Writes `snap` (the tree after exactly [`Store::written`] changes), starts a new log at it and removes the
    /// files it makes obsolete.
    pub async fn write_snapshot(&mut self, snap: &pb::TreeSnapshot) -> std::io::Result<()> {
        assert_eq!(snap.txns, self.written, "a snapshot must hold exactly the changes written");
        let name = snapshot_name(self.written);
        let tmp = format!("{name}.tmp");
        self.disk.write_file(&tmp, &record::encode(&snap.encode_to_vec())).await?;
        self.disk.sync_file(&tmp).await?;
        self.disk.rename(&tmp, &name).await?;
        self.disk.sync_dir("").await?;
        let new_log = log_name(self.written);
        self.log = self.disk.open_append(&new_log).await?;
        self.disk.sync_dir("").await?;
        self.log_start = self.written;
        let listing = Listing::of(&self.disk.list_dir("").await?);
        for name in plan_recovery(&listing).obsolete {
            self.disk.remove_file(&name).await?;
        }
        Ok(())
    }
}

/// One change, framed for the log.
pub fn encode_txn(txn: &pb::Txn) -> Vec<u8> {
    record::encode(&txn.encode_to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn recovery_starts_at_the_newest_snapshot_and_drops_what_it_made_obsolete() {
        let l = Listing::of(&names(&[
            &log_name(0),
            &snapshot_name(50),
            &log_name(50),
            &snapshot_name(90),
            &log_name(90),
            "snapshot.00000000000000000120.tmp",
            "README",
        ]));
        assert_eq!(l.temporary, names(&["snapshot.00000000000000000120.tmp"]));
        let plan = plan_recovery(&l);
        assert_eq!(plan.snapshot, Some((90, snapshot_name(90))));
        assert_eq!(plan.logs, vec![(90, log_name(90))]);
        assert_eq!(plan.obsolete, vec![snapshot_name(50), log_name(0), log_name(50)]);
        let fresh = plan_recovery(&Listing::of(&[]));
        assert_eq!((fresh.snapshot, fresh.logs.len()), (None, 0));
    }

    #[test]
    fn a_log_decodes_to_its_changes_and_tells_a_torn_tail_from_damage() {
        let t = |id| pb::Txn { kind: Some(pb::txn::Kind::EndSession(id)) };
        let mut bytes = encode_txn(&t(1));
        bytes.extend(encode_txn(&t(2)));
        let whole = bytes.len() as u64;
        let d = decode_log(&bytes).unwrap();
        assert_eq!((d.txns, d.valid_len, d.torn), (vec![t(1), t(2)], whole, 0));
        // A third record cut short: the two whole ones, and the torn bytes to cut.
        let third = encode_txn(&t(3));
        bytes.extend(&third[..third.len() - 2]);
        let d = decode_log(&bytes).unwrap();
        assert_eq!((d.txns.len(), d.valid_len, d.torn), (2, whole, third.len() as u64 - 2));
        // A flipped byte in the first record is damage, named by offset.
        let mut bad = encode_txn(&t(1));
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        bad.extend(encode_txn(&t(2)));
        assert_eq!(decode_log(&bad).unwrap_err(), "damaged record at byte 0: checksum mismatch");
    }

    fn txn(id: i64) -> pb::Txn {
        pb::Txn { kind: Some(pb::txn::Kind::EndSession(id)) }
    }

    fn ids(r: &Recovered) -> Vec<i64> {
        r.txns
            .iter()
            .map(|t| match t.kind {
                Some(pb::txn::Kind::EndSession(id)) => id,
                _ => panic!("{t:?}"),
            })
            .collect()
    }

    #[test]
    fn a_store_recovers_its_changes_cuts_a_torn_tail_and_refuses_damage() {
        use futures::executor::block_on;
        let disk = crate::storage::SimDisk::new();
        let shared: Arc<dyn Disk> = Arc::new(disk.clone());
        block_on(async {
            let r = recover(shared.as_ref()).await.unwrap();
            assert_eq!((r.total, r.txns.len(), r.snapshot.is_none()), (0, 0, true), "a fresh directory");
            let mut st = Store::open(shared.clone(), 0, 1000).await.unwrap();
            let group: Vec<u8> = (1..=3).flat_map(|i| encode_txn(&txn(i))).collect();
            st.append(&group, 3).await.unwrap();
            st.append(&encode_txn(&txn(4)), 1).await.unwrap();
            let r = recover(shared.as_ref()).await.unwrap();
            assert_eq!((r.total, ids(&r)), (4, vec![1, 2, 3, 4]));

            // A snapshot after the fourth change starts a new log; recovery starts from it.
            let snap = pb::TreeSnapshot { txns: 4, zxid: 9, ..Default::default() };
            st.write_snapshot(&snap).await.unwrap();
            st.append(&encode_txn(&txn(5)), 1).await.unwrap();
            let r = recover(shared.as_ref()).await.unwrap();
            assert_eq!((r.total, ids(&r), r.snapshot.map(|s| s.zxid)), (5, vec![5], Some(9)));
            assert_eq!(Listing::of(&shared.list_dir("").await.unwrap()).logs, vec![(4, log_name(4))], "old log gone");

            // A torn last record is cut with a warning, and the directory recovers the same after that.
            st.append(&encode_txn(&txn(6)), 1).await.unwrap();
            disk.tear_tail(&log_name(4), 3).unwrap();
            let r = recover(shared.as_ref()).await.unwrap();
            assert_eq!((r.total, ids(&r), r.cut_bytes > 0), (5, vec![5], true));
            let again = recover(shared.as_ref()).await.unwrap();
            assert_eq!((again.total, again.cut_bytes), (5, 0));

            // A flipped byte in a whole record is damage: named by file and offset, never skipped.
            disk.corrupt_tail(&log_name(4), 1).unwrap();
            let e = recover(shared.as_ref()).await.err().expect("damage refused");
            assert!(e.contains(&log_name(4)) && e.contains("at byte 0") && e.contains("checksum"), "{e}");
        });
    }
}
