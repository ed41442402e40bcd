//! WS-Management SOAP envelopes: parsing the requests a WinRM client sends and writing the
//! replies and faults Windows would send back.
//!
//! Requests are read with quick-xml, matching elements by local name (clients use different
//! prefixes, and winrm-rs even places its `OptionSet` outside `<s:Header>`, which Windows
//! tolerates, so the parser does too). Replies are written in the shape captured from real
//! Windows hosts (masterzen/winrm and pypsrp fixtures).

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use quick_xml::escape::escape;
use quick_xml::events::{BytesStart, Event};

pub const NS_SOAP: &str = "http://www.w3.org/2003/05/soap-envelope";
pub const NS_ADDRESSING: &str = "http://schemas.xmlsoap.org/ws/2004/08/addressing";
pub const NS_TRANSFER: &str = "http://schemas.xmlsoap.org/ws/2004/09/transfer";
pub const NS_WSMAN: &str = "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd";
pub const NS_SHELL: &str = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell";
pub const NS_MS_WSMAN: &str = "http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd";

/// The resource URI of the classic `cmd` shell (the only shell the lab serves).
pub const RESOURCE_CMD: &str = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd";

pub const ACTION_CREATE: &str = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Create";
pub const ACTION_DELETE: &str = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete";
pub const ACTION_COMMAND: &str = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Command";
pub const ACTION_RECEIVE: &str = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Receive";
pub const ACTION_SEND: &str = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Send";
pub const ACTION_SIGNAL: &str = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Signal";

pub const SIGNAL_TERMINATE: &str =
    "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/signal/terminate";
pub const SIGNAL_CTRL_C: &str =
    "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/signal/ctrl_c";
pub const SIGNAL_CTRL_BREAK: &str =
    "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/signal/ctrl_break";

const STATE_DONE: &str =
    "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Done";
const STATE_RUNNING: &str =
    "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Running";
const ANONYMOUS: &str = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous";
const ACTION_FAULT: &str = "http://schemas.dmtf.org/wbem/wsman/1/wsman/fault";

/// One stdin chunk of a `Send` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendStream {
    pub command_id: Option<String>,
    pub data: Vec<u8>,
    pub end: bool,
}

/// What a request's `<s:Body>` asks for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Body {
    /// Create's `rsp:Shell`, Delete's empty body, or anything the lab does not look into.
    #[default]
    Other,
    Command {
        command: String,
        arguments: Vec<String>,
    },
    Receive {
        command_id: Option<String>,
    },
    Send(Vec<SendStream>),
    Signal {
        command_id: Option<String>,
        code: String,
    },
}

/// A parsed WS-Management request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Request {
    pub action: String,
    pub resource_uri: String,
    pub message_id: String,
    pub shell_id: Option<String>,
    pub operation_timeout: Option<Duration>,
    pub max_envelope_size: Option<usize>,
    pub body: Body,
}

/// Why a request body is not a WS-Management envelope the lab can read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("malformed XML: {0}")]
    Xml(String),
    #[error("the request is not a SOAP envelope")]
    NotEnvelope,
    #[error("the request has no WS-Addressing Action header")]
    NoAction,
    #[error("stdin stream is not valid base64")]
    Base64,
}

/// Parse a request envelope.
pub fn parse(xml: &[u8]) -> Result<Request, ParseError> {
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut req = Request::default();
    let mut path: Vec<String> = Vec::new();
    // Attributes of the innermost open element whose text we may want.
    let mut attrs: Vec<(String, String)> = Vec::new();
    let mut text = String::new();
    let mut saw_envelope = false;
    let mut buf = Vec::new();
    loop {
        let event = reader
            .read_event_into(&mut buf)
            .map_err(|e| ParseError::Xml(e.to_string()))?;
        match event {
            Event::Start(start) => {
                let name = local_name(&start);
                if path.is_empty() {
                    if name != "Envelope" {
                        return Err(ParseError::NotEnvelope);
                    }
                    saw_envelope = true;
                }
                attrs = attributes(&start)?;
                on_open(&mut req, &path, &name, &attrs);
                path.push(name);
                text.clear();
            }
            Event::Empty(start) => {
                let name = local_name(&start);
                if path.is_empty() {
                    return Err(ParseError::NotEnvelope);
                }
                let empty_attrs = attributes(&start)?;
                on_open(&mut req, &path, &name, &empty_attrs);
                path.push(name);
                on_close(&mut req, &path, &empty_attrs, "")?;
                path.pop();
            }
            Event::Text(t) => {
                text.push_str(&t.xml10_content());
            }
            Event::GeneralRef(r) => {
                let resolved = r
                    .resolve_char_ref()
                    .map_err(|e| ParseError::Xml(e.to_string()))?
                    .map(String::from)
                    .or_else(|| {
                        quick_xml::escape::resolve_predefined_entity(&r.xml10_content())
                            .map(str::to_string)
                    })
                    .ok_or_else(|| ParseError::Xml("unknown entity".into()))?;
                text.push_str(&resolved);
            }
            Event::CData(c) => text.push_str(&c.xml10_content()),
            Event::End(_) => {
                on_close(&mut req, &path, &attrs, text.trim())?;
                text.clear();
                path.pop();
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if !saw_envelope || !path.is_empty() {
        return Err(ParseError::NotEnvelope);
    }
    if req.action.is_empty() {
        return Err(ParseError::NoAction);
    }
    Ok(req)
}

fn local_name(start: &BytesStart<'_>) -> String {
    start.local_name().as_ref().to_string()
}

fn attributes(start: &BytesStart<'_>) -> Result<Vec<(String, String)>, ParseError> {
    start
        .attributes()
        .map(|a| {
            let a = a.map_err(|e| ParseError::Xml(e.to_string()))?;
            let key = a.key.local_name().as_ref().to_string();
            let value = a
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map_err(|e| ParseError::Xml(e.to_string()))?;
            Ok((key, value.into_owned()))
        })
        .collect()
}

fn attr<'a>(attrs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// `path` holds the names of the open ancestors of `name`.
fn on_open(req: &mut Request, path: &[String], name: &str, attrs: &[(String, String)]) {
    let parent = path.last().map(String::as_str);
    match (parent, name) {
        (Some("Body"), "Receive")
        | (Some("Body"), "Signal")
        | (Some("Receive"), "DesiredStream") => {
            let id = attr(attrs, "CommandId").map(str::to_string);
            match (&mut req.body, name) {
                (Body::Receive { command_id }, "DesiredStream") if command_id.is_none() => {
                    *command_id = id;
                }
                (_, "Receive") => req.body = Body::Receive { command_id: id },
                (_, "Signal") => {
                    req.body = Body::Signal {
                        command_id: id,
                        code: String::new(),
                    }
                }
                _ => {}
            }
        }
        (Some("Body"), "CommandLine") => {
            req.body = Body::Command {
                command: String::new(),
                arguments: Vec::new(),
            }
        }
        (Some("Body"), "Send") => req.body = Body::Send(Vec::new()),
        _ => {}
    }
}

/// `path` ends with the element being closed.
fn on_close(
    req: &mut Request,
    path: &[String],
    attrs: &[(String, String)],
    text: &str,
) -> Result<(), ParseError> {
    let in_header = path.iter().any(|p| p == "Header");
    let name = path.last().map(String::as_str).unwrap_or_default();
    let parent = path.len().checked_sub(2).map(|i| path[i].as_str());
    match (parent, name) {
        (Some("Header"), "Action") => req.action = text.to_string(),
        (Some("Header"), "ResourceURI") => req.resource_uri = text.to_string(),
        (Some("Header"), "MessageID") => req.message_id = text.to_string(),
        (Some("Header"), "OperationTimeout") => req.operation_timeout = parse_duration(text),
        (Some("Header"), "MaxEnvelopeSize") => req.max_envelope_size = text.parse().ok(),
        (Some("SelectorSet"), "Selector")
            if in_header && attr(attrs, "Name") == Some("ShellId") =>
        {
            req.shell_id = Some(text.to_string())
        }
        (Some("CommandLine"), "Command") => {
            if let Body::Command { command, .. } = &mut req.body {
                *command = text.to_string();
            }
        }
        (Some("CommandLine"), "Arguments") => {
            if let Body::Command { arguments, .. } = &mut req.body {
                arguments.push(text.to_string());
            }
        }
        (Some("Signal"), "Code") => {
            if let Body::Signal { code, .. } = &mut req.body {
                *code = text.to_string();
            }
        }
        (Some("Send"), "Stream") => {
            if let Body::Send(streams) = &mut req.body {
                let data = B64.decode(text).map_err(|_| ParseError::Base64)?;
                let end = matches!(attr(attrs, "End"), Some("true") | Some("TRUE") | Some("1"));
                let command_id = attr(attrs, "CommandId").map(str::to_string);
                streams.push(SendStream {
                    command_id,
                    data,
                    end,
                });
            }
        }
        _ => {}
    }
    Ok(())
}

/// An xs:duration as WS-Man uses it (`PT20S`, `PT60.000S`, `PT1M30S`, `P1DT2H`).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let rest = text.strip_prefix('P')?;
    let (days, time) = match rest.split_once('T') {
        Some((d, t)) => (d, t),
        None => (rest, ""),
    };
    let mut secs = 0f64;
    let mut take = |part: &str, units: &[(char, f64)]| -> Option<()> {
        let mut num = String::new();
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' {
                num.push(c);
            } else {
                let scale = units.iter().find(|(u, _)| *u == c)?.1;
                secs += num.parse::<f64>().ok()? * scale;
                num.clear();
            }
        }
        num.is_empty().then_some(())
    };
    take(
        days,
        &[
            ('Y', 365.0 * 86400.0),
            ('M', 30.0 * 86400.0),
            ('D', 86400.0),
        ],
    )?;
    take(time, &[('H', 3600.0), ('M', 60.0), ('S', 1.0)])?;
    Duration::try_from_secs_f64(secs).ok()
}

/// An xs:duration for a reply (`PT7200.000S`).
pub fn format_duration(d: Duration) -> String {
    format!("PT{}.{:03}S", d.as_secs(), d.subsec_millis())
}

fn message_id() -> String {
    format!("uuid:{}", uuid::Uuid::new_v4().to_string().to_uppercase())
}

/// A complete reply envelope with the standard namespace declarations.
fn envelope(action: &str, relates_to: &str, body: &str) -> String {
    format!(
        concat!(
            r#"<s:Envelope xml:lang="en-US" xmlns:s="{s}" xmlns:a="{a}" xmlns:x="{x}" xmlns:w="{w}" "#,
            r#"xmlns:rsp="{rsp}" xmlns:p="{p}"><s:Header><a:Action>{action}</a:Action>"#,
            "<a:MessageID>{mid}</a:MessageID><a:To>{to}</a:To><a:RelatesTo>{rel}</a:RelatesTo>",
            "</s:Header><s:Body>{body}</s:Body></s:Envelope>"
        ),
        s = NS_SOAP,
        a = NS_ADDRESSING,
        x = NS_TRANSFER,
        w = NS_WSMAN,
        rsp = NS_SHELL,
        p = NS_MS_WSMAN,
        action = escape(action),
        mid = message_id(),
        to = ANONYMOUS,
        rel = escape(relates_to),
        body = body,
    )
}

/// What Create's reply says about the new shell.
#[derive(Debug, Clone)]
pub struct ShellInfo<'a> {
    pub shell_id: &'a str,
    pub address: &'a str,
    pub owner: &'a str,
    pub client_ip: &'a str,
    pub idle_timeout: Duration,
}

/// Create's reply: the ShellId both as the ResourceCreated selector and as `rsp:Shell/rsp:ShellId`.
pub fn create_response(relates_to: &str, shell: &ShellInfo<'_>) -> String {
    let id = escape(shell.shell_id);
    let body = format!(
        concat!(
            "<x:ResourceCreated><a:Address>{addr}</a:Address><a:ReferenceParameters>",
            "<w:ResourceURI>{uri}</w:ResourceURI><w:SelectorSet>",
            r#"<w:Selector Name="ShellId">{id}</w:Selector></w:SelectorSet></a:ReferenceParameters>"#,
            r#"</x:ResourceCreated><rsp:Shell xmlns:rsp="{rsp}"><rsp:ShellId>{id}</rsp:ShellId>"#,
            "<rsp:ResourceUri>{uri}</rsp:ResourceUri><rsp:Owner>{owner}</rsp:Owner>",
            "<rsp:ClientIP>{ip}</rsp:ClientIP><rsp:IdleTimeOut>{idle}</rsp:IdleTimeOut>",
            "<rsp:InputStreams>stdin</rsp:InputStreams><rsp:OutputStreams>stdout stderr</rsp:OutputStreams>",
            "<rsp:ShellRunTime>P0DT0H0M0S</rsp:ShellRunTime><rsp:ShellInactivity>P0DT0H0M0S</rsp:ShellInactivity>",
            "</rsp:Shell>"
        ),
        addr = escape(shell.address),
        uri = RESOURCE_CMD,
        rsp = NS_SHELL,
        id = id,
        owner = escape(shell.owner),
        ip = escape(shell.client_ip),
        idle = format_duration(shell.idle_timeout),
    );
    envelope(
        "http://schemas.xmlsoap.org/ws/2004/09/transfer/CreateResponse",
        relates_to,
        &body,
    )
}

pub fn command_response(relates_to: &str, command_id: &str) -> String {
    let body = format!(
        "<rsp:CommandResponse><rsp:CommandId>{}</rsp:CommandId></rsp:CommandResponse>",
        escape(command_id)
    );
    envelope(
        "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandResponse",
        relates_to,
        &body,
    )
}

pub fn send_response(relates_to: &str) -> String {
    envelope(
        "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/SendResponse",
        relates_to,
        "<rsp:SendResponse/>",
    )
}

pub fn signal_response(relates_to: &str) -> String {
    envelope(
        "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/SignalResponse",
        relates_to,
        "<rsp:SignalResponse/>",
    )
}

pub fn delete_response(relates_to: &str) -> String {
    envelope(
        "http://schemas.xmlsoap.org/ws/2004/09/transfer/DeleteResponse",
        relates_to,
        "",
    )
}

/// Which output stream a chunk belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamName {
    Stdout,
    Stderr,
}

impl StreamName {
    fn as_str(self) -> &'static str {
        match self {
            StreamName::Stdout => "stdout",
            StreamName::Stderr => "stderr",
        }
    }
}

/// Bytes of envelope a Receive reply needs besides its streams (measured with margin).
pub const RECEIVE_OVERHEAD: usize = 1600;
/// Bytes each `rsp:Stream` element adds besides its base64 text.
pub const STREAM_OVERHEAD: usize = 96;

/// Receive's reply: streams in order, then the command state (`Done` with the exit code).
pub fn receive_response(
    relates_to: &str,
    command_id: &str,
    streams: &[(StreamName, &[u8])],
    exit: Option<i32>,
) -> String {
    let id = escape(command_id);
    let mut body = String::from("<rsp:ReceiveResponse>");
    for (name, data) in streams {
        body.push_str(&format!(
            r#"<rsp:Stream Name="{}" CommandId="{id}">{}</rsp:Stream>"#,
            name.as_str(),
            B64.encode(data)
        ));
    }
    match exit {
        Some(code) => {
            for name in [StreamName::Stdout, StreamName::Stderr] {
                body.push_str(&format!(
                    r#"<rsp:Stream Name="{}" CommandId="{id}" End="true"></rsp:Stream>"#,
                    name.as_str()
                ));
            }
            body.push_str(&format!(
                r#"<rsp:CommandState CommandId="{id}" State="{STATE_DONE}"><rsp:ExitCode>{code}</rsp:ExitCode></rsp:CommandState>"#
            ));
        }
        None => body.push_str(&format!(
            r#"<rsp:CommandState CommandId="{id}" State="{STATE_RUNNING}"></rsp:CommandState>"#
        )),
    }
    body.push_str("</rsp:ReceiveResponse>");
    envelope(
        "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/ReceiveResponse",
        relates_to,
        &body,
    )
}

/// A WS-Management fault as Windows reports it (HTTP 500, `s:Fault` with a `WSManFault` detail).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// `s:Sender` or `s:Receiver`.
    pub code: &'static str,
    /// The subcode, e.g. `w:TimedOut`.
    pub subcode: &'static str,
    /// The Windows error number (`WSManFault/@Code`).
    pub wsman_code: u32,
    pub message: String,
}

impl Fault {
    /// Receive found no output within the client's OperationTimeout: "poll again".
    pub fn timed_out() -> Self {
        Self {
            code: "s:Receiver",
            subcode: "w:TimedOut",
            wsman_code: 2_150_858_793,
            message: "The WS-Management service cannot complete the operation within the time specified in OperationTimeout.  ".into(),
        }
    }

    /// More shells than MaxShellsPerUser.
    pub fn max_shells(max: usize) -> Self {
        Self {
            code: "s:Receiver",
            subcode: "w:InternalError",
            wsman_code: 2_150_859_173,
            message: format!(
                "The WS-Management service cannot process the request. This user is allowed a maximum number of {max} concurrent shells, which has been exceeded. Close existing shells or raise the quota for this user. "
            ),
        }
    }

    /// More concurrent operations than MaxConcurrentOperationsPerUser.
    pub fn max_operations(max: usize) -> Self {
        Self {
            code: "s:Receiver",
            subcode: "w:InternalError",
            wsman_code: 2_150_859_174,
            message: format!(
                "The WS-Management service cannot process the request. This user is allowed a maximum number of {max} concurrent operations, which has been exceeded. Close existing operations for this user, or raise the quota for this user. "
            ),
        }
    }

    pub fn shell_not_found(shell_id: &str) -> Self {
        Self {
            code: "s:Sender",
            subcode: "w:InvalidSelectors",
            wsman_code: 2_150_858_843,
            message: format!(
                "The request for the Windows Remote Shell with ShellId {shell_id} failed because the shell was not found on the server. Possible causes are: the specified ShellId is incorrect or the shell no longer exists on the server. Provide the correct ShellId or create a new shell and retry the operation. "
            ),
        }
    }

    pub fn command_not_found(command_id: &str) -> Self {
        Self {
            code: "s:Sender",
            subcode: "w:InvalidParameter",
            wsman_code: 87,
            message: format!(
                "The parameter is incorrect. No command with CommandId {command_id} exists in this shell. "
            ),
        }
    }

    pub fn action_not_supported(action: &str) -> Self {
        Self {
            code: "s:Sender",
            subcode: "a:ActionNotSupported",
            wsman_code: 2_150_858_771,
            message: format!(
                "The WS-Management service does not support the specified action: {action}. "
            ),
        }
    }

    pub fn unknown_resource(uri: &str) -> Self {
        Self {
            code: "s:Sender",
            subcode: "w:DestinationUnreachable",
            wsman_code: 2_150_858_752,
            message: format!(
                "The WS-Management service cannot process the request. The resource URI ({uri}) was not found in the WS-Management catalog. "
            ),
        }
    }

    pub fn invalid_body(detail: &str) -> Self {
        Self {
            code: "s:Sender",
            subcode: "w:InvalidBody",
            wsman_code: 2_150_858_791,
            message: format!(
                "The WS-Management service cannot process the request because the request packet does not have a valid SOAP body: {detail}. "
            ),
        }
    }

    /// The fault envelope.
    pub fn to_xml(&self, relates_to: &str, machine: &str) -> String {
        let msg = escape(&self.message);
        let body = format!(
            concat!(
                "<s:Fault><s:Code><s:Value>{code}</s:Value><s:Subcode><s:Value>{sub}</s:Value></s:Subcode></s:Code>",
                r#"<s:Reason><s:Text xml:lang="en-US">{msg}</s:Text></s:Reason><s:Detail>"#,
                r#"<f:WSManFault xmlns:f="http://schemas.microsoft.com/wbem/wsman/1/wsmanfault" Code="{wc}" Machine="{machine}">"#,
                "<f:Message>{msg}</f:Message></f:WSManFault></s:Detail></s:Fault>"
            ),
            code = self.code,
            sub = self.subcode,
            msg = msg,
            wc = self.wsman_code,
            machine = escape(machine),
        );
        envelope(ACTION_FAULT, relates_to, &body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Shape of pywinrm's Create request (headers and OptionSet inside <s:Header>).
    const CREATE: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell">
<env:Header><a:To>http://127.0.0.1:5985/wsman</a:To><w:ResourceURI env:mustUnderstand="true">http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd</w:ResourceURI>
<w:MaxEnvelopeSize env:mustUnderstand="true">153600</w:MaxEnvelopeSize><a:MessageID>uuid:11111111-2222-3333-4444-555555555555</a:MessageID>
<w:OperationTimeout>PT20S</w:OperationTimeout><a:Action env:mustUnderstand="true">http://schemas.xmlsoap.org/ws/2004/09/transfer/Create</a:Action>
<w:OptionSet><w:Option Name="WINRS_NOPROFILE">FALSE</w:Option><w:Option Name="WINRS_CODEPAGE">65001</w:Option></w:OptionSet></env:Header>
<env:Body><rsp:Shell><rsp:InputStreams>stdin</rsp:InputStreams><rsp:OutputStreams>stdout stderr</rsp:OutputStreams></rsp:Shell></env:Body></env:Envelope>"#;

    #[test]
    fn parses_create_headers() {
        let r = parse(CREATE.as_bytes()).unwrap();
        assert_eq!(r.action, ACTION_CREATE);
        assert_eq!(r.resource_uri, RESOURCE_CMD);
        assert_eq!(r.message_id, "uuid:11111111-2222-3333-4444-555555555555");
        assert_eq!(r.operation_timeout, Some(Duration::from_secs(20)));
        assert_eq!(r.max_envelope_size, Some(153_600));
        assert_eq!(r.body, Body::Other);
    }

    #[test]
    fn parses_command_receive_send_signal() {
        let wrap = |action: &str, body: &str| {
            format!(
                r#"<s:Envelope xmlns:s="{NS_SOAP}" xmlns:a="{NS_ADDRESSING}" xmlns:w="{NS_WSMAN}" xmlns:rsp="{NS_SHELL}"><s:Header><a:Action>{action}</a:Action><w:SelectorSet><w:Selector Name="ShellId">S-1</w:Selector></w:SelectorSet></s:Header><s:Body>{body}</s:Body></s:Envelope>"#
            )
        };
        let cmd = parse(wrap(ACTION_COMMAND, "<rsp:CommandLine><rsp:Command>powershell.exe</rsp:Command><rsp:Arguments>-NoProfile</rsp:Arguments><rsp:Arguments>a &amp; b</rsp:Arguments></rsp:CommandLine>").as_bytes()).unwrap();
        assert_eq!(cmd.shell_id.as_deref(), Some("S-1"));
        assert_eq!(
            cmd.body,
            Body::Command {
                command: "powershell.exe".into(),
                arguments: vec!["-NoProfile".into(), "a & b".into()]
            }
        );
        let rcv = parse(wrap(ACTION_RECEIVE, r#"<rsp:Receive><rsp:DesiredStream CommandId="C-1">stdout stderr</rsp:DesiredStream></rsp:Receive>"#).as_bytes()).unwrap();
        assert_eq!(
            rcv.body,
            Body::Receive {
                command_id: Some("C-1".into())
            }
        );
        let send = parse(wrap(ACTION_SEND, r#"<rsp:Send><rsp:Stream Name="stdin" CommandId="C-1" End="true">aGk=</rsp:Stream></rsp:Send>"#).as_bytes()).unwrap();
        assert_eq!(
            send.body,
            Body::Send(vec![SendStream {
                command_id: Some("C-1".into()),
                data: b"hi".to_vec(),
                end: true
            }])
        );
        let sig = parse(wrap(ACTION_SIGNAL, &format!(r#"<rsp:Signal CommandId="C-1"><rsp:Code>{SIGNAL_TERMINATE}</rsp:Code></rsp:Signal>"#)).as_bytes()).unwrap();
        assert_eq!(
            sig.body,
            Body::Signal {
                command_id: Some("C-1".into()),
                code: SIGNAL_TERMINATE.into()
            }
        );
    }

    #[test]
    fn option_set_outside_the_header_is_tolerated() {
        let xml = format!(
            r#"<s:Envelope xmlns:s="{NS_SOAP}" xmlns:a="{NS_ADDRESSING}" xmlns:w="{NS_WSMAN}"><s:Header><a:Action>{ACTION_CREATE}</a:Action></s:Header><w:OptionSet><w:Option Name="WINRS_CODEPAGE">65001</w:Option></w:OptionSet><s:Body/></s:Envelope>"#
        );
        assert_eq!(parse(xml.as_bytes()).unwrap().action, ACTION_CREATE);
    }

    #[test]
    fn rejects_bad_xml_and_non_envelopes() {
        assert!(matches!(
            parse(b"<s:Envelope><s:Header>"),
            Err(ParseError::NotEnvelope | ParseError::Xml(_))
        ));
        assert!(matches!(
            parse(b"<a></b>"),
            Err(ParseError::Xml(_)) | Err(ParseError::NotEnvelope)
        ));
        assert_eq!(parse(b"<html/>"), Err(ParseError::NotEnvelope));
        let no_action =
            format!(r#"<s:Envelope xmlns:s="{NS_SOAP}"><s:Header/><s:Body/></s:Envelope>"#);
        assert_eq!(parse(no_action.as_bytes()), Err(ParseError::NoAction));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("PT60.000S"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("PT1M30S"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("P1DT1H"), Some(Duration::from_secs(90_000)));
        assert_eq!(parse_duration("PT0.5S"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("20"), None);
        assert_eq!(parse_duration("PTxS"), None);
        assert_eq!(format_duration(Duration::from_secs(7200)), "PT7200.000S");
    }

    #[test]
    fn timed_out_fault_matches_windows() {
        let xml = Fault::timed_out().to_xml("uuid:X", "127.0.0.1");
        assert!(
            xml.contains("<s:Value>s:Receiver</s:Value><s:Subcode><s:Value>w:TimedOut</s:Value>")
        );
        assert!(xml.contains(r#"Code="2150858793" Machine="127.0.0.1""#));
        assert!(xml.contains("<a:RelatesTo>uuid:X</a:RelatesTo>"));
        // The reply must itself be well-formed XML that our own parser accepts.
        assert_eq!(parse(xml.as_bytes()).unwrap().action, ACTION_FAULT);
    }

    #[test]
    fn create_reply_carries_both_shell_id_forms() {
        let info = ShellInfo {
            shell_id: "ABC",
            address: "http://127.0.0.1:5985/wsman",
            owner: "lab",
            client_ip: "127.0.0.1",
            idle_timeout: Duration::from_secs(7200),
        };
        let xml = create_response("uuid:1", &info);
        assert!(xml.contains(r#"<w:Selector Name="ShellId">ABC</w:Selector>"#));
        assert!(xml.contains("<rsp:ShellId>ABC</rsp:ShellId>"));
        assert!(parse(xml.as_bytes()).is_ok());
    }

    #[test]
    fn receive_reply_ends_with_done_and_exit_code() {
        let xml = receive_response("uuid:1", "C", &[(StreamName::Stdout, b"hi")], Some(3));
        assert!(xml.contains(r#"<rsp:Stream Name="stdout" CommandId="C">aGk=</rsp:Stream>"#));
        assert!(xml.contains("CommandState/Done\"><rsp:ExitCode>3</rsp:ExitCode>"));
        let running = receive_response("uuid:1", "C", &[], None);
        assert!(running.contains("CommandState/Running"));
        assert!(xml.len() < RECEIVE_OVERHEAD + 2 * STREAM_OVERHEAD + 8);
    }
}
