//! "Protected, not just patched": some fixes also need configuration (Extended Protection,
//! serialized data signing, the dedicated hybrid app, an AD preparation step), and some can be
//! switched off again by a `SettingOverride`. Given what the host's facts say about that
//! configuration ([`HostConfig`]), each such CVE is judged on, off (it counts as open, with the
//! reason and the fix) or unknown (fixed in code: check the configuration).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::catalogue::{Check, Need, NeedMode};
use super::ids::Cve;

/// What the host's facts say about the configuration fixes depend on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostConfig {
    /// Features read on the host: true = on. A missing key is unknown.
    pub features: BTreeMap<Check, bool>,
    /// `Component\Section\Parameter` names a `SettingOverride` sets to False, with the
    /// override's name (what `Remove-SettingOverride` takes).
    pub overrides_off: BTreeMap<String, String>,
    /// The host's SettingOverrides were read (so an absent name means "not overridden").
    pub overrides_read: bool,
}

/// One CVE whose protection depends on configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Protection {
    pub cve: Cve,
    pub state: ProtectionState,
    pub mode: NeedMode,
    pub check: Check,
    /// What the configuration must be, for people.
    pub needs: String,
    /// Why it is off, when it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// How to turn it on.
    pub fix: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProtectionState {
    On,
    /// The CVE counts as open.
    Off,
    /// Fixed in code; the configuration was not read: check it.
    Unknown,
}

/// Judge the protection of `cve` that `need` describes, given the host's configuration.
pub fn judge(
    cve: Cve,
    mode: NeedMode,
    check: Check,
    needs: &str,
    overrides: &[String],
    host: Option<&HostConfig>,
) -> Protection {
    let (state, reason) = match (check, host) {
        (_, None) => (ProtectionState::Unknown, None),
        (Check::SettingOverride, Some(host)) => {
            let off: Vec<String> = overrides
                .iter()
                .filter_map(|name| {
                    host.overrides_off
                        .get(name)
                        .map(|by| format!("SettingOverride `{by}` sets {name} to False"))
                })
                .collect();
            if !off.is_empty() {
                (ProtectionState::Off, Some(off.join("; ")))
            } else if host.overrides_read {
                (ProtectionState::On, None)
            } else {
                (ProtectionState::Unknown, None)
            }
        }
        (check, Some(host)) => match host.features.get(&check) {
            Some(true) => (ProtectionState::On, None),
            Some(false) => (
                ProtectionState::Off,
                Some(format!("{} is off on this server", check.as_str())),
            ),
            None => (ProtectionState::Unknown, None),
        },
    };
    Protection {
        cve,
        state,
        mode,
        check,
        needs: needs.to_owned(),
        reason,
        fix: fix_for(check, overrides, host),
    }
}

/// [`judge`] for a catalogue [`Need`].
pub fn judge_need(cve: Cve, need: &Need, host: Option<&HostConfig>) -> Protection {
    judge(
        cve,
        need.mode,
        need.check,
        &need.what,
        &need.overrides,
        host,
    )
}

fn fix_for(check: Check, overrides: &[String], host: Option<&HostConfig>) -> String {
    match check {
        Check::ExtendedProtection => "enable Extended Protection (CSS-Exchange \
            ExchangeExtendedProtectionManagement.ps1), then restart IIS"
            .into(),
        Check::SerializedDataSigning => "remove the SettingOverride that disables serialized \
            data signing (EnableSerializationDataSigning), then restart IIS and the Exchange services"
            .into(),
        Check::DedicatedHybridApp => "create the dedicated Exchange hybrid app and clean up \
            the shared service principal (ConfigureExchangeHybridApplication.ps1)"
            .into(),
        Check::PrepareSchema => "run Setup.exe /PrepareSchema from the installed CU's media".into(),
        Check::PrepareAllDomains => "run Setup.exe /PrepareAllDomains after installing the SU".into(),
        Check::SettingOverride => {
            let names: BTreeSet<&str> = overrides
                .iter()
                .filter_map(|n| host.and_then(|h| h.overrides_off.get(n)).map(String::as_str))
                .collect();
            if names.is_empty() {
                format!("keep {} unset or True", overrides.join(", "))
            } else {
                let names: Vec<&str> = names.into_iter().collect();
                format!(
                    "Remove-SettingOverride -Identity {}; then refresh with \
                     Get-ExchangeDiagnosticInfo -Process Microsoft.Exchange.Directory.TopologyService \
                     -Component VariantConfiguration -Argument Refresh and restart the affected services",
                    names.join(", ")
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cve() -> Cve {
        "CVE-2025-25005".parse().unwrap()
    }

    #[test]
    fn an_override_set_false_turns_the_protection_off_and_names_the_fix() {
        let names = vec!["OAuth\\AppIdBasedAudienceValidation\\Enabled".to_owned()];
        let judge_with = |host: Option<&HostConfig>| {
            judge(
                cve(),
                NeedMode::MustNotDisable,
                Check::SettingOverride,
                "x",
                &names,
                host,
            )
        };
        assert_eq!(judge_with(None).state, ProtectionState::Unknown);
        let mut host = HostConfig {
            overrides_read: true,
            ..HostConfig::default()
        };
        assert_eq!(judge_with(Some(&host)).state, ProtectionState::On);
        host.overrides_off
            .insert(names[0].clone(), "DisableAudienceCheck".into());
        let p = judge_with(Some(&host));
        assert_eq!(p.state, ProtectionState::Off);
        assert!(p.reason.unwrap().contains("DisableAudienceCheck"));
        assert!(
            p.fix
                .contains("Remove-SettingOverride -Identity DisableAudienceCheck")
        );
    }

    #[test]
    fn features_are_on_off_or_unknown() {
        let mut host = HostConfig::default();
        let ep = |host: &HostConfig| {
            judge(
                cve(),
                NeedMode::MustEnable,
                Check::ExtendedProtection,
                "x",
                &[],
                Some(host),
            )
            .state
        };
        assert_eq!(ep(&host), ProtectionState::Unknown);
        host.features.insert(Check::ExtendedProtection, false);
        assert_eq!(ep(&host), ProtectionState::Off);
        host.features.insert(Check::ExtendedProtection, true);
        assert_eq!(ep(&host), ProtectionState::On);
    }
}
