//! From PostgreSQL datums to pg_worm's canonical row encoding.
//!
//! The byte layout lives in `pg_worm_core` (and `docs/hashing.md`); this module
//! only reads each column's stored value, in a way that depends on no session
//! setting and no OID, and feeds it to the core's [`RowEncoder`].
//!
//! A [`TablePlan`] (which columns, of which kind, where the `worm_` columns
//! are, which index holds the chains) is built once per backend and table and
//! dropped when the relcache entry of that table is invalidated.

use crate::error::WormError;
use crate::names::{COL_CHAIN, COL_HASH, COL_INSERTED_AT, COL_SEQ, RESERVED_PREFIX};
use crate::pg;
use pg_worm_core::RowEncoder;
use pgrx::pg_sys;
use pgrx::pg_sys::Oid;
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::CStr;
use std::rc::Rc;

/// How one column's datum is read.
#[derive(Debug, Clone)]
pub enum Kind {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    /// numeric, jsonb, inet, cidr and enums: their output functions depend on
    /// no setting, so the text they return is canonical.
    Output {
        what: OutputKind,
        func: OutputFn,
    },
    Text,
    Bytea,
    Json,
    Date,
    Time,
    TimeTz,
    Timestamp,
    TimestampTz,
    Interval,
    Uuid,
    Array(Box<ArrayKind>),
}

#[derive(Debug, Clone, Copy)]
pub enum OutputKind {
    Numeric,
    Jsonb,
    Inet,
    Enum,
}

#[derive(Debug, Clone)]
pub struct ArrayKind {
    pub elem: Kind,
    pub elem_type: Oid,
    pub elmlen: i16,
    pub elmbyval: bool,
    pub elmalign: std::ffi::c_char,
}

/// Everything the trigger and the verifier need to know about a protected table.
#[derive(Debug)]
pub struct TablePlan {
    /// (attribute number, kind) of every user column, in attnum order.
    pub cols: Vec<(i16, Kind)>,
    pub chain_att: i16,
    pub seq_att: i16,
    pub inserted_at_att: i16,
    pub hash_att: i16,
    /// The unique (worm_chain, worm_seq) index, if present.
    pub index: Option<Oid>,
}

/// Maps a type to the way it is encoded, or None when pg_worm cannot hash it.
pub fn kind_for_type(typid: Oid) -> Option<Kind> {
    // SAFETY: getBaseType looks a type up in the syscache (ERROR for a type
    // that does not exist); it takes any oid.
    let base = unsafe { pg_sys::getBaseType(typid) };
    let k = match base {
        pg_sys::BOOLOID => Kind::Bool,
        pg_sys::INT2OID => Kind::Int2,
        pg_sys::INT4OID => Kind::Int4,
        pg_sys::INT8OID => Kind::Int8,
        pg_sys::FLOAT4OID => Kind::Float4,
        pg_sys::FLOAT8OID => Kind::Float8,
        pg_sys::TEXTOID | pg_sys::VARCHAROID | pg_sys::BPCHAROID => Kind::Text,
        pg_sys::BYTEAOID => Kind::Bytea,
        pg_sys::JSONOID => Kind::Json,
        pg_sys::DATEOID => Kind::Date,
        pg_sys::TIMEOID => Kind::Time,
        pg_sys::TIMETZOID => Kind::TimeTz,
        pg_sys::TIMESTAMPOID => Kind::Timestamp,
        pg_sys::TIMESTAMPTZOID => Kind::TimestampTz,
        pg_sys::INTERVALOID => Kind::Interval,
        pg_sys::UUIDOID => Kind::Uuid,
        pg_sys::NUMERICOID => output(OutputKind::Numeric, base),
        pg_sys::JSONBOID => output(OutputKind::Jsonb, base),
        pg_sys::INETOID | pg_sys::CIDROID => output(OutputKind::Inet, base),
        // SAFETY: get_typtype takes any type oid (0 when unknown).
        _ if unsafe { pg_sys::get_typtype(base) } == pg_sys::TYPTYPE_ENUM as std::ffi::c_char => {
            output(OutputKind::Enum, base)
        }
        _ => array_kind(base)?,
    };
    Some(k)
}

/// The kind of an array type whose elements pg_worm can hash (not nested).
fn array_kind(typ: Oid) -> Option<Kind> {
    // SAFETY: syscache lookups that take any type oid (InvalidOid / -1 / 0
    // when it is not an array); get_typlenbyvalalign fills the three locals.
    unsafe {
        let elem = pg_sys::get_element_type(typ);
        if elem == pg_sys::InvalidOid || pg_sys::get_typlen(typ) != -1 {
            return None;
        }
        let elem_kind = kind_for_type(elem)?;
        if matches!(elem_kind, Kind::Array(_)) {
            return None;
        }
        let mut elmlen = 0i16;
        let mut elmbyval = false;
        let mut elmalign: std::ffi::c_char = 0;
        pg_sys::get_typlenbyvalalign(elem, &mut elmlen, &mut elmbyval, &mut elmalign);
        Some(Kind::Array(Box::new(ArrayKind {
            elem: elem_kind,
            elem_type: elem,
            elmlen,
            elmbyval,
            elmalign,
        })))
    }
}

/// A type's output function, looked up once (fmgr_info) and kept in
/// TopMemoryContext for the life of the backend: calling it per value then
/// costs no catalog or fmgr lookup. (A plan rebuilt after an ALTER leaves the
/// old, tiny FmgrInfo behind.)
#[derive(Debug, Clone, Copy)]
pub struct OutputFn(*mut pg_sys::FmgrInfo);

fn output(what: OutputKind, typ: Oid) -> Kind {
    let mut func = pg_sys::InvalidOid;
    let mut varlena = false;
    // SAFETY: getTypeOutputInfo fills the two locals (ERROR for an unknown
    // type); the FmgrInfo is zeroed memory of the right size in
    // TopMemoryContext, which fmgr_info_cxt fills and which is never freed.
    let finfo = unsafe {
        pg_sys::getTypeOutputInfo(typ, &mut func, &mut varlena);
        let finfo = pg_sys::MemoryContextAllocZero(
            pg_sys::TopMemoryContext,
            std::mem::size_of::<pg_sys::FmgrInfo>(),
        ) as *mut pg_sys::FmgrInfo;
        pg_sys::fmgr_info_cxt(func, finfo, pg_sys::TopMemoryContext);
        finfo
    };
    Kind::Output {
        what,
        func: OutputFn(finfo),
    }
}

pub fn type_name(typid: Oid) -> String {
    // SAFETY: format_type_be takes any oid and returns a palloc'd C string.
    unsafe { pg::cstr_lossy(pg_sys::format_type_be(typid)) }
}

/// Attribute name of a tuple descriptor entry.
pub fn att_name(att: &pg_sys::FormData_pg_attribute) -> String {
    pg::name_str(&att.attname)
}

impl TablePlan {
    fn empty(natts: usize) -> TablePlan {
        TablePlan {
            cols: Vec::with_capacity(natts),
            chain_att: 0,
            seq_att: 0,
            inserted_at_att: 0,
            hash_att: 0,
            index: None,
        }
    }

    /// Places one (not dropped) attribute: a `worm_` column or a user column.
    fn add(&mut self, att: &pg_sys::FormData_pg_attribute, table: &str) -> Result<(), WormError> {
        let name = att_name(att);
        match name.as_str() {
            COL_CHAIN => self.chain_att = att.attnum,
            COL_SEQ => self.seq_att = att.attnum,
            COL_INSERTED_AT => self.inserted_at_att = att.attnum,
            COL_HASH => self.hash_att = att.attnum,
            _ if name.starts_with(RESERVED_PREFIX) => {
                return Err(WormError::ReservedColumn {
                    table: table.into(),
                    column: name,
                })
            }
            _ => match kind_for_type(att.atttypid) {
                Some(k) => self.cols.push((att.attnum, k)),
                None => {
                    return Err(WormError::UnsupportedType {
                        table: table.into(),
                        column: name,
                        type_name: type_name(att.atttypid),
                    })
                }
            },
        }
        Ok(())
    }

    fn has_worm_columns(&self) -> bool {
        self.chain_att != 0 && self.seq_att != 0 && self.inserted_at_att != 0 && self.hash_att != 0
    }
}

/// Builds the plan for a relation. `require_worm` = the four worm_ columns must exist.
///
/// # Safety
/// `rel` is a valid, open relation.
pub unsafe fn build_plan(
    rel: pg_sys::Relation,
    table: &str,
    require_worm: bool,
) -> Result<TablePlan, WormError> {
    // SAFETY: `rel` is open (caller).
    let atts = unsafe { pg::attributes(rel) };
    let mut plan = TablePlan::empty(atts.len());
    for att in atts.iter().filter(|a| !a.attisdropped) {
        plan.add(att, table)?;
    }
    if require_worm {
        if !plan.has_worm_columns() {
            return Err(WormError::Damaged {
                table: table.into(),
                what: "one of the columns worm_chain, worm_seq, worm_inserted_at, worm_hash is missing"
                    .into(),
            });
        }
        // SAFETY: `rel` is open (caller).
        let indexes = unsafe { chain_indexes(rel, plan.chain_att, plan.seq_att) };
        plan.index = indexes.first().copied();
    }
    Ok(plan)
}

/// pg_catalog's btree operator family `integer_ops` (int2, int4, int8).
const INTEGER_BTREE_FAM_OID: u32 = 1976;

/// The valid unique btree indexes on exactly (worm_chain, worm_seq), in the
/// relcache's order (normally one; two during REINDEX CONCURRENTLY).
///
/// # Safety
/// `rel` is a valid, open relation.
pub unsafe fn chain_indexes(rel: pg_sys::Relation, chain_att: i16, seq_att: i16) -> Vec<Oid> {
    // SAFETY: `rel` is open (caller).
    let oids = unsafe { pg::index_oids(rel) };
    oids.into_iter()
        .filter(|oid| {
            let idx = pg::Rel::open_index(*oid, pg_sys::AccessShareLock);
            is_chain_index(&idx, chain_att, seq_att)
        })
        .collect()
}

/// Whether an open index is unique, valid, immediate, btree, ascending, on
/// exactly (chain_att, seq_att) with the built-in integer operators, not
/// partial and without expressions: anything else would not make a second
/// (chain, seq) an error.
fn is_chain_index(idx: &pg::Rel, chain_att: i16, seq_att: i16) -> bool {
    if idx.rd_index.is_null() || idx.form().relam != pg_sys::BTREE_AM_OID {
        return false;
    }
    // SAFETY: a non-NULL rd_index is the index's pg_index row.
    let form = unsafe { &*idx.rd_index };
    if !(form.indisunique
        && form.indisvalid
        && form.indimmediate
        && form.indnatts == 2
        && form.indnkeyatts == 2)
    {
        return false;
    }
    // SAFETY: indkey holds indnatts (here 2) attribute numbers.
    let keys = unsafe { form.indkey.values.as_slice(2) };
    if keys[0] != chain_att || keys[1] != seq_att {
        return false;
    }
    if idx.rd_indoption.is_null() || idx.rd_opfamily.is_null() {
        return false;
    }
    // SAFETY: an index's rd_indoption and rd_opfamily hold one entry per key
    // column (here 2); the predicate and expression lookups take an open index.
    unsafe {
        std::slice::from_raw_parts(idx.rd_indoption, 2)
            .iter()
            .all(|o| *o as u32 & pg_sys::INDOPTION_DESC == 0)
            && std::slice::from_raw_parts(idx.rd_opfamily, 2)
                .iter()
                .all(|f| *f == pg_sys::Oid::from(INTEGER_BTREE_FAM_OID))
            && pg_sys::RelationGetIndexPredicate(idx.as_ptr()).is_null()
            && pg_sys::RelationGetIndexExpressions(idx.as_ptr()).is_null()
    }
}

thread_local! {
    static PLANS: RefCell<HashMap<Oid, Rc<TablePlan>>> = RefCell::new(HashMap::new());
    // Hashing mode: a large value is hashed where it lies, never copied.
    static ENCODER: RefCell<RowEncoder> = RefCell::new(RowEncoder::hashing());
}

/// The cached plan of a protected relation (built on first use).
///
/// # Safety
/// `rel` is a valid, open relation.
pub unsafe fn plan_for(rel: pg_sys::Relation) -> Result<Rc<TablePlan>, WormError> {
    // SAFETY: `rel` is open (caller).
    let relid = unsafe { (*rel).rd_id };
    if let Some(p) = PLANS.with(|m| m.borrow().get(&relid).cloned()) {
        return Ok(p);
    }
    // SAFETY: `rel` is open (caller).
    let table = unsafe { pg::rel_display_name(rel) };
    // SAFETY: `rel` is open (caller).
    let plan = Rc::new(unsafe { build_plan(rel, &table, true) }?);
    PLANS.with(|m| m.borrow_mut().insert(relid, plan.clone()));
    Ok(plan)
}

/// Relcache invalidation callback: forget plans of changed relations.
///
/// # Safety
/// Called by PostgreSQL only, as a registered relcache callback.
#[pgrx::pg_guard]
pub unsafe extern "C-unwind" fn relcache_callback(_arg: pg_sys::Datum, relid: Oid) {
    PLANS.with(|m| {
        if let Ok(mut m) = m.try_borrow_mut() {
            if relid == pg_sys::InvalidOid {
                m.clear();
            } else {
                m.remove(&relid);
            }
        }
    });
}

pub fn register_callbacks() {
    // SAFETY: registers a pg_guard'ed callback, in _PG_init.
    unsafe {
        pg_sys::CacheRegisterRelcacheCallback(Some(relcache_callback), pg_sys::Datum::from(0));
    }
}

/// Computes the row hash of a heap tuple under `plan`.
///
/// # Safety
/// `tuple` is a valid heap tuple of `tupdesc`, the descriptor of the relation
/// `plan` was built for.
pub unsafe fn row_hash(
    plan: &TablePlan,
    tuple: pg_sys::HeapTuple,
    tupdesc: pg_sys::TupleDesc,
) -> pg_worm_core::Hash {
    // SAFETY: `tupdesc` is valid (caller).
    let natts = unsafe { (*tupdesc).natts } as usize;
    let mut values = vec![pg_sys::Datum::from(0); natts];
    let mut nulls = vec![true; natts];
    // SAFETY: the arrays hold natts entries, as heap_deform_tuple fills.
    unsafe { pg_sys::heap_deform_tuple(tuple, tupdesc, values.as_mut_ptr(), nulls.as_mut_ptr()) };
    // SAFETY: a deformed row of the plan's relation.
    unsafe { row_hash_deformed(plan, &values, &nulls) }
}

/// Computes the row hash from already deformed values (`values`/`nulls` indexed by attnum-1).
///
/// # Safety
/// `values`/`nulls` are a deformed row of the relation `plan` was built for
/// (every non-NULL value a valid datum of its column's type).
pub unsafe fn row_hash_deformed(
    plan: &TablePlan,
    values: &[pg_sys::Datum],
    nulls: &[bool],
) -> pg_worm_core::Hash {
    // Trailing NULL columns are not encoded: a column added later without a
    // default reads as NULL in older rows, which therefore keep their hash.
    let present = plan
        .cols
        .iter()
        .rposition(|(attnum, _)| !nulls[(*attnum - 1) as usize])
        .map_or(0, |p| p + 1);
    ENCODER.with(|e| {
        let mut enc = e.borrow_mut();
        enc.reset(present as u32);
        for (attnum, kind) in &plan.cols[..present] {
            let i = (*attnum - 1) as usize;
            if nulls[i] {
                enc.null();
            } else {
                // SAFETY: a non-NULL value of this column's type (caller).
                unsafe { encode_datum(&mut enc, kind, values[i]) };
            }
        }
        let hash = enc.row_hash();
        // Keep no large array's buffer for the life of the backend.
        enc.shrink_to(ENCODER_KEEP_BYTES);
        hash
    })
}

/// The most the per-backend encoder keeps allocated between rows.
const ENCODER_KEEP_BYTES: usize = 1 << 20;

fn db_is_utf8_compatible() -> bool {
    thread_local! {
        // SAFETY: GetDatabaseEncoding reads a backend global, fixed once
        // connected to a database.
        static UTF8: bool = unsafe {
            let e = pg_sys::GetDatabaseEncoding() as u32;
            e == pg_sys::pg_enc::PG_UTF8 || e == pg_sys::pg_enc::PG_SQL_ASCII
        };
    }
    UTF8.with(|u| *u)
}

/// Bytes of a varlena datum (kept here for callers not yet on `crate::pg`).
pub use crate::pg::varlena_bytes;

/// Text in the server encoding, as UTF-8.
fn utf8_text(bytes: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if db_is_utf8_compatible() || bytes.is_empty() {
        return std::borrow::Cow::Borrowed(bytes);
    }
    // SAFETY: pointer and length describe `bytes`; pg_server_to_any returns
    // them unchanged or a palloc'd NUL-terminated converted copy (ERROR when
    // a character has no UTF-8 equivalent).
    unsafe {
        let out = pg_sys::pg_server_to_any(
            bytes.as_ptr() as *const std::ffi::c_char,
            bytes.len() as i32,
            pg_sys::pg_enc::PG_UTF8 as i32,
        );
        if out as *const u8 == bytes.as_ptr() {
            std::borrow::Cow::Borrowed(bytes)
        } else {
            std::borrow::Cow::Owned(CStr::from_ptr(out).to_bytes().to_vec())
        }
    }
}

/// Calls `f` on the output-function text of `d`, then frees the text.
///
/// # Safety
/// `d` is a non-NULL datum of the type `func` is the output function of.
unsafe fn with_output_text<R>(func: OutputFn, d: pg_sys::Datum, f: impl FnOnce(&[u8]) -> R) -> R {
    // SAFETY: the FmgrInfo lives for the backend; the output function
    // returns a palloc'd C string, freed after `f` is done with it.
    unsafe {
        let p = pg_sys::OutputFunctionCall(func.0, d);
        let r = f(CStr::from_ptr(p).to_bytes());
        pg_sys::pfree(p as *mut std::ffi::c_void);
        r
    }
}

/// Feeds one non-NULL value to the encoder.
///
/// # Safety
/// `d` is a non-NULL datum of the type `kind` was made for.
unsafe fn encode_datum(enc: &mut RowEncoder, kind: &Kind, d: pg_sys::Datum) {
    // SAFETY (every block below): `d` is a datum of `kind`'s type (caller), so
    // a varlena type's datum points to a varlena, a pass-by-reference
    // fixed-size type's to its struct.
    match kind {
        Kind::Bool => enc.bool(d.value() != 0),
        Kind::Int2 => enc.int(d.value() as i16 as i64),
        Kind::Int4 => enc.int(d.value() as i32 as i64),
        Kind::Int8 => enc.int(d.value() as i64),
        Kind::Float4 => enc.float4(f32::from_bits(d.value() as u32)),
        Kind::Float8 => enc.float8(f64::from_bits(d.value() as u64)),
        // SAFETY: see above (text, json and bytea are varlenas).
        Kind::Text => enc.text(&utf8_text(unsafe { pg::varlena_bytes(d) })),
        // SAFETY: see above.
        Kind::Json => enc.json(&utf8_text(unsafe { pg::varlena_bytes(d) })),
        // SAFETY: see above.
        Kind::Bytea => enc.bytes(unsafe { pg::varlena_bytes(d) }),
        Kind::Date => enc.date(d.value() as i32),
        Kind::Time => enc.time(d.value() as i64),
        Kind::Timestamp => enc.timestamp(d.value() as i64),
        Kind::TimestampTz => enc.timestamptz(d.value() as i64),
        Kind::TimeTz => {
            // SAFETY: see above (timetz is a pointer to TimeTzADT).
            let t = unsafe { &*(d.cast_mut_ptr::<pg_sys::TimeTzADT>()) };
            enc.timetz(t.time, t.zone)
        }
        Kind::Interval => {
            // SAFETY: see above (interval is a pointer to Interval).
            let i = unsafe { &*(d.cast_mut_ptr::<pg_sys::Interval>()) };
            enc.interval(i.month, i.day, i.time)
        }
        Kind::Uuid => {
            // SAFETY: see above (uuid is a pointer to 16 bytes).
            let u = unsafe { &*(d.cast_mut_ptr::<[u8; 16]>()) };
            enc.uuid(u)
        }
        // SAFETY: see above; `func` is the output function of the type.
        Kind::Output { what, func } => unsafe {
            with_output_text(*func, d, |text| match what {
                OutputKind::Numeric => enc.numeric(std::str::from_utf8(text).unwrap_or("")),
                OutputKind::Inet => enc.inet(std::str::from_utf8(text).unwrap_or("")),
                OutputKind::Jsonb => enc.jsonb(&utf8_text(text)),
                OutputKind::Enum => enc.enum_label(&utf8_text(text)),
            })
        },
        // SAFETY: see above (an array type's datum is a varlena array).
        Kind::Array(ak) => unsafe { encode_array(enc, ak, d) },
    }
}

/// Feeds one non-NULL array to the encoder: dimensions, then every element.
///
/// # Safety
/// `d` is a non-NULL array datum whose element type is `ak.elem_type`.
unsafe fn encode_array(enc: &mut RowEncoder, ak: &ArrayKind, d: pg_sys::Datum) {
    // SAFETY: `d` is an array (caller); detoasted, it is an ArrayType
    // followed by ndim dimensions and ndim lower bounds (int32 each).
    let (arr, dims) = unsafe {
        let arr = pg_sys::pg_detoast_datum(d.cast_mut_ptr()) as *mut pg_sys::ArrayType;
        let ndim = (*arr).ndim.max(0) as usize;
        let dims_ptr =
            (arr as *const u8).add(std::mem::size_of::<pg_sys::ArrayType>()) as *const i32;
        let lbound_ptr = dims_ptr.add(ndim);
        let dims: Vec<(i32, i32)> = (0..ndim)
            .map(|i| (*lbound_ptr.add(i), *dims_ptr.add(i)))
            .collect();
        (arr, dims)
    };
    enc.array_begin(&dims);
    let mut elems: *mut pg_sys::Datum = std::ptr::null_mut();
    let mut nulls: *mut bool = std::ptr::null_mut();
    let mut n: i32 = 0;
    // SAFETY: the element type's length, by-value flag and alignment come
    // from its catalog entry; deconstruct_array fills the three locals with
    // `n` elements and null flags.
    unsafe {
        pg_sys::deconstruct_array(
            arr,
            ak.elem_type,
            ak.elmlen as i32,
            ak.elmbyval,
            ak.elmalign,
            &mut elems,
            &mut nulls,
            &mut n,
        );
    }
    for i in 0..n.max(0) as usize {
        // SAFETY: i < n, within both arrays; a non-NULL element is a datum of
        // the element type.
        unsafe {
            if *nulls.add(i) {
                enc.null();
            } else {
                encode_datum(enc, &ak.elem, *elems.add(i));
            }
        }
    }
    enc.array_end();
}
