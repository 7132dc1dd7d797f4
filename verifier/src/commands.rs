//! The subcommands: reading files and the database, running the checks (all in
//! `pg_worm_core`), printing reports. Each subcommand ends in an [`End`], and [`exit_code`]
//! is the one place that turns it into the exit status (0 verified, 1 problem found, 2 could
//! not verify).

use crate::db::{self, Failure, TableData, TableSel, UidState};
use crate::parent::{self, Against, AnyDigest, ParentDigest, ParentReport, PartResult, PartStatus};
use crate::report::{self, plural};
use crate::sig;
use crate::tsa;
use anyhow::{anyhow, Context, Result};
use pg_worm_core::findings::all_ok;
use pg_worm_core::{
    self as core, digest_hash_check, format_uuid, ledger_check, problems, short, signature_checks,
    CertTable, Certificate, Check, Comparison, Digest, LedgerEntry, Malformed, Proof, SigResult,
    Status,
};
use serde_json::{json, Value as Json};
use std::collections::BTreeMap;
use std::io::{IsTerminal, Read, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

// --- how a subcommand ends ------------------------------------------------------------------

/// How a subcommand ends.
#[derive(Debug)]
pub enum End {
    /// Everything verified: exit 0.
    Verified,
    /// Problems were found and reported: exit 1.
    Problems,
    /// A problem that ends the run, reported as `worm-verify: PROBLEM: ...`: exit 1.
    Problem(String),
    /// Verification could not be done, reported as `worm-verify: error: ...`: exit 2.
    Error(anyhow::Error),
    /// The server refused, for a reason that is itself a finding (a damaged table): reported
    /// as an error, exit 1.
    Refused(anyhow::Error),
}

impl End {
    fn from_problems(n: usize) -> End {
        if n == 0 {
            End::Verified
        } else {
            End::Problems
        }
    }
}

impl From<anyhow::Error> for End {
    fn from(e: anyhow::Error) -> Self {
        End::Error(e)
    }
}

impl From<Failure> for End {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Damaged(msg) => End::Problem(msg),
            Failure::Fatal(e) => End::Error(e),
        }
    }
}

/// A subcommand's body (or a step of it): `Err` ends it early.
type Run<T = End> = std::result::Result<T, End>;

/// The one exit-code path: reports how the run ended (when not already reported) and exits.
pub fn exit_code(run: Run) -> ExitCode {
    match run.unwrap_or_else(|e| e) {
        End::Verified => ExitCode::SUCCESS,
        End::Problems => ExitCode::from(1),
        End::Problem(msg) => {
            print_err(&format!("worm-verify: PROBLEM: {msg}\n"));
            ExitCode::from(1)
        }
        End::Error(e) => {
            print_err(&format!("worm-verify: error: {e:#}\n"));
            ExitCode::from(2)
        }
        End::Refused(e) => {
            print_err(&format!("worm-verify: error: {e:#}\n"));
            ExitCode::from(1)
        }
    }
}

// --- input and output -----------------------------------------------------------------------

fn print_out(s: &str) {
    // A closed pipe (`| head`) is not worth a panic.
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(s.as_bytes());
    let _ = out.flush();
}

fn print_err(s: &str) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(s.as_bytes());
    let _ = err.flush();
}

fn print_json(v: &Json) {
    print_out(&format!(
        "{}\n",
        serde_json::to_string_pretty(v).unwrap_or_default()
    ));
}

/// Reads a file ("-" = stdin) as text.
fn read_text(path: &Path) -> Result<String> {
    if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("cannot read stdin")?;
        return Ok(s);
    }
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

fn parse_json(path: &Path, text: &str) -> Result<Json> {
    serde_json::from_str(text).with_context(|| format!("{} is not JSON", path.display()))
}

fn malformed(path: &Path, m: Malformed) -> anyhow::Error {
    anyhow!("{}: {m}", path.display())
}

/// A digest file of one table or of a partitioned table.
fn load_any_digest(path: &Path) -> Result<AnyDigest> {
    let text = read_text(path)?;
    parent::parse_digest(parse_json(path, &text)?).map_err(|m| malformed(path, m))
}

fn load_digest(path: &Path) -> Result<Digest> {
    let text = read_text(path)?;
    Digest::parse(parse_json(path, &text)?).map_err(|m| malformed(path, m))
}

/// ", written to PATH" when `out` is a file.
fn written_to(out: Option<&Path>) -> String {
    match out {
        Some(p) if p.as_os_str() != "-" => format!(", written to {}", p.display()),
        _ => String::new(),
    }
}

/// Writes pretty JSON to `out` (atomically: a temporary file in the same directory, then a
/// rename) or to stdout.
fn write_json(out: Option<&Path>, v: &Json) -> Result<()> {
    let mut text = serde_json::to_string_pretty(v).context("cannot serialise JSON")?;
    text.push('\n');
    let path = match out {
        Some(path) if path.as_os_str() != "-" => path,
        _ => {
            print_out(&text);
            return Ok(());
        }
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let tmp = dir.join(format!(".{name}.worm-verify.{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        anyhow!("cannot write {}: {e}", path.display())
    })
}

// --- table ----------------------------------------------------------------------------------

pub fn table(db_url: Option<&str>, table: &str, json: bool, jobs: usize) -> ExitCode {
    exit_code(run_table(db_url, table, json, jobs))
}

fn run_table(db_url: Option<&str>, table: &str, json: bool, jobs: usize) -> Run {
    let connector = db::Connector::new(db_url)?;
    let mut client = connector.open()?;
    let mut tx = db::begin_read(&mut client)?;
    let ro = &db::ReadOpts::new(
        !json && std::io::stderr().is_terminal(),
        &connector,
        &mut tx,
        jobs,
    )?;
    let rel = db::lookup_relation(&mut tx, table)?;
    if rel.is_partitioned() {
        let report = read_parent(&mut tx, &rel, &ParentMode::Plain, ro)?;
        end_read(tx)?;
        return Ok(print_parent(&report, json));
    }
    let data = db::verify_table_in(&mut tx, TableSel::Name(table), ro, None)?;
    end_read(tx)?;
    if json {
        print_out(&format!("{}\n", report::to_json(&data.rows)));
    } else {
        print_out(&report::to_text(&data.summary, &data.rows));
    }
    Ok(End::from_problems(usize::from(!all_ok(&data.rows))))
}

fn parse_required(keys: &[String]) -> Result<Vec<[u8; 32]>> {
    keys.iter()
        .map(|k| {
            sig::parse_public_key(k)
                .map(|v| v.to_bytes())
                .map_err(|e| anyhow!("--require-signature: {e}"))
        })
        .collect()
}

struct AgainstOutcome {
    checks: Vec<Check>,
    comparison: Comparison,
}

/// Everything about the table and the digest, with the chain problems merged into `rows`.
fn against_checks(
    d: &Digest,
    data: &mut TableData,
    read: &AgainstRead,
    sigs: Option<(&[SigResult], &[[u8; 32]])>,
) -> AgainstOutcome {
    let previous = core::against::shared_previous(d, read.previous.as_ref());
    let none;
    let gathered = match &data.gathered {
        Some(g) => g,
        None => {
            none = core::against::Gathered::from_chains(d, Vec::new());
            &none
        }
    };
    let comparison = core::against::compare_gathered(
        d,
        &data.uid,
        data.chains,
        gathered,
        read.wal.as_ref(),
        previous.as_ref(),
    );
    let ledger = comparison.ledger_finding(ledger_check(read.stored.as_ref(), read.last, d));
    let mut checks = vec![digest_hash_check(d), ledger];
    checks.extend(comparison.all_checks());
    if let Some((results, required)) = sigs {
        checks.extend(signature_checks(results, required));
    }
    for f in &comparison.chains {
        if f.check.status == Status::Problem {
            if let Some(row) = data.rows.iter_mut().find(|r| r.chain == Some(f.chain)) {
                row.add_problem(f.first_bad_seq, &f.check.detail);
            }
        }
    }
    AgainstOutcome { checks, comparison }
}

/// What the server has of a digest: its ledger entry (with the newest ledger seq when asked
/// and there is no such entry), the entry at the seq of its previous checkpoint, and where the
/// server's WAL stands.
struct AgainstRead {
    stored: Option<LedgerEntry>,
    last: Option<i64>,
    previous: Option<LedgerEntry>,
    wal: Option<core::against::WalPosition>,
}

/// Ends the read-only transaction.
fn end_read(tx: postgres::Transaction<'_>) -> Result<()> {
    tx.commit()
        .map_err(db::pg)
        .context("cannot end the read-only transaction")
}

/// What the server's ledger has of a digest (its entry, the entry of its previous
/// checkpoint, the newest seq when asked and the entry is missing), read in `tx`; `wal` is
/// left for the caller.
fn read_ledger_side(
    tx: &mut postgres::Transaction<'_>,
    d: &Digest,
    with_last: bool,
) -> std::result::Result<AgainstRead, Failure> {
    let stored = db::ledger_entry(tx, d.entry.seq)?;
    let previous = match core::against::previous_checkpoint_seq(d) {
        Some(seq) => db::ledger_entry(tx, seq)?,
        None => None,
    };
    let last = if stored.is_none() && with_last {
        db::ledger_last_seq(tx)?
    } else {
        None
    };
    Ok(AgainstRead {
        stored,
        last,
        previous,
        wal: None,
    })
}

/// The table verified, and what the server has of the digest, in the transaction's snapshot.
fn read_against(
    tx: &mut postgres::Transaction<'_>,
    table: &str,
    d: &Digest,
    ro: &db::ReadOpts,
    with_last: bool,
) -> std::result::Result<(TableData, AgainstRead), Failure> {
    // The ledger first (the same snapshot): the digest's previous checkpoint, when this ledger
    // holds it, is gathered for while the rows stream by.
    let mut read = read_ledger_side(tx, d, with_last)?;
    let previous = core::against::shared_previous(d, read.previous.as_ref());
    let data = db::verify_table_in(tx, TableSel::Name(table), ro, Some((d, previous.as_ref())))?;
    read.wal = db::server_wal(tx)?;
    Ok((data, read))
}

pub fn table_against(
    db_url: Option<&str>,
    table: &str,
    json: bool,
    digest_path: &Path,
    required: &[String],
    jobs: usize,
    tsa: &TsaCheck<'_>,
) -> ExitCode {
    exit_code(run_table_against(
        db_url,
        table,
        json,
        digest_path,
        required,
        jobs,
        tsa,
    ))
}

fn run_table_against(
    db_url: Option<&str>,
    table: &str,
    json: bool,
    digest_path: &Path,
    required: &[String],
    jobs: usize,
    tsa: &TsaCheck<'_>,
) -> Run {
    let any = load_any_digest(digest_path)?;
    let required = parse_required(required)?;
    let roots = tsa.roots()?;
    if roots.is_some() && matches!(any, AnyDigest::Parent(_)) {
        return Err(anyhow!(
            "--tsa-cert: time-stamps are checked per table digest; {} is a partitioned table's document (check each partition's checkpoint with `worm-verify timestamp`)",
            digest_path.display()
        )
        .into());
    }
    let connector = db::Connector::new(db_url)?;
    let mut client = connector.open()?;
    let mut tx = db::begin_read(&mut client)?;
    let ro = &db::ReadOpts::new(
        !json && std::io::stderr().is_terminal(),
        &connector,
        &mut tx,
        jobs,
    )?;
    let rel = db::lookup_relation(&mut tx, table)?;
    let d = match (any, rel.is_partitioned()) {
        (AnyDigest::Table(d), false) => *d,
        (AnyDigest::Parent(p), true) => {
            let mode = ParentMode::Against {
                digest: &p,
                required: &required,
            };
            let report = read_parent(&mut tx, &rel, &mode, ro)?;
            end_read(tx)?;
            return Ok(print_parent(&report, json));
        }
        (AnyDigest::Parent(p), false) => {
            return Err(End::Problem(format!(
                "{} is the checkpoint of partitioned table {}, but {} is not a partitioned table: check it against the parent, or check this table against a checkpoint of its own",
                digest_path.display(),
                p.parent,
                rel.sql_name
            )))
        }
        (AnyDigest::Table(d), true) => {
            return Err(End::Problem(format!(
                "{} is the checkpoint of one table ({}), but {} is a partitioned table: check that partition against it, or take the parent's checkpoint with `worm-verify checkpoint {}`",
                digest_path.display(),
                if d.table_name.is_empty() { "?" } else { &d.table_name },
                rel.sql_name,
                rel.sql_name
            )))
        }
    };
    let (mut data, read) = read_against(&mut tx, table, &d, ro, true)?;
    end_read(tx)?;
    let sig_results = d.check_signatures(&required);
    let mut outcome = against_checks(&d, &mut data, &read, Some((&sig_results, &required)));
    let mut stamp = None;
    if let Some(roots) = &roots {
        let (checks, token) = timestamp_checks(&d, digest_path, tsa.tsr, roots);
        outcome.checks.extend(checks);
        stamp = token;
    } else if tsr_path(digest_path, None).is_file() {
        outcome.checks.push(Check::note(
            "timestamp",
            format!(
                "{} (a time-stamp token) was not checked: give --tsa-cert ROOT.pem, the root of the TSA you trust",
                tsr_path(digest_path, None).display()
            ),
        ));
    }
    let cp_problems = problems(&outcome.checks);
    let ok = cp_problems == 0 && all_ok(&data.rows);
    if json {
        let mut checkpoint = report::checkpoint_json(&d, &outcome.checks, &sig_results);
        if let Some(t) = &stamp {
            checkpoint["timestamp"] = timestamp_json(t, cp_problems == 0);
        }
        print_json(&json!({
            "chains": data.rows,
            "checkpoint": checkpoint,
            "ok": ok,
        }));
    } else {
        print_out(&against_text(
            &d,
            &data,
            &outcome,
            &sig_results,
            !required.is_empty(),
        ));
    }
    Ok(End::from_problems(usize::from(!ok)))
}

/// The human report of `table --against`.
fn against_text(
    d: &Digest,
    data: &TableData,
    outcome: &AgainstOutcome,
    sig_results: &[SigResult],
    keys_required: bool,
) -> String {
    report::against_text(
        d,
        &data.summary,
        &data.rows,
        &outcome.checks,
        outcome.comparison.exact(),
        sig_results,
        keys_required,
    )
}

// --- checkpoint -------------------------------------------------------------------------------

pub fn checkpoint(db_url: Option<&str>, table: &str, out: Option<&Path>, jobs: usize) -> ExitCode {
    exit_code(run_checkpoint(db_url, table, out, jobs))
}

/// `SELECT worm.checkpoint(TABLE)`: the server's document (a digest, or a partitioned
/// table's checkpoints).
fn take_checkpoint(client: &mut postgres::Client, table: &str) -> Run<Json> {
    let whole = db::take_checkpoint(client, table).map_err(|e| {
        // The server refuses to checkpoint a table that fails its own verification.
        let refused_damaged = e.chain().any(|c| {
            c.downcast_ref::<db::RefusedDamaged>().is_some()
                || c.downcast_ref::<postgres::Error>()
                    .and_then(|p| p.code())
                    .is_some_and(|s| *s == postgres::error::SqlState::DATA_CORRUPTED)
        }) || format!("{e:#}").contains("XX001");
        if refused_damaged {
            End::Refused(e)
        } else {
            End::Error(e)
        }
    })?;
    Ok(whole)
}

fn unexpected_document(m: Malformed) -> End {
    End::Error(anyhow!(
        "worm.checkpoint returned an unexpected document: {m}"
    ))
}

/// What `checkpoint` recomputed besides the comparison: the chains verified independently,
/// and the digest's own claims.
fn checkpoint_extra_checks(d: &Digest, data: &TableData) -> Vec<Check> {
    let mut checks = Vec::new();
    let bad_chains: Vec<_> = data.rows.iter().filter(|r| !r.ok).collect();
    if bad_chains.is_empty() {
        checks.push(Check::ok(
            "table",
            format!(
                "every row hash and link of {} verified independently ({})",
                plural(data.rows.len(), "chain", "chains"),
                plural(data.summary.rows_read as usize, "row", "rows")
            ),
        ));
    }
    for r in &bad_chains {
        checks.push(Check::problem(
            "table",
            format!(
                "chain {}: {}",
                r.chain.map_or("NULL".to_owned(), |c| c.to_string()),
                r.detail
            ),
        ));
    }
    if d.verification_ok == Some(false) {
        checks.push(Check::problem(
            "verification",
            "the server's digest says its own verification failed",
        ));
    }
    if let Some(rows) = d.rows.filter(|r| *r != d.merkle_size) {
        checks.push(Check::problem(
            "rows",
            format!(
                "the digest counts {rows} rows but its Merkle tree has {} leaves",
                d.merkle_size
            ),
        ));
    }
    checks
}

fn run_checkpoint(db_url: Option<&str>, table: &str, out: Option<&Path>, jobs: usize) -> Run {
    let connector = db::Connector::new(db_url)?;
    let mut client = connector.open()?;
    let whole = take_checkpoint(&mut client, table)?;
    let d = match parent::parse_digest(whole).map_err(unexpected_document)? {
        AnyDigest::Table(d) => *d,
        AnyDigest::Parent(p) => {
            return run_checkpoint_parent(&mut client, &connector, table, &p, out, jobs)
        }
    };
    let to_stdout = out.is_none_or(|p| p.as_os_str() == "-");
    let say = |s: &str| {
        if to_stdout {
            print_err(s)
        } else {
            print_out(s)
        }
    };
    say(&format!(
        "worm-verify: worm.checkpoint recorded ledger entry {} for {}; recomputing it independently\n",
        d.entry.seq, d.table_name
    ));
    let mut tx = db::begin_read(&mut client)?;
    let ro = &db::ReadOpts::new(std::io::stderr().is_terminal(), &connector, &mut tx, jobs)?;
    let (mut data, read) = read_against(&mut tx, table, &d, ro, false)?;
    end_read(tx)?;
    let mut checks = against_checks(&d, &mut data, &read, None).checks;
    // The digest was just taken on this server: its WAL position is in this server's history;
    // a role that may not read the timeline history only gets a note about it.
    checks.retain(|c| !(c.check == "wal" && c.status == Status::Note));
    checks.extend(checkpoint_extra_checks(&d, &data));
    let mut text = format!("  {}\n", d.describe());
    text.push_str(&report::checks_text(&checks));
    // Anything not exactly equal (also a purge in between) means the digest cannot be vouched for.
    if checks.iter().any(|c| c.status != Status::Ok) {
        text.push_str(&format!(
            "REFUSED: the server's digest (ledger entry {}) does not match what worm-verify recomputed from the rows; it is not written. (It is recorded in the ledger all the same.)\n",
            d.entry.seq
        ));
        say(&text);
        return Ok(End::Problems);
    }
    if let Err(e) = write_json(out, &d.whole) {
        say(&text);
        return Err(e.into());
    }
    text.push_str(&format!(
        "OK: the digest matches the rows (heads of {}, Merkle root {}… over {}){}; sign it with `worm-verify sign` and keep it outside the database.\n",
        plural(d.chains.len(), "chain", "chains"),
        short(&d.merkle_root),
        plural(d.merkle_size as usize, "row", "rows"),
        written_to(out)
    ));
    say(&text);
    Ok(End::Verified)
}

// --- partitioned tables -----------------------------------------------------------------------

/// What a partitioned table is read for.
enum ParentMode<'a> {
    /// `table`: every leaf partition verified.
    Plain,
    /// `table --against`: each partition of the digest against its own checkpoint.
    Against {
        digest: &'a ParentDigest,
        required: &'a [[u8; 32]],
    },
    /// `checkpoint`: the digest the server just took, recomputed.
    Checkpoint { digest: &'a ParentDigest },
}

impl ParentMode<'_> {
    fn digest(&self) -> Option<&ParentDigest> {
        match self {
            ParentMode::Plain => None,
            ParentMode::Against { digest, .. } | ParentMode::Checkpoint { digest } => Some(digest),
        }
    }
}

/// Every leaf partition of `rel` verified in the transaction's snapshot (each in a savepoint,
/// so that a partition whose rows cannot be read does not end the others), and with a digest
/// each partition of it checked against its own checkpoint; the digest's partitions that are
/// no longer leaf partitions: detached (verified where they are now), retired (with the
/// ledger's retirement certificate), or missing.
fn read_parent(
    tx: &mut postgres::Transaction<'_>,
    rel: &db::Relation,
    mode: &ParentMode<'_>,
    ro: &db::ReadOpts,
) -> std::result::Result<ParentReport, Failure> {
    db::prepare(tx)?;
    let leaves = db::leaf_partitions(tx, rel.oid)?;
    let digest = mode.digest();
    let mut checks = Vec::new();
    match db::parent_registered(tx, rel.oid)? {
        Some(true) => {}
        Some(false) => checks.push(Check::note(
            "parent",
            format!(
                "{} is not registered in worm.partitioned_tables: partitions created later are not protected automatically",
                rel.sql_name
            ),
        )),
        None => checks.push(Check::note(
            "parent",
            "this pg_worm has no worm.partitioned_tables (older than the protection of partitioned tables): the partitions are checked one by one",
        )),
    }
    if let Some(p) = digest {
        let uids: Vec<[u8; 16]> = leaves.iter().filter_map(|l| l.uid).collect();
        checks.extend(parent::digest_parent_checks(
            p,
            &rel.sql_name,
            &rel.qualified,
            &uids,
        ));
    }
    let wal = match digest {
        Some(_) => db::server_wal(tx)?,
        None => None,
    };
    let mut parts = Vec::new();
    for leaf in &leaves {
        let cp = digest.and_then(|p| leaf.uid.and_then(|u| p.find(&u)));
        parts.push(read_leaf(tx, leaf, cp, mode, wal.as_ref(), ro)?);
    }
    if let Some(p) = digest {
        for d in &p.checkpoints {
            if !leaves.iter().any(|l| l.uid == Some(d.table_uid)) {
                parts.push(read_gone(tx, d, &rel.sql_name, mode, wal.as_ref(), ro)?);
            }
        }
    }
    let mut report = ParentReport {
        parent: rel.sql_name.clone(),
        digest: digest.cloned(),
        checks,
        parts,
        keys_required: matches!(mode, ParentMode::Against { required, .. } if !required.is_empty()),
    };
    report.sort();
    Ok(report)
}

/// One leaf partition: refused when pg_worm does not protect it, else verified (against its
/// checkpoint `cp` when the digest has one).
fn read_leaf(
    tx: &mut postgres::Transaction<'_>,
    leaf: &db::Leaf,
    cp: Option<&Digest>,
    mode: &ParentMode<'_>,
    wal: Option<&core::against::WalPosition>,
    ro: &db::ReadOpts,
) -> std::result::Result<PartResult, Failure> {
    let why = match (leaf.relkind.as_str(), leaf.uid) {
        ("f", _) => Some(format!(
            "{} is a foreign table: its rows are kept outside this database, where pg_worm cannot protect them",
            leaf.display
        )),
        ("r", None) => Some(format!(
            "{} is not protected by pg_worm (it is not in worm.tables): its rows are not chained, so a change to them cannot be detected",
            leaf.display
        )),
        ("r", Some(_)) => None,
        (kind, _) => Some(format!(
            "{} is not an ordinary table (relkind {kind}): pg_worm cannot protect it",
            leaf.display
        )),
    };
    if let Some(why) = why {
        let mut part = PartResult::new(&leaf.display, leaf.uid, PartStatus::NotProtected);
        part.checks.push(Check::problem("protected", why));
        return Ok(part);
    }
    let status = match (mode, cp) {
        (ParentMode::Plain, _) | (_, Some(_)) => PartStatus::Verified,
        (_, None) => PartStatus::New,
    };
    let mut part = verify_part(
        tx,
        TableSel::Oid(leaf.oid),
        &leaf.display,
        status,
        cp,
        mode,
        wal,
        ro,
    )?;
    if status == PartStatus::New {
        part.checks.insert(
            0,
            Check::note(
                "new",
                format!(
                    "{} is not in the digest (created or attached after the checkpoint): verified without it",
                    leaf.display
                ),
            ),
        );
    }
    Ok(part)
}

/// A protected table verified in a savepoint (and against `cp` when given).
#[allow(clippy::too_many_arguments)]
fn verify_part(
    tx: &mut postgres::Transaction<'_>,
    sel: TableSel<'_>,
    name: &str,
    status: PartStatus,
    cp: Option<&Digest>,
    mode: &ParentMode<'_>,
    wal: Option<&core::against::WalPosition>,
    ro: &db::ReadOpts,
) -> std::result::Result<PartResult, Failure> {
    let mut part = PartResult::new(name, None, status);
    let mut sp = tx
        .transaction()
        .map_err(db::pg)
        .context("cannot start a savepoint")?;
    let read = match cp {
        Some(d) => Some(read_ledger_side(
            &mut sp,
            d,
            matches!(mode, ParentMode::Against { .. }),
        )?),
        None => None,
    };
    let previous = match (cp, &read) {
        (Some(d), Some(r)) => core::against::shared_previous(d, r.previous.as_ref()),
        _ => None,
    };
    let against = cp.map(|d| (d, previous.as_ref()));
    match db::verify_table_in(&mut sp, sel, ro, against) {
        Ok(mut data) => {
            if let (Some(d), Some(mut read)) = (cp, read) {
                read.wal = wal.cloned();
                let required: &[[u8; 32]] = match mode {
                    ParentMode::Against { required, .. } => required,
                    _ => &[],
                };
                let signatures = match mode {
                    ParentMode::Against { .. } => d.check_signatures(required),
                    _ => Vec::new(),
                };
                let sigs = matches!(mode, ParentMode::Against { .. })
                    .then_some((signatures.as_slice(), required));
                let outcome = against_checks(d, &mut data, &read, sigs);
                let mut checks = outcome.checks;
                if matches!(mode, ParentMode::Checkpoint { .. }) {
                    checks.retain(|c| !(c.check == "wal" && c.status == Status::Note));
                    checks.extend(checkpoint_extra_checks(d, &data));
                }
                part.against = Some(Against {
                    digest: d.clone(),
                    checks,
                    exact: outcome.comparison.exact(),
                    signatures,
                });
            }
            sp.commit()
                .map_err(db::pg)
                .context("cannot release the savepoint")?;
            part.uid = Some(data.uid);
            part.data = Some(data);
        }
        Err(Failure::Damaged(msg)) => {
            sp.rollback()
                .map_err(db::pg)
                .context("cannot roll back to the savepoint")?;
            part.status = PartStatus::Damaged;
            part.uid = cp.map(|d| d.table_uid);
            part.checks.push(Check::problem("damaged", msg));
        }
        Err(e) => return Err(e),
    }
    Ok(part)
}

/// A partition of the digest that is no longer a leaf partition of the parent.
fn read_gone(
    tx: &mut postgres::Transaction<'_>,
    d: &Digest,
    parent_name: &str,
    mode: &ParentMode<'_>,
    wal: Option<&core::against::WalPosition>,
    ro: &db::ReadOpts,
) -> std::result::Result<PartResult, Failure> {
    let name = if d.table_name.is_empty() {
        format!("table_uid {}", format_uuid(&d.table_uid))
    } else {
        d.table_name.clone()
    };
    if let UidState::Exists(oid) = db::uid_state(tx, &d.table_uid)? {
        let mut part = verify_part(
            tx,
            TableSel::Oid(oid),
            &name,
            PartStatus::Detached,
            Some(d),
            mode,
            wal,
            ro,
        )?;
        part.checks.insert(
            0,
            Check::note(
                "detached",
                format!(
                    "{name} of the digest is no longer a partition of {parent_name} (detached since the checkpoint){}: checked against its checkpoint where it is now",
                    match &part.data {
                        Some(t) if t.summary.table.replace('"', "") != name.replace('"', "") => format!(", now {}", t.summary.table),
                        _ => String::new(),
                    }
                ),
            ),
        );
        return Ok(part);
    }
    let retirements = db::retire_entries(tx, &d.table_uid)?;
    let (retired, mut checks) = parent::retired_checks(&name, d, &retirements);
    // Its checkpoint must carry the signatures asked for, as the others' must.
    if let ParentMode::Against { required, .. } = mode {
        checks.extend(signature_checks(&d.check_signatures(required), required));
    }
    let status = if retired {
        PartStatus::Retired
    } else {
        PartStatus::Missing
    };
    let mut part = PartResult::new(name, Some(d.table_uid), status);
    part.checks = checks;
    Ok(part)
}

fn print_parent(report: &ParentReport, json: bool) -> End {
    if json {
        print_json(&report.to_json());
    } else {
        print_out(&report.to_text());
    }
    End::from_problems(usize::from(!report.ok()))
}

/// `checkpoint` of a partitioned table: each partition's checkpoint recomputed like a single
/// table's; the document is written only when every one matches.
fn run_checkpoint_parent(
    client: &mut postgres::Client,
    connector: &db::Connector,
    table: &str,
    p: &ParentDigest,
    out: Option<&Path>,
    jobs: usize,
) -> Run {
    let to_stdout = out.is_none_or(|p| p.as_os_str() == "-");
    let say = |s: &str| {
        if to_stdout {
            print_err(s)
        } else {
            print_out(s)
        }
    };
    say(&format!(
        "worm-verify: worm.checkpoint recorded the {}; recomputing each partition's independently\n",
        p.describe()
    ));
    let mut tx = db::begin_read(client)?;
    let ro = &db::ReadOpts::new(std::io::stderr().is_terminal(), connector, &mut tx, jobs)?;
    let rel = db::lookup_relation(&mut tx, table)?;
    if !rel.is_partitioned() {
        return Err(End::Problem(format!(
            "worm.checkpoint returned the checkpoint of a partitioned table for {}, which is not one",
            rel.sql_name
        )));
    }
    let report = read_parent(&mut tx, &rel, &ParentMode::Checkpoint { digest: p }, ro)?;
    end_read(tx)?;
    let mut text = report::checks_text(&report.checks);
    let mut rows = 0usize;
    for part in &report.parts {
        text.push_str(&format!(
            "== partition {} ({}) ==\n",
            part.name,
            part.status.as_str()
        ));
        text.push_str(&report::checks_text(&part.checks));
        if let Some(a) = &part.against {
            text.push_str(&format!("  {}\n", a.digest.describe()));
            text.push_str(&report::checks_text(&a.checks));
            rows += a.digest.merkle_size.max(0) as usize;
        } else if let Some(d) = &part.data {
            let places = report::problem_places(&d.rows);
            if !places.is_empty() {
                text.push_str(&format!("  PROBLEM  {}\n", places.join(", ")));
            }
        }
    }
    // As for one table: anything not exactly equal (also a purge, a detach or a retirement
    // in between) means the document cannot be vouched for. A partition created since is
    // not the document's business (it is reported, and verified).
    let vouched = report.ok()
        && report.parts.iter().all(|part| {
            matches!(part.status, PartStatus::Verified | PartStatus::New)
                && part
                    .against
                    .as_ref()
                    .is_none_or(|a| a.checks.iter().all(|c| c.status == Status::Ok))
        });
    if !vouched {
        text.push_str(&format!(
            "REFUSED: the server's checkpoints of {} do not all match what worm-verify recomputed from the rows; the document is not written. (They are recorded in the ledger all the same.)\n",
            rel.sql_name
        ));
        say(&text);
        return Ok(End::Problems);
    }
    if let Err(e) = write_json(out, &p.whole) {
        say(&text);
        return Err(e.into());
    }
    text.push_str(&if p.checkpoints.is_empty() {
        format!(
            "OK: {} has no partitions; the document lists none{}.\n",
            rel.sql_name,
            written_to(out)
        )
    } else {
        format!(
            "OK: the checkpoints of {} of {} match their rows ({} up to their heads){}; sign it with `worm-verify sign` and keep it outside the database.\n",
            plural(p.checkpoints.len(), "partition", "partitions"),
            rel.sql_name,
            plural(rows, "row", "rows"),
            written_to(out)
        )
    });
    say(&text);
    Ok(End::Verified)
}

// --- keygen and sign -------------------------------------------------------------------------

fn sql_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

pub fn keygen(out: &Path, key_id: Option<&str>) -> ExitCode {
    exit_code(run_keygen(out, key_id))
}

fn run_keygen(out: &Path, key_id: Option<&str>) -> Run {
    let key_id = match key_id {
        Some(k) => k.to_owned(),
        None => out
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    if key_id.trim().is_empty() {
        return Err(anyhow!("--key-id must not be empty").into());
    }
    let key = sig::generate()?;
    sig::write_key_file(out, &key)?;
    let pk = hex::encode(key.verifying_key().to_bytes());
    print_out(&format!(
        "secret key written to {} (mode 0600): keep it offline; whoever holds it can sign digests as {key_id}\n\
         public key: {pk}\n\
         register it in the server (a superuser or worm_admin), so that worm.verify(table, digest) counts only digests it signed:\n\
         \x20 SELECT worm.trust_key({}, {});\n",
        out.display(),
        sql_literal(&key_id),
        sql_literal(&pk)
    ));
    Ok(End::Verified)
}

pub fn sign(key_path: &Path, key_id: &str, digest_path: &Path, out: Option<&Path>) -> ExitCode {
    exit_code(run_sign(key_path, key_id, digest_path, out))
}

/// Whether the digest may be signed: its hash recomputes and every signature it carries
/// verifies.
fn signable(d: &Digest, digest_path: &Path) -> std::result::Result<Vec<SigResult>, End> {
    if !d.hash_ok() {
        return Err(End::Problem(format!(
            "refusing to sign {}: its ledger hash does not recompute from its content, so the digest was altered after worm.checkpoint issued it",
            digest_path.display()
        )));
    }
    let results = d.check_signatures(&[]);
    if let Some(bad) = results.iter().find(|r| !r.valid) {
        return Err(End::Problem(format!(
            "refusing to countersign {}: its signature by {} does not verify",
            digest_path.display(),
            bad.key_id
        )));
    }
    Ok(results)
}

fn run_sign(key_path: &Path, key_id: &str, digest_path: &Path, out: Option<&Path>) -> Run {
    if key_id.trim().is_empty() {
        return Err(anyhow!("--key-id must not be empty").into());
    }
    let (key, warning) = sig::read_key_file(key_path)?;
    if let Some(w) = warning {
        print_err(&format!("worm-verify: warning: {w}\n"));
    }
    let d = match load_any_digest(digest_path)? {
        AnyDigest::Table(d) => *d,
        AnyDigest::Parent(p) => return sign_parent(&key, key_id, &p, digest_path, out),
    };
    let results = signable(&d, digest_path)?;
    let pk = key.verifying_key().to_bytes();
    let pk_hex = hex::encode(pk);
    let signed = if results.iter().any(|r| r.public_key == pk_hex) {
        print_err(&format!(
            "worm-verify: {} is already signed by this key; nothing added\n",
            digest_path.display()
        ));
        d.whole.clone()
    } else {
        d.with_signature(key_id, &pk, &sig::sign(&key, &d.entry.hash))
    };
    write_json(out, &signed)?;
    let n = signed
        .get("signatures")
        .and_then(Json::as_array)
        .map_or(0, Vec::len);
    print_err(&format!(
        "worm-verify: signed the checkpoint of {} in ledger entry {} (hash {}…) as {key_id}, public key {pk_hex}; it carries {}{}\n",
        d.table_name,
        d.entry.seq,
        short(&d.entry.hash),
        plural(n, "signature", "signatures"),
        written_to(out)
    ));
    Ok(End::Verified)
}

/// Signs every partition's checkpoint in a partitioned table's document (each is an
/// ordinary digest with a ledger entry of its own); refuses, writing nothing, when any of
/// them may not be signed.
fn sign_parent(
    key: &ed25519_dalek::SigningKey,
    key_id: &str,
    p: &ParentDigest,
    digest_path: &Path,
    out: Option<&Path>,
) -> Run {
    let pk = key.verifying_key().to_bytes();
    let pk_hex = hex::encode(pk);
    let mut whole = p.whole.clone();
    let mut added = 0usize;
    for (i, d) in p.checkpoints.iter().enumerate() {
        let results = signable(d, digest_path).map_err(|e| match e {
            End::Problem(m) => End::Problem(format!(
                "{m} (the checkpoint of partition {} in ledger entry {})",
                d.table_name, d.entry.seq
            )),
            e => e,
        })?;
        if !results.iter().any(|r| r.public_key == pk_hex) {
            whole["checkpoints"][i] = d.with_signature(key_id, &pk, &sig::sign(key, &d.entry.hash));
            added += 1;
        }
    }
    write_json(out, &whole)?;
    print_err(&format!(
        "worm-verify: signed the {} as {key_id}, public key {pk_hex}: {} added{}\n",
        p.describe(),
        plural(added, "signature", "signatures"),
        written_to(out)
    ));
    Ok(End::Verified)
}

// --- proof ------------------------------------------------------------------------------------

pub fn proof(
    proof_path: &Path,
    checkpoint: Option<&Path>,
    db_url: Option<&str>,
    json: bool,
    verbose: bool,
) -> ExitCode {
    exit_code(run_proof(proof_path, checkpoint, db_url, json, verbose))
}

/// How long checking the proof took.
struct ProofTiming {
    check: Duration,
    total: Duration,
    /// The mean of 1000 repeated checks (the first one pays for cold caches).
    mean: Option<Duration>,
}

fn time_mean_check(p: &Proof) -> Duration {
    const RUNS: u32 = 1000;
    let t = Instant::now();
    for _ in 0..RUNS {
        std::hint::black_box(std::hint::black_box(p).check());
    }
    t.elapsed() / RUNS
}

fn run_proof(
    proof_path: &Path,
    checkpoint: Option<&Path>,
    db_url: Option<&str>,
    json: bool,
    verbose: bool,
) -> Run {
    let text = read_text(proof_path)?;
    let t0 = Instant::now();
    let j = parse_json(proof_path, &text)?;
    let p = Proof::parse(&j).map_err(|m| malformed(proof_path, m))?;
    let t1 = Instant::now();
    let outcome = p.check();
    let timing = ProofTiming {
        check: t1.elapsed(),
        total: t0.elapsed(),
        mean: (verbose || json).then(|| time_mean_check(&p)),
    };
    let mut checks = p.offline_checks(outcome);
    match checkpoint {
        Some(path) => checks.extend(p.against_digest(&load_digest(path)?)),
        None => checks.push(Check::note(
            "checkpoint",
            format!(
                "the root was not compared with a digest you keep (use --checkpoint DIGEST.json): the proof only shows inclusion in the checkpoint of ledger entry {} it names",
                p.checkpoint_seq
            ),
        )),
    }
    if let Some(url) = db_url {
        match proof_db_checks(url, &p) {
            Ok(more) => checks.extend(more),
            Err(Failure::Damaged(msg)) => checks.push(Check::problem("row", msg)),
            Err(Failure::Fatal(e)) => return Err(e.into()),
        }
    }
    let json_bytes = text.trim_end().len();
    if json {
        print_json(&proof_json(&p, &checks, &timing, json_bytes));
    } else {
        print_out(&proof_text(&p, &checks, &timing, json_bytes, verbose));
    }
    Ok(End::from_problems(problems(&checks)))
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn proof_json(p: &Proof, checks: &[Check], timing: &ProofTiming, json_bytes: usize) -> Json {
    json!({
        "ok": problems(checks) == 0,
        "table": {"uid": format_uuid(&p.table_uid), "name": p.table_name},
        "row": {"chain": p.chain, "seq": p.seq},
        "checkpoint_ledger_seq": p.checkpoint_seq,
        "checks": checks,
        "proof_bytes": p.binary_size(),
        "proof_json_bytes": json_bytes,
        "path_hashes": p.path.len(),
        "check_micros": micros(timing.check),
        "mean_check_micros": timing.mean.map(micros),
        "parse_and_check_micros": micros(timing.total),
    })
}

fn proof_text(
    p: &Proof,
    checks: &[Check],
    timing: &ProofTiming,
    json_bytes: usize,
    verbose: bool,
) -> String {
    let mut out = format!(
        "worm-verify: inclusion proof of row (chain {}, seq {}) of {} (table_uid {}) in the checkpoint of ledger entry {}\n",
        p.chain,
        p.seq,
        if p.table_name.is_empty() { "?" } else { &p.table_name },
        format_uuid(&p.table_uid),
        p.checkpoint_seq
    );
    out.push_str(&report::checks_text(checks));
    out.push_str(&format!(
        "proof size: {} bytes in binary ({} fixed + {} × 32), {json_bytes} bytes as JSON\n",
        p.binary_size(),
        core::PROOF_FIXED_BYTES,
        p.path.len()
    ));
    if verbose {
        out.push_str(&format!(
            "checked in {:.1} µs (link and {}-hash path; {:.1} µs with JSON parsing; {:.1} µs on average over 1000 repeated checks)\n",
            micros(timing.check),
            p.path.len(),
            micros(timing.total),
            micros(timing.mean.unwrap_or_default())
        ));
    }
    let problems = problems(checks);
    out.push_str(&if problems == 0 {
        format!(
            "OK: row (chain {}, seq {}) was in the table at the checkpoint of ledger entry {}.\n",
            p.chain, p.seq, p.checkpoint_seq
        )
    } else {
        format!(
            "PROBLEMS FOUND: {} in the proof of row (chain {}, seq {}).\n",
            plural(problems, "problem", "problems"),
            p.chain,
            p.seq
        )
    });
    out
}

/// Re-reads the proved row and its checkpoint's ledger entry (read-only, no pg_worm function).
fn proof_db_checks(url: &str, p: &Proof) -> std::result::Result<Vec<Check>, Failure> {
    let mut client = db::connect(Some(url))?;
    let mut tx = db::begin_read(&mut client)?;
    let o = db::open_table(&mut tx, TableSel::Uid(p.table_uid))?;
    let rows = db::fetch_row(&mut tx, &o, p.chain, p.seq)?;
    let anchor = db::anchor_of(&o, p.chain);
    let stored = db::ledger_entry(&mut tx, p.checkpoint_seq)?;
    tx.commit()
        .map_err(db::pg)
        .context("cannot end the read-only transaction")?;
    let pos = format!("row (chain {}, seq {}) of {}", p.chain, p.seq, o.display());
    Ok(p.db_checks(stored.as_ref(), &rows, anchor.map(|a| a.0), &pos))
}

// --- certificate -----------------------------------------------------------------------------

pub fn certificate(cert_path: &Path, db_url: Option<&str>, json: bool) -> ExitCode {
    exit_code(run_certificate(cert_path, db_url, json))
}

fn run_certificate(cert_path: &Path, db_url: Option<&str>, json: bool) -> Run {
    let text = read_text(cert_path)?;
    let c =
        Certificate::parse(parse_json(cert_path, &text)?).map_err(|m| malformed(cert_path, m))?;
    let mut checks = c.offline_checks();
    if let Some(url) = db_url {
        match certificate_db_checks(url, &c) {
            Ok(more) => checks.extend(more),
            Err(Failure::Damaged(msg)) => checks.push(Check::problem("table", msg)),
            Err(Failure::Fatal(e)) => return Err(e.into()),
        }
    }
    let problems = problems(&checks);
    if json {
        print_json(&json!({
            "ok": problems == 0,
            "certificate_id": c.id,
            "ledger_seq": c.entry.seq,
            "table": {"uid": format_uuid(&c.table_uid), "name": c.table_name},
            "checked_against_database": db_url.is_some(),
            "problems": problems,
            "checks": checks,
        }));
    } else {
        print_out(&certificate_text(&c, &checks, db_url.is_some()));
    }
    Ok(End::from_problems(problems))
}

fn certificate_text(c: &Certificate, checks: &[Check], with_db: bool) -> String {
    let mut out = format!("worm-verify: {}\n", c.describe());
    out.push_str(&report::checks_text(checks));
    let problems = problems(checks);
    out.push_str(&if problems == 0 {
        format!(
            "OK: the certificate verifies{}.\n",
            if with_db {
                " (offline and against the database)"
            } else {
                " offline (add --db to check it against the ledger and the table)"
            }
        )
    } else {
        format!(
            "PROBLEMS FOUND: {} in the certificate of ledger entry {}.\n",
            plural(problems, "problem", "problems"),
            c.entry.seq
        )
    });
    out
}

/// Opens the certificate's table and reads its anchors and the rows right after the
/// certificate's anchors; Err(why) when the table cannot be checked.
fn read_cert_table(
    tx: &mut postgres::Transaction<'_>,
    c: &Certificate,
) -> std::result::Result<std::result::Result<CertTable, String>, Failure> {
    let o = match db::open_table(tx, TableSel::Uid(c.table_uid)) {
        Ok(o) => o,
        Err(Failure::Damaged(why)) => return Ok(Err(why)),
        Err(Failure::Fatal(e)) if format!("{e:#}").contains("is protected in this database") => {
            return Ok(Err(format!("{e:#}")))
        }
        Err(e) => return Err(e),
    };
    let mut t = CertTable {
        display: o.display().to_owned(),
        uid: o.uid,
        anchors: BTreeMap::new(),
        first_rows: Some(BTreeMap::new()),
        chain_rows: None,
    };
    for ch in &c.chains {
        if let Some(a) = db::anchor_of(&o, ch.chain) {
            t.anchors.insert(ch.chain, a);
            if a.0 == ch.last_seq {
                let rows = db::fetch_row(tx, &o, ch.chain, a.0 + 1)?;
                t.first_rows
                    .get_or_insert_with(BTreeMap::new)
                    .insert(ch.chain, rows);
            }
        }
    }
    Ok(Ok(t))
}

/// The certificate against worm.ledger, worm.anchors and the table (read-only, no pg_worm
/// function).
fn certificate_db_checks(url: &str, c: &Certificate) -> std::result::Result<Vec<Check>, Failure> {
    let mut client = db::connect(Some(url))?;
    let mut tx = db::begin_read(&mut client)?;
    let entries = db::ledger_all(&mut tx)?;
    let table = read_cert_table(&mut tx, c)?;
    tx.commit()
        .map_err(db::pg)
        .context("cannot end the read-only transaction")?;
    let mut checks = c.ledger_checks(&entries);
    checks.extend(c.table_checks(&entries, table.as_ref().map_err(Clone::clone)));
    Ok(checks)
}

// --- timestamp ------------------------------------------------------------------------------

/// `--tsa-cert ROOT.pem` (and `--tsr FILE`) of the commands that check a digest.
#[derive(Debug, Default, Clone, Copy)]
pub struct TsaCheck<'a> {
    /// The root certificate(s) the TSA must chain to; None: time-stamps are not checked.
    pub root: Option<&'a Path>,
    /// The token, when not beside the digest as DIGEST.tsr.
    pub tsr: Option<&'a Path>,
}

impl TsaCheck<'_> {
    fn roots(&self) -> Result<Option<Vec<openssl::x509::X509>>> {
        self.root
            .map(|p| tsa::load_roots(p).context("--tsa-cert"))
            .transpose()
    }
}

/// Where a digest's token is: `--tsr`, else DIGEST.tsr beside it.
fn tsr_path(digest_path: &Path, tsr: Option<&Path>) -> std::path::PathBuf {
    match tsr {
        Some(p) => p.to_path_buf(),
        None => {
            let mut s = digest_path.as_os_str().to_owned();
            s.push(".tsr");
            s.into()
        }
    }
}

/// The checks of a digest's time-stamp token against the trusted roots; a missing or
/// unreadable token is a finding. The token too, when it could be read.
fn timestamp_checks(
    d: &Digest,
    digest_path: &Path,
    tsr: Option<&Path>,
    roots: &[openssl::x509::X509],
) -> (Vec<Check>, Option<pg_worm_core::timestamp::Token>) {
    let path = tsr_path(digest_path, tsr);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) => {
            return (
                vec![Check::problem(
                    "timestamp",
                    format!(
                        "--tsa-cert was given but the time-stamp token {} cannot be read ({e}): the digest's time is not proved",
                        path.display()
                    ),
                )],
                None,
            )
        }
    };
    match pg_worm_core::timestamp::parse_any(&bytes) {
        Ok(t) => (tsa::verify(&t, &d.entry.hash, d.entry.seq, roots), Some(t)),
        Err(e) => (
            vec![Check::problem(
                "timestamp",
                format!("{} is not a usable time-stamp: {e}", path.display()),
            )],
            None,
        ),
    }
}

fn timestamp_json(t: &pg_worm_core::timestamp::Token, ok: bool) -> Json {
    json!({
        "ok": ok,
        "gen_time": t.time_text(),
        "tsa": t.tsa_name(),
        "serial": t.serial_hex(),
        "policy": t.policy,
    })
}

/// `worm-verify timestamp`: with `--tsa URL`, ask the TSA for a time-stamp of the digest and
/// write its answer to DIGEST.tsr (or --out); without, check the token already there. With
/// `--tsa-cert`, the token is verified cryptographically; with `--attach`, recorded in the
/// server's ledger (worm.attach_timestamp).
pub struct TimestampArgs<'a> {
    pub digest: &'a Path,
    pub url: Option<&'a str>,
    pub out: Option<&'a Path>,
    pub check: TsaCheck<'a>,
    pub attach: bool,
    pub db: Option<&'a str>,
}

pub fn timestamp(a: &TimestampArgs<'_>) -> ExitCode {
    exit_code(run_timestamp(a))
}

fn run_timestamp(a: &TimestampArgs<'_>) -> Run {
    let d = match load_any_digest(a.digest)? {
        AnyDigest::Table(d) => *d,
        AnyDigest::Parent(p) => {
            return Err(anyhow!(
                "{} is the document of partitioned table {}: time-stamp each partition's checkpoint (one digest per file)",
                a.digest.display(),
                p.parent
            )
            .into())
        }
    };
    if !d.hash_ok() {
        return Err(End::Problem(format!(
            "refusing to time-stamp {}: its ledger hash does not recompute from its content, so the digest was altered after worm.checkpoint issued it",
            a.digest.display()
        )));
    }
    if a.url.is_none() && a.check.root.is_none() && !a.attach {
        return Err(anyhow!(
            "nothing to do: give --tsa URL to ask for a time-stamp, --tsa-cert ROOT.pem to check the token, or --attach to record it"
        )
        .into());
    }
    let roots = a.check.roots()?;
    let mut text = format!(
        "worm-verify: time-stamp of the {}, hash {}\n",
        d.describe(),
        hex::encode(d.entry.hash)
    );
    let (reply, token, tsr) = match a.url {
        Some(url) => {
            let nonce = tsa::nonce()?;
            let req = pg_worm_core::timestamp::request_der(&d.entry.hash, &nonce)
                .map_err(|e| anyhow!("cannot encode the request: {e}"))?;
            let reply = tsa::post(url, &req)?;
            let token = match tsa::check_reply(&reply, &nonce, &d.entry.hash, d.entry.seq) {
                Ok(t) => t,
                Err(why) => {
                    text.push_str(&format!("  PROBLEM  {why}\n"));
                    text.push_str(&format!(
                        "PROBLEMS FOUND: {url} gave no usable time-stamp; nothing was written.\n"
                    ));
                    print_out(&text);
                    return Ok(End::Problems);
                }
            };
            text.push_str(&format!(
                "  ok       {url} granted a time-stamp for it (nonce and imprint match the request)\n"
            ));
            let out = tsr_path(a.digest, a.out);
            (Some(reply), token, out)
        }
        None => {
            let path = tsr_path(a.digest, a.check.tsr.or(a.out));
            let bytes = std::fs::read(&path)
                .with_context(|| format!("cannot read the time-stamp token {}", path.display()))?;
            match pg_worm_core::timestamp::parse_any(&bytes) {
                Ok(t) => (None, t, path),
                Err(e) => {
                    text.push_str(&format!(
                        "  PROBLEM  {} is not a usable time-stamp: {e}\n",
                        path.display()
                    ));
                    text.push_str("PROBLEMS FOUND: 1 problem in the time-stamp.\n");
                    print_out(&text);
                    return Ok(End::Problems);
                }
            }
        }
    };
    let mut checks = match &roots {
        Some(roots) => tsa::verify(&token, &d.entry.hash, d.entry.seq, roots),
        None => vec![
            token.imprint_check(&d.entry.hash, d.entry.seq),
            Check::note(
                "timestamp time",
                format!(
                    "the token says it was made at {} by {}; its signature and certificate were not checked (give --tsa-cert ROOT.pem)",
                    token.time_text(),
                    token.tsa_name()
                ),
            ),
        ],
    };
    let problems_before = problems(&checks);
    let mut written = String::new();
    if let Some(reply) = &reply {
        if problems_before == 0 {
            write_bytes(&tsr, reply)?;
            written = format!(", written to {}", tsr.display());
        }
    }
    if a.attach && problems_before == 0 {
        match attach(a.db, &d, &token.der) {
            Ok(seq) => checks.push(Check::ok(
                "timestamp ledger",
                format!("recorded in the server's ledger as entry {seq} (worm.attach_timestamp)"),
            )),
            Err(End::Error(e)) => {
                text.push_str(&report::checks_text(&checks));
                print_out(&text);
                return Err(End::Error(e.context(format!(
                    "the token{written} could not be recorded in the ledger"
                ))));
            }
            Err(e) => return Err(e),
        }
    }
    text.push_str(&report::checks_text(&checks));
    let n = problems(&checks);
    text.push_str(&if n == 0 {
        format!(
            "OK: the checkpoint of ledger entry {} was time-stamped at {} by {}{}{}.\n",
            d.entry.seq,
            token.time_text(),
            token.tsa_name(),
            if roots.is_some() {
                " (signature and certificate chain verified)"
            } else {
                " (not verified: no --tsa-cert)"
            },
            written
        )
    } else {
        format!(
            "PROBLEMS FOUND: {} in the time-stamp of the checkpoint of ledger entry {}{}.\n",
            plural(n, "problem", "problems"),
            d.entry.seq,
            if reply.is_some() {
                "; nothing was written"
            } else {
                ""
            }
        )
    });
    print_out(&text);
    Ok(End::from_problems(n))
}

/// `checkpoint --tsa URL`: the checkpoint as usual (written to OUT only when it matches),
/// then its time-stamp, written to OUT.tsr and recorded in the ledger.
pub fn checkpoint_and_stamp(
    db_url: Option<&str>,
    table: &str,
    out: &Path,
    jobs: usize,
    url: &str,
    check: TsaCheck<'_>,
) -> ExitCode {
    exit_code(
        run_checkpoint(db_url, table, Some(out), jobs).and_then(|end| match end {
            End::Verified => run_timestamp(&TimestampArgs {
                digest: out,
                url: Some(url),
                out: None,
                check,
                attach: true,
                db: db_url,
            }),
            other => Ok(other),
        }),
    )
}

/// Writes bytes atomically (a temporary file in the same directory, then a rename).
pub(crate) fn write_bytes(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let tmp = dir.join(format!(".{name}.worm-verify.{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        anyhow!("cannot write {}: {e}", path.display())
    })
}

/// `SELECT worm.attach_timestamp(digest, token)` in its own read-write transaction: the
/// ledger seq of the `timestamp` entry.
fn attach(db_url: Option<&str>, d: &Digest, token: &[u8]) -> Run<i64> {
    let mut client = db::connect(db_url)?;
    let digest = serde_json::to_string(&d.whole).context("cannot serialise the digest")?;
    let mut tx = client
        .build_transaction()
        .read_only(false)
        .start()
        .map_err(db::pg)
        .context("cannot start a read-write transaction for worm.attach_timestamp")?;
    let row = tx
        .query_one(
            "SELECT (worm.attach_timestamp($1::pg_catalog.text::pg_catalog.jsonb, $2::pg_catalog.bytea) \
                     OPERATOR(pg_catalog.#>>) '{ledger_entry,seq}')::pg_catalog.int8",
            &[&digest, &token],
        )
        .map_err(db::pg)
        .context("SELECT worm.attach_timestamp(..) failed")?;
    let seq: i64 = row.try_get(0).map_err(db::pg)?;
    tx.commit()
        .map_err(db::pg)
        .context("cannot commit worm.attach_timestamp")?;
    Ok(seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> pg_worm_core::ChainRow {
        pg_worm_core::ChainRow {
            chain: Some(0),
            rows_checked: 5,
            ok: true,
            first_bad_seq: None,
            detail: "ok: 5 rows, head at seq 5".into(),
            problems: 0,
            head_seq: Some(5),
            head_link: None,
            whole_table: false,
        }
    }

    #[test]
    fn checkpoint_problems_merge_into_chain_rows() {
        let mut r = row();
        r.add_problem(Some(6), "chain 0 is shorter than its checkpoint: rows 6..12 removed (tail cut, rollback or older backup)");
        assert!(!r.ok);
        assert_eq!(r.problems, 1);
        assert_eq!(r.first_bad_seq, Some(6));
        assert!(r.detail.starts_with("chain 0 is shorter"));
        r.add_problem(Some(3), "x");
        assert_eq!(r.first_bad_seq, Some(3));
        assert_eq!(r.problems, 2);
        assert!(r.detail.ends_with("; x"));
    }

    #[test]
    fn sql_literals_are_quoted() {
        assert_eq!(sql_literal("jane's key"), "'jane''s key'");
    }

    #[test]
    fn ledger_check_wording() {
        let d = Digest::parse(pg_worm_core::fixtures::digest_json(
            9,
            &[(1, Some([1; 32]))],
            [2; 32],
            1,
        ))
        .expect("valid");
        let e = LedgerEntry {
            seq: 9,
            document: d.document().clone(),
            prev: d.entry.prev.to_vec(),
            hash: d.entry.hash.to_vec(),
        };
        assert_eq!(ledger_check(Some(&e), None, &d).status, Status::Ok);
        let mut other = e.clone();
        other.hash = vec![0; 32];
        assert!(ledger_check(Some(&other), None, &d)
            .detail
            .contains("rewritten or replaced"));
        let mut altered = e.clone();
        altered.document["rows"] = json!(99);
        assert!(ledger_check(Some(&altered), None, &d)
            .detail
            .contains("the ledger's copy was altered"));
        let c = ledger_check(None, Some(7), &d);
        assert_eq!(c.status, Status::Problem);
        assert!(c.detail.contains("ends at entry 7"), "{}", c.detail);
    }

    #[test]
    fn sign_refuses_altered_digests_and_countersigns_good_ones() {
        use pg_worm_core::fixtures::digest_json;
        let dir = std::env::temp_dir().join(format!("wv-sign-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let (jane, bob) = (dir.join("jane.key"), dir.join("bob.key"));
        sig::write_key_file(&jane, &sig::generate().expect("key")).expect("jane");
        sig::write_key_file(&bob, &sig::generate().expect("key")).expect("bob");
        let d = dir.join("d.json");
        let j = digest_json(9, &[(3, Some([1; 32]))], [2; 32], 3);
        write_json(Some(&d), &j).expect("digest");
        let s = dir.join("s.json");
        assert_eq!(sign(&jane, "jane", &d, Some(&s)), ExitCode::SUCCESS);
        assert_eq!(sign(&bob, "bob", &s, Some(&s)), ExitCode::SUCCESS);
        let signed = load_digest(&s).expect("signed digest");
        assert!(signed.hash_ok());
        let results = signed.check_signatures(&[]);
        assert_eq!(results.len(), 2);
        assert!(results.iter().all(|r| r.valid));
        // Altered: refused, nothing written.
        let mut altered = j.clone();
        altered["checkpoint"]["rows"] = json!(4);
        let a = dir.join("a.json");
        write_json(Some(&a), &altered).expect("altered");
        let out = dir.join("never.json");
        assert_eq!(sign(&jane, "jane", &a, Some(&out)), ExitCode::from(1));
        assert!(!out.exists());
        // A digest carrying a signature that does not verify: no countersignature.
        let mut forged: Json =
            serde_json::from_str(&std::fs::read_to_string(&s).expect("read")).expect("json");
        forged["signatures"][0]["signature"] = json!(hex::encode([7u8; 64]));
        let f = dir.join("f.json");
        write_json(Some(&f), &forged).expect("forged");
        assert_eq!(sign(&bob, "bob", &f, Some(&out)), ExitCode::from(1));
        // Not a digest, no key: cannot be done.
        assert_eq!(sign(&jane, "jane", &jane, Some(&out)), ExitCode::from(2));
        assert_eq!(
            sign(&dir.join("none.key"), "x", &d, Some(&out)),
            ExitCode::from(2)
        );
        assert_eq!(sign(&jane, " ", &d, Some(&out)), ExitCode::from(2));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn sign_signs_every_partition_of_a_parent_document() {
        use crate::parent::tests::parent_doc;
        let dir = std::env::temp_dir().join(format!("wv-psign-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let jane = dir.join("jane.key");
        sig::write_key_file(&jane, &sig::generate().expect("key")).expect("jane");
        let d = dir.join("p.json");
        write_json(Some(&d), &parent_doc()).expect("parent");
        let s = dir.join("s.json");
        assert_eq!(sign(&jane, "jane", &d, Some(&s)), ExitCode::SUCCESS);
        // Signing again with the same key adds nothing.
        assert_eq!(sign(&jane, "jane", &s, Some(&s)), ExitCode::SUCCESS);
        let signed = match load_any_digest(&s).expect("signed") {
            AnyDigest::Parent(p) => p,
            AnyDigest::Table(_) => panic!("a parent's document"),
        };
        assert_eq!(signed.parent, "public.audit");
        assert_eq!(signed.checkpoints.len(), 2);
        for c in &signed.checkpoints {
            let r = c.check_signatures(&[]);
            assert_eq!(r.len(), 1, "one signature per partition");
            assert!(r[0].valid && r[0].key_id == "jane");
        }
        // One partition's checkpoint altered: nothing is signed, nothing written.
        let mut altered = parent_doc();
        altered["checkpoints"][1]["checkpoint"]["rows"] = json!(99);
        write_json(Some(&d), &altered).expect("altered");
        let out = dir.join("never.json");
        assert_eq!(sign(&jane, "jane", &d, Some(&out)), ExitCode::from(1));
        assert!(!out.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn proof_and_certificate_commands_offline() {
        use pg_worm_core::fixtures::{certificate_json, proof_json};
        let dir = std::env::temp_dir().join(format!("wv-docs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let p = dir.join("p.json");
        write_json(Some(&p), &proof_json(33, 17)).expect("proof");
        assert_eq!(proof(&p, None, None, true, true), ExitCode::SUCCESS);
        let mut bad = proof_json(33, 17);
        bad["path"][1] = json!(hex::encode([0u8; 32]));
        write_json(Some(&p), &bad).expect("proof");
        assert_eq!(proof(&p, None, None, true, false), ExitCode::from(1));
        let c = dir.join("c.json");
        write_json(Some(&c), &certificate_json()).expect("cert");
        assert_eq!(certificate(&c, None, true), ExitCode::SUCCESS);
        let mut edited = certificate_json();
        edited["certificate"]["removed"]["rows"] = json!(1);
        write_json(Some(&c), &edited).expect("cert");
        assert_eq!(certificate(&c, None, true), ExitCode::from(1));
        std::fs::write(&c, "{not json").expect("write");
        assert_eq!(certificate(&c, None, true), ExitCode::from(2));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn json_files_are_written_atomically() {
        let dir = std::env::temp_dir().join(format!("wv-out-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let p = dir.join("d.json");
        write_json(Some(&p), &json!({"a": 1})).expect("written");
        write_json(Some(&p), &json!({"a": 2})).expect("replaced");
        let back: Json =
            serde_json::from_str(&std::fs::read_to_string(&p).expect("read")).expect("json");
        assert_eq!(back["a"], 2);
        assert_eq!(
            std::fs::read_dir(&dir).expect("dir").count(),
            1,
            "no temp file left"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
