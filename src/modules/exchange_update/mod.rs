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
//! **One step per call, or the whole path with `walk: true`.** Each call re-reads the host's
//! facts, works out the next step (the first step of the assessed path, or the explicit
//! `kb`/`cu`) and installs only that one; `reboot_required` and `remaining` in the result say
//! whether to restart and call again. With `target: path` and `walk: true` ([`walk`]) the task
//! does that itself, restarting between steps (`poll_interval` as the `reboot` module's) and
//! re-reading the facts after each, until the path is walked: any length, .NET steps included.
//! The plan lists every step of the path for that one task; a re-run resumes where the server
//! stands.
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
//! - a .NET step installs that version's offline installer (source labelled `.NET 4.8` or
//!   `NDP48`); Exchange 2010 rollup steps are reported, not installed.
//!
//! - AD preparation ([`adprep`]): a forest behind the path's newest CU gets one
//!   `/PrepareSchema` + `/PrepareAD` step before the first CU, from the CU's media, under the
//!   `become` account; other servers then find the forest prepared.
//!
//! The parts: [`args`] (the arguments as written), [`resolve`] (an explicit `kb:`/`cu:` against
//! the catalogue), [`gate`] (the rules above), [`decide`] (the decision from facts, and the
//! outcome that reports it), [`install`] (the install itself), [`walk`] (the whole path).

mod adprep;
mod args;
mod decide;
mod gate;
mod install;
mod resolve;
mod walk;

use serde_json::Value;

use args::Args;

use super::exchange_script as shipped;
use super::spec::{Action, Counting, Effect, Estimate, Foresight, ModuleSpec, Provides, Reason};
use super::{CheckCtx, HostCtx, Module, ModuleError, Outcome};

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
    manages_exchange: true,
};

#[async_trait::async_trait]
impl Module for ExchangeUpdate {
    async fn check(&self, args: &Value, ctx: &CheckCtx<'_>) -> Result<Outcome, ModuleError> {
        let args: Args = shipped::args(args)?;
        let walks = walks(&args)?;
        shipped::finish(
            decide::decide(&args, ctx)
                .await
                .map(|d| d.outcome(true).with("walk", walks)),
        )
    }

    async fn apply(&self, args: &Value, ctx: &HostCtx<'_>) -> Result<Outcome, ModuleError> {
        let args: Args = shipped::args(args)?;
        if walks(&args)? {
            shipped::finish(walk::walk(&args, ctx).await)
        } else {
            shipped::finish(install::install(&args, ctx).await)
        }
    }
}

/// Whether this call walks the whole path (`walk: true`).
fn walks(args: &Args) -> Result<bool, ModuleError> {
    args.walk
        .as_ref()
        .map_or(Ok(false), |w| w.get("walk").copied())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::exchange_script::testing::*;
    use super::*;
    use crate::contract::{FactsAnswer, ScriptId, UpdateAnswer, UpdateKind, UpdateRequest};
    use crate::transport::fake::FakeFleet;

    const SHA: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn fleet(
        facts_of: impl Fn() -> FactsAnswer + Send + Sync + 'static,
    ) -> std::sync::Arc<FakeFleet> {
        FakeFleet::new(move |_, s| match id(s) {
            ScriptId::ExchangeFacts => answer(&facts_of(), 0),
            ScriptId::JobControl | ScriptId::JobPoll => job(
                s,
                &UpdateAnswer {
                    exit_code: 3010,
                    log_excerpt: vec!["installed successfully".into()],
                    reboot_required: true,
                    success: true,
                    already_installed: false,
                    reason: None,
                },
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
            .filter_map(|(_, s)| job_script(&s))
            .inspect(|inner| assert_eq!(id(inner), ScriptId::ExchangeUpdate))
            .map(|inner| serde_json::from_value(inner.args.unwrap()).unwrap())
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn check_lists_the_path_with_reasons_and_installs_nothing() {
        let f = fleet(|| facts("15.2.1544.41"));
        let args = json!({"target": "path", "sources": {}});
        let o = run(&f, args, true).await;
        assert!(o.status.failed(), "no source: {o:?}");
        assert_eq!(
            o.msg.as_deref(),
            Some(
                "no source for KB5121575: add `2019 CU14 KB5121575` (or `KB5121575`) to sources \
                 with url or unc and sha256"
            )
        );
        let args = json!({"target": "path", "sources": {"2019 CU14 KB5121575": {"unc": "\\\\fs\\su.msp", "sha256": SHA}}});
        let o = run(&f, args, true).await;
        assert!(o.status.changed() && !o.status.failed(), "{o:?}");
        let msg = o.msg.unwrap();
        assert!(
            msg.starts_with("would install KB5121575 on 15.2.1544.41 (closes"),
            "{msg}"
        );
        assert_eq!(o.data["steps"][0]["kind"], "SU");
        assert_eq!(o.data["remaining"], 0);
        assert!(installs(&f).is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn apply_installs_one_step_from_the_most_specific_source() {
        let f = fleet(|| facts("15.2.1544.41"));
        let args = json!({"target": "path", "sources": {
            "KB5121575": {"url": "https://media/generic.msp", "sha256": SHA},
            "2019 CU14 KB5121575": {"unc": "\\\\fs\\cu14.msp", "sha256": SHA.to_uppercase()}}});
        let o = run(&f, args, false).await;
        assert!(o.status.changed() && !o.status.failed(), "{o:?}");
        assert_eq!(o.data["reboot_required"], true);
        let sent = installs(&f);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].kind, UpdateKind::Su);
        assert_eq!(sent[0].source, "\\\\fs\\cu14.msp");
        assert_eq!(sent[0].sha256, SHA);
        assert_eq!(sent[0].kb, "KB5121575");
        assert_eq!(sent[0].target_build, "15.2.1544.44");
        assert!(!sent[0].keep_packages, "packages are removed by default");
    }

    #[tokio::test(start_paused = true)]
    async fn keep_packages_reaches_the_host() {
        let f = fleet(|| facts("15.2.792.3"));
        let args = json!({"kb": "KB5000871", "keep_packages": true,
            "sources": {"KB5000871": {"unc": "\\\\fs\\x.msp", "sha256": SHA}}});
        let o = run(&f, args, false).await;
        assert!(!o.status.failed(), "{o:?}");
        assert!(installs(&f)[0].keep_packages);
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
}
