//! `exchange_mitigate`: EOMT's interim URL Rewrite mitigations, chosen from the catalogue
//! (shipped script `exchange_mitigate`).
//!
//! ```yaml
//! - exchange_mitigate:
//!     state: present            # or absent
//!     mitigations: [eomt-cve-2026-42897]   # optional: the catalogue's ids; default below
//!     rewrite_msi:              # only needed where the URL Rewrite module is missing
//!       url: https://media.contoso.com/rewrite_amd64_en-US.msi
//!       sha256: 37342f...
//!     force: false              # absent: remove even though a CVE it covers is still open
//! ```
//!
//! Without `mitigations`, `present` applies every mitigation the server's assessment calls for:
//! those covering a CVE open by build that are in place neither by their rules nor by the
//! Emergency Mitigation service (EEMS). Today that is EOMT's two inbound rules for
//! CVE-2021-26855 (ProxyLogon) and its OWA outbound Content-Security-Policy rule for
//! CVE-2026-42897 (the interim protection for servers that cannot take the June 2026 SU yet).
//! `absent` removes those present whose every CVE is fixed by build, and leaves the ones
//! Microsoft asks to keep after the fix (the CVE-2026-42897 rule) unless they are named.
//! Taking a mitigation off a server still open to its CVE is refused unless `force: true`. It
//! never fights EEMS: a mitigation EEMS applied counts as present, and removing it is refused
//! (EEMS would put it back) with how to block it first.
//!
//! `check` reads the host's facts and says what would change; `apply` changes it.

use serde::Deserialize;
use serde_json::Value;

use super::detached;
use super::exchange_facts::{assessment, configuration};
use super::exchange_script::{self as shipped, Fail, PackageSource, Rendered};
use super::spec::{
    Action, Counting, Effect, Estimate, Foresight, ModuleSpec, Pair, PairKind, Provides, Reason,
};
use super::{CheckCtx, HostCtx, Module, ModuleError, Outcome, ProbeLink};
use crate::contract::{
    FactsAnswer, MitigateAction, MitigateAnswer, MitigateRequest, MitigationId, ScriptId,
};
use crate::exchange::assess::Assessment;
use crate::exchange::catalogue::{Mitigation, Removal, catalogue};
use crate::exchange::mitigation::{self, Applied, MitigationFacts, same_eems_id};

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
    mitigations: Option<Rendered<Vec<String>>>,
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
    manages_exchange: true,
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
    /// What it leaves alone on purpose, and why.
    notes: Vec<String>,
    /// The step installs the IIS URL Rewrite module (msiexec).
    installs_rewrite: bool,
}

impl Plan {
    fn outcome(&self) -> Outcome {
        match (&self.refusal, &self.change) {
            (Some(why), _) => Outcome::failed(why.clone()),
            (None, Some(why)) => Outcome::changed().with_msg(self.with_notes(why)),
            (None, None) => Outcome::ok().with_msg(self.with_notes("nothing to change")),
        }
    }

    /// `msg`, followed by what is left alone on purpose.
    fn with_notes(&self, msg: &str) -> String {
        if self.notes.is_empty() {
            msg.to_owned()
        } else {
            format!("{msg}; {}", self.notes.join("; "))
        }
    }
}

/// What the host's facts say, as the choice of mitigations needs it.
struct Seen<'a> {
    facts: &'a FactsAnswer,
    assessment: Option<Assessment>,
    rules: MitigationFacts,
    /// The step runs as a `become` account, whose logon can read a file share (the URL
    /// Rewrite install runs as a scheduled task under it); as SYSTEM it reaches other machines
    /// as the computer account, which package shares do not admit.
    reads_shares: bool,
}

impl Seen<'_> {
    /// The EEMS id under which the Emergency Mitigation service applied `m`, if it did.
    fn by_eems(&self, m: &Mitigation) -> Option<String> {
        let declared = m.eems_id.as_deref()?;
        let eems = self.rules.eems.as_ref()?;
        eems.applied
            .iter()
            .find(|id| same_eems_id(id, declared))
            .cloned()
    }

    fn rules_present<'m>(&self, m: &'m Mitigation) -> Vec<&'m str> {
        m.rules
            .iter()
            .filter(|r| self.rules.rules.contains(&r.name))
            .map(|r| r.name.as_str())
            .collect()
    }
}

async fn plan(args: &Args, ctx: &CheckCtx<'_>) -> Result<Plan, Fail> {
    let (source, sha256, proxy) = match &args.rewrite_msi {
        Some(s) => {
            let s = s.get("rewrite_msi")?;
            // The mitigate script fetches its package itself, without exchange_update's
            // handling of a served package's token or a share account's logon.
            if s.served().is_some() || s.username.is_some() {
                return Err(Fail::Module(ModuleError::Args(
                    "rewrite_msi: `serve` and a share account (`username`/`password`) are for \
                     exchange_update's sources only: give rewrite_msi as a url: the server can \
                     download, or a unc: the become account can read"
                        .into(),
                )));
            }
            (
                Some(s.location().map_err(arg_error)?.to_string()),
                s.checksum(false).map_err(arg_error)?,
                s.proxy().map_err(arg_error)?.map(str::to_owned),
            )
        }
        None => (None, None, None),
    };
    let force = match &args.force {
        Some(f) => *f.get("force")?,
        None => false,
    };
    let named = match &args.mitigations {
        Some(m) => Some(named(m.get("mitigations")?)?),
        None => None,
    };
    let facts = shipped::facts(ctx).await?;
    let seen = Seen {
        facts: &facts,
        assessment: assessment(&facts)?,
        rules: configuration(&facts).1,
        reads_shares: ctx.run_as.is_some(),
    };
    let mut request = MitigateRequest {
        action: match args.state {
            State::Present => MitigateAction::Apply,
            State::Absent => MitigateAction::Remove,
        },
        mitigations: Vec::new(),
        rewrite_msi_source: source,
        rewrite_msi_sha256: sha256,
        rewrite_msi_proxy: proxy,
    };
    let choice = match args.state {
        State::Present => present(&seen, named.as_deref(), &request),
        State::Absent => absent(&seen, named.as_deref(), force),
    };
    request.mitigations = choice.ids;
    let installs_rewrite = facts.url_rewrite.is_none() && request.rewrite_msi_source.is_some();
    Ok(Plan {
        installs_rewrite,
        request,
        change: choice.change,
        refusal: choice.refusal,
        notes: choice.notes,
    })
}

fn arg_error(e: shipped::SourceError) -> Fail {
    Fail::Module(ModuleError::Args(format!("rewrite_msi: {e}")))
}

/// The catalogue's mitigations named in `mitigations:`, in order; an id the catalogue does not
/// have, or one this salve's script cannot write, is an argument error naming it.
fn named(ids: &[String]) -> Result<Vec<&'static Mitigation>, Fail> {
    let cat = catalogue().map_err(|e| {
        Fail::Module(ModuleError::Args(format!(
            "the build catalogue compiled into salve is broken: {e}"
        )))
    })?;
    ids.iter()
        .enumerate()
        .map(|(i, id)| {
            let m = cat.mitigations.iter().find(|m| m.id == *id);
            match m {
                Some(m) if MitigationId::parse(&m.id).is_some() => Ok(m),
                _ => Err(Fail::Module(ModuleError::Args(format!(
                    "mitigations[{i}]: `{id}` is not a mitigation salve can write; it writes {}",
                    MitigationId::ALL.map(MitigationId::as_str).join(", ")
                )))),
            }
        })
        .collect()
}

/// What `present` or `absent` decided.
#[derive(Default)]
struct Choice {
    ids: Vec<MitigationId>,
    change: Option<String>,
    refusal: Option<String>,
    notes: Vec<String>,
}

impl Choice {
    fn refused(why: String) -> Choice {
        Choice {
            refusal: Some(why),
            ..Choice::default()
        }
    }
}

/// The catalogue mitigation called `id`, for the assessment's states.
fn by_id(id: &str) -> Option<&'static Mitigation> {
    catalogue().ok()?.mitigations.iter().find(|m| m.id == id)
}

fn present(seen: &Seen, named: Option<&[&'static Mitigation]>, req: &MitigateRequest) -> Choice {
    let wanted: Vec<&Mitigation> = match (named, &seen.assessment) {
        (Some(named), _) => named.to_vec(),
        (None, None) => {
            return Choice::refused(
                "the build could not be read (ExSetup.exe missing), so salve cannot tell which                  mitigations the server needs; name them with `mitigations:`"
                    .into(),
            );
        }
        (None, Some(a)) => {
            let mut wanted = Vec::new();
            for state in a.mitigations.iter().filter(|s| s.needed) {
                match by_id(&state.id).filter(|m| MitigationId::parse(&m.id).is_some()) {
                    Some(m) => wanted.push(m),
                    None => {
                        return Choice::refused(format!(
                            "the server needs mitigation {} ({}), which this salve cannot                              write: apply it with Microsoft's EOMT, then run again",
                            state.id, state.title
                        ));
                    }
                }
            }
            wanted
        }
    };
    let to_apply: Vec<&Mitigation> = wanted
        .into_iter()
        .filter(|m| mitigation::applied(m, &seen.rules) == Applied::None)
        .collect();
    if to_apply.is_empty() {
        return Choice::default();
    }
    let ids: Vec<MitigationId> = to_apply
        .iter()
        .filter_map(|m| MitigationId::parse(&m.id))
        .collect();
    let rules = to_apply
        .iter()
        .map(|m| {
            let missing: Vec<&str> = m
                .rules
                .iter()
                .map(|r| r.name.as_str())
                .filter(|r| !seen.rules.rules.contains(*r))
                .collect();
            format!("{} (add rewrite rules: {})", m.id, missing.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ");
    let rules = format!("apply {rules}");
    let (change, refusal) = match (&seen.facts.url_rewrite, &req.rewrite_msi_source) {
        (Some(_), _) => (Some(rules), None),
        // The install runs as a scheduled task: under a become account it reads the share; as
        // SYSTEM it would knock as the computer account.
        (None, Some(src)) if crate::share::on_share(src) && !seen.reads_shares => (
            None,
            Some(format!(
                "the IIS URL Rewrite module is not installed and rewrite_msi is on a file share \
                 ({src}), which this host's steps cannot read: with no become account they run \
                 as SYSTEM, and neither that nor the WinRM logon can authenticate to another \
                 machine (the double hop); set ansible_become_user and ansible_become_password, \
                 or give rewrite_msi as a url: the server can download"
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
    };
    Choice {
        ids,
        change,
        refusal,
        notes: Vec::new(),
    }
}

fn absent(seen: &Seen, named: Option<&[&'static Mitigation]>, force: bool) -> Choice {
    let candidates: Vec<&Mitigation> = match named {
        Some(named) => named.to_vec(),
        None => match catalogue() {
            Ok(cat) => cat
                .mitigations
                .iter()
                .filter(|m| MitigationId::parse(&m.id).is_some())
                .collect(),
            Err(e) => {
                return Choice::refused(format!(
                    "the build catalogue compiled into salve is broken: {e}"
                ));
            }
        },
    };
    let mut choice = Choice::default();
    let mut removing = Vec::new();
    for m in candidates {
        // Never fight EEMS: it would put its mitigation back. Blocking it is the admin's call.
        if let Some(id) = seen.by_eems(m) {
            if named.is_none() && m.remove == Removal::Keep {
                continue;
            }
            return Choice::refused(format!(
                "refusing to remove {}: the Emergency Mitigation service applied {id} and would \
                 apply it again; block it first (Set-ExchangeServer -Identity {server} \
                 -MitigationsBlocked @{{Add=\"{id}\"}}), then remove it",
                m.id,
                server = seen.facts.computer_name
            ));
        }
        let present = seen.rules_present(m);
        if present.is_empty() {
            continue;
        }
        if named.is_none() && m.remove == Removal::Keep {
            choice.notes.push(format!(
                "{} kept: {}",
                m.id,
                m.note
                    .as_deref()
                    .unwrap_or("Microsoft asks to keep it after the fix")
            ));
            continue;
        }
        if !force {
            let still_open = match &seen.assessment {
                None => {
                    return Choice::refused(format!(
                        "refusing to remove {}: the build could not be read (ExSetup.exe \
                         missing); use force: true to remove it anyway",
                        m.id
                    ));
                }
                Some(a) => m
                    .cves
                    .iter()
                    .filter(|c| a.open_by_build.contains(c))
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>(),
            };
            if let (false, Some(a)) = (still_open.is_empty(), &seen.assessment) {
                return Choice::refused(format!(
                    "refusing to remove {}: build {} is still open to {} (path: {}); patch \
                     first, or use force: true",
                    m.id,
                    a.build,
                    still_open.join(", "),
                    a.path_display
                ));
            }
        }
        if let Some(id) = MitigationId::parse(&m.id) {
            choice.ids.push(id);
            removing.push(format!(
                "{} (remove rewrite rules: {})",
                m.id,
                present.join(", ")
            ));
        }
    }
    if !removing.is_empty() {
        choice.change = Some(removing.join("; "));
    }
    choice
}

async fn apply(args: &Args, ctx: &HostCtx<'_>) -> Result<Outcome, Fail> {
    let probe = ProbeLink::new(ctx.link);
    let plan = plan(args, &ctx.read_only(&probe)).await?;
    if plan.refusal.is_some() || plan.change.is_none() {
        return Ok(plan.outcome());
    }
    // msiexec must never die with the session (a timeout, Ctrl-C, a dropped connection, the
    // shell's quotas): a step that installs URL Rewrite runs as a scheduled task, as updates do.
    let reply = if plan.installs_rewrite {
        detached::run::<MitigateAnswer>(ctx, ScriptId::ExchangeMitigate, &plan.request).await?
    } else {
        shipped::call::<MitigateAnswer>(ctx, ScriptId::ExchangeMitigate, &plan.request).await?
    };
    let a = &reply.answer;
    let mut outcome = if a.success {
        Outcome::done(a.changed)
            .with_msg(plan.with_notes(plan.change.as_deref().unwrap_or_default()))
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
        .with(
            "mitigations",
            plan.request
                .mitigations
                .iter()
                .map(|m| m.as_str())
                .collect::<Vec<_>>(),
        )
        .with("rules_present", a.rules_present.clone())
        .with("reboot_required", a.reboot_required);
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::super::exchange_facts::EOMT_RULES;
    use super::super::exchange_script::testing::*;
    use super::*;
    use crate::contract::{EmergencyMitigation, ExchangeConfigFacts};
    use crate::transport::fake::FakeFleet;
    use serde_json::json;

    const CSP: &str = "EOMT OWA CSP - outbound";

    /// What a fake host has: its build, which rules are on it, the URL Rewrite module, and the
    /// mitigations EEMS applied.
    #[derive(Clone, Copy)]
    struct Host {
        build: &'static str,
        inbound: bool,
        outbound: bool,
        rewrite: bool,
        eems: &'static [&'static str],
    }

    const fn host(build: &'static str) -> Host {
        Host {
            build,
            inbound: false,
            outbound: false,
            rewrite: true,
            eems: &[],
        }
    }

    fn fleet(h: Host) -> std::sync::Arc<FakeFleet> {
        FakeFleet::new(move |_, s| match id(s) {
            ScriptId::ExchangeFacts => {
                let mut f = facts(h.build);
                if h.inbound {
                    f.mitigation_rules = EOMT_RULES.iter().map(|r| r.to_string()).collect();
                }
                if !h.rewrite {
                    f.url_rewrite = None;
                }
                f.config = Some(ExchangeConfigFacts {
                    setting_overrides: Some(Vec::new()),
                    extended_protection: Some(true),
                    emergency_mitigation: Some(EmergencyMitigation {
                        service_present: true,
                        service_running: true,
                        mitigations_enabled: true,
                        applied: h.eems.iter().map(|s| s.to_string()).collect(),
                        blocked: Vec::new(),
                    }),
                    outbound_rules: if h.outbound {
                        vec![CSP.into()]
                    } else {
                        Vec::new()
                    },
                });
                answer(&f, 0)
            }
            ScriptId::ExchangeMitigate => {
                let req: MitigateRequest = serde_json::from_value(s.args.clone().unwrap()).unwrap();
                answer(&applied(req.action == MitigateAction::Apply), 0)
            }
            // Installing URL Rewrite: the step runs as a task (an apply).
            ScriptId::JobControl | ScriptId::JobPoll => job(s, &applied(true)),
            other => panic!("unexpected {other:?}"),
        })
    }

    /// The install runs as a scheduled task: under the become account it reads a share; with
    /// none (SYSTEM, the computer account on the network) it is refused with the fix.
    #[test]
    fn a_share_source_needs_a_become_account() {
        let facts = FactsAnswer {
            url_rewrite: None,
            ..super::super::exchange_script::testing::facts("15.2.792.3")
        };
        let seen = |reads_shares| Seen {
            facts: &facts,
            assessment: assessment(&facts).unwrap(),
            rules: configuration(&facts).1,
            reads_shares,
        };
        let req = MitigateRequest {
            action: MitigateAction::Apply,
            mitigations: Vec::new(),
            rewrite_msi_source: Some("\\\\fs\\iis\\r.msi".into()),
            rewrite_msi_sha256: Some("ab".repeat(32)),
            rewrite_msi_proxy: None,
        };
        let refused = present(&seen(false), None, &req);
        let why = refused.refusal.expect("refused without become");
        assert!(
            why.contains("double hop") && why.contains("ansible_become_user"),
            "{why}"
        );
        let planned = present(&seen(true), None, &req);
        assert_eq!(planned.refusal, None);
        assert!(
            planned
                .change
                .unwrap()
                .contains("install the IIS URL Rewrite module from \\\\fs\\iis\\r.msi")
        );
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

    /// The requests the module sent to the mitigation script.
    /// The script's answer after applying (`present`) or removing.
    fn applied(present: bool) -> MitigateAnswer {
        MitigateAnswer {
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
        }
    }

    /// The mitigate requests the host got, in the session or as a task's script.
    fn sent(f: &FakeFleet) -> Vec<MitigateRequest> {
        f.commands()
            .iter()
            .map(|(_, s)| job_script(s).unwrap_or_else(|| s.clone()))
            .filter(|s| id(s) == ScriptId::ExchangeMitigate)
            .map(|s| serde_json::from_value(s.args.clone().unwrap()).unwrap())
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn check_says_what_would_change_and_changes_nothing() {
        // 2019 CU8 without SUs: open to ProxyLogon and to CVE-2026-42897.
        let f = fleet(host("15.2.792.3"));
        let o = run(&f, json!({"state": "present"}), true).await;
        assert!(o.status.changed() && !o.status.failed(), "{o:?}");
        let msg = o.msg.unwrap();
        assert!(msg.contains("X-BEResource Abort - inbound"), "{msg}");
        assert!(msg.contains(CSP), "{msg}");
        assert!(sent(&f).is_empty());
        let o = run(&f, json!({"state": "present"}), false).await;
        assert!(o.status.changed() && !o.status.failed(), "{o:?}");
        assert_eq!(
            sent(&f)[0].mitigations,
            [
                MitigationId::EomtCve202126855,
                MitigationId::EomtCve202642897
            ]
        );
        assert_eq!(
            o.data["mitigations"],
            json!(["eomt-cve-2021-26855", "eomt-cve-2026-42897"])
        );
    }

    #[tokio::test(start_paused = true)]
    async fn present_applies_only_what_the_build_leaves_open() {
        // 2019 CU14 with the October 2025 SU: ProxyLogon long fixed, CVE-2026-42897 open.
        let f = fleet(host("15.2.1544.36"));
        let o = run(&f, json!({"state": "present"}), false).await;
        assert!(o.status.changed() && !o.status.failed(), "{o:?}");
        assert_eq!(sent(&f)[0].mitigations, [MitigationId::EomtCve202642897]);
        // With the June 2026 SU nothing is open: nothing to apply.
        let fixed = fleet(host("15.2.1544.41"));
        let o = run(&fixed, json!({"state": "present"}), false).await;
        assert!(!o.status.changed() && !o.status.failed(), "{o:?}");
        assert!(sent(&fixed).is_empty());
        // EEMS already applied M2.1.0 (any revision): it counts as in place.
        let eems = fleet(Host {
            eems: &["M2.1.1"],
            ..host("15.2.1544.36")
        });
        let o = run(&eems, json!({"state": "present"}), false).await;
        assert!(!o.status.changed() && !o.status.failed(), "{o:?}");
        assert!(sent(&eems).is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn present_without_url_rewrite_needs_a_source_with_a_valid_hash() {
        let f = fleet(Host {
            rewrite: false,
            ..host("15.2.792.3")
        });
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
        let served = json!({"state": "present", "rewrite_msi": {"serve": "/srv/r.msi", "sha256": "ab".repeat(32)}});
        let e = with_ctx(&link, json!({}), async |ctx| {
            ExchangeMitigate.apply(&served, ctx).await.unwrap_err()
        })
        .await;
        assert!(
            e.to_string().contains("exchange_update's sources only"),
            "{e}"
        );
        let good = json!({"state": "present", "rewrite_msi": {"url": "https://media.contoso.test/r.msi", "sha256": "ab".repeat(32)}});
        let o = run(&f, good, false).await;
        assert!(!o.status.failed(), "{o:?}");
        assert_eq!(
            sent(&f)[0].rewrite_msi_sha256.as_deref(),
            Some("ab".repeat(32).as_str())
        );
        // msiexec runs as a scheduled task, never inside the session.
        assert!(
            f.commands()
                .iter()
                .any(|(_, s)| job_script(s).is_some_and(|j| id(&j) == ScriptId::ExchangeMitigate)),
            "URL Rewrite was installed in the session"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn absent_is_refused_while_a_covered_cve_is_open_unless_forced() {
        let both = Host {
            inbound: true,
            outbound: true,
            ..host("15.2.792.3")
        };
        let f = fleet(both);
        let o = run(&f, json!({"state": "absent"}), false).await;
        assert!(o.status.failed(), "{o:?}");
        assert!(o.msg.unwrap().contains("still open to CVE-2021-26855"));
        assert!(sent(&f).is_empty());
        let o = run(&f, json!({"state": "absent", "force": true}), false).await;
        assert!(o.status.changed() && !o.status.failed(), "{o:?}");
        // Forced, the ProxyLogon rules go; the OWA rule Microsoft asks to keep stays.
        assert_eq!(sent(&f)[0].mitigations, [MitigationId::EomtCve202126855]);
        let fixed = fleet(Host {
            build: "15.2.792.15",
            ..both
        });
        let o = run(&fixed, json!({"state": "absent"}), false).await;
        assert!(o.status.changed() && !o.status.failed(), "{o:?}");
        let msg = o.msg.unwrap();
        assert!(msg.contains("eomt-cve-2026-42897 kept"), "{msg}");
        assert_eq!(o.data["rules_present"], json!([]));
    }

    #[tokio::test(start_paused = true)]
    async fn the_kept_owa_rule_comes_off_only_when_named_and_fixed() {
        let named = json!({"state": "absent", "mitigations": ["eomt-cve-2026-42897"]});
        let open = fleet(Host {
            outbound: true,
            ..host("15.2.1544.36")
        });
        let o = run(&open, named.clone(), false).await;
        assert!(o.status.failed(), "{o:?}");
        assert!(o.msg.unwrap().contains("still open to CVE-2026-42897"));
        let fixed = fleet(Host {
            outbound: true,
            ..host("15.2.1544.41")
        });
        let o = run(&fixed, named, false).await;
        assert!(o.status.changed() && !o.status.failed(), "{o:?}");
        assert_eq!(
            sent(&fixed)[0].mitigations,
            [MitigationId::EomtCve202642897]
        );
        // Applied by EEMS: never removed behind its back.
        let eems = fleet(Host {
            outbound: true,
            eems: &["M2.1.0"],
            ..host("15.2.1544.41")
        });
        let o = run(
            &eems,
            json!({"state": "absent", "mitigations": ["eomt-cve-2026-42897"]}),
            false,
        )
        .await;
        assert!(o.status.failed(), "{o:?}");
        assert!(o.msg.unwrap().contains("MitigationsBlocked"));
    }

    #[tokio::test(start_paused = true)]
    async fn an_unknown_mitigation_id_is_an_argument_error_naming_it() {
        let f = fleet(host("15.2.792.3"));
        let link = FakeLink::new(&f);
        let args = json!({"state": "present", "mitigations": ["eomt-cve-2021-26855", "eomt-cve-1999-0001"]});
        let e = with_ctx(&link, json!({}), async |ctx| {
            ExchangeMitigate.apply(&args, ctx).await.unwrap_err()
        })
        .await;
        let e = e.to_string();
        assert!(
            e.contains("mitigations[1]") && e.contains("eomt-cve-1999-0001"),
            "{e}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_to_do_is_ok_without_running_the_script() {
        let f = fleet(Host {
            inbound: true,
            outbound: true,
            ..host("15.2.792.3")
        });
        let o = run(&f, json!({"state": "present"}), false).await;
        assert!(!o.status.changed() && !o.status.failed(), "{o:?}");
        assert!(sent(&f).is_empty());
    }
}
