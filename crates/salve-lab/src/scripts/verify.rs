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
        .filter(|x| x.start_type == "Disabled")
        .map(|x| x.name.clone())
        .collect();
    let stopped_automatic_services: Vec<String> = s
        .services
        .iter()
        .filter(|x| x.start_type == "Automatic" && x.status != "Running")
        .map(|x| x.name.clone())
        .collect();
    let inactive_components = s.inactive_components();
    let (owa_status, owa_error) =
        match (&s.owa_error, disabled_services.iter().any(|x| x == "W3SVC")) {
            (_, true) => (503, Some("Service Unavailable".to_string())),
            (Some(e), _) => (500, Some(e.clone())),
            (None, _)
                if s.services
                    .iter()
                    .any(|x| x.name == "MSExchangeServiceHost" && x.status != "Running") =>
            {
                (503, Some("Service Unavailable".to_string()))
            }
            (None, _) => (200, None),
        };
    let success = build.is_some()
        && build_matches != Some(false)
        && kb_present != Some(false)
        && disabled_services.is_empty()
        && stopped_automatic_services.is_empty()
        && inactive_components.is_empty()
        && owa_status == 200;
    VerifyAnswer {
        build,
        build_matches,
        kb_present,
        disabled_services,
        stopped_automatic_services,
        inactive_components,
        owa_status,
        owa_error,
        pending_reboot: s.pending_reboot.clone(),
        success,
    }
}
