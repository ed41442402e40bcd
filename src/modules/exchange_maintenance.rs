//! `exchange_maintenance`: put a server into maintenance mode or take it out, DAG-aware
//! (shipped script `exchange_maintenance`, Microsoft's DAG maintenance order).
//!
//! ```yaml
//! - exchange_maintenance:
//!     state: enter               # or leave
//!     redirect_target: ex02.contoso.local   # enter: where queued mail goes (an FQDN)
//!     require_healthy_copies: true          # leave: fail until every copy is healthy
//! ```
//!
//! Entering records the server's `DatabaseCopyAutoActivationPolicy` from before maintenance in
//! the result and as the host fact `exchange_maintenance.previous_activation_policy`; leaving
//! restores it (StopDagServerMaintenance alone would reset it to `Unrestricted`). The policy to
//! restore can also be given as `saved_policy`. Gates decide success: on enter no active copies,
//! only Monitoring/RecoveryActionsEnabled active, cluster node Paused; on leave every component
//! Active (except ForwardSyncDaemon/ProvisioningRps), cluster node Up and, unless
//! `require_healthy_copies: false`, every copy Healthy or Mounted.
//!
//! `check` reads the facts and says whether the server would change state.

use serde::Deserialize;
use serde_json::{Value, json};

use super::exchange_facts::in_maintenance;
use super::exchange_script::{self as shipped, Fail, Rendered};
use super::spec::{
    Action, Counting, Effect, Estimate, Foresight, ModuleSpec, Pair, PairKind, Provides, Reason,
};
use super::{CheckCtx, HostCtx, Module, ModuleError, Outcome};
use crate::contract::{MaintenanceAction, MaintenanceAnswer, MaintenanceRequest, ScriptId};

/// The host fact holding what entering maintenance recorded.
pub const FACT: &str = "exchange_maintenance";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Enter,
    Leave,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    state: State,
    #[serde(default)]
    redirect_target: Option<String>,
    #[serde(default)]
    saved_policy: Option<String>,
    #[serde(default)]
    require_healthy_copies: Option<Rendered<bool>>,
}

pub struct ExchangeMaintenance;

/// What `exchange_maintenance` is, for the module table.
pub const SPEC: ModuleSpec = ModuleSpec {
    name: "exchange_maintenance",
    module: &ExchangeMaintenance,
    validate: super::args::validator::<Args>,
    effect: Effect::ChangesHosts,
    reboots: false,
    estimate: Estimate::Seconds(900),
    action: Action::TaskName,
    reason: Reason::Check,
    foresight: Foresight::Predicts,
    counting: Counting::Paired(Pair {
        undo_state: "leave",
        kind: PairKind::Bracket,
        reason: "leave maintenance after the steps above, restoring the recorded activation policy",
    }),
    provides: Provides::MaintenanceState,
};

#[async_trait::async_trait]
impl Module for ExchangeMaintenance {
    async fn check(&self, args: &Value, ctx: &CheckCtx<'_>) -> Result<Outcome, ModuleError> {
        let args: Args = shipped::args(args)?;
        shipped::finish(check(&args, ctx).await)
    }

    async fn apply(&self, args: &Value, ctx: &HostCtx<'_>) -> Result<Outcome, ModuleError> {
        let args: Args = shipped::args(args)?;
        shipped::finish(apply(&args, ctx).await)
    }
}

async fn check(args: &Args, ctx: &CheckCtx<'_>) -> Result<Outcome, Fail> {
    let facts = shipped::facts(ctx).await?;
    let inside = in_maintenance(&facts);
    let dag = facts
        .dag
        .as_deref()
        .map_or(String::new(), |d| format!(" (DAG {d})"));
    Ok(match (args.state, inside) {
        (State::Enter, false) => Outcome::changed().with_msg(format!(
            "would enter maintenance{dag}; activation policy now {}",
            facts.activation_policy.as_deref().unwrap_or("n/a")
        )),
        (State::Leave, true) => Outcome::changed().with_msg(format!(
            "would leave maintenance{dag} and restore activation policy {}",
            saved_policy(args, ctx.vars).unwrap_or_else(|| "Unrestricted".into())
        )),
        (State::Enter, true) => Outcome::ok().with_msg("already in maintenance"),
        (State::Leave, false) => Outcome::ok().with_msg("not in maintenance"),
    })
}

/// The policy to restore on leave: the argument, else what entering recorded.
fn saved_policy(args: &Args, vars: &crate::template::Context) -> Option<String> {
    args.saved_policy.clone().or_else(|| {
        vars[FACT]["previous_activation_policy"]
            .as_str()
            .map(str::to_string)
    })
}

async fn apply(args: &Args, ctx: &HostCtx<'_>) -> Result<Outcome, Fail> {
    let require_healthy_copies = match &args.require_healthy_copies {
        Some(r) => *r.get("require_healthy_copies")?,
        None => true,
    };
    let request = MaintenanceRequest {
        action: match args.state {
            State::Enter => MaintenanceAction::Enter,
            State::Leave => MaintenanceAction::Leave,
        },
        redirect_target: args.redirect_target.clone(),
        saved_policy: match args.state {
            State::Enter => None,
            State::Leave => saved_policy(args, ctx.vars),
        },
    };
    let reply =
        shipped::call::<MaintenanceAnswer>(ctx, ScriptId::ExchangeMaintenance, &request).await?;
    let a = reply.answer;
    let mut problems = Vec::new();
    if !a.success {
        problems.push(
            a.reason
                .clone()
                .or(reply.error.clone())
                .unwrap_or_else(|| format!("exchange_maintenance exited with {}", reply.exit_code)),
        );
    }
    let g = &a.gates;
    match args.state {
        State::Enter => {
            gate(
                &mut problems,
                g.no_active_copies,
                "database copies are still active here",
            );
            gate(
                &mut problems,
                g.components_as_expected,
                "components other than Monitoring and RecoveryActionsEnabled are still active",
            );
            gate(
                &mut problems,
                g.cluster_node_as_expected,
                "the cluster node is not Paused",
            );
        }
        State::Leave => {
            gate(
                &mut problems,
                g.components_as_expected,
                "components are still inactive",
            );
            gate(
                &mut problems,
                g.cluster_node_as_expected,
                "the cluster node is not Up",
            );
            if require_healthy_copies {
                gate(
                    &mut problems,
                    g.copies_healthy,
                    "database copies are not all Healthy or Mounted",
                );
            }
        }
    }
    problems.dedup();
    let mut outcome = if problems.is_empty() {
        Outcome::done(a.changed).with_msg(match args.state {
            State::Enter => format!(
                "in maintenance; moved {} database(s); previous activation policy {}",
                a.moved_databases.len(),
                a.previous_activation_policy.as_deref().unwrap_or("n/a")
            ),
            State::Leave => format!(
                "out of maintenance; activation policy {}",
                a.activation_policy.as_deref().unwrap_or("n/a")
            ),
        })
    } else {
        Outcome::failed(problems.join("; ")).having_changed(a.changed)
    };
    if args.state == State::Enter && a.changed {
        outcome.facts = Some(
            [(
                FACT.to_string(),
                json!({"previous_activation_policy": a.previous_activation_policy}),
            )]
            .into_iter()
            .collect(),
        );
    }
    let answer = serde_json::to_value(&a).unwrap_or(Value::Null);
    if let Value::Object(map) = answer {
        outcome.data.extend(map);
    }
    Ok(outcome)
}

fn gate(problems: &mut Vec<String>, ok: bool, what: &str) {
    if !ok {
        problems.push(what.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::super::exchange_script::testing::*;
    use super::*;
    use crate::contract::{ComponentState, MaintenanceGates};
    use crate::transport::fake::FakeFleet;

    fn answer_for(req: &MaintenanceRequest, healthy: bool) -> MaintenanceAnswer {
        let enter = req.action == MaintenanceAction::Enter;
        MaintenanceAnswer {
            changed: true,
            success: true,
            reason: None,
            previous_activation_policy: Some(
                if enter { "IntrasiteOnly" } else { "Blocked" }.into(),
            ),
            activation_policy: Some(if enter {
                "Blocked".into()
            } else {
                req.saved_policy.clone().unwrap_or("Unrestricted".into())
            }),
            component_states: Vec::new(),
            moved_databases: Vec::new(),
            cluster_node_state: Some(if enter { "Paused" } else { "Up" }.into()),
            gates: MaintenanceGates {
                no_active_copies: enter,
                components_as_expected: true,
                cluster_node_as_expected: true,
                copies_healthy: healthy,
            },
        }
    }

    fn fleet(healthy: bool) -> std::sync::Arc<FakeFleet> {
        FakeFleet::new(move |_, s| match id(s) {
            ScriptId::ExchangeMaintenance => {
                let req: MaintenanceRequest =
                    serde_json::from_value(s.args.clone().unwrap()).unwrap();
                answer(&answer_for(&req, healthy), 0)
            }
            ScriptId::ExchangeFacts => {
                let mut f = facts("15.2.858.5");
                f.component_states = vec![ComponentState {
                    component: "ServerWideOffline".into(),
                    state: "Inactive".into(),
                    requesters: vec!["Maintenance".into()],
                }];
                answer(&f, 0)
            }
            other => panic!("unexpected {other:?}"),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn enter_records_the_policy_and_leave_restores_it() {
        let f = fleet(true);
        let link = FakeLink::new(&f);
        let entered = with_ctx(&link, json!({}), async |ctx| {
            ExchangeMaintenance
                .apply(&json!({"state": "enter"}), ctx)
                .await
                .unwrap()
        })
        .await;
        assert!(
            entered.status.changed() && !entered.status.failed(),
            "{entered:?}"
        );
        let fact = entered.facts.clone().unwrap();
        assert_eq!(fact[FACT]["previous_activation_policy"], "IntrasiteOnly");
        let vars = Value::Object(fact);
        let left = with_ctx(&link, vars, async |ctx| {
            ExchangeMaintenance
                .apply(&json!({"state": "leave"}), ctx)
                .await
                .unwrap()
        })
        .await;
        assert!(!left.status.failed(), "{left:?}");
        let (_, sent) = f.commands().into_iter().last().unwrap();
        assert_eq!(sent.args.unwrap()["saved_policy"], "IntrasiteOnly");
        assert_eq!(left.data["activation_policy"], "IntrasiteOnly");
    }

    #[tokio::test(start_paused = true)]
    async fn leave_fails_on_unhealthy_copies_unless_told_not_to_wait() {
        let f = fleet(false);
        let link = FakeLink::new(&f);
        let o = with_ctx(&link, json!({}), async |ctx| {
            ExchangeMaintenance
                .apply(&json!({"state": "leave"}), ctx)
                .await
                .unwrap()
        })
        .await;
        assert!(o.status.failed() && o.msg.unwrap().contains("not all Healthy"));
        let o = with_ctx(&link, json!({}), async |ctx| {
            ExchangeMaintenance
                .apply(
                    &json!({"state": "leave", "require_healthy_copies": false}),
                    ctx,
                )
                .await
                .unwrap()
        })
        .await;
        assert!(!o.status.failed(), "{o:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn check_reads_facts_only() {
        let f = fleet(true);
        let link = FakeLink::new(&f);
        let o = with_check_ctx(&link, json!({}), async |ctx| {
            ExchangeMaintenance
                .check(&json!({"state": "enter"}), ctx)
                .await
                .unwrap()
        })
        .await;
        assert!(!o.status.changed() && o.msg.unwrap().contains("already"));
        assert!(
            f.commands()
                .iter()
                .all(|(_, s)| id(s) == ScriptId::ExchangeFacts)
        );
    }
}
