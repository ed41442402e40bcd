//! `exchange::assess` against the catalogue and the reference rules (exchange-catalogue-2026.md,
//! "Deciding the open CVEs of a build").
//!
//! Every catalogued build is checked two ways: against the reference's rule written out
//! literally over a flat list of the catalogue's entries (a wrong rule in `assess` shows up), and,
//! for ProxyLogon, ProxyShell and CVE-2026-42897, against fix thresholds written out
//! independently of the catalogue data (a wrong catalogue entry shows up).

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

/// CVE-2026-42897 (OWA XSS, May 2026): fixed by the June 2026 SU on the four serviced lines
/// (its CVE record); Exchange 2013 and 2010 are not affected (out of support).
const CVE_2026_42897: &[Fix] = &[
    OnCu("15.2.2562.43"),
    OnCu("15.2.1748.46"),
    OnCu("15.2.1544.41"),
    OnCu("15.1.2507.69"),
];

/// The CVEs the threshold tables above decide.
fn decided_by_thresholds(cve: &str) -> bool {
    [
        "26855",
        "26857",
        "26858",
        "27065",
        "34473",
        "34523",
        "31207",
        "2026-42897",
    ]
    .iter()
    .any(|n| cve.ends_with(n))
}

/// CVE-2026-42897 by the thresholds.
fn expected_42897(build: Build) -> bool {
    matches!(
        build.family(),
        Some(Family::Exchange2016 | Family::Exchange2019 | Family::SubscriptionEdition)
    ) && !fixed_by(CVE_2026_42897, build)
}

/// One catalogued build, flattened: what the reference's rule reads.
struct Entry {
    family: Family,
    cu: String,
    is_level: bool,
    builds: Vec<Build>,
    fixes: Vec<String>,
}

/// The catalogue as a flat list, the shape the reference table has.
fn flat() -> Vec<Entry> {
    let mut all = Vec::new();
    for entry in cat().families() {
        for level in &entry.levels {
            let mut builds = vec![level.build];
            builds.extend(&level.aliases);
            all.push(Entry {
                family: entry.family,
                cu: level.cu.clone(),
                is_level: true,
                builds,
                fixes: level.fixes.iter().map(ToString::to_string).collect(),
            });
            for su in &level.updates {
                let mut builds = vec![su.build];
                builds.extend(&su.aliases);
                all.push(Entry {
                    family: entry.family,
                    cu: level.cu.clone(),
                    is_level: false,
                    builds,
                    fixes: su.fixes.iter().map(ToString::to_string).collect(),
                });
            }
        }
    }
    all
}

/// The reference's steps 1–3, written out literally over the flat list: place the build on the
/// highest CU at or below it; X is fixed when an entry at or below the build on the same number
/// line lists it and is on the same CU or is a CU; a family is affected by what its entries fix
/// (plus CVE-2024-21410 on 2016, which no 2016 build fixes).
fn rule_open(entries: &[Entry], build: Build) -> BTreeSet<String> {
    let Some(family) = build.family() else {
        return BTreeSet::new();
    };
    let at_or_below = |e: &Entry| e.builds.iter().any(|x| *x <= build);
    let same_line = |x: Build| x.major == build.major && x.minor == build.minor;
    let cu = entries
        .iter()
        .rfind(|e| e.family == family && e.is_level && at_or_below(e))
        .map(|e| e.cu.clone());
    let mut affected: BTreeSet<String> = entries
        .iter()
        .filter(|e| e.family == family)
        .flat_map(|e| e.fixes.iter().cloned())
        .collect();
    if family == Family::Exchange2016 {
        affected.insert("CVE-2024-21410".to_owned());
    }
    affected
        .into_iter()
        .filter(|x| {
            !entries.iter().any(|e| {
                e.fixes.contains(x)
                    && same_line(e.builds[0])
                    && at_or_below(e)
                    && (e.is_level || (e.family == family && Some(&e.cu) == cu.as_ref()))
            })
        })
        .collect()
}

/// Every catalogued build with its CU label and the SU KB it stands for.
fn every_catalogued_build() -> Vec<(Build, String, Option<Kb>)> {
    let mut all = Vec::new();
    for entry in cat().families() {
        for level in &entry.levels {
            all.push((level.build, level.cu.clone(), None));
            for alias in &level.aliases {
                all.push((*alias, level.cu.clone(), None));
            }
            for su in &level.updates {
                all.push((su.build, level.cu.clone(), su.kb));
                for alias in &su.aliases {
                    all.push((*alias, level.cu.clone(), su.kb));
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
    assert_eq!(
        all.len(),
        351 + 5,
        "351 catalogued builds plus five aliases"
    );
    let entries = flat();
    for (build, cu, su_kb) in all {
        let a = assess(cat(), build, &Facts::default());
        let got: BTreeSet<String> = open(&a).into_iter().collect();
        assert_eq!(got, rule_open(&entries, build), "open CVEs of {build}");
        let mut expected = expected_open(build);
        if expected_42897(build) {
            expected.insert("CVE-2026-42897".to_owned());
        }
        let decided: BTreeSet<String> = got
            .iter()
            .filter(|c| decided_by_thresholds(c))
            .cloned()
            .collect();
        assert_eq!(
            decided, expected,
            "ProxyLogon/ProxyShell/CVE-2026-42897 of {build}"
        );
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
            a.open_by_build.is_empty(),
            "route of {build}"
        );
        assert!(a.open_by_build.is_subset(&a.open_cves), "{build}");
        assert_eq!(a.catalogue_version, cat().version);
    }
}

#[test]
fn every_path_ends_fixed_and_respects_cu_specific_sus_and_dotnet() {
    for (build, _, _) in every_catalogued_build() {
        let a = run(&build.to_string());
        if a.open_by_build.is_empty() {
            assert!(a.path.steps.is_empty(), "{build} needs nothing");
            continue;
        }
        let mut at = build;
        let mut dotnet: Option<DotNet> = None;
        for step in &a.path.steps {
            match step.kind {
                StepKind::DotNet => dotnet = step.dotnet,
                // Changes the forest, not the server.
                StepKind::PrepareAd => {}
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
            end.open_by_build.is_empty(),
            "{build}: path {} ends at {at} with {:?} open",
            a.path,
            end.open_by_build
        );
        let newest = cat()
            .family(build.family().unwrap())
            .unwrap()
            .newest()
            .unwrap()
            .last_build();
        assert!(
            at == newest || at.same_base(&b(&build.to_string())),
            "{build}: a CU upgrade goes to the newest SU of the newest CU, not {at}"
        );
    }
}

#[test]
fn builds_between_an_su_and_the_next_catalogued_build_take_the_lower_one() {
    // 2019 CU14: Jun26SU .41, Jul26SU .43, Aug26SU .44.
    let between = run("15.2.1544.42");
    let lower = run("15.2.1544.41");
    assert!(between.known && !between.exact);
    assert_eq!(open(&between), open(&lower));
    assert_eq!(between.su_kb, Some(Kb(5094142)));
    assert_eq!(between.su.as_deref(), Some("Jun26SU"));
    assert_eq!(between.path_display, "2019 CU14 → KB5121575");
    // Between the CU base and its first SU: assessed as the bare CU.
    let early = run("15.2.792.4");
    assert!(early.known && !early.exact && early.su_kb.is_none());
    assert_eq!(open(&early), open(&run("15.2.792.3")));
}

proptest::proptest! {
    /// Within one CU, a higher build never has more open CVEs (SUs are cumulative), and a
    /// build parsed from its long form assesses like the short form.
    #[test]
    fn a_higher_build_on_the_same_cu_never_opens_more(index in 0usize..356, bump in 0u32..40) {
        let all = every_catalogued_build();
        let (build, _, _) = &all[index % all.len()];
        let higher = Build::new(build.major, build.minor, build.build, build.revision + bump);
        let low = run(&build.to_string());
        let high = run(&higher.to_string());
        proptest::prop_assert!(high.open_cves.is_subset(&low.open_cves), "{} vs {}", build, higher);
        let long = format!("{}.{:02}.{:04}.{:03}", build.major, build.minor, build.build, build.revision);
        proptest::prop_assert_eq!(open(&run(&long)), open(&low));
    }
}

// ---------------------------------------------------------------------------------------------
// Specific paths.

fn day(s: &str) -> jiff::civil::Date {
    s.parse().unwrap()
}

/// The first example: 2019 CU14 with the October 2025 SU.
#[test]
fn exchange_2019_cu14_oct25su_needs_the_cu14_august_2026_su() {
    let a = run("15.2.1544.36");
    assert!(a.known && a.exact);
    assert_eq!(a.cu.as_deref(), Some("CU14"));
    assert_eq!(a.su.as_deref(), Some("Oct25SU"));
    assert!(a.open_cves.contains(&"CVE-2026-42897".parse().unwrap()));
    assert_eq!(a.route, Route::Su);
    assert_eq!(a.path_display, "2019 CU14 → KB5121575");
    assert_eq!(a.path.steps[0].target, Some(b("15.2.1544.44")));
    assert!(
        a.notes.iter().any(|n| n.contains("inferred")),
        "the Jul26/Aug26 CVE lists are marked unverified: {:?}",
        a.notes
    );
}

#[test]
fn exchange_2016_cu17_upgrades_to_cu23_with_a_stopgap() {
    let a = run("15.1.2044.4");
    assert_eq!(a.family, Some(Family::Exchange2016));
    assert_eq!(a.cu.as_deref(), Some("CU17"));
    assert_eq!(a.su_kb, None);
    assert_eq!(a.route, Route::CuUpgrade);
    assert!(a.proxylogon_vulnerable && a.proxyshell_vulnerable);
    assert_eq!(
        a.path_display,
        "2016 CU17 → CU23 (needs .NET 4.8) → KB5121576"
    );
    let cu = &a.path.steps[0];
    assert_eq!(cu.kind, StepKind::Cu);
    assert_eq!(cu.target, Some(b("15.1.2507.6")));
    assert!(cu.prerequisite.contains("_DiagnosticData"));
    let su = &a.path.steps[1];
    assert_eq!(su.requires_build, Some(b("15.1.2507.6")));
    let stopgap = a.stopgap.as_ref().unwrap();
    assert_eq!(stopgap.kb, Some(Kb(5000871)));
    assert_eq!(stopgap.target, Some(b("15.1.2044.13")));
}

#[test]
fn exchange_2013_cu21_leapfrogs_dotnet_to_cu23() {
    let a = run("15.0.1395.4");
    assert_eq!(
        a.path_display,
        "2013 CU21 → .NET 4.7.2 → CU23 (needs .NET 4.7.2 or 4.8) → KB5024296"
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
        "2013 CU21 → CU23 (needs .NET 4.7.2 or 4.8) → KB5024296"
    );
}

#[test]
fn exchange_2013_cu15_outside_the_matrix_falls_back_to_newest_dotnet_then_cu23() {
    let a = run("15.0.1263.5");
    assert!(a.stopgap.is_none(), "CU15 got no March SU");
    assert_eq!(
        a.path_display,
        "2013 CU15 → .NET 4.8 → CU23 (needs .NET 4.7.2 or 4.8) → KB5024296"
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
         → CU14 (needs .NET 4.7.2 or 4.8) → .NET 4.8 → CU23 (needs .NET 4.8) → KB5121576"
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
        "2016 CU8 → CU23 (needs .NET 4.8) → KB5121576"
    );
}

/// The newest build of each product says what is still open, if anything, and why.
#[test]
fn the_newest_build_of_each_product_says_what_is_still_open_and_why() {
    let today = day("2026-12-07");
    let at = |build: &str| {
        run_with(
            build,
            Facts {
                today: Some(today),
                ..Facts::default()
            },
        )
    };
    use salve::exchange::support::State;
    // SE RTM Aug26SU: nothing open by build; supported; config-dependent fixes listed to check.
    let se = at("15.2.2562.46");
    assert!(se.open_cves.is_empty() && se.route == Route::None);
    assert_eq!(se.support.as_ref().unwrap().state, State::Supported);
    assert!(
        se.protections
            .iter()
            .any(|p| p.cve.to_string() == "CVE-2025-53786")
    );
    assert!(se.eems.as_ref().unwrap().receives_new);
    // 2019 CU15 Aug26SU: nothing open; out of support (ESU period 2 ended); SE in place next.
    let e2019 = at("15.2.1748.49");
    assert!(e2019.open_cves.is_empty());
    let support = e2019.support.as_ref().unwrap();
    assert_eq!(support.state, State::OutOfSupport);
    assert!(
        support
            .detail
            .contains("ESU period (2) ended on 2026-10-31"),
        "{}",
        support.detail
    );
    assert!(
        e2019
            .successor
            .as_deref()
            .unwrap()
            .starts_with("in-place upgrade to Exchange SE RTM")
    );
    // The CU14 line's newest SU.
    assert!(at("15.2.1544.44").open_cves.is_empty());
    // 2016 CU23 Aug26SU: CVE-2024-21410 stays open (no 2016 build fixes it): Extended Protection.
    let e2016 = at("15.1.2507.72");
    assert_eq!(open(&e2016), ["CVE-2024-21410"]);
    assert!(e2016.open_by_build.is_empty() && e2016.route == Route::None);
    let ep = e2016
        .protections
        .iter()
        .find(|p| p.cve.to_string() == "CVE-2024-21410")
        .unwrap();
    assert!(ep.needs.contains("Extended Protection"));
    assert!(e2016.successor.as_deref().unwrap().contains("side by side"));
    // 2013 CU23 Mar23SU: nothing open that is tracked, but out of support since 2023 and the
    // notes say later CVEs are not evaluated.
    let e2013 = at("15.0.1497.48");
    assert!(e2013.open_cves.is_empty());
    assert_eq!(
        e2013.support.as_ref().unwrap().since,
        Some(day("2023-04-12"))
    );
    assert!(
        e2013
            .notes
            .iter()
            .any(|n| n.contains("after the end of support"))
    );
    // 2010 SP3 RU32.
    let e2010 = at("14.3.513.0");
    assert!(e2010.open_cves.is_empty());
    assert_eq!(e2010.support.as_ref().unwrap().state, State::OutOfSupport);
}

#[test]
fn a_setting_override_that_disables_a_fix_reopens_the_cve_with_the_fix() {
    use salve::exchange::catalogue::Check;
    use salve::exchange::protection::{HostConfig, ProtectionState};
    let mut config = HostConfig {
        overrides_read: true,
        ..HostConfig::default()
    };
    config.overrides_off.insert(
        "OAuth\\AppIdBasedAudienceValidation\\Enabled".into(),
        "Disable audience check".into(),
    );
    config.features.insert(Check::ExtendedProtection, true);
    let a = run_with(
        "15.1.2507.72",
        Facts {
            config: Some(config),
            ..Facts::default()
        },
    );
    assert_eq!(
        open(&a),
        ["CVE-2025-25005"],
        "21410 is protected by Extended Protection"
    );
    let p = a
        .protections
        .iter()
        .find(|p| p.cve.to_string() == "CVE-2025-25005")
        .unwrap();
    assert_eq!(p.state, ProtectionState::Off);
    assert!(
        p.reason
            .as_deref()
            .unwrap()
            .contains("Disable audience check")
    );
    assert!(p.fix.contains("Remove-SettingOverride"));
    assert!(a.open_by_build.is_empty(), "no update closes it");
}

#[test]
fn cve_2026_42897_is_mitigated_until_the_june_2026_su_and_eems_needs_that_su() {
    use salve::exchange::mitigation::{Applied, EemsFacts, MitigationFacts};
    let feb = |m: Option<MitigationFacts>| {
        run_with(
            "15.2.2562.37",
            Facts {
                mitigations: m,
                today: Some(day("2026-12-07")),
                ..Facts::default()
            },
        )
    };
    let bare = feb(Some(MitigationFacts::default()));
    let m = &bare.mitigations[0];
    assert_eq!(m.eems_id.as_deref(), Some("M2.1.0"));
    assert!(m.needed && m.applied == Applied::None);
    assert!(bare.mitigated_cves.is_empty());
    let eems = bare.eems.as_ref().unwrap();
    assert!(
        eems.available && !eems.receives_new,
        "Feb26SU is below Jun26SU"
    );
    let by_eems = feb(Some(MitigationFacts {
        rules: BTreeSet::from(["EOMT OWA CSP - outbound".to_owned()]),
        eems: Some(EemsFacts {
            present: true,
            running: true,
            enabled: true,
            applied: vec!["M2.1.0".into()],
            blocked: Vec::new(),
        }),
    }));
    assert_eq!(by_eems.mitigations[0].applied, Applied::Eems);
    assert_eq!(
        by_eems
            .mitigated_cves
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["CVE-2026-42897"]
    );
    assert!(
        !by_eems.mitigations[0].removable,
        "Microsoft asks to keep it"
    );
    // Patched: the mitigation stays and the service can take new ones.
    let patched = run_with(
        "15.2.2562.43",
        Facts {
            today: Some(day("2026-12-07")),
            mitigations: Some(MitigationFacts::default()),
            ..Facts::default()
        },
    );
    assert!(
        !patched
            .open_cves
            .contains(&"CVE-2026-42897".parse().unwrap())
    );
    assert!(patched.eems.as_ref().unwrap().receives_new);
    // 2019 CU10 has no Emergency Mitigation service.
    assert!(!run("15.2.922.7").eems.unwrap().available);
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
    assert_eq!(
        missing.su_kb,
        Some(Kb(4092041)),
        "the SU before it: May 2018"
    );
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
fn exchange_2010_needs_ru32_for_the_um_cve_only() {
    for build in ["14.3.509.0", "14.3.123.4"] {
        let a = run(build);
        assert_eq!(a.family, Some(Family::Exchange2010));
        assert_eq!(open(&a), ["CVE-2021-26857"]);
        assert!(!a.proxylogon_vulnerable && !a.proxyshell_vulnerable);
        assert!(
            a.path_display.ends_with("→ SP3 RU32 KB5000978"),
            "{}",
            a.path_display
        );
        assert_eq!(a.path.steps[0].kind, StepKind::Ru);
    }
    assert!(run("14.3.513.0").open_cves.is_empty());
}

#[test]
fn unknown_builds_say_the_answer_is_unknown() {
    let se = run("15.2.9999.1");
    assert!(!se.known);
    assert_eq!(se.family, Some(Family::SubscriptionEdition));
    assert_eq!(se.cu, None);
    assert_eq!(se.route, Route::Unknown);
    assert!(se.notes.iter().any(|n| n.contains("the answer is unknown")));

    // A 2016 build between CUs: counted from the CU below (the reference rule), no path.
    let old = run("15.1.1500.1");
    assert!(!old.known && old.cu.is_none());
    assert!(old.proxyshell_vulnerable);
    assert_eq!(old.route, Route::Unknown);
    assert!(old.path.steps.is_empty());

    // A later SU of a known CU: CU known, all its catalogued SUs counted, and it says so.
    let later_su = run("15.2.1544.50");
    assert!(!later_su.known);
    assert_eq!(later_su.cu.as_deref(), Some("CU14"));
    assert!(later_su.open_cves.is_empty());
    assert!(
        later_su
            .notes
            .iter()
            .any(|n| n.contains("later than every catalogued"))
    );

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
