//! Starting the WinRM front ends of a fleet: every simulated host gets an HTTP listener on
//! its own loopback address, port 5985 (NTLM with message encryption, as a stock Windows
//! listener), and, when a lab CA is given, an HTTPS listener on 5986 with a certificate for
//! its name and address (Basic and NTLM).

use std::net::SocketAddr;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::fleet::Fleet;
use crate::host_api::SimHost;
use crate::winrm::{AccessLog, LabCa, ListenerConfig, ListenerError, Scheme, WinrmListener};

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

/// Bind every host's listeners and serve them until `cancel` fires.
pub async fn start(
    fleet: &Fleet,
    ca: Option<&LabCa>,
    cancel: &CancellationToken,
) -> Result<FrontEnds, FrontEndError> {
    let mut access = Vec::new();
    for (index, host) in fleet.hosts().iter().enumerate() {
        let addr = fleet.core().address(index);
        let sim: Arc<dyn SimHost> = Arc::clone(host) as Arc<dyn SimHost>;
        let http = WinrmListener::bind(addr, Arc::clone(&sim), ListenerConfig::default()).await?;
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
                ..ListenerConfig::default()
            };
            let https =
                WinrmListener::bind(SocketAddr::new(addr.ip(), HTTPS_PORT), sim, config).await?;
            tokio::spawn(https.serve(cancel.clone()));
        }
    }
    Ok(FrontEnds { access })
}
