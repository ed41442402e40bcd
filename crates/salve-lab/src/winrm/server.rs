//! The WinRM listener: HTTP/1.1 keep-alive on `/wsman`, authentication, message encryption,
//! and the WS-Management cmd-shell operations, for one simulated host.
//!
//! Each accepted TCP connection is served by its own task with its own state, because NTLM
//! authenticates the connection, not the request: the context and its sealing keys live as long
//! as the socket. Listeners are cheap (one accept task, no threads), so one process can serve a
//! thousand hosts on as many loopback addresses.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::encryption;
use super::ntlm::{NtlmAcceptor, Step};
use super::shell::{Command, Shell, lock};
use super::soap::{self, Body, Fault, StreamName};
use super::tls::HostTls;
use crate::host_api::{ProtocolEvent, SimHost};

/// Windows' default `MaxEnvelopeSizekb` (500 KB) on the service side.
pub const DEFAULT_MAX_ENVELOPE: usize = 500 * 1024;
/// The OperationTimeout assumed when a request carries none (Windows: 60 s).
const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(60);
/// The envelope size assumed when a request carries no MaxEnvelopeSize (WinRM's 150 KB).
const DEFAULT_CLIENT_ENVELOPE: usize = 153_600;

/// HTTP or HTTPS (with the host's certificate).
#[derive(Debug, Clone)]
pub enum Scheme {
    Http,
    Https(HostTls),
}

/// Per-user quotas of the WinRM service (`winrm get winrm/config/service` and `.../winrs`).
#[derive(Debug, Clone)]
pub struct Quotas {
    pub max_shells_per_user: usize,
    pub max_concurrent_operations_per_user: usize,
    pub idle_timeout: Duration,
}

impl Default for Quotas {
    fn default() -> Self {
        Self {
            max_shells_per_user: 30,
            max_concurrent_operations_per_user: 1500,
            idle_timeout: Duration::from_secs(7200),
        }
    }
}

/// How a listener behaves; defaults are a stock Windows Server listener.
#[derive(Debug, Clone)]
pub struct ListenerConfig {
    pub scheme: Scheme,
    pub allow_basic: bool,
    pub allow_ntlm: bool,
    /// Windows' `AllowUnencrypted`: when false, HTTP requests must be sealed (NTLM) and Basic
    /// over HTTP is refused.
    pub allow_unencrypted: bool,
    /// Status for a plaintext body on a connection that must encrypt (Windows: 500 or 401).
    pub plaintext_refusal: StatusCode,
    pub quotas: Quotas,
    /// The service's MaxEnvelopeSize in bytes; replies never exceed the smaller of this and
    /// the client's MaxEnvelopeSize.
    pub max_envelope_size: usize,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        Self {
            scheme: Scheme::Http,
            allow_basic: true,
            allow_ntlm: true,
            allow_unencrypted: false,
            plaintext_refusal: StatusCode::INTERNAL_SERVER_ERROR,
            quotas: Quotas::default(),
            max_envelope_size: DEFAULT_MAX_ENVELOPE,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ListenerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// One request served, for per-host access statistics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessEntry {
    /// The WS-Addressing action's last segment (`Create`, `Receive`...), or `-` before SOAP.
    pub action: String,
    pub status: u16,
}

/// A bound WinRM listener for one simulated host.
pub struct WinrmListener {
    listener: TcpListener,
    ctx: Arc<HostCtx>,
}

/// Per-host state shared by the host's connections.
struct HostCtx {
    host: Arc<dyn SimHost>,
    config: ListenerConfig,
    address: String,
    machine: String,
    shells: Mutex<HashMap<String, Arc<Shell>>>,
    operations: Mutex<HashMap<String, usize>>,
    commands_started: AtomicU32,
    dropped_mid_command: AtomicBool,
    access_log: Mutex<Vec<AccessEntry>>,
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
                    if !ctx.host.accepting() {
                        // A host that is down: the TCP connection closes at once.
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
                _ = sweep.tick() => {
                    ctx.expire_idle_shells(idle);
                }
            }
        }
        ctx.drop_all_shells();
    }
}

impl HostCtx {
    /// Remove every shell and kill its commands (reboot, shutdown).
    fn drop_all_shells(&self) {
        let shells: Vec<_> = lock(&self.shells).drain().map(|(_, s)| s).collect();
        for shell in shells {
            shell.kill_all();
        }
    }

    /// Remove shells idle for `idle` or longer, recording each as expired.
    fn expire_idle_shells(&self, idle: Duration) {
        let mut expired = Vec::new();
        lock(&self.shells).retain(|_, shell| {
            let keep = shell.idle_for() < idle;
            if !keep {
                expired.push(shell.clone());
            }
            keep
        });
        for shell in expired {
            shell.kill_all();
            self.host.record(ProtocolEvent::ShellExpired {
                shell_id: shell.id.clone(),
            });
        }
    }

    fn log(&self, action: &str, status: StatusCode) {
        let action = action.rsplit('/').next().unwrap_or(action).to_string();
        lock(&self.access_log).push(AccessEntry {
            action,
            status: status.as_u16(),
        });
    }

    fn fault(&self, action: &str, relates_to: &str, fault: Fault) -> (StatusCode, String) {
        self.host.record(ProtocolEvent::Fault {
            action: action.to_string(),
            code: fault.wsman_code.to_string(),
        });
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            fault.to_xml(relates_to, &self.machine),
        )
    }
}

/// How a connection is authenticated so far.
#[derive(Default)]
enum ConnAuth {
    #[default]
    None,
    /// An NTLM handshake is half-way (challenge sent).
    NtlmPending(NtlmAcceptor),
    Ntlm {
        session: NtlmAcceptor,
        user: String,
    },
    /// Basic credentials were accepted once on this connection (recorded once).
    Basic {
        user: String,
    },
}

struct ConnState {
    auth: ConnAuth,
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
    }));
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
                    Ok(tls_stream) => builder
                        .serve_connection(TokioIo::new(tls_stream), service)
                        .await
                        .is_err(),
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
        ctx.log("-", StatusCode::NOT_FOUND);
        return Ok(empty(StatusCode::NOT_FOUND));
    }
    if req.method() != Method::POST {
        ctx.log("-", StatusCode::METHOD_NOT_ALLOWED);
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
        ctx.log("-", StatusCode::BAD_REQUEST);
        return Ok(empty(StatusCode::BAD_REQUEST));
    };

    let mut conn = state.lock().await;
    // Authentication: a header restarts it; without one, the connection's NTLM session holds.
    if let Some(header) = auth_header {
        match authenticate(&ctx, &mut conn, &header, https) {
            AuthOutcome::Accepted => {}
            AuthOutcome::Challenge(resp) => {
                ctx.log("-", resp.status());
                return Ok(resp);
            }
        }
    } else if !matches!(conn.auth, ConnAuth::Ntlm { .. }) {
        ctx.log("-", StatusCode::UNAUTHORIZED);
        return Ok(unauthorized(None));
    }
    let (user, ntlm_session) = match &mut conn.auth {
        ConnAuth::Ntlm { session, user } => (user.clone(), Some(session)),
        ConnAuth::Basic { user } => (user.clone(), None),
        // authenticate() only returns Accepted after setting Ntlm or Basic.
        ConnAuth::None | ConnAuth::NtlmPending(_) => return Ok(unauthorized(None)),
    };

    // Message encryption.
    let encrypted = encryption::is_encrypted(&content_type);
    let plaintext: Vec<u8> = if encrypted {
        let Some(session) = ntlm_session else {
            ctx.log("-", StatusCode::BAD_REQUEST);
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
                ctx.log("-", StatusCode::BAD_REQUEST);
                return Ok(empty(StatusCode::BAD_REQUEST));
            }
        }
    } else {
        if !body.is_empty() && ntlm_session.is_some() && !https && !ctx.config.allow_unencrypted {
            let status = ctx.config.plaintext_refusal;
            ctx.log("-", status);
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
        // The auth-only request pywinrm sends to set up encryption.
        ctx.log("-", StatusCode::OK);
        return Ok(empty(StatusCode::OK));
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
    ctx.log(&action, status);

    let mut conn = state.lock().await;
    if encrypted && let ConnAuth::Ntlm { session, .. } = &mut conn.auth {
        let Ok(payload) = session.seal(xml.as_bytes()) else {
            return Err(Dropped("cannot seal the reply"));
        };
        let body = encryption::frame(xml.len(), &payload);
        return Ok(response(status, encryption::CONTENT_TYPE, body));
    }
    Ok(response(
        status,
        "application/soap+xml;charset=UTF-8",
        xml.into_bytes(),
    ))
}

enum AuthOutcome {
    Accepted,
    Challenge(Response<Full<Bytes>>),
}

fn authenticate(ctx: &HostCtx, conn: &mut ConnState, header: &str, https: bool) -> AuthOutcome {
    let (scheme, value) = header.split_once(' ').unwrap_or((header, ""));
    let value = value.trim();
    let (lab_user, lab_password) = ctx.host.credentials();
    let faults = ctx.host.faults();
    let fail = |method: &str, user: String| {
        ctx.host.record(ProtocolEvent::AuthFailed {
            method: method.to_string(),
            user,
        });
        AuthOutcome::Challenge(unauthorized(None))
    };
    if scheme.eq_ignore_ascii_case("Basic") {
        if !ctx.config.allow_basic || (!https && !ctx.config.allow_unencrypted) {
            return fail("basic", String::new());
        }
        let decoded = B64
            .decode(value)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .unwrap_or_default();
        let (user, password) = decoded.split_once(':').unwrap_or((&decoded, ""));
        if faults.reject_auth || !same_account(user, lab_user) || password != lab_password {
            conn.auth = ConnAuth::None;
            return fail("basic", user.to_string());
        }
        if !matches!(&conn.auth, ConnAuth::Basic { user: u } if u == user) {
            ctx.host.record(ProtocolEvent::Authenticated {
                method: "basic".into(),
                user: user.to_string(),
            });
            conn.auth = ConnAuth::Basic {
                user: user.to_string(),
            };
        }
        return AuthOutcome::Accepted;
    }
    if !(scheme.eq_ignore_ascii_case("Negotiate") || scheme.eq_ignore_ascii_case("NTLM"))
        || !ctx.config.allow_ntlm
    {
        return fail(&scheme.to_ascii_lowercase(), String::new());
    }
    let Ok(token) = B64.decode(value) else {
        return fail("ntlm", String::new());
    };
    // NTLMSSP message type (1 = NEGOTIATE, 3 = AUTHENTICATE) at offset 8.
    let msg_type = token
        .get(8)
        .copied()
        .filter(|_| token.starts_with(b"NTLMSSP\0"));
    match msg_type {
        Some(1) => {
            let acceptor = NtlmAcceptor::new(lab_user, lab_password)
                .and_then(|mut a| a.step(&token).map(|s| (a, s)));
            match acceptor {
                Ok((acceptor, Step::Challenge(challenge))) => {
                    conn.auth = ConnAuth::NtlmPending(acceptor);
                    let value = format!("{scheme} {}", B64.encode(challenge));
                    AuthOutcome::Challenge(unauthorized(Some(&value)))
                }
                _ => {
                    conn.auth = ConnAuth::None;
                    fail("ntlm", String::new())
                }
            }
        }
        Some(3) => {
            let ConnAuth::NtlmPending(mut acceptor) = std::mem::take(&mut conn.auth) else {
                return fail("ntlm", String::new());
            };
            match acceptor.step(&token) {
                Ok(Step::Established { user }) if !faults.reject_auth => {
                    ctx.host.record(ProtocolEvent::Authenticated {
                        method: "ntlm".into(),
                        user: user.clone(),
                    });
                    conn.auth = ConnAuth::Ntlm {
                        session: acceptor,
                        user,
                    };
                    AuthOutcome::Accepted
                }
                Ok(Step::Established { user }) => fail("ntlm", user),
                Err(super::ntlm::NtlmError::LogonDenied { user }) => fail("ntlm", user),
                _ => fail("ntlm", String::new()),
            }
        }
        // SPNEGO-wrapped tokens (Kerberos or NTLM inside SPNEGO) are not served by the lab.
        _ => {
            conn.auth = ConnAuth::None;
            fail("negotiate", String::new())
        }
    }
}

fn same_account(given: &str, expected: &str) -> bool {
    let account = |u: &str| {
        let tail = u.rsplit('\\').next().unwrap_or(u);
        tail.split('@').next().unwrap_or(tail).to_lowercase()
    };
    account(given) == account(expected)
}

enum Reply {
    Soap {
        action: String,
        status: StatusCode,
        xml: String,
    },
    /// Close the TCP connection without answering.
    Drop,
}

/// Count the operation against the user's MaxConcurrentOperationsPerUser, then dispatch.
async fn dispatch_with_quota(ctx: &HostCtx, user: &str, body: &[u8], peer: SocketAddr) -> Reply {
    let max = ctx.config.quotas.max_concurrent_operations_per_user;
    let admitted = {
        let mut ops = lock(&ctx.operations);
        let n = ops.entry(user.to_string()).or_default();
        if *n >= max {
            false
        } else {
            *n += 1;
            true
        }
    };
    if admitted {
        let reply = dispatch(ctx, user, body, peer).await;
        if let Some(n) = lock(&ctx.operations).get_mut(user) {
            *n = n.saturating_sub(1);
        }
        reply
    } else {
        let relates = soap::parse(body).map(|r| r.message_id).unwrap_or_default();
        let (status, xml) = ctx.fault("operation", &relates, Fault::max_operations(max));
        Reply::Soap {
            action: "-".into(),
            status,
            xml,
        }
    }
}

async fn dispatch(ctx: &HostCtx, user: &str, body: &[u8], peer: SocketAddr) -> Reply {
    let req = match soap::parse(body) {
        Ok(r) => r,
        Err(e) => {
            let (status, xml) = ctx.fault("-", "", Fault::invalid_body(&e.to_string()));
            return Reply::Soap {
                action: "-".into(),
                status,
                xml,
            };
        }
    };
    let action = req.action.clone();
    let rel = req.message_id.clone();
    let soap_reply = |result: Result<String, Fault>| match result {
        Ok(xml) => Reply::Soap {
            action: action.clone(),
            status: StatusCode::OK,
            xml,
        },
        Err(fault) => {
            let (status, xml) = ctx.fault(&action, &rel, fault);
            Reply::Soap {
                action: action.clone(),
                status,
                xml,
            }
        }
    };
    let known = [
        soap::ACTION_CREATE,
        soap::ACTION_DELETE,
        soap::ACTION_COMMAND,
        soap::ACTION_RECEIVE,
        soap::ACTION_SEND,
        soap::ACTION_SIGNAL,
    ];
    if !known.contains(&req.action.as_str()) {
        return soap_reply(Err(Fault::action_not_supported(&req.action)));
    }
    if req.resource_uri != soap::RESOURCE_CMD {
        return soap_reply(Err(Fault::unknown_resource(&req.resource_uri)));
    }
    if req.action == soap::ACTION_CREATE {
        return soap_reply(create(ctx, user, &req, peer));
    }
    let shell_id = req.shell_id.clone().unwrap_or_default();
    let Some(shell) = lock(&ctx.shells).get(&shell_id).cloned() else {
        return soap_reply(Err(Fault::shell_not_found(&shell_id)));
    };
    shell.touch();
    match req.action.as_str() {
        soap::ACTION_DELETE => {
            lock(&ctx.shells).remove(&shell_id);
            shell.kill_all();
            ctx.host.record(ProtocolEvent::ShellDeleted { shell_id });
            soap_reply(Ok(soap::delete_response(&rel)))
        }
        soap::ACTION_COMMAND => soap_reply(command(ctx, &shell, &req)),
        soap::ACTION_SEND => soap_reply(send(&shell, &req).await),
        soap::ACTION_SIGNAL => soap_reply(signal(ctx, &shell, &req)),
        _ => match receive(ctx, &shell, &req).await {
            Ok(Some(xml)) => soap_reply(Ok(xml)),
            Ok(None) => Reply::Drop,
            Err(fault) => soap_reply(Err(fault)),
        },
    }
}

fn create(
    ctx: &HostCtx,
    user: &str,
    req: &soap::Request,
    peer: SocketAddr,
) -> Result<String, Fault> {
    let max = ctx.config.quotas.max_shells_per_user;
    let id = uuid::Uuid::new_v4().to_string().to_uppercase();
    {
        let mut shells = lock(&ctx.shells);
        let owned = shells
            .values()
            .filter(|s| same_account(&s.owner, user))
            .count();
        if ctx.host.faults().quota_exhausted || owned >= max {
            return Err(Fault::max_shells(max));
        }
        shells.insert(
            id.clone(),
            Arc::new(Shell::new(id.clone(), user.to_string())),
        );
    }
    ctx.host.record(ProtocolEvent::ShellCreated {
        shell_id: id.clone(),
    });
    let info = soap::ShellInfo {
        shell_id: &id,
        address: &ctx.address,
        owner: user,
        client_ip: &peer.ip().to_string(),
        idle_timeout: ctx.config.quotas.idle_timeout,
    };
    Ok(soap::create_response(&req.message_id, &info))
}

fn command(ctx: &HostCtx, shell: &Shell, req: &soap::Request) -> Result<String, Fault> {
    let Body::Command { command, arguments } = &req.body else {
        return Err(Fault::invalid_body("Command without rsp:CommandLine"));
    };
    let ordinal = ctx.commands_started.fetch_add(1, Ordering::SeqCst) + 1;
    let process = ctx.host.spawn(command, arguments);
    let id = uuid::Uuid::new_v4().to_string().to_uppercase();
    shell.add_command(Command::new(id.clone(), ordinal, process));
    ctx.host.record(ProtocolEvent::CommandStarted {
        shell_id: shell.id.clone(),
        command_id: id.clone(),
    });
    Ok(soap::command_response(&req.message_id, &id))
}

async fn send(shell: &Shell, req: &soap::Request) -> Result<String, Fault> {
    let Body::Send(streams) = &req.body else {
        return Err(Fault::invalid_body("Send without rsp:Send"));
    };
    for stream in streams {
        let id = stream.command_id.clone().unwrap_or_default();
        let command = shell
            .command(&id)
            .ok_or_else(|| Fault::command_not_found(&id))?;
        command
            .lock()
            .await
            .send_stdin(stream.data.clone(), stream.end);
    }
    Ok(soap::send_response(&req.message_id))
}

fn signal(ctx: &HostCtx, shell: &Shell, req: &soap::Request) -> Result<String, Fault> {
    let Body::Signal { command_id, code } = &req.body else {
        return Err(Fault::invalid_body("Signal without rsp:Signal"));
    };
    let id = command_id.clone().unwrap_or_default();
    let name = code.rsplit('/').next().unwrap_or(code).to_string();
    if ![
        soap::SIGNAL_TERMINATE,
        soap::SIGNAL_CTRL_C,
        soap::SIGNAL_CTRL_BREAK,
    ]
    .contains(&code.as_str())
    {
        return Err(Fault::invalid_body(&format!("unknown signal code {code}")));
    }
    if !shell.remove_command(&id) {
        return Err(Fault::command_not_found(&id));
    }
    ctx.host.record(ProtocolEvent::CommandSignalled {
        shell_id: shell.id.clone(),
        command_id: id,
        signal: name,
    });
    Ok(soap::signal_response(&req.message_id))
}

/// `Ok(None)`: the scenario wants the connection dropped in the middle of this output.
async fn receive(
    ctx: &HostCtx,
    shell: &Shell,
    req: &soap::Request,
) -> Result<Option<String>, Fault> {
    let Body::Receive { command_id } = &req.body else {
        return Err(Fault::invalid_body("Receive without rsp:Receive"));
    };
    let id = command_id.clone().unwrap_or_default();
    let command = shell
        .command(&id)
        .ok_or_else(|| Fault::command_not_found(&id))?;
    let timeout = req.operation_timeout.unwrap_or(DEFAULT_OPERATION_TIMEOUT);
    let max_envelope = req
        .max_envelope_size
        .unwrap_or(DEFAULT_CLIENT_ENVELOPE)
        .min(ctx.config.max_envelope_size);
    let mut command = command.lock().await;
    let batch = command.receive(timeout, max_envelope).await;
    shell.touch();
    let Some(batch) = batch else {
        return Err(Fault::timed_out());
    };
    if ctx.host.faults().drop_mid_command == Some(command.ordinal)
        && !batch.streams.is_empty()
        && !ctx.dropped_mid_command.swap(true, Ordering::SeqCst)
    {
        return Ok(None);
    }
    let streams: Vec<(StreamName, &[u8])> = batch
        .streams
        .iter()
        .map(|(s, b)| (*s, b.as_slice()))
        .collect();
    Ok(Some(soap::receive_response(
        &req.message_id,
        &command.id,
        &streams,
        batch.exit,
    )))
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
