//! Watch history and fan-out shared by the backends that do not have their own.
//!
//! Writers publish events in revision order while holding the hub lock; a new watcher
//! copies the history it missed and subscribes under the same lock, so it sees every
//! event exactly once and in order.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;

use super::{Error, Event, Result, WatchStream};

pub struct WatchHub {
    inner: Mutex<Inner>,
    capacity: usize,
}

struct Inner {
    history: VecDeque<Arc<Event>>,
    /// Events with revision > `floor` are all in `history`.
    floor: u64,
    tx: broadcast::Sender<Arc<Event>>,
}

impl WatchHub {
    /// `capacity` events of history; `start` is the store's revision when it opened.
    pub fn new(capacity: usize, start: u64) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(1024));
        WatchHub { inner: Mutex::new(Inner { history: VecDeque::with_capacity(capacity), floor: start, tx }), capacity }
    }

    /// Must be called in revision order.
    pub fn publish(&self, events: impl IntoIterator<Item = Event>) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        for e in events {
            let e = Arc::new(e);
            if inner.history.len() == self.capacity {
                if let Some(old) = inner.history.pop_front() {
                    inner.floor = old.revision();
                }
            }
            inner.history.push_back(e.clone());
            // No receivers is fine: nobody is watching.
            let _ = inner.tx.send(e);
        }
    }

    pub fn watch(&self, prefix: &str, after: u64) -> Result<WatchStream> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if after < inner.floor {
            return Err(Error::Compacted { requested: after, oldest: inner.floor });
        }
        let backlog: Vec<Arc<Event>> =
            inner.history.iter().filter(|e| e.revision() > after && e.kv.key.starts_with(prefix)).cloned().collect();
        let rx = inner.tx.subscribe();
        drop(inner);
        let prefix = prefix.to_string();
        let live = BroadcastStream::new(rx).filter_map(move |r| {
            let item = match r {
                Ok(e) if e.revision() > after && e.kv.key.starts_with(&prefix) => Some(Ok(e)),
                Ok(_) => None,
                Err(_) => Some(Err(Error::Lagged)),
            };
            std::future::ready(item)
        });
        // A lagged watcher gets one error and then the stream ends: it has to re-list.
        let live = live.scan(false, |failed, item| {
            if *failed {
                return std::future::ready(None);
            }
            *failed = item.is_err();
            std::future::ready(Some(item))
        });
        Ok(futures::stream::iter(backlog.into_iter().map(Ok)).chain(live).boxed())
    }
}
