//! The WinRM transport, on winrm-rs 2.0.
//!
//! Each host gets one `WinrmClient` (NTLM sessions are bound to one host's connection) and one
//! remote shell, reused by every task of the run: the shell is created on the first command
//! and re-created only after a reboot ([`Transport::reset`]), a lost connection, or a stopped
//! command. A task-level actor owns client and shell (the shell borrows the client), and
//! commands reach it over a channel, one at a time, as a host runs one task at a time.
//!
//! Commands run as `powershell.exe -NoProfile -NonInteractive -EncodedCommand ...` (or with the
//! script on stdin when it is too long, see [`crate::script`]). Output is streamed as it
//! arrives; a command silent for longer than the WS-Man OperationTimeout simply keeps polling
//! (the `w:TimedOut` fault is an empty poll). On timeout or cancellation the command is
//! signalled to terminate and its shell deleted, so nothing is left running or leaked.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot};
use winrm_rs::{
    AuthMethod, EncryptionMode, Shell, WinrmClient, WinrmConfig, WinrmCredentials, WinrmError,
};

use super::streams::Streams;
use super::{
    Cause, ConnectionSpec, Connector, RunRequest, ScriptOutput, Transport, TransportError,
};
use crate::model::connection::{KinitMode, WinrmAuth, is_ip_address};
use crate::script::{Deliver as _, Delivery};

/// Largest stdin chunk per WS-Man Send (base64 grows it by a third; the envelope limit is
/// 150 KiB).
const STDIN_CHUNK: usize = 64 * 1024;

/// Opens WinRM connections.
pub struct WinrmConnector;

#[async_trait]
impl Connector for WinrmConnector {
    async fn connect(&self, spec: &ConnectionSpec) -> Result<Arc<dyn Transport>, TransportError> {
        let client = build_client(spec)?;
        let (tx, rx) = mpsc::channel(1);
        let endpoint = spec.endpoint();
        let user = spec.user.clone().unwrap_or_default();
        tokio::spawn(actor(
            client,
            Target {
                host: spec.address.clone(),
                endpoint: endpoint.clone(),
                user,
            },
            rx,
        ));
        Ok(Arc::new(WinrmTransport { tx, endpoint }))
    }
}

fn build_client(spec: &ConnectionSpec) -> Result<WinrmClient, TransportError> {
    let w = &spec.winrm;
    let auth = w.effective_auth(&spec.address);
    let mut config = if w.https {
        WinrmConfig::https()
    } else {
        WinrmConfig::http()
    };
    if let Some(port) = spec.port {
        config.port = Some(port);
    }
    config.auth_method = match auth {
        WinrmAuth::Ntlm => AuthMethod::Ntlm,
        WinrmAuth::Basic => AuthMethod::Basic,
        // `effective_auth` resolved Negotiate to one of the two.
        WinrmAuth::Kerberos | WinrmAuth::Negotiate => AuthMethod::Kerberos,
        WinrmAuth::Certificate => AuthMethod::Certificate,
    };
    if auth == WinrmAuth::Basic && !w.https {
        if !w.allow_basic_http {
            return Err(TransportError::config(format!(
                "{}: Basic over plain HTTP would send the password in clear; use ntlm, or https \
                 (ansible_winrm_scheme: https), or set salve_winrm_allow_basic_http: true",
                spec.name
            )));
        }
        config.encryption = EncryptionMode::Never;
    }
    if auth == WinrmAuth::Ntlm && w.https {
        // winrm-rs authenticates every request afresh on its unsealed NTLM-over-TLS route (three
        // handshakes per command); sealed, one NTLM session serves the whole connection. Windows
        // accepts sealed bodies over HTTPS, so seal: one handshake per host per run.
        config.encryption = EncryptionMode::Always;
    }
    config.accept_invalid_certs = !w.verify_tls;
    config.operation_timeout_secs = w.operation_timeout_secs;
    config.connect_timeout_secs = 15;
    // Retries are the runner's business: a repeated Command could run a step twice.
    config.max_retries = 0;
    config.client_cert_pem = w.cert_pem.as_ref().map(|p| p.display().to_string());
    config.client_key_pem = w.key_pem.as_ref().map(|p| p.display().to_string());
    config.proxy = w.proxy.clone().map(Into::into);

    let user = spec.user.clone().unwrap_or_default();
    let kerberos = matches!(auth, WinrmAuth::Kerberos | WinrmAuth::Negotiate);
    if kerberos {
        kerberos_settings(spec, &mut config)?;
    }
    let password = match &spec.password {
        Some(r) if !(kerberos && w.kinit_mode == KinitMode::Manual) => {
            r.resolve().map_err(|e| {
                TransportError::config_caused_by(format!("{}: password: {e}", spec.name), e)
            })?
        }
        _ if auth == WinrmAuth::Certificate || kerberos => {
            crate::secret::Secret::new(String::new())
        }
        _ => {
            return Err(TransportError::config(format!(
                "{}: no password set (ansible_password)",
                spec.name
            )));
        }
    };
    let (domain, name) = if kerberos {
        kerberos_principal(spec, &user)?
    } else {
        let (d, n) = split_user(&user);
        (d.to_string(), n)
    };
    let mut builder = WinrmClient::builder(config)
        .credentials(WinrmCredentials::new(name, password.expose(), domain))
        .use_env_proxy(false);
    if let Some(ca) = &w.ca_file {
        builder = builder.add_root_certificates_pem(ca.clone());
    }
    if let Some(pin) = &w.pin_sha256 {
        builder = builder.pin_server_certificate_sha256(pin);
    }
    if !w.verify_tls {
        tracing::warn!(host = %spec.name, "TLS certificate validation is off for this host (ansible_winrm_server_cert_validation: ignore)");
    }
    builder
        .build()
        .map_err(|e| classify(e, &spec.endpoint(), &user))
}

/// Kerberos' part of the client configuration: the SPN's host name (Kerberos needs a DNS name,
/// never an address), where the ticket comes from, and message encryption.
fn kerberos_settings(
    spec: &ConnectionSpec,
    config: &mut WinrmConfig,
) -> Result<(), TransportError> {
    let w = &spec.winrm;
    if w.kerberos_hostname.is_none() && is_ip_address(&spec.address) {
        return Err(TransportError::config(format!(
            "{}: Kerberos needs the host's DNS name to name its service principal \
             (HTTP/<fqdn>), but the host is reached by the address {}; set ansible_host to \
             its fully qualified name, or keep the address and set \
             ansible_winrm_kerberos_hostname_override: <fqdn>",
            spec.name, spec.address
        )));
    }
    config.kerberos_hostname_override = w.kerberos_hostname.clone();
    config.kerberos_password_login = w.kinit_mode == KinitMode::Managed;
    if config.kerberos_password_login && spec.password.is_none() {
        return Err(TransportError::config(format!(
            "{}: ansible_winrm_kinit_mode is managed but no password is set: set \
             ansible_password, or get a ticket with kinit and set ansible_winrm_kinit_mode: manual",
            spec.name
        )));
    }
    // Over HTTP Windows requires the body sealed with the Kerberos context; over HTTPS, TLS
    // protects it (winrm-rs' Auto does both).
    config.encryption = EncryptionMode::Auto;
    Ok(())
}

/// The Kerberos principal of `user` as (realm, name): `user@example.com` is
/// `user@EXAMPLE.COM` (Active Directory realms are the domain's DNS name in capitals), a bare
/// `user` is in the default realm of krb5.conf. `DOMAIN\user` names no realm.
fn kerberos_principal<'u>(
    spec: &ConnectionSpec,
    user: &'u str,
) -> Result<(String, &'u str), TransportError> {
    if spec.winrm.kinit_mode == KinitMode::Manual {
        // The credential cache names the principal.
        return Ok((String::new(), user));
    }
    if user.contains('\\') {
        return Err(TransportError::config(format!(
            "{}: Kerberos needs the user as user@REALM (e.g. admin@CONTOSO.COM), not the \
             NetBIOS form {user}",
            spec.name
        )));
    }
    Ok(match user.split_once('@') {
        Some((name, realm)) => (realm.to_ascii_uppercase(), name),
        None => (String::new(), user),
    })
}

/// `DOMAIN\user` or `user@domain` → (domain, user).
fn split_user(user: &str) -> (&str, &str) {
    if let Some((d, u)) = user.split_once('\\') {
        (d, u)
    } else if let Some((u, d)) = user.split_once('@') {
        (d, u)
    } else {
        ("", user)
    }
}

enum Msg {
    Run(
        RunRequest,
        oneshot::Sender<Result<ScriptOutput, TransportError>>,
    ),
    Reset,
    Close(oneshot::Sender<()>),
}

struct WinrmTransport {
    tx: mpsc::Sender<Msg>,
    endpoint: String,
}

#[async_trait]
impl Transport for WinrmTransport {
    async fn run(&self, request: RunRequest) -> Result<ScriptOutput, TransportError> {
        let (reply, answer) = oneshot::channel();
        let gone = || TransportError::Dropped {
            endpoint: self.endpoint.clone(),
            cause: Cause::text("connection closed"),
        };
        self.tx
            .send(Msg::Run(request, reply))
            .await
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }

    async fn reset(&self) {
        let _ = self.tx.send(Msg::Reset).await;
    }

    async fn close(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Msg::Close(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

/// Where the actor's commands go, for requests and error messages.
struct Target {
    host: String,
    endpoint: String,
    user: String,
}

/// Owns the client and the host's one shell.
async fn actor(client: WinrmClient, target: Target, mut rx: mpsc::Receiver<Msg>) {
    let Target {
        host,
        endpoint,
        user,
    } = &target;
    let mut shell: Option<Shell<'_>> = None;
    while let Some(msg) = rx.recv().await {
        match msg {
            Msg::Run(request, reply) => {
                if shell.is_none() {
                    match client.open_shell(host).await {
                        Ok(s) => shell = Some(s),
                        Err(e) => {
                            let _ = reply.send(Err(classify(e, endpoint, user)));
                            continue;
                        }
                    }
                }
                let Some(open) = shell.as_ref() else { continue };
                let (result, keep) = run_command(&client, &target, open, request).await;
                if !keep && let Some(s) = shell.take() {
                    // The shell is stopped or its host gone: delete it if the host still answers.
                    let _ = tokio::time::timeout(Duration::from_secs(10), s.close()).await;
                }
                let _ = reply.send(result);
            }
            // After a reboot the old shell no longer exists on the host: just forget it.
            Msg::Reset => drop(shell.take()),
            Msg::Close(done) => {
                if let Some(s) = shell.take() {
                    let _ = tokio::time::timeout(Duration::from_secs(10), s.close()).await;
                }
                let _ = done.send(());
                break;
            }
        }
    }
}

/// Run one command in the shell. The flag says whether the shell is still usable.
async fn run_command(
    client: &WinrmClient,
    target: &Target,
    shell: &Shell<'_>,
    request: RunRequest,
) -> (Result<ScriptOutput, TransportError>, bool) {
    let (host, endpoint, user) = (
        target.host.as_str(),
        target.endpoint.as_str(),
        target.user.as_str(),
    );
    let Delivery {
        program,
        arguments,
        stdin,
    } = request.script.delivery();
    let args: Vec<&str> = arguments.split(' ').collect();
    let command_id = match shell.start_command(&program, &args).await {
        Ok(id) => id,
        Err(e) => return (Err(classify(e, endpoint, user)), false),
    };
    let chunks: Vec<&[u8]> = stdin.as_bytes().chunks(STDIN_CHUNK).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        if let Err(e) = shell
            .send_input(&command_id, chunk, i + 1 == chunks.len())
            .await
        {
            return (Err(classify(e, endpoint, user)), false);
        }
    }
    // The script is on the host: its text (tens of KB for a shipped script) is not kept for
    // the rest of the command, however long that runs.
    drop(chunks);
    drop(stdin);
    let deadline = tokio::time::Instant::now() + request.timeout;
    let mut out = Streams::new(request.output.clone());
    let stopped = loop {
        tokio::select! {
            polled = shell.receive_next(&command_id) => match polled {
                Ok(o) => {
                    out.push(&o.stdout, &o.stderr);
                    if o.exit_code.is_some() {
                        out.exit = o.exit_code;
                    }
                    if o.done {
                        break None;
                    }
                }
                Err(e) => return (Err(classify(e, endpoint, user)), false),
            },
            _ = tokio::time::sleep_until(deadline) => break Some(TransportError::Timeout { after: request.timeout }),
            _ = request.cancel.cancelled() => break Some(TransportError::Cancelled),
        }
    };
    let shell_id = shell.shell_id().to_string();
    // Signal terminate: after a finished command it releases it, after a stopped one it ends
    // the process on the host.
    let _ = tokio::time::timeout(
        Duration::from_secs(10),
        client.signal_terminate(host, &shell_id, &command_id),
    )
    .await;
    match stopped {
        Some(e) => (Err(e), false),
        None => (Ok(out.finish()), true),
    }
}

/// Quota faults of the WinRM service (MaxShellsPerUser, MaxConcurrentOperationsPerUser).
const QUOTA_CODES: [&str; 2] = ["2150859173", "2150859174"];

/// Map a winrm-rs error to a classified transport error that keeps it as its cause.
fn classify(e: WinrmError, endpoint: &str, user: &str) -> TransportError {
    let endpoint = endpoint.to_string();
    match e {
        // The HTTP failure, classified by what its causes say.
        WinrmError::Http(err) => {
            let chain = crate::error_chain::one_line(&err);
            let lower = chain.to_ascii_lowercase();
            let connecting = err.is_connect() || err.is_timeout();
            let cause = Cause::with_text(chain, err);
            if lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake")
            {
                TransportError::Tls {
                    endpoint,
                    cause,
                    hint: "trust the listener's CA (salve_winrm_ca_file), pin its certificate \
                           (salve_winrm_cert_sha256), or fix its name",
                }
            } else if lower.contains("refused") {
                TransportError::Refused { endpoint, cause }
            } else if lower.contains("dns") || lower.contains("resolve") || lower.contains("lookup")
            {
                TransportError::Resolve {
                    host: endpoint,
                    cause,
                }
            } else if connecting {
                TransportError::Unreachable { endpoint, cause }
            } else {
                TransportError::Dropped { endpoint, cause }
            }
        }
        WinrmError::AuthFailed(ref detail)
            if let Some(problem) = super::kerberos::diagnose(detail) =>
        {
            TransportError::Kerberos {
                endpoint,
                user: user.to_string(),
                problem,
                cause: Cause::with_text(detail.clone(), e),
            }
        }
        WinrmError::AuthFailed(ref detail)
            if detail.contains("401") || detail.to_ascii_lowercase().contains("credential") =>
        {
            TransportError::Auth {
                endpoint,
                user: user.to_string(),
                cause: Cause::with_text(detail.clone(), e),
            }
        }
        WinrmError::AuthFailed(ref detail) => TransportError::Protocol {
            endpoint,
            cause: Cause::with_text(detail.clone(), e),
        },
        WinrmError::Ntlm(ref err) => TransportError::Auth {
            endpoint,
            user: user.to_string(),
            cause: Cause::with_text(err.to_string(), e),
        },
        WinrmError::Soap(winrm_rs::SoapError::Fault {
            ref code,
            ref reason,
        }) if QUOTA_CODES
            .iter()
            .any(|c| reason.contains(c) || code.contains(c))
            || reason.to_ascii_lowercase().contains("quota") =>
        {
            TransportError::Quota {
                endpoint,
                cause: Cause::with_text(reason.clone(), e),
            }
        }
        WinrmError::Timeout(secs) => TransportError::Timeout {
            after: Duration::from_secs(secs),
        },
        WinrmError::Cancelled => TransportError::Cancelled,
        other => TransportError::Protocol {
            endpoint,
            cause: Cause::with_text(other.to_string(), other),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::settings::HostSettings;

    fn spec(vars: serde_json::Value) -> ConnectionSpec {
        HostSettings::read("ex01", vars.as_object().unwrap())
            .unwrap()
            .connection
    }

    #[test]
    fn kerberos_principals_name_their_realm_in_capitals() {
        let s = spec(
            serde_json::json!({"ansible_winrm_transport": "kerberos", "ansible_password": "env:PW"}),
        );
        let principal = |user| kerberos_principal(&s, user).map_err(|e| e.to_string());
        assert_eq!(
            principal("svc@contoso.com"),
            Ok(("CONTOSO.COM".to_string(), "svc"))
        );
        assert_eq!(principal("svc"), Ok((String::new(), "svc")));
        let netbios = principal("CONTOSO\\svc").unwrap_err();
        assert!(netbios.contains("user@REALM"), "{netbios}");
    }

    #[test]
    fn kerberos_by_address_needs_a_host_name() {
        let by_address = spec(serde_json::json!({
            "ansible_winrm_transport": "kerberos", "ansible_host": "10.0.0.5", "ansible_password": "env:PW"
        }));
        let error = |s: &ConnectionSpec| build_client(s).err().expect("refused").to_string();
        let e = error(&by_address);
        assert!(
            e.contains("ansible_winrm_kerberos_hostname_override"),
            "{e}"
        );
        let managed_without_password = spec(serde_json::json!({
            "ansible_winrm_transport": "kerberos", "ansible_winrm_kinit_mode": "managed"
        }));
        let e = error(&managed_without_password);
        assert!(e.contains("ansible_winrm_kinit_mode: manual"), "{e}");
    }

    #[test]
    fn splits_domain_users() {
        assert_eq!(split_user("CONTOSO\\admin"), ("CONTOSO", "admin"));
        assert_eq!(
            split_user("admin@contoso.local"),
            ("contoso.local", "admin")
        );
        assert_eq!(split_user("admin"), ("", "admin"));
    }
}
