//! The state machine: committed entries applied to the store, and snapshots as files.
//!
//! Each applied batch is one store write that also records the last applied log id and the last
//! membership (the store's opaque "applied marker"), so the store and what openraft believes was
//! applied can never disagree after a crash. The store is opened without fsync per batch: the Raft
//! log already made the entries durable, and a batch lost in a crash is re-applied from the log.
//! Before a snapshot lets openraft discard log entries, the store's write-ahead log is synced.
//!
//! Data directory layout (beside the log in `raft/`):
//! - `STORE`: the name of the current store directory (`store` when the file is absent);
//! - `store`, `store-<n>`: store directories; installing a snapshot fills a new one, switches
//!   `STORE` atomically, and removes the old one;
//! - `snapshots/`: the current snapshot (`<id>.snap`) and its metadata (`current.meta`), plus a
//!   snapshot being received (`incoming.tmp`).
//!
//! Snapshots are the store's own snapshot stream (`Store::write_snapshot`) written to a file;
//! openraft reads and sends them in chunks (`snapshot_max_chunk_size`), and a receiver writes the
//! chunks to a file and installs the store from it as a stream: no snapshot is ever held in memory.

use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mainstay_store::{Applied, Command, Store, StoreConfig};
use openraft::storage::RaftStateMachine;
use openraft::{
    AnyError, EntryPayload, ErrorSubject, ErrorVerb, OptionalSend, RaftSnapshotBuilder, Snapshot,
};

use crate::codec::{decode, encode};
use crate::error::{io, RaftError, Result};
use crate::{Entry, LogId, Response, SnapshotMeta, StorageError, StoredMembership, TypeConfig};

const STORE_POINTER: &str = "STORE";
const DEFAULT_STORE_DIR: &str = "store";
const SNAPSHOT_DIR: &str = "snapshots";
const CURRENT_META: &str = "current.meta";
const INCOMING: &str = "incoming.tmp";
/// Snapshot files are written in pieces of this size.
const SNAPSHOT_WRITE_CHUNK: usize = 1 << 20;

/// What the server does after the store changed: notify watchers, track leases, wake readers
/// waiting for an index. Called in apply order, after the store write.
pub trait ApplyObserver: Send + Sync + 'static {
    /// A batch of entries up to log index `index` was applied; `commands` are its commands in
    /// order and `applied` what the store did with them.
    fn applied(&self, index: u64, commands: &[Command], applied: &Applied);
    /// A snapshot replaced the store's contents; it now reflects the log up to `index`.
    fn store_replaced(&self, index: u64);
}

/// What openraft's snapshot and apply state is recorded as, inside the store.
#[derive(serde::Serialize, serde::Deserialize)]
struct Marker {
    last_applied: Option<LogId>,
    membership: StoredMembership,
}

fn storage_err(
    subject: ErrorSubject<u64>,
    verb: ErrorVerb,
    e: impl std::fmt::Display,
) -> StorageError {
    openraft::StorageIOError::new(subject, verb, AnyError::error(e.to_string())).into()
}

fn sm_err(verb: ErrorVerb) -> impl FnOnce(RaftError) -> StorageError {
    move |e| storage_err(ErrorSubject::StateMachine, verb, e)
}

fn snap_err(verb: ErrorVerb) -> impl FnOnce(RaftError) -> StorageError {
    move |e| storage_err(ErrorSubject::Snapshot(None), verb, e)
}

/// Opens the current store in `data_dir` (following `STORE`), removing leftovers of an
/// interrupted snapshot install.
pub fn open_store(data_dir: &Path, sync_writes: bool) -> Result<Arc<Store>> {
    std::fs::create_dir_all(data_dir).map_err(io(format!("creating {}", data_dir.display())))?;
    let current = current_store_dir(data_dir)?;
    for entry in std::fs::read_dir(data_dir).map_err(io("listing the data dir"))? {
        let entry = entry.map_err(io("listing the data dir"))?;
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with("store-") && name != current {
            tracing::info!(dir = %name, "removing a store directory left by a snapshot install");
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    let _ = std::fs::remove_file(data_dir.join(SNAPSHOT_DIR).join(INCOMING));
    let config = StoreConfig {
        sync_writes,
        ..StoreConfig::default()
    };
    Ok(Arc::new(Store::open(&data_dir.join(current), config)?))
}

fn current_store_dir(data_dir: &Path) -> Result<String> {
    match std::fs::read_to_string(data_dir.join(STORE_POINTER)) {
        Ok(s) => Ok(s.trim().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(DEFAULT_STORE_DIR.to_string()),
        Err(e) => Err(RaftError::Io {
            context: "reading the STORE pointer".into(),
            source: e,
        }),
    }
}

/// Writes `bytes` to `path` atomically (temporary file, fsync, rename, fsync of the directory):
/// after a crash or power loss the file holds the old bytes or the new, never a part.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp-write");
    let mut f = std::fs::File::create(&tmp).map_err(io(format!("creating {}", tmp.display())))?;
    f.write_all(bytes)
        .map_err(io(format!("writing {}", tmp.display())))?;
    f.sync_all()
        .map_err(io(format!("syncing {}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(io(format!("renaming to {}", path.display())))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(format!("syncing directory {}", dir.display())))
}

pub struct StateMachine {
    store: Arc<Store>,
    data_dir: PathBuf,
    observer: Arc<dyn ApplyObserver>,
    membership: StoredMembership,
}

impl StateMachine {
    /// A state machine over `store`, which [`open_store`] opened from `data_dir`.
    pub fn new(
        store: Arc<Store>,
        data_dir: PathBuf,
        observer: Arc<dyn ApplyObserver>,
    ) -> Result<Self> {
        let membership = read_marker(&store)?
            .map(|m| m.membership)
            .unwrap_or_default();
        Ok(StateMachine {
            store,
            data_dir,
            observer,
            membership,
        })
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    fn snapshot_dir(&self) -> PathBuf {
        self.data_dir.join(SNAPSHOT_DIR)
    }
}

fn read_marker(store: &Store) -> Result<Option<Marker>> {
    match store.applied_marker()? {
        Some(bytes) => Ok(Some(decode(&bytes)?)),
        None => Ok(None),
    }
}

/// Builds snapshots of the store into files; runs beside apply (it reads a consistent view).
pub struct SnapshotBuilder {
    store: Arc<Store>,
    dir: PathBuf,
}

fn build_snapshot_file(store: &Store, dir: &Path) -> Result<(SnapshotMeta, PathBuf)> {
    // Everything up to the snapshot must be on disk before openraft may purge the log behind it:
    // `write_snapshot_marked` syncs the store after taking its view, so the sync covers it.
    std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    let tmp = dir.join("building.tmp");
    let file = std::fs::File::create(&tmp).map_err(io("creating a snapshot file"))?;
    let mut out = BufWriter::new(file);
    let mut write_error = None;
    let (complete, marker) =
        store.write_snapshot_marked(SNAPSHOT_WRITE_CHUNK, |chunk| match out.write_all(&chunk) {
            Ok(()) => true,
            Err(e) => {
                write_error = Some(e);
                false
            }
        })?;
    if let Some(e) = write_error {
        return Err(io("writing a snapshot file")(e));
    }
    if !complete {
        return Err(RaftError::Storage("snapshot writing stopped early".into()));
    }
    let file = out
        .into_inner()
        .map_err(|e| io("flushing a snapshot file")(e.into_error()))?;
    file.sync_all().map_err(io("syncing a snapshot file"))?;
    let marker: Marker = match marker {
        Some(bytes) => decode(&bytes)?,
        None => Marker {
            last_applied: None,
            membership: StoredMembership::default(),
        },
    };
    let snapshot_id = match marker.last_applied {
        Some(l) => format!("{}-{}-{}", l.leader_id.term, l.leader_id.node_id, l.index),
        None => "0-0-0".to_string(),
    };
    let meta = SnapshotMeta {
        last_log_id: marker.last_applied,
        last_membership: marker.membership,
        snapshot_id,
    };
    let path = dir.join(format!("{}.snap", meta.snapshot_id));
    std::fs::rename(&tmp, &path).map_err(io("naming a snapshot file"))?;
    set_current_snapshot(dir, &meta)?;
    Ok((meta, path))
}

/// Records `meta` as the current snapshot and removes older snapshot files.
fn set_current_snapshot(dir: &Path, meta: &SnapshotMeta) -> Result<()> {
    write_atomic(&dir.join(CURRENT_META), &encode(meta)?)?;
    let keep = format!("{}.snap", meta.snapshot_id);
    for entry in std::fs::read_dir(dir)
        .map_err(io("listing snapshots"))?
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().to_string();
        if name.ends_with(".snap") && name != keep {
            // A sender still streaming it keeps its open handle.
            let _ = std::fs::remove_file(entry.path());
        }
    }
    Ok(())
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let store = self.store.clone();
        let dir = self.dir.clone();
        let (meta, path) = tokio::task::spawn_blocking(move || build_snapshot_file(&store, &dir))
            .await
            .map_err(|e| storage_err(ErrorSubject::Snapshot(None), ErrorVerb::Write, e))?
            .map_err(snap_err(ErrorVerb::Write))?;
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| storage_err(ErrorSubject::Snapshot(None), ErrorVerb::Read, e))?;
        tracing::info!(snapshot = %meta.snapshot_id, "built a snapshot");
        Ok(Snapshot {
            meta,
            snapshot: Box::new(file),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let marker = read_marker(&self.store).map_err(sm_err(ErrorVerb::Read))?;
        Ok(match marker {
            Some(m) => (m.last_applied, m.membership),
            None => (None, StoredMembership::default()),
        })
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut commands = Vec::new();
        // Commands per entry.
        let mut counts = Vec::new();
        let mut last = None;
        for entry in entries {
            last = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Normal(request) => {
                    counts.push(request.commands.len());
                    commands.extend(request.commands);
                }
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(entry.log_id), m);
                    counts.push(0);
                }
                EntryPayload::Blank => counts.push(0),
            }
        }
        let Some(last) = last else {
            return Ok(Vec::new());
        };
        let marker = encode(&Marker {
            last_applied: Some(last),
            membership: self.membership.clone(),
        })
        .map_err(sm_err(ErrorVerb::Write))?;
        let store = self.store.clone();
        let (applied, commands) = if commands.len() <= INLINE_APPLY_MAX {
            // A small batch is a few tens of microseconds of work (memtable and WAL writes, no
            // fsync): cheaper here than two thread switches to and from a blocking thread.
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                store.apply_with_marker(last.index, &commands, Some(&marker))
            })) {
                Ok(applied) => (applied, commands),
                Err(_) => apply_failed(),
            }
        } else {
            match tokio::task::spawn_blocking(move || {
                let applied = store.apply_with_marker(last.index, &commands, Some(&marker));
                (applied, commands)
            })
            .await
            {
                Ok(done) => done,
                Err(_) => apply_failed(),
            }
        };
        self.observer.applied(last.index, &commands, &applied);
        let mut outputs = applied.outputs.into_iter();
        Ok(counts
            .into_iter()
            .map(|n| Response {
                outputs: outputs.by_ref().take(n).collect(),
            })
            .collect())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            store: self.store.clone(),
            dir: self.snapshot_dir(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<tokio::fs::File>, StorageError> {
        let dir = self.snapshot_dir();
        let open = async {
            tokio::fs::create_dir_all(&dir).await?;
            tokio::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(dir.join(INCOMING))
                .await
        };
        let file = open
            .await
            .map_err(|e| storage_err(ErrorSubject::Snapshot(None), ErrorVerb::Write, e))?;
        Ok(Box::new(file))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        mut snapshot: Box<tokio::fs::File>,
    ) -> Result<(), StorageError> {
        use tokio::io::AsyncWriteExt;
        let synced = async {
            snapshot.flush().await?;
            snapshot.sync_all().await
        };
        synced
            .await
            .map_err(|e| storage_err(ErrorSubject::Snapshot(None), ErrorVerb::Write, e))?;
        // Read from the handle openraft gives back (normally the file begun above, but any
        // snapshot data will do).
        let file = snapshot.into_std().await;
        let store = self.store.clone();
        let data_dir = self.data_dir.clone();
        let meta_owned = meta.clone();
        tokio::task::spawn_blocking(move || {
            install_snapshot_file(&store, &data_dir, &meta_owned, file)
        })
        .await
        .map_err(|e| storage_err(ErrorSubject::Snapshot(None), ErrorVerb::Write, e))?
        .map_err(snap_err(ErrorVerb::Write))?;
        self.membership = meta.last_membership.clone();
        let index = meta.last_log_id.map(|l| l.index).unwrap_or(0);
        tracing::info!(snapshot = %meta.snapshot_id, index, "installed a snapshot");
        self.observer.store_replaced(index);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let dir = self.snapshot_dir();
        let read = async {
            let meta_bytes = match tokio::fs::read(dir.join(CURRENT_META)).await {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e.to_string()),
            };
            let meta: SnapshotMeta = decode(&meta_bytes).map_err(|e| e.to_string())?;
            let path = dir.join(format!("{}.snap", meta.snapshot_id));
            let file = tokio::fs::File::open(&path)
                .await
                .map_err(|e| format!("{}: {e}", path.display()))?;
            Ok(Some(Snapshot {
                meta,
                snapshot: Box::new(file),
            }))
        };
        read.await
            .map_err(|e| storage_err(ErrorSubject::Snapshot(None), ErrorVerb::Read, e))
    }
}

/// Replaces the store with the received snapshot data and keeps a copy as the current snapshot.
fn install_snapshot_file(
    store: &Store,
    data_dir: &Path,
    meta: &SnapshotMeta,
    mut file: std::fs::File,
) -> Result<()> {
    use std::io::{Seek, SeekFrom};
    let snapshot_dir = data_dir.join(SNAPSHOT_DIR);
    let old = current_store_dir(data_dir)?;
    let generation = old
        .strip_prefix("store-")
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    let new = format!("store-{}", generation + 1);
    let new_path = data_dir.join(&new);
    if new_path.exists() {
        std::fs::remove_dir_all(&new_path).map_err(io("removing a stale store directory"))?;
    }
    file.seek(SeekFrom::Start(0))
        .map_err(io("rewinding the received snapshot"))?;
    store.replace_from_snapshot(&new_path, BufReader::new(&file))?;
    // The snapshot's own marker describes the sender's view; record exactly this snapshot's.
    let marker = encode(&Marker {
        last_applied: meta.last_log_id,
        membership: meta.last_membership.clone(),
    })?;
    let index = meta.last_log_id.map(|l| l.index).unwrap_or(0);
    store.apply_with_marker(index, &[], Some(&marker));
    store.sync()?;
    write_atomic(&data_dir.join(STORE_POINTER), new.as_bytes())?;
    let _ = std::fs::remove_dir_all(data_dir.join(&old));
    // Keep the data as this member's current snapshot (it may have to send it on).
    std::fs::create_dir_all(&snapshot_dir).map_err(io("creating the snapshot directory"))?;
    let tmp = snapshot_dir.join("received.tmp");
    file.seek(SeekFrom::Start(0))
        .map_err(io("rewinding the received snapshot"))?;
    let mut copy = std::fs::File::create(&tmp).map_err(io("copying the received snapshot"))?;
    std::io::copy(&mut file, &mut copy).map_err(io("copying the received snapshot"))?;
    copy.sync_all()
        .map_err(io("syncing the received snapshot"))?;
    let path = snapshot_dir.join(format!("{}.snap", meta.snapshot_id));
    std::fs::rename(&tmp, &path).map_err(io("keeping the received snapshot"))?;
    let _ = std::fs::remove_file(snapshot_dir.join(INCOMING));
    set_current_snapshot(&snapshot_dir, meta)
}

/// Commands applied on the calling task rather than on a blocking thread, at most.
const INLINE_APPLY_MAX: usize = 64;

/// The store panics only when the disk refused a write: memory is ahead of disk, so the member
/// must stop and restart from what is on disk.
fn apply_failed() -> ! {
    tracing::error!("store apply failed; stopping the member");
    std::process::abort();
}
