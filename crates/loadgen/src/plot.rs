//! plot: a report as a picture — throughput and latency (p50, p99) second by second, and the
//! latency distribution as a percentile curve: three panels in one SVG or PNG file, chosen by
//! the file's extension. Text is measured (and, in a PNG, drawn) with a font compiled into the
//! binary (DejaVu Sans), so no system fonts are needed; an SVG keeps its text as SVG text.
//! Reads the report and writes one file; nothing else.

use crate::report::Report;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;
use std::sync::OnceLock;

/// The file formats a plot can be written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlotFormat {
    Svg,
    Png,
}

/// Why a plot could not be written.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("plot file {path}: name it .svg or .png (the extension chooses the format)")]
    Format { path: String },
    #[error("cannot write the plot {path}: {message}")]
    Draw { path: String, message: String },
}

impl PlotFormat {
    /// The format a file name asks for.
    pub fn from_path(path: &Path) -> Result<PlotFormat, PlotError> {
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("svg") => Ok(PlotFormat::Svg),
            Some("png") => Ok(PlotFormat::Png),
            _ => Err(PlotError::Format { path: path.display().to_string() }),
        }
    }
}

/// Width and height of the plot in pixels.
const SIZE: (u32, u32) = (1000, 1150);
const FONT: &str = "sans-serif";

/// Registers the compiled-in font once; plotters looks fonts up by family name.
fn font_ready() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    *READY.get_or_init(|| plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular()).is_ok())
}

/// Writes the plot of `report` to `path` (SVG or PNG by extension).
pub fn write_plot(report: &Report, path: &Path) -> Result<(), PlotError> {
    let format = PlotFormat::from_path(path)?;
    let fail = |message: String| PlotError::Draw { path: path.display().to_string(), message };
    if !font_ready() {
        return Err(fail("the compiled-in font could not be loaded".into()));
    }
    // The backends create the file only when the drawing is presented; fail early instead.
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.is_dir() {
            return Err(fail(format!("no directory {}", dir.display())));
        }
    }
    match format {
        PlotFormat::Svg => draw(SVGBackend::new(path, SIZE).into_drawing_area(), report),
        PlotFormat::Png => draw(BitMapBackend::new(path, SIZE).into_drawing_area(), report),
    }
    .map_err(fail)
}

fn text<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// Percentile as a label: 0%, 90%, 99%, 99.9% ...
fn percentile_label(x: f64) -> String {
    let p = 100.0 * (1.0 - 1.0 / x.max(1.0));
    let digits = if x < 10.5 { 0 } else { (x.log10().round() as usize).saturating_sub(2) };
    format!("{p:.digits$}%")
}

fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, r: &Report) -> Result<(), String> {
    root.fill(&WHITE).map_err(text)?;
    let name = if r.scenario.is_empty() { "scenario" } else { r.scenario.as_str() };
    let title = format!(
        "{name}: {} {} against {} — {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms",
        r.kind.as_str(),
        r.mode,
        r.target,
        r.throughput_rps,
        ms(r.latency.p50_us),
        ms(r.latency.p99_us)
    );
    let root = root.titled(&title, (FONT, 20)).map_err(text)?;
    let panels = root.split_evenly((3, 1));
    let warmup = r.warmup_secs;
    let points = &r.timeline;
    let t_max = points.iter().map(|s| s.t_secs).fold(1.0, f64::max);
    // Each interval's point sits in its middle.
    let mid = |s: &crate::report::Second| s.t_secs - s.secs / 2.0;

    // Throughput over time.
    let rps_max = points.iter().map(|s| s.throughput_rps).fold(1.0, f64::max) * 1.15;
    let mut chart = ChartBuilder::on(&panels[0])
        .caption("throughput (requests/s, per second; warm-up shaded)", (FONT, 16))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..t_max, 0.0..rps_max)
        .map_err(text)?;
    chart
        .configure_mesh()
        .x_desc("seconds since start")
        .y_desc("req/s")
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(text)?;
    if warmup > 0.0 {
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(0.0, 0.0), (warmup.min(t_max), rps_max)],
                BLACK.mix(0.07).filled(),
            )))
            .map_err(text)?;
    }
    chart
        .draw_series(LineSeries::new(points.iter().map(|s| (mid(s), s.throughput_rps)), BLUE.stroke_width(2)))
        .map_err(text)?;

    // Latency over time.
    let lat_max = points.iter().map(|s| ms(s.p99_us)).fold(0.1, f64::max) * 1.15;
    let mut chart = ChartBuilder::on(&panels[1])
        .caption("latency per second (ms)", (FONT, 16))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..t_max, 0.0..lat_max)
        .map_err(text)?;
    chart.configure_mesh().x_desc("seconds since start").y_desc("ms").draw().map_err(text)?;
    if warmup > 0.0 {
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(0.0, 0.0), (warmup.min(t_max), lat_max)],
                BLACK.mix(0.07).filled(),
            )))
            .map_err(text)?;
    }
    let with_requests = || points.iter().filter(|s| s.requests > 0);
    chart
        .draw_series(LineSeries::new(with_requests().map(|s| (mid(s), ms(s.p50_us))), GREEN.stroke_width(2)))
        .map_err(text)?
        .label("p50")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], GREEN.stroke_width(2)));
    chart
        .draw_series(LineSeries::new(with_requests().map(|s| (mid(s), ms(s.p99_us))), RED.stroke_width(2)))
        .map_err(text)?
        .label("p99")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], RED.stroke_width(2)));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font((FONT, 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .draw()
        .map_err(text)?;

    // Latency distribution: x is 1/(1-q) on a log scale, so 90%, 99%, 99.9% are evenly spaced.
    let dist: Vec<(f64, f64)> = r
        .latency_distribution
        .iter()
        .filter(|p| p.percentile < 99.9995)
        .map(|p| (1.0 / (1.0 - p.percentile / 100.0), ms(p.latency_us)))
        .collect();
    let x_max = dist.iter().map(|(x, _)| *x).fold(10.0, f64::max);
    let y_max = dist.iter().map(|(_, y)| *y).fold(0.1, f64::max) * 1.15;
    let mut chart = ChartBuilder::on(&panels[2])
        .caption(format!("latency distribution, measured window ({} requests)", r.latency.count), (FONT, 16))
        .margin(12)
        .margin_right(40)
        .x_label_area_size(36)
        .y_label_area_size(70)
        .build_cartesian_2d((1.0..x_max).log_scale(), 0.0..y_max)
        .map_err(text)?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("ms")
        .x_label_formatter(&|x| percentile_label(*x))
        .draw()
        .map_err(text)?;
    chart.draw_series(LineSeries::new(dist.iter().copied(), MAGENTA.stroke_width(2))).map_err(text)?;
    chart.draw_series(dist.iter().map(|p| Circle::new(*p, 3, MAGENTA.filled()))).map_err(text)?;
    root.present().map_err(text)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{distribution, new_histogram, Counts, Latency, Second};
    use crate::scenario::TargetKind;

    fn report() -> Report {
        let mut h = new_histogram();
        for v in 1..=5000u64 {
            h.saturating_record(200 + v * v / 100);
        }
        let timeline = (1..=6)
            .map(|i| Second {
                t_secs: f64::from(i),
                secs: 1.0,
                requests: 1000 + u64::from(i as u32) * 10,
                errors: 0,
                throughput_rps: 1000.0 + f64::from(i) * 10.0,
                p50_us: 400 + i as u64,
                p99_us: 2000 + 100 * i as u64,
                warmup: i <= 1,
            })
            .collect();
        Report {
            scenario: "rtb <mixed> & more".into(),
            target: "http://127.0.0.1:1".into(),
            kind: TargetKind::Openrtb,
            mode: "closed".into(),
            connections: 4,
            threads: 1,
            rate: None,
            warmup_secs: 1.0,
            duration_secs: 5.0,
            throughput_rps: 1030.0,
            latency: Latency::from_histogram(&h),
            fill_rate: 0.0,
            bid_rate: 0.7,
            measured: Counts::default(),
            total: Counts::default(),
            latency_distribution: distribution(&h),
            timeline,
        }
    }

    #[test]
    fn the_extension_chooses_the_format() {
        assert_eq!(PlotFormat::from_path(Path::new("a/b.svg")).ok(), Some(PlotFormat::Svg));
        assert_eq!(PlotFormat::from_path(Path::new("b.PNG")).ok(), Some(PlotFormat::Png));
        assert!(PlotFormat::from_path(Path::new("b.pdf")).is_err());
        assert!(PlotFormat::from_path(Path::new("svg")).is_err());
    }

    #[test]
    fn an_svg_plot_is_well_formed_with_its_panels() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("plot.svg");
        write_plot(&report(), &path).expect("plot");
        let svg = std::fs::read_to_string(&path).expect("svg");
        let doc = roxmltree::Document::parse(&svg).expect("well-formed XML");
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        let texts: Vec<&str> = doc.descendants().filter(|n| n.is_text()).filter_map(|n| n.text()).collect();
        let all = texts.join(" ");
        for want in ["throughput", "latency per second", "latency distribution", "p99", "99%", "rtb <mixed> & more"] {
            assert!(all.contains(want), "no `{want}` in the SVG's text");
        }
        assert!(doc.descendants().filter(|n| n.tag_name().name() == "polyline").count() >= 4, "three panels of lines");
    }

    #[test]
    fn a_png_plot_is_drawn_with_the_compiled_in_font() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("plot.png");
        write_plot(&report(), &path).expect("plot");
        let png = std::fs::read(&path).expect("png");
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert!(png.len() > 10_000, "{} bytes", png.len());
    }

    #[test]
    fn an_empty_report_still_plots_and_bad_paths_fail_cleanly() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut r = report();
        r.timeline.clear();
        r.latency_distribution.clear();
        write_plot(&r, &dir.path().join("empty.svg")).expect("empty plot");
        assert!(matches!(write_plot(&r, &dir.path().join("x.jpg")), Err(PlotError::Format { .. })));
        assert!(matches!(write_plot(&r, &dir.path().join("no/such/dir/p.svg")), Err(PlotError::Draw { .. })));
        assert_eq!(percentile_label(1.0), "0%");
        assert_eq!(percentile_label(10.0), "90%");
        assert_eq!(percentile_label(100.0), "99%");
        assert_eq!(percentile_label(1000.0), "99.9%");
        assert_eq!(percentile_label(10000.0), "99.99%");
    }
}
