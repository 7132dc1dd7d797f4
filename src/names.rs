//! The names pg_worm gives things, each in one place: the schema, the
//! columns it adds to a protected table, its triggers, its own tables and its
//! event triggers. Tests and documents outside the crate use the same names.

/// pg_worm's schema.
pub const SCHEMA: &str = "worm";

/// The columns pg_worm adds to a protected table (docs/design.md: fixed names).
pub const COL_CHAIN: &str = "worm_chain";
pub const COL_SEQ: &str = "worm_seq";
pub const COL_INSERTED_AT: &str = "worm_inserted_at";
pub const COL_HASH: &str = "worm_hash";

/// The table access method of protected tables (src/am/, sql/views.sql).
pub const AM_NAME: &str = "worm_heap";
/// No user column may carry this prefix.
pub const RESERVED_PREFIX: &str = "worm_";

/// The BEFORE INSERT row trigger that chains rows. BEFORE row triggers fire
/// in name order: this one sorts last among the usual names.
pub const TRIGGER_CHAIN: &str = "zz_worm_chain";
/// The statement trigger refusing UPDATE, DELETE and TRUNCATE.
pub const TRIGGER_REFUSE: &str = "worm_refuse_change";
/// The row trigger refusing UPDATE and DELETE reached through a parent.
pub const TRIGGER_REFUSE_ROW: &str = "worm_refuse_row_change";
/// pg_worm's triggers on a protected table.
pub const OUR_TRIGGERS: [&str; 3] = [TRIGGER_CHAIN, TRIGGER_REFUSE, TRIGGER_REFUSE_ROW];

/// pg_worm's own tables, in schema worm.
pub const EXT_TABLES: [&str; 8] = [
    "tables",
    "anchors",
    "ledger",
    "trusted_keys",
    "legal_holds",
    "partitioned_tables",
    "merkle_tiles",
    "verification_log",
];
/// pg_worm's event triggers (the enforcement that works without preloading).
pub const EVENT_TRIGGERS: [&str; 3] = ["worm_guard_ddl", "worm_guard_drop", "worm_guard_ddl_end"];
