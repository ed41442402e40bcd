//! `exchange_verify`: after an update, is the server at the expected build with the expected
//! KB, its services enabled and running, its components active and OWA answering?

use crate::catalog::Build;
use crate::command::Out;
use crate::fleet_core::FleetCore;
use crate::state::HostState;
use salve_contract::contract::{ScriptId, VerifyAnswer, VerifyRequest};

/// Answer with the checks; exit 1 when any fails, as the real script does.
pub(super) fn run(core: &FleetCore, idx: usize, req: &VerifyRequest, out: &Out) -> i32 {
    let answer = core.with_host(idx, |s| verify(s, req));
    super::answer(core, idx, ScriptId::ExchangeVerify, out, &answer);
    i32::from(!answer.success)
}

fn verify(s: &HostState, req: &VerifyRequest) -> VerifyAnswer {
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
    let inactive_components = s.inactive_components();
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
