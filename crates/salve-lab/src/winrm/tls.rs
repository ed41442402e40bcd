//! The lab's certificate authority and the HTTPS identities of its hosts.
//!
//! One CA per lab run signs a certificate for each host's name and IP address, as an
//! enterprise CA would for WinRM HTTPS listeners (port 5986). Clients verify with the CA's PEM,
//! written to a file. A second, deliberately wrong certificate (another name) serves hosts whose
//! scenario sets the `bad_tls` fault.

use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, OtherNameValue, SanType,
};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;

/// The name on the certificate served under the `bad_tls` fault.
const WRONG_NAME: &str = "wrong-host.lab.invalid";

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot generate a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("cannot build the tls configuration: {0}")]
    Config(#[from] tokio_rustls::rustls::Error),
    #[error("cannot write the lab ca to {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// The lab's certificate authority.
pub struct LabCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    wrong: OnceLock<Arc<ServerConfig>>,
}

impl std::fmt::Debug for LabCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LabCa").finish_non_exhaustive()
    }
}

/// What an HTTPS listener presents: the host's own certificate, and the wrong one for `bad_tls`.
#[derive(Clone)]
pub struct HostTls {
    pub good: Arc<ServerConfig>,
    pub bad: Arc<ServerConfig>,
}

impl std::fmt::Debug for HostTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostTls").finish_non_exhaustive()
    }
}

impl LabCa {
    pub fn generate() -> Result<Self, TlsError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::CommonName, "salve lab CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;
        Ok(Self {
            issuer,
            wrong: OnceLock::new(),
        })
    }

    /// The CA certificate, PEM-encoded (what clients trust).
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    pub fn write_pem(&self, path: &Path) -> Result<(), TlsError> {
        std::fs::write(path, self.pem()).map_err(|source| TlsError::Write {
            path: path.display().to_string(),
            source,
        })
    }

    /// A server configuration for a certificate naming `names` (DNS names or IP addresses).
    fn server_config(&self, names: Vec<String>) -> Result<Arc<ServerConfig>, TlsError> {
        let common_name = names.first().cloned().unwrap_or_default();
        let mut params = CertificateParams::new(names)?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        let chain = vec![
            cert.der().clone(),
            CertificateDer::from(self.issuer.der().to_vec()),
        ];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        // Client certificates are asked for, not required (as HTTP.sys with client certificate
        // negotiation): those that chain to the lab CA reach the certificate mapping.
        let mut roots = tokio_rustls::rustls::RootCertStore::empty();
        roots.add(CertificateDer::from(self.issuer.der().to_vec()))?;
        let clients =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .allow_unauthenticated()
                .build()
                .map_err(|e| {
                    TlsError::Config(tokio_rustls::rustls::Error::General(e.to_string()))
                })?;
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(clients)
            .with_single_cert(chain, key)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// A client certificate for the user principal name `upn` (in its Subject Alternative Name,
    /// as an enterprise CA's "User" template issues it), with its key: (cert PEM, key PEM).
    pub fn client_certificate(&self, upn: &str) -> Result<(String, String), TlsError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, upn);
        params.subject_alt_names = vec![SanType::OtherName((
            vec![1, 3, 6, 1, 4, 1, 311, 20, 2, 3],
            OtherNameValue::Utf8String(upn.to_string()),
        ))];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// The HTTPS identity of a host called `name` listening on `ip`.
    pub fn host_tls(&self, name: &str, ip: IpAddr) -> Result<HostTls, TlsError> {
        let good = self.server_config(vec![name.to_string(), ip.to_string()])?;
        let bad = match self.wrong.get() {
            Some(bad) => bad.clone(),
            None => {
                let made = self.server_config(vec![WRONG_NAME.to_string()])?;
                self.wrong.get_or_init(|| made).clone()
            }
        };
        Ok(HostTls { good, bad })
    }
}
