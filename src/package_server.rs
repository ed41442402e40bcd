//! salve delivering a package itself, for a host that can reach neither a URL nor a share: an
//! HTTPS endpoint on the controller (`salve_package_server`), from which the host downloads
//! a `serve:` source with a token and verifies its SHA-256 as for a `url:` source.
//!
//! Why this way: WinRM has no file transfer (a 6 GB ISO as base64 inside commands would take
//! hours and WinRM's envelope and memory limits), and SSH/SFTP is not there on most Exchange
//! servers; but every host that salve manages opens connections, and Invoke-WebRequest streams
//! to disk. So the host pulls, exactly as for `url:`, from salve.
//!
//! - **Only what the approved step names.** Nothing is served until a step grants one file
//!   ([`PackageServer::grant`]) for one host: a fresh random token for that file alone, valid
//!   while the step runs ([`Grant`] revokes it when dropped). Any other path, token or method
//!   is refused (401, 404, 405); there is no listing.
//! - **TLS with the operator's certificate**, pinned: each step carries the SHA-256 of the
//!   certificate, and the host accepts no other (a self-signed certificate works; so does one
//!   from the organisation's CA). The token never crosses the network in clear text.
//! - One server per `salve_package_server` setting in a salve process, started at the first
//!   grant and stopped when the process ends.
//!
//! The HTTP it speaks is the little a download needs: `GET` and `HEAD` of
//! `/packages/<sha256>` with `Authorization: Bearer <token>`, one request per connection.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::model::package_server::PackageServerSpec;

/// The longest request head read (request line and headers).
const MAX_HEAD: usize = 16 * 1024;
/// Bytes read from a package file at a time (a CU's ISO is about 6 GB).
const COPY_BUFFER: usize = 256 * 1024;
/// How long a client may take for the TLS handshake and its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the package server cannot serve.
#[derive(Debug, thiserror::Error)]
pub enum PackageServerError {
    #[error("salve_package_server: cannot read {what} {path}")]
    Read {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("salve_package_server: {path} holds no PEM {what}")]
    Pem { what: &'static str, path: PathBuf },
    #[error("salve_package_server: the certificate and key do not make a TLS server")]
    Tls(#[source] rustls::Error),
    #[error(
        "salve_package_server: cannot listen on {listen} (another process on that port, or not \
         an address of this machine)"
    )]
    Listen {
        listen: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot draw a token from the system's random source: {0}")]
    Random(String),
    #[error("package {path} cannot be served")]
    Package {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A running package server.
pub struct PackageServer {
    url: String,
    pin: String,
    grants: Mutex<HashMap<String, Served>>,
}

/// A file granted to one step.
#[derive(Debug, Clone)]
struct Served {
    path: PathBuf,
    sha256: String,
}

/// One step's right to download one file; revoked when dropped.
pub struct Grant {
    server: Arc<PackageServer>,
    token: String,
    url: String,
}

impl Grant {
    /// The URL the host downloads from.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The bearer token for it (a secret: never logged).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The SHA-256 of the server's certificate, upper-case hex (what the host pins).
    pub fn pin(&self) -> &str {
        self.server.pin()
    }
}

impl Drop for Grant {
    fn drop(&mut self) {
        self.server.lock().remove(&self.token);
    }
}

/// The package server for `spec` in this process, started on first use.
pub fn for_spec(spec: &PackageServerSpec) -> Result<Arc<PackageServer>, PackageServerError> {
    static SERVERS: LazyLock<Mutex<HashMap<PackageServerSpec, Arc<PackageServer>>>> =
        LazyLock::new(Default::default);
    let mut servers = SERVERS.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(s) = servers.get(spec) {
        return Ok(Arc::clone(s));
    }
    let server = start(spec)?;
    servers.insert(spec.clone(), Arc::clone(&server));
    Ok(server)
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, PackageServerError> {
    std::fs::read(path).map_err(|source| PackageServerError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}

/// Bind, load the certificate and serve in the background.
fn start(spec: &PackageServerSpec) -> Result<Arc<PackageServer>, PackageServerError> {
    let pem = read("certificate", &spec.certificate)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .filter_map(Result::ok)
        .collect();
    let Some(leaf) = chain.first() else {
        return Err(PackageServerError::Pem {
            what: "certificate",
            path: spec.certificate.clone(),
        });
    };
    let pin = hex::encode_upper(Sha256::digest(leaf.as_ref()));
    let key = PrivateKeyDer::from_pem_slice(&read("key", &spec.key)?).map_err(|_| {
        PackageServerError::Pem {
            what: "private key",
            path: spec.key.clone(),
        }
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key))
        .map_err(PackageServerError::Tls)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let listen_err = |source| PackageServerError::Listen {
        listen: spec.listen,
        source,
    };
    let std_listener = std::net::TcpListener::bind(spec.listen).map_err(listen_err)?;
    std_listener.set_nonblocking(true).map_err(listen_err)?;
    let listener = TcpListener::from_std(std_listener).map_err(listen_err)?;
    let server = Arc::new(PackageServer {
        url: spec.url.clone(),
        pin,
        grants: Mutex::new(HashMap::new()),
    });
    tokio::spawn(accept(
        listener,
        TlsAcceptor::from(Arc::new(config)),
        Arc::clone(&server),
    ));
    tracing::info!(listen = %spec.listen, url = %spec.url, "package server started");
    Ok(server)
}

impl PackageServer {
    /// The SHA-256 of the server's certificate, upper-case hex (what the hosts pin).
    pub fn pin(&self) -> &str {
        &self.pin
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Served>> {
        self.grants.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Allow one download of the file at `path`, whose SHA-256 is `sha256`, until the
    /// returned grant is dropped.
    pub fn grant(self: &Arc<Self>, path: &Path, sha256: &str) -> Result<Grant, PackageServerError> {
        std::fs::metadata(path)
            .and_then(|m| {
                m.is_file()
                    .then_some(())
                    .ok_or_else(|| std::io::Error::other("not a file"))
            })
            .map_err(|source| PackageServerError::Package {
                path: path.to_path_buf(),
                source,
            })?;
        let mut raw = [0u8; 32];
        getrandom::fill(&mut raw).map_err(|e| PackageServerError::Random(e.to_string()))?;
        let token = hex::encode(raw);
        let sha256 = sha256.to_ascii_lowercase();
        let url = format!("{}/packages/{sha256}", self.url);
        self.lock().insert(
            token.clone(),
            Served {
                path: path.to_path_buf(),
                sha256,
            },
        );
        Ok(Grant {
            server: Arc::clone(self),
            token,
            url,
        })
    }

    /// The file a request may have: `Err` is the HTTP status line to answer instead.
    fn lookup(&self, head: &Head) -> Result<Served, &'static str> {
        if head.method != "GET" && head.method != "HEAD" {
            return Err("405 Method Not Allowed");
        }
        let Some(wanted) = head.path.strip_prefix("/packages/") else {
            return Err("404 Not Found");
        };
        let served = head
            .bearer
            .as_deref()
            .and_then(|t| self.lock().get(t).cloned())
            .ok_or("401 Unauthorized")?;
        if !served.sha256.eq_ignore_ascii_case(wanted) {
            return Err("401 Unauthorized");
        }
        Ok(served)
    }
}

/// What salve reads of a request.
#[derive(Debug, PartialEq, Eq)]
struct Head {
    method: String,
    path: String,
    bearer: Option<String>,
}

/// Parse a request head (up to the empty line); `None` when it is not HTTP/1.x.
fn parse_head(text: &str) -> Option<Head> {
    let mut lines = text.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, path, version) = (first.next()?, first.next()?, first.next()?);
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    let bearer = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("authorization"))
        .and_then(|(_, value)| {
            let value = value.trim();
            value
                .get(..7)
                .filter(|scheme| scheme.eq_ignore_ascii_case("bearer "))
                .map(|_| value[7..].trim().to_string())
        });
    Some(Head {
        method: method.to_string(),
        path: path.to_string(),
        bearer,
    })
}

async fn accept(listener: TcpListener, tls: TlsAcceptor, server: Arc<PackageServer>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            // Out of file descriptors or the like: give the system a moment, then go on.
            Err(e) => {
                tracing::warn!("package server: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (tls, server) = (tls.clone(), Arc::clone(&server));
        tokio::spawn(async move {
            if let Err(e) = serve(stream, tls, &server).await {
                tracing::debug!(%peer, "package request ended: {e}");
            }
        });
    }
}

async fn serve(
    stream: tokio::net::TcpStream,
    tls: TlsAcceptor,
    server: &PackageServer,
) -> std::io::Result<()> {
    let (mut stream, head) = tokio::time::timeout(HEAD_TIMEOUT, async {
        let mut stream = tls.accept(stream).await?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 2048];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut chunk).await?;
            if n == 0 || buf.len() > MAX_HEAD {
                return Err(std::io::Error::other("incomplete request head"));
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        Ok::<_, std::io::Error>((stream, String::from_utf8_lossy(&buf).into_owned()))
    })
    .await
    .map_err(|_| std::io::Error::other("no request in time"))??;
    let Some(head) = parse_head(&head) else {
        return answer(&mut stream, "400 Bad Request").await;
    };
    let served = match server.lookup(&head) {
        Ok(s) => s,
        Err(status) => {
            tracing::info!(path = %head.path, "package request refused: {status}");
            return answer(&mut stream, status).await;
        }
    };
    let file = tokio::fs::File::open(&served.path).await?;
    let length = file.metadata().await?.len();
    let mut file = tokio::io::BufReader::with_capacity(COPY_BUFFER, file);
    stream
        .write_all(
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: \
                 {length}\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .await?;
    if head.method == "GET" {
        tokio::io::copy_buf(&mut file, &mut stream).await?;
    }
    stream.shutdown().await
}

async fn answer<S: AsyncWriteExt + Unpin>(stream: &mut S, status: &str) -> std::io::Result<()> {
    let auth = if status.starts_with("401") {
        "WWW-Authenticate: Bearer\r\n"
    } else {
        ""
    };
    stream
        .write_all(
            format!("HTTP/1.1 {status}\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_head_gives_method_path_and_bearer_token() {
        let head = parse_head(
            "GET /packages/ab HTTP/1.1\r\nHost: x\r\nauthorization: Bearer  t0k \r\n\r\n",
        )
        .unwrap();
        assert_eq!(
            head,
            Head {
                method: "GET".into(),
                path: "/packages/ab".into(),
                bearer: Some("t0k".into())
            }
        );
        assert_eq!(
            parse_head("GET / HTTP/1.1\r\nAuthorization: Basic eA==\r\n\r\n")
                .unwrap()
                .bearer,
            None
        );
        assert!(parse_head("hello\r\n\r\n").is_none());
    }

    #[test]
    fn only_the_granted_file_with_its_token_is_served_and_only_while_granted() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("KB1.msp");
        std::fs::write(&file, b"package").unwrap();
        let server = Arc::new(PackageServer {
            url: "https://ctl:8443".into(),
            pin: "AB".into(),
            grants: Mutex::new(HashMap::new()),
        });
        let sha = "cd".repeat(32);
        let grant = server.grant(&file, &sha).unwrap();
        assert_eq!(grant.url(), format!("https://ctl:8443/packages/{sha}"));
        let head = |method: &str, path: &str, token: Option<&str>| Head {
            method: method.into(),
            path: path.into(),
            bearer: token.map(Into::into),
        };
        let path = format!("/packages/{sha}");
        assert!(
            server
                .lookup(&head("GET", &path, Some(grant.token())))
                .is_ok()
        );
        assert!(
            server
                .lookup(&head("HEAD", &path, Some(grant.token())))
                .is_ok()
        );
        assert_eq!(
            server
                .lookup(&head("GET", &path, Some("guess")))
                .unwrap_err(),
            "401 Unauthorized"
        );
        assert_eq!(
            server.lookup(&head("GET", &path, None)).unwrap_err(),
            "401 Unauthorized"
        );
        let other = format!("/packages/{}", "ef".repeat(32));
        assert_eq!(
            server
                .lookup(&head("GET", &other, Some(grant.token())))
                .unwrap_err(),
            "401 Unauthorized"
        );
        assert_eq!(
            server
                .lookup(&head("PUT", &path, Some(grant.token())))
                .unwrap_err(),
            "405 Method Not Allowed"
        );
        assert_eq!(
            server
                .lookup(&head("GET", "/", Some(grant.token())))
                .unwrap_err(),
            "404 Not Found"
        );
        let token = grant.token().to_string();
        drop(grant);
        assert!(server.lookup(&head("GET", &path, Some(&token))).is_err());
        assert!(server.grant(&dir.path().join("missing.iso"), &sha).is_err());
    }
}
