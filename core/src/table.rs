//! Problems of a protected table as a whole, not of one chain: shared by the extension's
//! `worm.verify` and by `worm-verify`, so that both word them identically.
//!
//! * An **inheritance child** of the table: every `SELECT` of the table also returns the
//!   child's rows, which no chain covers (verification reads only the table itself).
//! * **Row-level security** on the table: a `SELECT` may silently hide rows.
//! * **Columns no longer matching their record**: the row hash binds each value to its column
//!   *position* (attnum), not to its name or type. The ledger records the column list (name and
//!   `format_type` text per attnum) at protect and at every allowed `ADD COLUMN`; a rename that
//!   swaps two columns keeps every hash valid while changing what the values mean, so the
//!   current list is compared with the newest recorded one.

use serde_json::{json, Value};

/// One user-visible column of a table: `attnum`, `attname` and
/// `pg_catalog.format_type(atttypid, atttypmod)` (evaluated with `search_path` =
/// `pg_catalog, pg_temp`, so types outside pg_catalog are schema-qualified).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnDef {
    pub attnum: i64,
    pub name: String,
    pub type_name: String,
}

impl ColumnDef {
    pub fn new(attnum: i64, name: impl Into<String>, type_name: impl Into<String>) -> Self {
        ColumnDef {
            attnum,
            name: name.into(),
            type_name: type_name.into(),
        }
    }

    fn describe(&self) -> String {
        format!("{} ({})", quoted(&self.name), self.type_name)
    }
}

/// How many differences [`columns_mismatch`] spells out before summarising the rest.
const SHOWN: usize = 5;

/// The column list as the ledger records it (key `"columns"` of the document): a JSON array,
/// in attnum order, of `{"attnum": n, "name": attname, "type": format_type}`.
pub fn columns_json(cols: &[ColumnDef]) -> Value {
    Value::Array(
        cols.iter()
            .map(|c| json!({ "attnum": c.attnum, "name": c.name, "type": c.type_name }))
            .collect(),
    )
}

/// Parses a recorded column list; `None` when it is not an array of such objects.
pub fn parse_columns(v: &Value) -> Option<Vec<ColumnDef>> {
    v.as_array()?
        .iter()
        .map(|c| {
            Some(ColumnDef {
                attnum: c.get("attnum")?.as_i64()?,
                name: c.get("name")?.as_str()?.to_owned(),
                type_name: c.get("type")?.as_str()?.to_owned(),
            })
        })
        .collect()
}

fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The differences between the recorded column list and the current one, in plain words,
/// by attnum: `column 2 was "diagnosis" (text) when recorded, is now "ruled_out" (text)`;
/// `None` when they are equal. A recorded list that cannot be read is itself a difference.
pub fn columns_mismatch(recorded: &Value, current: &[ColumnDef]) -> Option<String> {
    let Some(mut recorded) = parse_columns(recorded) else {
        return Some(
            "the column list recorded in the ledger is malformed (not an array of \
             {attnum, name, type})"
                .to_owned(),
        );
    };
    recorded.sort_by_key(|c| c.attnum);
    let mut current: Vec<&ColumnDef> = current.iter().collect();
    current.sort_by_key(|c| c.attnum);

    let mut diffs: Vec<String> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < recorded.len() || j < current.len() {
        match (recorded.get(i), current.get(j)) {
            (Some(r), Some(c)) if r.attnum == c.attnum => {
                if r.name != c.name || r.type_name != c.type_name {
                    diffs.push(format!(
                        "column {} was {} when recorded, is now {}",
                        r.attnum,
                        r.describe(),
                        c.describe()
                    ));
                }
                i += 1;
                j += 1;
            }
            (Some(r), c) if c.is_none_or(|c| r.attnum < c.attnum) => {
                diffs.push(format!(
                    "column {} was {} when recorded, and no longer exists",
                    r.attnum,
                    r.describe()
                ));
                i += 1;
            }
            (_, Some(c)) => {
                diffs.push(format!(
                    "column {} {} is not in the record (added without being recorded)",
                    c.attnum,
                    c.describe()
                ));
                j += 1;
            }
            // Unreachable: the loop condition guarantees one side is present.
            (_, None) => break,
        }
    }
    if diffs.is_empty() {
        return None;
    }
    let n = diffs.len();
    let mut text = diffs[..n.min(SHOWN)].join("; ");
    if n > SHOWN {
        let rest = n - SHOWN;
        text.push_str(&format!(
            "; ... and {rest} more difference{}",
            if rest == 1 { "" } else { "s" }
        ));
    }
    Some(text)
}

/// The report detail for a column mismatch (`diff` from [`columns_mismatch`]).
pub fn columns_problem(diff: &str) -> String {
    format!(
        "the columns no longer match the list recorded in the ledger: {diff} (rows are hashed \
         by column position, so stored values may now be read under another name or type than \
         they were written with)"
    )
}

/// The report detail for a table whose recorded hashing version is not the
/// one this code implements (None when it is). A table registered before
/// versions were recorded has version 1.
pub fn encoding_version_problem(version: i64) -> Option<String> {
    (version != i64::from(crate::ENCODING_VERSION)).then(|| {
        format!(
            "the table records hashing version {version}, but this verifier implements version {}              (docs/hashing.md): its links cannot be checked here",
            crate::ENCODING_VERSION
        )
    })
}

/// The report detail for an inheritance child (`child` schema-qualified, quoted as needed).
pub fn inheritance_child_problem(child: &str) -> String {
    format!(
        "table has an inheritance child {child} whose rows every SELECT of the table also \
         returns (no chain covers them; query the table with ONLY, or drop the child)"
    )
}

/// The report detail for row-level security, `None` when it is neither enabled nor forced.
pub fn row_security_problem(enabled: bool, forced: bool) -> Option<String> {
    match (enabled, forced) {
        (false, false) => None,
        (true, false) => Some("row-level security is enabled: SELECTs may hide rows".to_owned()),
        (true, true) => Some(
            "row-level security is enabled and forced (it applies to the table owner too): \
             SELECTs may hide rows"
                .to_owned(),
        ),
        (false, true) => Some(
            "row-level security is forced but not enabled: once it is enabled, SELECTs may hide \
             rows, also from the table owner"
                .to_owned(),
        ),
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn encoding_version_known_or_reported() {
        assert_eq!(encoding_version_problem(1), None);
        let p = encoding_version_problem(2).unwrap_or_default();
        assert!(p.contains("hashing version 2"), "{p}");
    }
    use super::*;

    fn cols(list: &[(i64, &str, &str)]) -> Vec<ColumnDef> {
        list.iter()
            .map(|(n, name, t)| ColumnDef::new(*n, *name, *t))
            .collect()
    }

    fn base() -> Vec<ColumnDef> {
        cols(&[
            (1, "id", "integer"),
            (2, "diagnosis", "text"),
            (3, "ruled_out", "text"),
            (4, "worm_chain", "integer"),
        ])
    }

    #[test]
    fn equal_lists_match() {
        let rec = columns_json(&base());
        assert_eq!(columns_mismatch(&rec, &base()), None);
        // Order of the recorded array does not matter, attnum does.
        let mut rev = base();
        rev.reverse();
        assert_eq!(columns_mismatch(&columns_json(&rev), &base()), None);
    }

    #[test]
    fn json_round_trips() {
        let v = columns_json(&base());
        assert_eq!(
            v[1],
            json!({"attnum": 2, "name": "diagnosis", "type": "text"})
        );
        assert_eq!(parse_columns(&v), Some(base()));
    }

    #[test]
    fn swapped_names_are_reported_per_position() {
        let rec = columns_json(&base());
        let now = cols(&[
            (1, "id", "integer"),
            (2, "ruled_out", "text"),
            (3, "diagnosis", "text"),
            (4, "worm_chain", "integer"),
        ]);
        assert_eq!(
            columns_mismatch(&rec, &now).as_deref(),
            Some(
                "column 2 was \"diagnosis\" (text) when recorded, is now \"ruled_out\" (text); \
                 column 3 was \"ruled_out\" (text) when recorded, is now \"diagnosis\" (text)"
            )
        );
    }

    #[test]
    fn type_changes_drops_and_additions() {
        let rec = columns_json(&base());
        let now = cols(&[
            (1, "id", "bigint"),
            (3, "ruled_out", "text"),
            (4, "worm_chain", "integer"),
            (6, "say \"hi\"", "public.mood"),
        ]);
        assert_eq!(
            columns_mismatch(&rec, &now).as_deref(),
            Some(
                "column 1 was \"id\" (integer) when recorded, is now \"id\" (bigint); \
                 column 2 was \"diagnosis\" (text) when recorded, and no longer exists; \
                 column 6 \"say \"\"hi\"\"\" (public.mood) is not in the record (added without \
                 being recorded)"
            )
        );
        // Everything dropped, or nothing recorded yet.
        assert!(columns_mismatch(&rec, &[]).is_some_and(|d| d.ends_with(
            "column 4 was \"worm_chain\" (integer) when recorded, and no longer exists"
        )));
        assert!(columns_mismatch(&json!([]), &base())
            .is_some_and(|d| d.starts_with("column 1 \"id\" (integer) is not in the record")));
    }

    #[test]
    fn many_differences_are_summarised() {
        let rec: Vec<ColumnDef> = (1..=9)
            .map(|i| ColumnDef::new(i, format!("c{i}"), "text"))
            .collect();
        let now: Vec<ColumnDef> = (1..=9)
            .map(|i| ColumnDef::new(i, format!("d{i}"), "text"))
            .collect();
        let d = columns_mismatch(&columns_json(&rec), &now).unwrap_or_default();
        assert_eq!(d.matches(" when recorded, is now ").count(), 5);
        assert!(d.ends_with("; ... and 4 more differences"), "{d}");
    }

    #[test]
    fn malformed_records_are_a_difference() {
        for bad in [
            json!({"attnum": 1}),
            json!([{"attnum": "1", "name": "id", "type": "integer"}]),
            json!([{"attnum": 1, "name": "id"}]),
            json!(null),
        ] {
            assert!(columns_mismatch(&bad, &base()).is_some_and(
                |d| d.starts_with("the column list recorded in the ledger is malformed")
            ));
        }
    }

    #[test]
    fn wording() {
        assert_eq!(
            row_security_problem(true, false).as_deref(),
            Some("row-level security is enabled: SELECTs may hide rows")
        );
        assert_eq!(row_security_problem(false, false), None);
        assert!(row_security_problem(true, true).is_some());
        assert!(row_security_problem(false, true).is_some());
        assert!(inheritance_child_problem("public.fake").starts_with(
            "table has an inheritance child public.fake whose rows every SELECT of the table also returns"
        ));
        assert!(columns_problem("column 2 was x").contains(": column 2 was x ("));
    }
}
