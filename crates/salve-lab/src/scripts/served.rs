//! `Get-SalvePayload` for a package salve serves itself: Invoke-WebRequest over HTTPS to the
//! controller, made for real over loopback, with the step's bearer token and the certificate
//! pinned by the script's validation callback; then `Get-FileHash` of what arrived.
//!
//! Windows behaviour modelled: with `ServicePointManager.ServerCertificateValidationCallback`
//! set, .NET accepts exactly the certificates the callback accepts, and a refused one ends the
//! request with "The underlying connection was closed: Could not establish trust relationship
//! for the SSL/TLS secure channel."; an HTTP error status ends Invoke-WebRequest with "The
//! remote server returned an error: (401) Unauthorized."; no listener: "Unable to connect to
//! the remote server".

use std::sync::Arc;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{
    CryptoProvider, verify_tls12_signature, verify_tls13_signature,
};
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{DigitallySignedStruct, SignatureScheme};

const NO_TRUST: &str = "Invoke-WebRequest : The underlying connection was closed: Could not \
                        establish trust relationship for the SSL/TLS secure channel.";
const NO_SERVER: &str = "Invoke-WebRequest : Unable to connect to the remote server";

/// What arrived: its length and SHA-256 (lower-case hex).
pub(super) struct Downloaded {
    pub length: u64,
    pub sha256: String,
}

/// Download `url` with `token`, accepting only a certificate whose SHA-256 is `pin`.
pub(super) async fn download(url: &str, token: &str, pin: &str) -> Result<Downloaded, String> {
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| format!("Invoke-WebRequest : {url} is not an https:// URL"))?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let host = authority
        .rsplit_once(':')
        .map_or(authority, |(h, _)| h)
        .to_string();
    let tcp = TcpStream::connect(authority)
        .await
        .map_err(|_| NO_SERVER.to_string())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned {
            pin: pin.to_string(),
            provider,
        }))
        .with_no_client_auth();
    let name = ServerName::try_from(host).map_err(|e| e.to_string())?;
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|_| NO_TRUST.to_string())?;
    let path = if path.is_empty() { "/" } else { path };
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nAuthorization: Bearer {token}\r\nUser-Agent: \
         Mozilla/5.0 (Windows NT; Windows NT 10.0) WindowsPowerShell/5.1\r\nConnection: \
         Keep-Alive\r\n\r\n"
    );
    tls.write_all(request.as_bytes())
        .await
        .map_err(|_| NO_SERVER.to_string())?;
    let mut received = Vec::new();
    let mut head_end = None;
    let mut chunk = vec![0u8; 64 * 1024];
    let mut hasher = Sha256::new();
    let mut length = 0u64;
    loop {
        let n = match tls.read(&mut chunk).await {
            Ok(n) => n,
            // The server ends the TLS stream without close_notify only on error paths.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
            Err(e) => return Err(format!("Invoke-WebRequest : {e}")),
        };
        if n == 0 {
            break;
        }
        match head_end {
            Some(_) => {
                hasher.update(&chunk[..n]);
                length += n as u64;
            }
            None => {
                received.extend_from_slice(&chunk[..n]);
                if let Some(i) = received.windows(4).position(|w| w == b"\r\n\r\n") {
                    let body = received.split_off(i + 4);
                    hasher.update(&body);
                    length += body.len() as u64;
                    head_end = Some(i);
                }
            }
        }
    }
    let head = String::from_utf8_lossy(&received);
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| NO_SERVER.to_string())?;
    if status != 200 {
        let reason = head
            .lines()
            .next()
            .and_then(|l| l.splitn(3, ' ').nth(2))
            .unwrap_or_default()
            .trim()
            .to_string();
        return Err(format!(
            "Invoke-WebRequest : The remote server returned an error: ({status}) {reason}."
        ));
    }
    Ok(Downloaded {
        length,
        sha256: hex::encode(hasher.finalize()),
    })
}

/// The script's validation callback: the certificate's SHA-256 must be the pin; the handshake's
/// signatures are still checked by .NET's TLS.
#[derive(Debug)]
struct Pinned {
    pin: String,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let seen = hex::encode(Sha256::digest(end_entity.as_ref()));
        if seen.eq_ignore_ascii_case(&self.pin) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General("certificate not pinned".into()))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

    /// A one-shot HTTPS server on loopback answering `status` and `body`; returns its URL and
    /// the SHA-256 of its certificate.
    async fn server(status: &'static str, body: &'static [u8]) -> (String, String) {
        let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
        let pin = hex::encode(Sha256::digest(made.cert.der().as_ref()));
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()));
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![made.cert.der().clone()], key)
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://{}/packages/x", listener.local_addr().unwrap());
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                return;
            };
            let mut head = [0u8; 1024];
            let _ = tls.read(&mut head).await;
            let reply = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            let _ = tls.write_all(reply.as_bytes()).await;
            let _ = tls.write_all(body).await;
            let _ = tls.shutdown().await;
        });
        (url, pin)
    }

    #[tokio::test]
    async fn only_the_pinned_certificate_is_accepted_and_errors_read_as_invoke_webrequest_words_them()
     {
        let (url, pin) = server("200 OK", b"package").await;
        let got = download(&url, "t", &pin).await.unwrap();
        assert_eq!(got.length, 7);
        assert_eq!(got.sha256, hex::encode(Sha256::digest(b"package")));

        let (url, _) = server("200 OK", b"package").await;
        let refused = download(&url, "t", &"00".repeat(32)).await.err().unwrap();
        assert_eq!(refused, NO_TRUST);

        let (url, pin) = server("401 Unauthorized", b"").await;
        let denied = download(&url, "t", &pin).await.err().unwrap();
        assert_eq!(
            denied,
            "Invoke-WebRequest : The remote server returned an error: (401) Unauthorized."
        );
        assert_eq!(
            download("https://127.0.0.1:1/packages/x", "t", &pin)
                .await
                .err()
                .unwrap(),
            NO_SERVER
        );
    }
}
