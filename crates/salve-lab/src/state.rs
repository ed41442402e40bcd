//! The state of one simulated Exchange server: what a facts script would read from its
//! registry, file system, services, event log and cluster, plus the lab's own bookkeeping
//! (power state, faults to inject).
//!
//! The state is plain data (serde both ways) so the SSH ForceCommand mode can keep it in a file
//! between processes. Time-driven transitions (a scheduled restart going down, a host coming
//! back) are not run by timers: they are stored as timestamps and applied by [`HostState::settle`]
//! whenever the state is looked at, which works the same in a long-running lab and in a
//! process-per-command one.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::catalog::{self, Build, Family};
use crate::host_api::NetFaults;
use crate::log::LabEvent;
use salve_contract::contract::{ComponentState, ServiceInfo};

/// Exchange install path (`MsiInstallPath`), with its trailing backslash.
pub const INSTALL_PATH: &str = "C:\\Program Files\\Microsoft\\Exchange Server\\V15\\";

/// The two URL Rewrite rules EOMT adds to the Default Web Site.
pub const EOMT_RULES: [&str; 2] = [
    "X-AnonResource-Backend Abort - inbound",
    "X-BEResource Abort - inbound",
];

/// Pending-reboot markers, named by their registry location (domain reference §4.1).
pub const MARKER_FILE_RENAME: &str =
    "HKLM\\SYSTEM\\CurrentControlSet\\Control\\Session Manager\\PendingFileRenameOperations";
pub const MARKER_CBS: &str =
    "HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Component Based Servicing\\RebootPending";
pub const MARKER_WU: &str = "HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\WindowsUpdate\\Auto Update\\RebootRequired";
pub const MARKER_UPDATE_EXE: &str = "HKLM\\SOFTWARE\\Microsoft\\Updates\\UpdateExeVolatile\\Flags";

/// Windows rule: the Service Control Manager starts Automatic (Delayed Start) services after
/// the other automatic services, by default 120 seconds after boot (`AutoStartDelay` under
/// `HKLM\SYSTEM\CurrentControlSet\Control`); until then `Get-Service` shows them Stopped with
/// start type Automatic (Windows PowerShell 5.1 has no separate delayed start type).
pub const AUTO_START_DELAY: SignedDuration = SignedDuration::from_secs(120);

/// Components that are Inactive on-premises by design.
pub const INACTIVE_BY_DESIGN: [&str; 2] = ["ForwardSyncDaemon", "ProvisioningRps"];
/// Components that stay Active while the server is offline for maintenance.
const ALWAYS_ACTIVE: [&str; 2] = ["Monitoring", "RecoveryActionsEnabled"];

const COMPONENTS: [&str; 20] = [
    "ServerWideOffline",
    "HubTransport",
    "FrontendTransport",
    "Monitoring",
    "RecoveryActionsEnabled",
    "AutoDiscoverProxy",
    "ActiveSyncProxy",
    "EcpProxy",
    "EwsProxy",
    "ImapProxy",
    "OabProxy",
    "OwaProxy",
    "PopProxy",
    "PushNotificationsProxy",
    "RpsProxy",
    "RwsProxy",
    "RpcProxy",
    "UMCallRouter",
    "XropProxy",
    "HttpProxyAvailabilityGroup",
];

/// Windows services an Exchange CU or SU stops and disables together with Exchange's own, and
/// a failed or aborted run leaves Disabled (field reports of the March 2021 SUs, and the
/// domain reference §4.2 for the IIS services): WMI, Remote Registry, Performance Logs &
/// Alerts, Application Identity, IIS, and Exchange services whose display name does not start
/// with "Microsoft Exchange" (filtering management, search tracing).
pub const SETUP_ALSO_DISABLES: [&str; 8] = [
    "Winmgmt",
    "RemoteRegistry",
    "pla",
    "AppIDSvc",
    "IISADMIN",
    "W3SVC",
    "FMS",
    "SearchExchangeTracing",
];

/// (name, display name, start type) of the services the lab models.
const SERVICES: [(&str, &str, &str); 23] = [
    (
        "MSExchangeADTopology",
        "Microsoft Exchange Active Directory Topology",
        "Automatic",
    ),
    (
        "MSExchangeDagMgmt",
        "Microsoft Exchange DAG Management",
        "Automatic",
    ),
    (
        "MSExchangeDelivery",
        "Microsoft Exchange Mailbox Transport Delivery",
        "Automatic",
    ),
    (
        "MSExchangeDiagnostics",
        "Microsoft Exchange Diagnostics",
        "Automatic",
    ),
    (
        "MSExchangeFrontEndTransport",
        "Microsoft Exchange Frontend Transport",
        "Automatic",
    ),
    (
        "MSExchangeHM",
        "Microsoft Exchange Health Manager",
        "Automatic",
    ),
    (
        "MSExchangeIS",
        "Microsoft Exchange Information Store",
        "Automatic",
    ),
    (
        "MSExchangeMailboxAssistants",
        "Microsoft Exchange Mailbox Assistants",
        "Automatic",
    ),
    (
        "MSExchangeRepl",
        "Microsoft Exchange Replication",
        "Automatic",
    ),
    (
        "MSExchangeRPC",
        "Microsoft Exchange RPC Client Access",
        "Automatic",
    ),
    (
        "MSExchangeServiceHost",
        "Microsoft Exchange Service Host",
        "Automatic",
    ),
    (
        "MSExchangeTransport",
        "Microsoft Exchange Transport",
        "Automatic",
    ),
    ("MSExchangePOP3", "Microsoft Exchange POP3", "Manual"),
    ("MSExchangeIMAP4", "Microsoft Exchange IMAP4", "Manual"),
    ("W3SVC", "World Wide Web Publishing Service", "Automatic"),
    ("WAS", "Windows Process Activation Service", "Automatic"),
    ("IISADMIN", "IIS Admin Service", "Automatic"),
    ("Winmgmt", "Windows Management Instrumentation", "Automatic"),
    ("RemoteRegistry", "Remote Registry", "Automatic"),
    ("pla", "Performance Logs & Alerts", "Manual"),
    ("AppIDSvc", "Application Identity", "Manual"),
    ("FMS", "Microsoft Filtering Management Service", "Automatic"),
    (
        "SearchExchangeTracing",
        "Tracing Service for Search in Exchange",
        "Automatic",
    ),
];

/// How OWA signs users in (`Get-OwaVirtualDirectory` `FormsAuthentication`,
/// `AdfsAuthentication`, `WindowsAuthentication`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OwaAuth {
    /// Forms-based sign-in: the logon page itself (200).
    #[default]
    Forms,
    /// AD FS claims authentication: OWA redirects to the AD FS sign-in page (302).
    Adfs,
    /// Windows (Integrated) authentication: a challenge (401, `WWW-Authenticate: Negotiate`).
    Windows,
}

/// What `GET https://localhost/owa/auth/logon.aspx` (no redirects followed) answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwaResponse {
    pub status: u16,
    pub location: Option<String>,
    /// First line or title of an error page.
    pub error: Option<String>,
}

/// Whether the host is running, about to restart, or down.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Power {
    Up,
    /// A restart was requested; the host goes down at `at`.
    ShuttingDown {
        at: Timestamp,
    },
    /// Down until `until`; `None` = it never comes back (scenario fault).
    Down {
        until: Option<Timestamp>,
    },
}

/// How an install fails on this host (scenario fault).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstallFailure {
    /// Setup stops half-way (as if killed): services left Disabled, "didn't complete".
    Aborted,
    /// msiexec 1603 / Setup `[ERROR]` fatal error.
    Fatal,
}

/// How a restart behaves on this host (scenario fault).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RebootBehaviour {
    #[default]
    Normal,
    /// Takes this many simulated minutes instead of the fleet default.
    SlowMinutes(u64),
    /// Goes down and never answers again.
    Never,
}

/// Faults injected into one host.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostFaults {
    pub unreachable: bool,
    pub wrong_credentials: bool,
    pub latency_ms: u64,
    pub tls_errors: bool,
    pub drop_mid_command: Option<u32>,
    pub quota_exhausted: bool,
    pub install_failure: Option<InstallFailure>,
    pub reboot: RebootBehaviour,
    /// SUs install as from a non-elevated prompt: exit 0, but OWA/ECP answer HTTP 500.
    pub non_elevated_su: bool,
    /// The Exchange management cmdlets fail on this server (the first AD read through them
    /// fails: the logon cannot reach a domain controller with credentials, or AD is down), so
    /// roles, DAG and components cannot be read.
    #[serde(default)]
    pub exchange_unmanageable: bool,
    /// Exchange rule: Setup logs some errors it recovers from as `[ERROR]` lines and still
    /// ends with "The Exchange Server setup operation completed successfully." (a CU run).
    #[serde(default)]
    pub setup_error_line: bool,
}

impl HostFaults {
    pub fn net(&self) -> NetFaults {
        NetFaults {
            latency: Duration::from_millis(self.latency_ms),
            reject_auth: self.wrong_credentials,
            bad_tls: self.tls_errors,
            drop_mid_command: self.drop_mid_command,
            quota_exhausted: self.quota_exhausted,
        }
    }
}

/// Simulated durations of the slow operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Durations {
    pub cu_minutes: u64,
    pub su_minutes: u64,
    pub reboot_minutes: u64,
    /// Delay between a restart request and the host going down.
    pub reboot_delay_seconds: u64,
}

impl Default for Durations {
    fn default() -> Self {
        Self {
            cu_minutes: 60,
            su_minutes: 30,
            reboot_minutes: 8,
            reboot_delay_seconds: 5,
        }
    }
}

/// One database copy hosted here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbCopy {
    pub database: String,
    pub active: bool,
    pub copy_queue: u64,
    pub replay_queue: u64,
    pub activation_suspended: bool,
    /// `Healthy`/`Mounted` unless a scenario says otherwise (`Failed`, `Resynchronizing`).
    pub health: String,
}

impl DbCopy {
    pub fn status(&self) -> String {
        if self.health != "Healthy" {
            self.health.clone()
        } else if self.active {
            "Mounted".to_string()
        } else {
            "Healthy".to_string()
        }
    }
}

/// A file on the host that a scan looks for (web shell, lsass dump, archive).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimFile {
    pub path: String,
    pub sha256: String,
    pub size: u64,
}

/// A line in one of the Exchange logs (`path` is the log file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    pub path: String,
    pub text: String,
}

/// An Application event log record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppEvent {
    pub provider: String,
    pub level: u8,
    pub message: String,
    pub time: Timestamp,
}

/// A server component's stored state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Component {
    pub name: String,
    pub state: String,
    pub requesters: Vec<String>,
}

/// Exchange's versions in a forest's Active Directory: the schema's `ms-Exch-Schema-Version-Pt`
/// `rangeUpper` (`/PrepareSchema`) and the organisation container's `objectVersion`
/// (`/PrepareAD`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forest {
    /// The forest root domain's distinguished name.
    pub root: String,
    pub schema: u32,
    pub org: u32,
}

impl Forest {
    /// A forest already prepared for the newest CU the lab knows (Exchange SE RTM: schema
    /// 17003, organisation 16763), named for the tenant.
    pub fn prepared(tenant: &str) -> Forest {
        Forest {
            root: format!("DC={tenant},DC=lab"),
            schema: 17003,
            org: 16763,
        }
    }
}

/// Everything about one simulated server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostState {
    pub name: String,
    pub tenant: String,
    /// ExSetup.exe file version; `None` when the file is missing (broken install).
    pub build: Option<Build>,
    /// Build that takes effect at the next restart (files replaced at boot).
    pub pending_build: Option<Build>,
    /// Uninstall `DisplayName`s of Exchange SUs.
    pub uninstall_entries: Vec<String>,
    /// `HKLM\SOFTWARE\Microsoft\Updates\Exchange <year>` package names.
    pub update_packages: Vec<String>,
    pub roles: Vec<String>,
    pub dag: Option<String>,
    pub copies: Vec<DbCopy>,
    pub components: Vec<Component>,
    pub services: Vec<ServiceInfo>,
    pub dotnet_release: u32,
    pub vcredist_2012: Option<String>,
    pub vcredist_2013: Option<String>,
    pub ucma: Option<String>,
    pub url_rewrite: Option<String>,
    pub rewrite_rules: Vec<String>,
    pub pending_reboot: Vec<String>,
    /// Pending-reboot values that exist but say nothing is pending (Windows rule, domain
    /// reference §4.1): `PendingFileRenameOperations` as an empty list (the Session Manager
    /// empties it at boot; installers and agents leave the value behind) and
    /// `UpdateExeVolatile\Flags` of 0 (non-zero means an update.exe install awaits a
    /// restart). They survive restarts, so a check by presence reports a restart forever.
    #[serde(default)]
    pub idle_reboot_values: Vec<String>,
    pub free_disk_bytes: u64,
    pub auth_cert_expiry: Timestamp,
    pub boot_count: u64,
    pub boot_time: Timestamp,
    /// The only way this server reaches the web: a download that does not go through this
    /// proxy fails (a network that allows web traffic through a proxy only).
    #[serde(default)]
    pub web_proxy: Option<String>,
    /// The WinRM service is stopped until then (Exchange Setup restarting it mid-install).
    #[serde(default)]
    pub winrm_down_until: Option<Timestamp>,
    pub power: Power,
    /// `Up` or `Paused` for DAG members.
    pub cluster_node: Option<String>,
    pub activation_policy: String,
    /// First line of the error OWA shows, when broken.
    pub owa_error: Option<String>,
    /// How OWA signs users in; see [`HostState::owa_logon`].
    #[serde(default)]
    pub owa_auth: OwaAuth,
    pub files: Vec<SimFile>,
    /// Packages the shipped scripts pulled onto the host (`C:\salve\updates`); each takes
    /// its size off [`HostState::free_disk_bytes`] until it is deleted.
    #[serde(default)]
    pub downloads: Vec<SimFile>,
    /// Disk images attached with `Mount-DiskImage`, by path; see [`HostState::mount_image`].
    #[serde(default)]
    pub mounted_images: Vec<String>,
    /// Automount is off on this server (`mountvol /N`): a mounted image gets no drive letter.
    #[serde(default)]
    pub automount_disabled: bool,
    pub log_lines: Vec<LogLine>,
    pub events: Vec<AppEvent>,
    /// Oldest log file time (for the scan's log age).
    pub logs_since: Timestamp,
    /// `C:\ExchangeSetupLogs\ExchangeSetup.log`.
    pub setup_log: Vec<String>,
    /// The command line of the installer a shipped script is running now (Setup.exe, msiexec,
    /// a .NET installer), if any.
    #[serde(default)]
    pub installing: Option<String>,
    /// salve's detached steps: scheduled tasks under `\\salve\\`, with their output files.
    #[serde(default)]
    pub jobs: Vec<SimJob>,
    /// Another Windows Installer transaction (Windows Update, an agent's MSI) holds the
    /// installer until then; see [`HostState::installer_busy`].
    #[serde(default)]
    pub installer_busy_until: Option<Timestamp>,
    /// The command line of the process holding the installer until `installer_busy_until`,
    /// when the scenario names one (`Win32_Process.CommandLine`).
    #[serde(default)]
    pub installer_process: Option<String>,
    /// The Exchange versions in the forest's Active Directory as this server reads them. One
    /// forest per tenant; `/PrepareSchema` + `/PrepareAD` on one server raise it on all of the
    /// tenant's servers (the lab replicates at once).
    pub forest: Forest,
    /// The next restart leaves CBS RebootPending set once more (servicing that finishes after
    /// the restart asks for another).
    #[serde(default)]
    pub lingering_reboot: bool,
    /// The memory Exchange Setup's processes reach during a CU (Setup.exe, ExSetup.exe and the
    /// runspaces they start), in MB; `None`: below any WinRM shell quota. A scenario's figure:
    /// Setup's real peak is not measured here.
    #[serde(default)]
    pub setup_memory_mb: Option<u64>,
    /// Windows rule: an MSI install that succeeded but needs a restart exits 3010
    /// (`ERROR_SUCCESS_REBOOT_REQUIRED`, files in use, `/norestart`), or 1641
    /// (`ERROR_SUCCESS_REBOOT_INITIATED`) when the package schedules the restart itself. `None`:
    /// installs here exit 0.
    #[serde(default)]
    pub msi_restart_code: Option<i32>,
    /// Services set to Automatic (Delayed Start) (`DelayedAutostart` = 1 under the service's
    /// key); see [`AUTO_START_DELAY`].
    #[serde(default)]
    pub delayed_start: Vec<String>,
    /// When the delayed services start after the last boot, while that is still ahead.
    #[serde(default)]
    pub delayed_start_at: Option<Timestamp>,
    pub faults: HostFaults,
    /// Configuration security fixes depend on (SettingOverrides, Extended Protection, EEMS).
    #[serde(default)]
    pub config: crate::exchange_config::ExchangeConfig,
    /// Maintenance record, copies catching up, content indexes, transport queue.
    #[serde(default)]
    pub ha: crate::ha::HaState,
}

/// A scheduled task `job_control` registered: it runs outside any WinRM shell, so nothing that
/// happens to a shell or a connection stops it; a restart of the host does, as Windows ends
/// every process at shutdown.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SimJob {
    pub job: String,
    pub script_id: String,
    /// `SYSTEM` or the `become` account.
    pub run_as: String,
    pub state: salve_contract::contract::JobState,
    /// `output.log`, UTF-8.
    pub output: String,
    pub exit_code: Option<i32>,
}

impl HostState {
    /// A healthy server at `build`, booted at `boot_time`.
    pub fn new(name: &str, tenant: &str, build: Build, boot_time: Timestamp) -> Self {
        let family = Family::of(build);
        let uninstall_entries: Vec<String> = catalog::sus_up_to(build)
            .map(catalog::su_display_name)
            .collect();
        let update_packages = catalog::sus_up_to(build)
            .map(|s| {
                format!(
                    "{} for {}",
                    s.kb,
                    family.map_or("Exchange", Family::product_name)
                )
            })
            .collect();
        let dotnet = match family {
            Some(Family::Ex2010) => 461308,
            Some(Family::Ex2013) => 461808,
            _ => 528040,
        };
        let components = COMPONENTS
            .iter()
            .chain(INACTIVE_BY_DESIGN.iter())
            .map(|c| Component {
                name: c.to_string(),
                state: if INACTIVE_BY_DESIGN.contains(c) {
                    "Inactive"
                } else {
                    "Active"
                }
                .to_string(),
                requesters: Vec::new(),
            })
            .collect();
        let services = SERVICES
            .iter()
            .map(|(n, d, start)| ServiceInfo {
                name: n.to_string(),
                display_name: d.to_string(),
                start_type: start.to_string(),
                status: if *start == "Automatic" {
                    "Running"
                } else {
                    "Stopped"
                }
                .to_string(),
            })
            .collect();
        HostState {
            name: name.to_string(),
            tenant: tenant.to_string(),
            build: Some(build),
            pending_build: None,
            uninstall_entries,
            update_packages,
            roles: vec!["Mailbox".to_string(), "ClientAccess".to_string()],
            dag: None,
            copies: Vec::new(),
            components,
            services,
            dotnet_release: dotnet,
            vcredist_2012: Some("11.0.61030".to_string()),
            vcredist_2013: Some("12.0.40664".to_string()),
            ucma: Some("5.0.8308.0".to_string()),
            url_rewrite: Some("7.2.1993".to_string()),
            rewrite_rules: Vec::new(),
            pending_reboot: Vec::new(),
            idle_reboot_values: Vec::new(),
            free_disk_bytes: 120 * 1024 * 1024 * 1024,
            auth_cert_expiry: boot_time
                .saturating_add(SignedDuration::from_hours(24 * 400))
                .unwrap_or(boot_time),
            boot_count: 1,
            winrm_down_until: None,
            web_proxy: None,
            boot_time,
            power: Power::Up,
            cluster_node: None,
            activation_policy: "Unrestricted".to_string(),
            owa_error: None,
            owa_auth: OwaAuth::default(),
            files: Vec::new(),
            downloads: Vec::new(),
            mounted_images: Vec::new(),
            automount_disabled: false,
            log_lines: Vec::new(),
            events: Vec::new(),
            logs_since: boot_time
                .saturating_sub(SignedDuration::from_hours(24 * 30))
                .unwrap_or(boot_time),
            setup_log: Vec::new(),
            installing: None,
            jobs: Vec::new(),
            installer_busy_until: None,
            installer_process: None,
            forest: Forest::prepared(tenant),
            lingering_reboot: false,
            setup_memory_mb: None,
            msi_restart_code: None,
            delayed_start: Vec::new(),
            delayed_start_at: None,
            faults: HostFaults::default(),
            config: Default::default(),
            ha: Default::default(),
        }
    }

    pub fn family(&self) -> Option<Family> {
        self.build.or(self.pending_build).and_then(Family::of)
    }

    /// The boot id scripts report: the last boot time.
    pub fn boot_id(&self) -> String {
        self.boot_time.to_string()
    }

    pub fn is_up(&self) -> bool {
        matches!(self.power, Power::Up | Power::ShuttingDown { .. })
    }

    /// Apply every time-driven transition due by `now`; returns what happened, with when.
    pub fn settle(&mut self, now: Timestamp, durations: &Durations) -> Vec<(Timestamp, LabEvent)> {
        let mut happened = Vec::new();
        if self.winrm_down_until.is_some_and(|until| until <= now) {
            self.winrm_down_until = None;
        }
        if let Power::ShuttingDown { at } = self.power
            && at <= now
        {
            let minutes = match self.faults.reboot {
                RebootBehaviour::Normal => Some(durations.reboot_minutes),
                RebootBehaviour::SlowMinutes(m) => Some(m),
                RebootBehaviour::Never => None,
            };
            let until = minutes.map(|m| {
                at.saturating_add(SignedDuration::from_mins(m.try_into().unwrap_or(i64::MAX)))
                    .unwrap_or(at)
            });
            self.boot_count += 1;
            self.boot_time = until.unwrap_or(at);
            if let Some(to) = self.pending_build.take() {
                let from = self
                    .build
                    .map_or_else(|| "none".to_string(), |b| b.to_string());
                self.build = Some(to);
                happened.push((
                    at,
                    LabEvent::BuildChanged {
                        from,
                        to: to.to_string(),
                    },
                ));
            }
            self.pending_reboot.clear();
            // Windows rule: servicing finishes some work after the restart and sets CBS
            // RebootPending again, asking for one more (the keys "can linger a while after a
            // reboot").
            if std::mem::take(&mut self.lingering_reboot) {
                self.add_pending_reboot(MARKER_CBS);
            }
            // Attached images do not survive a restart.
            self.mounted_images.clear();
            for s in &mut self.services {
                if s.start_type == "Automatic" {
                    let delayed = self.delayed_start.contains(&s.name);
                    s.status = if delayed { "Stopped" } else { "Running" }.to_string();
                }
            }
            self.delayed_start_at = (!self.delayed_start.is_empty())
                .then(|| self.boot_time.saturating_add(AUTO_START_DELAY).ok())
                .flatten();
            happened.push((
                at,
                LabEvent::RebootStarted {
                    boot_id: self.boot_id(),
                },
            ));
            self.power = Power::Down { until };
        }
        if let Power::Down { until: Some(until) } = self.power
            && until <= now
        {
            self.power = Power::Up;
            self.ha.came_back(until);
            happened.push((
                until,
                LabEvent::RebootCompleted {
                    boot_id: self.boot_id(),
                },
            ));
        }
        if self.power == Power::Up
            && let Some(at) = self.delayed_start_at
            && at <= now
        {
            self.delayed_start_at = None;
            for s in &mut self.services {
                if s.start_type == "Automatic" && self.delayed_start.contains(&s.name) {
                    s.status = "Running".to_string();
                }
            }
        }
        if let Some(left) = self.ha.backlog(now) {
            for c in self.copies.iter_mut().filter(|c| !c.active) {
                c.copy_queue = left;
            }
        }
        happened
    }

    /// Component states as `Get-ServerComponentState` reports them: with ServerWideOffline
    /// Inactive, everything but Monitoring and RecoveryActionsEnabled reads Inactive.
    pub fn effective_components(&self) -> Vec<ComponentState> {
        let offline = self
            .component("ServerWideOffline")
            .is_some_and(|c| c.state == "Inactive");
        self.components
            .iter()
            .map(|c| {
                let forced =
                    offline && c.state == "Active" && !ALWAYS_ACTIVE.contains(&c.name.as_str());
                ComponentState {
                    component: c.name.clone(),
                    state: if forced {
                        "Inactive".to_string()
                    } else {
                        c.state.clone()
                    },
                    requesters: c.requesters.clone(),
                }
            })
            .collect()
    }

    pub fn component(&self, name: &str) -> Option<&Component> {
        self.components.iter().find(|c| c.name == name)
    }

    /// `Set-ServerComponentState -Component name -State state -Requester requester`.
    pub fn set_component(&mut self, name: &str, state: &str, requester: &str) {
        if let Some(c) = self.components.iter_mut().find(|c| c.name == name) {
            c.requesters.retain(|r| r != requester);
            if state != "Active" {
                c.requesters.push(requester.to_string());
                c.state = state.to_string();
            } else if c.requesters.is_empty() {
                c.state = "Active".to_string();
            }
        }
    }

    /// Components not Active, except those inactive by design.
    pub fn inactive_components(&self) -> Vec<String> {
        self.effective_components()
            .into_iter()
            .filter(|c| c.state != "Active" && !INACTIVE_BY_DESIGN.contains(&c.component.as_str()))
            .map(|c| c.component)
            .collect()
    }

    /// Installed SU KB numbers from both registry sources, sorted and unique.
    pub fn installed_kbs(&self) -> Vec<String> {
        let mut kbs: Vec<String> = self
            .uninstall_entries
            .iter()
            .chain(&self.update_packages)
            .filter_map(|t| extract_kb(t))
            .collect();
        kbs.sort();
        kbs.dedup();
        kbs
    }

    /// Stop and disable the Exchange services and [`SETUP_ALSO_DISABLES`], as Setup and SUs
    /// do before changing files.
    pub fn disable_services(&mut self) -> Vec<String> {
        let mut changed = Vec::new();
        for s in &mut self.services {
            let stopped_by_setup =
                s.name.starts_with("MSExchange") || SETUP_ALSO_DISABLES.contains(&s.name.as_str());
            if stopped_by_setup && s.start_type != "Disabled" {
                s.start_type = "Disabled".to_string();
                s.status = "Stopped".to_string();
                changed.push(s.name.clone());
            }
        }
        changed
    }

    /// Restore the start types Setup disabled (ServiceControl.ps1 AfterPatch).
    pub fn restore_services(&mut self) {
        for (s, (_, _, start)) in self.services.iter_mut().zip(SERVICES.iter()) {
            s.start_type = start.to_string();
            s.status = if *start == "Automatic" {
                "Running"
            } else {
                "Stopped"
            }
            .to_string();
        }
    }

    /// Windows rule: Windows Installer runs one installation at a time. While another holds
    /// its `_MSIExecute` mutex, `msiexec` exits at once with 1618,
    /// `ERROR_INSTALL_ALREADY_RUNNING` ("Another installation is already in progress").
    /// Returns what holds it at `now`, if anything.
    pub fn installer_busy(&self, now: Timestamp) -> Option<String> {
        if let Some(running) = &self.installing {
            return Some(running.clone());
        }
        self.installer_busy_until
            .filter(|until| *until > now)
            .map(|_| {
                self.installer_process
                    .clone()
                    .unwrap_or_else(|| "another Windows Installer transaction".to_string())
            })
    }

    /// The command line of the installer process running at `now`, if any: one a shipped
    /// script started ([`HostState::installing`]), or the scenario's.
    pub fn installer_command_line(&self, now: Timestamp) -> Option<String> {
        self.installing.clone().or_else(|| {
            self.installer_busy_until
                .filter(|until| *until > now)
                .and(self.installer_process.clone())
        })
    }

    /// Exchange/IIS rule: what OWA's logon URL answers on the server itself. IIS answers 503
    /// while W3SVC is Disabled or Exchange's service host is down, 500 with the error page when
    /// OWA is broken (a non-elevated SU); otherwise it depends on the sign-in method: 200 for
    /// forms, a 302 to the AD FS sign-in page for claims authentication, 401 for Windows
    /// authentication.
    pub fn owa_logon(&self) -> OwaResponse {
        let running = |name: &str| {
            self.services
                .iter()
                .any(|x| x.name == name && x.start_type != "Disabled" && x.status == "Running")
        };
        let error = |status: u16, text: &str| OwaResponse {
            status,
            location: None,
            error: Some(text.to_string()),
        };
        if !running("W3SVC") || !running("MSExchangeServiceHost") {
            return error(503, "Service Unavailable");
        }
        if let Some(e) = &self.owa_error {
            return error(500, e);
        }
        let (status, location) = match self.owa_auth {
            OwaAuth::Forms => (200, None),
            OwaAuth::Adfs => (
                302,
                Some(format!(
                    "https://adfs.{}.local/adfs/ls/?wa=wsignin1.0&wtrealm=https%3a%2f%2fmail.{}.local%2fowa%2f",
                    self.tenant, self.tenant
                )),
            ),
            OwaAuth::Windows => (401, None),
        };
        OwaResponse {
            status,
            location,
            error: None,
        }
    }

    /// Whether a download of `source` through `proxy` gets out of this server's network: where
    /// the web is reachable only through [`HostState::web_proxy`], anything else fails as
    /// Invoke-WebRequest words it. Shares and other non-web sources are not its business.
    pub fn web_reachable(&self, source: &str, proxy: Option<&str>) -> Result<(), String> {
        let web = source.starts_with("http://") || source.starts_with("https://");
        match &self.web_proxy {
            Some(required) if web && proxy != Some(required.as_str()) => {
                Err("Invoke-WebRequest : Unable to connect to the remote server".to_string())
            }
            _ => Ok(()),
        }
    }

    /// A package written to `path` (replacing one of the same name): the disk holds it until
    /// [`HostState::delete_download`]. Windows rule: a file held open cannot be replaced, and an
    /// attached disk image holds its file open ("The process cannot access the file ...
    /// because it is being used by another process").
    ///
    /// Windows rule: a copy or download larger than the free space writes until the disk is
    /// full and fails with "There is not enough space on the disk."; the partial file stays
    /// (Invoke-WebRequest -OutFile, Copy-Item of a large file) and the disk stays full.
    pub fn store_download(&mut self, path: &str, size: u64) -> Result<(), String> {
        if self.mounted_images.iter().any(|m| m == path) {
            return Err(format!(
                "The process cannot access the file '{path}' because it is being used by another process."
            ));
        }
        self.delete_download(path);
        if size > self.free_disk_bytes {
            self.downloads.push(SimFile {
                path: path.to_string(),
                sha256: String::new(),
                size: self.free_disk_bytes,
            });
            self.free_disk_bytes = 0;
            return Err("There is not enough space on the disk.".to_string());
        }
        self.free_disk_bytes = self.free_disk_bytes.saturating_sub(size);
        self.downloads.push(SimFile {
            path: path.to_string(),
            sha256: String::new(),
            size,
        });
        Ok(())
    }

    /// `Mount-DiskImage`: the image is attached (and its file held open) until
    /// [`HostState::dismount_image`] or the next restart. Windows rule: its volume gets the next
    /// free drive letter, or none while automount is off. Returns the drive letter.
    pub fn mount_image(&mut self, path: &str) -> Option<char> {
        if !self.mounted_images.iter().any(|m| m == path) {
            self.mounted_images.push(path.to_string());
        }
        if self.automount_disabled {
            return None;
        }
        let at = self
            .mounted_images
            .iter()
            .position(|m| m == path)
            .unwrap_or(0);
        // D: is the first letter after the system drive; one per attached image.
        (b'D'..=b'Z').nth(at).map(char::from)
    }

    /// `Dismount-DiskImage`: the image is detached and its file released.
    pub fn dismount_image(&mut self, path: &str) {
        self.mounted_images.retain(|m| m != path);
    }

    /// `Remove-Item` of a downloaded package; `true` when it was there.
    pub fn delete_download(&mut self, path: &str) -> bool {
        let Some(at) = self.downloads.iter().position(|f| f.path == path) else {
            return false;
        };
        let file = self.downloads.remove(at);
        self.free_disk_bytes = self.free_disk_bytes.saturating_add(file.size);
        true
    }

    pub fn add_pending_reboot(&mut self, marker: &str) {
        if !self.pending_reboot.iter().any(|m| m == marker) {
            self.pending_reboot.push(marker.to_string());
        }
    }
}

/// `KB5000871` from a display or package name.
pub fn extract_kb(text: &str) -> Option<String> {
    let at = text.find("KB")?;
    let digits: String = text[at + 2..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    (digits.len() == 7).then(|| format!("KB{digits}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn host(build: &str) -> HostState {
        HostState::new(
            "ex1",
            "t",
            build.parse().unwrap(),
            t("2021-03-10T08:00:00Z"),
        )
    }

    #[test]
    fn new_host_lists_its_sus() {
        let h = host("15.2.792.13");
        assert_eq!(h.installed_kbs(), ["KB5000871", "KB5001779"]);
        assert_eq!(h.uninstall_entries.len(), 2);
        assert!(h.inactive_components().is_empty());
    }

    #[test]
    fn restart_applies_pending_build_and_comes_back() {
        let mut h = host("15.2.792.3");
        let d = Durations::default();
        h.pending_build = Some("15.2.792.10".parse().unwrap());
        h.add_pending_reboot(MARKER_FILE_RENAME);
        h.power = Power::ShuttingDown {
            at: t("2021-03-10T09:00:00Z"),
        };
        assert!(h.settle(t("2021-03-10T08:59:59Z"), &d).is_empty());
        let ev = h.settle(t("2021-03-10T09:01:00Z"), &d);
        assert_eq!(ev.len(), 2, "{ev:?}");
        assert!(!h.is_up());
        assert_eq!(h.build.unwrap().to_string(), "15.2.792.10");
        assert!(h.pending_reboot.is_empty());
        let ev = h.settle(t("2021-03-10T09:08:00Z"), &d);
        assert!(matches!(ev[0].1, LabEvent::RebootCompleted { .. }));
        assert_eq!(h.boot_count, 2);
        assert_eq!(h.boot_id(), "2021-03-10T09:08:00Z");
    }

    #[test]
    fn a_reboot_that_never_returns() {
        let mut h = host("15.2.792.3");
        h.faults.reboot = RebootBehaviour::Never;
        h.power = Power::ShuttingDown {
            at: t("2021-03-10T09:00:00Z"),
        };
        h.settle(t("2021-03-20T00:00:00Z"), &Durations::default());
        assert_eq!(h.power, Power::Down { until: None });
    }

    #[test]
    fn offline_server_reads_inactive_except_monitoring() {
        let mut h = host("15.2.858.5");
        h.set_component("ServerWideOffline", "Inactive", "Maintenance");
        let inactive = h.inactive_components();
        assert!(inactive.contains(&"OwaProxy".to_string()));
        assert!(!inactive.contains(&"Monitoring".to_string()));
        h.set_component("ServerWideOffline", "Active", "Maintenance");
        assert!(h.inactive_components().is_empty());
    }

    #[test]
    fn windows_installer_is_held_by_a_running_install_or_another_transaction() {
        let mut h = host("15.2.792.3");
        let now = t("2021-03-10T09:00:00Z");
        assert_eq!(h.installer_busy(now), None);
        h.installer_busy_until = Some(t("2021-03-10T09:05:00Z"));
        assert!(h.installer_busy(now).is_some());
        assert_eq!(h.installer_busy(t("2021-03-10T09:05:00Z")), None);
        h.installing = Some("KB5000871".into());
        assert_eq!(h.installer_busy(now).as_deref(), Some("KB5000871"));
    }

    #[test]
    fn a_copy_larger_than_the_free_space_fills_the_disk_and_fails() {
        let mut h = host("15.2.792.3");
        h.free_disk_bytes = 5 * 1024 * 1024 * 1024;
        let e = h
            .store_download("C:\\salve\\updates\\KB1.iso", 6 * 1024 * 1024 * 1024)
            .unwrap_err();
        assert_eq!(e, "There is not enough space on the disk.");
        assert_eq!(h.free_disk_bytes, 0, "the disk is left full");
        assert_eq!(h.downloads.len(), 1, "the partial file stays");
    }

    #[test]
    fn a_mounted_image_holds_its_file_and_is_gone_after_a_restart() {
        let mut h = host("15.2.792.3");
        let free = h.free_disk_bytes;
        h.store_download("C:\\salve\\updates\\a.iso", 10).unwrap();
        assert_eq!(h.free_disk_bytes, free - 10);
        assert_eq!(h.mount_image("C:\\salve\\updates\\a.iso"), Some('D'));
        let held = h.store_download("C:\\salve\\updates\\a.iso", 10);
        assert!(held.unwrap_err().contains("being used by another process"));
        h.power = Power::ShuttingDown {
            at: t("2021-03-10T09:00:00Z"),
        };
        h.settle(t("2021-03-10T09:01:00Z"), &Durations::default());
        assert!(h.mounted_images.is_empty());
        h.store_download("C:\\salve\\updates\\a.iso", 10).unwrap();
        assert!(h.delete_download("C:\\salve\\updates\\a.iso"));
        assert_eq!(h.free_disk_bytes, free);
        h.automount_disabled = true;
        assert_eq!(h.mount_image("C:\\salve\\updates\\a.iso"), None);
    }

    #[test]
    fn delayed_start_services_run_two_minutes_after_boot() {
        let mut h = host("15.2.792.3");
        let d = Durations::default();
        h.delayed_start = vec!["MSExchangeDiagnostics".into()];
        h.power = Power::ShuttingDown {
            at: t("2021-03-10T09:00:00Z"),
        };
        h.settle(t("2021-03-10T09:08:00Z"), &d);
        let status = |h: &HostState| {
            h.services
                .iter()
                .find(|s| s.name == "MSExchangeDiagnostics")
                .map(|s| s.status.clone())
                .unwrap()
        };
        assert!(h.is_up());
        assert_eq!(status(&h), "Stopped");
        h.settle(t("2021-03-10T09:10:00Z"), &d);
        assert_eq!(status(&h), "Running");
    }

    #[test]
    fn owa_answers_by_its_sign_in_method() {
        let mut h = host("15.2.792.3");
        assert_eq!(h.owa_logon().status, 200);
        h.owa_auth = OwaAuth::Adfs;
        let r = h.owa_logon();
        assert_eq!(r.status, 302);
        assert!(r.location.unwrap().contains("/adfs/ls/"));
        h.owa_auth = OwaAuth::Windows;
        assert_eq!(h.owa_logon().status, 401);
        h.disable_services();
        assert_eq!(h.owa_logon().status, 503);
    }

    #[test]
    fn a_failed_update_disables_windows_services_too() {
        let mut h = host("15.2.792.3");
        let disabled = h.disable_services();
        for name in SETUP_ALSO_DISABLES {
            assert!(disabled.iter().any(|d| d == name), "{name}");
        }
        h.restore_services();
        assert!(h.services.iter().all(|s| s.start_type != "Disabled"));
    }

    #[test]
    fn kb_extraction() {
        assert_eq!(
            extract_kb("Security Update ... (KB5000871)").as_deref(),
            Some("KB5000871")
        );
        assert_eq!(extract_kb("KB12"), None);
    }
}
