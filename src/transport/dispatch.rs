//! The connector a real run uses: it opens each host's connection with the transport its
//! `ansible_connection` names.

use std::sync::Arc;

use async_trait::async_trait;

use super::local::LocalConnector;
use super::{ConnectionKind, ConnectionSpec, Connector, Transport, TransportError};

/// Picks the transport per host.
pub struct Dispatch {
    winrm: Arc<dyn Connector>,
    ssh: Arc<dyn Connector>,
    local: LocalConnector,
}

impl Dispatch {
    pub fn new(winrm: Arc<dyn Connector>, ssh: Arc<dyn Connector>) -> Self {
        Dispatch {
            winrm,
            ssh,
            local: LocalConnector,
        }
    }
}

#[async_trait]
impl Connector for Dispatch {
    async fn connect(&self, spec: &ConnectionSpec) -> Result<Arc<dyn Transport>, TransportError> {
        match spec.kind {
            ConnectionKind::Winrm => self.winrm.connect(spec).await,
            ConnectionKind::Ssh => self.ssh.connect(spec).await,
            ConnectionKind::Local => self.local.connect(spec).await,
        }
    }
}
