//! Which columns a row hash covers, how each is encoded, and the one SELECT that reads every
//! row's payloads (docs/hashing.md sections 3-5). Pure: the catalog facts come in as plain
//! structs, the SQL goes out as a string.

use crate::payload::{ColKind, Scalar};

/// pg_worm's own columns, left out of the row encoding.
pub const COL_CHAIN: &str = "worm_chain";
pub const COL_SEQ: &str = "worm_seq";
pub const COL_INSERTED_AT: &str = "worm_inserted_at";
pub const COL_HASH: &str = "worm_hash";
pub const RESERVED_PREFIX: &str = "worm_";

/// What the verifier needs to know about one `pg_type` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeInfo {
    pub oid: u32,
    pub nspname: String,
    pub typname: String,
    /// `pg_type.typtype`: 'b' base, 'd' domain, 'e' enum, ...
    pub typtype: char,
    /// `typbasetype` (domains), 0 otherwise.
    pub basetype: u32,
    /// Element type when this is a true array type (PostgreSQL's `get_element_type`), else 0.
    pub array_elem: u32,
    /// `format_type(oid, NULL)`, for messages.
    pub display: String,
}

impl TypeInfo {
    /// The type's name, schema-qualified and quoted, usable as a cast target without a
    /// type modifier (so `char(n)` keeps its padding and nothing is rounded).
    pub fn qualified(&self) -> String {
        format!(
            "{}.{}",
            quote_ident(&self.nspname),
            quote_ident(&self.typname)
        )
    }
}

/// A user column of the table, as the row encoding sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub kind: ColKind,
    /// Cast applied to the column before reading it: the base type when the column's type is
    /// a domain (or a domain over an array).
    pub cast: Option<String>,
    /// Cast applied to each element of an array whose element type is a domain.
    pub elem_cast: Option<String>,
}

/// Why a type cannot be hashed (the extension refuses to protect such a table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported(pub String);

/// Follows domains down to their base type.
fn base_of<F>(mut t: TypeInfo, lookup: &mut F) -> Result<TypeInfo, String>
where
    F: FnMut(u32) -> Result<TypeInfo, String>,
{
    for _ in 0..64 {
        if t.typtype != 'd' {
            return Ok(t);
        }
        t = lookup(t.basetype)?;
    }
    Err(format!("type {} nests domains too deeply", t.display))
}

fn scalar_of(base: &TypeInfo) -> Option<Scalar> {
    if base.nspname == "pg_catalog" {
        if let Some(s) = Scalar::for_builtin(&base.typname) {
            return Some(s);
        }
    }
    if base.typtype == 'e' {
        return Some(Scalar::Enum);
    }
    None
}

/// The encoding of a column of type `t`: domains are hashed as their base type, arrays by
/// their element type (docs/hashing.md section 3). `Ok(Err(..))` = a type pg_worm cannot hash;
/// `Err(..)` = the catalog could not be read.
pub fn resolve_column<F>(
    name: &str,
    t: TypeInfo,
    lookup: &mut F,
) -> Result<Result<Column, Unsupported>, String>
where
    F: FnMut(u32) -> Result<TypeInfo, String>,
{
    let declared = t.display.clone();
    let is_domain = t.typtype == 'd';
    let base = base_of(t, lookup)?;
    let cast = is_domain.then(|| base.qualified());
    if let Some(s) = scalar_of(&base) {
        return Ok(Ok(Column {
            name: name.to_owned(),
            kind: ColKind::Scalar(s),
            cast,
            elem_cast: None,
        }));
    }
    if base.array_elem != 0 {
        let elem = lookup(base.array_elem)?;
        let elem_is_domain = elem.typtype == 'd';
        let elem_display = elem.display.clone();
        let elem_base = base_of(elem, lookup)?;
        if let Some(s) = scalar_of(&elem_base) {
            return Ok(Ok(Column {
                name: name.to_owned(),
                kind: ColKind::Array(s),
                cast,
                elem_cast: elem_is_domain.then(|| elem_base.qualified()),
            }));
        }
        return Ok(Err(Unsupported(format!(
            "column \"{name}\" is of type {declared}, an array of {elem_display}, which \
             encoding version 1 does not cover"
        ))));
    }
    Ok(Err(Unsupported(format!(
        "column \"{name}\" is of type {declared}, which encoding version 1 does not cover"
    ))))
}

/// SQL identifier, always quoted.
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// An expression giving the payload of a non-array value `x` of kind `k` as `bytea`, NULL
/// when `x` is NULL. Binary send functions for fixed-width kinds (route a of section 4); the
/// UTF-8 bytes of the type's output function for text-like kinds (route b): `format('%s', x)`
/// calls the output function (keeping char(n) padding, printing inet hosts without /32),
/// `convert_to` makes the bytes UTF-8 whatever client_encoding is. No string literal contains
/// a backslash, so standard_conforming_strings does not matter.
pub fn payload_expr(k: Scalar, x: &str) -> String {
    match k {
        Scalar::Bool => format!("pg_catalog.boolsend({x})"),
        Scalar::Int => format!("pg_catalog.int8send(({x})::pg_catalog.int8)"),
        // NaN is canonicalised on the Rust side (the encoder does it for every NaN).
        Scalar::Float4 => format!("pg_catalog.float4send({x})"),
        Scalar::Float8 => format!("pg_catalog.float8send({x})"),
        Scalar::Bytes => format!("({x})::pg_catalog.bytea"),
        Scalar::Date => format!("pg_catalog.date_send({x})"),
        Scalar::Time => format!("pg_catalog.time_send({x})"),
        Scalar::TimeTz => format!("pg_catalog.timetz_send({x})"),
        Scalar::Timestamp => format!("pg_catalog.timestamp_send({x})"),
        Scalar::TimestampTz => format!("pg_catalog.timestamptz_send({x})"),
        Scalar::Interval => format!("pg_catalog.interval_send({x})"),
        Scalar::Uuid => format!("pg_catalog.uuid_send({x})"),
        Scalar::Numeric
        | Scalar::Text
        | Scalar::Json
        | Scalar::Jsonb
        | Scalar::Inet
        | Scalar::Enum => format!(
            "CASE WHEN ({x}) IS NULL THEN NULL \
             ELSE pg_catalog.convert_to(pg_catalog.format('%s', {x}), 'UTF8') END"
        ),
    }
}

fn cast(x: &str, to: &Option<String>) -> String {
    match to {
        Some(t) => format!("({x})::{t}"),
        None => x.to_owned(),
    }
}

/// The select-list items for one user column: one `bytea` for a scalar; for an array an
/// `int4[]` of (lower bound, length) pairs per dimension and a `bytea[]` of element payloads
/// in storage order (both NULL when the array is NULL).
pub fn column_exprs(col: &Column, alias: &str) -> Vec<String> {
    let x = cast(&format!("{alias}.{}", quote_ident(&col.name)), &col.cast);
    match col.kind {
        ColKind::Scalar(k) => vec![payload_expr(k, &x)],
        ColKind::Array(k) => {
            let e = cast("u.e", &col.elem_cast);
            vec![
                format!(
                    "CASE WHEN ({x}) IS NULL THEN NULL ELSE ARRAY(\
                     SELECT b.v FROM pg_catalog.generate_series(1, \
                     COALESCE(pg_catalog.array_ndims({x}), 0)) AS d(i), \
                     LATERAL (VALUES (1, pg_catalog.array_lower({x}, d.i)), \
                     (2, pg_catalog.array_length({x}, d.i))) AS b(k, v) \
                     ORDER BY d.i, b.k) END"
                ),
                format!(
                    "CASE WHEN ({x}) IS NULL THEN NULL ELSE ARRAY(\
                     SELECT {} FROM pg_catalog.unnest({x}) WITH ORDINALITY AS u(e, n) \
                     ORDER BY u.n) END",
                    payload_expr(k, &e)
                ),
            ]
        }
    }
}

/// The query reading every row: `worm_chain`, `worm_seq`, `worm_inserted_at` as
/// `timestamptz_send` bytes, `worm_hash`, then the payload items of every user column.
/// `FROM ONLY`: rows of inheritance children are not rows of this table (the extension
/// scans only the table itself).
pub fn rows_query(qualified_table: &str, cols: &[Column]) -> String {
    let mut items = vec![
        format!("t.{}::pg_catalog.int4", quote_ident(COL_CHAIN)),
        format!("t.{}::pg_catalog.int8", quote_ident(COL_SEQ)),
        format!(
            "pg_catalog.timestamptz_send(t.{}::pg_catalog.timestamptz)",
            quote_ident(COL_INSERTED_AT)
        ),
        format!("t.{}::pg_catalog.bytea", quote_ident(COL_HASH)),
    ];
    for c in cols {
        items.extend(column_exprs(c, "t"));
    }
    format!(
        "SELECT {} FROM ONLY {qualified_table} AS t",
        items.join(",\n       ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn ty(oid: u32, nsp: &str, name: &str, typtype: char, base: u32, elem: u32) -> TypeInfo {
        TypeInfo {
            oid,
            nspname: nsp.into(),
            typname: name.into(),
            typtype,
            basetype: base,
            array_elem: elem,
            display: name.into(),
        }
    }

    fn catalog() -> HashMap<u32, TypeInfo> {
        let mut m = HashMap::new();
        for t in [
            ty(23, "pg_catalog", "int4", 'b', 0, 0),
            ty(1007, "pg_catalog", "_int4", 'b', 0, 23),
            ty(1042, "pg_catalog", "bpchar", 'b', 0, 0),
            ty(869, "pg_catalog", "inet", 'b', 0, 0),
            ty(600, "pg_catalog", "point", 'b', 0, 0),
            ty(1017, "pg_catalog", "_point", 'b', 0, 600),
            ty(5000, "public", "triage", 'e', 0, 0),
            ty(5001, "public", "_triage", 'b', 0, 5000),
            ty(5002, "public", "code5", 'd', 1042, 0),
            ty(5003, "public", "_code5", 'b', 0, 5002),
            ty(5004, "public", "code5b", 'd', 5002, 0),
            ty(5005, "public", "ints", 'd', 1007, 0),
            ty(5006, "public", "we\"ird", 'd', 5000, 0),
        ] {
            m.insert(t.oid, t);
        }
        m
    }

    fn resolve(oid: u32) -> Result<Column, Unsupported> {
        let cat = catalog();
        let mut lookup = |o: u32| cat.get(&o).cloned().ok_or_else(|| format!("no type {o}"));
        let t = lookup(oid).expect("known type");
        resolve_column("c", t, &mut lookup).expect("catalog readable")
    }

    #[test]
    fn resolves_kinds_domains_arrays() {
        assert_eq!(
            resolve(23).map(|c| c.kind),
            Ok(ColKind::Scalar(Scalar::Int))
        );
        assert_eq!(resolve(23).map(|c| c.cast), Ok(None));
        assert_eq!(
            resolve(869).map(|c| c.kind),
            Ok(ColKind::Scalar(Scalar::Inet))
        );
        assert_eq!(
            resolve(1007).map(|c| c.kind),
            Ok(ColKind::Array(Scalar::Int))
        );
        assert_eq!(
            resolve(5000).map(|c| c.kind),
            Ok(ColKind::Scalar(Scalar::Enum))
        );
        assert_eq!(
            resolve(5001).map(|c| c.kind),
            Ok(ColKind::Array(Scalar::Enum))
        );
        // Domain over a domain over char(n): text, cast to the base type without typmod.
        let c = resolve(5004).expect("supported");
        assert_eq!(c.kind, ColKind::Scalar(Scalar::Text));
        assert_eq!(c.cast.as_deref(), Some("\"pg_catalog\".\"bpchar\""));
        // Array of a domain: elements cast to the domain's base type.
        let c = resolve(5003).expect("supported");
        assert_eq!(c.kind, ColKind::Array(Scalar::Text));
        assert_eq!(c.cast, None);
        assert_eq!(c.elem_cast.as_deref(), Some("\"pg_catalog\".\"bpchar\""));
        // Domain over an array.
        let c = resolve(5005).expect("supported");
        assert_eq!(c.kind, ColKind::Array(Scalar::Int));
        assert_eq!(c.cast.as_deref(), Some("\"pg_catalog\".\"_int4\""));
        // Domain over an enum with an awkward name: quoted.
        assert_eq!(
            resolve(5006).map(|c| c.cast),
            Ok(Some("\"public\".\"triage\"".into()))
        );
        // Not covered by encoding version 1.
        assert!(resolve(600).is_err());
        assert!(resolve(1017).is_err());
    }

    #[test]
    fn a_user_type_named_like_a_builtin_is_not_a_builtin() {
        let t = ty(6000, "public", "int4", 'b', 0, 0);
        let mut lookup = |o: u32| Err::<TypeInfo, _>(format!("no type {o}"));
        let r = resolve_column("c", t, &mut lookup).expect("no lookup needed");
        assert!(r.is_err());
    }

    #[test]
    fn quoting() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_ident("Ab c"), "\"Ab c\"");
    }

    #[test]
    fn query_shape() {
        let cols = vec![
            Column {
                name: "id".into(),
                kind: ColKind::Scalar(Scalar::Int),
                cast: None,
                elem_cast: None,
            },
            Column {
                name: "code".into(),
                kind: ColKind::Scalar(Scalar::Text),
                cast: Some("\"pg_catalog\".\"bpchar\"".into()),
                elem_cast: None,
            },
            Column {
                name: "m".into(),
                kind: ColKind::Array(Scalar::Float8),
                cast: None,
                elem_cast: None,
            },
        ];
        let q = rows_query("\"public\".\"t\"", &cols);
        assert!(q.starts_with("SELECT t.\"worm_chain\"::pg_catalog.int4"));
        assert!(q.ends_with("FROM ONLY \"public\".\"t\" AS t"));
        assert!(q.contains("pg_catalog.int8send((t.\"id\")::pg_catalog.int8)"));
        assert!(q.contains(
            "pg_catalog.convert_to(pg_catalog.format('%s', (t.\"code\")::\"pg_catalog\".\"bpchar\"), 'UTF8')"
        ));
        assert!(q.contains("pg_catalog.array_lower(t.\"m\", d.i)"));
        assert!(q.contains("SELECT pg_catalog.float8send(u.e) FROM pg_catalog.unnest(t.\"m\")"));
        assert!(!q.contains('\\'));
        // 4 worm_ items + 1 + 1 + 2 (array) items.
        assert_eq!(q.matches(",\n       ").count(), 7);
    }
}
