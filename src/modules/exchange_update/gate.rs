//! The rules an install must pass, read from facts before anything runs (so `check` reports
//! them too): an SU only on its own CU, no restart pending, a CU's Setup prerequisites and its
//! licence switch, and a package source with a checksum. What passes becomes the request for
//! the shipped `exchange_update` script. A .NET step of the path is a request too: the offline
//! installer of that version, from the source labelled `.NET 4.8` (or `NDP48`).

use std::collections::BTreeMap;

use super::super::Num;
use super::super::exchange_script::{PackageSource, SourceError};
use super::adprep::behind;
use super::resolve::{cu_label, level_at};
use crate::contract::{FactsAnswer, UpdateKind, UpdateRequest};
use crate::exchange::build::{Build, Family};
use crate::exchange::catalogue::{Catalogue, Level, LicenceSwitch};
use crate::exchange::dotnet::DotNet;
use crate::exchange::path::{Step, StepKind};
use crate::exchange::prereq::{self, Finding, PrereqFacts, PrereqPolicy, Status};

/// Why a step may not be installed now.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    #[error("{step} names no .NET version and no target build")]
    NoTarget { step: String },
    #[error("{step} does not say which CU it is for")]
    SuWithoutCu { step: String },
    #[error(
        "refusing {step}: it is for the CU at {base}, but this server runs {build}; \
         an SU installs on its own CU only"
    )]
    SuForOtherCu {
        step: String,
        base: Build,
        build: Build,
    },
    #[error(
        "next step is {step}: /PrepareSchema and /PrepareAD need an account in Schema Admins \
         and Enterprise Admins; set ansible_become_user and ansible_become_password to one (the \
         step runs as SYSTEM otherwise, which has no such rights), or prepare the forest by hand"
    )]
    AdPreparationAccount { step: String },
    #[error("next step is {step}: Exchange 2010 rollups are not installed by salve")]
    Rollup { step: String },
    #[error("a restart is pending ({markers}): restart the server first, then run again")]
    RestartPending { markers: String },
    #[error("{target} is not a catalogued CU build")]
    UnknownCu { target: Build },
    #[error("min_free_disk_gb must be a non-negative number, got {0}")]
    MinFreeDisk(f64),
    #[error("{step} prerequisites not met: {blocking}")]
    Prerequisites { step: String, blocking: String },
    #[error(transparent)]
    Licence(#[from] LicenceError),
    #[error(
        "no source for {step}: add `{key}` (or `{alternative}`) to sources with url or unc and \
         sha256"
    )]
    NoSource {
        step: String,
        key: String,
        alternative: String,
    },
    #[error("sources[{key}]: {source}")]
    Source {
        key: String,
        #[source]
        source: SourceError,
    },
    #[error("sources[{key}]: sha256 missing")]
    NoChecksum { key: String },
    #[error(
        "sources[{key}]: {location} is on a file share, and the update would run as SYSTEM, \
         which holds no credentials for it (a WinRM or SSH logon cannot pass its own on: the \
         double hop); give the source the share's username and password (a secret \
         reference), or set ansible_become_user and ansible_become_password to an account that \
         can read the share, or give the package as a url: the server can download"
    )]
    DoubleHop { key: String, location: String },
    #[error(
        "sources[{key}]: {path} is to be served by salve, and this host has no \
         salve_package_server: set it (url the host reaches, certificate, key), or give the \
         package as a url: or unc: the host can reach"
    )]
    NoPackageServer { key: String, path: String },
    #[error("sources[{key}]: {path} (to be served by salve) is not a file on this controller")]
    NotServable { key: String, path: String },
}

/// A licence switch this CU's Setup does not take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LicenceError {
    #[error("license_switch `{given}` is not accepted by this CU's Setup; it takes {takes}")]
    NotAccepted { given: String, takes: String },
    #[error("license_switch must be one of {options}")]
    NotAnOption { options: String },
    #[error(
        "this CU's Setup needs a diagnostic-data choice: set license_switch to one of {options}"
    )]
    ChoiceNeeded { options: String },
}

/// The request and the prerequisite findings, or the refusal and the findings so far.
pub(super) type Gate = Result<(UpdateRequest, Vec<Finding>), (Refusal, Vec<Finding>)>;

/// The rendered arguments the gates read.
pub(super) struct Given<'a> {
    pub(super) sources: &'a BTreeMap<String, PackageSource>,
    pub(super) license_switch: Option<&'a str>,
    pub(super) ad_prepared: Option<bool>,
    pub(super) min_free_disk_gb: Option<Num>,
    pub(super) keep_packages: bool,
    /// Detached steps run under a `become` account (see [`crate::model::run_as`]).
    pub(super) network_credentials: bool,
    /// The host has a `salve_package_server` to fetch `serve:` sources from.
    pub(super) package_server: bool,
    /// The host reads shares with an account of its own (`salve_share_username`).
    pub(super) share_account: bool,
}

/// May `step` be installed on this host now? The request when it may.
pub(super) fn gate(
    cat: &Catalogue,
    args: &Given<'_>,
    facts: &FactsAnswer,
    build: Build,
    step: &Step,
) -> Gate {
    let no = |why: Refusal| Err((why, Vec::new()));
    let shown = step.to_string();
    // A .NET step leaves the Exchange build as it is.
    let Some(target) = step.target.or(step.dotnet.map(|_| build)) else {
        return no(Refusal::NoTarget { step: shown });
    };
    let family = build.family();
    let short = family.map_or("", Family::short);
    let mut kb = step.kb.map(|k| k.to_string()).unwrap_or_default();
    let (kind, keys) = match (step.kind, step.dotnet) {
        (StepKind::DotNet, Some(version)) => {
            kb = package_name(version);
            (UpdateKind::DotNet, vec![step.label.clone(), kb.clone()])
        }
        (StepKind::Su, _) => {
            let Some(base) = step.requires_build else {
                return no(Refusal::SuWithoutCu { step: shown });
            };
            if !build.same_base(&base) || build < base {
                return no(Refusal::SuForOtherCu {
                    step: shown,
                    base,
                    build,
                });
            }
            let cu = cu_label(cat, base).unwrap_or_default();
            (
                UpdateKind::Su,
                vec![format!("{short} {cu} {kb}"), kb.clone()],
            )
        }
        (StepKind::Cu, _) => (
            UpdateKind::Cu,
            vec![format!("{short} {}", step.label), step.label.clone()],
        ),
        (StepKind::PrepareAd, _) if !args.network_credentials => {
            return no(Refusal::AdPreparationAccount { step: shown });
        }
        (StepKind::PrepareAd, _) => {
            // The CU's own media: the same package as the CU step.
            let cu = cu_label(cat, target).unwrap_or_default();
            (UpdateKind::PrepareAd, vec![format!("{short} {cu}"), cu])
        }
        (StepKind::Ru, _) => return no(Refusal::Rollup { step: shown }),
        (StepKind::DotNet, None) => return no(Refusal::NoTarget { step: shown }),
    };
    if !facts.pending_reboot.is_empty() {
        return no(Refusal::RestartPending {
            markers: facts.pending_reboot.join(", "),
        });
    }
    let mut findings = Vec::new();
    let mut licence = None;
    if kind == UpdateKind::PrepareAd {
        let Some(level) = level_at(cat, target) else {
            return no(Refusal::UnknownCu { target });
        };
        licence = match licence_switch(cat.licence_switch(level), args.license_switch) {
            Ok(s) => Some(s),
            Err(why) => return no(why.into()),
        };
    }
    if kind == UpdateKind::Cu {
        let Some(level) = level_at(cat, target) else {
            return no(Refusal::UnknownCu { target });
        };
        let policy = match args.min_free_disk_gb.map(|n| n.0) {
            Some(gb) if gb.is_finite() && gb >= 0.0 => PrereqPolicy {
                min_free_disk_bytes: (gb * 1024.0 * 1024.0 * 1024.0) as u64,
            },
            Some(gb) => return no(Refusal::MinFreeDisk(gb)),
            None => PrereqPolicy::default(),
        };
        findings = prereq::evaluate(level, &prereq_facts(args, facts, level), policy);
        let blocking: Vec<String> = findings
            .iter()
            .filter(|f| f.status == Status::Blocking)
            .map(ToString::to_string)
            .collect();
        if !blocking.is_empty() {
            return Err((
                Refusal::Prerequisites {
                    step: shown,
                    blocking: blocking.join("; "),
                },
                findings,
            ));
        }
        licence = match licence_switch(cat.licence_switch(level), args.license_switch) {
            Ok(s) => Some(s),
            Err(why) => return Err((why.into(), findings)),
        };
    }
    let Some(source) = keys.iter().find_map(|k| args.sources.get(k)) else {
        return Err((
            Refusal::NoSource {
                step: shown,
                key: keys[0].clone(),
                alternative: keys[1].clone(),
            },
            findings,
        ));
    };
    let proxy = match source.proxy() {
        Ok(p) => p.map(str::to_owned),
        Err(source) => {
            let key = keys[0].clone();
            return Err((Refusal::Source { key, source }, findings));
        }
    };
    let (location, sha256) = match (source.location(), source.checksum(true)) {
        (Ok(l), Ok(Some(h))) => (l.to_string(), h),
        (Err(source), _) | (_, Err(source)) => {
            let key = keys[0].clone();
            return Err((Refusal::Source { key, source }, findings));
        }
        (Ok(_), Ok(None)) => {
            let key = keys[0].clone();
            return Err((Refusal::NoChecksum { key }, findings));
        }
    };
    let share_account = match source.share_account() {
        Ok(a) => a,
        Err(source) => {
            let key = keys[0].clone();
            return Err((Refusal::Source { key, source }, findings));
        }
    };
    if let Some(path) = source.served() {
        let key = keys[0].clone();
        let path = path.display().to_string();
        if !args.package_server {
            return Err((Refusal::NoPackageServer { key, path }, findings));
        }
        if !std::path::Path::new(&path).is_file() {
            return Err((Refusal::NotServable { key, path }, findings));
        }
    }
    if crate::share::on_share(&location)
        && !args.network_credentials
        && share_account.is_none()
        && !args.share_account
    {
        let key = keys[0].clone();
        return Err((Refusal::DoubleHop { key, location }, findings));
    }
    Ok((
        UpdateRequest {
            kind,
            source: location,
            sha256,
            kb: if kb.is_empty() {
                step.label.clone()
            } else {
                kb
            },
            target_build: target.to_string(),
            dotnet_release: step.dotnet.map(DotNet::min_release),
            license_switch: licence,
            keep_packages: args.keep_packages,
            proxy,
            server_pin: None,
        },
        findings,
    ))
}

/// The name salve gives a .NET offline installer's package on the host and in `sources`
/// (`NDP48` for 4.8, as Microsoft names its installers `ndp48-x86-x64-allos-enu.exe`).
pub(super) fn package_name(version: DotNet) -> String {
    format!("NDP{}", version.as_str().replace('.', ""))
}

/// The licence switch for Setup: the CU's own, or the operator's choice where the CU wants one.
/// A diagnostic-data choice given for a CU whose Setup asks no such question (released before
/// September 2021) yields that CU's plain switch, so one fleet-wide choice serves paths that
/// cross both kinds of CU.
fn licence_switch(rule: LicenceSwitch, given: Option<&str>) -> Result<String, LicenceError> {
    let is_choice_of = |plain: &str, g: &str| {
        g.len() > plain.len()
            && g[..plain.len()].eq_ignore_ascii_case(plain)
            && g[plain.len()..]
                .to_ascii_lowercase()
                .starts_with("_diagnosticdata")
    };
    match (rule, given) {
        (LicenceSwitch::Plain(s), None) => Ok(s),
        (LicenceSwitch::Plain(s), Some(g)) if g.eq_ignore_ascii_case(&s) || is_choice_of(&s, g) => {
            Ok(s)
        }
        (LicenceSwitch::Plain(takes), Some(g)) => Err(LicenceError::NotAccepted {
            given: g.to_string(),
            takes,
        }),
        (LicenceSwitch::DiagnosticData(options), Some(g)) => options
            .iter()
            .find(|o| o.eq_ignore_ascii_case(g))
            .cloned()
            .ok_or_else(|| LicenceError::NotAnOption {
                options: options.join(", "),
            }),
        (LicenceSwitch::DiagnosticData(options), None) => Err(LicenceError::ChoiceNeeded {
            options: options.join(", "),
        }),
    }
}

fn prereq_facts(args: &Given<'_>, facts: &FactsAnswer, level: &Level) -> PrereqFacts {
    PrereqFacts {
        dotnet_release: Some(facts.dotnet_release),
        vcredist_2012: Some(facts.vcredist_2012.is_some()),
        vcredist_2013: Some(facts.vcredist_2013.is_some()),
        ucma4: Some(facts.ucma.is_some()),
        mailbox_role: facts
            .roles
            .iter()
            .any(|r| r.eq_ignore_ascii_case("Mailbox")),
        pending_reboot: Some(!facts.pending_reboot.is_empty()),
        free_disk_bytes: Some(facts.free_disk_bytes),
        ad_prep_needed: match (&facts.ad, level.ad) {
            (Some(forest), Some(needs)) => Some(behind(forest, needs)),
            _ => args.ad_prepared.map(|prepared| !prepared),
        },
        setup_account_can_prepare_ad: None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::exchange_script::testing::facts;
    use super::super::resolve::explicit_su;
    use super::*;
    use crate::exchange::catalogue::catalogue;

    #[test]
    fn a_path_su_is_refused_on_a_host_whose_cu_differs() {
        let cat = catalogue().unwrap();
        let sources = BTreeMap::new();
        let args = Given {
            sources: &sources,
            license_switch: None,
            ad_prepared: None,
            min_free_disk_gb: None,
            keep_packages: false,
            network_credentials: true,
            package_server: false,
            share_account: false,
        };
        let step = explicit_su(cat, Build::new(15, 2, 792, 3), "KB5000871")
            .unwrap()
            .unwrap();
        let on_cu7 = facts("15.2.721.2");
        let Err((why, _)) = gate(cat, &args, &on_cu7, Build::new(15, 2, 721, 2), &step) else {
            panic!("must refuse")
        };
        assert!(why.to_string().contains("refusing KB5000871"), "{why}");
    }

    #[test]
    fn a_share_is_refused_without_a_become_account_and_a_url_is_not() {
        let cat = catalogue().unwrap();
        let share: BTreeMap<String, PackageSource> = [(
            "KB5000871".to_string(),
            PackageSource {
                url: None,
                unc: Some("\\\\fs01\\exchange\\su.msp".into()),
                sha256: Some("ab".repeat(32)),
                proxy: None,
                serve: None,
                username: None,
                password: None,
            },
        )]
        .into_iter()
        .collect();
        let given = |sources, network_credentials| Given {
            sources,
            license_switch: None,
            ad_prepared: None,
            min_free_disk_gb: None,
            keep_packages: false,
            network_credentials,
            package_server: false,
            share_account: false,
        };
        let step = explicit_su(cat, Build::new(15, 2, 792, 3), "KB5000871")
            .unwrap()
            .unwrap();
        let on_cu8 = facts("15.2.792.3");
        let build = Build::new(15, 2, 792, 3);
        let Err((why, _)) = gate(cat, &given(&share, false), &on_cu8, build, &step) else {
            panic!("a share without become must be refused")
        };
        let why = why.to_string();
        assert!(
            why.contains("double hop") && why.contains("ansible_become_user"),
            "{why}"
        );
        assert!(gate(cat, &given(&share, true), &on_cu8, build, &step).is_ok());
        // The source's own share account is used inside the step, whatever it runs as.
        let mut with_account = share.clone();
        for s in with_account.values_mut() {
            s.username = Some("CONTOSO\\svc-pkgread".into());
            s.password = Some("env:SHARE_PW".into());
        }
        assert!(gate(cat, &given(&with_account, false), &on_cu8, build, &step).is_ok());
        let url: BTreeMap<String, PackageSource> = [(
            "KB5000871".to_string(),
            PackageSource {
                url: Some("https://media.contoso.test/su.msp".into()),
                unc: None,
                sha256: Some("ab".repeat(32)),
                proxy: None,
                serve: None,
                username: None,
                password: None,
            },
        )]
        .into_iter()
        .collect();
        assert!(gate(cat, &given(&url, false), &on_cu8, build, &step).is_ok());
        // A package salve serves needs the host's package server, and the file here.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("su.msp");
        std::fs::write(&file, b"msp").unwrap();
        let served = |path: &std::path::Path| -> BTreeMap<String, PackageSource> {
            let mut s = url.clone();
            for v in s.values_mut() {
                v.url = None;
                v.serve = Some(path.display().to_string());
            }
            s
        };
        let with_server = |sources| Given {
            package_server: true,
            ..given(sources, false)
        };
        let present = served(&file);
        let Err((why, _)) = gate(cat, &given(&present, false), &on_cu8, build, &step) else {
            panic!("serve: without a package server must be refused")
        };
        assert!(why.to_string().contains("salve_package_server"), "{why}");
        let (request, _) = gate(cat, &with_server(&present), &on_cu8, build, &step).unwrap();
        assert_eq!(request.source, file.display().to_string());
        let missing = served(&dir.path().join("gone.msp"));
        let Err((why, _)) = gate(cat, &with_server(&missing), &on_cu8, build, &step) else {
            panic!("a missing file must be refused")
        };
        assert!(
            why.to_string().contains("not a file on this controller"),
            "{why}"
        );
    }

    #[test]
    fn licence_switches_follow_the_cu() {
        let plain = LicenceSwitch::Plain("/IAcceptExchangeServerLicenseTerms".into());
        assert!(licence_switch(plain.clone(), None).is_ok());
        assert_eq!(
            licence_switch(
                plain.clone(),
                Some("/IAcceptExchangeServerLicenseTerms_DiagnosticDataON")
            )
            .unwrap(),
            "/IAcceptExchangeServerLicenseTerms",
            "a diagnostic-data choice falls back to the plain switch where Setup asks none"
        );
        assert!(licence_switch(plain, Some("/IAcceptLicense")).is_err());
        let dd = LicenceSwitch::DiagnosticData(vec!["/A_ON".into(), "/A_OFF".into()]);
        assert!(
            licence_switch(dd.clone(), None)
                .unwrap_err()
                .to_string()
                .contains("/A_ON, /A_OFF")
        );
        assert_eq!(licence_switch(dd, Some("/a_off")).unwrap(), "/A_OFF");
    }
}
