//! D1 restores, the pure half: what each statement of a dump is (and which table it belongs
//! to), the plan table by table, the import file — drops first, then the backup's statements
//! for the tables in scope — split below D1's 5 GB between tables, and the comparison of
//! table hashes after the import.
//!
//! A table is replaced whole: dropped and created again from the backup in the same import,
//! which D1 applies all or nothing. Dropping a table deletes its rows first, so a table outside
//! the restore that references a replaced one `ON DELETE CASCADE` (or `SET NULL`, `SET
//! DEFAULT`) would lose rows: such a plan is refused, naming both tables.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use serde::{Deserialize, Serialize};

use super::TableStats;
use super::query::ident;
use crate::engine::changes::{Difference, Mode};

/// What a dump's statement is, as far as a restore needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stmt {
    Pragma,
    /// `CREATE [VIRTUAL] TABLE`.
    Table(String),
    Insert(String),
    Index {
        name: String,
        table: String,
    },
    Trigger {
        name: String,
        table: String,
    },
    View(String),
    /// `DELETE FROM sqlite_sequence`.
    SeqDelete,
    /// `INSERT INTO sqlite_sequence`: the AUTOINCREMENT counter of this table.
    SeqInsert(String),
    /// Anything else (`ANALYZE`): kept in whole restores only.
    Other,
}

/// The words and names at the head of a statement: identifiers unquoted (keywords as written;
/// compare them ignoring ASCII case). Borrowed from `sql` but for a name with doubled quotes.
fn head(sql: &str, max: usize) -> Vec<(Cow<'_, str>, bool)> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() && out.len() < max {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'-' && b.get(i + 1) == Some(&b'-') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            i += 2;
            while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                i += 1;
            }
            i += 2;
        } else if matches!(c, b'"' | b'`' | b'[' | b'\'') {
            let close = if c == b'[' { b']' } else { c };
            let start = i + 1;
            let mut doubled = false;
            i += 1;
            while i < b.len() {
                if b[i] == close {
                    if close != b']' && b.get(i + 1) == Some(&close) {
                        doubled = true;
                        i += 2;
                        continue;
                    }
                    break;
                }
                i += 1;
            }
            // `start..i` lies between ASCII quotes, so on character boundaries.
            let raw = &sql[start..i.min(b.len())];
            i += 1;
            let name = if doubled {
                let q = (close as char).to_string();
                Cow::Owned(raw.replace(&format!("{q}{q}"), &q))
            } else {
                Cow::Borrowed(raw)
            };
            out.push((name, true));
        } else if c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80 {
            let start = i;
            while i < b.len()
                && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'$' || b[i] >= 0x80)
            {
                i += 1;
            }
            // Bytes of 0x80 and above run to an ASCII byte: a character boundary.
            out.push((Cow::Borrowed(&sql[start..i]), false));
        } else {
            out.push((Cow::Borrowed(&sql[i..i + 1]), false));
            i += 1;
        }
    }
    out
}

/// Classifies one statement of a dump. Reads only as far as it must: a row's values are not
/// looked at.
pub fn classify(sql: &str) -> Stmt {
    let first = head(sql, 1);
    let is = |w: &str| {
        first
            .first()
            .is_some_and(|(t, q)| !q && t.eq_ignore_ascii_case(w))
    };
    let reach = if is("PRAGMA") {
        1
    } else if is("INSERT") || is("REPLACE") {
        // `INSERT OR REPLACE INTO main . "t"`.
        8
    } else if is("DELETE") {
        3
    } else {
        64
    };
    let words = head(sql, reach);
    let kw = |i: usize, w: &str| {
        words
            .get(i)
            .is_some_and(|(t, quoted)| !quoted && t.eq_ignore_ascii_case(w))
    };
    let name_at = |mut i: usize| -> (Option<String>, usize) {
        if kw(i, "IF") && kw(i + 1, "NOT") && kw(i + 2, "EXISTS") {
            i += 3;
        }
        // `main.t`: the schema is dropped.
        if words.get(i + 1).is_some_and(|(t, q)| !q && t == ".") {
            i += 2;
        }
        (words.get(i).map(|(t, _)| t.to_string()), i + 1)
    };
    if kw(0, "PRAGMA") {
        return Stmt::Pragma;
    }
    if kw(0, "CREATE") {
        let mut i = 1;
        if kw(i, "TEMP") || kw(i, "TEMPORARY") || kw(i, "UNIQUE") || kw(i, "VIRTUAL") {
            i += 1;
        }
        if kw(i, "TABLE") {
            if let (Some(n), _) = name_at(i + 1) {
                return Stmt::Table(n);
            }
        } else if kw(i, "VIEW") {
            if let (Some(n), _) = name_at(i + 1) {
                return Stmt::View(n);
            }
        } else if kw(i, "INDEX") || kw(i, "TRIGGER") {
            let index = kw(i, "INDEX");
            if let (Some(name), mut j) = name_at(i + 1) {
                while j < words.len() && !kw(j, "ON") {
                    j += 1;
                }
                if let (Some(table), _) = name_at(j + 1) {
                    return if index {
                        Stmt::Index { name, table }
                    } else {
                        Stmt::Trigger { name, table }
                    };
                }
            }
        }
        return Stmt::Other;
    }
    if kw(0, "INSERT") || kw(0, "REPLACE") {
        let mut i = 1;
        while i < words.len() && !kw(i, "INTO") {
            i += 1;
        }
        if let (Some(table), _) = name_at(i + 1) {
            if table.eq_ignore_ascii_case("sqlite_sequence") {
                // The first string literal of the values is the table's name.
                let names = head(&sql[sql.find('(').unwrap_or(0)..], 4);
                return match names.iter().find(|(_, quoted)| *quoted) {
                    Some((t, _)) => Stmt::SeqInsert(t.to_string()),
                    None => Stmt::Other,
                };
            }
            return Stmt::Insert(table);
        }
    }
    if kw(0, "DELETE")
        && kw(1, "FROM")
        && words
            .get(2)
            .is_some_and(|(t, _)| t.eq_ignore_ascii_case("sqlite_sequence"))
    {
        return Stmt::SeqDelete;
    }
    Stmt::Other
}

/// SQLite's names are case-insensitive (ASCII).
fn key(name: &str) -> String {
    name.to_ascii_lowercase()
}

/// A schema object of the live database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Object {
    /// `table`, `index`, `trigger`, `view`.
    pub kind: String,
    pub name: String,
    pub table: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shadow: bool,
}

/// A foreign key of the live database: `child` references `parent`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignKey {
    pub child: String,
    pub parent: String,
    pub on_delete: String,
}

/// The live database as the plan sees it.
#[derive(Debug, Clone, Default)]
pub struct Live {
    pub objects: Vec<Object>,
    /// Rows per (non-shadow) table.
    pub rows: BTreeMap<String, u64>,
    pub foreign_keys: Vec<ForeignKey>,
}

/// What happens to one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Not in the database: created from the backup.
    Create,
    /// In both: dropped and created again from the backup.
    Replace,
    /// Not in the backup (clear mode): dropped.
    Drop,
    /// In both, left as it is (skip mode).
    Keep,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableChange {
    pub name: String,
    pub action: Action,
    pub rows_now: Option<u64>,
    pub rows_after: Option<u64>,
}

/// One object the import drops before it creates anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropObject {
    pub kind: String,
    pub name: String,
}

impl DropObject {
    pub fn sql(&self) -> String {
        format!(
            "DROP {} IF EXISTS {};",
            self.kind.to_ascii_uppercase(),
            ident(&self.name)
        )
    }
}

/// A D1 restore's decisions, recorded in its plan so a resume builds the same import.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct D1Plan {
    pub tables: Vec<TableChange>,
    /// Dropped first, in this order.
    pub drops: Vec<DropObject>,
    /// Tables whose statements the import carries.
    pub import: Vec<String>,
    /// The whole database: views and other statements of the backup go in too.
    pub whole: bool,
}

impl D1Plan {
    /// Tables the verification compares with the backup.
    pub fn compared(&self) -> impl Iterator<Item = &TableChange> {
        self.tables
            .iter()
            .filter(|t| matches!(t.action, Action::Create | Action::Replace | Action::Drop))
    }
}

/// Decides what a restore does to each table. `backup`: the manifest's tables; `created`:
/// every object the backup's dump creates (kind, name, table); `only`: `--tables`.
pub fn plan(
    backup: &[TableStats],
    created: &[Object],
    live: &Live,
    only: Option<&[String]>,
    mode: Mode,
) -> Result<D1Plan, String> {
    let in_backup: BTreeMap<String, &TableStats> =
        backup.iter().map(|t| (key(&t.name), t)).collect();
    let live_tables: BTreeMap<String, &Object> = live
        .objects
        .iter()
        .filter(|o| o.kind == "table" && !o.shadow)
        .map(|o| (key(&o.name), o))
        .collect();
    let scope: Vec<String> = match only {
        Some(names) => {
            let mut out = Vec::new();
            for n in names {
                let k = key(n);
                if !in_backup.contains_key(&k) && !live_tables.contains_key(&k) {
                    return Err(format!(
                        "table `{n}` is neither in the backup nor in the database; the backup holds {}",
                        list(backup.iter().map(|t| t.name.as_str()))
                    ));
                }
                if !in_backup.contains_key(&k) && mode != Mode::Clear {
                    return Err(format!(
                        "table `{n}` is not in the backup: only --mode clear drops it"
                    ));
                }
                if !out.contains(&k) {
                    out.push(k);
                }
            }
            out
        }
        None => {
            let mut out: Vec<String> = backup.iter().map(|t| key(&t.name)).collect();
            if mode == Mode::Clear {
                out.extend(
                    live_tables
                        .keys()
                        .filter(|k| !in_backup.contains_key(*k))
                        .cloned(),
                );
            }
            out
        }
    };
    let mut tables = Vec::new();
    for k in &scope {
        let (b, l) = (in_backup.get(k), live_tables.get(k));
        let action = match (b, l) {
            (Some(_), None) => Action::Create,
            (Some(_), Some(_)) if mode == Mode::Skip => Action::Keep,
            (Some(_), Some(_)) => Action::Replace,
            (None, Some(_)) => Action::Drop,
            (None, None) => continue,
        };
        let name = b
            .map(|t| t.name.clone())
            .or_else(|| l.map(|o| o.name.clone()))
            .unwrap_or_default();
        let rows_now = l.and_then(|o| live.rows.get(&o.name).copied());
        let rows_after = match action {
            Action::Create | Action::Replace => b.map(|t| t.rows),
            Action::Drop => None,
            Action::Keep => rows_now,
        };
        tables.push(TableChange {
            name,
            action,
            rows_now,
            rows_after,
        });
    }
    let import: Vec<String> = tables
        .iter()
        .filter(|t| matches!(t.action, Action::Create | Action::Replace))
        .map(|t| t.name.clone())
        .collect();
    let dropped: BTreeSet<String> = tables
        .iter()
        .filter(|t| matches!(t.action, Action::Replace | Action::Drop))
        .map(|t| key(&t.name))
        .collect();

    // A table outside the restore must not lose rows to a cascade from a dropped one.
    for fk in &live.foreign_keys {
        let action = fk.on_delete.to_ascii_uppercase();
        if dropped.contains(&key(&fk.parent))
            && !dropped.contains(&key(&fk.child))
            && matches!(action.as_str(), "CASCADE" | "SET NULL" | "SET DEFAULT")
        {
            return Err(format!(
                "table `{}` references `{}` ON DELETE {action}: replacing `{}` would change rows of `{}`, which this restore leaves alone; add `{}` to --tables, or restore the whole database",
                fk.child, fk.parent, fk.parent, fk.child, fk.child
            ));
        }
    }

    let whole = only.is_none();
    let imported: BTreeSet<String> = import.iter().map(|t| key(t)).collect();
    // Objects the import creates must not exist when it does: drop those that do (unless they
    // go with a dropped table).
    let creates: BTreeSet<String> = created
        .iter()
        .filter(|o| match o.kind.as_str() {
            "table" => imported.contains(&key(&o.name)),
            "view" => whole,
            _ => imported.contains(&key(&o.table)),
        })
        .map(|o| key(&o.name))
        .collect();
    let backup_names: BTreeSet<String> = created.iter().map(|o| key(&o.name)).collect();
    let mut drops = Vec::new();
    for kind in ["trigger", "view", "index"] {
        for o in live.objects.iter().filter(|o| o.kind == kind) {
            let goes_with_table = dropped.contains(&key(&o.table)) && kind != "view";
            let collides = creates.contains(&key(&o.name));
            let extra = whole && mode == Mode::Clear && !backup_names.contains(&key(&o.name));
            if !goes_with_table && (collides || extra) {
                drops.push(DropObject {
                    kind: kind.into(),
                    name: o.name.clone(),
                });
            }
        }
    }
    // Tables: those that reference others first, so no cascade reaches a table already gone.
    let mut order: Vec<String> = Vec::new();
    let mut seen = BTreeSet::new();
    fn visit(
        t: &str,
        live: &Live,
        dropped: &BTreeSet<String>,
        seen: &mut BTreeSet<String>,
        order: &mut Vec<String>,
    ) {
        if !seen.insert(key(t)) {
            return;
        }
        for fk in live
            .foreign_keys
            .iter()
            .filter(|f| key(&f.parent) == key(t))
        {
            if dropped.contains(&key(&fk.child)) {
                visit(&fk.child, live, dropped, seen, order);
            }
        }
        order.push(t.to_string());
    }
    for t in tables
        .iter()
        .filter(|t| matches!(t.action, Action::Replace | Action::Drop))
    {
        let name = live_tables
            .get(&key(&t.name))
            .map(|o| o.name.clone())
            .unwrap_or_else(|| t.name.clone());
        visit(&name, live, &dropped, &mut seen, &mut order);
    }
    drops.extend(order.into_iter().map(|name| DropObject {
        kind: "table".into(),
        name,
    }));
    Ok(D1Plan {
        tables,
        drops,
        import,
        whole,
    })
}

fn list<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let v: Vec<String> = names.map(|n| format!("`{n}`")).collect();
    if v.is_empty() {
        "no tables".into()
    } else {
        v.join(", ")
    }
}

/// A dump's statements, read as often as a restore needs them: each call of `pass` starts
/// again from the first (a dump in memory, or in a file read one statement at a time).
pub trait Source {
    fn pass(&self) -> Result<Box<dyn Iterator<Item = Result<String, String>> + '_>, String>;
}

impl Source for str {
    fn pass(&self) -> Result<Box<dyn Iterator<Item = Result<String, String>> + '_>, String> {
        Ok(Box::new(
            crate::sqlsplit::statements(self)
                .into_iter()
                .map(|s| Ok(s.to_string())),
        ))
    }
}

/// Whose restore carries a statement of the dump into the import.
enum Owner {
    /// Never carried (the dump's own PRAGMA).
    Nobody,
    /// Carried when this table (its key) is restored.
    Table(String),
    /// Carried by a whole restore (views and anything else).
    Whole,
    /// The dump's `DELETE FROM sqlite_sequence`, carried (narrowed) when any table is.
    SeqDelete,
}

fn owner(kind: &Stmt) -> Owner {
    match kind {
        Stmt::Pragma => Owner::Nobody,
        Stmt::Table(t) | Stmt::Insert(t) | Stmt::SeqInsert(t) => Owner::Table(key(t)),
        Stmt::Index { table, .. } | Stmt::Trigger { table, .. } => Owner::Table(key(table)),
        Stmt::View(_) | Stmt::Other => Owner::Whole,
        Stmt::SeqDelete => Owner::SeqDelete,
    }
}

/// What one pass over a dump finds: the objects it creates (for the plan's collision check)
/// and the bytes of its statements between one CREATE TABLE and the next, by whose restore
/// carries them — enough to lay the import out for any plan without reading the dump again.
#[derive(Debug, Default)]
pub struct Survey {
    pub objects: Vec<Object>,
    segments: Vec<Segment>,
}

/// The statements from a CREATE TABLE (or the dump's start) to the next CREATE TABLE.
#[derive(Debug, Default)]
struct Segment {
    table: Option<String>,
    /// Bytes, a line each, of the statements a table's restore carries, by the table's key.
    owned: BTreeMap<String, u64>,
    /// Bytes of the statements a whole restore carries.
    whole: u64,
    seq_deletes: u64,
}

impl Segment {
    /// The bytes of this segment the import of `plan` carries.
    fn carried(&self, plan: &D1Plan, imported: &BTreeSet<String>) -> u64 {
        let owned: u64 = self
            .owned
            .iter()
            .filter(|(t, _)| imported.contains(*t))
            .map(|(_, n)| n)
            .sum();
        let whole = if plan.whole { self.whole } else { 0 };
        let seq = if plan.import.is_empty() || self.seq_deletes == 0 {
            0
        } else {
            self.seq_deletes * (seq_delete(plan).len() as u64 + 1)
        };
        owned + whole + seq
    }
}

/// Reads the dump once: its objects and the sizes [`layout`] needs.
pub fn survey(dump: &(impl Source + ?Sized)) -> Result<Survey, String> {
    let o = |kind: &str, name: &str, table: &str| Object {
        kind: kind.into(),
        name: name.into(),
        table: table.into(),
        shadow: false,
    };
    let mut out = Survey {
        objects: Vec::new(),
        segments: vec![Segment::default()],
    };
    for s in dump.pass()? {
        let s = s?;
        let kind = classify(&s);
        out.objects.extend(match &kind {
            Stmt::Table(n) => Some(o("table", n, n)),
            Stmt::Index { name, table } => Some(o("index", name, table)),
            Stmt::Trigger { name, table } => Some(o("trigger", name, table)),
            Stmt::View(n) => Some(o("view", n, n)),
            _ => None,
        });
        if let Stmt::Table(t) = &kind {
            out.segments.push(Segment {
                table: Some(t.clone()),
                ..Default::default()
            });
        }
        let segment = out.segments.last_mut().expect("a segment");
        let n = s.len() as u64 + 1;
        match owner(&kind) {
            Owner::Nobody => {}
            Owner::Table(t) => *segment.owned.entry(t).or_default() += n,
            Owner::Whole => segment.whole += n,
            Owner::SeqDelete => segment.seq_deletes += 1,
        }
    }
    Ok(out)
}

/// One file of an import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub bytes: u64,
    /// Tables whose rows it carries.
    pub tables: Vec<String>,
}

fn sql_text(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The dump's `DELETE FROM sqlite_sequence` as the import carries it: only the counters of the
/// tables restored (other tables keep theirs).
fn seq_delete(plan: &D1Plan) -> String {
    let names: Vec<String> = plan.import.iter().map(|t| sql_text(t)).collect();
    format!(
        "DELETE FROM sqlite_sequence WHERE name IN ({});",
        names.join(",")
    )
}

/// The statement the import carries for `s` (of kind `kind`), if any.
fn carried<'a>(
    s: &'a str,
    kind: &Stmt,
    plan: &D1Plan,
    imported: &BTreeSet<String>,
) -> Option<Cow<'a, str>> {
    match owner(kind) {
        Owner::Nobody => None,
        Owner::Table(t) => imported.contains(&t).then_some(Cow::Borrowed(s)),
        Owner::Whole => plan.whole.then_some(Cow::Borrowed(s)),
        Owner::SeqDelete => (!plan.import.is_empty()).then(|| Cow::Owned(seq_delete(plan))),
    }
}

/// Every part of an import begins by deferring foreign keys, as the dump does.
const PRELUDE: &str = "PRAGMA defer_foreign_keys=TRUE;";

/// The parts the import of `plan` takes, each at most `max` bytes, split only where a table
/// begins (a table's statements, its rows included, stay in one part); the first part also
/// drops what the plan drops. From the dump's [`survey`]: the dump is not read again.
pub fn layout(survey: &Survey, plan: &D1Plan, max: u64) -> Result<Vec<Part>, String> {
    let imported: BTreeSet<String> = plan.import.iter().map(|t| key(t)).collect();
    let prelude = PRELUDE.len() as u64 + 1;
    let drops: u64 = plan.drops.iter().map(|d| d.sql().len() as u64 + 1).sum();
    // The bytes of each restored table's group of statements (a group runs to the next
    // restored table).
    let mut groups: Vec<(String, u64)> = Vec::new();
    let mut before_tables = 0u64;
    for segment in &survey.segments {
        let n = segment.carried(plan, &imported);
        match (&segment.table, groups.last_mut()) {
            (Some(t), _) if imported.contains(&key(t)) => groups.push((t.clone(), n)),
            (_, Some(g)) => g.1 += n,
            (_, None) => before_tables += n,
        }
    }
    // Greedily: a table that does not fit starts the next part.
    let mut parts = vec![Part {
        bytes: prelude + drops + before_tables,
        tables: Vec::new(),
    }];
    for (table, n) in groups {
        if prelude + n > max {
            return Err(format!(
                "table `{table}` needs an import file of {n} bytes, past D1's limit of {max}; it cannot be restored through the import API"
            ));
        }
        let last = parts.last_mut().expect("one part at least");
        if !last.tables.is_empty() && last.bytes + n > max {
            parts.push(Part {
                bytes: prelude + n,
                tables: vec![table],
            });
        } else {
            last.bytes += n;
            last.tables.push(table);
        }
    }
    if let Some(p) = parts.iter().find(|p| p.bytes > max) {
        return Err(format!(
            "the import needs a file of {} bytes, past D1's limit of {max}",
            p.bytes
        ));
    }
    Ok(parts)
}

/// Writes the import of `plan` from `dump` in the parts [`layout`] gave (`tables`: each part's
/// tables, as the plan recorded them): `open(i)` gives part `i`'s writer; nothing is written
/// for a part `open` does not want (`None`). One pass over the dump, a statement at a time:
/// nothing of it is held. Returns the bytes of each part.
pub fn write_import<W: Write>(
    dump: &(impl Source + ?Sized),
    plan: &D1Plan,
    tables: &[&[String]],
    mut open: impl FnMut(usize) -> std::io::Result<Option<W>>,
) -> Result<Vec<u64>, String> {
    let io = |e: std::io::Error| format!("writing the import: {e}");
    let imported: BTreeSet<String> = plan.import.iter().map(|t| key(t)).collect();
    // The tables that begin a part after the first.
    let starts: BTreeSet<String> = tables
        .iter()
        .skip(1)
        .filter_map(|t| t.first().map(|n| key(n)))
        .collect();
    let mut bytes = vec![0u64];
    let put = |out: &mut Option<W>, bytes: &mut Vec<u64>, s: &str| -> Result<(), String> {
        if let Some(out) = out {
            out.write_all(s.as_bytes()).map_err(io)?;
            out.write_all(b"\n").map_err(io)?;
        }
        *bytes.last_mut().expect("a part") += s.len() as u64 + 1;
        Ok(())
    };
    let mut out = open(0).map_err(io)?;
    put(&mut out, &mut bytes, PRELUDE)?;
    for d in &plan.drops {
        put(&mut out, &mut bytes, &d.sql())?;
    }
    for s in dump.pass()? {
        let s = s?;
        let kind = classify(&s);
        let Some(text) = carried(&s, &kind, plan, &imported) else {
            continue;
        };
        if let Stmt::Table(t) = &kind
            && starts.contains(&key(t))
        {
            if let Some(o) = out.as_mut() {
                o.flush().map_err(io)?;
            }
            bytes.push(0);
            out = open(bytes.len() - 1).map_err(io)?;
            put(&mut out, &mut bytes, PRELUDE)?;
        }
        put(&mut out, &mut bytes, &text)?;
    }
    if let Some(o) = out.as_mut() {
        o.flush().map_err(io)?;
    }
    if bytes.len() != tables.len().max(1) {
        return Err(format!(
            "the dump gave {} import parts where the plan has {}; plan the restore again",
            bytes.len(),
            tables.len()
        ));
    }
    Ok(bytes)
}

/// How the restored tables differ from the backup: missing, extra (a table the plan dropped
/// is still there), or other rows.
pub fn compare(
    plan: &D1Plan,
    backup: &[TableStats],
    live: &BTreeMap<String, TableStats>,
) -> Vec<Difference> {
    let want: BTreeMap<String, &TableStats> = backup.iter().map(|t| (key(&t.name), t)).collect();
    let live: BTreeMap<String, &TableStats> = live.iter().map(|(k, t)| (key(k), t)).collect();
    let d = |key: &str, what: String| Difference {
        key: key.to_string(),
        what,
    };
    let mut out = Vec::new();
    for t in plan.compared() {
        let k = key(&t.name);
        match (t.action, want.get(&k), live.get(&k)) {
            (Action::Drop, _, Some(_)) => out.push(d(&t.name, "extra".into())),
            (Action::Drop, _, None) => {}
            (_, Some(_), None) => out.push(d(&t.name, "missing".into())),
            (_, Some(w), Some(l)) if w.rows != l.rows => out.push(d(
                &t.name,
                format!("rows: {} here, {} in the backup", l.rows, w.rows),
            )),
            (_, Some(w), Some(l)) if w.sha256 != l.sha256 => {
                out.push(d(&t.name, "content hash differs".into()))
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(name: &str, rows: u64) -> TableStats {
        TableStats {
            name: name.into(),
            rows,
            sha256: format!("h-{name}"),
            virtual_table: false,
        }
    }

    /// Runs [`write_import`] into memory: the parts and their text.
    fn capture(dump: &str, plan: &D1Plan, max: u64) -> Result<(Vec<Part>, Vec<String>), String> {
        use std::cell::RefCell;
        use std::rc::Rc;
        struct Shared(Rc<RefCell<Vec<u8>>>);
        impl Write for Shared {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.borrow_mut().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut outs: Vec<Rc<RefCell<Vec<u8>>>> = Vec::new();
        let parts = layout(&survey(dump)?, plan, max)?;
        let tables: Vec<&[String]> = parts.iter().map(|p| p.tables.as_slice()).collect();
        let bytes = write_import(dump, plan, &tables, |_| {
            let b = Rc::new(RefCell::new(Vec::new()));
            outs.push(b.clone());
            Ok(Some(Shared(b)))
        })?;
        assert_eq!(
            bytes,
            parts.iter().map(|p| p.bytes).collect::<Vec<_>>(),
            "the layout counts what is written"
        );
        let files = outs
            .iter()
            .map(|b| String::from_utf8(b.borrow().clone()).unwrap())
            .collect();
        Ok((parts, files))
    }

    fn obj(kind: &str, name: &str, table: &str) -> Object {
        Object {
            kind: kind.into(),
            name: name.into(),
            table: table.into(),
            shadow: false,
        }
    }

    #[test]
    fn statements_are_told_apart_whatever_their_quoting() {
        assert_eq!(classify("PRAGMA defer_foreign_keys=TRUE;"), Stmt::Pragma);
        assert_eq!(
            classify("CREATE TABLE IF NOT EXISTS \"odd \"\"name\"\" [x]\" (a)"),
            Stmt::Table("odd \"name\" [x]".into())
        );
        assert_eq!(
            classify("CREATE VIRTUAL TABLE docs USING fts5(a)"),
            Stmt::Table("docs".into())
        );
        assert_eq!(
            classify("INSERT INTO \"vals\" VALUES(1,'x');"),
            Stmt::Insert("vals".into())
        );
        assert_eq!(
            classify("INSERT INTO [b r](rowid,x) VALUES(1,2);"),
            Stmt::Insert("b r".into())
        );
        assert_eq!(
            classify("INSERT INTO \"sqlite_sequence\" VALUES('it''s',4);"),
            Stmt::SeqInsert("it's".into())
        );
        assert_eq!(classify("DELETE FROM sqlite_sequence;"), Stmt::SeqDelete);
        assert_eq!(
            classify("CREATE UNIQUE INDEX IF NOT EXISTS i ON \"t\"(a)"),
            Stmt::Index {
                name: "i".into(),
                table: "t".into()
            }
        );
        assert_eq!(
            classify(
                "CREATE TRIGGER vals_touch AFTER UPDATE OF a, b ON vals BEGIN UPDATE x SET y=1; END;"
            ),
            Stmt::Trigger {
                name: "vals_touch".into(),
                table: "vals".into()
            }
        );
        assert_eq!(
            classify("CREATE VIEW v AS SELECT 1"),
            Stmt::View("v".into())
        );
        assert_eq!(classify("ANALYZE sqlite_schema;"), Stmt::Other);
        assert_eq!(
            classify("-- note\nCREATE TABLE /* c */ t(x)"),
            Stmt::Table("t".into())
        );
    }

    fn live() -> Live {
        Live {
            objects: vec![
                obj("table", "users", "users"),
                obj("table", "orders", "orders"),
                obj("table", "extra", "extra"),
                obj("index", "orders_user", "orders"),
                obj("view", "v", "v"),
                obj("trigger", "extra_t", "extra"),
            ],
            rows: [
                ("users".into(), 5),
                ("orders".into(), 7),
                ("extra".into(), 1),
            ]
            .into(),
            foreign_keys: vec![ForeignKey {
                child: "orders".into(),
                parent: "users".into(),
                on_delete: "NO ACTION".into(),
            }],
        }
    }

    #[test]
    fn a_whole_restore_replaces_its_tables_and_clear_drops_the_rest_children_first() {
        let backup = [stats("users", 3), stats("orders", 4), stats("fresh", 2)];
        let created = [
            obj("table", "users", "users"),
            obj("table", "orders", "orders"),
            obj("table", "fresh", "fresh"),
            obj("index", "orders_user", "orders"),
            obj("view", "v", "v"),
        ];
        let p = plan(&backup, &created, &live(), None, Mode::Overwrite).unwrap();
        let actions: Vec<(&str, Action)> = p
            .tables
            .iter()
            .map(|t| (t.name.as_str(), t.action))
            .collect();
        assert_eq!(
            actions,
            [
                ("users", Action::Replace),
                ("orders", Action::Replace),
                ("fresh", Action::Create)
            ]
        );
        let drops: Vec<String> = p.drops.iter().map(DropObject::sql).collect();
        assert_eq!(
            drops,
            [
                "DROP VIEW IF EXISTS \"v\";",
                "DROP TABLE IF EXISTS \"orders\";",
                "DROP TABLE IF EXISTS \"users\";"
            ],
            "the view is recreated; orders goes before users; extra stays"
        );
        let p = plan(&backup, &created, &live(), None, Mode::Clear).unwrap();
        assert!(p.drops.iter().any(|d| d.name == "extra"));
        assert!(
            !p.drops.iter().any(|d| d.name == "extra_t"),
            "its trigger goes with it"
        );
        let extra = p.tables.iter().find(|t| t.name == "extra").unwrap();
        assert_eq!(
            (extra.action, extra.rows_now, extra.rows_after),
            (Action::Drop, Some(1), None)
        );
        let p = plan(&backup, &created, &live(), None, Mode::Skip).unwrap();
        assert_eq!(p.import, ["fresh"]);
        assert_eq!(
            p.drops,
            [DropObject {
                kind: "view".into(),
                name: "v".into()
            }]
        );
    }

    #[test]
    fn a_partial_restore_touches_its_tables_only_and_refuses_a_cascade_outside() {
        let backup = [stats("users", 3), stats("orders", 4)];
        let created = [
            obj("table", "users", "users"),
            obj("table", "orders", "orders"),
        ];
        let only = ["Orders".to_string()];
        let p = plan(&backup, &created, &live(), Some(&only), Mode::Overwrite).unwrap();
        assert_eq!(p.import, ["orders"]);
        assert!(!p.whole);
        assert_eq!(p.drops.len(), 1);
        let mut l = live();
        l.foreign_keys[0].on_delete = "CASCADE".into();
        let only = ["users".to_string()];
        let e = plan(&backup, &created, &l, Some(&only), Mode::Overwrite).unwrap_err();
        assert!(
            e.contains("`orders` references `users` ON DELETE CASCADE"),
            "{e}"
        );
        let e = plan(
            &backup,
            &created,
            &l,
            Some(&["nope".into()]),
            Mode::Overwrite,
        )
        .unwrap_err();
        assert!(e.contains("`nope`") && e.contains("`users`"), "{e}");
        let e = plan(
            &backup,
            &created,
            &l,
            Some(&["extra".into()]),
            Mode::Overwrite,
        )
        .unwrap_err();
        assert!(e.contains("--mode clear"), "{e}");
    }

    #[test]
    fn the_import_carries_drops_then_the_tables_in_scope_split_between_tables() {
        let dump = "PRAGMA defer_foreign_keys=TRUE;\nCREATE TABLE a(x);\nINSERT INTO a VALUES(1);\nCREATE TABLE b(x INTEGER PRIMARY KEY AUTOINCREMENT);\nINSERT INTO b VALUES(1);\nDELETE FROM sqlite_sequence;\nINSERT INTO \"sqlite_sequence\" VALUES('a',1);\nINSERT INTO \"sqlite_sequence\" VALUES('b',1);\nCREATE INDEX bi ON b(x);\nCREATE VIEW v AS SELECT 1;";
        let p = D1Plan {
            tables: Vec::new(),
            drops: vec![DropObject {
                kind: "table".into(),
                name: "b".into(),
            }],
            import: vec!["b".into()],
            whole: false,
        };
        let (parts, files) = capture(dump, &p, 1 << 20).unwrap();
        assert_eq!(parts.len(), 1);
        assert_eq!(
            files[0],
            "PRAGMA defer_foreign_keys=TRUE;\nDROP TABLE IF EXISTS \"b\";\nCREATE TABLE b(x INTEGER PRIMARY KEY AUTOINCREMENT);\nINSERT INTO b VALUES(1);\nDELETE FROM sqlite_sequence WHERE name IN ('b');\nINSERT INTO \"sqlite_sequence\" VALUES('b',1);\nCREATE INDEX bi ON b(x);\n"
        );
        let whole = D1Plan {
            import: vec!["a".into(), "b".into()],
            whole: true,
            ..p
        };
        let (parts, files) = capture(dump, &whole, 320).unwrap();
        assert_eq!(parts.len(), 2, "{parts:?}");
        assert_eq!(parts[0].tables, ["a"]);
        assert_eq!(parts[1].tables, ["b"]);
        assert!(files[0].contains("DROP TABLE IF EXISTS \"b\""));
        assert!(
            files[1].starts_with("PRAGMA defer_foreign_keys=TRUE;\nCREATE TABLE b"),
            "{}",
            files[1]
        );
        assert!(
            files[1].ends_with("CREATE VIEW v AS SELECT 1;\n"),
            "{}",
            files[1]
        );
        assert_eq!(parts[1].bytes, files[1].len() as u64);
        let e = layout(&survey(dump).unwrap(), &whole, 100).unwrap_err();
        assert!(
            e.contains("table `b`") && e.contains("past D1's limit"),
            "{e}"
        );
    }

    #[test]
    fn the_comparison_names_missing_extra_and_changed_tables() {
        let p = D1Plan {
            tables: ["a", "b", "c", "gone"]
                .iter()
                .map(|n| TableChange {
                    name: n.to_string(),
                    action: if *n == "gone" {
                        Action::Drop
                    } else {
                        Action::Replace
                    },
                    rows_now: None,
                    rows_after: None,
                })
                .collect(),
            ..Default::default()
        };
        let backup = [stats("a", 1), stats("b", 2), stats("c", 3)];
        let mut live: BTreeMap<String, TableStats> = BTreeMap::new();
        live.insert("a".into(), stats("a", 1));
        let mut b = stats("b", 2);
        b.sha256 = "other".into();
        live.insert("b".into(), b);
        live.insert("gone".into(), stats("gone", 1));
        let d = compare(&p, &backup, &live);
        let got: Vec<(&str, &str)> = d
            .iter()
            .map(|x| (x.key.as_str(), x.what.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("b", "content hash differs"),
                ("c", "missing"),
                ("gone", "extra")
            ]
        );
    }
}
