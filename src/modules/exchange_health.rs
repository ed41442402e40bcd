//! `exchange_health`: the health gate between DAG members (shipped script `exchange_health`).
//! Read-only: check mode reads the server once and says what the gate would wait for; a run
//! waits, bounded, until the gate is met, reporting each poll as live progress.
//!
//! ```yaml
//! - exchange_health:
//!     timeout_seconds: 1800      # give up after this long (default 30 minutes)
//!     poll_seconds: 15           # between two reads
//!     max_copy_queue: 10         # logs not yet copied, per copy
//!     max_replay_queue: 100      # logs copied but not yet replayed, per copy
//!     max_transport_queue: 100   # messages in this server's transport queues
//! ```
//!
//! The gate: every copy Mounted or Healthy, copy and replay queues at most the thresholds,
//! every content index Healthy, `Test-ReplicationHealth` and `Test-ServiceHealth` clean, every
//! component Active (except the two inactive by design) and the transport queues at most their
//! threshold. `exchange_maintenance: {state: leave}` runs the same gate on DAG members (its
//! `health` argument takes the same keys, plus `enabled`).

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use super::exchange_script::{self as shipped, Fail};
use super::spec::{Action, Counting, Effect, Estimate, Foresight, ModuleSpec, Provides, Reason};
use super::{CheckCtx, HostCtx, Module, ModuleError, Outcome, ProbeLink};
use crate::contract::{HealthAnswer, ReadOnlyId};
use crate::transport::OutputChunk;

/// The gate's settings (the module's arguments; `exchange_maintenance`'s `health`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gate {
    /// `exchange_maintenance` only: wait for health after leaving (default: on for DAG
    /// members).
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
    #[serde(default = "default_poll")]
    pub poll_seconds: u64,
    #[serde(default = "default_copy_queue")]
    pub max_copy_queue: u64,
    #[serde(default = "default_replay_queue")]
    pub max_replay_queue: u64,
    #[serde(default = "default_transport_queue")]
    pub max_transport_queue: u64,
}

fn yes() -> bool {
    true
}
fn default_timeout() -> u64 {
    1800
}
fn default_poll() -> u64 {
    15
}
fn default_copy_queue() -> u64 {
    10
}
fn default_replay_queue() -> u64 {
    100
}
fn default_transport_queue() -> u64 {
    100
}

impl Default for Gate {
    fn default() -> Self {
        Gate {
            enabled: true,
            timeout_seconds: default_timeout(),
            poll_seconds: default_poll(),
            max_copy_queue: default_copy_queue(),
            max_replay_queue: default_replay_queue(),
            max_transport_queue: default_transport_queue(),
        }
    }
}

/// One thing the gate waits for: what, its value now and the most it may be (`None`: a state
/// that must change, such as a Failed copy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmet {
    pub what: String,
    pub value: Option<u64>,
    pub limit: Option<u64>,
}

impl std::fmt::Display for Unmet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.value, self.limit) {
            (Some(v), Some(l)) => write!(f, "{} {v} (at most {l})", self.what),
            _ => f.write_str(&self.what),
        }
    }
}

/// What the gate looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The server's copies only (status, queues, content indexes): what can be judged while it
    /// is still in maintenance, before leaving.
    Copies,
    /// Everything: copies, replication and service checks, components, transport queues.
    All,
}

/// What keeps `h` from meeting `gate`, empty when it is met.
pub fn unmet(h: &HealthAnswer, gate: &Gate, scope: Scope) -> Vec<Unmet> {
    let mut out = Vec::new();
    let state = |what: String| Unmet {
        what,
        value: None,
        limit: None,
    };
    for c in &h.copies {
        if c.status != "Mounted" && c.status != "Healthy" {
            out.push(state(format!("{} copy {}", c.database, c.status)));
        }
        if c.copy_queue_length > gate.max_copy_queue {
            out.push(Unmet {
                what: format!("{} copy queue", c.database),
                value: Some(c.copy_queue_length),
                limit: Some(gate.max_copy_queue),
            });
        }
        if c.replay_queue_length > gate.max_replay_queue {
            out.push(Unmet {
                what: format!("{} replay queue", c.database),
                value: Some(c.replay_queue_length),
                limit: Some(gate.max_replay_queue),
            });
        }
    }
    out.extend(
        h.unhealthy_content_indexes
            .iter()
            .map(|db| state(format!("{db} content index not Healthy"))),
    );
    if scope == Scope::Copies {
        return out;
    }
    out.extend(h.failed_checks.iter().map(|c| state(c.clone())));
    if !h.inactive_components.is_empty() {
        out.push(state(format!(
            "components inactive: {}",
            h.inactive_components.join(", ")
        )));
    }
    match h.transport_queue_length {
        Some(n) if n > gate.max_transport_queue => out.push(Unmet {
            what: "transport queue".into(),
            value: Some(n),
            limit: Some(gate.max_transport_queue),
        }),
        Some(_) => {}
        None => out.push(state("transport queues not readable yet".into())),
    }
    out
}

/// How a wait ended well.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Met {
    pub waited: Duration,
    pub polls: u32,
    pub answer: HealthAnswer,
}

/// Read the server's health once.
pub async fn read(ctx: &CheckCtx<'_>) -> Result<HealthAnswer, Fail> {
    Ok(
        shipped::read::<HealthAnswer>(ctx, ReadOnlyId::ExchangeHealth, &json!({}))
            .await?
            .answer,
    )
}

/// Wait until the server meets `gate` over `scope`, at most `gate.timeout_seconds`, writing
/// each poll's progress (`waiting for DB03 copy queue: 412 → 37 (at most 10)`) to the task's
/// output. The failure names everything still unmet.
pub async fn wait(ctx: &CheckCtx<'_>, gate: &Gate, scope: Scope) -> Result<Met, Fail> {
    let start = tokio::time::Instant::now();
    let limit = Duration::from_secs(gate.timeout_seconds);
    let poll = Duration::from_secs(gate.poll_seconds.max(1));
    let mut first: Vec<Unmet> = Vec::new();
    let mut polls = 0;
    loop {
        let answer = read(ctx).await?;
        polls += 1;
        let now = unmet(&answer, gate, scope);
        if now.is_empty() {
            return Ok(Met {
                waited: start.elapsed(),
                polls,
                answer,
            });
        }
        for u in &now {
            if !first.iter().any(|f| f.what == u.what) {
                first.push(u.clone());
            }
        }
        let _ = ctx
            .output
            .send(OutputChunk::Stdout(progress(&first, &now, start.elapsed())));
        if start.elapsed() + poll > limit {
            return Err(Fail::failed(format!(
                "health gate not met after {}s: {}",
                start.elapsed().as_secs(),
                joined(&now)
            )));
        }
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = ctx.cancel.cancelled() => return Err(crate::transport::TransportError::Cancelled.into()),
        }
    }
}

/// One progress line: each unmet item with its first and current value.
fn progress(first: &[Unmet], now: &[Unmet], elapsed: Duration) -> String {
    let items: Vec<String> = now
        .iter()
        .map(|u| {
            let was = first
                .iter()
                .find(|f| f.what == u.what)
                .and_then(|f| f.value);
            match (was, u.value, u.limit) {
                (Some(a), Some(b), Some(l)) if a != b => {
                    format!("{} {a} → {b} (at most {l})", u.what)
                }
                _ => u.to_string(),
            }
        })
        .collect();
    format!(
        "health gate: waiting for {} [{}s]\n",
        items.join(", "),
        elapsed.as_secs()
    )
}

pub struct ExchangeHealth;

/// What `exchange_health` is, for the module table: read-only, but a run waits (check mode
/// reads once).
pub const SPEC: ModuleSpec = ModuleSpec {
    name: "exchange_health",
    module: &ExchangeHealth,
    validate: super::args::validator::<Gate>,
    effect: Effect::ReadOnly,
    reboots: false,
    estimate: Estimate::Seconds(300),
    action: Action::TaskName,
    reason: Reason::Check,
    foresight: Foresight::Predicts,
    counting: Counting::Plain,
    provides: Provides::Nothing,
    manages_exchange: true,
};

#[async_trait::async_trait]
impl Module for ExchangeHealth {
    async fn check(&self, args: &Value, ctx: &CheckCtx<'_>) -> Result<Outcome, ModuleError> {
        let gate: Gate = shipped::args(args)?;
        shipped::finish(once(&gate, ctx).await)
    }

    async fn apply(&self, args: &Value, ctx: &HostCtx<'_>) -> Result<Outcome, ModuleError> {
        let gate: Gate = shipped::args(args)?;
        let probe = ProbeLink::new(ctx.link);
        shipped::finish(waited(&gate, &ctx.read_only(&probe)).await)
    }
}

async fn once(gate: &Gate, ctx: &CheckCtx<'_>) -> Result<Outcome, Fail> {
    let now = unmet(&read(ctx).await?, gate, Scope::All);
    Ok(Outcome::ok().with_msg(if now.is_empty() {
        "healthy now".to_string()
    } else {
        format!("would wait for: {}", joined(&now))
    }))
}

async fn waited(gate: &Gate, ctx: &CheckCtx<'_>) -> Result<Outcome, Fail> {
    let met = wait(ctx, gate, Scope::All).await?;
    Ok(Outcome::ok()
        .with_msg(format!("healthy after {}s", met.waited.as_secs()))
        .with("waited_seconds", met.waited.as_secs())
        .with(
            "health",
            serde_json::to_value(&met.answer).unwrap_or(Value::Null),
        ))
}

/// Unmet items as one line.
pub fn joined(items: &[Unmet]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(copy_queue: u64) -> HealthAnswer {
        super::super::exchange_script::testing::health(copy_queue)
    }

    #[test]
    fn queues_over_their_threshold_hold_the_gate_and_progress_shows_the_drain() {
        let gate = Gate::default();
        assert!(unmet(&answer(10), &gate, Scope::All).is_empty());
        let first = unmet(&answer(412), &gate, Scope::All);
        assert_eq!(first[0].to_string(), "DB03 copy queue 412 (at most 10)");
        let now = unmet(&answer(37), &gate, Scope::All);
        assert_eq!(
            progress(&first, &now, Duration::from_secs(30)),
            "health gate: waiting for DB03 copy queue 412 → 37 (at most 10) [30s]\n"
        );
        let mut h = answer(0);
        h.transport_queue_length = None;
        h.unhealthy_content_indexes = vec!["DB03".into()];
        let copies_only: Vec<String> = unmet(&h, &gate, Scope::Copies)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(copies_only, ["DB03 content index not Healthy"]);
        let why: Vec<String> = unmet(&h, &gate, Scope::All)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            why,
            [
                "DB03 content index not Healthy",
                "transport queues not readable yet"
            ]
        );
    }
}
