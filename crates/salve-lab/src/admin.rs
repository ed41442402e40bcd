//! The lab's admin endpoint: `GET /state` and `GET /log` (optionally `?host=NAME`) as JSON, on
//! a loopback port, so tests, demos and `salve lab state` can look inside the simulation while
//! salve works on it.
//!
//! It is a deliberately tiny HTTP/1.1 responder (one request per connection, `Connection:
//! close`), with a matching client for the CLI; it is meant for 127.0.0.0/8 only.

use std::net::SocketAddr;
use std::sync::Arc;

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::fleet::Fleet;
use crate::log::LogEntry;
use crate::state::HostState;

/// What `GET /state` answers.
#[derive(Debug, Serialize, serde::Deserialize)]
pub struct StateView {
    /// Simulated now.
    pub sim_time: jiff::Timestamp,
    pub time_scale: f64,
    pub hosts: Vec<HostState>,
}

/// Problems talking to an admin endpoint.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(
        "cannot reach the lab admin endpoint at {addr}: {source}; is `salve lab serve --admin {addr}` running?"
    )]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the lab admin endpoint at {addr} answered {status}")]
    Status { addr: SocketAddr, status: String },
    #[error("the lab admin endpoint at {addr} sent a malformed answer")]
    Malformed { addr: SocketAddr },
}

fn query_host(target: &str) -> Option<String> {
    let (_, query) = target.split_once('?')?;
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("host="))
        .map(str::to_string)
}

/// The JSON body for a request target, or `None` for 404.
pub fn answer(fleet: &Fleet, target: &str) -> Option<String> {
    let path = target.split('?').next().unwrap_or(target);
    let host = query_host(target);
    let json = match path {
        "/state" => {
            let core = fleet.core();
            let hosts = (0..core.len())
                .filter(|&i| host.as_deref().is_none_or(|h| h == core.name(i)))
                .map(|i| core.state(i))
                .collect();
            serde_json::to_string(&StateView {
                sim_time: core.clock.now(),
                time_scale: core.clock.scale(),
                hosts,
            })
        }
        "/log" => {
            let entries: Vec<LogEntry> = fleet
                .log()
                .entries()
                .into_iter()
                .filter(|e| host.as_deref().is_none_or(|h| h == e.host))
                .collect();
            serde_json::to_string(&entries)
        }
        _ => return None,
    };
    json.ok()
}

async fn handle(fleet: &Fleet, mut stream: TcpStream) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head);
    let mut parts = text.split_whitespace();
    let (method, target) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let (status, body) = match (method, answer(fleet, target)) {
        ("GET", Some(body)) => ("200 OK", body),
        ("GET", None) => (
            "404 Not Found",
            "{\"error\":\"try /state or /log\"}".to_string(),
        ),
        _ => (
            "405 Method Not Allowed",
            "{\"error\":\"GET only\"}".to_string(),
        ),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

/// Serve the admin endpoint until `cancel` fires.
pub async fn serve(listener: TcpListener, fleet: Arc<Fleet>, cancel: CancellationToken) {
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    let fleet = Arc::clone(&fleet);
                    tokio::spawn(async move {
                        if let Err(e) = handle(&fleet, stream).await {
                            tracing::debug!("admin connection: {e}");
                        }
                    });
                }
            }
        }
    }
}

/// `GET target` from an admin endpoint; returns the body.
pub async fn fetch(addr: SocketAddr, target: &str) -> Result<String, AdminError> {
    let connect = |source| AdminError::Connect { addr, source };
    let mut stream = TcpStream::connect(addr).await.map_err(connect)?;
    let request = format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(connect)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.map_err(connect)?;
    let text = String::from_utf8(raw).map_err(|_| AdminError::Malformed { addr })?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or(AdminError::Malformed { addr })?;
    let status = head.lines().next().unwrap_or_default();
    if !status.contains(" 200 ") {
        return Err(AdminError::Status {
            addr,
            status: status.to_string(),
        });
    }
    Ok(body.to_string())
}
