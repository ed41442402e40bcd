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

/// (name, display name, start type) of the services the lab models.
const SERVICES: [(&str, &str, &str); 16] = [
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
];

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
    pub free_disk_bytes: u64,
    pub auth_cert_expiry: Timestamp,
    pub boot_count: u64,
    pub boot_time: Timestamp,
    pub power: Power,
    /// `Up` or `Paused` for DAG members.
    pub cluster_node: Option<String>,
    pub activation_policy: String,
    /// First line of the error OWA shows, when broken.
    pub owa_error: Option<String>,
    pub files: Vec<SimFile>,
    pub log_lines: Vec<LogLine>,
    pub events: Vec<AppEvent>,
    /// Oldest log file time (for the scan's log age).
    pub logs_since: Timestamp,
    /// `C:\ExchangeSetupLogs\ExchangeSetup.log`.
    pub setup_log: Vec<String>,
    /// The update whose installer is running now (Setup.exe or msiexec), if any.
    #[serde(default)]
    pub installing: Option<String>,
    pub faults: HostFaults,
    /// Configuration security fixes depend on (SettingOverrides, Extended Protection, EEMS).
    #[serde(default)]
    pub config: crate::exchange_config::ExchangeConfig,
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
            free_disk_bytes: 120 * 1024 * 1024 * 1024,
            auth_cert_expiry: boot_time
                .saturating_add(SignedDuration::from_hours(24 * 400))
                .unwrap_or(boot_time),
            boot_count: 1,
            boot_time,
            power: Power::Up,
            cluster_node: None,
            activation_policy: "Unrestricted".to_string(),
            owa_error: None,
            files: Vec::new(),
            log_lines: Vec::new(),
            events: Vec::new(),
            logs_since: boot_time
                .saturating_sub(SignedDuration::from_hours(24 * 30))
                .unwrap_or(boot_time),
            setup_log: Vec::new(),
            installing: None,
            faults: HostFaults::default(),
            config: Default::default(),
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
            for s in &mut self.services {
                if s.start_type == "Automatic" {
                    s.status = "Running".to_string();
                }
            }
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
            happened.push((
                until,
                LabEvent::RebootCompleted {
                    boot_id: self.boot_id(),
                },
            ));
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

    /// Stop and disable the Exchange services, as Setup does before changing files.
    pub fn disable_services(&mut self) -> Vec<String> {
        let mut changed = Vec::new();
        for s in &mut self.services {
            if s.name.starts_with("MSExchange") && s.start_type != "Disabled" {
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
    fn kb_extraction() {
        assert_eq!(
            extract_kb("Security Update ... (KB5000871)").as_deref(),
            Some("KB5000871")
        );
        assert_eq!(extract_kb("KB12"), None);
    }
}
