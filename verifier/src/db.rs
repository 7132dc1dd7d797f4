//! Reading a protected table over an ordinary client connection, in one read-only
//! REPEATABLE READ snapshot, without calling any pg_worm function: the registry
//! (`worm.tables`), the purge anchors (`worm.anchors`, when it exists), the column list from
//! `pg_catalog`, then every row's payloads through a portal, 10 000 rows per fetch.
//! Besides the chains it checks the table as a whole, as `worm.verify` does: inheritance
//! children, row-level security, and the columns against the list recorded in `worm.ledger`.

use crate::conn;
use crate::payload::{self, ArrayData, ColData, ColKind};
use crate::plan::{self, Column, TypeInfo};
use crate::report::Summary;
use anyhow::{anyhow, Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use pg_worm_core::against::{ChainGather, Gathered};
use pg_worm_core::table_verify::{
    table_report, unindexed_rows_problem, ChainStream, StrayCount, Strays,
};
use pg_worm_core::{
    columns_mismatch, format_uuid, hash_from_slice, table, AnchorEntry, ByChain, ChainRow,
    ColumnDef, Hash, LedgerEntry, RowEncoder, RowRecord,
};
use postgres::{Client, IsolationLevel, Transaction};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

/// At most this many rows per FETCH from the portal.
const FETCH_ROWS: i32 = 10_000;
/// The payload bytes one FETCH aims at: the rows per FETCH follow the size of the rows read
/// so far (starting with one row), so the client holds about this much (or one row, when a
/// row is larger) plus the per-chain records `verify_chain` needs, whatever the values' sizes.
const FETCH_BYTES: usize = 32 << 20;
/// The most the row encoder keeps allocated between rows.
const ENCODER_KEEP_BYTES: usize = 1 << 20;

/// Payload bytes of one row's fetched columns.
fn payload_bytes(data: &[ColData]) -> usize {
    data.iter()
        .map(|d| match d {
            ColData::Scalar(v) => v.as_ref().map_or(0, Vec::len),
            ColData::Array(a) => a.as_ref().map_or(0, |a| {
                a.elems
                    .iter()
                    .map(|e| e.as_ref().map_or(0, Vec::len))
                    .sum::<usize>()
                    + 4 * a.bounds.len()
            }),
        })
        .sum()
}

/// Rows for the next FETCH after `rows` rows of `bytes` payload bytes in all.
fn next_fetch(rows: usize, bytes: usize) -> i32 {
    let avg = (bytes / rows.max(1)).max(1);
    i32::try_from(FETCH_BYTES / avg)
        .unwrap_or(FETCH_ROWS)
        .clamp(1, FETCH_ROWS)
}

/// Why a verification did not produce a report.
#[derive(Debug)]
pub enum Failure {
    /// Could not verify: bad connection string, connection refused, not a protected table,
    /// no privilege, a column type outside encoding version 1, ...
    Fatal(anyhow::Error),
    /// The table's protection itself is damaged (a `worm_` column is gone): a finding.
    Damaged(String),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Fatal(e)
    }
}

/// A PostgreSQL error as one readable line (message, detail, hint), without the driver's
/// "db error:" prefix.
pub fn pg(e: postgres::Error) -> anyhow::Error {
    match e.as_db_error() {
        Some(db) => {
            let mut s = format!("{}: {}", db.severity(), db.message());
            if let Some(d) = db.detail() {
                s.push_str(&format!(" (DETAIL: {d})"));
            }
            if let Some(h) = db.hint() {
                s.push_str(&format!(" (HINT: {h})"));
            }
            anyhow!(s)
        }
        None => anyhow::Error::new(e),
    }
}

trait PgContext<T> {
    fn pg(self, what: &str) -> Result<T>;
}

impl<T> PgContext<T> for std::result::Result<T, postgres::Error> {
    fn pg(self, what: &str) -> Result<T> {
        self.map_err(pg).with_context(|| what.to_owned())
    }
}

/// Resolved connection settings (src/conn.rs: libpq's rules), from which connections are
/// opened (one, or one per job).
#[derive(Debug, Clone)]
pub struct Connector(conn::Settings);

impl Connector {
    /// `--db` (optional) with the PG* environment variables, the service file and the
    /// password file, as psql reads them.
    pub fn new(db: Option<&str>) -> Result<Connector> {
        conn::resolve(db, &conn::Env::from_process())
            .map(Connector)
            .context("invalid connection settings (--db, the PG* environment variables or the service file)")
    }

    /// A new session, set up for reading.
    pub fn open(&self) -> Result<Client> {
        let mut client = conn::open(&self.0)?;
        // Nothing here writes; make the server refuse it if anything ever tried. UTF8 for
        // every text the server sends (payloads are bytea and do not depend on it).
        // row_security off: a row-level security policy must make the read fail, never hide
        // rows silently.
        client
            .batch_execute(
                "SET default_transaction_read_only = on; \
                 SET client_encoding = 'UTF8'; \
                 SET row_security = off;",
            )
            .pg("cannot set up the session")?;
        Ok(client)
    }
}

/// One session from `--db` and the environment (see [`Connector::new`]).
pub fn connect(db: Option<&str>) -> Result<Client> {
    Connector::new(db)?.open()
}

struct TableRef {
    oid: u32,
    qualified: String,
    display: String,
    estimate: u64,
}

fn resolve_table(tx: &mut Transaction<'_>, table: &str) -> Result<TableRef> {
    resolve_table_where(
        tx,
        "c.oid = $1::pg_catalog.text::pg_catalog.regclass",
        &table,
        table,
    )
}

fn resolve_table_oid(tx: &mut Transaction<'_>, oid: u32) -> Result<TableRef> {
    resolve_table_where(tx, "c.oid = $1", &oid, &format!("with OID {oid}"))
}

fn resolve_table_where(
    tx: &mut Transaction<'_>,
    condition: &str,
    param: &(dyn postgres::types::ToSql + Sync),
    what: &str,
) -> Result<TableRef> {
    let r = lookup_relation_where(tx, condition, param, what)?;
    if r.relkind != "r" {
        return Err(anyhow!(
            "{} is not an ordinary table (relkind {}); pg_worm protects only ordinary tables",
            r.display,
            r.relkind
        ));
    }
    Ok(TableRef {
        oid: r.oid,
        qualified: r.qualified,
        display: r.display,
        // reltuples is -1 before the first VACUUM/ANALYZE: no estimate.
        estimate: if r.reltuples >= 1.0 {
            r.reltuples as u64
        } else {
            0
        },
    })
}

/// A relation as `pg_class` has it.
#[derive(Debug, Clone)]
pub struct Relation {
    pub oid: u32,
    /// `pg_class.relkind`: "r" ordinary table, "p" partitioned table, "f" foreign table, ...
    pub relkind: String,
    /// schema.name, quoted as needed (usable in SQL).
    pub qualified: String,
    /// schema.name as written in reports (not quoted).
    pub display: String,
    /// schema.name quoted where needed, as pg_worm names tables in its documents.
    pub sql_name: String,
    reltuples: f64,
}

impl Relation {
    pub fn is_partitioned(&self) -> bool {
        self.relkind == "p"
    }
}

fn lookup_relation_where(
    tx: &mut Transaction<'_>,
    condition: &str,
    param: &(dyn postgres::types::ToSql + Sync),
    what: &str,
) -> Result<Relation> {
    let row = tx
        .query_opt(
            &format!(
                "SELECT c.oid, n.nspname::pg_catalog.text, c.relname::pg_catalog.text, \
                        c.relkind::pg_catalog.text, c.reltuples::pg_catalog.float8, \
                        pg_catalog.quote_ident(n.nspname) OPERATOR(pg_catalog.||) '.' \
                        OPERATOR(pg_catalog.||) pg_catalog.quote_ident(c.relname) \
                 FROM pg_catalog.pg_class AS c \
                 JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace \
                 WHERE {condition}"
            ),
            &[param],
        )
        .pg(&format!("cannot find table {what}"))?
        .ok_or_else(|| anyhow!("there is no table {what}"))?;
    let nsp: String = row.try_get(1)?;
    let rel: String = row.try_get(2)?;
    Ok(Relation {
        oid: row.try_get(0)?,
        relkind: row.try_get(3)?,
        qualified: format!("{}.{}", plan::quote_ident(&nsp), plan::quote_ident(&rel)),
        display: format!("{nsp}.{rel}"),
        reltuples: row.try_get(4)?,
        sql_name: row.try_get(5)?,
    })
}

/// The relation `table` names (resolved as a `regclass` with the role's search_path, the
/// same query and errors as when a table is opened), whatever its kind.
pub fn lookup_relation(tx: &mut Transaction<'_>, table: &str) -> Result<Relation> {
    lookup_relation_where(
        tx,
        "c.oid = $1::pg_catalog.text::pg_catalog.regclass",
        &table,
        table,
    )
}

fn relation_exists(tx: &mut Transaction<'_>, nsp: &str, rel: &str) -> Result<bool> {
    let row = tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class AS c \
                            JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace \
                            WHERE n.nspname = $1 AND c.relname = $2)",
            &[&nsp, &rel],
        )
        .pg("cannot read pg_catalog")?;
    Ok(row.try_get(0)?)
}

fn lookup_type(tx: &mut Transaction<'_>, oid: u32, pg14: bool) -> Result<TypeInfo, String> {
    // PostgreSQL's get_element_type: a true array type (PostgreSQL 14 added typsubscript).
    let elem = if pg14 {
        "CASE WHEN t.typelem <> 0 AND t.typlen = -1 AND \
              t.typsubscript = 'pg_catalog.array_subscript_handler'::pg_catalog.regproc \
         THEN t.typelem ELSE '0'::pg_catalog.oid END"
    } else {
        "CASE WHEN t.typelem <> 0 AND t.typlen = -1 THEN t.typelem ELSE '0'::pg_catalog.oid END"
    };
    let q = format!(
        "SELECT n.nspname::pg_catalog.text, t.typname::pg_catalog.text, \
                t.typtype::pg_catalog.text, t.typbasetype, {elem}, \
                pg_catalog.format_type(t.oid, NULL) \
         FROM pg_catalog.pg_type AS t \
         JOIN pg_catalog.pg_namespace AS n ON n.oid = t.typnamespace \
         WHERE t.oid = $1"
    );
    let row = tx
        .query_opt(&q, &[&oid])
        .map_err(|e| format!("cannot read pg_type: {}", pg(e)))?
        .ok_or_else(|| format!("type {oid} does not exist"))?;
    let get = |e: postgres::Error| format!("unexpected pg_type row: {e}");
    let typtype: String = row.try_get(2).map_err(get)?;
    Ok(TypeInfo {
        oid,
        nspname: row.try_get(0).map_err(get)?,
        typname: row.try_get(1).map_err(get)?,
        typtype: typtype.chars().next().unwrap_or('?'),
        basetype: row.try_get(3).map_err(get)?,
        array_elem: row.try_get(4).map_err(get)?,
        display: row.try_get(5).map_err(get)?,
    })
}

/// The user columns in attnum order, each with its encoding (docs/hashing.md section 5).
fn columns(tx: &mut Transaction<'_>, t: &TableRef) -> Result<Vec<Column>, Failure> {
    let version: i32 = tx
        .query_one(
            "SELECT pg_catalog.current_setting('server_version_num')::pg_catalog.int4",
            &[],
        )
        .pg("cannot read the server version")?
        .try_get(0)
        .map_err(anyhow::Error::new)?;
    let pg14 = version >= 140_000;
    let atts = tx
        .query(
            "SELECT a.attname::pg_catalog.text, a.atttypid FROM pg_catalog.pg_attribute AS a \
             WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            &[&t.oid],
        )
        .pg("cannot read the table's columns")?;
    let mut cols = Vec::new();
    let mut worm = [false; 4];
    let mut cache: HashMap<u32, TypeInfo> = HashMap::new();
    for a in atts {
        let name: String = a.try_get(0).map_err(anyhow::Error::new)?;
        let typ: u32 = a.try_get(1).map_err(anyhow::Error::new)?;
        let reserved = [
            plan::COL_CHAIN,
            plan::COL_SEQ,
            plan::COL_INSERTED_AT,
            plan::COL_HASH,
        ];
        if let Some(i) = reserved.iter().position(|r| *r == name) {
            worm[i] = true;
            continue;
        }
        if name.starts_with(plan::RESERVED_PREFIX) {
            return Err(Failure::Fatal(anyhow!(
                "{} has a user column \"{name}\": the worm_ prefix is reserved for pg_worm's own columns, so its row encoding is undefined",
                t.display
            )));
        }
        let mut lookup = |oid: u32| -> Result<TypeInfo, String> {
            if let Some(ti) = cache.get(&oid) {
                return Ok(ti.clone());
            }
            let ti = lookup_type(tx, oid, pg14)?;
            cache.insert(oid, ti.clone());
            Ok(ti)
        };
        let ti = lookup(typ).map_err(|e| anyhow!(e))?;
        match plan::resolve_column(&name, ti, &mut lookup).map_err(|e| anyhow!(e))? {
            Ok(c) => cols.push(c),
            Err(plan::Unsupported(why)) => {
                return Err(Failure::Fatal(anyhow!("cannot hash {}: {why}", t.display)))
            }
        }
    }
    let missing: Vec<&str> = [
        plan::COL_CHAIN,
        plan::COL_SEQ,
        plan::COL_INSERTED_AT,
        plan::COL_HASH,
    ]
    .iter()
    .zip(worm)
    .filter(|(_, present)| !present)
    .map(|(name, _)| *name)
    .collect();
    if !missing.is_empty() {
        return Err(Failure::Damaged(format!(
            "the protection of {} is damaged: its column{} {} {} missing, so no row can be verified",
            t.display,
            if missing.len() == 1 { "" } else { "s" },
            missing.join(", "),
            if missing.len() == 1 { "is" } else { "are" },
        )));
    }
    Ok(cols)
}

fn anchors(tx: &mut Transaction<'_>, uid_hex: &str) -> Result<Option<BTreeMap<i32, AnchorEntry>>> {
    if !relation_exists(tx, "worm", "anchors")? {
        return Ok(None);
    }
    let rows = tx
        .query(
            "SELECT a.chain, a.seq, a.link FROM worm.anchors AS a \
             WHERE a.table_uid = $1::pg_catalog.text::pg_catalog.uuid \
             ORDER BY a.chain, a.seq",
            &[&uid_hex],
        )
        .pg("cannot read worm.anchors")?;
    let mut out = BTreeMap::new();
    for r in rows {
        let chain: Option<i32> = r.try_get(0)?;
        let seq: Option<i64> = r.try_get(1)?;
        let link: Option<Vec<u8>> = r.try_get(2)?;
        let Some(chain) = chain else { continue };
        // One row per purged chain; should there be several, the latest purge (highest seq,
        // sorted last) is the one the chain continues from.
        let entry = AnchorEntry::from_stored(seq, link.as_deref());
        out.insert(chain, entry);
    }
    Ok(Some(out))
}

fn progress_bar(show: bool, estimate: u64) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let target = ProgressDrawTarget::stderr();
    if estimate > 0 {
        let pb = ProgressBar::with_draw_target(Some(estimate), target);
        if let Ok(style) = ProgressStyle::with_template(
            "{spinner} {msg} [{bar:25}] {human_pos}/~{human_len} rows, {elapsed}, eta {eta}",
        ) {
            pb.set_style(style.progress_chars("=> "));
        }
        pb
    } else {
        let pb = ProgressBar::with_draw_target(None, target);
        if let Ok(style) =
            ProgressStyle::with_template("{spinner} {msg} {human_pos} rows, {elapsed}")
        {
            pb.set_style(style);
        }
        pb
    }
}

fn bytes_at(row: &postgres::Row, i: usize) -> Result<Option<Vec<u8>>> {
    Ok(row.try_get::<_, Option<Vec<u8>>>(i)?)
}

/// Which table to open: a name as the user typed it (resolved with the role's search_path),
/// a table_uid (looked up in worm.tables), or an OID (a partition found in pg_inherits).
#[derive(Debug, Clone, Copy)]
pub enum TableSel<'a> {
    Name(&'a str),
    Uid([u8; 16]),
    Oid(u32),
}

/// A protected table opened in a transaction: what reading and hashing its rows needs.
pub struct Opened {
    t: TableRef,
    pub uid: [u8; 16],
    pub chains: i32,
    cols: Vec<Column>,
    kinds: Vec<ColKind>,
    anchors: Option<BTreeMap<i32, AnchorEntry>>,
}

impl Opened {
    pub fn display(&self) -> &str {
        &self.t.display
    }
}

/// Starts the one REPEATABLE READ READ ONLY transaction everything is read in.
pub fn begin_read(client: &mut Client) -> Result<Transaction<'_>> {
    client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .pg("cannot start a read-only transaction")
}

fn set_search_path(tx: &mut Transaction<'_>) -> Result<()> {
    // From here on every name is schema-qualified; functions and operators resolve in
    // pg_catalog only, whatever objects other schemas hold.
    tx.execute(
        "SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true)",
        &[],
    )
    .pg("cannot set search_path")?;
    Ok(())
}

fn require_pg_worm(tx: &mut Transaction<'_>) -> Result<()> {
    if !relation_exists(tx, "worm", "tables")? {
        return Err(anyhow!(
            "pg_worm is not installed in this database (there is no table worm.tables)"
        ));
    }
    Ok(())
}

/// Qualified names from here on (search_path `pg_catalog, pg_temp` for the rest of the
/// transaction), and pg_worm must be installed.
pub fn prepare(tx: &mut Transaction<'_>) -> Result<()> {
    set_search_path(tx)?;
    require_pg_worm(tx)
}

/// Resolves the table, reads its registration, columns and purge anchors.
pub fn open_table(tx: &mut Transaction<'_>, sel: TableSel<'_>) -> Result<Opened, Failure> {
    let t = match sel {
        TableSel::Name(table) => {
            let t = resolve_table(tx, table)?;
            set_search_path(tx)?;
            require_pg_worm(tx)?;
            t
        }
        TableSel::Oid(oid) => {
            prepare(tx)?;
            resolve_table_oid(tx, oid)?
        }
        TableSel::Uid(uid) => {
            prepare(tx)?;
            let oid: Option<u32> = tx
                .query_opt(
                    "SELECT w.table_name::pg_catalog.oid FROM worm.tables AS w \
                     WHERE w.table_uid = $1::pg_catalog.text::pg_catalog.uuid",
                    &[&hex::encode(uid)],
                )
                .pg("cannot read worm.tables")?
                .ok_or_else(|| {
                    anyhow!(
                        "no table with table_uid {} is protected in this database",
                        format_uuid(&uid)
                    )
                })?
                .try_get(0)
                .map_err(anyhow::Error::new)?;
            // Retired (worm.retire): the identity stays, the name is gone.
            let oid = oid.ok_or_else(|| {
                Failure::Damaged(format!(
                    "the table with table_uid {} was retired (dropped by worm.retire)",
                    format_uuid(&uid)
                ))
            })?;
            resolve_table_oid(tx, oid).map_err(|_| {
                Failure::Damaged(format!(
                    "the protected table with table_uid {} (OID {oid} in worm.tables) no longer exists: it was dropped",
                    format_uuid(&uid)
                ))
            })?
        }
    };
    let reg = tx
        .query_opt(
            "SELECT pg_catalog.uuid_send(w.table_uid), w.chains FROM worm.tables AS w \
             WHERE w.table_name = $1::pg_catalog.oid::pg_catalog.regclass",
            &[&t.oid],
        )
        .pg("cannot read worm.tables")?
        .ok_or_else(|| {
            anyhow!(
                "{} is not protected by pg_worm (it is not in worm.tables)",
                t.display
            )
        })?;
    let uid_bytes: Vec<u8> = reg.try_get(0).map_err(anyhow::Error::new)?;
    let chains: i32 = reg.try_get(1).map_err(anyhow::Error::new)?;
    let uid: [u8; 16] = uid_bytes
        .as_slice()
        .try_into()
        .map_err(|_| anyhow!("worm.tables.table_uid is not 16 bytes"))?;
    let cols = columns(tx, &t)?;
    let anchors = anchors(tx, &hex::encode(uid))?;
    let kinds: Vec<ColKind> = cols.iter().map(|c| c.kind).collect();
    Ok(Opened {
        t,
        uid,
        chains,
        cols,
        kinds,
        anchors,
    })
}

/// The payloads of a row's user columns, into `data` (cleared first).
fn read_payloads(row: &postgres::Row, cols: &[Column], data: &mut Vec<ColData>) -> Result<()> {
    data.clear();
    let mut i = 4;
    for c in cols {
        match c.kind {
            ColKind::Scalar(_) => {
                data.push(ColData::Scalar(bytes_at(row, i)?));
                i += 1;
            }
            ColKind::Array(_) => {
                let bounds: Option<Vec<i32>> = row.try_get(i).map_err(anyhow::Error::new)?;
                let elems: Option<Vec<Option<Vec<u8>>>> =
                    row.try_get(i + 1).map_err(anyhow::Error::new)?;
                data.push(ColData::Array(match (bounds, elems) {
                    (Some(bounds), Some(elems)) => Some(ArrayData { bounds, elems }),
                    _ => None,
                }));
                i += 2;
            }
        }
    }
    Ok(())
}

/// One fetched row: its chain, its record with the row hash recomputed, and its payload
/// bytes.
fn read_row(
    row: &postgres::Row,
    o: &Opened,
    enc: &mut RowEncoder,
    data: &mut Vec<ColData>,
) -> Result<(Option<i32>, RowRecord, usize)> {
    let chain: Option<i32> = row.try_get(0).map_err(anyhow::Error::new)?;
    let seq: Option<i64> = row.try_get(1).map_err(anyhow::Error::new)?;
    let inserted_at = match bytes_at(row, 2)? {
        None => None,
        Some(b) => Some(i64::from_be_bytes(b.as_slice().try_into().map_err(
            |_| anyhow!("timestamptz_send returned {} bytes, expected 8", b.len()),
        )?)),
    };
    let stored_link = bytes_at(row, 3)?;
    read_payloads(row, &o.cols, data)?;
    let row_hash = payload::row_hash(enc, &o.kinds, data).map_err(|e| {
        let col = o.cols.get(e.column).map_or("?", |c| c.name.as_str());
        anyhow!(
            "unexpected value from the server in the row at chain {chain:?}, seq {seq:?}, column \"{col}\": {}",
            e.message
        )
    })?;
    let record = RowRecord {
        seq,
        inserted_at,
        stored_link,
        row_hash,
    };
    Ok((chain, record, payload_bytes(data)))
}

/// Reads rows (all of them, or the one at (chain, seq)) with their recomputed row hashes,
/// grouped by worm_chain.
fn read_rows(
    tx: &mut Transaction<'_>,
    o: &Opened,
    only: Option<(i32, i64)>,
    pb: &ProgressBar,
) -> Result<(ByChain, u64)> {
    let mut query = plan::rows_query(&o.t.qualified, &o.cols);
    let (chain_param, seq_param) = only.unwrap_or((0, 0));
    let params: Vec<&(dyn postgres::types::ToSql + Sync)> = if only.is_some() {
        query.push_str(&format!(
            " WHERE t.{} = $1 AND t.{} = $2",
            plan::quote_ident(plan::COL_CHAIN),
            plan::quote_ident(plan::COL_SEQ)
        ));
        vec![&chain_param, &seq_param]
    } else {
        Vec::new()
    };
    let portal = tx
        .bind(query.as_str(), &params)
        .pg("cannot read the table")?;
    let mut by_chain: ByChain = BTreeMap::new();
    // Hashing mode: a large value is hashed, not copied once more.
    let mut enc = RowEncoder::hashing();
    let mut data: Vec<ColData> = Vec::with_capacity(o.cols.len());
    let mut rows_read: u64 = 0;
    let mut fetch = 1;
    loop {
        let batch = tx
            .query_portal(&portal, fetch)
            .pg("cannot read the table")?;
        if batch.is_empty() {
            break;
        }
        let mut batch_bytes = 0usize;
        for row in &batch {
            let (chain, record, bytes) = read_row(row, o, &mut enc, &mut data)?;
            batch_bytes = batch_bytes.saturating_add(bytes);
            by_chain.entry(chain).or_default().push(record);
        }
        enc.shrink_to(ENCODER_KEEP_BYTES);
        rows_read += batch.len() as u64;
        pb.inc(batch.len() as u64);
        fetch = next_fetch(batch.len(), batch_bytes);
    }
    drop(portal);
    Ok((by_chain, rows_read))
}

/// The row at (chain, seq), its row hash recomputed from its values (None: no such row).
/// Several rows at that position (a fork, after tampering) are all returned.
pub fn fetch_row(
    tx: &mut Transaction<'_>,
    o: &Opened,
    chain: i32,
    seq: i64,
) -> Result<Vec<RowRecord>> {
    let (mut rows, _) = read_rows(tx, o, Some((chain, seq)), &ProgressBar::hidden())?;
    Ok(rows.remove(&Some(chain)).unwrap_or_default())
}

/// The current purge anchor of a chain: (seq, link; None when unusable).
pub fn anchor_of(o: &Opened, chain: i32) -> Option<(i64, Option<Hash>)> {
    o.anchors.as_ref()?.get(&chain)?.position()
}

/// A verified table: the report rows (like `worm.verify`), a summary, and when read against a
/// digest what the comparison with it needs of every chain.
pub struct TableData {
    pub summary: Summary,
    pub rows: Vec<ChainRow>,
    pub uid: [u8; 16],
    pub chains: i32,
    /// The purge anchor of every chain that has one: (seq, link; None when unusable).
    pub anchors: BTreeMap<i32, (i64, Option<Hash>)>,
    pub gathered: Option<Gathered>,
}

/// A digest to gather for while reading (see [`verify_table_in`]), with its previous
/// checkpoint when this server's ledger holds it too.
pub type Against<'a> = Option<(&'a pg_worm_core::Digest, Option<&'a pg_worm_core::Digest>)>;

/// How a table's rows are read: whether a progress bar is drawn (on stderr), and by how
/// many sessions.
#[derive(Debug, Clone, Default)]
pub struct ReadOpts {
    pub progress: bool,
    pub par: Parallel,
}

impl ReadOpts {
    /// One session (this one).
    pub fn plain(progress: bool) -> ReadOpts {
        ReadOpts {
            progress,
            par: Parallel::default(),
        }
    }

    /// `jobs` sessions: with more than one, `tx`'s snapshot is exported (before anything
    /// else runs in it) for the others to import.
    pub fn new(
        progress: bool,
        connector: &Connector,
        tx: &mut Transaction<'_>,
        jobs: usize,
    ) -> Result<ReadOpts> {
        if jobs <= 1 {
            return Ok(ReadOpts::plain(progress));
        }
        let snapshot: String = tx
            .query_one("SELECT pg_catalog.pg_export_snapshot()", &[])
            .pg("--jobs: cannot export the transaction's snapshot for the other sessions (run without --jobs)")?
            .try_get(0)?;
        Ok(ReadOpts {
            progress,
            par: Parallel {
                connector: Some(connector.clone()),
                jobs,
                snapshot: Some(snapshot),
            },
        })
    }
}

/// How the rows are read: with `jobs` > 1 and a snapshot exported by the transaction
/// (see [`export_snapshot`]), chains are read by that many sessions at once (this one and
/// `jobs - 1` more, each importing the snapshot).
#[derive(Debug, Clone, Default)]
pub struct Parallel {
    pub connector: Option<Connector>,
    pub jobs: usize,
    pub snapshot: Option<String>,
}

impl Parallel {
    fn extra_sessions(&self) -> usize {
        match (&self.connector, &self.snapshot) {
            (Some(_), Some(_)) => self.jobs.saturating_sub(1),
            _ => 0,
        }
    }
}

/// A session reading in the snapshot `snapshot` exported by the main transaction.
fn begin_in_snapshot<'c>(client: &'c mut Client, snapshot: &str) -> Result<Transaction<'c>> {
    if !snapshot.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        return Err(anyhow!("unexpected snapshot id {snapshot:?}"));
    }
    let mut tx = begin_read(client)?;
    tx.batch_execute(&format!("SET TRANSACTION SNAPSHOT '{snapshot}'"))
        .pg("cannot import the snapshot of the first session")?;
    set_search_path(&mut tx)?;
    Ok(tx)
}

/// Planner settings for the rest of the transaction: `index` true to read chains through
/// the chain index (no sequential scan and sort of the whole table per chain), false for
/// the one sequential scan that counts the rows per chain.
fn plan_for(tx: &mut Transaction<'_>, index: bool) -> Result<()> {
    let (on, off) = if index { ("on", "off") } else { ("off", "on") };
    tx.query_one(
        "SELECT pg_catalog.set_config('enable_indexscan', $1, true), \
                pg_catalog.set_config('enable_indexonlyscan', $1, true), \
                pg_catalog.set_config('enable_bitmapscan', 'off', true), \
                pg_catalog.set_config('enable_seqscan', $2, true), \
                pg_catalog.set_config('max_parallel_workers_per_gather', '0', true)",
        &[&on, &off],
    )
    .pg("cannot set the planner's settings")?;
    Ok(())
}

/// Back to the server's planner settings (for what the transaction reads next).
fn plan_default(tx: &mut Transaction<'_>) -> Result<()> {
    tx.batch_execute(
        "RESET enable_indexscan; RESET enable_indexonlyscan; RESET enable_bitmapscan; \
         RESET enable_seqscan; RESET max_parallel_workers_per_gather;",
    )
    .pg("cannot reset the planner's settings")
}

/// Rows per chain `0..chains`, and the rows outside them (NULL or another chain number),
/// from one sequential scan reading worm_chain and worm_seq only.
fn count_rows(tx: &mut Transaction<'_>, o: &Opened) -> Result<(Vec<i64>, Strays)> {
    plan_for(tx, false)?;
    let q = format!(
        "SELECT t.{c}::pg_catalog.int4, pg_catalog.count(*)::pg_catalog.int8, \
                pg_catalog.min(t.{s})::pg_catalog.int8 \
           FROM ONLY {tbl} AS t GROUP BY 1",
        c = plan::quote_ident(plan::COL_CHAIN),
        s = plan::quote_ident(plan::COL_SEQ),
        tbl = o.t.qualified
    );
    let rows = tx.query(q.as_str(), &[]).pg("cannot read the table")?;
    let mut per_chain = vec![0i64; usize::try_from(o.chains).unwrap_or(0)];
    let mut strays = Strays::new();
    for r in rows {
        let chain: Option<i32> = r.try_get(0)?;
        let n: i64 = r.try_get(1)?;
        let first: Option<i64> = r.try_get(2)?;
        match chain
            .filter(|c| (0..o.chains).contains(c))
            .and_then(|c| usize::try_from(c).ok())
        {
            Some(i) => per_chain[i] = n,
            None => {
                strays.insert(
                    chain,
                    StrayCount {
                        rows: n,
                        first_seq: first,
                    },
                );
            }
        }
    }
    Ok((per_chain, strays))
}

/// The chain index: the table's valid index whose first columns are (worm_chain,
/// worm_seq), schema-qualified (None: there is none).
fn chain_index(tx: &mut Transaction<'_>, oid: u32) -> Result<Option<String>> {
    let row = tx
        .query_opt(
            "SELECT i.indexrelid::pg_catalog.regclass::pg_catalog.text \
               FROM pg_catalog.pg_index AS i \
               JOIN pg_catalog.pg_attribute AS c ON c.attrelid OPERATOR(pg_catalog.=) i.indrelid \
                AND c.attname OPERATOR(pg_catalog.=) 'worm_chain' \
               JOIN pg_catalog.pg_attribute AS s ON s.attrelid OPERATOR(pg_catalog.=) i.indrelid \
                AND s.attname OPERATOR(pg_catalog.=) 'worm_seq' \
              WHERE i.indrelid OPERATOR(pg_catalog.=) $1 AND i.indisvalid \
                AND i.indkey[0] OPERATOR(pg_catalog.=) c.attnum \
                AND i.indkey[1] OPERATOR(pg_catalog.=) s.attnum \
              ORDER BY i.indexrelid LIMIT 1",
            &[&oid],
        )
        .pg("cannot read pg_index")?;
    Ok(row.map(|r| r.try_get(0)).transpose()?)
}

/// One chain, read and verified.
struct ChainOut {
    row: ChainRow,
    read: i64,
    /// What a comparison with a digest needs of the chain (when one is wanted).
    gathered: Option<ChainGather>,
}

/// Why a chain read through the index has to be read again in heap order.
enum Reread {
    /// A row the index lists under this chain holds another chain number, or the rows came
    /// out of worm_seq order: the index does not match the table.
    Misfit,
}

/// Reads chain `chain` in worm_seq order through a portal, fetching at most
/// [`FETCH_BYTES`] of payload at a time, and verifies it as it comes: what is held is the
/// fetch, the stream's window, and with `against` what the comparison with that digest
/// needs of the chain ([`ChainGather`]: a few flags, a count and O(log n) hashes).
fn stream_chain(
    tx: &mut Transaction<'_>,
    o: &Opened,
    query: &str,
    chain: i32,
    against: Against<'_>,
    pb: &ProgressBar,
) -> Result<std::result::Result<ChainOut, Reread>> {
    let portal = tx.bind(query, &[&chain]).pg("cannot read the table")?;
    let anchor = o.anchors.as_ref().and_then(|a| a.get(&chain));
    let mut gather = against.and_then(|(d, previous)| {
        ChainGather::new(d, previous, chain, anchor.and_then(AnchorEntry::position))
    });
    let mut stream = ChainStream::new(&o.uid, chain, anchor);
    let mut enc = RowEncoder::hashing();
    let mut data: Vec<ColData> = Vec::with_capacity(o.cols.len());
    let mut fetch = 1;
    loop {
        let batch = tx
            .query_portal(&portal, fetch)
            .pg("cannot read the table")?;
        if batch.is_empty() {
            break;
        }
        let mut batch_bytes = 0usize;
        for row in &batch {
            let (c, rec, bytes) = read_row(row, o, &mut enc, &mut data)?;
            batch_bytes = batch_bytes.saturating_add(bytes);
            if c != Some(chain) {
                return Ok(Err(Reread::Misfit));
            }
            if let (Some(g), Some(seq)) = (gather.as_mut(), rec.seq) {
                g.row(seq, rec.stored_link.as_deref().and_then(hash_from_slice));
            }
            if stream.push(&rec).is_err() {
                return Ok(Err(Reread::Misfit));
            }
        }
        enc.shrink_to(ENCODER_KEEP_BYTES);
        pb.inc(batch.len() as u64);
        fetch = next_fetch(batch.len(), batch_bytes);
    }
    drop(portal);
    Ok(Ok(ChainOut {
        read: stream.rows(),
        row: stream.finish(),
        gathered: gather,
    }))
}

/// What every session needs to read chains.
struct ChainReader<'a> {
    o: &'a Opened,
    /// The rows of chain $1 in worm_seq order (through the chain index, or with
    /// [`plan_for`]`(false)` sorted by the server from a sequential scan).
    query: String,
    counts: &'a [i64],
    index: Option<&'a str>,
    against: Against<'a>,
}

impl ChainReader<'_> {
    /// Chain `c` verified: through the chain index; again with a sort of the table's own
    /// values when the index does not match them (a row listed under another chain or out of
    /// order, or a row count that differs from the table's), which is then reported.
    fn chain(&self, tx: &mut Transaction<'_>, c: i32, pb: &ProgressBar) -> Result<ChainOut> {
        let expected = usize::try_from(c)
            .ok()
            .and_then(|i| self.counts.get(i))
            .copied()
            .unwrap_or(0);
        let first = stream_chain(tx, self.o, &self.query, c, self.against, pb)?;
        if let Ok(out) = first {
            if out.read == expected || self.index.is_none() {
                return Ok(out);
            }
            // Rows the index does not list (or lists twice): read again, and say so.
            let through_index = out.read;
            let mut again = self.sorted(tx, c, pb)?;
            if let Some(p) = unindexed_rows_problem(
                self.o.display(),
                self.index.unwrap_or("?"),
                c,
                expected,
                through_index,
            ) {
                again.row.add_problem(None, &p);
            }
            return Ok(again);
        }
        self.sorted(tx, c, pb)
    }

    fn sorted(&self, tx: &mut Transaction<'_>, c: i32, pb: &ProgressBar) -> Result<ChainOut> {
        plan_for(tx, false)?;
        let out = stream_chain(tx, self.o, &self.query, c, self.against, pb)?;
        plan_for(tx, true)?;
        out.map_err(|_| {
            anyhow!(
                "the server returned the rows of chain {c} of {} out of worm_seq order",
                self.o.display()
            )
        })
    }
}

/// Verifies one protected table inside `tx` (which the caller commits), chain by chain in
/// worm_seq order with bounded memory (see [`stream_chain`]); with `par`, several chains at
/// once in other sessions sharing the snapshot. With `against` (a digest, and its previous
/// checkpoint when this server's ledger holds it too), also gathers per chain what the
/// comparison with that digest needs ([`TableData::gathered`]; no row is kept).
pub fn verify_table_in(
    tx: &mut Transaction<'_>,
    sel: TableSel<'_>,
    ro: &ReadOpts,
    against: Against<'_>,
) -> Result<TableData, Failure> {
    let (show_progress, par) = (ro.progress, &ro.par);
    let o = open_table(tx, sel)?;
    // Before the rows: a read refused by row-level security (row_security is off) must
    // still report what was found.
    let whole_table = table_problems(tx, &o)?;
    let (counts, strays) = match count_rows(tx, &o) {
        Ok(x) => x,
        Err(e) if !whole_table.is_empty() => {
            return Err(Failure::Damaged(format!(
                "{}: {}; and its rows could not be read: {e:#}",
                o.t.display,
                whole_table.join("; ")
            )));
        }
        Err(e) => return Err(e.into()),
    };
    let index = chain_index(tx, o.t.oid)?;
    let pb = progress_bar(show_progress, o.t.estimate);
    pb.set_message(o.t.display.clone());
    let base = plan::rows_query(&o.t.qualified, &o.cols);
    let reader = ChainReader {
        o: &o,
        query: format!(
            "{base} WHERE t.{c} OPERATOR(pg_catalog.=) $1 ORDER BY t.{s}",
            c = plan::quote_ident(plan::COL_CHAIN),
            s = plan::quote_ident(plan::COL_SEQ)
        ),
        counts: &counts,
        index: index.as_deref(),
        against,
    };
    plan_for(tx, true)?;
    let outs = read_chains(tx, &reader, par, &pb);
    pb.finish_and_clear();
    plan_default(tx)?;
    let outs = outs?;

    let mut chain_rows = Vec::with_capacity(outs.len());
    let mut gathered = Vec::new();
    let mut rows_read: u64 = 0;
    for out in outs {
        rows_read += u64::try_from(out.read).unwrap_or(0);
        chain_rows.push(out.row);
        gathered.extend(out.gathered);
    }
    let gathered = against.map(|(d, _)| Gathered::from_chains(d, gathered));
    rows_read += strays
        .values()
        .map(|s| u64::try_from(s.rows).unwrap_or(0))
        .sum::<u64>();
    let anchors = o.anchors.as_ref().map_or(0, BTreeMap::len);
    let rows = table_report(chain_rows, &strays, o.chains, whole_table);
    let summary = Summary {
        table: o.t.display.clone(),
        table_uid: format_uuid(&o.uid),
        chains: o.chains,
        rows_read,
        anchors,
    };
    Ok(TableData {
        summary,
        rows,
        uid: o.uid,
        chains: o.chains,
        anchors: (0..o.chains)
            .filter_map(|c| anchor_of(&o, c).map(|a| (c, a)))
            .collect(),
        gathered,
    })
}

/// Every chain `0..chains`, in chain order: in this session, and with `par` in more
/// sessions at once, each taking the next chain not yet taken.
fn read_chains(
    tx: &mut Transaction<'_>,
    reader: &ChainReader<'_>,
    par: &Parallel,
    pb: &ProgressBar,
) -> Result<Vec<ChainOut>> {
    let n = usize::try_from(reader.o.chains).unwrap_or(0);
    let extra = par.extra_sessions().min(n.saturating_sub(1));
    if extra == 0 {
        return (0..reader.o.chains)
            .map(|c| reader.chain(tx, c, pb))
            .collect();
    }
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let slots: Mutex<Vec<Option<ChainOut>>> = Mutex::new((0..n).map(|_| None).collect());
    let work = |tx: &mut Transaction<'_>| -> Result<()> {
        loop {
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= n {
                return Ok(());
            }
            let c = i32::try_from(i).unwrap_or(i32::MAX);
            match reader.chain(tx, c, pb) {
                Ok(out) => {
                    if let Ok(mut s) = slots.lock() {
                        s[i] = Some(out);
                    }
                }
                Err(e) => {
                    stop.store(true, Ordering::Relaxed);
                    return Err(e);
                }
            }
        }
    };
    let (connector, snapshot) = match (&par.connector, &par.snapshot) {
        (Some(c), Some(s)) => (c, s.as_str()),
        _ => return Err(anyhow!("no second session")),
    };
    let results: Vec<Result<()>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..extra)
            .map(|_| {
                scope.spawn(|| -> Result<()> {
                    let mut client = connector.open()?;
                    let mut wtx = begin_in_snapshot(&mut client, snapshot)?;
                    plan_for(&mut wtx, true)?;
                    let r = work(&mut wtx);
                    if r.is_err() {
                        stop.store(true, Ordering::Relaxed);
                    }
                    r?;
                    wtx.commit().pg("cannot end the read-only transaction")
                })
            })
            .collect();
        let mut results = vec![work(tx)];
        if results[0].is_err() {
            stop.store(true, Ordering::Relaxed);
        }
        for h in handles {
            results.push(
                h.join()
                    .unwrap_or_else(|_| Err(anyhow!("a reading session failed"))),
            );
        }
        results
    });
    for r in results {
        r?;
    }
    let slots = slots
        .into_inner()
        .map_err(|_| anyhow!("a reading session failed"))?;
    slots
        .into_iter()
        .enumerate()
        .map(|(i, s)| s.ok_or_else(|| anyhow!("chain {i} was not read")))
        .collect()
}

/// The inheritance children of the table, schema-qualified and quoted as needed (as the
/// extension names them).
fn inheritance_children(tx: &mut Transaction<'_>, oid: u32) -> Result<Vec<String>> {
    let rows = tx
        .query(
            "SELECT pg_catalog.quote_ident(n.nspname) OPERATOR(pg_catalog.||) '.' \
                    OPERATOR(pg_catalog.||) pg_catalog.quote_ident(c.relname) \
               FROM pg_catalog.pg_inherits AS i \
               JOIN pg_catalog.pg_class AS c ON c.oid OPERATOR(pg_catalog.=) i.inhrelid \
               JOIN pg_catalog.pg_namespace AS n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace \
              WHERE i.inhparent OPERATOR(pg_catalog.=) $1 \
              ORDER BY 1",
            &[&oid],
        )
        .pg("cannot read pg_inherits")?;
    rows.iter()
        .map(|r| r.try_get(0).map_err(anyhow::Error::new))
        .collect()
}

/// The table's columns now, in attnum order, with `format_type`'s text. The caller has set
/// search_path to `pg_catalog, pg_temp` (as the extension records it), so that types outside
/// pg_catalog come schema-qualified whatever the role's search_path.
fn column_defs(tx: &mut Transaction<'_>, oid: u32) -> Result<Vec<ColumnDef>> {
    let rows = tx
        .query(
            "SELECT a.attnum::pg_catalog.int8, a.attname::pg_catalog.text, \
                    pg_catalog.format_type(a.atttypid, a.atttypmod) \
               FROM pg_catalog.pg_attribute AS a \
              WHERE a.attrelid OPERATOR(pg_catalog.=) $1 \
                AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped \
              ORDER BY a.attnum",
            &[&oid],
        )
        .pg("cannot read the table's columns")?;
    rows.iter()
        .map(|r| -> Result<ColumnDef> {
            Ok(ColumnDef::new(
                r.try_get::<_, i64>(0)?,
                r.try_get::<_, String>(1)?,
                r.try_get::<_, String>(2)?,
            ))
        })
        .collect()
}

/// The `"columns"` value of the newest ledger entry of the table that has one (None: no
/// ledger, or a table protected before column lists were recorded).
fn recorded_columns(tx: &mut Transaction<'_>, uid: &[u8; 16]) -> Result<Option<serde_json::Value>> {
    if !relation_exists(tx, "worm", "ledger")? {
        return Ok(None);
    }
    let row = tx
        .query_opt(
            "SELECT (l.document OPERATOR(pg_catalog.->) 'columns')::pg_catalog.text \
               FROM worm.ledger AS l \
              WHERE l.table_uid OPERATOR(pg_catalog.=) $1::pg_catalog.text::pg_catalog.uuid \
                AND l.document OPERATOR(pg_catalog.?) 'columns' \
              ORDER BY l.seq DESC LIMIT 1",
            &[&hex::encode(uid)],
        )
        .pg("cannot read worm.ledger")?;
    let Some(row) = row else { return Ok(None) };
    let text: String = row.try_get(0)?;
    Ok(Some(serde_json::from_str(&text).context(
        "worm.ledger: the recorded column list is not JSON",
    )?))
}

/// Problems of the table as a whole, worded as worm.verify words them
/// (`pg_worm_core::table`): inheritance children, row-level security, columns that no
/// longer match the list recorded in the ledger.
fn table_problems(tx: &mut Transaction<'_>, o: &Opened) -> Result<Vec<String>> {
    let mut out: Vec<String> = inheritance_children(tx, o.t.oid)?
        .iter()
        .map(|c| table::inheritance_child_problem(c))
        .collect();
    let rls = tx
        .query_one(
            "SELECT c.relrowsecurity, c.relforcerowsecurity FROM pg_catalog.pg_class AS c \
              WHERE c.oid OPERATOR(pg_catalog.=) $1",
            &[&o.t.oid],
        )
        .pg("cannot read pg_class")?;
    out.extend(table::row_security_problem(
        rls.try_get(0)?,
        rls.try_get(1)?,
    ));
    if let Some(recorded) = recorded_columns(tx, &o.uid)? {
        let current = column_defs(tx, o.t.oid)?;
        if let Some(diff) = columns_mismatch(&recorded, &current) {
            out.push(table::columns_problem(&diff));
        }
    }
    // pg_worm 0.1.0 had no encoding_version column: read it through to_jsonb
    // so that its absence means version 1.
    let version: Option<String> = tx
        .query_one(
            "SELECT pg_catalog.to_jsonb(w) OPERATOR(pg_catalog.->>) 'encoding_version' \
               FROM worm.tables AS w WHERE w.table_name::pg_catalog.oid OPERATOR(pg_catalog.=) $1",
            &[&o.t.oid],
        )
        .pg("cannot read worm.tables")?
        .try_get(0)?;
    let version = version.and_then(|v| v.parse::<i64>().ok()).unwrap_or(1);
    out.extend(table::encoding_version_problem(version));
    Ok(out)
}

// --- partitioned tables ---------------------------------------------------------------------

/// A leaf partition of a partitioned table (an ordinary or a foreign table), with its
/// registration in worm.tables when it has one.
#[derive(Debug, Clone)]
pub struct Leaf {
    pub oid: u32,
    /// schema.name quoted where needed (as worm.verify's table_name and pg_worm's
    /// documents name it).
    pub display: String,
    pub relkind: String,
    pub uid: Option<[u8; 16]>,
}

fn uid_of(bytes: Option<Vec<u8>>) -> Result<Option<[u8; 16]>> {
    bytes
        .map(|b| {
            <[u8; 16]>::try_from(b.as_slice())
                .map_err(|_| anyhow!("worm.tables.table_uid is not 16 bytes"))
        })
        .transpose()
}

/// Every leaf partition under `parent` (nested levels included), by name. Read from
/// `pg_inherits` in the transaction's snapshot rather than with `pg_partition_tree`, which
/// reads the catalog's newest state: a partition created after the snapshot was taken would
/// be listed, but its registration in worm.tables would not be visible.
pub fn leaf_partitions(tx: &mut Transaction<'_>, parent: u32) -> Result<Vec<Leaf>> {
    let rows = tx
        .query(
            "WITH RECURSIVE tree(relid) AS ( \
                 SELECT i.inhrelid FROM pg_catalog.pg_inherits AS i \
                  WHERE i.inhparent OPERATOR(pg_catalog.=) $1 \
                 UNION ALL \
                 SELECT i.inhrelid FROM pg_catalog.pg_inherits AS i \
                   JOIN tree AS t ON i.inhparent OPERATOR(pg_catalog.=) t.relid) \
             SELECT c.oid, pg_catalog.quote_ident(n.nspname) OPERATOR(pg_catalog.||) '.' \
                        OPERATOR(pg_catalog.||) pg_catalog.quote_ident(c.relname), \
                    c.relkind::pg_catalog.text, pg_catalog.uuid_send(w.table_uid) \
               FROM tree AS t \
               JOIN pg_catalog.pg_class AS c ON c.oid OPERATOR(pg_catalog.=) t.relid \
               JOIN pg_catalog.pg_namespace AS n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace \
               LEFT JOIN worm.tables AS w \
                 ON w.table_name::pg_catalog.oid OPERATOR(pg_catalog.=) c.oid \
              WHERE c.relkind OPERATOR(pg_catalog.<>) 'p' \
              ORDER BY n.nspname COLLATE \"C\", c.relname COLLATE \"C\"",
            &[&parent],
        )
        .pg("cannot read the partitions (pg_inherits)")?;
    rows.iter()
        .map(|r| -> Result<Leaf> {
            Ok(Leaf {
                oid: r.try_get(0)?,
                display: r.try_get(1)?,
                relkind: r.try_get(2)?,
                uid: uid_of(r.try_get(3)?)?,
            })
        })
        .collect()
}

/// Whether the parent is registered in worm.partitioned_tables (None: this pg_worm has no
/// such table, it predates the protection of partitioned tables).
pub fn parent_registered(tx: &mut Transaction<'_>, parent: u32) -> Result<Option<bool>> {
    if !relation_exists(tx, "worm", "partitioned_tables")? {
        return Ok(None);
    }
    let row = tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM worm.partitioned_tables AS p \
                             WHERE p.table_name::pg_catalog.oid OPERATOR(pg_catalog.=) $1)",
            &[&parent],
        )
        .pg("cannot read worm.partitioned_tables")?;
    Ok(Some(row.try_get(0)?))
}

/// What became of a table_uid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UidState {
    /// Not in worm.tables (another database, or the registry lost it).
    Unknown,
    /// In worm.tables without a name: retired (worm.retire or DROP TABLE).
    Retired,
    /// In worm.tables, but the table it names is gone (dropped behind pg_worm's back).
    Dropped,
    /// The table exists, with this OID.
    Exists(u32),
}

pub fn uid_state(tx: &mut Transaction<'_>, uid: &[u8; 16]) -> Result<UidState> {
    let row = tx
        .query_opt(
            "SELECT w.table_name::pg_catalog.oid, EXISTS (SELECT 1 FROM pg_catalog.pg_class AS c \
                     WHERE c.oid OPERATOR(pg_catalog.=) w.table_name::pg_catalog.oid) \
               FROM worm.tables AS w \
              WHERE w.table_uid OPERATOR(pg_catalog.=) $1::pg_catalog.text::pg_catalog.uuid",
            &[&hex::encode(uid)],
        )
        .pg("cannot read worm.tables")?;
    let Some(row) = row else {
        return Ok(UidState::Unknown);
    };
    let oid: Option<u32> = row.try_get(0)?;
    let exists: bool = row.try_get(1)?;
    Ok(match oid {
        None => UidState::Retired,
        Some(_) if !exists => UidState::Dropped,
        Some(oid) => UidState::Exists(oid),
    })
}

/// The ledger's retirement certificates ("retire" entries) of a table_uid, oldest first.
pub fn retire_entries(tx: &mut Transaction<'_>, uid: &[u8; 16]) -> Result<Vec<LedgerEntry>> {
    if !relation_exists(tx, "worm", "ledger")? {
        return Ok(Vec::new());
    }
    let rows = tx
        .query(
            &format!(
                "SELECT {LEDGER_COLUMNS} FROM worm.ledger AS l \
                  WHERE (l.document OPERATOR(pg_catalog.->>) 'event') OPERATOR(pg_catalog.=) 'retire' \
                    AND (l.document OPERATOR(pg_catalog.#>>) '{{table,uid}}') OPERATOR(pg_catalog.=) $1 \
                  ORDER BY l.seq"
            ),
            &[&format_uuid(uid)],
        )
        .pg("cannot read worm.ledger")?;
    rows.iter().map(ledger_row).collect()
}

/// One stored ledger entry, with its document parsed from jsonb's text.
fn ledger_row(r: &postgres::Row) -> Result<LedgerEntry> {
    let seq: i64 = r.try_get(0)?;
    let doc: String = r.try_get(1)?;
    let document: serde_json::Value = serde_json::from_str(&doc)
        .with_context(|| format!("worm.ledger entry {seq}: its document is not JSON"))?;
    Ok(LedgerEntry {
        seq,
        document,
        prev: r.try_get(2)?,
        hash: r.try_get(3)?,
    })
}

const LEDGER_COLUMNS: &str = "l.seq, l.document::pg_catalog.text, l.prev_hash, l.hash";

/// The ledger entry at `seq`, if any (None also when there is no worm.ledger).
pub fn ledger_entry(tx: &mut Transaction<'_>, seq: i64) -> Result<Option<LedgerEntry>> {
    if !relation_exists(tx, "worm", "ledger")? {
        return Ok(None);
    }
    let row = tx
        .query_opt(
            &format!("SELECT {LEDGER_COLUMNS} FROM worm.ledger AS l WHERE l.seq = $1"),
            &[&seq],
        )
        .pg("cannot read worm.ledger")?;
    row.as_ref().map(ledger_row).transpose()
}

/// The newest ledger seq (0 when empty; None when there is no worm.ledger).
pub fn ledger_last_seq(tx: &mut Transaction<'_>) -> Result<Option<i64>> {
    if !relation_exists(tx, "worm", "ledger")? {
        return Ok(None);
    }
    let row = tx
        .query_one(
            "SELECT COALESCE(pg_catalog.max(l.seq), 0)::pg_catalog.int8 FROM worm.ledger AS l",
            &[],
        )
        .pg("cannot read worm.ledger")?;
    Ok(Some(row.try_get(0)?))
}

/// Every ledger entry, in seq order.
pub fn ledger_all(tx: &mut Transaction<'_>) -> Result<Vec<LedgerEntry>> {
    if !relation_exists(tx, "worm", "ledger")? {
        return Err(anyhow!(
            "this pg_worm has no ledger (there is no table worm.ledger)"
        ));
    }
    let rows = tx
        .query(
            &format!("SELECT {LEDGER_COLUMNS} FROM worm.ledger AS l ORDER BY l.seq"),
            &[],
        )
        .pg("cannot read worm.ledger")?;
    rows.iter().map(ledger_row).collect()
}

/// worm.checkpoint refused because the table failed the server's own verification
/// (SQLSTATE XX001): a finding, not a failure to verify.
#[derive(Debug)]
pub struct RefusedDamaged(pub String);

impl std::fmt::Display for RefusedDamaged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RefusedDamaged {}

/// `SELECT worm.checkpoint(TABLE)` in its own read-write transaction (the one pg_worm
/// function worm-verify calls: it appends the checkpoint to the ledger). The digest as JSON.
pub fn take_checkpoint(client: &mut Client, table: &str) -> Result<serde_json::Value> {
    let mut tx = client
        .build_transaction()
        .read_only(false)
        .start()
        .pg("cannot start a read-write transaction for worm.checkpoint")?;
    let exists: bool = tx
        .query_one(
            // 0.2.0: worm.checkpoint(regclass, full boolean DEFAULT false); 0.1.0: (regclass).
            "SELECT pg_catalog.to_regprocedure('worm.checkpoint(pg_catalog.regclass, pg_catalog.bool)') IS NOT NULL \
                 OR pg_catalog.to_regprocedure('worm.checkpoint(pg_catalog.regclass)') IS NOT NULL",
            &[],
        )
        .pg("cannot read pg_catalog")?
        .try_get(0)?;
    if !exists {
        return Err(anyhow!(
            "this database's pg_worm has no worm.checkpoint(regclass) (pg_worm missing or older than checkpoints)"
        ));
    }
    let what = format!("SELECT worm.checkpoint('{table}') failed");
    let row = tx
        .query_one(
            "SELECT worm.checkpoint($1::pg_catalog.text::pg_catalog.regclass)::pg_catalog.text",
            &[&table],
        )
        .map_err(|e| {
            if e.code() == Some(&postgres::error::SqlState::DATA_CORRUPTED) {
                anyhow::Error::new(RefusedDamaged(format!("{what}: {}", pg(e))))
            } else {
                pg(e).context(what.clone())
            }
        })?;
    let text: String = row.try_get(0)?;
    tx.commit().pg("cannot commit the checkpoint")?;
    serde_json::from_str(&text).context("worm.checkpoint returned something that is not JSON")
}

/// Where the server's WAL stands (cluster, timeline, position, timeline history), as
/// `worm.verify(tbl, against)` reads it inside the server. None when the timeline history is
/// needed (timeline > 1) but this role may not read it: `pg_read_file` is superuser-only
/// unless granted.
pub fn server_wal(tx: &mut Transaction<'_>) -> Result<Option<pg_worm_core::against::WalPosition>> {
    let row = tx
        .query_one(
            "SELECT (SELECT c.system_identifier FROM pg_catalog.pg_control_system() AS c)::pg_catalog.text, \
                    pg_catalog.pg_is_in_recovery(), \
                    (CASE WHEN pg_catalog.pg_is_in_recovery() THEN pg_catalog.pg_last_wal_replay_lsn() \
                          ELSE pg_catalog.pg_current_wal_insert_lsn() END)::pg_catalog.text, \
                    (CASE WHEN pg_catalog.pg_is_in_recovery() \
                          THEN COALESCE((SELECT r.received_tli FROM pg_catalog.pg_stat_wal_receiver AS r), \
                                        (SELECT c.timeline_id FROM pg_catalog.pg_control_checkpoint() AS c)) \
                          ELSE ('x' OPERATOR(pg_catalog.||) pg_catalog.substr(pg_catalog.pg_walfile_name(pg_catalog.pg_current_wal_insert_lsn()), 1, 8))::pg_catalog.bit(32)::pg_catalog.int4 END)::pg_catalog.int8, \
                    pg_catalog.has_function_privilege('pg_catalog.pg_read_file(pg_catalog.text, pg_catalog.int8, pg_catalog.int8, pg_catalog.bool)', 'EXECUTE')",
            &[],
        )
        .pg("cannot read the server's WAL position")?;
    let sysid: Option<String> = row.try_get(0)?;
    let in_recovery: bool = row.try_get(1)?;
    let lsn: Option<String> = row.try_get(2)?;
    let timeline: Option<i64> = row.try_get(3)?;
    let may_read: bool = row.try_get(4)?;
    let (Some(system_identifier), Some(lsn), Some(timeline)) = (
        sysid.and_then(|s| s.parse::<u64>().ok()),
        lsn.as_deref().and_then(pg_worm_core::against::parse_lsn),
        timeline.and_then(|t| u32::try_from(t).ok()),
    ) else {
        return Ok(None);
    };
    let history = if timeline <= 1 {
        Vec::new()
    } else if !may_read {
        return Ok(None);
    } else {
        let text: Option<String> = tx
            .query_one(
                "SELECT pg_catalog.pg_read_file($1, 0, 1048576, true)",
                &[&format!("pg_wal/{timeline:08X}.history")],
            )
            .pg("cannot read the server's timeline history")?
            .try_get(0)?;
        match text
            .as_deref()
            .and_then(pg_worm_core::against::parse_history_file)
        {
            Some(h) => h,
            None => return Ok(None),
        }
    };
    Ok(Some(pg_worm_core::against::WalPosition {
        system_identifier,
        timeline,
        lsn,
        history,
        in_recovery,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetch_size_follows_row_size() {
        assert_eq!(next_fetch(1, 10), FETCH_ROWS);
        assert_eq!(next_fetch(0, 0), FETCH_ROWS);
        assert_eq!(next_fetch(10, 10 * (8 << 20)), 4);
        assert_eq!(next_fetch(1, 1 << 30), 1);
        assert_eq!(next_fetch(100, 100 * 4096), 8192);
        let row = [
            ColData::Scalar(Some(vec![0; 10])),
            ColData::Scalar(None),
            ColData::Array(Some(ArrayData {
                bounds: vec![1, 2],
                elems: vec![Some(vec![0; 3]), None],
            })),
        ];
        assert_eq!(payload_bytes(&row), 10 + 3 + 8);
    }

    #[test]
    fn uuid_text() {
        let u = [
            0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd,
            0xee, 0xff,
        ];
        assert_eq!(format_uuid(&u), "00112233-4455-6677-8899-aabbccddeeff");
    }
}
