//! Human output on a terminal: an overall bar (hosts done of all the plays' hosts, how they
//! ended, ETA), a spinner line per active host with its current task, elapsed time and the last
//! line of its output, and permanent lines above the bars for what needs attention (changes,
//! failures, retries, slow steps, Ctrl-C, warnings), then the recap.
//!
//! The overall bar counts (play, host) pairs: a host is done in a play after its last task
//! (`task_index` counts from 0), when it drops out, or when the play ends; the counts beside the
//! bar say how those pairs ended (changed if any task changed something). Permanent lines are written to any writer (stdout in the CLI) while the bars are hidden,
//! so tests can render into a buffer with a hidden draw target.

use std::collections::{HashMap, HashSet};
use std::io::{self, Write};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::events::{Event, HostOutcome, InterruptStage, TaskStatus};

use super::Reporter;
use super::log::LogRoute;
use super::style::Palette;
use super::text::{Detail, Lines, last_line};
use super::write_guard::Guarded;

const OVERALL_TEMPLATE: &str =
    "{prefix:.bold} [{bar:20.cyan/blue}] {pos}/{len} hosts · ETA {eta} · {wide_msg}";
const HOST_TEMPLATE: &str = "{spinner:.green} {prefix:.bold} {elapsed:>4} {wide_msg}";
const TICK: Duration = Duration::from_millis(120);

fn style(template: &str) -> ProgressStyle {
    // The templates are constants checked by the `templates_parse` test; the fallback is never
    // taken in practice but keeps this panic-free.
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}

/// How a host ended its part of a play, for the overall bar's counts; later variants win.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum PlayOutcome {
    Ok,
    Changed,
    Failed,
    Unreachable,
    Interrupted,
}

impl PlayOutcome {
    fn of(status: TaskStatus) -> Self {
        match status {
            TaskStatus::Ok | TaskStatus::Skipped | TaskStatus::Ignored => PlayOutcome::Ok,
            TaskStatus::Changed => PlayOutcome::Changed,
            TaskStatus::Failed => PlayOutcome::Failed,
            TaskStatus::Unreachable => PlayOutcome::Unreachable,
            TaskStatus::Interrupted => PlayOutcome::Interrupted,
        }
    }

    /// How a host that ended with `outcome` counts, beyond what its steps said: `None` for ok
    /// (its steps' ok or changed stands).
    fn ended(outcome: HostOutcome) -> Option<Self> {
        match outcome {
            HostOutcome::Ok => None,
            HostOutcome::Unreachable => Some(PlayOutcome::Unreachable),
            HostOutcome::Interrupted => Some(PlayOutcome::Interrupted),
            HostOutcome::Failed | HostOutcome::NotRun | HostOutcome::Drifted => {
                Some(PlayOutcome::Failed)
            }
        }
    }
}

/// The spinner line of a host running a step.
struct HostLine {
    bar: ProgressBar,
    task: String,
    slow: bool,
    output: Option<String>,
}

/// Per-play bookkeeping behind the overall bar.
#[derive(Default)]
struct PlayTally {
    tasks: usize,
    hosts: Vec<String>,
    done: HashSet<String>,
    /// The weightiest outcome of each host's tasks so far in this play.
    outcome: HashMap<String, PlayOutcome>,
}

/// Progress bars plus permanent lines; see the module documentation.
pub struct ProgressReporter<W: Write> {
    bars: MultiProgress,
    overall: ProgressBar,
    hosts: HashMap<String, HostLine>,
    play: PlayTally,
    /// Hosts done per [`PlayOutcome`], over all plays so far (the bar counts plays' hosts).
    ended: [usize; 5],
    out: Guarded<W>,
    lines: Lines,
    route: Option<LogRoute>,
}

impl ProgressReporter<io::Stdout> {
    /// Bars and lines on stdout, coloured unless `NO_COLOR`; tracing logs go around the bars.
    pub fn stdout() -> Self {
        ProgressReporter::new(
            ProgressDrawTarget::stdout(),
            io::stdout(),
            Palette::for_stdout(),
        )
    }
}

impl<W: Write> ProgressReporter<W> {
    /// Draw bars on `target` and write permanent lines to `out`.
    pub fn new(target: ProgressDrawTarget, out: W, palette: Palette) -> Self {
        let bars = MultiProgress::with_draw_target(target);
        let route = (!bars.is_hidden()).then(|| LogRoute::through(&bars));
        let overall = bars.add(ProgressBar::new(0).with_style(style(OVERALL_TEMPLATE)));
        ProgressReporter {
            bars,
            overall,
            hosts: HashMap::new(),
            play: PlayTally::default(),
            ended: [0; 5],
            out: Guarded::new(out),
            lines: Lines::new(palette, Detail::Notable),
            route,
        }
    }

    /// The writer back (tests read the permanent lines).
    pub fn into_inner(mut self) -> W {
        self.clear();
        let Self { out, .. } = self;
        out.into_inner()
    }

    fn print(&mut self, text: &str) {
        let out = &mut self.out;
        self.bars.suspend(|| {
            out.line(text);
            out.flush();
        });
    }

    fn clear(&mut self) {
        for (_, line) in self.hosts.drain() {
            line.bar.finish_and_clear();
            self.bars.remove(&line.bar);
        }
        self.overall.finish_and_clear();
    }

    fn host_line(&mut self, host: &str, tenant: Option<&str>) -> &mut HostLine {
        let bars = &self.bars;
        self.hosts.entry(host.to_string()).or_insert_with(|| {
            let bar = bars.add(ProgressBar::new_spinner().with_style(style(HOST_TEMPLATE)));
            bar.set_prefix(match tenant {
                Some(t) => format!("{host} [{t}]"),
                None => host.to_string(),
            });
            bar.enable_steady_tick(TICK);
            HostLine {
                bar,
                task: String::new(),
                slow: false,
                output: None,
            }
        })
    }

    fn refresh(line: &HostLine, palette: &Palette) {
        let mut msg = line.task.clone();
        if line.slow {
            msg.push_str(&format!(" {}", palette.warn("(slow)")));
        }
        if let Some(out) = &line.output {
            msg.push_str(&format!("  {}", palette.dim(out)));
        }
        line.bar.set_message(msg);
    }

    /// Keep the weightiest outcome seen for `host` in this play.
    fn weigh(&mut self, host: &str, outcome: PlayOutcome) {
        let seen = self.play.outcome.entry(host.to_string()).or_insert(outcome);
        *seen = (*seen).max(outcome);
    }

    fn host_done(&mut self, host: &str) {
        if let Some(line) = self.hosts.remove(host) {
            line.bar.finish_and_clear();
            self.bars.remove(&line.bar);
        }
        if !self.play.done.insert(host.to_string()) {
            return;
        }
        let outcome = self
            .play
            .outcome
            .get(host)
            .copied()
            .unwrap_or(PlayOutcome::Ok);
        self.ended[outcome as usize] += 1;
        self.overall.inc(1);
        self.overall_message();
    }

    /// `ok 3 · changed 1 · failed 1`: counts of hosts done; zero counts other than ok are left
    /// out so the line fits a narrow terminal.
    fn overall_message(&self) {
        let p = self.lines.palette();
        let labels = [
            (TaskStatus::Ok, "ok"),
            (TaskStatus::Changed, "changed"),
            (TaskStatus::Failed, "failed"),
            (TaskStatus::Unreachable, "unreachable"),
            (TaskStatus::Interrupted, "interrupted"),
        ];
        let parts: Vec<String> = labels
            .iter()
            .zip(self.ended)
            .filter(|((status, _), n)| *n > 0 || *status == TaskStatus::Ok)
            .map(|((status, label), n)| p.status(*status, &format!("{label} {n}")))
            .collect();
        self.overall.set_message(parts.join(" · "));
    }

    /// Update the bars for `event` (the permanent line, if any, is printed by the caller).
    fn track(&mut self, event: &Event) {
        match event {
            Event::PlayStarted {
                play, hosts, tasks, ..
            } => {
                self.play = PlayTally {
                    tasks: *tasks,
                    hosts: hosts.clone(),
                    ..Default::default()
                };
                self.overall.inc_length(hosts.len() as u64);
                self.overall
                    .set_prefix(console::truncate_str(play, 30, "…").into_owned());
                self.overall_message();
            }
            Event::TaskStarted {
                host, tenant, task, ..
            } => {
                let palette = self.lines.palette().clone();
                let line = self.host_line(host, tenant.as_deref());
                line.task = task.clone();
                line.slow = false;
                line.output = None;
                line.bar.reset_elapsed();
                Self::refresh(line, &palette);
            }
            Event::TaskOutput { host, text, .. } => {
                let palette = self.lines.palette().clone();
                if let Some(line) = self.hosts.get_mut(host)
                    && let Some(last) = last_line(text)
                {
                    line.output = Some(last);
                    Self::refresh(line, &palette);
                }
            }
            Event::SlowStep { host, .. } => {
                let palette = self.lines.palette().clone();
                if let Some(line) = self.hosts.get_mut(host) {
                    line.slow = true;
                    Self::refresh(line, &palette);
                }
            }
            Event::TaskFinished {
                host,
                status,
                task_index,
                ..
            } => {
                self.weigh(host, PlayOutcome::of(*status));
                if task_index + 1 >= self.play.tasks {
                    self.host_done(host);
                }
            }
            Event::HostDropped { host, status, .. } => {
                self.weigh(host, PlayOutcome::of(*status));
                self.host_done(host);
            }
            Event::HostFinished { host, outcome, .. } => {
                if let Some(worst) = PlayOutcome::ended(*outcome) {
                    self.weigh(host, worst);
                }
                self.host_done(host);
            }
            Event::PlayFinished { .. } => {
                for host in std::mem::take(&mut self.play.hosts) {
                    self.host_done(&host);
                }
            }
            Event::Interrupt { stage, .. } => {
                let p = self.lines.palette();
                self.overall.set_prefix(match stage {
                    InterruptStage::Draining => p.error("interrupted, finishing running steps"),
                    InterruptStage::Aborting => p.error("aborting"),
                });
            }
            Event::RunFinished { .. } => self.clear(),
            _ => {}
        }
    }
}

impl<W: Write> Reporter for ProgressReporter<W> {
    fn event(&mut self, event: &Event) {
        self.track(event);
        if let Some(text) = self.lines.render(event) {
            self.print(&text);
        }
    }

    fn finish(&mut self) -> io::Result<()> {
        self.clear();
        self.route = None;
        self.out.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hidden() -> ProgressReporter<Vec<u8>> {
        ProgressReporter::new(ProgressDrawTarget::hidden(), Vec::new(), Palette::plain())
    }

    fn start(host: &str, task: &str, index: usize) -> Event {
        Event::TaskStarted {
            play_index: 0,
            host: host.into(),
            tenant: Some("acme".into()),
            task: task.into(),
            task_index: index,
            item: None,
        }
    }

    fn finish(host: &str, index: usize, status: TaskStatus) -> Event {
        Event::TaskFinished {
            play_index: 0,
            host: host.into(),
            tenant: Some("acme".into()),
            task: "t".into(),
            task_index: index,
            status,
            msg: None,
            duration_ms: 1,
            result: serde_json::Value::Null,
        }
    }

    fn play(hosts: &[&str], tasks: usize) -> Event {
        let hosts: Vec<String> = hosts.iter().map(|h| h.to_string()).collect();
        Event::PlayStarted {
            play_index: 0,
            play: "p".into(),
            hosts: hosts.clone(),
            tasks,
            batches: vec![hosts],
        }
    }

    #[test]
    fn host_lines_follow_tasks_and_output() {
        let mut r = hidden();
        r.event(&play(&["ex01", "ex02"], 2));
        r.event(&start("ex01", "Read build", 0));
        assert_eq!(r.hosts["ex01"].bar.prefix(), "ex01 [acme]");
        assert_eq!(r.hosts["ex01"].bar.message(), "Read build");
        r.event(&Event::TaskOutput {
            host: "ex01".into(),
            task: "Read build".into(),
            stream: crate::events::Stream::Stdout,
            text: "line one\nVersion 15.2\n".into(),
        });
        r.event(&Event::SlowStep {
            host: "ex01".into(),
            task: "Read build".into(),
            elapsed_ms: 9,
        });
        assert_eq!(
            r.hosts["ex01"].bar.message(),
            "Read build (slow)  Version 15.2"
        );
        r.event(&finish("ex01", 0, TaskStatus::Ok));
        assert!(r.hosts.contains_key("ex01"), "one task is left");
        r.event(&start("ex01", "Mitigate", 1));
        assert_eq!(
            r.hosts["ex01"].bar.message(),
            "Mitigate",
            "a new step starts clean"
        );
    }

    #[test]
    fn queued_hosts_count_when_their_work_ends() {
        let finished = |host: &str, outcome| Event::HostFinished {
            host: host.into(),
            tenant: Some("acme".into()),
            outcome,
            msg: None,
        };
        let mut r = hidden();
        // A queued run of several plays: the task count never completes a host by itself.
        r.event(&play(&["ex01", "ex02", "ex03"], 5));
        r.event(&start("ex01", "a", 0));
        r.event(&finish("ex01", 0, TaskStatus::Changed));
        assert_eq!(r.overall.position(), 0);
        r.event(&finished("ex01", HostOutcome::Ok));
        r.event(&finished("ex02", HostOutcome::Drifted));
        r.event(&finished("ex02", HostOutcome::Drifted));
        assert_eq!(r.overall.position(), 2, "each host counts once");
        assert!(
            !r.hosts.contains_key("ex01"),
            "a finished host loses its line"
        );
        assert_eq!(r.overall.message(), "ok 0 · changed 1 · failed 1");
    }

    #[test]
    fn overall_bar_counts_hosts_across_plays() {
        let mut r = hidden();
        r.event(&play(&["ex01", "ex02", "ex03"], 2));
        assert_eq!(r.overall.length(), Some(3));
        r.event(&start("ex01", "a", 0));
        r.event(&finish("ex01", 0, TaskStatus::Changed));
        r.event(&finish("ex01", 1, TaskStatus::Ok));
        r.event(&Event::HostDropped {
            host: "ex02".into(),
            tenant: None,
            status: TaskStatus::Unreachable,
            task: "a".into(),
            msg: "refused".into(),
        });
        assert_eq!(r.overall.position(), 2);
        assert!(!r.hosts.contains_key("ex01"), "done hosts lose their line");
        // The play ends with ex03 never reached: it still counts as done, once.
        r.event(&Event::PlayFinished {
            play_index: 0,
            play: "p".into(),
            stopped: None,
        });
        r.event(&Event::PlayFinished {
            play_index: 0,
            play: "p".into(),
            stopped: None,
        });
        assert_eq!(r.overall.position(), 3);
        assert_eq!(r.overall.message(), "ok 1 · changed 1 · unreachable 1");
        r.event(&play(&["ex01"], 1));
        assert_eq!(r.overall.length(), Some(4));
        // A failing last task counts as failed, not ok, though the drop comes after it.
        r.event(&finish("ex01", 0, TaskStatus::Failed));
        r.event(&Event::HostDropped {
            host: "ex01".into(),
            tenant: None,
            status: TaskStatus::Failed,
            task: "a".into(),
            msg: "boom".into(),
        });
        assert_eq!(r.overall.position(), 4);
        assert_eq!(
            r.overall.message(),
            "ok 1 · changed 1 · failed 1 · unreachable 1"
        );
    }

    #[test]
    fn templates_parse() {
        assert!(ProgressStyle::with_template(OVERALL_TEMPLATE).is_ok());
        assert!(ProgressStyle::with_template(HOST_TEMPLATE).is_ok());
    }
}
