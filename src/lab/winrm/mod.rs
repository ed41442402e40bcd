//! The lab's WinRM listener: WS-Management over HTTP/HTTPS as Windows serves it.
pub mod encryption;
pub mod ntlm;
pub mod soap;
