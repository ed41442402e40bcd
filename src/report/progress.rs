//! Human output on a terminal: an overall bar (hosts done of all the plays' hosts, how they
//! ended, ETA), a spinner line per active host with its current task, elapsed time and the last
//! line of its output, and permanent lines above the bars for what needs attention (changes,
//! failures, retries, slow steps, Ctrl-C, warnings), then the recap.
//!
//! A host counts as done in a play after its last task, when it drops out, or when the play
//! ends. Permanent lines are written to any writer (stdout in the CLI) while the bars are hidden,
//! so tests can render into a buffer with a hidden draw target.

use std::collections::{HashMap, HashSet};
use std::io::{self, Write};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::events::{Event, InterruptStage, TaskStatus};

use super::Reporter;
use super::log::LogRoute;
use super::style::Palette;
use super::text::{Detail, Lines, last_line};
use super::write_guard::Guarded;

const OVERALL_TEMPLATE: &str =
    "{prefix:.bold} [{bar:30.cyan/blue}] {pos}/{len} hosts · {msg} · ETA {eta}";
const HOST_TEMPLATE: &str = "{spinner:.green} {prefix:.bold} {elapsed:>4} {wide_msg}";
const TICK: Duration = Duration::from_millis(120);

fn style(template: &str) -> ProgressStyle {
    // The templates are constants checked by the `templates_parse` test; the fallback is never
    // taken in practice but keeps this panic-free.
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}

/// How a host ended its part of a play, for the overall bar's counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PlayOutcome {
    Ok,
    Changed,
    Failed,
    Unreachable,
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
    changed: HashSet<String>,
    ended: [usize; 4],
}

/// Progress bars plus permanent lines; see the module documentation.
pub struct ProgressReporter<W: Write> {
    bars: MultiProgress,
    overall: ProgressBar,
    hosts: HashMap<String, HostLine>,
    play: PlayTally,
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

    fn host_done(&mut self, host: &str, outcome: Option<PlayOutcome>) {
        if let Some(line) = self.hosts.remove(host) {
            line.bar.finish_and_clear();
            self.bars.remove(&line.bar);
        }
        if !self.play.done.insert(host.to_string()) {
            return;
        }
        let outcome = outcome.unwrap_or(if self.play.changed.contains(host) {
            PlayOutcome::Changed
        } else {
            PlayOutcome::Ok
        });
        self.play.ended[outcome as usize] += 1;
        self.overall.inc(1);
        self.overall_message();
    }

    fn overall_message(&self) {
        let p = self.lines.palette();
        let [ok, changed, failed, unreachable] = self.play.ended;
        self.overall.set_message(format!(
            "{} · {} · {} · {}",
            p.status(TaskStatus::Ok, &format!("ok {ok}")),
            p.status(TaskStatus::Changed, &format!("changed {changed}")),
            p.status(TaskStatus::Failed, &format!("failed {failed}")),
            p.status(
                TaskStatus::Unreachable,
                &format!("unreachable {unreachable}")
            ),
        ));
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
                self.overall.set_prefix(play.clone());
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
                if *status == TaskStatus::Changed {
                    self.play.changed.insert(host.clone());
                }
                if task_index + 1 >= self.play.tasks {
                    self.host_done(host, None);
                }
            }
            Event::HostDropped { host, status, .. } => {
                let outcome = match status {
                    TaskStatus::Unreachable => PlayOutcome::Unreachable,
                    _ => PlayOutcome::Failed,
                };
                self.host_done(host, Some(outcome));
            }
            Event::PlayFinished { .. } => {
                for host in std::mem::take(&mut self.play.hosts) {
                    self.host_done(&host, None);
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

    #[test]
    fn templates_parse() {
        assert!(ProgressStyle::with_template(OVERALL_TEMPLATE).is_ok());
        assert!(ProgressStyle::with_template(HOST_TEMPLATE).is_ok());
    }
}
