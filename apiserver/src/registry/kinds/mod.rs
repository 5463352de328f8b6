//! Kinds with behaviour of their own, one file each (kube's `pkg/registry/<group>/<kind>`).

pub mod namespace;
pub mod pdb;
pub mod service;

pub mod apps;
pub mod batch;
pub mod cron;
pub mod endpointslice;
pub mod fields;
