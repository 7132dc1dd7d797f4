//! pg_worm: write-once-read-many, tamper-evident tables for PostgreSQL.
//!
//! Everything that decides whether data is intact, and every document an
//! auditor keeps, lives in the pgrx-free crate `pg_worm_core` (shared with
//! `worm-verify`). This crate is the PostgreSQL shell, by question:
//!
//! | question | where |
//! |---|---|
//! | how is a row chained on insert? | `insert/`: `triggers` → `chain` (which chain, its head) → `encode` (row hash) |
//! | what is refused, and where? | `guard/`: one file per kind of statement, and `hooks` (preloaded hooks, event triggers) |
//! | how does verification work? | `verify/`: the scan and report, `columns` (the column record), `checkpoint` (digests, proofs) |
//! | retention and purge? | `retention.rs` (holds, purge, certificates, the records of a retirement) |
//! | which row changes are refused? | `refuse.rs` (the UPDATE/DELETE/TRUNCATE triggers; a purge's deletes; a subscriber's replicated purge) |
//! | the end of a table's life? | `retire.rs` (worm.retire; DROP TABLE retires through `guard`) |
//! | time-stamps of checkpoints? | `timestamp.rs` (worm.attach_timestamp: a TSA's token recorded in the ledger; calls `catalog`) |
//! | pg_worm's own tables? | `catalog/`: `meta` (registry, anchors, role switches), `ledger` |
//! | making a table protected? | `protect.rs`, and `adopt.rs` (a table restored or replicated with its links) |
//! | partitioned tables? | `protect/partition.rs` (protect a parent; protect new partitions at ddl_command_end; attach/detach records) |
//! | watching? | `watch/`: stored results, alerts, worm.status's helpers; `worker` (the background watcher) |
//! | the storage layer? | `am/`: `worm_heap`, the access method of protected tables (refuses UPDATE/DELETE/TRUNCATE below the triggers); `am/prototype.rs`: phase 1's chaining prototype (docs/tam-prototype.md), calls `insert` |
//! | foundations | `sql.rs` (the one door for internal SQL), `pg.rs` (PostgreSQL helpers), `names.rs`, `mode.rs`, `error.rs` |
//!
//! Who may call whom: foundations call no other part of the crate (but
//! `mode` → `error`); `catalog` calls only foundations; `insert` calls
//! `catalog`; `verify` calls `insert` (row hashing) and `catalog`;
//! `retention` calls `verify` and `catalog`; `refuse` calls `insert` and
//! `retention`; `guard` calls `insert`, `verify` (the column record),
//! `retention` (a purge's plan, retiring on DROP TABLE) and `catalog`;
//! `protect`, `adopt` and `retire` call any of those; `watch` calls
//! `catalog` and `insert`, and is called by `verify` (results) and `guard`
//! (the retention DELETE of its results).
//! No cycle: `scripts/check_module_cycles.py` (lint layer) checks it.

#![deny(unsafe_op_in_unsafe_fn)]

use pgrx::prelude::*;

mod adopt;
mod am;
mod catalog;
mod error;
mod guard;
mod insert;
mod mode;
mod names;
mod pg;
mod protect;
mod refuse;
mod retention;
mod retire;
mod sql;
mod timestamp;
mod verify;
mod watch;

::pgrx::pg_module_magic!(name, version);

extension_sql_file!("../sql/schema.sql", name = "schema", bootstrap);
extension_sql_file!("../sql/views.sql", name = "views", finalize);

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    no_backtraces_for_clients();
    insert::encode::register_callbacks();
    insert::chain::register_callbacks();
    guard::hooks::init();
    verify::init_gucs();
    watch::worker::init_gucs();
    watch::worker::register();
}

/// pgrx's panic hook captures a Rust backtrace for every error raised
/// through it and appends it to the error's DETAIL whenever capturing is
/// enabled, which the server's environment decides (`RUST_BACKTRACE=1`).
/// Clients must never see one, whatever that environment. The standard
/// library reads those variables once, at the first capture, and keeps the
/// answer for the rest of the process (this library's copy of std only), so
/// the first capture happens here with capturing switched off; the
/// environment is then put back as it was, for every other program. A
/// backend (and the postmaster that preloads) runs one thread.
fn no_backtraces_for_clients() {
    const VAR: &str = "RUST_LIB_BACKTRACE";
    let saved = std::env::var_os(VAR);
    std::env::set_var(VAR, "0");
    let _ = std::backtrace::Backtrace::capture();
    match saved {
        Some(v) => std::env::set_var(VAR, v),
        None => std::env::remove_var(VAR),
    }
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
