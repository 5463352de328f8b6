//! `mainstay-apiserver`: a Kubernetes-compatible API server (the REST API kubectl, client-go and
//! kube-rs speak) over any etcd v3 store.
//!
//! It owns the Kubernetes side of the control plane: URL routing and verbs, the storage layout
//! (`/registry/<resource>/<namespace>/<name>`, JSON values, resourceVersion = mod revision), the
//! watch cache, discovery and OpenAPI, Tables, patches and server-side apply, validation and
//! defaulting, authentication by bearer token or client certificate, metrics.
//!
//! It must not depend on `mainstay-store`, `-raft` or `-server`: it reaches the store only through
//! the etcd v3 API (the `etcd-client` crate), so every replica is stateless and the same binary
//! runs on real etcd. Kubernetes' JSON types (k8s-openapi) stay inside this crate.
//!
//! # Layout
//! - `http/`: connections (TLS), authentication, in-flight budgets, and the router.
//! - `handlers/`: one file per REST verb, `dispatch` choosing among them, `common` (what the
//!   verb files share), plus discovery and OpenAPI.
//! - `request/`: the request plumbing `http` and `handlers` both read: the request parsed once
//!   (`RequestInfo`), media types, bodies and responses, the request metrics.
//! - `registry/`: what a write means: the generic store (create, update loop, delete), the
//!   per-kind strategy, the Scale view, `kinds/` with behaviour of their own, Table printers.
//! - `machinery/`: pure functions over `serde_json::Value` (metadata, name syntax, selectors,
//!   patches, server-side apply, protobuf); no I/O, no HTTP types, nothing else of this crate.
//! - `storage/`: the etcd layout (keys, CAS transactions, pages), the watch cache, compaction.
//! - `resources.rs` (the served resources) and `error.rs` (`ApiError` → `Status`) are shared.
//! - `app.rs`: `Config` and `App`, the shared context every layer is handed; `serve.rs`: `build`,
//!   `run`, `serve`; `bootstrap.rs`: what every cluster starts with. This file only declares the
//!   modules and re-exports the public API.
//!
//! The one-way rule: `http → handlers → registry → storage`. A layer uses the layers below it,
//! and every layer may use `machinery`, `resources` and `error`; nothing points upward.
//! `request/` sits between `handlers` and `registry` (kube's handlers read RequestInfo the same
//! way): besides `machinery`, `resources` and `error` it uses only `registry`'s `ObjectRef`.
//! `App` is made of pieces from the layers (the store client and watch caches, the token users,
//! budgets and metrics) and uses none of the files that use it; no two files import each other
//! (`scripts/import-cycles.py`).

mod app;
mod bootstrap;
mod error;
mod handlers;
mod http;
mod machinery;
mod registry;
mod request;
mod resources;
mod serve;
mod storage;

pub use app::{version_info, App, Config, KUBE_VERSION};
pub use serve::{build, run, serve, serve_on, ServeError};
