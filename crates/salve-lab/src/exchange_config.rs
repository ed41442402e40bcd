//! The configuration Exchange security fixes depend on, as a simulated server holds it, with the
//! Windows/Exchange rules it models:
//! - **SettingOverrides** are organisation-wide objects (`New-SettingOverride -Component
//!   -Section -Parameters "Name=Value"`); `Get-SettingOverride` lists them on any server. A
//!   parameter set to `False` switches off what an SU turned on (CSS-Exchange HealthChecker,
//!   Invoke-AnalyzerSecurityCveCheck.ps1, reads them this way). Exchange 2013 has no such cmdlet.
//! - **Extended Protection** is on by default from Exchange 2019 CU14 Setup (and so on SE);
//!   older CUs have it only when an admin enabled it (CSS-Exchange
//!   ExchangeExtendedProtectionManagement.ps1).
//! - **The Emergency Mitigation service** (`MSExchangeMitigation`) ships with 2016 CU22,
//!   2019 CU11 and SE RTM, runs and is enabled by default; `Get-ExchangeServer` reports the
//!   mitigations it applied (`MitigationsApplied`) and those an admin blocked
//!   (`MitigationsBlocked`) (CSS-Exchange Invoke-AnalyzerSecurityMitigationService.ps1).
//! - An EEMS URL Rewrite mitigation for OWA is an **outbound** rule on `Default Web Site/owa`
//!   (`EOMT OWA CSP - outbound` for CVE-2026-42897, CSS-Exchange Security/src/EOMT).

use serde::{Deserialize, Serialize};

use crate::catalog::{Build, Family};

/// The name EOMT (and EEMS M2.1.x) gives the CVE-2026-42897 outbound rule on /owa.
pub const OWA_CSP_RULE: &str = "EOMT OWA CSP - outbound";
use salve_contract::contract::{EmergencyMitigation, ExchangeConfigFacts, SettingOverride};

/// One server's fix-related configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExchangeConfig {
    /// Organisation-wide overrides this server sees.
    pub setting_overrides: Vec<SettingOverride>,
    /// Set by an admin (or a scenario); `None` = the build's default.
    pub extended_protection: Option<bool>,
    /// EEMS ids the service applied, and those an admin blocked.
    pub eems_applied: Vec<String>,
    pub eems_blocked: Vec<String>,
    /// The service was stopped or mitigations disabled by an admin.
    pub eems_disabled: bool,
    /// Outbound rewrite rules on /owa.
    pub outbound_rules: Vec<String>,
}

impl ExchangeConfig {
    /// What `exchange_facts` reads on a server at `build` with this configuration.
    pub fn facts(&self, build: Option<Build>) -> ExchangeConfigFacts {
        let family = build.and_then(Family::of);
        let has_overrides = matches!(family, Some(Family::Ex2016 | Family::Ex2019 | Family::Se));
        ExchangeConfigFacts {
            setting_overrides: has_overrides.then(|| self.setting_overrides.clone()),
            extended_protection: build.map(|b| {
                self.extended_protection
                    .unwrap_or_else(|| extended_protection_by_default(b))
            }),
            emergency_mitigation: build.filter(|b| has_eems(*b)).map(|_| EmergencyMitigation {
                service_present: true,
                service_running: !self.eems_disabled,
                mitigations_enabled: !self.eems_disabled,
                applied: self.eems_applied.clone(),
                blocked: self.eems_blocked.clone(),
            }),
            outbound_rules: self.outbound_rules.clone(),
        }
    }
}

/// 2019 CU14 Setup (and SE) turns Extended Protection on.
fn extended_protection_by_default(build: Build) -> bool {
    match Family::of(build) {
        Some(Family::Se) => true,
        Some(Family::Ex2019) => build >= Build([15, 2, 1544, 4]),
        _ => false,
    }
}

/// EEMS ships with 2016 CU22, 2019 CU11 and SE RTM.
fn has_eems(build: Build) -> bool {
    match Family::of(build) {
        Some(Family::Se) => true,
        Some(Family::Ex2019) => build >= Build([15, 2, 986, 5]),
        Some(Family::Ex2016) => build >= Build([15, 1, 2375, 7]),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Option<Build> {
        s.parse().ok()
    }

    #[test]
    fn defaults_follow_the_cu() {
        let c = ExchangeConfig::default();
        let cu13 = c.facts(b("15.2.1258.12"));
        assert_eq!(cu13.extended_protection, Some(false));
        assert!(cu13.emergency_mitigation.is_some());
        let cu14 = c.facts(b("15.2.1544.36"));
        assert_eq!(cu14.extended_protection, Some(true));
        let cu10 = c.facts(b("15.2.922.7"));
        assert!(
            cu10.emergency_mitigation.is_none(),
            "EEMS ships with 2019 CU11"
        );
        let e2013 = c.facts(b("15.0.1497.48"));
        assert!(
            e2013.setting_overrides.is_none(),
            "no Get-SettingOverride on 2013"
        );
    }
}
