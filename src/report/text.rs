//! The lines human reporters print, shared by the plain and the progress reporter so both say
//! the same thing the same way. Everything here is a pure function of the events (plus the
//! little state a line needs, such as a play's batch count), so output is deterministic.

use std::collections::HashMap;

use crate::events::{Event, HostOutcome, InterruptStage, PlayStop, Stream, TaskStatus};

use super::recap;
use super::style::Palette;
use super::words::{duration, plural};

/// How much a reporter shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// Every task result (plain, line-oriented output).
    All,
    /// Only what needs attention: changes, failures, warnings (progress bars show the rest).
    Notable,
}

/// Turns events into lines, remembering what later lines need (batch count, loop items).
#[derive(Debug)]
pub struct Lines {
    palette: Palette,
    detail: Detail,
    batches: usize,
    /// Loop item of the step each host is running.
    items: HashMap<String, serde_json::Value>,
}

impl Lines {
    pub fn new(palette: Palette, detail: Detail) -> Self {
        Lines {
            palette,
            detail,
            batches: 0,
            items: HashMap::new(),
        }
    }

    pub fn palette(&self) -> &Palette {
        &self.palette
    }

    /// The text to print for `event`, if any (may span several lines, no trailing newline).
    /// Streamed output is not handled here: see [`OutputLines`].
    pub fn render(&mut self, event: &Event) -> Option<String> {
        let p = &self.palette;
        match event {
            Event::RunStarted {
                run_id,
                playbook,
                hosts,
                tenants,
                check_mode,
                ..
            } => {
                let mut line = format!(
                    "{} {} · {} · run {run_id}",
                    p.bold("RUN"),
                    p.bold(&format!("[{playbook}]")),
                    count_hosts(hosts.len(), tenants.len()),
                );
                if *check_mode {
                    line.push_str(&p.warn(" · check mode: nothing will be changed"));
                }
                Some(line)
            }
            Event::PlayStarted {
                play,
                hosts,
                tasks,
                batches,
                ..
            } => {
                self.batches = batches.len();
                let mut line = format!(
                    "\n{} {} · {} · {}",
                    p.bold("PLAY"),
                    p.bold(&format!("[{play}]")),
                    plural(hosts.len(), "host"),
                    plural(*tasks, "task"),
                );
                if batches.len() > 1 {
                    line.push_str(&format!(" · {}", plural(batches.len(), "batch")));
                }
                Some(line)
            }
            Event::BatchStarted { batch, hosts, .. } if self.batches > 1 => Some(format!(
                "{} {batch}/{}: {}",
                p.bold("BATCH"),
                self.batches,
                hosts.join(", ")
            )),
            Event::BatchStarted { .. } => None,
            Event::TaskStarted { host, item, .. } => {
                match item {
                    Some(item) => self.items.insert(host.clone(), item.clone()),
                    None => self.items.remove(host),
                };
                None
            }
            Event::TaskOutput { .. } => None,
            Event::LoopItem {
                host,
                task,
                item,
                status,
                msg,
                ..
            } => {
                let notable = !matches!(status, TaskStatus::Ok | TaskStatus::Skipped);
                if self.detail == Detail::Notable && !notable {
                    return None;
                }
                let mut line = format!(
                    "{}: [{host}] {task} => (item={})",
                    p.status(*status, status_word(*status)),
                    item_text(item)
                );
                if let Some(msg) = msg.as_deref().filter(|m| !m.trim().is_empty()) {
                    line.push_str(&format!(": {}", one_line(msg)));
                }
                Some(line)
            }
            Event::SlowStep {
                host,
                task,
                elapsed_ms,
            } => Some(format!(
                "{}: [{host}] {task} still running after {}",
                p.warn("slow"),
                duration(*elapsed_ms)
            )),
            Event::TaskRetry {
                host,
                task,
                attempt,
                of,
                msg,
            } => Some(format!(
                "{}: [{host}] {task} (attempt {attempt}/{of}): {}",
                p.warn("retrying"),
                one_line(msg)
            )),
            Event::TaskFinished {
                host,
                task,
                status,
                msg,
                duration_ms,
                ..
            } => {
                let notable = !matches!(status, TaskStatus::Ok | TaskStatus::Skipped);
                if self.detail == Detail::Notable && !notable {
                    return None;
                }
                let mut line = format!(
                    "{}: [{host}] {task}",
                    p.status(*status, status_word(*status))
                );
                if let Some(item) = self.items.get(host) {
                    line.push_str(&format!(" (item={})", item_text(item)));
                }
                line.push_str(&p.dim(&format!(" ({})", duration(*duration_ms))));
                if let Some(msg) = msg.as_deref().filter(|m| !m.trim().is_empty()) {
                    line.push_str(&format!(": {}", one_line(msg)));
                }
                Some(line)
            }
            Event::HostDropped {
                host, status, task, ..
            } => Some(format!(
                "{}: [{host}] leaves the play ({} at {task}); its later tasks are skipped",
                p.status(*status, "dropped"),
                status_word(*status)
            )),
            Event::PlayFinished {
                play,
                stopped: Some(stop),
                ..
            } => Some(format!(
                "{} {}: {}",
                p.error("PLAY STOPPED"),
                p.bold(&format!("[{play}]")),
                stop_reason(stop)
            )),
            Event::PlayFinished { stopped: None, .. } => None,
            Event::HostFinished {
                host, outcome, msg, ..
            } => {
                let word = recap::outcome_word(*outcome);
                let mut line = if *outcome == HostOutcome::Ok {
                    format!("{}: [{host}] done", p.status(TaskStatus::Ok, word))
                } else {
                    format!("{}: [{host}] done", p.error(word))
                };
                if let Some(msg) = msg.as_deref().filter(|m| !m.trim().is_empty()) {
                    line.push_str(&format!(": {}", one_line(msg)));
                }
                Some(line)
            }
            Event::Interrupt { stage, in_flight } => Some(interrupt(p, *stage, in_flight)),
            Event::Warning { message } => {
                Some(format!("{}: {}", p.warn("warning"), one_line(message)))
            }
            Event::RunFinished { summary } => {
                let recap = recap::render(summary, p);
                Some(format!("\n{}", recap.trim_end_matches('\n')))
            }
        }
    }
}

fn interrupt(p: &Palette, stage: InterruptStage, in_flight: &[(String, String)]) -> String {
    let n = plural(in_flight.len(), "running step");
    let mut text = match stage {
        InterruptStage::Draining => format!(
            "{} (Ctrl-C): no new steps start; waiting for {n} to finish. \
             Press Ctrl-C again to cancel them.",
            p.error("INTERRUPTED")
        ),
        InterruptStage::Aborting => {
            format!(
                "{} (second Ctrl-C): cancelling {n} on their hosts.",
                p.error("ABORTING")
            )
        }
    };
    for (host, task) in in_flight {
        text.push_str(&format!("\n  - [{host}] {task}"));
    }
    text
}

/// Why a play stopped, in words.
pub fn stop_reason(stop: &PlayStop) -> String {
    match stop {
        PlayStop::MaxFailPercentage {
            batch,
            failed,
            hosts,
            limit,
        } => format!(
            "{failed} of {hosts} hosts failed in batch {batch}, more than max_fail_percentage \
             {limit}%; later batches were not started"
        ),
        PlayStop::AllHostsFailed => "every host failed or was unreachable".to_string(),
        PlayStop::Interrupted => "interrupted".to_string(),
    }
}

/// The word for a status, as in Ansible's output (`ok`, `changed`, `failed`, ...).
pub fn status_word(status: TaskStatus) -> &'static str {
    match status {
        TaskStatus::Ok => "ok",
        TaskStatus::Changed => "changed",
        TaskStatus::Failed => "failed",
        TaskStatus::Unreachable => "unreachable",
        TaskStatus::Skipped => "skipped",
        TaskStatus::Ignored => "ignored",
        TaskStatus::Interrupted => "interrupted",
    }
}

/// A loop item for display: strings bare, anything else as compact JSON.
pub fn item_text(item: &serde_json::Value) -> String {
    match item {
        serde_json::Value::String(s) => one_line(s),
        other => one_line(&other.to_string()),
    }
}

/// `3 hosts`, `1 host`; `3 hosts in 2 tenants` when there are tenants.
fn count_hosts(hosts: usize, tenants: usize) -> String {
    if tenants == 0 {
        plural(hosts, "host")
    } else {
        format!("{} in {}", plural(hosts, "host"), plural(tenants, "tenant"))
    }
}

/// Remote text made safe for a terminal: escape sequences removed, control characters
/// (newlines included) turned into spaces, surrounding blanks trimmed.
pub fn one_line(text: &str) -> String {
    let stripped = console::strip_ansi_codes(text);
    let cleaned: String = stripped
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    cleaned.trim().to_string()
}

/// The last non-blank line of a chunk of output, made safe (for a progress line's message).
pub fn last_line(text: &str) -> Option<String> {
    text.lines().rev().map(one_line).find(|l| !l.is_empty())
}

/// Streamed output formatted for people: each `task_output` event carries one line (a text
/// holding several is split).
pub fn output_lines(host: &str, stream: Stream, text: &str) -> Vec<String> {
    text.lines().map(|l| output_line(host, stream, l)).collect()
}

fn output_line(host: &str, stream: Stream, line: &str) -> String {
    let mark = match stream {
        Stream::Stdout => '|',
        Stream::Stderr => '!',
    };
    let cleaned = console::strip_ansi_codes(line);
    let cleaned: String = cleaned
        .chars()
        .map(|c| if c.is_control() && c != '\t' { ' ' } else { c })
        .collect();
    format!("  [{host}] {mark} {}", cleaned.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_strips_escapes_and_controls() {
        assert_eq!(one_line("\u{1b}[31mred\u{1b}[0m\r\nnext\u{7}"), "red  next");
    }

    #[test]
    fn last_line_skips_blank_tail() {
        assert_eq!(last_line("a\nb\n\n  \n").as_deref(), Some("b"));
        assert_eq!(last_line("\n"), None);
    }

    #[test]
    fn output_lines_are_one_per_line() {
        assert_eq!(
            output_lines("ex01", Stream::Stdout, "hello"),
            vec!["  [ex01] | hello"]
        );
        assert_eq!(
            output_lines("ex02", Stream::Stderr, "oops\nagain\r"),
            vec!["  [ex02] ! oops", "  [ex02] ! again"]
        );
    }

    #[test]
    fn plurals() {
        assert_eq!(plural(1, "host"), "1 host");
        assert_eq!(plural(2, "batch"), "2 batches");
        assert_eq!(plural(0, "task"), "0 tasks");
    }
}
