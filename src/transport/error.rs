//! How a transport fails: [`TransportError`], classified so the runner can tell an unreachable
//! host from a failed command, each message ending with what to do about it, and each keeping
//! the failure underneath (an I/O error, winrm-rs's or russh's error) as its source.
//!
//! The error is `Clone`: a host's link hands one connect failure to every task of the host, and
//! a transport's actor sends it across a channel. The failure underneath is shared through an
//! `Arc` ([`Cause`]) for that.

use std::error::Error;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Classified transport failure. Every variant's message ends with what to do about it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TransportError {
    #[error("cannot resolve {host}: {cause}; check the name or set ansible_host to an address")]
    Resolve {
        host: String,
        #[source]
        cause: Cause,
    },
    #[error("cannot reach {endpoint}: {cause}; check the address, port and firewall")]
    Unreachable {
        endpoint: String,
        #[source]
        cause: Cause,
    },
    #[error("connection refused by {endpoint}; is the listener running on that port?")]
    Refused {
        endpoint: String,
        #[source]
        cause: Cause,
    },
    #[error("TLS handshake with {endpoint} failed: {cause}; {hint}")]
    Tls {
        endpoint: String,
        #[source]
        cause: Cause,
        hint: &'static str,
    },
    #[error(
        "authentication to {endpoint} failed as user `{user}`: {cause}; check the user, password reference and auth method"
    )]
    Auth {
        endpoint: String,
        user: String,
        #[source]
        cause: Cause,
    },
    /// Kerberos failed for a reason [`super::kerberos::diagnose`] recognised.
    #[error(
        "Kerberos authentication to {endpoint} failed as user `{user}`: {problem} ({cause}); {}",
        .problem.fix()
    )]
    Kerberos {
        endpoint: String,
        user: String,
        problem: super::kerberos::KerberosProblem,
        #[source]
        cause: Cause,
    },
    #[error(
        "host {endpoint} refused a new shell or operation: {cause}; close leaked shells or raise MaxShellsPerUser / MaxConcurrentOperationsPerUser"
    )]
    Quota {
        endpoint: String,
        #[source]
        cause: Cause,
    },
    #[error("command timed out after {after:?}; it was stopped on the host")]
    Timeout { after: Duration },
    #[error("command cancelled; it was stopped on the host")]
    Cancelled,
    #[error("connection to {endpoint} dropped: {cause}")]
    Dropped {
        endpoint: String,
        #[source]
        cause: Cause,
    },
    #[error("protocol error from {endpoint}: {cause}")]
    Protocol {
        endpoint: String,
        #[source]
        cause: Cause,
    },
    /// The host's connection settings cannot work (no password, a key that cannot be read...).
    #[error("{problem}")]
    Config {
        problem: String,
        /// The failure behind the problem, when there is one (the problem's text quotes it).
        #[source]
        cause: Option<Cause>,
    },
}

impl TransportError {
    /// The host's settings cannot work, for a reason of salve's own.
    pub fn config(problem: impl Into<String>) -> Self {
        TransportError::Config {
            problem: problem.into(),
            cause: None,
        }
    }

    /// The host's settings cannot work because of `error`, which `problem` quotes.
    pub fn config_caused_by(
        problem: impl Into<String>,
        error: impl Error + Send + Sync + 'static,
    ) -> Self {
        TransportError::Config {
            problem: problem.into(),
            cause: Some(Cause::new(error)),
        }
    }

    /// The host could not be reached at all (as opposed to a command failing on it).
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            TransportError::Resolve { .. }
                | TransportError::Unreachable { .. }
                | TransportError::Refused { .. }
                | TransportError::Dropped { .. }
                | TransportError::Tls { .. }
                | TransportError::Auth { .. }
                | TransportError::Kerberos { .. }
        )
    }

    /// Short machine-readable class, used in events and reports.
    pub fn class(&self) -> &'static str {
        match self {
            TransportError::Resolve { .. } => "resolve",
            TransportError::Unreachable { .. } => "unreachable",
            TransportError::Refused { .. } => "refused",
            TransportError::Tls { .. } => "tls",
            TransportError::Auth { .. } | TransportError::Kerberos { .. } => "auth",
            TransportError::Quota { .. } => "quota",
            TransportError::Timeout { .. } => "timeout",
            TransportError::Cancelled => "cancelled",
            TransportError::Dropped { .. } => "dropped",
            TransportError::Protocol { .. } => "protocol",
            TransportError::Config { .. } => "config",
        }
    }
}

/// What went wrong underneath a [`TransportError`]: the failure as the message tells it, and
/// the error itself (the error's [`Error::source`]) when there is one. Shared, so the
/// transport error stays `Clone`.
#[derive(Clone)]
pub struct Cause {
    text: String,
    error: Option<Arc<dyn Error + Send + Sync>>,
}

impl Cause {
    /// `error`, told as it and its causes on one line.
    pub fn new(error: impl Error + Send + Sync + 'static) -> Self {
        Cause {
            text: crate::error_chain::one_line(&error),
            error: Some(Arc::new(error)),
        }
    }

    /// A failure salve sees without an error value (a closed channel, a missing exit status).
    pub fn text(text: impl Into<String>) -> Self {
        Cause {
            text: text.into(),
            error: None,
        }
    }

    /// `error`, told in salve's words: a part of its message, or its message with what it
    /// means or what to do about it.
    pub fn with_text(text: impl Into<String>, error: impl Error + Send + Sync + 'static) -> Self {
        Cause {
            text: text.into(),
            error: Some(Arc::new(error)),
        }
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.error {
            Some(error) => write!(f, "{error:?}"),
            None => write!(f, "{:?}", self.text),
        }
    }
}

/// The error underneath is this cause's source, so a caller can find it (and downcast it);
/// its text is already in the cause's own, so one-line renderings do not repeat it.
impl Error for Cause {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.error.as_deref().map(|e| e as &(dyn Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_failure_underneath_is_the_source_and_is_not_repeated_on_one_line() {
        let io = std::io::Error::new(std::io::ErrorKind::TimedOut, "connection timed out");
        let e = TransportError::Unreachable {
            endpoint: "ex01:5985".into(),
            cause: Cause::new(io),
        };
        let message =
            "cannot reach ex01:5985: connection timed out; check the address, port and firewall";
        assert_eq!(e.to_string(), message);
        assert_eq!(crate::error_chain::one_line(&e), message);
        let underneath = e.source().and_then(Error::source).expect("the io error");
        assert!(underneath.downcast_ref::<std::io::Error>().is_some());
    }
}
