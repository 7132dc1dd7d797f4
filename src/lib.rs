//! pg_worm: write-once-read-many, tamper-evident tables for PostgreSQL.
//!
//! Everything that decides whether data is intact, and every document an
//! auditor keeps, lives in the pgrx-free crate `pg_worm_core` (shared with
//! `worm-verify`). This crate is the PostgreSQL shell, by question:
//!
//! | question | modules |
//! |---|---|
//! | how is a row chained on insert? | `triggers` → `chain` (which chain, its head) → `encode` (row hash) |
//! | what is refused, and where? | `guard/` (one file per kind of statement), called by `hooks` (preloaded hooks, event triggers) |
//! | how does verification work? | `verify`, `columns` (the column record), `checkpoint` (digests, proofs) |
//! | retention and purge? | `retention` (holds, purge, certificates) |
//! | pg_worm's own tables? | `meta` (registry, anchors, role switches), `ledger` |
//! | making a table protected? | `protect` |
//! | foundations | `sql` (the one door for internal SQL), `pg` (PostgreSQL helpers), `names`, `mode`, `error` |
//!
//! Who may call whom: foundations call no other module of the crate
//! (`encode`, `meta` only foundations); `chain` calls `encode` and `meta`;
//! `triggers` calls `chain`; `ledger` calls `meta`; `guard` calls `ledger`,
//! `columns`, `encode`, `meta`; `hooks` calls `guard` and `triggers`;
//! `verify` calls `chain`, `columns`, `encode`, `meta`; `checkpoint` and
//! `retention` call `verify` and `ledger`; `protect` calls anything below it.
//! No cycle: `scripts/check_module_cycles.py` (lint layer) checks it.

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
mod mode;
mod names;
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
