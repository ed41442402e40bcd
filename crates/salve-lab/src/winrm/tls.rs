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
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

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
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
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
