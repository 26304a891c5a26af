//! Loads rendered rules in one transaction. In-process through libnftables (the library the `nft`
//! command is built on, shipped with it) when it can be loaded, with one long-lived context: a
//! change then costs about a millisecond. Spawning `nft -f -` per change costs 15 ms or more, as
//! most of it is the kernel's RCU grace period when the process closes its netlink socket. The
//! `nft` command remains the fallback.

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use super::{ProxyState, render};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("running nft (apt-get install nftables): {0}")]
    Spawn(std::io::Error),
    #[error("nft refused the Service rules: {0}")]
    Refused(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

type NewFn = unsafe extern "C" fn(u32) -> *mut c_void;
type FreeFn = unsafe extern "C" fn(*mut c_void);
type BufferFn = unsafe extern "C" fn(*mut c_void) -> c_int;
type GetBufferFn = unsafe extern "C" fn(*mut c_void) -> *const c_char;
type RunFn = unsafe extern "C" fn(*mut c_void, *const c_char) -> c_int;

/// One libnftables context (`struct nft_ctx`), which keeps its netlink socket open between runs.
/// The socket belongs to the network namespace of the thread that made the context.
struct Library {
    _lib: libloading::Library,
    ctx: *mut c_void,
    free: FreeFn,
    get_error: GetBufferFn,
    run: RunFn,
}

// SAFETY: the context is only used through `&mut Proxy` (one thread at a time), which is all
// libnftables asks of a context; nothing in it is tied to the creating thread except the
// netlink socket's namespace, which is fixed at creation on purpose.
unsafe impl Send for Library {}

impl Library {
    fn load() -> Option<Library> {
        // SAFETY: loading libnftables runs its constructors, which only set up its own state.
        let lib = unsafe { libloading::Library::new("libnftables.so.1") }.ok()?;
        // SAFETY: the signatures are libnftables' (nftables/libnftables.h), stable since 0.9.
        unsafe {
            let new: NewFn = *lib.get::<NewFn>(b"nft_ctx_new\0").ok()?;
            let free: FreeFn = *lib.get::<FreeFn>(b"nft_ctx_free\0").ok()?;
            let buffer_output: BufferFn = *lib.get::<BufferFn>(b"nft_ctx_buffer_output\0").ok()?;
            let buffer_error: BufferFn = *lib.get::<BufferFn>(b"nft_ctx_buffer_error\0").ok()?;
            let get_error: GetBufferFn = *lib.get::<GetBufferFn>(b"nft_ctx_get_error_buffer\0").ok()?;
            let run: RunFn = *lib.get::<RunFn>(b"nft_run_cmd_from_buffer\0").ok()?;
            let ctx = new(0);
            if ctx.is_null() {
                return None;
            }
            // Messages go to buffers we read, not to the agent's stdout/stderr.
            buffer_output(ctx);
            buffer_error(ctx);
            Some(Library { _lib: lib, ctx, free, get_error, run })
        }
    }

    fn run(&mut self, script: &str) -> Result<()> {
        let script = CString::new(script).map_err(|_| Error::Refused("the script contains a NUL byte".into()))?;
        // SAFETY: ctx is a live context and script a NUL-terminated string for the whole call.
        let rc = unsafe { (self.run)(self.ctx, script.as_ptr()) };
        if rc == 0 {
            return Ok(());
        }
        // SAFETY: the error buffer is a NUL-terminated string owned by ctx, valid until the next run.
        let message = unsafe {
            let p = (self.get_error)(self.ctx);
            if p.is_null() { String::new() } else { CStr::from_ptr(p).to_string_lossy().into_owned() }
        };
        Err(Error::Refused(first_lines(&message)))
    }
}

impl Drop for Library {
    fn drop(&mut self) {
        // SAFETY: ctx came from nft_ctx_new and is freed once.
        unsafe { (self.free)(self.ctx) }
    }
}

fn first_lines(s: &str) -> String {
    s.lines().take(6).collect::<Vec<_>>().join(" | ")
}

pub struct Proxy {
    table: String,
    library: Option<Library>,
    nft: PathBuf,
    /// The script last loaded: an identical one is not loaded again.
    last: Option<String>,
}

fn find_nft() -> PathBuf {
    ["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft"].iter().map(PathBuf::from).find(|p| p.exists()).unwrap_or_else(|| PathBuf::from("nft"))
}

impl Proxy {
    /// Rules for the network namespace of the calling thread.
    pub fn new(table: &str) -> Self {
        Proxy { table: table.to_string(), library: Library::load(), nft: find_nft(), last: None }
    }

    /// Whether rules load in-process (libnftables) rather than through the `nft` command.
    pub fn in_process(&self) -> bool {
        self.library.is_some()
    }

    pub(super) fn run(&mut self, script: &str) -> Result<()> {
        if let Some(lib) = self.library.as_mut() {
            return lib.run(script);
        }
        let mut child = Command::new(&self.nft)
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(Error::Spawn)?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(script.as_bytes()).map_err(Error::Spawn)?;
        }
        let out = child.wait_with_output().map_err(Error::Spawn)?;
        if out.status.success() { Ok(()) } else { Err(Error::Refused(first_lines(&String::from_utf8_lossy(&out.stderr)))) }
    }

    /// Replaces the table with the rules for `state`.
    pub fn apply(&mut self, state: &ProxyState) -> Result<()> {
        let script = render(state, &self.table);
        if self.last.as_deref() == Some(script.as_str()) {
            return Ok(());
        }
        self.last = None;
        self.run(&script)?;
        self.last = Some(script);
        Ok(())
    }

    /// Removes the table (and with it every rule); nothing to do when it does not exist.
    pub fn remove(&mut self) -> Result<()> {
        self.last = None;
        let t = self.table.clone();
        self.run(&format!("table ip {t} {{}}\ndelete table ip {t}\n"))
    }
}
