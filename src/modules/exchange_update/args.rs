//! `exchange_update`'s arguments as written: exactly one goal (`target: path`, `kb` or `cu`),
//! whether to walk the whole path in this one task (`walk`, with the restarts' `poll_interval`),
//! package sources, the licence switch, AD preparation, a free-disk floor and whether to keep
//! downloaded packages.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::super::Num;
use super::super::exchange_script::{PackageSource, Rendered, ShareAccount};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArgs {
    #[serde(default)]
    target: Option<Target>,
    #[serde(default)]
    kb: Option<String>,
    #[serde(default)]
    cu: Option<String>,
    #[serde(default)]
    sources: Option<Rendered<BTreeMap<String, PackageSource>>>,
    #[serde(default)]
    license_switch: Option<String>,
    #[serde(default)]
    ad_prepared: Option<Rendered<bool>>,
    #[serde(default)]
    min_free_disk_gb: Option<Num>,
    #[serde(default)]
    keep_packages: bool,
    #[serde(default)]
    walk: Option<Rendered<bool>>,
    #[serde(default)]
    poll_interval: Option<Num>,
}

/// `target: path`: follow the path [`crate::exchange::assess`] plans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Target {
    Path,
}

/// What to install: the assessed path, or one explicit update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Want {
    Path,
    Kb(String),
    Cu(String),
}

/// Arguments of `exchange_update`: exactly one of `target: path`, `kb` or `cu`.
#[derive(Debug, Deserialize)]
#[serde(try_from = "RawArgs")]
pub struct Args {
    pub(super) want: Want,
    pub(super) sources: Option<Rendered<BTreeMap<String, PackageSource>>>,
    pub(super) license_switch: Option<String>,
    pub(super) ad_prepared: Option<Rendered<bool>>,
    pub(super) min_free_disk_gb: Option<Num>,
    /// Keep downloaded packages on the host after a successful install.
    pub(super) keep_packages: bool,
    /// Walk the whole path in this task: install, restart, re-read the facts, until nothing
    /// is left (only with `target: path`).
    pub(super) walk: Option<Rendered<bool>>,
    /// Between looks at a restarting host while walking (the `reboot` module's `poll_interval`).
    pub(super) poll_interval: Option<Num>,
}

/// Arguments that name no goal, or more than one, or walk something that is no path.
#[derive(Debug, thiserror::Error)]
pub enum BadGoal {
    #[error("give exactly one of `target: path`, `kb: KB...` or `cu: CU...`")]
    NotOne,
    #[error("`walk` and `poll_interval` go with `target: path` only: one `kb`/`cu` is one step")]
    WalkWithoutPath,
}

impl TryFrom<RawArgs> for Args {
    type Error = BadGoal;

    fn try_from(raw: RawArgs) -> Result<Self, BadGoal> {
        let want = match (raw.target, raw.kb, raw.cu) {
            (Some(Target::Path), None, None) => Want::Path,
            (None, Some(kb), None) => Want::Kb(kb),
            (None, None, Some(cu)) => Want::Cu(cu),
            _ => return Err(BadGoal::NotOne),
        };
        if want != Want::Path && (raw.walk.is_some() || raw.poll_interval.is_some()) {
            return Err(BadGoal::WalkWithoutPath);
        }
        Ok(Args {
            want,
            sources: raw.sources,
            license_switch: raw.license_switch,
            ad_prepared: raw.ad_prepared,
            min_free_disk_gb: raw.min_free_disk_gb,
            keep_packages: raw.keep_packages,
            walk: raw.walk,
            poll_interval: raw.poll_interval,
        })
    }
}

impl Args {
    /// The controller's file of the `serve:` source at `location`, if it is one.
    pub(super) fn served(&self, location: &str) -> Option<std::path::PathBuf> {
        let Some(Rendered::Value(sources)) = &self.sources else {
            return None;
        };
        sources
            .values()
            .find(|s| s.location() == Ok(location))
            .and_then(|s| s.served().map(std::path::Path::to_path_buf))
    }

    /// The share account the host reads `location` as: its source's own, else the host's.
    pub(super) fn share_account(
        &self,
        location: &str,
        host: Option<&crate::model::share_account::ShareLogin>,
    ) -> Option<ShareAccount> {
        let Some(Rendered::Value(sources)) = &self.sources else {
            return None;
        };
        sources
            .values()
            .find(|s| s.location() == Ok(location))
            .and_then(|s| s.share_account_or(host).ok().flatten())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn exactly_one_goal_is_accepted() {
        let v = |a| crate::modules::validate_args("exchange_update", &a);
        assert!(v(json!({"target": "path"})).is_ok());
        // Mappings and booleans may come from variables: checked again once rendered.
        assert!(v(json!({"target": "path", "sources": "{{ salve_update_sources }}", "ad_prepared": "{{ x }}"})).is_ok());
        assert!(v(json!({"target": "path", "sources": "not a mapping"})).is_err());
        assert!(v(json!({"kb": "KB5000871", "cu": "CU9"})).is_err());
        assert!(v(json!({})).is_err());
        assert!(v(json!({"target": "latest"})).is_err());
        assert!(v(json!({"target": "path", "source": {}})).is_err());
        assert!(v(json!({"target": "path", "walk": true, "poll_interval": 5})).is_ok());
        assert!(v(json!({"target": "path", "walk": "{{ walk }}"})).is_ok());
        assert!(v(json!({"kb": "KB5000871", "walk": true})).is_err());
    }
}
