//! HTML building for the dashboard: one escaping function that every value from a function,
//! a manifest or an audit record goes through, and the page frame.
//!
//! Pages are assembled with `format!` over [`esc`]aped values only; nothing is ever put into a
//! `<script>` or a `style` (the CSP forbids inline script and style anyway), and attribute
//! values are always double-quoted, so escaping `& < > " '` suffices everywhere it is used.

use std::fmt::Write;

/// Escapes text for an HTML element body or a double-quoted attribute value.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
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

/// A time in milliseconds since the epoch as `YYYY-MM-DD HH:MM:SS` UTC.
pub fn time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The signed-in frame around a page: navigation, who is signed in, logout.
pub struct Frame<'a> {
    pub title: &'a str,
    /// `token:<id> (role)` of the session.
    pub who: &'a str,
    pub csrf: &'a str,
}

impl Frame<'_> {
    pub fn wrap(&self, body: &str) -> String {
        let mut out = head(self.title);
        let _ = write!(
            out,
            "<header><strong>Moat</strong>\
             <nav><a href=\"/ui/\">Overview</a> <a href=\"/ui/audit\">Audit log</a> \
             <a href=\"/ui/alerts\">Alerts</a></nav>\
             <span class=\"who\">{who}</span>\
             <form method=\"post\" action=\"/ui/logout\" class=\"inline\">{csrf}\
             <button type=\"submit\">Log out</button></form></header>\n<main>\n{body}\n</main>\n\
             <script src=\"/ui/app.js\"></script>\n</body></html>\n",
            who = esc(self.who),
            csrf = csrf_field(self.csrf),
        );
        out
    }
}

/// The document head, shared by signed-in pages and the login page.
pub fn head(title: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · Moat</title><link rel=\"stylesheet\" href=\"/ui/style.css\"></head><body>\n",
        esc(title)
    )
}

/// The hidden CSRF field every state-changing form carries.
pub fn csrf_field(token: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        esc(token)
    )
}

/// A table from escaped-on-the-way-in cells: `rows` are already HTML.
pub fn table(class: &str, headers: &[&str], rows: &[String], empty: &str) -> String {
    let mut out = format!("<table class=\"{}\"><thead><tr>", esc(class));
    for h in headers {
        let _ = write!(out, "<th>{}</th>", esc(h));
    }
    out.push_str("</tr></thead><tbody>");
    if rows.is_empty() {
        let _ = write!(
            out,
            "<tr class=\"empty\"><td colspan=\"{}\">{}</td></tr>",
            headers.len(),
            esc(empty)
        );
    }
    for r in rows {
        out.push_str(r);
    }
    out.push_str("</tbody></table>");
    out
}

/// One row of escaped text cells.
pub fn row(class: &str, cells: &[&str]) -> String {
    let mut out = format!("<tr class=\"{}\">", esc(class));
    for c in cells {
        let _ = write!(out, "<td>{}</td>", esc(c));
    }
    out.push_str("</tr>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_is_escaped() {
        assert_eq!(
            esc("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
        let r = row("c\"", &["<img src=x onerror=alert(1)>"]);
        assert!(!r.contains("<img"), "{r}");
        assert!(r.starts_with("<tr class=\"c&quot;\">"));
    }

    #[test]
    fn times_are_utc() {
        assert_eq!(time(0), "1970-01-01 00:00:00");
        assert_eq!(time(1_700_000_000_000), "2023-11-14 22:13:20");
        assert_eq!(time(951_782_400_000), "2000-02-29 00:00:00");
    }
}
