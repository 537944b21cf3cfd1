//! Latency histograms: the percentile summary every benchmark reports, the
//! HdrHistogram interval log (`.hlog`) that keeps the whole distribution, and the
//! percentile plot a person looks at.
//!
//! Histograms here record **nanoseconds** (`Histogram<u64>`, 3 significant
//! digits, 1 ns to [`MAX_TRACKABLE_NS`]); summaries and plots show
//! **microseconds**. A run records into an [`IntervalRecorder`], which closes an
//! interval histogram every period (1 s by default) so the log shows how latency
//! moved during the run, and keeps the total for the summary and the plot.
//!
//! The log is the format of HdrHistogram's `HistogramLogWriter` (version 1.3:
//! V2-compressed histograms, base64, one line per interval), written with the
//! hdrhistogram crate's serializer and interval-log writer, so that
//! `HistogramLogProcessor` and HistogramLogAnalyzer read it. See
//! <https://github.com/HdrHistogram/HdrHistogram/blob/master/src/main/java/org/HdrHistogram/HistogramLogWriter.java>.

use std::error::Error;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Largest value a latency histogram tracks: 60 s in ns. Larger values are
/// recorded as this value (and show as such in `max`).
pub const MAX_TRACKABLE_NS: u64 = 60_000_000_000;

/// A histogram of nanoseconds with the bounds used throughout `bench/`.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_TRACKABLE_NS, 3).expect("static histogram bounds are valid")
}

/// The percentile summary of a latency histogram, in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    /// Values recorded.
    pub count: u64,
    pub min: f64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    #[serde(rename = "p99.9")]
    pub p99_9: f64,
    #[serde(rename = "p99.99")]
    pub p99_99: f64,
    pub max: f64,
}

impl Percentiles {
    /// Summarises a histogram of nanoseconds in microseconds. An empty histogram
    /// gives all zeroes.
    pub fn from_ns(h: &Histogram<u64>) -> Percentiles {
        Self::with_divisor(h, 1_000.0)
    }

    /// Summarises a histogram, dividing every value by `divisor`.
    pub fn with_divisor(h: &Histogram<u64>, divisor: f64) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        let q = |q: f64| h.value_at_quantile(q) as f64 / divisor;
        Percentiles {
            count: h.len(),
            min: h.min() as f64 / divisor,
            mean: h.mean() / divisor,
            p50: q(0.50),
            p90: q(0.90),
            p99: q(0.99),
            p99_9: q(0.999),
            p99_99: q(0.9999),
            max: h.max() as f64 / divisor,
        }
    }
}

impl std::fmt::Display for Percentiles {
    /// `p50 4.1  p90 5.0  p99 7.2  p99.9 12.0  p99.99 30.1  max 41.0 µs (n=10000)`
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  p99.99 {:.1}  max {:.1} µs (n={})",
            self.p50, self.p90, self.p99, self.p99_9, self.p99_99, self.max, self.count
        )
    }
}

/// One closed interval of a run: what was recorded between `start` and
/// `start + length`, both relative to the log's start time.
#[derive(Clone, Debug)]
pub struct Interval {
    pub start: Duration,
    pub length: Duration,
    pub histogram: Histogram<u64>,
}

/// Records values into interval histograms of `period` each, plus the total.
///
/// [`record`](Self::record) touches one histogram and allocates nothing;
/// [`rotate`](Self::rotate) is meant to be called from the same loop, at most
/// once per period, and is where the interval is copied out.
#[derive(Debug)]
pub struct IntervalRecorder {
    start: Instant,
    start_wall: SystemTime,
    period: Duration,
    interval_start: Instant,
    current: Histogram<u64>,
    total: Histogram<u64>,
    intervals: Vec<Interval>,
}

impl IntervalRecorder {
    pub fn new(start: Instant, period: Duration) -> IntervalRecorder {
        IntervalRecorder {
            start,
            start_wall: SystemTime::now() - start.elapsed(),
            period,
            interval_start: start,
            current: new_histogram(),
            total: new_histogram(),
            intervals: Vec::new(),
        }
    }

    /// Records one value (ns); values beyond [`MAX_TRACKABLE_NS`] saturate.
    #[inline]
    pub fn record(&mut self, value_ns: u64) {
        self.current.saturating_record(value_ns);
    }

    /// Closes the current interval if `period` has passed since it opened.
    #[inline]
    pub fn rotate(&mut self, now: Instant) {
        if now.duration_since(self.interval_start) >= self.period {
            self.close(now);
        }
    }

    fn close(&mut self, now: Instant) {
        let start = self.interval_start.duration_since(self.start);
        let length = now.duration_since(self.interval_start);
        self.interval_start = now;
        if self.current.is_empty() {
            return;
        }
        self.total.add(&self.current).expect("histograms with the same bounds add");
        self.intervals.push(Interval { start, length, histogram: self.current.clone() });
        self.current.reset();
    }

    /// Closes the last interval and returns the total and the intervals.
    pub fn finish(mut self, now: Instant) -> RecordedLog {
        self.close(now);
        RecordedLog { start_wall: self.start_wall, total: self.total, intervals: self.intervals }
    }

    /// The total so far, without the open interval.
    pub fn total(&self) -> &Histogram<u64> {
        &self.total
    }

    /// Values in the open interval.
    pub fn current_len(&self) -> u64 {
        self.current.len()
    }
}

/// A finished recording: the total and the intervals, with the wall-clock time
/// the run started at.
#[derive(Clone, Debug)]
pub struct RecordedLog {
    pub start_wall: SystemTime,
    pub total: Histogram<u64>,
    pub intervals: Vec<Interval>,
}

impl RecordedLog {
    /// Writes the intervals as an HdrHistogram interval log. `tag` (no spaces,
    /// commas or colons) names the series, `comments` go first, one per line.
    pub fn write_hlog(
        &self,
        path: &Path,
        tag: Option<&str>,
        comments: &[String],
    ) -> Result<(), Box<dyn Error + Send + Sync>> {
        write_hlog_series(path, self.start_wall, &[(tag, &self.intervals)], comments)
    }
}

/// The text of an interval log, as `HistogramLogWriter` writes it: comments,
/// the format version, `StartTime`, the column legend, then one line per
/// interval (start and length in seconds since `StartTime`, the interval's
/// max in ms, the compressed histogram).
pub fn hlog_text(
    start_wall: SystemTime,
    intervals: &[Interval],
    tag: Option<&str>,
    comments: &[String],
) -> Result<String, Box<dyn Error + Send + Sync>> {
    hlog_text_series(start_wall, &[(tag, intervals)], comments)
}

/// Like [`hlog_text`] for several tagged series in one log (one tag per
/// series, e.g. `xsknet-echo`, `kernel-busy`), as HistogramLogAnalyzer shows
/// them side by side. Tags may not contain ',', ' ' or ':'.
pub fn hlog_text_series(
    start_wall: SystemTime,
    series: &[(Option<&str>, &[Interval])],
    comments: &[String],
) -> Result<String, Box<dyn Error + Send + Sync>> {
    let start_s = start_wall.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs_f64();
    let mut header = String::new();
    for c in comments {
        for line in c.split('\n') {
            writeln!(header, "#{line}")?;
        }
    }
    writeln!(header, "#[Histogram log format version 1.3]")?;
    writeln!(header, "#[StartTime: {start_s:.3} (seconds since epoch)]")?;
    writeln!(header, "#[BaseTime: {start_s:.3} (seconds since epoch)]")?;
    writeln!(header, "#[Values are nanoseconds; Interval_Max is in milliseconds]")?;
    writeln!(header, "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"")?;
    let mut body = Vec::new();
    let mut serializer = V2DeflateSerializer::new();
    {
        // Java writes Interval_Max in the log's display unit; ms for ns values.
        let mut w = IntervalLogWriterBuilder::new()
            .with_max_value_divisor(1_000_000.0)
            .begin_log_with(&mut body, &mut serializer)?;
        for (tag, intervals) in series {
            let tag = match tag {
                Some(t) => Some(Tag::new(t).ok_or_else(|| format!("hlog tag {t:?} may not contain ',', ' ' or ':'"))?),
                None => None,
            };
            for i in intervals.iter() {
                w.write_histogram(&i.histogram, i.start, i.length, tag)
                    .map_err(|e| format!("serializing an interval histogram: {e}"))?;
            }
        }
    }
    // The builder announces a non-unit divisor in a line of its own, which
    // Java's reader takes for a comment; keep it out of the way of the legend.
    let body = String::from_utf8(body)?;
    let body: String = body.lines().filter(|l| !l.starts_with("#[MaxValueDivisor")).flat_map(|l| [l, "\n"]).collect();
    Ok(header + &body)
}

/// Writes [`hlog_text_series`] to `path`.
pub fn write_hlog_series(
    path: &Path,
    start_wall: SystemTime,
    series: &[(Option<&str>, &[Interval])],
    comments: &[String],
) -> Result<(), Box<dyn Error + Send + Sync>> {
    let text = hlog_text_series(start_wall, series, comments)?;
    let mut f = std::fs::File::create(path).map_err(|e| format!("creating {}: {e}", path.display()))?;
    f.write_all(text.as_bytes()).map_err(|e| format!("writing {}: {e}", path.display()))?;
    Ok(())
}

/// The x position of quantile `q` on a percentile plot: 1/(1-q), so that 90 %
/// is 10, 99 % is 100, 99.9 % is 1000 (capped for q = 1).
pub fn percentile_x(q: f64, x_max: f64) -> f64 {
    if q >= 1.0 {
        x_max
    } else {
        (1.0 / (1.0 - q)).min(x_max)
    }
}

/// The label of a power of ten on the percentile axis: 1 → "0%", 10 → "90%",
/// 100 → "99%", 1000 → "99.9%"; "" between powers of ten.
pub fn percentile_label(x: f64) -> String {
    if x < 1.0 {
        return String::new();
    }
    let k = x.log10();
    if (k - k.round()).abs() > 1e-6 {
        return String::new();
    }
    match k.round() as i32 {
        0 => "0%".into(),
        1 => "90%".into(),
        k => format!("99.{}%", "9".repeat((k - 2) as usize)).replace("99.%", "99%"),
    }
}

/// The points of a percentile plot for a histogram of ns: (1/(1-q), µs), from
/// HdrHistogram's percentile iteration (5 ticks per half distance, as
/// `outputPercentileDistribution`).
pub fn percentile_points(h: &Histogram<u64>, x_max: f64) -> Vec<(f64, f64)> {
    let mut pts = Vec::new();
    if h.is_empty() {
        return pts;
    }
    for v in h.iter_quantiles(5) {
        let x = percentile_x(v.quantile_iterated_to(), x_max);
        pts.push((x, h.highest_equivalent(v.value_iterated_to()) as f64 / 1_000.0));
        if x >= x_max {
            break;
        }
    }
    pts
}

/// Draws "latency by percentile" for one or more histograms of nanoseconds into
/// an SVG file: x is the percentile on HdrHistogram's usual log scale of
/// 1/(1-p) (labels 0 %, 90 %, 99 %, 99.9 %, …), y the latency in µs.
pub fn plot_percentiles(
    path: &Path,
    title: &str,
    series: &[(String, &Histogram<u64>)],
) -> Result<(), Box<dyn Error + Send + Sync>> {
    use plotters::prelude::*;

    // The x range ends at the decade that the largest sample still resolves.
    let n = series.iter().map(|(_, h)| h.len()).max().unwrap_or(0).max(10);
    let decades = ((n as f64).log10().ceil() as i32).clamp(1, 7);
    let x_max = 10f64.powi(decades);
    let y_max = series.iter().map(|(_, h)| h.max()).max().unwrap_or(0) as f64 / 1_000.0;
    let y_max = if y_max > 0.0 { y_max * 1.05 } else { 1.0 };

    let root = SVGBackend::new(path, (960, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 24))
        .margin(16)
        .margin_right(40)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d((1f64..x_max).log_scale(), 0f64..y_max)?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (µs)")
        .x_labels(decades as usize + 1)
        .x_label_formatter(&|x| percentile_label(*x))
        .y_label_formatter(&|y| format!("{y:.1}"))
        .draw()?;
    let colours = [BLUE, RED, GREEN, MAGENTA, CYAN, BLACK, RGBColor(255, 140, 0), RGBColor(128, 0, 128)];
    for (i, (name, h)) in series.iter().enumerate() {
        let colour = colours[i % colours.len()];
        let pts = percentile_points(h, x_max);
        chart
            .draw_series(LineSeries::new(pts, colour.stroke_width(2)))?
            .label(format!(
                "{name} (p50 {:.1}, p99 {:.1} µs)",
                Percentiles::from_ns(h).p50,
                Percentiles::from_ns(h).p99
            ))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    root.present().map_err(|e| format!("writing {}: {e}", path.display()))?;
    Ok(())
}

/// Reads an HdrHistogram interval log (as `--hlog` writes it) back into one
/// histogram: the sum of its intervals, all tags together.
pub fn read_hlog(path: &Path) -> Result<Histogram<u64>, Box<dyn Error + Send + Sync>> {
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
    use hdrhistogram::serialization::Deserializer;
    let text = std::fs::read(path)?;
    let mut total = new_histogram();
    for entry in IntervalLogIterator::new(&text) {
        let entry = entry.map_err(|e| format!("{}: {e:?}", path.display()))?;
        if let LogEntry::Interval(ilh) = entry {
            let raw =
                base64_decode(ilh.encoded_histogram()).ok_or_else(|| format!("{}: bad base64", path.display()))?;
            let h: Histogram<u64> = Deserializer::new()
                .deserialize(&mut raw.as_slice())
                .map_err(|e| format!("{}: {e:?}", path.display()))?;
            total.add(&h).map_err(|e| format!("{}: {e:?}", path.display()))?;
        }
    }
    Ok(total)
}

/// Standard base64 (RFC 4648, with or without padding); `None` on a bad character.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(u32::from(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        }))
    };
    let bytes: Vec<u8> = s.bytes().filter(|&c| c != b'=').collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= val(c)? << (18 - 6 * i);
        }
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    Some(out)
}
