//! The application layer: one function per command, doing the command's work with the library
//! and returning its result or an [`AppError`]. The command line ([`crate::cli`]) parses
//! arguments into the request types here, calls one function, prints what it returns and maps
//! the error to an exit code; nothing here parses arguments or decides exit codes for errors.
//!
//! Runs are assembled by [`crate::launch::RunBuilder`], so every command that runs a playbook
//! honours the same options. What a command has to tell the operator while it works (warnings,
//! deferred hosts, a password prompt) goes through the [`Console`] the caller passes in.

pub mod apply;
pub mod catalogue;
pub mod check;
#[cfg(feature = "lab")]
pub mod demo;
pub mod doctor;
mod exchange_access;
pub mod inventory;
pub mod invocation;
pub mod plan;
pub mod queued;
pub mod resume;
pub mod run;
mod selection;
pub mod serve;

pub use selection::{Prepared, Selection, prepare};

use crate::diag::Diagnostics;

/// What a command tells the operator while it works, and the one question it may ask.
pub trait Console: Send + Sync {
    /// A message for the operator (warnings, progress of the command itself), on stderr.
    fn notice(&self, text: &str);
    /// Ask once for the password of hosts whose password is `prompt`.
    fn ask_prompted_password(&self) -> Result<(), AppError>;
}

/// Why a command could not do its work.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The inputs are invalid: every problem, with file, line and column.
    #[error("invalid input")]
    Invalid(Diagnostics),
    /// The inputs are valid but the command refuses them (a changed playbook, a missing
    /// approval, a run that cannot be resumed).
    #[error(transparent)]
    Refused(Box<dyn std::error::Error + Send + Sync>),
    /// salve itself failed (a file it could not write, a database it could not reach).
    #[error(transparent)]
    Failed(Box<dyn std::error::Error + Send + Sync>),
}

/// A message with an optional cause: what [`AppError`]'s helpers wrap.
#[derive(Debug, thiserror::Error)]
#[error("{text}")]
pub struct Message {
    text: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl AppError {
    /// A refusal with no further cause.
    pub fn refused(text: impl Into<String>) -> Self {
        AppError::Refused(Box::new(Message {
            text: text.into(),
            source: None,
        }))
    }

    /// A refusal caused by `source`.
    pub fn refused_by(
        text: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        AppError::Refused(Box::new(Message {
            text: text.into(),
            source: Some(Box::new(source)),
        }))
    }

    /// salve failed, caused by `source`.
    pub fn internal(
        text: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        AppError::Failed(Box::new(Message {
            text: text.into(),
            source: Some(Box::new(source)),
        }))
    }

    /// The documented exit code for this error ([`crate::exit`]).
    pub fn exit_code(&self) -> u8 {
        match self {
            AppError::Invalid(_) | AppError::Refused(_) => crate::exit::INVALID_INPUT,
            AppError::Failed(_) => crate::exit::INTERNAL,
        }
    }
}

impl From<Diagnostics> for AppError {
    fn from(diags: Diagnostics) -> Self {
        AppError::Invalid(diags)
    }
}

impl From<crate::launch::LaunchError> for AppError {
    fn from(e: crate::launch::LaunchError) -> Self {
        AppError::Failed(Box::new(e))
    }
}

/// The multi-threaded tokio runtime every networked command runs on.
pub fn runtime() -> Result<tokio::runtime::Runtime, AppError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| AppError::internal("cannot start the async runtime", e))
}
