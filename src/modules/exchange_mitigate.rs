//! `exchange_mitigate`: the EOMT URL Rewrite mitigation for CVE-2021-26855 (shipped script
//! `exchange_mitigate`).
//!
//! ```yaml
//! - exchange_mitigate:
//!     state: present            # or absent
//!     rewrite_msi:              # only needed where the URL Rewrite module is missing
//!       unc: \\fs01\media\rewrite_amd64_en-US.msi
//!       sha256: 37342f...
//!     force: false              # absent: remove even though the build is not verified fixed
//! ```
//!
//! `check` reads the host's facts and says whether the rules (or the URL Rewrite module) would
//! change; `apply` changes them. `absent` removes the mitigation only when the host's ExSetup
//! build is assessed as no longer ProxyLogon-vulnerable, unless `force: true`: taking the
//! mitigation off an unpatched server re-opens it. It never fights the Emergency Mitigation
//! service: a mitigation EEMS applied counts as present, and `absent` refuses to remove it (EEMS
//! would re-apply it) and says how to block it first.

use serde::Deserialize;
use serde_json::Value;

use super::exchange_facts::{EOMT_RULES, assessment, is_mitigated};
use super::exchange_script::{self as shipped, Fail, PackageSource, Rendered};
use super::spec::{
    Action, Counting, Effect, Estimate, Foresight, ModuleSpec, Pair, PairKind, Provides, Reason,
};
use super::{CheckCtx, HostCtx, Module, ModuleError, Outcome, ProbeLink};
use crate::contract::{FactsAnswer, MitigateAction, MitigateAnswer, MitigateRequest, ScriptId};
use crate::exchange::catalogue::catalogue;
use crate::exchange::mitigation::same_eems_id;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Present,
    Absent,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    state: State,
    #[serde(default)]
    rewrite_msi: Option<Rendered<PackageSource>>,
    #[serde(default)]
    force: Option<Rendered<bool>>,
}

pub struct ExchangeMitigate;

/// What `exchange_mitigate` is, for the module table.
pub const SPEC: ModuleSpec = ModuleSpec {
    name: "exchange_mitigate",
    module: &ExchangeMitigate,
    validate: super::args::validator::<Args>,
    effect: Effect::ChangesHosts,
    reboots: false,
    estimate: Estimate::Seconds(300),
    action: Action::TaskName,
    reason: Reason::Check,
    foresight: Foresight::Predicts,
    counting: Counting::Paired(Pair {
        undo_state: "absent",
        kind: PairKind::StopGap,
        reason: "remove the mitigation once the server is verified fixed (refused otherwise)",
    }),
    provides: Provides::Nothing,
};

#[async_trait::async_trait]
impl Module for ExchangeMitigate {
    async fn check(&self, args: &Value, ctx: &CheckCtx<'_>) -> Result<Outcome, ModuleError> {
        let args: Args = shipped::args(args)?;
        shipped::finish(plan(&args, ctx).await.map(|p| p.outcome()))
    }

    async fn apply(&self, args: &Value, ctx: &HostCtx<'_>) -> Result<Outcome, ModuleError> {
        let args: Args = shipped::args(args)?;
        shipped::finish(apply(&args, ctx).await)
    }
}

/// What the module would do on this host.
struct Plan {
    request: MitigateRequest,
    /// Why it would change, `None` when nothing would.
    change: Option<String>,
    /// Why it refuses, `None` when it may go ahead.
    refusal: Option<String>,
}

impl Plan {
    fn outcome(&self) -> Outcome {
        match (&self.refusal, &self.change) {
            (Some(why), _) => Outcome::failed(why.clone()),
            (None, Some(why)) => Outcome::changed().with_msg(why.clone()),
            (None, None) => Outcome::ok().with_msg("nothing to change"),
        }
    }
}

async fn plan(args: &Args, ctx: &CheckCtx<'_>) -> Result<Plan, Fail> {
    let (source, sha256) = match &args.rewrite_msi {
        Some(s) => (
            Some(
                s.get("rewrite_msi")?
                    .location()
                    .map_err(arg_error)?
                    .to_string(),
            ),
            s.get("rewrite_msi")?.checksum(false).map_err(arg_error)?,
        ),
        None => (None, None),
    };
    let force = match &args.force {
        Some(f) => *f.get("force")?,
        None => false,
    };
    let request = MitigateRequest {
        action: match args.state {
            State::Present => MitigateAction::Apply,
            State::Absent => MitigateAction::Remove,
        },
        rewrite_msi_source: source,
        rewrite_msi_sha256: sha256,
    };
    let facts = shipped::facts(ctx).await?;
    let (change, refusal) = match args.state {
        State::Present => present(&facts, &request),
        State::Absent => absent(&facts, force)?,
    };
    Ok(Plan {
        request,
        change,
        refusal,
    })
}

fn arg_error(e: shipped::SourceError) -> Fail {
    Fail::Module(ModuleError::Args(format!("rewrite_msi: {e}")))
}

fn present(facts: &FactsAnswer, req: &MitigateRequest) -> (Option<String>, Option<String>) {
    if is_mitigated(facts) {
        return (None, None);
    }
    let missing: Vec<&str> = EOMT_RULES
        .iter()
        .copied()
        .filter(|r| !facts.mitigation_rules.iter().any(|x| x == r))
        .collect();
    let rules = format!("add rewrite rules: {}", missing.join(", "));
    match (&facts.url_rewrite, &req.rewrite_msi_source) {
        (Some(_), _) => (Some(rules), None),
        // The install runs in the WinRM session: its network logon cannot read a share.
        (None, Some(src)) if src.starts_with("\\\\") => (
            None,
            Some(format!(
                "the IIS URL Rewrite module is not installed and rewrite_msi is on a file share \
                 ({src}), which the WinRM session cannot read: its network logon holds no \
                 credentials for another machine (the double hop); give rewrite_msi as a url: \
                 the server can download"
            )),
        ),
        (None, Some(src)) => (
            Some(format!(
                "install the IIS URL Rewrite module from {src}; {rules}"
            )),
            None,
        ),
        (None, None) => (
            None,
            Some(
                "the IIS URL Rewrite module is not installed: give rewrite_msi (url or unc of \
                 rewrite_amd64_<lang>.msi, and its sha256)"
                    .into(),
            ),
        ),
    }
}

/// The EEMS id under which the Emergency Mitigation service applied the CVE-2021-26855
/// mitigation (the catalogue's `eems_id` for it), if it did.
fn applied_by_eems(facts: &FactsAnswer) -> Option<String> {
    let cat = catalogue().ok()?;
    let cve = "CVE-2021-26855".parse().ok()?;
    let declared = cat
        .mitigations_for(cve)
        .find_map(|m| m.eems_id.as_deref())?;
    let eems = facts.config.as_ref()?.emergency_mitigation.as_ref()?;
    eems.applied
        .iter()
        .find(|id| same_eems_id(id, declared))
        .cloned()
}

fn absent(facts: &FactsAnswer, force: bool) -> Result<(Option<String>, Option<String>), Fail> {
    // Never fight EEMS: it would put its mitigation back. Blocking it is the admin's decision.
    if let Some(id) = applied_by_eems(facts) {
        return Ok((
            None,
            Some(format!(
                "refusing to remove the mitigation: the Emergency Mitigation service applied {id} \
                 and would apply it again; block it first (Set-ExchangeServer -Identity \
                 {server} -MitigationsBlocked @{{Add=\"{id}\"}}), then remove it",
                server = facts.computer_name
            )),
        ));
    }
    let present: Vec<&String> = facts
        .mitigation_rules
        .iter()
        .filter(|r| EOMT_RULES.contains(&r.as_str()))
        .collect();
    if present.is_empty() {
        return Ok((None, None));
    }
    let change = Some(format!(
        "remove rewrite rules: {}",
        present
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    if force {
        return Ok((change, None));
    }
    let refusal = match assessment(facts)? {
        None => Some(
            "refusing to remove the mitigation: the build could not be read (ExSetup.exe \
             missing); use force: true to remove it anyway"
                .to_string(),
        ),
        Some(a) if a.proxylogon_vulnerable => Some(format!(
            "refusing to remove the mitigation: build {} is still ProxyLogon-vulnerable (path: \
             {}); patch first, or use force: true",
            a.build, a.path_display
        )),
        Some(_) => None,
    };
    Ok((change, refusal))
}

async fn apply(args: &Args, ctx: &HostCtx<'_>) -> Result<Outcome, Fail> {
    let probe = ProbeLink::new(ctx.link);
    let plan = plan(args, &ctx.read_only(&probe)).await?;
    if plan.refusal.is_some() || plan.change.is_none() {
        return Ok(plan.outcome());
    }
    let reply =
        shipped::call::<MitigateAnswer>(ctx, ScriptId::ExchangeMitigate, &plan.request).await?;
    let a = &reply.answer;
    let mut outcome = if a.success {
        Outcome::done(a.changed).with_msg(plan.change.unwrap_or_default())
    } else {
        Outcome::failed(
            a.reason
                .clone()
                .or(reply.error.clone())
                .unwrap_or_else(|| format!("exchange_mitigate exited with {}", reply.exit_code)),
        )
        .having_changed(a.changed)
    };
    outcome = outcome
        .with("url_rewrite_installed", a.url_rewrite_installed)
        .with("rules_present", a.rules_present.clone())
        .with("reboot_required", a.reboot_required);
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::super::exchange_script::testing::*;
    use super::*;
    use crate::transport::fake::FakeFleet;
    use serde_json::json;

    fn fleet(build: &'static str, rules: bool, rewrite: bool) -> std::sync::Arc<FakeFleet> {
        FakeFleet::new(move |_, s| match id(s) {
            ScriptId::ExchangeFacts => {
                let mut f = facts(build);
                if rules {
                    f.mitigation_rules = EOMT_RULES.iter().map(|r| r.to_string()).collect();
                }
                if !rewrite {
                    f.url_rewrite = None;
                }
                answer(&f, 0)
            }
            ScriptId::ExchangeMitigate => {
                let req: MitigateRequest = serde_json::from_value(s.args.clone().unwrap()).unwrap();
                let present = req.action == MitigateAction::Apply;
                answer(
                    &MitigateAnswer {
                        changed: true,
                        success: true,
                        reason: None,
                        url_rewrite_installed: true,
                        rules_present: if present {
                            EOMT_RULES.iter().map(|r| r.to_string()).collect()
                        } else {
                            Vec::new()
                        },
                        reboot_required: false,
                    },
                    0,
                )
            }
            other => panic!("unexpected {other:?}"),
        })
    }

    async fn run(f: &std::sync::Arc<FakeFleet>, args: Value, check: bool) -> Outcome {
        let link = FakeLink::new(f);
        if check {
            with_check_ctx(&link, json!({}), async |ctx| {
                ExchangeMitigate.check(&args, ctx).await.unwrap()
            })
            .await
        } else {
            with_ctx(&link, json!({}), async |ctx| {
                ExchangeMitigate.apply(&args, ctx).await.unwrap()
            })
            .await
        }
    }

    fn mitigations_run(f: &FakeFleet) -> usize {
        f.commands()
            .iter()
            .filter(|(_, s)| id(s) == ScriptId::ExchangeMitigate)
            .count()
    }

    #[tokio::test(start_paused = true)]
    async fn check_says_what_would_change_and_changes_nothing() {
        let f = fleet("15.2.792.3", false, true);
        let o = run(&f, json!({"state": "present"}), true).await;
        assert!(o.status.changed() && !o.status.failed(), "{o:?}");
        assert!(o.msg.unwrap().contains("X-BEResource Abort - inbound"));
        assert_eq!(mitigations_run(&f), 0);
        let o = run(&f, json!({"state": "present"}), false).await;
        assert!(o.status.changed() && !o.status.failed(), "{o:?}");
        assert_eq!(mitigations_run(&f), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn present_without_url_rewrite_needs_a_source_with_a_valid_hash() {
        let f = fleet("15.2.792.3", false, false);
        let o = run(&f, json!({"state": "present"}), false).await;
        assert!(o.status.failed() && o.msg.unwrap().contains("rewrite_msi"));
        let link = FakeLink::new(&f);
        let bad =
            json!({"state": "present", "rewrite_msi": {"unc": "\\\\fs\\r.msi", "sha256": "12"}});
        let e = with_ctx(&link, json!({}), async |ctx| {
            ExchangeMitigate.apply(&bad, ctx).await.unwrap_err()
        })
        .await;
        assert!(e.to_string().contains("sha256"), "{e}");
        // A share is beyond the WinRM session's reach (the double hop): refused with the fix.
        let share = json!({"state": "present", "rewrite_msi": {"unc": "\\\\fs\\r.msi", "sha256": "ab".repeat(32)}});
        let o = run(&f, share, false).await;
        assert!(o.status.failed(), "{o:?}");
        assert!(o.msg.unwrap().contains("double hop"));
        let good = json!({"state": "present", "rewrite_msi": {"url": "https://media.contoso.test/r.msi", "sha256": "ab".repeat(32)}});
        let o = run(&f, good, false).await;
        assert!(!o.status.failed(), "{o:?}");
        let (_, sent) = f.commands().into_iter().last().unwrap();
        assert_eq!(sent.args.unwrap()["rewrite_msi_sha256"], "ab".repeat(32));
    }

    #[tokio::test(start_paused = true)]
    async fn absent_is_refused_on_a_vulnerable_build_unless_forced() {
        let f = fleet("15.2.792.3", true, true);
        let o = run(&f, json!({"state": "absent"}), false).await;
        assert!(o.status.failed(), "{o:?}");
        assert!(o.msg.unwrap().contains("still ProxyLogon-vulnerable"));
        assert_eq!(mitigations_run(&f), 0);
        let o = run(&f, json!({"state": "absent", "force": true}), false).await;
        assert!(o.status.changed() && !o.status.failed(), "{o:?}");
        let fixed = fleet("15.2.792.15", true, true);
        let o = run(&fixed, json!({"state": "absent"}), false).await;
        assert!(o.status.changed() && !o.status.failed(), "{o:?}");
        assert_eq!(o.data["rules_present"], json!([]));
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_to_do_is_ok_without_running_the_script() {
        let f = fleet("15.2.792.3", true, true);
        let o = run(&f, json!({"state": "present"}), false).await;
        assert!(!o.status.changed() && !o.status.failed(), "{o:?}");
        assert_eq!(mitigations_run(&f), 0);
    }
}
