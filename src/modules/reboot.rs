//! `reboot`: restart the host and wait until it is really back (shipped scripts `reboot` and
//! `boot_id`, then `exchange_facts` for the services).
//!
//! ```yaml
//! - reboot:
//!     delay_seconds: 5        # before the restart begins, so the answer gets out
//!     shutdown_timeout: 600   # until the old boot is seen to end
//!     boot_timeout: 1800      # until the host answers with a new boot id
//!     services_timeout: 1200  # until every Automatic Exchange service runs (0: don't wait)
//!     poll_interval: 10
//!     probe_timeout: 30       # per attempt
//!     post_reboot_delay: 0    # wait once the new boot id is seen, before the services check
//!     test_command: ""        # PowerShell that must succeed (exit 0) before the host counts
//!                             # as back; retried until boot_timeout (Ansible's win_reboot)
//! ```
//!
//! The phases, each with its own deadline:
//! 1. **restart scheduled** — the `reboot` script answers the boot id before the restart;
//! 2. **shutdown observed** — `boot_id` polls fail (the host went down) or already answer a new
//!    id; a host that keeps answering the old id past `shutdown_timeout` did not restart;
//! 3. **host back with a new boot id** — the connection is dropped ([`super::Probe::reset`])
//!    and re-opened on every attempt; an answer with the *old* id never counts as back;
//! 4. **services up** — every Automatic `Microsoft Exchange*` service (and IIS) is Running.
//!
//! Check mode reads the current boot id and uptime (`boot_id`, read-only) and reports that the
//! host would restart; it cannot run the `reboot` script.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::exchange_script::{self as shipped, Fail};
use super::spec::{Action, Counting, Effect, Estimate, Foresight, ModuleSpec, Provides, Reason};
use super::{CheckCtx, HostCtx, Module, ModuleError, Num, Outcome, ProbeLink};
use crate::contract::{BootIdAnswer, ReadOnlyId, RebootAnswer, RebootRequest, ScriptId};
use crate::script::Script;
use crate::transport::{RunRequest, TransportError};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    #[serde(default)]
    delay_seconds: Option<Num>,
    #[serde(default)]
    shutdown_timeout: Option<Num>,
    #[serde(default)]
    boot_timeout: Option<Num>,
    #[serde(default)]
    services_timeout: Option<Num>,
    #[serde(default)]
    poll_interval: Option<Num>,
    #[serde(default)]
    probe_timeout: Option<Num>,
    #[serde(default)]
    post_reboot_delay: Option<Num>,
    #[serde(default)]
    test_command: Option<String>,
}

/// The waits, as durations.
#[derive(Debug, Clone, Copy)]
struct Waits {
    delay: Duration,
    shutdown: Duration,
    boot: Duration,
    services: Duration,
    poll: Duration,
    probe: Duration,
    post: Duration,
}

impl Waits {
    fn from(args: &Args) -> Result<Waits, ModuleError> {
        let secs = |n: Option<Num>, default: f64, name: &str| {
            n.unwrap_or(Num(default))
                .seconds()
                .map_err(|e| ModuleError::Args(format!("{name}: {e}")))
        };
        Ok(Waits {
            delay: secs(args.delay_seconds, 5.0, "delay_seconds")?,
            shutdown: secs(args.shutdown_timeout, 600.0, "shutdown_timeout")?,
            boot: secs(args.boot_timeout, 1800.0, "boot_timeout")?,
            services: secs(args.services_timeout, 1200.0, "services_timeout")?,
            poll: secs(args.poll_interval, 10.0, "poll_interval")?.max(Duration::from_secs(1)),
            probe: secs(args.probe_timeout, 30.0, "probe_timeout")?,
            post: secs(args.post_reboot_delay, 0.0, "post_reboot_delay")?,
        })
    }
}

pub struct Reboot;

/// What `reboot` is, for the module table.
pub const SPEC: ModuleSpec = ModuleSpec {
    name: "reboot",
    module: &Reboot,
    validate: super::args::validator::<Args>,
    effect: Effect::ChangesHosts,
    reboots: true,
    estimate: Estimate::Seconds(600),
    action: Action::TaskName,
    reason: Reason::Text("restart the host and wait for it to come back with a new boot id"),
    foresight: Foresight::Predicts,
    counting: Counting::AfterUpdate,
    provides: Provides::Nothing,
    manages_exchange: false,
};

#[async_trait::async_trait]
impl Module for Reboot {
    async fn check(&self, args: &Value, ctx: &CheckCtx<'_>) -> Result<Outcome, ModuleError> {
        Waits::from(&shipped::args::<Args>(args)?)?;
        shipped::finish(would_restart(ctx).await)
    }

    async fn apply(&self, args: &Value, ctx: &HostCtx<'_>) -> Result<Outcome, ModuleError> {
        let args = shipped::args::<Args>(args)?;
        let waits = Waits::from(&args)?;
        let test = args.test_command.filter(|t| !t.trim().is_empty());
        shipped::finish(restart(waits, test, ctx).await)
    }
}

/// Restart the host as a `reboot` task with its default waits and `poll_interval` would: for a
/// module that restarts between its own steps (`exchange_update` walking a path).
pub(super) async fn restart_between_steps(
    poll_interval: Option<Num>,
    ctx: &HostCtx<'_>,
) -> Result<Outcome, Fail> {
    let args = Args {
        poll_interval,
        ..Args::default()
    };
    restart(Waits::from(&args).map_err(Fail::Module)?, None, ctx).await
}

async fn would_restart(ctx: &CheckCtx<'_>) -> Result<Outcome, Fail> {
    let now = shipped::read::<BootIdAnswer>(ctx, ReadOnlyId::BootId, &json!({}))
        .await?
        .answer;
    let hours = now.uptime_seconds as f64 / 3600.0;
    Ok(Outcome::changed()
        .with_msg(format!(
            "would restart the host (up {hours:.1} h, boot id {}) and wait for a new boot id",
            now.boot_id
        ))
        .with("boot_id_before", now.boot_id)
        .with("uptime_seconds", now.uptime_seconds))
}

/// What one `boot_id` poll saw.
enum Seen {
    Id(String),
    Down(String),
}

async fn poll_boot_id(ctx: &CheckCtx<'_>, waits: Waits) -> Result<Seen, Fail> {
    let none = json!({});
    let attempt = shipped::read_within::<BootIdAnswer>(ctx, ReadOnlyId::BootId, &none, waits.probe);
    match tokio::time::timeout(waits.probe, attempt).await {
        Ok(Ok(reply)) => Ok(Seen::Id(reply.answer.boot_id)),
        Ok(Err(Fail::Module(ModuleError::Transport(TransportError::Cancelled)))) => {
            Err(TransportError::Cancelled.into())
        }
        Ok(Err(Fail::Module(ModuleError::Transport(e)))) => Ok(Seen::Down(e.to_string())),
        Ok(Err(Fail::NoAnswer(o))) => Ok(Seen::Down(o.msg.clone().unwrap_or_default())),
        Ok(Err(other)) => Err(other),
        Err(_) => Ok(Seen::Down(format!("no answer within {:?}", waits.probe))),
    }
}

async fn pause(ctx: &CheckCtx<'_>, d: Duration) -> Result<(), Fail> {
    tokio::select! {
        _ = tokio::time::sleep(d) => Ok(()),
        _ = ctx.cancel.cancelled() => Err(TransportError::Cancelled.into()),
    }
}

fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 10.0).round() / 10.0
}

async fn restart(
    waits: Waits,
    test_command: Option<String>,
    ctx: &HostCtx<'_>,
) -> Result<Outcome, Fail> {
    let host_ctx = ctx;
    let request = RebootRequest {
        delay_seconds: Some(waits.delay.as_secs()),
    };
    // Apart from scheduling the restart, this only watches the host.
    let probe = ProbeLink::new(ctx.link);
    let read = ctx.read_only(&probe);
    let before = shipped::read::<BootIdAnswer>(&read, ReadOnlyId::BootId, &json!({}))
        .await?
        .answer
        .boot_id;
    let before = match shipped::call::<RebootAnswer>(ctx, ScriptId::Reboot, &request).await {
        Ok(scheduled) if scheduled.answer.scheduled => scheduled.answer.boot_id_before,
        Ok(scheduled) => {
            return Ok(Outcome::failed(format!(
                "the restart was not scheduled: {}",
                scheduled.error.unwrap_or_else(|| "no reason given".into())
            )));
        }
        // A host going down fast drops the connection, or tears down the shell, before the
        // answer arrives: the restart has begun. Watch for the new boot id as always; a restart
        // that did not happen fails at the shutdown deadline below.
        Err(Fail::Module(ModuleError::Transport(e))) if !matches!(e, TransportError::Cancelled) => {
            tracing::info!(host = %ctx.host.name, "connection lost while scheduling the restart ({e}); waiting for the host");
            read.probe.reset().await;
            before
        }
        Err(e) => return Err(e),
    };
    let ctx = &read;
    let start = Instant::now();
    let failed = |phase: &str, detail: String| {
        Outcome::failed(format!("{phase}: {detail}"))
            .having_changed(true)
            .with("boot_id_before", before.clone())
            .with("phase", phase.to_string())
    };

    // Phase 2: the old boot ends.
    let deadline = Instant::now() + waits.delay + waits.shutdown;
    let mut came_back = None;
    loop {
        pause(ctx, waits.poll).await?;
        match poll_boot_id(ctx, waits).await? {
            Seen::Down(_) => break,
            Seen::Id(id) if id != before => {
                came_back = Some(id);
                break;
            }
            Seen::Id(_) if Instant::now() >= deadline => {
                return Ok(failed(
                    "shutdown",
                    format!(
                        "the host still answers with boot id {before} after {} s; the restart \
                         did not happen (cancelled with shutdown /a, or blocked)",
                        secs(waits.delay + waits.shutdown)
                    ),
                ));
            }
            Seen::Id(_) => {}
        }
    }
    let down_at = start.elapsed();
    ctx.probe.reset().await;

    // Phase 3: back, with a new boot id.
    let deadline = Instant::now() + waits.boot;
    let after = match came_back {
        Some(id) => id,
        None => loop {
            pause(ctx, waits.poll).await?;
            let seen = poll_boot_id(ctx, waits).await?;
            match seen {
                Seen::Id(id) if id != before => break id,
                _ if Instant::now() >= deadline => {
                    let last = match seen {
                        Seen::Id(_) => format!("it answers, but still with boot id {before}"),
                        Seen::Down(e) => format!("last error: {e}"),
                    };
                    return Ok(failed(
                        "boot",
                        format!(
                            "the host did not come back within {} s; {last}",
                            secs(waits.boot)
                        ),
                    ));
                }
                Seen::Id(_) => {}
                Seen::Down(_) => ctx.probe.reset().await,
            }
        },
    };
    let back_at = start.elapsed();
    pause(ctx, waits.post).await?;

    // Phase 4: services.
    if !waits.services.is_zero() {
        let deadline = Instant::now() + waits.services;
        loop {
            let waiting = match shipped::facts_as_read(ctx).await {
                Ok(f) => f
                    .services
                    .iter()
                    .filter(|s| s.start_type == "Automatic" && s.status != "Running")
                    .map(|s| s.name.clone())
                    .collect::<Vec<_>>(),
                Err(Fail::Module(ModuleError::Transport(TransportError::Cancelled))) => {
                    return Err(TransportError::Cancelled.into());
                }
                Err(_) => vec!["(facts not readable yet)".to_string()],
            };
            if waiting.is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                return Ok(failed(
                    "services",
                    format!(
                        "back with boot id {after}, but after {} s these Automatic services are \
                         not running: {}",
                        secs(waits.services),
                        waiting.join(", ")
                    ),
                )
                .with("boot_id_after", after));
            }
            pause(ctx, waits.poll).await?;
        }
    }
    // Phase 5: the user's own test (win_reboot's `test_command`), until it succeeds.
    if let Some(test) = test_command {
        let deadline = Instant::now() + waits.boot;
        loop {
            let last = match run_test(host_ctx, &test, waits.probe).await {
                Ok(0) => break,
                Ok(code) => format!("it exited with {code}"),
                Err(TransportError::Cancelled) => return Err(TransportError::Cancelled.into()),
                Err(e) => e.to_string(),
            };
            if Instant::now() >= deadline {
                return Ok(failed(
                    "test_command",
                    format!("back with boot id {after}, but test_command never succeeded within {} s; {last}", secs(waits.boot)),
                )
                .with("boot_id_after", after));
            }
            pause(ctx, waits.poll).await?;
        }
    }
    let total = start.elapsed();
    Ok(Outcome::changed()
        .with_msg(format!(
            "restarted: down after {} s, back after {} s, services up after {} s",
            secs(down_at),
            secs(back_at),
            secs(total)
        ))
        .with("boot_id_before", before)
        .with("boot_id_after", after)
        .with("down_seconds", secs(down_at))
        .with("back_seconds", secs(back_at))
        .with("elapsed", secs(total)))
}

/// Run `test_command` once; its exit code.
async fn run_test(ctx: &HostCtx<'_>, test: &str, limit: Duration) -> Result<i32, TransportError> {
    let transport = ctx.link.transport().await?;
    let mut request = RunRequest::new(Script::raw(test.to_string()), limit);
    request.cancel = ctx.cancel.clone();
    Ok(transport.run(request).await?.exit_code)
}

#[cfg(test)]
mod tests {
    use super::super::exchange_script::testing::*;
    use super::*;
    use crate::contract::ServiceInfo;
    use crate::transport::Cause;
    use crate::transport::fake::{FakeFleet, FakeReply};
    use std::sync::{Arc, Mutex};

    /// A host that restarts at the `reboot` call: it keeps answering the old id for
    /// `old_for`, is unreachable until `down_until`, then answers `new_id`; its services run
    /// from `services_at`. Times are from the `reboot` call.
    struct Timeline {
        old_for: Duration,
        down_until: Duration,
        new_id: &'static str,
        services_at: Duration,
    }

    fn fleet(t: Timeline) -> Arc<FakeFleet> {
        fleet_with(t, false)
    }

    /// With `drops`, the connection drops while the restart is being scheduled.
    fn fleet_with(t: Timeline, drops: bool) -> Arc<FakeFleet> {
        let t0: Arc<Mutex<Option<Instant>>> = Arc::default();
        FakeFleet::new(move |_, s| {
            let since = t0.lock().unwrap().map(|t| t.elapsed());
            match (id(s), since) {
                (ScriptId::BootId, None) => answer(
                    &BootIdAnswer {
                        boot_id: "old".into(),
                        uptime_seconds: 1,
                    },
                    0,
                ),
                (ScriptId::Reboot, _) if drops => {
                    *t0.lock().unwrap() = Some(Instant::now());
                    FakeReply {
                        delay: Duration::ZERO,
                        result: Err(TransportError::Dropped {
                            endpoint: "ex01:5985".into(),
                            cause: Cause::text("connection closed before message completed"),
                        }),
                    }
                }
                (ScriptId::Reboot, _) => {
                    *t0.lock().unwrap() = Some(Instant::now());
                    answer(
                        &RebootAnswer {
                            boot_id_before: "old".into(),
                            scheduled: true,
                        },
                        0,
                    )
                }
                (ScriptId::BootId, Some(e)) if e >= t.old_for && e < t.down_until => FakeReply {
                    delay: Duration::ZERO,
                    result: Err(TransportError::Unreachable {
                        endpoint: "ex01:5985".into(),
                        cause: Cause::text("connection refused"),
                    }),
                },
                (ScriptId::BootId, Some(e)) => answer(
                    &BootIdAnswer {
                        boot_id: if e < t.old_for { "old" } else { t.new_id }.into(),
                        uptime_seconds: 1,
                    },
                    0,
                ),
                (ScriptId::ExchangeFacts, Some(e)) => {
                    let mut f = facts("15.2.792.10");
                    f.services = vec![ServiceInfo {
                        name: "MSExchangeIS".into(),
                        display_name: "Microsoft Exchange Information Store".into(),
                        start_type: "Automatic".into(),
                        status: if e >= t.services_at {
                            "Running"
                        } else {
                            "Stopped"
                        }
                        .into(),
                    }];
                    answer(&f, 0)
                }
                other => panic!("unexpected {other:?}"),
            }
        })
    }

    async fn run(f: &Arc<FakeFleet>, args: Value) -> (Outcome, usize) {
        let link = FakeLink::new(f);
        let o = with_ctx(&link, json!({}), async |ctx| {
            Reboot.apply(&args, ctx).await.unwrap()
        })
        .await;
        (o, link.resets.load(std::sync::atomic::Ordering::SeqCst))
    }

    #[tokio::test(start_paused = true)]
    async fn check_reads_the_boot_id_and_restarts_nothing() {
        let f = FakeFleet::new(|_, s| {
            assert_eq!(id(s), ScriptId::BootId, "check ran {:?}", s.id);
            answer(
                &BootIdAnswer {
                    boot_id: "b1".into(),
                    uptime_seconds: 7200,
                },
                0,
            )
        });
        let link = FakeLink::new(&f);
        let o = with_check_ctx(&link, json!({}), async |ctx| {
            Reboot.check(&json!({}), ctx).await.unwrap()
        })
        .await;
        assert!(o.status.changed() && !o.status.failed(), "{o:?}");
        assert_eq!(
            o.msg.as_deref(),
            Some("would restart the host (up 2.0 h, boot id b1) and wait for a new boot id")
        );
        assert_eq!(o.data["boot_id_before"], "b1");
        assert_eq!(f.commands().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn waits_through_every_phase_and_reconnects() {
        let f = fleet(Timeline {
            old_for: Duration::from_secs(25),
            down_until: Duration::from_secs(300),
            new_id: "new",
            services_at: Duration::from_secs(420),
        });
        let (o, resets) = run(&f, json!({})).await;
        assert!(o.status.changed() && !o.status.failed(), "{o:?}");
        assert_eq!(o.data["boot_id_after"], "new");
        assert_eq!(o.data["down_seconds"], 30.0);
        assert_eq!(o.data["back_seconds"], 300.0);
        assert_eq!(o.data["elapsed"], 420.0);
        assert!(
            resets >= 2,
            "reset after the shutdown and after failed attempts"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_lost_while_scheduling_means_the_restart_has_begun() {
        let f = fleet_with(
            Timeline {
                old_for: Duration::ZERO,
                down_until: Duration::from_secs(60),
                new_id: "new",
                services_at: Duration::from_secs(90),
            },
            true,
        );
        let (o, _) = run(&f, json!({})).await;
        assert!(o.status.changed() && !o.status.failed(), "{o:?}");
        assert_eq!(o.data["boot_id_before"], "old");
        assert_eq!(o.data["boot_id_after"], "new");
    }

    #[tokio::test(start_paused = true)]
    async fn the_old_boot_id_never_counts_as_back() {
        // Down briefly, then answering the old id again (a network blip, not a restart).
        let f = fleet(Timeline {
            old_for: Duration::from_secs(25),
            down_until: Duration::from_secs(40),
            new_id: "old",
            services_at: Duration::ZERO,
        });
        let (o, _) = run(&f, json!({"boot_timeout": 120})).await;
        assert!(o.status.failed(), "{o:?}");
        assert_eq!(o.data["phase"], "boot");
        assert!(o.msg.unwrap().contains("still with boot id old"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_restart_that_never_happens_fails_in_the_shutdown_phase() {
        let f = fleet(Timeline {
            old_for: Duration::from_secs(100_000),
            down_until: Duration::from_secs(100_000),
            new_id: "new",
            services_at: Duration::ZERO,
        });
        let (o, _) = run(&f, json!({"shutdown_timeout": 60})).await;
        assert!(o.status.failed());
        assert_eq!(o.data["phase"], "shutdown");
    }

    #[tokio::test(start_paused = true)]
    async fn services_that_stay_down_fail_the_last_phase() {
        let f = fleet(Timeline {
            old_for: Duration::from_secs(10),
            down_until: Duration::from_secs(100),
            new_id: "new",
            services_at: Duration::from_secs(100_000),
        });
        let (o, _) = run(&f, json!({"services_timeout": 300})).await;
        assert!(o.status.failed());
        assert_eq!(o.data["phase"], "services");
        assert!(o.msg.unwrap().contains("MSExchangeIS"));
        let (o, _) = run(&f, json!({"services_timeout": 0})).await;
        assert!(
            !o.status.failed(),
            "services_timeout 0 skips the wait: {o:?}"
        );
    }
}
