//! Last heartbeat per node, kept in memory: heartbeats are frequent and must not each cost a write.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

#[derive(Default)]
pub struct Liveness {
    seen: Mutex<HashMap<String, Instant>>,
}

impl Liveness {
    pub fn beat(&self, node: &str) {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).insert(node.to_string(), Instant::now());
    }
    pub fn forget(&self, node: &str) {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).remove(node);
    }
    pub fn last(&self, node: &str) -> Option<Instant> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).get(node).copied()
    }
}
