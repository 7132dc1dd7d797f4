//! The report as one self-contained HTML file: inline CSS (with print rules, so a browser's
//! "Print to PDF" gives a filing copy), inline SVG charts, no script, no external resource.
//! Every string that comes from the database (table names, legal bases, hold reasons, user
//! names, details) goes through [`esc`].

use super::model::*;
use pg_worm_core::{ChainRow, Check, Status};
use std::fmt::Write as _;

/// Escapes text for HTML element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
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

fn opt(s: &Option<String>) -> String {
    s.as_deref().map_or_else(|| "—".to_owned(), esc)
}

fn badge(ok: bool) -> &'static str {
    if ok {
        "<span class=\"badge ok\">verified</span>"
    } else {
        "<span class=\"badge bad\">PROBLEM</span>"
    }
}

fn status_badge(s: Status) -> &'static str {
    match s {
        Status::Ok => "<span class=\"badge ok\">ok</span>",
        Status::Note => "<span class=\"badge note\">note</span>",
        Status::Problem => "<span class=\"badge bad\">PROBLEM</span>",
    }
}

fn yes_no(b: Option<bool>) -> &'static str {
    match b {
        Some(true) => "yes",
        Some(false) => "no",
        None => "—",
    }
}

const CSS: &str = r#"
:root{--ok:#1a7f37;--bad:#cf222e;--note:#9a6700;--mut:#57606a;--line:#d0d7de}
*{box-sizing:border-box}
body{font:14px/1.45 "Liberation Sans",Arial,Helvetica,sans-serif;color:#1f2328;margin:0;background:#fff}
main{max-width:1120px;margin:0 auto;padding:24px}
h1{font-size:26px;margin:0 0 4px}
h2{font-size:20px;border-bottom:2px solid var(--line);padding-bottom:4px;margin:34px 0 10px}
h3{font-size:16px;margin:22px 0 6px}
h4{font-size:14px;margin:14px 0 4px}
p{margin:6px 0}
table{border-collapse:collapse;width:100%;margin:6px 0 12px;font-size:13px}
th,td{border:1px solid var(--line);padding:4px 6px;text-align:left;vertical-align:top}
th{background:#f6f8fa;font-weight:600}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
code,.mono{font-family:"DejaVu Sans Mono","Liberation Mono",monospace;font-size:12px;word-break:break-all}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-weight:700;font-size:11px;color:#fff;white-space:nowrap}
.badge.ok{background:var(--ok)}.badge.bad{background:var(--bad)}.badge.note{background:var(--note)}
.verdict{padding:12px 16px;border-radius:6px;font-size:17px;font-weight:700;margin:14px 0}
.verdict.ok{background:#dafbe1;color:#116329;border:1px solid var(--ok)}
.verdict.bad{background:#ffebe9;color:#a40e26;border:1px solid var(--bad)}
.meta{color:var(--mut)}
.grid{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:8px 0}
.grid dt{color:var(--mut)}.grid dd{margin:0}
ul.findings li{color:#a40e26}
nav ol{columns:2;margin:6px 0}
figure{margin:8px 0 14px}
figcaption{color:var(--mut);font-size:12px}
svg{max-width:100%;height:auto}
svg text{font-family:"Liberation Sans",Arial,sans-serif}
.control{border:1px solid var(--line);border-radius:6px;padding:8px 12px;margin:10px 0}
.control h3{margin:4px 0}
.shows{border-left:4px solid var(--ok);padding-left:8px}
.notshown{border-left:4px solid var(--note);padding-left:8px}
footer{margin-top:36px;color:var(--mut);font-size:12px;border-top:1px solid var(--line);padding-top:8px}
@page{size:A4;margin:14mm}
@media print{
 body{font-size:11px}
 main{max-width:none;padding:0}
 nav{display:none}
 a{color:inherit;text-decoration:none}
 h2,h3{break-after:avoid}
 section.tbl,section#controls{break-before:page}
 tr,figure,.control,.verdict{break-inside:avoid}
 *{-webkit-print-color-adjust:exact;print-color-adjust:exact}
}
"#;

/// A bar chart (stacked when there are several series) as inline SVG. `labels` and every
/// series have the same length.
pub fn bar_chart(title: &str, labels: &[String], series: &[(&str, &str, Vec<f64>)]) -> String {
    let n = labels.len();
    if n == 0 {
        return format!("<p class=\"meta\">{}: no data.</p>", esc(title));
    }
    let (w, h, left, right, top, bottom) = (760.0_f64, 230.0_f64, 56.0, 12.0, 28.0, 44.0);
    let pw = w - left - right;
    let ph = h - top - bottom;
    let totals: Vec<f64> = (0..n)
        .map(|i| {
            series
                .iter()
                .map(|s| s.2.get(i).copied().unwrap_or(0.0))
                .sum()
        })
        .collect();
    let max = nice_max(totals.iter().copied().fold(0.0, f64::max));
    // At most 40 px a bar, so that a few days do not make a wall of colour.
    let bw = (pw / n as f64).min(40.0);
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"{t}\"><title>{t}</title>",
        t = esc(title)
    );
    let _ = write!(svg, "<text x=\"{left}\" y=\"16\" font-size=\"13\" font-weight=\"700\" fill=\"#1f2328\">{}</text>", esc(title));
    // Legend.
    let mut lx = w - right;
    for (name, color, _) in series.iter().rev() {
        let tw = 7.0 * name.chars().count() as f64 + 18.0;
        lx -= tw;
        let _ = write!(
            svg,
            "<rect x=\"{lx:.1}\" y=\"7\" width=\"10\" height=\"10\" fill=\"{color}\"/><text x=\"{:.1}\" y=\"16\" font-size=\"11\" fill=\"#57606a\">{}</text>",
            lx + 13.0,
            esc(name)
        );
    }
    // Axes and grid.
    for k in 0..=4 {
        let v = max * f64::from(k) / 4.0;
        let y = top + ph - ph * f64::from(k) / 4.0;
        let _ = write!(
            svg,
            "<line x1=\"{left}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#d8dee4\" stroke-width=\"1\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"end\" fill=\"#57606a\">{}</text>",
            w - right,
            left - 4.0,
            y + 3.5,
            fmt_num(v)
        );
    }
    // Bars.
    for (i, label) in labels.iter().enumerate() {
        let x = left + bw * i as f64;
        let mut y = top + ph;
        let mut tip = label.clone();
        for (name, color, values) in series {
            let v = values.get(i).copied().unwrap_or(0.0);
            let _ = write!(tip, ", {name}: {}", fmt_num(v));
            if v <= 0.0 || max <= 0.0 {
                continue;
            }
            let bh = ph * v / max;
            y -= bh;
            let _ = write!(
                svg,
                "<rect x=\"{:.2}\" y=\"{y:.2}\" width=\"{:.2}\" height=\"{bh:.2}\" fill=\"{color}\"><title>{}</title></rect>",
                x + bw * 0.1,
                (bw * 0.8).max(0.6),
                esc(&tip)
            );
        }
    }
    // X labels: about ten, evenly spaced.
    let step = n.div_ceil(10).max(1);
    for i in (0..n).step_by(step) {
        let x = left + bw * (i as f64 + 0.5);
        let _ = write!(
            svg,
            "<text x=\"{x:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"middle\" fill=\"#57606a\">{}</text>",
            top + ph + 14.0,
            esc(&labels[i])
        );
    }
    let _ = write!(
        svg,
        "<line x1=\"{left}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#57606a\"/></svg>",
        top + ph,
        w - right,
        top + ph
    );
    svg
}

fn fmt_num(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// The top of the axis: four grid steps of 1, 2 or 5 × 10^k (at least 1 each), so that
/// counts get whole-number ticks.
fn nice_max(v: f64) -> f64 {
    let raw = (v / 4.0).max(1.0);
    let p = 10f64.powf(raw.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * p >= raw {
            return 4.0 * m * p;
        }
    }
    40.0 * p
}

/// Days as they are (up to 92), else summed per month.
fn bucket(days: &[(String, Vec<f64>)]) -> (Vec<String>, Vec<Vec<f64>>, &'static str) {
    if days.len() <= 92 {
        return (
            days.iter().map(|d| d.0.clone()).collect(),
            days.iter().map(|d| d.1.clone()).collect(),
            "day",
        );
    }
    let mut labels: Vec<String> = Vec::new();
    let mut values: Vec<Vec<f64>> = Vec::new();
    for (d, v) in days {
        let m = d.get(..7).unwrap_or(d).to_owned();
        if labels.last() != Some(&m) {
            labels.push(m);
            values.push(vec![0.0; v.len()]);
        }
        if let Some(last) = values.last_mut() {
            for (a, b) in last.iter_mut().zip(v) {
                *a += b;
            }
        }
    }
    (labels, values, "month")
}

fn chart_from(title: &str, days: &[(String, Vec<f64>)], names: &[(&str, &str)]) -> String {
    let (labels, values, unit) = bucket(days);
    let series: Vec<(&str, &str, Vec<f64>)> = names
        .iter()
        .enumerate()
        .map(|(k, (n, c))| (*n, *c, values.iter().map(|v| v[k]).collect()))
        .collect();
    bar_chart(&format!("{title} per {unit}"), &labels, &series)
}

fn checks_list(checks: &[Check]) -> String {
    let mut s = String::from("<table><tr><th>check</th><th>result</th><th>detail</th></tr>");
    for c in checks {
        let _ = write!(
            s,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
            esc(&c.check),
            status_badge(c.status),
            esc(&c.detail)
        );
    }
    s.push_str("</table>");
    s
}

fn chain_rows(rows: &[ChainRow]) -> String {
    let shown: Vec<&ChainRow> = if rows.len() <= 32 {
        rows.iter().collect()
    } else {
        rows.iter().filter(|r| !r.ok).collect()
    };
    let mut s = String::from(
        "<table><tr><th class=\"num\">chain</th><th class=\"num\">rows_checked</th><th>ok</th><th class=\"num\">first_bad_seq</th><th>detail</th></tr>",
    );
    for r in &shown {
        let _ = write!(
            s,
            "<tr><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            r.chain.map_or_else(|| "—".to_owned(), |c| c.to_string()),
            r.rows_checked,
            badge(r.ok),
            r.first_bad_seq.map_or_else(String::new, |v| v.to_string()),
            esc(&r.detail)
        );
    }
    s.push_str("</table>");
    if shown.len() < rows.len() {
        let _ = write!(
            s,
            "<p class=\"meta\">{} more chains verified without a problem (every chain is in the JSON form of this report).</p>",
            rows.len() - shown.len()
        );
    }
    s
}

fn cert_table(certs: &[CertEv]) -> String {
    if certs.is_empty() {
        return "<p class=\"meta\">No purge or retirement: no row has left this table.</p>".into();
    }
    let mut s = String::new();
    for c in certs {
        let _ = write!(
            s,
            "<h4>{} certificate, ledger entry {} {}</h4><dl class=\"grid\"><dt>certificate_id</dt><dd><code>{}</code></dd><dt>at</dt><dd>{}</dd><dt>cut-off</dt><dd>{}</dd><dt>rows removed</dt><dd>{}</dd><dt>retention</dt><dd>{}</dd><dt>legal basis</dt><dd>{}</dd><dt>by</dt><dd>{}</dd></dl>",
            if c.kind == "retire" { "Retirement" } else { "Deletion" },
            c.ledger_seq,
            badge(c.ok),
            esc(&c.certificate_id),
            esc(&c.at),
            esc(&c.cutoff),
            c.rows_removed.map_or_else(|| "—".to_owned(), |v| v.to_string()),
            opt(&c.retention),
            opt(&c.legal_basis),
            esc(&c.by)
        );
        s.push_str(&checks_list(&c.checks));
    }
    s
}

fn holds_table(holds: &[Hold], released: bool) -> String {
    let mut s = String::from(
        "<table><tr><th class=\"num\">hold</th><th>reason</th><th>placed</th><th>by</th>",
    );
    if released {
        s.push_str("<th>released</th><th>by</th><th>why</th>");
    }
    s.push_str("</tr>");
    for h in holds {
        let _ = write!(
            s,
            "<tr><td class=\"num\">#{}</td><td>{}</td><td>{}</td><td>{}</td>",
            h.hold_id,
            esc(&h.reason),
            esc(&h.placed_at),
            esc(&h.placed_by)
        );
        if released {
            let _ = write!(
                s,
                "<td>{}</td><td>{}</td><td>{}</td>",
                opt(&h.released_at),
                opt(&h.released_by),
                opt(&h.release_reason)
            );
        }
        s.push_str("</tr>");
    }
    s.push_str("</table>");
    s
}

fn table_section(i: usize, t: &TableEv) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "<section class=\"tbl\" id=\"t{i}\"><h2>Table {} {}</h2>",
        esc(&t.name),
        badge(t.verification.ok)
    );
    // Policy.
    let p = &t.policy;
    let _ = write!(
        s,
        "<h3>Policy</h3><dl class=\"grid\"><dt>table_uid</dt><dd><code>{}</code></dd><dt>protected</dt><dd>{} by {} ({} rows chained then), encoding version {}</dd>{}<dt>chains</dt><dd>{}</dd><dt>retention</dt><dd>{}{}</dd><dt>legal basis</dt><dd>{}</dd><dt>legal holds in force</dt><dd>{}</dd></dl>",
        esc(&t.table_uid),
        esc(&t.protected_at),
        esc(&t.protected_by),
        t.rows_at_protect,
        t.encoding_version,
        t.partition_of.as_ref().map_or_else(String::new, |p| format!("<dt>partition of</dt><dd>{}</dd>", esc(p))),
        t.chains,
        p.retention.as_deref().map_or_else(|| "none: rows are kept for ever".to_owned(), esc),
        match p.six_years_or_more {
            Some(true) => " (6 years or more)",
            Some(false) => " (less than 6 years)",
            None => "",
        },
        opt(&p.legal_basis),
        if p.holds_in_force.is_empty() { "none".to_owned() } else { format!("{}: no row can be purged", p.holds_in_force.len()) }
    );
    if !p.holds_in_force.is_empty() {
        s.push_str(&holds_table(&p.holds_in_force, false));
    }
    if !p.holds_released.is_empty() {
        s.push_str("<h4>Released holds</h4>");
        s.push_str(&holds_table(&p.holds_released, true));
    }
    // Fresh verification.
    let v = &t.verification;
    let _ = write!(
        s,
        "<h3>Verification now {}</h3><p>{}</p>",
        badge(v.ok),
        esc(&v.summary)
    );
    if !v.chains.is_empty() {
        s.push_str(&chain_rows(&v.chains));
    }
    // History.
    s.push_str("<h3>Verification history</h3>");
    match t.history.stored {
        None => s.push_str("<p class=\"meta\">No stored results: this pg_worm has no <code>worm.verifications</code>. The checkpoints and purges below each verified the table when they ran.</p>"),
        Some(0) => s.push_str("<p class=\"meta\">No stored result for this table yet in <code>worm.verifications</code>.</p>"),
        Some(n) => {
            let _ = write!(
                s,
                "<p>{n} stored results, {} failed; the newest {}:</p><table><tr><th>at</th><th>kind</th><th>ok</th><th class=\"num\">rows</th><th class=\"num\">problems</th><th>detail</th></tr>",
                t.history.failed,
                t.history.recent.len()
            );
            for r in &t.history.recent {
                let _ = write!(
                    s,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
                    esc(&r.at),
                    esc(&r.kind),
                    r.ok.map_or("—", badge),
                    r.rows_checked.map_or_else(String::new, |v| v.to_string()),
                    r.problems.map_or_else(String::new, |v| v.to_string()),
                    opt(&r.detail)
                );
            }
            s.push_str("</table>");
        }
    }
    // Rows per day.
    let days: Vec<(String, Vec<f64>)> = t
        .rows_per_day
        .days
        .iter()
        .map(|d| (d.day.clone(), vec![d.rows as f64]))
        .collect();
    s.push_str("<h3>Rows per day of insertion</h3><figure>");
    match &t.rows_per_day.error {
        Some(e) => {
            let _ = write!(s, "<p class=\"meta\">not available: {}</p>", esc(e));
        }
        None => s.push_str(&chart_from("Rows inserted", &days, &[("rows", "#0969da")])),
    }
    let _ = write!(
        s,
        "<figcaption>From <code>worm_inserted_at</code> (UTC), {}.</figcaption></figure>",
        match t.rows_per_day.sample_percent {
            Some(p) => format!(
                "estimated from a {p:.3}% block sample (TABLESAMPLE SYSTEM, repeatable), scaled"
            ),
            None => esc(&t.rows_per_day.method),
        }
    );
    // Checkpoints.
    s.push_str("<h3>Checkpoints</h3>");
    if t.checkpoints.is_empty() {
        s.push_str("<p class=\"meta\">No checkpoint in the ledger: take one with <code>worm-verify checkpoint</code>, sign it and keep it outside the database.</p>");
    } else {
        s.push_str("<table><tr><th class=\"num\">ledger entry</th><th>at</th><th>by</th><th class=\"num\">rows</th><th>Merkle root</th><th>ledger hash (what is signed and time-stamped)</th><th>verified</th><th>RFC 3161 time-stamps</th></tr>");
        for c in &t.checkpoints {
            let stamps = if c.timestamps.is_empty() {
                "none recorded".to_owned()
            } else {
                c.timestamps
                    .iter()
                    .map(|x| {
                        format!(
                            "{} by {} (ledger entry {}) {}{}",
                            opt(&x.gen_time),
                            opt(&x.tsa),
                            x.ledger_seq,
                            badge(x.ok),
                            if x.signature_checked {
                                ""
                            } else {
                                " <span class=\"badge note\">imprint only</span>"
                            }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("<br>")
            };
            let _ = write!(
                s,
                "<tr><td class=\"num\">{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td><code>{}</code></td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                c.ledger_seq,
                esc(&c.at),
                esc(&c.by),
                c.rows.or(c.merkle_size).map_or_else(|| "—".to_owned(), |v| v.to_string()),
                opt(&c.merkle_root),
                esc(&c.ledger_hash),
                yes_no(c.verification_ok),
                stamps
            );
        }
        s.push_str("</table>");
        for c in &t.checkpoints {
            for x in &c.timestamps {
                let _ = write!(
                    s,
                    "<h4>Time-stamp of the checkpoint of ledger entry {} (ledger entry {})</h4>",
                    c.ledger_seq, x.ledger_seq
                );
                s.push_str(&checks_list(&x.checks));
            }
        }
        s.push_str("<p class=\"meta\">Signatures are on the digest files kept outside the database (<code>worm-verify sign</code>); check one against this table with <code>worm-verify table --against DIGEST.json --require-signature KEY</code>. The ledger hash above is what they sign.</p>");
    }
    // Certificates.
    s.push_str("<h3>Purges and retirements</h3>");
    s.push_str(&cert_table(&t.certificates));
    // Other events.
    if !t.ledger_events.is_empty() {
        s.push_str("<h3>Ledger events</h3><table><tr><th class=\"num\">entry</th><th>event</th><th>at</th><th>by</th><th>what</th></tr>");
        for e in &t.ledger_events {
            let _ = write!(
                s,
                "<tr><td class=\"num\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                e.ledger_seq,
                esc(&e.event),
                esc(&e.at),
                esc(&e.by),
                esc(&e.detail)
            );
        }
        s.push_str("</table>");
    }
    s.push_str("</section>");
    s
}

/// The whole report.
pub fn render(r: &Report) -> String {
    let mut s = String::with_capacity(64 * 1024);
    let date = r.generated_at.get(..10).unwrap_or("");
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><meta name=\"generator\" content=\"{}\"><title>pg_worm compliance report: {} ({})</title><style>{CSS}</style></head><body><main>",
        esc(&r.generated_by),
        esc(&r.server.database),
        esc(date)
    );
    let _ = write!(
        s,
        "<h1>pg_worm compliance report</h1><p class=\"meta\">Database <b>{}</b>, generated {} by {}</p>",
        esc(&r.server.database),
        esc(&r.generated_at),
        esc(&r.generated_by)
    );
    // Verdict, findings, notes.
    if r.ok {
        let rows: u64 = r.tables.iter().map(|t| t.verification.rows_checked).sum();
        let _ = write!(
            s,
            "<div class=\"verdict ok\">OK: every protected table ({}; {rows} rows recomputed), every certificate and the ledger verified.</div>",
            r.tables.len()
        );
    } else {
        let _ = write!(
            s,
            "<div class=\"verdict bad\">PROBLEMS FOUND: {} (listed below; each is also in its section).</div>",
            r.problems
        );
    }
    if !r.findings.is_empty() {
        s.push_str("<h2 id=\"findings\">Findings</h2><ul class=\"findings\">");
        for f in &r.findings {
            let _ = write!(s, "<li>{}</li>", esc(f));
        }
        s.push_str("</ul>");
    }
    if !r.notes.is_empty() {
        s.push_str("<h3>Notes</h3><ul>");
        for f in &r.notes {
            let _ = write!(s, "<li>{}</li>", esc(f));
        }
        s.push_str("</ul>");
    }
    // Contents.
    s.push_str("<nav><h3>Contents</h3><ol><li><a href=\"#server\">Server and enforcement</a></li><li><a href=\"#summary\">Protected tables</a></li><li><a href=\"#outcomes\">Verification outcomes over time</a></li>");
    for (i, t) in r.tables.iter().enumerate() {
        let _ = write!(s, "<li><a href=\"#t{i}\">Table {}</a></li>", esc(&t.name));
    }
    s.push_str("<li><a href=\"#retired\">Retired tables</a></li><li><a href=\"#ledger\">Ledger integrity</a></li><li><a href=\"#keys\">Trusted keys</a></li><li><a href=\"#controls\">Controls and evidence</a></li><li><a href=\"#about\">About this report</a></li></ol></nav>");
    // Server.
    let v = &r.server;
    let _ = write!(
        s,
        "<h2 id=\"server\">Server and enforcement</h2><dl class=\"grid\"><dt>database</dt><dd>{}</dd><dt>PostgreSQL</dt><dd>{}</dd><dt>pg_worm</dt><dd>{}</dd><dt>read as</dt><dd>{}</dd><dt>standby</dt><dd>{}</dd><dt>enforcement</dt><dd>{} {}</dd></dl>",
        esc(&v.database),
        esc(&v.server_version),
        opt(&v.pg_worm_version),
        esc(&v.session_user),
        if v.in_recovery { "yes (read from a standby)" } else { "no" },
        if v.preloaded { "<span class=\"badge ok\">hooks</span>" } else { "<span class=\"badge note\">triggers only</span>" },
        esc(&v.enforcement)
    );
    // Summary.
    s.push_str("<h2 id=\"summary\">Protected tables</h2>");
    if r.tables.is_empty() {
        s.push_str("<p>No table is protected in this database.</p>");
    } else {
        s.push_str("<table><tr><th>table</th><th class=\"num\">rows</th><th class=\"num\">chains</th><th>retention</th><th>legal basis</th><th class=\"num\">holds</th><th class=\"num\">checkpoints</th><th class=\"num\">certificates</th><th>verification now</th></tr>");
        for (i, t) in r.tables.iter().enumerate() {
            let _ = write!(
                s,
                "<tr><td><a href=\"#t{i}\">{}</a></td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
                esc(&t.name),
                t.verification.rows_checked,
                t.chains,
                t.policy.retention.as_deref().map_or_else(|| "for ever".to_owned(), esc),
                opt(&t.policy.legal_basis),
                t.policy.holds_in_force.len(),
                t.checkpoints.len(),
                t.certificates.len(),
                badge(t.verification.ok)
            );
        }
        s.push_str("</table>");
    }
    if !r.partitioned_tables.is_empty() {
        s.push_str("<h3>Partitioned tables</h3><table><tr><th>parent</th><th class=\"num\">chains</th><th>retention</th><th>legal basis</th><th>protected</th><th>partitions (each a table above)</th></tr>");
        for p in &r.partitioned_tables {
            let _ = write!(
                s,
                "<tr><td>{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                p.name.as_deref().map_or_else(|| format!("dropped {}", opt(&p.dropped_at)), esc),
                p.chains,
                opt(&p.retention),
                opt(&p.legal_basis),
                esc(&p.protected_at),
                esc(&p.partitions.join(", "))
            );
        }
        s.push_str("</table>");
    }
    // Outcomes chart.
    let days: Vec<(String, Vec<f64>)> = r
        .verification_history
        .per_day
        .iter()
        .map(|d| (d.day.clone(), vec![d.ok as f64, d.failed as f64]))
        .collect();
    let _ = write!(
        s,
        "<h2 id=\"outcomes\">Verification outcomes over time</h2><figure>{}<figcaption>Verifications that passed and failed, from {}.</figcaption></figure>",
        chart_from(
            "Verifications",
            &days,
            &[("passed", "#1a7f37"), ("failed", "#cf222e")]
        ),
        esc(&r.verification_history.source)
    );
    // Tables.
    for (i, t) in r.tables.iter().enumerate() {
        s.push_str(&table_section(i, t));
    }
    // Retired.
    s.push_str("<h2 id=\"retired\">Retired tables</h2>");
    if r.retired_tables.is_empty() {
        s.push_str("<p class=\"meta\">None: no protected table was dropped.</p>");
    }
    for t in &r.retired_tables {
        let _ = write!(
            s,
            "<h3>{} (table_uid <code>{}</code>), retired {}</h3>",
            esc(&t.name),
            esc(&t.table_uid),
            opt(&t.retired_at)
        );
        s.push_str(&cert_table(&t.certificates));
    }
    // Ledger.
    let l = &r.ledger;
    let _ = write!(
        s,
        "<h2 id=\"ledger\">Ledger integrity {}</h2><p>{} entries recomputed from entry 1 (each entry's SHA-256 over its document and its predecessor's hash): {}.</p><dl class=\"grid\"><dt>first entry</dt><dd>{}</dd><dt>newest entry</dt><dd>{}</dd><dt>newest hash</dt><dd>entry {}: <code>{}</code></dd></dl><table><tr><th>event</th><th class=\"num\">entries</th></tr>",
        badge(l.ok),
        l.entries,
        esc(&l.detail),
        opt(&l.first_at),
        opt(&l.last_at),
        l.head_seq.map_or_else(|| "—".to_owned(), |v| v.to_string()),
        opt(&l.head_hash)
    );
    for (k, n) in &l.events {
        let _ = write!(s, "<tr><td>{}</td><td class=\"num\">{n}</td></tr>", esc(k));
    }
    s.push_str("</table><p class=\"meta\">Like a table's chain, the ledger alone cannot show that its newest entries were removed: note the newest entry and hash above; later, <code>SELECT seq FROM worm.ledger WHERE hash = decode('HASH', 'hex')</code> must still find it at that entry (or keep checkpoint digests outside the database).</p>");
    // Since the previous report.
    if let Some(p) = &r.since_previous {
        let _ = write!(
            s,
            "<h2 id=\"previous\">Since the previous report {}</h2><p>Compared with the report of {} (its newest ledger entry: {}).</p>",
            badge(p.ok),
            esc(&p.generated_at),
            p.ledger_seq.map_or_else(|| "none".to_owned(), |v| v.to_string())
        );
        s.push_str(&checks_list(&p.checks));
    }
    // Keys.
    s.push_str("<h2 id=\"keys\">Trusted keys</h2>");
    if r.trusted_keys.is_empty() {
        s.push_str("<p class=\"meta\">None registered: <code>worm.verify(table, digest)</code> accepts unsigned digests. Register auditors' keys with <code>worm.trust_key</code>.</p>");
    } else {
        s.push_str(
            "<table><tr><th>key_id</th><th>Ed25519 public key</th><th>added</th><th>by</th></tr>",
        );
        for k in &r.trusted_keys {
            let _ = write!(
                s,
                "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                esc(&k.key_id),
                esc(&k.public_key),
                esc(&k.added_at),
                esc(&k.added_by)
            );
        }
        s.push_str("</table>");
    }
    // Controls.
    s.push_str("<section id=\"controls\"><h2>Controls and the evidence in this report</h2><p>For each control: what it requires, where this report holds evidence for it, what that evidence shows, and what it does not (what else an auditor needs). pg_worm is one technical mechanism; no control below is met by it alone.</p>");
    for c in &r.controls {
        let _ = write!(
            s,
            "<div class=\"control\"><h3>{} — {}</h3><p class=\"meta\">{}</p><p><b>Requirement:</b> {}</p><p><b>Evidence here:</b></p><ul>",
            esc(&c.id),
            esc(&c.title),
            esc(&c.framework),
            esc(&c.requirement)
        );
        for e in &c.evidence {
            let _ = write!(s, "<li>{}</li>", esc(e));
        }
        let _ = write!(
            s,
            "</ul><p class=\"shows\"><b>What it shows:</b> {}</p><p class=\"notshown\"><b>What it does not show:</b> {}</p><p><b>In this report:</b> {}</p></div>",
            esc(&c.shows),
            esc(&c.does_not_show),
            esc(&c.status)
        );
    }
    s.push_str("</section>");
    // About.
    let _ = write!(
        s,
        "<h2 id=\"about\">About this report</h2><p>Made by {} over an ordinary client connection, in one read-only REPEATABLE READ transaction (one snapshot, at {}), without calling any pg_worm function: every row hash and chain link was recomputed by worm-verify from the rows' values (docs/hashing.md), every ledger entry and certificate checked by the same code as <code>worm-verify certificate</code>. The same content is available as JSON (<code>worm-verify report --json</code>).</p><p>If this file was signed (<code>--key</code>), its signature is the file beside it with <code>.sig</code> appended; check it with <code>worm-verify report-verify REPORT.html --public-key KEY</code>. Any change to this file, even one character, fails that check.</p>",
        esc(&r.generated_by),
        esc(&r.generated_at)
    );
    let _ = writeln!(
        s,
        "<footer>{} format {} · database {} · {}</footer></main></body></html>",
        esc(r.format),
        r.format_version,
        esc(&r.server.database),
        esc(&r.generated_at)
    );
    s
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::BTreeMap;

    pub fn sample(evil: &str) -> Report {
        let t = TableEv {
            name: format!("public.\"{evil}\""),
            table_uid: "0b0e7c1e-0000-4000-8000-000000000001".into(),
            chains: 2,
            encoding_version: 1,
            protected_at: "2026-11-26T20:00:00Z".into(),
            protected_by: evil.into(),
            rows_at_protect: 0,
            partition_of: None,
            policy: Policy {
                retention: Some("6 years".into()),
                legal_basis: Some(evil.into()),
                six_years_or_more: Some(true),
                holds_in_force: vec![Hold {
                    hold_id: 1,
                    reason: evil.into(),
                    placed_at: "2026-11-26T20:00:00Z".into(),
                    placed_by: "jane".into(),
                    released_at: None,
                    released_by: None,
                    release_reason: None,
                }],
                holds_released: Vec::new(),
            },
            verification: Fresh {
                ok: false,
                rows_checked: 10,
                problems: 1,
                summary: format!("1 problem: {evil}"),
                chains: vec![ChainRow {
                    chain: Some(0),
                    rows_checked: 10,
                    ok: false,
                    first_bad_seq: Some(3),
                    detail: evil.into(),
                    problems: 1,
                    head_seq: Some(10),
                    head_link: None,
                    whole_table: false,
                }],
                error: None,
            },
            history: TableHistory {
                stored: None,
                failed: 0,
                recent: Vec::new(),
            },
            checkpoints: Vec::new(),
            certificates: Vec::new(),
            rows_per_day: RowsPerDay {
                method: "exact".into(),
                sample_percent: None,
                days: vec![DayCount {
                    day: "2026-11-26".into(),
                    rows: 10,
                }],
                error: None,
            },
            ledger_events: Vec::new(),
        };
        let mut r = Report {
            format: FORMAT,
            format_version: FORMAT_VERSION,
            generated_at: "2026-11-26T21:00:00Z".into(),
            generated_by: "worm-verify test".into(),
            server: Server {
                database: evil.into(),
                server_version: "15".into(),
                pg_worm_version: Some("0.2.0".into()),
                preloaded: false,
                enforcement: "triggers".into(),
                in_recovery: false,
                session_user: evil.into(),
            },
            ok: false,
            problems: 1,
            findings: vec![format!("public.\"{evil}\": 1 problem: {evil}")],
            notes: Vec::new(),
            tables: vec![t],
            partitioned_tables: Vec::new(),
            retired_tables: Vec::new(),
            ledger: LedgerEv {
                entries: 1,
                ok: true,
                first_bad_seq: None,
                problems: 0,
                detail: "ok: 1 entries".into(),
                events: BTreeMap::new(),
                first_at: None,
                last_at: None,
                head_hash: None,
                head_seq: None,
            },
            trusted_keys: Vec::new(),
            verification_history: HistoryEv {
                source: "ledger".into(),
                per_day: vec![DayOutcome {
                    day: "2026-11-26".into(),
                    ok: 1,
                    failed: 1,
                }],
            },
            since_previous: None,
            controls: Vec::new(),
        };
        r.controls = super::super::controls::controls(&r);
        r
    }

    #[test]
    fn escapes_everything() {
        assert_eq!(
            esc("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
        );
        let evil = "<script>alert(1)</script><img src=x onerror=alert(2)>";
        let html = render(&sample(evil));
        assert!(!html.contains("<script"), "unescaped script");
        assert!(!html.contains("<img"), "unescaped img");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("<title>pg_worm compliance report: "));
        // Self-contained: nothing loaded from elsewhere.
        for bad in [
            "src=\"http",
            "href=\"http",
            "@import",
            "url(",
            "<link",
            "<script",
        ] {
            assert!(!html.contains(bad), "{bad}");
        }
        // Every control is there.
        for id in [
            "164.312(b)",
            "164.312(c)(1)",
            "164.312(c)(2)",
            "164.316(b)(2)(i)",
            "17a-4(f)(2)(ii)(A)",
            "AU-9",
            "AU-10",
            "AU-11",
        ] {
            assert!(html.contains(id), "{id}");
        }
        assert!(html.contains("PROBLEMS FOUND: 1"));
    }

    #[test]
    fn charts() {
        let svg = bar_chart(
            "t <x>",
            &["a".into(), "b".into()],
            &[
                ("passed", "#0f0", vec![1.0, 3.0]),
                ("failed", "#f00", vec![0.0, 1.0]),
            ],
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("t &lt;x&gt;"));
        assert_eq!(
            svg.matches("<rect").count(),
            2 + 3,
            "2 legend + 3 non-zero bars"
        );
        assert_eq!(nice_max(4.0), 4.0);
        assert_eq!(nice_max(7.0), 8.0);
        assert_eq!(nice_max(180.0), 200.0);
        assert_eq!(nice_max(340.0), 400.0);
        assert_eq!(nice_max(0.0), 4.0);
        assert!(bar_chart("x", &[], &[]).contains("no data"));
        // Many days: per month.
        let days: Vec<(String, Vec<f64>)> = (0..200)
            .map(|i| {
                (
                    format!("2026-{:02}-{:02}", 1 + i / 28, 1 + i % 28),
                    vec![1.0],
                )
            })
            .collect();
        let (labels, values, unit) = bucket(&days);
        assert_eq!(unit, "month");
        assert_eq!(labels.len(), 8);
        assert_eq!(values[0][0], 28.0);
    }
}
