//! `worm-verify`: pg_worm's independent verifier.
//!
//! It recomputes every row hash and chain link of a protected table from values read over an
//! ordinary client connection, following docs/hashing.md, with `pg_worm_core` (the same
//! encoding and chain rules the extension uses) and no pg_worm SQL function: a server whose
//! extension was replaced or tampered with cannot vouch for itself here. It also takes,
//! signs and checks the documents an auditor keeps outside the database: checkpoint digests,
//! inclusion proofs and deletion certificates (docs/auditing.md).
//!
//! Exit status: 0 everything verified, 1 a problem was found, 2 verification could not be
//! done (usage, connection, privileges, not a protected table, a type outside encoding 1, an
//! unreadable document).

#![forbid(unsafe_code)]

mod commands;
mod conn;
mod db;
mod evidence;
mod parent;
mod payload;
mod plan;
mod report;
mod sig;
mod tsa;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "worm-verify",
    version,
    about = "Independent verifier for pg_worm tables: recomputes every row hash and chain link \
             over a plain client connection, without pg_worm's SQL functions; takes (through \
             worm.checkpoint), signs and checks checkpoint digests, and checks inclusion proofs \
             and deletion certificates",
    after_help = "Exit status: 0 when everything verifies, 1 when a problem is found, 2 when \
                  verification could not be done (usage, connection, privileges, unreadable \
                  document, ...)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Verify every chain of one protected table (like `SELECT * FROM worm.verify(TABLE)`),
    /// and with --against, that it still extends a checkpoint digest taken earlier.
    ///
    /// Reads worm.tables, worm.anchors (if present), pg_catalog and the table itself (with
    /// --against also worm.ledger) in one REPEATABLE READ READ ONLY transaction; SELECT on
    /// those is the only privilege needed. No pg_worm function is called.
    ///
    /// A partitioned table: every leaf partition is verified the same way, in the same
    /// snapshot, and reported per partition; a leaf pg_worm does not protect is a problem.
    Table {
        /// Connection string: libpq key=value conninfo (e.g. "host=db.example dbname=app
        /// user=auditor sslmode=verify-full"), a postgresql:// URI, or a database name.
        /// Optional: whatever it leaves out comes, as for psql, from a service
        /// (service=/PGSERVICE, in PGSERVICEFILE or ~/.pg_service.conf), then PGHOST,
        /// PGPORT, PGUSER, PGDATABASE, PGSSLMODE, PGSSLROOTCERT, PGCONNECT_TIMEOUT,
        /// PGAPPNAME...; the password from PGPASSWORD or ~/.pgpass (PGPASSFILE), never
        /// needed on the command line.
        #[arg(long, value_name = "CONNINFO")]
        db: Option<String>,
        /// The table, as a regclass literal: name or schema.name (quote mixed case: '"My T"');
        /// or a partitioned table (every leaf partition).
        #[arg(value_name = "TABLE")]
        table: String,
        /// Print JSON instead of the human report: an array with worm.verify's fields
        /// (chain, rows_checked, ok, first_bad_seq, detail, problems, head_seq, head_link);
        /// with --against an object {"chains": that array, "checkpoint": the findings}.
        #[arg(long)]
        json: bool,
        /// A checkpoint digest (from `worm-verify checkpoint` or `SELECT worm.checkpoint(..)`,
        /// signed or not) the table must still extend: its ledger hash must recompute, every
        /// chain must still hold its checkpoint head with the same link (or have been purged
        /// past it), and the rows up to the heads must hash to its Merkle root. Catches a
        /// removed tail, a rewritten chain, a rolled-back database or an older backup.
        /// For a partitioned table, its document (one checkpoint per partition): each
        /// partition against its own; one gone since needs a retirement certificate.
        #[arg(long, value_name = "DIGEST.json")]
        against: Option<PathBuf>,
        /// An Ed25519 public key (64 hex digits): the digest must carry a valid signature by
        /// it (or by one of several: repeat the option or separate keys with commas).
        #[arg(
            long,
            value_name = "PUBHEX",
            requires = "against",
            value_delimiter = ','
        )]
        require_signature: Vec<String>,
        /// Read this many chains at once, each in a session of its own sharing the first
        /// session's snapshot (pg_export_snapshot); 1 reads every chain in one session.
        #[arg(long, short = 'j', value_name = "N", default_value_t = 1,
              value_parser = clap::value_parser!(u16).range(1..=64))]
        jobs: u16,
        /// Also check the digest's RFC 3161 time-stamp token (DIGEST.tsr, or --tsr):
        /// imprint, the TSA's signature, its certificate's timeStamping usage and its chain
        /// to this root (PEM), at the token's time. Any failure is a problem (exit 1).
        #[arg(long, value_name = "ROOT.pem", requires = "against")]
        tsa_cert: Option<PathBuf>,
        /// The time-stamp token, when it is not DIGEST.tsr beside the digest.
        #[arg(long, value_name = "FILE.tsr", requires = "tsa_cert")]
        tsr: Option<PathBuf>,
    },
    /// Take a checkpoint of a table and check it independently before handing it out.
    ///
    /// Calls `SELECT worm.checkpoint(TABLE)` in its own read-write transaction: this one call
    /// uses a pg_worm function, and it records the checkpoint in the extension's ledger (the
    /// role needs to be the table's owner, worm_admin or worm_auditor). Then, in a REPEATABLE
    /// READ READ ONLY snapshot and without pg_worm functions, it verifies every chain,
    /// recomputes the heads and the Merkle root over the rows up to the digest's heads, and
    /// compares them with the server's digest. Only a digest that matches is written (to OUT,
    /// or to stdout); if anything differs it refuses with exit 1. For a partitioned table
    /// the server returns one checkpoint per partition; each is checked the same way.
    Checkpoint {
        /// Connection string (see `table --help`); optional, as there.
        #[arg(long, value_name = "CONNINFO")]
        db: Option<String>,
        /// The table (name or schema.name).
        #[arg(value_name = "TABLE")]
        table: String,
        /// Write the digest here instead of stdout (replaced atomically).
        #[arg(short = 'o', long = "out", value_name = "OUT")]
        out: Option<PathBuf>,
        /// Recompute with this many sessions at once (see `table --help`).
        #[arg(long, short = 'j', value_name = "N", default_value_t = 1,
              value_parser = clap::value_parser!(u16).range(1..=64))]
        jobs: u16,
        /// Then time-stamp the digest at this RFC 3161 time-stamping authority (see
        /// `timestamp --help`): OUT.tsr, recorded in the ledger.
        #[arg(long, value_name = "URL", requires = "out")]
        tsa: Option<String>,
        /// Check the new token against this root (PEM).
        #[arg(long, value_name = "ROOT.pem", requires = "tsa")]
        tsa_cert: Option<PathBuf>,
    },
    /// RFC 3161 time-stamp of a checkpoint digest: proof, from a time-stamping authority
    /// (TSA), that the digest existed at a time.
    ///
    /// With --tsa URL: POSTs a TimeStampReq (application/timestamp-query; SHA-256 message
    /// imprint = the 32 bytes of the digest's ledger_entry.hash, a fresh nonce, certReq)
    /// and, when the TSA granted it for this imprint and nonce, writes the TimeStampResp
    /// (DER) to DIGEST.tsr, which `openssl ts -verify -digest HASH -in DIGEST.tsr -CAfile
    /// ROOT.pem` also accepts. Without --tsa: checks the token already there.
    /// With --tsa-cert ROOT.pem the token is verified: imprint, the signed message digest,
    /// the TSA's signature, the ESS certificate binding, the TSA certificate's critical
    /// timeStamping usage, its chain to ROOT.pem valid at the token's time. With --attach,
    /// the token is recorded in the server's ledger (worm.attach_timestamp), so that later
    /// checkpoints carry it.
    /// Exit 1 when the TSA refused or any check fails (nothing is written); 2 when the
    /// TSA cannot be reached.
    Timestamp {
        /// The digest (from `worm-verify checkpoint` or `SELECT worm.checkpoint(..)`).
        #[arg(value_name = "DIGEST.json")]
        digest: PathBuf,
        /// The time-stamping authority's URL (http:// or https://).
        #[arg(long, value_name = "URL")]
        tsa: Option<String>,
        /// Where to write the TimeStampResp (default DIGEST.tsr).
        #[arg(short = 'o', long = "out", value_name = "FILE.tsr", requires = "tsa")]
        out: Option<PathBuf>,
        /// Verify the token against this root certificate (PEM; several allowed).
        #[arg(long, value_name = "ROOT.pem")]
        tsa_cert: Option<PathBuf>,
        /// The token to check, when it is not DIGEST.tsr (without --tsa).
        #[arg(long, value_name = "FILE.tsr", conflicts_with = "tsa")]
        tsr: Option<PathBuf>,
        /// Record the token in the server's ledger (worm.attach_timestamp; the table's
        /// owner, worm_admin or worm_auditor).
        #[arg(long)]
        attach: bool,
        /// Connection string for --attach (see `table --help`).
        #[arg(long, value_name = "CONNINFO", requires = "attach")]
        db: Option<String>,
    },
    /// Create an Ed25519 key pair for signing checkpoint digests.
    ///
    /// Writes the secret key (64 hex digits, mode 0600; an existing file is never
    /// overwritten) and prints the public key with the SQL that registers it in the server.
    Keygen {
        /// The secret key file to create. Keep it offline.
        #[arg(long = "out", short = 'o', value_name = "KEYFILE")]
        out: PathBuf,
        /// The name the key is registered under (default: the key file's name without its
        /// extension).
        #[arg(long, value_name = "NAME")]
        key_id: Option<String>,
    },
    /// Sign a checkpoint digest (or countersign an already signed one).
    ///
    /// Refuses (exit 1) a digest whose ledger hash does not recompute from its content or
    /// that carries a signature which does not verify. Appends {"key_id", "public_key",
    /// "signature"} to its "signatures": Ed25519 over "pg_worm checkpoint signature v1" NUL
    /// followed by the 32 bytes of ledger_entry.hash.
    Sign {
        /// The secret key file (from `worm-verify keygen`).
        #[arg(long, value_name = "KEYFILE")]
        key: PathBuf,
        /// The signer's name, as registered with worm.trust_key.
        #[arg(long, value_name = "NAME")]
        key_id: String,
        /// The digest to sign ("-" for stdin).
        #[arg(value_name = "DIGEST.json")]
        digest: PathBuf,
        /// Write the signed digest here instead of stdout (may be the input file; replaced
        /// atomically).
        #[arg(short = 'o', long = "out", value_name = "OUT")]
        out: Option<PathBuf>,
    },
    /// Check an inclusion proof (from `SELECT worm.prove(TABLE, chain, seq)`).
    ///
    /// Offline: the row's link recomputes from its row hash, position, insertion time and
    /// previous link, and is the leaf at leaf_index of the Merkle tree with the proof's root
    /// (RFC 9162). With --checkpoint, that root is the one of a digest you keep; with --db,
    /// the row is re-read and its row hash recomputed from its current values (no pg_worm
    /// function), so the proof is about these values.
    Proof {
        /// The proof ("-" for stdin).
        #[arg(value_name = "PROOF.json")]
        proof: PathBuf,
        /// The checkpoint digest the proof must be about (same ledger entry, root and size).
        #[arg(long, value_name = "DIGEST.json")]
        checkpoint: Option<PathBuf>,
        /// Also re-read the row from this database (see `table --help`; `--db ""` for the
        /// PG* environment variables alone).
        #[arg(long, value_name = "CONNINFO")]
        db: Option<String>,
        /// Print JSON: {"ok", "checks", "proof_bytes", "check_micros", ...}.
        #[arg(long)]
        json: bool,
        /// Also print how long the offline check took.
        #[arg(long, short = 'v')]
        verbose: bool,
    },
    /// Check a deletion certificate (from worm.purge_expired or the worm.certificates view).
    ///
    /// Offline: its ledger hash recomputes and its fields agree. With --db (read-only, no
    /// pg_worm function): the ledger entry at its seq in worm.ledger is the same entry, every
    /// ledger entry up to it recomputes, and each chain it names starts at its anchor (or at a
    /// later purge that continued from it), the first surviving row linking to the anchor.
    Certificate {
        /// The certificate ("-" for stdin).
        #[arg(value_name = "CERT.json")]
        cert: PathBuf,
        /// Also check it against this database (see `table --help`; `--db ""` for the
        /// PG* environment variables alone).
        #[arg(long, value_name = "CONNINFO")]
        db: Option<String>,
        /// Print JSON: {"ok", "certificate_id", "ledger_seq", "checks": [...]}.
        #[arg(long)]
        json: bool,
    },
    /// The compliance evidence report: one self-contained HTML file (or --json) per database.
    ///
    /// Per protected table: its policy (retention, legal basis, holds), a fresh independent
    /// verification (as `table` does it), the stored verification history (worm.verifications,
    /// when it exists), checkpoints with their time-stamps, purges and retirements with their
    /// certificates checked; the ledger recomputed; charts of rows per day and verification
    /// outcomes; each control (HIPAA 164.312(b), (c)(1), (c)(2), 164.316(b)(2)(i), SEC
    /// 17a-4(f)(2)(ii)(A), NIST SP 800-53 AU-9, AU-10, AU-11) mapped to the evidence. Read in
    /// one REPEATABLE READ READ ONLY snapshot; no pg_worm function is called. Exit 1 when
    /// anything does not verify.
    Report {
        /// Connection string (see `table --help`); optional, as there.
        #[arg(long, value_name = "CONNINFO")]
        db: Option<String>,
        /// The file to write (replaced atomically): HTML, or JSON with --json.
        #[arg(short = 'o', long = "out", value_name = "FILE")]
        out: PathBuf,
        /// Write the same content as JSON instead of HTML.
        #[arg(long)]
        json: bool,
        /// Sign the written file with this Ed25519 key (from `keygen`): FILE.sig beside it,
        /// checked with `report-verify`.
        #[arg(long, value_name = "KEYFILE")]
        key: Option<PathBuf>,
        /// The signer's name in FILE.sig (default: the key file's name).
        #[arg(long, value_name = "NAME", requires = "key")]
        key_id: Option<String>,
        /// Check the RFC 3161 time-stamps recorded in the ledger against this root (PEM): the
        /// TSA's signature, its certificate's timeStamping usage and chain, at the token's
        /// time. Without it only each token's imprint is checked (and the report says so).
        #[arg(long, value_name = "ROOT.pem")]
        tsa_cert: Option<PathBuf>,
        /// An earlier report of this database, written with --json: the newest ledger entry
        /// it saw must still be there with the same hash (no rollback, no older backup, no
        /// replaced ledger), and every table it listed must still be protected or retired.
        #[arg(long, value_name = "REPORT.json")]
        previous: Option<PathBuf>,
        /// Verify with this many sessions at once (see `table --help`).
        #[arg(long, short = 'j', value_name = "N", default_value_t = 1,
              value_parser = clap::value_parser!(u16).range(1..=64))]
        jobs: u16,
    },
    /// Check a report's detached signature (FILE.sig, written by `report --key`): the file is
    /// byte for byte the one signed, and the Ed25519 signature verifies. Exit 1 otherwise.
    ReportVerify {
        /// The report (HTML or JSON).
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// The signature (default: FILE.sig).
        #[arg(long, value_name = "FILE.sig")]
        sig: Option<PathBuf>,
        /// The auditor's public key (64 hex digits); the signature must be by it (or by one
        /// of several: repeat the option or separate keys with commas).
        #[arg(long, value_name = "PUBHEX", value_delimiter = ',')]
        public_key: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            // --help / --version print to stdout and exit 0; usage errors exit 2.
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    match cli.command {
        Command::Table {
            db,
            table,
            json,
            against,
            require_signature,
            jobs,
            tsa_cert,
            tsr,
        } => match against {
            None => commands::table(db.as_deref(), &table, json, usize::from(jobs)),
            Some(d) => commands::table_against(
                db.as_deref(),
                &table,
                json,
                &d,
                &require_signature,
                usize::from(jobs),
                &commands::TsaCheck {
                    root: tsa_cert.as_deref(),
                    tsr: tsr.as_deref(),
                },
            ),
        },
        Command::Checkpoint {
            db,
            table,
            out,
            jobs,
            tsa,
            tsa_cert,
        } => match (tsa, out) {
            (Some(url), Some(out)) => commands::checkpoint_and_stamp(
                db.as_deref(),
                &table,
                &out,
                usize::from(jobs),
                &url,
                commands::TsaCheck {
                    root: tsa_cert.as_deref(),
                    tsr: None,
                },
            ),
            (_, out) => {
                commands::checkpoint(db.as_deref(), &table, out.as_deref(), usize::from(jobs))
            }
        },
        Command::Timestamp {
            digest,
            tsa,
            out,
            tsa_cert,
            tsr,
            attach,
            db,
        } => commands::timestamp(&commands::TimestampArgs {
            digest: &digest,
            url: tsa.as_deref(),
            out: out.as_deref(),
            check: commands::TsaCheck {
                root: tsa_cert.as_deref(),
                tsr: tsr.as_deref(),
            },
            attach,
            db: db.as_deref(),
        }),
        Command::Keygen { out, key_id } => commands::keygen(&out, key_id.as_deref()),
        Command::Sign {
            key,
            key_id,
            digest,
            out,
        } => commands::sign(&key, &key_id, &digest, out.as_deref()),
        Command::Proof {
            proof,
            checkpoint,
            db,
            json,
            verbose,
        } => commands::proof(&proof, checkpoint.as_deref(), db.as_deref(), json, verbose),
        Command::Certificate { cert, db, json } => {
            commands::certificate(&cert, db.as_deref(), json)
        }
        Command::Report {
            db,
            out,
            json,
            key,
            key_id,
            jobs,
            tsa_cert,
            previous,
        } => evidence::report(&evidence::Options {
            db: db.as_deref(),
            out: &out,
            json,
            key: key.as_deref(),
            key_id: key_id.as_deref(),
            jobs: usize::from(jobs),
            tsa_cert: tsa_cert.as_deref(),
            previous: previous.as_deref(),
        }),
        Command::ReportVerify {
            file,
            sig,
            public_key,
        } => evidence::report_verify(&file, sig.as_deref(), &public_key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_table_subcommand() {
        let cli = Cli::try_parse_from([
            "worm-verify",
            "table",
            "--db",
            "host=/tmp dbname=x",
            "public.t",
            "--json",
        ])
        .expect("valid arguments");
        match cli.command {
            Command::Table {
                db,
                table,
                json,
                against,
                require_signature,
                jobs,
                ..
            } => {
                assert_eq!(jobs, 1);
                assert_eq!(db.as_deref(), Some("host=/tmp dbname=x"));
                assert_eq!(table, "public.t");
                assert!(json);
                assert!(against.is_none());
                assert!(require_signature.is_empty());
            }
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn parses_against_with_several_keys() {
        let cli = Cli::try_parse_from([
            "worm-verify",
            "table",
            "--db",
            "x",
            "--against",
            "d.json",
            "--require-signature",
            "aa,bb",
            "--require-signature",
            "cc",
            "t",
        ])
        .expect("valid arguments");
        match cli.command {
            Command::Table {
                table,
                against,
                require_signature,
                ..
            } => {
                assert_eq!(table, "t");
                assert_eq!(against, Some(PathBuf::from("d.json")));
                assert_eq!(require_signature, vec!["aa", "bb", "cc"]);
            }
            other => panic!("parsed as {other:?}"),
        }
        // A required signature only makes sense against a digest.
        let e = Cli::try_parse_from([
            "worm-verify",
            "table",
            "--db",
            "x",
            "--require-signature",
            "aa",
            "t",
        ])
        .unwrap_err();
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn parses_the_document_subcommands() {
        let cli = Cli::try_parse_from([
            "worm-verify",
            "sign",
            "--key",
            "k.key",
            "--key-id",
            "jane",
            "d.json",
            "-o",
            "s.json",
        ])
        .expect("valid");
        assert!(matches!(cli.command, Command::Sign { ref key_id, .. } if key_id == "jane"));
        let cli = Cli::try_parse_from(["worm-verify", "keygen", "--out", "k.key"]).expect("valid");
        assert!(matches!(cli.command, Command::Keygen { key_id: None, .. }));
        let cli = Cli::try_parse_from([
            "worm-verify",
            "proof",
            "p.json",
            "--checkpoint",
            "d.json",
            "-v",
        ])
        .expect("valid");
        assert!(matches!(
            cli.command,
            Command::Proof {
                verbose: true,
                db: None,
                ..
            }
        ));
        let cli =
            Cli::try_parse_from(["worm-verify", "certificate", "c.json", "--json"]).expect("valid");
        assert!(matches!(
            cli.command,
            Command::Certificate { json: true, .. }
        ));
        let cli = Cli::try_parse_from(["worm-verify", "checkpoint", "--db", "x", "t", "-o", "d"])
            .expect("valid");
        assert!(matches!(cli.command, Command::Checkpoint { .. }));
    }

    #[test]
    fn db_is_optional() {
        let cli = Cli::try_parse_from(["worm-verify", "table", "t"]).expect("valid");
        assert!(matches!(cli.command, Command::Table { db: None, .. }));
        let cli = Cli::try_parse_from(["worm-verify", "checkpoint", "t"]).expect("valid");
        assert!(matches!(cli.command, Command::Checkpoint { db: None, .. }));
    }

    #[test]
    fn usage_errors_exit_2() {
        let e = Cli::try_parse_from(["worm-verify", "table"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let e = Cli::try_parse_from(["worm-verify", "bogus"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let e = Cli::try_parse_from(["worm-verify", "sign", "d.json"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let e = Cli::try_parse_from(["worm-verify", "keygen"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
    }
}
