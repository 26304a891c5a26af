//! The DNS socket loops: UDP and TCP (length-prefixed), one task per query.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, CNAME, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::watch;
use tracing::debug;

use super::records::{Answer, Records, TTL};

/// How long one upstream gets before the next is tried.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
/// A TCP client that sends nothing for this long is dropped.
const TCP_IDLE: Duration = Duration::from_secs(10);

fn reply_to(req: &Message, code: ResponseCode) -> Message {
    let mut m = Message::new();
    m.set_id(req.id())
        .set_message_type(MessageType::Response)
        .set_op_code(req.op_code())
        .set_recursion_desired(req.recursion_desired())
        .set_recursion_available(true)
        .set_response_code(code);
    m.add_queries(req.queries().iter().cloned());
    m
}

/// A FORMERR for bytes that did not parse, if they at least hold an id.
fn format_error(bytes: &[u8]) -> Option<Vec<u8>> {
    let id = u16::from_be_bytes([*bytes.first()?, *bytes.get(1)?]);
    Message::error_msg(id, OpCode::Query, ResponseCode::FormErr).to_vec().ok()
}

fn name(s: &str) -> Option<Name> {
    Name::from_ascii(format!("{s}.")).ok()
}

/// The answer to a query from the cluster records, or None when it must go upstream.
pub fn answer(req: &Message, records: &Records) -> Option<Message> {
    if req.message_type() != MessageType::Query || req.op_code() != OpCode::Query {
        return Some(reply_to(req, ResponseCode::NotImp));
    }
    let [q] = req.queries() else { return Some(reply_to(req, ResponseCode::FormErr)) };
    let qname = q.name().to_ascii();
    let entry = match records.lookup(&qname) {
        Answer::Forward => return None,
        Answer::NxDomain => {
            let mut m = reply_to(req, ResponseCode::NXDomain);
            m.set_authoritative(true);
            return Some(m);
        }
        Answer::Empty => None,
        Answer::Found(e) => Some(e),
    };
    let mut m = reply_to(req, ResponseCode::NoError);
    m.set_authoritative(true);
    let owner = q.name().clone();
    if let Some(e) = entry {
        if let Some(target) = e.cname.as_deref().and_then(name) {
            m.add_answer(Record::from_rdata(owner.clone(), TTL, RData::CNAME(CNAME(target))));
        } else {
            match q.query_type() {
                RecordType::A | RecordType::ANY => {
                    m.add_answers(e.a.iter().map(|ip| Record::from_rdata(owner.clone(), TTL, RData::A(A(*ip)))));
                }
                RecordType::SRV => {
                    m.add_answers(
                        e.srv.iter().filter_map(|(port, target)| Some(Record::from_rdata(owner.clone(), TTL, RData::SRV(SRV::new(0, 100, *port, name(target)?))))),
                    );
                }
                _ => {}
            }
        }
    }
    Some(m)
}

/// Sends `bytes` to each upstream in turn over UDP; the first reply wins.
async fn forward_udp(bytes: &[u8], upstreams: &[SocketAddr]) -> Option<Vec<u8>> {
    for up in upstreams {
        let local: SocketAddr = if up.is_ipv4() { "0.0.0.0:0".parse().ok()? } else { "[::]:0".parse().ok()? };
        let Ok(sock) = UdpSocket::bind(local).await else { continue };
        if sock.connect(up).await.is_err() || sock.send(bytes).await.is_err() {
            continue;
        }
        let mut buf = vec![0u8; 65_535];
        match tokio::time::timeout(UPSTREAM_TIMEOUT, sock.recv(&mut buf)).await {
            Ok(Ok(n)) => {
                buf.truncate(n);
                return Some(buf);
            }
            _ => debug!(upstream = %up, "upstream did not answer"),
        }
    }
    None
}

async fn forward_tcp(bytes: &[u8], upstreams: &[SocketAddr]) -> Option<Vec<u8>> {
    for up in upstreams {
        let attempt = async {
            let mut s = TcpStream::connect(up).await.ok()?;
            s.write_all(&(bytes.len() as u16).to_be_bytes()).await.ok()?;
            s.write_all(bytes).await.ok()?;
            let len = s.read_u16().await.ok()? as usize;
            let mut buf = vec![0u8; len];
            s.read_exact(&mut buf).await.ok()?;
            Some(buf)
        };
        if let Ok(Some(reply)) = tokio::time::timeout(UPSTREAM_TIMEOUT, attempt).await {
            return Some(reply);
        }
    }
    None
}

/// The reply to one query's bytes (None: not even an id to answer to).
async fn handle(bytes: &[u8], records: &Records, upstreams: &[SocketAddr], tcp: bool) -> Option<Vec<u8>> {
    let req = match Message::from_vec(bytes) {
        Ok(m) => m,
        Err(_) => return format_error(bytes),
    };
    if let Some(reply) = answer(&req, records) {
        return reply.to_vec().ok();
    }
    let forwarded = if tcp { forward_tcp(bytes, upstreams).await } else { forward_udp(bytes, upstreams).await };
    match forwarded {
        Some(reply) => Some(reply),
        None => reply_to(&req, ResponseCode::ServFail).to_vec().ok(),
    }
}

async fn serve_tcp_client(mut s: TcpStream, records: watch::Receiver<Arc<Records>>, upstreams: Arc<Vec<SocketAddr>>) {
    loop {
        let Ok(Ok(len)) = tokio::time::timeout(TCP_IDLE, s.read_u16()).await else { return };
        let mut buf = vec![0u8; len as usize];
        if s.read_exact(&mut buf).await.is_err() {
            return;
        }
        let current = records.borrow().clone();
        let Some(reply) = handle(&buf, &current, &upstreams, true).await else { return };
        let Ok(n) = u16::try_from(reply.len()) else { return };
        if s.write_all(&n.to_be_bytes()).await.is_err() || s.write_all(&reply).await.is_err() {
            return;
        }
    }
}

pub async fn serve(
    udp: UdpSocket,
    tcp: TcpListener,
    records: watch::Receiver<Arc<Records>>,
    upstreams: Vec<SocketAddr>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let udp = Arc::new(udp);
    let upstreams = Arc::new(upstreams);
    let mut buf = vec![0u8; 65_535];
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return Ok(()),
            r = udp.recv_from(&mut buf) => {
                // Errors here are per-datagram (e.g. ICMP from a client that went away).
                let Ok((n, from)) = r else { continue };
                let bytes = buf[..n].to_vec();
                let (udp, records, upstreams) = (udp.clone(), records.borrow().clone(), upstreams.clone());
                tokio::spawn(async move {
                    if let Some(reply) = handle(&bytes, &records, &upstreams, false).await {
                        let _ = udp.send_to(&reply, from).await;
                    }
                });
            }
            r = tcp.accept() => {
                let Ok((s, _)) = r else { continue };
                tokio::spawn(serve_tcp_client(s, records.clone(), upstreams.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests;
