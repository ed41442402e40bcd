//! What a run was asked to do (playbook, inventories, selection, variables, tags), saved next
//! to the journal as `runs/<run id>.json` when the run starts, so `salve resume` can run it
//! again with exactly the same inputs.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Selection;
use crate::journal::JournalError;

/// The inputs of one `salve run`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invocation {
    pub playbook: PathBuf,
    pub inventories: Vec<PathBuf>,
    pub limit: Option<String>,
    pub tenant: Option<String>,
    pub all_tenants: bool,
    pub extra_vars: Vec<String>,
    pub tags: Vec<String>,
    pub skip_tags: Vec<String>,
}

/// Why an invocation could not be saved or read back.
#[derive(Debug, thiserror::Error)]
pub enum InvocationError {
    #[error(transparent)]
    StateDir(#[from] JournalError),
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a saved run", path.display())]
    Format {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

impl Invocation {
    /// The inputs of a run: the playbook, the selection and the tags.
    pub fn new(
        playbook: PathBuf,
        selection: &Selection,
        tags: Vec<String>,
        skip_tags: Vec<String>,
    ) -> Self {
        Invocation {
            playbook,
            inventories: selection.inventories.clone(),
            limit: selection.limit.clone(),
            tenant: selection.tenant.clone(),
            all_tenants: selection.all_tenants,
            extra_vars: selection.extra_vars.clone(),
            tags,
            skip_tags,
        }
    }

    pub fn selection(&self) -> Selection {
        Selection {
            inventories: self.inventories.clone(),
            limit: self.limit.clone(),
            tenant: self.tenant.clone(),
            all_tenants: self.all_tenants,
            extra_vars: self.extra_vars.clone(),
        }
    }

    fn path(run_id: &str) -> Result<PathBuf, InvocationError> {
        let dir = crate::journal::state_dir()?;
        Ok(dir.join("runs").join(format!("{run_id}.json")))
    }

    /// Record it for `run_id` (owner-only, like the journal).
    pub fn save(&self, run_id: &str) -> Result<(), InvocationError> {
        let path = Self::path(run_id)?;
        let write = |source| InvocationError::Write {
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(write)?;
        }
        // Serialising plain strings and lists cannot fail.
        let text = serde_json::to_string_pretty(self).unwrap_or_default();
        std::fs::write(&path, text).map_err(write)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .map_err(write)?;
        }
        Ok(())
    }

    pub fn load(run_id: &str) -> Result<Invocation, InvocationError> {
        let path = Self::path(run_id)?;
        let text = std::fs::read_to_string(&path).map_err(|source| InvocationError::Read {
            path: path.clone(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| InvocationError::Format { path, source })
    }
}
