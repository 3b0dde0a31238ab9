//! Server-rendered SVG charts: inline markup, no scripts or external assets, so the
//! console's strict CSP holds. Each chart is an image with a text title; the numbers it
//! draws are also in a table beside it.

use super::html::esc;

const W: i64 = 600;
const H: i64 = 200;
const PAD: i64 = 30;

/// The largest value, at least 1 (so an empty chart still scales).
fn top(values: &[i64]) -> i64 {
    values.iter().copied().max().unwrap_or(0).max(1)
}

fn y_of(v: i64, max: i64) -> i64 {
    H - PAD - (v.max(0) * (H - 2 * PAD)) / max
}

fn frame(id: &str, title: &str, inner: &str, first: &str, last: &str, max: i64) -> String {
    format!(
        "<svg id=\"{id}\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-labelledby=\"{id}-title\" xmlns=\"http://www.w3.org/2000/svg\">\
         <title id=\"{id}-title\">{}</title>\
         <line x1=\"{PAD}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#555\"/>\
         <text x=\"{PAD}\" y=\"{}\" font-size=\"11\" fill=\"#333\">{}</text>\
         <text x=\"{}\" y=\"{}\" font-size=\"11\" fill=\"#333\" text-anchor=\"end\">{}</text>\
         <text x=\"{PAD}\" y=\"{}\" font-size=\"11\" fill=\"#333\">{max}</text>{inner}</svg>",
        esc(title),
        H - PAD,
        W - PAD,
        H - PAD,
        H - PAD + 16,
        esc(first),
        W - PAD,
        H - PAD + 16,
        esc(last),
        PAD - 8,
    )
}

/// One bar per point, labelled by its title (shown on hover and read by screen readers).
pub fn bars(id: &str, title: &str, points: &[(String, i64)]) -> String {
    let values: Vec<i64> = points.iter().map(|p| p.1).collect();
    let max = top(&values);
    let n = i64::try_from(points.len()).unwrap_or(1).max(1);
    let slot = (W - 2 * PAD) * 1000 / n;
    let mut inner = String::new();
    for (i, (label, v)) in points.iter().enumerate() {
        let i = i64::try_from(i).unwrap_or(0);
        let x = PAD * 1000 + i * slot;
        let y = y_of(*v, max);
        inner.push_str(&format!(
            "<rect class=\"bar\" data-value=\"{v}\" x=\"{}.{:03}\" y=\"{y}\" width=\"{}.{:03}\" height=\"{}\" fill=\"#0b57d0\"><title>{}: {v}</title></rect>",
            x / 1000,
            x % 1000,
            (slot * 8 / 10) / 1000,
            (slot * 8 / 10) % 1000,
            H - PAD - y,
            esc(label)
        ));
    }
    let first = points.first().map_or("", |p| p.0.as_str());
    let last = points.last().map_or("", |p| p.0.as_str());
    frame(id, title, &inner, first, last, max)
}

/// A line through the points.
pub fn line(id: &str, title: &str, points: &[(String, i64)]) -> String {
    let values: Vec<i64> = points.iter().map(|p| p.1).collect();
    let max = top(&values);
    let n = i64::try_from(points.len()).unwrap_or(1).max(2) - 1;
    let mut path = String::new();
    let mut dots = String::new();
    for (i, (label, v)) in points.iter().enumerate() {
        let i = i64::try_from(i).unwrap_or(0);
        let x = PAD + i * (W - 2 * PAD) / n;
        let y = y_of(*v, max);
        path.push_str(&format!("{x},{y} "));
        dots.push_str(&format!(
            "<circle class=\"point\" data-value=\"{v}\" cx=\"{x}\" cy=\"{y}\" r=\"2.5\" fill=\"#0b57d0\"><title>{}: {v}</title></circle>",
            esc(label)
        ));
    }
    let inner = format!(
        "<polyline points=\"{}\" fill=\"none\" stroke=\"#0b57d0\" stroke-width=\"2\"/>{dots}",
        path.trim_end()
    );
    let first = points.first().map_or("", |p| p.0.as_str());
    let last = points.last().map_or("", |p| p.0.as_str());
    frame(id, title, &inner, first, last, max)
}

/// Horizontal bars, each with its label and value written beside it.
pub fn ranking(id: &str, title: &str, points: &[(String, i64)]) -> String {
    let values: Vec<i64> = points.iter().map(|p| p.1).collect();
    let max = top(&values);
    let row = 24;
    let height = (i64::try_from(points.len()).unwrap_or(0) * row + 10).max(34);
    let mut inner = String::new();
    for (i, (label, v)) in points.iter().enumerate() {
        let y = i64::try_from(i).unwrap_or(0) * row + 6;
        let width = (v.max(&0) * 300) / max;
        inner.push_str(&format!(
            "<text x=\"0\" y=\"{}\" font-size=\"12\" fill=\"#1a1a1a\">{}</text>\
             <rect class=\"bar\" data-value=\"{v}\" x=\"170\" y=\"{y}\" width=\"{width}\" height=\"16\" fill=\"#0b57d0\"/>\
             <text x=\"{}\" y=\"{}\" font-size=\"12\" fill=\"#1a1a1a\">{v}</text>",
            y + 13,
            esc(label),
            176 + width,
            y + 13
        ));
    }
    format!(
        "<svg id=\"{id}\" viewBox=\"0 0 {W} {height}\" role=\"img\" aria-labelledby=\"{id}-title\" xmlns=\"http://www.w3.org/2000/svg\">\
         <title id=\"{id}-title\">{}</title>{inner}</svg>",
        esc(title)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pts(values: &[i64]) -> Vec<(String, i64)> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("d{i}"), *v))
            .collect()
    }

    #[test]
    fn bars_scale_to_the_largest_value_and_carry_their_numbers() {
        let svg = bars("spend", "Spend <daily>", &pts(&[0, 50, 100]));
        assert_eq!(svg.matches("class=\"bar\"").count(), 3);
        assert!(svg.contains("data-value=\"100\" x=\"") && svg.contains("height=\"140\""));
        assert!(svg.contains("height=\"70\"") && svg.contains("height=\"0\""));
        assert!(svg.contains("Spend &lt;daily&gt;"), "titles are escaped");
    }

    #[test]
    fn lines_and_rankings_draw_every_point() {
        let svg = line("balance", "Balance", &pts(&[5, 5, 0, 10]));
        assert_eq!(svg.matches("class=\"point\"").count(), 4);
        assert!(
            svg.contains("points=\"30,100 210,100 390,170 570,30\""),
            "{svg}"
        );
        let svg = ranking("actions", "By action", &pts(&[10, 5]));
        assert!(svg.contains("width=\"300\"") && svg.contains("width=\"150\""));
        // Empty data still renders.
        assert!(bars("e", "Empty", &[]).contains("<svg"));
    }
}
