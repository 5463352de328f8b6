//! The MVCC store: applies commands, serves reads at any retained revision.
//!
//! Concurrency: one writer at a time (`apply` holds the state's write lock for the whole batch,
//! including the RocksDB write), any number of readers. A reader plans its read under the read
//! lock — revisions from the in-memory index — and takes a RocksDB snapshot there, then fetches the
//! values outside the lock, so a long range never blocks the writer and never sees a half-applied
//! batch.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use rocksdb::{Direction, IteratorMode, ReadOptions, WriteBatch};

use crate::backend::{self, Backend, CF_KV, CF_LEASE, CF_META, COLUMN_FAMILIES};
use crate::error::{Result, StoreError};
use crate::index::TreeIndex;
use crate::kv::{Event, EventKind, KeyRange, KeyValue};
use crate::request::*;
use crate::revision::Revision;

/// etcd's largest lease TTL.
pub const MAX_LEASE_TTL_SECS: i64 = 9_000_000_000;

#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// fsync every write batch before `apply` returns. Off only where something else (a Raft log)
    /// already made the commands durable, or in tests that do not restart.
    pub sync_writes: bool,
    /// Leases granted a shorter TTL get this one (etcd derives it from its election timeout).
    pub min_lease_ttl_secs: i64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            sync_writes: true,
            min_lease_ttl_secs: 2,
        }
    }
}

/// What one `apply` did.
#[derive(Debug)]
pub struct Applied {
    /// One result per command, in order. An error means the command changed nothing.
    pub outputs: Vec<Result<CommandOutput>>,
    /// Every change, in revision order.
    pub events: Vec<Event>,
    /// Store revision after the batch.
    pub revision: i64,
    /// Compacted revision after the batch.
    pub compact_revision: i64,
}

#[derive(Clone, Debug, Default)]
struct LeaseState {
    ttl_secs: i64,
    remaining_ttl_secs: i64,
    keys: BTreeSet<Vec<u8>>,
}

#[derive(Default)]
struct State {
    index: TreeIndex,
    current_rev: i64,
    compact_rev: i64,
    applied_index: u64,
    leases: BTreeMap<i64, LeaseState>,
    key_leases: HashMap<Vec<u8>, i64>,
    alarms: BTreeSet<Alarm>,
}

pub struct Store {
    /// Swapped whole (under the state's write lock) when a snapshot replaces the store's contents.
    backend: RwLock<Arc<Backend>>,
    state: RwLock<State>,
    /// Revision whose writes are all on disk and visible; read without the lock.
    committed_rev: AtomicI64,
    compact_rev: AtomicI64,
    config: StoreConfig,
}

/// Summary returned by [`Store::hash_kv`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashKv {
    pub hash: u32,
    pub compact_revision: i64,
    pub hash_revision: i64,
}

impl Store {
    /// Opens (or creates) the store in `path` and rebuilds the in-memory index from disk.
    pub fn open(path: &Path, config: StoreConfig) -> Result<Store> {
        let backend = Backend::open(path, config.sync_writes)?;
        let state = restore(&backend)?;
        let store = Store {
            committed_rev: AtomicI64::new(state.current_rev),
            compact_rev: AtomicI64::new(state.compact_rev),
            backend: RwLock::new(Arc::new(backend)),
            state: RwLock::new(state),
            config,
        };
        Ok(store)
    }

    fn backend(&self) -> Arc<Backend> {
        self.backend
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn read_state(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_state(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn current_revision(&self) -> i64 {
        self.committed_rev.load(Ordering::Acquire)
    }

    pub fn compact_revision(&self) -> i64 {
        self.compact_rev.load(Ordering::Acquire)
    }

    pub fn applied_index(&self) -> u64 {
        self.read_state().applied_index
    }

    /// Applies `commands` as one durable batch; `applied_index` is recorded with it (the index of
    /// the last command in the replicated log, or a local counter on a single node).
    ///
    /// Panics if RocksDB refuses the write: the in-memory state is already ahead of the disk, and
    /// the only safe continuation is a restart that rebuilds from what is durable.
    pub fn apply(&self, applied_index: u64, commands: &[Command]) -> Applied {
        self.apply_with_marker(applied_index, commands, None)
    }

    /// [`Store::apply`], also recording `marker` (opaque to the store: a replication layer's
    /// applied log position and membership) in the same atomic write, so it can never disagree with
    /// the data. [`Store::applied_marker`] reads it back.
    pub fn apply_with_marker(
        &self,
        applied_index: u64,
        commands: &[Command],
        marker: Option<&[u8]>,
    ) -> Applied {
        let mut state = self.write_state();
        let backend = self.backend();
        let backend = &*backend;
        let mut batch = WriteBatch::default();
        let mut pending = HashMap::new();
        let mut events = Vec::new();
        let mut outputs = Vec::with_capacity(commands.len());
        for command in commands {
            let begin_rev = state.current_rev;
            let mut txn = WriteTxn {
                store: self,
                backend,
                state: &mut state,
                batch: &mut batch,
                pending: &mut pending,
                begin_rev,
                changes: Vec::new(),
            };
            let output = txn.execute(command);
            let changes = std::mem::take(&mut txn.changes);
            assert!(
                output.is_ok() || changes.is_empty(),
                "store: a failed command left changes behind"
            );
            if !changes.is_empty() {
                state.current_rev += 1;
            }
            events.extend(changes);
            outputs.push(output);
        }
        state.applied_index = applied_index;
        let meta = backend.cf(CF_META);
        if let Some(marker) = marker {
            batch.put_cf(meta, backend::META_APPLIED_MARKER, marker);
        }
        batch.put_cf(
            meta,
            backend::META_CURRENT_REVISION,
            state.current_rev.to_be_bytes(),
        );
        batch.put_cf(
            meta,
            backend::META_APPLIED_INDEX,
            applied_index.to_be_bytes(),
        );
        if let Err(e) = backend.write(batch) {
            panic!("store: writing a batch failed; restart to recover from disk: {e}");
        }
        self.committed_rev
            .store(state.current_rev, Ordering::Release);
        self.compact_rev.store(state.compact_rev, Ordering::Release);
        Applied {
            outputs,
            events,
            revision: state.current_rev,
            compact_revision: state.compact_rev,
        }
    }

    /// Evaluates a txn that neither puts nor deletes ([`TxnRequest::is_read_only`]) at the
    /// current revision, as etcd serves such txns: outside the log, changing nothing.
    pub fn read_only_txn(&self, t: &TxnRequest) -> Result<TxnResponse> {
        if !t.is_read_only() {
            return Err(StoreError::Backend(
                "read_only_txn was given a txn that writes".into(),
            ));
        }
        // Exclusive, as an apply: the txn machinery takes the state mutably (it writes nothing
        // here, and its batch is dropped).
        let mut state = self.write_state();
        let backend = self.backend();
        let mut batch = WriteBatch::default();
        let mut pending = HashMap::new();
        let begin_rev = state.current_rev;
        let mut txn = WriteTxn {
            store: self,
            backend: &backend,
            state: &mut state,
            batch: &mut batch,
            pending: &mut pending,
            begin_rev,
            changes: Vec::new(),
        };
        let path = txn.txn_path(t);
        txn.check_txn_path(t, &path)?;
        let mut resp = txn.txn(t, &path)?;
        debug_assert!(txn.changes.is_empty(), "a read-only txn changed something");
        resp.revision = txn.read_rev();
        Ok(resp)
    }

    /// A read at the last committed revision (or the one the request names).
    pub fn range(&self, req: &RangeRequest) -> Result<RangeResponse> {
        // The backend is taken under the state lock so a snapshot install cannot pair one store's
        // index with another's data.
        let state = self.read_state();
        let backend = self.backend();
        let plan = plan_range(&state.index, state.current_rev, state.compact_rev, req)?;
        let snapshot = backend.db.snapshot();
        drop(state);
        let kv_cf = backend.cf(CF_KV);
        finish_range(plan, req, |rev| {
            let bytes = snapshot.get_cf(kv_cf, rev.encode())?.ok_or_else(|| {
                StoreError::Corrupt(format!("index names missing revision {rev:?}"))
            })?;
            Ok(backend::decode_record(rev, &bytes)?.0)
        })
    }

    /// Every change with main revision in `[from, to]`, stopping after `max_revisions` distinct
    /// main revisions so one call's memory is bounded. Returns the events and the last main revision
    /// covered (`to`, or less when stopped early). History below the compacted revision is gone.
    pub fn events_between(
        &self,
        from: i64,
        to: i64,
        max_revisions: usize,
    ) -> Result<(Vec<Event>, i64)> {
        self.events_between_bounded(from, to, max_revisions, usize::MAX)
    }

    /// As [`Store::events_between`], also stopping at a revision boundary once the events read
    /// hold `max_bytes` of keys and values (at least one revision is always returned whole, so a
    /// reader always advances).
    pub fn events_between_bounded(
        &self,
        from: i64,
        to: i64,
        max_revisions: usize,
        max_bytes: usize,
    ) -> Result<(Vec<Event>, i64)> {
        if from < self.compact_revision() {
            return Err(StoreError::Compacted);
        }
        let backend = self.backend();
        let snapshot = backend.db.snapshot();
        if from < self.compact_revision() {
            return Err(StoreError::Compacted);
        }
        let mut opts = ReadOptions::default();
        opts.set_iterate_upper_bound(Revision::new(to + 1, 0).encode().to_vec());
        let start = Revision::new(from, 0).encode();
        let iter = snapshot.iterator_cf_opt(
            backend.cf(CF_KV),
            opts,
            IteratorMode::From(&start, Direction::Forward),
        );
        let mut events = Vec::new();
        let mut revisions = 0usize;
        let mut bytes = 0usize;
        let mut last_main = from - 1;
        for item in iter {
            let (k, v) = item?;
            let rev =
                Revision::decode(&k).ok_or_else(|| StoreError::Corrupt("revision key".into()))?;
            if rev.main != last_main {
                if revisions == max_revisions || (revisions > 0 && bytes >= max_bytes) {
                    return Ok((events, last_main));
                }
                revisions += 1;
                last_main = rev.main;
            }
            bytes = bytes.saturating_add(v.len());
            let (kv, tombstone) = backend::decode_record(rev, &v)?;
            let kind = if tombstone {
                EventKind::Delete
            } else {
                EventKind::Put
            };
            events.push(Event {
                kind,
                kv,
                prev_kv: None,
            });
        }
        Ok((events, to))
    }

    pub fn lease(&self, id: i64) -> Option<LeaseInfo> {
        let state = self.read_state();
        state.leases.get(&id).map(|l| lease_info(id, l))
    }

    pub fn leases(&self) -> Vec<LeaseInfo> {
        let state = self.read_state();
        state
            .leases
            .iter()
            .map(|(id, l)| lease_info(*id, l))
            .collect()
    }

    pub fn alarms(&self) -> Vec<Alarm> {
        self.read_state().alarms.iter().copied().collect()
    }

    /// CRC-32C over every stored change at or below `revision` (0: the current one). Replicas that
    /// applied the same commands have the same hash.
    pub fn hash_kv(&self, revision: i64) -> Result<HashKv> {
        let state = self.read_state();
        let backend = self.backend();
        let (rev, compact_rev, snapshot) = {
            if revision > 0 && revision <= state.compact_rev {
                return Err(StoreError::Compacted);
            }
            if revision > state.current_rev {
                return Err(StoreError::FutureRevision);
            }
            let rev = if revision <= 0 {
                state.current_rev
            } else {
                revision
            };
            (rev, state.compact_rev, backend.db.snapshot())
        };
        drop(state);
        let mut opts = ReadOptions::default();
        opts.set_iterate_upper_bound(Revision::new(rev + 1, 0).encode().to_vec());
        let mut hash = crc32c::crc32c(CF_KV.as_bytes());
        for item in snapshot.iterator_cf_opt(backend.cf(CF_KV), opts, IteratorMode::Start) {
            let (k, v) = item?;
            hash = crc32c::crc32c_append(hash, &k);
            hash = crc32c::crc32c_append(hash, &v);
        }
        Ok(HashKv {
            hash,
            compact_revision: compact_rev,
            hash_revision: rev,
        })
    }

    /// Bytes RocksDB uses on disk and in memtables.
    pub fn size_bytes(&self) -> u64 {
        self.sum_property("rocksdb.total-sst-files-size")
            + self.sum_property("rocksdb.cur-size-all-mem-tables")
    }

    /// Estimate of the bytes holding live data.
    pub fn size_in_use_bytes(&self) -> u64 {
        self.sum_property("rocksdb.estimate-live-data-size")
            + self.sum_property("rocksdb.cur-size-all-mem-tables")
    }

    fn sum_property(&self, name: &str) -> u64 {
        let backend = self.backend();
        COLUMN_FAMILIES
            .iter()
            .filter_map(|cf| {
                backend
                    .db
                    .property_int_value_cf(backend.cf(cf), name)
                    .ok()
                    .flatten()
            })
            .sum()
    }

    /// Rewrites all data files, dropping space held by deleted and compacted entries.
    pub fn defragment(&self) -> Result<()> {
        let backend = self.backend();
        for cf in COLUMN_FAMILIES {
            backend
                .db
                .compact_range_cf(backend.cf(cf), None::<&[u8]>, None::<&[u8]>);
        }
        backend.db.flush()?;
        Ok(())
    }

    pub fn key_count(&self) -> usize {
        self.read_state().index.key_count()
    }

    /// Writes a consistent copy of the whole store to `sink`, in chunks of about `chunk_bytes`.
    /// Stops early (returning false) when `sink` returns false.
    ///
    /// Format: the magic line, then per entry `[column family: u8][key len: u32][key]
    /// [value len: u32][value]` (big-endian), then a `0xff` end byte.
    pub fn write_snapshot(
        &self,
        chunk_bytes: usize,
        sink: impl FnMut(Vec<u8>) -> bool,
    ) -> Result<bool> {
        Ok(self.write_snapshot_marked(chunk_bytes, sink)?.0)
    }

    /// [`Store::write_snapshot`], also returning the applied marker as of the snapshot (read from
    /// the same consistent view, so it describes exactly the data written).
    pub fn write_snapshot_marked(
        &self,
        chunk_bytes: usize,
        mut sink: impl FnMut(Vec<u8>) -> bool,
    ) -> Result<(bool, Option<Vec<u8>>)> {
        let state = self.read_state();
        let backend = self.backend();
        let snapshot = backend.db.snapshot();
        drop(state);
        // The store writes without fsync. Everything the view holds must be durable before the
        // snapshot may stand for it (a replication layer purges its log behind the snapshot's
        // marker): sync after taking the view, so the sync covers every batch in it. A sync
        // before taking the view would leave the batches applied in between on no disk.
        backend.db.flush_wal(true)?;
        let marker = snapshot.get_cf(backend.cf(CF_META), backend::META_APPLIED_MARKER)?;
        let mut chunk = SNAPSHOT_MAGIC.to_vec();
        for (cf_id, cf) in COLUMN_FAMILIES.iter().enumerate() {
            for item in snapshot.iterator_cf(backend.cf(cf), IteratorMode::Start) {
                let (k, v) = item?;
                chunk.push(cf_id as u8);
                chunk.extend_from_slice(&(k.len() as u32).to_be_bytes());
                chunk.extend_from_slice(&k);
                chunk.extend_from_slice(&(v.len() as u32).to_be_bytes());
                chunk.extend_from_slice(&v);
                if chunk.len() >= chunk_bytes && !sink(std::mem::take(&mut chunk)) {
                    return Ok((false, marker));
                }
            }
        }
        chunk.push(0xff);
        Ok((sink(chunk), marker))
    }

    /// The marker recorded by the last [`Store::apply_with_marker`] that carried one (or by the
    /// snapshot this store was installed from).
    pub fn applied_marker(&self) -> Result<Option<Vec<u8>>> {
        let _state = self.read_state();
        let backend = self.backend();
        Ok(backend
            .db
            .get_cf(backend.cf(CF_META), backend::META_APPLIED_MARKER)?)
    }

    /// Makes every applied batch durable (for stores opened without `sync_writes`, before a
    /// replication layer relies on them, e.g. before discarding log entries).
    pub fn sync(&self) -> Result<()> {
        self.backend().db.flush_wal(true)?;
        Ok(())
    }

    /// Replaces this store's whole contents, in place, with a snapshot written by
    /// [`Store::write_snapshot`]: the snapshot is installed into the new directory `new_path`
    /// (which must not exist) as a stream, then swapped in atomically for readers. The old
    /// directory is left for the caller to remove. Watchers and caches over the store must be told
    /// (the revision may jump forward or back).
    pub fn replace_from_snapshot(&self, new_path: &Path, reader: impl std::io::Read) -> Result<()> {
        if new_path.exists() {
            return Err(StoreError::Backend(format!(
                "{} already exists; a snapshot installs into a new directory",
                new_path.display()
            )));
        }
        let opened = Self::fill_from_snapshot(new_path, reader).and_then(|()| {
            let backend = Backend::open(new_path, self.config.sync_writes)?;
            let new_state = restore(&backend)?;
            Ok((backend, new_state))
        });
        let (backend, new_state) = match opened {
            Ok(done) => done,
            Err(e) => {
                // No half-installed copy of the database stays behind.
                let _ = std::fs::remove_dir_all(new_path);
                return Err(e);
            }
        };
        let mut state = self.write_state();
        *self.backend.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(backend);
        *state = new_state;
        self.committed_rev
            .store(state.current_rev, Ordering::Release);
        self.compact_rev.store(state.compact_rev, Ordering::Release);
        Ok(())
    }
}

impl Store {
    /// Creates a store in `path` (which must not exist yet) from a snapshot written by
    /// [`Store::write_snapshot`], and opens it. The snapshot is read as a stream, a bounded batch
    /// at a time, and synced before the store opens; trailing bytes after the end marker (padding,
    /// a checksum) are left unread. A truncated or malformed snapshot is refused.
    pub fn install_snapshot(
        path: &Path,
        config: StoreConfig,
        mut reader: impl std::io::Read,
    ) -> Result<Store> {
        if path.exists() {
            return Err(StoreError::Backend(format!(
                "{} already exists; a snapshot installs into a new directory",
                path.display()
            )));
        }
        let result = Self::fill_from_snapshot(path, &mut reader);
        if result.is_err() {
            // Leave nothing half-installed behind: a retry starts from scratch.
            let _ = std::fs::remove_dir_all(path);
        }
        result?;
        Store::open(path, config)
    }

    fn fill_from_snapshot(path: &Path, mut reader: impl std::io::Read) -> Result<()> {
        const BATCH_BYTES: usize = 4 << 20;
        let corrupt = |what: &str| StoreError::Corrupt(format!("snapshot: {what}"));
        let mut read_exact = |buf: &mut [u8]| {
            reader
                .read_exact(buf)
                .map_err(|e| StoreError::Corrupt(format!("snapshot: truncated ({e})")))
        };
        let mut magic = vec![0u8; SNAPSHOT_MAGIC.len()];
        read_exact(&mut magic)?;
        if magic != SNAPSHOT_MAGIC {
            return Err(corrupt("not a mainstay snapshot"));
        }
        {
            let backend = Backend::open(path, true)?;
            let mut batch = WriteBatch::default();
            loop {
                let mut cf_id = [0u8; 1];
                read_exact(&mut cf_id)?;
                if cf_id[0] == 0xff {
                    break;
                }
                let cf = *COLUMN_FAMILIES
                    .get(cf_id[0] as usize)
                    .ok_or_else(|| corrupt("unknown column family"))?;
                let mut field = || -> Result<Vec<u8>> {
                    let mut len = [0u8; 4];
                    read_exact(&mut len)?;
                    let len = u32::from_be_bytes(len) as usize;
                    if len > 1 << 30 {
                        return Err(corrupt("record too large"));
                    }
                    let mut buf = vec![0u8; len];
                    read_exact(&mut buf)?;
                    Ok(buf)
                };
                let key = field()?;
                let value = field()?;
                batch.put_cf(backend.cf(cf), key, value);
                if batch.size_in_bytes() >= BATCH_BYTES {
                    backend.write(std::mem::take(&mut batch))?;
                }
            }
            backend.write(batch)?;
            backend.db.flush()?;
        }
        Ok(())
    }
}

/// First bytes of a snapshot written by [`Store::write_snapshot`].
pub const SNAPSHOT_MAGIC: &[u8] = b"MAINSTAY-SNAPSHOT 1\n";

fn lease_info(id: i64, l: &LeaseState) -> LeaseInfo {
    LeaseInfo {
        id,
        ttl_secs: l.ttl_secs,
        remaining_ttl_secs: l.remaining_ttl_secs,
        keys: l.keys.iter().cloned().collect(),
    }
}

/// Rebuilds the in-memory state from disk.
fn restore(backend: &Backend) -> Result<State> {
    let mut state = State {
        current_rev: backend
            .get_meta_i64(backend::META_CURRENT_REVISION)?
            .unwrap_or(1),
        compact_rev: backend
            .get_meta_i64(backend::META_COMPACT_REVISION)?
            .unwrap_or(0),
        applied_index: backend
            .get_meta_i64(backend::META_APPLIED_INDEX)?
            .unwrap_or(0) as u64,
        ..State::default()
    };
    for item in backend
        .db
        .iterator_cf(backend.cf(CF_KV), IteratorMode::Start)
    {
        let (k, v) = item?;
        let rev = Revision::decode(&k).ok_or_else(|| StoreError::Corrupt("revision key".into()))?;
        let (kv, tombstone) = backend::decode_record(rev, &v)?;
        if tombstone {
            state.index.restore_tombstone(&kv.key, rev);
            state.key_leases.remove(&kv.key);
        } else {
            state
                .index
                .restore_put(&kv.key, rev, kv.create_revision, kv.version);
            if kv.lease != 0 {
                state.key_leases.insert(kv.key.clone(), kv.lease);
            } else {
                state.key_leases.remove(&kv.key);
            }
        }
        state.current_rev = state.current_rev.max(rev.main);
    }
    state.current_rev = state.current_rev.max(state.compact_rev);
    for item in backend
        .db
        .iterator_cf(backend.cf(CF_LEASE), IteratorMode::Start)
    {
        let (k, v) = item?;
        let id = backend::decode_i64(&k)?;
        let (ttl_secs, remaining_ttl_secs) = backend::decode_lease(&v)?;
        state.leases.insert(
            id,
            LeaseState {
                ttl_secs,
                remaining_ttl_secs,
                keys: BTreeSet::new(),
            },
        );
    }
    for (key, id) in &state.key_leases {
        if let Some(lease) = state.leases.get_mut(id) {
            lease.keys.insert(key.clone());
        }
    }
    let alarms = backend
        .db
        .prefix_iterator_cf(backend.cf(CF_META), backend::META_ALARM_PREFIX);
    for item in alarms {
        let (k, _) = item?;
        if !k.starts_with(backend::META_ALARM_PREFIX) {
            break;
        }
        if let Some(alarm) = decode_alarm(&k[backend::META_ALARM_PREFIX.len()..]) {
            state.alarms.insert(alarm);
        }
    }
    Ok(state)
}

fn alarm_key(alarm: &Alarm) -> Vec<u8> {
    let mut k = backend::META_ALARM_PREFIX.to_vec();
    k.extend_from_slice(&alarm.member_id.to_be_bytes());
    k.push(match alarm.kind {
        AlarmKind::NoSpace => 1,
        AlarmKind::Corrupt => 2,
    });
    k
}

fn decode_alarm(bytes: &[u8]) -> Option<Alarm> {
    let member_id = u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?);
    let kind = match bytes.get(8)? {
        1 => AlarmKind::NoSpace,
        2 => AlarmKind::Corrupt,
        _ => return None,
    };
    Some(Alarm { member_id, kind })
}

/// Revisions a range read needs, decided under the lock.
struct RangePlan {
    /// Header revision: the store's revision when the read was served.
    revision: i64,
    revs: Vec<Revision>,
    count: i64,
}

fn plan_range(
    index: &TreeIndex,
    current_rev: i64,
    compact_rev: i64,
    req: &RangeRequest,
) -> Result<RangePlan> {
    if req.revision > current_rev {
        return Err(StoreError::FutureRevision);
    }
    let at = if req.revision <= 0 {
        current_rev
    } else {
        req.revision
    };
    if at < compact_rev {
        return Err(StoreError::Compacted);
    }
    // Sorting and revision filters need every key; otherwise one more than the limit tells `more`.
    let needs_all = req.sort_order != SortOrder::None
        || req.min_mod_revision != 0
        || req.max_mod_revision != 0
        || req.min_create_revision != 0
        || req.max_create_revision != 0;
    let fetch_max = if req.count_only {
        0
    } else if req.limit > 0 && !needs_all {
        (req.limit as usize).saturating_add(1)
    } else {
        usize::MAX
    };
    let range = KeyRange::new(&req.key, &req.range_end);
    let mut revs = Vec::new();
    let mut count = 0i64;
    index.visit(&range, at, |_, key_at| {
        count += 1;
        if revs.len() < fetch_max {
            revs.push(key_at.modified);
        }
        true
    });
    Ok(RangePlan {
        revision: current_rev,
        revs,
        count,
    })
}

fn finish_range(
    plan: RangePlan,
    req: &RangeRequest,
    fetch: impl Fn(Revision) -> Result<KeyValue>,
) -> Result<RangeResponse> {
    let mut kvs = plan
        .revs
        .into_iter()
        .map(fetch)
        .collect::<Result<Vec<_>>>()?;
    kvs.retain(|kv| {
        (req.max_mod_revision == 0 || kv.mod_revision <= req.max_mod_revision)
            && (req.min_mod_revision == 0 || kv.mod_revision >= req.min_mod_revision)
            && (req.max_create_revision == 0 || kv.create_revision <= req.max_create_revision)
            && (req.min_create_revision == 0 || kv.create_revision >= req.min_create_revision)
    });
    // As etcd: a non-key target with no order means ascending. Ties keep key order in both
    // directions (a stable sort, with the comparison reversed rather than the result).
    let order = match (req.sort_order, req.sort_target) {
        (SortOrder::None, SortTarget::Key) => SortOrder::None,
        (SortOrder::None, _) => SortOrder::Ascend,
        (order, _) => order,
    };
    if order != SortOrder::None {
        let cmp = |a: &KeyValue, b: &KeyValue| match req.sort_target {
            SortTarget::Key => a.key.cmp(&b.key),
            SortTarget::Version => a.version.cmp(&b.version),
            SortTarget::Create => a.create_revision.cmp(&b.create_revision),
            SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
            SortTarget::Value => a.value.cmp(&b.value),
        };
        if order == SortOrder::Ascend {
            kvs.sort_by(cmp);
        } else {
            kvs.sort_by(|a, b| cmp(b, a));
        }
    }
    let mut more = false;
    if req.limit > 0 && kvs.len() > req.limit as usize {
        kvs.truncate(req.limit as usize);
        more = true;
    }
    if req.keys_only {
        for kv in &mut kvs {
            kv.value.clear();
        }
    }
    Ok(RangeResponse {
        revision: plan.revision,
        kvs,
        more,
        count: plan.count,
    })
}

/// Which branch each txn takes, decided before any write, as etcd does: a nested txn's compares
/// see the store as it was before the outer txn began.
struct TxnPath {
    succeeded: bool,
    nested: Vec<TxnPath>,
}

/// One command's write transaction: all its changes share main revision `begin_rev + 1`.
struct WriteTxn<'a> {
    store: &'a Store,
    backend: &'a Backend,
    state: &'a mut State,
    batch: &'a mut WriteBatch,
    /// Records written by this batch but not yet in RocksDB, for reads inside the batch.
    pending: &'a mut HashMap<Revision, KeyValue>,
    begin_rev: i64,
    changes: Vec<Event>,
}

impl WriteTxn<'_> {
    fn execute(&mut self, command: &Command) -> Result<CommandOutput> {
        match command {
            Command::Put(r) => {
                self.check_put(r)?;
                self.put(r).map(CommandOutput::Put)
            }
            Command::DeleteRange(r) => self.delete_range(r).map(CommandOutput::DeleteRange),
            Command::Txn(t) => {
                let path = self.txn_path(t);
                self.check_txn_path(t, &path)?;
                let mut resp = self.txn(t, &path)?;
                resp.revision = self.read_rev();
                Ok(CommandOutput::Txn(resp))
            }
            Command::Compact { revision } => self.compact(*revision),
            Command::LeaseGrant { id, ttl_secs } => self.lease_grant(*id, *ttl_secs),
            Command::LeaseRevoke { id } => self.lease_revoke(*id),
            Command::LeaseCheckpoint { checkpoints } => {
                for (id, remaining) in checkpoints {
                    if let Some(lease) = self.state.leases.get_mut(id) {
                        lease.remaining_ttl_secs = *remaining;
                        let record =
                            backend::encode_lease(lease.ttl_secs, lease.remaining_ttl_secs);
                        self.batch
                            .put_cf(self.backend.cf(CF_LEASE), id.to_be_bytes(), record);
                    }
                }
                Ok(CommandOutput::LeaseCheckpoint {
                    revision: self.begin_rev,
                })
            }
            Command::AlarmActivate(alarm) => {
                let mut changed = Vec::new();
                if self.state.alarms.insert(*alarm) {
                    self.batch
                        .put_cf(self.backend.cf(CF_META), alarm_key(alarm), []);
                    changed.push(*alarm);
                }
                Ok(CommandOutput::Alarm {
                    changed,
                    revision: self.begin_rev,
                })
            }
            Command::AlarmDeactivate(alarm) => {
                let mut changed = Vec::new();
                if self.state.alarms.remove(alarm) {
                    self.batch
                        .delete_cf(self.backend.cf(CF_META), alarm_key(alarm));
                    changed.push(*alarm);
                }
                Ok(CommandOutput::Alarm {
                    changed,
                    revision: self.begin_rev,
                })
            }
        }
    }

    /// Revision reads inside this transaction see: its own changes included.
    fn read_rev(&self) -> i64 {
        if self.changes.is_empty() {
            self.begin_rev
        } else {
            self.begin_rev + 1
        }
    }

    fn next_rev(&self) -> Revision {
        Revision::new(self.begin_rev + 1, self.changes.len() as i64)
    }

    fn fetch(&self, rev: Revision) -> Result<KeyValue> {
        if let Some(kv) = self.pending.get(&rev) {
            return Ok(kv.clone());
        }
        let bytes = self
            .backend
            .db
            .get_cf(self.backend.cf(CF_KV), rev.encode())?
            .ok_or_else(|| StoreError::Corrupt(format!("index names missing revision {rev:?}")))?;
        Ok(backend::decode_record(rev, &bytes)?.0)
    }

    fn get(&self, key: &[u8]) -> Result<Option<KeyValue>> {
        match self.state.index.get(key, self.read_rev()) {
            Some(at) => self.fetch(at.modified).map(Some),
            None => Ok(None),
        }
    }

    fn range(&self, req: &RangeRequest) -> Result<RangeResponse> {
        let plan = plan_range(
            &self.state.index,
            self.read_rev(),
            self.state.compact_rev,
            req,
        )?;
        finish_range(plan, req, |rev| self.fetch(rev))
    }

    fn check_put(&self, req: &PutRequest) -> Result<()> {
        if (req.ignore_value || req.ignore_lease)
            && self.state.index.get(&req.key, self.read_rev()).is_none()
        {
            return Err(StoreError::KeyNotFound);
        }
        if req.lease != 0 && !self.state.leases.contains_key(&req.lease) {
            return Err(StoreError::LeaseNotFound);
        }
        Ok(())
    }

    fn write_record(&mut self, rev: Revision, kv: &KeyValue, tombstone: bool) {
        let cf = self.backend.cf(CF_KV);
        self.batch
            .put_cf(cf, rev.encode(), backend::encode_record(kv, tombstone));
        self.pending.insert(rev, kv.clone());
    }

    fn set_key_lease(&mut self, key: &[u8], lease: i64) {
        let old = self.state.key_leases.get(key).copied().unwrap_or(0);
        if old == lease {
            return;
        }
        if let Some(l) = self.state.leases.get_mut(&old) {
            l.keys.remove(key);
        }
        if lease == 0 {
            self.state.key_leases.remove(key);
        } else {
            self.state.key_leases.insert(key.to_vec(), lease);
            if let Some(l) = self.state.leases.get_mut(&lease) {
                l.keys.insert(key.to_vec());
            }
        }
    }

    /// A put whose checks (`check_put`) have passed.
    fn put(&mut self, req: &PutRequest) -> Result<PutResponse> {
        let prev = if req.prev_kv || req.ignore_value || req.ignore_lease {
            self.get(&req.key)?
        } else {
            None
        };
        let value = match (&prev, req.ignore_value) {
            (Some(p), true) => p.value.clone(),
            _ => req.value.clone(),
        };
        let lease = match (&prev, req.ignore_lease) {
            (Some(p), true) => p.lease,
            _ => req.lease,
        };
        let rev = self.next_rev();
        let (create_revision, version) = self.state.index.put(&req.key, rev);
        let kv = KeyValue {
            key: req.key.clone(),
            create_revision,
            mod_revision: rev.main,
            version,
            value,
            lease,
        };
        self.write_record(rev, &kv, false);
        self.set_key_lease(&req.key, lease);
        self.changes.push(Event {
            kind: EventKind::Put,
            kv,
            prev_kv: None,
        });
        Ok(PutResponse {
            revision: rev.main,
            prev_kv: if req.prev_kv { prev } else { None },
        })
    }

    fn delete_range(&mut self, req: &DeleteRangeRequest) -> Result<DeleteRangeResponse> {
        let range = KeyRange::new(&req.key, &req.range_end);
        let live = self.state.index.live(&range, self.read_rev());
        let mut prev_kvs = Vec::new();
        for (key, at) in &live {
            if req.prev_kv {
                prev_kvs.push(self.fetch(at.modified)?);
            }
            let rev = self.next_rev();
            let removed = self.state.index.tombstone(key, rev);
            assert!(
                removed,
                "store: deleting a key the index just listed as live"
            );
            let kv = KeyValue {
                key: key.clone(),
                mod_revision: rev.main,
                ..Default::default()
            };
            self.write_record(rev, &kv, true);
            self.set_key_lease(key, 0);
            self.changes.push(Event {
                kind: EventKind::Delete,
                kv,
                prev_kv: None,
            });
        }
        Ok(DeleteRangeResponse {
            revision: self.read_rev(),
            deleted: live.len() as i64,
            prev_kvs,
        })
    }

    fn compare(&self, c: &Compare) -> bool {
        let range = KeyRange::new(&c.key, &c.range_end);
        let req = RangeRequest {
            key: c.key.clone(),
            range_end: c.range_end.clone(),
            ..Default::default()
        };
        let Ok(resp) = self.range(&req) else {
            return false;
        };
        debug_assert!(resp.kvs.iter().all(|kv| range.contains(&kv.key)));
        if resp.kvs.is_empty() {
            // etcd: a value compare on a missing key always fails; other targets see zeroes.
            if matches!(c.target, CompareTarget::Value(_)) {
                return false;
            }
            return compare_kv(c, &KeyValue::default());
        }
        resp.kvs.iter().all(|kv| compare_kv(c, kv))
    }

    fn txn_path(&self, t: &TxnRequest) -> TxnPath {
        let succeeded = t.compare.iter().all(|c| self.compare(c));
        let ops = if succeeded { &t.success } else { &t.failure };
        let nested = ops
            .iter()
            .filter_map(|op| match op {
                RequestOp::Txn(inner) => Some(self.txn_path(inner)),
                _ => None,
            })
            .collect();
        TxnPath { succeeded, nested }
    }

    /// Every error a txn could hit is found here, before its first write, so a failed txn changes
    /// nothing.
    fn check_txn_path(&self, t: &TxnRequest, path: &TxnPath) -> Result<()> {
        let ops = if path.succeeded {
            &t.success
        } else {
            &t.failure
        };
        let mut nested = path.nested.iter();
        for op in ops {
            match op {
                RequestOp::Range(r) => {
                    if r.revision > self.read_rev() {
                        return Err(StoreError::FutureRevision);
                    }
                    // etcd's checkRequestRange: any non-zero revision below the first retained
                    // one (-1 before any compaction) is compacted, negative ones included.
                    if r.revision != 0 && r.revision < self.first_rev() {
                        return Err(StoreError::Compacted);
                    }
                }
                RequestOp::Put(p) => self.check_put(p)?,
                RequestOp::DeleteRange(_) => {}
                RequestOp::Txn(inner) => {
                    self.check_txn_path(inner, nested.next().expect("a path per nested txn"))?;
                }
            }
        }
        Ok(())
    }

    fn txn(&mut self, t: &TxnRequest, path: &TxnPath) -> Result<TxnResponse> {
        let ops = if path.succeeded {
            &t.success
        } else {
            &t.failure
        };
        let mut nested = path.nested.iter();
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            responses.push(match op {
                RequestOp::Range(r) => ResponseOp::Range(self.range(r)?),
                RequestOp::Put(p) => ResponseOp::Put(self.put(p)?),
                RequestOp::DeleteRange(d) => ResponseOp::DeleteRange(self.delete_range(d)?),
                RequestOp::Txn(inner) => {
                    let inner_path = nested.next().expect("a path per nested txn");
                    ResponseOp::Txn(self.txn(inner, inner_path)?)
                }
            });
        }
        // Nested txns report revision 0, as etcd's do; the outermost one is set by the caller.
        Ok(TxnResponse {
            revision: 0,
            succeeded: path.succeeded,
            responses,
        })
    }

    /// etcd's compacted revision as its checks see it: -1 until the first compaction (which
    /// this store records as 0; a compaction at 0 changes nothing, so the two agree).
    fn first_rev(&self) -> i64 {
        if self.state.compact_rev == 0 {
            -1
        } else {
            self.state.compact_rev
        }
    }

    fn compact(&mut self, revision: i64) -> Result<CommandOutput> {
        if revision <= self.first_rev() {
            return Err(StoreError::Compacted);
        }
        if revision > self.state.current_rev {
            return Err(StoreError::FutureRevision);
        }
        let cf = self.backend.cf(CF_KV);
        for rev in self.state.index.compact(revision) {
            self.batch.delete_cf(cf, rev.encode());
            self.pending.remove(&rev);
        }
        self.state.compact_rev = revision;
        let meta = self.backend.cf(CF_META);
        self.batch
            .put_cf(meta, backend::META_COMPACT_REVISION, revision.to_be_bytes());
        Ok(CommandOutput::Compact {
            revision: self.begin_rev,
        })
    }

    fn lease_grant(&mut self, id: i64, ttl_secs: i64) -> Result<CommandOutput> {
        if id == 0 {
            return Err(StoreError::LeaseNotFound);
        }
        if ttl_secs > MAX_LEASE_TTL_SECS {
            return Err(StoreError::LeaseTtlTooLarge);
        }
        if self.state.leases.contains_key(&id) {
            return Err(StoreError::LeaseExists);
        }
        let ttl_secs = ttl_secs.max(self.store.config.min_lease_ttl_secs);
        let lease = LeaseState {
            ttl_secs,
            remaining_ttl_secs: 0,
            keys: BTreeSet::new(),
        };
        self.batch.put_cf(
            self.backend.cf(CF_LEASE),
            id.to_be_bytes(),
            backend::encode_lease(ttl_secs, 0),
        );
        self.state.leases.insert(id, lease);
        Ok(CommandOutput::LeaseGrant {
            id,
            ttl_secs,
            revision: self.begin_rev,
        })
    }

    fn lease_revoke(&mut self, id: i64) -> Result<CommandOutput> {
        let Some(lease) = self.state.leases.get(&id) else {
            return Err(StoreError::LeaseNotFound);
        };
        // Sorted (a BTreeSet), so every replica writes the tombstones in the same order.
        let keys: Vec<Vec<u8>> = lease.keys.iter().cloned().collect();
        for key in keys {
            self.delete_range(&DeleteRangeRequest {
                key,
                range_end: vec![],
                prev_kv: false,
            })?;
        }
        self.state.leases.remove(&id);
        self.batch
            .delete_cf(self.backend.cf(CF_LEASE), id.to_be_bytes());
        Ok(CommandOutput::LeaseRevoke {
            revision: self.read_rev(),
        })
    }
}

fn compare_kv(c: &Compare, kv: &KeyValue) -> bool {
    use std::cmp::Ordering as O;
    let ord = match &c.target {
        CompareTarget::Version(v) => kv.version.cmp(v),
        CompareTarget::CreateRevision(v) => kv.create_revision.cmp(v),
        CompareTarget::ModRevision(v) => kv.mod_revision.cmp(v),
        CompareTarget::Lease(v) => kv.lease.cmp(v),
        CompareTarget::Value(v) => kv.value.as_slice().cmp(v.as_slice()),
    };
    match c.result {
        CompareResult::Equal => ord == O::Equal,
        CompareResult::NotEqual => ord != O::Equal,
        CompareResult::Greater => ord == O::Greater,
        CompareResult::Less => ord == O::Less,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let config = StoreConfig {
            sync_writes: false,
            ..StoreConfig::default()
        };
        let store = Store::open(dir.path(), config).unwrap();
        (dir, store)
    }

    fn txn_range_at(revision: i64) -> Command {
        Command::Txn(TxnRequest {
            success: vec![RequestOp::Range(RangeRequest {
                key: b"k".to_vec(),
                revision,
                ..Default::default()
            })],
            ..Default::default()
        })
    }

    #[test]
    fn a_snapshot_installs_into_an_identical_store_and_bad_ones_are_refused() {
        let (_dir, store) = open();
        let mut index = 0;
        for i in 0..300 {
            index += 1;
            let put = Command::Put(PutRequest {
                key: format!("k{}", i % 50).into_bytes(),
                value: vec![b'v'; i],
                ..Default::default()
            });
            store.apply(index, &[put]);
        }
        store.apply(
            index + 1,
            &[Command::LeaseGrant {
                id: 7,
                ttl_secs: 60,
            }],
        );
        store.apply(index + 2, &[Command::Compact { revision: 100 }]);
        let mut bytes = Vec::new();
        assert!(store
            .write_snapshot(1024, |chunk| {
                bytes.extend_from_slice(&chunk);
                true
            })
            .unwrap());
        let mut padded = bytes.clone();
        padded.extend_from_slice(&[0; 100]);
        let dir = tempfile::tempdir().unwrap();
        let copy =
            Store::install_snapshot(&dir.path().join("s"), StoreConfig::default(), &padded[..])
                .unwrap();
        assert_eq!(copy.current_revision(), store.current_revision());
        assert_eq!(copy.compact_revision(), store.compact_revision());
        assert_eq!(copy.applied_index(), store.applied_index());
        assert_eq!(copy.hash_kv(0).unwrap(), store.hash_kv(0).unwrap());
        assert_eq!(copy.leases(), store.leases());
        // Installing over an existing store, a truncated snapshot, or something else: refused.
        assert!(
            Store::install_snapshot(&dir.path().join("s"), StoreConfig::default(), &bytes[..])
                .is_err()
        );
        let cut = &bytes[..bytes.len() - 10];
        assert!(matches!(
            Store::install_snapshot(&dir.path().join("t"), StoreConfig::default(), cut),
            Err(StoreError::Corrupt(_))
        ));
        assert!(
            !dir.path().join("t").exists(),
            "a failed install leaves nothing behind"
        );
        let again =
            Store::install_snapshot(&dir.path().join("t"), StoreConfig::default(), &bytes[..])
                .unwrap();
        assert_eq!(again.hash_kv(0).unwrap(), store.hash_kv(0).unwrap());
        assert!(matches!(
            Store::install_snapshot(&dir.path().join("u"), StoreConfig::default(), &b"hello"[..]),
            Err(StoreError::Corrupt(_))
        ));
    }

    fn put_cmd(key: &str, value: &str) -> Command {
        Command::Put(PutRequest {
            key: key.as_bytes().to_vec(),
            value: value.as_bytes().to_vec(),
            ..Default::default()
        })
    }

    #[test]
    fn a_running_store_is_replaced_in_place_by_a_snapshot_with_its_marker() {
        let (_dir, source) = open();
        for i in 1..=200u64 {
            source.apply_with_marker(i, &[put_cmd(&format!("a{}", i % 30), "x")], Some(b"m1"));
        }
        let mut bytes = Vec::new();
        let (complete, marker) = source
            .write_snapshot_marked(512, |chunk| {
                bytes.extend_from_slice(&chunk);
                true
            })
            .unwrap();
        assert!(complete);
        assert_eq!(marker.as_deref(), Some(&b"m1"[..]));

        let (dir, target) = open();
        target.apply_with_marker(1, &[put_cmd("only-here", "y")], Some(b"m0"));
        let new_path = dir.path().join("replaced");
        target.replace_from_snapshot(&new_path, &bytes[..]).unwrap();
        assert_eq!(target.hash_kv(0).unwrap(), source.hash_kv(0).unwrap());
        assert_eq!(target.current_revision(), source.current_revision());
        assert_eq!(target.applied_index(), 200);
        assert_eq!(
            target.applied_marker().unwrap().as_deref(),
            Some(&b"m1"[..])
        );
        let gone = target
            .range(&RangeRequest {
                key: b"only-here".to_vec(),
                ..Default::default()
            })
            .unwrap();
        assert!(gone.kvs.is_empty(), "the old contents are gone");
        // Applying continues on the new contents, and they persist across a reopen.
        let out = target.apply(201, &[put_cmd("after", "z")]);
        assert_eq!(out.revision, source.current_revision() + 1);
        drop(target);
        let reopened = Store::open(&new_path, StoreConfig::default()).unwrap();
        assert_eq!(reopened.current_revision(), source.current_revision() + 1);
        // A truncated snapshot is refused and leaves the running store as it was.
        let (dir, target) = open();
        target.apply(1, &[put_cmd("kept", "v")]);
        let before = target.hash_kv(0).unwrap();
        let cut = &bytes[..bytes.len() / 2];
        assert!(target
            .replace_from_snapshot(&dir.path().join("bad"), cut)
            .is_err());
        assert!(!dir.path().join("bad").exists());
        assert_eq!(target.hash_kv(0).unwrap(), before);
    }

    #[test]
    fn a_read_only_txn_is_evaluated_without_changing_anything() {
        let (_dir, store) = open();
        store.apply(1, &[put_cmd("k", "v1")]);
        let read = TxnRequest {
            compare: vec![Compare {
                key: b"k".to_vec(),
                range_end: vec![],
                result: CompareResult::Equal,
                target: CompareTarget::Value(b"v1".to_vec()),
            }],
            success: vec![RequestOp::Range(RangeRequest {
                key: b"k".to_vec(),
                ..Default::default()
            })],
            failure: vec![],
        };
        assert!(read.is_read_only());
        let before = store.hash_kv(0).unwrap();
        let resp = store.read_only_txn(&read).unwrap();
        assert!(resp.succeeded);
        assert_eq!(resp.revision, store.current_revision());
        // The same txn through apply answers the same, and changes nothing either.
        let applied = store.apply(2, &[Command::Txn(read.clone())]);
        assert_eq!(applied.outputs[0], Ok(CommandOutput::Txn(resp)));
        assert_eq!(store.hash_kv(0).unwrap(), before);
        let writes = TxnRequest {
            success: vec![RequestOp::Txn(TxnRequest {
                failure: vec![RequestOp::DeleteRange(DeleteRangeRequest::default())],
                ..Default::default()
            })],
            ..Default::default()
        };
        assert!(!writes.is_read_only());
        assert!(store.read_only_txn(&writes).is_err());
    }

    #[test]
    fn before_any_compaction_the_first_revision_is_minus_one_as_in_etcd() {
        let (_dir, store) = open();
        // etcd accepts a compaction at 0 on a fresh store.
        let out = store.apply(1, &[Command::Compact { revision: 0 }]);
        assert!(out.outputs[0].is_ok(), "{:?}", out.outputs[0]);
        // A txn range at -1 reads at head; below -1 is compacted (etcd's checkRequestRange).
        let out = store.apply(2, &[txn_range_at(-1), txn_range_at(-2)]);
        assert!(out.outputs[0].is_ok(), "{:?}", out.outputs[0]);
        assert_eq!(out.outputs[1], Err(StoreError::Compacted));
        let put = Command::Put(PutRequest {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            ..Default::default()
        });
        store.apply(3, &[put.clone(), put]);
        let out = store.apply(4, &[Command::Compact { revision: 2 }, txn_range_at(1)]);
        assert!(out.outputs[0].is_ok());
        assert_eq!(out.outputs[1], Err(StoreError::Compacted));
        let out = store.apply(5, &[Command::Compact { revision: 2 }]);
        assert_eq!(out.outputs[0], Err(StoreError::Compacted));
    }
}
