//! `exchange_update`: install the next Exchange update a server needs (shipped script
//! `exchange_update`): a CU through Setup.exe or an SU (.msp) through msiexec.
//!
//! ```yaml
//! - exchange_update:
//!     target: path              # follow the assessed path; or `kb: KB5000871` / `cu: CU21`
//!     sources: "{{ salve_update_sources }}"
//!     license_switch: /IAcceptExchangeServerLicenseTerms_DiagnosticDataOFF   # Sept 2021+ CUs
//!     ad_prepared: true         # the organisation is already prepared for the target CU
//!     min_free_disk_gb: 30
//! ```
//!
//! **One step per call.** Each call re-reads the host's facts, works out the next step (the
//! first step of the assessed path, or the explicit `kb`/`cu`) and installs only that one;
//! `reboot_required` and `remaining` in the result tell the playbook to restart and call again.
//! Every restart is then a visible task with its own timeout, and a server is never left
//! mid-path by a module that tried to do everything at once.
//!
//! `sources` maps a package label to `{url | unc, sha256}`. Labels are tried most specific
//! first: for an SU `"2019 CU8 KB5000871"` then `"KB5000871"` (one KB has a different package per
//! CU); for a CU `"2016 CU23"` then `"CU23"`.
//!
//! Gates, all read from facts before anything is installed (so `check` reports them too):
//! - an SU only for the CU the host runs (its build's `major.minor.build` must equal the SU's
//!   CU base): `kb:` for another CU is refused with the CUs the KB exists for;
//! - no restart pending (an install on top of a pending one is how servers break);
//! - for a CU, the Setup prerequisites of [`crate::exchange::prereq`] (.NET supported by the
//!   target CU, VC++ 2012/2013, UCMA, free disk, AD preparation); unchecked ones are listed;
//! - .NET and Exchange 2010 rollup steps are reported, not installed.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Value, json};

use super::exchange_facts::{assessment, build_of};
use super::exchange_script::{self as shipped, Fail, PackageSource, Rendered};
use super::spec::{Action, Counting, Effect, Estimate, Foresight, ModuleSpec, Provides, Reason};
use super::{CheckCtx, HostCtx, Module, ModuleError, Num, Outcome, ProbeLink};
use crate::contract::{FactsAnswer, ScriptId, UpdateAnswer, UpdateKind, UpdateRequest};
use crate::exchange::build::{Build, Family};
use crate::exchange::catalogue::{Catalogue, Level, LicenceSwitch, catalogue};
use crate::exchange::ids::Kb;
use crate::exchange::path::{Step, StepKind};
use crate::exchange::prereq::{self, Finding, PrereqFacts, PrereqPolicy, Status};

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
}

/// `target: path`: follow the path [`crate::exchange::assess`] plans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Target {
    Path,
}

/// What to install: the assessed path, or one explicit update.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Want {
    Path,
    Kb(String),
    Cu(String),
}

/// Arguments of `exchange_update`: exactly one of `target: path`, `kb` or `cu`.
#[derive(Debug, Deserialize)]
#[serde(try_from = "RawArgs")]
pub struct Args {
    want: Want,
    sources: Option<Rendered<BTreeMap<String, PackageSource>>>,
    license_switch: Option<String>,
    ad_prepared: Option<Rendered<bool>>,
    min_free_disk_gb: Option<Num>,
}

impl TryFrom<RawArgs> for Args {
    type Error = String;

    fn try_from(raw: RawArgs) -> Result<Self, String> {
        let want = match (raw.target, raw.kb, raw.cu) {
            (Some(Target::Path), None, None) => Want::Path,
            (None, Some(kb), None) => Want::Kb(kb),
            (None, None, Some(cu)) => Want::Cu(cu),
            _ => {
                return Err(
                    "give exactly one of `target: path`, `kb: KB...` or `cu: CU...`".into(),
                );
            }
        };
        Ok(Args {
            want,
            sources: raw.sources,
            license_switch: raw.license_switch,
            ad_prepared: raw.ad_prepared,
            min_free_disk_gb: raw.min_free_disk_gb,
        })
    }
}

pub struct ExchangeUpdate;

/// What `exchange_update` is, for the module table.
pub const SPEC: ModuleSpec = ModuleSpec {
    name: "exchange_update",
    module: &ExchangeUpdate,
    validate: super::args::validator::<Args>,
    effect: Effect::ChangesHosts,
    reboots: false,
    estimate: Estimate::ByUpdateKind {
        cu: 3600,
        other: 1800,
    },
    action: Action::InstallStep,
    reason: Reason::Check,
    foresight: Foresight::Predicts,
    counting: Counting::UpdatePath,
    provides: Provides::Nothing,
};

#[async_trait::async_trait]
impl Module for ExchangeUpdate {
    async fn check(&self, args: &Value, ctx: &CheckCtx<'_>) -> Result<Outcome, ModuleError> {
        let args: Args = shipped::args(args)?;
        shipped::finish(decide(&args, ctx).await.map(|d| d.outcome(true)))
    }

    async fn apply(&self, args: &Value, ctx: &HostCtx<'_>) -> Result<Outcome, ModuleError> {
        let args: Args = shipped::args(args)?;
        shipped::finish(install(&args, ctx).await)
    }
}

/// The decision for this call, made from facts alone.
#[derive(Debug)]
struct Decision {
    /// Steps still to take, the next first.
    steps: Vec<Step>,
    /// The request for the next step, when it may go ahead.
    request: Option<UpdateRequest>,
    /// Why nothing can be installed now, `None` when it can (or nothing is needed).
    refusal: Option<String>,
    prerequisites: Vec<Finding>,
    build: Build,
    /// A restart is pending (markers): the next step waits for it, and the playbook's restart
    /// task takes it, rather than the host failing.
    restart_first: Option<String>,
}

impl Decision {
    fn outcome(&self, check: bool) -> Outcome {
        let steps: Vec<Value> = self
            .steps
            .iter()
            .map(|s| serde_json::to_value(s).unwrap_or(Value::Null))
            .collect();
        let base = match (&self.refusal, self.steps.first()) {
            (Some(why), _) => Outcome::failed(why.clone()),
            (None, Some(next)) if self.restart_first.is_some() => Outcome::ok().with_msg(format!(
                "a restart is pending ({}): restart first; then {next} is next",
                self.restart_first.as_deref().unwrap_or_default()
            )),
            (None, None) => Outcome::ok().with_msg(format!("{}: nothing to install", self.build)),
            (None, Some(next)) if check => Outcome::changed().with_msg(format!(
                "would install {next} on {} ({}){}",
                self.build,
                next.reason,
                self.later()
            )),
            (None, Some(_)) => Outcome::changed(),
        };
        let unchecked: Vec<String> = self
            .prerequisites
            .iter()
            .filter(|f| f.status == Status::Unchecked)
            .map(|f| f.message.clone())
            .collect();
        base.with("build", self.build.to_string())
            .with("steps", Value::Array(steps))
            .with("remaining", self.steps.len().saturating_sub(1))
            .with(
                "prerequisites",
                serde_json::to_value(&self.prerequisites).unwrap_or(Value::Null),
            )
            .with("unchecked_prerequisites", unchecked)
            // A pending restart is needed now; in check mode an install is predicted to need one.
            .with(
                "reboot_required",
                self.refusal.is_none()
                    && !self.steps.is_empty()
                    && (check || self.restart_first.is_some()),
            )
    }

    fn later(&self) -> String {
        if self.steps.len() < 2 {
            return String::new();
        }
        let rest: Vec<String> = self.steps[1..].iter().map(ToString::to_string).collect();
        format!("; then, after a restart: {}", rest.join(" → "))
    }
}

fn catalogue_error(e: impl std::fmt::Display) -> Fail {
    Fail::Module(ModuleError::Args(format!(
        "the build catalogue compiled into salve is broken: {e}"
    )))
}

async fn decide(args: &Args, ctx: &CheckCtx<'_>) -> Result<Decision, Fail> {
    let facts = shipped::facts(ctx).await?;
    decide_from(args, &facts)
}

fn decide_from(args: &Args, facts: &FactsAnswer) -> Result<Decision, Fail> {
    let empty = BTreeMap::new();
    let sources = match &args.sources {
        Some(s) => s.get("sources")?,
        None => &empty,
    };
    let ad_prepared = match &args.ad_prepared {
        Some(a) => Some(*a.get("ad_prepared")?),
        None => None,
    };
    let refuse = |build: Build, why: String| Decision {
        steps: Vec::new(),
        request: None,
        refusal: Some(why),
        prerequisites: Vec::new(),
        build,
        restart_first: None,
    };
    let Some(build) = build_of(facts)? else {
        return Err(Fail::failed(
            "ExSetup.exe is missing: Exchange setup did not complete the last time it ran; \
             re-run Setup /Mode:Upgrade by hand before salve installs anything",
        ));
    };
    let cat = catalogue().map_err(catalogue_error)?;
    let Some(assessed) = assessment(facts)? else {
        return Err(Fail::failed("no build to assess"));
    };
    let steps = match &args.want {
        Want::Path => assessed.path.steps.clone(),
        Want::Kb(kb) => match explicit_su(cat, build, kb) {
            Ok(step) => step.into_iter().collect(),
            Err(why) => return Ok(refuse(build, why)),
        },
        Want::Cu(cu) => match explicit_cu(cat, build, cu) {
            Ok(step) => step.into_iter().collect(),
            Err(why) => return Ok(refuse(build, why)),
        },
    };
    let mut decision = Decision {
        steps,
        request: None,
        refusal: None,
        prerequisites: Vec::new(),
        build,
        restart_first: None,
    };
    let Some(next) = decision.steps.first().cloned() else {
        return Ok(decision);
    };
    if !facts.pending_reboot.is_empty() {
        decision.restart_first = Some(facts.pending_reboot.join(", "));
        return Ok(decision);
    }
    let given = Given {
        sources,
        license_switch: args.license_switch.as_deref(),
        ad_prepared,
        min_free_disk_gb: args.min_free_disk_gb,
    };
    match gate(cat, &given, facts, build, &next) {
        Ok((request, findings)) => {
            decision.request = Some(request);
            decision.prerequisites = findings;
        }
        Err((why, findings)) => {
            decision.refusal = Some(why);
            decision.prerequisites = findings;
        }
    }
    Ok(decision)
}

/// The SU step for `kb` on the host's CU, `None` when already installed; an error naming the
/// CUs the KB is for when the host's CU has no such SU.
fn explicit_su(cat: &Catalogue, build: Build, kb: &str) -> Result<Option<Step>, String> {
    let kb: Kb = kb
        .parse()
        .map_err(|e: crate::exchange::ids::KbParseError| e.to_string())?;
    let entry = family_entry(cat, build)?;
    let level = entry
        .levels
        .iter()
        .rev()
        .find(|l| l.build <= build)
        .ok_or_else(|| format!("{build} is older than every catalogued {}", entry.family))?;
    let Some(su) = level.updates.iter().find(|u| u.kb == kb) else {
        let elsewhere: Vec<String> = entry
            .levels
            .iter()
            .filter(|l| l.updates.iter().any(|u| u.kb == kb))
            .map(|l| format!("{} ({})", l.cu, l.build))
            .collect();
        return Err(if elsewhere.is_empty() {
            format!("{kb} is not a catalogued SU for {}", entry.family)
        } else {
            format!(
                "refusing {kb}: this server runs {} {} ({build}) and {kb} is only for {}; an SU \
                 installs on its own CU only",
                entry.family.short(),
                level.cu,
                elsewhere.join(", ")
            )
        });
    };
    if build >= su.build {
        return Ok(None);
    }
    Ok(Some(Step {
        kind: StepKind::Su,
        label: kb.to_string(),
        target: Some(su.build),
        kb: Some(kb),
        dotnet: None,
        requires_dotnet: Vec::new(),
        requires_build: Some(level.build),
        licence_switch: None,
        reason: format!("asked for {kb} on {}", level.cu),
        prerequisite: format!("{} ({}) installed", level.cu, level.build),
    }))
}

/// The CU step for label `cu` in the host's family, `None` when the host is at or past it.
fn explicit_cu(cat: &Catalogue, build: Build, cu: &str) -> Result<Option<Step>, String> {
    let entry = family_entry(cat, build)?;
    let level = entry
        .levels
        .iter()
        .find(|l| l.cu.eq_ignore_ascii_case(cu))
        .ok_or_else(|| format!("{cu} is not a catalogued {} CU", entry.family))?;
    if build >= level.build {
        return Ok(None);
    }
    Ok(Some(Step {
        kind: StepKind::Cu,
        label: level.cu.clone(),
        target: Some(level.build),
        kb: level.kb,
        dotnet: None,
        requires_dotnet: level.dotnet.clone(),
        requires_build: None,
        licence_switch: Some(cat.licence_switch(level)),
        reason: format!("asked for {}", level.cu),
        prerequisite: String::new(),
    }))
}

fn family_entry(
    cat: &Catalogue,
    build: Build,
) -> Result<&crate::exchange::catalogue::FamilyEntry, String> {
    build
        .family()
        .and_then(|f| cat.family(f))
        .ok_or_else(|| format!("{build} is not a build of a catalogued Exchange family"))
}

type Gate = Result<(UpdateRequest, Vec<Finding>), (String, Vec<Finding>)>;

/// The rendered arguments the gates read.
struct Given<'a> {
    sources: &'a BTreeMap<String, PackageSource>,
    license_switch: Option<&'a str>,
    ad_prepared: Option<bool>,
    min_free_disk_gb: Option<Num>,
}

/// May `step` be installed on this host now? The request when it may.
fn gate(cat: &Catalogue, args: &Given<'_>, facts: &FactsAnswer, build: Build, step: &Step) -> Gate {
    let no = |why: String| Err((why, Vec::new()));
    let Some(target) = step.target else {
        return no(format!(
            "next step is {step}: install it yourself (maintenance mode, Exchange services \
             stopped, restart), then run again; salve does not install .NET"
        ));
    };
    let family = build.family();
    let short = family.map_or("", Family::short);
    let kb = step.kb.map(|k| k.to_string()).unwrap_or_default();
    let (kind, keys) = match step.kind {
        StepKind::Su => {
            let Some(base) = step.requires_build else {
                return no(format!("{step} does not say which CU it is for"));
            };
            if !build.same_base(&base) || build < base {
                return no(format!(
                    "refusing {step}: it is for the CU at {base}, but this server runs {build}; \
                     an SU installs on its own CU only"
                ));
            }
            let cu = cu_label(cat, base).unwrap_or_default();
            (
                UpdateKind::Su,
                vec![format!("{short} {cu} {kb}"), kb.clone()],
            )
        }
        StepKind::Cu => (
            UpdateKind::Cu,
            vec![format!("{short} {}", step.label), step.label.clone()],
        ),
        StepKind::Ru | StepKind::DotNet => {
            return no(format!(
                "next step is {step}: Exchange 2010 rollups are not installed by salve"
            ));
        }
    };
    if !facts.pending_reboot.is_empty() {
        return no(format!(
            "a restart is pending ({}): restart the server first, then run again",
            facts.pending_reboot.join(", ")
        ));
    }
    let mut findings = Vec::new();
    let mut licence = None;
    if kind == UpdateKind::Cu {
        let Some(level) = level_at(cat, target) else {
            return no(format!("{target} is not a catalogued CU build"));
        };
        let policy = match args.min_free_disk_gb.map(|n| n.0) {
            Some(gb) if gb.is_finite() && gb >= 0.0 => PrereqPolicy {
                min_free_disk_bytes: (gb * 1024.0 * 1024.0 * 1024.0) as u64,
            },
            Some(gb) => {
                return no(format!(
                    "min_free_disk_gb must be a non-negative number, got {gb}"
                ));
            }
            None => PrereqPolicy::default(),
        };
        findings = prereq::evaluate(level, &prereq_facts(args, facts), policy);
        let blocking: Vec<String> = findings
            .iter()
            .filter(|f| f.status == Status::Blocking)
            .map(ToString::to_string)
            .collect();
        if !blocking.is_empty() {
            return Err((
                format!("{step} prerequisites not met: {}", blocking.join("; ")),
                findings,
            ));
        }
        licence = match licence_switch(cat.licence_switch(level), args.license_switch) {
            Ok(s) => Some(s),
            Err(why) => return Err((why, findings)),
        };
    }
    let Some(source) = keys.iter().find_map(|k| args.sources.get(k)) else {
        return Err((
            format!(
                "no source for {step}: add `{}` (or `{}`) to sources with url or unc and sha256",
                keys[0], keys[1]
            ),
            findings,
        ));
    };
    let (location, sha256) = match (source.location(), source.checksum(true)) {
        (Ok(l), Ok(Some(h))) => (l.to_string(), h),
        (Err(e), _) | (_, Err(e)) => return Err((format!("sources[{}]: {e}", keys[0]), findings)),
        (Ok(_), Ok(None)) => {
            return Err((format!("sources[{}]: sha256 missing", keys[0]), findings));
        }
    };
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
            license_switch: licence,
        },
        findings,
    ))
}

fn level_at(cat: &Catalogue, build: Build) -> Option<&Level> {
    let entry = cat.family(build.family()?)?;
    entry.levels.iter().find(|l| l.build == build)
}

fn cu_label(cat: &Catalogue, base: Build) -> Option<String> {
    level_at(cat, base).map(|l| l.cu.clone())
}

/// The licence switch for Setup: the CU's own, or the operator's choice where the CU wants one.
fn licence_switch(rule: LicenceSwitch, given: Option<&str>) -> Result<String, String> {
    match (rule, given) {
        (LicenceSwitch::Plain(s), None) => Ok(s),
        (LicenceSwitch::Plain(s), Some(g)) if g.eq_ignore_ascii_case(&s) => Ok(s),
        (LicenceSwitch::Plain(s), Some(g)) => Err(format!(
            "license_switch `{g}` is not accepted by this CU's Setup; it takes {s}"
        )),
        (LicenceSwitch::DiagnosticData(options), Some(g)) => options
            .iter()
            .find(|o| o.eq_ignore_ascii_case(g))
            .cloned()
            .ok_or_else(|| format!("license_switch must be one of {}", options.join(", "))),
        (LicenceSwitch::DiagnosticData(options), None) => Err(format!(
            "this CU's Setup needs a diagnostic-data choice: set license_switch to one of {}",
            options.join(", ")
        )),
    }
}

fn prereq_facts(args: &Given<'_>, facts: &FactsAnswer) -> PrereqFacts {
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
        ad_prep_needed: args.ad_prepared.map(|prepared| !prepared),
        setup_account_can_prepare_ad: None,
    }
}

/// Between looks at an installer that is still running on the host.
const INSTALLER_POLL: std::time::Duration = std::time::Duration::from_secs(15);

async fn install(args: &Args, ctx: &HostCtx<'_>) -> Result<Outcome, Fail> {
    let probe = ProbeLink::new(ctx.link);
    let read = ctx.read_only(&probe);
    // An installer still running (started by a run that was cut off) must finish first:
    // starting another would fail (msiexec 1618) or, worse, install the same update twice.
    let facts = loop {
        let facts = shipped::facts(&read).await?;
        let Some(running) = facts.install_in_progress.clone() else {
            break facts;
        };
        tracing::info!(host = %ctx.host.name, "waiting for a running installer: {running}");
        let _ = ctx
            .output
            .send(crate::transport::OutputChunk::Stdout(format!(
                "an installer is still running on the host ({running}); waiting for it to finish"
            )));
        tokio::select! {
            _ = tokio::time::sleep(INSTALLER_POLL.min(ctx.timeout)) => {}
            _ = ctx.cancel.cancelled() => return Err(Fail::Module(ModuleError::Transport(crate::transport::TransportError::Cancelled))),
        }
    };
    let decision = decide_from(args, &facts)?;
    let Some(request) = decision.request.clone() else {
        return Ok(decision.outcome(false));
    };
    let step = decision.steps[0].to_string();
    let reply = shipped::call::<UpdateAnswer>(ctx, ScriptId::ExchangeUpdate, &request).await?;
    let a = reply.answer;
    let mut outcome = decision.outcome(false);
    outcome.status = if a.success {
        super::Status::done(!a.already_installed)
    } else {
        super::Status::Failed { changed: false }
    };
    outcome.msg = Some(if a.success && a.already_installed {
        format!("{step} was already installed")
    } else if a.success {
        format!(
            "installed {step} (exit code {}); {}",
            a.exit_code,
            if a.reboot_required {
                "restart required"
            } else {
                "no restart required"
            }
        )
    } else {
        format!(
            "{step} failed (exit code {}): {}",
            a.exit_code,
            a.reason
                .clone()
                .or(reply.error)
                .unwrap_or_else(|| "no reason given".into())
        )
    });
    Ok(outcome
        .with("step", step)
        .with("kb", request.kb)
        .with("target_build", request.target_build)
        .with("exit_code", a.exit_code)
        .with("log_excerpt", a.log_excerpt)
        .with("already_installed", a.already_installed)
        .with("reboot_required", a.reboot_required)
        .with("reason", json!(a.reason)))
}

#[cfg(test)]
mod tests {
    use super::super::exchange_script::testing::*;
    use super::*;
    use crate::transport::fake::FakeFleet;

    const SHA: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn fleet(
        facts_of: impl Fn() -> FactsAnswer + Send + Sync + 'static,
    ) -> std::sync::Arc<FakeFleet> {
        FakeFleet::new(move |_, s| match id(s) {
            ScriptId::ExchangeFacts => answer(&facts_of(), 0),
            ScriptId::ExchangeUpdate => answer(
                &UpdateAnswer {
                    exit_code: 3010,
                    log_excerpt: vec!["installed successfully".into()],
                    reboot_required: true,
                    success: true,
                    already_installed: false,
                    reason: None,
                },
                0,
            ),
            other => panic!("unexpected {other:?}"),
        })
    }

    async fn run(f: &std::sync::Arc<FakeFleet>, args: Value, check: bool) -> Outcome {
        let link = FakeLink::new(f);
        if check {
            with_check_ctx(&link, json!({}), async |ctx| {
                ExchangeUpdate.check(&args, ctx).await.unwrap()
            })
            .await
        } else {
            with_ctx(&link, json!({}), async |ctx| {
                ExchangeUpdate.apply(&args, ctx).await.unwrap()
            })
            .await
        }
    }

    fn installs(f: &FakeFleet) -> Vec<UpdateRequest> {
        f.commands()
            .into_iter()
            .filter(|(_, s)| id(s) == ScriptId::ExchangeUpdate)
            .map(|(_, s)| serde_json::from_value(s.args.unwrap()).unwrap())
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn check_lists_the_path_with_reasons_and_installs_nothing() {
        let f = fleet(|| facts("15.2.792.3"));
        let args = json!({"target": "path", "sources": {}});
        let o = run(&f, args, true).await;
        assert!(o.status.failed(), "no source: {o:?}");
        assert_eq!(
            o.msg.as_deref(),
            Some(
                "no source for KB5003435: add `2019 CU8 KB5003435` (or `KB5003435`) to sources \
                 with url or unc and sha256"
            )
        );
        let args = json!({"target": "path", "sources": {"2019 CU8 KB5003435": {"unc": "\\\\fs\\su.msp", "sha256": SHA}}});
        let o = run(&f, args, true).await;
        assert!(o.status.changed() && !o.status.failed(), "{o:?}");
        let msg = o.msg.unwrap();
        assert!(
            msg.starts_with("would install KB5003435 on 15.2.792.3 (closes"),
            "{msg}"
        );
        assert_eq!(o.data["steps"][0]["kind"], "SU");
        assert_eq!(o.data["remaining"], 0);
        assert!(installs(&f).is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn apply_installs_one_step_from_the_most_specific_source() {
        let f = fleet(|| facts("15.2.792.3"));
        let args = json!({"target": "path", "sources": {
            "KB5003435": {"url": "https://media/generic.msp", "sha256": SHA},
            "2019 CU8 KB5003435": {"unc": "\\\\fs\\cu8.msp", "sha256": SHA.to_uppercase()}}});
        let o = run(&f, args, false).await;
        assert!(o.status.changed() && !o.status.failed(), "{o:?}");
        assert_eq!(o.data["reboot_required"], true);
        let sent = installs(&f);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].kind, UpdateKind::Su);
        assert_eq!(sent[0].source, "\\\\fs\\cu8.msp");
        assert_eq!(sent[0].sha256, SHA);
        assert_eq!(sent[0].kb, "KB5003435");
        assert_eq!(sent[0].target_build, "15.2.792.15");
    }

    #[tokio::test(start_paused = true)]
    async fn an_su_for_another_cu_is_refused_before_anything_runs() {
        let f = fleet(|| facts("15.2.792.3"));
        let args = json!({"kb": "KB5004780", "sources": {"KB5004780": {"unc": "\\\\fs\\x.msp", "sha256": SHA}}});
        for check in [true, false] {
            let o = run(&f, args.clone(), check).await;
            assert!(o.status.failed(), "{o:?}");
            let msg = o.msg.unwrap();
            assert!(msg.contains("runs 2019 CU8 (15.2.792.3)"), "{msg}");
            assert!(msg.contains("CU9 (15.2.858.5)"), "{msg}");
        }
        assert!(installs(&f).is_empty());
    }

    #[test]
    fn a_path_su_is_refused_on_a_host_whose_cu_differs() {
        let cat = catalogue().unwrap();
        let sources = BTreeMap::new();
        let args = Given {
            sources: &sources,
            license_switch: None,
            ad_prepared: None,
            min_free_disk_gb: None,
        };
        let step = explicit_su(cat, Build::new(15, 2, 792, 3), "KB5000871")
            .unwrap()
            .unwrap();
        let on_cu7 = facts("15.2.721.2");
        let Err((why, _)) = gate(cat, &args, &on_cu7, Build::new(15, 2, 721, 2), &step) else {
            panic!("must refuse")
        };
        assert!(why.contains("refusing KB5000871"), "{why}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_pending_restart_asks_for_the_restart_and_an_installed_kb_is_nothing_to_do() {
        let f = fleet(|| FactsAnswer {
            pending_reboot: vec!["HKLM:\\...\\PendingFileRenameOperations".into()],
            ..facts("15.2.792.3")
        });
        let args = json!({"kb": "KB5000871", "sources": {"KB5000871": {"unc": "\\\\fs\\x.msp", "sha256": SHA}}});
        let o = run(&f, args.clone(), false).await;
        assert!(!o.status.failed() && !o.status.changed(), "{o:?}");
        assert!(
            o.msg.as_deref().unwrap().contains("restart is pending"),
            "{o:?}"
        );
        assert_eq!(
            o.data["reboot_required"], true,
            "the playbook's restart task takes over"
        );
        assert!(installs(&f).is_empty());
        let done = fleet(|| facts("15.2.792.10"));
        let o = run(&done, args, false).await;
        assert!(!o.status.failed() && !o.status.changed(), "{o:?}");
        assert!(installs(&done).is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_running_installer_is_waited_for_before_anything_is_installed() {
        let looks = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = std::sync::Arc::clone(&looks);
        // The first two looks see an installer still running; then it has finished.
        let f = fleet(move || FactsAnswer {
            install_in_progress: (seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 2)
                .then(|| "msiexec /update Exchange2019-KB5003435.msp".to_string()),
            ..facts("15.2.792.3")
        });
        let args = json!({"kb": "KB5003435", "sources": {"KB5003435": {"unc": "\\\\fs\\x.msp", "sha256": SHA}}});
        let started = tokio::time::Instant::now();
        let o = run(&f, args, false).await;
        assert!(o.status.changed() && !o.status.failed(), "{o:?}");
        assert_eq!(started.elapsed().as_secs(), 30, "two waits of 15 s");
        assert_eq!(installs(&f).len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_cu_waits_for_its_prerequisites_and_its_licence_choice() {
        // 2019 CU8 → CU10 explicitly, with .NET 4.7.2 (CU10 needs 4.8).
        let old_dotnet = fleet(|| FactsAnswer {
            dotnet_release: 461_808,
            ..facts("15.2.792.3")
        });
        let src =
            json!({"CU10": {"unc": "\\\\fs\\ExchangeServer2019-x64-CU10.iso", "sha256": SHA}});
        let o = run(&old_dotnet, json!({"cu": "CU10", "sources": src}), true).await;
        assert!(o.status.failed(), "{o:?}");
        assert!(o.msg.unwrap().contains("needs .NET 4.8"));
        let ready = fleet(|| facts("15.2.792.3"));
        let o = run(
            &ready,
            json!({"cu": "CU10", "sources": src, "ad_prepared": true}),
            false,
        )
        .await;
        assert!(o.status.changed() && !o.status.failed(), "{o:?}");
        let sent = installs(&ready);
        assert_eq!(sent[0].kind, UpdateKind::Cu);
        assert_eq!(
            sent[0].license_switch.as_deref(),
            Some("/IAcceptExchangeServerLicenseTerms")
        );
        assert_eq!(sent[0].target_build, "15.2.922.7");
    }

    #[test]
    fn exactly_one_goal_is_accepted() {
        let v = |a| super::super::validate_args("exchange_update", &a);
        assert!(v(json!({"target": "path"})).is_ok());
        // Mappings and booleans may come from variables: checked again once rendered.
        assert!(v(json!({"target": "path", "sources": "{{ salve_update_sources }}", "ad_prepared": "{{ x }}"})).is_ok());
        assert!(v(json!({"target": "path", "sources": "not a mapping"})).is_err());
        assert!(v(json!({"kb": "KB5000871", "cu": "CU9"})).is_err());
        assert!(v(json!({})).is_err());
        assert!(v(json!({"target": "latest"})).is_err());
        assert!(v(json!({"target": "path", "source": {}})).is_err());
    }

    #[test]
    fn licence_switches_follow_the_cu() {
        let plain = LicenceSwitch::Plain("/IAcceptExchangeServerLicenseTerms".into());
        assert!(licence_switch(plain.clone(), None).is_ok());
        assert!(
            licence_switch(
                plain,
                Some("/IAcceptExchangeServerLicenseTerms_DiagnosticDataON")
            )
            .is_err()
        );
        let dd = LicenceSwitch::DiagnosticData(vec!["/A_ON".into(), "/A_OFF".into()]);
        assert!(
            licence_switch(dd.clone(), None)
                .unwrap_err()
                .contains("/A_ON, /A_OFF")
        );
        assert_eq!(licence_switch(dd, Some("/a_off")).unwrap(), "/A_OFF");
    }
}
