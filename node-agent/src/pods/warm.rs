//! Warm sandboxes: a few pod sandboxes (network, IPC and UTS namespaces, with `lo` up and an
//! eth0 that already has its address and default route) made ahead of time, so a new pod starts
//! without waiting for them.
//!
//! Making a sandbox and wiring its network takes a few milliseconds (creating the network
//! namespace is most of it), a third of a pod's start on the node. A pod takes a warm one when
//! there is one: its directory is renamed into the pod's (the namespace mounts move with it) and
//! its address claim is handed to the pod's uid; the pod's containers set its hostname as they
//! join. Then a background thread makes another. With none left (a burst), pods make their own
//! as before.
//!
//! Warm sandboxes live under `DATA/warm/<id>/sandbox`, their addresses are claimed under the key
//! `warm-<id>`. They hold no process, so an agent that starts destroys whatever warm sandboxes
//! an earlier agent left and makes fresh ones.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use tracing::{debug, warn};

use super::network::PodNetwork;
use crate::runtime::Sandbox;

/// How many sandboxes are kept ready by default.
pub const DEFAULT_SIZE: usize = 4;

/// A sandbox handed to a pod, with the address its eth0 has.
pub struct Claimed {
    pub sandbox: Sandbox,
    pub ip: Ipv4Addr,
}

struct Warm {
    id: String,
    ip: Ipv4Addr,
}

struct Shared {
    dir: PathBuf,
    size: usize,
    ready: Mutex<Vec<Warm>>,
    /// Directories of claimed sandboxes, now empty: removed by the refill thread, off the pod's
    /// start.
    spent: Mutex<Vec<String>>,
    /// Signalled when a sandbox was taken (or the pool is shutting down).
    taken: Condvar,
    stop: Mutex<bool>,
    /// Pods between their arrival and their containers' start (`Starting` guards).
    starting: Mutex<usize>,
    /// Signalled when `starting` falls to zero.
    settled: Condvar,
}

impl Shared {
    fn new(dir: PathBuf, size: usize) -> Shared {
        Shared {
            dir,
            size,
            ready: Mutex::new(Vec::new()),
            spent: Mutex::new(Vec::new()),
            taken: Condvar::new(),
            stop: Mutex::new(false),
            starting: Mutex::new(0),
            settled: Condvar::new(),
        }
    }
}

/// Held by a pod while it starts; the pool makes no sandbox meanwhile (see `refill`).
pub struct Starting {
    shared: Arc<Shared>,
}

impl Drop for Starting {
    fn drop(&mut self) {
        let mut n = self.shared.starting.lock().unwrap_or_else(PoisonError::into_inner);
        *n = n.saturating_sub(1);
        if *n == 0 {
            self.shared.settled.notify_all();
        }
    }
}

pub struct WarmPool {
    shared: Arc<Shared>,
}

fn key(id: &str) -> String {
    format!("warm-{id}")
}

impl WarmPool {
    /// Destroys warm sandboxes an earlier agent left in `data_dir/warm`, then keeps `size` ready
    /// from a background thread. `size` 0 disables the pool.
    pub fn start(data_dir: &Path, size: usize, network: Arc<PodNetwork>) -> WarmPool {
        let dir = data_dir.join("warm");
        destroy_all(&dir, Some(&network));
        let shared = Arc::new(Shared::new(dir, size));
        if size > 0 {
            let s = shared.clone();
            let spawned = std::thread::Builder::new().name("warm-sandboxes".into()).spawn(move || refill(&s, &network));
            if let Err(e) = spawned {
                warn!(error = %e, "could not start the warm sandbox thread; pods make their own sandboxes");
            }
        }
        WarmPool { shared }
    }

    /// Hands a warm sandbox to the pod `uid`: moves it to `target` (the pod's sandbox directory,
    /// whose parent exists) and gives its address to the pod. Its hostname is still "warm": the
    /// pod's first container sets the pod's as it joins (`ContainerSpec::hostname`). `None` when
    /// none is ready or handing one over failed (that one is destroyed; the caller makes its own).
    pub fn claim(&self, uid: &str, target: &Path, network: &PodNetwork) -> Option<Claimed> {
        let warm = self.shared.ready.lock().unwrap_or_else(PoisonError::into_inner).pop()?;
        self.shared.taken.notify_one();
        let source = self.shared.dir.join(&warm.id).join("sandbox");
        let handed = (|| -> Result<Claimed, String> {
            std::fs::rename(&source, target).map_err(|e| format!("moving {} to {}: {e}", source.display(), target.display()))?;
            let sandbox = Sandbox::open(target).map_err(|e| e.to_string())?;
            network.rebind(&key(&warm.id), uid).map_err(|e| e.to_string())?;
            Ok(Claimed { sandbox, ip: warm.ip })
        })();
        self.shared.spent.lock().unwrap_or_else(PoisonError::into_inner).push(warm.id.clone());
        match handed {
            Ok(c) => {
                debug!(uid, id = %warm.id, ip = %c.ip, "pod took a warm sandbox");
                Some(c)
            }
            Err(e) => {
                warn!(uid, id = %warm.id, error = %e, "handing over a warm sandbox failed; making one instead");
                for dir in [target.to_path_buf(), source] {
                    if let Ok(sb) = Sandbox::open(&dir) {
                        let _ = sb.destroy();
                    }
                }
                let _ = network.detach(&key(&warm.id));
                let _ = network.detach(uid);
                None
            }
        }
    }

    /// Marks a pod as starting until the guard is dropped.
    pub fn starting(&self) -> Starting {
        *self.shared.starting.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        Starting { shared: self.shared.clone() }
    }

    /// How many sandboxes are ready now.
    pub fn ready(&self) -> usize {
        self.shared.ready.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

impl Drop for WarmPool {
    fn drop(&mut self) {
        *self.shared.stop.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.shared.taken.notify_all();
    }
}

/// The background thread: tops the pool up whenever a sandbox is taken.
fn refill(shared: &Shared, network: &PodNetwork) {
    // A refill follows a claim, while that pod's containers are being started: at the lowest
    // CPU priority (inherited by the processes it runs) it takes no CPU time from them.
    // SAFETY: setpriority on this thread's own id.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 19);
    }
    let mut failures = 0u32;
    loop {
        if *shared.stop.lock().unwrap_or_else(PoisonError::into_inner) {
            return;
        }
        for id in std::mem::take(&mut *shared.spent.lock().unwrap_or_else(PoisonError::into_inner)) {
            let _ = std::fs::remove_dir_all(shared.dir.join(id));
        }
        let missing = shared.size.saturating_sub(shared.ready.lock().unwrap_or_else(PoisonError::into_inner).len());
        if missing == 0 {
            let ready = shared.ready.lock().unwrap_or_else(PoisonError::into_inner);
            // Woken by a claim; the timeout only bounds how long a stop request waits.
            let _ = shared.taken.wait_timeout(ready, std::time::Duration::from_secs(1));
            continue;
        }
        wait_for_starts(shared);
        match make(&shared.dir, network) {
            Ok(w) => {
                failures = 0;
                shared.ready.lock().unwrap_or_else(PoisonError::into_inner).push(w);
            }
            Err(e) => {
                // Pods still start (they make their own); back off so a broken node is not busy.
                failures += 1;
                warn!(error = %e, "making a warm sandbox failed");
                std::thread::sleep(std::time::Duration::from_millis(200 * u64::from(failures.min(25))));
            }
        }
    }
}

/// The longest a refill waits for starting pods.
const MAX_DEFER: std::time::Duration = std::time::Duration::from_millis(200);

/// Making a sandbox takes a few milliseconds of CPU and the kernel's network locks; on a small
/// node, doing it while a pod starts (right after that pod's claim) slows the start it was meant
/// to speed up. So a refill waits until no pod is starting, but never longer than `MAX_DEFER`: a
/// pod may be pulling its image for minutes.
fn wait_for_starts(shared: &Shared) {
    let starting = shared.starting.lock().unwrap_or_else(PoisonError::into_inner);
    let _ = shared.settled.wait_timeout_while(starting, MAX_DEFER, |n| *n > 0);
}

fn make(dir: &Path, network: &PodNetwork) -> Result<Warm, String> {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let sb_dir = dir.join(&id).join("sandbox");
    let sandbox = Sandbox::create(&sb_dir, "warm").map_err(|e| e.to_string())?;
    match network.attach(&key(&id), &sandbox.net_ns_path()) {
        Ok(ip) => Ok(Warm { id, ip }),
        Err(e) => {
            let _ = sandbox.destroy();
            let _ = network.detach(&key(&id));
            let _ = std::fs::remove_dir_all(dir.join(&id));
            Err(e.to_string())
        }
    }
}

/// Removes every warm sandbox under `dir` (their namespaces, and with `network` their links and
/// address claims).
pub fn destroy_all(dir: &Path, network: Option<&PodNetwork>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if let Ok(sb) = Sandbox::open(&entry.path().join("sandbox")) {
            let _ = sb.destroy();
        }
        if let Some(net) = network {
            let _ = net.detach(&key(&entry.file_name().to_string_lossy()));
        }
        let _ = std::fs::remove_dir_all(entry.path());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    fn pool() -> WarmPool {
        WarmPool { shared: Arc::new(Shared::new(PathBuf::new(), 0)) }
    }

    #[test]
    fn a_refill_waits_until_the_starting_pods_have_started() {
        let pool = pool();
        let (a, b) = (pool.starting(), pool.starting());
        let released = Arc::new(AtomicBool::new(false));
        let r = released.clone();
        let releaser = std::thread::spawn(move || {
            drop(a);
            std::thread::sleep(Duration::from_millis(20));
            r.store(true, Ordering::SeqCst);
            drop(b);
        });
        let t = Instant::now();
        wait_for_starts(&pool.shared);
        assert!(released.load(Ordering::SeqCst) || t.elapsed() >= MAX_DEFER, "the refill went ahead while a pod was starting");
        releaser.join().unwrap();
        assert_eq!(*pool.shared.starting.lock().unwrap(), 0);
    }

    #[test]
    fn a_pod_that_never_finishes_starting_does_not_hold_refills_forever() {
        let pool = pool();
        let _stuck = pool.starting();
        let t = Instant::now();
        wait_for_starts(&pool.shared);
        assert!(t.elapsed() < Duration::from_secs(10), "the wait is capped");
        // And with nothing starting there is no wait at all to speak of.
        drop(_stuck);
        wait_for_starts(&pool.shared);
    }
}
