//! worm.verify_since: verification of what came after a checkpoint.
//!
//! A checkpoint recorded every chain's head (seq and link). What was intact
//! then is vouched for by the checkpoint (and by the verification it ran);
//! what verify_since checks is that every chain still holds that head, with
//! its link, and that every row after it is intact and linked to it. The
//! rows are read per chain through the chain index, from the head on, so the
//! cost follows the rows added since the checkpoint, not the table.
//!
//! A chain purged past the checkpoint's head continues from its purge anchor
//! (recorded in the ledger with the purge's certificate). Rows outside the
//! table's chains are looked up through the chain index too. What only a
//! full read finds (a row edited in place before the checkpoint's head, a
//! row the index does not list) is worm.verify's.

use super::checkpoint::{bad_digest, extra_row, latest_checkpoint, ledger_at, parse_digest};
use super::{
    anchor_entries, named, per_partition, require_select, row_record, table_problems, NamedRow,
    VerifyRow,
};
use crate::catalog::meta;
use crate::error::{OrRaise, WormError};
use crate::insert::encode;
use crate::pg::{self, rel_display_name};
use pg_worm_core::{
    ledger_check, link, verify_chain, Anchor, Digest, Hash, RowRecord, Status, GENESIS,
};
use pgrx::prelude::*;
use pgrx::{pg_sys, JsonB, PgMemoryContexts, PgRelation};
use serde_json::Value as Json;
use std::ops::ControlFlow;

/// See README, "SQL reference".
#[allow(clippy::type_complexity)]
#[pg_extern(name = "verify_since", volatile)]
fn worm_verify_since(
    tbl: PgRelation,
    checkpoint: default!(Option<JsonB>, "NULL"),
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
    let rows = since_any(&tbl, checkpoint.map(|j| j.0)).or_raise();
    crate::watch::verified(&tbl, crate::watch::Kind::Incremental, &rows);
    TableIterator::new(rows)
}

fn since_any(tbl: &PgRelation, digest: Option<Json>) -> Result<Vec<NamedRow>, WormError> {
    // SAFETY: `tbl` holds the relation open for the call.
    let table = unsafe { rel_display_name(tbl.as_ptr()) };
    if !tbl.is_partitioned_table() {
        return Ok(named(
            since_table(tbl.as_ptr(), &table, digest.as_ref())?,
            &table,
        ));
    }
    // A partitioned table: each partition since its own checkpoint (in the
    // document worm.checkpoint(parent) returned, or its newest).
    let checkpoints: Option<Vec<Json>> = match &digest {
        None => None,
        Some(d) => Some(
            d.get("checkpoints")
                .and_then(Json::as_array)
                .cloned()
                .ok_or_else(|| {
                    bad_digest(format!(
                        "{table} is a partitioned table: pass the document worm.checkpoint('{table}') returned (with its \"checkpoints\"), or NULL for each partition's newest checkpoint"
                    ))
                })?,
        ),
    };
    per_partition(tbl.oid(), &table, |rel, name| {
        let Some(cps) = &checkpoints else {
            return since_table(rel, name, None);
        };
        // SAFETY: `rel` is open for the call (per_partition holds it).
        let relid = unsafe { (*rel).rd_id };
        let uid = meta::lookup(relid)?.map(|m| m.uid);
        let mine = cps
            .iter()
            .find(|cp| Digest::parse((*cp).clone()).is_ok_and(|d| Some(d.table_uid) == uid));
        since_table(rel, name, mine)
    })
}

/// One protected table since a checkpoint (`digest`, or its newest).
fn since_table(
    rel: pg_sys::Relation,
    table: &str,
    digest: Option<&Json>,
) -> Result<Vec<VerifyRow>, WormError> {
    // SAFETY: `rel` is open for the whole call (the caller's).
    let relid = unsafe { (*rel).rd_id };
    let meta = meta::lookup(relid)?.ok_or(WormError::NotProtected {
        table: table.to_string(),
    })?;
    require_select(relid, table)?;
    let doc = match digest {
        Some(d) => d.clone(),
        None => latest_checkpoint(&meta.uid)?.ok_or_else(|| WormError::NoCheckpoint {
            table: table.to_string(),
        })?,
    };
    let d = parse_digest(&doc)?;
    if d.table_uid != meta.uid {
        return Err(bad_digest(format!(
            "it is a digest of another table ({} at the time), not of {table}",
            if d.table_name.is_empty() {
                "?"
            } else {
                &d.table_name
            }
        )));
    }
    // SAFETY: `rel` is open; the plan is built for it.
    let plan = unsafe { encode::build_plan(rel, table, true)? };
    let index = chain_index(&plan, table)?;
    let anchors = anchor_entries(&meta.uid)?;
    let reader = ChainReader {
        rel,
        plan: &plan,
        index,
    };
    let mut out = Vec::new();
    let (stored, last) = ledger_at(d.entry.seq)?;
    let ledger = ledger_check(stored.as_ref(), last, &d);
    if ledger.status == Status::Problem {
        out.push(problem_row(None, ledger.detail));
    }
    for c in 0..meta.chains {
        let recorded = d.chains.iter().find(|dc| dc.chain == c);
        let anchor = anchors.get(&c).and_then(|a| a.good()).copied();
        out.push(since_chain(
            &meta.uid,
            c,
            recorded.map(|r| (r.head_seq, r.head_link)),
            anchor,
            &reader,
            d.entry.seq,
        ));
        pgrx::check_for_interrupts!();
    }
    for c in d.chains.iter().filter(|dc| dc.chain >= meta.chains) {
        out.push(problem_row(
            Some(c.chain),
            format!(
                "the checkpoint has chain {} but the table has {} chains",
                c.chain, meta.chains
            ),
        ));
    }
    let outside = reader.count_outside(meta.chains);
    if outside > 0 {
        out.push(problem_row(
            None,
            format!(
                "{outside} row(s) carry a chain number outside 0..{} (not part of any chain)",
                meta.chains - 1
            ),
        ));
    }
    // SAFETY: `rel` is open.
    for p in unsafe { table_problems(rel, &meta.uid, meta.encoding_version)? } {
        out.push(problem_row(None, p));
    }
    Ok(out)
}

fn problem_row(chain: Option<i32>, detail: String) -> VerifyRow {
    extra_row(chain, 0, None, &detail)
}

/// Reads one chain's rows through the chain index.
pub(super) struct ChainReader<'a> {
    pub(super) rel: pg_sys::Relation,
    pub(super) plan: &'a encode::TablePlan,
    pub(super) index: pg_sys::Oid,
}

/// The (worm_chain, worm_seq) index of a protected table, as its plan
/// found it.
pub(super) fn chain_index(plan: &encode::TablePlan, table: &str) -> Result<pg_sys::Oid, WormError> {
    plan.index.ok_or_else(|| WormError::Damaged {
        table: table.to_string(),
        what: "it has no (worm_chain, worm_seq) index".into(),
    })
}

impl ChainReader<'_> {
    /// The rows of chain `c` with `from <= seq <= to`, in seq order, as
    /// verification reads them (each row's memory freed after it).
    pub(super) fn rows(&self, c: i32, from: i64, to: i64) -> Vec<RowRecord> {
        let mut out = Vec::new();
        let mut per_row = PgMemoryContexts::new("pg_worm verify_since row");
        let keys = [
            pg::chain_key::chain_is(c),
            pg::chain_key::seq_from(from),
            pg::chain_key::seq_to(to),
        ];
        let each = |slot: pg::Slot<'_>| {
            let (values, nulls) = slot.values();
            // SAFETY: the slot's deformed row, of the table the plan is for;
            // what row_record allocates in per_row is read only inside it.
            let (_, record) =
                unsafe { per_row.switch_to(|_| row_record(self.plan, values, nulls)) };
            // SAFETY: nothing allocated in per_row is used after this point.
            unsafe { per_row.reset() };
            out.push(record);
            ControlFlow::<()>::Continue(())
        };
        // SAFETY: `rel` is an open table and `index` its (worm_chain,
        // worm_seq) btree (int4, int8); the keys match those columns.
        unsafe { pg::index_forward(self.rel, self.index, &keys, pg::ScanSnapshot::Active, each) };
        out
    }

    /// Rows whose chain number is below 0 or at or above `chains`.
    pub(super) fn count_outside(&self, chains: i32) -> i64 {
        let mut n = 0i64;
        for key in [
            pg::chain_key::chain_below(0),
            pg::chain_key::chain_from(chains),
        ] {
            // SAFETY: as in `rows`.
            unsafe {
                pg::index_forward(
                    self.rel,
                    self.index,
                    &[key],
                    pg::ScanSnapshot::Active,
                    |_| {
                        n += 1;
                        ControlFlow::<()>::Continue(())
                    },
                )
            };
        }
        n
    }
}

/// One chain since the checkpoint's head `recorded` (seq, link): the head
/// row still there with its link and content, every later row linked to it.
fn since_chain(
    uid: &[u8; 16],
    c: i32,
    recorded: Option<(i64, Option<Hash>)>,
    anchor: Option<Anchor>,
    reader: &ChainReader<'_>,
    ledger_seq: i64,
) -> VerifyRow {
    let Some((head_seq, head_link)) = recorded else {
        return problem_row(
            Some(c),
            format!("the checkpoint of ledger entry {ledger_seq} has no head for chain {c}"),
        );
    };
    let mut head_problems: Vec<(i64, String)> = Vec::new();
    // Where the rows to check start, and what the first of them links to.
    let start: Option<Anchor> = match anchor {
        // Purged past the checkpoint's head: the purge's anchor takes over.
        Some(a) if a.seq >= head_seq => Some(a),
        _ if head_seq == 0 => anchor,
        _ => match head_link {
            None => {
                head_problems.push((
                    head_seq,
                    format!("the checkpoint's head link of chain {c} is not a 32-byte value"),
                ));
                None
            }
            Some(link_at_head) => {
                check_head(
                    uid,
                    c,
                    head_seq,
                    &link_at_head,
                    anchor,
                    reader,
                    &mut head_problems,
                );
                Some(Anchor {
                    seq: head_seq,
                    link: link_at_head,
                })
            }
        },
    };
    let from = start.map_or(1, |a| a.seq + 1);
    let rows = reader.rows(c, from, i64::MAX);
    let report = verify_chain(uid, c, start.as_ref(), rows);
    let since = format!("since the checkpoint of ledger entry {ledger_seq}");
    let mut problems = report.problems + head_problems.len() as i64;
    let ok = report.ok && head_problems.is_empty();
    let first_bad = head_problems
        .iter()
        .map(|(s, _)| *s)
        .chain(report.first_bad_seq)
        .min();
    let detail = if ok {
        match report.head_seq {
            Some(h) if h > head_seq => format!(
                "ok: {} row(s) {since}, head at seq {h}",
                report.rows_checked
            ),
            _ if head_seq == 0 => format!("ok: no rows {since} (the chain has none)"),
            _ => format!("ok: no rows {since} (head at seq {head_seq})"),
        }
    } else {
        let mut parts: Vec<String> = head_problems.into_iter().map(|(_, m)| m).collect();
        if !report.ok {
            parts.push(report.detail.replace(
                &format!("the purge anchor at {head_seq}"),
                &format!("the checkpoint's head at {head_seq}"),
            ));
        }
        if problems == 0 {
            problems = 1;
        }
        parts.join("; ")
    };
    (
        Some(c),
        report.rows_checked,
        ok,
        first_bad,
        detail,
        if ok { 0 } else { problems },
        report.head_seq.or((head_seq > 0).then_some(head_seq)),
        report.head_link.or(head_link).map(hex::encode),
    )
}

/// The checkpoint's head row of chain `c`: still there, with the link the
/// checkpoint recorded, and that link still the hash of its content and of
/// the link before it. Also used by the incremental checkpoint
/// (checkpoint.rs), whose stored tiles end at that head.
pub(super) fn check_head(
    uid: &[u8; 16],
    c: i32,
    head_seq: i64,
    recorded: &Hash,
    anchor: Option<Anchor>,
    reader: &ChainReader<'_>,
    problems: &mut Vec<(i64, String)>,
) {
    let before = reader.rows(c, head_seq - 1, head_seq);
    let head = before.iter().find(|r| r.seq == Some(head_seq));
    let Some(head) = head else {
        problems.push((
            head_seq,
            format!(
                "row {head_seq}, the checkpoint's head, is missing (removed since the checkpoint)"
            ),
        ));
        return;
    };
    if head.stored_link.as_deref() != Some(recorded.as_slice()) {
        problems.push((
            head_seq,
            format!("row {head_seq}, the checkpoint's head, no longer has the link the checkpoint recorded"),
        ));
        return;
    }
    let prev: Option<Hash> = if head_seq == 1 {
        Some(GENESIS)
    } else if let Some(a) = anchor.filter(|a| a.seq == head_seq - 1) {
        Some(a.link)
    } else {
        before
            .iter()
            .find(|r| r.seq == Some(head_seq - 1))
            .and_then(|r| r.stored_link.as_deref())
            .and_then(|l| <Hash>::try_from(l).ok())
    };
    let recomputed = match (prev, head.inserted_at) {
        (Some(p), Some(at)) => Some(link(uid, c, head_seq, at, &p, &head.row_hash)),
        _ => None,
    };
    if recomputed.as_ref() != Some(recorded) {
        problems.push((
            head_seq,
            format!("row {head_seq}, the checkpoint's head, was changed since the checkpoint (its content no longer hashes to its link)"),
        ));
    }
}
