//! The lab's side of the shipped scripts: for each [`ScriptId`], what the real PowerShell would
//! find and change on the server, played against the host state, with progress lines on stdout,
//! the `##salve-result##` answer line and the exit code the real script would give.
//!
//! Behaviour follows the domain reference: updates take simulated time and change the build
//! only at the next restart (pending-reboot markers set); an SU for another CU fails as msiexec
//! does (1642 and "The upgrade patch cannot be installed ..."); Setup refuses a CU with a reboot
//! pending or too old a .NET; an interrupted install leaves the Exchange services Disabled;
//! maintenance mode drains, pauses the cluster node, moves active databases to another DAG
//! member and blocks activation, and leaving restores the recorded policy.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::catalog::{self, Build, Family};
use crate::fleet::FleetCore;
use crate::log::LabEvent;
use crate::process::{EXIT_TERMINATED, Out, sim_sleep};
use crate::state::{
    EOMT_RULES, HostState, INSTALL_PATH, InstallFailure, MARKER_FILE_RENAME, MARKER_UPDATE_EXE,
};
use salve_contract::contract::*;

/// Run the simulation of a shipped script; returns the exit code.
pub async fn run(
    core: &Arc<FleetCore>,
    idx: usize,
    id: ScriptId,
    args: Option<Value>,
    out: &Out,
    kill: &CancellationToken,
) -> i32 {
    match id {
        ScriptId::ExchangeFacts => {
            out.line("Reading Exchange setup, updates, services and prerequisites...");
            let answer = core.with_host(idx, |s| facts(s));
            out.result(&answer);
            0
        }
        ScriptId::BootId => {
            let now = core.clock.now();
            let answer = core.with_host(idx, |s| BootIdAnswer {
                boot_id: s.boot_id(),
                uptime_seconds: u64::try_from(now.duration_since(s.boot_time).as_secs())
                    .unwrap_or(0),
            });
            out.result(&answer);
            0
        }
        ScriptId::Reboot => match parse::<RebootRequest>(id, args.unwrap_or(Value::Null), out) {
            Some(req) => {
                let before = core.with_host(idx, |s| s.boot_id());
                let delay = req
                    .delay_seconds
                    .unwrap_or(core.durations.reboot_delay_seconds);
                out.line(&format!("Restarting {} in {delay} seconds", core.name(idx)));
                core.schedule_reboot(idx, Duration::from_secs(delay));
                out.result(&RebootAnswer {
                    boot_id_before: before,
                    scheduled: true,
                });
                0
            }
            None => 1,
        },
        ScriptId::ExchangeHealth => {
            let answer = core.with_host(idx, |s| health(s));
            out.result(&answer);
            0
        }
        ScriptId::ExchangeVerify => {
            match parse::<VerifyRequest>(id, args.unwrap_or(Value::Null), out) {
                Some(req) => {
                    let answer = core.with_host(idx, |s| verify(s, &req));
                    out.result(&answer);
                    i32::from(!answer.success)
                }
                None => 1,
            }
        }
        ScriptId::ExchangeIocScan => {
            out.line("Scanning HttpProxy, OABGeneratorLog and ECP logs, the Application log and known paths...");
            let now = core.clock.now();
            let answer = core.with_host(idx, |s| ioc_scan(s, now));
            if !answer.compromised {
                out.line("Nothing suspicious detected");
            }
            out.result(&answer);
            0
        }
        ScriptId::ExchangeMitigate => {
            match parse::<MitigateRequest>(id, args.unwrap_or(Value::Null), out) {
                Some(req) => mitigate(core, idx, &req, out),
                None => 1,
            }
        }
        ScriptId::ExchangeUpdate => {
            match parse::<UpdateRequest>(id, args.unwrap_or(Value::Null), out) {
                Some(req) => update(core, idx, &req, out, kill).await,
                None => 1,
            }
        }
        ScriptId::ExchangeMaintenance => {
            match parse::<MaintenanceRequest>(id, args.unwrap_or(Value::Null), out) {
                Some(req) => maintenance(core, idx, &req, out, kill).await,
                None => 1,
            }
        }
    }
}

/// Decode `$SalveArgs` into the request type, or report the mismatch as the script would.
fn parse<T: DeserializeOwned>(id: ScriptId, args: Value, out: &Out) -> Option<T> {
    let args = if args.is_null() {
        Value::Object(Default::default())
    } else {
        args
    };
    match serde_json::from_value(args) {
        Ok(v) => Some(v),
        Err(e) => {
            out.error(&[format!(
                "$SalveArgs does not match the {} contract: {e}",
                id.as_str()
            )]);
            None
        }
    }
}

fn facts(s: &HostState) -> FactsAnswer {
    FactsAnswer {
        computer_name: s.name.clone(),
        family: s.family().map(|f| f.product_name().to_string()),
        build: s.build.map(|b| b.to_string()),
        installed_kbs: s.installed_kbs(),
        uninstall_entries: s.uninstall_entries.clone(),
        update_packages: s.update_packages.clone(),
        roles: s.roles.clone(),
        dag: s.dag.clone(),
        database_copies: copies(s),
        component_states: s.effective_components(),
        services: s.services.clone(),
        dotnet_release: s.dotnet_release,
        vcredist_2012: s.vcredist_2012.clone(),
        vcredist_2013: s.vcredist_2013.clone(),
        ucma: s.ucma.clone(),
        url_rewrite: s.url_rewrite.clone(),
        mitigation_rules: s.rewrite_rules.clone(),
        pending_reboot: s.pending_reboot.clone(),
        free_disk_bytes: s.free_disk_bytes,
        auth_certificate_expiry: Some(s.auth_cert_expiry.to_string()),
        cluster_node_state: s.cluster_node.clone(),
        activation_policy: s.dag.as_ref().map(|_| s.activation_policy.clone()),
        boot_id: s.boot_id(),
        install_in_progress: s.installing.clone(),
    }
}

fn copies(s: &HostState) -> Vec<DatabaseCopy> {
    s.copies
        .iter()
        .map(|c| DatabaseCopy {
            database: c.database.clone(),
            active: c.active,
            status: c.status(),
            copy_queue_length: c.copy_queue,
            replay_queue_length: c.replay_queue,
            activation_suspended: c.activation_suspended,
        })
        .collect()
}

fn health(s: &HostState) -> HealthAnswer {
    let copies = copies(s);
    HealthAnswer {
        dag: s.dag.clone(),
        all_copies_healthy: copies
            .iter()
            .all(|c| c.status == "Mounted" || c.status == "Healthy"),
        max_copy_queue_length: copies
            .iter()
            .map(|c| c.copy_queue_length)
            .max()
            .unwrap_or(0),
        max_replay_queue_length: copies
            .iter()
            .map(|c| c.replay_queue_length)
            .max()
            .unwrap_or(0),
        copies,
        cluster_node_state: s.cluster_node.clone(),
        activation_policy: s.dag.as_ref().map(|_| s.activation_policy.clone()),
    }
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

// ---------------------------------------------------------------------------------------------
// IOC scan (the Test-ProxyLogon checks)

const HTTPPROXY_COLUMNS: usize = 9;
const ANCHOR_COLUMN: usize = 7;
const STATUS_COLUMN: usize = 8;

/// PowerShell `-like` with `*` wildcards only, case-insensitive.
fn like(text: &str, pattern: &str) -> bool {
    let text = text.to_ascii_lowercase();
    let parts: Vec<String> = pattern
        .to_ascii_lowercase()
        .split('*')
        .map(str::to_string)
        .collect();
    let mut pos = 0;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            if !text.starts_with(part.as_str()) {
                return false;
            }
            pos = part.len();
        } else if i == parts.len() - 1 {
            return text.len() >= pos + part.len() && text.ends_with(part.as_str());
        } else {
            match text[pos..].find(part.as_str()) {
                Some(at) => pos += at + part.len(),
                None => return false,
            }
        }
    }
    pos == text.len()
}

fn log_excerpt(path: &str, text: &str) -> Evidence {
    Evidence {
        path: Some(path.to_string()),
        sha256: None,
        excerpt: Some(text.to_string()),
    }
}

/// The `Set-*VirtualDirectory ... Url ... <tag>...</tag>` shape of CVE-2021-27065 in ECP logs.
fn has_vdir_script(line: &str) -> bool {
    let Some(set) = line.find("Set-") else {
        return false;
    };
    let rest = &line[set..];
    let Some(vd) = rest.find("VirtualDirectory") else {
        return false;
    };
    let after = &rest[vd..];
    let Some(url) = after.find("Url") else {
        return false;
    };
    let tail = &after[url..];
    let opens = tail
        .match_indices('<')
        .any(|(i, _)| tail[i + 1..].starts_with(|c: char| c.is_ascii_alphabetic()));
    opens && tail.contains("</")
}

type Found = BTreeMap<(String, String), Vec<Evidence>>;

fn add(found: &mut Found, cve: &str, kind: &str, e: Evidence) {
    found
        .entry((cve.to_string(), kind.to_string()))
        .or_default()
        .push(e);
}

fn ioc_scan(s: &HostState, now: Timestamp) -> IocScanAnswer {
    let mut found: Found = BTreeMap::new();
    let http_proxy = format!("{INSTALL_PATH}Logging\\HttpProxy\\");
    for l in &s.log_lines {
        if l.path.starts_with(&http_proxy) && l.text.contains("ServerInfo~") {
            let cols: Vec<&str> = l.text.split(',').collect();
            if cols.len() == HTTPPROXY_COLUMNS {
                let anchor = cols[ANCHOR_COLUMN];
                if like(anchor, "ServerInfo~*/*")
                    && !like(anchor, "ServerInfo~*/autodiscover*")
                    && !like(anchor, "ServerInfo~localhost*/*")
                {
                    add(
                        &mut found,
                        "CVE-2021-26855",
                        "ssrf_request",
                        log_excerpt(&l.path, &l.text),
                    );
                }
                if l.path.starts_with(&format!("{http_proxy}Ecp\\"))
                    && like(anchor, "ServerInfo~*/*Reset*VirtualDirectory#")
                    && cols[STATUS_COLUMN] == "200"
                {
                    add(
                        &mut found,
                        "CVE-2021-27065",
                        "ecp_reset_vdir",
                        log_excerpt(&l.path, &l.text),
                    );
                }
            }
        }
        if l.path
            .starts_with(&format!("{INSTALL_PATH}Logging\\OABGeneratorLog\\"))
            && let Some(rest) = l.text.split("Download failed and temporary file ").nth(1)
            && let Some(file) = rest.split(" needs to be removed").next()
            && !file.starts_with(&format!("'{INSTALL_PATH}ClientAccess\\OAB"))
        {
            add(
                &mut found,
                "CVE-2021-26858",
                "oab_download_failed",
                log_excerpt(&l.path, &l.text),
            );
        }
        if l.path
            .starts_with(&format!("{INSTALL_PATH}Logging\\ECP\\Server\\"))
            && has_vdir_script(&l.text)
        {
            add(
                &mut found,
                "CVE-2021-27065",
                "ecp_vdir_script",
                log_excerpt(&l.path, &l.text),
            );
        }
    }
    for e in &s.events {
        if e.provider == "MSExchange Unified Messaging"
            && e.level == 2
            && e.message.contains("System.InvalidCastException")
        {
            add(
                &mut found,
                "CVE-2021-26857",
                "um_invalid_cast",
                Evidence {
                    path: None,
                    sha256: None,
                    excerpt: Some(e.message.clone()),
                },
            );
        }
    }
    let any_cve = !found.is_empty();
    for f in &s.files {
        let lower = f.path.to_ascii_lowercase();
        let evidence = || Evidence {
            path: Some(f.path.clone()),
            sha256: Some(f.sha256.clone()),
            excerpt: None,
        };
        let in_web_dir = lower.contains("\\frontend\\httpproxy\\owa\\auth\\")
            || lower.contains("\\frontend\\httpproxy\\ecp\\auth\\")
            || lower.contains("\\inetpub\\wwwroot\\aspnet_client\\");
        if in_web_dir && lower.ends_with(".aspx") {
            add(&mut found, "other", "web_shell", evidence());
        }
        // Test-ProxyLogon looks for these only once something above was found.
        let file_name = lower.rsplit('\\').next().unwrap_or_default();
        let in_dump_dir =
            lower.starts_with("c:\\root\\") || lower.starts_with("c:\\windows\\temp\\");
        if any_cve && in_dump_dir && like(file_name, "lsass*dmp") {
            add(&mut found, "other", "lsass_dump", evidence());
        }
        let archive = [".7z", ".zip", ".rar"].iter().any(|x| lower.ends_with(x));
        if any_cve && lower.starts_with("c:\\programdata\\") && archive {
            add(&mut found, "other", "suspicious_archive", evidence());
        }
    }
    let age = u64::try_from(now.duration_since(s.logs_since).as_hours() / 24).unwrap_or(0);
    let log_age_days = [
        "OABGeneratorLog",
        "ECP\\Server",
        "HttpProxy\\Autodiscover",
        "HttpProxy\\Eas",
        "HttpProxy\\Ecp",
        "HttpProxy\\Ews",
        "HttpProxy\\Mapi",
        "HttpProxy\\Oab",
        "HttpProxy\\Owa",
        "HttpProxy\\OwaCalendar",
        "HttpProxy\\PowerShell",
        "HttpProxy\\RpcHttp",
    ]
    .into_iter()
    .map(|d| (d.to_string(), age))
    .collect();
    let findings: Vec<IocFinding> = found
        .into_iter()
        .map(|((cve, kind), evidence)| IocFinding {
            cve,
            kind,
            evidence,
        })
        .collect();
    IocScanAnswer {
        compromised: !findings.is_empty(),
        findings,
        log_age_days,
    }
}

// ---------------------------------------------------------------------------------------------
// Mitigation (EOMT's URL Rewrite rules)

fn mitigate(core: &FleetCore, idx: usize, req: &MitigateRequest, out: &Out) -> i32 {
    let (answer, events) = core.with_host(idx, |s| {
        let mut events = Vec::new();
        let mut changed = false;
        match req.action {
            MitigateAction::Apply => {
                if s.url_rewrite.is_none() {
                    let Some(source) = &req.rewrite_msi_source else {
                        let answer = MitigateAnswer {
                            changed: false,
                            success: false,
                            reason: Some("the IIS URL Rewrite module is not installed and no rewrite_msi_source was given".into()),
                            url_rewrite_installed: false,
                            rules_present: s.rewrite_rules.clone(),
                        };
                        return (answer, events);
                    };
                    out.line(&format!("Installing IIS URL Rewrite module from {source}"));
                    s.url_rewrite = Some("7.2.1993".to_string());
                    events.push(LabEvent::RewriteModuleInstalled { version: "7.2.1993".into() });
                    changed = true;
                }
                let missing: Vec<String> =
                    EOMT_RULES.iter().filter(|r| !s.rewrite_rules.iter().any(|x| x == *r)).map(|r| r.to_string()).collect();
                if !missing.is_empty() {
                    out.line("Applying URL Rewrite mitigation to IIS:\\Sites\\Default Web Site");
                    s.rewrite_rules.extend(missing.iter().cloned());
                    events.push(LabEvent::MitigationApplied { rules: missing });
                    changed = true;
                }
            }
            MitigateAction::Remove => {
                let present: Vec<String> =
                    s.rewrite_rules.iter().filter(|r| EOMT_RULES.contains(&r.as_str())).cloned().collect();
                if !present.is_empty() {
                    out.line("Rolling back URL Rewrite mitigation");
                    s.rewrite_rules.retain(|r| !EOMT_RULES.contains(&r.as_str()));
                    events.push(LabEvent::MitigationRemoved { rules: present });
                    changed = true;
                }
            }
        }
        let answer = MitigateAnswer {
            changed,
            success: true,
            reason: None,
            url_rewrite_installed: s.url_rewrite.is_some(),
            rules_present: s.rewrite_rules.iter().filter(|r| EOMT_RULES.contains(&r.as_str())).cloned().collect(),
        };
        (answer, events)
    });
    for e in events {
        core.record(idx, e);
    }
    if let Some(reason) = &answer.reason {
        out.error(std::slice::from_ref(reason));
    }
    out.result(&answer);
    i32::from(!answer.success)
}

// ---------------------------------------------------------------------------------------------
// Updates (CU through Setup.exe, SU through msiexec)

const WRONG_PATCH: &str = "The upgrade patch cannot be installed by the Windows Installer service because the program to be upgraded may be missing, or the upgrade patch may update a different version of the program. Verify that the program to be upgraded exists on your computer and that you have the correct upgrade patch.";
const SETUP_FAILED: &str = "The Exchange Server setup operation didn't complete.  More details can be found in ExchangeSetup.log located in the <SystemDrive>:\\ExchangeSetupLogs folder.";
const SETUP_OK: &str = "The Exchange Server setup operation completed successfully.";

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

async fn update(
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
            // Windows Installer runs one installation at a time (msiexec 1618).
            let running = core.with_host(idx, |s| s.installing.replace(req.kb.clone()));
            match running {
                Some(running) => {
                    core.with_host(idx, |s| s.installing = Some(running.clone()));
                    Outcome::failed(
                        1618,
                        Vec::new(),
                        format!(
                            "Another installation is already in progress ({running}). Complete that installation before proceeding with this install."
                        ),
                    )
                }
                None => {
                    let outcome = match req.kind {
                        UpdateKind::Su => install_su(core, idx, req, target, out, kill).await,
                        UpdateKind::Cu => install_cu(core, idx, req, target, out, kill).await,
                    };
                    core.with_host(idx, |s| s.installing = None);
                    outcome
                }
            }
        }
    };
    let event = if outcome.success && !outcome.already {
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
    if kill.is_cancelled() {
        return EXIT_TERMINATED;
    }
    if let Some(reason) = &outcome.reason {
        out.error(std::slice::from_ref(reason));
    }
    let reboot_required = outcome.success && !outcome.already;
    out.result(&UpdateAnswer {
        exit_code: outcome.exit_code,
        log_excerpt: outcome.log.iter().rev().take(20).rev().cloned().collect(),
        reboot_required,
        success: outcome.success,
        already_installed: outcome.already,
        reason: outcome.reason,
    });
    i32::from(!outcome.success)
}

/// Start the install: Setup/msiexec stops and disables the Exchange services.
fn begin_install(core: &FleetCore, idx: usize, req: &UpdateRequest) {
    core.record(
        idx,
        LabEvent::InstallStarted {
            update: req.kind,
            kb: req.kb.clone(),
            target: req.target_build.clone(),
        },
    );
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
    if let Some((rule, _, why)) = rules.iter().find(|r| r.1) {
        return fail(
            log,
            format!("[ERROR] The prerequisite check failed: {rule}."),
            format!("prerequisite {rule} failed: {why}"),
        );
    }
    begin_install(core, idx, req);
    let steps = [
        "Copying Exchange files ...",
        "Language Files",
        "Stopping Services",
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
    log.push(setup_line(end, SETUP_OK));
    core.with_host(idx, |s| {
        s.restore_services();
        s.uninstall_entries.clear();
        s.update_packages.clear();
        s.pending_build = Some(target);
        s.add_pending_reboot(MARKER_FILE_RENAME);
        s.setup_log.extend(log.iter().cloned());
    });
    Outcome {
        exit_code: 0,
        log,
        success: true,
        already: false,
        reason: None,
    }
}

// ---------------------------------------------------------------------------------------------
// Maintenance mode

const MAINTENANCE: &str = "Maintenance";

fn gates(s: &HostState, action: MaintenanceAction) -> MaintenanceGates {
    let health = health(s);
    match action {
        MaintenanceAction::Enter => MaintenanceGates {
            no_active_copies: s.copies.iter().all(|c| !c.active),
            components_as_expected: s
                .effective_components()
                .iter()
                .filter(|c| c.state == "Active")
                .all(|c| c.component == "Monitoring" || c.component == "RecoveryActionsEnabled"),
            cluster_node_as_expected: s.cluster_node.as_deref().is_none_or(|n| n == "Paused"),
            copies_healthy: health.all_copies_healthy,
        },
        MaintenanceAction::Leave => MaintenanceGates {
            no_active_copies: s.copies.iter().all(|c| !c.active),
            components_as_expected: s.inactive_components().is_empty(),
            cluster_node_as_expected: s.cluster_node.as_deref().is_none_or(|n| n == "Up"),
            copies_healthy: health.all_copies_healthy,
        },
    }
}

fn maintenance_answer(
    s: &HostState,
    action: MaintenanceAction,
    previous: String,
    moved: Vec<MovedDatabase>,
) -> MaintenanceAnswer {
    MaintenanceAnswer {
        changed: false,
        success: true,
        reason: None,
        previous_activation_policy: s.dag.as_ref().map(|_| previous),
        activation_policy: s.dag.as_ref().map(|_| s.activation_policy.clone()),
        component_states: s.effective_components(),
        moved_databases: moved,
        cluster_node_state: s.cluster_node.clone(),
        gates: gates(s, action),
    }
}

/// A DAG peer that can take active databases, preferring `preferred` (name or FQDN).
fn pick_target(core: &FleetCore, idx: usize, preferred: Option<&str>) -> Option<usize> {
    let eligible: Vec<usize> = core
        .dag_peers(idx)
        .into_iter()
        .filter(|&p| {
            core.with_host(p, |s| {
                s.is_up()
                    && !s.faults.unreachable
                    && s.cluster_node.as_deref() != Some("Paused")
                    && s.activation_policy != "Blocked"
            })
        })
        .collect();
    let short = preferred.map(|p| p.split('.').next().unwrap_or(p).to_ascii_lowercase());
    eligible
        .iter()
        .copied()
        .find(|&p| short.as_deref() == Some(core.name(p).to_ascii_lowercase().as_str()))
        .or_else(|| eligible.first().copied())
}

async fn maintenance(
    core: &FleetCore,
    idx: usize,
    req: &MaintenanceRequest,
    out: &Out,
    kill: &CancellationToken,
) -> i32 {
    let host = core.name(idx).to_string();
    let previous = core.with_host(idx, |s| s.activation_policy.clone());
    let answer = match req.action {
        MaintenanceAction::Enter => {
            let already = core.with_host(idx, |s| {
                s.component("ServerWideOffline")
                    .is_some_and(|c| c.requesters.iter().any(|r| r == MAINTENANCE))
            });
            if already {
                core.with_host(idx, |s| {
                    maintenance_answer(s, req.action, previous, Vec::new())
                })
            } else {
                enter(core, idx, &host, req, previous, out, kill).await
            }
        }
        MaintenanceAction::Leave => {
            out.line("Set-ServerComponentState ServerWideOffline Active; StopDagServerMaintenance.ps1; HubTransport Active");
            let restored = req
                .saved_policy
                .clone()
                .unwrap_or_else(|| "Unrestricted".to_string());
            let mut answer = core.with_host(idx, |s| {
                let was_in = s
                    .components
                    .iter()
                    .any(|c| c.requesters.iter().any(|r| r == MAINTENANCE));
                s.set_component("ServerWideOffline", "Active", MAINTENANCE);
                s.set_component("UMCallRouter", "Active", MAINTENANCE);
                s.set_component("HubTransport", "Active", MAINTENANCE);
                if s.dag.is_some() {
                    s.cluster_node = Some("Up".to_string());
                    s.activation_policy = restored.clone();
                    s.copies
                        .iter_mut()
                        .for_each(|c| c.activation_suspended = false);
                }
                let mut a = maintenance_answer(s, req.action, previous.clone(), Vec::new());
                a.changed = was_in || previous != s.activation_policy;
                a
            });
            if answer.changed {
                core.record(
                    idx,
                    LabEvent::MaintenanceLeft {
                        restored_policy: restored,
                    },
                );
            }
            answer.success =
                answer.gates.components_as_expected && answer.gates.cluster_node_as_expected;
            if !answer.success {
                answer.reason = Some("components or the cluster node did not come back".into());
            }
            answer
        }
    };
    if kill.is_cancelled() {
        return EXIT_TERMINATED;
    }
    if let Some(reason) = &answer.reason {
        out.error(std::slice::from_ref(reason));
    }
    out.result(&answer);
    i32::from(!answer.success)
}

async fn enter(
    core: &FleetCore,
    idx: usize,
    host: &str,
    req: &MaintenanceRequest,
    previous: String,
    out: &Out,
    kill: &CancellationToken,
) -> MaintenanceAnswer {
    out.line("Set-ServerComponentState HubTransport Draining; Restart-Service MSExchangeTransport");
    let in_dag = core.with_host(idx, |s| {
        s.set_component("HubTransport", "Draining", MAINTENANCE);
        if s.roles.iter().any(|r| r == "UnifiedMessaging") {
            s.set_component("UMCallRouter", "Draining", MAINTENANCE);
        }
        s.dag.is_some()
    });
    let mut moved = Vec::new();
    if in_dag {
        out.line("StartDagServerMaintenance.ps1 -PauseClusterNode");
        let actives = core.with_host(idx, |s| {
            s.activation_policy = "Blocked".to_string();
            s.cluster_node = Some("Paused".to_string());
            s.copies
                .iter()
                .filter(|c| c.active)
                .map(|c| c.database.clone())
                .collect::<Vec<_>>()
        });
        // StartDagServerMaintenance can take minutes, silently.
        if !sim_sleep(core, Duration::from_secs(180), kill).await {
            return core.with_host(idx, |s| maintenance_answer(s, req.action, previous, moved));
        }
        for db in actives {
            let Some(target) = pick_target(core, idx, req.redirect_target.as_deref()) else {
                // The script undoes everything except completed moves.
                let mut a = core.with_host(idx, |s| {
                    s.activation_policy = previous.clone();
                    s.cluster_node = Some("Up".to_string());
                    s.set_component("HubTransport", "Active", MAINTENANCE);
                    s.set_component("UMCallRouter", "Active", MAINTENANCE);
                    maintenance_answer(s, req.action, previous.clone(), moved.clone())
                });
                a.success = false;
                a.changed = !moved.is_empty();
                a.reason = Some(format!(
                    "no healthy DAG member can take database {db}; maintenance was rolled back"
                ));
                return a;
            };
            let to = core.name(target).to_string();
            core.with_host(target, |s| {
                s.copies
                    .iter_mut()
                    .filter(|c| c.database == db)
                    .for_each(|c| c.active = true)
            });
            core.with_host(idx, |s| {
                s.copies
                    .iter_mut()
                    .filter(|c| c.database == db)
                    .for_each(|c| c.active = false)
            });
            out.line(&format!("Moved {db} to {to}"));
            core.record(
                idx,
                LabEvent::DatabaseMoved {
                    database: db.clone(),
                    from: host.to_string(),
                    to: to.clone(),
                },
            );
            moved.push(MovedDatabase {
                database: db,
                from: host.to_string(),
                to,
            });
        }
    }
    if let Some(target) = &req.redirect_target {
        out.line(&format!("Redirect-Message -Target {target}"));
    }
    out.line("Set-ServerComponentState ServerWideOffline Inactive -Requester Maintenance");
    let mut answer = core.with_host(idx, |s| {
        s.set_component("ServerWideOffline", "Inactive", MAINTENANCE);
        maintenance_answer(s, req.action, previous.clone(), moved)
    });
    core.record(
        idx,
        LabEvent::MaintenanceEntered {
            previous_policy: previous,
        },
    );
    answer.changed = true;
    let g = &answer.gates;
    answer.success = g.no_active_copies && g.components_as_expected && g.cluster_node_as_expected;
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_matches_powershell_wildcards() {
        assert!(like(
            "ServerInfo~a]@ex01.contoso.com:444/ecp/x",
            "ServerInfo~*/*"
        ));
        assert!(
            !like("ServerInfo~ex01/autodiscover/x", "ServerInfo~*/*")
                || like(
                    "ServerInfo~ex01/autodiscover/x",
                    "ServerInfo~*/autodiscover*"
                )
        );
        assert!(like(
            "ServerInfo~a]@x:444/ecp/DDI/DDIService.svc/SetObject?ResetOAbVirtualDirectory#",
            "ServerInfo~*/*Reset*VirtualDirectory#"
        ));
        assert!(!like("abc", "abd*"));
        assert!(like("lsass.dmp", "lsass*dmp"));
        assert!(!like("lsass.dmp.txt", "lsass*dmp"));
    }

    #[test]
    fn detects_script_tags_in_vdir_urls() {
        assert!(has_vdir_script(
            "Set-OabVirtualDirectory.ExternalUrl='http://f/<script language=\"JScript\" runat=\"server\">x</script>'"
        ));
        assert!(!has_vdir_script(
            "Set-OabVirtualDirectory.ExternalUrl='https://mail.contoso.com/OAB'"
        ));
    }
}
