//! Everything about nodes on the control-plane side: the gRPC gateway agents connect to,
//! pod CIDR assignment, and liveness from heartbeats.

pub mod gateway;
pub mod ipam;
pub mod liveness;
pub mod network;
pub mod router;
