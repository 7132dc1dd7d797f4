//! The batch chain verifier as it was before streaming verification (pg_worm 0.2.0's
//! `verify_chain`, kept verbatim): the reference the streaming [`super::ChainVerifier`] and
//! today's `verify_chain` are tested against. Test-only.

use super::{Anchor, ChainReport, RowRecord};
use crate::{link, Hash, GENESIS};

/// How many problems `detail` spells out before summarising the rest.
const DETAIL_PROBLEMS: usize = 5;
/// Positions around a broken row searched for an alternative explanation of its link.
const SEARCH_WINDOW: i64 = 4;
/// At most this many broken rows get the (bounded, but not free) alternative-link search.
const SEARCH_BUDGET: usize = 1000;

#[derive(Debug, Clone, Copy)]
enum StoredLink {
    Valid(Hash),
    Null,
    BadLength(usize),
}

impl StoredLink {
    fn valid(&self) -> Option<&Hash> {
        match self {
            StoredLink::Valid(h) => Some(h),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
struct Rec {
    seq: i64,
    inserted_at: Option<i64>,
    link: StoredLink,
    row_hash: Hash,
}

/// What a row's "previous link" is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pred {
    /// GENESIS: the chain start (seq 1, no purge).
    Start,
    /// The purge anchor at this seq.
    Anchor(i64),
    /// The row at this seq.
    Row(i64),
}

impl Pred {
    fn name(self) -> String {
        match self {
            Pred::Start => "the chain start (genesis)".to_owned(),
            Pred::Anchor(a) => format!("the purge anchor at {a}"),
            Pred::Row(s) => format!("row {s}"),
        }
    }
}

/// The link a row is checked against, and what it belongs to.
#[derive(Debug, Clone, Copy)]
struct Before<'a> {
    link: &'a Hash,
    pred: Pred,
    /// Whether that previous row's own link failed to verify.
    failed: bool,
}

#[derive(Debug)]
struct Problem {
    seq: Option<i64>,
    weight: i64,
    message: String,
}

struct Ctx<'a> {
    uid: &'a [u8; 16],
    chain: i32,
    anchor: Option<&'a Anchor>,
    recs: Vec<Rec>,
    /// (seq, indices into `recs`), ascending by seq.
    groups: Vec<(i64, Vec<usize>)>,
}

impl Ctx<'_> {
    /// Does `rec`, placed at `seq` after `prev`, reproduce its stored link?
    fn fits(&self, rec: &Rec, seq: i64, prev: &Hash) -> bool {
        match (rec.inserted_at, rec.link.valid()) {
            (Some(at), Some(stored)) => {
                link(self.uid, self.chain, seq, at, prev, &rec.row_hash) == *stored
            }
            _ => false,
        }
    }

    /// Does some row at `seq + 1` link to `stored` (i.e. vouch for it)?
    fn vouched(&self, next: Option<&(i64, Vec<usize>)>, seq: i64, stored: &Hash) -> bool {
        let Some((_, members)) = next else {
            return false;
        };
        let Some(succ_seq) = seq.checked_add(1) else {
            return false;
        };
        members
            .iter()
            .any(|&m| self.fits(&self.recs[m], succ_seq, stored))
    }

    /// Links near position `seq` that a broken row may have been linked over, with a name.
    fn nearby_links(&self, seq: i64, skip: usize) -> Vec<(Hash, String)> {
        let lo = seq.saturating_sub(SEARCH_WINDOW + 1);
        let hi = seq.saturating_add(SEARCH_WINDOW);
        let from = self.groups.partition_point(|g| g.0 < lo);
        let mut out = Vec::new();
        for (gseq, members) in self.groups[from..].iter().take_while(|g| g.0 <= hi) {
            for &m in members {
                if m == skip {
                    continue;
                }
                if let Some(h) = self.recs[m].link.valid() {
                    let name = if gseq.checked_add(1) == Some(seq) {
                        format!("another row at seq {gseq}")
                    } else {
                        format!("the row now at seq {gseq}")
                    };
                    out.push((*h, name));
                }
            }
        }
        out.push((GENESIS, Pred::Start.name()));
        if let Some(a) = self.anchor {
            out.push((a.link, Pred::Anchor(a.seq).name()));
        }
        out
    }

    /// Explains why the row `idx` at `seq` does not reproduce its stored link over `before`.
    fn classify(
        &self,
        idx: usize,
        seq: i64,
        before: Before<'_>,
        next: Option<&(i64, Vec<usize>)>,
        search: bool,
    ) -> String {
        let Before {
            link: prev,
            pred,
            failed: pred_failed,
        } = before;
        let rec = &self.recs[idx];
        if search {
            let candidates = self.nearby_links(seq, idx);
            // Same position, another previous link: linked over the wrong row.
            for (h, name) in &candidates {
                if h != prev && self.fits(rec, seq, h) {
                    return format!(
                        "row {seq} does not link to {}: inserted out of chain (its link was made \
                         over {name})",
                        pred.name()
                    );
                }
            }
            // Another position: the row was moved (reordered or renumbered).
            let lo = seq.saturating_sub(SEARCH_WINDOW);
            let hi = seq.saturating_add(SEARCH_WINDOW);
            for t in lo..=hi {
                if t == seq {
                    continue;
                }
                let placed = std::iter::once(prev).chain(candidates.iter().map(|(h, _)| h));
                for h in placed {
                    if self.fits(rec, t, h) {
                        return format!(
                            "row {seq} is out of place: its stored link was made for position {t} \
                             (rows reordered or renumbered)"
                        );
                    }
                }
            }
        }
        let Some(stored) = rec.link.valid() else {
            return format!("row {seq} has no valid stored link");
        };
        if self.vouched(next, seq, stored) {
            // The next row links to this row's stored link, so that link is genuine.
            match pred {
                Pred::Row(p) if pred_failed => format!(
                    "row {seq} does not link to row {p}: row {p} was replaced or had its stored \
                     link altered (or both rows were changed)"
                ),
                Pred::Anchor(a) => format!(
                    "row {seq} does not link to the purge anchor at {a}: the anchor's link is \
                     wrong, or row {seq} was changed"
                ),
                _ => {
                    format!("row {seq} was changed: its content no longer matches its stored link")
                }
            }
        } else if next.is_none() {
            format!(
                "row {seq} does not match its stored link over {}: it was changed, replaced or \
                 inserted out of chain, or its stored link altered (no later row confirms which)",
                pred.name()
            )
        } else {
            format!(
                "row {seq} does not link to {}: it was replaced or inserted out of chain, or its \
                 stored link altered",
                pred.name()
            )
        }
    }
}

/// Verifies one chain and reports every problem found.
///
/// `rows` may come in any order; they are sorted by `seq` here. With `anchor` `None` the chain
/// starts at seq 1, whose previous link is [`GENESIS`]; with an anchor, rows up to and
/// including `anchor.seq` were purged and the row at `anchor.seq + 1` links to `anchor.link`.
///
/// Each row's link is recomputed as `link(uid, chain, seq, inserted_at, prev, row_hash)` where
/// `prev` is the *stored* link of the row before it, and compared with its stored link.
/// Problems found (all of them, each counted in `problems`):
///
/// * a row without a position (NULL `worm_seq`), insertion time or link, or a link that is not
///   32 bytes;
/// * a row at or before the purge anchor (or before seq 1);
/// * a position held by more than one row (two rows linking to the same predecessor is a fork);
/// * missing rows (a gap in the sequence, or missing first rows);
/// * a row whose link does not verify, classified as
///   * *changed*: the next row still links to its stored link, so that link is genuine and the
///     row's content or insertion time changed (when the previous row is itself broken, the
///     message says the previous row may have been replaced instead; after a purge anchor,
///     that the anchor may be wrong);
///   * *does not link to its predecessor*: its link verifies over another nearby row's link
///     (or the genesis or anchor value): inserted out of chain;
///   * *out of place*: its link verifies for another nearby position: rows reordered or
///     renumbered;
///   * otherwise *does not link to its predecessor* (replaced, inserted out of chain or its
///     stored link altered), or, for the last row, which no later row confirms, all of these.
///
/// A row that follows a gap or a row without a valid link cannot be checked. `first_bad_seq`
/// is the smallest position involved in any problem; `detail` spells out the first few
/// problems (position-less rows first, then by position), then "... and N more problems".
/// `head_seq`/`head_link` are the last row's position and stored link (the anchor's when no
/// row follows it); `head_link` is `None` when that stored link is not 32 bytes.
///
/// Limits, by construction of an unkeyed hash chain:
///
/// * A removed **tail** (the newest rows) cannot be detected here: the remaining chain is
///   valid. Only comparing the head with an earlier checkpoint (digest) detects it.
/// * Someone who rewrites rows *and* recomputes every following link leaves a valid chain;
///   again only a checkpoint detects it. Someone who recomputes the link of one replaced row
///   only makes its successor look "changed".
pub(crate) fn verify_chain(
    table_uid: &[u8; 16],
    chain: i32,
    anchor: Option<&Anchor>,
    rows: Vec<RowRecord>,
) -> ChainReport {
    let rows_checked = i64::try_from(rows.len()).unwrap_or(i64::MAX);
    let start = anchor.map_or(1, |a| a.seq.saturating_add(1));
    let mut problems: Vec<Problem> = unplaced_problem(&rows).into_iter().collect();
    let recs = placed_records(rows);
    let first_chained = recs.partition_point(|r| r.seq < start);
    problems.extend(before_start_problems(&recs[..first_chained], anchor));
    let groups = group_by_seq(&recs, first_chained);
    let ctx = Ctx {
        uid: table_uid,
        chain,
        anchor,
        recs,
        groups,
    };
    let mut walk = Walk::new(anchor, start);
    for gi in 0..ctx.groups.len() {
        walk.step(&ctx, gi, &mut problems);
    }
    let (head_seq, head_link) = match (walk.head, anchor) {
        (Some((s, l)), _) => (Some(s), l),
        (None, Some(a)) => (Some(a.seq), Some(a.link)),
        (None, None) => (None, None),
    };

    // NULL-position problems first, then by position (stable within a position).
    problems.sort_by_key(|p| p.seq.map_or((0, 0), |s| (1, s)));
    let total: i64 = problems.iter().map(|p| p.weight).sum();
    let detail = if problems.is_empty() {
        ok_detail(ctx.recs.len() - first_chained, head_seq, anchor)
    } else {
        problems_detail(&problems, total)
    };
    ChainReport {
        chain,
        rows_checked,
        ok: problems.is_empty(),
        first_bad_seq: problems.iter().filter_map(|p| p.seq).min(),
        problems: total,
        head_seq,
        head_link,
        detail,
    }
}

fn problem(seq: i64, message: String) -> Problem {
    Problem {
        seq: Some(seq),
        weight: 1,
        message,
    }
}

/// Rows without a position (NULL worm_seq), as one problem.
fn unplaced_problem(rows: &[RowRecord]) -> Option<Problem> {
    let unplaced = rows.iter().filter(|r| r.seq.is_none()).count();
    (unplaced > 0).then(|| Problem {
        seq: None,
        weight: i64::try_from(unplaced).unwrap_or(i64::MAX),
        message: if unplaced == 1 {
            "a row has no chain position (NULL worm_seq)".to_owned()
        } else {
            format!("{unplaced} rows have no chain position (NULL worm_seq)")
        },
    })
}

/// The rows with a position, sorted by it (stable: duplicates keep their input order).
fn placed_records(rows: Vec<RowRecord>) -> Vec<Rec> {
    let mut recs: Vec<Rec> = rows
        .into_iter()
        .filter_map(|r| {
            let seq = r.seq?;
            let link = match r.stored_link {
                None => StoredLink::Null,
                Some(v) => match <Hash>::try_from(v.as_slice()) {
                    Ok(h) => StoredLink::Valid(h),
                    Err(_) => StoredLink::BadLength(v.len()),
                },
            };
            Some(Rec {
                seq,
                inserted_at: r.inserted_at,
                link,
                row_hash: r.row_hash,
            })
        })
        .collect();
    recs.sort_by_key(|r| r.seq);
    recs
}

/// Rows before the start of the chain: at or before the purge anchor, or before seq 1.
fn before_start_problems(early: &[Rec], anchor: Option<&Anchor>) -> Vec<Problem> {
    early
        .iter()
        .map(|r| {
            let message = match anchor {
                Some(a) if r.seq < a.seq => {
                    format!("row {} precedes the purge anchor at {}", r.seq, a.seq)
                }
                Some(a) => format!(
                    "row {} is the purge anchor's row, which was purged (anchor at {})",
                    r.seq, a.seq
                ),
                None => format!(
                    "row {} has an impossible position (worm_seq starts at 1)",
                    r.seq
                ),
            };
            problem(r.seq, message)
        })
        .collect()
}

/// (seq, indices into `recs`) from `from` on, ascending by seq.
fn group_by_seq(recs: &[Rec], from: usize) -> Vec<(i64, Vec<usize>)> {
    let mut groups: Vec<(i64, Vec<usize>)> = Vec::new();
    for (i, r) in recs.iter().enumerate().skip(from) {
        match groups.last_mut() {
            Some((s, members)) if *s == r.seq => members.push(i),
            _ => groups.push((r.seq, vec![i])),
        }
    }
    groups
}

/// The walk along the chain's positions, one group of rows at a time.
struct Walk {
    /// The stored link the next row must link to, and whose it is (None after a gap or a
    /// row without a valid link: the next row cannot be checked).
    prev: Option<(Hash, Pred)>,
    expected: i64,
    searches: usize,
    prev_failed: bool,
    head: Option<(i64, Option<Hash>)>,
}

impl Walk {
    fn new(anchor: Option<&Anchor>, start: i64) -> Walk {
        Walk {
            prev: Some(match anchor {
                Some(a) => (a.link, Pred::Anchor(a.seq)),
                None => (GENESIS, Pred::Start),
            }),
            expected: start,
            searches: 0,
            prev_failed: false,
            head: None,
        }
    }

    /// Checks the rows at group `gi`'s position.
    fn step(&mut self, ctx: &Ctx<'_>, gi: usize, problems: &mut Vec<Problem>) {
        let (seq, members) = (ctx.groups[gi].0, &ctx.groups[gi].1);
        if seq > self.expected {
            problems.push(gap_problem(self.expected, seq));
            self.prev = None;
        }
        let next = ctx
            .groups
            .get(gi + 1)
            .filter(|g| seq.checked_add(1) == Some(g.0));
        let chosen = if members.len() == 1 {
            members[0]
        } else {
            let (best, dup) = self.choose(ctx, seq, members, next);
            problems.push(dup);
            best
        };
        let rec = &ctx.recs[chosen];
        let mut failed = false;
        let unusable = stored_value_problems(rec, seq);
        let checkable = unusable.is_empty();
        problems.extend(unusable);
        if let (true, Some((p, pred))) = (checkable, &self.prev) {
            if !ctx.fits(rec, seq, p) {
                failed = true;
                let search = self.searches < SEARCH_BUDGET;
                self.searches += 1;
                let before = Before {
                    link: p,
                    pred: *pred,
                    failed: self.prev_failed,
                };
                problems.push(problem(
                    seq,
                    ctx.classify(chosen, seq, before, next, search),
                ));
            }
        }
        self.prev = rec.link.valid().map(|h| (*h, Pred::Row(seq)));
        self.prev_failed = failed;
        self.head = Some((seq, rec.link.valid().copied()));
        self.expected = seq.saturating_add(1);
    }

    /// Several rows at one position: the member that best continues the chain, and the
    /// problem saying so.
    fn choose(
        &self,
        ctx: &Ctx<'_>,
        seq: i64,
        members: &[usize],
        next: Option<&(i64, Vec<usize>)>,
    ) -> (usize, Problem) {
        let score = |m: usize| {
            let r = &ctx.recs[m];
            let fits = self.prev.as_ref().is_some_and(|(p, _)| ctx.fits(r, seq, p));
            let vouched = r.link.valid().is_some_and(|h| ctx.vouched(next, seq, h));
            u8::from(fits) * 2 + u8::from(vouched)
        };
        let mut best = members[0];
        let mut best_score = score(best);
        for &m in &members[1..] {
            let s = score(m);
            if s > best_score {
                best = m;
                best_score = s;
            }
        }
        let mut fitting: Vec<&Hash> = match &self.prev {
            Some((p, _)) => members
                .iter()
                .map(|&m| &ctx.recs[m])
                .filter(|r| ctx.fits(r, seq, p))
                .filter_map(|r| r.link.valid())
                .collect(),
            None => Vec::new(),
        };
        let n_fitting = fitting.len();
        fitting.sort_unstable();
        fitting.dedup();
        let note = match (n_fitting, fitting.len()) {
            (0, _) => String::new(),
            (1, _) => " (only one of them links into the chain)".to_owned(),
            (n, 1) => format!(" ({n} identical copies)"),
            (n, _) => format!(" ({n} of them link to the same predecessor: a forked chain)"),
        };
        let message = format!("row {seq} appears {} times{note}", members.len());
        (best, problem(seq, message))
    }
}

/// Rows `expected..seq` are missing.
fn gap_problem(expected: i64, seq: i64) -> Problem {
    let missing = i128::from(seq) - i128::from(expected);
    let message = if missing == 1 {
        format!("row {expected} is missing")
    } else {
        format!("rows {expected}..{} are missing ({missing} rows)", seq - 1)
    };
    problem(expected, message)
}

/// A NULL insertion time or a stored link that is NULL or not 32 bytes: the row's link
/// cannot be checked.
fn stored_value_problems(rec: &Rec, seq: i64) -> Vec<Problem> {
    let mut out = Vec::new();
    if rec.inserted_at.is_none() {
        out.push(problem(
            seq,
            format!("row {seq} has no insertion time (NULL worm_inserted_at)"),
        ));
    }
    match rec.link {
        StoredLink::Valid(_) => {}
        StoredLink::Null => out.push(problem(
            seq,
            format!("row {seq} has no stored link (NULL worm_hash)"),
        )),
        StoredLink::BadLength(n) => out.push(problem(
            seq,
            format!("row {seq}: stored link is not 32 bytes (it has {n})"),
        )),
    }
    out
}

/// "ok: ..." for a chain without problems.
fn ok_detail(chained: usize, head_seq: Option<i64>, anchor: Option<&Anchor>) -> String {
    let rows_word = if chained == 1 { "row" } else { "rows" };
    match (head_seq, anchor) {
        (_, Some(a)) if chained == 0 => {
            format!("ok: no rows after the purge anchor at {}", a.seq)
        }
        (Some(h), Some(a)) => format!(
            "ok: {chained} {rows_word} after the purge anchor at {}, head at seq {h}",
            a.seq
        ),
        (Some(h), None) => format!("ok: {chained} {rows_word}, head at seq {h}"),
        (None, _) => "ok: no rows".to_owned(),
    }
}

/// The first few problems, then "... and N more problems".
fn problems_detail(problems: &[Problem], total: i64) -> String {
    let shown = &problems[..problems.len().min(DETAIL_PROBLEMS)];
    let mut d = shown
        .iter()
        .map(|p| p.message.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    let rest = total - shown.iter().map(|p| p.weight).sum::<i64>();
    if rest > 0 {
        let word = if rest == 1 { "problem" } else { "problems" };
        d.push_str(&format!("; ... and {rest} more {word}"));
    }
    d
}
