//! RocksDB layout. Three column families:
//!
//! - `kv`: encoded [`Revision`] → record (one per change, tombstones included). Keyed by revision so
//!   history is one ordered scan: what watchers catching up and compaction need.
//! - `lease`: lease ID (8 bytes big-endian) → granted TTL and checkpointed remaining TTL.
//! - `meta`: current revision, compacted revision, applied index, alarms.
//!
//! Which keys are attached to which lease is not stored separately: it is rebuilt from the `kv`
//! records on open, so the two can never disagree.

use std::path::Path;

use rocksdb::{ColumnFamily, ColumnFamilyDescriptor, Options, WriteBatch, WriteOptions, DB};

use crate::error::{Result, StoreError};
use crate::kv::KeyValue;
use crate::revision::Revision;

pub(crate) const CF_KV: &str = "kv";
pub(crate) const CF_LEASE: &str = "lease";
pub(crate) const CF_META: &str = "meta";
/// Column families in the order snapshots write them.
pub(crate) const COLUMN_FAMILIES: [&str; 3] = [CF_KV, CF_LEASE, CF_META];

pub(crate) const META_CURRENT_REVISION: &[u8] = b"current_revision";
pub(crate) const META_COMPACT_REVISION: &[u8] = b"compact_revision";
pub(crate) const META_APPLIED_INDEX: &[u8] = b"applied_index";
/// Opaque bytes recorded with each apply by a replication layer (see `Store::apply_with_marker`).
pub(crate) const META_APPLIED_MARKER: &[u8] = b"applied_marker";
pub(crate) const META_ALARM_PREFIX: &[u8] = b"alarm/";

const RECORD_TOMBSTONE: u8 = 1;
const RECORD_HEADER_LEN: usize = 1 + 8 + 8 + 8 + 4;

pub(crate) struct Backend {
    pub db: DB,
    sync_writes: bool,
}

impl Backend {
    pub fn open(path: &Path, sync_writes: bool) -> Result<Backend> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        // Values are small and written once; LZ4 is cheap and is the only codec we build.
        opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        let cfs = COLUMN_FAMILIES
            .iter()
            .map(|name| ColumnFamilyDescriptor::new(*name, opts.clone()));
        let db = DB::open_cf_descriptors(&opts, path, cfs)?;
        Ok(Backend { db, sync_writes })
    }

    pub fn cf(&self, name: &str) -> &ColumnFamily {
        self.db
            .cf_handle(name)
            .expect("column families are created on open")
    }

    /// Writes a batch; with `sync_writes` it is on disk (fsync'd WAL) when this returns.
    pub fn write(&self, batch: WriteBatch) -> Result<()> {
        let mut opts = WriteOptions::default();
        opts.set_sync(self.sync_writes);
        self.db.write_opt(batch, &opts)?;
        Ok(())
    }

    pub fn get_meta_i64(&self, key: &[u8]) -> Result<Option<i64>> {
        match self.db.get_cf(self.cf(CF_META), key)? {
            None => Ok(None),
            Some(v) => decode_i64(&v).map(Some),
        }
    }
}

pub(crate) fn decode_i64(bytes: &[u8]) -> Result<i64> {
    let arr: [u8; 8] = bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt(format!("expected 8 bytes, found {}", bytes.len())))?;
    Ok(i64::from_be_bytes(arr))
}

/// A stored change: the key's state after it (for a tombstone, only the key).
pub(crate) fn encode_record(kv: &KeyValue, tombstone: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(RECORD_HEADER_LEN + kv.key.len() + kv.value.len());
    out.push(if tombstone { RECORD_TOMBSTONE } else { 0 });
    out.extend_from_slice(&kv.create_revision.to_be_bytes());
    out.extend_from_slice(&kv.version.to_be_bytes());
    out.extend_from_slice(&kv.lease.to_be_bytes());
    out.extend_from_slice(&(kv.key.len() as u32).to_be_bytes());
    out.extend_from_slice(&kv.key);
    out.extend_from_slice(&kv.value);
    out
}

/// Decodes a record stored at `rev`; returns the key-value and whether it is a tombstone.
pub(crate) fn decode_record(rev: Revision, bytes: &[u8]) -> Result<(KeyValue, bool)> {
    let corrupt = || StoreError::Corrupt(format!("record at revision {rev:?}"));
    if bytes.len() < RECORD_HEADER_LEN {
        return Err(corrupt());
    }
    let i64_at = |at: usize| i64::from_be_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    let key_len = u32::from_be_bytes(bytes[25..29].try_into().expect("4 bytes")) as usize;
    let key_end = RECORD_HEADER_LEN
        .checked_add(key_len)
        .filter(|e| *e <= bytes.len())
        .ok_or_else(corrupt)?;
    let kv = KeyValue {
        key: bytes[RECORD_HEADER_LEN..key_end].to_vec(),
        create_revision: i64_at(1),
        mod_revision: rev.main,
        version: i64_at(9),
        value: bytes[key_end..].to_vec(),
        lease: i64_at(17),
    };
    Ok((kv, bytes[0] & RECORD_TOMBSTONE != 0))
}

pub(crate) fn encode_lease(ttl_secs: i64, remaining_ttl_secs: i64) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&ttl_secs.to_be_bytes());
    out[8..].copy_from_slice(&remaining_ttl_secs.to_be_bytes());
    out
}

pub(crate) fn decode_lease(bytes: &[u8]) -> Result<(i64, i64)> {
    if bytes.len() != 16 {
        return Err(StoreError::Corrupt("lease record".into()));
    }
    Ok((decode_i64(&bytes[..8])?, decode_i64(&bytes[8..])?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trip() {
        let kv = KeyValue {
            key: b"k".to_vec(),
            create_revision: 3,
            mod_revision: 9,
            version: 4,
            value: b"value".to_vec(),
            lease: 77,
        };
        let rev = Revision::new(9, 2);
        assert_eq!(
            decode_record(rev, &encode_record(&kv, false)).unwrap(),
            (kv.clone(), false)
        );
        let tomb = KeyValue {
            key: b"k".to_vec(),
            mod_revision: 9,
            ..Default::default()
        };
        assert_eq!(
            decode_record(rev, &encode_record(&tomb, true)).unwrap(),
            (tomb, true)
        );
        assert!(decode_record(rev, &[0; 10]).is_err());
        let mut bad = encode_record(&kv, false);
        bad[25..29].copy_from_slice(&1000u32.to_be_bytes());
        assert!(decode_record(rev, &bad).is_err());
    }
}
