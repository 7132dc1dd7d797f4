//! Findings: what a check found ([`Check`], with a [`Status`]) and the rows of a table's
//! verification report ([`ChainRow`], worm.verify's columns). Shared, with their wording, by
//! the extension and `worm-verify`; rendering them for people is the caller's business.

use crate::{ChainReport, RowRecord};
use serde::Serialize;

/// The outcome of one check, for the human report and `--json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    /// Not a problem, but worth saying (a chain purged past the checkpoint, a check skipped).
    Note,
    Problem,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub check: String,
    pub status: Status,
    pub detail: String,
}

impl Check {
    pub fn new(check: impl Into<String>, status: Status, detail: impl Into<String>) -> Check {
        Check {
            check: check.into(),
            status,
            detail: detail.into(),
        }
    }
    pub fn ok(check: impl Into<String>, detail: impl Into<String>) -> Check {
        Check::new(check, Status::Ok, detail)
    }
    pub fn note(check: impl Into<String>, detail: impl Into<String>) -> Check {
        Check::new(check, Status::Note, detail)
    }
    pub fn problem(check: impl Into<String>, detail: impl Into<String>) -> Check {
        Check::new(check, Status::Problem, detail)
    }
}

pub fn problems(checks: &[Check]) -> usize {
    checks
        .iter()
        .filter(|c| c.status == Status::Problem)
        .count()
}

/// One row of the report: the same fields, names and meaning as a row of `worm.verify`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainRow {
    pub chain: Option<i32>,
    pub rows_checked: i64,
    pub ok: bool,
    pub first_bad_seq: Option<i64>,
    pub detail: String,
    pub problems: i64,
    pub head_seq: Option<i64>,
    pub head_link: Option<String>,
    /// A problem of the table as a whole (inheritance child, row-level security, columns no
    /// longer matching their record), not of a chain; not one of worm.verify's columns.
    #[serde(skip)]
    pub whole_table: bool,
}

impl From<ChainReport> for ChainRow {
    fn from(r: ChainReport) -> Self {
        ChainRow {
            chain: Some(r.chain),
            rows_checked: r.rows_checked,
            ok: r.ok,
            first_bad_seq: r.first_bad_seq,
            detail: r.detail,
            problems: r.problems,
            head_seq: r.head_seq,
            head_link: r.head_link.map(hex::encode),
            whole_table: false,
        }
    }
}

/// The row for rows whose `worm_chain` is NULL or not one of the table's chains `0..chains`
/// (worded as `worm.verify` words it).
pub fn stray_rows(chain: Option<i32>, rows: &[RowRecord], chains: i32) -> ChainRow {
    let n = i64::try_from(rows.len()).unwrap_or(i64::MAX);
    stray_rows_counted(chain, n, rows.iter().filter_map(|r| r.seq).min(), chains)
}

/// [`stray_rows`] from the number of such rows and their smallest `worm_seq` (what a
/// streaming verification keeps of them).
pub fn stray_rows_counted(
    chain: Option<i32>,
    n: i64,
    first_seq: Option<i64>,
    chains: i32,
) -> ChainRow {
    let detail = match chain {
        Some(c) => format!(
            "{n} row(s) claim chain {c}, which this table does not have (its chains are 0..{}): \
             rows inserted out of chain",
            chains.saturating_sub(1)
        ),
        None => format!("{n} row(s) have no chain (NULL worm_chain): rows inserted out of chain"),
    };
    ChainRow {
        chain,
        rows_checked: n,
        ok: false,
        first_bad_seq: first_seq,
        detail,
        problems: n,
        head_seq: None,
        head_link: None,
        whole_table: false,
    }
}

/// The row for a problem of the table as a whole (worded by `pg_worm_core::table`, as
/// `worm.verify` reports it): chain NULL, nothing checked, not ok.
pub fn table_problem(detail: String) -> ChainRow {
    ChainRow {
        chain: None,
        rows_checked: 0,
        ok: false,
        first_bad_seq: None,
        detail,
        problems: 1,
        head_seq: None,
        head_link: None,
        whole_table: true,
    }
}

/// A purge anchor in worm.anchors that cannot be used: the chain is reported as broken.
pub fn with_bad_anchor(mut row: ChainRow, why: &str, anchor_seq: Option<i64>) -> ChainRow {
    row.ok = false;
    row.problems = row.problems.saturating_add(1);
    row.detail = if row.detail.starts_with("ok:") {
        format!("the purge anchor in worm.anchors is unusable: {why}")
    } else {
        format!(
            "the purge anchor in worm.anchors is unusable: {why}; {}",
            row.detail
        )
    };
    let anchor_pos = anchor_seq.map(|s| s.saturating_add(1));
    row.first_bad_seq = match (row.first_bad_seq, anchor_pos) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    row
}

pub fn all_ok(rows: &[ChainRow]) -> bool {
    rows.iter().all(|r| r.ok)
}

impl ChainRow {
    /// Adds a problem found elsewhere (against a checkpoint) to this row, as worm.verify
    /// words its own: the first replaces "ok: ...", later ones are appended after "; ".
    pub fn add_problem(&mut self, seq: Option<i64>, text: &str) {
        if self.ok {
            self.detail = text.to_owned();
        } else {
            self.detail = format!("{}; {text}", self.detail);
        }
        self.ok = false;
        self.problems = self.problems.saturating_add(1);
        self.first_bad_seq = min_seq(self.first_bad_seq, seq);
    }
}

fn min_seq(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
