//! pg_worm: write-once-read-many, tamper-evident tables for PostgreSQL.
//!
//! The canonical encoding, chain links and chain verification live in the
//! pgrx-free crate `pg_worm_core`; this crate is the thin PostgreSQL shell,
//! one module per concern.

use pgrx::prelude::*;

mod chain;
mod encode;
mod error;
mod meta;
mod protect;
mod triggers;
mod verify;

::pgrx::pg_module_magic!(name, version);

extension_sql_file!("../sql/schema.sql", name = "schema", bootstrap);
extension_sql_file!("../sql/views.sql", name = "views", finalize);

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    encode::register_callbacks();
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    #[pg_test]
    fn protect_then_insert_then_verify() {
        Spi::run("CREATE TABLE t_basic (id int, note text)").unwrap();
        Spi::run("INSERT INTO t_basic VALUES (1, 'before')").unwrap();
        let msg = Spi::get_one::<String>("SELECT worm.protect('t_basic', chains => 4)").unwrap();
        assert_eq!(
            msg.as_deref(),
            Some("protected public.t_basic: 4 chains, 1 existing rows chained, rows are kept for ever")
        );
        Spi::run("INSERT INTO t_basic SELECT g, 'row ' || g FROM generate_series(2, 50) g").unwrap();
        let bad = Spi::get_one::<i64>("SELECT count(*) FROM worm.verify('t_basic') WHERE NOT ok").unwrap();
        assert_eq!(bad, Some(0));
        let rows = Spi::get_one::<i64>("SELECT sum(rows_checked)::bigint FROM worm.verify('t_basic')").unwrap();
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
        Spi::run(
            "INSERT INTO t_forge (id, worm_chain, worm_seq, worm_inserted_at, worm_hash) \
             VALUES (1, 7, 99, '2000-01-01', '\\x00')",
        )
        .unwrap();
        let (c, s) = Spi::get_two::<i32, i64>("SELECT worm_chain, worm_seq FROM t_forge").unwrap();
        assert_eq!((c, s), (Some(0), Some(1)));
        let len = Spi::get_one::<i32>("SELECT length(worm_hash) FROM t_forge").unwrap();
        assert_eq!(len, Some(32));
    }
}

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
