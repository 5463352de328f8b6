//! The etcd side (kube's `storage/etcd3` and `storage/cacher`): key layout, CAS transactions,
//! pages and continue tokens (`etcd`), the watch cache (`cacher`), and compaction
//! (`compactor`). It knows no kind: what an object reserves is handed to it as keys.

pub mod cacher;
pub mod compactor;
pub mod etcd;
