//! The SSH transport, on russh: for Windows hosts running OpenSSH (Windows Server 2019 and
//! later ship it), or anything else with an sshd in front of PowerShell.
//!
//! Each host gets one SSH connection for the whole run; every command runs on a new session
//! channel of it (`exec`), so a 20-task play costs one TCP connection, one key exchange and one
//! authentication. The connection is opened by [`SshConnector::connect`] (so host-key and
//! authentication problems show up before the first task), kept alive with keepalives, and
//! re-opened on the next command after a reboot ([`Transport::reset`]) or when it was lost
//! between commands (nothing ran yet, so reconnecting cannot run a step twice).
//!
//! Commands are `powershell.exe -NoProfile -NonInteractive -EncodedCommand ...`, or the script
//! on stdin when the command line would be too long (see [`crate::script`]); stdout and stderr
//! (extended data 1) are kept apart and streamed line by line, CLIXML stderr is decoded. On
//! timeout or cancellation the command is sent TERM, its channel EOF and close, so the host ends
//! it (Windows OpenSSH ends a session's processes with its channel).
//!
//! Host keys are checked against an OpenSSH `known_hosts` file (`[host]:port` and hashed
//! entries included). The default is strict: an unknown key is refused with the fingerprint and
//! the command to record it; `salve_ssh_host_key_checking: accept-new` records the keys of hosts
//! never seen; a changed key is always refused.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use russh::client::{self, AuthResult, Handle, Msg};
use russh::keys::known_hosts::{known_host_keys_path, learn_known_hosts_path};
use russh::keys::{
    Algorithm, HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate,
};
use russh::{Channel, ChannelMsg, ChannelWriteHalf, Disconnect, Sig};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::streams::Streams;
use super::{
    Cause, ConnectionSpec, Connector, RunRequest, ScriptOutput, Transport, TransportError,
};
use crate::script::{Deliver as _, Delivery};
use crate::secret::Secret;

const DEFAULT_PORT: u16 = 22;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// A keepalive after this much silence; the connection counts as lost after three unanswered.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
/// How long a goodbye to the host may take at the end of a run.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Opens SSH connections.
pub struct SshConnector {
    connect_timeout: Duration,
}

impl SshConnector {
    pub fn new() -> Self {
        Self {
            connect_timeout: CONNECT_TIMEOUT,
        }
    }

    /// Limit for TCP connect plus SSH handshake (default 15 s).
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }
}

impl Default for SshConnector {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Connector for SshConnector {
    async fn connect(&self, spec: &ConnectionSpec) -> Result<Arc<dyn Transport>, TransportError> {
        let target = Target::from_spec(spec, self.connect_timeout)?;
        let handle = target.open().await?;
        Ok(Arc::new(SshTransport {
            target,
            session: tokio::sync::Mutex::new(Some(Arc::new(handle))),
        }))
    }
}

/// A way to prove who we are, tried in order.
enum Credential {
    Key { path: PathBuf, key: Arc<PrivateKey> },
    Password(Secret),
}

impl Credential {
    fn describe(&self) -> String {
        match self {
            Credential::Key { path, key } => format!(
                "key {} ({})",
                path.display(),
                key.public_key().fingerprint(HashAlg::Sha256)
            ),
            Credential::Password(_) => "the password".to_string(),
        }
    }
}

/// Where host keys are checked, and whether unknown ones may be learned.
struct HostKeyPolicy {
    file: PathBuf,
    accept_new: bool,
}

/// Everything needed to (re)open the connection to one host.
struct Target {
    address: String,
    port: u16,
    endpoint: String,
    user: String,
    credentials: Vec<Credential>,
    host_keys: Arc<HostKeyPolicy>,
    connect_timeout: Duration,
}

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

/// `~/x` → `$HOME/x`, as inventories written for Ansible spell key paths.
fn expand_home(path: &Path) -> PathBuf {
    match (path.strip_prefix("~"), home()) {
        (Ok(rest), Some(home)) => home.join(rest),
        _ => path.to_path_buf(),
    }
}

fn load_key(name: &str, path: &Path) -> Result<Credential, TransportError> {
    let key = russh::keys::load_secret_key(path, None).map_err(|e| {
        let why = match &e {
            russh::keys::Error::KeyIsEncrypted => "it is encrypted with a passphrase, which salve \
                cannot ask for; use a key without one, readable only by you"
                .to_string(),
            russh::keys::Error::IO(io) => format!("cannot read it: {io}"),
            other => format!("not a private key salve can use: {other}"),
        };
        TransportError::config_caused_by(
            format!(
                "{name}: SSH key {} (ansible_ssh_private_key_file): {why}",
                path.display()
            ),
            e,
        )
    })?;
    Ok(Credential::Key {
        path: path.to_path_buf(),
        key: Arc::new(key),
    })
}

impl Target {
    fn from_spec(spec: &ConnectionSpec, connect_timeout: Duration) -> Result<Self, TransportError> {
        let name = &spec.name;
        let user = spec.user.clone().ok_or_else(|| {
            TransportError::config(format!(
                "{name}: no SSH user set; set ansible_user (a domain user as `CONTOSO\\admin` or \
                 `admin@contoso.local`)"
            ))
        })?;
        let mut credentials = Vec::new();
        if let Some(path) = &spec.ssh.key_file {
            credentials.push(load_key(name, &expand_home(path))?);
        }
        if let Some(reference) = &spec.password {
            let secret = reference.resolve().map_err(|e| {
                TransportError::config_caused_by(format!("{name}: password: {e}"), e)
            })?;
            credentials.push(Credential::Password(secret));
        }
        if credentials.is_empty() {
            // As ssh(1) does: the user's default identities, when they exist.
            let defaults = home()
                .map(|h| ["id_ed25519", "id_ecdsa", "id_rsa"].map(|f| h.join(".ssh").join(f)))
                .into_iter()
                .flatten()
                .filter(|p| p.is_file());
            for path in defaults {
                credentials.push(load_key(name, &path)?);
            }
        }
        if credentials.is_empty() {
            return Err(TransportError::config(format!(
                "{name}: no SSH key or password; set ansible_ssh_private_key_file or \
                 ansible_password (env:NAME, file:PATH or prompt)"
            )));
        }
        let file = match &spec.ssh.known_hosts {
            Some(path) => expand_home(path),
            None => home()
                .map(|h| h.join(".ssh").join("known_hosts"))
                .ok_or_else(|| {
                    TransportError::config(format!(
                        "{name}: HOME is not set, so there is no default known_hosts file; set \
                         salve_ssh_known_hosts"
                    ))
                })?,
        };
        let port = spec.port.unwrap_or(DEFAULT_PORT);
        Ok(Target {
            address: spec.address.clone(),
            port,
            endpoint: format!("{}:{port}", spec.address),
            user,
            credentials,
            host_keys: Arc::new(HostKeyPolicy {
                file,
                accept_new: spec.ssh.accept_new_host_keys,
            }),
            connect_timeout,
        })
    }

    /// Connect, check the host key and authenticate.
    async fn open(&self) -> Result<Handle<HostKeyCheck>, TransportError> {
        let stream = self.connect_tcp().await?;
        // Prefer the host key types known_hosts already has for this host, as ssh(1) does, so
        // a host recorded with only its RSA key is not refused for offering ed25519 first.
        let known: Vec<Algorithm> =
            known_host_keys_path(&self.address, self.port, &self.host_keys.file)
                .map(|keys| keys.into_iter().map(|(_, k)| k.algorithm()).collect())
                .unwrap_or_default();
        let config = Arc::new(client_config(&known));
        let problem = Arc::new(Mutex::new(None));
        let handler = HostKeyCheck {
            address: self.address.clone(),
            port: self.port,
            policy: self.host_keys.clone(),
            problem: problem.clone(),
        };
        let handshake = client::connect_stream(config, stream, handler);
        let mut handle = tokio::time::timeout(self.connect_timeout, handshake)
            .await
            .map_err(|_| TransportError::Unreachable {
                endpoint: self.endpoint.clone(),
                cause: Cause::text(format!(
                    "no SSH handshake within {} s; is an SSH server listening there?",
                    self.connect_timeout.as_secs()
                )),
            })?
            .map_err(|e| {
                let refused = problem.lock().ok().and_then(|mut p| p.take());
                match refused {
                    Some(p) => self.auth_error(Cause::new(p)),
                    None => classify(e, &self.endpoint),
                }
            })?;
        self.authenticate(&mut handle).await?;
        tracing::debug!(endpoint = %self.endpoint, user = %self.user, "ssh connection open");
        Ok(handle)
    }

    async fn connect_tcp(&self) -> Result<TcpStream, TransportError> {
        let addrs: Vec<_> = tokio::net::lookup_host((self.address.as_str(), self.port))
            .await
            .map_err(|e| TransportError::Resolve {
                host: self.address.clone(),
                cause: Cause::with_text(e.to_string(), e),
            })?
            .collect();
        let mut last = None;
        for addr in addrs {
            match tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => {
                    // Commands are small request/response exchanges: do not batch them.
                    let _ = stream.set_nodelay(true);
                    return Ok(stream);
                }
                Ok(Err(e)) => last = Some(e),
                Err(_) => {
                    last = Some(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("no answer within {} s", self.connect_timeout.as_secs()),
                    ))
                }
            }
        }
        Err(match last {
            Some(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                TransportError::Refused {
                    endpoint: self.endpoint.clone(),
                    cause: Cause::new(e),
                }
            }
            Some(e) => TransportError::Unreachable {
                endpoint: self.endpoint.clone(),
                cause: Cause::with_text(e.to_string(), e),
            },
            None => TransportError::Resolve {
                host: self.address.clone(),
                cause: Cause::text("the name has no addresses"),
            },
        })
    }

    async fn authenticate(&self, handle: &mut Handle<HostKeyCheck>) -> Result<(), TransportError> {
        let mut refused = Vec::new();
        let mut accepted_methods = String::new();
        for credential in &self.credentials {
            let result = match credential {
                Credential::Key { key, .. } => {
                    // RSA keys sign with SHA-2 when the server says it can (OpenSSH 8.8 and
                    // later refuse the old SHA-1 `ssh-rsa`).
                    let hash = if matches!(key.algorithm(), Algorithm::Rsa { .. }) {
                        handle
                            .best_supported_rsa_hash()
                            .await
                            .map_err(|e| classify(e, &self.endpoint))?
                            .flatten()
                    } else {
                        None
                    };
                    let key = PrivateKeyWithHashAlg::new(key.clone(), hash);
                    handle.authenticate_publickey(&self.user, key).await
                }
                Credential::Password(secret) => {
                    handle
                        .authenticate_password(&self.user, secret.expose())
                        .await
                }
            }
            .map_err(|e| classify(e, &self.endpoint))?;
            match result {
                AuthResult::Success => return Ok(()),
                AuthResult::Failure {
                    remaining_methods, ..
                } => {
                    refused.push(credential.describe());
                    accepted_methods = remaining_methods
                        .iter()
                        .map(<&str>::from)
                        .collect::<Vec<_>>()
                        .join(", ");
                }
            }
        }
        Err(self.auth_error(Cause::text(format!(
            "the server refused {} (it accepts: {accepted_methods}); for a key, add its public \
             half to the user's authorized_keys (on Windows, administrators use \
             C:\\ProgramData\\ssh\\administrators_authorized_keys)",
            refused.join(", then ")
        ))))
    }

    fn auth_error(&self, cause: Cause) -> TransportError {
        TransportError::Auth {
            endpoint: self.endpoint.clone(),
            user: self.user.clone(),
            cause,
        }
    }
}

fn client_config(known: &[Algorithm]) -> client::Config {
    let mut preferred = russh::Preferred::default();
    let same_family = |a: &Algorithm, b: &Algorithm| {
        a == b || matches!((a, b), (Algorithm::Rsa { .. }, Algorithm::Rsa { .. }))
    };
    let mut keys = preferred.key.to_vec();
    // A stable sort keeps russh's order within each group.
    keys.sort_by_key(|a| !known.iter().any(|k| same_family(a, k)));
    preferred.key = keys.into();
    client::Config {
        preferred,
        keepalive_interval: Some(KEEPALIVE_INTERVAL),
        keepalive_max: 3,
        nodelay: true,
        ..Default::default()
    }
}

/// Why a host key was not accepted; the text is shown to the user.
#[derive(Debug, thiserror::Error)]
enum HostKeyProblem {
    #[error(
        "host key {fingerprint} ({algorithm}) is not in {file}{others}; if it is the host's key, \
         record it with `ssh-keyscan -p {port} {host} >> {file}`, or set \
         salve_ssh_host_key_checking: accept-new to record keys of new hosts on first use"
    )]
    Unknown {
        fingerprint: String,
        algorithm: String,
        file: String,
        host: String,
        port: u16,
        others: String,
    },
    #[error(
        "HOST KEY CHANGED: the host offered {fingerprint} ({algorithm}) but line {line} of {file} \
         holds another {algorithm} key for it; someone may be intercepting the connection. If \
         the host was reinstalled, check the new key with its administrator, then remove the old \
         one with `ssh-keygen -R '{entry}' -f {file}`"
    )]
    Changed {
        fingerprint: String,
        algorithm: String,
        file: String,
        line: usize,
        entry: String,
    },
    #[error(
        "the host presented an OpenSSH host certificate; salve checks plain host keys only, so \
         record the host's plain key in known_hosts"
    )]
    Certificate,
    #[error("cannot use known_hosts file {file}: {source}")]
    File {
        file: String,
        #[source]
        source: russh::keys::Error,
    },
    #[error("cannot use known_hosts file {file}: cannot record the new host key: {source}")]
    Record {
        file: String,
        #[source]
        source: russh::keys::Error,
    },
}

/// Checks the server's host key during the handshake; a refusal is kept for the error text.
struct HostKeyCheck {
    address: String,
    port: u16,
    policy: Arc<HostKeyPolicy>,
    problem: Arc<Mutex<Option<HostKeyProblem>>>,
}

impl client::Handler for HostKeyCheck {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        offered: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let verdict = match offered {
            PublicKeyOrCertificate::PublicKey { key, .. } => {
                check_host_key(&self.address, self.port, key, &self.policy)
            }
            PublicKeyOrCertificate::Certificate(_) => Err(HostKeyProblem::Certificate),
        };
        match verdict {
            Ok(()) => Ok(true),
            Err(problem) => {
                if let Ok(mut slot) = self.problem.lock() {
                    *slot = Some(problem);
                }
                Ok(false)
            }
        }
    }
}

/// The known_hosts name of a host: `host`, or `[host]:port` off port 22.
fn known_hosts_entry(host: &str, port: u16) -> String {
    if port == DEFAULT_PORT {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

fn check_host_key(
    host: &str,
    port: u16,
    key: &PublicKey,
    policy: &HostKeyPolicy,
) -> Result<(), HostKeyProblem> {
    let file = policy.file.display().to_string();
    let known =
        known_host_keys_path(host, port, &policy.file).map_err(|e| HostKeyProblem::File {
            file: file.clone(),
            source: e,
        })?;
    if known.iter().any(|(_, k)| k.key_data() == key.key_data()) {
        return Ok(());
    }
    let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
    let algorithm = key.algorithm().to_string();
    if let Some((line, _)) = known.iter().find(|(_, k)| k.algorithm() == key.algorithm()) {
        return Err(HostKeyProblem::Changed {
            fingerprint,
            algorithm,
            file,
            line: *line,
            entry: known_hosts_entry(host, port),
        });
    }
    // Learn only hosts never seen: a host recorded with other key types offering a new type
    // is as suspicious as a changed key.
    if policy.accept_new && known.is_empty() {
        learn_known_hosts_path(host, port, key, &policy.file).map_err(|e| {
            HostKeyProblem::Record {
                file: file.clone(),
                source: e,
            }
        })?;
        tracing::warn!(host, port, %fingerprint, known_hosts = %file, "recorded the host key of a new host (accept-new)");
        return Ok(());
    }
    let others = if known.is_empty() {
        String::new()
    } else {
        let types: Vec<String> = known
            .iter()
            .map(|(_, k)| k.algorithm().to_string())
            .collect();
        format!(
            " (which holds only {} keys for it, so it is not learned automatically)",
            types.join(", ")
        )
    };
    Err(HostKeyProblem::Unknown {
        fingerprint,
        algorithm,
        file,
        host: host.to_string(),
        port,
        others,
    })
}

/// One host's connection, reused by every command.
struct SshTransport {
    target: Target,
    session: tokio::sync::Mutex<Option<Arc<Handle<HostKeyCheck>>>>,
}

impl SshTransport {
    /// The live connection, opened anew when there is none or when `stale` (seen dead by
    /// the caller) is still the current one.
    async fn session(
        &self,
        stale: Option<&Arc<Handle<HostKeyCheck>>>,
    ) -> Result<Arc<Handle<HostKeyCheck>>, TransportError> {
        let mut slot = self.session.lock().await;
        if let Some(current) = slot.as_ref() {
            let is_stale = stale.is_some_and(|s| Arc::ptr_eq(s, current));
            if !is_stale && !current.is_closed() {
                return Ok(current.clone());
            }
        }
        *slot = None;
        let handle = Arc::new(self.target.open().await?);
        *slot = Some(handle.clone());
        Ok(handle)
    }

    async fn open_channel(&self) -> Result<Channel<Msg>, TransportError> {
        let handle = self.session(None).await?;
        match handle.channel_open_session().await {
            Ok(channel) => Ok(channel),
            // The connection died since the last command (a reboot, an idle cut). Nothing ran
            // yet, so reconnecting once is safe.
            Err(e) if connection_lost(&e) => {
                tracing::debug!(endpoint = %self.target.endpoint, "ssh connection lost; reconnecting");
                let handle = self.session(Some(&handle)).await?;
                handle
                    .channel_open_session()
                    .await
                    .map_err(|e| classify(e, &self.target.endpoint))
            }
            Err(e) => Err(classify(e, &self.target.endpoint)),
        }
    }
}

#[async_trait]
impl Transport for SshTransport {
    async fn run(&self, request: RunRequest) -> Result<ScriptOutput, TransportError> {
        let deadline = Instant::now() + request.timeout;
        let channel = tokio::select! {
            opened = self.open_channel() => opened?,
            _ = tokio::time::sleep_until(deadline) => {
                return Err(TransportError::Timeout { after: request.timeout });
            }
            _ = request.cancel.cancelled() => return Err(TransportError::Cancelled),
        };
        let Delivery {
            program,
            arguments,
            stdin,
        } = request.script.delivery();
        let command = format!("{program} {arguments}");
        let endpoint = &self.target.endpoint;
        let (mut read, write) = channel.split();
        write
            .exec(true, command)
            .await
            .map_err(|e| classify(e, endpoint))?;
        let feed = feed_stdin(&write, stdin);
        tokio::pin!(feed);
        let mut fed = false;
        let mut out = Streams::new(request.output.clone());
        let mut signal = None;
        let stopped = loop {
            tokio::select! {
                // A write error means the command ended without reading all of its input;
                // its exit status says how it went.
                _ = &mut feed, if !fed => fed = true,
                msg = read.wait() => match msg {
                    Some(ChannelMsg::Data { data }) => out.push(&data, &[]),
                    Some(ChannelMsg::ExtendedData { data, ext: 1 }) => out.push(&[], &data),
                    Some(ChannelMsg::ExitStatus { exit_status }) => {
                        out.exit = Some(i32::try_from(exit_status).unwrap_or(i32::MAX));
                    }
                    Some(ChannelMsg::ExitSignal { signal_name, error_message, .. }) => {
                        signal = Some(format!("{signal_name:?} {error_message}").trim().to_string());
                    }
                    Some(ChannelMsg::Failure) => break Some(TransportError::Protocol {
                        endpoint: endpoint.clone(),
                        cause: Cause::text("the server refused to run the command; check the \
                                            account's shell and ForceCommand settings"),
                    }),
                    Some(ChannelMsg::Close) => break None,
                    Some(_) => {}
                    None => break Some(TransportError::Dropped {
                        endpoint: endpoint.clone(),
                        cause: Cause::text("the connection was lost while the command ran; if \
                                            the host restarted, check the step's result before \
                                            running it again"),
                    }),
                },
                _ = tokio::time::sleep_until(deadline) => break Some(TransportError::Timeout { after: request.timeout }),
                _ = request.cancel.cancelled() => break Some(TransportError::Cancelled),
            }
        };
        if let Some(error) = stopped {
            stop_command(&write).await;
            return Err(error);
        }
        match (out.exit, signal) {
            (Some(_), _) => Ok(out.finish()),
            (None, Some(signal)) => {
                out.push(
                    &[],
                    format!("\nthe command was ended by signal {signal}\n").as_bytes(),
                );
                out.exit = Some(-1);
                Ok(out.finish())
            }
            (None, None) => Err(TransportError::Protocol {
                endpoint: endpoint.clone(),
                cause: Cause::text(
                    "the server closed the command's channel without an exit status",
                ),
            }),
        }
    }

    async fn reset(&self) {
        // After a reboot the old connection is dead: forget it, the next run reconnects.
        self.session.lock().await.take();
    }

    async fn close(&self) {
        if let Some(handle) = self.session.lock().await.take() {
            let bye = handle.disconnect(Disconnect::ByApplication, "salve run finished", "en");
            let _ = tokio::time::timeout(CLOSE_GRACE, bye).await;
        }
    }
}

/// Send the script text (if any) and EOF.
async fn feed_stdin(write: &ChannelWriteHalf<Msg>, stdin: String) -> Result<(), russh::Error> {
    write.data(stdin.as_bytes()).await?;
    write.eof().await
}

/// Stop a command that ran out of time or was cancelled: TERM it, close its input and its
/// channel. The server confirms the close when the process has ended; the session absorbs that
/// late reply, so nobody waits for it.
async fn stop_command(write: &ChannelWriteHalf<Msg>) {
    // Each step may fail on a connection already gone; the next ones are still worth trying.
    let _ = write.signal(Sig::TERM).await;
    let _ = write.eof().await;
    let _ = write.close().await;
}

/// Errors that mean the connection itself is gone.
fn connection_lost(e: &russh::Error) -> bool {
    matches!(
        e,
        russh::Error::HUP
            | russh::Error::Disconnect
            | russh::Error::SendError
            | russh::Error::RecvError
            | russh::Error::KeepaliveTimeout
            | russh::Error::InactivityTimeout
            | russh::Error::IO(_)
    )
}

/// Map a russh error to a classified transport error that keeps it as its cause.
fn classify(e: russh::Error, endpoint: &str) -> TransportError {
    let endpoint = endpoint.to_string();
    match e {
        russh::Error::IO(ref io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            TransportError::Refused {
                endpoint,
                cause: Cause::new(e),
            }
        }
        russh::Error::KeepaliveTimeout => TransportError::Dropped {
            endpoint,
            cause: Cause::with_text(
                "the host stopped answering keepalives; check that it is up",
                e,
            ),
        },
        e if connection_lost(&e) => TransportError::Dropped {
            endpoint,
            cause: Cause::with_text(
                format!("{e}; if the host is restarting, salve reconnects on the next command"),
                e,
            ),
        },
        russh::Error::ChannelOpenFailure(ref reason) => TransportError::Protocol {
            endpoint,
            cause: Cause::with_text(
                format!(
                    "the host refused a new session ({reason:?}); raise MaxSessions in its \
                     sshd_config"
                ),
                e,
            ),
        },
        russh::Error::NoCommonAlgo {
            ref kind,
            ref theirs,
            ..
        } => TransportError::Protocol {
            endpoint,
            cause: Cause::with_text(
                format!(
                    "no {kind:?} algorithm in common with the host (it offers {}); update its \
                     OpenSSH",
                    theirs.join(", ")
                ),
                e,
            ),
        },
        other => TransportError::Protocol {
            endpoint,
            cause: Cause::with_text(other.to_string(), other),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(dir: &Path, accept_new: bool) -> HostKeyPolicy {
        HostKeyPolicy {
            file: dir.join("known_hosts"),
            accept_new,
        }
    }

    fn key(seed: u8) -> PublicKey {
        let private = PrivateKey::from(russh::keys::ssh_key::private::Ed25519Keypair::from_seed(
            &[seed; 32],
        ));
        private.public_key().clone()
    }

    #[test]
    fn strict_refuses_unknown_keys_with_fingerprint_and_fix() {
        let dir = tempfile::tempdir().unwrap();
        let e = check_host_key("ex01", 2222, &key(1), &policy(dir.path(), false)).unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, HostKeyProblem::Unknown { .. }), "{text}");
        assert!(
            text.contains(&key(1).fingerprint(HashAlg::Sha256).to_string()),
            "{text}"
        );
        assert!(text.contains("ssh-keyscan -p 2222 ex01 >> "), "{text}");
        assert!(!dir.path().join("known_hosts").exists());
    }

    #[test]
    fn accept_new_records_then_accepts_and_refuses_a_changed_key() {
        let dir = tempfile::tempdir().unwrap();
        let p = policy(dir.path(), true);
        check_host_key("ex01", 2222, &key(1), &p).unwrap();
        let text = std::fs::read_to_string(dir.path().join("known_hosts")).unwrap();
        assert!(
            text.trim_start().starts_with("[ex01]:2222 ssh-ed25519 "),
            "{text}"
        );
        // Known now, also under strict checking.
        check_host_key("ex01", 2222, &key(1), &policy(dir.path(), false)).unwrap();
        // Another port is another host.
        check_host_key("ex01", 22, &key(2), &p).unwrap();
        let e = check_host_key("ex01", 2222, &key(2), &p).unwrap_err();
        assert!(matches!(e, HostKeyProblem::Changed { .. }), "{e}");
        assert!(e.to_string().contains("ssh-keygen -R '[ex01]:2222'"), "{e}");
    }

    #[test]
    fn known_types_come_first_in_the_offer() {
        let config = client_config(&[Algorithm::Rsa { hash: None }]);
        assert!(matches!(config.preferred.key[0], Algorithm::Rsa { .. }));
        let config = client_config(&[]);
        assert_eq!(config.preferred.key, russh::Preferred::default().key);
    }

    #[test]
    fn expands_the_home_directory() {
        if let Some(h) = home() {
            assert_eq!(expand_home(Path::new("~/.ssh/id")), h.join(".ssh/id"));
        }
        assert_eq!(expand_home(Path::new("/k")), PathBuf::from("/k"));
    }
}
