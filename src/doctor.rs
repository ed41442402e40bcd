//! The connection doctor: for each host, find out why salve can or cannot work with it, and
//! say exactly what to change. Checks, in order: for Kerberos (`spn`), that the host is named by
//! DNS name (the SPN needs one) and where the ticket comes from; the name resolves; the port
//! accepts TCP; what the WinRM listener offers (read from one unauthenticated request: no
//! credentials are sent); then a real connection through salve's own transport (TLS
//! verification, authentication, message encryption, shell quota) running a trivial command.
//! A Kerberos failure there (no ticket, clock skew, unknown realm, missing SPN, wrong
//! password...) is reported as the `kerberos` check with its cause and fix.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{
    CryptoProvider, verify_tls12_signature, verify_tls13_signature,
};
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{DigitallySignedStruct, SignatureScheme};

use crate::model::connection::{KinitMode, WinrmAuth, is_ip_address};
use crate::model::run_as::RunAs;
use crate::script::Script;
use crate::transport::{ConnectionKind, ConnectionSpec, Connector, RunRequest, TransportError};

const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// Result of one check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    /// What was found.
    pub detail: String,
    /// What to change, when something is wrong.
    pub fix: Option<String>,
}

/// Everything found for one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnosis {
    pub host: String,
    pub endpoint: String,
    pub checks: Vec<Check>,
}

impl Diagnosis {
    pub fn healthy(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }
}

fn pass(name: &'static str, detail: impl Into<String>) -> Check {
    Check {
        name,
        ok: true,
        detail: detail.into(),
        fix: None,
    }
}

fn fail(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
    Check {
        name,
        ok: false,
        detail: detail.into(),
        fix: Some(fix.into()),
    }
}

/// Diagnose one host. Stops at the first check that makes the later ones meaningless.
pub async fn diagnose(spec: &ConnectionSpec, connector: Arc<dyn Connector>) -> Diagnosis {
    let endpoint = spec.endpoint();
    let mut checks = Vec::new();
    let done = |checks| Diagnosis {
        host: spec.name.clone(),
        endpoint: endpoint.clone(),
        checks,
    };
    if spec.kind == ConnectionKind::Local {
        checks.push(pass("transport", "local: runs on the controller"));
        checks.push(command_check(spec, connector).await);
        return done(checks);
    }
    if let Some(check) = kerberos_check(spec) {
        let ok = check.ok;
        checks.push(check);
        if !ok {
            return done(checks);
        }
    }
    let addrs = match tokio::time::timeout(STEP_TIMEOUT, tokio::net::lookup_host(endpoint.as_str()))
        .await
    {
        Ok(Ok(a)) => a.collect::<Vec<SocketAddr>>(),
        Ok(Err(e)) => {
            checks.push(fail(
                "dns",
                e.to_string(),
                "check the name, or set ansible_host to the server's address",
            ));
            return done(checks);
        }
        Err(_) => {
            checks.push(fail(
                "dns",
                "no answer within 10 s",
                "check the controller's DNS servers",
            ));
            return done(checks);
        }
    };
    let Some(addr) = addrs.first().copied() else {
        checks.push(fail(
            "dns",
            "the name has no address",
            "set ansible_host to the server's address",
        ));
        return done(checks);
    };
    checks.push(pass("dns", addr.ip().to_string()));
    let started = Instant::now();
    let stream = match tokio::time::timeout(STEP_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            checks.push(fail("tcp", "connection refused", port_fix(spec)));
            return done(checks);
        }
        Ok(Err(e)) => {
            checks.push(fail(
                "tcp",
                e.to_string(),
                "check routing and firewalls between the controller and the host",
            ));
            return done(checks);
        }
        Err(_) => {
            checks.push(fail(
                "tcp",
                "no answer within 10 s",
                "a firewall is probably dropping the port; open it for the controller",
            ));
            return done(checks);
        }
    };
    checks.push(pass(
        "tcp",
        format!("connected in {} ms", started.elapsed().as_millis()),
    ));
    if spec.kind == ConnectionKind::Winrm {
        checks.push(listener_check(spec, stream).await);
    } else {
        drop(stream);
    }
    checks.push(command_check(spec, connector).await);
    done(checks)
}

/// Where the host's packages come from, as its inventory says (`salve_update_sources`,
/// `salve_rewrite_msi`), against who will read them. A share is out of reach of the WinRM or SSH
/// logon itself (a network logon holds no credentials for a second machine: the double hop);
/// salve's detached steps read it as the source's own share account (`username`/`password`), else
/// as the `become` account, or as SYSTEM (the server's computer account) without one; URL
/// Rewrite's MSI always as the step's account. `None` when no package is on a share.
pub fn sources_check(
    update_sources: Option<&serde_json::Value>,
    rewrite_msi: Option<&serde_json::Value>,
    run_as: Option<&RunAs>,
    host_share_account: Option<&str>,
) -> Option<Check> {
    let unc = |v: &serde_json::Value| {
        ["unc", "url"]
            .iter()
            .filter_map(|k| v.get(*k).and_then(|u| u.as_str()))
            .find(|l| crate::share::on_share(l))
            .map(str::to_owned)
    };
    let on_shares: Vec<&serde_json::Value> = update_sources
        .and_then(|s| s.as_object())
        .map(|m| m.values().filter(|v| unc(v).is_some()).collect())
        .unwrap_or_default();
    // A source with its own share account (or the host's, `salve_share_username`) is read as
    // that account, whoever runs the step.
    fn account_of<'a>(v: &'a serde_json::Value, host: Option<&'a str>) -> Option<&'a str> {
        v.get("username").and_then(|u| u.as_str()).or(host)
    }
    let account = |v: &'_ serde_json::Value| account_of(v, host_share_account).is_some();
    let (own, mut shares): (Vec<&serde_json::Value>, Vec<&serde_json::Value>) =
        on_shares.into_iter().partition(|v| account(v));
    // URL Rewrite's MSI is read by the step's own account (its install runs as a task too).
    shares.extend(rewrite_msi.filter(|v| unc(v).is_some()));
    let own_accounts = || {
        let mut names: Vec<&str> = own
            .iter()
            .filter_map(|v| account_of(v, host_share_account))
            .collect();
        names.sort_unstable();
        names.dedup();
        names.join(", ")
    };
    let Some(first) = shares.first().and_then(|v| unc(v)) else {
        return (!own.is_empty()).then(|| {
            pass(
                "sources",
                format!(
                    "{} package source(s) on file shares, read with their own share account \
                     ({}) inside salve's detached steps",
                    own.len(),
                    own_accounts()
                ),
            )
        });
    };
    let what = match shares.len() {
        1 => format!("1 package source is on a file share ({first})"),
        n => format!("{n} package sources are on file shares (first: {first})"),
    };
    Some(match run_as {
        Some(account) => pass(
            "sources",
            format!(
                "{what}; salve's detached steps read them as {}",
                account.user
            ),
        ),
        None => fail(
            "sources",
            format!(
                "{what}, and no become account is set: the WinRM logon cannot read a share (the \
                 double hop), and the detached steps would run as SYSTEM, whose computer account \
                 the share must then grant read access"
            ),
            "give each share source the share's username and password (a secret reference), or \
             set ansible_become_user and ansible_become_password (become_method runas) to an \
             account that can read the share, or give the sources as url:",
        ),
    })
}

/// For a host with `serve:` package sources or a `salve_package_server`: whether salve can
/// serve packages to it (the certificate and key load, the address can be listened on), and
/// what the host must reach. Whether the host reaches that address is not tested from here.
/// `None` when the host has neither.
pub fn package_server_check(
    update_sources: Option<&serde_json::Value>,
    spec: Option<&crate::model::package_server::PackageServerSpec>,
) -> Option<Check> {
    let served = update_sources.and_then(|s| s.as_object()).map_or(0, |m| {
        m.values().filter(|v| v.get("serve").is_some()).count()
    });
    match spec {
        None if served == 0 => None,
        None => Some(fail(
            "package server",
            format!(
                "{served} package source(s) are to be served by salve (serve:), and no salve_package_server is set"
            ),
            "set salve_package_server (url the hosts reach, certificate, key), or give the sources as url: or unc:",
        )),
        Some(spec) => Some(match crate::package_server::for_spec(spec) {
            Ok(server) => pass(
                "package server",
                format!(
                    "salve serves packages at {} (listening on {}, certificate SHA-256 {}); the \
                     host must reach that address (not tested from here)",
                    spec.url,
                    spec.listen,
                    server.pin()
                ),
            ),
            Err(e) => fail(
                "package server",
                crate::error_chain::one_line(&e),
                "point certificate and key at readable PEM files, and listen at an address of \
                 this machine with a free port",
            ),
        }),
    }
}

/// For a host that authenticates with Kerberos: the SPN it will ask a ticket for (a DNS name is
/// needed; an address names no principal) and where the ticket comes from.
fn kerberos_check(spec: &ConnectionSpec) -> Option<Check> {
    let w = &spec.winrm;
    if spec.kind != ConnectionKind::Winrm || w.effective_auth(&spec.address) != WinrmAuth::Kerberos
    {
        return None;
    }
    if w.kerberos_hostname.is_none() && is_ip_address(&spec.address) {
        return Some(fail(
            "spn",
            format!(
                "the host is reached by the address {}, and Kerberos names the service by DNS \
                 name (HTTP/<fqdn>)",
                spec.address
            ),
            "set ansible_host to the host's fully qualified name, or keep the address and set \
             ansible_winrm_kerberos_hostname_override: <fqdn>",
        ));
    }
    let host = w.kerberos_hostname.as_deref().unwrap_or(&spec.address);
    let source = match w.kinit_mode {
        KinitMode::Managed => "a ticket from ansible_user and ansible_password",
        KinitMode::Manual => "the ticket in the credential cache (KRB5CCNAME)",
    };
    Some(pass(
        "spn",
        format!("service principal HTTP/{host}, {source}"),
    ))
}

fn port_fix(spec: &ConnectionSpec) -> String {
    match spec.kind {
        ConnectionKind::Winrm if spec.winrm.https => {
            "no HTTPS listener on that port: create one (`winrm quickconfig -transport:https`) or use \
             ansible_port: 5985 with ntlm over HTTP"
                .into()
        }
        ConnectionKind::Winrm => "no WinRM listener: run `Enable-PSRemoting` on the host, or set the right ansible_port".into(),
        _ => "no SSH server on that port: install and start OpenSSH Server, or set ansible_port".into(),
    }
}

/// Why the listener's offer could not be read.
#[derive(Debug, thiserror::Error)]
enum ListenerError {
    #[error("TLS handshake failed: {0}")]
    Tls(#[source] TlsError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("no HTTP answer within {}", secs(STEP_TIMEOUT))]
    NoAnswer,
    #[error("the port accepted the connection but closed it without an HTTP answer")]
    Closed,
    #[error("no authentication offered (answer: {status})")]
    NoAuthentication { status: String },
}

/// Why the TLS connection to the listener failed.
#[derive(Debug, thiserror::Error)]
enum TlsError {
    #[error(transparent)]
    Config(#[from] tokio_rustls::rustls::Error),
    #[error(transparent)]
    Name(#[from] tokio_rustls::rustls::pki_types::InvalidDnsNameError),
    #[error("no TLS answer within {}", secs(STEP_TIMEOUT))]
    NoAnswer,
    #[error(transparent)]
    Handshake(#[from] std::io::Error),
}

/// `10 s`.
fn secs(d: Duration) -> String {
    format!("{} s", d.as_secs())
}

/// What the listener offers, from the `WWW-Authenticate` headers of an unauthenticated POST.
async fn listener_check(spec: &ConnectionSpec, stream: TcpStream) -> Check {
    let offered = if spec.winrm.https {
        match tls_connect(spec, stream).await {
            Ok(tls) => offered_methods(tls, spec).await,
            Err(e) => Err(ListenerError::Tls(e)),
        }
    } else {
        offered_methods(stream, spec).await
    };
    let offered = match offered {
        Ok(o) => o,
        Err(e) => {
            return fail(
                "listener",
                e.to_string(),
                "check that this port is a WinRM listener (/wsman)",
            );
        }
    };
    let has = |m: &str| offered.iter().any(|o| o.eq_ignore_ascii_case(m));
    let detail = format!(
        "{} offers {}",
        if spec.winrm.https { "HTTPS" } else { "HTTP" },
        offered.join(", ")
    );
    match spec.winrm.auth {
        WinrmAuth::Basic if !spec.winrm.https && !spec.winrm.allow_basic_http => fail(
            "listener",
            detail,
            "listener is HTTP-only and Basic is refused over HTTP: use ansible_winrm_transport: ntlm, or enable HTTPS",
        ),
        WinrmAuth::Basic if !has("Basic") => fail(
            "listener",
            detail,
            "Basic is off on the host: `winrm set winrm/config/service/auth @{Basic=\"true\"}`, or use ntlm",
        ),
        WinrmAuth::Ntlm if !has("Negotiate") && !has("NTLM") => fail(
            "listener",
            detail,
            "Negotiate is off on the host: `winrm set winrm/config/service/auth @{Negotiate=\"true\"}`",
        ),
        WinrmAuth::Kerberos | WinrmAuth::Negotiate if !has("Negotiate") && !has("Kerberos") => {
            fail(
                "listener",
                detail,
                "Kerberos is off on the host: enable Negotiate or Kerberos auth",
            )
        }
        _ => pass("listener", detail),
    }
}

async fn offered_methods<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    spec: &ConnectionSpec,
) -> Result<Vec<String>, ListenerError> {
    let request = format!(
        "POST /wsman HTTP/1.1\r\nHost: {}\r\nContent-Type: application/soap+xml;charset=UTF-8\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n",
        spec.endpoint()
    );
    let exchange = async {
        stream.write_all(request.as_bytes()).await?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        // Headers are all we need; stop at their end or after 64 KiB.
        while buf.len() < 65536 && !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        Ok::<_, std::io::Error>(buf)
    };
    let head = match tokio::time::timeout(STEP_TIMEOUT, exchange).await {
        Ok(Ok(b)) => String::from_utf8_lossy(&b).into_owned(),
        Ok(Err(e)) => return Err(e.into()),
        Err(_) => return Err(ListenerError::NoAnswer),
    };
    let status = head.lines().next().unwrap_or_default().to_string();
    let methods: Vec<String> = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.trim().eq_ignore_ascii_case("www-authenticate"))
        .filter_map(|(_, v)| v.split_whitespace().next().map(str::to_string))
        .collect();
    if status.is_empty() {
        Err(ListenerError::Closed)
    } else if methods.is_empty() {
        Err(ListenerError::NoAuthentication { status })
    } else {
        Ok(methods)
    }
}

/// A TLS connection used only to read the listener's headers: no credential crosses it, so the
/// certificate is not judged here; the real connection below judges it.
async fn tls_connect(
    spec: &ConnectionSpec,
    stream: TcpStream,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, TlsError> {
    use tokio_rustls::rustls;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(HeadersOnly(provider)))
        .with_no_client_auth();
    let name = ServerName::try_from(spec.address.clone())?;
    tokio::time::timeout(
        STEP_TIMEOUT,
        tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, stream),
    )
    .await
    .map_err(|_| TlsError::NoAnswer)?
    .map_err(TlsError::from)
}

/// Accepts any certificate (signatures still checked): for reading headers only.
#[derive(Debug)]
struct HeadersOnly(Arc<CryptoProvider>);

impl ServerCertVerifier for HeadersOnly {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, tokio_rustls::rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, tokio_rustls::rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, tokio_rustls::rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Connect for real (TLS verified, authenticated, encrypted as configured) and run a trivial
/// command; its error, if any, is already classified with a fix.
async fn command_check(spec: &ConnectionSpec, connector: Arc<dyn Connector>) -> Check {
    let attempt = async {
        let transport = connector.connect(spec).await?;
        let started = Instant::now();
        let out = transport
            .run(RunRequest::new(
                Script::raw("Write-Output 'salve-doctor'"),
                STEP_TIMEOUT,
            ))
            .await;
        transport.close().await;
        out.map(|o| (o, started.elapsed()))
    };
    match attempt.await {
        Ok((out, took)) if out.exit_code == 0 && out.stdout.contains("salve-doctor") => pass(
            "command",
            format!(
                "authenticated as {} and ran a command in {} ms",
                spec.user.as_deref().unwrap_or("?"),
                took.as_millis()
            ),
        ),
        Ok((out, _)) => fail(
            "command",
            format!(
                "a trivial command exited with {}: {}",
                out.exit_code,
                out.stderr.lines().next().unwrap_or_default()
            ),
            "check that PowerShell runs for this account (execution policy, profile, JEA restrictions)",
        ),
        Err(TransportError::Kerberos { problem, cause, .. }) => {
            fail("kerberos", format!("{problem} ({cause})"), problem.fix())
        }
        Err(e) => {
            let message = e.to_string();
            let (detail, fix) = message
                .split_once("; ")
                .map_or((message.as_str(), "see the message"), |(d, f)| (d, f));
            fail(
                "command",
                format!("{}: {detail}", e.class()),
                fix.to_string(),
            )
        }
    }
}

/// The diagnoses as an aligned table with the fixes under each failing host.
pub fn render(diagnoses: &[Diagnosis]) -> String {
    let width = diagnoses
        .iter()
        .map(|d| d.host.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let mut out = format!("{:width$}  {:22}  RESULT\n", "HOST", "ENDPOINT");
    for d in diagnoses {
        let summary: Vec<String> = d
            .checks
            .iter()
            .map(|c| format!("{} {}", c.name, if c.ok { "ok" } else { "FAILED" }))
            .collect();
        out.push_str(&format!(
            "{:width$}  {:22}  {}\n",
            d.host,
            d.endpoint,
            summary.join(", ")
        ));
        for c in d.checks.iter().filter(|c| !c.ok) {
            out.push_str(&format!("{:width$}    {}: {}\n", "", c.name, c.detail));
            if let Some(fix) = &c.fix {
                out.push_str(&format!("{:width$}    fix: {fix}\n", ""));
            }
        }
    }
    let healthy = diagnoses.iter().filter(|d| d.healthy()).count();
    out.push_str(&format!("\n{healthy} of {} hosts ready\n", diagnoses.len()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_share_source_with_its_own_account_needs_no_become_account() {
        let sha = "ab".repeat(32);
        let own = serde_json::json!({
            "KB5000871": {"unc": "\\\\fs01\\patches\\KB5000871.msp", "sha256": sha,
                          "username": "LAB\\svc-pkgread", "password": "env:SHARE_PW"},
        });
        let check = sources_check(Some(&own), None, None, None).unwrap();
        assert!(check.ok, "{check:?}");
        assert!(check.detail.contains("LAB\\svc-pkgread"), "{check:?}");
        let mut mixed = own.clone();
        mixed["KB5003435"] =
            serde_json::json!({"unc": "\\\\fs01\\exchange\\KB5003435.msp", "sha256": sha});
        let check = sources_check(Some(&mixed), None, None, None).unwrap();
        assert!(!check.ok, "{check:?}");
        assert!(check.detail.contains("KB5003435.msp"), "{check:?}");
        let host_wide = sources_check(Some(&mixed), None, None, Some("LAB\\svc-host")).unwrap();
        assert!(host_wide.ok, "{host_wide:?}");
        assert!(
            check
                .fix
                .unwrap()
                .contains("the share's username and password"),
            "the fix names share accounts"
        );
    }

    #[tokio::test]
    async fn served_sources_need_a_package_server_that_can_start() {
        let served = serde_json::json!({"KB1": {"serve": "/srv/KB1.msp", "sha256": "ab"}});
        assert!(package_server_check(None, None).is_none());
        let none = package_server_check(Some(&served), None).unwrap();
        assert!(
            !none.ok && none.detail.contains("no salve_package_server"),
            "{none:?}"
        );
        let spec = crate::model::package_server::PackageServerSpec {
            url: "https://127.0.0.1:1".into(),
            listen: "127.0.0.1:0".parse().unwrap(),
            certificate: "/nonexistent/p.crt".into(),
            key: "/nonexistent/p.key".into(),
        };
        let broken = package_server_check(Some(&served), Some(&spec)).unwrap();
        assert!(!broken.ok && broken.detail.contains("p.crt"), "{broken:?}");
    }
}
