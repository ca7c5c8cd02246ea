//! PNG plots for BENCHMARKS.md, drawn with plotters: the scale curve and latency
//! distributions. Text needs a TrueType font; Debian's fonts-dejavu-core (installed
//! with fontconfig on any Debian) is read at run time, and without it the caller
//! only gets an error and the CSV.

use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::combinators::IntoLogRange;
use plotters::prelude::*;

/// Where Debian's fonts-dejavu-core puts its sans-serif face.
const FONT_PATHS: [&str; 2] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
];

/// Criterion's own report plots draw text through the same plotters, so with the
/// `ab_glyph` feature they need this font too: criterion benches take their config
/// from here, and go without plots where no font is found.
pub fn criterion_config() -> criterion::Criterion {
    match font() {
        Ok(()) => criterion::Criterion::default(),
        Err(_) => criterion::Criterion::default().without_plots(),
    }
}

pub fn font() -> Result<(), String> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            let bytes = FONT_PATHS
                .iter()
                .find_map(|p| std::fs::read(p).ok())
                .ok_or_else(|| format!("no font at {}", FONT_PATHS.join(" or ")))?;
            // plotters keeps the font for the life of the process.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
                .map_err(|_| "the font file does not parse".to_string())
        })
        .clone()
}

/// One labelled line of (x, y) points.
pub struct Curve {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

const PALETTE: [RGBColor; 10] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0x17, 0xbe, 0xcf),
    RGBColor(0x7f, 0x7f, 0x7f),
    RGBColor(0xbc, 0xbd, 0x22),
    RGBColor(0x00, 0x00, 0x00),
];

fn bounds(curves: &[Curve]) -> ((f64, f64), (f64, f64)) {
    let pts = || curves.iter().flat_map(|c| c.points.iter());
    let fold = |f: fn(&(f64, f64)) -> f64| {
        pts()
            .map(f)
            .filter(|v| *v > 0.0)
            .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)))
    };
    (fold(|p| p.0), fold(|p| p.1))
}

type DrawResult = Result<(), String>;

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Log-log lines on one panel.
fn log_panel(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    curves: &[Curve],
    legend: SeriesLabelPosition,
) -> DrawResult {
    let ((x0, x1), (y0, y1)) = bounds(curves);
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(
            (x0 * 0.7..x1 * 1.4).log_scale(),
            (y0 * 0.5..y1 * 2.0).log_scale(),
        )
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_label_formatter(&|x| si(*x))
        .y_label_formatter(&|y| format!("{y}"))
        .draw()
        .map_err(err)?;
    for (i, c) in curves.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        chart
            .draw_series(LineSeries::new(
                c.points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(err)?
            .label(c.label.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], color.stroke_width(2)));
        chart
            .draw_series(c.points.iter().map(|&p| Circle::new(p, 4, color.filled())))
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(legend)
        .draw()
        .map_err(err)?;
    Ok(())
}

/// Lines over time on linear axes, one panel per group of curves sharing a unit
/// (the soak: RSS and the store over hours of daemon time).
pub fn over_time(path: &Path, title: &str, panels: &[(&str, Vec<Curve>)]) -> DrawResult {
    font()?;
    let root = BitMapBackend::new(path, (1000, 360 * panels.len() as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let areas = root.split_evenly((panels.len(), 1));
    for (area, (y_desc, curves)) in areas.iter().zip(panels) {
        let pts = || curves.iter().flat_map(|c| c.points.iter());
        let x1 = pts().map(|p| p.0).fold(0.0, f64::max);
        let y1 = pts().map(|p| p.1).fold(0.0, f64::max);
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..x1.max(1e-9), 0.0..(y1 * 1.15).max(1e-9))
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("hours of daemon time")
            .y_desc(*y_desc)
            .draw()
            .map_err(err)?;
        for (i, c) in curves.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            chart
                .draw_series(LineSeries::new(
                    c.points.iter().copied(),
                    color.stroke_width(2),
                ))
                .map_err(err)?
                .label(c.label.as_str())
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 18, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::LowerRight)
            .draw()
            .map_err(err)?;
    }
    root.present().map_err(err)?;
    Ok(())
}

/// 1000 → "1k", 1000000 → "1M".
fn si(x: f64) -> String {
    if x >= 1e6 {
        format!("{}M", x / 1e6)
    } else if x >= 1e3 {
        format!("{}k", x / 1e3)
    } else {
        format!("{x}")
    }
}

/// The scale curve: evaluation time against the series held, one line per rule
/// count; the cost per series read; and one rule's time against the series it reads.
pub fn scale_curve(
    path: &Path,
    eval_ms: &[Curve],
    ns_per_read: &[Curve],
    one_rule_ms: &[Curve],
) -> DrawResult {
    font()?;
    let root = BitMapBackend::new(path, (1800, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let panels = root.split_evenly((1, 3));
    log_panel(
        &panels[0],
        "Evaluation per tick, each rule reads 1k series",
        "series held",
        "ms",
        eval_ms,
        SeriesLabelPosition::MiddleRight,
    )?;
    log_panel(
        &panels[1],
        "Cost per series a rule reads",
        "series held",
        "ns per series read",
        ns_per_read,
        SeriesLabelPosition::MiddleRight,
    )?;
    log_panel(
        &panels[2],
        "One rule reading every series",
        "series read",
        "ms",
        one_rule_ms,
        SeriesLabelPosition::LowerRight,
    )?;
    root.present().map_err(err)?;
    Ok(())
}

/// Latency distributions as empirical CDFs on a log time axis, one per system.
pub fn latency_cdf(path: &Path, title: &str, samples_ms: &[(String, Vec<f64>)]) -> DrawResult {
    font()?;
    let curves: Vec<Curve> = samples_ms
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(label, v)| {
            let mut v = v.clone();
            v.sort_by(f64::total_cmp);
            let n = v.len() as f64;
            let mut points = Vec::with_capacity(v.len() + 1);
            for (i, x) in v.iter().enumerate() {
                if i == 0 {
                    points.push((*x, 0.0));
                }
                points.push((*x, (i + 1) as f64 / n * 100.0));
            }
            Curve {
                label: format!("{label} (n={})", v.len()),
                points,
            }
        })
        .collect();
    let ((x0, x1), _) = bounds(&curves);
    let root = BitMapBackend::new(path, (1100, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(14)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d((x0 * 0.7..x1 * 1.4).log_scale(), 0.0..100.0)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("latency, ms (log scale)")
        .y_desc("% of crossings delivered")
        .x_label_formatter(&|x| format!("{x}"))
        .draw()
        .map_err(err)?;
    for (i, c) in curves.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        chart
            .draw_series(LineSeries::new(
                c.points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(err)?
            .label(c.label.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], color.stroke_width(2)));
        if c.points.len() < 30 {
            chart
                .draw_series(
                    c.points
                        .iter()
                        .skip(1)
                        .map(|&p| Circle::new(p, 4, color.filled())),
                )
                .map_err(err)?;
        }
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}
