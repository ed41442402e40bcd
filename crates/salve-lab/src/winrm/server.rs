//! The WinRM listener's server: accepting connections, HTTP/1.1 keep-alive on `/wsman` (plain
//! or TLS), and per request the authentication step ([`super::auth`]), MS-WSMV message
//! encryption ([`super::encryption`]), then the shell operation ([`super::operations`]).
//!
//! Each accepted TCP connection is served by its own task with its own state, because NTLM
//! authenticates the connection, not the request: the context and its sealing keys live as long
//! as the socket. Listeners are cheap (one accept task, no threads), so one process can serve a
//! thousand hosts on as many loopback addresses.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::auth::{AuthOutcome, ConnAuth, authenticate};
use super::context::{AccessEntry, HostCtx, ListenerConfig, Scheme};
use super::encryption;
use super::operations::{Reply, dispatch_with_quota};
use super::shell::lock;
use crate::host_api::{ProtocolEvent, SimHost};

#[derive(Debug, thiserror::Error)]
pub enum ListenerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A bound WinRM listener for one simulated host.
pub struct WinrmListener {
    listener: TcpListener,
    ctx: Arc<HostCtx>,
}

/// A cloneable view of a listener's access log.
#[derive(Clone)]
pub struct AccessLog(Arc<HostCtx>);

impl AccessLog {
    pub fn entries(&self) -> Vec<AccessEntry> {
        lock(&self.0.access_log).clone()
    }
}

impl WinrmListener {
    pub async fn bind(
        addr: SocketAddr,
        host: Arc<dyn SimHost>,
        config: ListenerConfig,
    ) -> Result<Self, ListenerError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ListenerError::Bind { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| ListenerError::Bind { addr, source })?;
        let scheme = match config.scheme {
            Scheme::Http => "http",
            Scheme::Https(_) => "https",
        };
        let ctx = Arc::new(HostCtx {
            host,
            address: format!("{scheme}://{local}/wsman"),
            machine: local.ip().to_string(),
            config,
            shells: Mutex::new(HashMap::new()),
            operations: Mutex::new(HashMap::new()),
            commands_started: AtomicU32::new(0),
            dropped_mid_command: AtomicBool::new(false),
            access_log: Mutex::new(Vec::new()),
        });
        Ok(Self { listener, ctx })
    }

    pub fn local_addr(&self) -> SocketAddr {
        // Cannot fail: bind() already read it once from the same socket.
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// The endpoint URL clients use (`http://127.0.0.5:5985/wsman`).
    pub fn endpoint(&self) -> &str {
        &self.ctx.address
    }

    pub fn access_log(&self) -> AccessLog {
        AccessLog(self.ctx.clone())
    }

    /// Accept and serve connections until `shutdown` is cancelled.
    pub async fn serve(self, shutdown: CancellationToken) {
        let ctx = self.ctx;
        let mut boot = ctx.host.boot_watch();
        let mut winrm = ctx.host.winrm_restarts();
        let idle = ctx.config.quotas.idle_timeout;
        let mut sweep = tokio::time::interval(
            (idle / 4).clamp(Duration::from_millis(10), Duration::from_secs(30)),
        );
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                accepted = self.listener.accept() => {
                    let Ok((stream, peer)) = accepted else { continue };
                    if !ctx.host.winrm_accepting() {
                        // A host that is down, or whose WinRM service is stopped: the TCP
                        // connection closes at once.
                        drop(stream);
                        continue;
                    }
                    tokio::spawn(serve_connection(ctx.clone(), stream, peer, shutdown.clone()));
                }
                changed = boot.changed() => {
                    if changed.is_err() {
                        // The simulation dropped the host; keep serving its last state.
                        boot = ctx.host.boot_watch();
                        continue;
                    }
                    ctx.drop_all_shells();
                }
                restarted = async {
                    match winrm.as_mut() {
                        Some(watch) => watch.changed().await,
                        None => std::future::pending().await,
                    }
                } => {
                    match restarted {
                        // WinRM restarted: its shells and their processes are gone.
                        Ok(()) => ctx.drop_all_shells(),
                        Err(_) => winrm = None,
                    }
                }
                _ = sweep.tick() => {
                    ctx.expire_idle_shells(idle);
                }
            }
        }
        ctx.drop_all_shells();
    }
}

struct ConnState {
    auth: ConnAuth,
    /// The client certificate presented in the TLS handshake (HTTPS), DER, chained to the lab CA.
    client_cert: Option<Vec<u8>>,
}

/// Why a connection ends without a reply.
#[derive(Debug, thiserror::Error)]
#[error("connection dropped: {0}")]
struct Dropped(&'static str);

async fn serve_connection(
    ctx: Arc<HostCtx>,
    stream: TcpStream,
    peer: SocketAddr,
    shutdown: CancellationToken,
) {
    let mut boot = ctx.host.boot_watch();
    boot.mark_unchanged();
    let https = matches!(ctx.config.scheme, Scheme::Https(_));
    let state = Arc::new(tokio::sync::Mutex::new(ConnState {
        auth: ConnAuth::None,
        client_cert: None,
    }));
    let handshake_state = state.clone();
    let svc_ctx = ctx.clone();
    let service = hyper::service::service_fn(move |req| {
        let ctx = svc_ctx.clone();
        let state = state.clone();
        async move { handle(ctx, state, req, peer, https).await }
    });
    let builder = {
        let mut b = hyper::server::conn::http1::Builder::new();
        b.keep_alive(true);
        b
    };
    let served = async {
        match &ctx.config.scheme {
            Scheme::Http => builder
                .serve_connection(TokioIo::new(stream), service)
                .await
                .is_err(),
            Scheme::Https(tls) => {
                let config = if ctx.host.faults().bad_tls {
                    tls.bad.clone()
                } else {
                    tls.good.clone()
                };
                match tokio_rustls::TlsAcceptor::from(config).accept(stream).await {
                    Ok(tls_stream) => {
                        handshake_state.lock().await.client_cert = tls_stream
                            .get_ref()
                            .1
                            .peer_certificates()
                            .and_then(|chain| chain.first())
                            .map(|cert| cert.to_vec());
                        builder
                            .serve_connection(TokioIo::new(tls_stream), service)
                            .await
                            .is_err()
                    }
                    Err(_) => false,
                }
            }
        }
    };
    tokio::select! {
        _ = served => {}
        _ = boot.changed() => {
            ctx.host.record(ProtocolEvent::ConnectionDropped { reason: "host rebooted".into() });
        }
        _ = shutdown.cancelled() => {}
    }
}

type HandlerResult = Result<Response<Full<Bytes>>, Dropped>;

async fn handle(
    ctx: Arc<HostCtx>,
    state: Arc<tokio::sync::Mutex<ConnState>>,
    req: Request<Incoming>,
    peer: SocketAddr,
    https: bool,
) -> HandlerResult {
    let faults = ctx.host.faults();
    if !faults.latency.is_zero() {
        tokio::time::sleep(faults.latency).await;
    }
    if req.uri().path() != "/wsman" {
        ctx.log(peer, "-", StatusCode::NOT_FOUND);
        return Ok(empty(StatusCode::NOT_FOUND));
    }
    if req.method() != Method::POST {
        ctx.log(peer, "-", StatusCode::METHOD_NOT_ALLOWED);
        return Ok(empty(StatusCode::METHOD_NOT_ALLOWED));
    }
    let auth_header = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let limit = ctx.config.max_envelope_size * 2 + 4096;
    let Ok(body) = Limited::new(req.into_body(), limit)
        .collect()
        .await
        .map(|b| b.to_bytes())
    else {
        ctx.log(peer, "-", StatusCode::BAD_REQUEST);
        return Ok(empty(StatusCode::BAD_REQUEST));
    };

    let mut conn = state.lock().await;
    // Authentication: a header restarts it; without one, the connection's NTLM or Kerberos
    // context holds.
    let mut mutual = None;
    if let Some(header) = auth_header {
        let ConnState { auth, client_cert } = &mut *conn;
        match authenticate(&ctx, auth, &header, https, client_cert.as_deref()) {
            AuthOutcome::Accepted(token) => mutual = token,
            AuthOutcome::Challenge(challenge) => {
                ctx.log(peer, "-", StatusCode::UNAUTHORIZED);
                return Ok(unauthorized(challenge.as_deref()));
            }
        }
    } else if !conn.auth.has_session() {
        ctx.log(peer, "-", StatusCode::UNAUTHORIZED);
        return Ok(unauthorized(None));
    }
    // authenticate() only returns Accepted after establishing a session or Basic.
    let Some((user, mut session)) = conn.auth.established() else {
        return Ok(unauthorized(None));
    };

    // Message encryption.
    let encrypted = encryption::is_encrypted(&content_type);
    let plaintext: Vec<u8> = if encrypted {
        let Some(session) = session.as_mut() else {
            ctx.log(peer, "-", StatusCode::BAD_REQUEST);
            return Ok(empty(StatusCode::BAD_REQUEST));
        };
        let unsealed = encryption::unframe(&content_type, &body)
            .map_err(|_| ())
            .and_then(|(len, payload)| {
                session
                    .unseal(payload)
                    .map_err(|_| ())
                    .and_then(|p| if p.len() == len { Ok(p) } else { Err(()) })
            });
        match unsealed {
            Ok(p) => p,
            Err(()) => {
                ctx.log(peer, "-", StatusCode::BAD_REQUEST);
                return Ok(empty(StatusCode::BAD_REQUEST));
            }
        }
    } else {
        if !body.is_empty() && session.is_some() && !https && !ctx.config.allow_unencrypted {
            let status = ctx.config.plaintext_refusal;
            ctx.log(peer, "-", status);
            return Ok(if status == StatusCode::UNAUTHORIZED {
                unauthorized(None)
            } else {
                empty(status)
            });
        }
        body.to_vec()
    };
    drop(conn);

    if plaintext.is_empty() {
        // The auth-only request pywinrm and winrm-rs send to set up encryption.
        ctx.log(peer, "-", StatusCode::OK);
        return Ok(with_mutual(empty(StatusCode::OK), mutual.as_deref()));
    }

    let (action, status, xml) = match dispatch_with_quota(&ctx, &user, &plaintext, peer).await {
        Reply::Soap {
            action,
            status,
            xml,
        } => (action, status, xml),
        Reply::Drop => {
            ctx.host.record(ProtocolEvent::ConnectionDropped {
                reason: "dropped mid-command (scenario fault)".into(),
            });
            return Err(Dropped("mid-command fault"));
        }
    };
    ctx.log(peer, &action, status);

    let mut conn = state.lock().await;
    if encrypted && let Some((_, Some(mut session))) = conn.auth.established() {
        let Ok(payload) = session.seal(xml.as_bytes()) else {
            return Err(Dropped("cannot seal the reply"));
        };
        let body = encryption::frame(xml.len(), &payload);
        return Ok(with_mutual(
            response(status, encryption::CONTENT_TYPE, body),
            mutual.as_deref(),
        ));
    }
    Ok(with_mutual(
        response(
            status,
            "application/soap+xml;charset=UTF-8",
            xml.into_bytes(),
        ),
        mutual.as_deref(),
    ))
}

/// Add the server's final authentication token (Kerberos' AP-REP) to a successful reply, as
/// HTTP Negotiate does (RFC 4559 §5).
fn with_mutual(mut resp: Response<Full<Bytes>>, token: Option<&str>) -> Response<Full<Bytes>> {
    if let Some(v) = token.and_then(|t| HeaderValue::from_str(t).ok()) {
        resp.headers_mut().append(WWW_AUTHENTICATE, v);
    }
    resp
}

fn empty(status: StatusCode) -> Response<Full<Bytes>> {
    response(status, "", Vec::new())
}

fn response(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(
        hyper::header::SERVER,
        HeaderValue::from_static("Microsoft-HTTPAPI/2.0"),
    );
    if !content_type.is_empty()
        && let Ok(v) = HeaderValue::from_str(content_type)
    {
        headers.insert(CONTENT_TYPE, v);
    }
    resp
}

/// 401: a challenge (`Negotiate <token>`) or the schemes on offer, Negotiate first as Windows does.
fn unauthorized(challenge: Option<&str>) -> Response<Full<Bytes>> {
    let mut resp = empty(StatusCode::UNAUTHORIZED);
    let headers = resp.headers_mut();
    match challenge.and_then(|c| HeaderValue::from_str(c).ok()) {
        Some(v) => {
            headers.append(WWW_AUTHENTICATE, v);
        }
        None => {
            headers.append(WWW_AUTHENTICATE, HeaderValue::from_static("Negotiate"));
            headers.append(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"WSMAN\""),
            );
        }
    }
    resp
}
