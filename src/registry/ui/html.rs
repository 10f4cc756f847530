//! HTML for the web pages: escaping, the page frame, and small pieces.
//! Every value that came from a pusher or the ledger goes through [`esc`];
//! pages are complete without JavaScript (only the in-browser proof check
//! needs it).

use std::fmt::Write as _;

/// Escapes text for HTML element content and quoted attribute values.
pub fn esc(text: &str) -> String {
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

/// Percent-encodes a query value (RFC 3986 unreserved characters kept).
pub fn q(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The sections, in the navigation's order: path and label.
const NAV: [(&str, &str); 5] = [
    ("/ui/", "Overview"),
    ("/ui/denials", "Denials"),
    ("/ui/repositories", "Repositories"),
    ("/ui/policies", "Policies"),
    ("/ui/ledger", "Ledger"),
];

/// Colours chosen for contrast (WCAG AA, 4.5:1 or more, on white).
const STYLE: &str = "
body{font:16px/1.5 system-ui,sans-serif;margin:0;color:#1a1a1a;background:#fff}
header{background:#14365d;color:#fff;padding:.5rem 1rem}
header a{color:#fff;margin-right:1rem}
header a[aria-current=page]{font-weight:bold;text-decoration:underline}
main{padding:1rem;max-width:72rem}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;border-bottom:1px solid #ccc;padding:.3rem .5rem;vertical-align:top}
code,pre,textarea{font:14px/1.4 ui-monospace,monospace}
pre{background:#f3f3f3;padding:.5rem;overflow-x:auto}
.deny{color:#a40000;font-weight:bold}
.admit{color:#1d6b1d;font-weight:bold}
.pending{color:#5c4a00;font-weight:bold}
a{color:#0b4f9c}
textarea{width:100%;height:12rem}
#proof-result{font-weight:bold;padding:.5rem;border:2px solid #777}
";

/// A whole page: `title`, the section `current` (a [`NAV`] path), `body`.
pub fn page(title: &str, current: &str, body: &str) -> String {
    let mut nav = String::new();
    for (path, label) in NAV {
        let here = if path == current { " aria-current=\"page\"" } else { "" };
        let _ = write!(nav, "<a href=\"{path}\"{here}>{label}</a>");
    }
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · vouch</title><style>{STYLE}</style></head>\
         <body><header><nav aria-label=\"Sections\"><strong>vouch</strong> · {nav}</nav></header>\
         <main id=\"main\"><h1>{}</h1>{body}</main></body></html>\n",
        esc(title),
        esc(title)
    )
}

/// A verdict as a word with its class (never colour alone).
pub fn verdict(admit: Option<bool>) -> &'static str {
    match admit {
        Some(true) => "<span class=\"admit\">admitted</span>",
        Some(false) => "<span class=\"deny\">denied</span>",
        None => "<span class=\"pending\">no decision</span>",
    }
}

/// A link to an image's page.
pub fn image_link(repo: &str, digest: &str) -> String {
    format!(
        "<a href=\"/ui/image?repo={}&amp;digest={}\"><code>{}@{}</code></a>",
        q(repo),
        q(digest),
        esc(repo),
        esc(short(digest))
    )
}

/// A digest shortened for tables (algorithm and 16 hex digits).
pub fn short(digest: &str) -> &str {
    match digest.find(':') {
        Some(i) => &digest[..digest.len().min(i + 17)],
        None => digest,
    }
}

/// A bulleted list of escaped items, or "none".
pub fn list(items: &[String]) -> String {
    if items.is_empty() {
        return "none".to_owned();
    }
    let li: String = items.iter().map(|i| format!("<li>{}</li>", esc(i))).collect();
    format!("<ul>{li}</ul>")
}

/// An SVG chart of admissions and denials per day, and the ledger's size,
/// with a text alternative (the same numbers as a table follow it).
pub fn growth_chart(days: &[(u64, super::index::Day)]) -> String {
    if days.is_empty() {
        return "<p>No decisions yet.</p>".to_owned();
    }
    let (w, h) = (720.0_f64, 200.0_f64);
    let max_count = days.iter().map(|(_, d)| d.admits + d.denies).max().unwrap_or(1).max(1) as f64;
    let max_size = days.iter().map(|(_, d)| d.size).max().unwrap_or(1).max(1) as f64;
    let bar = w / days.len() as f64;
    let mut svg = String::new();
    let mut line = String::new();
    for (i, (_, d)) in days.iter().enumerate() {
        let x = i as f64 * bar;
        let ha = d.admits as f64 / max_count * (h - 20.0);
        let hd = d.denies as f64 / max_count * (h - 20.0);
        let _ = write!(
            svg,
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{ha:.1}\" fill=\"#1d6b1d\"/>\
             <rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{hd:.1}\" fill=\"#a40000\"/>",
            h - ha,
            (bar * 0.8).max(1.0),
            h - ha - hd,
            (bar * 0.8).max(1.0)
        );
        let y = h - d.size as f64 / max_size * (h - 20.0);
        let _ = write!(line, "{:.1},{y:.1} ", x + bar * 0.4);
    }
    format!(
        "<figure><svg role=\"img\" aria-labelledby=\"chart-title\" viewBox=\"0 0 {w} {h}\" width=\"100%\" height=\"{h}\">\
         <title id=\"chart-title\">Admissions (green) and denials (red) per day; the line is the ledger's size</title>\
         {svg}<polyline points=\"{line}\" fill=\"none\" stroke=\"#14365d\" stroke-width=\"2\"/></svg>\
         <figcaption>Admissions (green) and denials (red) per day, over {} day(s); the line is the ledger's size \
         (largest: {} entries).</figcaption></figure>",
        days.len(),
        max_size as u64
    )
}

/// Lines of `old` and `new` as a unified-style diff (a longest common
/// subsequence of lines; policies are short).
pub fn diff(old: &str, new: &str) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) = (old.lines().collect(), new.lines().collect());
    if a.len().saturating_mul(b.len()) > 1_000_000 {
        return "(too large to compare here)".to_owned();
    }
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            let _ = writeln!(out, "  {}", esc(a[i]));
            (i, j) = (i + 1, j + 1);
        } else if j < b.len() && (i == a.len() || lcs[i][j + 1] >= lcs[i + 1][j]) {
            let _ = writeln!(out, "<ins>+ {}</ins>", esc(b[j]));
            j += 1;
        } else {
            let _ = writeln!(out, "<del>- {}</del>", esc(a[i]));
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pushed_text_is_escaped_everywhere() {
        let evil = "<script>alert(1)</script>\"'&";
        assert_eq!(esc(evil), "&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;&amp;");
        assert!(!list(&[evil.to_owned()]).contains("<script>"));
        assert!(!image_link(evil, evil).contains("<script>"));
        assert_eq!(q("a/b c&d"), "a%2Fb%20c%26d");
    }

    #[test]
    fn diffs_mark_added_and_removed_lines() {
        let d = diff("a\nb\nc\n", "a\nc\nd\n");
        assert_eq!(d, "  a\n<del>- b</del>\n  c\n<ins>+ d</ins>\n");
    }
}
