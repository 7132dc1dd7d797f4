// In-server tests (`cargo pgrx test`). They may call `Spi` directly: they
// are the caller, not pg_worm.
use pgrx::prelude::*;

/// A relation's oid by name (InvalidOid when it does not exist); shared by
/// the modules' in-server tests.
pub fn relid(name: &str) -> pg_sys::Oid {
    Spi::get_one_with_args::<pg_sys::Oid>(
        "SELECT $1::regclass::oid",
        &[pgrx::datum::DatumWithOid::from(name)],
    )
    .ok()
    .flatten()
    .unwrap_or(pg_sys::InvalidOid)
}

#[pg_test]
fn protect_then_insert_then_verify() {
    Spi::run("CREATE TABLE t_basic (id int, note text)").unwrap();
    Spi::run("INSERT INTO t_basic VALUES (1, 'before')").unwrap();
    let msg = Spi::get_one::<String>("SELECT worm.protect('t_basic', chains => 4)").unwrap();
    assert_eq!(
        msg.as_deref(),
        Some("protected public.t_basic: 4 chains, 1 existing row chained, rows are kept for ever")
    );
    Spi::run("INSERT INTO t_basic SELECT g, 'row ' || g FROM generate_series(2, 50) g").unwrap();
    let bad =
        Spi::get_one::<i64>("SELECT count(*) FROM worm.verify('t_basic') WHERE NOT ok").unwrap();
    assert_eq!(bad, Some(0));
    let rows = Spi::get_one::<i64>("SELECT sum(rows_checked)::bigint FROM worm.verify('t_basic')")
        .unwrap();
    assert_eq!(rows, Some(50));
}

#[pg_test(error = "table public.t_upd is protected by pg_worm: UPDATE is not allowed")]
fn update_is_refused() {
    Spi::run("CREATE TABLE t_upd (id int)").unwrap();
    Spi::run("SELECT worm.protect('t_upd')").unwrap();
    Spi::run("INSERT INTO t_upd VALUES (1)").unwrap();
    Spi::run("UPDATE t_upd SET id = 2").unwrap();
}

#[pg_test]
fn supplied_worm_values_are_overwritten() {
    Spi::run("CREATE TABLE t_forge (id int)").unwrap();
    Spi::run("SELECT worm.protect('t_forge', chains => 1)").unwrap();
    // An application role's values are replaced (a superuser's, or a
    // worm_restore member's, are checked instead: see the adopt tests).
    Spi::run("CREATE ROLE forge_app").unwrap();
    Spi::run("GRANT INSERT, SELECT ON t_forge TO forge_app").unwrap();
    Spi::run("SET ROLE forge_app").unwrap();
    Spi::run(
        "INSERT INTO t_forge (id, worm_chain, worm_seq, worm_inserted_at, worm_hash) \
         VALUES (1, 7, 99, '2000-01-01', '\\x00')",
    )
    .unwrap();
    Spi::run("RESET ROLE").unwrap();
    let (c, s) = Spi::get_two::<i32, i64>("SELECT worm_chain, worm_seq FROM t_forge").unwrap();
    assert_eq!((c, s), (Some(0), Some(1)));
    let len = Spi::get_one::<i32>("SELECT length(worm_hash) FROM t_forge").unwrap();
    assert_eq!(len, Some(32));
}

/// The link the trigger stored equals the one the pgrx-free core computes
/// from the same values, written down independently of PostgreSQL.
#[pg_test]
fn trigger_link_matches_core() {
    use pg_worm_core::{link, row_hash, Value, GENESIS};
    Spi::run("CREATE TABLE t_core (i int, t text, n numeric, ts timestamptz, a int[], e text)")
        .unwrap();
    Spi::run("SELECT worm.protect('t_core', chains => 1)").unwrap();
    Spi::run(
        "INSERT INTO t_core VALUES (42, 'héllo', 1.10, '2000-01-01 00:00:01+00', \
         '[0:1]={7,NULL}', NULL)",
    )
    .unwrap();
    let uid = Spi::get_one::<pgrx::Uuid>("SELECT table_uid FROM worm.tables")
        .unwrap()
        .unwrap();
    let at = Spi::get_one::<i64>(
        "SELECT ((extract(epoch FROM worm_inserted_at) - 946684800) * 1000000)::bigint FROM t_core",
    )
    .unwrap()
    .unwrap();
    let stored = Spi::get_one::<Vec<u8>>("SELECT worm_hash FROM t_core")
        .unwrap()
        .unwrap();
    // The trailing NULL column is not encoded.
    let values = [
        Value::Int(42),
        Value::Text("héllo".into()),
        Value::Numeric("1.10".into()),
        Value::TimestampTz(1_000_000),
        Value::Array {
            dims: vec![(0, 2)],
            elems: vec![Value::Int(7), Value::Null],
        },
    ];
    let expected = link(uid.as_bytes(), 0, 1, at, &GENESIS, &row_hash(&values));
    assert_eq!(stored, expected.to_vec());
}

/// A column added later without a default reads as NULL in older rows,
/// which keep verifying; newer rows cover the new column.
#[pg_test]
fn add_column_without_default_keeps_verifying() {
    Spi::run("CREATE TABLE t_evolve (id int, note text)").unwrap();
    Spi::run("SELECT worm.protect('t_evolve', chains => 2)").unwrap();
    Spi::run("INSERT INTO t_evolve SELECT g, 'n' FROM generate_series(1, 10) g").unwrap();
    Spi::run("ALTER TABLE t_evolve ADD COLUMN severity int").unwrap();
    Spi::run("INSERT INTO t_evolve SELECT g, 'n', g % 3 FROM generate_series(11, 20) g").unwrap();
    let (bad, rows) = Spi::get_two::<i64, i64>(
        "SELECT count(*) FILTER (WHERE NOT ok), sum(rows_checked)::bigint FROM worm.verify('t_evolve')",
    )
    .unwrap();
    assert_eq!((bad, rows), (Some(0), Some(20)));
}

/// Every internal statement runs under the pinned search_path, whatever the
/// caller's.
#[pg_test]
fn internal_sql_pins_search_path() {
    Spi::run("SET search_path = public, pg_temp").unwrap();
    Spi::run("SET TimeZone = 'America/Los_Angeles'").unwrap();
    assert_eq!(crate::sql::current_search_path(), "pg_catalog, pg_temp");
    // and the caller's settings are back afterwards
    let sp = Spi::get_one::<String>("SELECT current_setting('search_path')").unwrap();
    assert_eq!(sp.as_deref(), Some("public, pg_temp"));
    let tz = Spi::get_one::<String>("SELECT current_setting('TimeZone')").unwrap();
    assert_eq!(tz.as_deref(), Some("America/Los_Angeles"));
}

/// A caller's `-(timestamptz, interval)` operator and TimeZone do not move
/// the purge cut-off: rows inside their retention stay.
#[pg_test]
fn purge_cutoff_ignores_caller_operators() {
    Spi::run("CREATE SCHEMA evil").unwrap();
    Spi::run(
        "CREATE FUNCTION evil.minus(timestamptz, interval) RETURNS timestamptz \
         LANGUAGE sql AS $$ SELECT $1 + interval '100 years' $$",
    )
    .unwrap();
    Spi::run(
        "CREATE OPERATOR evil.- (LEFTARG = timestamptz, RIGHTARG = interval, FUNCTION = evil.minus)",
    )
    .unwrap();
    Spi::run("CREATE TABLE t_cut (id int)").unwrap();
    Spi::run("SELECT worm.protect('t_cut', retention => '6 years', chains => 1)").unwrap();
    Spi::run("INSERT INTO t_cut SELECT g FROM generate_series(1, 10) g").unwrap();
    Spi::run("SET search_path = evil, pg_catalog, public").unwrap();
    Spi::run("SET TimeZone = '<+99>-99'").unwrap();
    let removed = Spi::get_one::<i64>(
        "SELECT (worm.purge_expired('public.t_cut') ->> 'rows_removed')::bigint",
    )
    .unwrap();
    assert_eq!(removed, Some(0));
    let left = Spi::get_one::<i64>("SELECT count(*) FROM public.t_cut").unwrap();
    assert_eq!(left, Some(10));
}

/// Retention cannot be shortened through operators the caller defines.
#[pg_test(
    error = "retention of table public.t_ret can only be lengthened: P6Y is longer than PT1S"
)]
fn retention_compare_ignores_caller_operators() {
    Spi::run("CREATE SCHEMA evil2").unwrap();
    Spi::run(
        "CREATE FUNCTION evil2.ge(interval, interval) RETURNS boolean LANGUAGE sql AS $$ SELECT true $$",
    )
    .unwrap();
    Spi::run(
        "CREATE OPERATOR evil2.>= (LEFTARG = interval, RIGHTARG = interval, FUNCTION = evil2.ge)",
    )
    .unwrap();
    Spi::run("CREATE TABLE t_ret (id int)").unwrap();
    Spi::run("SELECT worm.protect('t_ret', retention => '6 years')").unwrap();
    Spi::run("SET search_path = evil2, pg_catalog, public").unwrap();
    Spi::run("SELECT worm.set_retention('public.t_ret', '1 second')").unwrap();
}

/// Renaming a column of a protected table is refused.
#[pg_test(
    error = "public.t_ren is protected by pg_worm; refused: renaming column \"a\" (rows are hashed by column position: renaming would change what every stored row says)"
)]
fn rename_column_is_refused() {
    Spi::run("CREATE TABLE t_ren (a text, b text)").unwrap();
    Spi::run("SELECT worm.protect('t_ren')").unwrap();
    Spi::run("ALTER TABLE t_ren RENAME COLUMN a TO c").unwrap();
}

/// With `worm` first on the search_path, ALTER FUNCTION of a function in
/// another schema is not pg_worm's business.
#[pg_test]
fn alter_function_elsewhere_is_allowed_with_worm_on_path() {
    Spi::run("CREATE FUNCTION public.f_elsewhere() RETURNS int LANGUAGE sql AS 'SELECT 1'")
        .unwrap();
    Spi::run("SET search_path = worm, public").unwrap();
    Spi::run("ALTER FUNCTION f_elsewhere() IMMUTABLE").unwrap();
    Spi::run("ALTER FUNCTION f_elsewhere() RENAME TO f_elsewhere2").unwrap();
    let n = Spi::get_one::<i64>(
        "SELECT count(*) FROM pg_proc WHERE proname = 'f_elsewhere2' AND provolatile = 'i'",
    )
    .unwrap();
    assert_eq!(n, Some(1));
}
