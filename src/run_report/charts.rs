//! The report's pictures, drawn by plotters' SVG backend into strings that are inlined in the
//! page: posture before → after per tenant, a timeline per DAG (members as rows, maintenance
//! spans as bars, so two members in maintenance at once would show as overlapping bars), and
//! each host's time against what a plan books for the changes it got. Every chart writes its
//! numbers as text beside the bars, and the page repeats them in a table, so nothing depends on
//! telling colours apart.

use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;

use super::view::{HostView, PostureState, RunView};

/// A chart that could not be drawn.
#[derive(Debug, thiserror::Error)]
#[error("cannot draw the {chart} chart")]
pub struct ChartError {
    chart: &'static str,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync>,
}

const WIDTH: u32 = 860;
const ROW: u32 = 26;
const FONT: &str = "sans-serif";

fn fill(state: PostureState) -> RGBColor {
    match state {
        PostureState::Compromised => RGBColor(0xd6, 0x60, 0x60),
        PostureState::Vulnerable => RGBColor(0xf2, 0xa6, 0x5a),
        PostureState::Mitigated => RGBColor(0xf5, 0xd7, 0x6e),
        PostureState::Fixed => RGBColor(0x8c, 0xcf, 0x8c),
        PostureState::Unknown => RGBColor(0xc8, 0xc8, 0xc8),
    }
}

/// Draw into an SVG string of `height` pixels with `draw`.
fn svg(
    chart: &'static str,
    height: u32,
    draw: impl FnOnce(
        &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>>,
) -> Result<String, ChartError> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (WIDTH, height)).into_drawing_area();
        let drawn = root
            .fill(&WHITE)
            .map_err(Into::into)
            .and_then(|()| draw(&root))
            .and_then(|()| root.present().map_err(Into::into));
        drawn.map_err(|source| ChartError { chart, source })?;
    }
    Ok(out)
}

/// Hosts by posture state, a bar before and a bar after the run for each tenant (or for the
/// whole fleet when there are no tenants).
pub fn posture(view: &RunView) -> Result<String, ChartError> {
    let mut groups: Vec<(String, Vec<&HostView>)> = view
        .tenants()
        .into_iter()
        .map(|t| {
            let hosts = view
                .hosts
                .iter()
                .filter(|h| h.tenant.as_deref() == Some(t.as_str()))
                .collect();
            (t, hosts)
        })
        .collect();
    let untenanted: Vec<&HostView> = view.hosts.iter().filter(|h| h.tenant.is_none()).collect();
    if !untenanted.is_empty() {
        groups.push(("(no tenant)".to_string(), untenanted));
    }
    let mut rows: Vec<(String, Vec<(PostureState, usize)>)> = Vec::new();
    for (name, hosts) in &groups {
        for (when, state_of) in [
            (
                "before",
                HostView::state_before as fn(&HostView) -> PostureState,
            ),
            ("after", HostView::state_after),
        ] {
            let counts = PostureState::ALL
                .iter()
                .map(|s| (*s, hosts.iter().filter(|h| state_of(h) == *s).count()))
                .filter(|(_, n)| *n > 0)
                .collect();
            rows.push((format!("{name} {when}"), counts));
        }
    }
    let most = groups
        .iter()
        .map(|(_, h)| h.len())
        .max()
        .unwrap_or(1)
        .max(1);
    let height = 90 + ROW * rows.len() as u32;
    svg("posture", height, |root| {
        let n = rows.len() as u32;
        let labels: Vec<String> = rows.iter().map(|(l, _)| l.clone()).collect();
        let mut chart = ChartBuilder::on(root)
            .margin(8)
            .caption("Hosts by state, before and after the run", (FONT, 16))
            .x_label_area_size(34)
            .y_label_area_size(170)
            .build_cartesian_2d(0f64..most as f64, (0u32..n).into_segmented())?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .x_desc("hosts")
            .x_labels(most + 1)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .light_line_style(WHITE)
            .y_labels(rows.len())
            .y_label_formatter(&|v| segment_label(v, &labels))
            .label_style((FONT, 12))
            .draw()?;
        for (i, (_, counts)) in rows.iter().enumerate() {
            let i = slot(i, rows.len());
            let mut x = 0f64;
            for (state, count) in counts {
                let to = x + *count as f64;
                let mut bar = Rectangle::new(
                    [
                        (x, SegmentValue::Exact(i)),
                        (to, SegmentValue::Exact(i + 1)),
                    ],
                    fill(*state).filled(),
                );
                bar.set_margin(3, 3, 0, 1);
                chart.draw_series(std::iter::once(bar))?;
                chart.draw_series(std::iter::once(Text::new(
                    format!("{count} {}", state.label()),
                    (x + 0.05, SegmentValue::CenterOf(i)),
                    (FONT, 11).into_font().color(&BLACK),
                )))?;
                x = to;
            }
        }
        Ok(())
    })
}

/// The label of a category row (row 0 is drawn at the top).
fn segment_label(v: &SegmentValue<u32>, labels: &[String]) -> String {
    match v {
        SegmentValue::CenterOf(i) => labels
            .len()
            .checked_sub(*i as usize + 1)
            .and_then(|row| labels.get(row))
            .cloned()
            .unwrap_or_default(),
        _ => String::new(),
    }
}

/// The segment of row `i` of `n`, counted from the top: plotters counts from the bottom.
fn slot(i: usize, n: usize) -> u32 {
    (n - 1 - i) as u32
}

/// One DAG: its members as rows, their maintenance spans as bars on a time axis in minutes
/// since the run started.
pub fn dag_timeline(dag: &str, members: &[&HostView]) -> Result<String, ChartError> {
    let end = members
        .iter()
        .flat_map(|h| h.maintenance.iter().map(|s| s.to))
        .fold(0f64, f64::max)
        / 60.0;
    let end = if end > 0.0 { end * 1.05 } else { 1.0 };
    let labels: Vec<String> = members.iter().map(|h| h.name.clone()).collect();
    let height = 90 + ROW * members.len() as u32;
    svg("DAG timeline", height, |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(8)
            .caption(format!("DAG {dag}: maintenance per member"), (FONT, 16))
            .x_label_area_size(34)
            .y_label_area_size(170)
            .build_cartesian_2d(0f64..end, (0u32..members.len() as u32).into_segmented())?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .x_desc("minutes since the run started")
            .light_line_style(WHITE)
            .y_labels(members.len())
            .y_label_formatter(&|v| segment_label(v, &labels))
            .label_style((FONT, 12))
            .draw()?;
        for (i, h) in members.iter().enumerate() {
            let i = slot(i, members.len());
            for span in &h.maintenance {
                let (from, to) = (span.from / 60.0, span.to / 60.0);
                let mut bar = Rectangle::new(
                    [
                        (from, SegmentValue::Exact(i)),
                        (to.max(from + end / 400.0), SegmentValue::Exact(i + 1)),
                    ],
                    RGBColor(0x6f, 0x9f, 0xd8).filled(),
                );
                bar.set_margin(4, 4, 0, 0);
                chart.draw_series(std::iter::once(bar))?;
                chart.draw_series(std::iter::once(Text::new(
                    format!("{:.1}–{:.1} min", from, to),
                    (to, SegmentValue::CenterOf(i)),
                    (FONT, 11).into_font().color(&BLACK),
                )))?;
            }
        }
        Ok(())
    })
}

/// Each host's time in the run (a dark bar) against what a plan books for the changes it got
/// (a light bar behind it), in minutes.
pub fn durations(hosts: &[HostView]) -> Result<String, ChartError> {
    let most = hosts
        .iter()
        .map(|h| (h.duration_ms as f64 / 60_000.0).max(h.estimate_s as f64 / 60.0))
        .fold(0f64, f64::max);
    let most = if most > 0.0 { most * 1.25 } else { 1.0 };
    let labels: Vec<String> = hosts.iter().map(|h| h.name.clone()).collect();
    let height = 110 + ROW * hosts.len() as u32;
    svg("durations", height, |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(8)
            .caption(
                "Time per host (dark) against the plan's booking for its changes (light)",
                (FONT, 16),
            )
            .x_label_area_size(34)
            .y_label_area_size(170)
            .build_cartesian_2d(0f64..most, (0u32..hosts.len() as u32).into_segmented())?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .x_desc("minutes")
            .light_line_style(WHITE)
            .y_labels(hosts.len())
            .y_label_formatter(&|v| segment_label(v, &labels))
            .label_style((FONT, 12))
            .draw()?;
        for (i, h) in hosts.iter().enumerate() {
            let i = slot(i, hosts.len());
            let row = |x: f64, j: u32| (x, SegmentValue::Exact(i + j));
            let booked = h.estimate_s as f64 / 60.0;
            let took = h.duration_ms as f64 / 60_000.0;
            let mut back = Rectangle::new(
                [row(0.0, 0), row(booked, 1)],
                RGBColor(0xd5, 0xe3, 0xf3).filled(),
            );
            back.set_margin(2, 2, 0, 0);
            let mut front = Rectangle::new(
                [row(0.0, 0), row(took, 1)],
                RGBColor(0x2f, 0x5f, 0x9f).filled(),
            );
            front.set_margin(8, 8, 0, 0);
            chart.draw_series([back, front])?;
            chart.draw_series(std::iter::once(Text::new(
                format!("{took:.1} of {booked:.0} min"),
                (took.max(booked), SegmentValue::CenterOf(i)),
                (FONT, 11).into_font().color(&BLACK),
            )))?;
        }
        Ok(())
    })
}
