//! The lab's WinRM listener: WS-Management over HTTP/HTTPS as Windows serves it, in front of
//! one simulated host per listener.
//!
//! [`server`] accepts connections and speaks HTTP/1.1 keep-alive, Basic and NTLM (with
//! MS-WSMV message encryption over HTTP), and the cmd-shell operations (Create, Command,
//! Receive, Send, Signal, Delete). [`soap`] reads and writes the envelopes, [`shell`] keeps the
//! shells and commands, [`ntlm`] and [`encryption`] do the NTLM acceptor and the sealed-body
//! framing, and [`tls`] is the lab's certificate authority for HTTPS.

pub mod encryption;
pub mod ntlm;
pub mod server;
pub mod shell;
pub mod soap;
pub mod tls;

pub use server::{
    AccessEntry, AccessLog, ListenerConfig, ListenerError, Quotas, Scheme, WinrmListener,
};
pub use tls::{HostTls, LabCa, TlsError};
