//! Verification of one chain: pure logic shared by the extension and external verifiers.

use crate::{link, Hash, GENESIS};

/// One stored row of a chain, as read from the table: its `worm_seq`, `worm_inserted_at`
/// (microseconds since 2000-01-01 00:00:00 UTC) and `worm_hash` as stored (any of them may be
/// NULL or malformed after tampering), and the row hash recomputed from its column values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowRecord {
    pub seq: Option<i64>,
    pub inserted_at: Option<i64>,
    pub stored_link: Option<Vec<u8>>,
    pub row_hash: Hash,
}

/// A purge anchor: rows up to and including `seq` were legitimately purged; the row at
/// `seq + 1` must link to `link` (the link of the last purged row).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Anchor {
    pub seq: i64,
    pub link: Hash,
}

/// The outcome of verifying one chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    /// The chain number.
    pub chain: i32,
    /// Number of records given (including rows with a NULL position).
    pub rows_checked: i64,
    /// True when no problem was found.
    pub ok: bool,
    /// The smallest sequence number involved in a problem.
    pub first_bad_seq: Option<i64>,
    /// Number of problems found (a run of consecutive missing rows counts as one problem,
    /// every other problem concerns one row or one position).
    pub problems: i64,
    /// Sequence number of the last row of the chain (the anchor's when no row follows it).
    pub head_seq: Option<i64>,
    /// Stored link of the last row when it is a valid 32-byte value (the anchor's link when
    /// no row follows it).
    pub head_link: Option<Hash>,
    /// Plain English: "ok: ..." or the first few problems, then "... and N more problems".
    pub detail: String,
}

/// How many problems `detail` spells out before summarising the rest.
const DETAIL_PROBLEMS: usize = 5;
/// Positions around a broken row searched for an alternative explanation of its link.
const SEARCH_WINDOW: i64 = 4;
/// At most this many broken rows get the (bounded, but not free) alternative-link search.
const SEARCH_BUDGET: usize = 1000;
/// The streaming window forgets checked positions this many at a time.
const FORGET_BATCH: usize = 64;

#[derive(Debug, Clone, Copy)]
enum StoredLink {
    Valid(Hash),
    Null,
    BadLength(usize),
}

impl StoredLink {
    fn of(stored: Option<&[u8]>) -> StoredLink {
        match stored {
            None => StoredLink::Null,
            Some(v) => match <Hash>::try_from(v) {
                Ok(h) => StoredLink::Valid(h),
                Err(_) => StoredLink::BadLength(v.len()),
            },
        }
    }

    fn valid(&self) -> Option<&Hash> {
        match self {
            StoredLink::Valid(h) => Some(h),
            _ => None,
        }
    }
}

/// A row with a position, as the walk needs it (no allocation of its own).
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

/// The rows at one position: normally one; more when a position is held twice.
#[derive(Debug)]
struct Group {
    seq: i64,
    first: Rec,
    more: Vec<Rec>,
}

impl Group {
    fn len(&self) -> usize {
        1 + self.more.len()
    }
    fn get(&self, m: usize) -> &Rec {
        match m {
            0 => &self.first,
            _ => &self.more[m - 1],
        }
    }
    fn members(&self) -> impl Iterator<Item = &Rec> {
        std::iter::once(&self.first).chain(self.more.iter())
    }
}

/// What the checks of one position see: the groups around it, ascending by seq (the whole
/// chain, or the streaming window, which holds every group the checks look at).
struct Ctx<'a> {
    uid: &'a [u8; 16],
    chain: i32,
    anchor: Option<&'a Anchor>,
    groups: &'a [Group],
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
    fn vouched(&self, next: Option<&Group>, seq: i64, stored: &Hash) -> bool {
        let Some(next) = next else {
            return false;
        };
        let Some(succ_seq) = seq.checked_add(1) else {
            return false;
        };
        next.members().any(|r| self.fits(r, succ_seq, stored))
    }

    /// Links near position `seq` that a broken row may have been linked over, with a name;
    /// `skip` is the row itself (group, member).
    fn nearby_links(&self, seq: i64, skip: (usize, usize)) -> Vec<(Hash, String)> {
        let lo = seq.saturating_sub(SEARCH_WINDOW + 1);
        let hi = seq.saturating_add(SEARCH_WINDOW);
        let from = self.groups.partition_point(|g| g.seq < lo);
        let mut out = Vec::new();
        for (gi, g) in self
            .groups
            .iter()
            .enumerate()
            .skip(from)
            .take_while(|(_, g)| g.seq <= hi)
        {
            for (m, r) in g.members().enumerate() {
                if (gi, m) == skip {
                    continue;
                }
                if let Some(h) = r.link.valid() {
                    let gseq = g.seq;
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

    /// Explains why the row `at` (group, member) at `seq` does not reproduce its stored link
    /// over `before`.
    fn classify(
        &self,
        at: (usize, usize),
        seq: i64,
        before: Before<'_>,
        next: Option<&Group>,
        search: bool,
    ) -> String {
        let Before {
            link: prev,
            pred,
            failed: pred_failed,
        } = before;
        let rec = self.groups[at.0].get(at.1);
        if search {
            let candidates = self.nearby_links(seq, at);
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
/// `rows` may come in any order; they are sorted by `seq` here (stably: rows at the same
/// position keep their order) and given to a [`ChainVerifier`], which holds the report's
/// logic. With `anchor` `None` the chain starts at seq 1, whose previous link is
/// [`GENESIS`]; with an anchor, rows up to and including `anchor.seq` were purged and the
/// row at `anchor.seq + 1` links to `anchor.link`.
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
pub fn verify_chain(
    table_uid: &[u8; 16],
    chain: i32,
    anchor: Option<&Anchor>,
    mut rows: Vec<RowRecord>,
) -> ChainReport {
    // Rows without a position are only counted: put them first, the others by position.
    rows.sort_by_key(|r| r.seq.map_or((0, 0), |s| (1, s)));
    let mut v = ChainVerifier::new(table_uid, chain, anchor);
    for r in &rows {
        // Sorted: never out of order.
        let pushed = v.push(r);
        debug_assert!(pushed.is_ok());
    }
    v.finish()
}

/// A row given to [`ChainVerifier::push`] after a row with a greater `seq`: refused (the
/// caller decides what to do with it; the verifier's state is unchanged).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutOfOrder {
    /// The refused row's position.
    pub seq: i64,
    /// The greatest position given before it.
    pub after: i64,
}

/// Streaming verification of one chain: the same checks and the same [`ChainReport`] as
/// [`verify_chain`], from rows given one at a time in ascending `seq` order (rows with a NULL
/// `seq` at any point: they are only counted).
///
/// Memory is bounded by the chain's shape, not its length: the rows of the positions within
/// the alternative-link search window around the position being checked (about ten
/// positions; all rows of a position held several times), the first few problem messages,
/// and counters. Every other problem is counted, not stored.
#[derive(Debug)]
pub struct ChainVerifier {
    uid: [u8; 16],
    chain: i32,
    anchor: Option<Anchor>,
    /// The first position after the anchor (1 without one).
    start: i64,
    rows: i64,
    unplaced: i64,
    /// Rows at or after `start`.
    chained: usize,
    last_seq: Option<i64>,
    /// Groups ascending by seq: `..done` checked (kept while the search window may need
    /// them), `done..` waiting for the rows after them.
    window: Vec<Group>,
    done: usize,
    walk: Walk,
    log: ProblemLog,
}

impl ChainVerifier {
    /// A verifier of chain `chain` of the table `table_uid`, starting after `anchor` (at seq 1
    /// without one).
    pub fn new(table_uid: &[u8; 16], chain: i32, anchor: Option<&Anchor>) -> ChainVerifier {
        let start = anchor.map_or(1, |a| a.seq.saturating_add(1));
        ChainVerifier {
            uid: *table_uid,
            chain,
            anchor: anchor.copied(),
            start,
            rows: 0,
            unplaced: 0,
            chained: 0,
            last_seq: None,
            window: Vec::new(),
            done: 0,
            walk: Walk::new(anchor, start),
            log: ProblemLog::default(),
        }
    }

    /// The number of rows given so far.
    pub fn rows(&self) -> i64 {
        self.rows
    }

    /// The next row of the chain; `Err` (nothing taken) when its `seq` is below that of a row
    /// given before.
    pub fn push(&mut self, row: &RowRecord) -> Result<(), OutOfOrder> {
        let Some(seq) = row.seq else {
            self.rows = self.rows.saturating_add(1);
            self.unplaced = self.unplaced.saturating_add(1);
            return Ok(());
        };
        if let Some(after) = self.last_seq.filter(|l| *l > seq) {
            return Err(OutOfOrder { seq, after });
        }
        self.rows = self.rows.saturating_add(1);
        self.last_seq = Some(seq);
        let rec = Rec {
            seq,
            inserted_at: row.inserted_at,
            link: StoredLink::of(row.stored_link.as_deref()),
            row_hash: row.row_hash,
        };
        if seq < self.start {
            self.log
                .push(before_start_problem(&rec, self.anchor.as_ref()));
            return Ok(());
        }
        self.chained += 1;
        self.check_ready(Some(seq));
        match self.window.last_mut() {
            Some(g) if g.seq == seq => g.more.push(rec),
            _ => self.window.push(Group {
                seq,
                first: rec,
                more: Vec::new(),
            }),
        }
        Ok(())
    }

    /// Checks the waiting positions that no row from `next_seq` on can change (all of them
    /// when `None`): those whose search window ends before it.
    fn check_ready(&mut self, next_seq: Option<i64>) {
        while let Some(g) = self.window.get(self.done) {
            if let Some(n) = next_seq {
                if i128::from(g.seq) + i128::from(SEARCH_WINDOW) >= i128::from(n) {
                    break;
                }
            }
            // Forget the checked positions the search around this one does not reach
            // (a batch at a time: the search skips them, and moving the window down
            // every row would cost more than the checks).
            let lo = g.seq.saturating_sub(SEARCH_WINDOW + 1);
            let old = self.window[..self.done].partition_point(|g| g.seq < lo);
            if old >= FORGET_BATCH {
                self.window.drain(..old);
                self.done -= old;
            }
            let ctx = Ctx {
                uid: &self.uid,
                chain: self.chain,
                anchor: self.anchor.as_ref(),
                groups: &self.window,
            };
            self.walk.step(&ctx, self.done, &mut self.log);
            self.done += 1;
        }
    }

    /// The report of the chain.
    pub fn finish(mut self) -> ChainReport {
        self.check_ready(None);
        let anchor = self.anchor.as_ref();
        let (head_seq, head_link) = match (self.walk.head, anchor) {
            (Some((s, l)), _) => (Some(s), l),
            (None, Some(a)) => (Some(a.seq), Some(a.link)),
            (None, None) => (None, None),
        };
        let log = self.log;
        // NULL-position rows first, then by position (as found).
        let unplaced = unplaced_problem(self.unplaced);
        let total = log
            .total
            .saturating_add(unplaced.as_ref().map_or(0, |p| p.weight));
        let ok = total == 0 && unplaced.is_none() && log.shown.is_empty();
        let detail = if ok {
            ok_detail(self.chained, head_seq, anchor)
        } else {
            let shown: Vec<Problem> = unplaced.into_iter().chain(log.shown).collect();
            problems_detail(&shown, total)
        };
        ChainReport {
            chain: self.chain,
            rows_checked: self.rows,
            ok,
            first_bad_seq: log.first_bad_seq,
            problems: total,
            head_seq,
            head_link,
            detail,
        }
    }
}

/// The problems of a chain as they are found (ascending by position): the first few kept
/// for `detail`, every one counted.
#[derive(Debug, Default)]
struct ProblemLog {
    shown: Vec<Problem>,
    total: i64,
    first_bad_seq: Option<i64>,
}

impl ProblemLog {
    fn push(&mut self, p: Problem) {
        self.total = self.total.saturating_add(p.weight);
        if let Some(s) = p.seq {
            self.first_bad_seq = Some(self.first_bad_seq.map_or(s, |f| f.min(s)));
        }
        if self.shown.len() < DETAIL_PROBLEMS {
            self.shown.push(p);
        }
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
fn unplaced_problem(unplaced: i64) -> Option<Problem> {
    (unplaced > 0).then(|| Problem {
        seq: None,
        weight: unplaced,
        message: if unplaced == 1 {
            "a row has no chain position (NULL worm_seq)".to_owned()
        } else {
            format!("{unplaced} rows have no chain position (NULL worm_seq)")
        },
    })
}

/// A row before the start of the chain: at or before the purge anchor, or before seq 1.
fn before_start_problem(r: &Rec, anchor: Option<&Anchor>) -> Problem {
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
}

/// The walk along the chain's positions, one group of rows at a time.
#[derive(Debug)]
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
    fn step(&mut self, ctx: &Ctx<'_>, gi: usize, log: &mut ProblemLog) {
        let group = &ctx.groups[gi];
        let seq = group.seq;
        if seq > self.expected {
            log.push(gap_problem(self.expected, seq));
            self.prev = None;
        }
        let next = ctx
            .groups
            .get(gi + 1)
            .filter(|g| seq.checked_add(1) == Some(g.seq));
        let chosen = if group.len() == 1 {
            0
        } else {
            let (best, dup) = self.choose(ctx, group, next);
            log.push(dup);
            best
        };
        let rec = group.get(chosen);
        let mut failed = false;
        let unusable = stored_value_problems(rec, seq);
        let checkable = unusable.is_empty();
        for p in unusable {
            log.push(p);
        }
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
                log.push(problem(
                    seq,
                    ctx.classify((gi, chosen), seq, before, next, search),
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
    fn choose(&self, ctx: &Ctx<'_>, group: &Group, next: Option<&Group>) -> (usize, Problem) {
        let seq = group.seq;
        let score = |r: &Rec| {
            let fits = self.prev.as_ref().is_some_and(|(p, _)| ctx.fits(r, seq, p));
            let vouched = r.link.valid().is_some_and(|h| ctx.vouched(next, seq, h));
            u8::from(fits) * 2 + u8::from(vouched)
        };
        let mut best = 0;
        let mut best_score = score(group.get(0));
        for (m, r) in group.members().enumerate().skip(1) {
            let s = score(r);
            if s > best_score {
                best = m;
                best_score = s;
            }
        }
        let mut fitting: Vec<&Hash> = match &self.prev {
            Some((p, _)) => group
                .members()
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
        let message = format!("row {seq} appears {} times{note}", group.len());
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

#[cfg(test)]
mod oracle;
#[cfg(test)]
mod stream_tests;
