//! Routes pod changes to the streams of the nodes they concern. One task reads the pod informer
//! and hands each change only to the node(s) it names, so a cluster of many nodes does not wake
//! every node's stream for every pod event.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::sync::mpsc;

use crate::informer::{Change, Informer};

#[derive(Debug, Clone)]
pub enum Routed {
    Upsert(Arc<Value>),
    Delete(Arc<Value>),
    /// The informer was rebuilt: send the node its whole list again.
    Resync,
}

pub struct PodRouter {
    routes: Mutex<HashMap<String, Vec<mpsc::UnboundedSender<Routed>>>>,
}

pub fn node_of(pod: &Value) -> Option<&str> {
    pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty())
}

impl PodRouter {
    pub fn start(pods: Arc<Informer<Value>>) -> Arc<Self> {
        let router = Arc::new(PodRouter { routes: Mutex::new(HashMap::new()) });
        let me = router.clone();
        let mut changes = pods.subscribe();
        tokio::spawn(async move {
            loop {
                match changes.recv().await {
                    Ok(Change::Upsert { old, new }) => {
                        let now = node_of(&new).map(String::from);
                        if let Some(n) = &now {
                            me.send(n, Routed::Upsert(new.clone()));
                        }
                        // A pod that left a node (it cannot, once bound, but be safe) is gone there.
                        if let Some(o) = old.as_ref().and_then(|o| node_of(o).map(String::from)) {
                            if now.as_deref() != Some(o.as_str()) {
                                me.send(&o, Routed::Delete(new.clone()));
                            }
                        }
                    }
                    Ok(Change::Delete(p)) => {
                        if let Some(n) = node_of(&p).map(String::from) {
                            me.send(&n, Routed::Delete(p));
                        }
                    }
                    Ok(Change::Resync) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => me.broadcast(Routed::Resync),
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        router
    }

    fn send(&self, node: &str, msg: Routed) {
        let mut routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(senders) = routes.get_mut(node) {
            senders.retain(|s| s.send(msg.clone()).is_ok());
        }
    }

    fn broadcast(&self, msg: Routed) {
        let mut routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        for senders in routes.values_mut() {
            senders.retain(|s| s.send(msg.clone()).is_ok());
        }
    }

    /// Changes to `node`'s pods from now on.
    pub fn subscribe(&self, node: &str) -> mpsc::UnboundedReceiver<Routed> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.routes.lock().unwrap_or_else(|p| p.into_inner()).entry(node.to_string()).or_default().push(tx);
        rx
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_change_reaches_only_the_node_it_names() {
        let router = PodRouter { routes: Mutex::new(HashMap::new()) };
        let mut a = router.subscribe("a");
        let mut b = router.subscribe("b");
        router.send("a", Routed::Upsert(Arc::new(json!({"spec": {"nodeName": "a"}}))));
        assert!(matches!(a.try_recv(), Ok(Routed::Upsert(_))));
        assert!(b.try_recv().is_err());
        router.broadcast(Routed::Resync);
        assert!(matches!(a.try_recv(), Ok(Routed::Resync)));
        assert!(matches!(b.try_recv(), Ok(Routed::Resync)));
        drop(a);
        router.send("a", Routed::Resync);
        assert!(router.routes.lock().unwrap()["a"].is_empty(), "closed streams are dropped");
    }
}
