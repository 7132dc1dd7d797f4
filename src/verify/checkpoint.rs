//! Checkpoints, verification against a digest kept outside the database,
//! trusted keys, and inclusion proofs.
//!
//! A checkpoint records in the ledger, and returns, the heads of every chain
//! and a Merkle root (RFC 9162) over the links of the surviving rows in
//! (chain, seq) order. Kept outside the database (and signed there with
//! Ed25519 by the auditor), it shows later what a chain alone cannot: a
//! removed tail, a rolled-back database, a restored older backup, a chain
//! rewritten consistently.
//!
//! The documents, their parsers and every comparison live in `pg_worm_core`
//! (shared with worm-verify); this module reads what they need and turns
//! their findings into worm.verify's rows.

use crate::catalog::ledger::{self, rfc3339};
use crate::catalog::meta;
use crate::error::{OrRaise, WormError};
use crate::pg::rel_display_name;
use crate::sql;
use crate::verify::{to_row, verify_rel, Verified, VerifyRow};
use pg_worm_core::against::{
    compare_gathered, gather_state, parse_history_file, previous_checkpoint_seq, shared_previous,
    Gather, Gathered, WalPosition,
};
use pg_worm_core::{
    checkpoint_fields_v2, covered_leaves, inclusion_proof, ledger_check, merkle_root,
    root_from_tiles, root_from_tiles_and_leaves, Anchor, ChainRow, Check, Comparison, Digest,
    DigestChain, Hash, LedgerEntry, Proof, Status, TILE,
};
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::{pg_sys, JsonB, PgRelation};
use serde_json::{json, Value as Json};
use std::ops::ControlFlow;

fn require_checkpointer(relid: pg_sys::Oid, table: &str) -> Result<(), WormError> {
    if meta::may_manage(relid) || meta::has_role("worm_auditor") {
        Ok(())
    } else {
        Err(WormError::NotOwnerFor {
            table: table.into(),
            action: "take a checkpoint",
        })
    }
}

/// Where this server's WAL stands: cluster, timeline, position (the insert
/// position on a primary, the replay position on a standby) and the timeline
/// history (read from pg_wal, the backend's working directory being the data
/// directory). None when the history file cannot be read.
fn server_wal() -> Option<WalPosition> {
    // SAFETY: these read shared WAL state under the locks they take themselves;
    // GetWALInsertionTimeLine is only called outside recovery, as it requires.
    let (in_recovery, timeline, lsn, system_identifier) = unsafe {
        let sysid = pg_sys::GetSystemIdentifier();
        if pg_sys::RecoveryInProgress() {
            let mut tli: pg_sys::TimeLineID = 0;
            let lsn = pg_sys::GetXLogReplayRecPtr(&mut tli);
            (true, tli, lsn, sysid)
        } else {
            (
                false,
                pg_sys::GetWALInsertionTimeLine(),
                pg_sys::GetXLogInsertRecPtr(),
                sysid,
            )
        }
    };
    if timeline == 0 {
        return None;
    }
    let history = if timeline == 1 {
        Vec::new()
    } else {
        let text = std::fs::read_to_string(format!("pg_wal/{timeline:08X}.history")).ok()?;
        parse_history_file(&text)?
    };
    Some(WalPosition {
        system_identifier,
        timeline,
        lsn,
        history,
        in_recovery,
    })
}

/// The latest checkpoint of a table in the ledger, as a digest (unsigned).
pub(super) fn latest_checkpoint(uid: &[u8; 16]) -> Result<Option<Json>, WormError> {
    let uuid = pgrx::Uuid::from_bytes(*uid);
    Ok(sql::connect(|client| {
        let mut rows = client.select(
            "SELECT l.seq, l.prev_hash, l.hash, l.document FROM worm.ledger AS l \
             WHERE l.event OPERATOR(pg_catalog.=) 'checkpoint' \
               AND l.table_uid OPERATOR(pg_catalog.=) $1 \
             ORDER BY l.seq DESC LIMIT 1",
            Some(1),
            &[DatumWithOid::from(uuid)],
        )?;
        let Some(r) = rows.next() else {
            return Ok::<_, pgrx::spi::SpiError>(None);
        };
        Ok(
            match (
                r.get::<i64>(1)?,
                r.get::<Vec<u8>>(2)?,
                r.get::<Vec<u8>>(3)?,
                r.get::<JsonB>(4)?,
            ) {
                (Some(s), Some(p), Some(h), Some(d)) => Some(json!({
                    "checkpoint": d.0,
                    "ledger_entry": { "seq": s, "prev_hash": hex::encode(p), "hash": hex::encode(h) },
                })),
                _ => None,
            },
        )
    })?)
}

/// Records the current heads of every chain and a Merkle root in the ledger,
/// and returns the digest to keep outside the database. Incremental unless
/// `full`: only the rows since the previous checkpoint are read (see
/// [`incremental`]).
///
/// Its SQL is written here rather than generated: `full` is read from
/// `fcinfo` when the call has it, so that this C symbol also serves 0.1.0's
/// one-argument `worm.checkpoint(regclass)` between a package upgrade and
/// `ALTER EXTENSION pg_worm UPDATE` (which is then asked for, instead of an
/// argument failing to unbox).
#[pg_extern(
    name = "checkpoint",
    volatile,
    sql = r#"
CREATE FUNCTION "checkpoint"(
	"tbl" regclass, /* PgRelation */
	"full" bool DEFAULT false /* read from fcinfo */
) RETURNS jsonb /* JsonB */
STRICT VOLATILE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'worm_checkpoint_wrapper';
"#
)]
fn worm_checkpoint(tbl: PgRelation, fcinfo: pg_sys::FunctionCallInfo) -> JsonB {
    // SAFETY: `fcinfo` is this call's; argument 1 is read only when the
    // call has it (STRICT: never NULL then).
    let full = unsafe {
        (*fcinfo).nargs >= 2 && pgrx::fcinfo::pg_getarg::<bool>(fcinfo, 1).unwrap_or(false)
    };
    let doc = if tbl.is_partitioned_table() {
        checkpoint_partitions(tbl, full).or_raise()
    } else {
        checkpoint(tbl, full).or_raise()
    };
    crate::watch::checkpointed(&doc);
    doc
}

/// worm.checkpoint of a partitioned table: one checkpoint per partition, in
/// the ledger each, returned together.
fn checkpoint_partitions(tbl: PgRelation, full: bool) -> Result<JsonB, WormError> {
    // SAFETY: `tbl` holds the relation open for the call.
    let table = unsafe { rel_display_name(tbl.as_ptr()) };
    let mut docs = Vec::new();
    for leaf in crate::pg::partition_leaves(tbl.oid())? {
        // SAFETY: a partition of the open parent.
        let rel = unsafe { PgRelation::with_lock(leaf, pg_sys::AccessShareLock as _) };
        docs.push(checkpoint(rel, full)?.0);
    }
    Ok(JsonB(
        json!({ "partitioned_table": table, "checkpoints": docs }),
    ))
}

/// A new checkpoint's trees, as computed from the rows (and stored tiles).
struct Trees {
    /// Every chain's head and anchor, with its tree (size, root).
    heads: Vec<DigestChain>,
    /// Per chain, the tile roots to store from tile `.1` on (all of them
    /// after a full read; the new ones after an incremental one).
    tiles: Vec<(i32, i64, Vec<Hash>)>,
    rows_checked: i64,
    verification: serde_json::Map<String, Json>,
}

fn checkpoint(tbl: PgRelation, full: bool) -> Result<JsonB, WormError> {
    crate::mode::require_primary("worm.checkpoint")?;
    let relid = tbl.oid();
    // SAFETY: `tbl` is an open relation for the duration of the call.
    let table = unsafe { rel_display_name(tbl.as_ptr()) };
    require_checkpointer(relid, &table)?;
    let meta = meta::lookup(relid)?.ok_or(WormError::NotProtected {
        table: table.clone(),
    })?;
    let previous_doc = latest_checkpoint(&meta.uid)?;
    let previous = previous_doc
        .as_ref()
        .and_then(|j| Digest::parse(j.clone()).ok())
        .filter(|d| d.hash_ok() && d.table_uid == meta.uid);
    let why_full = match (&previous_doc, &previous) {
        _ if full => Some("asked for (full => true)"),
        (None, _) => Some("no previous checkpoint"),
        (Some(_), None) => {
            Some("the previous checkpoint does not parse or its hash does not recompute")
        }
        (_, Some(p)) if p.format_version < 2 => {
            Some("the previous checkpoint is of format version 1 (one tree over the whole table)")
        }
        _ => None,
    };
    let trees = match (why_full, &previous) {
        (None, Some(p)) => incremental(&tbl, &table, &meta, p)?,
        _ => full_read(&tbl, &table, why_full.unwrap_or_default())?,
    };
    let mut fields = checkpoint_fields_v2(&trees.heads);
    let previous = previous_doc.map(
        |d| json!({ "ledger_seq": d["ledger_entry"]["seq"], "hash": d["ledger_entry"]["hash"] }),
    );
    fields.insert("previous_checkpoint".into(), previous.unwrap_or(Json::Null));
    // Where the WAL stood: later, a fork after failover is told from a cut.
    if let Some(wal) = server_wal() {
        fields.insert("wal".into(), wal.to_json());
    }
    // SAFETY: GetCurrentTimestamp only reads the clock.
    let now = unsafe { pg_sys::GetCurrentTimestamp() };
    let mut verification = trees.verification;
    verification.insert("ok".into(), json!(true));
    verification.insert("rows_checked".into(), json!(trees.rows_checked));
    verification.insert("at".into(), json!(rfc3339(now)));
    fields.insert("verification".into(), Json::Object(verification));
    let (appended, doc) = ledger::append("checkpoint", Some(&meta.uid), Some(&table), fields)?;
    store_tiles(&meta.uid, appended.seq, &trees.tiles)?;
    Ok(JsonB(
        json!({ "checkpoint": doc, "ledger_entry": appended.to_json() }),
    ))
}

/// A full checkpoint: the whole table verified as worm.verify does (which
/// streams), then every chain's links read again through the chain index
/// (worm_seq and worm_hash only, nothing hashed) into its tiles and root:
/// memory for one chain's links at a time, not the table's rows.
fn full_read(tbl: &PgRelation, table: &str, why: &str) -> Result<Trees, WormError> {
    let verified = verify_rel(tbl.as_ptr(), false)?;
    if !verified.ok() {
        return Err(WormError::CheckpointRefusedDamaged {
            table: table.to_owned(),
            problems: verified.problems_text(),
        });
    }
    let rel = tbl.as_ptr();
    // SAFETY: `tbl` holds the relation open for the call.
    let plan = unsafe { crate::insert::encode::build_plan(rel, table, true)? };
    let index = super::since::chain_index(&plan, table)?;
    let mut heads = Vec::new();
    let mut tiles = Vec::new();
    for c in 0..verified.meta.chains {
        let anchor = verified.anchors.get(&c).copied();
        let anchor_seq = anchor.map_or(0, |a| a.seq);
        let row = verified.rows.iter().find(|r| r.chain == Some(c));
        let head_seq = row.and_then(|r| r.head_seq).unwrap_or(anchor_seq);
        let head_link = row
            .and_then(|r| r.head_link.as_deref())
            .and_then(|h| hex::decode(h).ok())
            .and_then(|h| pg_worm_core::hash_from_slice(&h));
        let changed = || WormError::Damaged {
            table: table.to_owned(),
            what: format!("chain {c} read through its index is not the chain just verified"),
        };
        // SAFETY: `rel` is open, `index` its chain index, `plan` built for it.
        let (t, n, last) =
            unsafe { chain_tiles(rel, &plan, index, c, anchor_seq + 1) }.ok_or_else(changed)?;
        if n != head_seq - anchor_seq || (n > 0 && last != head_link) {
            return Err(changed());
        }
        heads.push(DigestChain {
            chain: c,
            head_seq,
            head_link: if n == 0 {
                anchor.map(|a| a.link)
            } else {
                head_link
            },
            anchor_seq,
            anchor_link: anchor.map(|a| a.link),
            tree: Some((n, root_from_tiles(&t))),
        });
        tiles.push((c, 0, t));
        pgrx::check_for_interrupts!();
    }
    let mut verification = serde_json::Map::new();
    verification.insert("kind".into(), json!("full"));
    verification.insert("why".into(), json!(why));
    Ok(Trees {
        heads,
        tiles,
        rows_checked: verified.rows_checked(),
        verification,
    })
}

/// The tile roots of the links of chain `c`'s rows from seq `from` on
/// (the last partial tile's included), their number and the last link,
/// through the chain index, reading worm_seq and worm_hash only and keeping
/// one tile's links at a time; None when they are not the seqs from,
/// from + 1, ... each with a 32-byte link.
///
/// # Safety
/// `rel` is an open protected table, `plan` built for it and `index` its
/// (worm_chain, worm_seq) btree.
unsafe fn chain_tiles(
    rel: pg_sys::Relation,
    plan: &crate::insert::encode::TablePlan,
    index: pg_sys::Oid,
    c: i32,
    from: i64,
) -> Option<(Vec<Hash>, i64, Option<Hash>)> {
    let keys = [
        crate::pg::chain_key::chain_is(c),
        crate::pg::chain_key::seq_from(from),
    ];
    let (seq_i, hash_i) = (
        usize::try_from(plan.seq_att - 1).ok()?,
        usize::try_from(plan.hash_att - 1).ok()?,
    );
    let (mut tiles, mut tail, mut n) = (Vec::new(), Vec::with_capacity(TILE), 0i64);
    let mut last = None;
    let each = |slot: crate::pg::Slot<'_>| {
        let (values, nulls) = slot.values();
        let link = match (nulls.get(seq_i), nulls.get(hash_i)) {
            (Some(false), Some(false)) if values[seq_i].value() as i64 == from + n => {
                // SAFETY: worm_hash is a bytea column of this row.
                pg_worm_core::hash_from_slice(unsafe {
                    crate::insert::encode::varlena_bytes(values[hash_i])
                })
            }
            _ => None,
        };
        let Some(l) = link else {
            return ControlFlow::Break(());
        };
        tail.push(l);
        if tail.len() == TILE {
            tiles.push(merkle_root(&tail));
            tail.clear();
        }
        n += 1;
        last = Some(l);
        ControlFlow::Continue(())
    };
    // SAFETY: the caller's contract; the keys match (int4, int8).
    let broke = unsafe {
        crate::pg::index_forward(rel, index, &keys, crate::pg::ScanSnapshot::Active, each)
    };
    if !tail.is_empty() {
        tiles.push(merkle_root(&tail));
    }
    broke.is_none().then_some((tiles, n, last))
}

/// One chain of an incremental checkpoint.
struct ChainOut {
    head: DigestChain,
    /// Tiles to store from this tile on.
    from_tile: i64,
    tiles: Vec<Hash>,
    rows_checked: i64,
}

/// An incremental checkpoint after `p` (format version 2, the table's
/// latest in the ledger). Per chain whose purge anchor is still the one `p`
/// recorded: the stored roots of its complete tiles and the rows after them
/// (read through the chain index) must give `p`'s chain root, which the
/// ledger vouches for — so altered stored state is detected, never
/// trusted; the rows after the last complete tile are verified (content and
/// links, continuing from the row before them) and the new chain root
/// computed. A chain purged since `p`, without stored tiles, or whose
/// stored state does not give `p`'s root is read and verified in full from
/// its anchor (a NOTICE says so for the last case). Rows edited in place
/// before the last complete tile are not re-read: that is what
/// `full => true` (and worm.verify) are for.
fn incremental(
    tbl: &PgRelation,
    table: &str,
    meta: &meta::TableMeta,
    p: &Digest,
) -> Result<Trees, WormError> {
    let rel = tbl.as_ptr();
    super::require_select(tbl.oid(), table)?;
    // SAFETY: `tbl` holds the relation open for the call.
    let plan = unsafe { crate::insert::encode::build_plan(rel, table, true)? };
    let reader = super::since::ChainReader {
        rel,
        plan: &plan,
        index: super::since::chain_index(&plan, table)?,
    };
    let anchors = super::anchor_entries(&meta.uid)?;
    let mut problems: Vec<String> = Vec::new();
    let mut reread: Vec<Json> = Vec::new();
    let mut out = Trees {
        heads: Vec::new(),
        tiles: Vec::new(),
        rows_checked: 0,
        verification: serde_json::Map::new(),
    };
    for c in 0..meta.chains {
        let anchor = match anchors.get(&c) {
            None => None,
            Some(a) => match a.good() {
                Some(a) => Some(*a),
                None => {
                    problems.push(format!(
                        "chain {c}: its purge anchor in worm.anchors is unusable"
                    ));
                    continue;
                }
            },
        };
        let recorded = p.chains.iter().find(|dc| dc.chain == c);
        let same_anchor = recorded.is_some_and(|dc| {
            dc.anchor_seq == anchor.map_or(0, |a| a.seq)
                && (dc.anchor_seq == 0 || dc.anchor_link == anchor.map(|a| a.link))
        });
        let attempt = match recorded {
            Some(dc) if same_anchor => from_tiles(&meta.uid, c, dc, anchor, &reader)?,
            Some(_) => Err("purged since the previous checkpoint".to_owned()),
            None => Err("not in the previous checkpoint".to_owned()),
        };
        let chain = match attempt {
            Ok(Ok(chain)) => chain,
            Ok(Err(problem)) => {
                problems.push(format!("chain {c}: {problem}"));
                continue;
            }
            Err(why) => {
                if why.starts_with("the stored tree state") {
                    pgrx::notice!(
                        "pg_worm: chain {c} of {table}: {why}; the chain was read in full"
                    );
                }
                reread.push(json!({ "chain": c, "why": why }));
                match chain_in_full(
                    &meta.uid,
                    c,
                    recorded.filter(|_| same_anchor),
                    anchor,
                    &reader,
                ) {
                    Ok(chain) => chain,
                    Err(problem) => {
                        problems.push(format!("chain {c}: {problem}"));
                        continue;
                    }
                }
            }
        };
        out.rows_checked += chain.rows_checked;
        out.tiles.push((c, chain.from_tile, chain.tiles));
        out.heads.push(chain.head);
        pgrx::check_for_interrupts!();
    }
    for dc in p.chains.iter().filter(|dc| dc.chain >= meta.chains) {
        problems.push(format!(
            "the previous checkpoint has chain {} but the table has {} chains",
            dc.chain, meta.chains
        ));
    }
    let outside = reader.count_outside(meta.chains);
    if outside > 0 {
        problems.push(format!(
            "{outside} row(s) carry a chain number outside 0..{} (not part of any chain)",
            meta.chains - 1
        ));
    }
    // SAFETY: `rel` is open.
    problems.extend(unsafe { super::table_problems(rel, &meta.uid, meta.encoding_version)? });
    if !problems.is_empty() {
        return Err(WormError::CheckpointRefusedDamaged {
            table: table.to_owned(),
            problems: problems.join("; "),
        });
    }
    let v = &mut out.verification;
    v.insert("kind".into(), json!("incremental"));
    v.insert("since".into(), json!(p.entry.seq));
    v.insert("chains_read_in_full".into(), Json::Array(reread));
    Ok(out)
}

/// The stored complete tiles 0..k of chain `c`, in order (fewer when some are missing).
fn stored_chain_tiles(uid: &[u8; 16], c: i32, k: i64) -> Result<Vec<Hash>, WormError> {
    Ok(sql::column::<Vec<u8>>(
        "SELECT root FROM worm.merkle_tiles \
          WHERE table_uid OPERATOR(pg_catalog.=) $1 AND chain OPERATOR(pg_catalog.=) $2 \
            AND tile OPERATOR(pg_catalog.<) $3 \
          ORDER BY tile",
        &[
            DatumWithOid::from(pgrx::Uuid::from_bytes(*uid)),
            DatumWithOid::from(c),
            DatumWithOid::from(k),
        ],
    )?
    .into_iter()
    .filter_map(|r| pg_worm_core::hash_from_slice(&r))
    .collect())
}

/// The links of `rows` in seq order from `from`, when every seq is there once with a link.
fn contiguous_links(rows: &[pg_worm_core::RowRecord], from: i64) -> Option<Vec<Hash>> {
    rows.iter()
        .enumerate()
        .map(|(i, r)| {
            (r.seq == Some(from + i as i64))
                .then(|| {
                    r.stored_link
                        .as_deref()
                        .and_then(pg_worm_core::hash_from_slice)
                })
                .flatten()
        })
        .collect()
}

/// What [`stream_chain`] found.
struct Streamed {
    report: pg_worm_core::ChainReport,
    /// Roots of the complete tiles of the links read (tile 0 = the first 256).
    tiles: Vec<Hash>,
    /// The links after the last complete tile.
    tail: Vec<Hash>,
    /// The links at positions `keep.0..keep.1` (0 = the first row read).
    kept: Vec<Hash>,
    /// Every row was seq from, from + 1, ... in index order, with a 32-byte link.
    contiguous: bool,
    /// Rows with a position came out of the index out of seq order.
    disordered: bool,
}

impl Streamed {
    fn len(&self) -> i64 {
        (self.tiles.len() * TILE + self.tail.len()) as i64
    }
    /// Every tile root of the links read, the last partial tile's included.
    fn all_tiles(&self) -> Vec<Hash> {
        let mut t = self.tiles.clone();
        if !self.tail.is_empty() {
            t.push(merkle_root(&self.tail));
        }
        t
    }
}

/// Chain `c`'s rows from seq `from` on, read through the chain index and
/// verified as they come (continuing from `start`), their links folded
/// into tile roots (and those at positions `keep` kept): memory for one
/// tile's links and the tile roots, not the rows.
///
/// # Safety
/// `rel` is an open protected table, `plan` built for it and `index` its
/// (worm_chain, worm_seq) btree.
#[allow(clippy::too_many_arguments)]
unsafe fn stream_chain(
    rel: pg_sys::Relation,
    plan: &crate::insert::encode::TablePlan,
    index: pg_sys::Oid,
    uid: &[u8; 16],
    c: i32,
    from: i64,
    start: Option<Anchor>,
    keep: (usize, usize),
) -> Streamed {
    let keys = [
        crate::pg::chain_key::chain_is(c),
        crate::pg::chain_key::seq_from(from),
    ];
    let mut verifier = pg_worm_core::table_verify::ChainVerifier::new(uid, c, start.as_ref());
    let (mut tiles, mut tail, mut kept) = (Vec::new(), Vec::with_capacity(TILE), Vec::new());
    let (mut n, mut contiguous, mut disordered) = (0usize, true, false);
    let mut per_row = pgrx::PgMemoryContexts::new("pg_worm checkpoint row");
    let each = |slot: crate::pg::Slot<'_>| {
        let (values, nulls) = slot.values();
        // SAFETY: the slot's deformed row, of the table the plan is for; what
        // row_record allocates in per_row is read only inside it.
        let (_, record) = unsafe { per_row.switch_to(|_| super::row_record(plan, values, nulls)) };
        // SAFETY: nothing allocated in per_row is used after this point.
        unsafe { per_row.reset() };
        if verifier.push(&record).is_err() {
            disordered = true;
            return ControlFlow::Break(());
        }
        let link = record
            .stored_link
            .as_deref()
            .and_then(pg_worm_core::hash_from_slice);
        match link {
            Some(l) if contiguous && record.seq == Some(from + n as i64) => {
                if (keep.0..keep.1).contains(&n) {
                    kept.push(l);
                }
                tail.push(l);
                if tail.len() == TILE {
                    tiles.push(merkle_root(&tail));
                    tail.clear();
                }
                n += 1;
            }
            _ => contiguous = false,
        }
        ControlFlow::Continue(())
    };
    // SAFETY: the caller's contract; the keys match (int4, int8).
    unsafe { crate::pg::index_forward(rel, index, &keys, crate::pg::ScanSnapshot::Active, each) };
    Streamed {
        report: verifier.finish(),
        tiles,
        tail,
        kept,
        contiguous,
        disordered,
    }
}

/// Chain `c` from its stored tiles (see [`incremental`]). Err(why) when the
/// stored state cannot be used (the caller reads the chain in full);
/// Ok(Err(problem)) when the rows after the last complete tile fail
/// verification.
#[allow(clippy::type_complexity)]
fn from_tiles(
    uid: &[u8; 16],
    c: i32,
    dc: &DigestChain,
    anchor: Option<Anchor>,
    reader: &super::since::ChainReader<'_>,
) -> Result<Result<Result<ChainOut, String>, String>, WormError> {
    let Some((size, root)) = dc.tree else {
        return Ok(Err("the previous checkpoint has no tree for it".into()));
    };
    let tile = TILE as i64;
    let k = size / tile;
    let stored = stored_chain_tiles(uid, c, k)?;
    if stored.len() as i64 != k {
        return Ok(Err(if stored.is_empty() {
            "no stored tiles".into()
        } else {
            format!(
                "the stored tree state is incomplete ({} of {k} tiles)",
                stored.len()
            )
        }));
    }
    let s0 = dc.anchor_seq + 1 + k * tile;
    let (rel, plan, index) = (reader.rel, reader.plan, reader.index);
    // Where verification continues from: the row before s0 (in a stored
    // tile, its link checked by the next row's), else the chain's anchor.
    let start = if k > 0 {
        let before = reader.rows(c, s0 - 1, s0 - 1);
        let link = match before.as_slice() {
            [r] if r.seq == Some(s0 - 1) => r
                .stored_link
                .as_deref()
                .and_then(pg_worm_core::hash_from_slice),
            _ => None,
        };
        let Some(link) = link else {
            return Ok(Err(format!(
                "row {} (where the stored tiles end) is not there once with a valid link",
                s0 - 1
            )));
        };
        if dc.head_seq == s0 - 1 && dc.head_link != Some(link) {
            return Ok(Err(
                "the previous checkpoint's head no longer has its link".into()
            ));
        }
        // The previous checkpoint's head is the last row of the stored
        // tiles: its content is checked as worm.verify_since checks it (the
        // rows read below start after it, and no later checkpoint looks at
        // it again).
        if dc.head_seq == s0 - 1 {
            let mut problems = Vec::new();
            super::since::check_head(uid, c, dc.head_seq, &link, anchor, reader, &mut problems);
            if let Some((_, why)) = problems.into_iter().next() {
                return Ok(Ok(Err(why)));
            }
        }
        Some(Anchor { seq: s0 - 1, link })
    } else {
        anchor
    };
    // The rows the previous checkpoint covered after the stored tiles must
    // give, with them, its chain root.
    let covered = (dc.head_seq - s0 + 1).max(0) as usize;
    // SAFETY: the reader's relation is open, its plan and index its own.
    let got = unsafe { stream_chain(rel, plan, index, uid, c, s0, start, (0, covered)) };
    if got.disordered {
        return Ok(Err(
            "its rows come out of the chain index out of seq order".into()
        ));
    }
    if got.kept.len() != covered
        || root_from_tiles_and_leaves(&stored, &got.kept) != root
        || (covered > 0 && got.kept.last() != dc.head_link.as_ref())
    {
        return Ok(Err(
            "the stored tree state and the rows after it do not give the previous checkpoint's chain root".into(),
        ));
    }
    if !got.report.ok || !got.contiguous {
        return Ok(Ok(Err(got.report.detail)));
    }
    let new_tiles = got.all_tiles();
    let mut all = stored;
    all.extend_from_slice(&new_tiles);
    let n = k * tile + got.len();
    Ok(Ok(Ok(ChainOut {
        head: head_of(
            c,
            &got.report,
            anchor,
            dc.anchor_seq,
            (n, root_from_tiles(&all)),
        ),
        from_tile: k,
        tiles: new_tiles,
        rows_checked: got.report.rows_checked,
    })))
}

fn head_of(
    c: i32,
    report: &pg_worm_core::ChainReport,
    anchor: Option<Anchor>,
    anchor_seq: i64,
    tree: (i64, Hash),
) -> DigestChain {
    DigestChain {
        chain: c,
        head_seq: report.head_seq.unwrap_or(anchor_seq),
        head_link: report.head_link,
        anchor_seq: anchor.map_or(0, |a| a.seq),
        anchor_link: anchor.map(|a| a.link),
        tree: Some(tree),
    }
}

/// Chain `c` read and verified in full from its anchor. When its anchor is
/// the one the previous checkpoint `recorded`, the rows that checkpoint
/// covered must still give its chain root. Err(problem) when not intact.
fn chain_in_full(
    uid: &[u8; 16],
    c: i32,
    recorded: Option<&DigestChain>,
    anchor: Option<Anchor>,
    reader: &super::since::ChainReader<'_>,
) -> Result<ChainOut, String> {
    let from = anchor.map_or(1, |a| a.seq + 1);
    let prior = recorded.and_then(|dc| dc.tree);
    // The previous tree's last partial tile is kept to recompute its root.
    let keep = prior.map_or((0, 0), |(size, _)| {
        let size = size.max(0) as usize;
        (size / TILE * TILE, size)
    });
    // SAFETY: the reader's relation is open, its plan and index its own.
    let got = unsafe {
        stream_chain(
            reader.rel,
            reader.plan,
            reader.index,
            uid,
            c,
            from,
            anchor,
            keep,
        )
    };
    if got.disordered {
        return Err(
            "its rows come out of the chain index out of seq order (the index no longer matches the table: worm.verify reads it again and names the rows)".into(),
        );
    }
    if !got.report.ok || !got.contiguous {
        return Err(got.report.detail);
    }
    if let Some((size, root)) = prior {
        let k = keep.0 / TILE;
        let recomputed = (got.len() >= size && got.tiles.len() >= k)
            .then(|| root_from_tiles_and_leaves(&got.tiles[..k], &got.kept));
        if recomputed != Some(root) {
            return Err(format!(
                "its rows up to the previous checkpoint's head (seq {}) no longer give that checkpoint's chain root: rows it covered were changed, removed or re-linked since",
                from + size - 1
            ));
        }
    }
    let tiles = got.all_tiles();
    Ok(ChainOut {
        head: head_of(
            c,
            &got.report,
            anchor,
            anchor.map_or(0, |a| a.seq),
            (got.len(), root_from_tiles(&tiles)),
        ),
        from_tile: 0,
        tiles,
        rows_checked: got.report.rows_checked,
    })
}

/// Keeps the tile roots of a checkpoint's chain trees as the table's stored
/// tree state: per chain, the given tiles from their first index on are
/// written. Tiles beyond a chain's tree (left by a longer tree before a
/// purge) stay; readers take only the tiles of the tree they check, and
/// the guard allows pg_worm no DELETE on its tables.
fn store_tiles(
    uid: &[u8; 16],
    ledger_seq: i64,
    tiles: &[(i32, i64, Vec<Hash>)],
) -> Result<(), WormError> {
    let (mut chains, mut idx, mut roots) = (Vec::new(), Vec::new(), Vec::new());
    for (c, from, t) in tiles {
        for (i, r) in t.iter().enumerate() {
            chains.push(*c);
            idx.push(from + i as i64);
            roots.push(r.to_vec());
        }
    }
    let uuid = pgrx::Uuid::from_bytes(*uid);
    meta::as_extension_owner(|| {
        sql::run_with_args(
            "INSERT INTO worm.merkle_tiles (table_uid, chain, tile, ledger_seq, root) \
             SELECT $1, t.c, t.i, $2, t.r \
               FROM ROWS FROM (pg_catalog.unnest($3::pg_catalog.int4[]), pg_catalog.unnest($4::pg_catalog.int8[]), \
                              pg_catalog.unnest($5::pg_catalog.bytea[])) AS t(c, i, r) \
             ON CONFLICT (table_uid, chain, tile) DO UPDATE \
                SET ledger_seq = excluded.ledger_seq, root = excluded.root",
            &[
                DatumWithOid::from(uuid),
                DatumWithOid::from(ledger_seq),
                DatumWithOid::from(chains),
                DatumWithOid::from(idx),
                DatumWithOid::from(roots),
            ],
        )?;
        Ok(())
    })
}

pub(super) fn bad_digest(why: impl Into<String>) -> WormError {
    WormError::BadDigest { why: why.into() }
}

/// A digest as passed in: well-formed, a checkpoint, its hash recomputing.
pub(super) fn parse_digest(j: &Json) -> Result<Digest, WormError> {
    let d = Digest::parse(j.clone()).map_err(|m| bad_digest(m.0))?;
    if !d.hash_ok() {
        return Err(bad_digest(
            "its hash does not match its content: the digest was altered",
        ));
    }
    Ok(d)
}

/// Trusted public keys registered with worm.trust_key: a row of
/// worm.trusted_keys counts only with its `trust_key` entry in the ledger (a
/// row inserted into the empty table by hand, as a restore may, does not).
fn trusted_keys() -> Result<Vec<[u8; 32]>, WormError> {
    Ok(sql::column::<Vec<u8>>(
        "SELECT k.public_key FROM worm.trusted_keys AS k \
              WHERE EXISTS (SELECT FROM worm.ledger AS l \
                             WHERE l.event OPERATOR(pg_catalog.=) 'trust_key' \
                               AND (l.document OPERATOR(pg_catalog.->>) 'public_key') \
                                   OPERATOR(pg_catalog.=) pg_catalog.encode(k.public_key, 'hex'))",
        &[],
    )?
    .into_iter()
    .filter_map(|k| k.try_into().ok())
    .collect())
}

/// Every signature present must verify, trusted key or not (a forged one is
/// never ignored); when keys are trusted, one of them must have signed.
/// The signer to name, if any.
fn check_signatures(d: &Digest) -> Result<Option<String>, WormError> {
    let keys = trusted_keys()?;
    let results = d.check_signatures(&keys);
    for (s, r) in d.signatures.iter().zip(&results) {
        if s.public_key.is_none() || s.signature.is_none() {
            return Err(bad_digest(format!(
                "the signature of {} is malformed",
                s.key_id
            )));
        }
        if !r.valid {
            return Err(bad_digest(format!(
                "the signature of {} does not verify",
                r.key_id
            )));
        }
    }
    if keys.is_empty() {
        return Ok((!results.is_empty())
            .then(|| format!("{} key(s), none registered as trusted", results.len())));
    }
    match results.iter().find(|r| r.required_key) {
        Some(r) => Ok(Some(r.key_id.clone())),
        None => Err(bad_digest(format!(
            "it carries no valid signature by a trusted key ({} signature(s) present, {} key(s) trusted)",
            results.len(),
            keys.len()
        ))),
    }
}

/// `worm.verify` that also proves the table still extends a digest taken earlier.
#[allow(clippy::type_complexity)]
#[pg_extern(name = "verify", volatile)]
fn worm_verify_against(
    tbl: PgRelation,
    against: JsonB,
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
        verify_partitions_against(&tbl, &table, &against.0)
    } else {
        verify_against(&tbl, &against.0).map(|rows| crate::verify::named(rows, &table))
    };
    let rows = rows.or_raise();
    crate::watch::verified(&tbl, crate::watch::Kind::Full, &rows);
    TableIterator::new(rows)
}

/// worm.verify(parent, digest) with the document worm.checkpoint(parent)
/// returned: every partition against its own checkpoint (partitions created
/// since are verified plainly); a partition of the digest that is gone counts
/// only when it was retired with a certificate.
fn verify_partitions_against(
    tbl: &PgRelation,
    table: &str,
    j: &Json,
) -> Result<Vec<crate::verify::NamedRow>, WormError> {
    let Some(checkpoints) = j.get("checkpoints").and_then(Json::as_array) else {
        return Err(bad_digest(format!(
            "{table} is a partitioned table: pass the document worm.checkpoint('{table}') returned (with its \"checkpoints\"), or verify each partition against its own digest"
        )));
    };
    let mut by_uid: Vec<([u8; 16], String, &Json)> = Vec::new();
    for cp in checkpoints {
        let d = parse_digest(cp)?;
        by_uid.push((d.table_uid, d.table_name.clone(), cp));
    }
    let mut seen: Vec<[u8; 16]> = Vec::new();
    let mut out = crate::verify::per_partition(tbl.oid(), table, |rel, _| {
        let Some(m) = meta::lookup(unsafe { (*rel).rd_id })? else {
            return Ok(Vec::new());
        };
        seen.push(m.uid);
        match by_uid.iter().find(|(uid, _, _)| *uid == m.uid) {
            Some((_, _, cp)) => {
                // SAFETY: `rel` is open for the call (per_partition holds it).
                let leaf = unsafe { PgRelation::from_pg(rel) };
                verify_against(&leaf, cp)
            }
            None => crate::verify::verify_rel(rel, false)
                .map(|v| v.rows.into_iter().map(to_row).collect()),
        }
    })?;
    for (uid, name, _) in &by_uid {
        if seen.contains(uid) {
            continue;
        }
        let (ok, detail) = if retired(uid)? {
            (
                true,
                format!("partition {name} of the digest was retired: the ledger holds its deletion certificate"),
            )
        } else {
            (
                false,
                format!("partition {name} of the digest is no longer a partition of {table} (detached or dropped without a certificate)"),
            )
        };
        out.push(crate::verify::table_row(ok, detail, name.clone()));
    }
    Ok(out)
}

/// Whether a table identity was retired (worm.retire or DROP TABLE with a
/// certificate).
fn retired(uid: &[u8; 16]) -> Result<bool, WormError> {
    Ok(sql::column::<bool>(
        "SELECT retired_at IS NOT NULL FROM worm.tables WHERE table_uid OPERATOR(pg_catalog.=) $1",
        &[DatumWithOid::from(pgrx::Uuid::from_bytes(*uid))],
    )?
    .into_iter()
    .next()
    .unwrap_or(false))
}

/// The entry at `seq` of this database's ledger, and (when there is none) its newest seq.
pub(super) fn ledger_at(seq: i64) -> Result<(Option<LedgerEntry>, Option<i64>), WormError> {
    let stored = sql::connect(|client| {
        let mut rows = client.select(
            "SELECT l.document, l.prev_hash, l.hash FROM worm.ledger AS l \
              WHERE l.seq OPERATOR(pg_catalog.=) $1",
            Some(1),
            &[DatumWithOid::from(seq)],
        )?;
        let Some(r) = rows.next() else {
            return Ok::<_, pgrx::spi::SpiError>(None);
        };
        Ok(
            match (
                r.get::<JsonB>(1)?,
                r.get::<Vec<u8>>(2)?,
                r.get::<Vec<u8>>(3)?,
            ) {
                (Some(d), Some(prev), Some(hash)) => Some(LedgerEntry {
                    seq,
                    document: d.0,
                    prev,
                    hash,
                }),
                _ => None,
            },
        )
    })?;
    if stored.is_some() {
        return Ok((stored, None));
    }
    // Read-only (sql::column, not get_one): this runs on standbys too, where
    // assigning a transaction id fails.
    let last = sql::column::<i64>(
        "SELECT COALESCE(pg_catalog.max(l.seq), 0) FROM worm.ledger AS l",
        &[],
    )?
    .into_iter()
    .next();
    Ok((None, last))
}

/// A finding that belongs to no chain of the table, as a result row.
pub(super) fn extra_row(
    chain: Option<i32>,
    rows_checked: i64,
    first_bad_seq: Option<i64>,
    detail: &str,
) -> VerifyRow {
    (
        chain,
        rows_checked,
        false,
        first_bad_seq,
        detail.to_owned(),
        1,
        None,
        None,
    )
}

/// worm.verify's rows against a digest: the chain problems merged into the
/// chains' rows, the others (the ledger, the table's chains, the Merkle root,
/// chains of the checkpoint the table no longer has) as rows of their own; the
/// rows that stayed ok say which checkpoint they extend.
fn against_rows(
    mut rows: Vec<ChainRow>,
    ledger: &Check,
    cmp: &Comparison,
    covered: i64,
    note: &str,
) -> Vec<VerifyRow> {
    let mut extra = Vec::new();
    if ledger.status == Status::Problem {
        extra.push(extra_row(None, 0, None, &ledger.detail));
    }
    for f in cmp
        .chains
        .iter()
        .filter(|f| f.check.status == Status::Problem)
    {
        match rows.iter_mut().find(|r| r.chain == Some(f.chain)) {
            Some(r) => r.add_problem(f.first_bad_seq, &f.check.detail),
            None => extra.push(extra_row(Some(f.chain), 0, None, &f.check.detail)),
        }
    }
    for c in cmp.table.iter().filter(|c| c.status == Status::Problem) {
        let checked = if c.check == "merkle_root" { covered } else { 0 };
        extra.push(extra_row(None, checked, None, &c.detail));
    }
    for r in rows.iter_mut().filter(|r| r.ok) {
        r.detail.push_str(note);
    }
    let mut out: Vec<VerifyRow> = rows.into_iter().map(to_row).collect();
    out.extend(extra);
    out
}

fn verify_against(tbl: &PgRelation, j: &Json) -> Result<Vec<VerifyRow>, WormError> {
    let d = parse_digest(j)?;
    // SAFETY: `tbl` is an open relation for the duration of the call.
    let table = unsafe { rel_display_name(tbl.as_ptr()) };
    // Streaming verification (memory bounded by the chains and the largest row).
    let mut verified: Verified = verify_rel(tbl.as_ptr(), false)?;
    let uid = verified.meta.uid;
    if d.table_uid != uid {
        return Err(bad_digest(format!(
            "it is a digest of another table ({} at the time), not of {table}",
            if d.table_name.is_empty() {
                "?"
            } else {
                &d.table_name
            }
        )));
    }
    let signer = check_signatures(&d)?;
    let (stored, last) = ledger_at(d.entry.seq)?;
    // The digest's previous checkpoint, when this ledger holds it too: forks part after it.
    let previous = match previous_checkpoint_seq(&d) {
        Some(seq) => shared_previous(&d, ledger_at(seq)?.0.as_ref()),
        None => None,
    };
    // An intact table: each chain's positions and links stream through the chain index
    // into the comparison. A table that failed verification (rows the index may not show
    // among them) is read into memory as before, so that its report stays word for word.
    let streamed = if verified.ok() {
        // SAFETY: `tbl` is an open protected table for the duration of the call.
        unsafe { gather_streamed(tbl.as_ptr(), &table, &d, previous.as_ref(), &verified)? }
    } else {
        None
    };
    let gathered = match streamed {
        Some(g) => g,
        None => {
            verified = verify_rel(tbl.as_ptr(), true)?;
            gather_state(&d, previous.as_ref(), &verified.chain_states())
        }
    };
    let cmp = compare_gathered(
        &d,
        &uid,
        verified.meta.chains,
        &gathered,
        server_wal().as_ref(),
        previous.as_ref(),
    );
    let ledger = cmp.ledger_finding(ledger_check(stored.as_ref(), last, &d));
    let covered = gathered.covered();
    let note = match &signer {
        Some(k) => format!(
            "; extends the checkpoint of ledger entry {} (signed by {k})",
            d.entry.seq
        ),
        None => format!("; extends the checkpoint of ledger entry {}", d.entry.seq),
    };
    Ok(against_rows(verified.rows, &ledger, &cmp, covered, &note))
}

/// What the comparison with `d` needs of every chain of the table, read chain by chain
/// through the chain index (seq and link of each row, nothing kept): None when the table
/// has no chain index (then it is read into memory).
///
/// # Safety
/// `rel` is an open protected table, held open by the caller for the call.
unsafe fn gather_streamed(
    rel: pg_sys::Relation,
    table: &str,
    d: &Digest,
    previous: Option<&Digest>,
    verified: &Verified,
) -> Result<Option<Gathered>, WormError> {
    // SAFETY: the caller's contract.
    let plan = unsafe { crate::insert::encode::build_plan(rel, table, true)? };
    let Some(index) = plan.index else {
        return Ok(None);
    };
    let mut g = Gather::new(d, previous);
    for dc in &d.chains {
        let c = dc.chain;
        if c < 0 || c >= verified.meta.chains {
            continue;
        }
        g.chain(
            c,
            verified
                .anchor_entries
                .get(&c)
                .and_then(pg_worm_core::AnchorEntry::position),
        );
        // SAFETY: the caller's contract; `index` is the table's chain index.
        unsafe { chain_positions(rel, &plan, index, c, |seq, link| g.row(seq, link)) };
    }
    Ok(Some(g.finish()))
}

/// Calls `f` with the (seq, link) of every row of chain `c` in index order
/// (link None when NULL or not 32 bytes; rows with a NULL seq, last in the
/// index, left out), keeping nothing.
///
/// # Safety
/// `rel` is an open protected table, `plan` built for it and `index` its
/// (worm_chain, worm_seq) btree.
unsafe fn chain_positions(
    rel: pg_sys::Relation,
    plan: &crate::insert::encode::TablePlan,
    index: pg_sys::Oid,
    c: i32,
    mut f: impl FnMut(i64, Option<Hash>),
) {
    let (seq_att, hash_att) = (plan.seq_att, plan.hash_att);
    let keys = [crate::pg::chain_key::chain_is(c)];
    let each = |slot: crate::pg::Slot<'_>| {
        if let Some(seq) = slot.get(seq_att).map(|v| v.value() as i64) {
            // SAFETY: worm_hash is a bytea column of this row; a 32-byte link is
            // stored inline (short header), so nothing is allocated for it.
            let link = slot.get(hash_att).and_then(|v| {
                pg_worm_core::hash_from_slice(unsafe { crate::pg::varlena_bytes(v) })
            });
            f(seq, link);
        }
        ControlFlow::<()>::Continue(())
    };
    // SAFETY: the caller's contract; the key is int4.
    unsafe { crate::pg::index_forward(rel, index, &keys, crate::pg::ScanSnapshot::Active, each) };
}

/// Leaves folded into [`TILE`]-leaf tile roots as they come, keeping the
/// leaves of the one tile that holds the wanted leaf (the first pushed as
/// wanted): memory for the tile roots and two tiles, not the leaves.
#[derive(Default)]
struct TileFold {
    tiles: Vec<Hash>,
    tail: Vec<Hash>,
    n: usize,
    want: Option<usize>,
    kept: Vec<Hash>,
}

impl TileFold {
    fn push(&mut self, l: Hash, wanted: bool) {
        if wanted && self.want.is_none() {
            self.want = Some(self.n);
        }
        self.tail.push(l);
        self.n += 1;
        if self.tail.len() == TILE {
            if self.want.is_some_and(|w| w / TILE == self.tiles.len()) {
                self.kept = self.tail.clone();
            }
            self.tiles.push(merkle_root(&self.tail));
            self.tail.clear();
        }
    }

    /// Every tile root (the last partial tile's included).
    fn finish(&mut self) {
        if !self.tail.is_empty() {
            if self.want.is_some_and(|w| w / TILE == self.tiles.len()) {
                self.kept = self.tail.clone();
            }
            self.tiles.push(merkle_root(&self.tail));
            self.tail.clear();
        }
    }

    /// The wanted leaf's index, link and audit path (equal to
    /// `inclusion_proof` over all the leaves).
    fn proof(&self) -> Option<(usize, Hash, Vec<Hash>)> {
        let w = self.want?;
        let at = w % TILE;
        let link = *self.kept.get(at)?;
        let path = pg_worm_core::inclusion_proof_from_tiles(&self.kept, at, &self.tiles, w / TILE)
            .unwrap_or_default();
        Some((w, link, path))
    }
}

/// `prove` reading the whole table without keeping it (an intact table with
/// its chain index): the covered links of every chain streamed into tile
/// roots (one tree over all chains for format version 1, one per chain for
/// version 2), the proved row and the one before it read through the index.
/// None when the table cannot be read that way (the caller keeps the rows).
fn prove_streamed(
    tbl: &PgRelation,
    table: &str,
    d: &Digest,
    verified: &Verified,
    pos: (i32, i64),
) -> Result<Option<Result<Proof, WormError>>, WormError> {
    let (chain, seq) = pos;
    let rel = tbl.as_ptr();
    // SAFETY: `tbl` holds the relation open for the call.
    let plan = unsafe { crate::insert::encode::build_plan(rel, table, true)? };
    let Some(index) = plan.index else {
        return Ok(None);
    };
    let stale = || WormError::CheckpointStale {
        table: table.to_string(),
        ledger_seq: d.entry.seq,
    };
    let not_in = || WormError::NotInCheckpoint {
        table: table.to_string(),
        chain,
        seq,
        ledger_seq: d.entry.seq,
    };
    let v1 = d.format_version < 2;
    let mut all = TileFold::default();
    let mut trees = Vec::with_capacity(d.chains.len());
    let mut mine = TileFold::default();
    let mut covered = 0i64;
    for dc in &d.chains {
        let mut one = TileFold::default();
        if (0..verified.meta.chains).contains(&dc.chain) {
            let fold = |s: i64, l: Option<Hash>| {
                if let Some(l) = l.filter(|_| s > dc.anchor_seq && s <= dc.head_seq) {
                    let wanted = dc.chain == chain && s == seq;
                    covered += 1;
                    if v1 {
                        all.push(l, wanted);
                    } else {
                        one.push(l, wanted);
                    }
                }
            };
            // SAFETY: `rel` is open, `plan` built for it, `index` its chain index.
            unsafe { chain_positions(rel, &plan, index, dc.chain, fold) };
        }
        if !v1 {
            one.finish();
            trees.push((one.n as i64, root_from_tiles(&one.tiles)));
            if dc.chain == chain {
                mine = one;
            }
        }
    }
    if covered != d.merkle_size {
        return Ok(Some(Err(stale())));
    }
    let fold = if v1 {
        all.finish();
        if root_from_tiles(&all.tiles) != d.merkle_root {
            return Ok(Some(Err(stale())));
        }
        all
    } else {
        if pg_worm_core::table_root_v2(&trees) != d.merkle_root {
            return Ok(Some(Err(stale())));
        }
        mine
    };
    let Some((index_in, link, path)) = fold.proof() else {
        return Ok(Some(Err(not_in())));
    };
    let tree = if v1 {
        None
    } else {
        match chain_tree(&trees, chain) {
            Some(t) => Some(t),
            None => return Ok(Some(Err(not_in()))),
        }
    };
    let reader = super::since::ChainReader {
        rel,
        plan: &plan,
        index,
    };
    let recs = reader.rows(chain, seq - 1, seq);
    Ok(Some(proof_of(
        &recs,
        &verified.anchors,
        d,
        table,
        (chain, seq),
        index_in,
        link,
        path,
        tree,
    )))
}

/// Registers an auditor's Ed25519 public key (hex): from then on
/// worm.verify(tbl, against) counts only digests signed by a trusted key.
#[pg_extern(name = "trust_key", volatile)]
fn worm_trust_key(key_id: String, public_key: String) -> JsonB {
    trust_key(key_id, public_key).or_raise()
}

fn trust_key(key_id: String, public_key: String) -> Result<JsonB, WormError> {
    crate::mode::require_primary("worm.trust_key")?;
    // SAFETY: superuser() only reads the current user's role.
    if !(unsafe { pg_sys::superuser() } || meta::has_role("worm_admin")) {
        return Err(WormError::NotOwnerFor {
            table: "pg_worm".into(),
            action: "register a trusted key (superuser or worm_admin)",
        });
    }
    if key_id.trim().is_empty() {
        return Err(WormError::EmptyReason { what: "the key id" });
    }
    let pk = hex::decode(public_key.trim())
        .ok()
        .filter(|k| pg_worm_core::valid_public_key(k))
        .ok_or(WormError::BadKey)?;
    meta::as_extension_owner(|| {
        sql::run_with_args(
            "INSERT INTO worm.trusted_keys (key_id, public_key, added_at, added_by) \
             VALUES ($1, $2, pg_catalog.transaction_timestamp(), session_user)",
            &[
                DatumWithOid::from(key_id.clone()),
                DatumWithOid::from(pk.clone()),
            ],
        )?;
        Ok(())
    })?;
    let mut fields = serde_json::Map::new();
    fields.insert("key_id".into(), json!(key_id));
    fields.insert("public_key".into(), json!(hex::encode(&pk)));
    let (appended, doc) = ledger::append("trust_key", None, None, fields)?;
    Ok(JsonB(
        json!({ "document": doc, "ledger_entry": appended.to_json() }),
    ))
}

/// An inclusion proof that the row (chain, seq) was in the table at its latest checkpoint.
#[pg_extern(name = "prove", volatile)]
fn worm_prove(tbl: PgRelation, chain: i32, seq: i64) -> JsonB {
    prove(&tbl, chain, seq).or_raise()
}

fn prove(tbl: &PgRelation, chain: i32, seq: i64) -> Result<JsonB, WormError> {
    // SAFETY: `tbl` is an open relation for the duration of the call.
    let table = unsafe { rel_display_name(tbl.as_ptr()) };
    let meta = meta::lookup(tbl.oid())?.ok_or(WormError::NotProtected {
        table: table.clone(),
    })?;
    let no_checkpoint = || WormError::NoCheckpoint {
        table: table.clone(),
    };
    let d = latest_checkpoint(&meta.uid)?.ok_or_else(no_checkpoint)?;
    let d = Digest::parse(d)
        .map_err(|m| WormError::Internal(format!("the latest checkpoint does not parse: {m}")))?;
    if d.format_version >= 2 {
        if let Some(proof) = prove_from_tiles(tbl, &table, &meta, &d, (chain, seq))? {
            return Ok(JsonB(proof.to_json()));
        }
    }
    // No usable stored tree state (none kept, or it does not give the
    // checkpoint's root), or a checkpoint of format version 1: the whole
    // table is read, streaming when it is intact and has its chain index.
    let verified = verify_rel(tbl.as_ptr(), false)?;
    if verified.ok() {
        if let Some(proof) = prove_streamed(tbl, &table, &d, &verified, (chain, seq))? {
            return Ok(JsonB(proof?.to_json()));
        }
    }
    let verified = verify_rel(tbl.as_ptr(), true)?;
    let leaves = covered_leaves(&d, &verified.chain_states());
    let stale = || WormError::CheckpointStale {
        table: table.clone(),
        ledger_seq: d.entry.seq,
    };
    let not_in = || WormError::NotInCheckpoint {
        table: table.clone(),
        chain,
        seq,
        ledger_seq: d.entry.seq,
    };
    if leaves.len() as i64 != d.merkle_size {
        return Err(stale());
    }
    if d.format_version < 2 {
        let links: Vec<Hash> = leaves.iter().map(|l| l.2).collect();
        if merkle_root(&links) != d.merkle_root {
            return Err(stale());
        }
        let index = leaves
            .iter()
            .position(|l| l.0 == chain && l.1 == seq)
            .ok_or_else(not_in)?;
        let path = inclusion_proof(&links, index).unwrap_or_default();
        let proof = proof_of(
            records_of(&verified, chain),
            &verified.anchors,
            &d,
            &table,
            (chain, seq),
            index,
            links[index],
            path,
            None,
        )?;
        return Ok(JsonB(proof.to_json()));
    }
    let mut trees = Vec::with_capacity(d.chains.len());
    let mut mine = Vec::new();
    for dc in &d.chains {
        let links: Vec<Hash> = leaves
            .iter()
            .filter(|l| l.0 == dc.chain)
            .map(|l| l.2)
            .collect();
        trees.push((links.len() as i64, merkle_root(&links)));
        if dc.chain == chain {
            mine = links;
        }
    }
    if pg_worm_core::table_root_v2(&trees) != d.merkle_root {
        return Err(stale());
    }
    let index = leaves
        .iter()
        .filter(|l| l.0 == chain)
        .position(|l| l.1 == seq)
        .ok_or_else(not_in)?;
    let tree = chain_tree(&trees, chain).ok_or_else(not_in)?;
    let path = inclusion_proof(&mine, index).unwrap_or_default();
    let proof = proof_of(
        records_of(&verified, chain),
        &verified.anchors,
        &d,
        &table,
        (chain, seq),
        index,
        mine[index],
        path,
        Some(tree),
    )?;
    Ok(JsonB(proof.to_json()))
}

/// The rows of chain `chain` a verification kept.
fn records_of(verified: &Verified, chain: i32) -> &[pg_worm_core::RowRecord] {
    verified
        .records
        .get(&Some(chain))
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// The part of a version-2 proof above chain `chain`.
fn chain_tree(trees: &[(i64, Hash)], chain: i32) -> Option<pg_worm_core::proof::ChainTree> {
    let c = usize::try_from(chain).ok()?;
    let (size, root) = *trees.get(c)?;
    Some(pg_worm_core::proof::ChainTree {
        chains: trees.len() as i64,
        size,
        root,
        top_path: pg_worm_core::top_path_v2(trees, c)?,
    })
}

/// The proof of the row at `pos` from the checkpoint's stored tiles (format
/// version 2): its leaf index in its chain's tree follows from the chain's
/// anchor, the chain's stored tile roots must give the chain root the
/// checkpoint recorded, and the rows of its tile (read through the chain
/// index) must give its tile's root; the chains' roots must give the
/// checkpoint's root. None when any of that fails (the caller reads the
/// whole table instead).
fn prove_from_tiles(
    tbl: &PgRelation,
    table: &str,
    meta: &meta::TableMeta,
    d: &Digest,
    pos: (i32, i64),
) -> Result<Option<Proof>, WormError> {
    let (chain, seq) = pos;
    let trees: Vec<(i64, Hash)> = d.chains.iter().filter_map(|dc| dc.tree).collect();
    if trees.len() != d.chains.len() || pg_worm_core::table_root_v2(&trees) != d.merkle_root {
        return Ok(None);
    }
    let Some(dc) = d.chains.iter().find(|dc| dc.chain == chain) else {
        return Err(WormError::NotInCheckpoint {
            table: table.to_string(),
            chain,
            seq,
            ledger_seq: d.entry.seq,
        });
    };
    if seq <= dc.anchor_seq || seq > dc.head_seq {
        return Err(WormError::NotInCheckpoint {
            table: table.to_string(),
            chain,
            seq,
            ledger_seq: d.entry.seq,
        });
    }
    let Some((size, root)) = dc.tree else {
        return Ok(None);
    };
    let tile_size = TILE as i64;
    let ntiles = (size + tile_size - 1) / tile_size;
    let tiles = stored_chain_tiles(&meta.uid, chain, ntiles)?;
    if tiles.len() as i64 != ntiles || root_from_tiles(&tiles) != root {
        return Ok(None);
    }
    let index = seq - dc.anchor_seq - 1;
    let tile = index / tile_size;
    let first = dc.anchor_seq + 1 + tile * tile_size;
    let last = (first + tile_size - 1).min(dc.head_seq);
    let rel = tbl.as_ptr();
    // SAFETY: `tbl` holds the relation open for the call.
    let plan = unsafe { crate::insert::encode::build_plan(rel, table, true)? };
    let reader = super::since::ChainReader {
        rel,
        plan: &plan,
        index: super::since::chain_index(&plan, table)?,
    };
    let recs = reader.rows(chain, first, last);
    let Some(links) = contiguous_links(&recs, first).filter(|l| l.len() as i64 == last - first + 1)
    else {
        return Ok(None);
    };
    let at = (seq - first) as usize;
    let Some(path) = pg_worm_core::inclusion_proof_from_tiles(&links, at, &tiles, tile as usize)
    else {
        return Ok(None);
    };
    let row = &recs[at];
    let anchor = super::anchor_entries(&meta.uid)?
        .get(&chain)
        .and_then(|a| a.good())
        .copied();
    let prev: Hash = match anchor {
        Some(a) if a.seq == seq - 1 => a.link,
        _ if seq == 1 => pg_worm_core::GENESIS,
        _ if at > 0 => links[at - 1],
        _ => match reader
            .rows(chain, seq - 1, seq - 1)
            .first()
            .and_then(|r| r.stored_link.as_deref())
            .and_then(pg_worm_core::hash_from_slice)
        {
            Some(l) => l,
            None => return Ok(None),
        },
    };
    let (Some(inserted_at), Some(tree)) = (row.inserted_at, chain_tree(&trees, chain)) else {
        return Ok(None);
    };
    Ok(Some(Proof {
        table_uid: d.table_uid,
        table_name: table.to_owned(),
        checkpoint_seq: d.entry.seq,
        checkpoint_hash: d.entry.hash,
        merkle_root: d.merkle_root,
        merkle_size: d.merkle_size,
        chain,
        seq,
        inserted_at,
        row_hash: row.row_hash,
        prev_link: prev,
        link: links[at],
        leaf_index: index,
        path,
        chain_tree: Some(tree),
    }))
}

/// The proof of the row at `pos`, leaf `index` (of the table's tree in
/// version 1, of its chain's in version 2) with `link` and audit `path`.
#[allow(clippy::too_many_arguments)]
fn proof_of(
    recs: &[pg_worm_core::RowRecord],
    anchors: &std::collections::HashMap<i32, Anchor>,
    d: &Digest,
    table: &str,
    pos: (i32, i64),
    index: usize,
    link: Hash,
    path: Vec<Hash>,
    chain_tree: Option<pg_worm_core::proof::ChainTree>,
) -> Result<Proof, WormError> {
    let (chain, seq) = pos;
    let at = |s: i64| recs.iter().find(|r| r.seq == Some(s));
    let row = at(seq).ok_or_else(|| WormError::Internal("proved row vanished".into()))?;
    let prev: Hash = match (at(seq - 1), anchors.get(&chain)) {
        (Some(p), _) => p
            .stored_link
            .as_deref()
            .and_then(pg_worm_core::hash_from_slice)
            .unwrap_or_default(),
        (None, Some(a)) if a.seq == seq - 1 => a.link,
        _ => pg_worm_core::GENESIS,
    };
    Ok(Proof {
        table_uid: d.table_uid,
        table_name: table.to_owned(),
        checkpoint_seq: d.entry.seq,
        checkpoint_hash: d.entry.hash,
        merkle_root: d.merkle_root,
        merkle_size: d.merkle_size,
        chain,
        seq,
        inserted_at: row.inserted_at.ok_or_else(|| {
            WormError::Internal(format!("row {seq} of chain {chain} has no insertion time"))
        })?,
        row_hash: row.row_hash,
        prev_link: prev,
        link,
        leaf_index: index as i64,
        path,
        chain_tree,
    })
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    fn setup(name: &str) -> pgrx::JsonB {
        Spi::run(&format!("CREATE TABLE {name} (id int, note text)")).unwrap();
        Spi::run(&format!("SELECT worm.protect('{name}', chains => 2)")).unwrap();
        Spi::run(&format!(
            "INSERT INTO {name} SELECT g, 'n' || g FROM generate_series(1, 20) g"
        ))
        .unwrap();
        Spi::get_one::<pgrx::JsonB>(&format!("SELECT worm.checkpoint('{name}')"))
            .unwrap()
            .unwrap()
    }

    fn signed(digest: &serde_json::Value, secret: &[u8; 32], key_id: &str) -> serde_json::Value {
        let hash: [u8; 32] = hex::decode(digest["ledger_entry"]["hash"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        let mut d = digest.clone();
        d["signatures"] = serde_json::json!([{
            "key_id": key_id,
            "public_key": hex::encode(pg_worm_core::public_key_of(secret)),
            "signature": hex::encode(pg_worm_core::sign(secret, &hash)),
        }]);
        d
    }

    fn bad_chains(table: &str, digest: &serde_json::Value) -> Result<i64, pgrx::spi::SpiError> {
        Spi::get_one_with_args::<i64>(
            &format!("SELECT count(*) FROM worm.verify('{table}', $1) WHERE NOT ok"),
            &[pgrx::JsonB(digest.clone()).into()],
        )
        .map(|v| v.unwrap_or(-1))
    }

    #[pg_test]
    fn signed_digest_counts_only_with_a_trusted_key() {
        let digest = setup("t_signed").0;
        let secret = [42u8; 32];
        let pk = hex::encode(pg_worm_core::public_key_of(&secret));
        Spi::run(&format!("SELECT worm.trust_key('auditor-1', '{pk}')")).unwrap();
        let good = signed(&digest, &secret, "auditor-1");
        assert_eq!(bad_chains("t_signed", &good).unwrap(), 0);
        // More rows later: the table still extends the digest.
        Spi::run("INSERT INTO t_signed VALUES (99, 'later')").unwrap();
        assert_eq!(bad_chains("t_signed", &good).unwrap(), 0);
    }

    #[pg_test(
        error = "the digest cannot be used: it carries no valid signature by a trusted key (1 signature(s) present, 1 key(s) trusted)"
    )]
    fn digest_signed_by_an_unknown_key_is_refused() {
        let digest = setup("t_unknown").0;
        let pk = hex::encode(pg_worm_core::public_key_of(&[42u8; 32]));
        Spi::run(&format!("SELECT worm.trust_key('auditor-1', '{pk}')")).unwrap();
        let forged = signed(&digest, &[7u8; 32], "mallory");
        let _ = bad_chains("t_unknown", &forged);
    }

    #[pg_test(error = "the digest cannot be used: the signature of mallory does not verify")]
    fn forged_signature_is_refused_even_without_trusted_keys() {
        let digest = setup("t_forged").0;
        let mut forged = signed(&digest, &[7u8; 32], "mallory");
        forged["signatures"][0]["signature"] = serde_json::json!("00".repeat(64));
        let _ = bad_chains("t_forged", &forged);
    }

    /// `digest` with its checkpoint's `wal` replaced and its ledger hash
    /// recomputed (as a server on another branch would have issued it).
    fn with_wal(digest: &serde_json::Value, wal: serde_json::Value) -> serde_json::Value {
        let mut d = digest.clone();
        d["checkpoint"]["wal"] = wal;
        let seq = d["ledger_entry"]["seq"].as_i64().unwrap();
        let prev: [u8; 32] = hex::decode(d["ledger_entry"]["prev_hash"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        let hash = pg_worm_core::ledger_hash(seq, &prev, &d["checkpoint"]);
        d["ledger_entry"]["hash"] = serde_json::json!(hex::encode(hash));
        d
    }

    /// The fork or rollback finding of worm.verify(table, digest), if any.
    fn wal_finding(table: &str, digest: serde_json::Value) -> Option<String> {
        Spi::get_one_with_args::<String>(
            &format!(
                "SELECT pg_catalog.string_agg(detail, ' | ') FROM worm.verify('{table}', $1) \
                  WHERE chain IS NULL AND (detail LIKE 'fork:%' OR detail LIKE 'rollback:%')"
            ),
            &[pgrx::JsonB(digest).into()],
        )
        .unwrap()
    }

    /// A checkpoint records where the WAL stood; a digest whose position this
    /// server never passed through is a fork, one ahead of it on its own
    /// timeline a rollback.
    #[pg_test]
    fn checkpoint_records_the_wal_position() {
        let digest = setup("t_wal").0;
        let wal = &digest["checkpoint"]["wal"];
        let sysid = Spi::get_one::<String>(
            "SELECT system_identifier::text FROM pg_catalog.pg_control_system()",
        )
        .unwrap()
        .unwrap();
        assert_eq!(wal["system_identifier"].as_str(), Some(sysid.as_str()));
        assert_eq!(wal["timeline"].as_i64(), Some(1));
        assert_eq!(wal["history"], serde_json::json!([]));
        assert!(wal_finding("t_wal", digest.clone()).is_none());
        // Taken on a server promoted to timeline 2 at 0/1, which this one went on past.
        let forked = with_wal(
            &digest,
            serde_json::json!({"system_identifier": sysid, "timeline": 2, "lsn": "0/2",
                               "history": [{"timeline": 1, "switched_at": "0/1"}]}),
        );
        let detail = wal_finding("t_wal", forked).unwrap_or_default();
        assert!(
            detail.starts_with(
                "fork: this server and the checkpoint's server have different histories from timeline 1, LSN 0/1 on (the checkpoint's server left timeline 1 there (promoted) while this server went on writing on it;"
            ),
            "{detail}"
        );
        // Taken further along this server's own timeline than it has reached.
        let ahead = with_wal(
            &digest,
            serde_json::json!({"system_identifier": sysid, "timeline": 1, "lsn": "FFFFFFF/0",
                               "history": []}),
        );
        let detail = wal_finding("t_wal", ahead).unwrap_or_default();
        assert!(
            detail.starts_with("rollback: this server (timeline 1, LSN "),
            "{detail}"
        );
    }

    /// A digest of a ledger entry this database does not have (a rolled-back
    /// ledger): a finding of its own, worded as worm-verify words it.
    #[pg_test]
    fn digest_beyond_the_ledger_is_a_finding() {
        let mut digest = setup("t_rolled_back").0;
        let seq = digest["ledger_entry"]["seq"].as_i64().unwrap() + 100;
        let prev: [u8; 32] = hex::decode(digest["ledger_entry"]["prev_hash"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        let hash = pg_worm_core::ledger_hash(seq, &prev, &digest["checkpoint"]);
        digest["ledger_entry"]["seq"] = serde_json::json!(seq);
        digest["ledger_entry"]["hash"] = serde_json::json!(hex::encode(hash));
        let detail = Spi::get_one_with_args::<String>(
            "SELECT detail FROM worm.verify('t_rolled_back', $1) WHERE chain IS NULL",
            &[pgrx::JsonB(digest).into()],
        )
        .unwrap()
        .unwrap();
        assert!(
            detail.starts_with("this database's ledger ends at entry ")
                && detail.ends_with(&format!(
                    ", before the checkpoint's entry {seq}: the ledger was rolled back or an older backup restored"
                )),
            "{detail}"
        );
    }

    #[pg_test]
    fn proof_is_small_and_checks_offline() {
        Spi::run("CREATE TABLE t_proof (id int)").unwrap();
        Spi::run("SELECT worm.protect('t_proof', chains => 4)").unwrap();
        Spi::run("INSERT INTO t_proof SELECT g FROM generate_series(1, 5000) g").unwrap();
        Spi::run("SELECT worm.checkpoint('t_proof')").unwrap();
        let (chain, seq) =
            Spi::get_two::<i32, i64>("SELECT worm_chain, worm_seq FROM t_proof WHERE id = 1234")
                .unwrap();
        let proof = Spi::get_one_with_args::<pgrx::JsonB>(
            "SELECT worm.prove('t_proof', $1, $2)",
            &[chain.unwrap().into(), seq.unwrap().into()],
        )
        .unwrap()
        .unwrap()
        .0;
        let p = pg_worm_core::Proof::parse(&proof).unwrap();
        let t = p.chain_tree.clone().unwrap();
        // One session wrote every row, so one chain may hold all 5000:
        // at most ceil(log2 5000) = 13 hashes in the chain, 2 among 4 chains.
        assert!(
            p.path.len() <= 13,
            "a chain of at most 5000 leaves needs at most 13 hashes"
        );
        assert!(t.top_path.len() <= 2, "4 chains need at most 2 hashes");
        assert_eq!(p.merkle_size, 5000);
        assert_eq!(t.chains, 4);
        assert_eq!(
            p.check(),
            pg_worm_core::ProofOutcome {
                link_ok: true,
                included: true
            }
        );
        let mut wrong = p.clone();
        wrong.leaf_index += 1;
        assert!(!wrong.check().included);
    }
}
