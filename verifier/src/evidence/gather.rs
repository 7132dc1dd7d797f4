//! Reading the report's content in one REPEATABLE READ READ ONLY snapshot, without calling any
//! pg_worm function: the registry (`worm.tables`, `worm.partitioned_tables`), the holds
//! (`worm.legal_holds`), the ledger (every entry recomputed), the trusted keys, the stored
//! results (`worm.verifications`, when it exists), and every protected table verified by
//! worm-verify's own code (`db::verify_table_in`, as `worm-verify table` does), each in a
//! savepoint so that one table that cannot be read does not end the report.

use super::controls;
use super::model::*;
use crate::db::{self, Failure, ReadOpts, TableData, TableSel};
use crate::report::plural;
use anyhow::{Context, Result};
use pg_worm_core::findings::all_ok;
use pg_worm_core::{verify_ledger, CertTable, Certificate, Check, LedgerEntry, Status};
use postgres::Transaction;
use serde_json::{json, Value as Json};
use std::collections::BTreeMap;

/// Above this many rows (pg_class.reltuples), rows per day are estimated from a block sample
/// of about [`SAMPLE_ROWS`] rows instead of counted (see `rows_per_day`).
pub const EXACT_ROWS_LIMIT: f64 = 1_000_000.0;
pub const SAMPLE_ROWS: f64 = 200_000.0;
/// Stored results listed per table (the chart counts all of them).
const RECENT_RESULTS: i64 = 20;

fn pg<T>(r: std::result::Result<T, postgres::Error>, what: &str) -> Result<T> {
    r.map_err(db::pg).with_context(|| what.to_owned())
}

/// A timestamptz column as RFC 3339 UTC text (the session's TimeZone plays no part).
fn ts(col: &str) -> String {
    format!("pg_catalog.to_char({col} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')")
}

fn exists(tx: &mut Transaction<'_>, rel: &str) -> Result<bool> {
    let row = pg(
        tx.query_one(
            "SELECT pg_catalog.to_regclass($1::pg_catalog.text) IS NOT NULL",
            &[&rel],
        ),
        "cannot read pg_catalog",
    )?;
    Ok(row.try_get(0)?)
}

/// A live protected table as worm.tables and pg_class have it.
struct Reg {
    uid_text: String,
    oid: Option<u32>,
    name: Option<String>,
    qualified: Option<String>,
    relkind: Option<String>,
    reltuples: f64,
    chains: i32,
    retention: Option<String>,
    retention_days: Option<f64>,
    legal_basis: Option<String>,
    protected_at: String,
    protected_by: String,
    rows_at_protect: i64,
    encoding_version: i32,
    retired_at: Option<String>,
    parent: Option<String>,
}

fn registry(tx: &mut Transaction<'_>) -> Result<Vec<Reg>> {
    let q = format!(
        "SELECT w.table_uid::pg_catalog.text, c.oid, \
                CASE WHEN c.oid IS NOT NULL THEN pg_catalog.quote_ident(n.nspname) OPERATOR(pg_catalog.||) '.' \
                     OPERATOR(pg_catalog.||) pg_catalog.quote_ident(c.relname) END, \
                c.relkind::pg_catalog.text, COALESCE(c.reltuples, 0)::pg_catalog.float8, \
                w.chains, w.retention::pg_catalog.text, \
                (pg_catalog.date_part('epoch', w.retention) OPERATOR(pg_catalog./) 86400::pg_catalog.float8)::pg_catalog.float8, \
                w.legal_basis, {}, w.protected_by, w.rows_at_protect, w.encoding_version, {}, \
                (SELECT pg_catalog.quote_ident(pn.nspname) OPERATOR(pg_catalog.||) '.' \
                        OPERATOR(pg_catalog.||) pg_catalog.quote_ident(pc.relname) \
                   FROM pg_catalog.pg_inherits AS i \
                   JOIN pg_catalog.pg_class AS pc ON pc.oid OPERATOR(pg_catalog.=) i.inhparent \
                   JOIN pg_catalog.pg_namespace AS pn ON pn.oid OPERATOR(pg_catalog.=) pc.relnamespace \
                  WHERE i.inhrelid OPERATOR(pg_catalog.=) c.oid LIMIT 1) \
           FROM worm.tables AS w \
           LEFT JOIN pg_catalog.pg_class AS c ON c.oid OPERATOR(pg_catalog.=) w.table_name::pg_catalog.oid \
           LEFT JOIN pg_catalog.pg_namespace AS n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace \
          ORDER BY 3 NULLS LAST, 1",
        ts("w.protected_at"),
        ts("w.retired_at")
    );
    let rows = pg(tx.query(q.as_str(), &[]), "cannot read worm.tables")?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let uid_text: String = r.try_get(0)?;
        let qualified: Option<String> = r.try_get(2)?;
        out.push(Reg {
            uid_text,
            oid: r.try_get(1)?,
            name: qualified.clone(),
            qualified,
            relkind: r.try_get(3)?,
            reltuples: r.try_get(4)?,
            chains: r.try_get(5)?,
            retention: r.try_get(6)?,
            retention_days: r.try_get(7)?,
            legal_basis: r.try_get(8)?,
            protected_at: r.try_get::<_, Option<String>>(9)?.unwrap_or_default(),
            protected_by: r.try_get(10)?,
            rows_at_protect: r.try_get(11)?,
            encoding_version: r.try_get(12)?,
            retired_at: r.try_get(13)?,
            parent: r.try_get(14)?,
        });
    }
    Ok(out)
}

fn holds(tx: &mut Transaction<'_>) -> Result<BTreeMap<String, Vec<Hold>>> {
    let mut by_uid: BTreeMap<String, Vec<Hold>> = BTreeMap::new();
    if !exists(tx, "worm.legal_holds")? {
        return Ok(by_uid);
    }
    let q = format!(
        "SELECT h.table_uid::pg_catalog.text, h.hold_id, h.reason, {}, h.placed_by, {}, \
                h.released_by, h.release_reason \
           FROM worm.legal_holds AS h ORDER BY 1, 2",
        ts("h.placed_at"),
        ts("h.released_at")
    );
    for r in pg(tx.query(q.as_str(), &[]), "cannot read worm.legal_holds")? {
        by_uid.entry(r.try_get(0)?).or_default().push(Hold {
            hold_id: r.try_get(1)?,
            reason: r.try_get(2)?,
            placed_at: r.try_get::<_, Option<String>>(3)?.unwrap_or_default(),
            placed_by: r.try_get(4)?,
            released_at: r.try_get(5)?,
            released_by: r.try_get(6)?,
            release_reason: r.try_get(7)?,
        });
    }
    Ok(by_uid)
}

fn parents(tx: &mut Transaction<'_>, regs: &[Reg]) -> Result<Vec<ParentEv>> {
    if !exists(tx, "worm.partitioned_tables")? {
        return Ok(Vec::new());
    }
    let q = format!(
        "SELECT CASE WHEN c.oid IS NOT NULL THEN pg_catalog.quote_ident(n.nspname) OPERATOR(pg_catalog.||) '.' \
                     OPERATOR(pg_catalog.||) pg_catalog.quote_ident(c.relname) END, \
                p.chains, p.retention::pg_catalog.text, p.legal_basis, {}, {} \
           FROM worm.partitioned_tables AS p \
           LEFT JOIN pg_catalog.pg_class AS c ON c.oid OPERATOR(pg_catalog.=) p.table_name::pg_catalog.oid \
           LEFT JOIN pg_catalog.pg_namespace AS n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace \
          ORDER BY 1 NULLS LAST",
        ts("p.protected_at"),
        ts("p.dropped_at")
    );
    let mut out = Vec::new();
    for r in pg(
        tx.query(q.as_str(), &[]),
        "cannot read worm.partitioned_tables",
    )? {
        let name: Option<String> = r.try_get(0)?;
        let partitions = regs
            .iter()
            .filter(|g| g.parent.is_some() && g.parent == name)
            .filter_map(|g| g.name.clone())
            .collect();
        out.push(ParentEv {
            name,
            chains: r.try_get(1)?,
            retention: r.try_get(2)?,
            legal_basis: r.try_get(3)?,
            protected_at: r.try_get::<_, Option<String>>(4)?.unwrap_or_default(),
            dropped_at: r.try_get(5)?,
            partitions,
        });
    }
    Ok(out)
}

fn trusted_keys(tx: &mut Transaction<'_>) -> Result<Vec<KeyEv>> {
    if !exists(tx, "worm.trusted_keys")? {
        return Ok(Vec::new());
    }
    let q = format!(
        "SELECT k.key_id, pg_catalog.encode(k.public_key, 'hex'), {}, k.added_by \
           FROM worm.trusted_keys AS k ORDER BY 1",
        ts("k.added_at")
    );
    let mut out = Vec::new();
    for r in pg(tx.query(q.as_str(), &[]), "cannot read worm.trusted_keys")? {
        out.push(KeyEv {
            key_id: r.try_get(0)?,
            public_key: r.try_get(1)?,
            added_at: r.try_get::<_, Option<String>>(2)?.unwrap_or_default(),
            added_by: r.try_get(3)?,
        });
    }
    Ok(out)
}

fn server(tx: &mut Transaction<'_>) -> Result<(Server, String)> {
    let q = format!(
        "SELECT pg_catalog.current_database()::pg_catalog.text, \
                pg_catalog.current_setting('server_version'), \
                (SELECT e.extversion::pg_catalog.text FROM pg_catalog.pg_extension AS e \
                  WHERE e.extname OPERATOR(pg_catalog.=) 'pg_worm'), \
                pg_catalog.pg_is_in_recovery(), session_user::pg_catalog.text, {}",
        ts("pg_catalog.now()")
    );
    let r = pg(
        tx.query_one(q.as_str(), &[]),
        "cannot read the server's settings",
    )?;
    let (preloaded, enforcement) = enforcement(tx)?;
    Ok((
        Server {
            database: r.try_get(0)?,
            server_version: r.try_get(1)?,
            pg_worm_version: r.try_get(2)?,
            preloaded,
            enforcement,
            in_recovery: r.try_get(3)?,
            session_user: r.try_get(4)?,
        },
        r.try_get::<_, Option<String>>(5)?.unwrap_or_default(),
    ))
}

/// Whether pg_worm is preloaded, from `shared_preload_libraries` (readable by superusers and
/// pg_read_all_settings); for other roles, as the server's `worm.enforcement()` states it
/// (the one pg_worm function the report calls, for this line only, and says so).
fn enforcement(tx: &mut Transaction<'_>) -> Result<(bool, String)> {
    let spl = in_savepoint(tx, |t| {
        let r = pg(
            t.query_one(
                "SELECT pg_catalog.current_setting('shared_preload_libraries')",
                &[],
            ),
            "cannot read shared_preload_libraries",
        )?;
        Ok(r.try_get::<_, String>(0).map_err(anyhow::Error::new)?)
    })?;
    if let Ok(spl) = spl {
        let preloaded = spl.split(',').any(|l| {
            let l = l.trim().trim_matches('"');
            l == "pg_worm" || l.ends_with("/pg_worm")
        });
        let text = if preloaded {
            "hooks: pg_worm is in shared_preload_libraries, so protection-breaking statements are refused at SQL level for every role, superusers included, besides the triggers and event triggers"
        } else {
            "triggers and event triggers only: pg_worm is not in shared_preload_libraries, so a superuser can switch the event triggers off and then change protection; every change to rows is still detected by verification"
        };
        return Ok((preloaded, text.to_owned()));
    }
    let stated = in_savepoint(tx, |t| {
        let r = pg(
            t.query_one("SELECT worm.enforcement()", &[]),
            "cannot call worm.enforcement()",
        )?;
        Ok(r.try_get::<_, String>(0).map_err(anyhow::Error::new)?)
    })?;
    Ok(match stated {
        Ok(text) => (
            text.starts_with("hooks"),
            format!(
                "{text} (as the server's worm.enforcement() states it: this role may not read shared_preload_libraries)"
            ),
        ),
        Err(e) => (
            false,
            format!("unknown: this role may not read shared_preload_libraries ({e})"),
        ),
    })
}

// --- worm.verifications ------------------------------------------------------------------------

struct StoredRead {
    per_day: Vec<(String, bool, i64)>,
    per_table: BTreeMap<u32, (i64, i64)>,
}

fn stored_results(tx: &mut Transaction<'_>) -> Result<StoredRead> {
    let day = "(v.at AT TIME ZONE 'UTC')::pg_catalog.date::pg_catalog.text";
    let rows = pg(
        tx.query(
            &format!(
                "SELECT {day}, COALESCE(v.ok, false), pg_catalog.count(*)::pg_catalog.int8 \
                   FROM worm.verifications AS v GROUP BY 1, 2 ORDER BY 1, 2"
            ),
            &[],
        ),
        "cannot read worm.verifications",
    )?;
    let mut per_day = Vec::new();
    for r in rows {
        per_day.push((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?));
    }
    let rows = pg(
        tx.query(
            "SELECT v.table_name::pg_catalog.oid, pg_catalog.count(*)::pg_catalog.int8, \
                    pg_catalog.count(*) FILTER (WHERE NOT COALESCE(v.ok, false))::pg_catalog.int8 \
               FROM worm.verifications AS v WHERE v.table_name IS NOT NULL GROUP BY 1",
            &[],
        ),
        "cannot read worm.verifications",
    )?;
    let mut per_table = BTreeMap::new();
    for r in rows {
        per_table.insert(r.try_get::<_, u32>(0)?, (r.try_get(1)?, r.try_get(2)?));
    }
    Ok(StoredRead { per_day, per_table })
}

fn recent_results(tx: &mut Transaction<'_>, oid: u32) -> Result<Vec<Stored>> {
    let q = format!(
        "SELECT {}, v.kind::pg_catalog.text, v.ok, v.rows_checked::pg_catalog.int8, \
                v.problems::pg_catalog.int8, v.detail::pg_catalog.text \
           FROM worm.verifications AS v \
          WHERE v.table_name::pg_catalog.oid OPERATOR(pg_catalog.=) $1 \
          ORDER BY v.at DESC LIMIT {RECENT_RESULTS}",
        ts("v.at")
    );
    let mut out = Vec::new();
    for r in pg(
        tx.query(q.as_str(), &[&oid]),
        "cannot read worm.verifications",
    )? {
        out.push(Stored {
            at: r.try_get::<_, Option<String>>(0)?.unwrap_or_default(),
            kind: r.try_get::<_, Option<String>>(1)?.unwrap_or_default(),
            ok: r.try_get(2)?,
            rows_checked: r.try_get(3)?,
            problems: r.try_get(4)?,
            detail: r.try_get(5)?,
        });
    }
    Ok(out)
}

/// Runs `f` in a savepoint: its error rolls the savepoint back and comes back as text.
fn in_savepoint<T>(
    tx: &mut Transaction<'_>,
    f: impl FnOnce(&mut Transaction<'_>) -> std::result::Result<T, Failure>,
) -> Result<std::result::Result<T, String>> {
    let mut sp = pg(tx.transaction(), "cannot start a savepoint")?;
    match f(&mut sp) {
        Ok(v) => {
            pg(sp.commit(), "cannot release a savepoint")?;
            Ok(Ok(v))
        }
        Err(e) => {
            pg(sp.rollback(), "cannot roll back to a savepoint")?;
            Ok(Err(match e {
                Failure::Damaged(m) => m,
                Failure::Fatal(e) => format!("{e:#}"),
            }))
        }
    }
}

// --- rows per day -------------------------------------------------------------------------------

/// Rows per day of insertion (UTC), from `worm_inserted_at`. Exact (one sequential scan
/// reading one column, cheaper than the verification that has just read every row) up to
/// [`EXACT_ROWS_LIMIT`] rows; above, estimated from a `TABLESAMPLE SYSTEM` block sample of
/// about [`SAMPLE_ROWS`] rows (REPEATABLE, so the same snapshot gives the same chart), each
/// day's count scaled up: a protected table is insert-only, so its heap holds the rows of a
/// day in neighbouring pages and a block sample reads every day in proportion.
fn rows_per_day(tx: &mut Transaction<'_>, qualified: &str, reltuples: f64) -> Result<RowsPerDay> {
    let day = "(t.worm_inserted_at AT TIME ZONE 'UTC')::pg_catalog.date::pg_catalog.text";
    let (sample, percent) = if reltuples > EXACT_ROWS_LIMIT {
        let p = (100.0 * SAMPLE_ROWS / reltuples).clamp(0.001, 100.0);
        (
            format!(" TABLESAMPLE SYSTEM ({p:.6}) REPEATABLE (0)"),
            Some(p),
        )
    } else {
        (String::new(), None)
    };
    let q = format!(
        "SELECT {day}, pg_catalog.count(*)::pg_catalog.int8 FROM ONLY {qualified} AS t{sample} \
          GROUP BY 1 ORDER BY 1"
    );
    let rows = pg(tx.query(q.as_str(), &[]), "cannot count rows per day")?;
    let scale = percent.map_or(1.0, |p| 100.0 / p);
    let mut days = Vec::new();
    for r in rows {
        let d: Option<String> = r.try_get(0)?;
        let n: i64 = r.try_get(1)?;
        days.push(DayCount {
            day: d.unwrap_or_else(|| "(no insertion time)".into()),
            rows: (n as f64 * scale).round() as i64,
        });
    }
    Ok(RowsPerDay {
        method: if percent.is_some() {
            "estimated from a block sample".into()
        } else {
            "exact".into()
        },
        sample_percent: percent,
        days,
        error: None,
    })
}

// --- the ledger ----------------------------------------------------------------------------------

fn s(doc: &Json, path: &[&str]) -> Option<String> {
    let mut v = doc;
    for p in path {
        v = v.get(*p)?;
    }
    match v {
        Json::String(s) => Some(s.clone()),
        Json::Null => None,
        other => Some(other.to_string()),
    }
}

fn by_of(doc: &Json) -> String {
    let su = s(doc, &["by", "session_user"]).unwrap_or_default();
    let cu = s(doc, &["by", "current_user"]).unwrap_or_default();
    if cu.is_empty() || cu == su {
        su
    } else {
        format!("{su} (as {cu})")
    }
}

fn entry_uid(e: &LedgerEntry) -> Option<String> {
    s(&e.document, &["table", "uid"])
}

fn event_of(e: &LedgerEntry) -> String {
    s(&e.document, &["event"]).unwrap_or_else(|| "?".into())
}

fn entry_json(e: &LedgerEntry, key: &str) -> Json {
    json!({
        key: e.document,
        "ledger_entry": {
            "seq": e.seq,
            "prev_hash": hex::encode(&e.prev),
            "hash": hex::encode(&e.hash),
        }
    })
}

/// What an event entry says, in a few words.
fn event_detail(e: &LedgerEntry) -> String {
    let d = &e.document;
    match event_of(e).as_str() {
        "protect" => format!(
            "protected with {} chains, {} rows chained, retention {}{}",
            s(d, &["chains"]).unwrap_or_default(),
            s(d, &["rows_chained"]).unwrap_or_else(|| "0".into()),
            s(d, &["retention", "period"]).unwrap_or_else(|| "none (kept for ever)".into()),
            s(d, &["retention", "legal_basis"])
                .map(|b| format!(", legal basis: {b}"))
                .unwrap_or_default()
        ),
        "set_retention" => format!(
            "retention {} → {}{}",
            s(d, &["retention", "from"]).unwrap_or_else(|| "none".into()),
            s(d, &["retention", "to"]).unwrap_or_else(|| "?".into()),
            s(d, &["retention", "legal_basis"])
                .map(|b| format!(", legal basis: {b}"))
                .unwrap_or_default()
        ),
        "legal_hold" => format!(
            "hold #{} placed: {}",
            s(d, &["hold_id"]).unwrap_or_default(),
            s(d, &["reason"]).unwrap_or_default()
        ),
        "release_hold" => format!(
            "hold #{} released: {}",
            s(d, &["hold_id"]).unwrap_or_default(),
            s(d, &["reason"]).unwrap_or_default()
        ),
        "trust_key" => format!("key {} trusted", s(d, &["key_id"]).unwrap_or_default()),
        other => {
            let keys: Vec<&String> = d
                .as_object()
                .map(|o| o.keys().collect())
                .unwrap_or_default();
            format!(
                "{other} ({})",
                keys.iter()
                    .filter(|k| !matches!(k.as_str(), "event" | "table" | "at" | "by" | "database"))
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    }
}

/// The checkpoint seq a `timestamp` entry is about (helper fields tried in turn, as the
/// entry's format allows: `ledger_seq`, `checkpoint_seq`, `checkpoint.ledger_seq`).
fn timestamp_target(e: &LedgerEntry) -> Option<i64> {
    let d = &e.document;
    d.get("ledger_seq")
        .or_else(|| d.get("checkpoint_seq"))
        .or_else(|| d.get("checkpoint").and_then(|c| c.get("ledger_seq")))
        .and_then(|v| {
            v.as_i64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        })
}

/// The trusted roots for time-stamp tokens (`--tsa-cert`), or none.
pub type Roots<'a> = Option<&'a [openssl::x509::X509]>;

fn timestamps_for(entries: &[LedgerEntry], cp: &LedgerEntry, roots: Roots<'_>) -> Vec<TimestampEv> {
    let hash: Option<pg_worm_core::Hash> = cp.hash.as_slice().try_into().ok();
    entries
        .iter()
        .filter(|e| event_of(e) == "timestamp" && timestamp_target(e) == Some(cp.seq))
        .map(|e| {
            let mut checks = Vec::new();
            let token = s(&e.document, &["token"])
                .and_then(|h| hex::decode(h).ok())
                .map(|der| pg_worm_core::timestamp::parse_any(&der));
            match (token, hash) {
                (Some(Ok(t)), Some(h)) => match roots {
                    Some(r) => checks.extend(crate::tsa::verify(&t, &h, cp.seq, r)),
                    None => {
                        checks.push(t.imprint_check(&h, cp.seq));
                        checks.push(Check::note(
                            "timestamp signature",
                            "the TSA's signature and certificate were not checked: give the TSA's root with --tsa-cert ROOT.pem",
                        ));
                    }
                },
                (Some(Err(err)), _) => checks.push(Check::problem(
                    "timestamp token",
                    format!("the token recorded in ledger entry {} is unreadable: {err}", e.seq),
                )),
                _ => checks.push(Check::problem(
                    "timestamp token",
                    format!("ledger entry {} records no readable token", e.seq),
                )),
            }
            TimestampEv {
                ledger_seq: e.seq,
                recorded_at: s(&e.document, &["at"]).unwrap_or_default(),
                gen_time: s(&e.document, &["gen_time"]).or_else(|| s(&e.document, &["time"])),
                tsa: s(&e.document, &["tsa"]).or_else(|| s(&e.document, &["tsa_name"])),
                ok: checks.iter().all(|c| c.status != Status::Problem),
                signature_checked: roots.is_some(),
                checks,
            }
        })
        .collect()
}

fn checkpoint_ev(e: &LedgerEntry, entries: &[LedgerEntry], roots: Roots<'_>) -> CheckpointEv {
    let d = &e.document;
    CheckpointEv {
        ledger_seq: e.seq,
        at: s(d, &["at"]).unwrap_or_default(),
        by: by_of(d),
        rows: d.get("rows").and_then(Json::as_i64),
        merkle_size: d
            .get("merkle")
            .and_then(|m| m.get("size"))
            .and_then(Json::as_i64),
        merkle_root: s(d, &["merkle", "root"]),
        ledger_hash: hex::encode(&e.hash),
        verification_ok: d
            .get("verification")
            .and_then(|v| v.get("ok"))
            .and_then(Json::as_bool),
        timestamps: timestamps_for(entries, e, roots),
    }
}

/// A purge or retirement certificate checked as `worm-verify certificate --db` checks it:
/// offline, against the whole ledger, and against the table (its anchors now and the fresh
/// verification of its chains; a retired table must be gone).
fn certificate_ev(
    e: &LedgerEntry,
    entries: &[LedgerEntry],
    table: std::result::Result<&CertTable, String>,
) -> CertEv {
    let d = &e.document;
    let mut ev = CertEv {
        ledger_seq: e.seq,
        kind: event_of(e),
        certificate_id: s(d, &["certificate_id"]).unwrap_or_default(),
        at: s(d, &["at"]).unwrap_or_default(),
        cutoff: s(d, &["cutoff"]).unwrap_or_default(),
        rows_removed: d
            .get("removed")
            .and_then(|r| r.get("rows"))
            .and_then(Json::as_i64),
        retention: s(d, &["retention", "period"]),
        legal_basis: s(d, &["retention", "legal_basis"]),
        by: by_of(d),
        ok: false,
        checks: Vec::new(),
    };
    let c = match Certificate::parse(entry_json(e, "certificate")) {
        Ok(c) => c,
        Err(m) => {
            ev.checks.push(Check::problem(
                "certificate",
                format!(
                    "ledger entry {} is not a well-formed certificate: {m}",
                    e.seq
                ),
            ));
            return ev;
        }
    };
    let mut checks = c.offline_checks();
    checks.extend(c.ledger_checks(entries));
    checks.extend(c.table_checks(entries, table));
    ev.ok = checks.iter().all(|c| c.status != Status::Problem);
    ev.checks = checks;
    ev
}

fn fresh_from(data: &TableData) -> Fresh {
    let ok = all_ok(&data.rows);
    let problems: i64 = data.rows.iter().map(|r| r.problems).sum();
    let bad: Vec<String> = data
        .rows
        .iter()
        .filter(|r| !r.ok)
        .map(|r| match r.chain {
            Some(c) if !r.whole_table => format!("chain {c}: {}", r.detail),
            _ => r.detail.clone(),
        })
        .collect();
    let summary = if ok {
        format!(
            "{} of {} verified independently by worm-verify",
            plural(data.summary.rows_read as usize, "row", "rows"),
            plural(data.chains as usize, "chain", "chains")
        )
    } else {
        format!(
            "{} in {} read: {}",
            plural(problems.max(1) as usize, "problem", "problems"),
            plural(data.summary.rows_read as usize, "row", "rows"),
            bad.join("; ")
        )
    };
    Fresh {
        ok,
        rows_checked: data.summary.rows_read,
        problems,
        summary,
        chains: data.rows.clone(),
        error: None,
    }
}

/// Everything the report holds, read in `tx` (REPEATABLE READ READ ONLY, started by the
/// caller; with `ro.par` the snapshot was exported first).
pub fn gather(
    tx: &mut Transaction<'_>,
    ro: &ReadOpts,
    roots: Roots<'_>,
    previous: Option<&Json>,
) -> std::result::Result<Report, Failure> {
    db::prepare(tx)?;
    pg(
        tx.query_one(
            "SELECT pg_catalog.set_config('TimeZone', 'UTC', true), \
                    pg_catalog.set_config('DateStyle', 'ISO, YMD', true), \
                    pg_catalog.set_config('IntervalStyle', 'postgres', true)",
            &[],
        ),
        "cannot set the session's time settings",
    )?;
    let (server, generated_at) = server(tx)?;
    let regs = registry(tx)?;
    let mut holds = holds(tx)?;
    let partitioned = parents(tx, &regs)?;
    let keys = trusted_keys(tx)?;
    let entries = if exists(tx, "worm.ledger")? {
        db::ledger_all(tx)?
    } else {
        Vec::new()
    };
    let mut findings: Vec<String> = Vec::new();
    let mut notes: Vec<String> = Vec::new();

    // The ledger, recomputed entry by entry.
    let lr = verify_ledger(entries.clone());
    if !lr.ok {
        findings.push(format!("worm.ledger does not verify: {}", lr.detail));
    }
    let mut events: BTreeMap<String, usize> = BTreeMap::new();
    for e in &entries {
        *events.entry(event_of(e)).or_default() += 1;
    }
    let ledger = LedgerEv {
        entries: lr.entries,
        ok: lr.ok,
        first_bad_seq: lr.first_bad_seq,
        problems: lr.problems,
        detail: lr.detail.clone(),
        events,
        first_at: entries.first().and_then(|e| s(&e.document, &["at"])),
        last_at: entries.last().and_then(|e| s(&e.document, &["at"])),
        head_hash: entries.last().map(|e| hex::encode(&e.hash)),
        head_seq: entries.last().map(|e| e.seq),
    };

    // Stored results, when this pg_worm keeps them.
    let has_stored = exists(tx, "worm.verifications")?;
    let stored = if has_stored {
        match in_savepoint(tx, |t| stored_results(t).map_err(Failure::Fatal))? {
            Ok(s) => Some(s),
            Err(e) => {
                notes.push(format!("worm.verifications could not be read: {e}"));
                None
            }
        }
    } else {
        notes.push(
            "no stored results: this pg_worm has no worm.verifications table, so the history below comes from the ledger's checkpoints and purges (each verified its table first)"
                .into(),
        );
        None
    };

    let mut tables = Vec::new();
    let mut retired = Vec::new();
    let mut fresh_days: Vec<(String, bool)> = Vec::new();
    let today = generated_at.get(..10).unwrap_or("").to_owned();
    for g in &regs {
        let uid_entries: Vec<&LedgerEntry> = entries
            .iter()
            .filter(|e| entry_uid(e).as_deref() == Some(g.uid_text.as_str()))
            .collect();
        let my_holds = holds.remove(&g.uid_text).unwrap_or_default();
        if g.retired_at.is_some() || g.oid.is_none() {
            // Retired: only its certificates remain to be checked.
            let name = uid_entries
                .iter()
                .rev()
                .find_map(|e| s(&e.document, &["table", "name"]))
                .unwrap_or_else(|| format!("table_uid {}", g.uid_text));
            let certificates: Vec<CertEv> = uid_entries
                .iter()
                .filter(|e| matches!(event_of(e).as_str(), "purge" | "retire"))
                .map(|e| {
                    certificate_ev(
                        e,
                        &entries,
                        Err("it is not protected in this database any more".into()),
                    )
                })
                .collect();
            for c in certificates.iter().filter(|c| !c.ok) {
                findings.push(cert_finding(&name, c));
            }
            retired.push(RetiredEv {
                table_uid: g.uid_text.clone(),
                name,
                retired_at: g.retired_at.clone(),
                certificates,
            });
            continue;
        }
        let name = g.name.clone().unwrap_or_default();
        let oid = g.oid.unwrap_or(0);
        // The fresh, independent verification.
        let verification = if g.relkind.as_deref() == Some("r") {
            in_savepoint(tx, |t| db::verify_table_in(t, TableSel::Oid(oid), ro, None))?
        } else {
            Err(format!(
                "{name} is not an ordinary table (relkind {})",
                g.relkind.as_deref().unwrap_or("?")
            ))
        };
        let (fresh, data) = match verification {
            Ok(data) => (fresh_from(&data), Some(data)),
            Err(why) => (
                Fresh {
                    ok: false,
                    rows_checked: 0,
                    problems: 1,
                    summary: format!("could not be verified: {why}"),
                    chains: Vec::new(),
                    error: Some(why),
                },
                None,
            ),
        };
        if !fresh.ok {
            findings.push(format!("{name}: {}", fresh.summary));
        }
        fresh_days.push((today.clone(), fresh.ok));
        let cert_table = data.as_ref().map(|d| CertTable {
            display: name.clone(),
            uid: d.uid,
            anchors: d.anchors.clone(),
            first_rows: None,
            chain_rows: Some(d.rows.clone()),
        });
        let certificates: Vec<CertEv> = uid_entries
            .iter()
            .filter(|e| matches!(event_of(e).as_str(), "purge" | "retire"))
            .map(|e| {
                // A table that could not be verified: its certificates are checked offline
                // and against the ledger; the table part says why it could not be.
                match &cert_table {
                    Some(t) => certificate_ev(e, &entries, Ok(t)),
                    None => {
                        certificate_ev(e, &entries, Err(format!("{name} could not be verified")))
                    }
                }
            })
            .collect();
        for c in certificates.iter().filter(|c| !c.ok) {
            findings.push(cert_finding(&name, c));
        }
        let checkpoints: Vec<CheckpointEv> = uid_entries
            .iter()
            .filter(|e| event_of(e) == "checkpoint")
            .map(|e| checkpoint_ev(e, &entries, roots))
            .collect();
        for c in &checkpoints {
            for t in c.timestamps.iter().filter(|t| !t.ok) {
                let bad: Vec<&str> = t
                    .checks
                    .iter()
                    .filter(|k| k.status == Status::Problem)
                    .map(|k| k.detail.as_str())
                    .collect();
                findings.push(format!(
                    "{name}: the time-stamp of the checkpoint of ledger entry {} (ledger entry {}) does not verify: {}",
                    c.ledger_seq,
                    t.ledger_seq,
                    bad.join("; ")
                ));
            }
            if c.verification_ok == Some(false) {
                notes.push(format!(
                    "{name}: the checkpoint of ledger entry {} records a failed verification",
                    c.ledger_seq
                ));
            }
        }
        let ledger_events = uid_entries
            .iter()
            .filter(|e| {
                !matches!(
                    event_of(e).as_str(),
                    "checkpoint" | "purge" | "retire" | "timestamp"
                )
            })
            .map(|e| EventEv {
                ledger_seq: e.seq,
                event: event_of(e),
                at: s(&e.document, &["at"]).unwrap_or_default(),
                by: by_of(&e.document),
                detail: event_detail(e),
            })
            .collect();
        let history = match &stored {
            Some(st) => {
                let (n, failed) = st.per_table.get(&oid).copied().unwrap_or((0, 0));
                let recent =
                    match in_savepoint(tx, |t| recent_results(t, oid).map_err(Failure::Fatal))? {
                        Ok(r) => r,
                        Err(e) => {
                            notes.push(format!("{name}: stored results could not be read: {e}"));
                            Vec::new()
                        }
                    };
                if failed > 0 {
                    notes.push(format!(
                        "{name}: {} of its {} stored verification results failed (see its history)",
                        failed, n
                    ));
                }
                TableHistory {
                    stored: Some(n),
                    failed,
                    recent,
                }
            }
            None => TableHistory {
                stored: None,
                failed: 0,
                recent: Vec::new(),
            },
        };
        let qualified = g.qualified.clone().unwrap_or_default();
        let reltuples = g.reltuples;
        let rows_per_day = match in_savepoint(tx, |t| {
            rows_per_day(t, &qualified, reltuples).map_err(Failure::Fatal)
        })? {
            Ok(r) => r,
            Err(e) => RowsPerDay {
                method: "not available".into(),
                sample_percent: None,
                days: Vec::new(),
                error: Some(e),
            },
        };
        if let Some(p) = rows_per_day.sample_percent {
            notes.push(format!(
                "{name}: rows per day estimated from a {p:.3}% block sample (about {} of {:.0} rows)",
                SAMPLE_ROWS as i64, reltuples
            ));
        }
        let all_holds = my_holds;
        let (in_force, released): (Vec<Hold>, Vec<Hold>) =
            all_holds.into_iter().partition(|h| h.released_at.is_none());
        tables.push(TableEv {
            name: name.clone(),
            table_uid: g.uid_text.clone(),
            chains: g.chains,
            encoding_version: g.encoding_version,
            protected_at: g.protected_at.clone(),
            protected_by: g.protected_by.clone(),
            rows_at_protect: g.rows_at_protect,
            partition_of: g.parent.clone(),
            policy: Policy {
                retention: g.retention.clone(),
                legal_basis: g.legal_basis.clone(),
                six_years_or_more: g.retention_days.map(|d| d >= 6.0 * 365.0),
                holds_in_force: in_force,
                holds_released: released,
            },
            verification: fresh,
            history,
            checkpoints,
            certificates,
            rows_per_day,
            ledger_events,
        });
    }

    // Verification outcomes per day.
    let mut per_day: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let source = match &stored {
        Some(st) => {
            for (d, ok, n) in &st.per_day {
                let e = per_day.entry(d.clone()).or_default();
                if *ok {
                    e.0 += *n as u64;
                } else {
                    e.1 += *n as u64;
                }
            }
            "worm.verifications, and this report's own verification".to_owned()
        }
        None => {
            for e in &entries {
                let ok = match event_of(e).as_str() {
                    "checkpoint" => e
                        .document
                        .get("verification")
                        .and_then(|v| v.get("ok"))
                        .and_then(Json::as_bool),
                    "purge" | "retire" => e
                        .document
                        .get("verification_before")
                        .and_then(|v| v.get("ok"))
                        .and_then(Json::as_bool),
                    _ => None,
                };
                if let (Some(ok), Some(at)) = (ok, s(&e.document, &["at"])) {
                    let day = at.get(..10).unwrap_or("").to_owned();
                    let c = per_day.entry(day).or_default();
                    if ok {
                        c.0 += 1;
                    } else {
                        c.1 += 1;
                    }
                }
            }
            "the ledger's checkpoints, purges and retirements (each verified its table first), and this report's own verification".to_owned()
        }
    };
    for (d, ok) in fresh_days {
        let c = per_day.entry(d).or_default();
        if ok {
            c.0 += 1;
        } else {
            c.1 += 1;
        }
    }
    let verification_history = HistoryEv {
        source,
        per_day: per_day
            .into_iter()
            .map(|(day, (ok, failed))| DayOutcome { day, ok, failed })
            .collect(),
    };
    if regs.is_empty() {
        notes.push("no table is protected in this database".into());
    }
    let since_previous = previous.map(|p| since_previous(p, &entries, &regs));
    if let Some(p) = &since_previous {
        for c in p.checks.iter().filter(|c| c.status == Status::Problem) {
            findings.push(format!(
                "since the previous report of {}: {}",
                p.generated_at, c.detail
            ));
        }
    }
    let mut report = Report {
        format: FORMAT,
        format_version: FORMAT_VERSION,
        generated_at,
        generated_by: format!("worm-verify {}", env!("CARGO_PKG_VERSION")),
        server,
        ok: findings.is_empty(),
        problems: findings.len(),
        findings,
        notes,
        tables,
        partitioned_tables: partitioned,
        retired_tables: retired,
        ledger,
        trusted_keys: keys,
        verification_history,
        since_previous,
        controls: Vec::new(),
    };
    report.controls = controls::controls(&report);
    Ok(report)
}

fn cert_finding(table: &str, c: &CertEv) -> String {
    let bad: Vec<&str> = c
        .checks
        .iter()
        .filter(|k| k.status == Status::Problem)
        .map(|k| k.detail.as_str())
        .collect();
    format!(
        "{table}: the {} certificate of ledger entry {} does not verify: {}",
        if c.kind == "retire" {
            "retirement"
        } else {
            "deletion"
        },
        c.ledger_seq,
        bad.join("; ")
    )
}

/// An earlier report (its JSON) against the ledger and registry now: the newest ledger entry
/// it saw must still be there with the same hash (else the ledger was rolled back, an older
/// backup restored, or the ledger replaced), and every table it listed must still be
/// protected, or retired since with a certificate.
fn since_previous(p: &Json, entries: &[LedgerEntry], regs: &[Reg]) -> PreviousEv {
    let generated_at = s(p, &["generated_at"]).unwrap_or_else(|| "?".into());
    let seq = p
        .get("ledger")
        .and_then(|l| l.get("head_seq"))
        .and_then(Json::as_i64);
    let hash = s(p, &["ledger", "head_hash"]);
    let mut checks = Vec::new();
    if s(p, &["format"]).as_deref() != Some(FORMAT) {
        checks.push(Check::problem(
            "previous",
            "the file given with --previous is not a pg_worm compliance report in JSON (worm-verify report --json)",
        ));
    }
    let now_last = entries.last().map_or(0, |e| e.seq);
    match (seq, &hash) {
        (Some(seq), Some(hash)) => match entries.iter().find(|e| e.seq == seq) {
            None => checks.push(Check::problem(
                "ledger",
                format!("worm.ledger has no entry {seq} any more (it ends at entry {now_last}), the newest the previous report saw: the ledger was rolled back or an older backup restored"),
            )),
            Some(e) if hex::encode(&e.hash) != *hash => checks.push(Check::problem(
                "ledger",
                format!("worm.ledger's entry {seq} is not the one the previous report saw (hash {}…, then {}…): the ledger was rewritten or replaced", &hex::encode(&e.hash)[..16], &hash[..16.min(hash.len())]),
            )),
            Some(_) => checks.push(Check::ok(
                "ledger",
                format!("worm.ledger still holds entry {seq}, the newest the previous report saw, with the same hash: it was only extended since ({} added)", plural((now_last - seq).max(0) as usize, "entry", "entries")),
            )),
        },
        _ => checks.push(Check::note(
            "ledger",
            "the previous report names no ledger entry (its ledger was empty, or it predates head_seq)",
        )),
    }
    let mut gone = 0usize;
    for t in p
        .get("tables")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
    {
        let uid = s(t, &["table_uid"]).unwrap_or_default();
        let name = s(t, &["name"]).unwrap_or_default();
        match regs.iter().find(|g| g.uid_text == uid) {
            Some(g) if g.retired_at.is_none() && g.oid.is_some() => {}
            Some(g) if g.retired_at.is_some() => checks.push(Check::note(
                "table",
                format!("{name} (table_uid {uid}) was retired since ({}): its certificate is checked under Retired tables", g.retired_at.as_deref().unwrap_or("?")),
            )),
            _ => {
                gone += 1;
                checks.push(Check::problem(
                    "table",
                    format!("{name} (table_uid {uid}) of the previous report is neither protected nor retired now: its protection or its registration was removed"),
                ));
            }
        }
    }
    if gone == 0 {
        checks.push(Check::ok(
            "table",
            "every table of the previous report is still protected (or was retired since)",
        ));
    }
    PreviousEv {
        generated_at,
        ledger_seq: seq,
        ledger_hash: hash,
        ok: checks.iter().all(|c| c.status != Status::Problem),
        checks,
    }
}
