//! worm.verify, worm.verify_all and worm.chain_heads.
//!
//! Verification only reads, under the statement's snapshot, and assigns no
//! transaction id, so it also runs on a hot standby. The row hashes are
//! recomputed from the stored values and each chain is checked by the pure
//! logic of `pg_worm_core` (`ChainStream`, `verify_chain`).
//!
//! Streaming (worm.verify, verify_all, verify against a digest): each chain
//! is read in seq order through the chain index into a streaming verifier,
//! so memory follows the number of chains and the largest row, not the
//! table. A sequential count of the heap (no hashing) finds the rows of no
//! chain of the table and compares the rows per chain with what the index
//! scans returned: rows the index does not list are reported on their chain.
//! Rows whose stored values do not fit where the index lists them (a page
//! edited under the index) are set aside and merged back into their chain in
//! a second reading of it, in (seq, physical position) order. Callers that
//! need every chain's (seq, link) list (checkpoint, purge, retire) ask for
//! the records: one sequential scan into memory, the same report.
//!
//! Besides the chains, it reports what makes the table as a whole untrustworthy
//! although every chain verifies (one extra row each, chain NULL, ok false):
//! an inheritance child (whose rows every SELECT of the table also returns),
//! row-level security (SELECTs may hide rows), and columns that no longer match
//! the list recorded in the ledger (a rename swapping two columns).
//!
//! Memory: every row is detoasted and encoded in a short-lived memory context
//! that is reset after the row, and the encoder hashes a value where it lies,
//! so a large value costs about its own size, once, not once per row read.
//! `worm.progress_rows` (0 = off) sends a NOTICE every that many rows.
//!
//! Parallel (parallel.rs): the first reading of the chains is shared with
//! parallel workers when `worm.verify_parallel_workers` (by default
//! `max_parallel_workers_per_gather`) allows; the results are put together
//! in chain order, so the report is the serial one.

pub mod checkpoint;
pub mod columns;
pub mod parallel;
pub mod since;

use crate::catalog::meta;
use crate::error::{OrRaise, WormError};
use crate::insert::chain;
use crate::insert::encode;
use crate::pg;
use crate::pg::rel_display_name;
use crate::sql;
use pg_worm_core::{
    chain_states, table, table_verify, Anchor, AnchorEntry, ByChain, ChainRow, ChainState,
    RowRecord,
};
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::{pg_sys, GucContext, GucFlags, GucRegistry, GucSetting, PgMemoryContexts, PgRelation};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::ControlFlow;

pub type VerifyRow = (
    Option<i32>,
    i64,
    bool,
    Option<i64>,
    String,
    i64,
    Option<i64>,
    Option<String>,
);

/// A result row of worm.verify: a report row and the table it is about
/// (a partition, when a partitioned table is verified). Defined beside the
/// recording of results (crate::watch), which every verify entry point calls.
pub use crate::watch::NamedRow;

/// Report rows of one table, named.
pub fn named(rows: Vec<VerifyRow>, table: &str) -> Vec<NamedRow> {
    rows.into_iter()
        .map(|r| (r.0, r.1, r.2, r.3, r.4, r.5, r.6, r.7, table.to_string()))
        .collect()
}

/// A row about a table as a whole.
pub(super) fn table_row(ok: bool, detail: String, table: String) -> NamedRow {
    (None, 0, ok, None, detail, i64::from(!ok), None, None, table)
}

/// Verification reads rows: SELECT on the table, or membership in worm_auditor.
pub(super) fn require_select(relid: pg_sys::Oid, table: &str) -> Result<(), WormError> {
    // SAFETY: a permission check of the current user on an existing table.
    let acl =
        unsafe { pg_sys::pg_class_aclcheck(relid, pg_sys::GetUserId(), pg_sys::ACL_SELECT as _) };
    if acl != pg_sys::AclResult::ACLCHECK_OK && !meta::has_role("worm_auditor") {
        return Err(WormError::NoSelect {
            table: table.to_string(),
        });
    }
    Ok(())
}

/// `f` for every leaf partition of a partitioned table, by name: each must
/// be protected (a partition that is not is reported, not skipped).
pub fn per_partition(
    root: pg_sys::Oid,
    root_name: &str,
    mut f: impl FnMut(pg_sys::Relation, &str) -> Result<Vec<VerifyRow>, WormError>,
) -> Result<Vec<NamedRow>, WormError> {
    let leaves = pg::partition_leaves(root)?;
    if leaves.is_empty() {
        return Ok(vec![table_row(
            true,
            format!("{root_name} has no partitions: nothing to verify"),
            root_name.to_string(),
        )]);
    }
    let mut out = Vec::new();
    for leaf in leaves {
        let Some(rel) = pg::Rel::try_open(leaf, pg_sys::AccessShareLock as _) else {
            continue;
        };
        let name = rel.display_name();
        if meta::lookup(leaf)?.is_none() {
            out.push(table_row(
                false,
                format!("partition {name} of {root_name} is not protected by pg_worm: its rows are not chained"),
                name,
            ));
            continue;
        }
        out.extend(named(f(rel.as_ptr(), &name)?, &name));
    }
    Ok(out)
}

/// A report row as a result row of worm.verify.
pub fn to_row(r: ChainRow) -> VerifyRow {
    (
        r.chain,
        r.rows_checked,
        r.ok,
        r.first_bad_seq,
        r.detail,
        r.problems,
        r.head_seq,
        r.head_link,
    )
}

/// The inheritance children of a table, schema-qualified (quoted as needed).
fn inheritance_children(relid: pg_sys::Oid) -> Result<Vec<String>, WormError> {
    Ok(sql::column(
        "SELECT pg_catalog.quote_ident(n.nspname) OPERATOR(pg_catalog.||) '.' \
                OPERATOR(pg_catalog.||) pg_catalog.quote_ident(c.relname) \
           FROM pg_catalog.pg_inherits AS i \
           JOIN pg_catalog.pg_class AS c ON c.oid OPERATOR(pg_catalog.=) i.inhrelid \
           JOIN pg_catalog.pg_namespace AS n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace \
          WHERE i.inhparent OPERATOR(pg_catalog.=) $1 \
          ORDER BY 1",
        &[DatumWithOid::from(relid)],
    )?)
}

/// Problems of the table as a whole (`pg_worm_core::table` words them):
/// inheritance children, row-level security, columns no longer matching
/// their record in the ledger.
///
/// # Safety
/// `rel` must be an open relation (read here: its oid and its pg_class form).
pub(super) unsafe fn table_problems(
    rel: pg_sys::Relation,
    uid: &[u8; 16],
    version: i32,
) -> Result<Vec<String>, WormError> {
    // SAFETY: `rel` is open (the caller's contract).
    let relid = unsafe { (*rel).rd_id };
    let mut out: Vec<String> = inheritance_children(relid)?
        .iter()
        .map(|c| table::inheritance_child_problem(c))
        .collect();
    // SAFETY: an open relation's rd_rel points to its pg_class form.
    let form = unsafe { &*(*rel).rd_rel };
    out.extend(table::row_security_problem(
        form.relrowsecurity,
        form.relforcerowsecurity,
    ));
    if let Some(diff) = columns::mismatch(relid, uid)? {
        out.push(table::columns_problem(&diff));
    }
    out.extend(table::encoding_version_problem(i64::from(version)));
    Ok(out)
}

/// Recomputes every row hash and chain link of a protected table.
#[allow(clippy::type_complexity)]
#[pg_extern(name = "verify", volatile)]
fn worm_verify(
    tbl: PgRelation,
) -> TableIterator<
    'static,
    (
        name!(chain, Option<i32>),
        name!(rows_checked, i64),
        name!(ok, bool),
        name!(first_bad_seq, Option<i64>),
        name!(detail, String),
        name!(problems, i64),
        name!(head_seq, Option<i64>),
        name!(head_link, Option<String>),
        name!(table_name, String),
    ),
> {
    crate::mode::notice_weaker_mode();
    // SAFETY: `tbl` holds the relation open for the call.
    let table = unsafe { rel_display_name(tbl.as_ptr()) };
    let rows = if tbl.is_partitioned_table() {
        per_partition(tbl.oid(), &table, |rel, _| verify_table(rel))
    } else {
        verify_table(tbl.as_ptr()).map(|rows| named(rows, &table))
    };
    let rows = rows.or_raise();
    crate::watch::verified(&tbl, crate::watch::Kind::Full, &rows);
    TableIterator::new(rows)
}

/// `worm.verify` for every protected table, one row per (table, chain).
#[allow(clippy::type_complexity)]
#[pg_extern(name = "verify_all", volatile)]
fn worm_verify_all() -> TableIterator<
    'static,
    (
        name!(table_name, String),
        name!(chain, Option<i32>),
        name!(rows_checked, i64),
        name!(ok, bool),
        name!(first_bad_seq, Option<i64>),
        name!(detail, String),
        name!(problems, i64),
        name!(head_seq, Option<i64>),
        name!(head_link, Option<String>),
    ),
> {
    crate::mode::notice_weaker_mode();
    let mut out = Vec::new();
    for (relid, name) in meta::all().or_raise() {
        let Some(rel) = pg::Rel::try_open(relid, pg_sys::AccessShareLock as _) else {
            out.push((
                name,
                None,
                0,
                false,
                None,
                "the protected table no longer exists: it was dropped".to_string(),
                1,
                None,
                None,
            ));
            continue;
        };
        for r in verify_table(rel.as_ptr()).or_raise() {
            out.push((name.clone(), r.0, r.1, r.2, r.3, r.4, r.5, r.6, r.7));
        }
    }
    crate::watch::verified_all(&out);
    TableIterator::new(out)
}

/// The outcome of verifying one table.
pub struct Verified {
    /// The table's registry entry, as read for this verification.
    pub meta: meta::TableMeta,
    /// worm.verify's report: the chains, stray rows, the table as a whole.
    pub rows: Vec<ChainRow>,
    /// The rows read, per chain (kept only when asked for).
    pub records: ByChain,
    /// The usable purge anchors.
    pub anchors: HashMap<i32, Anchor>,
    /// The purge anchors as stored (also the unusable ones).
    pub anchor_entries: BTreeMap<i32, AnchorEntry>,
}

impl Verified {
    pub fn ok(&self) -> bool {
        self.rows.iter().all(|r| r.ok)
    }
    pub fn rows_checked(&self) -> i64 {
        self.rows.iter().map(|r| r.rows_checked).sum()
    }
    /// One line per problem row, for error messages.
    pub fn problems_text(&self) -> String {
        self.rows
            .iter()
            .filter(|r| !r.ok)
            .map(|r| match r.chain {
                Some(c) => format!("chain {c}: {}", r.detail),
                // Rows without a chain, or the table as a whole: the detail says which.
                None => r.detail.clone(),
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
    /// Per chain, its anchor and the (seq, link) of its rows (needs the records kept).
    pub fn chain_states(&self) -> BTreeMap<i32, ChainState> {
        chain_states(self.meta.chains, &self.anchor_entries, &self.records)
    }
}

fn verify_table(rel: pg_sys::Relation) -> Result<Vec<VerifyRow>, WormError> {
    let verified = verify_rel(rel, false)?;
    // SAFETY: the caller holds `rel` open; it is protected (verify_rel).
    unsafe { notice_if_not_worm_heap(rel) };
    Ok(verified.rows.into_iter().map(to_row).collect())
}

/// A NOTICE when a protected table does not use worm_heap: restored from a
/// dump taken without table access methods (`--no-table-access-method`, or
/// by 0.1.0), its rows are intact but UPDATE and DELETE are refused only by
/// its triggers. The fix is one statement, which the guards allow.
///
/// # Safety
/// `rel` is open.
unsafe fn notice_if_not_worm_heap(rel: pg_sys::Relation) {
    use crate::names::AM_NAME;
    // SAFETY: `rel` is open (caller).
    let (kind, relam) = unsafe { ((*(*rel).rd_rel).relkind as u8, (*(*rel).rd_rel).relam) };
    if kind != pg_sys::RELKIND_RELATION || pg::worm_heap_oid() == Some(relam) {
        return;
    }
    // SAFETY: as above.
    let table = unsafe { rel_display_name(rel) };
    pgrx::notice!(
        "table {table} does not use pg_worm's access method {AM_NAME}: UPDATE, DELETE and TRUNCATE are refused only by its triggers; run ALTER TABLE {table} SET ACCESS METHOD {AM_NAME}"
    );
}

/// The purge anchors of a table as stored, unusable ones included (a malformed anchor is a
/// broken chain, not a failed verification).
pub(super) fn anchor_entries(uid: &[u8; 16]) -> Result<BTreeMap<i32, AnchorEntry>, WormError> {
    let stored = meta::stored_anchors(uid)?;
    // Should a chain have several, the latest purge (highest seq, sorted last) counts.
    Ok(stored
        .into_iter()
        .filter_map(|(chain, seq, link)| {
            chain.map(|c| (c, AnchorEntry::from_stored(seq, link.as_deref())))
        })
        .collect())
}

/// Verifies an open protected relation; `keep_records` keeps the rows read.
/// `rel` must be open for the whole call (a `PgRelation`'s or `pg::Rel`'s pointer).
pub fn verify_rel(rel: pg_sys::Relation, keep_records: bool) -> Result<Verified, WormError> {
    // SAFETY (all blocks below): `rel` is an open relation, held by the caller
    // for the whole call.
    let relid = unsafe { (*rel).rd_id };
    let table = unsafe { rel_display_name(rel) };
    let meta = meta::lookup(relid)?.ok_or(WormError::NotProtected {
        table: table.clone(),
    })?;
    require_select(relid, &table)?;
    let anchor_entries = anchor_entries(&meta.uid)?;
    let plan = unsafe { encode::build_plan(rel, &table, true)? };
    let whole_table = unsafe { table_problems(rel, &meta.uid, meta.encoding_version)? };
    let (rows, records) = match plan.index {
        // Streaming: per chain through the chain index, memory bounded by the
        // number of chains and the largest row.
        Some(index) if !keep_records => {
            let t = Streamed {
                rel,
                plan: &plan,
                index,
                uid: &meta.uid,
                chains: meta.chains,
                anchors: &anchor_entries,
                table: &table,
            };
            // SAFETY: `rel` is open, `plan` built for it, `index` its chain index.
            (unsafe { t.verify(whole_table) }, ByChain::new())
        }
        // Every row in memory: the records are wanted (checkpoint, purge,
        // retire), or there is no chain index to read the chains through.
        _ => {
            let by_chain = unsafe { scan(rel, &plan) };
            let records = if keep_records {
                by_chain.clone()
            } else {
                BTreeMap::new()
            };
            let rows = pg_worm_core::verify_table(
                &meta.uid,
                meta.chains,
                &anchor_entries,
                by_chain,
                whole_table,
            );
            (rows, records)
        }
    };
    let anchors = anchor_entries
        .iter()
        .filter_map(|(c, a)| a.good().map(|a| (*c, *a)))
        .collect();
    Ok(Verified {
        meta,
        rows,
        records,
        anchors,
        anchor_entries,
    })
}

/// `worm.progress_rows`: a NOTICE every this many rows of a verification (0: none).
static PROGRESS_ROWS: GucSetting<i32> = GucSetting::<i32>::new(0);

/// `worm.verify_parallel_workers`: parallel workers of one worm.verify
/// (-1: as `max_parallel_workers_per_gather` allows; 0: none).
static PARALLEL_WORKERS: GucSetting<i32> = GucSetting::<i32>::new(-1);

/// Defines verification's settings (called from `_PG_init`).
pub fn init_gucs() {
    GucRegistry::define_int_guc(
        c"worm.verify_parallel_workers",
        c"pg_worm: parallel workers that read a table's chains in worm.verify (-1: max_parallel_workers_per_gather; 0: none).",
        c"The chains are split across the verifying backend and the workers; the report is the same.",
        &PARALLEL_WORKERS,
        -1,
        1024,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"worm.progress_rows",
        c"pg_worm: a NOTICE every this many rows of worm.verify (0: none).",
        c"Long verifications report their progress: rows verified, the table and the chain.",
        &PROGRESS_ROWS,
        0,
        i32::MAX,
        GucContext::Userset,
        GucFlags::default(),
    );
}

/// Rows verified so far in one call, with a NOTICE every `worm.progress_rows`.
struct Progress<'a> {
    every: i64,
    rows: i64,
    table: &'a str,
    chains: i32,
    /// Parallel verification: a counter of the rows of every participant,
    /// added to [`SHARED_BATCH`] rows at a time; the NOTICEs report it.
    shared: Option<&'a std::sync::atomic::AtomicI64>,
    /// NOTICEs sent so far (the rows they reported, divided by `every`).
    reported: i64,
}

/// Rows a participant of a parallel verification counts before adding them
/// to the shared counter.
const SHARED_BATCH: i64 = 256;

impl<'a> Progress<'a> {
    fn new(every: i64, table: &'a str, chains: i32) -> Progress<'a> {
        Progress {
            every,
            rows: 0,
            table,
            chains,
            shared: None,
            reported: 0,
        }
    }

    fn row(&mut self, chain: i32) {
        self.rows += 1;
        if self.rows % 4096 == 0 {
            pgrx::check_for_interrupts!();
        }
        let total = match self.shared {
            None => self.rows,
            Some(_) if self.rows % SHARED_BATCH != 0 => return,
            Some(s) => {
                s.fetch_add(SHARED_BATCH, std::sync::atomic::Ordering::Relaxed) + SHARED_BATCH
            }
        };
        if self.every > 0 && total / self.every > self.reported {
            self.reported = total / self.every;
            pgrx::notice!(
                "pg_worm: verified {} rows of {} (chain {chain}; {} of {} chains)",
                self.reported * self.every,
                self.table,
                chain.saturating_add(1),
                self.chains
            );
        }
    }
}

/// A row whose stored values do not fit where the chain index lists it (a
/// page edited under the index): another chain's, or out of seq order. Kept
/// aside and merged back into its chain in a second reading of that chain.
struct Misfit {
    chain: i32,
    tid: (u32, u16),
    record: RowRecord,
}

impl Misfit {
    /// Where it goes in its chain: by seq, then physical position (rows
    /// without a seq last: they are only counted).
    fn key(&self) -> (bool, Option<i64>, (u32, u16)) {
        (self.record.seq.is_none(), self.record.seq, self.tid)
    }
}

/// What a streaming verification of one table reads.
struct Streamed<'a> {
    rel: pg_sys::Relation,
    plan: &'a encode::TablePlan,
    index: pg_sys::Oid,
    uid: &'a [u8; 16],
    chains: i32,
    anchors: &'a BTreeMap<i32, AnchorEntry>,
    table: &'a str,
}

/// What the first reading of the chains collects besides their reports.
#[derive(Default)]
struct FirstPass {
    /// Per chain, rows of it (by their stored worm_chain) the index scans returned.
    through_index: Vec<i64>,
    /// Rows the index scans returned, in all.
    index_rows: i64,
    /// Rows of no chain of the table, by their stored worm_chain.
    strays: table_verify::Strays,
    misfits: Vec<Misfit>,
    /// The index returned a row twice in a row.
    relisted: bool,
}

impl FirstPass {
    fn new(chains: i32) -> FirstPass {
        FirstPass {
            through_index: vec![0; usize::try_from(chains).unwrap_or(0)],
            ..FirstPass::default()
        }
    }
}

impl Streamed<'_> {
    fn in_range(&self, c: Option<i32>) -> Option<i32> {
        c.filter(|c| (0..self.chains).contains(c))
    }

    /// The report rows: every chain read in seq order through the chain
    /// index into a streaming verifier, and the rows of no chain of the
    /// table through index ranges; the rows the index scans returned compared
    /// with a plain count of the table's rows. When they differ, a sequential
    /// scan reading worm_chain (no hashing) counts the rows per chain and
    /// finds the rows of no chain: rows the index does not list (or lists
    /// twice) are a problem of their chain.
    ///
    /// # Safety
    /// `rel` is open, `plan` built for it and `index` its chain index.
    unsafe fn verify(&self, whole_table: Vec<String>) -> Vec<ChainRow> {
        let every = i64::from(PROGRESS_ROWS.get());
        let workers = parallel::planned_workers(self.rel, self.chains);
        // SAFETY (both): the caller's contract.
        let (in_table_rows, mut rows, mut first) = if workers > 0 {
            unsafe { parallel::first_pass(self, workers, every) }
        } else {
            unsafe { self.first_pass(every) }
        };
        let mut progress = Progress::new(0, self.table, self.chains);
        // SAFETY: the caller's contract.
        unsafe { self.outside(&mut first) };
        if !first.misfits.is_empty() {
            let mut misfits = first.misfits;
            misfits.sort_by_key(|m| (m.chain, m.key()));
            let mut at = 0;
            while at < misfits.len() {
                let c = misfits[at].chain;
                let end = at + misfits[at..].partition_point(|m| m.chain == c);
                // SAFETY: the caller's contract.
                let again = unsafe { self.chain(c, None, &misfits, &mut progress) };
                if let Some(slot) = usize::try_from(c).ok().and_then(|i| rows.get_mut(i)) {
                    *slot = again;
                }
                at = end;
            }
        }
        if in_table_rows == first.index_rows && !first.relisted {
            return table_verify::table_report(rows, &first.strays, self.chains, whole_table);
        }
        // The index does not show every row as the table holds it: count
        // the rows per chain, and the rows of no chain, in the table itself.
        // SAFETY: the caller's contract.
        let (in_table, strays) = unsafe { self.count() };
        let mut index_name = None;
        for (c, row) in rows.iter_mut().enumerate() {
            let (t, i) = (in_table[c], first.through_index[c]);
            if t != i {
                let name = index_name.get_or_insert_with(|| {
                    pg::Rel::open_index(self.index, pg_sys::AccessShareLock).display_name()
                });
                let c = i32::try_from(c).unwrap_or(i32::MAX);
                if let Some(p) = table_verify::unindexed_rows_problem(self.table, name, c, t, i) {
                    row.add_problem(None, &p);
                }
            }
        }
        table_verify::table_report(rows, &strays, self.chains, whole_table)
    }

    /// The first reading of every chain, in this backend: the table's row
    /// count, the chains' reports, what the reading collected besides.
    ///
    /// # Safety
    /// As for [`Streamed::verify`].
    unsafe fn first_pass(&self, every: i64) -> (i64, Vec<ChainRow>, FirstPass) {
        // SAFETY: the caller's contract.
        let in_table_rows = unsafe { self.count_all() };
        let mut progress = Progress::new(every, self.table, self.chains);
        let mut first = FirstPass::new(self.chains);
        let rows: Vec<ChainRow> = (0..self.chains)
            // SAFETY: the caller's contract.
            .map(|c| unsafe { self.chain(c, Some(&mut first), &[], &mut progress) })
            .collect();
        (in_table_rows, rows, first)
    }

    /// The number of rows of the table, from a sequential scan that reads no
    /// value.
    ///
    /// # Safety
    /// As for [`Streamed::verify`].
    unsafe fn count_all(&self) -> i64 {
        let mut n: i64 = 0;
        let each = |_: pg::Slot<'_>| {
            n += 1;
            if n % 65536 == 0 {
                pgrx::check_for_interrupts!();
            }
            ControlFlow::<()>::Continue(())
        };
        // SAFETY: `rel` is an open table (the caller's contract).
        unsafe { pg::scan_heap(self.rel, pg::ScanSnapshot::Active, each) };
        n
    }

    /// The rows the chain index lists below chain 0 and from chain `chains`
    /// on: rows of no chain of the table, or (a page edited under the index)
    /// of one whose index entry says otherwise.
    ///
    /// # Safety
    /// As for [`Streamed::verify`].
    unsafe fn outside(&self, first: &mut FirstPass) {
        let below = pg::chain_key::chain_below(0);
        let above = pg::chain_key::chain_from(self.chains);
        let mut per_row = PgMemoryContexts::new("pg_worm verify row");
        for key in [below, above] {
            let each = |slot: pg::Slot<'_>| {
                let tid = slot.tid();
                let (values, nulls) = slot.values();
                // SAFETY: as in `chain`.
                let (chain, record) =
                    unsafe { per_row.switch_to(|_| row_record(self.plan, values, nulls)) };
                // SAFETY: nothing allocated in per_row is used after this point.
                unsafe { per_row.reset() };
                first.index_rows += 1;
                match self.in_range(chain) {
                    Some(d) => {
                        first.through_index[d as usize] += 1;
                        first.misfits.push(Misfit {
                            chain: d,
                            tid,
                            record,
                        });
                    }
                    None => first.strays.entry(chain).or_default().add(record.seq),
                }
                ControlFlow::<()>::Continue(())
            };
            // SAFETY: `rel` is an open table and `index` its (worm_chain,
            // worm_seq) btree; the key compares its int4 first column.
            unsafe {
                pg::index_forward(self.rel, self.index, &[key], pg::ScanSnapshot::Active, each)
            };
        }
    }

    /// Rows per chain, and the stray rows, from a sequential scan that reads
    /// only worm_chain (and worm_seq of stray rows).
    ///
    /// # Safety
    /// As for [`Streamed::verify`].
    unsafe fn count(&self) -> (Vec<i64>, table_verify::Strays) {
        let mut per_chain = vec![0i64; usize::try_from(self.chains).unwrap_or(0)];
        let mut strays = table_verify::Strays::new();
        let mut n: u64 = 0;
        let each = |slot: pg::Slot<'_>| {
            let chain = slot.get(self.plan.chain_att).map(|d| d.value() as i32);
            match self.in_range(chain) {
                Some(c) => per_chain[c as usize] += 1,
                None => {
                    let seq = slot.get(self.plan.seq_att).map(|d| d.value() as i64);
                    strays.entry(chain).or_default().add(seq);
                }
            }
            n += 1;
            if n.is_multiple_of(65536) {
                pgrx::check_for_interrupts!();
            }
            ControlFlow::<()>::Continue(())
        };
        // SAFETY: `rel` is an open table (the caller's contract).
        unsafe { pg::scan_heap(self.rel, pg::ScanSnapshot::Active, each) };
        (per_chain, strays)
    }

    /// Chain `c` read through the chain index into a streaming verifier.
    /// First reading (`first` given): counts the rows and sets misfits
    /// aside. Second reading: skips the misfits and merges those of this
    /// chain (`misfits`, sorted) in at their places.
    ///
    /// # Safety
    /// As for [`Streamed::verify`].
    unsafe fn chain(
        &self,
        c: i32,
        mut first: Option<&mut FirstPass>,
        misfits: &[Misfit],
        progress: &mut Progress<'_>,
    ) -> ChainRow {
        let mut stream = table_verify::ChainStream::new(self.uid, c, self.anchors.get(&c));
        let set_aside: HashSet<(u32, u16)> = misfits.iter().map(|m| m.tid).collect();
        let mut mine = misfits.iter().filter(|m| m.chain == c).peekable();
        let mut last: Option<(i64, (u32, u16))> = None;
        let mut per_row = PgMemoryContexts::new("pg_worm verify row");
        let keys = [pg::chain_key::chain_is(c)];
        let each = |slot: pg::Slot<'_>| {
            let tid = slot.tid();
            let (values, nulls) = slot.values();
            // SAFETY: the slot's deformed row, of the table `plan` was built
            // for; what row_record allocates in per_row is read only inside it.
            let (chain, record) =
                unsafe { per_row.switch_to(|_| row_record(self.plan, values, nulls)) };
            // SAFETY: nothing allocated in per_row is used after this point.
            unsafe { per_row.reset() };
            let stored = self.in_range(chain);
            if let Some(f) = first.as_deref_mut() {
                f.index_rows += 1;
                match stored {
                    Some(d) => f.through_index[d as usize] += 1,
                    None => f.strays.entry(chain).or_default().add(record.seq),
                }
            }
            if chain != Some(c) || set_aside.contains(&tid) {
                // Another chain's row, or a row of no chain of the table.
                if let (Some(f), Some(d)) = (first.as_deref_mut(), stored.filter(|d| *d != c)) {
                    f.misfits.push(Misfit {
                        chain: d,
                        tid,
                        record,
                    });
                }
                return ControlFlow::<()>::Continue(());
            }
            if let Some(key) = record.seq.map(|s| (s, tid)) {
                if last == Some(key) {
                    // The same row again: an index entry repeated, not a
                    // row of the table (the counts say so).
                    if let Some(f) = first.as_deref_mut() {
                        f.relisted = true;
                    }
                    return ControlFlow::Continue(());
                }
                if last.is_some_and(|l| l > key) {
                    if let Some(f) = first.as_deref_mut() {
                        f.misfits.push(Misfit {
                            chain: c,
                            tid,
                            record,
                        });
                    }
                    return ControlFlow::Continue(());
                }
                while let Some(m) = mine.next_if(|m| m.key() < (false, Some(key.0), key.1)) {
                    let _ = stream.push(&m.record);
                }
                last = Some(key);
            }
            // In seq order by construction.
            let _ = stream.push(&record);
            if first.is_some() {
                progress.row(c);
            }
            ControlFlow::Continue(())
        };
        // SAFETY: `rel` is an open table and `index` its (worm_chain,
        // worm_seq) btree; the key compares its int4 first column.
        unsafe { pg::index_forward(self.rel, self.index, &keys, pg::ScanSnapshot::Active, each) };
        for m in mine {
            let _ = stream.push(&m.record);
        }
        stream.finish()
    }
}

/// Every row of `rel` under the active snapshot, hashed with `plan`, grouped by chain.
///
/// # Safety
/// `rel` must be an open relation and `plan` built for it.
unsafe fn scan(rel: pg_sys::Relation, plan: &encode::TablePlan) -> ByChain {
    let mut by_chain = ByChain::new();
    let mut per_row = PgMemoryContexts::new("pg_worm verify row");
    let mut n: u64 = 0;
    let each = |slot: pg::Slot<'_>| {
        let (values, nulls) = slot.values();
        // SAFETY: `values`/`nulls` are the slot's deformed row, of the
        // relation `plan` was built for; what row_record allocates in per_row
        // is read only inside it (the record it returns is Rust-owned).
        let record = unsafe { per_row.switch_to(|_| row_record(plan, values, nulls)) };
        // Detoasted values, output-function text and deconstructed arrays
        // live in per_row: free them after every row, so a large value is
        // held once, not once per row of a batch.
        // SAFETY: nothing allocated in per_row is used after this point.
        unsafe { per_row.reset() };
        by_chain.entry(record.0).or_default().push(record.1);
        n += 1;
        if n.is_multiple_of(4096) {
            pgrx::check_for_interrupts!();
        }
        ControlFlow::<()>::Continue(())
    };
    // SAFETY: `rel` is an open table (the caller's contract).
    unsafe { pg::scan_heap(rel, pg::ScanSnapshot::Active, each) };
    by_chain
}

/// One row as verification needs it: its chain, and its position, time,
/// stored link and row hash recomputed from its values.
///
/// # Safety
/// `values`/`nulls` are a deformed row of the relation `plan` was built for.
pub(super) unsafe fn row_record(
    plan: &encode::TablePlan,
    values: &[pg_sys::Datum],
    nulls: &[bool],
) -> (Option<i32>, RowRecord) {
    // SAFETY: the caller's contract.
    let row_hash = unsafe { encode::row_hash_deformed(plan, values, nulls) };
    let get = |att: i16| {
        let i = usize::try_from(att - 1).ok()?;
        (!*nulls.get(i)?).then(|| values[i])
    };
    let chain = get(plan.chain_att).map(|d| d.value() as i32);
    let seq = get(plan.seq_att).map(|d| d.value() as i64);
    let inserted_at = get(plan.inserted_at_att).map(|d| d.value() as i64);
    // SAFETY: worm_hash is a bytea column of this row.
    let stored_link = get(plan.hash_att).map(|d| unsafe { encode::varlena_bytes(d) }.to_vec());
    let record = RowRecord {
        seq,
        inserted_at,
        stored_link,
        row_hash,
    };
    (chain, record)
}

/// The last row of every chain, as of the current snapshot (wrapped by the
/// SQL function worm.chain_heads(regclass); takes an oid so that the view
/// keeps working when a protected table has been dropped).
#[allow(clippy::type_complexity)]
#[pg_extern(name = "_chain_heads", stable)]
fn worm_chain_heads(
    tbl: pg_sys::Oid,
) -> TableIterator<
    'static,
    (
        name!(chain, i32),
        name!(head_seq, i64),
        name!(head_link, Option<String>),
        name!(anchor_seq, i64),
    ),
> {
    let mut out = Vec::new();
    let Some(rel) = pg::Rel::try_open(tbl, pg_sys::AccessShareLock as _) else {
        return TableIterator::new(out);
    };
    let table = rel.display_name();
    let result = (|| -> Result<(), WormError> {
        let Some(meta) = meta::lookup(tbl)? else {
            return Ok(());
        };
        // SAFETY: `rel` is open for the whole closure.
        let plan = unsafe { encode::build_plan(rel.as_ptr(), &table, true)? };
        let anchors = meta::anchors(&meta.uid)?;
        for c in 0..meta.chains {
            // SAFETY: GetActiveSnapshot only reads the snapshot stack.
            let snap = Some(unsafe { pg_sys::GetActiveSnapshot() });
            // SAFETY: `rel` is open and `plan` built for it.
            let h = unsafe { chain::read_head(rel.as_ptr(), &plan, &meta.uid, c, snap)? };
            let anchor_seq = anchors.get(&c).map_or(0, |a| a.seq);
            let link = (h.seq > 0).then(|| hex::encode(h.link));
            out.push((c, h.seq, link, anchor_seq));
        }
        Ok(())
    })();
    drop(rel);
    result.or_raise();
    TableIterator::new(out)
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    /// (chain, ok, detail) of the rows of `query`.
    fn problems_with(
        query: &str,
        args: &[pgrx::datum::DatumWithOid<'_>],
    ) -> Vec<(Option<i32>, bool, String)> {
        Spi::connect(|client| {
            let mut out = Vec::new();
            for r in client.select(query, None, args)? {
                out.push((
                    r.get::<i32>(1)?,
                    r.get::<bool>(2)?.unwrap_or(true),
                    r.get::<String>(3)?.unwrap_or_default(),
                ));
            }
            Ok::<_, pgrx::spi::SpiError>(out)
        })
        .unwrap_or_default()
    }

    fn verify_problems(table: &str) -> Vec<(Option<i32>, bool, String)> {
        problems_with(
            &format!("SELECT chain, ok, detail FROM worm.verify('{table}') WHERE NOT ok"),
            &[],
        )
    }

    fn protected(table: &str, rows: i32) {
        Spi::run(&format!("CREATE TABLE {table} (id int, note text)")).unwrap();
        Spi::run(&format!("SELECT worm.protect('{table}', chains => 2)")).unwrap();
        Spi::run(&format!(
            "INSERT INTO {table} SELECT g, 'n' || g FROM generate_series(1, {rows}) g"
        ))
        .unwrap();
        assert_eq!(verify_problems(table), vec![]);
    }

    /// An inheritance child supplies rows to every SELECT of the table; verify
    /// (all variants) names it. pg_worm refuses to create one now, so the test
    /// attaches it in the catalog, the state a child made before leaves.
    #[pg_test]
    fn inheritance_child_is_reported() {
        protected("t_parent", 6);
        let digest = Spi::get_one::<pgrx::JsonB>("SELECT worm.checkpoint('t_parent')")
            .unwrap()
            .unwrap();
        Spi::run("CREATE TABLE fake (LIKE t_parent)").unwrap();
        Spi::run("INSERT INTO fake VALUES (99, 'forged', 0, 99, pg_catalog.now(), '\\x00'::bytea)")
            .unwrap();
        Spi::run(
            "INSERT INTO pg_catalog.pg_inherits (inhrelid, inhparent, inhseqno, inhdetachpending) \
             VALUES ('fake'::regclass, 't_parent'::regclass, 1, false); \
             UPDATE pg_catalog.pg_class SET relhassubclass = true WHERE oid = 't_parent'::regclass",
        )
        .unwrap();
        // The finding: the forged row shows in SELECTs of the table...
        assert_eq!(
            Spi::get_one::<i64>("SELECT count(*) FROM t_parent").unwrap(),
            Some(7)
        );
        // ...and every verify says so, in a row of its own; the chains still verify.
        let want = (
            None,
            false,
            "table has an inheritance child public.fake whose rows every SELECT of the table \
             also returns (no chain covers them; query the table with ONLY, or drop the child)"
                .to_string(),
        );
        assert_eq!(verify_problems("t_parent"), vec![want.clone()]);
        let all = problems_with(
            "SELECT chain, ok, detail FROM worm.verify_all() \
             WHERE NOT ok AND table_name = 't_parent'::regclass::text",
            &[],
        );
        assert_eq!(all, vec![want.clone()]);
        let against = problems_with(
            "SELECT chain, ok, detail FROM worm.verify('t_parent', $1) WHERE NOT ok",
            &[pgrx::datum::DatumWithOid::from(digest)],
        );
        assert_eq!(against, vec![want]);
        let (rows, chains_ok) = Spi::get_two::<i64, bool>(
            "SELECT sum(rows_checked)::bigint, bool_and(ok) FILTER (WHERE chain IS NOT NULL) \
             FROM worm.verify('t_parent')",
        )
        .unwrap();
        assert_eq!((rows, chains_ok), (Some(6), Some(true)));
    }

    #[pg_test]
    fn row_level_security_is_reported() {
        protected("t_rls", 3);
        // pg_worm may refuse ALTER TABLE ... ENABLE ROW LEVEL SECURITY; the
        // catalog flag is what SELECTs obey.
        Spi::run(
            "UPDATE pg_catalog.pg_class SET relrowsecurity = true WHERE oid = 't_rls'::regclass",
        )
        .unwrap();
        assert_eq!(
            verify_problems("t_rls"),
            vec![(
                None,
                false,
                "row-level security is enabled: SELECTs may hide rows".to_string()
            )]
        );
        Spi::run(
            "UPDATE pg_catalog.pg_class SET relforcerowsecurity = true WHERE oid = 't_rls'::regclass",
        )
        .unwrap();
        let p = verify_problems("t_rls");
        assert_eq!(p.len(), 1);
        assert!(p[0]
            .2
            .starts_with("row-level security is enabled and forced"));
    }

    /// A purge anchor whose link is not 32 bytes is a broken chain (as in
    /// worm-verify), not an internal error.
    #[pg_test]
    fn malformed_anchor_is_a_broken_chain() {
        protected("t_anchor", 4);
        // worm.anchors' CHECK constraints keep such a link out: switch them
        // off in the catalog, the state a restore without them leaves.
        Spi::run(
            "UPDATE pg_catalog.pg_class SET relchecks = 0 WHERE oid = 'worm.anchors'::regclass",
        )
        .unwrap();
        Spi::run(
            "INSERT INTO worm.anchors (table_uid, chain, seq, link, inserted_at) \
             SELECT table_uid, 0, 1, '\\x010203'::bytea, pg_catalog.now() FROM worm.tables \
              WHERE table_name = 't_anchor'::regclass",
        )
        .unwrap();
        let p = verify_problems("t_anchor");
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].0, Some(0));
        assert!(
            p[0].2.starts_with(
                "the purge anchor in worm.anchors is unusable: its link has 3 bytes, not 32"
            ),
            "{p:?}"
        );
    }

    /// Swapping two column names keeps every row hash valid; verify compares
    /// the columns with the list worm.protect recorded in the ledger.
    #[pg_test]
    fn swapped_column_names_are_reported() {
        Spi::run("CREATE TABLE t_cols (id int, diagnosis text, ruled_out text)").unwrap();
        Spi::run("SELECT worm.protect('t_cols', chains => 1)").unwrap();
        Spi::run("INSERT INTO t_cols VALUES (1, 'flu', 'measles')").unwrap();
        let uid = Spi::get_one::<pgrx::Uuid>(
            "SELECT table_uid FROM worm.tables WHERE table_name = 't_cols'::regclass",
        )
        .unwrap()
        .unwrap();
        let relid = Spi::get_one::<pg_sys::Oid>("SELECT 't_cols'::regclass::oid")
            .unwrap()
            .unwrap();
        assert!(
            crate::verify::columns::recorded(uid.as_bytes())
                .unwrap()
                .is_some(),
            "worm.protect records the column list in the ledger"
        );
        assert_eq!(
            crate::verify::columns::mismatch(relid, uid.as_bytes()).unwrap(),
            None
        );
        assert_eq!(verify_problems("t_cols"), vec![]);
        // pg_worm refuses RENAME COLUMN; the catalog is what a rename changes.
        Spi::run(
            "UPDATE pg_catalog.pg_attribute SET attname = 'tmp' \
              WHERE attrelid = 't_cols'::regclass AND attname = 'diagnosis'; \
             UPDATE pg_catalog.pg_attribute SET attname = 'diagnosis' \
              WHERE attrelid = 't_cols'::regclass AND attname = 'ruled_out'; \
             UPDATE pg_catalog.pg_attribute SET attname = 'ruled_out' \
              WHERE attrelid = 't_cols'::regclass AND attname = 'tmp'",
        )
        .unwrap();
        let diff = "column 2 was \"diagnosis\" (text) when recorded, is now \"ruled_out\" (text); \
                    column 3 was \"ruled_out\" (text) when recorded, is now \"diagnosis\" (text)";
        assert_eq!(
            crate::verify::columns::mismatch(relid, uid.as_bytes())
                .unwrap()
                .as_deref(),
            Some(diff)
        );
        let p = verify_problems("t_cols");
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].0, None);
        assert_eq!(p[0].2, pg_worm_core::table::columns_problem(diff));
    }

    /// A row the chain index does not list (written while the index was not
    /// ready, the state a page edit of the index leaves) is reported on its
    /// chain, naming the table and the index.
    #[pg_test]
    fn rows_missing_from_the_chain_index_are_reported() {
        Spi::run("CREATE TABLE t_unindexed (id int)").unwrap();
        Spi::run("SELECT worm.protect('t_unindexed', chains => 1)").unwrap();
        Spi::run("INSERT INTO t_unindexed SELECT g FROM generate_series(1, 5) g").unwrap();
        Spi::run(
            "UPDATE pg_catalog.pg_index SET indisready = false \
              WHERE indrelid = 't_unindexed'::regclass",
        )
        .unwrap();
        Spi::run("INSERT INTO t_unindexed VALUES (6)").unwrap();
        Spi::run(
            "UPDATE pg_catalog.pg_index SET indisready = true \
              WHERE indrelid = 't_unindexed'::regclass",
        )
        .unwrap();
        let p = verify_problems("t_unindexed");
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].0, Some(0));
        // Row 6 is the chain's last: no gap, only the row the index does
        // not list (inside this one transaction the insert did not see the
        // index at all).
        assert!(
            p[0].2.starts_with(
                "1 row(s) of chain 0 in public.t_unindexed are not in its chain \
                 index public.t_unindexed_worm_chain_worm_seq_idx"
            ),
            "{p:?}"
        );
        // After REINDEX the chain verifies.
        Spi::run("REINDEX TABLE t_unindexed").unwrap();
        assert_eq!(verify_problems("t_unindexed"), vec![]);
    }

    /// worm.progress_rows is a setting (0 by default) that verify reads.
    #[pg_test]
    fn progress_rows_is_a_setting() {
        assert_eq!(
            Spi::get_one::<String>("SHOW worm.progress_rows").unwrap(),
            Some("0".to_string())
        );
        protected("t_progress", 5);
        Spi::run("SET worm.progress_rows = 2").unwrap();
        assert_eq!(verify_problems("t_progress"), vec![]);
    }

    /// Kilobytes of a /proc/self/status field.
    fn status_kb(field: &str) -> i64 {
        std::fs::read_to_string("/proc/self/status")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// Per-row memory (detoasted values) is released after every row: verify
    /// of 16 rows of 8 MB peaks at about one row, not at all of them.
    #[pg_test]
    fn verify_releases_memory_every_row() {
        if !std::path::Path::new("/proc/self/clear_refs").exists() {
            return;
        }
        Spi::run("CREATE TABLE t_big (id int, v text)").unwrap();
        Spi::run("ALTER TABLE t_big ALTER COLUMN v SET STORAGE EXTERNAL").unwrap();
        Spi::run("SELECT worm.protect('t_big', chains => 1)").unwrap();
        for i in 0..16 {
            Spi::run(&format!(
                "INSERT INTO t_big SELECT {i}, string_agg(md5(random()::text), '') \
                 FROM generate_series(1, 262144)"
            ))
            .unwrap();
        }
        // Touch every shared buffer the scans will touch, so that the peak
        // below measures this backend's own memory.
        Spi::run("SELECT count(md5(v)) FROM t_big").unwrap();
        Spi::run("SELECT count(*) FROM worm.verify('t_big')").unwrap();
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        let before = status_kb("VmRSS:");
        let ok = Spi::get_one::<bool>("SELECT bool_and(ok) FROM worm.verify('t_big')").unwrap();
        let peak = status_kb("VmHWM:");
        assert_eq!(ok, Some(true));
        let grew_mb = (peak - before) / 1024;
        assert!(
            grew_mb < 64,
            "verify of 16 rows of 8 MB raised the backend's peak RSS by {grew_mb} MB"
        );
    }
}
