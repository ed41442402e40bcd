//! The WS-Management cmd-shell operations a Windows host serves (Create, Command, Send,
//! Signal, Receive, Delete), with the service's quotas (shells and concurrent operations per
//! user), faults as Windows words them, and the scenario's mid-command connection drop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hyper::StatusCode;

use super::auth::same_account;
use super::context::HostCtx;
use super::shell::{Command, Shell, lock};
use super::soap::{self, Body, Fault, StreamName};
use crate::host_api::ProtocolEvent;

/// The OperationTimeout assumed when a request carries none (Windows: 60 s).
const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(60);
/// The envelope size assumed when a request carries no MaxEnvelopeSize (WinRM's 150 KB).
const DEFAULT_CLIENT_ENVELOPE: usize = 153_600;

/// What the server does with a request's answer.
pub(super) enum Reply {
    Soap {
        action: String,
        status: StatusCode,
        xml: String,
    },
    /// Close the TCP connection without answering.
    Drop,
}

/// Count the operation against the user's MaxConcurrentOperationsPerUser, then dispatch.
pub(super) async fn dispatch_with_quota(
    ctx: &HostCtx,
    user: &str,
    body: &[u8],
    peer: SocketAddr,
) -> Reply {
    let max = ctx.config.quotas.max_concurrent_operations_per_user;
    let admitted = {
        let mut ops = lock(&ctx.operations);
        let n = ops.entry(user.to_string()).or_default();
        if *n >= max {
            false
        } else {
            *n += 1;
            true
        }
    };
    if admitted {
        let reply = dispatch(ctx, user, body, peer).await;
        if let Some(n) = lock(&ctx.operations).get_mut(user) {
            *n = n.saturating_sub(1);
        }
        reply
    } else {
        let relates = soap::parse(body).map(|r| r.message_id).unwrap_or_default();
        let (status, xml) = ctx.fault("operation", &relates, Fault::max_operations(max));
        Reply::Soap {
            action: "-".into(),
            status,
            xml,
        }
    }
}

async fn dispatch(ctx: &HostCtx, user: &str, body: &[u8], peer: SocketAddr) -> Reply {
    let req = match soap::parse(body) {
        Ok(r) => r,
        Err(e) => {
            let (status, xml) = ctx.fault("-", "", Fault::invalid_body(&e.to_string()));
            return Reply::Soap {
                action: "-".into(),
                status,
                xml,
            };
        }
    };
    let action = req.action.clone();
    let rel = req.message_id.clone();
    let soap_reply = |result: Result<String, Fault>| match result {
        Ok(xml) => Reply::Soap {
            action: action.clone(),
            status: StatusCode::OK,
            xml,
        },
        Err(fault) => {
            let (status, xml) = ctx.fault(&action, &rel, fault);
            Reply::Soap {
                action: action.clone(),
                status,
                xml,
            }
        }
    };
    let known = [
        soap::ACTION_CREATE,
        soap::ACTION_DELETE,
        soap::ACTION_COMMAND,
        soap::ACTION_RECEIVE,
        soap::ACTION_SEND,
        soap::ACTION_SIGNAL,
    ];
    if !known.contains(&req.action.as_str()) {
        return soap_reply(Err(Fault::action_not_supported(&req.action)));
    }
    if req.resource_uri != soap::RESOURCE_CMD {
        return soap_reply(Err(Fault::unknown_resource(&req.resource_uri)));
    }
    if req.action == soap::ACTION_CREATE {
        return soap_reply(create(ctx, user, &req, peer));
    }
    let shell_id = req.shell_id.clone().unwrap_or_default();
    let Some(shell) = lock(&ctx.shells).get(&shell_id).cloned() else {
        return soap_reply(Err(Fault::shell_not_found(&shell_id)));
    };
    shell.touch();
    match req.action.as_str() {
        soap::ACTION_DELETE => {
            lock(&ctx.shells).remove(&shell_id);
            shell.kill_all();
            ctx.host.record(ProtocolEvent::ShellDeleted { shell_id });
            soap_reply(Ok(soap::delete_response(&rel)))
        }
        soap::ACTION_COMMAND => soap_reply(command(ctx, &shell, &req)),
        soap::ACTION_SEND => soap_reply(send(&shell, &req).await),
        soap::ACTION_SIGNAL => soap_reply(signal(ctx, &shell, &req)),
        _ => match receive(ctx, &shell, &req).await {
            Ok(Some(xml)) => soap_reply(Ok(xml)),
            Ok(None) => Reply::Drop,
            Err(fault) => soap_reply(Err(fault)),
        },
    }
}

fn create(
    ctx: &HostCtx,
    user: &str,
    req: &soap::Request,
    peer: SocketAddr,
) -> Result<String, Fault> {
    let max = ctx.config.quotas.max_shells_per_user;
    let id = uuid::Uuid::new_v4().to_string().to_uppercase();
    {
        let mut shells = lock(&ctx.shells);
        let owned = shells
            .values()
            .filter(|s| same_account(&s.owner, user))
            .count();
        if ctx.host.faults().quota_exhausted || owned >= max {
            return Err(Fault::max_shells(max));
        }
        shells.insert(
            id.clone(),
            Arc::new(Shell::new(id.clone(), user.to_string())),
        );
    }
    ctx.host.record(ProtocolEvent::ShellCreated {
        shell_id: id.clone(),
    });
    let info = soap::ShellInfo {
        shell_id: &id,
        address: &ctx.address,
        owner: user,
        client_ip: &peer.ip().to_string(),
        idle_timeout: ctx.config.quotas.idle_timeout,
    };
    Ok(soap::create_response(&req.message_id, &info))
}

fn command(ctx: &HostCtx, shell: &Shell, req: &soap::Request) -> Result<String, Fault> {
    let Body::Command { command, arguments } = &req.body else {
        return Err(Fault::invalid_body("Command without rsp:CommandLine"));
    };
    let ordinal = ctx.commands_started.fetch_add(1, Ordering::SeqCst) + 1;
    let quota = ctx.config.quotas.max_memory_per_shell_mb;
    let process = ctx.host.spawn_in_shell(command, arguments, quota);
    let id = uuid::Uuid::new_v4().to_string().to_uppercase();
    shell.add_command(Command::new(id.clone(), ordinal, process));
    ctx.host.record(ProtocolEvent::CommandStarted {
        shell_id: shell.id.clone(),
        command_id: id.clone(),
    });
    Ok(soap::command_response(&req.message_id, &id))
}

async fn send(shell: &Shell, req: &soap::Request) -> Result<String, Fault> {
    let Body::Send(streams) = &req.body else {
        return Err(Fault::invalid_body("Send without rsp:Send"));
    };
    for stream in streams {
        let id = stream.command_id.clone().unwrap_or_default();
        let command = shell
            .command(&id)
            .ok_or_else(|| Fault::command_not_found(&id))?;
        command
            .lock()
            .await
            .send_stdin(stream.data.clone(), stream.end);
    }
    Ok(soap::send_response(&req.message_id))
}

fn signal(ctx: &HostCtx, shell: &Shell, req: &soap::Request) -> Result<String, Fault> {
    let Body::Signal { command_id, code } = &req.body else {
        return Err(Fault::invalid_body("Signal without rsp:Signal"));
    };
    let id = command_id.clone().unwrap_or_default();
    let name = code.rsplit('/').next().unwrap_or(code).to_string();
    if ![
        soap::SIGNAL_TERMINATE,
        soap::SIGNAL_CTRL_C,
        soap::SIGNAL_CTRL_BREAK,
    ]
    .contains(&code.as_str())
    {
        return Err(Fault::invalid_body(&format!("unknown signal code {code}")));
    }
    if !shell.remove_command(&id) {
        return Err(Fault::command_not_found(&id));
    }
    ctx.host.record(ProtocolEvent::CommandSignalled {
        shell_id: shell.id.clone(),
        command_id: id,
        signal: name,
    });
    Ok(soap::signal_response(&req.message_id))
}

/// `Ok(None)`: the scenario wants the connection dropped in the middle of this output.
async fn receive(
    ctx: &HostCtx,
    shell: &Shell,
    req: &soap::Request,
) -> Result<Option<String>, Fault> {
    let Body::Receive { command_id } = &req.body else {
        return Err(Fault::invalid_body("Receive without rsp:Receive"));
    };
    let id = command_id.clone().unwrap_or_default();
    let command = shell
        .command(&id)
        .ok_or_else(|| Fault::command_not_found(&id))?;
    let timeout = req.operation_timeout.unwrap_or(DEFAULT_OPERATION_TIMEOUT);
    let max_envelope = req
        .max_envelope_size
        .unwrap_or(DEFAULT_CLIENT_ENVELOPE)
        .min(ctx.config.max_envelope_size);
    let mut command = command.lock().await;
    let batch = command.receive(timeout, max_envelope).await;
    shell.touch();
    let Some(batch) = batch else {
        return Err(Fault::timed_out());
    };
    if ctx.host.faults().drop_mid_command == Some(command.ordinal)
        && !batch.streams.is_empty()
        && !ctx.dropped_mid_command.swap(true, Ordering::SeqCst)
    {
        return Ok(None);
    }
    let streams: Vec<(StreamName, &[u8])> = batch
        .streams
        .iter()
        .map(|(s, b)| (*s, b.as_slice()))
        .collect();
    Ok(Some(soap::receive_response(
        &req.message_id,
        &command.id,
        &streams,
        batch.exit,
    )))
}
