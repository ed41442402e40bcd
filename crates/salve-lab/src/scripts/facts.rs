//! `exchange_facts`: what the real script reads from the server (ExSetup.exe version, SUs,
//! roles, DAG and database copies, components, services, prerequisites, pending-reboot
//! markers, disk, auth certificate, boot id, the forest's Exchange AD versions), taken from the
//! host state.

use serde_json::Value;

use super::pipeline::{self, Emit};
use crate::command::Out;
use crate::fleet_core::FleetCore;
use crate::state::HostState;
use salve_contract::contract::{AdVersions, DatabaseCopy, FactsAnswer, JobInfo, ScriptId};

/// How `Get-SalvePendingReboot` in `scripts/exchange_facts.ps1` hands back its markers.
pub(super) const PENDING_REBOOT_EMIT: Emit = Emit::Items;

/// The `-match` patterns by which `scripts/exchange_facts.ps1` tells a running Exchange
/// installer among the processes (Setup in upgrade mode, msiexec applying an Exchange .msp,
/// anything run from salve's package folder); [`shown_as_installer`] follows them, and a test
/// compares them with the shipped text.
pub const INSTALLER_PATTERNS: [&str; 3] = [
    "(?i)/mode:upgrade",
    "(?i)exchange.*\\.msp",
    "(?i)\\\\salve\\\\updates\\\\",
];

/// Whether the facts script reports a process with this command line as an installer in
/// progress ([`INSTALLER_PATTERNS`], case-insensitive).
fn shown_as_installer(command_line: &str) -> bool {
    let line = command_line.to_ascii_lowercase();
    line.contains("/mode:upgrade")
        || line
            .find("exchange")
            .is_some_and(|at| line[at..].contains(".msp"))
        || line.contains("\\salve\\updates\\")
}

/// Answer with the host's facts; always succeeds. `unmanageable`: why this process cannot
/// load Exchange's cmdlets ([`super::exchange_shell`]), if it cannot.
pub(super) fn run(core: &FleetCore, idx: usize, out: &Out, unmanageable: Option<&str>) -> i32 {
    out.line("Reading Exchange setup, updates, services and prerequisites...");
    let now = core.clock.now();
    let mut answer = core.with_host(idx, |s| facts(s, now, unmanageable));
    for copy in &mut answer.database_copies {
        copy.copies = Some(core.copies_of(idx, &copy.database));
    }
    let markers = answer
        .pending_reboot
        .iter()
        .cloned()
        .map(Value::from)
        .collect();
    let mut printed = match serde_json::to_value(&answer) {
        Ok(v) => v,
        Err(e) => {
            out.error(&[format!("ConvertTo-Json : {e}")]);
            return 1;
        }
    };
    // `pending_reboot = @(Get-SalvePendingReboot)`
    printed["pending_reboot"] = pipeline::array_subexpression(markers, PENDING_REBOOT_EMIT);
    super::answer(core, idx, ScriptId::ExchangeFacts, out, &printed);
    0
}

/// The error `Get-ExchangeServer` throws when its AD read fails (fault `exchange_unmanageable`:
/// no domain controller answers), as the script catches it.
const UNMANAGEABLE: &str = "Active Directory operation failed on DC01. This error is not \
                            retriable. Additional information: The supplied credential is invalid.";

fn facts(s: &HostState, now: jiff::Timestamp, unmanageable: Option<&str>) -> FactsAnswer {
    let mut answer = read(s, now);
    if unmanageable.is_some() {
        // ADSI from the same logon binds without credentials too.
        answer.ad = None;
    }
    let error = unmanageable.map(str::to_string).or_else(|| {
        (s.faults.exchange_unmanageable && s.build.is_some()).then(|| UNMANAGEABLE.to_string())
    });
    if let Some(error) = error {
        // The script's catch: roles, DAG, copies and components stay as initialised (empty).
        return FactsAnswer {
            roles: Vec::new(),
            dag: None,
            database_copies: Vec::new(),
            component_states: Vec::new(),
            cluster_node_state: None,
            activation_policy: None,
            auth_certificate_expiry: None,
            exchange_management_error: Some(error),
            ..answer
        };
    }
    answer
}

fn read(s: &HostState, now: jiff::Timestamp) -> FactsAnswer {
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
        services: s
            .services
            .iter()
            .filter(|x| super::watched(x))
            .cloned()
            .collect(),
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
        install_in_progress: s
            .installer_command_line(now)
            .filter(|line| shown_as_installer(line)),
        salve_jobs: s
            .jobs
            .iter()
            .map(|j| JobInfo {
                job: j.job.clone(),
                script_id: j.script_id.clone(),
                state: j.state,
            })
            .collect(),
        config: Some(s.config.facts(s.build)),
        exchange_management_error: None,
        ad: Some(AdVersions {
            forest: s.forest.root.clone(),
            schema: s.forest.schema,
            org: s.forest.org,
        }),
    }
}

/// The host's database copies as the contract reports them (also used by `exchange_health`).
pub(super) fn copies(s: &HostState) -> Vec<DatabaseCopy> {
    s.copies
        .iter()
        .map(|c| DatabaseCopy {
            database: c.database.clone(),
            active: c.active,
            status: c.status(),
            copy_queue_length: c.copy_queue,
            replay_queue_length: c.replay_queue,
            activation_suspended: c.activation_suspended,
            copies: None,
        })
        .collect()
}
