//! The Raft log on RocksDB, with group commit.
//!
//! Layout: column family `log` maps the entry index (big-endian u64, so keys sort like indexes) to
//! the bincode-encoded entry; `meta` holds the vote, the committed log id and the last purged log
//! id.
//!
//! Group commit: [`RaftLogStorage::append`] writes the entries to RocksDB at once without syncing
//! (so they can be read back, e.g. for replication, right away) and hands openraft's flush callback
//! to a flusher thread (a follower's append, which the Raft core waits for anyway, is synced
//! inline instead). The flusher takes every callback queued while the previous fsync ran,
//! syncs the write-ahead log once for all of them, and only then reports them durable. Many
//! concurrent proposals therefore share one fsync, and no entry is reported durable before it is.
//! The vote is written with sync on before `save_vote` returns.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::Arc;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{AnyError, ErrorSubject, ErrorVerb, LogState, OptionalSend, RaftLogReader};
use rocksdb::{ColumnFamilyDescriptor, Direction, IteratorMode, Options, WriteBatch, DB};
use tokio::sync::mpsc;

use crate::codec::{decode, encode};
use crate::error::Result;
use crate::{Entry, LogId, NodeId, StorageError, TypeConfig, Vote};

const CF_LOG: &str = "log";
const CF_META: &str = "meta";
const KEY_VOTE: &[u8] = b"vote";
const KEY_COMMITTED: &[u8] = b"committed";
const KEY_LAST_PURGED: &[u8] = b"last_purged";

/// Flush callbacks waiting for the flusher; a full queue makes `append` wait (backpressure).
const FLUSH_QUEUE: usize = 1024;

struct Shared {
    db: DB,
}

impl Shared {
    fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        self.db
            .cf_handle(name)
            .expect("column family opened with the log")
    }

    fn get_meta<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>> {
        match self.db.get_cf(self.cf(CF_META), key)? {
            Some(bytes) => Ok(Some(decode(&bytes)?)),
            None => Ok(None),
        }
    }
}

/// The log store; clones share the database (openraft takes one as a reader).
#[derive(Clone)]
pub struct LogStore {
    shared: Arc<Shared>,
    flusher: mpsc::Sender<LogFlushed<TypeConfig>>,
}

fn storage_err(
    subject: ErrorSubject<NodeId>,
    verb: ErrorVerb,
    e: impl std::fmt::Display,
) -> StorageError {
    openraft::StorageIOError::new(subject, verb, AnyError::error(e.to_string())).into()
}

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

impl LogStore {
    /// Opens (or creates) the log in `path` and starts its flusher thread.
    pub fn open(path: &Path) -> Result<LogStore> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        // Reused write-ahead log files are overwritten in place, so a sync need not also commit a
        // growing file size to the file system's journal (etcd preallocates its WAL segments for
        // the same reason).
        opts.set_recycle_log_file_num(4);
        let cfs = [CF_LOG, CF_META]
            .iter()
            .map(|name| ColumnFamilyDescriptor::new(*name, Options::default()));
        let db = DB::open_cf_descriptors(&opts, path, cfs)?;
        let shared = Arc::new(Shared { db });
        let (tx, rx) = mpsc::channel(FLUSH_QUEUE);
        let flusher_shared = shared.clone();
        std::thread::Builder::new()
            .name("raft-log-flush".into())
            .spawn(move || run_flusher(flusher_shared, rx))
            .map_err(crate::error::io("starting the log flusher thread"))?;
        Ok(LogStore {
            shared,
            flusher: tx,
        })
    }

    fn last_purged(&self) -> Result<Option<LogId>> {
        self.shared.get_meta(KEY_LAST_PURGED)
    }

    fn entries(&self, range: impl RangeBounds<u64>) -> Result<Vec<Entry>> {
        let start = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let mut out = Vec::new();
        let key = index_key(start);
        let iter = self.shared.db.iterator_cf(
            self.shared.cf(CF_LOG),
            IteratorMode::From(&key, Direction::Forward),
        );
        for item in iter {
            let (k, v) = item?;
            let index = u64::from_be_bytes(
                k.as_ref()
                    .try_into()
                    .map_err(|_| crate::RaftError::Storage("log key is not 8 bytes".into()))?,
            );
            if !range.contains(&index) {
                break;
            }
            out.push(decode(&v)?);
        }
        Ok(out)
    }
}

/// The flusher: one WAL fsync per round for every append queued meanwhile.
fn run_flusher(shared: Arc<Shared>, mut rx: mpsc::Receiver<LogFlushed<TypeConfig>>) {
    let mut round = Vec::new();
    loop {
        if rx.blocking_recv().map(|c| round.push(c)).is_none() {
            return;
        }
        while let Ok(c) = rx.try_recv() {
            round.push(c);
        }
        let result = shared
            .db
            .flush_wal(true)
            .map_err(|e| std::io::Error::other(e.into_string()));
        for callback in round.drain(..) {
            callback.log_io_completed(match &result {
                Ok(()) => Ok(()),
                Err(e) => Err(std::io::Error::other(e.to_string())),
            });
        }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        self.entries(range)
            .map_err(|e| storage_err(ErrorSubject::Logs, ErrorVerb::Read, e))
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let read = || -> Result<LogState<TypeConfig>> {
            let last_purged = self.last_purged()?;
            let last = self
                .shared
                .db
                .iterator_cf(self.shared.cf(CF_LOG), IteratorMode::End)
                .next()
                .transpose()?
                .map(|(_, v)| decode::<Entry>(&v))
                .transpose()?
                .map(|e| e.log_id);
            Ok(LogState {
                last_purged_log_id: last_purged,
                last_log_id: last.or(last_purged),
            })
        };
        read().map_err(|e| storage_err(ErrorSubject::Logs, ErrorVerb::Read, e))
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let write = || -> Result<()> {
            let mut opts = rocksdb::WriteOptions::default();
            opts.set_sync(true);
            let mut batch = WriteBatch::default();
            batch.put_cf(self.shared.cf(CF_META), KEY_VOTE, encode(vote)?);
            self.shared.db.write_opt(batch, &opts)?;
            Ok(())
        };
        write().map_err(|e| storage_err(ErrorSubject::Vote, ErrorVerb::Write, e))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.shared
            .get_meta(KEY_VOTE)
            .map_err(|e| storage_err(ErrorSubject::Vote, ErrorVerb::Read, e))
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Not synced: openraft recovers a lost committed index from the quorum; it only lets a
        // restarted member re-apply sooner.
        let write = || -> Result<()> {
            self.shared
                .db
                .put_cf(self.shared.cf(CF_META), KEY_COMMITTED, encode(&committed)?)?;
            Ok(())
        };
        write().map_err(|e| storage_err(ErrorSubject::Store, ErrorVerb::Write, e))
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        let read = || -> Result<Option<LogId>> {
            Ok(self
                .shared
                .get_meta::<Option<LogId>>(KEY_COMMITTED)?
                .flatten())
        };
        read().map_err(|e| storage_err(ErrorSubject::Store, ErrorVerb::Read, e))
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        // A follower's append is waited for by the Raft core, which does nothing else meanwhile:
        // it is synced right here, without the two thread switches to the flusher and back.
        // A leader's append is not waited for (see third_party/openraft): it is written now and
        // synced by the flusher together with whatever else is appended meanwhile.
        let sync_now = callback.caller_waits();
        let write = || -> Result<()> {
            let cf = self.shared.cf(CF_LOG);
            let mut batch = WriteBatch::default();
            for entry in entries {
                batch.put_cf(cf, index_key(entry.log_id.index), encode(&entry)?);
            }
            let mut opts = rocksdb::WriteOptions::default();
            opts.set_sync(sync_now);
            self.shared.db.write_opt(batch, &opts)?;
            Ok(())
        };
        write().map_err(|e| storage_err(ErrorSubject::Logs, ErrorVerb::Write, e))?;
        if sync_now {
            callback.log_io_completed(Ok(()));
            return Ok(());
        }
        if let Err(e) = self.flusher.send(callback).await {
            e.0.log_io_completed(Err(std::io::Error::other("the log flusher stopped")));
        }
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let write = || -> Result<()> {
            let mut opts = rocksdb::WriteOptions::default();
            opts.set_sync(true);
            let mut batch = WriteBatch::default();
            batch.delete_range_cf(
                self.shared.cf(CF_LOG),
                index_key(log_id.index),
                index_key(u64::MAX),
            );
            batch.delete_cf(self.shared.cf(CF_LOG), index_key(u64::MAX));
            self.shared.db.write_opt(batch, &opts)?;
            Ok(())
        };
        write().map_err(|e| storage_err(ErrorSubject::Logs, ErrorVerb::Delete, e))
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let write = || -> Result<()> {
            let mut batch = WriteBatch::default();
            batch.put_cf(self.shared.cf(CF_META), KEY_LAST_PURGED, encode(&log_id)?);
            batch.delete_range_cf(
                self.shared.cf(CF_LOG),
                index_key(0),
                index_key(log_id.index.saturating_add(1)),
            );
            self.shared.db.write(batch)?;
            Ok(())
        };
        write().map_err(|e| storage_err(ErrorSubject::Logs, ErrorVerb::Delete, e))
    }
}
