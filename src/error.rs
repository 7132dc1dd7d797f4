//! One error type for every refusal and failure pg_worm reports.
//!
//! Each variant maps to a real SQLSTATE, a message that names the table, and a
//! HINT that tells the user what to do instead. Trigger functions never return
//! `Err` (pgrx would turn that into XX000 with a backtrace): they call
//! [`WormError::raise`], which reports through `ereport(ERROR)`.

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{PgLogLevel, PgSqlErrorCode};

const PURGE_HINT: &str = "Rows of a pg_worm table are never changed or removed by SQL. \
Rows whose retention has ended leave only through worm.purge_expired(table), which issues a deletion certificate.";

#[derive(Debug, thiserror::Error)]
pub enum WormError {
    #[error("table {table} is protected by pg_worm: {operation} is not allowed")]
    Immutable {
        table: String,
        operation: &'static str,
    },

    #[error("{target} is protected by pg_worm; refused: {what}")]
    Protected { target: String, what: String },

    /// A refusal about a partition of a protected partitioned table, with
    /// its own advice.
    #[error("{target} is protected by pg_worm; refused: {what}")]
    PartitionRefused {
        target: String,
        what: String,
        hint: String,
    },

    #[error("{table} was restored without pg_worm's record of it: its chain trigger is refused")]
    RestoredAlone {
        table: String,
        uid: String,
        chains: String,
    },

    #[error("the anchors given to adopt {table} are not usable: {why}")]
    BadAnchors { table: String, why: String },

    #[error("{table} cannot be adopted as pg_worm table {uid}: another table is registered under that identity")]
    IdentityInUse { table: String, uid: String },

    #[error(
        "{table} cannot be adopted: its rows do not verify under the given identity and chains"
    )]
    AdoptRefused { table: String, problems: String },

    #[error(
        "a row arriving in {table} with its worm_ values does not extend chain {chain}: {why}"
    )]
    DoesNotExtend {
        table: String,
        chain: i32,
        why: String,
    },

    #[error("{table} belongs to pg_worm: {operation} is not allowed")]
    ExtensionTable {
        table: String,
        operation: &'static str,
    },

    #[error("table {table} is under legal hold since {since}: {reason}")]
    OnHold {
        table: String,
        reason: String,
        since: String,
    },

    #[error("table {table} is not under legal hold")]
    NotOnHold { table: String },

    #[error("pg_worm's catalog in this database is version {installed}, its library is {library}")]
    CatalogOutdated { installed: String, library: String },

    #[error("database {database} is protected by pg_worm; refused: DROP DATABASE while it holds protected tables")]
    DropDatabase { database: String },

    #[error("table {table} cannot be retired: {kept} of its rows have not passed their retention")]
    NotExpired { table: String, kept: i64 },

    #[error("table {table} fails verification; retiring it would destroy the evidence")]
    RetireRefusedDamaged { table: String, problems: String },

    #[error("table {table} has no legal hold {hold_id} in force")]
    NoSuchHold { table: String, hold_id: i64 },

    #[error("table {table} is under several legal holds (hold_id {ids}): name the one to release")]
    SeveralHolds { table: String, ids: String },

    #[error("table {table} has no retention period: its rows are kept for ever")]
    NoRetention { table: String },

    #[error("retention of table {table} can only be lengthened: {old} is longer than {new}")]
    RetentionShortened {
        table: String,
        old: String,
        new: String,
    },

    #[error("retention of table {table} cannot be removed or set to NULL")]
    RetentionRemoved { table: String },

    #[error("{what} must not be empty")]
    EmptyReason { what: &'static str },

    #[error("table {table} failed verification; nothing was purged")]
    PurgeRefusedDamaged { table: String, problems: String },

    #[error("table {table} failed verification; no checkpoint was taken")]
    CheckpointRefusedDamaged { table: String, problems: String },

    #[error("the digest cannot be used: {why}")]
    BadDigest { why: String },

    #[error("the time-stamp cannot be attached to the checkpoint of {table}: {why}")]
    BadTimestamp { table: String, why: String },

    #[error("the public key is not 32 bytes of hex forming an Ed25519 key")]
    BadKey,

    #[error("table {table} has no checkpoint yet")]
    NoCheckpoint { table: String },

    #[error("table {table} no longer matches its latest checkpoint (ledger entry {ledger_seq})")]
    CheckpointStale { table: String, ledger_seq: i64 },

    #[error("row {seq} of chain {chain} of table {table} is not covered by its latest checkpoint (ledger entry {ledger_seq})")]
    NotInCheckpoint {
        table: String,
        chain: i32,
        seq: i64,
        ledger_seq: i64,
    },

    #[error("must be owner of table {table} to {action}")]
    NotOwnerFor { table: String, action: &'static str },

    #[error("\"{name}\" is not an ordinary table ({kind})")]
    NotATable { name: String, kind: &'static str },

    #[error("table {table} is {persistence}; pg_worm protects only permanent (logged) tables")]
    NotPermanent {
        table: String,
        persistence: &'static str,
    },

    #[error("table {table} is already protected by pg_worm")]
    AlreadyProtected { table: String },

    #[error("table {table} is not protected by pg_worm")]
    NotProtected { table: String },

    #[error("must be owner of table {table} to protect it")]
    NotOwner { table: String },

    #[error("permission denied to verify table {table}")]
    NoSelect { table: String },

    #[error(
        "column \"{column}\" of table {table} has type {type_name}, which pg_worm cannot hash"
    )]
    UnsupportedType {
        table: String,
        column: String,
        type_name: String,
    },

    #[error("column \"{column}\" of table {table} uses the prefix worm_, which pg_worm reserves")]
    ReservedColumn { table: String, column: String },

    #[error("chains must be between 1 and {max}, not {given}")]
    InvalidChains { given: i32, max: i32 },

    #[error("retention must be a positive interval, not {given}")]
    InvalidRetention { given: String },

    #[error("table {table} has trigger \"{trigger}\", which would {what}")]
    ConflictingTrigger {
        table: String,
        trigger: String,
        what: &'static str,
    },

    #[error("table {table} has rewrite rules; pg_worm cannot protect a table whose statements are rewritten")]
    HasRules { table: String },

    #[error("protection of table {table} is damaged: {what}")]
    Damaged { table: String, what: String },

    #[error("pg_worm trigger function {function} was called {how}")]
    TriggerMisuse { function: &'static str, how: String },

    #[error("the retention or legal holds of table {table} changed after this transaction's snapshot was taken")]
    PolicyChanged { table: String },

    #[error("table {table} has {what}; pg_worm cannot protect it")]
    Unprotectable { table: String, what: String },

    #[error(
        "table {table} is a partition of {parent}; pg_worm protects a partitioned table as a whole"
    )]
    IsPartition { table: String, parent: String },

    #[error("{table} is a partitioned table: its holds are numbered per partition")]
    HoldOnParent { table: String },

    #[error("partition {partition} of {parent} {what}; pg_worm cannot protect {parent}")]
    PartitionUnprotectable {
        partition: String,
        parent: String,
        what: String,
        hint: String,
    },

    #[error("{function} cannot run on a standby: it writes pg_worm's ledger or tables")]
    OnStandby { function: &'static str },

    #[error("pg_worm internal error: {0}")]
    Internal(String),
}

impl WormError {
    pub fn sqlstate(&self) -> PgSqlErrorCode {
        use PgSqlErrorCode::*;
        match self {
            WormError::Immutable { .. }
            | WormError::DropDatabase { .. }
            | WormError::ExtensionTable { .. }
            | WormError::Protected { .. }
            | WormError::PartitionRefused { .. } => ERRCODE_INSUFFICIENT_PRIVILEGE,
            WormError::OnHold { .. }
            | WormError::NotOnHold { .. }
            | WormError::NoSuchHold { .. }
            | WormError::NotExpired { .. }
            | WormError::SeveralHolds { .. }
            | WormError::HoldOnParent { .. }
            | WormError::NoRetention { .. } => ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            WormError::RetentionShortened { .. } | WormError::RetentionRemoved { .. } => {
                ERRCODE_INVALID_PARAMETER_VALUE
            }
            WormError::EmptyReason { .. } => ERRCODE_INVALID_PARAMETER_VALUE,
            WormError::PurgeRefusedDamaged { .. }
            | WormError::RetireRefusedDamaged { .. }
            | WormError::CheckpointRefusedDamaged { .. }
            | WormError::CheckpointStale { .. } => ERRCODE_DATA_CORRUPTED,
            WormError::BadDigest { .. } | WormError::BadKey => ERRCODE_INVALID_PARAMETER_VALUE,
            WormError::BadTimestamp { .. } => ERRCODE_INVALID_PARAMETER_VALUE,
            WormError::NoCheckpoint { .. } | WormError::NotInCheckpoint { .. } => {
                ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE
            }
            WormError::NotOwnerFor { .. } => ERRCODE_INSUFFICIENT_PRIVILEGE,
            WormError::NotATable { .. } | WormError::IsPartition { .. } => {
                ERRCODE_WRONG_OBJECT_TYPE
            }
            WormError::NotPermanent { .. } => ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            WormError::AlreadyProtected { .. } => ERRCODE_DUPLICATE_OBJECT,
            WormError::NotProtected { .. } => ERRCODE_UNDEFINED_OBJECT,
            WormError::NotOwner { .. } | WormError::NoSelect { .. } => {
                ERRCODE_INSUFFICIENT_PRIVILEGE
            }
            WormError::UnsupportedType { .. } => ERRCODE_FEATURE_NOT_SUPPORTED,
            WormError::ReservedColumn { .. } => ERRCODE_DUPLICATE_COLUMN,
            WormError::InvalidChains { .. } | WormError::InvalidRetention { .. } => {
                ERRCODE_INVALID_PARAMETER_VALUE
            }
            WormError::ConflictingTrigger { .. } | WormError::HasRules { .. } => {
                ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE
            }
            WormError::Damaged { .. } => ERRCODE_DATA_CORRUPTED,
            WormError::DoesNotExtend { .. } => ERRCODE_CHECK_VIOLATION,
            WormError::CatalogOutdated { .. } => ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            WormError::IdentityInUse { .. } => ERRCODE_DUPLICATE_OBJECT,
            WormError::BadAnchors { .. } => ERRCODE_INVALID_PARAMETER_VALUE,
            WormError::RestoredAlone { .. } => ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            WormError::AdoptRefused { .. } => ERRCODE_DATA_CORRUPTED,
            WormError::TriggerMisuse { .. } => ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED,
            WormError::PolicyChanged { .. } => ERRCODE_T_R_SERIALIZATION_FAILURE,
            WormError::Unprotectable { .. } | WormError::PartitionUnprotectable { .. } => {
                ERRCODE_FEATURE_NOT_SUPPORTED
            }
            WormError::OnStandby { .. } => ERRCODE_READ_ONLY_SQL_TRANSACTION,
            WormError::Internal(_) => ERRCODE_INTERNAL_ERROR,
        }
    }

    pub fn hint(&self) -> Option<String> {
        Some(match self {
            WormError::Immutable { .. } => PURGE_HINT.to_string(),
            WormError::RestoredAlone { table, uid, chains } => format!(
                "The table holds rows chained by pg_worm, but worm.tables does not list it (a restore of the table alone, e.g. pg_restore -t). Restore the whole database, or protect it again with its identity and links: SELECT worm.adopt('{}', '{}', {});",
                table.replace('\'', "''"), uid.replace('\'', "''"), chains.parse::<i32>().map_or("chains".into(), |c| c.to_string())
            ),
            WormError::BadAnchors { .. } => "Pass the source's anchors as they are: SELECT jsonb_agg(a) FROM worm.anchors AS a WHERE table_uid = '<table_uid>'; run on the source.".into(),
            WormError::IdentityInUse { .. } => "A table keeps its identity in one place: adopt a copy of it in another database (a restore, a subscriber), or protect this table as a new one with worm.protect after removing its worm_ columns.".into(),
            WormError::AdoptRefused { .. } => "Check the identity (table_uid) and chains in the source's worm.protected_tables. A chain that starts after a purge needs the source's worm.anchors rows: restore the whole database (pg_worm's tables with it), or pass them as adopt's anchors argument (SELECT jsonb_agg(a) FROM worm.anchors AS a WHERE table_uid = '<table_uid>'; on the source).".into(),
            WormError::DoesNotExtend { .. } => "Rows that carry their worm_ values (a data-only restore, a logical-replication subscriber: superusers and worm_restore members) are kept only when each extends its chain exactly, in each chain's order, after pg_worm's own tables (worm.tables, worm.anchors) are restored. Load them into a staging table and INSERT ... SELECT ... ORDER BY worm_chain, worm_seq, or leave the worm_ columns out to store them as new rows.".into(),
            WormError::Protected { .. } => {
                "Protection is permanent. Still allowed: INSERT, SELECT, CREATE INDEX, ANALYZE, VACUUM, CLUSTER, ALTER TABLE ... RENAME TO / SET SCHEMA / SET TABLESPACE / ADD COLUMN without a default, GRANT and REVOKE.".into()
            }
            WormError::ExtensionTable { .. } => {
                "pg_worm's own tables change only through its functions (worm.protect, worm.set_retention, worm.legal_hold, worm.release_hold, worm.purge_expired).".into()
            }
            WormError::OnHold { table, .. } => format!(
                "No row leaves a table under legal hold. When a hold ends, release it: SELECT worm.release_hold('{table}', hold_id, 'reason'); (worm.holds lists them)."
            ),
            WormError::CatalogOutdated { library, .. } => format!(
                "Run ALTER EXTENSION pg_worm UPDATE TO '{library}'; in this database (inserts into protected tables and their refusals work meanwhile)."
            ),
            WormError::DropDatabase { .. } => "Its records are kept for their retention period. In that database, retire each protected table once its retention has ended (SELECT worm.retire(table);); when none remains, DROP DATABASE goes through. SHOW worm.protected_database there says on while any remains.".into(),
            WormError::NotExpired { table, .. } => format!(
                "A table goes only once every row has passed its retention; until then run SELECT worm.purge_expired('{table}'); to remove the rows that have."
            ),
            WormError::RetireRefusedDamaged { .. } => "Investigate with worm.verify(table); the table is kept as it is.".into(),
            WormError::NotOnHold { .. } | WormError::NoSuchHold { .. } => {
                "worm.holds lists the holds in force, with their hold_id.".into()
            }
            WormError::SeveralHolds { table, .. } => format!(
                "SELECT worm.release_hold('{table}', hold_id, 'reason'); worm.holds lists them."
            ),
            WormError::NoRetention { table } => format!(
                "Give it a retention period first: SELECT worm.set_retention('{table}', '6 years');"
            ),
            WormError::RetentionShortened { .. } | WormError::RetentionRemoved { .. } => {
                "A retention period can only be lengthened, so that no row leaves earlier than promised when it was written.".into()
            }
            WormError::CheckpointRefusedDamaged { table, .. } => format!(
                "Investigate with SELECT * FROM worm.verify('{table}'); a checkpoint certifies only an intact table."
            ),
            WormError::BadDigest { .. } => {
                "Pass the JSON exactly as worm.checkpoint returned it (and, when keys are trusted, signed with worm-verify sign).".into()
            }
            WormError::BadKey => {
                "Give the public key worm-verify keygen printed (64 hex digits).".into()
            }
            WormError::BadTimestamp { .. } => {
                "Pass the digest exactly as worm.checkpoint returned it and the time-stamp worm-verify timestamp wrote for that digest (DIGEST.tsr); worm-verify timestamp DIGEST --tsa-cert ROOT.pem checks it.".into()
            }
            WormError::NoCheckpoint { table } => format!("Take one first: SELECT worm.checkpoint('{table}');"),
            WormError::CheckpointStale { table, .. } => format!(
                "Verify the table against the digest you kept: SELECT * FROM worm.verify('{table}', digest);"
            ),
            WormError::NotInCheckpoint { table, .. } => format!(
                "Rows inserted after the checkpoint need a new one: SELECT worm.checkpoint('{table}');"
            ),
            WormError::EmptyReason { .. } => "Say why, for the record (it goes into the ledger).".into(),
            WormError::PurgeRefusedDamaged { table, .. } => format!(
                "Investigate with SELECT * FROM worm.verify('{table}'); before purging: a purge would destroy the evidence."
            ),
            WormError::NotOwnerFor { .. } => {
                "Ask the table's owner (or a member of its owning role, or of worm_admin).".into()
            }
            WormError::NotATable { .. } => {
                "Protect the table itself; views, foreign, partitioned and other relations cannot be protected.".into()
            }
            WormError::NotPermanent { .. } => {
                "Create the table without TEMPORARY or UNLOGGED, or run ALTER TABLE ... SET LOGGED first.".into()
            }
            WormError::AlreadyProtected { table } => format!(
                "Protection is permanent. See SELECT * FROM worm.protected_tables WHERE table_name = '{table}'::regclass;"
            ),
            WormError::NotProtected { .. } => "Protect it first with worm.protect(table).".into(),
            WormError::NotOwner { .. } => {
                "Ask the table's owner (or a member of its owning role, or of worm_admin) to run worm.protect.".into()
            }
            WormError::NoSelect { .. } => {
                "Verification needs SELECT on the table or membership in worm_auditor.".into()
            }
            WormError::UnsupportedType { .. } => {
                "Supported: integers, numeric, float, bool, text/varchar/char, bytea, date/time types, interval, uuid, json, jsonb, inet, cidr, enums, domains and arrays of these. Change the column's type before protecting.".into()
            }
            WormError::ReservedColumn { .. } => "Rename the column before protecting the table.".into(),
            WormError::InvalidChains { .. } => {
                "Use about as many chains as concurrent writers; the default is 32.".into()
            }
            WormError::InvalidRetention { .. } => {
                "Give an interval such as '6 years', or NULL to keep rows for ever.".into()
            }
            WormError::ConflictingTrigger { .. } => {
                "Drop or disable that trigger before protecting the table.".into()
            }
            WormError::HasRules { .. } => "Drop the rules before protecting the table.".into(),
            WormError::Damaged { table, .. } => {
                format!("Run SELECT * FROM worm.verify('{table}'); and investigate before writing more rows.")
            }
            WormError::TriggerMisuse { .. } => {
                "pg_worm's trigger functions are attached by worm.protect only.".into()
            }
            WormError::PolicyChanged { .. } => "Run it again in a new transaction: it will see the current holds and retention.".into(),
            WormError::Unprotectable { what, .. } => {
                if what.starts_with("row-level security") {
                    "Disable row-level security first (ALTER TABLE ... DISABLE ROW LEVEL SECURITY, NO FORCE ROW LEVEL SECURITY): its policies could hide rows from readers and verifiers.".into()
                } else if what.starts_with("inheritance children") {
                    "Detach the children first (ALTER TABLE child NO INHERIT parent), or protect each table on its own.".into()
                } else if what.starts_with("columns taken from a composite type") {
                    "Run ALTER TABLE ... NOT OF first.".into()
                } else {
                    "Recreate the column as an ordinary one (the application or a trigger named before zz_worm_chain can compute its value), then protect the table.".into()
                }
            }
            WormError::IsPartition { parent, .. } => format!(
                "Protect the partitioned table: SELECT worm.protect('{parent}'); every partition it has, and every one it gets later, is then protected."
            ),
            WormError::PartitionUnprotectable { hint, .. }
            | WormError::PartitionRefused { hint, .. } => hint.clone(),
            WormError::HoldOnParent { table } => format!(
                "Release a partition's hold with worm.release_hold(partition, hold_id, reason) (SELECT * FROM worm.holds lists them), or the single hold of every partition with worm.release_hold('{table}', reason)."
            ),
            WormError::OnStandby { .. } => "Run it on the primary. On a standby, worm.verify, worm.verify_all and worm.verify(tbl, against) work (they write nothing).".into(),
            WormError::Internal(_) => return None,
        })
    }

    pub fn detail(&self) -> Option<String> {
        match self {
            WormError::PurgeRefusedDamaged { problems, .. }
            | WormError::CheckpointRefusedDamaged { problems, .. }
            | WormError::RetireRefusedDamaged { problems, .. }
            | WormError::AdoptRefused { problems, .. } => Some(problems.clone()),
            _ => None,
        }
    }

    /// Reports the error with `ereport(ERROR)`; never returns.
    pub fn raise(self) -> ! {
        let report: ErrorReport = self.into();
        report.report(PgLogLevel::ERROR);
        unreachable!("ereport(ERROR) returned")
    }
}

impl From<WormError> for ErrorReport {
    fn from(e: WormError) -> Self {
        let mut report = ErrorReport::new(e.sqlstate(), e.to_string(), "pg_worm");
        if let Some(d) = e.detail() {
            report = report.set_detail(d);
        }
        if let Some(h) = e.hint() {
            report = report.set_hint(h);
        }
        report
    }
}

impl From<pgrx::spi::SpiError> for WormError {
    fn from(e: pgrx::spi::SpiError) -> Self {
        WormError::Internal(format!("SPI: {e}"))
    }
}

/// Unwraps a result or raises its error.
pub trait OrRaise<T> {
    fn or_raise(self) -> T;
}

impl<T> OrRaise<T> for Result<T, WormError> {
    fn or_raise(self) -> T {
        match self {
            Ok(v) => v,
            Err(e) => e.raise(),
        }
    }
}
