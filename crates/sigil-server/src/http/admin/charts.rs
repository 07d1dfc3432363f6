//! Bar charts drawn on the server as inline SVG: no script, no outside service, and no
//! inline style (the page's CSP allows only the stylesheet). Colours come from classes the
//! stylesheet sets for light and dark mode. Every number in a chart is also in a table
//! beside it, for screen readers and for copying.
//!
//! All text put in the SVG is escaped; series names and labels are fixed strings.

use std::fmt::Write;

/// The drawing's size in SVG units (it scales to the page's width).
const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 190.0;
const LEFT: f64 = 44.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 24.0;

/// One stacked series: its values per bucket.
pub struct Series {
    pub name: &'static str,
    pub values: Vec<i64>,
}

impl Series {
    pub fn total(&self) -> i64 {
        self.values.iter().sum()
    }
}

/// A stacked bar chart over equal time buckets.
pub struct Chart {
    /// The element id's stem (`chart-{id}`), also the test's handle.
    pub id: &'static str,
    pub title: &'static str,
    /// The start of each bucket, seconds since the epoch.
    pub buckets: Vec<i64>,
    pub bucket_seconds: i64,
    pub series: Vec<Series>,
}

/// A row of a chart's table: a bucket with something in it.
pub struct TableRow {
    pub period: String,
    pub values: Vec<i64>,
}

impl Chart {
    /// The stacked total of bucket `i`.
    fn stacked(&self, i: usize) -> i64 {
        self.series
            .iter()
            .map(|s| s.values.get(i).copied().unwrap_or(0))
            .sum()
    }

    /// The buckets with anything in them, oldest first.
    pub fn rows(&self) -> Vec<TableRow> {
        (0..self.buckets.len())
            .filter(|&i| self.stacked(i) > 0)
            .map(|i| TableRow {
                period: period(self.buckets[i], self.bucket_seconds),
                values: self
                    .series
                    .iter()
                    .map(|s| s.values.get(i).copied().unwrap_or(0))
                    .collect(),
            })
            .collect()
    }

    /// The one-line summary the SVG's `<desc>` and the caption give.
    pub fn summary(&self) -> String {
        let parts: Vec<String> = self
            .series
            .iter()
            .map(|s| format!("{} {}", s.total(), s.name.to_lowercase()))
            .collect();
        parts.join(", ")
    }

    /// The chart as an `<svg>` element.
    pub fn svg(&self) -> String {
        let n = self.buckets.len().max(1);
        let max = (0..self.buckets.len())
            .map(|i| self.stacked(i))
            .max()
            .unwrap_or(0);
        let top = nice_ceiling(max);
        let plot_w = WIDTH - LEFT - RIGHT;
        let plot_h = HEIGHT - TOP - BOTTOM;
        let step = plot_w / n as f64;
        let bar = (step * 0.8).max(1.0);
        let y_of = |value: i64| TOP + plot_h - (value as f64 / top as f64) * plot_h;
        let id = self.id;
        let mut svg = String::new();
        let _ = write!(
            svg,
            r#"<svg class="chart-svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="chart-{id}-title chart-{id}-desc" preserveAspectRatio="xMidYMid meet" xmlns="http://www.w3.org/2000/svg">"#
        );
        let _ = write!(
            svg,
            r#"<title id="chart-{id}-title">{}</title><desc id="chart-{id}-desc">{}</desc>"#,
            escape(self.title),
            escape(&self.summary())
        );
        // Grid lines and their values: 0, half (when a whole number), top.
        let lines = if top % 2 == 0 {
            vec![0, top / 2, top]
        } else {
            vec![0, top]
        };
        for value in lines {
            let y = y_of(value);
            let _ = write!(
                svg,
                r#"<line class="grid" x1="{LEFT}" x2="{x2}" y1="{y:.1}" y2="{y:.1}"/><text class="axis" x="{tx}" y="{ty:.1}" text-anchor="end">{value}</text>"#,
                x2 = WIDTH - RIGHT,
                tx = LEFT - 6.0,
                ty = y + 4.0,
            );
        }
        // The bars, stacked in series order from the bottom.
        for (i, start) in self.buckets.iter().enumerate() {
            let x = LEFT + step * i as f64 + (step - bar) / 2.0;
            let mut base = 0;
            for (k, series) in self.series.iter().enumerate() {
                let value = series.values.get(i).copied().unwrap_or(0);
                if value <= 0 {
                    continue;
                }
                let y_top = y_of(base + value);
                let height = y_of(base) - y_top;
                let _ = write!(
                    svg,
                    r#"<rect class="bar s{k}" x="{x:.2}" y="{y_top:.2}" width="{bar:.2}" height="{height:.2}" data-series="{name}" data-bucket="{start}" data-value="{value}"><title>{period}: {value} {lower}</title></rect>"#,
                    name = escape(series.name),
                    period = escape(&period(*start, self.bucket_seconds)),
                    lower = escape(&series.name.to_lowercase()),
                );
                base += value;
            }
        }
        // Time labels: about six along the bottom, on bucket boundaries.
        let every = (n / 6).max(1);
        for (i, start) in self.buckets.iter().enumerate() {
            if i % every != 0 {
                continue;
            }
            let x = LEFT + step * i as f64;
            let _ = write!(
                svg,
                r#"<text class="axis" x="{x:.1}" y="{y}">{}</text>"#,
                escape(&tick(*start, self.bucket_seconds)),
                y = HEIGHT - 6.0,
            );
        }
        if max == 0 {
            let _ = write!(
                svg,
                r#"<text class="empty-chart" x="{x}" y="{y}" text-anchor="middle">Nothing in this period.</text>"#,
                x = LEFT + plot_w / 2.0,
                y = TOP + plot_h / 2.0,
            );
        }
        svg.push_str("</svg>");
        svg
    }
}

/// The smallest of 1, 2, 5 × 10ⁿ at or above `value` (at least 1), for the axis.
fn nice_ceiling(value: i64) -> i64 {
    let mut magnitude: i64 = 1;
    loop {
        for factor in [1, 2, 5] {
            let candidate = factor * magnitude;
            if candidate >= value {
                return candidate.max(1);
            }
        }
        magnitude = match magnitude.checked_mul(10) {
            Some(next) => next,
            None => return value,
        };
    }
}

/// `2026-12-04 13:45` (UTC) of a time.
fn minute_text(unix: i64) -> String {
    let full = super::format_time(unix);
    full.get(..16).unwrap_or(&full).to_string()
}

/// A bucket as the tables and tooltips name it: its start and end, in UTC.
pub fn period(start: i64, seconds: i64) -> String {
    let end = minute_text(start + seconds);
    let end_time = end.get(11..).unwrap_or(&end);
    format!("{}–{end_time} UTC", minute_text(start))
}

/// An axis label: the time of day, with the date at midnight and for day-long views.
fn tick(start: i64, seconds: i64) -> String {
    let text = minute_text(start);
    let (date, time) = text.split_at(text.len().min(11));
    let date = date.trim().get(5..).unwrap_or("");
    if seconds >= 3600 || time == "00:00" {
        format!("{date} {time}")
    } else {
        time.to_string()
    }
}

/// Text for an SVG text node or attribute.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart() -> Chart {
        Chart {
            id: "test",
            title: "Sign-ins <all>",
            buckets: vec![0, 900, 1800],
            bucket_seconds: 900,
            series: vec![
                Series {
                    name: "Succeeded",
                    values: vec![3, 0, 1],
                },
                Series {
                    name: "Failed",
                    values: vec![2, 0, 0],
                },
            ],
        }
    }

    #[test]
    fn bars_carry_their_values_and_text_is_escaped() {
        let svg = chart().svg();
        assert_eq!(svg.matches("<rect").count(), 3, "no bar for a zero: {svg}");
        assert!(svg.contains(r#"data-series="Succeeded" data-bucket="0" data-value="3""#));
        assert!(svg.contains(r#"data-series="Failed" data-bucket="0" data-value="2""#));
        assert!(svg.contains("Sign-ins &lt;all&gt;"));
        assert!(!svg.contains("style="), "no inline style (CSP)");
        assert!(svg.contains("4 succeeded, 2 failed"));
        // The tallest stack (5) reaches the top of a 5 axis, which starts at 0.
        assert!(svg.contains(">5</text>"));
        assert!(svg.contains(">0</text>"));
        assert!(!svg.contains(">2</text>"), "no half line on an odd axis");
    }

    #[test]
    fn the_table_lists_buckets_with_something_in_them() {
        let rows = chart().rows();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].values, vec![3, 2]);
        assert_eq!(rows[0].period, "1970-01-01 00:00–00:15 UTC");
        assert_eq!(rows[1].values, vec![1, 0]);
    }

    #[test]
    fn axis_tops_are_round() {
        assert_eq!(nice_ceiling(0), 1);
        assert_eq!(nice_ceiling(3), 5);
        assert_eq!(nice_ceiling(11), 20);
        assert_eq!(nice_ceiling(50), 50);
        assert_eq!(nice_ceiling(51), 100);
    }

    #[test]
    fn an_empty_chart_says_so() {
        let mut empty = chart();
        for s in &mut empty.series {
            s.values = vec![0, 0, 0];
        }
        assert!(empty.svg().contains("Nothing in this period."));
        assert!(empty.rows().is_empty());
    }
}
