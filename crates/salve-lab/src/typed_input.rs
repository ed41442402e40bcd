//! How `powershell.exe -Command -` reads its script: as if it were typed at the prompt.
//!
//! Windows PowerShell's console host reads `-Command -` input line by line, as interactive
//! input (a long-standing, documented behaviour; see PowerShell issue #3223): a line that is a
//! complete statement runs at once; a line that leaves a statement open (an `if (...) {`, a
//! `try {`, an open string) starts a multi-line statement, which the host keeps reading — like
//! the `>>` prompt — until an empty line ends it. A multi-line statement still being read when
//! the input ends is dropped without a word, and the process exits 0. So a script whose last
//! block is not followed by an empty line loses that block.

use crate::ps_grammar::{Completeness, completeness};

/// The statements the console host runs, in order, and what it dropped at the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Typed {
    pub statements: Vec<String>,
    /// A multi-line statement still being read when the input ended.
    pub dropped: Option<String>,
}

/// Split stdin text into what `-Command -` runs.
pub fn read(text: &str) -> Typed {
    let mut statements = Vec::new();
    let mut open: Option<String> = None;
    for line in text.lines() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        match open.as_mut() {
            None if line.trim().is_empty() => {}
            None => match completeness(line) {
                Completeness::Incomplete => open = Some(line.to_string()),
                Completeness::Complete | Completeness::Invalid => statements.push(line.to_string()),
            },
            // An empty line ends a multi-line statement once it is complete; inside an open
            // block it is just part of the block.
            Some(buffer) if line.trim().is_empty() => {
                if completeness(buffer) == Completeness::Incomplete {
                    buffer.push('\n');
                } else if let Some(done) = open.take() {
                    statements.push(done);
                }
            }
            Some(buffer) => {
                buffer.push('\n');
                buffer.push_str(line);
            }
        }
    }
    Typed {
        statements,
        dropped: open,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trailing_block_without_an_empty_line_is_dropped() {
        let typed = read("Write-Output 1\r\nif ($true) {\r\n  Write-Output 2\r\n}\r\n");
        assert_eq!(typed.statements, vec!["Write-Output 1"]);
        assert_eq!(
            typed.dropped.as_deref(),
            Some("if ($true) {\n  Write-Output 2\n}")
        );
    }

    #[test]
    fn an_empty_line_ends_a_block_and_following_lines_join_it_until_then() {
        let typed = read("try {\n 'a'\n} catch {\n 'b'\n}\nWrite-Output 3\n\nWrite-Output 4\n");
        assert_eq!(
            typed.statements,
            vec![
                "try {\n 'a'\n} catch {\n 'b'\n}\nWrite-Output 3",
                "Write-Output 4"
            ]
        );
        assert_eq!(typed.dropped, None);
        let inner_blank = read("if ($x) {\n\n 'a'\n}\n\n");
        assert_eq!(inner_blank.statements, vec!["if ($x) {\n\n 'a'\n}"]);
    }
}
