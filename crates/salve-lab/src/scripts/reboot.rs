//! `reboot`: schedule a restart after the requested delay (the host goes down and comes back
//! on the simulated clock) and answer with the boot id before it.

use std::sync::Arc;
use std::time::Duration;

use crate::command::Out;
use crate::fleet_core::FleetCore;
use salve_contract::contract::{RebootAnswer, RebootRequest, ScriptId};

/// Schedule the restart; always succeeds.
pub(super) fn run(core: &Arc<FleetCore>, idx: usize, req: &RebootRequest, out: &Out) -> i32 {
    let before = core.with_host(idx, |s| s.boot_id());
    let delay = req
        .delay_seconds
        .unwrap_or(core.durations.reboot_delay_seconds);
    out.line(&format!("Restarting {} in {delay} seconds", core.name(idx)));
    core.schedule_reboot(idx, Duration::from_secs(delay));
    super::answer(
        core,
        idx,
        ScriptId::Reboot,
        out,
        &RebootAnswer {
            boot_id_before: before,
            scheduled: true,
        },
    );
    0
}
