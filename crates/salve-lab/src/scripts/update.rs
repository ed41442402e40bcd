//! `exchange_update`: a CU through Setup.exe, an SU through msiexec, or a .NET Framework
//! offline installer. Updates take simulated time and change the build only at the next
//! restart (pending-reboot markers set); an SU for another CU fails as msiexec does (1642 and
//! "The upgrade patch cannot be installed ..."); Setup refuses a CU with a reboot pending or too
//! old a .NET; an interrupted install leaves the Exchange services Disabled. .NET 4.x is an
//! in-place update: its installer writes the new `Release` value and asks for a restart (3010);
//! one already at or past the version installs nothing (Microsoft's .NET Framework deployment
//! guide: return codes 0, 1641, 3010).

use std::time::Duration;

use jiff::Timestamp;
use tokio_util::sync::CancellationToken;

use super::installer;
use crate::catalog::{self, Build, Family};
use crate::command::{EXIT_TERMINATED, Out, sim_sleep};
use crate::fleet_core::FleetCore;
use crate::log::LabEvent;
use crate::state::{HostState, InstallFailure, MARKER_FILE_RENAME, MARKER_UPDATE_EXE};
use salve_contract::contract::{ScriptId, UpdateAnswer, UpdateKind, UpdateRequest};

const WRONG_PATCH: &str = "The upgrade patch cannot be installed by the Windows Installer service because the program to be upgraded may be missing, or the upgrade patch may update a different version of the program. Verify that the program to be upgraded exists on your computer and that you have the correct upgrade patch.";
const SETUP_FAILED: &str = "The Exchange Server setup operation didn't complete.  More details can be found in ExchangeSetup.log located in the <SystemDrive>:\\ExchangeSetupLogs folder.";
const SETUP_OK: &str = "The Exchange Server setup operation completed successfully.";

/// Sizes of the packages the script pulls: an SU's .msp, a CU's ISO.
const SU_BYTES: u64 = 150 * 1024 * 1024;
const CU_BYTES: u64 = 6 * 1024 * 1024 * 1024;
/// `$salveReserveBytes`: what `Assert-SalveRoomFor` keeps free after a package.
const RESERVE_BYTES: u64 = 4 * 1024 * 1024 * 1024;

/// Whether the script can fetch `req.source` from this host: a share needs network credentials
/// and the share's permission ([`Out::read_file`]); a URL on a server whose network allows the
/// web only through a proxy needs that proxy (`Get-SalveWebArgs`), or Invoke-WebRequest fails
/// as Windows words it. A package salve serves (`server_pin`) is downloaded for real from
/// salve's endpoint with the step's token, and its SHA-256 checked as `Get-FileHash` would.
async fn reach(core: &FleetCore, idx: usize, req: &UpdateRequest, out: &Out) -> Result<(), String> {
    if let Some(pin) = &req.server_pin {
        let token = out.download_token().ok_or(
            "the package is served by salve, and no download token was left for this step",
        )?;
        out.line(&format!("Downloading {}", req.source));
        let got = super::served::download(&req.source, token, pin).await?;
        let expected = req.sha256.to_ascii_lowercase();
        if got.sha256 != expected {
            return Err(format!(
                "SHA-256 of {} is {}, expected {expected}; the file was deleted and nothing was \
                 installed",
                req.source, got.sha256
            ));
        }
        out.line(&format!(
            "SHA-256 verified: {} ({} bytes)",
            got.sha256, got.length
        ));
        return Ok(());
    }
    out.read_file(core, &req.source)?;
    core.with_host(idx, |s| s.web_reachable(&req.source, req.proxy.as_deref()))
}

/// `Assert-SalveRoomFor`: the package's size (known before the copy) plus the reserve must fit
/// on the system drive, or the script refuses before writing anything.
fn room_for(core: &FleetCore, idx: usize, req: &UpdateRequest, size: u64) -> Result<(), String> {
    let free = core.with_host(idx, |s| s.free_disk_bytes);
    if free.saturating_sub(size) < RESERVE_BYTES || free < size {
        let gb = |b: u64| b as f64 / (1024.0 * 1024.0 * 1024.0);
        return Err(format!(
            "{} needs {:.1} GB on C:, which has {:.1} GB free; 4 GB must stay free after it \
             (Exchange transport stops taking mail on a full drive). Free space on C:, then run \
             again; nothing was copied",
            req.source,
            gb(size),
            gb(free)
        ));
    }
    Ok(())
}

/// Where `Get-SalvePayload` puts a package: `C:\salve\updates\<kb>.<ext>`.
fn package_path(req: &UpdateRequest) -> String {
    let ext = match req.kind {
        UpdateKind::Su => "msp",
        UpdateKind::Cu => "iso",
        UpdateKind::DotNet => "exe",
        UpdateKind::PrepareAd => "iso",
    };
    format!("C:\\salve\\updates\\{}.{ext}", req.kb)
}

/// The installer process the script starts, as `Win32_Process.CommandLine` shows it: msiexec
/// with the .msp, Setup.exe from the mounted image, or the .NET offline installer.
fn command_line(req: &UpdateRequest) -> String {
    let package = package_path(req);
    match req.kind {
        UpdateKind::Su => {
            format!("\"C:\\Windows\\system32\\msiexec.exe\" /update \"{package}\" /qn /norestart")
        }
        UpdateKind::Cu => format!(
            "\"D:\\Setup.exe\" /Mode:Upgrade {}",
            req.license_switch.as_deref().unwrap_or_default()
        ),
        UpdateKind::DotNet => format!("\"{package}\" /q /norestart"),
        UpdateKind::PrepareAd => format!(
            "\"D:\\Setup.exe\" /PrepareAD {}",
            req.license_switch.as_deref().unwrap_or_default()
        ),
    }
}

/// Outcome of an install attempt, before it is written to the log and the answer.
struct Outcome {
    exit_code: i32,
    log: Vec<String>,
    success: bool,
    already: bool,
    reason: Option<String>,
}

impl Outcome {
    fn failed(exit_code: i32, log: Vec<String>, reason: impl Into<String>) -> Self {
        Outcome {
            exit_code,
            log,
            success: false,
            already: false,
            reason: Some(reason.into()),
        }
    }
}

fn setup_line(now: Timestamp, text: &str) -> String {
    format!("[{}.0000] [0] {text}", now.strftime("%m/%d/%Y %H:%M:%S"))
}

/// Install the requested update; exit code as Setup or msiexec gives it.
pub(super) async fn run(
    core: &FleetCore,
    idx: usize,
    req: &UpdateRequest,
    out: &Out,
    kill: &CancellationToken,
) -> i32 {
    let valid_hash = req.sha256.len() == 64 && req.sha256.chars().all(|c| c.is_ascii_hexdigit());
    let target: Option<Build> = req.target_build.parse().ok();
    let outcome = match (valid_hash, target) {
        (false, _) => Outcome::failed(
            1,
            Vec::new(),
            "sha256 must be 64 hexadecimal digits; nothing was installed",
        ),
        (_, None) => Outcome::failed(
            1,
            Vec::new(),
            format!("target_build `{}` is not a build number", req.target_build),
        ),
        (true, Some(target)) => {
            // Windows Installer runs one installation at a time (msiexec 1618); the script
            // retries every 30 s for up to 15 minutes, then reports 1618 by name.
            match installer::claim(core, idx, &command_line(req), out, kill).await {
                Err(running) => Outcome::failed(
                    1618,
                    vec![format!(
                        "Another installation is already in progress ({running})."
                    )],
                    installer::still_busy(&running),
                ),
                Ok(()) => {
                    let outcome = match req.kind {
                        UpdateKind::Su => install_su(core, idx, req, target, out, kill).await,
                        UpdateKind::Cu => install_cu(core, idx, req, target, out, kill).await,
                        UpdateKind::DotNet => install_dotnet(core, idx, req, out, kill).await,
                        UpdateKind::PrepareAd => {
                            prepare_ad(core, idx, req, target, out, kill).await
                        }
                    };
                    core.with_host(idx, |s| {
                        s.installing = None;
                        // The script's `finally` dismounts the ISO, unless it was killed.
                        if matches!(req.kind, UpdateKind::Cu | UpdateKind::PrepareAd)
                            && !kill.is_cancelled()
                        {
                            s.dismount_image(&package_path(req));
                        }
                    });
                    outcome
                }
            }
        }
    };
    // AD preparation changes the forest ([`LabEvent::AdPrepared`]), not the server.
    let event = if req.kind == UpdateKind::PrepareAd && outcome.success {
        None
    } else if outcome.success && !outcome.already {
        Some(LabEvent::Installed {
            update: req.kind,
            kb: req.kb.clone(),
            target: req.target_build.clone(),
        })
    } else if !outcome.success {
        Some(LabEvent::InstallFailed {
            update: req.kind,
            kb: req.kb.clone(),
            exit_code: outcome.exit_code,
            reason: outcome.reason.clone().unwrap_or_default(),
        })
    } else {
        None
    };
    if let Some(e) = event {
        core.record(idx, e);
    }
    // After a successful install the package is deleted unless asked to keep it.
    if outcome.success && !outcome.already && !req.keep_packages {
        let path = package_path(req);
        if core.with_host(idx, |s| s.delete_download(&path)) {
            out.line(&format!("Removed {path}"));
        }
    }
    if kill.is_cancelled() {
        return EXIT_TERMINATED;
    }
    if let Some(reason) = &outcome.reason {
        out.error(std::slice::from_ref(reason));
    }
    let reboot_required = outcome.success && !outcome.already && req.kind != UpdateKind::PrepareAd;
    super::answer(
        core,
        idx,
        ScriptId::ExchangeUpdate,
        out,
        &UpdateAnswer {
            exit_code: outcome.exit_code,
            log_excerpt: outcome.log.iter().rev().take(20).rev().cloned().collect(),
            reboot_required,
            success: outcome.success,
            already_installed: outcome.already,
            reason: outcome.reason,
        },
    );
    i32::from(!outcome.success)
}

/// The CU Setup step during which the WinRM service is stopped and started again, for one
/// step's length: Setup restarts services, WinRM among them (the reason ExchangeDsc's
/// xExchInstall runs Setup from a scheduled task). A Setup started inside a WinRM shell dies
/// with it, half-way; one in a scheduled task goes on.
const SETUP_RESTARTS_WINRM: &str = "Stopping Services";

/// Record that an installer began (`LabEvent::InstallStarted`).
fn begin_setup(core: &FleetCore, idx: usize, req: &UpdateRequest) {
    core.record(
        idx,
        LabEvent::InstallStarted {
            update: req.kind,
            kb: req.kb.clone(),
            target: req.target_build.clone(),
        },
    );
}

/// Start the install: Setup/msiexec stops and disables the Exchange services.
fn begin_install(core: &FleetCore, idx: usize, req: &UpdateRequest) {
    begin_setup(core, idx, req);
    let disabled = core.with_host(idx, HostState::disable_services);
    if !disabled.is_empty() {
        core.record(idx, LabEvent::ServicesDisabled { services: disabled });
    }
}

/// Let the install run for `minutes` of simulated time in steps, printing progress; `false`
/// when it was interrupted (killed) or the host went down under it.
async fn run_steps(
    core: &FleetCore,
    idx: usize,
    minutes: u64,
    steps: &[&str],
    out: &Out,
    kill: &CancellationToken,
) -> bool {
    let step = Duration::from_secs(minutes * 60 / steps.len().max(1) as u64);
    for s in steps {
        out.line(s);
        if *s == SETUP_RESTARTS_WINRM {
            core.restart_winrm(idx, step);
        }
        if !sim_sleep(core, step, kill).await || !core.with_host(idx, |h| h.is_up()) {
            return false;
        }
    }
    true
}

async fn install_su(
    core: &FleetCore,
    idx: usize,
    req: &UpdateRequest,
    target: Build,
    out: &Out,
    kill: &CancellationToken,
) -> Outcome {
    let (current, faults) =
        core.with_host(idx, |s| (s.pending_build.or(s.build), s.faults.clone()));
    let Some(current) = current else {
        return Outcome::failed(
            1603,
            Vec::new(),
            "ExSetup.exe was not found: Exchange setup did not complete the last time it ran",
        );
    };
    let Some(su) = catalog::su_exact(target).filter(|s| s.kb.eq_ignore_ascii_case(&req.kb)) else {
        return Outcome::failed(
            1619,
            vec!["This installation package could not be opened. Verify that the package exists and that you can access it, or contact the application vendor to verify that this is a valid Windows Installer package.".into()],
            format!("{} is not a package for build {target}", req.kb),
        );
    };
    out.line(&format!(
        "msiexec.exe /update {} /qn /norestart",
        req.source
    ));
    if current.0[..3] != su.cu.0[..3] || current < su.cu {
        return Outcome::failed(
            1642,
            vec![WRONG_PATCH.to_string()],
            format!("{WRONG_PATCH} (installed build {current})"),
        );
    }
    if current >= target {
        return Outcome {
            exit_code: 0,
            log: vec![format!(
                "{} is already installed (build {current}).",
                req.kb
            )],
            success: true,
            already: true,
            reason: None,
        };
    }
    if let Err(e) = reach(core, idx, req, out).await {
        return Outcome::failed(1, Vec::new(), e);
    }
    if let Err(e) = room_for(core, idx, req, SU_BYTES) {
        return Outcome::failed(1, Vec::new(), e);
    }
    if let Err(e) = core.with_host(idx, |s| s.store_download(&package_path(req), SU_BYTES)) {
        return Outcome::failed(1, Vec::new(), e);
    }
    begin_install(core, idx, req);
    let steps = [
        "Stopping services",
        "Updating files",
        "Running ngen",
        "Updating OWA resources",
        "Starting services",
    ];
    let finished = run_steps(core, idx, core.durations.su_minutes, &steps, out, kill).await;
    let display = catalog::su_display_name(su);
    if !finished || faults.install_failure == Some(InstallFailure::Aborted) {
        let line = format!(
            "Product: Microsoft Exchange Server - Update '{display}' could not be installed. Error code 1603."
        );
        return Outcome::failed(
            1603,
            vec![line],
            "the installation was interrupted; Exchange services are left Disabled",
        );
    }
    if faults.install_failure == Some(InstallFailure::Fatal) {
        core.with_host(idx, HostState::restore_services);
        let line = format!(
            "Product: Microsoft Exchange Server - Update '{display}' could not be installed. Error code 1603."
        );
        return Outcome::failed(1603, vec![line], "fatal error during installation (1603)");
    }
    core.with_host(idx, |s| {
        s.restore_services();
        if !s.uninstall_entries.contains(&display) {
            s.uninstall_entries.push(display.clone());
        }
        let family = Family::of(target).map_or("Exchange", Family::product_name);
        s.update_packages.push(format!("{} for {family}", su.kb));
        s.pending_build = Some(target);
        s.add_pending_reboot(MARKER_FILE_RENAME);
        s.add_pending_reboot(MARKER_UPDATE_EXE);
        if faults.non_elevated_su {
            s.owa_error = Some("Could not load file or assembly 'Microsoft.Exchange.Common, Version=15.0.0.0, Culture=neutral, PublicKeyToken=31bf3856ad364e35' or one of its dependencies.".into());
        }
    });
    Outcome {
        exit_code: 3010,
        log: vec![
            format!(
                "Product: Microsoft Exchange Server - Update '{display}' installed successfully."
            ),
            "Windows Installer requires a restart: 3010".into(),
        ],
        success: true,
        already: false,
        reason: None,
    }
}

/// `Setup.exe /PrepareSchema` then `/PrepareAD` from the CU's image: the forest's versions
/// become the CU's on every server of the tenant (the lab replicates at once). Exchange rule:
/// only an account in Schema Admins and Enterprise Admins can write them; a process without
/// network credentials (a task running as SYSTEM, the computer account) gets Setup's
/// permission error. Setup raises the versions, never lowers them (a forest prepared by a newer
/// CU stays so). Nothing on the server itself changes, and no restart is needed.
async fn prepare_ad(
    core: &FleetCore,
    idx: usize,
    req: &UpdateRequest,
    target: Build,
    out: &Out,
    kill: &CancellationToken,
) -> Outcome {
    let now = core.clock.now();
    let Some((schema, org)) = catalog::ad_versions(target) else {
        return Outcome::failed(
            1,
            Vec::new(),
            format!("{target} is not the build of a cumulative update"),
        );
    };
    let forest = core.with_host(idx, |s| s.forest.clone());
    if let Err(e) = reach(core, idx, req, out)
        .await
        .and_then(|()| room_for(core, idx, req, CU_BYTES))
    {
        return Outcome::failed(1, Vec::new(), e);
    }
    let iso = package_path(req);
    if let Err(e) = core.with_host(idx, |s| {
        s.dismount_image(&iso);
        s.store_download(&iso, CU_BYTES)?;
        Ok::<_, String>(s.mount_image(&iso))
    }) {
        return Outcome::failed(1, Vec::new(), e);
    }
    out.line(&command_line(req));
    if !out.has_network_credentials() {
        let line = "[ERROR] The current user does not have permission to modify the schema: the account must be a member of Schema Admins and Enterprise Admins.";
        return Outcome::failed(
            1,
            vec![setup_line(now, line), setup_line(now, SETUP_FAILED)],
            "Setup /PrepareSchema: the account is not in Schema Admins and Enterprise Admins",
        );
    }
    begin_setup(core, idx, req);
    let steps = [
        "Extending Active Directory schema",
        "Organization Preparation",
    ];
    if !run_steps(core, idx, core.durations.su_minutes, &steps, out, kill).await {
        return Outcome::failed(1, Vec::new(), "Setup /PrepareAD was interrupted");
    }
    let tenant = core.with_host(idx, |s| s.tenant.clone());
    for other in 0..core.len() {
        core.with_host(other, |s| {
            if s.tenant == tenant {
                s.forest.schema = s.forest.schema.max(schema);
                s.forest.org = s.forest.org.max(org);
            }
        });
    }
    core.record(
        idx,
        LabEvent::AdPrepared {
            forest: forest.root.clone(),
            schema,
            org,
        },
    );
    Outcome {
        exit_code: 0,
        log: vec![
            setup_line(
                now,
                "Command Line Parameter Name='prepareschema', Value=''.",
            ),
            setup_line(now, "Command Line Parameter Name='preparead', Value=''."),
            setup_line(now, SETUP_OK),
        ],
        success: true,
        already: false,
        reason: None,
    }
}

/// Size of a .NET Framework offline installer.
const DOTNET_BYTES: u64 = 120 * 1024 * 1024;

async fn install_dotnet(
    core: &FleetCore,
    idx: usize,
    req: &UpdateRequest,
    out: &Out,
    kill: &CancellationToken,
) -> Outcome {
    let Some(release) = req.dotnet_release else {
        return Outcome::failed(
            1,
            Vec::new(),
            "dotnet_release is required for a .NET step; nothing was installed",
        );
    };
    let current = core.with_host(idx, |s| s.dotnet_release);
    if current >= release {
        return Outcome {
            exit_code: 0,
            log: vec![format!(
                ".NET Framework Release {current} is installed; {} needs {release}: nothing to do",
                req.kb
            )],
            success: true,
            already: true,
            reason: None,
        };
    }
    if let Err(e) = reach(core, idx, req, out)
        .await
        .and_then(|()| room_for(core, idx, req, DOTNET_BYTES))
    {
        return Outcome::failed(1, Vec::new(), e);
    }
    let path = package_path(req);
    if let Err(e) = core.with_host(idx, |s| s.store_download(&path, DOTNET_BYTES)) {
        return Outcome::failed(1, Vec::new(), e);
    }
    begin_setup(core, idx, req);
    // The script stops the Exchange services first (they start again with the restart).
    core.with_host(idx, |s| {
        for svc in s
            .services
            .iter_mut()
            .filter(|x| x.name.starts_with("MSExchange"))
        {
            svc.status = "Stopped".to_string();
        }
    });
    out.line(&format!("{path} /q /norestart"));
    let steps = ["Extracting files", "Installing .NET Framework", "Finishing"];
    if !run_steps(core, idx, core.durations.su_minutes, &steps, out, kill).await {
        return Outcome::failed(
            1603,
            Vec::new(),
            "the .NET Framework installer was interrupted (1603)",
        );
    }
    core.with_host(idx, |s| {
        s.dotnet_release = release;
        s.add_pending_reboot(MARKER_FILE_RENAME);
    });
    Outcome {
        exit_code: 3010,
        log: vec![format!(
            "{}: .NET Framework installed (Release {release}); a restart is required (3010)",
            req.kb
        )],
        success: true,
        already: false,
        reason: None,
    }
}

async fn install_cu(
    core: &FleetCore,
    idx: usize,
    req: &UpdateRequest,
    target: Build,
    out: &Out,
    kill: &CancellationToken,
) -> Outcome {
    let now = core.clock.now();
    let (current, pending_reboot, dotnet, rewrite, faults) = core.with_host(idx, |s| {
        (
            s.pending_build.or(s.build),
            s.pending_reboot.clone(),
            s.dotnet_release,
            s.url_rewrite.is_some(),
            s.faults.clone(),
        )
    });
    let Some(cu) = catalog::cu_exact(target) else {
        return Outcome::failed(
            1,
            Vec::new(),
            format!("{target} is not the build of a cumulative update"),
        );
    };
    let family = Family::of(target);
    let mut log = vec![
        setup_line(
            now,
            &format!(
                "Starting Microsoft Exchange Server {} Setup",
                family.map_or("", Family::setup_name)
            ),
        ),
        setup_line(now, &format!("Setup version: {target}.")),
        setup_line(now, &format!("Logged on user: {}.", core.credentials().0)),
        setup_line(now, "Command Line Parameter Name='mode', Value='Upgrade'."),
    ];
    let fail = |mut log: Vec<String>, line: String, reason: String| {
        log.push(setup_line(now, &line));
        log.push(setup_line(now, SETUP_FAILED));
        Outcome::failed(1, log, reason)
    };
    if let Some(current) = current {
        log.push(setup_line(
            now,
            &format!("The locally installed version is {current}."),
        ));
        if Family::of(current) != family {
            return fail(
                log,
                format!("[ERROR] Setup can't upgrade {current} to {target}."),
                "the CU is for another Exchange version".into(),
            );
        }
        if current >= target {
            return Outcome {
                exit_code: 0,
                log,
                success: true,
                already: true,
                reason: None,
            };
        }
    }
    let switch = req.license_switch.as_deref().unwrap_or_default();
    let switch_ok = if cu.diagnostic_data_switch {
        switch.eq_ignore_ascii_case("/IAcceptExchangeServerLicenseTerms_DiagnosticDataON")
            || switch.eq_ignore_ascii_case("/IAcceptExchangeServerLicenseTerms_DiagnosticDataOFF")
    } else {
        switch.eq_ignore_ascii_case("/IAcceptExchangeServerLicenseTerms")
    };
    if !switch_ok {
        let wanted = if cu.diagnostic_data_switch {
            "/IAcceptExchangeServerLicenseTerms_DiagnosticDataON or /IAcceptExchangeServerLicenseTerms_DiagnosticDataOFF"
        } else {
            "/IAcceptExchangeServerLicenseTerms"
        };
        return fail(
            log,
            format!("[ERROR] To accept the license agreement you must specify {wanted}."),
            format!(
                "license switch `{switch}` is not accepted by {} {}; use {wanted}",
                family.map_or("", Family::product_name),
                cu.label
            ),
        );
    }
    // Get-SalvePayload, after dismounting an image an earlier run left attached; then
    // Mount-DiskImage, dismounted again when the script ends (`finally`).
    if let Err(e) = reach(core, idx, req, out).await {
        return Outcome::failed(1, Vec::new(), e);
    }
    if let Err(e) = room_for(core, idx, req, CU_BYTES) {
        return Outcome::failed(1, Vec::new(), e);
    }
    let iso = package_path(req);
    let mounted = core.with_host(idx, |s| {
        s.dismount_image(&iso);
        s.store_download(&iso, CU_BYTES)?;
        Ok::<_, String>(s.mount_image(&iso))
    });
    match mounted {
        Err(e) => return Outcome::failed(1, Vec::new(), e),
        Ok(None) => {
            return Outcome::failed(
                1,
                Vec::new(),
                format!(
                    "{iso} was mounted but got no drive letter (automount is off on this \
                     server: run `mountvol /E`, or assign a letter); nothing was installed"
                ),
            );
        }
        Ok(Some(_)) => {}
    }
    out.line(&format!(
        "Setup.exe /Mode:Upgrade {switch} (from {})",
        req.source
    ));
    let rules = [
        (
            "RebootPending",
            !pending_reboot.is_empty(),
            "a restart is pending; restart the server before running Setup",
        ),
        (
            "NetFrameworkNeedsUpdate",
            dotnet < cu.dotnet_min,
            "the installed .NET Framework is too old for this CU",
        ),
        (
            "IisUrlRewriteNotInstalled",
            cu.diagnostic_data_switch && !rewrite,
            "the IIS URL Rewrite module is required by this CU",
        ),
    ];
    for (rule, failed, _) in &rules {
        log.push(setup_line(
            now,
            &format!(
                "Evaluated [Rule:{rule}] [Value:\"{}\"]",
                if *failed { "True" } else { "False" }
            ),
        ));
    }
    let failed: Vec<_> = rules.iter().filter(|r| r.1).collect();
    if !failed.is_empty() {
        for (rule, _, why) in &failed {
            log.push(setup_line(
                now,
                &format!("Failed [Rule:{rule}] [Message:{why}]"),
            ));
        }
        log.push(setup_line(now, SETUP_FAILED));
        let reason = judge_setup_run(&log)
            .err()
            .unwrap_or_else(|| "Setup did not complete".to_string());
        return Outcome::failed(1, log, reason);
    }
    begin_install(core, idx, req);
    // Setup's processes grow as it copies its files. Windows rule (WinRM's
    // MaxMemoryPerShellMB): in a WinRM shell, past the shell's quota, the shell's processes
    // are stopped, Setup among them, half-way. A scheduled task has no such quota.
    if let Some(used) = core.with_host(idx, |s| s.setup_memory_mb)
        && let Err(quota) = out.grow_to(used)
    {
        core.record(
            idx,
            LabEvent::ShellMemoryQuotaExceeded {
                quota_mb: quota,
                used_mb: used,
            },
        );
        kill.cancel();
    }
    let steps = [
        "Copying Exchange files ...",
        "Language Files",
        SETUP_RESTARTS_WINRM,
        "Mailbox role: Transport service",
        "Mailbox role: Client Access service",
        "Mailbox role: Mailbox service",
        "Mailbox role: Front End Transport service",
        "Finalizing Setup",
    ];
    let finished = run_steps(core, idx, core.durations.cu_minutes, &steps, out, kill).await;
    let end = core.clock.now();
    if !finished || faults.install_failure == Some(InstallFailure::Aborted) {
        log.push(setup_line(end, SETUP_FAILED));
        core.with_host(idx, |s| s.setup_log.extend(log.iter().cloned()));
        return Outcome::failed(
            1,
            log,
            "Setup was interrupted; Exchange services are left Disabled (see ServiceControl.log)",
        );
    }
    if faults.install_failure == Some(InstallFailure::Fatal) {
        log.push(setup_line(end, "[ERROR] The following error was generated when \"$error.Clear(); ...\" was run: \"Process execution failed with exit code 1603.\"."));
        log.push(setup_line(end, SETUP_FAILED));
        core.with_host(idx, |s| {
            s.restore_services();
            s.setup_log.extend(log.iter().cloned());
        });
        return Outcome::failed(
            1,
            log,
            "Setup failed (exit code 1603 from an installer step)",
        );
    }
    if faults.setup_error_line {
        log.push(setup_line(end, "[ERROR] The operation couldn't be performed because object 'Default Offline Address Book' couldn't be found on the domain controller; Setup continues."));
    }
    log.push(setup_line(end, SETUP_OK));
    core.with_host(idx, |s| {
        s.restore_services();
        s.uninstall_entries.clear();
        s.update_packages.clear();
        s.pending_build = Some(target);
        s.add_pending_reboot(MARKER_FILE_RENAME);
        s.setup_log.extend(log.iter().cloned());
    });
    // Setup upgraded the server; the script's answer is what it reads from the log.
    match judge_setup_run(&log) {
        Ok(()) => Outcome {
            exit_code: 0,
            log,
            success: true,
            already: false,
            reason: None,
        },
        Err(reason) => Outcome::failed(0, log, reason),
    }
}

/// Where the shipped script reads Setup's log.
const SETUP_LOG: &str = "C:\\ExchangeSetupLogs\\ExchangeSetup.log";

/// How `exchange_update.ps1` judges Setup's log, as CSS-Exchange's SetupLogReviewer does:
/// only the last run (from its last "Starting Microsoft Exchange Server" line); a success when
/// that run has the success line and no "didn't complete" line, whatever `[ERROR]` lines Setup
/// logged and recovered from; otherwise the reason names the run's `Failed [Rule:…]
/// [Message:…]` lines. [`SETUP_LOG_PATTERNS`] are the script's patterns (a test compares them).
fn judge_setup_run(log: &[String]) -> Result<(), String> {
    let start = log
        .iter()
        .rposition(|l| l.contains("Starting Microsoft Exchange Server") && l.ends_with(" Setup"))
        .unwrap_or(0);
    let run = &log[start..];
    let ok = run
        .iter()
        .any(|l| l.contains(SETUP_OK.trim_end_matches('.')));
    let incomplete = run
        .iter()
        .any(|l| l.contains("The Exchange Server setup operation didn't complete"));
    if ok && !incomplete {
        return Ok(());
    }
    let rules: Vec<String> = run
        .iter()
        .filter_map(|l| {
            let rest = &l[l.find("Failed [Rule:")? + "Failed [Rule:".len()..];
            let (rule, rest) = rest.split_once("] [Message:")?;
            Some(format!(
                "prerequisite {rule} failed: {}",
                rest.strip_suffix(']').unwrap_or(rest)
            ))
        })
        .collect();
    Err(if rules.is_empty() {
        format!("Setup did not complete; see {SETUP_LOG}")
    } else {
        format!("{}; see {SETUP_LOG}", rules.join("; "))
    })
}

/// The `-match` patterns `exchange_update.ps1` judges Setup's last run with: the run's start,
/// success, failure, and the failed-rule line.
pub const SETUP_LOG_PATTERNS: [&str; 4] = [
    "Starting Microsoft Exchange Server .* Setup",
    "The Exchange Server setup operation completed successfully",
    "The Exchange Server setup operation didn't complete",
    "Failed \\[Rule:(\\w+)\\] \\[Message:(.*)\\]",
];
