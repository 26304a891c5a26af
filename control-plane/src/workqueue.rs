//! A work queue with Kubernetes' semantics: a key is queued at most once, a key being worked on is
//! never handed to a second worker, and a key added while being worked on is queued again when
//! the worker is done. Failed keys come back after an exponential back-off.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

#[derive(Default)]
struct State {
    queue: VecDeque<String>,
    queued: HashSet<String>,
    processing: HashSet<String>,
    /// Added again while processing: requeue on `done`.
    dirty: HashSet<String>,
    failures: HashMap<String, u32>,
}

#[derive(Default)]
pub struct WorkQueue {
    state: Mutex<State>,
    notify: Notify,
}

const BASE_DELAY: Duration = Duration::from_millis(5);
const MAX_DELAY: Duration = Duration::from_secs(30);

impl WorkQueue {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn add(&self, key: impl Into<String>) {
        let key = key.into();
        let mut s = self.lock();
        if s.processing.contains(&key) {
            s.dirty.insert(key);
            return;
        }
        if s.queued.insert(key.clone()) {
            s.queue.push_back(key);
            drop(s);
            self.notify.notify_one();
        }
    }

    pub fn add_after(self: &Arc<Self>, key: String, delay: Duration) {
        if delay.is_zero() {
            return self.add(key);
        }
        let me = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            me.add(key);
        });
    }

    /// Requeues after this key's back-off (5 ms doubling to 30 s).
    pub fn add_rate_limited(self: &Arc<Self>, key: String) {
        let n = {
            let mut s = self.lock();
            let n = s.failures.entry(key.clone()).or_insert(0);
            *n += 1;
            *n
        };
        let delay = BASE_DELAY.saturating_mul(1u32 << (n - 1).min(20)).min(MAX_DELAY);
        self.add_after(key, delay);
    }

    pub fn forget(&self, key: &str) {
        self.lock().failures.remove(key);
    }

    /// The next key to work on; call `done` when finished with it.
    pub async fn next(&self) -> String {
        loop {
            let notified = self.notify.notified();
            {
                let mut s = self.lock();
                if let Some(key) = s.queue.pop_front() {
                    s.queued.remove(&key);
                    s.processing.insert(key.clone());
                    if !s.queue.is_empty() {
                        self.notify.notify_one();
                    }
                    return key;
                }
            }
            notified.await;
        }
    }

    pub fn done(&self, key: &str) {
        let mut s = self.lock();
        s.processing.remove(key);
        if s.dirty.remove(key) && s.queued.insert(key.to_string()) {
            s.queue.push_back(key.to_string());
            drop(s);
            self.notify.notify_one();
        }
    }

    pub fn len(&self) -> usize {
        self.lock().queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Runs `workers` loops taking keys from `queue` and reconciling them. `Ok(Some(d))` asks to look
/// again after `d`; errors are retried with back-off.
pub async fn run_workers<F, Fut>(queue: Arc<WorkQueue>, workers: usize, name: &'static str, reconcile: F)
where
    F: Fn(String) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = Result<Option<Duration>, String>> + Send,
{
    let mut handles = Vec::new();
    for _ in 0..workers.max(1) {
        let queue = queue.clone();
        let reconcile = reconcile.clone();
        handles.push(tokio::spawn(async move {
            loop {
                let key = queue.next().await;
                let result = reconcile(key.clone()).await;
                queue.done(&key);
                match result {
                    Ok(again) => {
                        queue.forget(&key);
                        if let Some(d) = again {
                            queue.add_after(key, d);
                        }
                    }
                    Err(e) => {
                        tracing::debug!(controller = name, object = %key, error = %e, "reconcile failed; retrying");
                        queue.add_rate_limited(key);
                    }
                }
            }
        }));
    }
    for h in handles {
        let _ = h.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_key_is_queued_once_and_requeued_when_added_during_processing() {
        let q = WorkQueue::new();
        q.add("a");
        q.add("a");
        q.add("b");
        assert_eq!(q.len(), 2);
        let k = q.next().await;
        assert_eq!(k, "a");
        q.add("a"); // while processing: not handed out twice
        assert_eq!(q.next().await, "b");
        assert!(q.is_empty());
        q.done("a");
        assert_eq!(q.next().await, "a");
    }

    #[tokio::test]
    async fn failures_back_off_and_come_back() {
        let q = WorkQueue::new();
        q.add_rate_limited("x".into());
        let k = tokio::time::timeout(Duration::from_secs(1), q.next()).await.unwrap();
        assert_eq!(k, "x");
    }
}
