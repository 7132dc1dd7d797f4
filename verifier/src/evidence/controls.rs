//! Each control an auditor asks about, what it requires (paraphrased closely from the rule),
//! which sections of this report hold evidence for it, what that evidence shows and what it
//! does not. The wording is deliberately modest: pg_worm is one mechanism; none of these
//! controls is met by a database extension alone.

use super::model::{Control, Report};
use crate::report::plural;

#[allow(clippy::too_many_arguments)]
fn c(
    id: &str,
    framework: &str,
    title: &str,
    requirement: &str,
    evidence: &[&str],
    shows: &str,
    does_not_show: &str,
    status: String,
) -> Control {
    Control {
        id: id.into(),
        framework: framework.into(),
        title: title.into(),
        requirement: requirement.into(),
        evidence: evidence.iter().map(|s| (*s).to_owned()).collect(),
        shows: shows.into(),
        does_not_show: does_not_show.into(),
        status,
    }
}

/// The controls, with their status in `r` (called once the rest of the report is read).
pub fn controls(r: &Report) -> Vec<Control> {
    let n = r.tables.len();
    let verified = r.tables.iter().filter(|t| t.verification.ok).count();
    let rows: u64 = r.tables.iter().map(|t| t.verification.rows_checked).sum();
    let certs: usize = r.tables.iter().map(|t| t.certificates.len()).sum::<usize>()
        + r.retired_tables
            .iter()
            .map(|t| t.certificates.len())
            .sum::<usize>();
    let certs_ok: usize = r
        .tables
        .iter()
        .flat_map(|t| &t.certificates)
        .chain(r.retired_tables.iter().flat_map(|t| &t.certificates))
        .filter(|c| c.ok)
        .count();
    let checkpoints: usize = r.tables.iter().map(|t| t.checkpoints.len()).sum();
    let stamped: usize = r
        .tables
        .iter()
        .flat_map(|t| &t.checkpoints)
        .filter(|c| !c.timestamps.is_empty())
        .count();
    let with_retention = r
        .tables
        .iter()
        .filter(|t| t.policy.retention.is_some())
        .count();
    let six = r
        .tables
        .iter()
        .filter(|t| t.policy.six_years_or_more == Some(true))
        .count();
    let forever = n - with_retention;
    let holds: usize = r.tables.iter().map(|t| t.policy.holds_in_force.len()).sum();
    let ledger = if r.ledger.ok {
        format!("the ledger's {} entries recompute", r.ledger.entries)
    } else {
        format!("the ledger does NOT verify ({})", r.ledger.detail)
    };
    let tables_state =
        format!("{verified} of {n} protected tables verified independently ({rows} rows)");
    let mode = if r.server.preloaded {
        "enforcement by hooks (preloaded)"
    } else {
        "enforcement by triggers and event triggers only (not preloaded)"
    };
    vec![
        c(
            "HIPAA 45 CFR 164.312(b)",
            "HIPAA Security Rule",
            "Audit controls",
            "Implement hardware, software, and/or procedural mechanisms that record and examine activity in information systems that contain or use electronic protected health information.",
            &[
                "Ledger integrity: every protect, retention change, hold, purge, retirement and checkpoint is recorded with who (session and current user) and when, in a hash chain recomputed here",
                "Each table's ledger events, checkpoints and certificates",
                "Verification history: the examinations done (stored results, or the verifications recorded by checkpoints and purges) and this report's own",
            ],
            "That the protected tables, which hold the audit records the organisation chose to protect, are examined: their rows are recomputed and checked, and the administrative actions on them (protection, retention, holds, purges) are recorded in a tamper-evident ledger.",
            "Which activity is recorded: pg_worm does not log reads or logins, nor decide what the application writes into its audit tables. That the protected tables are the audit logs the organisation's policy requires, and that someone reviews this report, are procedures outside the database.",
            format!("{tables_state}; {ledger}."),
        ),
        c(
            "HIPAA 45 CFR 164.312(c)(1)",
            "HIPAA Security Rule",
            "Integrity (standard)",
            "Implement policies and procedures to protect electronic protected health information from improper alteration or destruction.",
            &[
                "Server: the enforcement mode (what refuses UPDATE, DELETE, TRUNCATE and protection-breaking DDL)",
                "Each table's policy: retention, legal basis, holds in force",
                "Certificates: every removal was a purge of expired rows or a retirement, verified first, with its certificate checked here",
            ],
            "The technical part of the protection: rows of protected tables cannot be changed or deleted through SQL (only expired rows leave, by purge, never under a hold), and every removal carries a deletion certificate that verifies.",
            "The policies and procedures themselves; tables that are not protected; protection against someone with the data files or a superuser when pg_worm is not preloaded (that is detected by verification, not prevented). Availability: a dropped database or lost disk is a backup matter.",
            format!(
                "{mode}; {certs_ok} of {} verify; {} in force.",
                plural(certs, "certificate", "certificates"),
                plural(holds, "hold", "holds")
            ),
        ),
        c(
            "HIPAA 45 CFR 164.312(c)(2)",
            "HIPAA Security Rule",
            "Mechanism to authenticate electronic protected health information (addressable)",
            "Implement electronic mechanisms to corroborate that electronic protected health information has not been altered or destroyed in an unauthorized manner.",
            &[
                "Each table's fresh verification: every row hash and chain link recomputed by worm-verify outside the server, from the rows' values, with no pg_worm function",
                "Checkpoints (and their RFC 3161 time-stamps): signed digests kept outside the database also catch a removed tail or an older backup",
            ],
            "That, at the time of this report, every row of every protected table still hashes to its stored link and every chain is unbroken from its first row or purge anchor; any row changed, removed from the middle, inserted or reordered would be named here.",
            "A removed tail (the newest rows of a chain) or a database restored from an older backup: only a comparison with a checkpoint digest kept outside the database shows those (`worm-verify table --against`); this report lists checkpoints but compares none with a digest you hold. Rows are authenticated from the moment they were protected, not before.",
            format!(
                "{tables_state}; {} recorded, {stamped} with a time-stamp.",
                plural(checkpoints, "checkpoint", "checkpoints")
            ),
        ),
        c(
            "HIPAA 45 CFR 164.316(b)(2)(i)",
            "HIPAA Security Rule",
            "Documentation: time limit (required)",
            "Retain the documentation required by 164.316(b)(1) for 6 years from the date of its creation or the date when it last was in effect, whichever is later.",
            &[
                "Each table's policy: retention period, legal basis, whether it is at least 6 years",
                "Certificates: the cut-off of each purge, computed from that retention",
            ],
            "The retention each protected table enforces: no row leaves before its period has passed since it was inserted, and retention can only be lengthened.",
            "Whether the documents 164.316(b)(1) requires (policies, procedures, records of actions and assessments) are in these tables; the six years count from creation or from when a document was last in effect, which a row's insertion time may not be. A period below 6 years is shown, not judged: the organisation decides what each table must keep.",
            format!("{with_retention} of {n} tables have a retention period ({six} of 6 years or more), {forever} keep rows for ever."),
        ),
        c(
            "SEC 17a-4(f)(2)(ii)(A)",
            "SEC Rule 17a-4 (17 CFR 240.17a-4)",
            "Non-rewriteable, non-erasable format",
            "Preserve the records exclusively in a non-rewriteable, non-erasable format (the rule's numbering before its 2022 amendments; since 3 May 2023 the amended rule keeps this as one option for an electronic recordkeeping system, next to a complete time-stamped audit trail).",
            &[
                "Server: the enforcement mode",
                "Each table's fresh verification and its checkpoints with time-stamps",
                "Certificates: removal only at the end of retention, never under a hold",
            ],
            "That records in protected tables cannot be rewritten or erased through the database (with hooks, not even by a superuser's SQL) before their retention ends, and that any change made around it is detected and named.",
            "That the storage is non-rewriteable against the operating system or someone with the data files: pg_worm detects such changes but cannot prevent them, so it is not by itself WORM storage in the rule's sense (the SEC's 2003 interpretation asks for integrated hardware and software controls, not access controls). The other requirements of 17a-4(f) (verification of the recording process, serialisation and time-dating, download, duplicate copy, the third-party undertaking or designated executive officer) are outside this report; keeping signed, time-stamped checkpoint digests on WORM storage outside the database helps.",
            format!("{mode}; {tables_state}."),
        ),
        c(
            "NIST SP 800-53 AU-9",
            "NIST SP 800-53 Rev. 5",
            "Protection of audit information",
            "Protect audit information and audit logging tools from unauthorized access, modification, and deletion; alert on detection of unauthorized access, modification, or deletion of audit information.",
            &[
                "Server: the enforcement mode; pg_worm's own tables (registry, ledger, anchors, holds) are guarded the same way",
                "Each table's fresh verification and the ledger's integrity (AU-9(3), cryptographic protection: SHA-256 chains, Ed25519-signed checkpoints)",
                "Trusted keys: the auditors whose signatures the server accepts",
            ],
            "Protection from modification and deletion, and cryptographic evidence of integrity that someone outside the server can check.",
            "Protection from unauthorized access (reads): that is PostgreSQL's privileges and the organisation's access control, not shown here. Alerting: this report finds problems when it runs; continuous monitoring and alerts need a schedule (the background verifier or a job running this command).",
            format!(
                "{tables_state}; {ledger}; {}.",
                plural(r.trusted_keys.len(), "trusted key", "trusted keys")
            ),
        ),
        c(
            "NIST SP 800-53 AU-10",
            "NIST SP 800-53 Rev. 5",
            "Non-repudiation",
            "Provide irrefutable evidence that an individual (or process acting on behalf of an individual) has performed organization-defined actions to be covered by non-repudiation.",
            &[
                "Ledger events, checkpoints and certificates: the database session user (and current user) of each administrative action",
                "Trusted keys and signed checkpoints: digests signed with an auditor's Ed25519 key outside the database",
                "This report's own signature (--key), checked with worm-verify report-verify",
            ],
            "Who, as a database login, protected, held, purged, retired or checkpointed each table and when; that a signed checkpoint or this signed report was issued by the holder of the key.",
            "That the database login was the person (a shared or compromised login defeats it), or who inserted each row: pg_worm does not sign rows or record their author unless the application stores it in a column. Ledger entries are hash-chained, not signed by their author.",
            format!(
                "{}; {}.",
                plural(r.ledger.entries as usize, "ledger entry", "ledger entries"),
                plural(r.trusted_keys.len(), "trusted key", "trusted keys")
            ),
        ),
        c(
            "NIST SP 800-53 AU-11",
            "NIST SP 800-53 Rev. 5",
            "Audit record retention",
            "Retain audit records for an organization-defined time period consistent with records retention policy to provide support for after-the-fact investigations of incidents and to meet regulatory and organizational information retention requirements.",
            &[
                "Each table's policy: retention period, legal basis and legal holds (placed and released)",
                "Certificates: what was removed, when, after which cut-off, verified before removal",
                "Rows per day: what each table holds now",
            ],
            "That each protected table enforces its retention period, that holds suspend removal, and that every removal so far happened only after the period and is accounted for.",
            "That the periods match the organisation's policy (they are shown, not judged), or that records are retrievable after a server is lost (backups, AU-11(1) long-term retrieval).",
            format!(
                "{with_retention} of {n} tables have a retention period; {} in force; {}.",
                plural(holds, "hold", "holds"),
                plural(certs, "certificate", "certificates")
            ),
        ),
    ]
}
