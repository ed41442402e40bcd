//! How the shipped scripts run `msiexec` (`Invoke-SalveMsiexec` in `exchange_update.ps1` and
//! `exchange_mitigate.ps1`): while Windows Installer is held by another installation
//! ([`HostState::installer_busy`](crate::state::HostState::installer_busy), msiexec 1618),
//! try again every 30 seconds for up to 15 minutes, then report 1618 by name.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::command::{Out, sim_sleep};
use crate::fleet_core::FleetCore;

/// How long the scripts wait for another installation to finish (`$installerWaitSeconds`).
pub(super) const INSTALLER_WAIT: Duration = Duration::from_secs(15 * 60);
/// Pause between two tries (`Start-Sleep -Seconds 30`).
const INSTALLER_RETRY: Duration = Duration::from_secs(30);

/// Take Windows Installer for the installation `label` (recorded as the host's running
/// install), waiting as the scripts do while another holds it. `Err(holder)` when it is still
/// held after [`INSTALLER_WAIT`], or the wait was killed.
pub(super) async fn claim(
    core: &FleetCore,
    idx: usize,
    label: &str,
    out: &Out,
    kill: &CancellationToken,
) -> Result<(), String> {
    let mut waited = Duration::ZERO;
    loop {
        let now = core.clock.now();
        let busy = core.with_host(idx, |s| {
            let busy = s.installer_busy(now);
            if busy.is_none() {
                s.installing = Some(label.to_string());
            }
            busy
        });
        let Some(holder) = busy else {
            return Ok(());
        };
        if waited >= INSTALLER_WAIT {
            return Err(holder);
        }
        out.line(
            "Another installation is in progress (msiexec 1618, ERROR_INSTALL_ALREADY_RUNNING); \
             retrying in 30 seconds",
        );
        if !sim_sleep(core, INSTALLER_RETRY, kill).await {
            return Err(holder);
        }
        waited += INSTALLER_RETRY;
    }
}

/// The reason the scripts give when Windows Installer stayed held.
pub(super) fn still_busy(holder: &str) -> String {
    format!(
        "another installation is still in progress after waiting {} minutes (msiexec 1618, \
         ERROR_INSTALL_ALREADY_RUNNING): {holder}; nothing was installed",
        INSTALLER_WAIT.as_secs() / 60
    )
}
