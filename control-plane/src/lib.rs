//! tinykube control plane: a Kubernetes-compatible API server on a revisioned store,
//! controllers, a scheduler and the gRPC gateway node agents connect to.

pub mod api;
pub mod bootstrap;
pub mod cluster;
pub mod controllers;
pub mod dns;
pub mod events;
pub mod informer;
pub mod nodes;
pub mod pki;
pub mod registry;
pub mod scheduler;
pub mod store;
pub mod tls;
pub mod workqueue;
