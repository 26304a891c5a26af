//! The agent's own endpoint (AgentService): container logs and exec sessions, which only the
//! node can provide. The control plane calls it with the node token.

use std::path::PathBuf;
use std::sync::Arc;

use proto::node::agent_service_server::AgentService;
use proto::node::{ExecInput, ExecOutput, LogChunk, LogsRequest, exec_input, exec_output};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::debug;

use crate::pods::logs;
use crate::runtime::{self, Container, ExecSpec};

pub struct Agent {
    pub data_dir: PathBuf,
}

pub use proto::auth::token_interceptor;

fn valid_segment(s: &str) -> bool {
    !s.is_empty() && !s.contains('/') && s != "." && s != ".."
}

impl Agent {
    /// The pod's disk directory: its logs.
    fn pod_dir(&self, uid: &str) -> Result<PathBuf, Status> {
        if !valid_segment(uid) {
            return Err(Status::invalid_argument("invalid pod uid"));
        }
        Ok(self.data_dir.join("pods").join(uid))
    }

    /// Where the state of the pod's container `name` is (see `run_dir::pod_state_dir`).
    fn state_dir(&self, uid: &str, name: &str) -> Result<PathBuf, Status> {
        self.pod_dir(uid)?;
        Ok(crate::pods::run_dir::pod_state_dir(&self.data_dir, uid).join("containers").join(name))
    }
}

fn chunk(data: Vec<u8>) -> Result<LogChunk, Status> {
    Ok(LogChunk { data })
}

#[tonic::async_trait]
impl AgentService for Agent {
    type LogsStream = ReceiverStream<Result<LogChunk, Status>>;

    async fn logs(&self, req: Request<LogsRequest>) -> Result<Response<Self::LogsStream>, Status> {
        let r = req.into_inner();
        if !valid_segment(&r.container) {
            return Err(Status::invalid_argument("invalid container name"));
        }
        let pod_dir = self.pod_dir(&r.pod_uid)?;
        let dir = pod_dir.join("logs").join(&r.container);
        let instances = logs::instances(&dir);
        let n = if r.previous {
            instances.iter().rev().nth(1).copied().ok_or_else(|| {
                Status::not_found(format!("previous terminated container \"{}\" in pod not found", r.container))
            })?
        } else {
            *instances.last().ok_or_else(|| Status::not_found(format!("container \"{}\" has no logs yet", r.container)))?
        };
        let log = logs::log_path(&dir, n);
        let now = jiff::Timestamp::now().as_nanosecond() as i64;
        let opts = logs::Options {
            tail_lines: (r.tail_lines >= 0).then_some(r.tail_lines as usize),
            since: (r.since_seconds > 0).then(|| now - r.since_seconds * 1_000_000_000),
            timestamps: r.timestamps,
        };
        let limit = (r.limit_bytes > 0).then_some(r.limit_bytes as usize);
        let (tx, rx) = mpsc::channel(16);
        let state_dir = self.state_dir(&r.pod_uid, &r.container)?;
        tokio::spawn(async move {
            let (mut data, mut offset) = logs::read_rendered(&log, &opts);
            let mut sent = 0usize;
            let cap = |mut d: Vec<u8>, sent: &mut usize| {
                if let Some(l) = limit {
                    d.truncate(l.saturating_sub(*sent));
                }
                *sent += d.len();
                d
            };
            data = cap(data, &mut sent);
            if !data.is_empty() && tx.send(chunk(data)).await.is_err() {
                return;
            }
            if !r.follow || r.previous {
                return;
            }
            // Follow until this container instance is gone and its log is drained.
            loop {
                if limit.is_some_and(|l| sent >= l) {
                    return;
                }
                tokio::time::sleep(logs::POLL).await;
                let running = Container::load(&state_dir).ok().flatten().is_some_and(|c| c.state().log_path == log);
                let (new, off) = logs::read_new(&log, offset, r.timestamps);
                offset = off;
                let new = cap(new, &mut sent);
                if !new.is_empty() && tx.send(chunk(new)).await.is_err() {
                    return;
                }
                if !running || tx.is_closed() {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    type ExecStream = ReceiverStream<Result<ExecOutput, Status>>;

    async fn exec(&self, req: Request<Streaming<ExecInput>>) -> Result<Response<Self::ExecStream>, Status> {
        let mut input = req.into_inner();
        let start = match input.message().await? {
            Some(ExecInput { input: Some(exec_input::Input::Start(s)) }) => s,
            _ => return Err(Status::invalid_argument("an exec stream must begin with ExecStart")),
        };
        if start.command.is_empty() {
            return Err(Status::invalid_argument("exec needs a command"));
        }
        if !valid_segment(&start.container) {
            return Err(Status::invalid_argument("invalid container name"));
        }
        let state_dir = self.state_dir(&start.pod_uid, &start.container)?;
        let container = Container::load(&state_dir)
            .map_err(|e| Status::internal(e.to_string()))?
            .ok_or_else(|| Status::not_found(format!("container \"{}\" is not running", start.container)))?;
        let spec = ExecSpec { argv: start.command.clone(), env: vec![], tty: start.tty, cwd: None };
        let container = Arc::new(container);
        let c = container.clone();
        let mut proc = tokio::task::spawn_blocking(move || runtime::exec(&c, spec))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(|e| Status::failed_precondition(e.to_string()))?;
        let (tx, rx) = mpsc::channel::<Result<ExecOutput, Status>>(64);
        let out = |o: exec_output::Output| Ok(ExecOutput { output: Some(o) });
        if start.tty {
            let pty = proc.pty_async().map_err(|e| Status::internal(e.to_string()))?;
            let (mut reader, mut writer) = tokio::io::split(pty);
            let proc = Arc::new(proc);
            let p2 = proc.clone();
            tokio::spawn(async move {
                while let Ok(Some(msg)) = input.message().await {
                    match msg.input {
                        Some(exec_input::Input::Stdin(b)) => {
                            if writer.write_all(&b).await.is_err() {
                                break;
                            }
                        }
                        Some(exec_input::Input::Resize(s)) => {
                            let _ = p2.resize(s.height as u16, s.width as u16);
                        }
                        _ => {}
                    }
                }
            });
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                // A pty read fails with EIO once the command and all its children are gone.
                while let Ok(n) = reader.read(&mut buf).await {
                    if n == 0 || tx.send(out(exec_output::Output::Stdout(buf[..n].to_vec()))).await.is_err() {
                        break;
                    }
                }
                let code = proc.wait().await.unwrap_or(1);
                let _ = tx.send(out(exec_output::Output::ExitCode(code))).await;
            });
        } else {
            let mut stdin = proc.take_stdin_async().map_err(|e| Status::internal(e.to_string()))?;
            let stdout = proc.take_stdout_async().map_err(|e| Status::internal(e.to_string()))?;
            let stderr = proc.take_stderr_async().map_err(|e| Status::internal(e.to_string()))?;
            if !start.stdin {
                stdin = None;
            }
            tokio::spawn(async move {
                while let Ok(Some(msg)) = input.message().await {
                    match msg.input {
                        Some(exec_input::Input::Stdin(b)) => {
                            if let Some(w) = stdin.as_mut() {
                                if w.write_all(&b).await.is_err() {
                                    stdin = None;
                                }
                            }
                        }
                        Some(exec_input::Input::StdinClosed(_)) => stdin = None,
                        _ => {}
                    }
                }
            });
            let pump = |r: Option<tokio::net::unix::pipe::Receiver>, tx: mpsc::Sender<Result<ExecOutput, Status>>, err: bool| async move {
                let Some(mut r) = r else { return };
                let mut buf = vec![0u8; 16 * 1024];
                while let Ok(n) = r.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    let data = buf[..n].to_vec();
                    let o = if err { exec_output::Output::Stderr(data) } else { exec_output::Output::Stdout(data) };
                    if tx.send(Ok(ExecOutput { output: Some(o) })).await.is_err() {
                        break;
                    }
                }
            };
            tokio::spawn(async move {
                tokio::join!(pump(stdout, tx.clone(), false), pump(stderr, tx.clone(), true));
                let code = proc.wait().await.unwrap_or(1);
                debug!(code, "exec finished");
                let _ = tx.send(out(exec_output::Output::ExitCode(code))).await;
            });
        }
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_uids_and_container_names_cannot_leave_the_pod_directory() {
        for ok in ["7d3c-11", "web", "a.b"] {
            assert!(valid_segment(ok), "{ok}");
        }
        for bad in ["", ".", "..", "../etc", "a/b", "/abs"] {
            assert!(!valid_segment(bad), "{bad}");
        }
        let agent = Agent { data_dir: "/data".into() };
        assert_eq!(agent.pod_dir("../x").unwrap_err().code(), tonic::Code::InvalidArgument);
        assert_eq!(agent.pod_dir("u1").unwrap(), std::path::PathBuf::from("/data/pods/u1"));
    }
}
