//! The lab's WinRM listener: WS-Management over HTTP/HTTPS as Windows serves it, in front of
//! one simulated host per listener.
//!
//! [`server`] accepts connections and speaks HTTP/1.1 keep-alive (with MS-WSMV message
//! encryption over HTTP, framed by [`encryption`]); [`auth`] does Basic, NTLM (the acceptor
//! in [`ntlm`]), Kerberos (the acceptor in [`kerberos`], keys from a [`keytab`], raw or inside
//! SPNEGO, [`spnego`]) and client
//! certificates over HTTPS ([`certmap`]); [`operations`] serves the cmd-shell operations (Create, Command, Receive, Send,
//! Signal, Delete) under the service's quotas. [`context`] holds the listener's configuration
//! and the per-host state they share, [`soap`] reads and writes the envelopes, [`shell`] keeps
//! the shells and commands, and [`tls`] is the lab's certificate authority for HTTPS.

pub mod auth;
pub mod certmap;
pub mod context;
pub mod encryption;
pub mod kerberos;
pub mod keytab;
pub mod ntlm;
pub mod operations;
pub mod server;
pub mod shell;
pub mod soap;
pub mod spnego;
pub mod tls;

pub use context::{AccessEntry, ListenerConfig, Quotas, Scheme};
pub use kerberos::KerberosService;
pub use keytab::{Keytab, KeytabError};
pub use server::{AccessLog, ListenerError, WinrmListener};
pub use tls::{HostTls, LabCa, TlsError};
