//! tinykube control plane: a Kubernetes-compatible API server on a revisioned store,
//! controllers, a scheduler and the gRPC gateway node agents connect to.

pub mod store;
