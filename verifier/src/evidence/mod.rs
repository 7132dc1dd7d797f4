//! `worm-verify report`: the compliance evidence report, one self-contained HTML file (or the
//! same content as JSON) an auditor can file: per protected table its policy, a fresh
//! independent verification (the verifier's own, as `worm-verify table` does it), the stored
//! verification history, checkpoints and their time-stamps, purges and retirements with their
//! certificates checked, the ledger's integrity, charts, and a section mapping each control
//! (HIPAA, SEC 17a-4, NIST SP 800-53) to this evidence. `report-verify` checks the detached
//! Ed25519 signature `--key` writes.
//!
//! Layout: [`model`] is the content (serialised as is for `--json`), [`gather`] reads it in
//! one REPEATABLE READ READ ONLY snapshot without calling any pg_worm function, [`html`]
//! renders it (every database-sourced string escaped), [`controls`] is the mapping,
//! [`signing`] the detached signature.

pub mod controls;
pub mod gather;
pub mod html;
pub mod model;
pub mod signing;

use crate::commands::{exit_code, write_bytes, End};
use crate::db;
use crate::report::plural;
use anyhow::{anyhow, Context};
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

/// What `worm-verify report` was asked for.
pub struct Options<'a> {
    pub db: Option<&'a str>,
    pub out: &'a Path,
    pub json: bool,
    pub key: Option<&'a Path>,
    pub key_id: Option<&'a str>,
    pub jobs: usize,
    pub tsa_cert: Option<&'a Path>,
    pub previous: Option<&'a Path>,
}

pub fn report(o: &Options<'_>) -> ExitCode {
    exit_code(run_report(o))
}

fn say(s: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(s.as_bytes());
    let _ = out.flush();
}

fn run_report(o: &Options<'_>) -> std::result::Result<End, End> {
    if o.out.as_os_str().is_empty() || o.out.as_os_str() == "-" {
        return Err(End::Error(anyhow!(
            "--out must name a file (the report is a file to keep; `report-verify` checks it later)"
        )));
    }
    // The key is read first: a missing or unreadable key must not cost a whole verification.
    let key = match o.key {
        Some(p) => {
            let (k, warning) = crate::sig::read_key_file(p)?;
            if let Some(w) = warning {
                eprintln!("worm-verify: warning: {w}");
            }
            Some(k)
        }
        None => None,
    };
    let roots = match o.tsa_cert {
        Some(p) => Some(crate::tsa::load_roots(p)?),
        None => None,
    };
    let previous: Option<serde_json::Value> = match o.previous {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            Some(serde_json::from_str(&text).with_context(|| {
                format!(
                    "{} is not JSON (give a report written with --json)",
                    p.display()
                )
            })?)
        }
        None => None,
    };
    let connector = db::Connector::new(o.db)?;
    let mut client = connector.open()?;
    let mut tx = db::begin_read(&mut client)?;
    let ro = db::ReadOpts::new(std::io::stderr().is_terminal(), &connector, &mut tx, o.jobs)?;
    let report = gather::gather(&mut tx, &ro, roots.as_deref(), previous.as_ref())?;
    tx.commit()
        .map_err(db::pg)
        .context("cannot end the read-only transaction")?;
    let bytes = if o.json {
        let mut s = serde_json::to_string_pretty(&report).context("cannot serialise the report")?;
        s.push('\n');
        s.into_bytes()
    } else {
        html::render(&report).into_bytes()
    };
    write_bytes(o.out, &bytes)?;
    let mut text = summary_text(&report);
    text.push_str(&format!(
        "report written to {} ({} bytes, {})\n",
        o.out.display(),
        bytes.len(),
        if o.json { "JSON" } else { "HTML" }
    ));
    if let Some(k) = &key {
        let key_id = o.key_id.map(str::to_owned).unwrap_or_else(|| {
            o.key
                .and_then(Path::file_stem)
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
        let sig_path = signing::sig_path(o.out);
        let doc = signing::sign_file(k, &key_id, o.out, &bytes);
        let mut s = serde_json::to_string_pretty(&doc).context("cannot serialise the signature")?;
        s.push('\n');
        write_bytes(&sig_path, s.as_bytes())?;
        text.push_str(&format!(
            "signed as {key_id} (public key {}): {}; check it with `worm-verify report-verify {}`\n",
            hex::encode(k.verifying_key().to_bytes()),
            sig_path.display(),
            o.out.display()
        ));
    }
    text.push_str(&verdict_line(&report));
    say(&text);
    Ok(if report.ok {
        End::Verified
    } else {
        End::Problems
    })
}

/// One line per table and the findings, for the terminal.
fn summary_text(r: &model::Report) -> String {
    let mut s = format!(
        "worm-verify: compliance report of database {} ({} protected {}, ledger of {})\n",
        r.server.database,
        r.tables.len(),
        if r.tables.len() == 1 {
            "table"
        } else {
            "tables"
        },
        plural(r.ledger.entries as usize, "entry", "entries")
    );
    for t in &r.tables {
        s.push_str(&format!(
            "  {:<8} {}: {}\n",
            if t.verification.ok { "ok" } else { "PROBLEM" },
            t.name,
            t.verification.summary
        ));
    }
    // The findings not already printed as a table's line.
    let table_lines: Vec<String> = r
        .tables
        .iter()
        .map(|t| format!("{}: {}", t.name, t.verification.summary))
        .collect();
    for f in r.findings.iter().filter(|f| !table_lines.contains(f)) {
        s.push_str(&format!("  PROBLEM  {f}\n"));
    }
    s
}

/// The report's one verdict, last: OK, or how many problems and where (each table with the
/// chains and first rows that fail, each other finding by what it is about).
pub fn verdict_line(r: &model::Report) -> String {
    if r.ok {
        return format!(
            "OK: every protected table, certificate and the ledger verified ({} recomputed independently).\n",
            plural(
                r.tables.iter().map(|t| t.verification.rows_checked).sum::<u64>() as usize,
                "row",
                "rows"
            )
        );
    }
    let mut places: Vec<String> = Vec::new();
    let table_lines: Vec<String> = r
        .tables
        .iter()
        .map(|t| format!("{}: {}", t.name, t.verification.summary))
        .collect();
    for t in r.tables.iter().filter(|t| !t.verification.ok) {
        let at = crate::report::problem_places(&t.verification.chains);
        places.push(if at.is_empty() {
            t.name.clone()
        } else {
            format!("{} ({})", t.name, at.join(", "))
        });
    }
    for f in r.findings.iter().filter(|f| !table_lines.contains(f)) {
        // "TABLE: the deletion certificate of ledger entry N does not verify: ..." ->
        // what it is about; "worm.ledger does not verify: ..." -> worm.ledger.
        let what = match f.split_once(" does not verify") {
            Some((head, _)) => head.to_owned(),
            None => f.split(": ").next().unwrap_or(f).to_owned(),
        };
        if !places.contains(&what) {
            places.push(what);
        }
    }
    format!(
        "PROBLEMS FOUND: {} in the compliance report: {}.\n",
        plural(r.problems, "problem", "problems"),
        places.join("; ")
    )
}

/// `worm-verify report-verify FILE [--sig FILE.sig] [--public-key HEX ...]`.
pub fn report_verify(file: &Path, sig: Option<&Path>, keys: &[String]) -> ExitCode {
    exit_code(signing::run_verify(file, sig, keys))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_names_where() {
        let r = html::tests::sample("x");
        assert_eq!(
            verdict_line(&r),
            "PROBLEMS FOUND: 1 problem in the compliance report: public.\"x\" (chain 0 from seq 3).\n"
        );
        let mut r2 = r.clone();
        r2.findings = vec![
            "public.t: the deletion certificate of ledger entry 9 does not verify: anchor".into(),
            "worm.ledger does not verify: entry 3 was changed".into(),
        ];
        r2.tables.clear();
        r2.problems = 2;
        assert_eq!(
            verdict_line(&r2),
            "PROBLEMS FOUND: 2 problems in the compliance report: public.t: the deletion certificate of ledger entry 9; worm.ledger.\n"
        );
        r2.ok = true;
        assert!(verdict_line(&r2).starts_with("OK: "));
    }
}
