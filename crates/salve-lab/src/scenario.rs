//! Scenario files: which fleet the lab simulates.
//!
//! A scenario names tenants, how many hosts each has, the builds to draw from, DAGs, and
//! per-host settings (build, prerequisites, compromise, faults). Everything random (build
//! choice, evidence file names and hashes, queue lengths) comes from one seeded generator, so
//! the same file and seed always give the same fleet and a byte-identical inventory.
//!
//! Loading collects every problem with file, line and column ([`salve_contract::diag`]). Without a file,
//! [`default_scenario`] builds a sensible mix for `--hosts N`.

use std::path::Path;
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use marked_yaml::Spanned;
use serde::Deserialize;

use crate::catalog::{Build, Family};
use crate::shares::{Account, ShareAcl, Shares};
use crate::state::{
    AppEvent, DbCopy, Durations, HostFaults, HostState, INSTALL_PATH, InstallFailure, LogLine,
    MARKER_CBS, MARKER_FILE_RENAME, MARKER_UPDATE_EXE, RebootBehaviour, SimFile,
};
use salve_contract::diag::{Diagnostic, Diagnostics, Location, did_you_mean};

/// Default lab account and password (the lab is a test double on loopback; override them in
/// the scenario).
pub const DEFAULT_USER: &str = "salve-lab";
pub const DEFAULT_PASSWORD: &str = "Lab-Passw0rd!";

/// A fully resolved scenario: every host's starting state.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetSpec {
    pub seed: u64,
    pub epoch: Timestamp,
    pub time_scale: f64,
    pub user: String,
    pub password: String,
    /// File shares with permissions, and the domain accounts besides `user`.
    pub shares: Shares,
    pub durations: Durations,
    pub hosts: Vec<HostState>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    #[serde(default)]
    seed: Option<u64>,
    #[serde(default)]
    time_scale: Option<f64>,
    #[serde(default)]
    start: Option<Spanned<String>>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    password: Option<String>,
    /// Shares whose permissions name their readers (`{path: '\\\\fs01\\pkg', read: [LAB\\svc]}`).
    #[serde(default)]
    shares: Vec<ShareAcl>,
    /// Domain accounts besides `user`, with their passwords (`{user, password}`).
    #[serde(default)]
    accounts: Vec<Account>,
    #[serde(default)]
    durations: Option<RawDurations>,
    tenants: Vec<RawTenant>,
    #[serde(default)]
    hosts: std::collections::HashMap<Spanned<String>, RawHost>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDurations {
    #[serde(default)]
    cu_minutes: Option<u64>,
    #[serde(default)]
    su_minutes: Option<u64>,
    #[serde(default)]
    reboot_minutes: Option<u64>,
    #[serde(default)]
    reboot_delay_seconds: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTenant {
    name: Spanned<String>,
    hosts: usize,
    builds: Vec<Spanned<String>>,
    #[serde(default)]
    dags: Vec<RawDag>,
    /// The tenant's forest's Exchange AD versions (default: prepared for Exchange SE RTM).
    #[serde(default)]
    forest: Option<RawForest>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawForest {
    schema: u32,
    org: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDag {
    name: String,
    members: Spanned<usize>,
    #[serde(default = "default_databases")]
    databases: usize,
}

fn default_databases() -> usize {
    4
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHost {
    #[serde(default)]
    build: Option<Spanned<String>>,
    #[serde(default)]
    roles: Option<Vec<String>>,
    #[serde(default)]
    dotnet_release: Option<u32>,
    #[serde(default)]
    url_rewrite: Option<bool>,
    #[serde(default)]
    vcredist_2012: Option<bool>,
    #[serde(default)]
    vcredist_2013: Option<bool>,
    #[serde(default)]
    ucma: Option<bool>,
    #[serde(default)]
    pending_reboot: Option<bool>,
    /// Empty `PendingFileRenameOperations` and `UpdateExeVolatile\Flags` = 0 left behind.
    #[serde(default)]
    stale_reboot_values: Option<bool>,
    #[serde(default)]
    free_disk_gb: Option<u64>,
    /// The web proxy this server must go through: direct connections to the web fail.
    #[serde(default)]
    web_proxy: Option<String>,
    #[serde(default)]
    compromised: Option<bool>,
    #[serde(default)]
    faults: Option<RawFaults>,
    /// Organisation-wide SettingOverrides this server sees.
    #[serde(default)]
    setting_overrides: Option<Vec<salve_contract::contract::SettingOverride>>,
    /// Extended Protection switched on or off by an admin (default: the build's).
    #[serde(default)]
    extended_protection: Option<bool>,
    /// EEMS mitigations the Emergency Mitigation service applied (e.g. `M2.1.0`).
    #[serde(default)]
    eems_applied: Option<Vec<String>>,
    /// An installer process already running when the lab starts, holding Windows Installer
    /// for `minutes` of simulated time: e.g. msiexec applying an SU from salve's package
    /// folder, left by an earlier run whose scheduled task is gone. The lab models the process
    /// (its command line, the installer it holds), not what it installs.
    #[serde(default)]
    running_installer: Option<RawInstaller>,
    /// The first restart leaves CBS RebootPending set once more (Windows servicing finishing
    /// after the restart asks for another).
    #[serde(default)]
    lingering_reboot_flag: Option<bool>,
    /// The memory (MB) Exchange Setup's processes reach during a CU: over a WinRM shell's
    /// MaxMemoryPerShellMB (1,024 by default), Setup run inside the shell is stopped.
    #[serde(default)]
    setup_memory_mb: Option<u64>,
    /// Activation policy, copies, catching up, transport queue (see `crate::ha`).
    #[serde(default)]
    ha: Option<RawHa>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInstaller {
    /// Its `Win32_Process` command line.
    command_line: String,
    minutes: u64,
}

/// A host's high-availability settings in a scenario.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHa {
    /// `DatabaseCopyAutoActivationPolicy`: `Unrestricted`, `IntrasiteOnly` or `Blocked`.
    #[serde(default)]
    activation_policy: Option<Spanned<String>>,
    /// Databases whose copy here has `ActivationSuspended` set.
    #[serde(default)]
    activation_suspended: Vec<Spanned<String>>,
    /// Mounted databases with no other copy (a standalone server's databases).
    #[serde(default)]
    databases: Vec<String>,
    /// Backlog each restart leaves on the passive copies here.
    #[serde(default)]
    resync: Option<crate::ha::Resync>,
    /// Copies whose content index is not Healthy.
    #[serde(default)]
    content_index_failed: Vec<String>,
    /// Messages waiting in the transport queues.
    #[serde(default)]
    transport_queue: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFaults {
    #[serde(default)]
    unreachable: bool,
    #[serde(default)]
    wrong_credentials: bool,
    #[serde(default)]
    latency_ms: u64,
    #[serde(default)]
    tls_errors: bool,
    #[serde(default)]
    drop_mid_command: Option<u32>,
    #[serde(default)]
    quota_exhausted: bool,
    #[serde(default)]
    install_failure: Option<InstallFailure>,
    /// `never`, or a number of minutes the restart takes.
    #[serde(default)]
    reboot: Option<Spanned<String>>,
    #[serde(default)]
    non_elevated_su: bool,
    #[serde(default)]
    exchange_unmanageable: bool,
    /// A CU's Setup logs a non-fatal `[ERROR]` line and still completes successfully.
    #[serde(default)]
    setup_error_line: bool,
}

/// Host name for the `n`th (1-based) host of a tenant.
fn host_name(tenant: &str, n: usize) -> String {
    format!("{tenant}-ex{n:02}")
}

fn location(file: &Arc<std::path::PathBuf>, span: &marked_yaml::Span) -> Option<Location> {
    span.start()
        .map(|m| Location::new(file, m.line(), m.column()))
}

fn diag_at<T>(
    file: &Arc<std::path::PathBuf>,
    value: &Spanned<T>,
    field: &str,
    message: String,
) -> Diagnostic {
    match location(file, value.span()) {
        Some(loc) => Diagnostic::at(loc, field, message),
        None => Diagnostic::in_file(file, message),
    }
}

/// Read and resolve a scenario file.
pub fn load(path: &Path) -> Result<FleetSpec, Diagnostics> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Diagnostics(vec![Diagnostic::in_file(
            path,
            format!("cannot read scenario: {e}"),
        )])
    })?;
    parse(path, &text)
}

/// Parse scenario text (`path` is used in diagnostics).
pub fn parse(path: &Path, text: &str) -> Result<FleetSpec, Diagnostics> {
    let file = Arc::new(path.to_path_buf());
    let options = marked_yaml::LoaderOptions::default().error_on_duplicate_keys(true);
    let raw: RawScenario = marked_yaml::from_yaml_with_options(0, text, options).map_err(|e| {
        let (mark, field, message) = match &e {
            marked_yaml::FromYamlError::ParseYaml(le) => {
                (load_error_mark(le), String::new(), le.to_string())
            }
            marked_yaml::FromYamlError::FromNode(ne) => (
                ne.start_mark(),
                ne.path().unwrap_or_default().to_string(),
                ne.to_string(),
            ),
        };
        let message = lowercase_first(message.rsplit(": ").next().unwrap_or(&message));
        let d = match mark {
            Some(m) => Diagnostic::at(Location::new(&file, m.line(), m.column()), field, message),
            None => Diagnostic::in_file(path, message),
        };
        Diagnostics(vec![d])
    })?;
    resolve(&file, raw)
}

fn lowercase_first(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_lowercase().chain(c).collect())
        .unwrap_or_default()
}

fn load_error_mark(e: &marked_yaml::LoadError) -> Option<marked_yaml::Marker> {
    use marked_yaml::LoadError as L;
    match e {
        L::TopLevelMustBeMapping(m)
        | L::TopLevelMustBeSequence(m)
        | L::UnexpectedAnchor(m)
        | L::MappingKeyMustBeScalar(m)
        | L::UnexpectedTag(m)
        | L::ScanError(m, _) => Some(*m),
        L::DuplicateKey(inner) => inner.key.span().start().copied(),
    }
}

fn resolve(file: &Arc<std::path::PathBuf>, raw: RawScenario) -> Result<FleetSpec, Diagnostics> {
    let mut diags = Diagnostics::default();
    let seed = raw.seed.unwrap_or(1);
    let mut rng = fastrand::Rng::with_seed(seed);
    let epoch = match &raw.start {
        None => default_epoch(),
        Some(s) => s.parse::<Timestamp>().unwrap_or_else(|e| {
            diags.push(diag_at(
                file,
                s,
                "start",
                format!("`{}` is not an RFC 3339 time: {e}", s.as_str()),
            ));
            default_epoch()
        }),
    };
    let d = Durations::default();
    let durations = raw.durations.map_or(d, |r| Durations {
        cu_minutes: r.cu_minutes.unwrap_or(d.cu_minutes),
        su_minutes: r.su_minutes.unwrap_or(d.su_minutes),
        reboot_minutes: r.reboot_minutes.unwrap_or(d.reboot_minutes),
        reboot_delay_seconds: r.reboot_delay_seconds.unwrap_or(d.reboot_delay_seconds),
    });
    let mut hosts: Vec<HostState> = Vec::new();
    for (ti, t) in raw.tenants.iter().enumerate() {
        let field = format!("tenants[{ti}]");
        let valid_name = !t.name.is_empty()
            && t.name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !valid_name {
            diags.push(diag_at(
                file,
                &t.name,
                &format!("{field}.name"),
                "tenant names use letters, digits and `-`".into(),
            ));
        }
        let builds: Vec<Build> = t
            .builds
            .iter()
            .enumerate()
            .filter_map(|(bi, b)| match parse_build(b.as_str()) {
                Ok(build) => Some(build),
                Err(m) => {
                    diags.push(diag_at(
                        file,
                        b,
                        &format!("{field}.builds[{bi}]"),
                        m.to_string(),
                    ));
                    None
                }
            })
            .collect();
        if t.builds.is_empty() {
            diags.push(diag_at(
                file,
                &t.name,
                &format!("{field}.builds"),
                "list at least one build".into(),
            ));
        }
        let first = hosts.len();
        for n in 1..=t.hosts {
            let build = if builds.is_empty() {
                Build([15, 2, 858, 5])
            } else {
                builds[rng.usize(..builds.len())]
            };
            let mut h = HostState::new(
                &host_name(&t.name, n),
                &t.name,
                build,
                boot_time(epoch, &mut rng),
            );
            if let Some(f) = &t.forest {
                h.forest.schema = f.schema;
                h.forest.org = f.org;
            }
            // Exchange keeps 30 days of logs by default.
            h.logs_since = epoch
                .saturating_sub(SignedDuration::from_hours(24 * 30))
                .unwrap_or(epoch);
            hosts.push(h);
        }
        let mut next = first;
        for (di, dag) in t.dags.iter().enumerate() {
            let members = *dag.members;
            if members < 2 || next + members > hosts.len() {
                let left = hosts.len() - next;
                diags.push(diag_at(
                    file,
                    &dag.members,
                    &format!("{field}.dags[{di}].members"),
                    format!("a DAG needs 2 or more members and the tenant has {left} host(s) left for it"),
                ));
                continue;
            }
            make_dag(
                &mut hosts[next..next + members],
                &dag.name,
                dag.databases,
                &mut rng,
            );
            next += members;
        }
    }
    let names: Vec<String> = hosts.iter().map(|h| h.name.clone()).collect();
    // Sorted, so the generator is drawn in the same order on every load.
    let mut overrides: Vec<_> = raw.hosts.iter().collect();
    overrides.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
    for (name, h) in overrides {
        let Some(idx) = names.iter().position(|n| n == name.as_str()) else {
            let mut d = diag_at(
                file,
                name,
                "hosts",
                format!("no host `{}` in this scenario", name.as_str()),
            );
            if let Some(hint) = did_you_mean(name, names.iter().map(String::as_str)) {
                d = d.with_hint(hint);
            }
            diags.push(d);
            continue;
        };
        apply_host(file, &mut hosts[idx], name, h, epoch, &mut rng, &mut diags);
    }
    for h in &mut hosts {
        add_noise(h);
    }
    diags.into_result(FleetSpec {
        seed,
        epoch,
        time_scale: raw.time_scale.unwrap_or(1.0),
        user: raw.user.unwrap_or_else(|| DEFAULT_USER.to_string()),
        password: raw.password.unwrap_or_else(|| DEFAULT_PASSWORD.to_string()),
        shares: Shares {
            acls: raw.shares,
            accounts: raw.accounts,
        },
        durations,
        hosts,
    })
}

/// A scenario's build that the lab cannot simulate.
#[derive(Debug, thiserror::Error)]
enum BuildProblem {
    #[error(transparent)]
    Unreadable(#[from] crate::catalog::BadBuild),
    #[error("{0} is not an Exchange 2010-SE build")]
    NotExchange(Build),
}

fn parse_build(text: &str) -> Result<Build, BuildProblem> {
    let b: Build = text.parse()?;
    if Family::of(b).is_none() {
        return Err(BuildProblem::NotExchange(b));
    }
    Ok(b)
}

fn default_epoch() -> Timestamp {
    // 2021-03-10 08:00 UTC: a week after the ProxyLogon SU, when this lab's story is set.
    Timestamp::from_second(1_615_363_200).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn boot_time(epoch: Timestamp, rng: &mut fastrand::Rng) -> Timestamp {
    let hours = rng.i64(24..24 * 40);
    epoch
        .saturating_sub(SignedDuration::from_hours(hours))
        .unwrap_or(epoch)
}

fn make_dag(members: &mut [HostState], dag: &str, databases: usize, rng: &mut fastrand::Rng) {
    let count = members.len();
    for (mi, m) in members.iter_mut().enumerate() {
        m.dag = Some(dag.to_string());
        m.cluster_node = Some("Up".to_string());
        m.copies = (0..databases)
            .map(|d| DbCopy {
                database: format!("{}-DB{:02}", dag.to_ascii_uppercase(), d + 1),
                active: d % count == mi,
                copy_queue: 0,
                replay_queue: rng.u64(0..3),
                activation_suspended: false,
                health: "Healthy".to_string(),
            })
            .collect();
    }
}

fn apply_host(
    file: &Arc<std::path::PathBuf>,
    h: &mut HostState,
    name: &Spanned<String>,
    raw: &RawHost,
    epoch: Timestamp,
    rng: &mut fastrand::Rng,
    diags: &mut Diagnostics,
) {
    let field = format!("hosts.{}", name.as_str());
    if let Some(b) = &raw.build {
        match parse_build(b) {
            Ok(build) => {
                let fresh = HostState::new(&h.name, &h.tenant, build, h.boot_time);
                h.build = fresh.build;
                h.uninstall_entries = fresh.uninstall_entries;
                h.update_packages = fresh.update_packages;
                h.dotnet_release = fresh.dotnet_release;
            }
            Err(m) => diags.push(diag_at(file, b, &format!("{field}.build"), m.to_string())),
        }
    }
    if let Some(roles) = &raw.roles {
        h.roles = roles.clone();
    }
    if let Some(r) = raw.dotnet_release {
        h.dotnet_release = r;
    }
    let toggle = |on: Option<bool>, slot: &mut Option<String>, version: &str| {
        if let Some(on) = on {
            *slot = on.then(|| version.to_string());
        }
    };
    toggle(raw.url_rewrite, &mut h.url_rewrite, "7.2.1993");
    toggle(raw.vcredist_2012, &mut h.vcredist_2012, "11.0.61030");
    toggle(raw.vcredist_2013, &mut h.vcredist_2013, "12.0.40664");
    toggle(raw.ucma, &mut h.ucma, "5.0.8308.0");
    if raw.pending_reboot == Some(true) {
        h.add_pending_reboot(MARKER_CBS);
    }
    if raw.stale_reboot_values == Some(true) {
        h.idle_reboot_values = vec![
            MARKER_FILE_RENAME.to_string(),
            MARKER_UPDATE_EXE.to_string(),
        ];
    }
    if raw.web_proxy.is_some() {
        h.web_proxy = raw.web_proxy.clone();
    }
    if let Some(gb) = raw.free_disk_gb {
        h.free_disk_bytes = gb * 1024 * 1024 * 1024;
    }
    if raw.lingering_reboot_flag == Some(true) {
        h.lingering_reboot = true;
    }
    h.setup_memory_mb = raw.setup_memory_mb;
    if let Some(running) = &raw.running_installer {
        let minutes = i64::try_from(running.minutes).unwrap_or(i64::MAX);
        h.installer_busy_until = epoch
            .saturating_add(jiff::SignedDuration::from_mins(minutes))
            .ok();
        h.installer_process = Some(running.command_line.clone());
    }
    if raw.compromised == Some(true) {
        compromise(h, epoch, rng);
    }
    if let Some(overrides) = &raw.setting_overrides {
        h.config.setting_overrides = overrides.clone();
    }
    if raw.extended_protection.is_some() {
        h.config.extended_protection = raw.extended_protection;
    }
    if let Some(applied) = &raw.eems_applied {
        // An EEMS mitigation is the URL Rewrite rule(s) the service writes: M2.1.x is the
        // CVE-2026-42897 outbound rule on Default Web Site/owa, M1.1.x the CVE-2021-26855
        // mitigation (EOMT's two inbound rules on the Default Web Site).
        if applied.iter().any(|id| id.starts_with("M2.1.")) {
            h.config
                .outbound_rules
                .push(crate::exchange_config::OWA_CSP_RULE.to_string());
        }
        if applied.iter().any(|id| id.starts_with("M1.1.")) {
            for rule in [
                "X-AnonResource-Backend Abort - inbound",
                "X-BEResource Abort - inbound",
            ] {
                if !h.rewrite_rules.iter().any(|r| r == rule) {
                    h.rewrite_rules.push(rule.to_string());
                }
            }
        }
        h.config.eems_applied = applied.clone();
    }
    if let Some(ha) = &raw.ha {
        apply_ha(file, h, &field, ha, diags);
    }
    if let Some(f) = &raw.faults {
        let reboot = match &f.reboot {
            None => RebootBehaviour::Normal,
            Some(r) if r.as_str() == "never" => RebootBehaviour::Never,
            Some(r) => match r.parse::<u64>() {
                Ok(m) => RebootBehaviour::SlowMinutes(m),
                Err(_) => {
                    diags.push(diag_at(
                        file,
                        r,
                        &format!("{field}.faults.reboot"),
                        "expected `never` or a number of minutes".into(),
                    ));
                    RebootBehaviour::Normal
                }
            },
        };
        h.faults = HostFaults {
            unreachable: f.unreachable,
            wrong_credentials: f.wrong_credentials,
            latency_ms: f.latency_ms,
            tls_errors: f.tls_errors,
            drop_mid_command: f.drop_mid_command,
            quota_exhausted: f.quota_exhausted,
            install_failure: f.install_failure,
            reboot,
            non_elevated_su: f.non_elevated_su,
            exchange_unmanageable: f.exchange_unmanageable,
            setup_error_line: f.setup_error_line,
        };
    }
}

fn apply_ha(
    file: &Arc<std::path::PathBuf>,
    h: &mut HostState,
    field: &str,
    raw: &RawHa,
    diags: &mut Diagnostics,
) {
    for db in &raw.databases {
        h.copies.push(DbCopy {
            database: db.clone(),
            active: true,
            copy_queue: 0,
            replay_queue: 0,
            activation_suspended: false,
            health: "Healthy".to_string(),
        });
    }
    if let Some(p) = &raw.activation_policy {
        if ["Unrestricted", "IntrasiteOnly", "Blocked"].contains(&p.as_str()) {
            h.activation_policy = p.to_string();
        } else {
            diags.push(diag_at(
                file,
                p,
                &format!("{field}.ha.activation_policy"),
                "expected `Unrestricted`, `IntrasiteOnly` or `Blocked`".into(),
            ));
        }
    }
    for db in &raw.activation_suspended {
        match h.copies.iter_mut().find(|c| c.database == db.as_str()) {
            Some(c) => c.activation_suspended = true,
            None => diags.push(diag_at(
                file,
                db,
                &format!("{field}.ha.activation_suspended"),
                format!("`{}` has no copy on this host", db.as_str()),
            )),
        }
    }
    h.ha.resync = raw.resync;
    h.ha.content_index_failed = raw.content_index_failed.clone();
    h.ha.transport_queue = raw.transport_queue;
}

fn hex(rng: &mut fastrand::Rng, len: usize) -> String {
    (0..len)
        .map(|_| char::from_digit(rng.u32(0..16), 16).unwrap_or('0'))
        .collect()
}

fn word(rng: &mut fastrand::Rng, len: usize) -> String {
    (0..len).map(|_| rng.lowercase()).collect()
}

/// Benign log lines every server has, so the scan has something to skip.
fn add_noise(h: &mut HostState) {
    let fqdn = format!("{}.{}.local", h.name, h.tenant);
    let proxy = format!("{INSTALL_PATH}Logging\\HttpProxy\\");
    h.log_lines.push(LogLine {
        path: format!("{proxy}Owa\\HttpProxy_2021030908-1.LOG"),
        text: format!("2021-03-09T08:01:12.511Z,6a1f,10.0.0.15,{fqdn},/owa/,,Mozilla/5.0,ServerInfo~localhost~1941962753/owa/,200"),
    });
    h.log_lines.push(LogLine {
        path: format!("{proxy}Autodiscover\\HttpProxy_2021030908-1.LOG"),
        text: format!("2021-03-09T08:03:40.002Z,7b20,10.0.0.16,{fqdn},/autodiscover/autodiscover.xml,,Outlook,ServerInfo~{fqdn}/autodiscover/autodiscover.xml,200"),
    });
    h.log_lines.push(LogLine {
        path: format!("{INSTALL_PATH}Logging\\OABGeneratorLog\\OABGenerator_2021030901-1.LOG"),
        text: format!("Download failed and temporary file '{INSTALL_PATH}ClientAccess\\OAB\\Temp\\oab.tmp' needs to be removed"),
    });
}

/// Plant the traces of a ProxyLogon compromise (what Test-ProxyLogon and MSERT look for).
fn compromise(h: &mut HostState, epoch: Timestamp, rng: &mut fastrand::Rng) {
    let fqdn = format!("{}.{}.local", h.name, h.tenant);
    let shell = format!(
        "C:\\inetpub\\wwwroot\\aspnet_client\\system_web\\{}.aspx",
        word(rng, 8)
    );
    let files = [
        shell.clone(),
        format!(
            "{INSTALL_PATH}FrontEnd\\HttpProxy\\owa\\auth\\{}.aspx",
            word(rng, 6)
        ),
        "C:\\root\\lsass.dmp".to_string(),
        format!("C:\\ProgramData\\VSPerfMon\\{}.7z", word(rng, 5)),
    ];
    for path in files {
        let size = rng.u64(1_000..5_000_000);
        h.files.push(SimFile {
            path,
            sha256: hex(rng, 64),
            size,
        });
    }
    let proxy = format!("{INSTALL_PATH}Logging\\HttpProxy\\");
    let ip = format!("103.77.192.{}", rng.u8(2..250));
    h.log_lines.push(LogLine {
        path: format!("{proxy}Ecp\\HttpProxy_2021030302-1.LOG"),
        text: format!("2021-03-03T02:14:11.220Z,{},{ip},{fqdn},/ecp/y.js,,ExchangeServicesClient/0.0.0.0,ServerInfo~a]@{fqdn}:444/mapi/emsmdb/?#,241", hex(rng, 8)),
    });
    h.log_lines.push(LogLine {
        path: format!("{proxy}Ecp\\HttpProxy_2021030302-1.LOG"),
        text: format!("2021-03-03T02:15:02.118Z,{},{ip},{fqdn},/ecp/y.js,,ExchangeServicesClient/0.0.0.0,ServerInfo~a]@{fqdn}:444/ecp/DDI/DDIService.svc/SetObject?schema=ResetOABVirtualDirectory#,200", hex(rng, 8)),
    });
    h.log_lines.push(LogLine {
        path: format!("{INSTALL_PATH}Logging\\OABGeneratorLog\\OABGenerator_2021030302-1.LOG"),
        text: format!("Download failed and temporary file '{shell}' needs to be removed"),
    });
    h.log_lines.push(LogLine {
        path: format!("{INSTALL_PATH}Logging\\ECP\\Server\\ECPServer2021030302-1.LOG"),
        text: "S:CMD=Set-OabVirtualDirectory.ExternalUrl='http://f/<script language=\"JScript\" runat=\"server\">function Page_Load(){eval(Request[\"v\"],\"unsafe\");}</script>'.Identity='OAB (Default Web Site)'".to_string(),
    });
    h.events.push(AppEvent {
        provider: "MSExchange Unified Messaging".to_string(),
        level: 2,
        message: "An unhandled exception occurred in a UM worker process: System.InvalidCastException: Unable to cast object of type 'System.String' to type 'Microsoft.Exchange.UM.UMCore.UMCallInfoEx'.".to_string(),
        time: epoch.saturating_sub(SignedDuration::from_hours(170)).unwrap_or(epoch),
    });
}

/// Builds the default mix draws from that still need updates, as a 2026 fleet runs them:
/// Subscription Edition RTM before the June 2026 SU (open to CVE-2026-42897), 2019 CU14 with
/// the October 2025 SU, 2019 CU15 and 2016 CU23 with the February 2026 SU, and a 2019 CU8-era
/// server whose path goes through a CU upgrade.
const VULNERABLE: [&str; 6] = [
    "15.2.2562.37",
    "15.2.2562.29",
    "15.2.1544.36",
    "15.2.1748.43",
    "15.1.2507.66",
    "15.2.792.3",
];
/// Builds with nothing left to install: the August 2026 SUs, and Exchange 2013 CU23 with its
/// last SU (March 2023), out of support since 2023-04-11.
const PATCHED: [&str; 4] = [
    "15.2.2562.46",
    "15.2.1748.49",
    "15.1.2507.72",
    "15.0.1497.48",
];
const TENANTS: [&str; 8] = [
    "contoso",
    "fabrikam",
    "northwind",
    "adatum",
    "litware",
    "tailspin",
    "woodgrove",
    "proseware",
];

/// Scenario YAML for a default mix of `hosts` servers: several tenants, vulnerable 2013/2016/2019
/// builds next to patched ones, a DAG of up to three members in the first tenant, and (fleet
/// size permitting) one compromised host, one whose installs fail and one unreachable host.
pub fn default_scenario_yaml(hosts: usize, seed: u64) -> String {
    let mut rng = fastrand::Rng::with_seed(seed);
    let tenants = hosts.div_ceil(4).clamp(1, TENANTS.len());
    // A December 2026 morning: the catalogue's newest SUs are out, ESU period 2 has ended.
    let mut y = format!("seed: {seed}\nstart: 2026-12-07T08:00:00Z\ntenants:\n");
    let mut per_tenant = Vec::new();
    // Per-host settings (`build: …`, the specials below), merged into one entry per host.
    let mut overrides: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (t, name) in TENANTS.iter().enumerate().take(tenants) {
        let n = hosts / tenants + usize::from(t < hosts % tenants);
        per_tenant.push(n);
        y.push_str(&format!("  - name: {name}\n    hosts: {n}\n"));
        if t == 0 && n >= 2 {
            // DAG members share one family: the first tenant's builds are all 2019.
            y.push_str("    builds: [15.2.1544.36, 15.2.1748.43, 15.2.792.3]\n");
            y.push_str(&format!(
                "    dags:\n      - {{name: {name}-dag1, members: {}, databases: 4}}\n",
                n.min(3)
            ));
        } else {
            let mut pick: Vec<&str> = VULNERABLE.to_vec();
            rng.shuffle(&mut pick);
            // Two families at least: the second build is the first of another family.
            let family = |b: &str| b.parse().ok().and_then(crate::catalog::Family::of);
            let first = pick[0];
            let other = pick
                .iter()
                .copied()
                .find(|b| family(b) != family(first))
                .unwrap_or(pick[1]);
            pick = vec![first, other];
            pick.push(PATCHED[rng.usize(..PATCHED.len())]);
            y.push_str(&format!("    builds: [{}]\n", pick.join(", ")));
            // The first hosts run each pick once, so every family drawn is on the fleet.
            for (i, build) in pick.iter().enumerate().take(n) {
                overrides
                    .entry(host_name(name, i + 1))
                    .or_default()
                    .push(format!("build: {build}"));
            }
        }
    }
    // Special hosts, each on a different server outside the DAG where possible.
    let names: Vec<String> = per_tenant
        .iter()
        .enumerate()
        .flat_map(|(t, &n)| (1..=n).map(move |i| host_name(TENANTS[t], i)))
        .collect();
    let dag_size = if per_tenant.first().copied().unwrap_or(0) >= 2 {
        per_tenant[0].min(3)
    } else {
        0
    };
    // DAG members come back from each restart behind: the health gate visibly waits.
    for member in names.iter().take(dag_size) {
        overrides
            .entry(member.clone())
            .or_default()
            .push("ha: {resync: {logs: 412, per_minute: 8}}".to_owned());
    }
    let mut free: Vec<&String> = names.iter().skip(dag_size).collect();
    if free.len() < 3 {
        free = names.iter().collect();
    }
    let specials = [
        "compromised: true",
        "faults: {install_failure: aborted}",
        "faults: {unreachable: true}",
    ];
    if !free.is_empty() {
        let start = rng.usize(..free.len());
        for (k, s) in specials.iter().enumerate().take(free.len()) {
            let host = free[(start + k) % free.len()];
            overrides
                .entry(host.clone())
                .or_default()
                .push((*s).to_owned());
        }
    }
    if !overrides.is_empty() {
        y.push_str("hosts:\n");
        for (host, settings) in overrides {
            y.push_str(&format!("  {host}: {{{}}}\n", settings.join(", ")));
        }
    }
    y
}

/// The default mix as a resolved scenario.
pub fn default_scenario(hosts: usize, seed: u64) -> Result<FleetSpec, Diagnostics> {
    parse(
        Path::new("<default scenario>"),
        &default_scenario_yaml(hosts, seed),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
seed: 7
tenants:
  - name: contoso
    hosts: 3
    builds: [15.2.792.3]
    dags:
      - {name: dag1, members: 2, databases: 2}
hosts:
  contoso-ex03:
    build: 15.1.2176.2
    compromised: true
    faults: {reboot: never, install_failure: fatal}
";

    #[test]
    fn resolves_tenants_dags_and_overrides() {
        let spec = parse(Path::new("s.yml"), SAMPLE).unwrap();
        assert_eq!(spec.hosts.len(), 3);
        assert_eq!(spec.hosts[0].dag.as_deref(), Some("dag1"));
        assert_eq!(spec.hosts[0].copies.iter().filter(|c| c.active).count(), 1);
        assert_eq!(spec.hosts[2].build.unwrap().to_string(), "15.1.2176.2");
        assert_eq!(spec.hosts[2].faults.reboot, RebootBehaviour::Never);
        assert_eq!(
            spec.hosts[2].faults.install_failure,
            Some(InstallFailure::Fatal)
        );
        assert_eq!(spec.hosts[2].files.len(), 4);
        assert_eq!(
            spec,
            parse(Path::new("s.yml"), SAMPLE).unwrap(),
            "same seed, same fleet"
        );
    }

    #[test]
    fn reports_every_problem_with_its_position() {
        let text = "tenants:\n  - name: contoso\n    hosts: 1\n    builds: [15.2.x.3]\nhosts:\n  contoso-ex1: {}\n";
        let err = parse(Path::new("s.yml"), text).unwrap_err();
        let shown = err.to_string();
        assert_eq!(err.len(), 2, "{shown}");
        assert!(shown.contains("s.yml:4:14"), "{shown}");
        assert!(shown.contains("did you mean `contoso-ex01`?"), "{shown}");
    }

    #[test]
    fn unknown_keys_are_located() {
        let err = parse(Path::new("s.yml"), "tenants: []\nseeed: 3\n").unwrap_err();
        let shown = err.to_string();
        assert!(shown.contains("s.yml:2:1"), "{shown}");
        assert!(shown.contains("seeed"), "{shown}");
    }

    #[test]
    fn default_mix_has_every_kind_of_host() {
        let spec = default_scenario(8, 42).unwrap();
        assert_eq!(spec.hosts.len(), 8);
        let tenants: std::collections::BTreeSet<_> =
            spec.hosts.iter().map(|h| h.tenant.clone()).collect();
        assert!(tenants.len() >= 2);
        assert!(spec.hosts.iter().filter(|h| h.dag.is_some()).count() >= 2);
        assert_eq!(spec.hosts.iter().filter(|h| !h.files.is_empty()).count(), 1);
        assert_eq!(
            spec.hosts.iter().filter(|h| h.faults.unreachable).count(),
            1
        );
        assert_eq!(
            spec.hosts
                .iter()
                .filter(|h| h.faults.install_failure.is_some())
                .count(),
            1
        );
        let families: std::collections::BTreeSet<_> =
            spec.hosts.iter().filter_map(HostState::family).collect();
        assert!(
            families.len() >= 2,
            "{families:?}\n{}",
            default_scenario_yaml(8, 42)
        );
        for n in 1..6 {
            assert_eq!(default_scenario(n, 1).unwrap().hosts.len(), n);
        }
    }
}
