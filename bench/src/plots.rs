//! SVG plots with plotters: grouped bars and log-scale lines over named categories.

use plotters::prelude::*;
use std::path::Path;
use wasmtime::Result;

/// One data series: a name and one value per category.
#[derive(Debug, Clone)]
pub struct Series {
    /// The legend's name.
    pub name: String,
    /// One value per category.
    pub values: Vec<f64>,
}

impl Series {
    /// A series.
    pub fn new(name: &str, values: Vec<f64>) -> Self {
        Series {
            name: name.to_string(),
            values,
        }
    }
}

const COLORS: [RGBColor; 5] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(120, 120, 120),
    RGBColor(148, 103, 189),
];

fn err(e: impl std::fmt::Display) -> wasmtime::Error {
    wasmtime::format_err!("plotting: {e}")
}

/// The label of category `x` when `x` is (close to) a category's index.
fn category(cats: &[String], x: f64) -> String {
    let i = x.round();
    if (x - i).abs() < 0.01 && i >= 0.0 && (i as usize) < cats.len() {
        cats[i as usize].clone()
    } else {
        String::new()
    }
}

/// Grouped bars: one group per category, one bar per series; `log` for a log y axis.
pub fn bars(
    path: &Path,
    title: &str,
    y_label: &str,
    cats: &[String],
    series: &[Series],
    log: bool,
) -> Result<()> {
    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .fold(0.0f64, f64::max)
        .max(1e-9);
    let min = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .filter(|v| *v > 0.0)
        .fold(f64::INFINITY, f64::min);
    let n = cats.len() as f64;
    let mut builder = ChartBuilder::on(&root);
    builder
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(36)
        .y_label_area_size(70);
    let width = 0.8 / series.len().max(1) as f64;
    let style = |i: usize| COLORS[i % COLORS.len()].filled();
    macro_rules! draw {
        ($chart:expr, $bottom:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_labels(cats.len() * 2 + 1)
                .x_label_formatter(&|x| category(cats, *x))
                .y_desc(y_label)
                .draw()
                .map_err(err)?;
            for (si, s) in series.iter().enumerate() {
                let bars = s.values.iter().enumerate().map(|(ci, &v)| {
                    let x0 = ci as f64 - 0.4 + si as f64 * width;
                    Rectangle::new([(x0, $bottom), (x0 + width * 0.9, v)], style(si))
                });
                chart
                    .draw_series(bars)
                    .map_err(err)?
                    .label(s.name.as_str())
                    .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], style(si)));
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.9))
                .border_style(BLACK)
                .position(SeriesLabelPosition::UpperLeft)
                .draw()
                .map_err(err)?;
        }};
    }
    if log {
        let lo = (min / 2.0).max(1e-9);
        draw!(
            builder
                .build_cartesian_2d(-0.5..n - 0.5, (lo..max * 3.0).log_scale())
                .map_err(err)?,
            lo
        );
    } else {
        draw!(
            builder
                .build_cartesian_2d(-0.5..n - 0.5, 0.0..max * 1.25)
                .map_err(err)?,
            0.0
        );
    }
    root.present().map_err(err)?;
    Ok(())
}

/// Lines with points over categories, log y axis.
pub fn lines(
    path: &Path,
    title: &str,
    y_label: &str,
    cats: &[String],
    series: &[Series],
) -> Result<()> {
    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let positive = || {
        series
            .iter()
            .flat_map(|s| s.values.iter().copied())
            .filter(|v| *v > 0.0)
    };
    let max = positive().fold(1e-9, f64::max);
    let min = positive().fold(f64::INFINITY, f64::min).min(max);
    let n = cats.len() as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(36)
        .y_label_area_size(70)
        .build_cartesian_2d(-0.3..n - 0.7, (min / 2.0..max * 2.0).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_labels(cats.len() * 2 + 1)
        .x_label_formatter(&|x| category(cats, *x))
        .y_desc(y_label)
        .draw()
        .map_err(err)?;
    for (si, s) in series.iter().enumerate() {
        let color = COLORS[si % COLORS.len()];
        let points: Vec<(f64, f64)> = s
            .values
            .iter()
            .enumerate()
            .filter(|(_, v)| **v > 0.0)
            .map(|(i, &v)| (i as f64, v))
            .collect();
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
            .map_err(err)?
            .label(s.name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
            });
        chart
            .draw_series(
                points
                    .into_iter()
                    .map(|p| Circle::new(p, 4, color.filled())),
            )
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}
