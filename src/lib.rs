//! pg_worm: write-once-read-many, tamper-evident tables for PostgreSQL.
//!
//! The canonical encoding, chain links and chain verification live in the
//! pgrx-free crate `pg_worm_core`; this crate is the thin PostgreSQL shell,
//! one module per concern.

#![deny(unsafe_op_in_unsafe_fn)]

use pgrx::prelude::*;

mod chain;
mod checkpoint;
mod columns;
mod encode;
mod error;
mod guard;
mod hooks;
mod ledger;
mod meta;
mod pg;
mod protect;
mod retention;
mod sql;
mod triggers;
mod verify;

::pgrx::pg_module_magic!(name, version);

extension_sql_file!("../sql/schema.sql", name = "schema", bootstrap);
extension_sql_file!("../sql/views.sql", name = "views", finalize);

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    encode::register_callbacks();
    chain::register_callbacks();
    hooks::init();
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    include!("tests.rs");
}

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
