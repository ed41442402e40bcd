//! `exchange_maintenance`: put a server into maintenance mode or take it out, DAG-aware and
//! state-aware (shipped script `exchange_maintenance`, Microsoft's DAG maintenance order).
//!
//! ```yaml
//! - exchange_maintenance:
//!     state: enter               # or leave
//!     redirect_target: ex02.contoso.local   # enter: where queued mail goes (an FQDN); by
//!                                           # default a peer in the same site, never itself
//!     health:                    # leave: the health gate (DAG members; see exchange_health)
//!       enabled: true
//!       timeout_seconds: 1800
//! ```
//!
//! Entering first records what the server looked like (components per requester, activation
//! policy, per-copy `ActivationSuspended`, cluster node, whether it was in maintenance already):
//! on the host (`C:\salve\maintenance.json`) and as the host fact `exchange_maintenance.record`,
//! which the journal keeps; `salve resume` gives the stopped run's record back as that fact, so
//! a server whose own copy was lost meanwhile is still restored exactly. A sub-step that fails
//! rolls the steps taken back, last first.
//! On a DAG member still in maintenance, leaving first waits (bounded) for the server's own
//! copies to catch up — a gate not met leaves it in maintenance, activation still blocked —
//! then undoes only what maintenance still holds and restores the record (so a second leave
//! changes nothing and restarts nothing), then waits for the whole health gate before the next
//! member may start. Without a record leave changes nothing: a rescue on a
//! server that never entered leaves it as the administrator set it. Mounted databases with no
//! other copy (a standalone server's, a DAG member's single-copy ones: the facts' `copies`)
//! cannot move: entering keeps them mounted and the plan names the outage.
//!
//! `check` reads the facts and says what would change.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Value, json};

use super::detached;
use super::exchange_facts::in_maintenance;
use super::exchange_health::{self as health, Gate, Scope};
use super::exchange_script::{self as shipped, Fail, Rendered};
use super::spec::{
    Action, Counting, Effect, Estimate, Foresight, ModuleSpec, Pair, PairKind, Provides, Reason,
};
use super::{CheckCtx, HostCtx, Module, ModuleError, Outcome, ProbeLink};
use crate::contract::{
    FactsAnswer, MaintenanceAction, MaintenanceAnswer, MaintenanceRecord, MaintenanceRequest,
    ScriptId,
};
use crate::model::Vars;

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
    health: Option<Rendered<Gate>>,
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
        reason: "leave maintenance after the steps above, restoring what entering recorded",
    }),
    provides: Provides::MaintenanceState,
    manages_exchange: true,
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

/// The explicit redirect target names the host itself (Exchange refuses that).
pub fn names_itself(target: &str, host: &str) -> bool {
    let short = |t: &str| t.split('.').next().unwrap_or(t).to_ascii_lowercase();
    short(target) == short(host)
}

/// Mounted databases nothing can take over, kept mounted through maintenance: every one of a
/// standalone server, and a DAG member's databases with no copy on another member.
fn outage(facts: &FactsAnswer) -> Vec<String> {
    facts
        .database_copies
        .iter()
        .filter(|c| c.active && (facts.dag.is_none() || c.copies == Some(1)))
        .map(|c| c.database.clone())
        .collect()
}

/// The planned outage, as the plan and the result say it.
fn outage_text(dbs: &[String]) -> String {
    format!(
        "planned outage: {} not replicated, offline while this server is updated",
        dbs.join(", ")
    )
}

async fn check(args: &Args, ctx: &CheckCtx<'_>) -> Result<Outcome, Fail> {
    let facts = shipped::facts(ctx).await?;
    let inside = in_maintenance(&facts);
    let dag = facts
        .dag
        .as_deref()
        .map_or(String::new(), |d| format!(" (DAG {d})"));
    Ok(match (args.state, inside) {
        (State::Enter, false) => {
            let mut msg = format!("would enter maintenance{dag}");
            if let Some(p) = &facts.activation_policy {
                msg.push_str(&format!("; records activation policy {p}"));
            }
            let suspended: Vec<&str> = facts
                .database_copies
                .iter()
                .filter(|c| c.activation_suspended)
                .map(|c| c.database.as_str())
                .collect();
            if !suspended.is_empty() {
                msg.push_str(&format!(
                    " and activation suspended on {}",
                    suspended.join(", ")
                ));
            }
            let down = outage(&facts);
            if !down.is_empty() {
                msg.push_str(&format!("; {}", outage_text(&down)));
            }
            if let Some(t) = args
                .redirect_target
                .as_deref()
                .filter(|t| names_itself(t, &ctx.host.name))
            {
                msg.push_str(&format!(
                    "; redirect target {t} is this server: a peer is chosen instead"
                ));
            }
            Outcome::changed().with_msg(msg)
        }
        (State::Leave, true) => Outcome::changed().with_msg(match record(ctx.vars) {
            Some(r) => format!(
                "would leave maintenance{dag} and restore {}{}",
                describe(&r),
                gate(args)?
                    .filter(|g| g.enabled && facts.dag.is_some())
                    .map_or(String::new(), |g| format!(
                        ", then wait for the health gate (at most {}s)",
                        g.timeout_seconds
                    ))
            ),
            None => format!(
                "would leave maintenance{dag} if the host keeps salve's record of entering it; \
                 otherwise it stays as it is"
            ),
        }),
        (State::Enter, true) => Outcome::ok().with_msg("already in maintenance"),
        (State::Leave, false) => Outcome::ok().with_msg("not in maintenance"),
    })
}

/// What a record restores, in words.
fn describe(r: &MaintenanceRecord) -> String {
    let mut parts = Vec::new();
    if let Some(p) = &r.activation_policy {
        parts.push(format!("activation policy {p}"));
    }
    if !r.activation_suspended.is_empty() {
        parts.push(format!(
            "activation suspended on {}",
            r.activation_suspended.join(", ")
        ));
    }
    if parts.is_empty() {
        parts.push("the recorded component states".to_string());
    }
    parts.join(" and ")
}

/// The maintenance facts a resumed run starts with, from the stopped run's finished
/// `exchange_maintenance` steps (`(host, result)` in order, from the journal): for each host
/// whose last such step entered maintenance, what entering recorded.
pub fn carried_over_facts(results: &[(String, Value)]) -> BTreeMap<String, Vars> {
    let mut last: BTreeMap<String, &Value> = BTreeMap::new();
    for (host, result) in results {
        last.insert(host.clone(), result);
    }
    last.into_iter()
        .filter(|(_, r)| r["state"] == "enter" && r["record"].is_object())
        .map(|(host, r)| {
            let fact = json!({"record": r["record"]});
            (host, [(FACT.to_string(), fact)].into_iter().collect())
        })
        .collect()
}

/// What entering recorded, from the host fact (the journal's copy).
fn record(vars: &crate::template::Context) -> Option<MaintenanceRecord> {
    serde_json::from_value(vars[FACT]["record"].clone()).ok()
}

fn gate(args: &Args) -> Result<Option<Gate>, Fail> {
    Ok(match &args.health {
        Some(r) => Some(r.get("health")?.clone()),
        None => Some(Gate::default()),
    })
}

async fn apply(args: &Args, ctx: &HostCtx<'_>) -> Result<Outcome, Fail> {
    let gate = gate(args)?.unwrap_or_default();
    let probe = ProbeLink::new(ctx.link);
    let read = ctx.read_only(&probe);
    let mut caught_up = None;
    if args.state == State::Leave && gate.enabled {
        // Before leaving, a DAG member in maintenance waits for its own copies to catch up:
        // activation stays blocked meanwhile, and a gate not met leaves it in maintenance.
        let h = health::read(&read).await?;
        let inside = h
            .inactive_components
            .iter()
            .any(|c| c == "ServerWideOffline");
        if h.dag.is_some() && inside {
            let met = health::wait(&read, &gate, Scope::Copies)
                .await
                .map_err(|e| match e {
                    Fail::NoAnswer(o) => Fail::failed(format!(
                        "still in maintenance: {}",
                        o.msg.unwrap_or_default()
                    )),
                    other => other,
                })?;
            caught_up = Some(met.waited.as_secs());
        }
    }
    let request = MaintenanceRequest {
        action: match args.state {
            State::Enter => MaintenanceAction::Enter,
            State::Leave => MaintenanceAction::Leave,
        },
        redirect_target: args.redirect_target.clone(),
        record: match args.state {
            State::Enter => None,
            State::Leave => record(ctx.vars),
        },
    };
    let reply =
        detached::call::<MaintenanceAnswer>(ctx, ScriptId::ExchangeMaintenance, &request).await?;
    let mut a = reply.answer;
    // Resumed after the controller died in maintenance, on a server whose own record is gone
    // (C:\salve cleaned up): it now looks "in maintenance before salve", but the journal of
    // the stopped run holds what entering recorded. Keep that, so leave restores the server.
    let from_journal = match (args.state, &a.record, record(ctx.vars)) {
        (State::Enter, Some(now), Some(before))
            if now.already_in_maintenance && !before.already_in_maintenance =>
        {
            a.record = Some(before);
            true
        }
        _ => false,
    };
    let mut problems = Vec::new();
    if !a.success {
        problems.push(
            a.reason
                .clone()
                .or(reply.error.clone())
                .unwrap_or_else(|| format!("exchange_maintenance exited with {}", reply.exit_code)),
        );
    }
    let mut msg = match args.state {
        State::Enter => {
            let mut m = format!(
                "in maintenance; moved {} database(s); recorded {}",
                a.moved_databases.len(),
                a.record.as_ref().map_or("nothing".into(), describe)
            );
            if !a.outage_databases.is_empty() {
                m.push_str(&format!("; {}", outage_text(&a.outage_databases)));
            }
            if from_journal {
                m.push_str(
                    "; the server's own record of entering is gone: the journal's record from \
                     the run that put it into maintenance is kept, so leaving restores that",
                );
            }
            m
        }
        State::Leave if a.changed => format!(
            "{}out of maintenance; restored {}",
            caught_up.map_or(String::new(), |s| format!("copies caught up after {s}s; ")),
            a.record.as_ref().map_or("nothing".into(), describe)
        ),
        State::Leave => "nothing to undo".to_string(),
    };
    let member = a.cluster_node_state.is_some();
    if args.state == State::Leave && problems.is_empty() && gate.enabled && member {
        match health::wait(&read, &gate, Scope::All).await {
            Ok(met) => msg.push_str(&format!(
                "; health gate met after {}s",
                met.waited.as_secs()
            )),
            Err(Fail::NoAnswer(o)) => problems.push(o.msg.unwrap_or_default()),
            Err(e) => return Err(e),
        }
    }
    problems.dedup();
    let mut outcome = if problems.is_empty() {
        Outcome::done(a.changed).with_msg(msg)
    } else {
        Outcome::failed(problems.join("; ")).having_changed(a.changed)
    };
    let fact = match args.state {
        State::Enter => json!({"record": a.record}),
        State::Leave => json!({"record": null}),
    };
    if args.state == State::Enter || a.changed {
        outcome.facts = Some([(FACT.to_string(), fact)].into_iter().collect());
    }
    let answer = serde_json::to_value(&a).unwrap_or(Value::Null);
    if let Value::Object(map) = answer {
        outcome.data.extend(map);
    }
    // Which way this step went, for the journal's readers (`salve resume`).
    outcome.data.insert(
        "state".into(),
        json!(match args.state {
            State::Enter => "enter",
            State::Leave => "leave",
        }),
    );
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::super::exchange_script::testing::health as testing_health;
    use super::super::exchange_script::testing::*;
    use super::*;
    use crate::contract::{ComponentState, HealthAnswer, MaintenanceGates};
    use crate::transport::fake::FakeFleet;

    fn recorded() -> MaintenanceRecord {
        MaintenanceRecord {
            activation_policy: Some("IntrasiteOnly".into()),
            activation_suspended: vec!["DB02".into()],
            cluster_node_state: Some("Up".into()),
            ..MaintenanceRecord::default()
        }
    }

    fn answer_for(req: &MaintenanceRequest) -> MaintenanceAnswer {
        let enter = req.action == MaintenanceAction::Enter;
        MaintenanceAnswer {
            changed: enter || req.record.is_some(),
            success: true,
            reason: None,
            record: if enter {
                Some(recorded())
            } else {
                req.record.clone()
            },
            activation_policy: Some(if enter { "Blocked" } else { "IntrasiteOnly" }.into()),
            component_states: Vec::new(),
            moved_databases: Vec::new(),
            outage_databases: Vec::new(),
            steps: Vec::new(),
            cluster_node_state: Some(if enter { "Paused" } else { "Up" }.into()),
            gates: MaintenanceGates {
                no_active_copies: enter,
                components_as_expected: true,
                cluster_node_as_expected: true,
                copies_healthy: true,
            },
        }
    }

    /// A DAG member's health read whose copies are `copy_queue` logs behind.
    fn health(copy_queue: u64) -> HealthAnswer {
        HealthAnswer {
            activation_policy: Some("IntrasiteOnly".into()),
            ..testing_health(copy_queue)
        }
    }

    /// A fleet whose copies need `reads` health reads to drain (412 logs until then).
    fn fleet(reads: usize) -> std::sync::Arc<FakeFleet> {
        let seen = std::sync::atomic::AtomicUsize::new(0);
        FakeFleet::new(move |_, s| match id(s) {
            ScriptId::ExchangeMaintenance => {
                let req: MaintenanceRequest =
                    serde_json::from_value(s.args.clone().unwrap()).unwrap();
                answer(&answer_for(&req), 0)
            }
            ScriptId::ExchangeHealth => {
                let n = seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                answer(&health(if n >= reads { 0 } else { 412 }), 0)
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
    async fn enter_records_the_state_and_leave_sends_the_record_back() {
        let f = fleet(1);
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
        assert_eq!(fact[FACT]["record"]["activation_policy"], "IntrasiteOnly");
        assert_eq!(
            fact[FACT]["record"]["activation_suspended"],
            json!(["DB02"])
        );
        let left = with_ctx(&link, Value::Object(fact), async |ctx| {
            ExchangeMaintenance
                .apply(&json!({"state": "leave"}), ctx)
                .await
                .unwrap()
        })
        .await;
        assert!(!left.status.failed(), "{left:?}");
        let sent = f
            .commands()
            .into_iter()
            .find(|(_, s)| {
                id(s) == ScriptId::ExchangeMaintenance
                    && s.args.as_ref().unwrap()["action"] == "leave"
            })
            .unwrap()
            .1;
        assert_eq!(
            sent.args.unwrap()["record"]["activation_suspended"],
            json!(["DB02"])
        );
        assert_eq!(left.facts.unwrap()[FACT]["record"], Value::Null);
    }

    #[tokio::test(start_paused = true)]
    async fn leave_waits_for_the_health_gate_and_fails_after_its_bound() {
        let f = fleet(3);
        let link = FakeLink::new(&f);
        let vars = json!({FACT: {"record": recorded()}});
        let o = with_ctx(&link, vars.clone(), async |ctx| {
            ExchangeMaintenance
                .apply(&json!({"state": "leave"}), ctx)
                .await
                .unwrap()
        })
        .await;
        assert!(!o.status.failed(), "{o:?}");
        assert!(o.msg.unwrap().contains("health gate met after 15s"));
        let f = fleet(usize::MAX);
        let link = FakeLink::new(&f);
        let o = with_ctx(&link, vars, async |ctx| {
            ExchangeMaintenance
                .apply(
                    &json!({"state": "leave", "health": {"timeout_seconds": 60, "poll_seconds": 20}}),
                    ctx,
                )
                .await
                .unwrap()
        })
        .await;
        let msg = o.msg.clone().unwrap();
        assert!(o.status.failed(), "{o:?}");
        assert!(
            msg.contains("health gate not met after 60s: DB03 copy queue 412 (at most 10)"),
            "{msg}"
        );
        let o = with_ctx(&link, json!({}), async |ctx| {
            ExchangeMaintenance
                .apply(
                    &json!({"state": "leave", "health": {"enabled": false}}),
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
        let f = fleet(1);
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
