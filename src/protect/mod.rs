//! worm.protect: turns an ordinary table into a chained, insert-only one.

use crate::catalog::meta;
use crate::error::{OrRaise, WormError};
use crate::insert::encode;
use crate::names::{COL_CHAIN, COL_HASH, COL_INSERTED_AT, COL_SEQ};
use crate::names::{TRIGGER_CHAIN, TRIGGER_REFUSE, TRIGGER_REFUSE_ROW};
use crate::pg::rel_display_name;
use crate::sql;
use pg_worm_core::{Hash, GENESIS};
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::{pg_sys, PgRelation};

pub(crate) mod partition;

pub const MAX_CHAINS: i32 = 1024;

// tgtype bits (catalog/pg_trigger.h)
const TRIGGER_TYPE_ROW: i16 = 1 << 0;
const TRIGGER_TYPE_BEFORE: i16 = 1 << 1;
const TRIGGER_TYPE_INSERT: i16 = 1 << 2;
const TRIGGER_TYPE_UPDATE: i16 = 1 << 4;

/// Makes `tbl` immutable and chained. See README, "SQL reference".
#[pg_extern(name = "protect", volatile)]
fn worm_protect(
    tbl: PgRelation,
    retention: default!(Option<pgrx::datum::Interval>, "NULL"),
    chains: default!(i32, 32),
    legal_basis: default!(Option<String>, "NULL"),
) -> String {
    protect(tbl, retention, chains, legal_basis).or_raise()
}

fn protect(
    tbl: PgRelation,
    retention: Option<pgrx::datum::Interval>,
    chains: i32,
    legal_basis: Option<String>,
) -> Result<String, WormError> {
    crate::mode::require_primary("worm.protect")?;
    if tbl.is_partitioned_table() {
        return partition::protect_parent(tbl, retention, chains, legal_basis);
    }
    let relid = tbl.oid();
    // SAFETY: `tbl` holds the relation open and locked for this call.
    let table = unsafe { rel_display_name(tbl.as_ptr()) };
    // A partition is protected through its partitioned table (its columns
    // cannot be added to it alone).
    if let Some(parent) = crate::pg::partition_parent(relid) {
        if meta::lookup(relid)?.is_none() {
            let parent = crate::pg::Rel::cached(parent)
                .map(|r| r.display_name())
                .unwrap_or_default();
            return Err(WormError::IsPartition { table, parent });
        }
    }
    let owner = check_protectable(&tbl, &table, chains, retention.as_ref(), false)?;
    // ALTER TABLE refuses a relation this function still holds open.
    drop(tbl);

    let existing = meta::as_role(owner, || {
        sql::get_one::<i64>(&format!("SELECT pg_catalog.count(*) FROM ONLY {table}"))
    })?
    .unwrap_or(0);
    check_triggers(relid, &table, existing > 0)?;

    let uid: pgrx::Uuid = sql::get_one::<pgrx::Uuid>("SELECT pg_catalog.gen_random_uuid()")?
        .ok_or_else(|| WormError::Internal("gen_random_uuid returned NULL".into()))?;
    let uid_bytes: [u8; 16] = *uid.as_bytes();
    let chained = meta::as_role(owner, || install_chain(relid, &table, &uid_bytes, chains))?;
    // Code of the owner's may have run while existing rows were chained
    // (CHECK constraints, AFTER UPDATE triggers): what protect refuses must
    // still be absent now that the table is protected.
    {
        // SAFETY: `relid` is the table being protected, which exists and is
        // locked by this transaction; the relation is open while it is read.
        unsafe {
            let rel = PgRelation::with_lock(relid, pg_sys::AccessShareLock as _);
            refuse_unprotectable(rel.as_ptr(), &table)?;
        }
    }
    check_triggers(relid, &table, false)?;
    meta::register(relid, uid, chains, retention, legal_basis.clone(), chained)?;
    crate::guard::database::mark_current()?;
    grant_auditors(owner, &table)?;
    let fields = protection_fields(relid, chains, chained, retention.as_ref(), legal_basis)?;
    crate::catalog::ledger::append("protect", Some(&uid_bytes), Some(&table), fields)?;
    Ok(summary(&table, chains, chained, retention.as_ref()))
}

/// Auditors verify, also with the independent worm-verify, which reads rows.
pub(crate) fn grant_auditors(owner: pg_sys::Oid, table: &str) -> Result<(), WormError> {
    if meta::role_oid("worm_auditor").is_some() {
        crate::guard::internal_ddl(|| {
            meta::as_role(owner, || {
                sql::run(&format!("GRANT SELECT ON {table} TO worm_auditor"))
            })
        })?;
    }
    Ok(())
}

/// Why a relation kind cannot be protected (None for an ordinary table).
fn relkind_problem(relkind: u8) -> Option<&'static str> {
    match relkind {
        b'r' => None,
        b'v' => Some("a view"),
        b'm' => Some("a materialized view"),
        b'f' => Some("a foreign table"),
        b'p' => Some("a partitioned table; protect its partitions"),
        b'i' | b'I' => Some("an index"),
        b'S' => Some("a sequence"),
        b'c' => Some("a composite type"),
        b't' => Some("a TOAST table"),
        _ => Some("not a table"),
    }
}

/// Every check before anything changes; returns the table's owner.
/// `adopting`: the table already has its `worm_` columns (worm.adopt).
pub(crate) fn check_protectable(
    tbl: &PgRelation,
    table: &str,
    chains: i32,
    retention: Option<&pgrx::datum::Interval>,
    adopting: bool,
) -> Result<pg_sys::Oid, WormError> {
    let relid = tbl.oid();
    let rel = tbl.as_ptr();
    // SAFETY: `tbl` holds the relation open; rd_rel is its pg_class row.
    let form = unsafe { &*(*rel).rd_rel };
    let table = table.to_string();
    if let Some(kind) = relkind_problem(form.relkind as u8) {
        return Err(WormError::NotATable { name: table, kind });
    }
    if Some(form.relnamespace) == crate::guard::worm_namespace() {
        return Err(WormError::NotATable {
            name: table,
            kind: "one of pg_worm's own tables (they are guarded already)",
        });
    }
    if form.reloftype != pg_sys::InvalidOid {
        return Err(WormError::Unprotectable {
            table,
            what: "columns taken from a composite type (CREATE TABLE … OF: ALTER TYPE … CASCADE could rename or retype them); ALTER TABLE … NOT OF first".into(),
        });
    }
    let persistence = match form.relpersistence as u8 {
        b't' => Some("temporary"),
        b'u' => Some("unlogged"),
        _ => None,
    };
    if let Some(persistence) = persistence {
        return Err(WormError::NotPermanent { table, persistence });
    }
    if !meta::may_manage(relid) {
        return Err(WormError::NotOwner { table });
    }
    if meta::lookup(relid)?.is_some() {
        return Err(WormError::AlreadyProtected { table });
    }
    check_settings(chains, retention)?;
    if form.relhasrules {
        return Err(WormError::HasRules { table });
    }
    // SAFETY: the relation is open; its descriptor and flags are read only.
    unsafe { refuse_unprotectable(rel, &table)? };
    // Validates every column type (and the reserved prefix, or, adopting,
    // the worm_ columns).
    // SAFETY: as above.
    unsafe { encode::build_plan(rel, &table, adopting)? };
    Ok(form.relowner)
}

/// The number of chains and the retention period worm.protect was given.
pub(crate) fn check_settings(
    chains: i32,
    retention: Option<&pgrx::datum::Interval>,
) -> Result<(), WormError> {
    if !(1..=MAX_CHAINS).contains(&chains) {
        return Err(WormError::InvalidChains {
            given: chains,
            max: MAX_CHAINS,
        });
    }
    if let Some(r) = retention {
        let now = crate::retention::transaction_start();
        if !pg_worm_core::period::is_positive(&crate::retention::period(r), now) {
            return Err(WormError::InvalidRetention {
                given: interval_text(r),
            });
        }
    }
    Ok(())
}

/// Adds the worm_ columns, chains existing rows, adds the chain index and
/// the three ENABLE ALWAYS triggers. Runs as the table's owner with the
/// guards standing aside for pg_worm's own DDL. `table` is produced by the
/// server's quote_qualified_identifier; nothing the user typed is spliced
/// into these statements. Returns the number of rows chained.
pub(crate) fn install_chain(
    relid: pg_sys::Oid,
    table: &str,
    uid: &[u8; 16],
    chains: i32,
) -> Result<i64, WormError> {
    // The guards stand aside for each of pg_worm's own DDL statements only,
    // never while other code (the owner's triggers and CHECK constraints,
    // which run during the backfill) could issue DDL of its own.
    own_ddl(&format!(
        "ALTER TABLE {table} ADD COLUMN {COL_CHAIN} integer, ADD COLUMN {COL_SEQ} bigint, \
         ADD COLUMN {COL_INSERTED_AT} timestamptz, ADD COLUMN {COL_HASH} bytea"
    ))?;
    let chained = backfill(relid, table, uid, chains)?;
    finish_chain(relid, table, uid, chains, true, true)?;
    Ok(chained)
}

/// Moves a protected table to ACCESS METHOD worm_heap (a rewrite), unless
/// it uses it already.
pub(crate) fn use_worm_heap(relid: pg_sys::Oid, table: &str) -> Result<(), WormError> {
    if crate::am::uses_worm_heap(relid) {
        return Ok(());
    }
    own_ddl(&format!(
        "ALTER TABLE {table} SET ACCESS METHOD {}",
        crate::am::AM_NAME
    ))
}

pub(crate) fn own_ddl(statement: &str) -> Result<(), WormError> {
    Ok(crate::guard::internal_ddl(|| sql::run(statement))?)
}

/// ACCESS METHOD worm_heap when `switch` (it refuses UPDATE, DELETE and
/// TRUNCATE below the triggers; a rewrite, done with the NOT NULL checks in
/// one pass), the columns' NOT NULL, the chain index (unless `index` is
/// false: it exists) and the three ENABLE ALWAYS triggers.
///
/// The rewrite gives every row a new version written by this command, which
/// a scan with the statement's snapshot no longer sees: a caller that still
/// reads the table in the same statement (worm.adopt verifies it) switches
/// afterwards with [`use_worm_heap`].
pub(crate) fn finish_chain(
    relid: pg_sys::Oid,
    table: &str,
    uid: &[u8; 16],
    chains: i32,
    index: bool,
    switch: bool,
) -> Result<(), WormError> {
    let uid_text = hex::encode(uid);
    let access_method = if switch && !crate::am::uses_worm_heap(relid) {
        format!("SET ACCESS METHOD {}, ", crate::am::AM_NAME)
    } else {
        String::new()
    };
    let mut statements = vec![
        format!(
            "ALTER TABLE {table} {access_method}ALTER COLUMN {COL_CHAIN} SET NOT NULL, ALTER COLUMN {COL_SEQ} SET NOT NULL, \
             ALTER COLUMN {COL_INSERTED_AT} SET NOT NULL, ALTER COLUMN {COL_HASH} SET NOT NULL"
        ),
        format!("CREATE UNIQUE INDEX ON {table} ({COL_CHAIN}, {COL_SEQ})"),
        format!(
            "CREATE TRIGGER {TRIGGER_CHAIN} BEFORE INSERT ON {table} FOR EACH ROW \
             EXECUTE FUNCTION worm.worm_chain_insert('{uid_text}', '{chains}')"
        ),
        format!(
            "CREATE TRIGGER {TRIGGER_REFUSE} BEFORE UPDATE OR DELETE OR TRUNCATE ON {table} \
             FOR EACH STATEMENT EXECUTE FUNCTION worm.worm_refuse_change()"
        ),
        format!(
            "CREATE TRIGGER {TRIGGER_REFUSE_ROW} BEFORE UPDATE OR DELETE ON {table} \
             FOR EACH ROW EXECUTE FUNCTION worm.worm_refuse_change()"
        ),
        format!(
            "ALTER TABLE {table} ENABLE ALWAYS TRIGGER {TRIGGER_CHAIN}, \
             ENABLE ALWAYS TRIGGER {TRIGGER_REFUSE}, ENABLE ALWAYS TRIGGER {TRIGGER_REFUSE_ROW}"
        ),
    ];
    if !index {
        statements.remove(1);
    }
    for statement in &statements {
        own_ddl(statement)?;
    }
    Ok(())
}

/// The ledger's `protect` entry: chains, rows chained, retention and the
/// column list (the row hash binds column positions; the names and types
/// they had are recorded so that verify can tell when they no longer match).
pub(crate) fn protection_fields(
    relid: pg_sys::Oid,
    chains: i32,
    chained: i64,
    retention: Option<&pgrx::datum::Interval>,
    legal_basis: Option<String>,
) -> Result<serde_json::Map<String, serde_json::Value>, WormError> {
    let mut fields = serde_json::Map::new();
    fields.insert("chains".into(), serde_json::json!(chains));
    fields.insert("rows_chained".into(), serde_json::json!(chained));
    fields.insert(
        "retention".into(),
        serde_json::json!({
            "period": retention.map(crate::retention::iso8601),
            "legal_basis": legal_basis,
        }),
    );
    fields.insert("columns".into(), crate::verify::columns::current(relid)?);
    Ok(fields)
}

/// worm.protect's answer: "protected public.t: 4 chains, 0 existing rows
/// chained, rows are kept for 6 years".
pub(crate) fn summary(
    table: &str,
    chains: i32,
    chained: i64,
    retention: Option<&pgrx::datum::Interval>,
) -> String {
    let keep = match retention {
        Some(r) => format!("rows are kept for {}", interval_text(r)),
        None => "rows are kept for ever".to_string(),
    };
    let chains_word = if chains == 1 { "chain" } else { "chains" };
    let rows_word = if chained == 1 { "row" } else { "rows" };
    format!(
        "protected {table}: {chains} {chains_word}, {chained} existing {rows_word} chained, {keep}"
    )
}

/// What pg_worm cannot protect: stored generated columns (PostgreSQL fills
/// them after the BEFORE triggers, so the hash would not cover their values),
/// inheritance children (their rows show in every SELECT of the table) and
/// row-level security (its policies can hide rows from readers).
///
/// # Safety
/// `rel` is a valid relation, open for the whole call.
pub(crate) unsafe fn refuse_unprotectable(
    rel: pg_sys::Relation,
    table: &str,
) -> Result<(), WormError> {
    // SAFETY: `rel` is open (caller): its descriptor's attributes and its
    // pg_class row live as long as the relcache entry.
    let (attrs, form, relid) =
        unsafe { (crate::pg::attributes(rel), &*(*rel).rd_rel, (*rel).rd_id) };
    for att in attrs {
        if !att.attisdropped && att.attgenerated != 0 {
            return Err(WormError::Unprotectable {
                table: table.into(),
                what: format!("the generated column \"{}\"", encode::att_name(att)),
            });
        }
    }
    if form.relrowsecurity || form.relforcerowsecurity {
        return Err(WormError::Unprotectable {
            table: table.into(),
            what: "row-level security enabled (policies could hide rows)".into(),
        });
    }
    if form.relhassubclass && crate::guard::has_children(relid) {
        return Err(WormError::Unprotectable {
            table: table.into(),
            what: "inheritance children (their rows would show as the table's)".into(),
        });
    }
    Ok(())
}

/// An interval as text, in IntervalStyle `postgres` whatever the session's
/// (internal SQL pins it): "6 years", "1 day", "00:00:02".
pub(crate) fn interval_text(i: &pgrx::datum::Interval) -> String {
    sql::get_one_with_args::<String>("SELECT $1::pg_catalog.text", &[DatumWithOid::from(*i)])
        .ok()
        .flatten()
        .unwrap_or_else(|| crate::retention::iso8601(i))
}

/// Refuses BEFORE INSERT row triggers that would fire after pg_worm's (and so
/// could change a row after it was hashed) and, when rows exist, BEFORE UPDATE
/// row triggers (the backfill updates every row once).
pub(crate) fn check_triggers(
    relid: pg_sys::Oid,
    table: &str,
    has_rows: bool,
) -> Result<(), WormError> {
    let triggers: Vec<(String, i16)> = sql::connect(|client| {
        let rows = client.select(
            "SELECT tgname::pg_catalog.text, tgtype FROM pg_catalog.pg_trigger \
             WHERE tgrelid OPERATOR(pg_catalog.=) $1 AND NOT tgisinternal ORDER BY 1",
            None,
            &[DatumWithOid::from(relid)],
        )?;
        let mut out = Vec::new();
        for row in rows {
            let name: Option<String> = row.get(1)?;
            let t: Option<i16> = row.get(2)?;
            if let (Some(n), Some(t)) = (name, t) {
                out.push((n, t));
            }
        }
        Ok::<_, pgrx::spi::SpiError>(out)
    })?;
    for (name, t) in triggers {
        let before_row = t & TRIGGER_TYPE_ROW != 0 && t & TRIGGER_TYPE_BEFORE != 0;
        if before_row && t & TRIGGER_TYPE_INSERT != 0 && name.as_bytes() > TRIGGER_CHAIN.as_bytes()
        {
            return Err(WormError::ConflictingTrigger {
                table: table.into(),
                trigger: name,
                what:
                    "fire after pg_worm's chain trigger and could change rows after they are hashed",
            });
        }
        if before_row && has_rows && t & TRIGGER_TYPE_UPDATE != 0 {
            return Err(WormError::ConflictingTrigger {
                table: table.into(),
                trigger: name,
                what: "change existing rows while pg_worm chains them",
            });
        }
    }
    Ok(())
}

/// Chains the rows a table already holds, in a deterministic order: ascending
/// by row hash (the SHA-256 of the canonical encoding), ties by their physical
/// position (identical rows are indistinguishable). Row i (from 0) goes to
/// chain i % chains at sequence i / chains + 1; all get the transaction's
/// start time as insertion time.
pub(crate) fn backfill(
    relid: pg_sys::Oid,
    table: &str,
    uid: &[u8; 16],
    chains: i32,
) -> Result<i64, WormError> {
    let mut rows: Vec<(Hash, u32, u16)> = Vec::new();
    {
        let rel = crate::pg::Rel::open(relid, pg_sys::AccessShareLock);
        // SAFETY: `rel` holds the table open for the whole block.
        let plan = unsafe { encode::build_plan(rel.as_ptr(), table, false)? };
        rel.scan(crate::pg::ScanSnapshot::Latest, |slot| {
            let (values, nulls) = slot.values();
            // SAFETY: `values`/`nulls` are the slot's deformed row, of the
            // table `plan` was built for.
            let h = unsafe { encode::row_hash_deformed(&plan, values, nulls) };
            let (block, offset) = slot.tid();
            rows.push((h, block, offset));
            pgrx::check_for_interrupts!();
            std::ops::ControlFlow::<()>::Continue(())
        });
    }
    if rows.is_empty() {
        return Ok(0);
    }
    rows.sort();
    // SAFETY: reads the current transaction's start time.
    let inserted_at = unsafe { pg_sys::GetCurrentTransactionStartTimestamp() };
    let mut prev: Vec<Hash> = vec![GENESIS; chains as usize];
    let mut tids = Vec::with_capacity(rows.len());
    let mut cs = Vec::with_capacity(rows.len());
    let mut seqs = Vec::with_capacity(rows.len());
    let mut links: Vec<Vec<u8>> = Vec::with_capacity(rows.len());
    for (i, (row_hash, block, off)) in rows.iter().enumerate() {
        let c = (i as i64 % chains as i64) as i32;
        let seq = i as i64 / chains as i64 + 1;
        let l = pg_worm_core::link(uid, c, seq, inserted_at, &prev[c as usize], row_hash);
        prev[c as usize] = l;
        tids.push(format!("({block},{off})"));
        cs.push(c);
        seqs.push(seq);
        links.push(l.to_vec());
    }
    let n = rows.len() as i64;
    crate::am::chaining_existing_rows(relid, || {
        sql::run_with_args(
            &format!(
                "UPDATE {table} AS t SET {COL_CHAIN} = u.c, {COL_SEQ} = u.s, \
             {COL_INSERTED_AT} = pg_catalog.transaction_timestamp(), {COL_HASH} = u.h \
             FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.text[]::pg_catalog.tid[]), \
             pg_catalog.unnest($2::pg_catalog.int4[]), pg_catalog.unnest($3::pg_catalog.int8[]), \
             pg_catalog.unnest($4::pg_catalog.bytea[])) AS u(tid, c, s, h) \
             WHERE t.ctid OPERATOR(pg_catalog.=) u.tid"
            ),
            &[
                DatumWithOid::from(tids),
                DatumWithOid::from(cs),
                DatumWithOid::from(seqs),
                DatumWithOid::from(links),
            ],
        )
    })?;
    Ok(n)
}
