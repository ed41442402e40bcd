//! The shipped-script contract: what each `# salve-script: <id>` script takes as `$SalveArgs`
//! and what it answers on its `##salve-result## <json>` line (see [`crate::wire`]).
//!
//! Three parties follow these types: the controller-side modules (which build the requests and
//! read the answers), the real PowerShell scripts shipped with salve, and the lab (which plays
//! the host). Field names are the JSON keys, in `snake_case`. Builds travel as short-format
//! strings (`15.2.858.5`) and are compared numerically by the reader; times are RFC 3339 UTC.
//!
//! | id | request (`$SalveArgs`) | answer |
//! |---|---|---|
//! | `exchange_facts` | none | [`FactsAnswer`]: build read from the ExSetup.exe file version, installed SU KBs (Uninstall entries and the `Updates` key), family, roles, DAG and database copies, component states, services, .NET release, VC++ 2012/2013, UCMA, URL Rewrite and the two EOMT rules, pending-reboot markers, free disk, Exchange auth certificate expiry, boot id |
//! | `exchange_mitigate` | [`MitigateRequest`] | [`MitigateAnswer`] |
//! | `exchange_update` | [`UpdateRequest`] | [`UpdateAnswer`]: installer exit code, log excerpt, reboot required, success, reason |
//! | `exchange_maintenance` | [`MaintenanceRequest`] | [`MaintenanceAnswer`]: previous activation policy, component states, moved databases, health gates |
//! | `reboot` | [`RebootRequest`] | [`RebootAnswer`]: boot id before the restart |
//! | `boot_id` | none | [`BootIdAnswer`] |
//! | `exchange_verify` | [`VerifyRequest`] | [`VerifyAnswer`] |
//! | `exchange_ioc_scan` | none | [`IocScanAnswer`]: findings per CVE with evidence, log age in days, compromised |
//! | `exchange_health` | none | [`HealthAnswer`]: DAG copy health and queue lengths for gates |
//! | `job_control` | [`JobControlRequest`] | [`JobControlAnswer`]: start a script as a detached scheduled task (under explicit credentials) and wait on the host for a short one to finish (its output, exit code, and for a read its removal), or remove a finished one |
//! | `job_poll` | [`JobPollRequest`] | [`JobPollAnswer`]: a detached task's state, new output since an offset, exit code (a read's last poll removes it) |
//!
//! A script that cannot do its job still prints its answer line where it can (with
//! `success: false` and a `reason`) and exits non-zero; a script that fails before it can answer
//! writes the error to stderr and exits non-zero.
//!
//! The boot id is the host's last boot time in UTC (`(Get-CimInstance Win32_OperatingSystem)
//! .LastBootUpTime`), an opaque string that changes on every restart.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The shipped script ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScriptId {
    ExchangeFacts,
    ExchangeMitigate,
    ExchangeUpdate,
    ExchangeMaintenance,
    Reboot,
    BootId,
    ExchangeVerify,
    ExchangeIocScan,
    ExchangeHealth,
    JobControl,
    JobPoll,
}

impl ScriptId {
    pub const ALL: [ScriptId; 11] = [
        ScriptId::ExchangeFacts,
        ScriptId::ExchangeMitigate,
        ScriptId::ExchangeUpdate,
        ScriptId::ExchangeMaintenance,
        ScriptId::Reboot,
        ScriptId::BootId,
        ScriptId::ExchangeVerify,
        ScriptId::ExchangeIocScan,
        ScriptId::ExchangeHealth,
        ScriptId::JobControl,
        ScriptId::JobPoll,
    ];

    /// The id as written after `# salve-script: `.
    pub fn as_str(self) -> &'static str {
        match self {
            ScriptId::ExchangeFacts => "exchange_facts",
            ScriptId::ExchangeMitigate => "exchange_mitigate",
            ScriptId::ExchangeUpdate => "exchange_update",
            ScriptId::ExchangeMaintenance => "exchange_maintenance",
            ScriptId::Reboot => "reboot",
            ScriptId::BootId => "boot_id",
            ScriptId::ExchangeVerify => "exchange_verify",
            ScriptId::ExchangeIocScan => "exchange_ioc_scan",
            ScriptId::ExchangeHealth => "exchange_health",
            ScriptId::JobControl => "job_control",
            ScriptId::JobPoll => "job_poll",
        }
    }

    pub fn parse(id: &str) -> Option<ScriptId> {
        ScriptId::ALL.into_iter().find(|s| s.as_str() == id)
    }

    /// The script as a [`ReadOnlyId`] when it only reads the host, `None` when it changes it.
    /// This match is the one place that decides which scripts check mode may run: a new script
    /// is state-changing until it is listed here.
    pub fn read_only(self) -> Option<ReadOnlyId> {
        match self {
            ScriptId::ExchangeFacts => Some(ReadOnlyId::ExchangeFacts),
            ScriptId::BootId => Some(ReadOnlyId::BootId),
            ScriptId::ExchangeVerify => Some(ReadOnlyId::ExchangeVerify),
            ScriptId::ExchangeIocScan => Some(ReadOnlyId::ExchangeIocScan),
            ScriptId::ExchangeHealth => Some(ReadOnlyId::ExchangeHealth),
            ScriptId::JobPoll => Some(ReadOnlyId::JobPoll),
            ScriptId::ExchangeMitigate
            | ScriptId::ExchangeUpdate
            | ScriptId::ExchangeMaintenance
            | ScriptId::Reboot
            | ScriptId::JobControl => None,
        }
    }

    /// The script runs Exchange's management cmdlets, which reach Active Directory (and, through
    /// Exchange's management shell, a Remote PowerShell session) as the process's account: it
    /// can do its work only where that account has network credentials, never from a WinRM or
    /// SSH network logon alone. This match is the one place that says which scripts those are.
    pub fn manages_exchange(self) -> bool {
        match self {
            ScriptId::ExchangeFacts
            | ScriptId::ExchangeHealth
            | ScriptId::ExchangeVerify
            | ScriptId::ExchangeMaintenance => true,
            ScriptId::ExchangeMitigate
            | ScriptId::ExchangeUpdate
            | ScriptId::Reboot
            | ScriptId::BootId
            | ScriptId::ExchangeIocScan
            | ScriptId::JobControl
            | ScriptId::JobPoll => false,
        }
    }

    /// The script only reads the host (see [`ScriptId::read_only`]).
    pub fn is_read_only(self) -> bool {
        self.read_only().is_some()
    }
}

/// The shipped scripts that only read the host: the only ones check mode can run (through
/// `salve::script::ReadOnlyScript`). A state-changing id has no variant here, so asking for
/// one does not compile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReadOnlyId {
    ExchangeFacts,
    BootId,
    ExchangeVerify,
    ExchangeIocScan,
    ExchangeHealth,
    JobPoll,
}

impl ReadOnlyId {
    /// The shipped script this is.
    pub fn script_id(self) -> ScriptId {
        match self {
            ReadOnlyId::ExchangeFacts => ScriptId::ExchangeFacts,
            ReadOnlyId::BootId => ScriptId::BootId,
            ReadOnlyId::ExchangeVerify => ScriptId::ExchangeVerify,
            ReadOnlyId::ExchangeIocScan => ScriptId::ExchangeIocScan,
            ReadOnlyId::ExchangeHealth => ScriptId::ExchangeHealth,
            ReadOnlyId::JobPoll => ScriptId::JobPoll,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// exchange_facts

/// Everything a facts module reports about one Exchange server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FactsAnswer {
    pub computer_name: String,
    /// `Exchange 2010`, `Exchange 2013`, `Exchange 2016`, `Exchange 2019` or
    /// `Exchange Server SE`; `None` when no Exchange setup key exists.
    pub family: Option<String>,
    /// ExSetup.exe file version from its numeric parts; `None` when ExSetup.exe is missing
    /// (a broken or failed install, never "0.0").
    pub build: Option<String>,
    /// KB numbers (`KB5000871`) of installed Exchange SUs, from both sources, sorted, unique.
    pub installed_kbs: Vec<String>,
    /// `DisplayName`s of Uninstall entries like `Security Update for Exchange Server*`.
    pub uninstall_entries: Vec<String>,
    /// `PackageName`s under `HKLM\SOFTWARE\Microsoft\Updates\Exchange <year>`.
    pub update_packages: Vec<String>,
    /// `Mailbox`, `ClientAccess`, `UnifiedMessaging`, `Edge`, ...
    pub roles: Vec<String>,
    pub dag: Option<String>,
    pub database_copies: Vec<DatabaseCopy>,
    pub component_states: Vec<ComponentState>,
    pub services: Vec<ServiceInfo>,
    /// `HKLM\SOFTWARE\Microsoft\NET Framework Setup\NDP\v4\Full` `Release`.
    pub dotnet_release: u32,
    /// Versions from the Uninstall entries, `None` when absent.
    pub vcredist_2012: Option<String>,
    pub vcredist_2013: Option<String>,
    pub ucma: Option<String>,
    /// IIS URL Rewrite module version, `None` when not installed.
    pub url_rewrite: Option<String>,
    /// Which of the two EOMT rule names are present on the Default Web Site.
    pub mitigation_rules: Vec<String>,
    /// Pending-reboot markers found, by registry path (empty = no reboot pending).
    pub pending_reboot: Vec<String>,
    pub free_disk_bytes: u64,
    /// Expiry of the Exchange auth (OAuth) certificate.
    pub auth_certificate_expiry: Option<String>,
    pub cluster_node_state: Option<String>,
    /// `DatabaseCopyAutoActivationPolicy` (`Unrestricted`, `IntrasiteOnly`, `Blocked`).
    pub activation_policy: Option<String>,
    pub boot_id: String,
    /// An Exchange installer (Setup.exe /Mode:Upgrade or msiexec with an Exchange .msp) still
    /// running on the host, e.g. started by a run that was cut off: its label or command line.
    #[serde(default)]
    pub install_in_progress: Option<String>,
    /// salve's detached tasks on the host (`job_control`), running or finished and not yet
    /// collected: what a later run re-attaches to instead of starting a second install.
    #[serde(default)]
    pub salve_jobs: Vec<JobInfo>,
    /// Why Exchange could not be managed from this logon (the management shell did not load,
    /// or its first cmdlets failed), with roles, DAG and components then unread; `None` when
    /// they were read or the server has no Exchange 2013-or-later install.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exchange_management_error: Option<String>,
    /// Fix-related configuration (`Get-SettingOverride`, Extended Protection, the Emergency
    /// Mitigation service, outbound rewrite rules); `None` from scripts that do not read it.
    #[serde(default)]
    pub config: Option<ExchangeConfigFacts>,
    /// The forest's Exchange AD versions, what `/PrepareSchema` and `/PrepareAD` leave; `None`
    /// when Active Directory was not readable.
    #[serde(default)]
    pub ad: Option<AdVersions>,
}

/// Exchange's versions in a forest's Active Directory (CSS-Exchange SetupAssist reads the same).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdVersions {
    /// The forest root domain's distinguished name (`DC=contoso,DC=com`): which forest.
    pub forest: String,
    /// `rangeUpper` of `CN=ms-Exch-Schema-Version-Pt` in the schema (`/PrepareSchema`).
    pub schema: u32,
    /// `objectVersion` of the Exchange organisation container (`/PrepareAD`).
    pub org: u32,
}

/// What `exchange_facts` reads about the configuration security fixes depend on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExchangeConfigFacts {
    /// `Get-SettingOverride` (organisation-wide); `None` where the cmdlet does not exist
    /// (Exchange 2013 and older).
    pub setting_overrides: Option<Vec<SettingOverride>>,
    /// Extended Protection (`tokenChecking` Require or Allow) on every front-end virtual
    /// directory of the Default Web Site; `None` when not read.
    pub extended_protection: Option<bool>,
    /// The Emergency Mitigation service; `None` when the server has none.
    pub emergency_mitigation: Option<EmergencyMitigation>,
    /// Outbound URL Rewrite rule names on `Default Web Site/owa`.
    pub outbound_rules: Vec<String>,
}

/// One `SettingOverride`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingOverride {
    pub name: String,
    pub component: String,
    pub section: String,
    /// `Name=Value` as the cmdlet lists them.
    pub parameters: Vec<String>,
}

/// The Emergency Mitigation service on one server.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmergencyMitigation {
    /// `MSExchangeMitigation` exists and is running.
    pub service_present: bool,
    pub service_running: bool,
    /// `Get-OrganizationConfig` and `Get-ExchangeServer` MitigationsEnabled both true.
    pub mitigations_enabled: bool,
    /// `Get-ExchangeServer` MitigationsApplied / MitigationsBlocked (EEMS ids).
    pub applied: Vec<String>,
    pub blocked: Vec<String>,
}

/// One database copy on this server (`Get-MailboxDatabaseCopyStatus`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseCopy {
    pub database: String,
    /// The copy is the active (mounted) one.
    pub active: bool,
    /// `Mounted`, `Healthy`, `Resynchronizing`, `Failed`, `Suspended`, ...
    pub status: String,
    pub copy_queue_length: u64,
    pub replay_queue_length: u64,
    pub activation_suspended: bool,
    /// Servers holding a copy of this database, this one included (`(Get-MailboxDatabase
    /// <db>).DatabaseCopies`): 1 means a mounted copy here cannot move anywhere. `None` where
    /// it was not read (the health script).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copies: Option<u32>,
}

/// One server component (`Get-ServerComponentState`), as HealthChecker reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentState {
    pub component: String,
    /// `Active`, `Inactive` or `Draining`.
    pub state: String,
    /// Requesters holding the component down (`Maintenance`, `Functional`, ...).
    pub requesters: Vec<String>,
}

/// One Windows service (`Get-Service`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceInfo {
    pub name: String,
    pub display_name: String,
    /// `Automatic`, `Manual`, `Disabled`.
    pub start_type: String,
    /// `Running`, `Stopped`.
    pub status: String,
}

// ---------------------------------------------------------------------------------------------
// exchange_mitigate

/// Apply or remove EOMT URL Rewrite mitigations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MitigateAction {
    Apply,
    Remove,
}

/// The mitigations `scripts/exchange_mitigate.ps1` knows how to write, by the catalogue's id.
/// Each is the URL Rewrite configuration CSS-Exchange's EOMT writes for the CVE
/// (Security/src/EOMT/Mitigations/CVE-*.ps1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum MitigationId {
    /// Two inbound rules on the Default Web Site aborting requests whose cookie carries
    /// `X-AnonResource-Backend` or `X-BEResource` (ProxyLogon SSRF).
    #[serde(rename = "eomt-cve-2021-26855")]
    EomtCve202126855,
    /// An outbound rule on `Default Web Site/owa` appending `script-src-attr 'none'` to the
    /// Content-Security-Policy of OWA's HTML shell pages (OWA cross-site scripting).
    #[serde(rename = "eomt-cve-2026-42897")]
    EomtCve202642897,
}

impl MitigationId {
    pub const ALL: [MitigationId; 2] = [
        MitigationId::EomtCve202126855,
        MitigationId::EomtCve202642897,
    ];

    /// The catalogue's id.
    pub fn as_str(self) -> &'static str {
        match self {
            MitigationId::EomtCve202126855 => "eomt-cve-2021-26855",
            MitigationId::EomtCve202642897 => "eomt-cve-2026-42897",
        }
    }

    pub fn parse(id: &str) -> Option<MitigationId> {
        MitigationId::ALL.into_iter().find(|m| m.as_str() == id)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MitigateRequest {
    pub action: MitigateAction,
    /// The mitigations to apply or remove, in this order.
    pub mitigations: Vec<MitigationId>,
    /// Where to install the URL Rewrite module from when it is missing (URL or UNC path of
    /// `rewrite_amd64_<lang>.msi`). Without it, applying on a host without the module fails.
    #[serde(default)]
    pub rewrite_msi_source: Option<String>,
    /// Expected SHA-256 of that MSI, lowercase hex; checked on the host before installing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrite_msi_sha256: Option<String>,
    /// The web proxy a URL source is downloaded through (as [`UpdateRequest::proxy`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrite_msi_proxy: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MitigateAnswer {
    pub changed: bool,
    pub success: bool,
    pub reason: Option<String>,
    pub url_rewrite_installed: bool,
    /// The names of the rules of every mitigation the script knows (inbound on the Default Web
    /// Site, outbound on its /owa application) present after the run.
    pub rules_present: Vec<String>,
    /// Installing the URL Rewrite module asked for a restart (msiexec 3010 or 1641).
    #[serde(default)]
    pub reboot_required: bool,
}

// ---------------------------------------------------------------------------------------------
// exchange_update

/// Cumulative update (Setup.exe /Mode:Upgrade), security update (.msp through msiexec), or a
/// .NET Framework offline installer (`/q /norestart`) a CU on the update path needs first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateKind {
    Cu,
    Su,
    #[serde(rename = "dotnet")]
    DotNet,
    /// `Setup.exe /PrepareSchema` then `/PrepareAD` from the CU's image: once per forest,
    /// before the first server's CU, under an account with Schema and Enterprise Admins rights.
    PrepareAd,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateRequest {
    pub kind: UpdateKind,
    /// URL or UNC path of the package (CU: extracted media folder or ISO; SU: the .msp).
    pub source: String,
    /// Expected SHA-256 of the package, lowercase hex; the script refuses a mismatch.
    pub sha256: String,
    /// KB number of the package (`KB5000871`; a .NET offline installer's own KB, `KB4503548`).
    pub kb: String,
    /// Build the host should run after the update and the reboot that follows (a .NET step
    /// leaves the Exchange build as it is).
    pub target_build: String,
    /// .NET only: the `Release` value (`HKLM\SOFTWARE\Microsoft\NET Framework Setup\NDP\v4\Full`)
    /// the installer brings the host to; a host already at or past it installs nothing.
    #[serde(default)]
    pub dotnet_release: Option<u32>,
    /// CU only: the license switch to pass (`/IAcceptExchangeServerLicenseTerms` up to June 2021
    /// CUs, `..._DiagnosticDataON`/`OFF` from September 2021).
    #[serde(default)]
    pub license_switch: Option<String>,
    /// Keep the downloaded package in `C:\salve\updates` after a successful install; by
    /// default it is removed (a CU's ISO is about 6 GB on the transport queue's drive).
    #[serde(default)]
    pub keep_packages: bool,
    /// The web proxy a `url` source is downloaded through (`-Proxy`, authenticating with the
    /// step's own account); without it the download goes direct or through the account's
    /// system proxy settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<String>,
    /// A package salve serves itself (`source` is then salve's package server): the SHA-256
    /// of that server's TLS certificate, upper-case hex, the only certificate the download
    /// accepts. The download's bearer token comes through the job's start request
    /// ([`JobControlRequest::download_token`]), never in this request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_pin: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateAnswer {
    /// Setup.exe or msiexec exit code (0, 3010, 1603, 1642, ...).
    pub exit_code: i32,
    /// The last lines of ExchangeSetup.log (CU) or the verbose MSI log (SU).
    pub log_excerpt: Vec<String>,
    pub reboot_required: bool,
    pub success: bool,
    /// Nothing was installed because the update was already present.
    pub already_installed: bool,
    pub reason: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// exchange_maintenance

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaintenanceAction {
    Enter,
    Leave,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceRequest {
    pub action: MaintenanceAction,
    /// Enter: FQDN of the server queued mail is redirected to (`Redirect-Message -Target`);
    /// when absent (or naming this server, which Exchange refuses) the script picks a DAG peer
    /// in the same AD site that is not in maintenance and has HubTransport Active.
    #[serde(default)]
    pub redirect_target: Option<String>,
    /// Leave: what entering recorded (the controller's copy from the journal). Without it the
    /// script reads the copy it kept on the host; with neither, leave changes nothing.
    #[serde(default)]
    pub record: Option<MaintenanceRecord>,
}

/// What a server looked like before salve put it into maintenance: what leave and rescue
/// restore, and nothing else. Kept on the host (`C:\salve\maintenance.json`) and in the
/// journal as the host fact `exchange_maintenance`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintenanceRecord {
    /// The server was in maintenance already (ServerWideOffline held by `Maintenance`) before
    /// salve came: leave keeps it so.
    pub already_in_maintenance: bool,
    /// `DatabaseCopyAutoActivationPolicy` (DAG members).
    pub activation_policy: Option<String>,
    /// Databases whose copy on this server had `ActivationSuspended` set.
    pub activation_suspended: Vec<String>,
    /// `Get-ClusterNode` state (DAG members).
    pub cluster_node_state: Option<String>,
    /// Component states per requester before entering.
    pub component_states: Vec<ComponentState>,
    /// When it was recorded (RFC 3339 UTC).
    pub recorded_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintenanceAnswer {
    pub changed: bool,
    pub success: bool,
    pub reason: Option<String>,
    /// Enter: what the server looked like before (the record kept on the host). Leave: the
    /// record that was restored.
    pub record: Option<MaintenanceRecord>,
    pub activation_policy: Option<String>,
    pub component_states: Vec<ComponentState>,
    pub moved_databases: Vec<MovedDatabase>,
    /// Mounted databases that cannot move (no other copy: a standalone server or a
    /// single-copy database): offline while this server is patched.
    pub outage_databases: Vec<String>,
    /// The steps this run took, in order (`HubTransport Draining`, `transport restarted`, ...);
    /// a leave that finds nothing to undo takes none.
    pub steps: Vec<String>,
    pub cluster_node_state: Option<String>,
    pub gates: MaintenanceGates,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MovedDatabase {
    pub database: String,
    pub from: String,
    pub to: String,
}

/// The checks of the DAG maintenance procedure, evaluated after the action.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintenanceGates {
    /// Enter: no database copy on this server is active.
    pub no_active_copies: bool,
    /// Enter: only `Monitoring` and `RecoveryActionsEnabled` are Active. Leave: all are
    /// Active except `ForwardSyncDaemon` and `ProvisioningRps`.
    pub components_as_expected: bool,
    /// Enter: the cluster node is Paused. Leave: it is Up.
    pub cluster_node_as_expected: bool,
    /// Leave: every copy on this server is healthy or mounted.
    pub copies_healthy: bool,
}

// ---------------------------------------------------------------------------------------------
// reboot, boot_id

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RebootRequest {
    /// Seconds before the restart begins (`shutdown /r /t N`); default 5, so the answer line
    /// reaches the controller before the connection drops.
    #[serde(default)]
    pub delay_seconds: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RebootAnswer {
    /// Boot id before the restart; the controller waits until `boot_id` answers another one.
    pub boot_id_before: String,
    pub scheduled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootIdAnswer {
    pub boot_id: String,
    pub uptime_seconds: u64,
}

// ---------------------------------------------------------------------------------------------
// exchange_verify

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    #[serde(default)]
    pub expected_build: Option<String>,
    #[serde(default)]
    pub expected_kb: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyAnswer {
    pub build: Option<String>,
    pub build_matches: Option<bool>,
    pub kb_present: Option<bool>,
    /// Exchange services with start type Disabled.
    pub disabled_services: Vec<String>,
    /// Automatic services that are not running.
    pub stopped_automatic_services: Vec<String>,
    /// Components not Active, except the two inactive on-premises by design.
    pub inactive_components: Vec<String>,
    /// HTTP status of an OWA logon page request on the server itself.
    pub owa_status: u16,
    /// First line of the error page when OWA does not answer 200.
    pub owa_error: Option<String>,
    /// The `Location` of a redirect answer (an AD FS or Entra ID sign-in page, or an error
    /// page).
    #[serde(default)]
    pub owa_location: Option<String>,
    pub pending_reboot: Vec<String>,
    pub success: bool,
}

impl VerifyAnswer {
    /// OWA answered as a healthy OWA does: 200 (forms sign-in page), 401 (Windows or OAuth
    /// authentication on the virtual directory) or a 302 to a sign-in page (AD FS claims
    /// authentication, hybrid modern authentication), but not a 302 to `errorFE.aspx`.
    /// `scripts/exchange_verify.ps1` applies the same rule on the host.
    pub fn owa_healthy(&self) -> bool {
        match self.owa_status {
            200 | 401 => true,
            302 => self
                .owa_location
                .as_deref()
                .is_some_and(|l| !l.to_ascii_lowercase().contains("errorfe.aspx")),
            _ => false,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// exchange_ioc_scan

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IocScanAnswer {
    pub findings: Vec<IocFinding>,
    /// Days since the oldest file per log folder (`HttpProxy\Owa`, `OABGeneratorLog`, ...).
    pub log_age_days: BTreeMap<String, u64>,
    pub compromised: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IocFinding {
    /// `CVE-2021-26855`, ..., or `other` for lsass dumps and archives.
    pub cve: String,
    /// `ssrf_request`, `um_invalid_cast`, `oab_download_failed`, `ecp_reset_vdir`,
    /// `ecp_vdir_script`, `web_shell`, `lsass_dump`, `suspicious_archive`.
    pub kind: String,
    pub evidence: Vec<Evidence>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    pub path: Option<String>,
    pub sha256: Option<String>,
    /// The log line or event message.
    pub excerpt: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// exchange_health

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthAnswer {
    pub dag: Option<String>,
    /// Copies on this server (`Get-MailboxDatabaseCopyStatus -Server`).
    pub copies: Vec<DatabaseCopy>,
    pub all_copies_healthy: bool,
    pub max_copy_queue_length: u64,
    pub max_replay_queue_length: u64,
    pub cluster_node_state: Option<String>,
    pub activation_policy: Option<String>,
    /// Databases whose copy here has a content index that is not `Healthy`
    /// (`ContentIndexState`; Exchange 2019/SE have none to report: always empty).
    pub unhealthy_content_indexes: Vec<String>,
    /// Checks of `Test-ReplicationHealth` that did not pass, and `Test-ServiceHealth` roles
    /// with required services not running (`ReplayService: Failed`, `Mailbox: MSExchangeIS`).
    pub failed_checks: Vec<String>,
    /// Components not Active, except the two inactive on-premises by design.
    pub inactive_components: Vec<String>,
    /// Messages in this server's transport queues (`Get-Queue`, shadow redundancy excluded);
    /// `None` when the queues could not be read (right after a transport restart).
    pub transport_queue_length: Option<u64>,
}

// ---------------------------------------------------------------------------------------------
// job_control, job_poll: detached steps

/// What `job_control` is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobAction {
    /// Register the script as a scheduled task and start it (unless a task with this id exists:
    /// then nothing is started and the answer says so).
    Start,
    /// Remove a finished task and its folder.
    Remove,
}

/// Start or remove a detached step: a scheduled task that runs a rendered script as its own
/// process, outside the WinRM shell (so a lost connection, a timeout or the controller's end
/// never stops it), with no time limit, under the `become` account when one is given (a
/// logon with network credentials: shares and Active Directory are reachable) or SYSTEM.
/// Its output goes to a file on the host that `job_poll` reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobControlRequest {
    pub action: JobAction,
    /// The job id (`salve-<script>-<time>-<random>`): the task's name and folder.
    pub job: String,
    /// Start: the shipped script this job runs (`exchange_update`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script_id: Option<String>,
    /// Start: the rendered script (prelude, `$SalveArgs`, body), base64 of its UTF-8 text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<String>,
    /// Start: run as this account (`DOMAIN\\user`); SYSTEM when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub become_user: Option<String>,
    /// Start: that account's password (a secret: never logged, never in an answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub become_password: Option<String>,
    /// Start: explicit credentials for the package's share (a `unc:` source's `username` and
    /// `password`): the step connects to the share as that account (`New-PSDrive
    /// -Credential`), whichever account the task runs as. Kept on the host only until the step
    /// reads it (see `job_control.ps1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_credential: Option<ShareCredential>,
    /// Start: the bearer token for a package salve serves (a secret, kept on the host as the
    /// share credential is, and valid only while salve runs the step).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download_token: Option<String>,
    /// Start: how long to wait on the host, in milliseconds, for the task to finish, looking at
    /// its state there; a task that finished by then is answered as [`JobPollAnswer`] answers
    /// it (its output from the start, its exit code), so a short step needs no poll. 0: answer
    /// as soon as the task is started.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub wait_ms: u64,
    /// Start: remove a task that finished within `wait_ms` once its whole output is in the
    /// answer (a read, which salve runs again if the answer is lost). A step that changes the
    /// server keeps its task until salve has its answer and removes it on its own.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub remove_finished: bool,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// An account and password for one file share (`\\server\share`). `Debug` leaves the
/// password out.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShareCredential {
    /// `\\server\share`, the root the step connects to.
    pub share: String,
    /// `DOMAIN\user`.
    pub user: String,
    /// A secret: never logged, never in an answer.
    pub password: String,
}

impl std::fmt::Debug for ShareCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShareCredential")
            .field("share", &self.share)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// A detached task's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Running,
    Finished,
    /// No task with this id (never started, or already removed).
    Missing,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobControlAnswer {
    pub job: String,
    /// Start: the task was registered and started now (false: it already existed).
    pub started: bool,
    pub state: JobState,
    /// The account the task runs as.
    #[serde(default)]
    pub run_as: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
    /// Start with `wait_ms`, the task finished: its output from the start (as `job_poll` gives
    /// it from offset 0), where a poll would go on, and its exit code.
    #[serde(default)]
    pub output: String,
    #[serde(default)]
    pub next_offset: u64,
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// The finished task and its folder were removed (`remove_finished`).
    #[serde(default)]
    pub removed: bool,
}

/// Read a detached task's state and its output from byte `offset` on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobPollRequest {
    pub job: String,
    #[serde(default)]
    pub offset: u64,
    /// Remove the task and its folder when it has finished and this answer carries the rest of
    /// its output (a read's last poll).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub remove_finished: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobPollAnswer {
    pub job: String,
    pub state: JobState,
    /// Output written since `offset`, UTF-8 text of whole lines.
    pub output: String,
    /// Where the next poll starts.
    pub next_offset: u64,
    /// The process's exit code, once finished.
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// The finished task and its folder were removed (`remove_finished`).
    #[serde(default)]
    pub removed: bool,
}

/// One of salve's detached tasks, as facts list them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobInfo {
    pub job: String,
    /// The shipped script it runs.
    pub script_id: String,
    pub state: JobState,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        for id in ScriptId::ALL {
            assert_eq!(ScriptId::parse(id.as_str()), Some(id));
            assert_eq!(serde_json::to_value(id).unwrap(), id.as_str());
        }
        assert_eq!(ScriptId::parse("exchange_fact"), None);
    }

    #[test]
    fn read_only_ids_are_exactly_the_scripts_that_only_read() {
        let read_only: Vec<&str> = ScriptId::ALL
            .into_iter()
            .filter(|id| id.is_read_only())
            .map(ScriptId::as_str)
            .collect();
        assert_eq!(
            read_only,
            [
                "exchange_facts",
                "boot_id",
                "exchange_verify",
                "exchange_ioc_scan",
                "exchange_health",
                "job_poll"
            ]
        );
        for id in ScriptId::ALL {
            if let Some(r) = id.read_only() {
                assert_eq!(r.script_id(), id);
            }
        }
    }

    #[test]
    fn owa_is_healthy_behind_adfs_and_windows_auth_but_not_on_its_error_page() {
        let v = |status: u16, location: Option<&str>| VerifyAnswer {
            build: None,
            build_matches: None,
            kb_present: None,
            disabled_services: Vec::new(),
            stopped_automatic_services: Vec::new(),
            inactive_components: Vec::new(),
            owa_status: status,
            owa_error: None,
            owa_location: location.map(Into::into),
            pending_reboot: Vec::new(),
            success: false,
        };
        assert!(v(200, None).owa_healthy());
        assert!(v(401, None).owa_healthy());
        assert!(v(302, Some("https://adfs.contoso.com/adfs/ls/?wa=wsignin1.0")).owa_healthy());
        assert!(!v(302, Some("/owa/auth/errorFE.aspx?httpCode=500")).owa_healthy());
        assert!(!v(302, None).owa_healthy());
        assert!(!v(500, None).owa_healthy());
        assert!(!v(503, None).owa_healthy());
    }

    #[test]
    fn requests_reject_unknown_fields() {
        let bad = serde_json::json!({"action": "apply", "rewrite_msi": "x"});
        assert!(serde_json::from_value::<MitigateRequest>(bad).is_err());
        let ok = serde_json::json!({"kind": "su", "source": "\\\\fs\\p.msp", "sha256": "ab",
            "kb": "KB5000871", "target_build": "15.2.792.10"});
        let req: UpdateRequest = serde_json::from_value(ok).unwrap();
        assert_eq!(req.kind, UpdateKind::Su);
        assert_eq!(req.license_switch, None);
    }
}
