//! What a run was asked to do (playbook, inventories, selection, variables, tags), saved next
//! to the journal as `runs/<run id>.json` when the run starts, so `salve resume` can run it
//! again with exactly the same inputs.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Selection;

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

impl Invocation {
    pub fn selection(&self) -> Selection {
        Selection {
            inventories: self.inventories.clone(),
            limit: self.limit.clone(),
            tenant: self.tenant.clone(),
            all_tenants: self.all_tenants,
            extra_vars: self.extra_vars.clone(),
        }
    }

    fn path(run_id: &str) -> Result<PathBuf, String> {
        let dir = crate::journal::state_dir().map_err(|e| e.to_string())?;
        Ok(dir.join("runs").join(format!("{run_id}.json")))
    }

    /// Record it for `run_id` (owner-only, like the journal).
    pub fn save(&self, run_id: &str) -> Result<(), String> {
        let path = Self::path(run_id)?;
        let dir = path.parent().ok_or("no runs folder")?;
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    pub fn load(run_id: &str) -> Result<Invocation, String> {
        let path = Self::path(run_id)?;
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }
}
