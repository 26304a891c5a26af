//! Subresources served by the pod's node: `log` (streamed) and `exec` (WebSocket, the
//! `v5.channel.k8s.io`/`v4.channel.k8s.io` protocols kubectl 1.31+ speaks). The API server
//! calls the node agent's AgentService with the node token, verifying it against the cluster CA.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use proto::node::agent_service_client::AgentServiceClient;
use proto::node::{ExecInput, ExecStart, LogsRequest, TerminalSize, exec_input, exec_output};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use super::ApiServer;
use super::error::{ApiError, Result};
use super::negotiate::Query;

/// Connections to node agents, one channel per node, made on first use.
pub struct NodeConnector {
    pub ca_pem: String,
    pub token: String,
    channels: Mutex<HashMap<String, Channel>>,
}

impl NodeConnector {
    pub fn new(ca_pem: String, token: String) -> Arc<Self> {
        Arc::new(NodeConnector { ca_pem, token, channels: Mutex::new(HashMap::new()) })
    }

    fn channel(&self, node: &str, addr: &str) -> Result<Channel> {
        let key = format!("{node}@{addr}");
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = channels.get(&key) {
            return Ok(c.clone());
        }
        let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&self.ca_pem)).domain_name(node);
        let channel = Endpoint::from_shared(format!("https://{addr}"))
            .and_then(|e| e.tls_config(tls))
            .map_err(|e| ApiError::internal(format!("node {node} at {addr}: {e}")))?
            .connect_timeout(std::time::Duration::from_secs(3))
            .connect_lazy();
        channels.insert(key, channel.clone());
        Ok(channel)
    }

    /// Forgets a node's channel after a failure, so the next call connects afresh.
    fn forget(&self, node: &str) {
        self.channels.lock().unwrap_or_else(|p| p.into_inner()).retain(|k, _| !k.starts_with(&format!("{node}@")));
    }

    fn request<T>(&self, msg: T) -> tonic::Request<T> {
        proto::auth::with_token(&self.token, msg)
    }
}

fn from_status(s: tonic::Status) -> ApiError {
    match s.code() {
        tonic::Code::NotFound | tonic::Code::InvalidArgument | tonic::Code::FailedPrecondition => ApiError::bad_request(s.message()),
        _ => ApiError::unavailable(format!("the node could not be reached: {}", s.message())),
    }
}

/// The pod, its container (defaulted like kubectl when the pod has one), and where its node listens.
struct Target {
    pod: Value,
    container: String,
    node: String,
    addr: String,
}

impl ApiServer {
    async fn remote_target(&self, ns: &str, name: &str, container: Option<&str>) -> Result<Target> {
        let pods = self.registry.get("", "v1", "pods").ok_or_else(|| ApiError::internal("pods not served"))?;
        let (pod, _) = self.get_object(&pods, Some(ns), name).await?;
        let names: Vec<String> = pod["spec"]["containers"].as_array().into_iter().flatten().filter_map(|c| c["name"].as_str().map(String::from)).collect();
        let container = match container {
            Some(c) if names.iter().any(|n| n == c) => c.to_string(),
            Some(c) => return Err(ApiError::bad_request(format!("container {c} is not valid for pod {name}"))),
            None if names.len() == 1 => names[0].clone(),
            None => {
                return Err(ApiError::bad_request(format!(
                    "a container name must be specified for pod {name}, choose one of: [{}]",
                    names.join(" ")
                )));
            }
        };
        let node = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()).map(String::from);
        let node = node.ok_or_else(|| ApiError::bad_request(format!("pod {name} does not have a host assigned")))?;
        let nodes = self.registry.get("", "v1", "nodes").ok_or_else(|| ApiError::internal("nodes not served"))?;
        let (n, _) = self.get_object(&nodes, None, &node).await?;
        let ip = n["status"]["addresses"].as_array().into_iter().flatten().find(|a| a["type"] == "InternalIP").and_then(|a| a["address"].as_str());
        let port = n["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"].as_u64().filter(|p| *p > 0);
        let (Some(ip), Some(port)) = (ip, port) else {
            return Err(ApiError::unavailable(format!("node {node} has no address for logs and exec")));
        };
        Ok(Target { pod, container, node, addr: format!("{ip}:{port}") })
    }

    /// Validates the pod and container an exec or attach names.
    pub async fn check_exec_target(&self, ns: &str, name: &str, container: Option<&str>) -> Result<()> {
        self.remote_target(ns, name, container).await.map(|_| ())
    }

    fn connector(&self) -> Result<&Arc<NodeConnector>> {
        self.nodes.as_ref().ok_or_else(|| ApiError::unavailable("no node connections in this server"))
    }

    pub async fn logs(&self, ns: &str, name: &str, q: &Query) -> Result<Response> {
        // Options first: a malformed request is refused before any lookup.
        let since_time = q.get("sinceTime").map(|s| {
            s.parse::<jiff::Timestamp>().map_err(|_| ApiError::bad_request(format!("sinceTime {s:?} is not an RFC 3339 time")))
        });
        let since_seconds = match (q.int("sinceSeconds")?, since_time.transpose()?) {
            (Some(s), _) => s,
            (None, Some(t)) => (jiff::Timestamp::now() - t).get_seconds().max(1),
            _ => 0,
        };
        let (tail_lines, limit_bytes) = (q.int("tailLines")?.unwrap_or(-1), q.int("limitBytes")?.unwrap_or(0));
        let t = self.remote_target(ns, name, q.get("container")).await?;
        let conn = self.connector()?;
        let req = LogsRequest {
            pod_uid: t.pod["metadata"]["uid"].as_str().unwrap_or_default().into(),
            container: t.container.clone(),
            follow: q.flag("follow"),
            tail_lines,
            since_seconds,
            timestamps: q.flag("timestamps"),
            previous: q.flag("previous"),
            limit_bytes,
        };
        // A node agent that restarted leaves a dead connection behind: one fresh try.
        let mut attempt = 0;
        let stream = loop {
            let mut client = AgentServiceClient::new(conn.channel(&t.node, &t.addr)?);
            match client.logs(conn.request(req.clone())).await {
                Ok(r) => break r.into_inner(),
                Err(e) if e.code() == tonic::Code::Unavailable && attempt == 0 => {
                    conn.forget(&t.node);
                    attempt += 1;
                }
                Err(e) => return Err(from_status(e)),
            }
        };
        let body = Body::from_stream(stream.map(|r| r.map(|c| bytes::Bytes::from(c.data)).map_err(std::io::Error::other)));
        Ok(([(header::CONTENT_TYPE, "text/plain")], body).into_response())
    }

    /// `pods/exec` over WebSocket. `raw_query` keeps repeated `command` parameters.
    pub async fn exec(&self, ns: &str, name: &str, raw_query: Option<&str>, ws: WebSocketUpgrade) -> Result<Response> {
        let pairs: Vec<(String, String)> = form_urlencoded::parse(raw_query.unwrap_or("").as_bytes()).into_owned().collect();
        let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let flag = |k: &str| matches!(get(k), Some("true" | "1"));
        let command: Vec<String> = pairs.iter().filter(|(k, _)| k == "command").map(|(_, v)| v.clone()).collect();
        if command.is_empty() {
            return Err(ApiError::bad_request("you must specify at least 1 command"));
        }
        let t = self.remote_target(ns, name, get("container")).await?;
        let conn = self.connector()?.clone();
        let start = ExecStart {
            pod_uid: t.pod["metadata"]["uid"].as_str().unwrap_or_default().into(),
            container: t.container.clone(),
            command,
            tty: flag("tty"),
            stdin: flag("stdin"),
        };
        let ws = ws.protocols(["v5.channel.k8s.io", "v4.channel.k8s.io"]);
        let (node, addr) = (t.node.clone(), t.addr.clone());
        Ok(ws.on_upgrade(move |socket| async move { run_exec(socket, conn, node, addr, start).await }))
    }
}

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
const CLOSE: u8 = 255;

fn exit_status(code: i32) -> Value {
    if code == 0 {
        return json!({"metadata": {}, "status": "Success"});
    }
    json!({
        "metadata": {}, "status": "Failure",
        "message": format!("command terminated with non-zero exit code: error executing command, exit code {code}"),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
    })
}

fn framed(channel: u8, data: &[u8]) -> Message {
    let mut v = Vec::with_capacity(data.len() + 1);
    v.push(channel);
    v.extend_from_slice(data);
    Message::Binary(v.into())
}

/// Opens the exec stream on the node; a node agent that restarted leaves a dead connection
/// behind, so an unavailable node gets one fresh try.
async fn open_exec(
    conn: &NodeConnector,
    node: &str,
    addr: &str,
    start: &ExecStart,
) -> Result<(mpsc::Sender<ExecInput>, tonic::Streaming<proto::node::ExecOutput>), tonic::Status> {
    let mut attempt = 0;
    loop {
        let channel = conn.channel(node, addr).map_err(|e| tonic::Status::internal(e.message))?;
        let (in_tx, in_rx) = mpsc::channel::<ExecInput>(64);
        let _ = in_tx.send(ExecInput { input: Some(exec_input::Input::Start(start.clone())) }).await;
        let mut client = AgentServiceClient::new(channel);
        match client.exec(conn.request(tokio_stream::wrappers::ReceiverStream::new(in_rx))).await {
            Ok(r) => return Ok((in_tx, r.into_inner())),
            Err(e) if e.code() == tonic::Code::Unavailable && attempt == 0 => {
                conn.forget(node);
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

async fn run_exec(socket: WebSocket, conn: Arc<NodeConnector>, node: String, addr: String, start: ExecStart) {
    let (mut sink, mut source) = socket.split();
    let (in_tx, mut outputs) = match open_exec(&conn, &node, &addr, &start).await {
        Ok(x) => x,
        Err(e) => {
            let status = json!({"metadata": {}, "status": "Failure", "message": e.message(), "reason": "InternalError"});
            let _ = sink.send(framed(ERROR, status.to_string().as_bytes())).await;
            close_normally(&mut sink).await;
            return;
        }
    };
    // Client to node: stdin, its close, and terminal resizes.
    tokio::spawn(async move {
        while let Some(Ok(msg)) = source.next().await {
            let Message::Binary(data) = msg else { continue };
            let Some((&ch, rest)) = data.split_first() else { continue };
            let input = match ch {
                STDIN => exec_input::Input::Stdin(rest.to_vec()),
                RESIZE => {
                    let size: Value = serde_json::from_slice(rest).unwrap_or_default();
                    exec_input::Input::Resize(TerminalSize {
                        width: size["Width"].as_u64().unwrap_or(80) as u32,
                        height: size["Height"].as_u64().unwrap_or(24) as u32,
                    })
                }
                CLOSE if rest.first() == Some(&STDIN) => exec_input::Input::StdinClosed(true),
                _ => continue,
            };
            if in_tx.send(ExecInput { input: Some(input) }).await.is_err() {
                break;
            }
        }
    });
    // Node to client: output, then the exit status on the error channel.
    loop {
        match outputs.message().await {
            Ok(Some(o)) => match o.output {
                Some(exec_output::Output::Stdout(d)) => {
                    if sink.send(framed(STDOUT, &d)).await.is_err() {
                        return;
                    }
                }
                Some(exec_output::Output::Stderr(d)) => {
                    if sink.send(framed(STDERR, &d)).await.is_err() {
                        return;
                    }
                }
                Some(exec_output::Output::ExitCode(code)) => {
                    let _ = sink.send(framed(ERROR, exit_status(code).to_string().as_bytes())).await;
                    break;
                }
                Some(exec_output::Output::Error(e)) => {
                    let status = json!({"metadata": {}, "status": "Failure", "message": e, "reason": "InternalError"});
                    let _ = sink.send(framed(ERROR, status.to_string().as_bytes())).await;
                    break;
                }
                None => {}
            },
            Ok(None) => break,
            Err(e) => {
                let status = json!({"metadata": {}, "status": "Failure", "message": e.message(), "reason": "InternalError"});
                let _ = sink.send(framed(ERROR, status.to_string().as_bytes())).await;
                break;
            }
        }
    }
    close_normally(&mut sink).await;
}

/// kubectl reads a close without a status (1005) as an error that hides the exit status.
async fn close_normally(sink: &mut futures::stream::SplitSink<WebSocket, Message>) {
    let frame = axum::extract::ws::CloseFrame { code: axum::extract::ws::close_code::NORMAL, reason: "".into() };
    let _ = sink.send(Message::Close(Some(frame))).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_become_the_status_kubectl_reads() {
        assert_eq!(exit_status(0)["status"], "Success");
        let s = exit_status(3);
        assert_eq!((s["reason"].as_str(), s["details"]["causes"][0]["message"].as_str()), (Some("NonZeroExitCode"), Some("3")));
    }
}
