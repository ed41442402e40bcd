//! The lab's side of the shipped scripts: for each [`ScriptId`], what the real PowerShell would
//! find and change on the server, played against the host state, with progress lines on stdout,
//! the `##salve-result##` answer line and the exit code the real script would give. One file
//! per script id; this module decodes `$SalveArgs` into the id's request type and dispatches.
//!
//! Behaviour follows the domain reference; each file says what its script does to the host.
//! Where the shape of an answer depends on how PowerShell hands lists around, the simulation
//! follows the shipped text through [`pipeline`]'s rules. Every answer is checked against the
//! contract before it is printed ([`answer`]); one that breaks it is still printed as the real
//! script would print it, and the break is recorded in the lab's log.

mod boot_id;
pub mod exchange_shell;
mod facts;
mod health;
mod installer;
mod ioc_scan;
mod job;
mod maintenance;
mod mitigate;
pub mod pipeline;
mod reboot;
mod served;
mod update;
mod verify;

pub use facts::INSTALLER_PATTERNS;
pub use update::SETUP_LOG_PATTERNS;

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::command::Out;
use crate::fleet_core::FleetCore;
use crate::log::LabEvent;
use salve_contract::contract::{
    JobControlRequest, JobPollRequest, MaintenanceRequest, MitigateRequest, RebootRequest,
    ScriptId, UpdateRequest, VerifyRequest,
};
use salve_contract::wire::Script;

/// Per shipped script, the functions whose lists the simulation hands around by [`pipeline`]'s
/// rules, and how the lab takes the shipped text to hand them back. A test reads the shipped
/// scripts and fails when the text says otherwise.
pub const EMITS: [(ScriptId, &str, pipeline::Emit); 3] = [
    (
        ScriptId::ExchangeFacts,
        "Get-SalvePendingReboot",
        facts::PENDING_REBOOT_EMIT,
    ),
    (
        ScriptId::ExchangeMitigate,
        "Get-SalveRulesPresent",
        mitigate::RULES_PRESENT_EMIT,
    ),
    (
        ScriptId::ExchangeMaintenance,
        "Get-SalveCopies",
        maintenance::COPIES_EMIT,
    ),
];

/// The services the shipped scripts read, check and restore besides those whose display name
/// starts with "Microsoft Exchange" (`$salveServices` in `exchange_facts.ps1`,
/// `exchange_verify.ps1` and `exchange_update.ps1`; a test compares the lists).
pub const WATCHED_SERVICES: [&str; 9] = [
    "W3SVC",
    "IISADMIN",
    "WAS",
    "Winmgmt",
    "RemoteRegistry",
    "pla",
    "AppIDSvc",
    "FMS",
    "SearchExchangeTracing",
];

/// A service the shipped scripts look at (`Get-Service | Where-Object { ... }`).
fn watched(service: &salve_contract::contract::ServiceInfo) -> bool {
    service.display_name.starts_with("Microsoft Exchange")
        || WATCHED_SERVICES.contains(&service.name.as_str())
}

/// Run the simulation of shipped script `id` (its text and `$SalveArgs` in `script`); returns
/// the exit code.
pub async fn run(
    core: &Arc<FleetCore>,
    idx: usize,
    id: ScriptId,
    script: Script,
    out: &Out,
    kill: &CancellationToken,
) -> i32 {
    let args = script.args.unwrap_or(Value::Null);
    // Whether the script's way of loading Exchange works from this process's logon.
    let unmanageable = core.with_host(idx, |s| exchange_shell::refusal(&script.body, out, s));
    let shell = unmanageable.as_deref();
    match id {
        ScriptId::ExchangeFacts => facts::run(core, idx, out, shell),
        ScriptId::BootId => boot_id::run(core, idx, out),
        ScriptId::Reboot => match parse::<RebootRequest>(id, args, out) {
            Some(req) => reboot::run(core, idx, &req, out),
            None => 1,
        },
        ScriptId::ExchangeHealth => health::run(core, idx, out, shell),
        ScriptId::ExchangeVerify => match parse::<VerifyRequest>(id, args, out) {
            Some(req) => verify::run(core, idx, &req, out, kill, shell).await,
            None => 1,
        },
        ScriptId::ExchangeIocScan => ioc_scan::run(core, idx, out),
        ScriptId::ExchangeMitigate => match parse::<MitigateRequest>(id, args, out) {
            Some(req) => mitigate::run(core, idx, &req, out, kill).await,
            None => 1,
        },
        ScriptId::ExchangeUpdate => match parse::<UpdateRequest>(id, args, out) {
            Some(req) => update::run(core, idx, &req, out, kill).await,
            None => 1,
        },
        ScriptId::ExchangeMaintenance => match parse::<MaintenanceRequest>(id, args, out) {
            Some(req) => maintenance::run(core, idx, &req, out, kill, shell).await,
            None => 1,
        },
        ScriptId::JobControl => match parse::<JobControlRequest>(id, args, out) {
            Some(req) => job::control(core, idx, &req, out, kill).await,
            None => 1,
        },
        ScriptId::JobPoll => match parse::<JobPollRequest>(id, args, out) {
            Some(req) => job::poll(core, idx, &req, out),
            None => 1,
        },
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

/// Print script `id`'s answer line. The answer is checked against the contract first: a break
/// (a list nested by the script's PowerShell, a missing field) is recorded as
/// [`LabEvent::AnswerBroken`] naming the field, and the line is printed all the same, as
/// `ConvertTo-Json` would print it on the server.
fn answer(core: &FleetCore, idx: usize, id: ScriptId, out: &Out, answer: &impl serde::Serialize) {
    let value = match serde_json::to_value(answer) {
        Ok(v) => v,
        Err(e) => {
            out.error(&[format!("ConvertTo-Json : {e}")]);
            return;
        }
    };
    if let Err(e) = salve_contract::answer::validate(id, &value) {
        core.record(
            idx,
            LabEvent::AnswerBroken {
                script: id.as_str().to_string(),
                field: e.field().to_string(),
                problem: e.to_string(),
            },
        );
    }
    out.result(&value);
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use tokio::sync::mpsc;

    use super::*;
    use crate::clock::SimClock;
    use crate::host_api::ProcessOutput;
    use crate::state::{Durations, HostState};

    #[test]
    fn a_broken_answer_is_printed_as_the_script_prints_it_and_logged_naming_the_field() {
        let epoch: jiff::Timestamp = "2021-03-10T08:00:00Z".parse().unwrap();
        let host = HostState::new("ex1", "t", "15.2.792.3".parse().unwrap(), epoch);
        let core = FleetCore::new(
            SimClock::start(epoch, 60.0),
            Durations::default(),
            ("admin", "pw"),
            Default::default(),
            vec![host],
            vec!["127.0.0.1:5985".parse().unwrap()],
            Vec::new(),
        );
        let (tx, mut rx) = mpsc::unbounded_channel();
        let nested = json!({"pending_reboot": [[]]});
        answer(&core, 0, ScriptId::ExchangeFacts, &Out::new(tx), &nested);
        let Ok(ProcessOutput::Stdout(line)) = rx.try_recv() else {
            panic!("no answer line")
        };
        let line = String::from_utf8(line).unwrap();
        assert!(line.contains(r#""pending_reboot":[[]]"#), "{line}");
        let broken: Vec<(String, String)> = core
            .log
            .entries()
            .into_iter()
            .filter_map(|e| match e.event {
                LabEvent::AnswerBroken { script, field, .. } => Some((script, field)),
                _ => None,
            })
            .collect();
        assert_eq!(
            broken,
            [("exchange_facts".to_string(), "pending_reboot".to_string())]
        );
    }
}
