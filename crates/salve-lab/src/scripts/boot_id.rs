//! `boot_id`: the host's last boot time (its boot id) and uptime on the simulated clock.

use crate::command::Out;
use crate::fleet_core::FleetCore;
use salve_contract::contract::{BootIdAnswer, ScriptId};

/// Answer with the boot id and uptime; always succeeds.
pub(super) fn run(core: &FleetCore, idx: usize, out: &Out) -> i32 {
    let now = core.clock.now();
    let answer = core.with_host(idx, |s| BootIdAnswer {
        boot_id: s.boot_id(),
        uptime_seconds: u64::try_from(now.duration_since(s.boot_time).as_secs()).unwrap_or(0),
    });
    super::answer(core, idx, ScriptId::BootId, out, &answer);
    0
}
