//! Starting the WinRM front ends of a fleet: every simulated host gets an HTTP listener on
//! its own loopback address, port 5985 (NTLM with message encryption, as a stock Windows
//! listener), and, when a lab CA is given, an HTTPS listener on 5986 with a certificate for
//! its name and address (Basic and NTLM). Joined to a [`Domain`] (the hosts' DNS suffix, the
//! keytab of their SPNs, the client certificates they map), both listeners also accept
//! Kerberos for `HTTP/<host>.<suffix>`, as on a domain-joined Windows host, and HTTPS accepts
//! the mapped client certificates.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::fleet::Fleet;
use crate::host_api::SimHost;
use crate::winrm::{
    AccessLog, KerberosService, Keytab, LabCa, ListenerConfig, ListenerError, Scheme, WinrmListener,
};

/// The HTTPS port of every lab host.
pub const HTTPS_PORT: u16 = 5986;

/// Why the front ends could not start.
#[derive(Debug, thiserror::Error)]
pub enum FrontEndError {
    #[error(transparent)]
    Listen(#[from] ListenerError),
    #[error("cannot issue a certificate for {host}: {detail}")]
    Certificate { host: String, detail: String },
}

/// Per-host access logs of the running listeners, for benchmarks and tests.
pub struct FrontEnds {
    pub access: Vec<(String, AccessLog)>,
}

/// The Active Directory domain the lab's hosts are joined to: a host `name` is
/// `name.<dns_suffix>` and accepts Kerberos when `keytab` holds the key of
/// `HTTP/name.<dns_suffix>`; its HTTPS listener maps client certificates whose UPN is in
/// `mapped_certificates` to its administrator (`WSMan:\localhost\ClientCertificate`).
#[derive(Debug, Clone, Default)]
pub struct Domain {
    pub dns_suffix: String,
    pub keytab: Keytab,
    pub mapped_certificates: Vec<String>,
}

impl Domain {
    fn service(&self, host: &str) -> Option<KerberosService> {
        KerberosService::from_keytab(&self.keytab, &format!("{host}.{}", self.dns_suffix))
    }
}

/// Bind every host's listeners and serve them until `cancel` fires.
pub async fn start(
    fleet: &Fleet,
    ca: Option<&LabCa>,
    cancel: &CancellationToken,
) -> Result<FrontEnds, FrontEndError> {
    start_in_domain(fleet, ca, None, cancel).await
}

/// [`start`], the hosts joined to `domain` when given.
pub async fn start_in_domain(
    fleet: &Fleet,
    ca: Option<&LabCa>,
    domain: Option<&Domain>,
    cancel: &CancellationToken,
) -> Result<FrontEnds, FrontEndError> {
    let mut access = Vec::new();
    for (index, host) in fleet.hosts().iter().enumerate() {
        let addr = fleet.core().address(index);
        let sim: Arc<dyn SimHost> = Arc::clone(host) as Arc<dyn SimHost>;
        let kerberos = domain.and_then(|d| d.service(host.name()));
        let mapped_certificates = domain
            .map(|d| d.mapped_certificates.clone())
            .unwrap_or_default();
        let config = ListenerConfig {
            kerberos: kerberos.clone(),
            ..ListenerConfig::default()
        };
        let http = WinrmListener::bind(addr, Arc::clone(&sim), config).await?;
        access.push((host.name().to_string(), http.access_log()));
        tokio::spawn(http.serve(cancel.clone()));
        if let Some(ca) = ca {
            let tls =
                ca.host_tls(host.name(), addr.ip())
                    .map_err(|e| FrontEndError::Certificate {
                        host: host.name().to_string(),
                        detail: e.to_string(),
                    })?;
            let config = ListenerConfig {
                scheme: Scheme::Https(tls),
                kerberos,
                mapped_certificates,
                ..ListenerConfig::default()
            };
            let https =
                WinrmListener::bind(SocketAddr::new(addr.ip(), HTTPS_PORT), sim, config).await?;
            tokio::spawn(https.serve(cancel.clone()));
        }
    }
    Ok(FrontEnds { access })
}
