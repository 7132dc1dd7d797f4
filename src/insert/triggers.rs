//! The chain trigger worm.protect attaches (`ENABLE ALWAYS`; the refusal
//! triggers are in src/refuse.rs), and the guard of pg_worm's own tables:
//!
//! * `zz_worm_chain` — BEFORE INSERT, FOR EACH ROW: computes the row's
//!   `worm_` values. Whatever the application supplied for them is replaced,
//!   except that a row from a superuser or a worm_restore member carrying all
//!   four (a data-only restore, a logical-replication apply) keeps them when
//!   they extend the chain exactly, and is refused otherwise.
//!   Named to sort after ordinary trigger names, because BEFORE ROW triggers
//!   fire in name order and a later one could change the row after hashing.

use crate::error::WormError;
use crate::insert::chain;
use crate::insert::encode;
use crate::pg;
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::ffi::CStr;

/// A table uid as the chain trigger's first argument holds it (hex, dashes
/// ignored), parsed without allocating: this runs for every inserted row.
fn parse_uid(s: &CStr) -> Option<[u8; 16]> {
    let mut digits = [0u8; 32];
    let mut n = 0;
    for b in s.to_bytes().iter().filter(|b| **b != b'-') {
        *digits.get_mut(n)? = *b;
        n += 1;
    }
    let mut uid = [0u8; 16];
    hex::decode_to_slice(&digits[..n], &mut uid).ok()?;
    Some(uid)
}

/// The chain trigger's arguments: (table uid, number of chains).
fn chain_args(tg: pg::Trig<'_>) -> Option<([u8; 16], i32)> {
    let mut args = tg.args();
    let uid = parse_uid(args.next()?)?;
    let chains = args.next()?.to_str().ok()?.parse::<i32>().ok()?;
    (chains >= 1).then_some((uid, chains))
}

#[pg_trigger]
fn worm_chain_insert<'a>(
    trigger: &'a pgrx::PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, WormError> {
    let td = trigger.trigger_data();
    // SAFETY: pgrx hands over the TriggerData of this trigger call, whose
    // relation, trigger and tuple PostgreSQL keeps valid during the call.
    unsafe { chain_insert(td) }
}

/// The BEFORE INSERT row trigger: chains the row and sets its `worm_` values.
///
/// # Safety
/// `td` is the TriggerData of a running trigger call.
unsafe fn chain_insert<'a>(
    td: &'a pg_sys::TriggerData,
) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, WormError> {
    let ev = td.tg_event;
    let is_insert = ev & pg_sys::TRIGGER_EVENT_OPMASK == pg_sys::TRIGGER_EVENT_INSERT;
    let is_row = ev & pg_sys::TRIGGER_EVENT_ROW != 0;
    let is_before = ev & pg_sys::TRIGGER_EVENT_TIMINGMASK == pg_sys::TRIGGER_EVENT_BEFORE;
    if !(is_insert && is_row && is_before) {
        WormError::TriggerMisuse {
            function: "worm.worm_chain_insert",
            how: "other than BEFORE INSERT FOR EACH ROW".into(),
        }
        .raise();
    }
    let rel = td.tg_relation;
    // SAFETY: the trigger of a running call comes from PostgreSQL.
    let tg = unsafe { pg::Trig::from_pg(&*td.tg_trigger) };
    let Some((uid, chains)) = chain_args(tg) else {
        // The table's name is computed only for error messages (it costs a
        // catalog lookup), never on the per-row path.
        WormError::Damaged {
            // SAFETY: the trigger's relation is open during the call.
            table: unsafe { pg::rel_display_name(rel) },
            what: "its chain trigger has bad arguments".into(),
        }
        .raise()
    };
    // SAFETY: the trigger's relation is open during the call.
    let plan = match unsafe { encode::plan_for(rel) } {
        Ok(p) => p,
        Err(e) => e.raise(),
    };
    // SAFETY: the trigger's relation is open during the call.
    let (relid, tupdesc) = unsafe { ((*rel).rd_id, (*rel).rd_att) };
    let tuple = td.tg_trigtuple;
    // SAFETY: the new row is a tuple of the relation the plan was built for.
    let row_hash = unsafe { encode::row_hash(&plan, tuple, tupdesc) };
    // SAFETY: the new row is a tuple of `tupdesc`, the plan's relation.
    if let Some(arrived) = unsafe { arrived_values(tuple, tupdesc, &plan) } {
        if crate::catalog::meta::has_role("worm_restore") {
            // SAFETY: the relation is open and the plan was built for it.
            if let Err(e) = unsafe { keep_arrived(rel, &plan, &uid, chains, &arrived, &row_hash) } {
                e.raise()
            }
            // SAFETY: the row is unchanged: a tuple of the relation's descriptor.
            let same = unsafe {
                PgHeapTuple::from_heap_tuple(pgrx::PgTupleDesc::from_pg_unchecked(tupdesc), tuple)
            };
            return Ok(Some(same));
        }
    }
    let c = chain::chain_for_insert(relid, chains);
    let head = match chain::cached_head(relid, c) {
        Some(h) => h,
        // SAFETY: the relation is open and the plan was built for it.
        None => match unsafe { chain::read_head(rel, &plan, &uid, c, None) } {
            Ok(h) => h,
            Err(e) => e.raise(),
        },
    };
    let seq = head.seq + 1;
    // Insertion time: the clock, never earlier than the chain's previous row,
    // so that a chain's rows expire as a prefix.
    // SAFETY: reads the clock.
    let now = unsafe { pg_sys::GetCurrentTimestamp() };
    let inserted_at = now.max(head.inserted_at);
    let link = pg_worm_core::link(&uid, c, seq, inserted_at, &head.link, &row_hash);
    let head = chain::Head {
        seq,
        link,
        inserted_at,
    };
    chain::remember_head(relid, c, head);
    // SAFETY: the new row is a tuple of `tupdesc`, the plan's relation.
    let new_tuple = unsafe { with_worm_values(tuple, tupdesc, &plan, c, &head) };
    // SAFETY: the relation's descriptor outlives the trigger call, and the
    // new tuple was palloc'd by PostgreSQL in the trigger's memory context.
    let new_tuple = unsafe {
        PgHeapTuple::from_heap_tuple(pgrx::PgTupleDesc::from_pg_unchecked(tupdesc), new_tuple)
    };
    Ok(Some(new_tuple))
}

/// The `worm_` values a new row arrived with, when it carries all four: a
/// row of a data-only restore or of a logical-replication apply.
///
/// # Safety
/// `tuple` is a valid heap tuple of `tupdesc`, the plan's relation.
unsafe fn arrived_values(
    tuple: pg_sys::HeapTuple,
    tupdesc: pg_sys::TupleDesc,
    plan: &encode::TablePlan,
) -> Option<(i32, chain::Head)> {
    // SAFETY: the tuple and its descriptor come from the caller.
    let get = |att| unsafe { pg::heap_get(tuple, tupdesc, att) };
    let chain = get(plan.chain_att)?.value() as i32;
    let seq = get(plan.seq_att)?.value() as i64;
    let inserted_at = get(plan.inserted_at_att)?.value() as i64;
    // SAFETY: worm_hash is a non-NULL bytea of this row.
    let link = unsafe { pg::varlena_bytes(get(plan.hash_att)?) };
    // A link of the wrong length can never extend a chain: all zeros, which
    // no SHA-256 link is, so that the check below names it.
    let link = link.try_into().unwrap_or([0u8; 32]);
    Some((
        chain,
        chain::Head {
            seq,
            link,
            inserted_at,
        },
    ))
}

/// Keeps a row's own `worm_` values after checking that they extend the
/// table's chain exactly (see below for the one row that cannot be checked
/// on arrival): the chain exists, the row is the next in it, and
/// its link is the hash of this table's identity, its position and time,
/// the chain's head link and the row's contents. Only superusers and
/// members of worm_restore get here, and only values that extend the chain
/// are kept, so a restore or a subscriber holds the very links of the
/// source and still verifies against digests taken there.
///
/// # Safety
/// `rel` is open and `plan` was built for it.
unsafe fn keep_arrived(
    rel: pg_sys::Relation,
    plan: &encode::TablePlan,
    uid: &[u8; 16],
    chains: i32,
    arrived: &(i32, chain::Head),
    row_hash: &pg_worm_core::Hash,
) -> Result<(), WormError> {
    let (c, row) = arrived;
    let c = *c;
    // SAFETY: `rel` is open (caller).
    let relid = unsafe { (*rel).rd_id };
    let refuse = |why: String| WormError::DoesNotExtend {
        // SAFETY: `rel` is open (caller).
        table: unsafe { pg::rel_display_name(rel) },
        chain: c,
        why,
    };
    if !(0..chains).contains(&c) {
        return Err(refuse(format!("the table has chains 0 to {}", chains - 1)));
    }
    chain::lock_chain(relid, c);
    let head = match chain::cached_head(relid, c) {
        Some(h) => h,
        // SAFETY: `rel` is open and the plan was built for it (caller).
        None => unsafe { chain::read_head(rel, plan, uid, c, None) }?,
    };
    // A data-only restore loads schema "public" before schema "worm": the
    // rows of a table whose chains start after a purge arrive before the
    // registry and the anchors do. While the table is not registered yet
    // (a restore in progress), the first row of such an empty chain is kept
    // unchecked — its anchor is not there to check it against — every later
    // row is checked against it, and worm.verify checks it against the
    // restored anchor. A registered table takes no unchecked row.
    if head.seq == 0
        && head.link == pg_worm_core::GENESIS
        && row.seq > 1
        && row.link != [0u8; 32]
        && crate::catalog::meta::lookup(relid)?.is_none()
    {
        chain::remember_head(relid, c, *row);
        return Ok(());
    }
    if row.seq != head.seq + 1 {
        return Err(refuse(format!(
            "its next row is seq {}, this row has seq {}",
            head.seq + 1,
            row.seq
        )));
    }
    if row.inserted_at < head.inserted_at {
        return Err(refuse(format!(
            "seq {} was inserted before the chain's previous row",
            row.seq
        )));
    }
    let link = pg_worm_core::link(uid, c, row.seq, row.inserted_at, &head.link, row_hash);
    if link != row.link {
        return Err(refuse(format!(
            "the worm_hash of seq {} is not the link of this row after the chain's head (another table, other contents, or another history)",
            row.seq
        )));
    }
    chain::remember_head(relid, c, *row);
    Ok(())
}

/// A copy of `tuple` whose four `worm_` columns hold chain `c` and `head`.
///
/// # Safety
/// `tuple` is a valid heap tuple of `tupdesc`, the descriptor of the relation
/// `plan` was built for.
unsafe fn with_worm_values(
    tuple: pg_sys::HeapTuple,
    tupdesc: pg_sys::TupleDesc,
    plan: &encode::TablePlan,
    c: i32,
    head: &chain::Head,
) -> pg_sys::HeapTuple {
    let hash_datum = head
        .link
        .as_slice()
        .into_datum()
        .unwrap_or(pg_sys::Datum::from(0));
    let mut cols = [
        plan.chain_att as i32,
        plan.seq_att as i32,
        plan.inserted_at_att as i32,
        plan.hash_att as i32,
    ];
    let mut values = [
        pg_sys::Datum::from(c),
        pg_sys::Datum::from(head.seq),
        pg_sys::Datum::from(head.inserted_at),
        hash_datum,
    ];
    let mut nulls = [false; 4];
    // SAFETY: the three arrays hold 4 entries each; the attribute numbers
    // are the plan's worm_ columns of `tupdesc` (caller), with values of
    // their types (int4, int8, timestamptz, bytea).
    unsafe {
        pg_sys::heap_modify_tuple_by_cols(
            tuple,
            tupdesc,
            4,
            cols.as_mut_ptr(),
            values.as_mut_ptr(),
            nulls.as_mut_ptr(),
        )
    }
}

/// Guards pg_worm's own tables. With the argument `internal-update`, UPDATE
/// is allowed while pg_worm itself writes (its internal-write flag);
/// everything else this trigger is attached to is refused.
#[pg_trigger]
fn worm_guard_meta<'a>(
    trigger: &'a pgrx::PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, WormError> {
    let td = trigger.trigger_data();
    let ev = td.tg_event & pg_sys::TRIGGER_EVENT_OPMASK;
    // SAFETY: the trigger of a running call comes from PostgreSQL.
    let tg = unsafe { pg::Trig::from_pg(trigger.trigger()) };
    let update_ok = tg.args().any(|a| a.to_bytes() == b"internal-update");
    if ev == pg_sys::TRIGGER_EVENT_UPDATE
        && update_ok
        && crate::catalog::meta::internal_write_active()
    {
        return Ok(None);
    }
    // Rows enter pg_worm's tables through its functions; the one other way
    // is a restore (pg_restore loads them into the empty tables of a new
    // CREATE EXTENSION), which is as much as restoring any backup.
    // SAFETY: the trigger's relation is open during the call.
    let relid = unsafe { (*td.tg_relation).rd_id };
    if ev == pg_sys::TRIGGER_EVENT_INSERT
        && (crate::catalog::meta::internal_write_active() || crate::pg::relation_is_empty(relid))
    {
        return Ok(None);
    }
    let operation = match ev {
        pg_sys::TRIGGER_EVENT_INSERT => "INSERT",
        pg_sys::TRIGGER_EVENT_UPDATE => "UPDATE",
        pg_sys::TRIGGER_EVENT_DELETE => "DELETE",
        pg_sys::TRIGGER_EVENT_TRUNCATE => "TRUNCATE",
        _ => "this change",
    };
    // SAFETY: the trigger's relation is open during the call.
    let table = unsafe { pg::rel_display_name(td.tg_relation) };
    WormError::ExtensionTable { table, operation }.raise()
}
