//! One connection per host per run: opened on first use, shared by every task, dropped and
//! re-opened after a reboot ([`HostLink::reset`]), closed at the end of the run.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::Mutex;

use crate::modules::HostLink;
use crate::transport::{ConnectionSpec, Connector, Transport, TransportError};

/// The runner's [`HostLink`].
pub struct Link {
    spec: ConnectionSpec,
    connector: Arc<dyn Connector>,
    current: Mutex<Option<Arc<dyn Transport>>>,
}

impl Link {
    /// A link to the host `spec` describes (checked when the inventory was loaded).
    pub fn new(spec: ConnectionSpec, connector: Arc<dyn Connector>) -> Self {
        Link {
            spec,
            connector,
            current: Mutex::new(None),
        }
    }

    /// Release the host's remote resources (end of run).
    pub async fn close(&self) {
        if let Some(t) = self.current.lock().await.take() {
            t.close().await;
        }
    }
}

#[async_trait]
impl HostLink for Link {
    async fn transport(&self) -> Result<Arc<dyn Transport>, TransportError> {
        let mut current = self.current.lock().await;
        if let Some(t) = current.as_ref() {
            return Ok(Arc::clone(t));
        }
        let t = self.connector.connect(&self.spec).await?;
        *current = Some(Arc::clone(&t));
        Ok(t)
    }

    async fn reset(&self) {
        if let Some(t) = self.current.lock().await.take() {
            t.reset().await;
        }
    }
}
