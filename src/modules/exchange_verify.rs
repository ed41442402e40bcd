//! `exchange_verify`: check a server after an update (shipped script `exchange_verify`).
//! Read-only, so check mode runs it too, through the probe.
//!
//! ```yaml
//! - exchange_verify:
//!     expected_build: 15.2.792.15   # or `fixed: true`: no CVE an update would close is open
//!                                   # at the build read
//!     expected_kb: KB5003435
//!     allow_pending_reboot: false
//! ```
//!
//! Fails, listing every reason, unless: the ExSetup build equals `expected_build` (compared as
//! numbers), the KB is listed as installed, no Exchange service is Disabled and every Automatic
//! one runs, every component is Active except ForwardSyncDaemon and ProvisioningRps, OWA on the
//! server answers 200, no restart is pending, and with `fixed: true` the build's assessment has
//! no tracked CVE open.
//!
//! In check mode the same reasons are reported without failing the task: the earlier tasks'
//! changes (the update, the restart) were not made, so an unpatched server cannot pass yet, and
//! failing it would stop the check of the rest of the playbook (and of the next DAG member).

use serde::Deserialize;
use serde_json::Value;

use super::exchange_script::{self as shipped, Fail, Rendered};
use super::spec::ModuleSpec;
use super::{CheckCtx, HostCtx, Module, ModuleError, Outcome, ProbeLink};
use crate::contract::{ReadOnlyId, VerifyAnswer, VerifyRequest};
use crate::exchange::assess;
use crate::exchange::build::Build;
use crate::exchange::catalogue::catalogue;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    #[serde(default)]
    expected_build: Option<String>,
    #[serde(default)]
    expected_kb: Option<String>,
    #[serde(default)]
    fixed: Option<Rendered<bool>>,
    #[serde(default)]
    allow_pending_reboot: Option<Rendered<bool>>,
}

pub struct ExchangeVerify;

/// What `exchange_verify` is, for the module table.
pub const SPEC: ModuleSpec = ModuleSpec {
    manages_exchange: true,
    ..ModuleSpec::read_only(
        "exchange_verify",
        &ExchangeVerify,
        super::args::validator::<Args>,
    )
};

#[async_trait::async_trait]
impl Module for ExchangeVerify {
    async fn check(&self, args: &Value, ctx: &CheckCtx<'_>) -> Result<Outcome, ModuleError> {
        shipped::finish(verify(&parse(args)?, ctx, false).await)
    }

    async fn apply(&self, args: &Value, ctx: &HostCtx<'_>) -> Result<Outcome, ModuleError> {
        let args = parse(args)?;
        let probe = ProbeLink::new(ctx.link);
        shipped::finish(verify(&args, &ctx.read_only(&probe), true).await)
    }
}

fn parse(args: &Value) -> Result<Args, ModuleError> {
    let args: Args = shipped::args(args)?;
    if let Some(b) = &args.expected_build {
        b.parse::<Build>()
            .map_err(|e| ModuleError::Args(format!("expected_build: {e}")))?;
    }
    Ok(args)
}

/// Verify the server; `strict` fails the task on any reason (apply), otherwise the reasons are
/// only reported (check).
async fn verify(args: &Args, ctx: &CheckCtx<'_>, strict: bool) -> Result<Outcome, Fail> {
    let request = VerifyRequest {
        expected_build: args.expected_build.clone(),
        expected_kb: args.expected_kb.clone(),
    };
    let reply = shipped::read::<VerifyAnswer>(ctx, ReadOnlyId::ExchangeVerify, &request).await?;
    let a = reply.answer;
    let flag = |f: &Option<Rendered<bool>>, name: &str| match f {
        Some(r) => r.get(name).copied(),
        None => Ok(false),
    };
    let checks = Checks {
        expected_build: args.expected_build.as_deref(),
        expected_kb: args.expected_kb.as_deref(),
        fixed: flag(&args.fixed, "fixed")?,
        allow_pending_reboot: flag(&args.allow_pending_reboot, "allow_pending_reboot")?,
    };
    let reasons = reasons(&checks, &a);
    let outcome = if reasons.is_empty() {
        Outcome::ok().with_msg(format!(
            "verified: build {}, services running, components active, OWA 200",
            a.build.as_deref().unwrap_or("?")
        ))
    } else if strict {
        Outcome::failed(reasons.join("; "))
    } else {
        Outcome::ok().with_msg(format!(
            "not verified as the server stands (check mode made no changes): {}",
            reasons.join("; ")
        ))
    };
    let mut outcome = outcome.with("reasons", reasons);
    if let Ok(Value::Object(map)) = serde_json::to_value(&a) {
        outcome.data.extend(map);
    }
    Ok(outcome)
}

/// The rendered expectations.
struct Checks<'a> {
    expected_build: Option<&'a str>,
    expected_kb: Option<&'a str>,
    fixed: bool,
    allow_pending_reboot: bool,
}

fn reasons(args: &Checks<'_>, a: &VerifyAnswer) -> Vec<String> {
    let mut out = Vec::new();
    let build = a.build.as_deref().and_then(|b| b.parse::<Build>().ok());
    match (&a.build, build) {
        (None, _) => out.push("ExSetup.exe is missing: setup did not complete".to_string()),
        (Some(b), None) => out.push(format!("build `{b}` is not a build number")),
        (Some(_), Some(_)) => {}
    }
    if let (Some(want), Some(have)) = (args.expected_build, build) {
        // Compared as numbers, whatever the host's script thought.
        if want.parse::<Build>().ok() != Some(have) {
            out.push(format!("build is {have}, expected {want}"));
        }
    }
    if a.kb_present == Some(false) {
        out.push(format!(
            "{} is not listed as installed",
            args.expected_kb.unwrap_or("the KB")
        ));
    }
    if !a.disabled_services.is_empty() {
        out.push(format!(
            "services Disabled (an update left them so; ServiceControl.ps1 AfterPatch restores \
             them): {}",
            a.disabled_services.join(", ")
        ));
    }
    if !a.stopped_automatic_services.is_empty() {
        out.push(format!(
            "Automatic services not running: {}",
            a.stopped_automatic_services.join(", ")
        ));
    }
    if !a.inactive_components.is_empty() {
        out.push(format!(
            "components not Active: {}",
            a.inactive_components.join(", ")
        ));
    }
    if !a.owa_healthy() {
        let hint = if a.owa_status == 500 {
            " (HTTP 500 after an SU usually means it ran without elevation: re-run it elevated \
             and restart)"
        } else {
            ""
        };
        out.push(format!(
            "OWA answered {}{}{hint}",
            a.owa_status,
            a.owa_error
                .as_deref()
                .map_or(String::new(), |e| format!(": {e}"))
        ));
    }
    if !args.allow_pending_reboot && !a.pending_reboot.is_empty() {
        out.push(format!(
            "a restart is pending: {}",
            a.pending_reboot.join(", ")
        ));
    }
    if args.fixed
        && let Some(have) = build
        && let Ok(cat) = catalogue()
    {
        let assessed = assess::assess(cat, have, &assess::Facts::default());
        // Fixed by build: what an update can close. CVEs whose protection is configuration
        // (e.g. Extended Protection for CVE-2024-21410 on 2016) are the assessment's to report.
        if !assessed.open_by_build.is_empty() {
            let open: Vec<String> = assessed
                .open_by_build
                .iter()
                .map(ToString::to_string)
                .collect();
            out.push(format!("{have} still leaves open: {}", open.join(", ")));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::exchange_script::testing::*;
    use super::*;
    use crate::contract::ScriptId;
    use crate::transport::fake::FakeFleet;
    use serde_json::json;

    fn good() -> VerifyAnswer {
        VerifyAnswer {
            build: Some("15.2.1748.49".into()),
            build_matches: Some(true),
            kb_present: Some(true),
            disabled_services: Vec::new(),
            stopped_automatic_services: Vec::new(),
            inactive_components: Vec::new(),
            owa_status: 200,
            owa_error: None,
            owa_location: None,
            pending_reboot: Vec::new(),
            success: true,
        }
    }

    fn fleet(a: VerifyAnswer) -> std::sync::Arc<FakeFleet> {
        FakeFleet::new(move |_, s| {
            assert_eq!(id(s), ScriptId::ExchangeVerify);
            answer(&a, i32::from(!a.success))
        })
    }

    async fn run(a: VerifyAnswer, args: Value) -> Outcome {
        let link = FakeLink::new(&fleet(a));
        with_ctx(&link, json!({}), async |ctx| {
            ExchangeVerify.apply(&args, ctx).await.unwrap()
        })
        .await
    }

    #[tokio::test(start_paused = true)]
    async fn check_reports_the_reasons_without_failing() {
        let unpatched = VerifyAnswer {
            build: Some("15.2.792.3".into()),
            ..good()
        };
        let link = FakeLink::new(&fleet(unpatched));
        let o = with_check_ctx(&link, json!({}), async |ctx| {
            ExchangeVerify
                .check(&json!({"fixed": true}), ctx)
                .await
                .unwrap()
        })
        .await;
        assert!(!o.status.failed() && !o.status.changed(), "{o:?}");
        let msg = o.msg.unwrap();
        assert!(
            msg.starts_with("not verified as the server stands"),
            "{msg}"
        );
        assert!(msg.contains("CVE-2021-26855"), "{msg}");
        assert_eq!(o.data["reasons"].as_array().unwrap().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_healthy_patched_server_passes() {
        let o = run(
            good(),
            json!({"expected_build": "15.02.1748.049", "fixed": true}),
        )
        .await;
        assert!(!o.status.failed() && !o.status.changed(), "{o:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn every_problem_is_a_reason() {
        let bad = VerifyAnswer {
            build: Some("15.2.792.3".into()),
            disabled_services: vec!["MSExchangeIS".into()],
            owa_status: 500,
            owa_error: Some("Could not load file or assembly".into()),
            owa_location: None,
            pending_reboot: vec!["PendingFileRenameOperations".into()],
            success: false,
            ..good()
        };
        let o = run(bad, json!({"expected_build": "15.2.792.15", "fixed": true})).await;
        assert!(o.status.failed());
        let reasons = o.data["reasons"].as_array().unwrap();
        assert_eq!(reasons.len(), 5, "{reasons:?}");
        let msg = o.msg.unwrap();
        for part in [
            "expected 15.2.792.15",
            "Disabled",
            "OWA answered 500",
            "restart is pending",
            "CVE-2021-26855",
        ] {
            assert!(msg.contains(part), "{part}: {msg}");
        }
    }
}
