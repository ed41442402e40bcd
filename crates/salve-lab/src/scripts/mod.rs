//! The lab's side of the shipped scripts: for each [`ScriptId`], what the real PowerShell would
//! find and change on the server, played against the host state, with progress lines on stdout,
//! the `##salve-result##` answer line and the exit code the real script would give. One file
//! per script id; this module decodes `$SalveArgs` into the id's request type and dispatches.
//!
//! Behaviour follows the domain reference; each file says what its script does to the host.

mod boot_id;
mod facts;
mod health;
mod ioc_scan;
mod job;
mod maintenance;
mod mitigate;
mod reboot;
mod update;
mod verify;

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::command::Out;
use crate::fleet_core::FleetCore;
use salve_contract::contract::{
    JobControlRequest, JobPollRequest, MaintenanceRequest, MitigateRequest, RebootRequest,
    ScriptId, UpdateRequest, VerifyRequest,
};

/// Run the simulation of a shipped script; returns the exit code.
pub async fn run(
    core: &Arc<FleetCore>,
    idx: usize,
    id: ScriptId,
    args: Option<Value>,
    out: &Out,
    kill: &CancellationToken,
) -> i32 {
    let args = args.unwrap_or(Value::Null);
    match id {
        ScriptId::ExchangeFacts => facts::run(core, idx, out),
        ScriptId::BootId => boot_id::run(core, idx, out),
        ScriptId::Reboot => match parse::<RebootRequest>(id, args, out) {
            Some(req) => reboot::run(core, idx, &req, out),
            None => 1,
        },
        ScriptId::ExchangeHealth => health::run(core, idx, out),
        ScriptId::ExchangeVerify => match parse::<VerifyRequest>(id, args, out) {
            Some(req) => verify::run(core, idx, &req, out),
            None => 1,
        },
        ScriptId::ExchangeIocScan => ioc_scan::run(core, idx, out),
        ScriptId::ExchangeMitigate => match parse::<MitigateRequest>(id, args, out) {
            Some(req) => mitigate::run(core, idx, &req, out),
            None => 1,
        },
        ScriptId::ExchangeUpdate => match parse::<UpdateRequest>(id, args, out) {
            Some(req) => update::run(core, idx, &req, out, kill).await,
            None => 1,
        },
        ScriptId::ExchangeMaintenance => match parse::<MaintenanceRequest>(id, args, out) {
            Some(req) => maintenance::run(core, idx, &req, out, kill).await,
            None => 1,
        },
        ScriptId::JobControl => match parse::<JobControlRequest>(id, args, out) {
            Some(req) => job::control(core, idx, &req, out),
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
