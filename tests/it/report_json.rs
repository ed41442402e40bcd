//! `--json`: every event variant serialises with an `"event"` tag, round-trips through
//! `serde_json::Value`, and matches the schema documented in `src/report/json.rs` (the test reads
//! that documentation, so the documented schema cannot drift from the output).

use std::collections::{BTreeMap, BTreeSet};

use salve::events::{
    Event, HostCounts, HostOutcome, HostSummary, InterruptStage, PlayStop, RunSummary, Stream,
    TaskStatus,
};
use salve::report::{JsonLinesReporter, Reporter};
use serde_json::{Value, json};

use super::report::scripted_run;

/// The tag of an event. The exhaustive match makes this file fail to compile when a variant is
/// added, so the samples below (and the documented schema) must follow.
fn tag(e: &Event) -> &'static str {
    match e {
        Event::RunStarted { .. } => "run_started",
        Event::PlayStarted { .. } => "play_started",
        Event::BatchStarted { .. } => "batch_started",
        Event::TaskStarted { .. } => "task_started",
        Event::TaskOutput { .. } => "task_output",
        Event::SlowStep { .. } => "slow_step",
        Event::TaskRetry { .. } => "task_retry",
        Event::LoopItem { .. } => "loop_item",
        Event::TaskFinished { .. } => "task_finished",
        Event::HostDropped { .. } => "host_dropped",
        Event::PlayFinished { .. } => "play_finished",
        Event::HostFinished { .. } => "host_finished",
        Event::Interrupt { .. } => "interrupt",
        Event::Warning { .. } => "warning",
        Event::RunFinished { .. } => "run_finished",
    }
}

/// The scripted run plus the forms it lacks (other stop reasons, a host without tenant).
fn samples() -> Vec<Event> {
    let mut events = scripted_run();
    events.push(Event::PlayFinished {
        play_index: 0,
        play: "p".into(),
        stopped: Some(PlayStop::MaxFailPercentage {
            batch: 1,
            failed: 2,
            hosts: 3,
            limit: 30.0,
        }),
    });
    events.push(Event::PlayFinished {
        play_index: 0,
        play: "p".into(),
        stopped: Some(PlayStop::AllHostsFailed),
    });
    events.push(Event::TaskOutput {
        host: "h".into(),
        task: "t".into(),
        stream: Stream::Stderr,
        text: "x".into(),
    });
    events.push(Event::LoopItem {
        host: "h".into(),
        tenant: None,
        task: "t".into(),
        play_index: 0,
        task_index: 1,
        item: json!("DB01"),
        status: TaskStatus::Ok,
        msg: None,
    });
    events.push(Event::RunFinished {
        summary: RunSummary {
            hosts: vec![HostSummary {
                host: "h".into(),
                tenant: None,
                counts: HostCounts::default(),
                outcome: HostOutcome::Ok,
                left_in: None,
            }],
            tenants: BTreeMap::from([(String::new(), BTreeMap::from([(HostOutcome::Ok, 1)]))]),
            interrupted: false,
            duration_ms: 1,
            exit_code: 0,
        },
    });
    events.push(Event::HostFinished {
        host: "h".into(),
        tenant: Some("acme".into()),
        outcome: HostOutcome::Drifted,
        msg: Some("facts changed".into()),
    });
    events.push(Event::HostFinished {
        host: "h".into(),
        tenant: None,
        outcome: HostOutcome::Ok,
        msg: None,
    });
    events.push(Event::Interrupt {
        stage: InterruptStage::Draining,
        in_flight: vec![],
    });
    events.push(Event::TaskFinished {
        play_index: 0,
        host: "h".into(),
        tenant: None,
        task: "t".into(),
        task_index: 0,
        status: TaskStatus::Changed,
        msg: None,
        duration_ms: 0,
        result: json!([1, "two"]),
    });
    events
}

// ---- the documented schema, parsed from the module doc ----

#[derive(Debug, Clone)]
enum Ty {
    String,
    Integer,
    Number,
    Bool,
    Json,
    Nullable(Box<Ty>),
    Array(Box<Ty>),
    Tuple(Vec<Ty>),
    Map(Box<Ty>),
    OneOf(Vec<String>),
    Object(Vec<(String, bool, Ty)>),
    Named(String),
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }
    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn expect(&mut self, c: u8) {
        assert!(
            self.eat(c),
            "schema: expected {:?} at {:?}",
            c as char,
            self.rest()
        );
    }
    fn rest(&self) -> String {
        String::from_utf8_lossy(&self.s[self.i..(self.i + 40).min(self.s.len())]).into()
    }
    fn ident(&mut self) -> String {
        self.ws();
        let start = self.i;
        while self.i < self.s.len()
            && (self.s[self.i].is_ascii_alphanumeric() || self.s[self.i] == b'_')
        {
            self.i += 1;
        }
        assert!(
            self.i > start,
            "schema: expected a name at {:?}",
            self.rest()
        );
        String::from_utf8_lossy(&self.s[start..self.i]).into()
    }
    fn literal(&mut self) -> String {
        self.expect(b'"');
        let start = self.i;
        while self.s[self.i] != b'"' {
            self.i += 1;
        }
        self.i += 1;
        String::from_utf8_lossy(&self.s[start..self.i - 1]).into()
    }
    fn ty(&mut self) -> Ty {
        self.ws();
        let base = match self.s[self.i] {
            b'"' => {
                let mut options = vec![self.literal()];
                while self.eat(b'|') {
                    options.push(self.literal());
                }
                Ty::OneOf(options)
            }
            b'[' => {
                self.i += 1;
                let inner = self.ty();
                self.expect(b']');
                Ty::Array(Box::new(inner))
            }
            b'(' => {
                self.i += 1;
                let mut items = vec![self.ty()];
                while self.eat(b',') {
                    items.push(self.ty());
                }
                self.expect(b')');
                Ty::Tuple(items)
            }
            b'{' => {
                self.i += 1;
                let mut fields = Vec::new();
                loop {
                    let key = self.ident();
                    let optional = self.eat(b'?');
                    self.expect(b':');
                    fields.push((key, optional, self.ty()));
                    if !self.eat(b',') {
                        break;
                    }
                }
                self.expect(b'}');
                Ty::Object(fields)
            }
            _ => match self.ident().as_str() {
                "string" => Ty::String,
                "integer" => Ty::Integer,
                "number" => Ty::Number,
                "bool" => Ty::Bool,
                "json" => Ty::Json,
                "map" => {
                    self.expect(b'<');
                    let inner = self.ty();
                    self.expect(b'>');
                    Ty::Map(Box::new(inner))
                }
                name => Ty::Named(name.to_string()),
            },
        };
        if self.eat(b'?') {
            Ty::Nullable(Box::new(base))
        } else {
            base
        }
    }
}

/// Definitions from the ```text block of the module doc: `name = type`.
fn documented_schema() -> BTreeMap<String, Ty> {
    let source = include_str!("../../src/report/json.rs");
    let doc: String = source
        .lines()
        .filter_map(|l| l.strip_prefix("//!"))
        .map(|l| format!("{}\n", l.strip_prefix(' ').unwrap_or(l)))
        .collect();
    let start = doc.find("```text\n").expect("schema block") + "```text\n".len();
    let block = &doc[start..start + doc[start..].find("```").expect("end of schema block")];
    let mut parser = Parser {
        s: block.as_bytes(),
        i: 0,
    };
    let mut defs = BTreeMap::new();
    loop {
        parser.ws();
        if parser.i == parser.s.len() {
            break;
        }
        let name = parser.ident();
        parser.expect(b'=');
        let ty = parser.ty();
        assert!(
            defs.insert(name.clone(), ty).is_none(),
            "{name} documented twice"
        );
    }
    defs
}

fn check(value: &Value, ty: &Ty, defs: &BTreeMap<String, Ty>, path: &str) {
    let ok = match ty {
        Ty::String => value.is_string(),
        Ty::Integer => value.is_u64(),
        Ty::Number => value.is_number(),
        Ty::Bool => value.is_boolean(),
        Ty::Json => true,
        Ty::Nullable(inner) => {
            if !value.is_null() {
                check(value, inner, defs, path);
            }
            true
        }
        Ty::Array(inner) => {
            let items = value
                .as_array()
                .unwrap_or_else(|| panic!("{path}: expected array, got {value}"));
            for (i, v) in items.iter().enumerate() {
                check(v, inner, defs, &format!("{path}[{i}]"));
            }
            true
        }
        Ty::Tuple(types) => {
            let items = value
                .as_array()
                .unwrap_or_else(|| panic!("{path}: expected array, got {value}"));
            assert_eq!(items.len(), types.len(), "{path}: tuple length");
            for (i, (v, t)) in items.iter().zip(types).enumerate() {
                check(v, t, defs, &format!("{path}[{i}]"));
            }
            true
        }
        Ty::Map(inner) => {
            let map = value
                .as_object()
                .unwrap_or_else(|| panic!("{path}: expected object, got {value}"));
            for (k, v) in map {
                check(v, inner, defs, &format!("{path}.{k}"));
            }
            true
        }
        Ty::OneOf(options) => value
            .as_str()
            .is_some_and(|s| options.iter().any(|o| o == s)),
        Ty::Object(fields) => {
            let map = value
                .as_object()
                .unwrap_or_else(|| panic!("{path}: expected object, got {value}"));
            let known: BTreeSet<&str> = fields.iter().map(|(k, _, _)| k.as_str()).collect();
            for key in map.keys() {
                assert!(
                    known.contains(key.as_str()),
                    "{path}: undocumented key `{key}` in {value}"
                );
            }
            for (key, optional, t) in fields {
                match map.get(key) {
                    Some(v) => check(v, t, defs, &format!("{path}.{key}")),
                    None => assert!(
                        optional,
                        "{path}: documented key `{key}` missing in {value}"
                    ),
                }
            }
            true
        }
        Ty::Named(name) => {
            let def = defs
                .get(name)
                .unwrap_or_else(|| panic!("{path}: type {name} is not documented"));
            check(value, def, defs, path);
            true
        }
    };
    assert!(ok, "{path}: {value} is not a {ty:?}");
}

#[test]
fn documented_schema_matches_output() {
    let defs = documented_schema();
    let documented: BTreeSet<&str> = defs
        .keys()
        .map(String::as_str)
        .filter(|k| k.starts_with(|c: char| c.is_lowercase()))
        .collect();
    let samples = samples();
    let produced: BTreeSet<&str> = samples.iter().map(tag).collect();
    assert_eq!(
        documented, produced,
        "every event is documented and sampled"
    );
    for event in &samples {
        let mut value = serde_json::to_value(event).unwrap();
        let object = value.as_object_mut().unwrap();
        assert_eq!(
            object.remove("event"),
            Some(Value::String(tag(event).into()))
        );
        check(&value, &defs[tag(event)], &defs, tag(event));
    }
}

#[test]
fn json_lines_round_trip_through_value() {
    let events = samples();
    let reporter = {
        let mut r = JsonLinesReporter::new(Vec::new());
        for e in &events {
            r.event(e);
        }
        r.finish().unwrap();
        r
    };
    let out = String::from_utf8(reporter.into_inner()).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), events.len());
    for (line, event) in lines.iter().zip(&events) {
        let parsed: Value = serde_json::from_str(line).unwrap();
        assert_eq!(parsed, serde_json::to_value(event).unwrap());
        assert_eq!(parsed["event"], tag(event), "{line}");
        // Re-serialising the value gives the same line: nothing is lost or reordered.
        assert_eq!(serde_json::to_string(&parsed).unwrap(), *line);
    }
}

#[test]
fn a_schema_violation_is_caught() {
    // Guard against a checker that accepts anything.
    let defs = documented_schema();
    let bad = json!({"message": 3});
    let caught = std::panic::catch_unwind(|| check(&bad, &defs["warning"], &defs, "warning"));
    assert!(caught.is_err());
    let extra = json!({"message": "x", "secret": "y"});
    let caught = std::panic::catch_unwind(|| check(&extra, &defs["warning"], &defs, "warning"));
    assert!(caught.is_err());
}
