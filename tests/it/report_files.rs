//! `--report-dir`: `report.json` holds the whole run; `junit.xml` parses back with the right
//! suites, cases and counts.

use std::collections::BTreeMap;
use std::path::Path;

use quick_xml::XmlVersion;
use quick_xml::events::Event as Xml;
use salve::events::{Event, TaskStatus};
use salve::report::{ReportDirReporter, Reporter};
use serde_json::Value;

use super::report::scripted_run;

fn write_reports(dir: &Path, events: &[Event]) {
    let mut reporter = ReportDirReporter::new(dir);
    for e in events {
        reporter.event(e);
    }
    reporter.finish().unwrap();
}

/// One parsed XML element: name, attributes, text inside.
#[derive(Debug, Default)]
struct El {
    name: String,
    attrs: BTreeMap<String, String>,
    text: String,
    depth: usize,
}

fn parse_xml(bytes: &[u8]) -> Vec<El> {
    let mut reader = quick_xml::Reader::from_reader(bytes);
    let mut buf = Vec::new();
    let mut out: Vec<El> = Vec::new();
    let mut open: Vec<usize> = Vec::new();
    loop {
        let event = reader.read_event_into(&mut buf).unwrap();
        match &event {
            Xml::Start(e) | Xml::Empty(e) => {
                let attrs = e
                    .attributes()
                    .map(|a| {
                        let a = a.unwrap();
                        let key = a.key.as_ref().to_string();
                        (
                            key,
                            a.normalized_value(XmlVersion::Implicit1_0)
                                .unwrap()
                                .into_owned(),
                        )
                    })
                    .collect();
                let name = e.name().as_ref().to_string();
                out.push(El {
                    name,
                    attrs,
                    text: String::new(),
                    depth: open.len(),
                });
                if matches!(event, Xml::Start(_)) {
                    open.push(out.len() - 1);
                }
            }
            Xml::End(_) => {
                open.pop();
            }
            Xml::Text(t) => {
                if let Some(&i) = open.last() {
                    out[i].text.push_str(&t.xml10_content());
                }
            }
            Xml::GeneralRef(r) => {
                if let Some(&i) = open.last() {
                    let name = r.xml10_content();
                    let ch = match name.as_ref() {
                        "lt" => "<",
                        "gt" => ">",
                        "amp" => "&",
                        "quot" => "\"",
                        "apos" => "'",
                        other => panic!("unexpected entity {other}"),
                    };
                    out[i].text.push_str(ch);
                }
            }
            Xml::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    assert!(open.is_empty(), "unbalanced XML");
    out
}

fn count(els: &[El], name: &str) -> usize {
    els.iter().filter(|e| e.name == name).count()
}

#[test]
fn junit_has_a_suite_per_play_and_a_case_per_host_task() {
    let dir = tempfile::tempdir().unwrap();
    write_reports(dir.path(), &scripted_run());
    let xml = std::fs::read(dir.path().join("junit.xml")).unwrap();
    let els = parse_xml(&xml);

    let root = &els[0];
    assert_eq!(root.name, "testsuites");
    assert_eq!(root.attrs["tests"], "8");
    assert_eq!(root.attrs["failures"], "1");
    assert_eq!(root.attrs["errors"], "2");
    assert_eq!(root.attrs["skipped"], "1");

    let suites: Vec<&El> = els.iter().filter(|e| e.name == "testsuite").collect();
    let names: Vec<&str> = suites.iter().map(|s| s.attrs["name"].as_str()).collect();
    assert_eq!(names, ["Assess", "Install SU"]);
    assert_eq!(suites[0].attrs["tests"], "6");
    assert_eq!(suites[0].attrs["errors"], "1");
    assert_eq!(suites[1].attrs["failures"], "1");
    assert!(suites.iter().all(|s| s.depth == 1));

    assert_eq!(count(&els, "testcase"), 8);
    assert_eq!(count(&els, "failure"), 1);
    assert_eq!(count(&els, "error"), 2);
    assert_eq!(count(&els, "skipped"), 1);

    let case_names: Vec<&str> = els
        .iter()
        .filter(|e| e.name == "testcase")
        .map(|e| e.attrs["name"].as_str())
        .collect();
    assert!(case_names.contains(&"ex01.acme.local: Install security update"));
    assert!(case_names.contains(&"ex02.acme.local: Apply URL rewrite mitigation [autodiscover]"));

    // Escaped on the way out, intact on the way back in.
    let failure = els.iter().find(|e| e.name == "failure").unwrap();
    assert_eq!(
        failure.attrs["message"],
        "setup exited with 1603 <see ExchangeSetup.log>"
    );
    assert_eq!(
        failure.text,
        "setup exited with 1603 <see ExchangeSetup.log>"
    );
    let errors: Vec<&str> = els
        .iter()
        .filter(|e| e.name == "error")
        .map(|e| e.attrs["type"].as_str())
        .collect();
    assert_eq!(errors, ["unreachable", "interrupted"]);
    let out = els.iter().find(|e| e.name == "system-out").unwrap();
    assert!(out.text.contains("\"exit_code\": 1603"), "{}", out.text);
}

#[test]
fn junit_survives_hostile_text() {
    let dir = tempfile::tempdir().unwrap();
    let mut events = scripted_run();
    events.insert(
        3,
        Event::TaskFinished {
            play_index: 0,
            host: "ex\"01'&".into(),
            tenant: None,
            task: "<script>]]>".into(),
            task_index: 0,
            status: TaskStatus::Failed,
            msg: Some("bell\u{7} nul\u{0} esc\u{1b}[31m red & <tag>".into()),
            duration_ms: 1,
            result: Value::Null,
        },
    );
    write_reports(dir.path(), &events);
    let els = parse_xml(&std::fs::read(dir.path().join("junit.xml")).unwrap());
    let case = els.iter().find(|e| e.name == "testcase").unwrap();
    assert_eq!(case.attrs["name"], "ex\"01'&: <script>]]>");
    let failure = els.iter().find(|e| e.name == "failure").unwrap();
    assert_eq!(failure.attrs["message"], "bell nul esc red & <tag>");
}

#[test]
fn report_json_holds_the_whole_run() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("report.json"), "stale").unwrap();
    write_reports(dir.path(), &scripted_run());
    let report: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("report.json")).unwrap()).unwrap();
    assert_eq!(report["format"], 1);
    assert_eq!(report["run_id"], "r-0001");
    assert_eq!(report["playbook"], "playbooks/patch.yml");
    assert_eq!(report["started_at"], "2024-03-01T10:00:00Z");
    assert_eq!(report["finished_at"], "2024-03-01T10:12:34.321Z");
    assert_eq!(report["plays"].as_array().unwrap().len(), 2);
    let results = report["plays"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 6);
    assert_eq!(results[0]["host"], "ex01.acme.local");
    assert_eq!(results[0]["status"], "ok");
    assert_eq!(results[0]["duration_ms"], 1200);
    assert_eq!(results[0]["result"]["build"], "15.1.2507.6");
    assert_eq!(results[4]["item"], "autodiscover");
    assert_eq!(results[5]["item"]["site"], "ecp");
    let su = &report["plays"][1];
    assert_eq!(su["stopped"]["reason"], "interrupted");
    assert_eq!(su["results"][0]["attempts"], 2, "one retry was made");
    assert_eq!(
        su["results"][0]["msg"],
        "setup exited with 1603 <see ExchangeSetup.log>"
    );
    assert_eq!(report["interrupts"].as_array().unwrap().len(), 2);
    assert_eq!(report["interrupts"][0]["stage"], "draining");
    assert_eq!(report["warnings"].as_array().unwrap().len(), 1);
    assert_eq!(report["summary"]["exit_code"], 4);
    assert_eq!(report["summary"]["tenants"]["acme"]["interrupted"], 1);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 2, "no temporary files left: {leftovers:?}");
}

#[test]
fn a_run_cut_short_still_gets_its_reports() {
    let dir = tempfile::tempdir().unwrap();
    let events = scripted_run();
    // salve stopped before the summary: everything up to the first play's end.
    let cut = events
        .iter()
        .position(|e| matches!(e, Event::PlayFinished { .. }))
        .unwrap();
    write_reports(&dir.path().join("nested/reports"), &events[..=cut]);
    let report: Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("nested/reports/report.json")).unwrap(),
    )
    .unwrap();
    assert!(report["summary"].is_null());
    assert!(report["finished_at"].is_null());
    assert_eq!(report["plays"][0]["results"].as_array().unwrap().len(), 6);
    let els = parse_xml(&std::fs::read(dir.path().join("nested/reports/junit.xml")).unwrap());
    assert_eq!(count(&els, "testcase"), 6);
}
