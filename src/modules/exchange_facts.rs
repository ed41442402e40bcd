//! `exchange_facts`: read one server's Exchange facts (shipped script `exchange_facts`) and
//! assess them against the build catalogue. Read-only ([`ReadOnlyModule`]), so check mode runs
//! it too.
//!
//! The answer is registered and also set as the host fact `exchange`: every field of
//! [`FactsAnswer`] plus
//! - `assessment`: [`crate::exchange::assess`] of the ExSetup build and the installed KBs
//!   (`open_cves`, `proxylogon_vulnerable`, `proxyshell_vulnerable`, `cu`, `route`, `path`,
//!   `path_display`, `stopgap`, `notes`); `null` when ExSetup.exe is missing,
//! - `mitigated`: both EOMT rewrite rules are present,
//! - `in_maintenance`: `ServerWideOffline` is held inactive by the `Maintenance` requester.

use serde::Deserialize;
use serde_json::Value;

use super::exchange_script::{self as shipped, Fail};
use super::spec::{ModuleSpec, Provides};
use super::{CheckCtx, ModuleError, Outcome, ReadOnlyModule};
use crate::contract::FactsAnswer;
use crate::exchange::assess::{self, Assessment};
use crate::exchange::build::Build;
use crate::exchange::catalogue::Check;
use crate::exchange::catalogue::catalogue;
use crate::exchange::dotnet::DotNet;
use crate::exchange::ids::Kb;
use crate::exchange::mitigation::{EemsFacts, MitigationFacts};
use crate::exchange::protection::HostConfig;

/// The two rules the EOMT mitigation writes.
pub const EOMT_RULES: [&str; 2] = [
    "X-AnonResource-Backend Abort - inbound",
    "X-BEResource Abort - inbound",
];

/// No arguments.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {}

pub struct ExchangeFacts;

/// What `exchange_facts` is, for the module table.
pub const SPEC: ModuleSpec = ModuleSpec {
    provides: Provides::ExchangeFacts,
    manages_exchange: true,
    ..ModuleSpec::read_only(
        "exchange_facts",
        &ExchangeFacts,
        super::args::validator::<Args>,
    )
};

#[async_trait::async_trait]
impl ReadOnlyModule for ExchangeFacts {
    async fn run(&self, args: &Value, ctx: &CheckCtx<'_>) -> Result<Outcome, ModuleError> {
        shipped::args::<Args>(args)?;
        shipped::finish(read(ctx).await)
    }
}

async fn read(ctx: &CheckCtx<'_>) -> Result<Outcome, Fail> {
    let facts = shipped::facts(ctx).await?;
    if let Some(why) = dag_mismatch(ctx.host.settings.dag.as_deref(), &facts) {
        return Err(Fail::failed(why));
    }
    let fact = fact_value(&facts)?;
    let msg = summary(&facts, &fact);
    let mut outcome = Outcome::ok().with_msg(msg).with("exchange", fact.clone());
    outcome.facts = Some([("exchange".to_string(), fact)].into_iter().collect());
    Ok(outcome)
}

/// Why the server's DAG and the inventory's `salve_dag` disagree, if they do. salve changes a
/// DAG's members one at a time by the inventory's word: a member the inventory does not place
/// in its DAG could be drained together with another member, so the host stops here, before
/// anything changes, with both values named.
fn dag_mismatch(inventory: Option<&str>, facts: &FactsAnswer) -> Option<String> {
    let server = facts.dag.as_deref().filter(|d| !d.trim().is_empty());
    match (inventory, server) {
        (Some(i), Some(s)) if i.eq_ignore_ascii_case(s) => None,
        (None, None) => None,
        (Some(i), Some(s)) => Some(format!(
            "the server is a member of DAG `{s}`, but the inventory says salve_dag: `{i}`; \
             set salve_dag to `{s}` for this host (and its DAG peers), then run again"
        )),
        (Some(i), None) => Some(format!(
            "the inventory says salve_dag: `{i}`, but the server is not a member of any DAG; \
             remove salve_dag for this host or check that it is the server you meant"
        )),
        (None, Some(s)) => Some(format!(
            "the server is a member of DAG `{s}`, but the inventory gives it no salve_dag, so \
             it could be changed together with its peers; set salve_dag: `{s}` for this host \
             and its DAG peers"
        )),
    }
}

/// The build read from ExSetup.exe, if any, parsed.
pub fn build_of(facts: &FactsAnswer) -> Result<Option<Build>, Fail> {
    facts
        .build
        .as_deref()
        .map(|b| {
            b.parse::<Build>()
                .map_err(|e| Fail::failed(format!("exchange_facts answered build `{b}`: {e}")))
        })
        .transpose()
}

/// Assess the host's build with its installed KBs and .NET version.
pub fn assessment(facts: &FactsAnswer) -> Result<Option<Assessment>, Fail> {
    let Some(build) = build_of(facts)? else {
        return Ok(None);
    };
    let cat = catalogue().map_err(|e| {
        Fail::Module(ModuleError::Args(format!(
            "the build catalogue compiled into salve is broken: {e}"
        )))
    })?;
    let installed_kbs: Vec<Kb> = facts
        .installed_kbs
        .iter()
        .filter_map(|k| k.parse().ok())
        .collect();
    let (config, mitigations) = configuration(facts);
    let input = assess::Facts {
        installed_kbs: Some(installed_kbs),
        dotnet: DotNet::from_release(facts.dotnet_release),
        today: Some(crate::exchange::support::today_utc()),
        config,
        mitigations: Some(mitigations),
    };
    Ok(Some(assess::assess(cat, build, &input)))
}

/// The fix-related configuration and mitigation state the facts read, as the assessment takes
/// them. A SettingOverride parameter set to False switches its fix off; serialized data signing
/// is on (the default since Nov23SU) unless an override of `Data\EnableSerializationDataSigning`
/// says `Enabled=False`.
pub fn configuration(facts: &FactsAnswer) -> (Option<HostConfig>, MitigationFacts) {
    let mut rules: std::collections::BTreeSet<String> =
        facts.mitigation_rules.iter().cloned().collect();
    let Some(read) = &facts.config else {
        return (None, MitigationFacts { rules, eems: None });
    };
    rules.extend(read.outbound_rules.iter().cloned());
    let mut config = HostConfig::default();
    if let Some(ep) = read.extended_protection {
        config.features.insert(Check::ExtendedProtection, ep);
    }
    if let Some(overrides) = &read.setting_overrides {
        config.overrides_read = true;
        let mut signing = true;
        for o in overrides {
            for p in &o.parameters {
                let Some((name, value)) = p.split_once('=') else {
                    continue;
                };
                if !value.trim().eq_ignore_ascii_case("false") {
                    continue;
                }
                let key = format!("{}\\{}\\{}", o.component, o.section, name.trim());
                config.overrides_off.insert(key, o.name.clone());
                if o.component.eq_ignore_ascii_case("Data")
                    && o.section
                        .eq_ignore_ascii_case("EnableSerializationDataSigning")
                {
                    signing = false;
                }
            }
        }
        config
            .features
            .insert(Check::SerializedDataSigning, signing);
    }
    let eems = read.emergency_mitigation.as_ref().map(|e| EemsFacts {
        present: e.service_present,
        running: e.service_running,
        enabled: e.mitigations_enabled,
        applied: e.applied.clone(),
        blocked: e.blocked.clone(),
    });
    (Some(config), MitigationFacts { rules, eems })
}

/// The `exchange` fact: the answer, its assessment and two derived flags.
pub fn fact_value(facts: &FactsAnswer) -> Result<Value, Fail> {
    let assessment = assessment(facts)?;
    let mut value = serde_json::to_value(facts)
        .map_err(|e| Fail::Module(ModuleError::Args(format!("cannot encode facts: {e}"))))?;
    if let Value::Object(map) = &mut value {
        map.insert(
            "assessment".into(),
            serde_json::to_value(&assessment).unwrap_or(Value::Null),
        );
        map.insert("mitigated".into(), is_mitigated(facts).into());
        map.insert("in_maintenance".into(), in_maintenance(facts).into());
    }
    Ok(value)
}

/// Both EOMT rules are on the Default Web Site.
pub fn is_mitigated(facts: &FactsAnswer) -> bool {
    EOMT_RULES
        .iter()
        .all(|r| facts.mitigation_rules.iter().any(|x| x == r))
}

/// `ServerWideOffline` is held down by the `Maintenance` requester.
pub fn in_maintenance(facts: &FactsAnswer) -> bool {
    facts.component_states.iter().any(|c| {
        c.component == "ServerWideOffline"
            && c.state != "Active"
            && c.requesters.iter().any(|r| r == "Maintenance")
    })
}

fn summary(facts: &FactsAnswer, fact: &Value) -> String {
    let Some(build) = &facts.build else {
        return match &facts.family {
            Some(f) => format!("{f}: ExSetup.exe missing, setup did not complete"),
            None => "no Exchange installation found".into(),
        };
    };
    let a = &fact["assessment"];
    let open: Vec<&str> = a["open_cves"]
        .as_array()
        .map(|v| v.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let exposure = match open.len() {
        0 => "no catalogued CVE open".to_string(),
        1..=4 => format!("open: {}", open.join(", ")),
        n => format!("{n} CVEs open: {}, …", open[..3].join(", ")),
    };
    // Out of support or ESU only: say so, with the reason, on the task line.
    let support = match a["support"]["state"].as_str() {
        Some("out_of_support" | "esu_only") => {
            format!("; {}", a["support"]["detail"].as_str().unwrap_or_default())
        }
        _ => String::new(),
    };
    format!(
        "{} {build} ({}); {exposure}; path: {}{support}",
        facts.family.as_deref().unwrap_or("unknown family"),
        a["cu"].as_str().unwrap_or("CU unknown"),
        a["path_display"].as_str().unwrap_or("none")
    )
}

#[cfg(test)]
mod tests {
    use super::super::exchange_script::testing::*;
    use super::*;
    use crate::contract::ScriptId;
    use crate::modules::Module;
    use crate::transport::fake::FakeFleet;
    use serde_json::json;

    #[tokio::test(start_paused = true)]
    async fn registers_the_facts_with_their_assessment_and_sets_the_fact() {
        let fleet = FakeFleet::new(|_, s| {
            assert_eq!(id(s), ScriptId::ExchangeFacts);
            answer(&facts("15.2.792.3"), 0)
        });
        let link = FakeLink::new(&fleet);
        let o = with_check_ctx(&link, json!({}), async |ctx| {
            ExchangeFacts.check(&json!({}), ctx).await.unwrap()
        })
        .await;
        assert!(!o.status.failed() && !o.status.changed(), "{o:?}");
        let fact = &o.facts.as_ref().unwrap()["exchange"];
        assert_eq!(fact, &o.data["exchange"]);
        assert_eq!(fact["build"], "15.2.792.3");
        let a = &fact["assessment"];
        assert_eq!(a["cu"], "CU8");
        assert_eq!(a["proxylogon_vulnerable"], true);
        assert!(
            a["open_cves"]
                .as_array()
                .unwrap()
                .contains(&json!("CVE-2021-26855"))
        );
        assert_eq!(a["path"][0]["kind"], "CU");
        assert_eq!(a["path"][1]["kind"], "SU");
        assert_eq!(a["catalogue_version"], "2026-08-20.1");
        assert_eq!(fact["mitigated"], false);
        let msg = o.msg.unwrap();
        assert!(msg.contains("107 CVEs open: CVE-2021-24085"), "{msg}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_missing_exsetup_gives_no_assessment_rather_than_build_zero() {
        let fleet = FakeFleet::new(|_, _| {
            let mut f = facts("15.2.792.3");
            f.build = None;
            answer(&f, 0)
        });
        let link = FakeLink::new(&fleet);
        let o = with_ctx(&link, json!({}), async |ctx| {
            ExchangeFacts.apply(&json!(null), ctx).await.unwrap()
        })
        .await;
        assert_eq!(o.data["exchange"]["assessment"], Value::Null);
        assert!(o.msg.unwrap().contains("ExSetup.exe missing"));
    }

    #[test]
    fn the_servers_dag_must_be_the_inventorys() {
        let member = |dag: Option<&str>| FactsAnswer {
            dag: dag.map(str::to_string),
            ..crate::modules::exchange_script::testing::facts("15.2.792.3")
        };
        assert_eq!(dag_mismatch(Some("DAG1"), &member(Some("dag1"))), None);
        assert_eq!(dag_mismatch(None, &member(None)), None);
        let both = dag_mismatch(Some("dag2"), &member(Some("dag1"))).unwrap();
        assert!(both.contains("`dag1`") && both.contains("`dag2`"), "{both}");
        assert!(dag_mismatch(None, &member(Some("dag1"))).is_some());
        assert!(dag_mismatch(Some("dag1"), &member(None)).is_some());
    }

    #[test]
    fn unknown_arguments_are_refused() {
        assert!(super::super::validate_args("exchange_facts", &json!({"x": 1})).is_err());
    }
}
