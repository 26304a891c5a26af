//! HTTPS serving of an axum Router: TLS via rustls, HTTP/1.1 and HTTP/2 via hyper-util's auto builder.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

/// A client that connects and never finishes the handshake must not hold a task forever.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long in-flight requests get after shutdown starts. Watches never finish by themselves, so
/// connections still open after this are dropped.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Serves `app` over HTTPS on `listener` until `shutdown` resolves, then stops accepting, lets
/// in-flight requests finish for a grace period, and drops the connections that remain.
///
/// Handlers can extract the peer address with `ConnectInfo<SocketAddr>`. HTTP/1.1 upgrades
/// (WebSocket, SPDY) are supported.
pub async fn serve(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    app: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    serve_with_grace(listener, config, app, shutdown, SHUTDOWN_GRACE).await
}

async fn serve_with_grace(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    app: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> io::Result<()> {
    let acceptor = TlsAcceptor::from(config);
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);

    loop {
        tokio::select! {
            () = &mut shutdown => break,
            // Reap finished connection tasks so the set does not grow without bound.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        accept_error(e).await;
                        continue;
                    }
                };
                let watcher = graceful.watcher();
                let acceptor = acceptor.clone();
                let app = app.clone();
                connections.spawn(async move {
                    let Some(conn) = handshake(&acceptor, stream, peer).await else { return };
                    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                        req.extensions_mut().insert(ConnectInfo(peer));
                        app.clone().oneshot(req)
                    });
                    let builder = auto::Builder::new(TokioExecutor::new());
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(conn), service);
                    if let Err(e) = watcher.watch(conn.into_owned()).await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                });
            }
        }
    }

    // Closing the listener first makes new clients fail fast instead of queueing in the backlog.
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::info!(
            remaining = connections.len(),
            "shutdown grace period over; dropping open connections"
        );
    }
    connections.shutdown().await;
    Ok(())
}

async fn handshake(
    acceptor: &TlsAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    // API responses are small and latency-bound; Nagle only delays them.
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(%peer, error = %e, "setting TCP_NODELAY failed");
    }
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(conn)) => Some(conn),
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            None
        }
    }
}

/// Per-connection failures are the client's business; anything else (such as running out of file
/// descriptors) would spin the accept loop, so back off briefly.
async fn accept_error(e: io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        tracing::debug!(error = %e, "accept failed");
        return;
    }
    tracing::error!(error = %e, "accept failed; retrying in 1s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::Pki;
    use axum::body::Body;
    use axum::response::IntoResponse;
    use axum::routing::get;
    use bytes::Bytes;
    use http_body_util::{BodyExt, Empty};
    use hyper::{Request, StatusCode, Version};
    use rustls::pki_types::ServerName;
    use std::convert::Infallible;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::sync::{Mutex, mpsc, oneshot};
    use tokio_rustls::TlsConnector;

    const WAIT: Duration = Duration::from_secs(10);

    struct Server {
        addr: SocketAddr,
        ca_pem: String,
        pki: Pki,
        stop: Option<oneshot::Sender<()>>,
        task: tokio::task::JoinHandle<io::Result<()>>,
        data: tempfile::TempDir,
    }

    impl Server {
        async fn stop(mut self) -> io::Result<()> {
            if let Some(stop) = self.stop.take() {
                let _ = stop.send(());
            }
            tokio::time::timeout(WAIT, self.task)
                .await
                .expect("serve ends after shutdown")
                .expect("join")
        }
    }

    async fn start(app: axum::Router, grace: Duration) -> Server {
        let data = tempfile::tempdir().expect("tempdir");
        let pki = Pki::load_or_create(data.path(), &[]).expect("pki");
        let config = pki.server_config().expect("server config");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async move {
            let _ = stopped.await;
        };
        let task = tokio::spawn(serve_with_grace(listener, config, app, shutdown, grace));
        Server {
            addr,
            ca_pem: pki.ca_cert_pem.clone(),
            pki,
            stop: Some(stop),
            task,
            data,
        }
    }

    async fn connect(
        server: &Server,
        name: &str,
        alpn: &[&[u8]],
    ) -> io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pemfile::certs(&mut server.ca_pem.as_bytes()) {
            roots.add(cert?).map_err(io::Error::other)?;
        }
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let server_name = ServerName::try_from(name.to_string()).map_err(io::Error::other)?;
        let tcp = TcpStream::connect(server.addr).await?;
        TlsConnector::from(Arc::new(config))
            .connect(server_name, tcp)
            .await
    }

    async fn h1_sender(
        server: &Server,
        name: &str,
    ) -> hyper::client::conn::http1::SendRequest<Empty<Bytes>> {
        let tls = connect(server, name, &[b"http/1.1"]).await.expect("tls");
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .expect("h1 handshake");
        tokio::spawn(conn.with_upgrades());
        sender
    }

    async fn h2_sender(
        server: &Server,
        name: &str,
    ) -> hyper::client::conn::http2::SendRequest<Empty<Bytes>> {
        let tls = connect(server, name, &[b"h2"]).await.expect("tls");
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let (sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                .await
                .expect("h2 handshake");
        tokio::spawn(conn);
        sender
    }

    fn get_req(uri: &str) -> Request<Empty<Bytes>> {
        Request::get(uri)
            .header("host", "localhost")
            .body(Empty::new())
            .expect("request")
    }

    fn hello_app() -> axum::Router {
        axum::Router::new()
            .route("/hello", get(|| async { "hello" }))
            .route(
                "/peer",
                get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() }),
            )
    }

    #[tokio::test]
    async fn http1_request_validates_against_the_ca_by_name_and_by_ip() {
        let server = start(hello_app(), WAIT).await;
        for name in ["localhost", "127.0.0.1"] {
            let mut sender = h1_sender(&server, name).await;
            let resp = sender
                .send_request(get_req("/hello"))
                .await
                .expect("response");
            assert_eq!(resp.status(), StatusCode::OK);
            assert_eq!(resp.version(), Version::HTTP_11);
            let body = resp.into_body().collect().await.expect("body").to_bytes();
            assert_eq!(&body[..], b"hello", "{name}");
        }
        server.stop().await.expect("serve result");
    }

    #[tokio::test]
    async fn http2_request_validates_against_the_ca_by_name_and_by_ip() {
        let server = start(hello_app(), WAIT).await;
        for name in ["localhost", "127.0.0.1"] {
            let mut sender = h2_sender(&server, name).await;
            let resp = sender
                .send_request(get_req("https://localhost/hello"))
                .await
                .expect("response");
            assert_eq!(resp.status(), StatusCode::OK);
            assert_eq!(resp.version(), Version::HTTP_2);
            let body = resp.into_body().collect().await.expect("body").to_bytes();
            assert_eq!(&body[..], b"hello", "{name}");
        }
        server.stop().await.expect("serve result");
    }

    #[tokio::test]
    async fn a_name_outside_the_certificate_is_rejected_by_the_client() {
        let server = start(hello_app(), WAIT).await;
        assert!(
            connect(&server, "evil.example", &[b"http/1.1"])
                .await
                .is_err()
        );
        server.stop().await.expect("serve result");
    }

    #[tokio::test]
    async fn handlers_see_the_peer_address() {
        let server = start(hello_app(), WAIT).await;
        let tls = connect(&server, "localhost", &[b"http/1.1"])
            .await
            .expect("tls");
        let local = tls.get_ref().0.local_addr().expect("local addr");
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .expect("handshake");
        tokio::spawn(conn);
        let resp = sender
            .send_request(get_req("/peer"))
            .await
            .expect("response");
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        assert_eq!(String::from_utf8_lossy(&body), local.to_string());
        server.stop().await.expect("serve result");
    }

    #[tokio::test]
    async fn a_failed_handshake_drops_only_that_connection() {
        let server = start(hello_app(), WAIT).await;
        let mut plain = TcpStream::connect(server.addr).await.expect("connect");
        plain
            .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .expect("write");
        let mut buf = Vec::new();
        // The server closes the connection (possibly after a TLS alert); it must not hang.
        tokio::time::timeout(WAIT, plain.read_to_end(&mut buf))
            .await
            .expect("closed")
            .ok();

        let mut sender = h1_sender(&server, "localhost").await;
        let resp = sender
            .send_request(get_req("/hello"))
            .await
            .expect("response");
        assert_eq!(resp.status(), StatusCode::OK);
        server.stop().await.expect("serve result");
    }

    /// A response body fed chunk by chunk from a channel the test controls, like a watch.
    fn streaming_app() -> (axum::Router, mpsc::Sender<Bytes>) {
        let (tx, rx) = mpsc::channel::<Bytes>(4);
        let rx = Arc::new(Mutex::new(Some(rx)));
        let app = axum::Router::new().route(
            "/watch",
            get(move || {
                let rx = rx.clone();
                async move {
                    let Some(rx) = rx.lock().await.take() else {
                        return Body::empty();
                    };
                    Body::from_stream(futures::stream::unfold(rx, |mut rx| async move {
                        rx.recv()
                            .await
                            .map(|chunk| (Ok::<_, Infallible>(chunk), rx))
                    }))
                }
            }),
        );
        (app, tx)
    }

    async fn next_data<B>(body: &mut B) -> Option<Bytes>
    where
        B: hyper::body::Body<Data = Bytes> + Unpin,
        B::Error: std::fmt::Debug,
    {
        loop {
            let frame = tokio::time::timeout(WAIT, body.frame())
                .await
                .expect("frame in time")?;
            // h2 may end the stream with an empty DATA frame.
            if let Ok(data) = frame.expect("frame").into_data()
                && !data.is_empty()
            {
                return Some(data);
            }
        }
    }

    #[tokio::test]
    async fn streaming_responses_deliver_each_chunk_as_it_is_produced() {
        for h2 in [false, true] {
            let (app, tx) = streaming_app();
            let server = start(app, WAIT).await;
            let resp = if h2 {
                h2_sender(&server, "localhost")
                    .await
                    .send_request(get_req("https://localhost/watch"))
                    .await
            } else {
                h1_sender(&server, "localhost")
                    .await
                    .send_request(get_req("/watch"))
                    .await
            }
            .expect("response");
            assert_eq!(resp.status(), StatusCode::OK);
            let mut body = resp.into_body();
            for event in ["first\n", "second\n"] {
                tx.send(Bytes::from(event)).await.expect("send");
                assert_eq!(
                    next_data(&mut body).await.as_deref(),
                    Some(event.as_bytes()),
                    "h2={h2}"
                );
            }
            drop(tx);
            assert_eq!(next_data(&mut body).await, None);
            server.stop().await.expect("serve result");
        }
    }

    #[tokio::test]
    async fn http1_upgrades_hand_over_the_raw_connection() {
        let app = axum::Router::new().route(
            "/exec",
            get(|mut req: Request<Body>| async move {
                let Some(on_upgrade) = req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>()
                else {
                    return (StatusCode::BAD_REQUEST, "no upgrade").into_response();
                };
                tokio::spawn(async move {
                    let Ok(upgraded) = on_upgrade.await else {
                        return;
                    };
                    let mut io = TokioIo::new(upgraded);
                    let mut buf = [0u8; 64];
                    while let Ok(n) = io.read(&mut buf).await {
                        if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
                hyper::Response::builder()
                    .status(StatusCode::SWITCHING_PROTOCOLS)
                    .header("connection", "upgrade")
                    .header("upgrade", "echo")
                    .body(Body::empty())
                    .expect("response")
                    .into_response()
            }),
        );
        let server = start(app, WAIT).await;
        let mut sender = h1_sender(&server, "localhost").await;
        let req = Request::get("/exec")
            .header("host", "localhost")
            .header("connection", "upgrade")
            .header("upgrade", "echo")
            .body(Empty::new())
            .expect("request");
        let resp = sender.send_request(req).await.expect("response");
        assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
        let upgraded = tokio::time::timeout(WAIT, hyper::upgrade::on(resp))
            .await
            .expect("in time")
            .expect("upgrade");
        let mut io = TokioIo::new(upgraded);
        io.write_all(b"ping").await.expect("write");
        let mut buf = [0u8; 4];
        tokio::time::timeout(WAIT, io.read_exact(&mut buf))
            .await
            .expect("in time")
            .expect("read");
        assert_eq!(&buf, b"ping");
        server.stop().await.expect("serve result");
    }

    #[tokio::test]
    async fn shutdown_ends_serve_and_closes_the_listener() {
        let server = start(hello_app(), WAIT).await;
        // An idle keep-alive connection must not hold shutdown up.
        let mut sender = h1_sender(&server, "localhost").await;
        let resp = sender
            .send_request(get_req("/hello"))
            .await
            .expect("response");
        assert_eq!(resp.status(), StatusCode::OK);
        let addr = server.addr;
        server.stop().await.expect("serve result");
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "listener still accepting"
        );
    }

    #[tokio::test]
    async fn shutdown_drops_streams_still_open_after_the_grace_period() {
        let (app, tx) = streaming_app();
        let server = start(app, Duration::from_millis(200)).await;
        let resp = h1_sender(&server, "localhost")
            .await
            .send_request(get_req("/watch"))
            .await
            .expect("response");
        let mut body = resp.into_body();
        tx.send(Bytes::from_static(b"event\n")).await.expect("send");
        assert!(next_data(&mut body).await.is_some());

        let started = std::time::Instant::now();
        server.stop().await.expect("serve result");
        assert!(started.elapsed() < WAIT);
        // The stream ends (cleanly or with an error) rather than hanging.
        let end = tokio::time::timeout(WAIT, body.frame())
            .await
            .expect("stream ended");
        assert!(end.as_ref().is_none_or(|f| f.is_err()), "{end:?}");
        drop(tx);
    }

    #[tokio::test]
    async fn kubectl_trusts_the_server_and_sends_the_admin_token() {
        let Some(kubectl) = std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|d| d.join("kubectl"))
                .find(|p| p.is_file())
        }) else {
            eprintln!("kubectl not on PATH; skipping");
            return;
        };
        let app = axum::Router::new().route(
            "/whoami",
            get(|headers: hyper::HeaderMap| async move {
                headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string()
            }),
        );
        let server = start(app, WAIT).await;
        for host in ["127.0.0.1", "localhost"] {
            let kubeconfig = server.data.path().join(format!("kubeconfig-{host}"));
            let url = format!("https://{host}:{}", server.addr.port());
            server
                .pki
                .write_kubeconfig(&kubeconfig, &url)
                .expect("kubeconfig");
            let out = tokio::process::Command::new(&kubectl)
                .arg("--kubeconfig")
                .arg(&kubeconfig)
                .args(["get", "--raw", "/whoami"])
                .output();
            let out = tokio::time::timeout(WAIT, out)
                .await
                .expect("kubectl in time")
                .expect("run kubectl");
            assert!(
                out.status.success(),
                "{host}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(
                String::from_utf8_lossy(&out.stdout).trim(),
                format!("Bearer {}", server.pki.admin_token)
            );
        }
        server.stop().await.expect("serve result");
    }
}
