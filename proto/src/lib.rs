//! Generated gRPC types for the control plane <-> node agent contract (`proto/node.proto`).

pub mod node {
    tonic::include_proto!("tinykube.node.v1");
}
