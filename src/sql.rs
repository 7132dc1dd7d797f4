//! The one door for SQL that pg_worm runs for itself.
//!
//! Every statement goes through [`pinned`]: for its duration the session's
//! `search_path` is `pg_catalog, pg_temp` (pg_temp last, so a caller's
//! temporary types, domains or relations never resolve before the catalog's,
//! and functions and operators are never looked up there), and TimeZone,
//! DateStyle and IntervalStyle are fixed, so no object or setting the caller
//! controls can change what an internal statement means. The statements are
//! also written with qualified names and `OPERATOR(pg_catalog.x)`; time
//! decisions are made in Rust (see `pg_worm_core::period`).
//!
//! The functions below mirror `pgrx::spi::Spi` and are the only place in the
//! extension that calls it (the lint layer of `scripts/test.sh` checks this).

use pgrx::datum::{DatumWithOid, FromDatum, IntoDatum};
use pgrx::pg_sys;
use pgrx::spi::{Spi, SpiClient, SpiResult};
use std::ffi::CString;

/// The settings every internal statement runs under.
pub const PINNED: [(&str, &str); 4] = [
    ("search_path", "pg_catalog, pg_temp"),
    ("TimeZone", "UTC"),
    ("DateStyle", "ISO, MDY"),
    ("IntervalStyle", "postgres"),
];

/// Runs `f` with [`PINNED`] in force; the caller's settings come back after
/// it, on success and on error alike.
pub fn pinned<R>(f: impl FnOnce() -> R) -> R {
    // SAFETY: NewGUCNestLevel only bumps a counter; the matching AtEOXact_GUC
    // below (or the (sub)transaction abort) pops the level again.
    let level = unsafe { pg_sys::NewGUCNestLevel() };
    for (name, value) in PINNED {
        let (Ok(n), Ok(v)) = (CString::new(name), CString::new(value)) else {
            continue;
        };
        // SAFETY: both strings are NUL-terminated and outlive the call;
        // GUC_ACTION_SAVE makes the value local to `level`, like a
        // function's SET clause.
        unsafe {
            pg_sys::set_config_option(
                n.as_ptr(),
                v.as_ptr(),
                pg_sys::GucContext::PGC_USERSET,
                pg_sys::GucSource::PGC_S_SESSION,
                pg_sys::GucAction::GUC_ACTION_SAVE,
                true,
                pgrx::PgLogLevel::ERROR as i32,
                false,
            );
        }
    }
    pgrx::PgTryBuilder::new(std::panic::AssertUnwindSafe(f))
        // SAFETY: pops exactly the level pushed above.
        .finally(|| unsafe { pg_sys::AtEOXact_GUC(true, level) })
        .execute()
}

/// The search_path in force now (used by tests of the discipline).
#[cfg(any(test, feature = "pg_test"))]
pub fn current_search_path() -> String {
    pinned(|| Spi::get_one::<String>("SELECT pg_catalog.current_setting('search_path')"))
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// The non-NULL values of a query's first column (read-only SPI: no
/// transaction id).
pub fn column<A: FromDatum + IntoDatum>(
    query: &str,
    args: &[DatumWithOid<'_>],
) -> SpiResult<Vec<A>> {
    connect(|client| {
        let mut out = Vec::new();
        for r in client.select(query, None, args)? {
            if let Some(v) = r.get::<A>(1)? {
                out.push(v);
            }
        }
        Ok(out)
    })
}

pub fn connect<R, F>(f: F) -> R
where
    F: FnOnce(&SpiClient<'_>) -> R,
{
    pinned(|| Spi::connect(f))
}

pub fn connect_mut<R, F>(f: F) -> R
where
    F: FnOnce(&mut SpiClient<'_>) -> R,
{
    pinned(|| Spi::connect_mut(f))
}

// The single-value readers run read-only (pgrx's Spi::get_one* run as
// updates, which assign a transaction id: refused on a standby). Every
// caller passes a SELECT; reads see what this transaction wrote before
// (each read-write SPI command advances the active snapshot's command id).

/// The first column of the first row of a SELECT.
pub fn get_one<A: FromDatum + IntoDatum>(query: &str) -> SpiResult<Option<A>> {
    get_one_with_args(query, &[])
}

/// The first column of the first row of a SELECT with bound parameters.
pub fn get_one_with_args<A: FromDatum + IntoDatum>(
    query: &str,
    args: &[DatumWithOid<'_>],
) -> SpiResult<Option<A>> {
    connect(|client| client.select(query, Some(1), args)?.first().get_one())
}

/// The first two columns of the first row of a SELECT.
pub fn get_two<A: FromDatum + IntoDatum, B: FromDatum + IntoDatum>(
    query: &str,
) -> SpiResult<(Option<A>, Option<B>)> {
    connect(|client| {
        client
            .select(query, Some(1), &[])?
            .first()
            .get_two::<A, B>()
    })
}

pub fn run(query: &str) -> SpiResult<()> {
    pinned(|| Spi::run(query))
}

pub fn run_with_args(query: &str, args: &[DatumWithOid<'_>]) -> SpiResult<()> {
    pinned(|| Spi::run_with_args(query, args))
}
