//! The report: one row per chain with worm.verify's columns, printed for people or as JSON.

use pg_worm_core::{problems, ChainRow, Check, Digest, SigResult, Status};
use serde_json::{json, Value as Json};

/// What was verified, for the report's heading and summary.
#[derive(Debug, Clone)]
pub struct Summary {
    pub table: String,
    pub table_uid: String,
    pub chains: i32,
    pub rows_read: u64,
    pub anchors: usize,
}

/// "1 row", "2 rows".
pub fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The checks as aligned lines: `  ok       detail` / `  NOTE     …` / `  PROBLEM  …`.
pub fn checks_text(checks: &[Check]) -> String {
    let mut out = String::new();
    for c in checks {
        let tag = match c.status {
            Status::Ok => "ok",
            Status::Note => "NOTE",
            Status::Problem => "PROBLEM",
        };
        out.push_str(&format!("  {tag:<8} {}\n", c.detail));
    }
    out
}

pub fn to_json(rows: &[ChainRow]) -> String {
    // Serialising plain strings, integers and booleans cannot fail; fall back to an empty
    // array rather than panic.
    serde_json::to_string_pretty(rows).unwrap_or_else(|_| "[]".to_owned())
}

/// The human report: a heading, one aligned line per chain (like psql shows worm.verify) and
/// a summary line.
pub fn to_text(s: &Summary, rows: &[ChainRow]) -> String {
    let mut out = heading(s);
    out.push_str(&rows_table(rows));
    out.push('\n');
    out.push_str(&summary_line(s, rows));
    out
}

fn heading(s: &Summary) -> String {
    let anchors = match s.anchors {
        0 => String::new(),
        1 => ", 1 purge anchor".to_owned(),
        n => format!(", {n} purge anchors"),
    };
    format!(
        "worm-verify: {} (table_uid {}, {} chain{}{anchors}): {} row{} read\n\n",
        s.table,
        s.table_uid,
        s.chains,
        if s.chains == 1 { "" } else { "s" },
        s.rows_read,
        if s.rows_read == 1 { "" } else { "s" },
    )
}

/// The human report of a table checked against a checkpoint digest: the table's report,
/// the checks against the digest, and a last line saying whether the table still extends it.
/// `exact`: no chain was purged past the checkpoint since.
pub fn against_text(
    d: &Digest,
    summary: &Summary,
    rows: &[ChainRow],
    checks: &[Check],
    exact: bool,
    sig_results: &[SigResult],
    keys_required: bool,
) -> String {
    let mut text = to_text(summary, rows);
    text.push_str(&format!("\nAgainst the {}\n", d.describe()));
    text.push_str(&checks_text(checks));
    text.push('\n');
    // One verdict for the whole run, last: the rows' problems and the digest's together
    // (a tampered row with an intact checkpoint is not OK).
    let cp_problems = problems(checks);
    let row_problems: i64 = rows
        .iter()
        .filter(|r| !r.ok)
        .map(|r| r.problems.max(1))
        .sum();
    if cp_problems > 0 || row_problems > 0 {
        let mut parts = Vec::new();
        if row_problems > 0 {
            parts.push(format!(
                "{} in the table's rows ({})",
                plural(row_problems as usize, "problem", "problems"),
                problem_places(rows).join(", ")
            ));
        }
        if cp_problems > 0 {
            let mut names: Vec<String> = Vec::new();
            for c in checks.iter().filter(|c| c.status == Status::Problem) {
                if !names.contains(&c.check) {
                    names.push(c.check.clone());
                }
            }
            parts.push(format!(
                "{} against the checkpoint of ledger entry {} ({})",
                plural(cp_problems, "problem", "problems"),
                d.entry.seq,
                names.join(", ")
            ));
        }
        text.push_str(&format!("PROBLEMS FOUND: {}.\n", parts.join("; ")));
        return text;
    }
    let signer = sig_results
        .iter()
        .filter(|s| s.valid && (!keys_required || s.required_key))
        .map(|s| s.key_id.clone())
        .collect::<Vec<_>>();
    let purged = if exact {
        ""
    } else {
        " (purged since where noted)"
    };
    text.push_str(&format!(
        "OK: the table still extends the checkpoint of ledger entry {}{purged}{}.\n",
        d.entry.seq,
        if signer.is_empty() {
            String::new()
        } else {
            format!(", signed by {}", signer.join(", "))
        }
    ));
    text
}

/// The `"checkpoint"` object of `table --against --json`: the digest and what was found.
pub fn checkpoint_json(d: &Digest, checks: &[Check], sig_results: &[SigResult]) -> Json {
    let cp_problems = problems(checks);
    json!({
        "ledger_seq": d.entry.seq,
        "hash": hex::encode(d.entry.hash),
        "table": d.table_name,
        "at": d.at,
        "ok": cp_problems == 0,
        "problems": cp_problems,
        "checks": checks,
        "signatures": sig_results,
    })
}

const HEADERS: [&str; 5] = ["chain", "rows_checked", "ok", "first_bad_seq", "detail"];

/// One table line: numbers right-aligned, text left-aligned, as psql does; no padding after
/// the last column.
fn table_line(cols: [&str; 5], width: &[usize; 5]) -> String {
    let numeric = [true, true, false, true, false];
    let mut parts = Vec::new();
    for i in 0..5 {
        let pad = width[i].saturating_sub(cols[i].chars().count());
        parts.push(if i == 4 {
            cols[i].to_owned()
        } else if numeric[i] {
            format!("{}{}", " ".repeat(pad), cols[i])
        } else {
            format!("{}{}", cols[i], " ".repeat(pad))
        });
    }
    format!(" {}\n", parts.join(" | "))
}

/// The rows as psql prints them: centred headers, a rule, one line per row.
fn rows_table(rows: &[ChainRow]) -> String {
    let cells: Vec<[String; 5]> = rows
        .iter()
        .map(|r| {
            [
                r.chain.map(|c| c.to_string()).unwrap_or_default(),
                r.rows_checked.to_string(),
                if r.ok { "t" } else { "f" }.to_owned(),
                r.first_bad_seq.map(|s| s.to_string()).unwrap_or_default(),
                r.detail.clone(),
            ]
        })
        .collect();
    let mut width = HEADERS.map(str::len);
    for row in &cells {
        for (w, c) in width.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let centred: Vec<String> = HEADERS
        .iter()
        .zip(width)
        .enumerate()
        .map(|(i, (h, w))| {
            if i == 4 {
                (*h).to_owned()
            } else {
                let left = (w - h.len()) / 2;
                format!("{}{h}{}", " ".repeat(left), " ".repeat(w - h.len() - left))
            }
        })
        .collect();
    let mut out = table_line(
        [
            &centred[0],
            &centred[1],
            &centred[2],
            &centred[3],
            &centred[4],
        ],
        &width,
    );
    out.push_str(
        &width
            .iter()
            .map(|w| "-".repeat(w + 2))
            .collect::<Vec<_>>()
            .join("+"),
    );
    out.push('\n');
    for c in &cells {
        out.push_str(&table_line([&c[0], &c[1], &c[2], &c[3], &c[4]], &width));
    }
    out
}

/// Where the report rows that fail are: "chain 1 from seq 3", "the table as a whole", ...
pub fn problem_places(rows: &[ChainRow]) -> Vec<String> {
    let mut names: Vec<String> = rows
        .iter()
        .filter(|r| !r.ok)
        .map(|r| match (r.chain, r.first_bad_seq) {
            _ if r.whole_table => "the table as a whole".to_owned(),
            (Some(c), Some(s)) => format!("chain {c} from seq {s}"),
            (Some(c), None) => format!("chain {c}"),
            (None, _) => "rows without a chain".to_owned(),
        })
        .collect();
    names.dedup();
    names
}

/// "OK: ..." or "PROBLEMS FOUND: ..." naming where.
fn summary_line(s: &Summary, rows: &[ChainRow]) -> String {
    let bad: Vec<&ChainRow> = rows.iter().filter(|r| !r.ok).collect();
    if bad.is_empty() {
        return format!(
            "OK: every row hash and link of {} chain{} verified ({} row{}).\n",
            rows.len(),
            if rows.len() == 1 { "" } else { "s" },
            s.rows_read,
            if s.rows_read == 1 { "" } else { "s" },
        );
    }
    let problems: i64 = bad.iter().map(|r| r.problems).sum();
    let names = problem_places(rows);
    format!(
        "PROBLEMS FOUND: {problems} problem{} in {} of {} report rows: {}.\n",
        if problems == 1 { "" } else { "s" },
        bad.len(),
        rows.len(),
        names.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use pg_worm_core::findings::{all_ok, stray_rows, table_problem, with_bad_anchor};
    use pg_worm_core::{verify_chain, RowRecord, GENESIS};

    const UID: [u8; 16] = [7; 16];

    fn chain_of(n: i64) -> Vec<RowRecord> {
        pg_worm_core::fixtures::linked_rows(&UID, 0, 1, n, GENESIS)
    }

    fn summary() -> Summary {
        Summary {
            table: "public.t".into(),
            table_uid: "07070707-0707-0707-0707-070707070707".into(),
            chains: 2,
            rows_read: 3,
            anchors: 0,
        }
    }

    #[test]
    fn json_has_worm_verify_fields() {
        let rows = chain_of(3);
        let head = hex::encode(rows[2].stored_link.clone().unwrap_or_default());
        let r: ChainRow = verify_chain(&UID, 0, None, rows).into();
        let v: serde_json::Value = serde_json::from_str(&to_json(&[r])).expect("valid JSON");
        let o = &v[0];
        assert_eq!(o["chain"], 0);
        assert_eq!(o["rows_checked"], 3);
        assert_eq!(o["ok"], true);
        assert!(o["first_bad_seq"].is_null());
        assert_eq!(o["detail"], "ok: 3 rows, head at seq 3");
        assert_eq!(o["problems"], 0);
        assert_eq!(o["head_seq"], 3);
        assert_eq!(o["head_link"], head.as_str());
        assert_eq!(o.as_object().map(|m| m.len()), Some(8));
    }

    #[test]
    fn stray_rows_are_worded_like_the_extension() {
        let rows = chain_of(3);
        let r = stray_rows(Some(9), &rows[1..], 4);
        assert_eq!(
            r.detail,
            "2 row(s) claim chain 9, which this table does not have (its chains are 0..3): rows \
             inserted out of chain"
        );
        assert_eq!(
            (r.rows_checked, r.problems, r.first_bad_seq),
            (2, 2, Some(2))
        );
        assert!(!r.ok);
        let r = stray_rows(None, &rows[..1], 4);
        assert_eq!(
            r.detail,
            "1 row(s) have no chain (NULL worm_chain): rows inserted out of chain"
        );
        assert_eq!(r.chain, None);
    }

    #[test]
    fn text_report_ok_and_broken() {
        let good: ChainRow = verify_chain(&UID, 0, None, chain_of(3)).into();
        let mut tampered = chain_of(3);
        tampered[1].row_hash = [0xee; 32];
        let mut bad: ChainRow = verify_chain(&UID, 0, None, tampered).into();
        bad.chain = Some(1);
        let text = to_text(&summary(), std::slice::from_ref(&good));
        assert!(
            text.contains(" chain | rows_checked | ok | first_bad_seq | detail\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "     0 |            3 | t  |               | ok: 3 rows, head at seq 3\n"
            ),
            "{text}"
        );
        assert!(text.ends_with("OK: every row hash and link of 1 chain verified (3 rows).\n"));
        let text = to_text(&summary(), &[good, bad]);
        assert!(text.contains(
            "     1 |            3 | f  |             2 | row 2 was changed: its content no longer matches its stored link\n"
        ), "{text}");
        assert!(
            text.ends_with(
                "PROBLEMS FOUND: 1 problem in 1 of 2 report rows: chain 1 from seq 2.\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn table_problems_are_rows_without_a_chain() {
        let good: ChainRow = verify_chain(&UID, 0, None, chain_of(3)).into();
        let child = table_problem(pg_worm_core::table::inheritance_child_problem(
            "public.fake",
        ));
        let rls = table_problem(
            pg_worm_core::table::row_security_problem(true, false).unwrap_or_default(),
        );
        assert_eq!(
            (child.chain, child.rows_checked, child.ok, child.problems),
            (None, 0, false, 1)
        );
        let rows = [good, child, rls];
        assert!(!all_ok(&rows));
        // JSON keeps worm.verify's eight fields.
        let v: serde_json::Value = serde_json::from_str(&to_json(&rows)).expect("valid JSON");
        assert_eq!(v[1].as_object().map(|m| m.len()), Some(8));
        assert!(v[1]["chain"].is_null());
        assert_eq!(
            v[2]["detail"],
            "row-level security is enabled: SELECTs may hide rows"
        );
        let text = to_text(&summary(), &rows);
        assert!(
            text.contains("|            0 | f  |               | table has an inheritance child public.fake whose rows every SELECT of the table also returns"),
            "{text}"
        );
        assert!(
            text.ends_with(
                "PROBLEMS FOUND: 2 problems in 2 of 3 report rows: the table as a whole.\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn against_ends_with_one_verdict_for_rows_and_checkpoint() {
        let d = Digest::parse(pg_worm_core::fixtures::digest_json(
            9,
            &[(1, Some([1; 32]))],
            [2; 32],
            1,
        ))
        .expect("valid digest");
        let good: ChainRow = verify_chain(&UID, 0, None, chain_of(3)).into();
        let mut tampered = chain_of(3);
        tampered[1].row_hash = [0xee; 32];
        let mut bad: ChainRow = verify_chain(&UID, 0, None, tampered).into();
        bad.chain = Some(1);
        let ok_checks = [Check::ok("ledger", "entry 9 is in the ledger")];
        // Every check against the digest passes, but a row was changed: the last line must
        // not say OK (it used to: the rows' PROBLEMS line came first, then OK).
        let rows = [good.clone(), bad];
        let text = against_text(&d, &summary(), &rows, &ok_checks, true, &[], false);
        assert!(
            text.ends_with("PROBLEMS FOUND: 1 problem in the table's rows (chain 1 from seq 2).\n"),
            "{text}"
        );
        assert!(!text.contains("\nOK:"), "{text}");
        // Both: one line naming both.
        let bad_checks = [
            Check::ok("ledger", "entry 9 is in the ledger"),
            Check::problem("timestamp signature", "the TSA's signature does not verify"),
            Check::problem("timestamp signature", "the TSTInfo no longer hashes"),
            Check::problem("merkle_root", "differs"),
        ];
        let text = against_text(&d, &summary(), &rows, &bad_checks, true, &[], false);
        assert!(
            text.ends_with(
                "PROBLEMS FOUND: 1 problem in the table's rows (chain 1 from seq 2); 3 problems against the checkpoint of ledger entry 9 (timestamp signature, merkle_root).\n"
            ),
            "{text}"
        );
        // All good: OK last.
        let text = against_text(&d, &summary(), &[good], &ok_checks, true, &[], false);
        assert!(
            text.ends_with("OK: the table still extends the checkpoint of ledger entry 9.\n"),
            "{text}"
        );
    }

    #[test]
    fn bad_anchor_marks_the_chain() {
        let good: ChainRow = verify_chain(&UID, 0, None, chain_of(2)).into();
        let r = with_bad_anchor(good, "its link has 3 bytes, not 32", Some(5));
        assert!(!r.ok);
        assert_eq!(r.problems, 1);
        assert_eq!(r.first_bad_seq, Some(6));
        assert_eq!(
            r.detail,
            "the purge anchor in worm.anchors is unusable: its link has 3 bytes, not 32"
        );
    }
}
