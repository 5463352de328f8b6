//! The REST verbs, one file each (kube's `endpoints/handlers/*.go`): each turns a parsed request
//! into registry calls and a `Reply`. No per-kind branches here beyond choosing the subresource;
//! what a write means lives in `registry`. `dispatch` picks the verb, `common` holds what the
//! verb files share; `discovery` and `openapi` answer the non-resource paths.

pub mod discovery;
pub mod openapi;

mod common;
mod create;
mod delete;
mod dispatch;
mod evict;
mod get;
mod list;
mod patch;
mod update;
mod watch;

pub use dispatch::dispatch;
