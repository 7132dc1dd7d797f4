//! worm.verify, worm.verify_all and worm.chain_heads.
//!
//! Verification only reads: a sequential scan of the table under the
//! statement's snapshot, the row hashes recomputed from the stored values, and
//! per chain the pure checks of `pg_worm_core::verify_chain`. It assigns no
//! transaction id, so it also runs on a hot standby.
//!
//! Memory: every row is detoasted and encoded in a short-lived memory context
//! that is reset after the row, and the encoder hashes a value where it lies,
//! so a large value costs about its own size, once, not once per row read.

use crate::chain;
use crate::encode;
use crate::error::{OrRaise, WormError};
use crate::meta;
use crate::triggers::rel_display_name;
use pg_worm_core::{verify_chain, Anchor, ChainReport, RowRecord};
use pgrx::prelude::*;
use pgrx::{pg_sys, PgMemoryContexts, PgRelation};
use std::collections::{BTreeMap, HashMap};

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

fn to_row(r: ChainReport, chain: Option<i32>) -> VerifyRow {
    (
        chain,
        r.rows_checked,
        r.ok,
        r.first_bad_seq,
        r.detail,
        r.problems,
        r.head_seq,
        r.head_link.map(hex::encode),
    )
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
    ),
> {
    crate::hooks::notice_weaker_mode();
    let rows = verify_table(&tbl).or_raise();
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
    crate::hooks::notice_weaker_mode();
    let mut out = Vec::new();
    for (relid, name) in meta::all().or_raise() {
        let rel = unsafe { pg_sys::try_relation_open(relid, pg_sys::AccessShareLock as _) };
        if rel.is_null() {
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
        }
        let tbl = unsafe { PgRelation::from_pg_owned(rel) };
        for r in verify_table(&tbl).or_raise() {
            out.push((name.clone(), r.0, r.1, r.2, r.3, r.4, r.5, r.6, r.7));
        }
        drop(tbl);
    }
    TableIterator::new(out)
}

struct Scanned {
    by_chain: BTreeMap<Option<i32>, Vec<RowRecord>>,
}

/// The outcome of verifying one table.
pub struct Verified {
    /// The table's registry entry, as read for this verification.
    pub meta: meta::TableMeta,
    pub rows: Vec<VerifyRow>,
    /// The rows read, per chain (kept only when asked for).
    pub records: BTreeMap<Option<i32>, Vec<RowRecord>>,
    pub anchors: HashMap<i32, Anchor>,
}

impl Verified {
    pub fn ok(&self) -> bool {
        self.rows.iter().all(|r| r.2)
    }
    pub fn rows_checked(&self) -> i64 {
        self.rows.iter().map(|r| r.1).sum()
    }
    /// One line per broken chain, for error messages.
    pub fn problems_text(&self) -> String {
        self.rows
            .iter()
            .filter(|r| !r.2)
            .map(|r| match r.0 {
                Some(c) => format!("chain {c}: {}", r.4),
                None => format!("rows without chain: {}", r.4),
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn verify_table(tbl: &PgRelation) -> Result<Vec<VerifyRow>, WormError> {
    Ok(verify_rel(tbl.as_ptr(), false)?.rows)
}

/// Verifies an open protected relation; `keep_records` keeps the rows read.
pub fn verify_rel(rel: pg_sys::Relation, keep_records: bool) -> Result<Verified, WormError> {
    let relid = unsafe { (*rel).rd_id };
    let table = unsafe { rel_display_name(rel) };
    let meta = meta::lookup(relid)?.ok_or(WormError::NotProtected {
        table: table.clone(),
    })?;
    let acl =
        unsafe { pg_sys::pg_class_aclcheck(relid, pg_sys::GetUserId(), pg_sys::ACL_SELECT as _) };
    if acl != pg_sys::AclResult::ACLCHECK_OK && !meta::has_role("worm_auditor") {
        return Err(WormError::NoSelect { table });
    }
    let anchors = meta::anchors(&meta.uid)?;
    let plan = unsafe { encode::build_plan(rel, &table, true)? };
    let scanned = unsafe { scan(rel, &plan) };
    let mut by_chain = scanned.by_chain;
    let records = if keep_records {
        by_chain.clone()
    } else {
        BTreeMap::new()
    };
    let mut out = Vec::new();
    for c in 0..meta.chains {
        let rows = by_chain.remove(&Some(c)).unwrap_or_default();
        out.push(to_row(
            verify_chain(&meta.uid, c, anchors.get(&c), rows),
            Some(c),
        ));
    }
    // Rows outside the table's chains: inserted out of chain.
    for (chain, rows) in by_chain {
        let n = rows.len() as i64;
        let detail = match chain {
            Some(c) => format!(
                "{n} row(s) claim chain {c}, which this table does not have (its chains are 0..{}): rows inserted out of chain",
                meta.chains - 1
            ),
            None => format!("{n} row(s) have no chain (NULL worm_chain): rows inserted out of chain"),
        };
        let first_bad = rows.iter().filter_map(|r| r.seq).min();
        out.push((chain, n, false, first_bad, detail, n, None, None));
    }
    Ok(Verified {
        meta,
        rows: out,
        records,
        anchors,
    })
}

unsafe fn scan(rel: pg_sys::Relation, plan: &encode::TablePlan) -> Scanned {
    let mut by_chain: BTreeMap<Option<i32>, Vec<RowRecord>> = BTreeMap::new();
    let natts = (*(*rel).rd_att).natts as usize;
    let snapshot = pg_sys::GetActiveSnapshot();
    let scan = pg_sys::table_beginscan(rel, snapshot, 0, std::ptr::null_mut());
    let slot = pg_sys::table_slot_create(rel, std::ptr::null_mut());
    let mut per_row = PgMemoryContexts::new("pg_worm verify row");
    let mut n: u64 = 0;
    while pg_sys::table_scan_getnextslot(scan, pg_sys::ScanDirection::ForwardScanDirection, slot) {
        pg_sys::slot_getallattrs(slot);
        let values = std::slice::from_raw_parts((*slot).tts_values, natts);
        let nulls = std::slice::from_raw_parts((*slot).tts_isnull, natts);
        let record = per_row.switch_to(|_| {
            let row_hash = encode::row_hash_deformed(plan, values, nulls);
            let get = |att: i16| {
                let i = (att - 1) as usize;
                if nulls[i] {
                    None
                } else {
                    Some(values[i])
                }
            };
            let chain = get(plan.chain_att).map(|d| d.value() as i32);
            let seq = get(plan.seq_att).map(|d| d.value() as i64);
            let inserted_at = get(plan.inserted_at_att).map(|d| d.value() as i64);
            let stored_link = get(plan.hash_att).map(|d| encode::varlena_bytes(d).to_vec());
            (
                chain,
                RowRecord {
                    seq,
                    inserted_at,
                    stored_link,
                    row_hash,
                },
            )
        });
        // Detoasted values, output-function text and deconstructed arrays
        // live in per_row: free them after every row, so a large value is
        // held once, not once per row of a batch.
        per_row.reset();
        by_chain.entry(record.0).or_default().push(record.1);
        n += 1;
        if n.is_multiple_of(4096) {
            pgrx::check_for_interrupts!();
        }
    }
    pg_sys::ExecDropSingleTupleTableSlot(slot);
    pg_sys::table_endscan(scan);
    Scanned { by_chain }
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
    unsafe {
        let rel = pg_sys::try_relation_open(tbl, pg_sys::AccessShareLock as _);
        if rel.is_null() {
            return TableIterator::new(out);
        }
        let table = rel_display_name(rel);
        let result = (|| -> Result<(), WormError> {
            let Some(meta) = meta::lookup(tbl)? else {
                return Ok(());
            };
            let plan = encode::build_plan(rel, &table, true)?;
            let anchors = meta::anchors(&meta.uid)?;
            for c in 0..meta.chains {
                let snap = Some(pg_sys::GetActiveSnapshot());
                let h = chain::read_head(rel, &plan, &meta.uid, c, snap)?;
                let anchor_seq = anchors.get(&c).map_or(0, |a| a.seq);
                let link = (h.seq > 0).then(|| hex::encode(h.link));
                out.push((c, h.seq, link, anchor_seq));
            }
            Ok(())
        })();
        pg_sys::relation_close(rel, pg_sys::AccessShareLock as _);
        result.or_raise();
    }
    TableIterator::new(out)
}
