//! tinykube node agent: registers its node with the control plane and (in later issues) runs
//! the node's pods as real Linux containers.

pub mod cgroups;
pub mod connection;
pub mod images;
pub mod machine;
pub mod pods;
pub mod proxy;
pub mod routing;
pub mod runtime;
pub mod service;
