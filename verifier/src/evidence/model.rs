//! The report's content. `--json` serialises it as is; the HTML is rendered from it, so both
//! say the same. Times are UTC, RFC 3339 (`2026-11-26T21:04:05Z`); strings are as the
//! database holds them (the HTML escapes them, the JSON quotes them).

use pg_worm_core::{ChainRow, Check};
use serde::Serialize;
use std::collections::BTreeMap;

pub const FORMAT: &str = "pg_worm compliance report";
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub format: &'static str,
    pub format_version: u32,
    /// The server's transaction time of the snapshot everything was read in.
    pub generated_at: String,
    pub generated_by: String,
    pub server: Server,
    /// No finding anywhere: every table verified, every certificate checked, the ledger
    /// recomputed.
    pub ok: bool,
    pub problems: usize,
    /// Every finding, one sentence each, naming what it is about.
    pub findings: Vec<String>,
    /// Things worth knowing that are not findings (history of failures, missing stored
    /// results, sampling).
    pub notes: Vec<String>,
    pub tables: Vec<TableEv>,
    pub partitioned_tables: Vec<ParentEv>,
    pub retired_tables: Vec<RetiredEv>,
    pub ledger: LedgerEv,
    pub trusted_keys: Vec<KeyEv>,
    pub verification_history: HistoryEv,
    /// Compared with an earlier report (`--previous`): its ledger entry still there, its
    /// tables still protected or retired.
    pub since_previous: Option<PreviousEv>,
    pub controls: Vec<Control>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Server {
    pub database: String,
    pub server_version: String,
    pub pg_worm_version: Option<String>,
    /// pg_worm is in shared_preload_libraries: its hooks refuse protection-breaking
    /// statements, superusers' included.
    pub preloaded: bool,
    pub enforcement: String,
    pub in_recovery: bool,
    pub session_user: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Hold {
    pub hold_id: i64,
    pub reason: String,
    pub placed_at: String,
    pub placed_by: String,
    pub released_at: Option<String>,
    pub released_by: Option<String>,
    pub release_reason: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TableEv {
    /// schema.name, quoted where SQL needs it (as pg_worm names tables in its documents).
    pub name: String,
    pub table_uid: String,
    pub chains: i32,
    pub encoding_version: i32,
    pub protected_at: String,
    pub protected_by: String,
    pub rows_at_protect: i64,
    /// The partitioned table it is a partition of.
    pub partition_of: Option<String>,
    pub policy: Policy,
    pub verification: Fresh,
    pub history: TableHistory,
    pub checkpoints: Vec<CheckpointEv>,
    pub certificates: Vec<CertEv>,
    pub rows_per_day: RowsPerDay,
    /// The table's ledger entries other than checkpoints and certificates (protect,
    /// retention changes, holds, ...).
    pub ledger_events: Vec<EventEv>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Policy {
    /// PostgreSQL's interval text (`6 years`); None: kept for ever.
    pub retention: Option<String>,
    pub legal_basis: Option<String>,
    /// At least six years (the HIPAA documentation retention of 164.316(b)(2)(i); a note
    /// only: what a table must keep is the organisation's decision).
    pub six_years_or_more: Option<bool>,
    pub holds_in_force: Vec<Hold>,
    pub holds_released: Vec<Hold>,
}

/// The verification done for this report, by worm-verify itself.
#[derive(Debug, Clone, Serialize)]
pub struct Fresh {
    pub ok: bool,
    pub rows_checked: u64,
    pub problems: i64,
    pub summary: String,
    /// worm.verify's rows: one per chain, plus rows outside the chains and problems of the
    /// table as a whole.
    pub chains: Vec<ChainRow>,
    /// Why the table could not be verified (a finding).
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Stored {
    pub at: String,
    pub kind: String,
    pub ok: Option<bool>,
    pub rows_checked: Option<i64>,
    pub problems: Option<i64>,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TableHistory {
    /// Stored results of the table in worm.verifications (None: there is no such table).
    pub stored: Option<i64>,
    pub failed: i64,
    /// The newest (at most 20), newest first.
    pub recent: Vec<Stored>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TimestampEv {
    pub ledger_seq: i64,
    pub recorded_at: String,
    pub gen_time: Option<String>,
    pub tsa: Option<String>,
    /// The token (recorded in the ledger) checked: its imprint against the checkpoint's
    /// ledger hash always; with --tsa-cert also the TSA's signature, certificate usage and
    /// chain to the given root at the token's time (`worm-verify table --tsa-cert`'s checks).
    pub ok: bool,
    pub signature_checked: bool,
    pub checks: Vec<Check>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckpointEv {
    pub ledger_seq: i64,
    pub at: String,
    pub by: String,
    pub rows: Option<i64>,
    pub merkle_size: Option<i64>,
    pub merkle_root: Option<String>,
    pub ledger_hash: String,
    pub verification_ok: Option<bool>,
    /// RFC 3161 time-stamps recorded for it in the ledger (`timestamp` entries).
    pub timestamps: Vec<TimestampEv>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CertEv {
    pub ledger_seq: i64,
    /// purge or retire
    pub kind: String,
    pub certificate_id: String,
    pub at: String,
    pub cutoff: String,
    pub rows_removed: Option<i64>,
    pub retention: Option<String>,
    pub legal_basis: Option<String>,
    pub by: String,
    pub ok: bool,
    /// What `worm-verify certificate --db` checks, by the same code.
    pub checks: Vec<Check>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DayCount {
    pub day: String,
    pub rows: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RowsPerDay {
    /// "exact" or "estimated from a block sample".
    pub method: String,
    pub sample_percent: Option<f64>,
    pub days: Vec<DayCount>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EventEv {
    pub ledger_seq: i64,
    pub event: String,
    pub at: String,
    pub by: String,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ParentEv {
    pub name: Option<String>,
    pub chains: i32,
    pub retention: Option<String>,
    pub legal_basis: Option<String>,
    pub protected_at: String,
    pub dropped_at: Option<String>,
    pub partitions: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RetiredEv {
    pub table_uid: String,
    pub name: String,
    pub retired_at: Option<String>,
    pub certificates: Vec<CertEv>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LedgerEv {
    pub entries: i64,
    pub ok: bool,
    pub first_bad_seq: Option<i64>,
    pub problems: i64,
    pub detail: String,
    /// Entries per event kind.
    pub events: BTreeMap<String, usize>,
    pub first_at: Option<String>,
    pub last_at: Option<String>,
    /// The newest entry's hash: writing it down lets a later report show the ledger was
    /// only extended since.
    pub head_hash: Option<String>,
    /// The newest entry's seq.
    pub head_seq: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct KeyEv {
    pub key_id: String,
    pub public_key: String,
    pub added_at: String,
    pub added_by: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct DayOutcome {
    pub day: String,
    pub ok: u64,
    pub failed: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct HistoryEv {
    /// Where the outcomes come from: `worm.verifications`, or the ledger's checkpoints and
    /// purges (each verified the table first) when there are no stored results.
    pub source: String,
    pub per_day: Vec<DayOutcome>,
}

/// One control and the evidence for it in this report.
#[derive(Debug, Clone, Serialize)]
pub struct Control {
    pub id: String,
    pub framework: String,
    pub title: String,
    /// The requirement, paraphrased closely.
    pub requirement: String,
    /// This report's sections that hold the evidence, with what each shows.
    pub evidence: Vec<String>,
    /// What the evidence here does establish.
    pub shows: String,
    /// What it does not, and what else is needed.
    pub does_not_show: String,
    /// The state of that evidence in this report, in one sentence.
    pub status: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PreviousEv {
    pub generated_at: String,
    pub ledger_seq: Option<i64>,
    pub ledger_hash: Option<String>,
    pub ok: bool,
    pub checks: Vec<Check>,
}
