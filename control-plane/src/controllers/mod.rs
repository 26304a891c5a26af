//! Controllers: level-triggered loops that move the cluster toward what its objects ask for.

pub mod namespace;
pub mod nodes;
