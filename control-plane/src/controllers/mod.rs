//! Controllers: level-triggered loops that move the cluster toward what its objects ask for.

pub mod deployment;
pub mod endpoints;
pub mod garbage_collector;
pub mod gc;
pub mod namespace;
pub mod nodes;
pub mod replicaset;
pub mod scheduling;
