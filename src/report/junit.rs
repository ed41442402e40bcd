//! `junit.xml`: the run as JUnit test results, for CI servers and change boards. One
//! `<testsuite>` per play, one `<testcase>` per host and task (named `host: task`, with the loop
//! item in brackets when the task loops). Failed tasks carry a `<failure>`, unreachable and
//! interrupted ones an `<error>`, skipped ones `<skipped>`; a stopped play says why in a
//! property. Text is escaped, and characters XML cannot hold at all are dropped.

use std::io;

use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesText, Event as Xml};

use crate::events::TaskStatus;

use super::record::{PlayRecord, RunRecord, TaskRecord};
use super::text::{item_text, stop_reason};

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Counts {
    tests: usize,
    failures: usize,
    errors: usize,
    skipped: usize,
    ms: u64,
}

impl Counts {
    fn of<'a>(results: impl Iterator<Item = &'a TaskRecord>) -> Self {
        let mut c = Counts::default();
        for r in results {
            c.tests += 1;
            c.ms += r.duration_ms;
            match r.status {
                TaskStatus::Failed => c.failures += 1,
                TaskStatus::Unreachable | TaskStatus::Interrupted => c.errors += 1,
                TaskStatus::Skipped => c.skipped += 1,
                // A failure under `ignore_errors` is not a test failure.
                TaskStatus::Ok | TaskStatus::Changed | TaskStatus::Ignored => {}
            }
        }
        c
    }

    fn attributes(&self) -> [(&'static str, String); 5] {
        [
            ("tests", self.tests.to_string()),
            ("failures", self.failures.to_string()),
            ("errors", self.errors.to_string()),
            ("skipped", self.skipped.to_string()),
            ("time", seconds(self.ms)),
        ]
    }
}

fn seconds(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// Keep only characters XML 1.0 allows (escaping cannot help the others), minus ANSI escapes.
fn xml_text(text: &str) -> String {
    console::strip_ansi_codes(text)
        .chars()
        .filter(|&c| {
            matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{FFFE}' && c != '\u{FFFF}')
        })
        .collect()
}

/// Render the record as a JUnit XML document.
pub fn render(record: &RunRecord) -> io::Result<Vec<u8>> {
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    w.write_event(Xml::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    let name = format!("salve {}", record.playbook.as_deref().unwrap_or("run"),);
    let all = Counts::of(record.plays.iter().flat_map(|p| &p.results));
    let mut root = w
        .create_element("testsuites")
        .with_attribute(("name", xml_text(&name).as_str()));
    for (k, v) in all.attributes() {
        root = root.with_attribute((k, v.as_str()));
    }
    root.write_inner_content(|w| {
        for play in &record.plays {
            suite(w, play, record.started_at.as_deref())?;
        }
        Ok(())
    })?;
    let mut bytes = w.into_inner();
    bytes.push(b'\n');
    Ok(bytes)
}

fn suite(w: &mut Writer<Vec<u8>>, play: &PlayRecord, started_at: Option<&str>) -> io::Result<()> {
    let counts = Counts::of(play.results.iter());
    let mut el = w
        .create_element("testsuite")
        .with_attribute(("name", xml_text(&play.name).as_str()));
    for (k, v) in counts.attributes() {
        el = el.with_attribute((k, v.as_str()));
    }
    if let Some(ts) = started_at {
        el = el.with_attribute(("timestamp", xml_text(ts).as_str()));
    }
    el.write_inner_content(|w| {
        if let Some(stop) = &play.stopped {
            w.create_element("properties").write_inner_content(|w| {
                w.create_element("property")
                    .with_attribute(("name", "stopped"))
                    .with_attribute(("value", xml_text(&stop_reason(stop)).as_str()))
                    .write_empty()?;
                Ok(())
            })?;
        }
        for result in &play.results {
            case(w, result)?;
        }
        Ok(())
    })?;
    Ok(())
}

fn case(w: &mut Writer<Vec<u8>>, r: &TaskRecord) -> io::Result<()> {
    let mut name = format!("{}: {}", r.host, r.task);
    if let Some(item) = &r.item {
        name.push_str(&format!(" [{}]", item_text(item)));
    }
    let classname = match &r.tenant {
        Some(t) => format!("{t}.{}", r.host),
        None => r.host.clone(),
    };
    let el = w
        .create_element("testcase")
        .with_attribute(("name", xml_text(&name).as_str()))
        .with_attribute(("classname", xml_text(&classname).as_str()))
        .with_attribute(("time", seconds(r.duration_ms).as_str()));
    let msg = xml_text(r.msg.as_deref().unwrap_or_default());
    let (tag, kind) = match r.status {
        TaskStatus::Ok | TaskStatus::Changed | TaskStatus::Ignored => {
            el.write_empty()?;
            return Ok(());
        }
        TaskStatus::Skipped => {
            el.write_inner_content(|w| {
                w.create_element("skipped")
                    .with_attribute(("message", msg.as_str()))
                    .write_empty()?;
                Ok(())
            })?;
            return Ok(());
        }
        TaskStatus::Failed => ("failure", "failed"),
        TaskStatus::Unreachable => ("error", "unreachable"),
        TaskStatus::Interrupted => ("error", "interrupted"),
    };
    let result = xml_text(&serde_json::to_string_pretty(&r.result).unwrap_or_default());
    el.write_inner_content(|w| {
        w.create_element(tag)
            .with_attribute(("message", msg.as_str()))
            .with_attribute(("type", kind))
            .write_text_content(BytesText::new(&msg))?;
        if !r.result.is_null() {
            w.create_element("system-out")
                .write_text_content(BytesText::new(&result))?;
        }
        Ok(())
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_text_drops_forbidden_characters() {
        assert_eq!(xml_text("a\u{0}b\u{1b}[31mc\u{1b}[0m\td"), "abc\td");
    }

    #[test]
    fn seconds_have_millis() {
        assert_eq!(seconds(1_234), "1.234");
        assert_eq!(seconds(5), "0.005");
    }
}
