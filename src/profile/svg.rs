//! SVG plots of the event log: memory over time, and live bytes per size class over time.
//!
//! Drawn with plotters' SVG backend only. Without a font feature plotters measures text with
//! fixed metrics and writes `<text>` elements, so no system font or font library is needed;
//! the viewer renders the text.

use super::event::{AccountSample, Event};
use super::timeline::{ClassHeatmap, timeline_of};
use crate::error::{Error, Result};
use crate::units::human_bytes;
use plotters::prelude::*;

const MIB: f64 = 1024.0 * 1024.0;

/// Picks one series out of an account sample.
type Series = fn(&AccountSample) -> u64;

fn plot_error(e: impl std::fmt::Display) -> Error {
    Error::Io(std::io::Error::other(format!("plotting failed: {e}")))
}

/// Live, cached and reserved bytes over time as an SVG document (step lines, MiB against ms).
pub fn timeline_svg(events: &[Event], size: (u32, u32)) -> Result<String> {
    let points = timeline_of(events);
    let t_max = points
        .last()
        .map_or(1.0, |p| p.time.as_secs_f64() * 1e3)
        .max(1e-3);
    let y_max = points
        .iter()
        .map(|p| p.account.reserved())
        .max()
        .map_or(1.0, |b| b as f64 / MIB)
        .max(1e-3)
        * 1.05;
    let series = |get: Series| {
        let mut line = Vec::with_capacity(points.len() * 2 + 1);
        let mut prev = 0.0;
        line.push((0.0, 0.0));
        for p in &points {
            let t = p.time.as_secs_f64() * 1e3;
            let v = get(&p.account) as f64 / MIB;
            line.push((t, prev));
            line.push((t, v));
            prev = v;
        }
        line
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("wgmem memory over time", ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..t_max, 0.0..y_max)
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc("time (ms)")
            .y_desc("MiB")
            .draw()
            .map_err(plot_error)?;
        let lines: [(&str, RGBColor, Series); 3] = [
            ("reserved", RGBColor(120, 120, 120), |a| a.reserved()),
            ("cached", RGBColor(31, 119, 180), |a| a.cached),
            ("live", RGBColor(214, 39, 40), |a| a.live),
        ];
        for (name, color, get) in lines {
            chart
                .draw_series(LineSeries::new(series(get), color.stroke_width(2)))
                .map_err(plot_error)?
                .label(name)
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(plot_error)?;
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}

/// Maps 0..=1 to a color from pale yellow (little) to dark red (the most).
fn heat(v: f64) -> RGBColor {
    let v = v.clamp(0.0, 1.0);
    let lerp = |a: f64, b: f64| (a + (b - a) * v).round() as u8;
    RGBColor(lerp(255.0, 150.0), lerp(245.0, 0.0), lerp(200.0, 20.0))
}

/// Live bytes per size class (rows) per time bucket (columns) as an SVG heatmap.
pub fn class_heatmap_svg(events: &[Event], buckets: usize, size: (u32, u32)) -> Result<String> {
    let map = ClassHeatmap::from_events(events, buckets);
    let rows = map.classes.len().max(1);
    let ms = |i: usize| (map.start + map.bucket * i as u32).as_secs_f64() * 1e3;
    let (x0, x1) = (ms(0), ms(map.bytes.len()).max(ms(0) + 1e-3));
    let max = map.max().max(1) as f64;
    let classes = map.classes.clone();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!(
                    "live bytes per size class (darkest = {})",
                    human_bytes(map.max())
                ),
                ("sans-serif", 20),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(80)
            .build_cartesian_2d(x0..x1, -0.5..rows as f64 - 0.5)
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc("time (ms)")
            .y_desc("size class")
            .y_labels(rows.min(24))
            // Row c spans c - 0.5 .. c + 0.5; only ticks at a row's centre get its label.
            .y_label_formatter(&|y| match classes.get(y.round().max(0.0) as usize) {
                Some(c) if (y - y.round()).abs() < 1e-6 => human_bytes(*c),
                _ => String::new(),
            })
            .draw()
            .map_err(plot_error)?;
        let cells = map.bytes.iter().enumerate().flat_map(|(b, row)| {
            row.iter()
                .enumerate()
                .filter(|(_, v)| **v > 0)
                .map(move |(c, v)| {
                    Rectangle::new(
                        [(ms(b), c as f64 - 0.5), (ms(b + 1), c as f64 + 0.5)],
                        heat(*v as f64 / max).filled(),
                    )
                })
        });
        chart.draw_series(cells).map_err(plot_error)?;
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}
