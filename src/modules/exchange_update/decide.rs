//! The decision for one call, made from the host's facts alone (so `check` and `apply` decide
//! alike): the steps still to take, whether the next may be installed now and with which
//! request, and the outcome that reports it (its `steps` are [`Step`]s, which the plan reads
//! back).

use std::collections::BTreeMap;

use serde_json::Value;

use super::super::exchange_facts::{assessment, build_of};
use super::super::exchange_script::{self as shipped, Fail};
use super::super::{CheckCtx, ModuleError, Outcome};
use super::adprep::with_preparation;
use super::args::{Args, Want};
use super::gate::{Given, gate};
use super::resolve::{explicit_cu, explicit_su};
use crate::contract::{FactsAnswer, UpdateRequest};
use crate::exchange::build::Build;
use crate::exchange::catalogue::catalogue;
use crate::exchange::path::Step;
use crate::exchange::prereq::{Finding, Status};

/// The decision for this call, made from facts alone.
#[derive(Debug)]
pub(super) struct Decision {
    /// Steps still to take, the next first.
    pub(super) steps: Vec<Step>,
    /// The request for the next step, when it may go ahead.
    pub(super) request: Option<UpdateRequest>,
    /// Why nothing can be installed now, `None` when it can (or nothing is needed).
    refusal: Option<String>,
    prerequisites: Vec<Finding>,
    build: Build,
    /// A restart is pending (markers): the next step waits for it, and the playbook's restart
    /// task takes it, rather than the host failing.
    restart_first: Option<String>,
}

impl Decision {
    pub(super) fn outcome(&self, check: bool) -> Outcome {
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

pub(super) async fn decide(args: &Args, ctx: &CheckCtx<'_>) -> Result<Decision, Fail> {
    let facts = shipped::facts(ctx).await?;
    decide_from(args, &facts, Reach::of(ctx.host, ctx.run_as))
}

/// What the host's steps can fetch packages from, besides a URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Reach {
    /// Detached steps run under a `become` account (a share is readable), not as SYSTEM.
    pub network_credentials: bool,
    /// The host has a `salve_package_server` for `serve:` sources.
    pub package_server: bool,
    /// The host reads shares with an account of its own (`salve_share_username`).
    pub share_account: bool,
}

impl Reach {
    pub fn of(host: &crate::model::Host, run_as: Option<&crate::model::run_as::RunAs>) -> Self {
        Reach {
            network_credentials: run_as.is_some(),
            package_server: host.settings.package_server.is_some(),
            share_account: host.settings.share_account.is_some(),
        }
    }
}

/// Decide from `facts`, with what the host can fetch from.
pub(super) fn decide_from(
    args: &Args,
    facts: &FactsAnswer,
    reach: Reach,
) -> Result<Decision, Fail> {
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
            Err(why) => return Ok(refuse(build, why.to_string())),
        },
        Want::Cu(cu) => match explicit_cu(cat, build, cu) {
            Ok(step) => step.into_iter().collect(),
            Err(why) => return Ok(refuse(build, why.to_string())),
        },
    };
    let steps = with_preparation(cat, facts, steps);
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
        keep_packages: args.keep_packages,
        network_credentials: reach.network_credentials,
        package_server: reach.package_server,
        share_account: reach.share_account,
    };
    match gate(cat, &given, facts, build, &next) {
        Ok((request, findings)) => {
            decision.request = Some(request);
            decision.prerequisites = findings;
        }
        Err((why, findings)) => {
            decision.refusal = Some(why.to_string());
            decision.prerequisites = findings;
        }
    }
    Ok(decision)
}
