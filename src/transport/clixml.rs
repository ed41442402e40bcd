//! Decoding PowerShell's CLIXML error stream (`#< CLIXML` followed by `<Objs>`), which Windows
//! PowerShell writes to stderr when its streams are redirected. Salve shows the error records'
//! text, not the XML.

use quick_xml::Reader;
use quick_xml::events::Event;

const HEADER: &str = "#< CLIXML";

/// Stderr as a person should read it: CLIXML documents replaced by their error text.
pub fn decode_stderr(stderr: &str) -> String {
    let Some(start) = stderr.find(HEADER) else {
        return stderr.to_string();
    };
    let before = &stderr[..start];
    let xml = stderr[start + HEADER.len()..].trim_start();
    let mut out = before.to_string();
    out.push_str(&error_records(xml).join(""));
    out.trim_end().to_string()
}

/// The text of every `<S S="Error">` record, with `_xHHHH_` escapes decoded.
fn error_records(xml: &str) -> Vec<String> {
    let mut reader = Reader::from_str(xml);
    let mut records = Vec::new();
    let mut in_error = false;
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) if e.name().as_ref() == "S" => {
                in_error = e
                    .attributes()
                    .flatten()
                    .any(|a| a.key.as_ref() == "S" && a.value.as_ref() == "Error");
            }
            Ok(Event::Text(t)) if in_error => {
                records.push(unescape_ps(&t.xml10_content()));
            }
            Ok(Event::GeneralRef(r)) if in_error => {
                if let Ok(Some(c)) = r.resolve_char_ref() {
                    records.push(c.to_string());
                } else {
                    let c = match r.xml10_content().as_ref() {
                        "lt" => "<",
                        "gt" => ">",
                        "amp" => "&",
                        "quot" => "\"",
                        "apos" => "'",
                        _ => "",
                    };
                    records.push(c.to_string());
                }
            }
            Ok(Event::End(e)) if e.name().as_ref() == "S" => in_error = false,
            Ok(Event::Eof) | Err(_) => break,
            _ => {}
        }
    }
    records
}

/// PowerShell escapes control characters as `_xHHHH_` (e.g. `_x000D__x000A_` for CRLF).
fn unescape_ps(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("_x") {
        out.push_str(&rest[..pos]);
        let candidate = &rest[pos..];
        let decoded = candidate
            .get(2..6)
            .filter(|_| candidate.get(6..7) == Some("_"))
            .and_then(|hex| u32::from_str_radix(hex, 16).ok())
            .and_then(char::from_u32);
        match decoded {
            Some(c) => {
                if c != '\r' {
                    out.push(c);
                }
                rest = &candidate[7..];
            }
            None => {
                out.push_str("_x");
                rest = &candidate[2..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_error_records() {
        let raw = "#< CLIXML\r\n<Objs Version=\"1.1.0.1\" xmlns=\"http://schemas.microsoft.com/powershell/2004/04\"><S S=\"Error\">Access is denied &amp; more_x000D__x000A_</S><S S=\"Error\">second line_x000D__x000A_</S><S S=\"verbose\">hidden</S></Objs>";
        assert_eq!(decode_stderr(raw), "Access is denied & more\nsecond line");
    }

    #[test]
    fn plain_stderr_is_untouched() {
        assert_eq!(decode_stderr("boom\n"), "boom\n");
    }
}
