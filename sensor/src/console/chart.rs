//! The console's charts: small inline SVG drawn on the server with plotters' SVG backend, so
//! the pages need no JavaScript and no build toolchain.
//!
//! Two shapes: an alert's evidence on one axis (the baseline band, its mean, the threshold and
//! the observed value), and a host's outbound bytes per hour over the history the engine keeps.
//! A chart that cannot be drawn (plotters refuses an empty range, say) is left out of the page
//! with a line saying so; the numbers are always in the table beside it.

use plotters::prelude::*;

/// Width and height of the evidence chart, px.
const EVIDENCE_SIZE: (u32, u32) = (640, 130);
/// Width and height of the history chart, px.
const HISTORY_SIZE: (u32, u32) = (720, 220);
const BAND: RGBColor = RGBColor(170, 205, 235);
const OBSERVED: RGBColor = RGBColor(40, 80, 160);
const THRESHOLD: RGBColor = RGBColor(200, 30, 30);
const SUSPECT: RGBColor = RGBColor(220, 120, 20);

type DrawResult = Result<(), Box<dyn std::error::Error>>;

/// The observed value against the band and the threshold, on one axis.
#[must_use]
pub fn evidence(observed: f64, band: Option<[f64; 2]>, mean: Option<f64>, threshold: f64) -> Option<String> {
    let top = [observed, threshold, band.map_or(0.0, |b| b[1]), mean.unwrap_or(0.0)]
        .into_iter()
        .filter(|v| v.is_finite())
        .fold(0.0_f64, f64::max);
    let x_max = if top > 0.0 { top * 1.15 } else { 1.0 };
    let mut svg = String::new();
    let drawn: DrawResult = (|| {
        let root = SVGBackend::with_string(&mut svg, EVIDENCE_SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(8)
            // The marks use 0..1; the legend sits above them.
            .build_cartesian_2d(0.0..x_max, 0.0..1.6)?;
        chart
            .configure_mesh()
            .light_line_style(WHITE)
            .disable_y_mesh()
            .disable_y_axis()
            .x_labels(6)
            .x_label_formatter(&|v| human(*v))
            .draw()?;
        if let Some([lo, hi]) = band {
            chart
                .draw_series([Rectangle::new([(lo.max(0.0), 0.15), (hi.min(x_max), 0.85)], BAND.filled())])?
                .label("baseline band")
                .legend(|(x, y)| Rectangle::new([(x, y - 4), (x + 12, y + 4)], BAND.filled()));
        }
        if let Some(m) = mean {
            chart
                .draw_series([PathElement::new(vec![(m, 0.1), (m, 0.9)], BLACK.stroke_width(1))])?
                .label("baseline mean")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 12, y)], BLACK));
        }
        chart
            .draw_series([Rectangle::new([(0.0, 0.38), (observed.max(0.0), 0.62)], OBSERVED.filled())])?
            .label("observed")
            .legend(|(x, y)| Rectangle::new([(x, y - 4), (x + 12, y + 4)], OBSERVED.filled()));
        chart
            .draw_series([PathElement::new(
                vec![(threshold, 0.0), (threshold, 1.0)],
                THRESHOLD.stroke_width(2),
            )])?
            .label("threshold")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 12, y)], THRESHOLD.stroke_width(2)));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperMiddle)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .draw()?;
        root.present()?;
        Ok(())
    })();
    drawn.ok().map(|()| svg)
}

/// Outbound bytes per hour: `(hour start ns, bytes, suspect)`, oldest first; suspect hours (a
/// volume rule's candidates) are marked.
#[must_use]
pub fn hourly(hours: &[(u64, u64, bool)]) -> Option<String> {
    let (first, last) = (hours.first()?.0, hours.last()?.0);
    const HOUR: f64 = 3_600e9;
    // Hours before the newest, so the axis reads the same whatever the date.
    let x = |ns: u64| -((last - ns) as f64 / HOUR);
    let x_min = x(first).min(-1.0);
    let top = hours.iter().map(|h| h.1).max().unwrap_or(0) as f64;
    let y_max = if top > 0.0 { top * 1.1 } else { 1.0 };
    let mut svg = String::new();
    let drawn: DrawResult = (|| {
        let root = SVGBackend::with_string(&mut svg, HISTORY_SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(64)
            .build_cartesian_2d(x_min..0.0, 0.0..y_max)?;
        chart
            .configure_mesh()
            .x_desc("hours before the newest")
            .y_desc("bytes out")
            .y_label_formatter(&|v| human(*v))
            .light_line_style(WHITE)
            .draw()?;
        let points: Vec<(f64, f64)> = hours.iter().map(|h| (x(h.0), h.1 as f64)).collect();
        chart.draw_series(
            AreaSeries::new(points.iter().copied(), 0.0, OBSERVED.mix(0.25)).border_style(OBSERVED),
        )?;
        chart.draw_series(points.iter().map(|p| Circle::new(*p, 2, OBSERVED.filled())))?;
        chart.draw_series(
            hours.iter().filter(|h| h.2).map(|h| Circle::new((x(h.0), h.1 as f64), 4, SUSPECT.filled())),
        )?;
        root.present()?;
        Ok(())
    })();
    drawn.ok().map(|()| svg)
}

/// `1234567` → `1.23M`: axis labels stay short.
#[must_use]
pub fn human(v: f64) -> String {
    let a = v.abs();
    let (d, suffix) = if a >= 1e12 {
        (1e12, "T")
    } else if a >= 1e9 {
        (1e9, "G")
    } else if a >= 1e6 {
        (1e6, "M")
    } else if a >= 1e3 {
        (1e3, "k")
    } else {
        (1.0, "")
    };
    let x = v / d;
    if suffix.is_empty() && (x - x.round()).abs() < 1e-9 {
        format!("{x:.0}")
    } else if x.abs() >= 100.0 {
        format!("{x:.0}{suffix}")
    } else {
        format!("{x:.2}{suffix}")
    }
}
