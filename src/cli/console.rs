//! The terminal side of [`crate::app::Console`]: notices on stderr, the password prompt on
//! the terminal.

use crate::app::{AppError, Console};

/// Notices to stderr; the prompt through [`crate::secret::ask_prompt_once`].
pub struct Terminal;

impl Console for Terminal {
    fn notice(&self, text: &str) {
        eprintln!("{text}");
    }

    fn ask_prompted_password(&self) -> Result<(), AppError> {
        crate::secret::ask_prompt_once("Password for hosts whose password is `prompt`: ")
            .map_err(|e| AppError::Refused(Box::new(e)))
    }
}
