//! `exchange_verify`: after an update, is the server at the expected build with the expected
//! KB, its services enabled and running, its components active and OWA answering?

use std::time::Duration;

use jiff::SignedDuration;
use tokio_util::sync::CancellationToken;

use crate::catalog::Build;
use crate::command::{EXIT_TERMINATED, Out, sim_sleep};
use crate::fleet_core::FleetCore;
use crate::state::HostState;
use salve_contract::contract::{ScriptId, VerifyAnswer, VerifyRequest};

/// The script gives stopped Automatic services time when the server booted less than this
/// long ago (`$recentBootMinutes`)...
const RECENT_BOOT: Duration = Duration::from_secs(15 * 60);
/// ... for at most this long (`$serviceWaitSeconds`), looking again every
/// [`SERVICE_POLL`] (`Start-Sleep -Seconds 15`).
const SERVICE_WAIT: Duration = Duration::from_secs(300);
const SERVICE_POLL: Duration = Duration::from_secs(15);

/// Answer with the checks; exit 1 when any fails, as the real script does. Right after a
/// restart, Automatic (Delayed Start) services are still stopped: the script waits for them.
pub(super) async fn run(
    core: &FleetCore,
    idx: usize,
    req: &VerifyRequest,
    out: &Out,
    kill: &CancellationToken,
    unmanageable: Option<&str>,
) -> i32 {
    let mut waited = Duration::ZERO;
    let answer = loop {
        let now = core.clock.now();
        let (answer, uptime) = core.with_host(idx, |s| {
            let uptime = now.duration_since(s.boot_time);
            (verify(s, req, unmanageable), uptime)
        });
        let recent = uptime < SignedDuration::try_from(RECENT_BOOT).unwrap_or(SignedDuration::MAX);
        if answer.stopped_automatic_services.is_empty() || !recent || waited >= SERVICE_WAIT {
            break answer;
        }
        out.line(&format!(
            "Booted {} s ago; waiting for Automatic services to start: {}",
            uptime.as_secs(),
            answer.stopped_automatic_services.join(", ")
        ));
        if !sim_sleep(core, SERVICE_POLL, kill).await {
            return EXIT_TERMINATED;
        }
        waited += SERVICE_POLL;
    };
    super::answer(core, idx, ScriptId::ExchangeVerify, out, &answer);
    i32::from(!answer.success)
}

/// The script's answer; component states it cannot read (`unmanageable`: Exchange's cmdlets
/// did not load) are reported as one "not readable" entry, as its `catch` does.
fn verify(s: &HostState, req: &VerifyRequest, unmanageable: Option<&str>) -> VerifyAnswer {
    let build = s.build.map(|b| b.to_string());
    let build_matches = req.expected_build.as_ref().map(|e| {
        let want: Option<Build> = e.parse().ok();
        want.is_some() && want == s.build
    });
    let kb_present = req
        .expected_kb
        .as_ref()
        .map(|kb| s.installed_kbs().contains(kb));
    let disabled_services: Vec<String> = s
        .services
        .iter()
        .filter(|x| super::watched(x) && x.start_type == "Disabled")
        .map(|x| x.name.clone())
        .collect();
    let stopped_automatic_services: Vec<String> = s
        .services
        .iter()
        .filter(|x| super::watched(x) && x.start_type == "Automatic" && x.status != "Running")
        .map(|x| x.name.clone())
        .collect();
    let inactive_components = match unmanageable {
        Some(why) => vec![format!("(component states not readable: {why})")],
        None => s.inactive_components(),
    };
    let owa = s.owa_logon();
    let mut answer = VerifyAnswer {
        build,
        build_matches,
        kb_present,
        disabled_services,
        stopped_automatic_services,
        inactive_components,
        owa_status: owa.status,
        // The script reads the error page only for an answer it does not take as healthy.
        owa_error: owa.error,
        owa_location: owa.location,
        pending_reboot: s.pending_reboot.clone(),
        success: false,
    };
    // `$owaHealthy`: the same rule as the contract's.
    let owa_healthy = answer.owa_healthy();
    answer.success = answer.build.is_some()
        && answer.build_matches != Some(false)
        && answer.kb_present != Some(false)
        && answer.disabled_services.is_empty()
        && answer.stopped_automatic_services.is_empty()
        && answer.inactive_components.is_empty()
        && owa_healthy;
    answer
}
