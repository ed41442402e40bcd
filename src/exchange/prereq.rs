//! Setup prerequisites for installing a CU: facts read from a server (by the facts script) are
//! checked against the target CU, giving typed findings, each with the fix.
//!
//! Checks (exchange-domain.md §4.1): .NET Framework release supported by the target CU, Visual
//! C++ 2012 (all roles) and 2013 (Mailbox), UCMA 4.0 (Mailbox), no pending reboot, enough free
//! disk, and AD preparation when the Setup account cannot do it itself. A fact that was not
//! collected gives an [`Status::Unchecked`] finding rather than a silent pass.

use std::fmt;

use serde::Serialize;

use super::catalogue::Level;
use super::dotnet::DotNet;

/// What was read from the server. `None` = not collected.
#[derive(Debug, Clone, Default)]
pub struct PrereqFacts {
    /// `Release` under `HKLM\SOFTWARE\Microsoft\NET Framework Setup\NDP\v4\Full`.
    pub dotnet_release: Option<u32>,
    /// A `Microsoft Visual C++ 2012*` runtime is installed.
    pub vcredist_2012: Option<bool>,
    /// A `Microsoft Visual C++ 2013*` runtime is installed.
    pub vcredist_2013: Option<bool>,
    /// UCMA 4.0 Core Runtime is installed.
    pub ucma4: Option<bool>,
    /// The server has the Mailbox role (VC++ 2013 and UCMA are Mailbox prerequisites).
    pub mailbox_role: bool,
    /// Any pending-reboot marker is set (Session Manager rename operations, CBS/WU keys, ...).
    pub pending_reboot: Option<bool>,
    /// Free bytes on the Exchange install drive.
    pub free_disk_bytes: Option<u64>,
    /// The organisation is not yet prepared for the target CU (schema/org version).
    pub ad_prep_needed: Option<bool>,
    /// The Setup account has Schema Admins and Enterprise Admins rights.
    pub setup_account_can_prepare_ad: Option<bool>,
}

/// Thresholds that are policy, not fact.
#[derive(Debug, Clone, Copy)]
pub struct PrereqPolicy {
    /// Minimum free disk for a CU install. No Microsoft figure backs the default (30 GiB).
    pub min_free_disk_bytes: u64,
}

impl Default for PrereqPolicy {
    fn default() -> Self {
        Self {
            min_free_disk_bytes: 30 * 1024 * 1024 * 1024,
        }
    }
}

/// Which prerequisite a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    DotNet,
    VcRedist2012,
    VcRedist2013,
    Ucma4,
    PendingReboot,
    FreeDisk,
    AdPreparation,
}

/// How a finding affects the install.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Setup would fail or the result would be unsupported: fix first.
    Blocking,
    /// The fact was not collected, so the check could not run.
    Unchecked,
}

/// One prerequisite problem with its fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub check: Check,
    pub status: Status,
    pub message: String,
    pub fix: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = match self.status {
            Status::Blocking => "blocking",
            Status::Unchecked => "unchecked",
        };
        write!(f, "{status}: {} (fix: {})", self.message, self.fix)
    }
}

/// Check the facts against installing `target` (a CU). Empty result = nothing in the way.
pub fn evaluate(target: &Level, facts: &PrereqFacts, policy: PrereqPolicy) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut add = |check, status, message: String, fix: String| {
        findings.push(Finding {
            check,
            status,
            message,
            fix,
        });
    };
    let cu = &target.cu;

    if let Some(&newest) = target.dotnet.last() {
        let supported = target
            .dotnet
            .iter()
            .map(|v| v.as_str())
            .collect::<Vec<_>>()
            .join(" or ");
        let fix = format!(
            "install .NET {newest} in maintenance mode with Exchange services stopped, reboot, \
             then install {cu} straight away"
        );
        match facts.dotnet_release {
            None => add(
                Check::DotNet,
                Status::Unchecked,
                ".NET Framework release not collected".to_owned(),
                fix,
            ),
            Some(release) => match DotNet::from_release(release) {
                Some(v) if target.dotnet.contains(&v) => {}
                found => add(
                    Check::DotNet,
                    Status::Blocking,
                    format!(
                        ".NET {} (release {release}) is not supported by {cu}, which needs \
                         .NET {supported}",
                        found.map_or("older than 4.6.2", DotNet::as_str)
                    ),
                    fix,
                ),
            },
        }
    }

    let mut installed = |check, fact: Option<bool>, what: &str, fix: &str| match fact {
        Some(true) => {}
        Some(false) => add(
            check,
            Status::Blocking,
            format!("{what} is not installed"),
            fix.to_owned(),
        ),
        None => add(
            check,
            Status::Unchecked,
            format!("whether {what} is installed was not collected"),
            fix.to_owned(),
        ),
    };
    installed(
        Check::VcRedist2012,
        facts.vcredist_2012,
        "the Visual C++ 2012 runtime",
        "install the Visual C++ 2012 Redistributable (x64), version 11.0.61030",
    );
    if facts.mailbox_role {
        installed(
            Check::VcRedist2013,
            facts.vcredist_2013,
            "the Visual C++ 2013 runtime",
            "install the Visual C++ 2013 Redistributable (x64), version 12.0.40664",
        );
        installed(
            Check::Ucma4,
            facts.ucma4,
            "the UCMA 4.0 Core Runtime",
            "install the Unified Communications Managed API 4.0 Core Runtime",
        );
    }

    match facts.pending_reboot {
        Some(false) => {}
        status => add(
            Check::PendingReboot,
            if status.is_some() {
                Status::Blocking
            } else {
                Status::Unchecked
            },
            if status.is_some() {
                "a reboot is pending".to_owned()
            } else {
                "pending-reboot markers not collected".to_owned()
            },
            "reboot the server before Setup (markers can linger briefly after a reboot)".to_owned(),
        ),
    }

    let gib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0 * 1024.0);
    let disk_fix = format!(
        "free at least {:.0} GiB on the Exchange drive (old logs, setup media)",
        gib(policy.min_free_disk_bytes)
    );
    match facts.free_disk_bytes {
        Some(free) if free >= policy.min_free_disk_bytes => {}
        Some(free) => add(
            Check::FreeDisk,
            Status::Blocking,
            format!("only {:.1} GiB free on the Exchange drive", gib(free)),
            disk_fix,
        ),
        None => add(
            Check::FreeDisk,
            Status::Unchecked,
            "free disk space not collected".to_owned(),
            disk_fix,
        ),
    }

    let ad_fix = format!(
        "run <media>\\Setup.exe /PrepareSchema and /PrepareAD for {cu} with Schema Admins and \
         Enterprise Admins rights, then wait for AD replication"
    );
    match (facts.ad_prep_needed, facts.setup_account_can_prepare_ad) {
        (Some(false), _) | (Some(true), Some(true)) => {}
        (Some(true), Some(false)) => add(
            Check::AdPreparation,
            Status::Blocking,
            format!("Active Directory is not prepared for {cu} and the Setup account cannot do it"),
            ad_fix,
        ),
        _ => add(
            Check::AdPreparation,
            Status::Unchecked,
            "AD preparation state or Setup account rights not collected".to_owned(),
            ad_fix,
        ),
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::build::Family;
    use crate::exchange::catalogue::catalogue;

    fn level(family: Family, cu: &str) -> &'static Level {
        let cat = catalogue().unwrap();
        let entry = cat.family(family).unwrap();
        entry.levels.iter().find(|l| l.cu == cu).unwrap()
    }

    fn ready() -> PrereqFacts {
        PrereqFacts {
            dotnet_release: Some(528_040),
            vcredist_2012: Some(true),
            vcredist_2013: Some(true),
            ucma4: Some(true),
            mailbox_role: true,
            pending_reboot: Some(false),
            free_disk_bytes: Some(100 * 1024 * 1024 * 1024),
            ad_prep_needed: Some(true),
            setup_account_can_prepare_ad: Some(true),
        }
    }

    fn checks(findings: &[Finding], status: Status) -> Vec<Check> {
        findings
            .iter()
            .filter(|f| f.status == status)
            .map(|f| f.check)
            .collect()
    }

    #[test]
    fn a_ready_server_has_no_findings() {
        let cu21 = level(Family::Exchange2016, "CU21");
        assert_eq!(evaluate(cu21, &ready(), PrereqPolicy::default()), vec![]);
    }

    #[test]
    fn each_missing_prerequisite_blocks_with_a_fix() {
        let cu21 = level(Family::Exchange2016, "CU21");
        let facts = PrereqFacts {
            dotnet_release: Some(461_808),
            vcredist_2012: Some(false),
            vcredist_2013: Some(false),
            ucma4: Some(false),
            pending_reboot: Some(true),
            free_disk_bytes: Some(5 * 1024 * 1024 * 1024),
            setup_account_can_prepare_ad: Some(false),
            ..ready()
        };
        let findings = evaluate(cu21, &facts, PrereqPolicy::default());
        assert_eq!(
            checks(&findings, Status::Blocking),
            [
                Check::DotNet,
                Check::VcRedist2012,
                Check::VcRedist2013,
                Check::Ucma4,
                Check::PendingReboot,
                Check::FreeDisk,
                Check::AdPreparation
            ]
        );
        let dotnet = &findings[0];
        assert!(
            dotnet.message.contains(".NET 4.7.2 (release 461808)"),
            "{dotnet}"
        );
        assert!(dotnet.message.contains("needs .NET 4.8"), "{dotnet}");
        assert!(dotnet.fix.contains("install .NET 4.8"), "{dotnet}");
        assert!(findings[5].message.contains("5.0 GiB"), "{}", findings[5]);
        assert!(findings.iter().all(|f| !f.fix.is_empty()));
    }

    #[test]
    fn dotnet_newer_or_older_than_the_matrix_blocks() {
        let cu23 = level(Family::Exchange2013, "CU23");
        let at = |release| PrereqFacts {
            dotnet_release: Some(release),
            ..ready()
        };
        let policy = PrereqPolicy::default();
        assert!(
            evaluate(cu23, &at(461_808), policy).is_empty(),
            "4.7.2 is fine"
        );
        let newer = evaluate(cu23, &at(533_320), policy);
        assert!(newer[0].message.contains(".NET 4.8.1"), "{}", newer[0]);
        let ancient = evaluate(cu23, &at(379_893), policy);
        assert!(
            ancient[0].message.contains("older than 4.6.2"),
            "{}",
            ancient[0]
        );
    }

    #[test]
    fn mailbox_only_checks_skip_other_roles_and_missing_facts_are_unchecked() {
        let cu10 = level(Family::Exchange2019, "CU10");
        let facts = PrereqFacts {
            mailbox_role: false,
            vcredist_2013: Some(false),
            ucma4: Some(false),
            ..ready()
        };
        assert!(evaluate(cu10, &facts, PrereqPolicy::default()).is_empty());
        let unknown = PrereqFacts::default();
        let findings = evaluate(cu10, &unknown, PrereqPolicy::default());
        assert_eq!(
            checks(&findings, Status::Unchecked),
            [
                Check::DotNet,
                Check::VcRedist2012,
                Check::PendingReboot,
                Check::FreeDisk,
                Check::AdPreparation
            ]
        );
        assert!(checks(&findings, Status::Blocking).is_empty());
    }

    #[test]
    fn ad_preparation_blocks_only_when_setup_cannot_do_it() {
        let cu23 = level(Family::Exchange2013, "CU23");
        let ok = PrereqFacts {
            ad_prep_needed: Some(false),
            setup_account_can_prepare_ad: Some(false),
            ..ready()
        };
        assert!(evaluate(cu23, &ok, PrereqPolicy::default()).is_empty());
        let policy = PrereqPolicy {
            min_free_disk_bytes: 200 * 1024 * 1024 * 1024,
        };
        let tight = evaluate(cu23, &ready(), policy);
        assert_eq!(checks(&tight, Status::Blocking), [Check::FreeDisk]);
        assert!(tight[0].fix.contains("200 GiB"));
    }
}
