//! `exchange::assess` against the catalogue and the reference rules (exchange-domain.md §2.4).
//!
//! The expected open CVEs are computed here from fix thresholds written out independently of the
//! catalogue data and of `assess`, so a wrong catalogue entry or a wrong rule in `assess` shows up
//! as a disagreement.

use std::collections::BTreeSet;

use salve::exchange::assess::{Assessment, Facts, assess};
use salve::exchange::build::{Build, Family};
use salve::exchange::catalogue::{Catalogue, catalogue};
use salve::exchange::dotnet::DotNet;
use salve::exchange::ids::Kb;
use salve::exchange::path::{Route, StepKind};

fn b(s: &str) -> Build {
    s.parse().unwrap()
}

fn cat() -> &'static Catalogue {
    catalogue().unwrap()
}

fn run(build: &str) -> Assessment {
    assess(cat(), b(build), &Facts::default())
}

fn run_with(build: &str, facts: Facts) -> Assessment {
    assess(cat(), b(build), &facts)
}

fn open(a: &Assessment) -> Vec<String> {
    a.open_cves.iter().map(ToString::to_string).collect()
}

// ---------------------------------------------------------------------------------------------
// The reference rules, written out as fix thresholds.

/// Where a fix starts: `OnCu(t)` = builds >= t of the same CU (same major.minor.build), i.e. the
/// SU and later SUs of that CU; `Floor(t)` = every build >= t of the family (a CU that ships the
/// fix, and every later CU).
enum Fix {
    OnCu(&'static str),
    Floor(&'static str),
}

use Fix::{Floor, OnCu};

/// ProxyLogon: the Mar21SU of each CU that got one (2016 CU8/CU9 at the CSS-Exchange revision,
/// accepted as equivalent), or 2019 >= CU9, 2016 >= CU20.
const PROXYLOGON: &[Fix] = &[
    OnCu("15.2.221.18"),
    OnCu("15.2.330.11"),
    OnCu("15.2.397.11"),
    OnCu("15.2.464.15"),
    OnCu("15.2.529.13"),
    OnCu("15.2.595.8"),
    OnCu("15.2.659.12"),
    OnCu("15.2.721.13"),
    OnCu("15.2.792.10"),
    Floor("15.2.858.5"),
    OnCu("15.1.1415.8"),
    OnCu("15.1.1466.13"),
    OnCu("15.1.1531.12"),
    OnCu("15.1.1591.18"),
    OnCu("15.1.1713.10"),
    OnCu("15.1.1779.8"),
    OnCu("15.1.1847.12"),
    OnCu("15.1.1913.12"),
    OnCu("15.1.1979.8"),
    OnCu("15.1.2044.13"),
    OnCu("15.1.2106.13"),
    OnCu("15.1.2176.9"),
    Floor("15.1.2242.4"),
    OnCu("15.0.847.64"),
    OnCu("15.0.1395.12"),
    OnCu("15.0.1473.6"),
    OnCu("15.0.1497.12"),
];

/// CVE-2021-34473 and CVE-2021-34523: the April 2021 SU; 2019 CU10 / 2016 CU21 not affected.
const PROXYSHELL_APRIL: &[Fix] = &[
    OnCu("15.2.792.13"),
    OnCu("15.2.858.10"),
    Floor("15.2.922.7"),
    OnCu("15.1.2176.12"),
    OnCu("15.1.2242.8"),
    Floor("15.1.2308.8"),
    OnCu("15.0.1497.15"),
];

/// CVE-2021-31207: the May 2021 SU; 2019 CU10 / 2016 CU21 not affected.
const PROXYSHELL_MAY: &[Fix] = &[
    OnCu("15.2.792.15"),
    OnCu("15.2.858.12"),
    Floor("15.2.922.7"),
    OnCu("15.1.2176.14"),
    OnCu("15.1.2242.10"),
    Floor("15.1.2308.8"),
    OnCu("15.0.1497.18"),
];

fn fixed_by(rules: &[Fix], build: Build) -> bool {
    rules.iter().any(|rule| match *rule {
        OnCu(t) => build >= b(t) && build.same_base(&b(t)),
        Floor(t) => build >= b(t) && build.family() == b(t).family(),
    })
}

/// The open CVEs the reference rules give for a build.
fn expected_open(build: Build) -> BTreeSet<String> {
    let mut open = BTreeSet::new();
    match build.family() {
        Some(Family::Exchange2010) => {
            if build < b("14.3.513.0") {
                open.insert("CVE-2021-26857".to_owned());
            }
        }
        Some(Family::Exchange2013 | Family::Exchange2016 | Family::Exchange2019) => {
            let groups: [(&[Fix], &[&str]); 3] = [
                (
                    PROXYLOGON,
                    &[
                        "CVE-2021-26855",
                        "CVE-2021-26857",
                        "CVE-2021-26858",
                        "CVE-2021-27065",
                    ],
                ),
                (PROXYSHELL_APRIL, &["CVE-2021-34473", "CVE-2021-34523"]),
                (PROXYSHELL_MAY, &["CVE-2021-31207"]),
            ];
            for (rules, cves) in groups {
                if !fixed_by(rules, build) {
                    open.extend(cves.iter().map(|c| (*c).to_owned()));
                }
            }
        }
        Some(Family::SubscriptionEdition) | None => {}
    }
    open
}

/// Every catalogued build with its CU label and the SU KB it stands for.
fn every_catalogued_build() -> Vec<(Build, String, Option<Kb>)> {
    let mut all = Vec::new();
    for entry in cat().families() {
        for level in &entry.levels {
            all.push((level.build, level.cu.clone(), None));
            for su in &level.updates {
                all.push((su.build, level.cu.clone(), Some(su.kb)));
                for alias in &su.aliases {
                    all.push((*alias, level.cu.clone(), Some(su.kb)));
                }
            }
        }
    }
    all
}

// ---------------------------------------------------------------------------------------------
// Every catalogued build.

#[test]
fn assess_agrees_with_the_reference_rules_for_every_catalogued_build() {
    let all = every_catalogued_build();
    assert_eq!(all.len(), 100 + 2, "100 catalogued builds plus two aliases");
    for (build, cu, su_kb) in all {
        let a = assess(cat(), build, &Facts::default());
        let expected = expected_open(build);
        let got: BTreeSet<String> = open(&a).into_iter().collect();
        assert_eq!(got, expected, "open CVEs of {build}");
        let pl_open = expected.iter().any(|c| {
            ["26855", "26857", "26858", "27065"]
                .iter()
                .any(|n| c.ends_with(n))
        });
        let is_2010 = build.family() == Some(Family::Exchange2010);
        assert_eq!(
            a.proxylogon_vulnerable,
            pl_open && !is_2010,
            "ProxyLogon of {build}"
        );
        let ps_open = expected
            .iter()
            .any(|c| ["34473", "34523", "31207"].iter().any(|n| c.ends_with(n)));
        assert_eq!(a.proxyshell_vulnerable, ps_open, "ProxyShell of {build}");
        assert!(a.known && a.exact, "{build} is catalogued");
        assert_eq!(a.cu.as_deref(), Some(cu.as_str()), "CU of {build}");
        assert_eq!(a.su_kb, su_kb, "SU of {build}");
        assert_eq!(a.family, build.family());
        assert_eq!(
            a.route == Route::None,
            expected.is_empty(),
            "route of {build}"
        );
    }
}

#[test]
fn every_path_ends_fixed_and_respects_cu_specific_sus_and_dotnet() {
    for (build, _, _) in every_catalogued_build() {
        let a = run(&build.to_string());
        if a.open_cves.is_empty() {
            assert!(a.path.steps.is_empty(), "{build} needs nothing");
            continue;
        }
        let mut at = build;
        let mut dotnet: Option<DotNet> = None;
        for step in &a.path.steps {
            match step.kind {
                StepKind::DotNet => dotnet = step.dotnet,
                StepKind::Cu | StepKind::Ru => {
                    if let Some(dn) = dotnet {
                        assert!(
                            step.requires_dotnet.contains(&dn),
                            "{build}: {step} on {dn}"
                        );
                    }
                    at = step.target.unwrap();
                }
                StepKind::Su => {
                    let on = step.requires_build.unwrap();
                    assert!(at.same_base(&on) && at >= on, "{build}: {step} on {at}");
                    at = step.target.unwrap();
                }
            }
        }
        assert!(at > build, "{build}: the path moves forward");
        let end = run(&at.to_string());
        assert!(
            end.open_cves.is_empty(),
            "{build}: path {} ends at {at} with {:?} open",
            a.path,
            open(&end)
        );
    }
}

#[test]
fn builds_between_an_su_and_the_next_catalogued_build_take_the_lower_one() {
    // 2019 CU8: base .3, SUs .10 (Mar), .13 (Apr), .15 (May).
    let between = run("15.2.792.11");
    let lower = run("15.2.792.10");
    assert!(between.known && !between.exact);
    assert_eq!(open(&between), open(&lower));
    assert_eq!(between.su_kb, Some(Kb(5000871)));
    assert_eq!(between.path_display, "2019 CU8 → KB5003435");
    // Between the CU base and its first SU: assessed as the bare CU.
    let early = run("15.2.792.4");
    assert!(early.known && !early.exact && early.su_kb.is_none());
    assert_eq!(open(&early), open(&run("15.2.792.3")));
}

// ---------------------------------------------------------------------------------------------
// Specific paths.

#[test]
fn exchange_2016_cu17_upgrades_to_cu21_with_a_proxylogon_stopgap() {
    let a = run("15.1.2044.4");
    assert_eq!(a.family, Some(Family::Exchange2016));
    assert_eq!(a.cu.as_deref(), Some("CU17"));
    assert_eq!(a.su_kb, None);
    assert_eq!(a.route, Route::CuUpgrade);
    assert!(a.proxylogon_vulnerable && a.proxyshell_vulnerable);
    assert_eq!(
        a.path_display,
        "2016 CU17 → CU21 (needs .NET 4.8) → KB5004779"
    );
    let cu = &a.path.steps[0];
    assert_eq!(cu.kind, StepKind::Cu);
    assert_eq!(cu.target, Some(b("15.1.2308.8")));
    assert_eq!(cu.kb, Some(Kb(5003611)));
    assert!(
        cu.prerequisite
            .contains("/IAcceptExchangeServerLicenseTerms ")
    );
    let su = &a.path.steps[1];
    assert_eq!(su.requires_build, Some(b("15.1.2308.8")));
    let stopgap = a.stopgap.as_ref().unwrap();
    assert_eq!(stopgap.kb, Some(Kb(5000871)));
    assert_eq!(stopgap.target, Some(b("15.1.2044.13")));
}

#[test]
fn exchange_2016_cu19_without_su_takes_the_latest_su_only() {
    let a = run("15.1.2176.2");
    assert_eq!(a.route, Route::Su);
    assert_eq!(a.path_display, "2016 CU19 → KB5003435");
    assert_eq!(a.path.steps[0].target, Some(b("15.1.2176.14")));
    assert!(a.mar21_supported);
    assert!(a.stopgap.is_none());
}

#[test]
fn exchange_2019_cu8_with_march_su_needs_the_may_su_for_proxyshell() {
    let a = run("15.2.792.10");
    assert_eq!(a.su_kb, Some(Kb(5000871)));
    assert!(!a.proxylogon_vulnerable && a.proxyshell_vulnerable);
    assert_eq!(
        open(&a),
        ["CVE-2021-31207", "CVE-2021-34473", "CVE-2021-34523"]
    );
    assert_eq!(a.path_display, "2019 CU8 → KB5003435");
    // April SU installed: only the May CVE remains.
    assert_eq!(open(&run("15.2.792.13")), ["CVE-2021-31207"]);
}

#[test]
fn exchange_2013_cu21_leapfrogs_dotnet_to_cu23() {
    let a = run("15.0.1395.4");
    assert_eq!(
        a.path_display,
        "2013 CU21 → .NET 4.7.2 → CU23 (needs .NET 4.7.2 or 4.8) → KB5004778"
    );
    assert_eq!(a.path.steps[0].dotnet, Some(DotNet::V4_7_2));
    let known = run_with(
        "15.0.1395.4",
        Facts {
            dotnet: Some(DotNet::V4_7_2),
            ..Facts::default()
        },
    );
    assert_eq!(
        known.path_display,
        "2013 CU21 → CU23 (needs .NET 4.7.2 or 4.8) → KB5004778"
    );
}

#[test]
fn exchange_2013_cu15_outside_the_matrix_falls_back_to_newest_dotnet_then_cu23() {
    let a = run("15.0.1263.5");
    assert_eq!(a.cu.as_deref(), Some("CU15"));
    assert!(a.stopgap.is_none(), "CU15 got no March SU");
    assert_eq!(
        a.path_display,
        "2013 CU15 → .NET 4.8 → CU23 (needs .NET 4.7.2 or 4.8) → KB5004778"
    );
    assert!(
        a.notes
            .iter()
            .any(|n| n.contains("no supported .NET/CU leapfrog"))
    );
}

#[test]
fn exchange_2016_cu8_leapfrogs_along_the_matrix_unless_dotnet_is_known() {
    let a = run("15.1.1415.2");
    assert_eq!(
        a.path_display,
        "2016 CU8 → .NET 4.7.1 → CU12 (needs .NET 4.7.1 or 4.7.2) → .NET 4.7.2 \
         → CU14 (needs .NET 4.7.2 or 4.8) → .NET 4.8 → CU21 (needs .NET 4.8) → KB5004779"
    );
    let on_48 = run_with(
        "15.1.1415.2",
        Facts {
            dotnet: Some(DotNet::V4_8),
            ..Facts::default()
        },
    );
    assert_eq!(
        on_48.path_display,
        "2016 CU8 → CU21 (needs .NET 4.8) → KB5004779"
    );
}

#[test]
fn exchange_2019_cu9_and_cu10() {
    let cu9 = run("15.2.858.5");
    assert!(!cu9.proxylogon_vulnerable && cu9.proxyshell_vulnerable);
    assert_eq!(cu9.path_display, "2019 CU9 → KB5004780");
    assert_eq!(cu9.path.steps[0].target, Some(b("15.2.858.15")));
    let cu10 = run("15.2.922.7");
    assert!(cu10.open_cves.is_empty());
    assert_eq!(cu10.route, Route::None);
    assert!(cu10.path.steps.is_empty());
    assert!(cu10.notes.iter().any(|n| n.contains("inferred")));
}

#[test]
fn exchange_2016_cu8_march_su_discrepancy() {
    for build in ["15.1.1415.8", "15.1.1415.10"] {
        let a = run(build);
        assert!(a.known && a.exact, "{build}");
        assert_eq!(a.su_kb, Some(Kb(5000871)), "{build}");
        assert!(!a.proxylogon_vulnerable, "{build}");
    }
    assert!(run("15.1.1415.7").proxylogon_vulnerable);
    let between = run("15.1.1415.9");
    assert!(between.known && !between.exact && !between.proxylogon_vulnerable);
    // The installed-updates list confirms or refutes the CSS-Exchange build.
    let listed = run_with(
        "15.1.1415.8",
        Facts {
            installed_kbs: Some(vec![Kb(5000871)]),
            ..Facts::default()
        },
    );
    assert!(!listed.proxylogon_vulnerable);
    assert!(
        listed
            .notes
            .iter()
            .any(|n| n.contains("so it is installed"))
    );
    let missing = run_with(
        "15.1.1415.8",
        Facts {
            installed_kbs: Some(vec![Kb(4000000)]),
            ..Facts::default()
        },
    );
    assert!(missing.proxylogon_vulnerable);
    assert_eq!(missing.su_kb, None);
    // The docs build needs no confirmation.
    let docs = run_with(
        "15.1.1415.10",
        Facts {
            installed_kbs: Some(Vec::new()),
            ..Facts::default()
        },
    );
    assert!(!docs.proxylogon_vulnerable);
    // CU9: .13 accepted as the .16 SU.
    assert_eq!(run("15.1.1466.13").su_kb, Some(Kb(5000871)));
    assert!(run("15.1.1466.12").proxylogon_vulnerable);
}

#[test]
fn exchange_2010_ru31_needs_ru32_for_the_um_cve_only() {
    let a = run("14.3.509.0");
    assert_eq!(a.family, Some(Family::Exchange2010));
    assert_eq!(open(&a), ["CVE-2021-26857"]);
    assert!(!a.proxylogon_vulnerable && !a.proxyshell_vulnerable);
    assert_eq!(a.path_display, "2010 SP3 RU31 → SP3 RU32 KB5000978");
    assert_eq!(a.path.steps[0].kind, StepKind::Ru);
    assert!(run("14.3.513.0").open_cves.is_empty());
}

#[test]
fn subscription_edition_is_not_affected() {
    let a = run("15.2.2562.17");
    assert_eq!(a.family, Some(Family::SubscriptionEdition));
    assert!(a.known && a.exact && a.open_cves.is_empty());
    assert_eq!(a.route, Route::None);
}

#[test]
fn unknown_builds_say_so() {
    let se = run("15.2.9999.1");
    assert!(!se.known);
    assert_eq!(se.family, Some(Family::SubscriptionEdition));
    assert_eq!(se.cu, None);
    assert!(se.open_cves.is_empty() && se.path.steps.is_empty());

    // An old 2016 build between CUs: not catalogued, so vulnerable and no path.
    let old = run("15.1.1500.1");
    assert!(!old.known && old.cu.is_none());
    assert!(old.proxylogon_vulnerable && old.proxyshell_vulnerable);
    assert_eq!(old.route, Route::Unknown);
    assert!(old.path.steps.is_empty());

    // A later 2019 CU the catalogue predates: the CU10 fixes carry forward.
    let newer = run("15.2.1118.7");
    assert!(!newer.known && newer.open_cves.is_empty());

    // A later SU of a known CU: CU known, all its catalogued SUs counted.
    let later_su = run("15.2.792.20");
    assert!(!later_su.known);
    assert_eq!(later_su.cu.as_deref(), Some("CU8"));
    assert!(later_su.open_cves.is_empty());

    let ancient = run("8.3.517.0");
    assert_eq!(ancient.family, None);
    assert_eq!(ancient.route, Route::Unknown);
}

#[test]
fn long_form_builds_assess_like_short_ones() {
    let long = run("15.01.2176.0009");
    let short = run("15.1.2176.9");
    assert_eq!(long.build, short.build);
    assert_eq!(long.build.to_string(), "15.1.2176.9");
    assert_eq!(open(&long), open(&short));
    assert_eq!(long.su_kb, Some(Kb(5000871)));
}
