//! The contract between the control plane and node agents: the gRPC service (`proto/node.proto`)
//! and the Kubernetes value formats both sides read (resource quantities).

pub mod node {
    tonic::include_proto!("tinykube.node.v1");
}

pub mod auth;
pub mod quantity;
