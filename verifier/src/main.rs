//! `worm-verify`: pg_worm's independent verifier.
//!
//! It recomputes every row hash and chain link of a protected table from values read over an
//! ordinary client connection, following docs/hashing.md, with `pg_worm_core` (the same
//! encoding and chain rules the extension uses) and no pg_worm SQL function: a server whose
//! extension was replaced or tampered with cannot vouch for itself here.
//!
//! Exit status: 0 every chain verified, 1 a problem was found, 2 verification could not be
//! done (usage, connection, privileges, not a protected table, a type outside encoding 1).

mod db;
mod payload;
mod plan;
mod report;

use clap::{Parser, Subcommand};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "worm-verify",
    version,
    about = "Independent verifier for pg_worm tables: recomputes every row hash and chain link \
             over a plain client connection, without any pg_worm function",
    after_help = "Exit status: 0 when every chain verifies, 1 when a problem is found, 2 when \
                  verification could not be done (usage, connection, privileges, ...)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Verify every chain of one protected table (like `SELECT * FROM worm.verify(TABLE)`).
    ///
    /// Reads worm.tables, worm.anchors (if present), pg_catalog and the table itself in one
    /// REPEATABLE READ READ ONLY transaction; SELECT on those is the only privilege needed.
    Table {
        /// Connection string: a postgresql:// URL or libpq-style key=value conninfo
        /// (e.g. "host=/var/run/postgresql dbname=app user=auditor"). No TLS.
        #[arg(long, value_name = "URL")]
        db: String,
        /// The table, as a regclass literal: name or schema.name (quote mixed case: '"My T"').
        #[arg(value_name = "TABLE")]
        table: String,
        /// Print a JSON array with worm.verify's fields (chain, rows_checked, ok,
        /// first_bad_seq, detail, problems, head_seq, head_link) instead of the human report.
        #[arg(long)]
        json: bool,
    },
}

fn print_out(s: &str) {
    // A closed pipe (`| head`) is not worth a panic.
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(s.as_bytes());
    let _ = out.flush();
}

fn fatal(e: &anyhow::Error) -> ExitCode {
    eprintln!("worm-verify: error: {e:#}");
    ExitCode::from(2)
}

fn run_table(db_url: &str, table: &str, json: bool) -> ExitCode {
    let mut client = match db::connect(db_url) {
        Ok(c) => c,
        Err(e) => return fatal(&e),
    };
    let show_progress = !json && std::io::stderr().is_terminal();
    match db::verify_table(&mut client, table, show_progress) {
        Ok((summary, rows)) => {
            if json {
                print_out(&format!("{}\n", report::to_json(&rows)));
            } else {
                print_out(&report::to_text(&summary, &rows));
            }
            if report::all_ok(&rows) {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(db::Failure::Damaged(msg)) => {
            eprintln!("worm-verify: PROBLEM: {msg}");
            ExitCode::from(1)
        }
        Err(db::Failure::Fatal(e)) => fatal(&e),
    }
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
        Command::Table { db, table, json } => run_table(&db, &table, json),
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
            Command::Table { db, table, json } => {
                assert_eq!(db, "host=/tmp dbname=x");
                assert_eq!(table, "public.t");
                assert!(json);
            }
        }
    }

    #[test]
    fn usage_errors_exit_2() {
        let e = Cli::try_parse_from(["worm-verify", "table", "t"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let e = Cli::try_parse_from(["worm-verify", "bogus"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
    }
}
