//! The console code pages of the lab's `powershell.exe`.
//!
//! Windows PowerShell writes redirected stdout and stderr in `[Console]::OutputEncoding` and
//! reads redirected stdin in `[Console]::InputEncoding`. Both start as the system's OEM code
//! page (437 on an English Windows Server; the lab models that one), not UTF-8: a character
//! outside it is written as `?`, and one inside it as a single OEM byte that a UTF-8 reader
//! cannot decode. A script that assigns a UTF-8 encoding to either property (as Ansible's
//! bootstrap does) changes it for the rest of the process.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use oem_cp::code_table::{DECODING_TABLE_CP437, ENCODING_TABLE_CP437};

/// The two encodings of one process; clones share them.
#[derive(Debug, Clone, Default)]
pub struct Console {
    output_utf8: Arc<AtomicBool>,
    input_utf8: Arc<AtomicBool>,
    merged: Arc<AtomicBool>,
}

impl Console {
    /// Every stream merged into the output (`*>&1`, as a detached task's runner does): error
    /// records arrive as their text, one line each, not as CLIXML on stderr.
    pub fn merge_streams(&self) {
        self.merged.store(true, Ordering::SeqCst);
    }

    pub fn merged(&self) -> bool {
        self.merged.load(Ordering::SeqCst)
    }

    /// `[Console]::OutputEncoding = <UTF-8>`.
    pub fn set_output_utf8(&self) {
        self.output_utf8.store(true, Ordering::SeqCst);
    }

    /// `[Console]::InputEncoding = <UTF-8>`.
    pub fn set_input_utf8(&self) {
        self.input_utf8.store(true, Ordering::SeqCst);
    }

    /// Text as the process writes it to a redirected stream.
    pub fn encode(&self, text: &str) -> Vec<u8> {
        if self.output_utf8.load(Ordering::SeqCst) {
            text.as_bytes().to_vec()
        } else {
            oem_cp::encode_string_lossy(text, &ENCODING_TABLE_CP437)
        }
    }

    /// Bytes from a redirected stdin as the process reads them.
    pub fn decode(&self, bytes: &[u8]) -> String {
        if self.input_utf8.load(Ordering::SeqCst) {
            String::from_utf8_lossy(bytes).into_owned()
        } else {
            oem_cp::decode_string_complete_table(bytes, &DECODING_TABLE_CP437)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oem_until_switched_to_utf8() {
        let console = Console::default();
        assert_eq!(
            console.encode("Größe €"),
            vec![b'G', b'r', 0x94, 0xE1, b'e', b' ', b'?']
        );
        assert_eq!(console.decode("ö".as_bytes()), "├╢");
        console.set_output_utf8();
        assert_eq!(console.encode("Größe €"), "Größe €".as_bytes());
        assert_eq!(console.decode("ö".as_bytes()), "├╢", "input is separate");
        console.set_input_utf8();
        assert_eq!(console.decode("ö".as_bytes()), "ö");
    }
}
