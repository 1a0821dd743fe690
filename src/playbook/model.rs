//! A playbook as its TOML file says it: an id, a title, when to use it, RTO/RPO targets, typed
//! parameters and ordered steps. [`parse`] checks everything before anything runs and names
//! each mistake by file, line and column: an unknown key or step kind, a value of the wrong
//! type, a missing field, a step referring to a parameter that is not defined or is of another
//! kind. Pure: text in, a playbook or its errors out.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// A playbook, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Playbook {
    pub id: String,
    pub title: String,
    /// When an on-call engineer should reach for it.
    pub when: String,
    pub rto: Duration,
    pub rpo: Duration,
    pub params: Vec<Param>,
    pub steps: Vec<Step>,
}

/// What a parameter holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    /// A target: a D1 database, KV namespace, R2 bucket or SQLite file (name or id).
    Target,
    /// A backup id, or `latest` (the newest good backup of the target named by `of`).
    Backup,
    /// Components chosen from `d1`, `kv`, `r2`, `sqlite` (comma-separated).
    Components,
    /// A time (RFC 3339, or `now`).
    Time,
    Text,
    /// A Worker, by name (`cfdr workers list`).
    Worker,
}

impl ParamKind {
    /// Every kind, by the name the file gives it.
    const ALL: [(&'static str, Self); 6] = [
        ("target", Self::Target),
        ("backup", Self::Backup),
        ("components", Self::Components),
        ("time", Self::Time),
        ("text", Self::Text),
        ("worker", Self::Worker),
    ];

    pub const NAMES: [&'static str; 6] = {
        let mut names = [""; 6];
        let mut i = 0;
        while i < names.len() {
            names[i] = Self::ALL[i].0;
            i += 1;
        }
        names
    };

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().find(|(n, _)| *n == s).map(|(_, k)| *k)
    }

    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, k)| *k == self)
            .map_or("", |(n, _)| n)
    }
}

/// The kinds of storage cfdr backs up.
pub const COMPONENTS: [&str; 4] = ["d1", "kv", "r2", "sqlite"];

#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    pub name: String,
    pub kind: ParamKind,
    pub help: String,
    /// For a target: which kind of storage it is.
    pub component: Option<String>,
    /// For a backup: the target parameter whose backups it picks from.
    pub of: Option<String>,
    pub default: Option<String>,
}

impl Param {
    /// Whether a run must be given a value for it.
    pub fn required(&self) -> bool {
        self.default.is_none()
    }
}

/// A step's field: text with `{param}` references, as the file wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(pub String);

impl Template {
    /// The text with each `{param}` replaced by its value.
    pub fn render(&self, values: &BTreeMap<String, String>) -> String {
        let mut out = String::new();
        let mut rest = self.0.as_str();
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let close = rest[open..].find('}').map_or(rest.len(), |c| open + c);
            let name = &rest[open + 1..close];
            match values.get(name) {
                Some(v) => out.push_str(v),
                None => out.push_str(&rest[open..=close.min(rest.len() - 1)]),
            }
            rest = rest.get(close + 1..).unwrap_or("");
        }
        out.push_str(rest);
        out
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The `{name}` references in `text`; an error names a brace that does not close or an empty
/// or malformed name.
pub fn references(text: &str) -> Result<Vec<&str>, String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find(['{', '}']) {
        if rest.as_bytes()[open] == b'}' {
            return Err(format!("`}}` without its `{{` in `{text}`"));
        }
        let Some(len) = rest[open + 1..].find('}') else {
            return Err(format!("`{{` without its `}}` in `{text}`"));
        };
        let name = &rest[open + 1..open + 1 + len];
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(format!(
                "`{{{name}}}` is not a parameter reference (letters, digits, `_` and `-`)"
            ));
        }
        out.push(name);
        rest = &rest[open + len + 2..];
    }
    Ok(out)
}

#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// What the operator reads on the checklist.
    pub title: String,
    pub action: Action,
}

/// Restore modes, as `cfdr restore --mode` takes them.
pub const MODES: [&str; 3] = ["overwrite", "skip", "clear"];

/// What a step does. Each is one of the operations the commands run by hand.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// The backup exists, its manifest's MAC holds, the key opens it; `full`: every chunk
    /// decrypted and hashed.
    Validate { backup: Template, full: bool },
    /// A pre-recovery backup of the target as it is now (and, for D1, its bookmark).
    Snapshot { target: Template },
    /// The operator types the target's name.
    Confirm { target: Template },
    Restore {
        backup: Template,
        /// Into another target than the backup's own.
        target: Option<Template>,
        tables: Option<Template>,
        prefix: Option<Template>,
        mode: Option<String>,
        /// D1: back to this time through Time Travel instead of from the backup.
        at: Option<Template>,
        /// Into a scratch target created for the run and removed at its end (drills): nothing
        /// in production is written.
        scratch: bool,
    },
    /// The target read back and compared with the backup.
    Verify {
        backup: Template,
        target: Option<Template>,
    },
    /// The differences between the target and a backup, listed (not a failure).
    Diff {
        backup: Template,
        target: Option<Template>,
    },
    /// A SQL query's first value, a KV key's value or an R2 object's presence, against what
    /// is expected.
    Check {
        target: Template,
        probe: Probe,
        expect: Template,
    },
    /// An instruction, and a checklist the operator ticks.
    Manual {
        text: Template,
        checklist: Vec<String>,
    },
    /// A second person's name recorded, in the given role.
    Approve { role: String },
    /// A webhook message (Discord or Slack JSON); the config's notify URL when none is given.
    Notify {
        message: Template,
        url: Option<Template>,
    },
    Wait {
        time: Duration,
        reason: Option<Template>,
    },
    /// A Worker put back on an earlier version (`cfdr workers rollback`): planned, deployed,
    /// verified.
    Rollback {
        worker: Template,
        /// A version (id, `v12`); the automatic choice when empty.
        to: Option<Template>,
        /// Stages of traffic on the target (`10,50,100`).
        steps: Option<Template>,
        /// Between stages (`30s`).
        wait: Option<Template>,
        /// `yes`: force on Cloudflare's 10220 (a secret changed since the target was live).
        force: Option<Template>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Probe {
    Sql(Template),
    Key(Template),
    Object(Template),
}

impl Action {
    /// The step kind, as the file names it.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Validate { .. } => "validate",
            Self::Snapshot { .. } => "snapshot",
            Self::Confirm { .. } => "confirm",
            Self::Restore { .. } => "restore",
            Self::Verify { .. } => "verify",
            Self::Diff { .. } => "diff",
            Self::Check { .. } => "check",
            Self::Manual { .. } => "manual",
            Self::Approve { .. } => "approve",
            Self::Notify { .. } => "notify",
            Self::Wait { .. } => "wait",
            Self::Rollback { .. } => "rollback",
        }
    }
}

/// Every step kind, with the fields it takes: (name, required).
pub const STEP_KINDS: [(&str, &[(&str, bool)]); 12] = [
    ("validate", &[("backup", true), ("full", false)]),
    ("snapshot", &[("target", true)]),
    ("confirm", &[("target", true)]),
    (
        "restore",
        &[
            ("backup", true),
            ("target", false),
            ("tables", false),
            ("prefix", false),
            ("mode", false),
            ("at", false),
            ("scratch", false),
        ],
    ),
    ("verify", &[("backup", true), ("target", false)]),
    ("diff", &[("backup", true), ("target", false)]),
    (
        "check",
        &[
            ("target", true),
            ("sql", false),
            ("key", false),
            ("object", false),
            ("expect", true),
        ],
    ),
    ("manual", &[("text", true), ("checklist", false)]),
    ("approve", &[("role", true)]),
    ("notify", &[("message", true), ("url", false)]),
    ("wait", &[("for", true), ("reason", false)]),
    (
        "rollback",
        &[
            ("worker", true),
            ("to", false),
            ("steps", false),
            ("wait", false),
            ("force", false),
        ],
    ),
];

/// A mistake in a playbook file, where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

impl std::error::Error for LoadError {}

/// Collects errors against the text they were found in.
struct Errors<'a> {
    text: &'a str,
    file: &'a str,
    found: Vec<LoadError>,
    /// Parameters declared with a mistake of their own: a reference to one is not one more.
    declared: Vec<String>,
}

impl Errors<'_> {
    fn at(&mut self, span: Range<usize>, message: impl Into<String>) {
        let before = &self.text[..span.start.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before
            .rfind('\n')
            .map_or(before.len(), |n| before.len() - n - 1)
            + 1;
        self.found.push(LoadError {
            file: self.file.to_string(),
            line,
            column,
            message: message.into(),
        });
    }
}

type Table<'i> = DeTable<'i>;
type Value<'i> = Spanned<DeValue<'i>>;

fn type_name(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a number",
        DeValue::Boolean(_) => "true or false",
        DeValue::Datetime(_) => "a date",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// Reads one table's keys, reporting those it does not know.
struct Fields<'t, 'i> {
    table: &'t Table<'i>,
    span: Range<usize>,
    /// Where the table is, for messages: "step 3 (restore)".
    place: String,
}

impl<'t, 'i> Fields<'t, 'i> {
    fn get(&self, key: &str) -> Option<&'t Value<'i>> {
        self.table.get(key)
    }

    fn unknown(&self, known: &[&str], e: &mut Errors<'_>) {
        for (k, _) in self.table.iter() {
            if !known.contains(&k.get_ref().as_ref()) {
                e.at(
                    k.span(),
                    format!(
                        "unknown key `{}` in {}; it takes {}",
                        k.get_ref(),
                        self.place,
                        list(known)
                    ),
                );
            }
        }
    }

    fn string(
        &self,
        key: &str,
        required: bool,
        e: &mut Errors<'_>,
    ) -> Option<(String, Range<usize>)> {
        match self.get(key) {
            Some(v) => match v.get_ref() {
                DeValue::String(s) => Some((s.to_string(), v.span())),
                other => {
                    e.at(
                        v.span(),
                        format!(
                            "`{key}` in {} must be a string, not {}",
                            self.place,
                            type_name(other)
                        ),
                    );
                    None
                }
            },
            None => {
                if required {
                    e.at(self.span.clone(), format!("{} needs `{key}`", self.place));
                }
                None
            }
        }
    }

    fn boolean(&self, key: &str, e: &mut Errors<'_>) -> Option<bool> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            other => {
                e.at(
                    v.span(),
                    format!(
                        "`{key}` in {} must be true or false, not {}",
                        self.place,
                        type_name(other)
                    ),
                );
                None
            }
        }
    }

    fn strings(&self, key: &str, e: &mut Errors<'_>) -> Vec<String> {
        let Some(v) = self.get(key) else {
            return Vec::new();
        };
        let DeValue::Array(items) = v.get_ref() else {
            e.at(
                v.span(),
                format!(
                    "`{key}` in {} must be an array of strings, not {}",
                    self.place,
                    type_name(v.get_ref())
                ),
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in items.iter() {
            match item.get_ref() {
                DeValue::String(s) => out.push(s.to_string()),
                other => e.at(
                    item.span(),
                    format!(
                        "`{key}` in {} holds {}; each item must be a string",
                        self.place,
                        type_name(other)
                    ),
                ),
            }
        }
        out
    }
}

fn list(items: &[&str]) -> String {
    items
        .iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A duration as the file writes it (`15m`, `1h 30m`, `24h`).
fn duration(text: &str) -> Option<Duration> {
    humantime::parse_duration(text).ok()
}

/// Parses and checks a playbook file's text; `file` names it in errors.
pub fn parse(text: &str, file: &str) -> Result<Playbook, Vec<LoadError>> {
    let mut e = Errors {
        text,
        file,
        found: Vec::new(),
        declared: Vec::new(),
    };
    let doc = match DeTable::parse(text) {
        Ok(d) => d,
        Err(err) => {
            let span = err.span().unwrap_or(0..0);
            let message = err.message().to_string();
            e.at(span, format!("not valid TOML: {message}"));
            return Err(e.found);
        }
    };
    let top = Fields {
        table: doc.get_ref(),
        span: 0..0,
        place: "the playbook".into(),
    };
    top.unknown(
        &["id", "title", "when", "rto", "rpo", "params", "steps"],
        &mut e,
    );
    let id = top.string("id", true, &mut e);
    if let Some((id, span)) = &id
        && (id.is_empty()
            || !id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'))
    {
        e.at(
            span.clone(),
            format!("id `{id}` must be lower-case letters, digits and `-` (it is typed on the command line)"),
        );
    }
    let title = top.string("title", true, &mut e);
    let when = top.string("when", true, &mut e);
    let target = |key: &str, e: &mut Errors<'_>| {
        let (t, span) = top.string(key, true, e)?;
        let d = duration(&t);
        if d.is_none() {
            e.at(
                span,
                format!("`{key}` `{t}` is not a duration: write it like 15m, 1h or 24h"),
            );
        }
        d
    };
    let rto = target("rto", &mut e);
    let rpo = target("rpo", &mut e);

    let params = match top.get("params") {
        None => Vec::new(),
        Some(v) => match v.get_ref() {
            DeValue::Table(t) => params(t, &mut e),
            other => {
                e.at(
                    v.span(),
                    format!(
                        "`params` must be a table of parameters ([params.<name>]), not {}",
                        type_name(other)
                    ),
                );
                Vec::new()
            }
        },
    };
    let by_name: BTreeMap<&str, &Param> = params.iter().map(|p| (p.name.as_str(), p)).collect();
    let mut steps = Vec::new();
    match top.get("steps") {
        None => e.at(0..0, "the playbook has no steps: add [[steps]] tables"),
        Some(v) => match v.get_ref() {
            DeValue::Array(items) if !items.is_empty() => {
                for (i, item) in items.iter().enumerate() {
                    match item.get_ref() {
                        DeValue::Table(t) => {
                            if let Some(s) = step(i + 1, t, item.span(), &by_name, &mut e) {
                                steps.push(s);
                            }
                        }
                        other => e.at(
                            item.span(),
                            format!(
                                "step {} must be a table ([[steps]]), not {}",
                                i + 1,
                                type_name(other)
                            ),
                        ),
                    }
                }
            }
            _ => e.at(
                v.span(),
                "`steps` must be a non-empty array of tables ([[steps]])",
            ),
        },
    }
    // A restore that writes in place needs the operator's typed confirmation first.
    if let Some(DeValue::Array(items)) = top.get("steps").map(|v| v.get_ref())
        && items.len() == steps.len()
    {
        let mut confirmed = false;
        for (i, s) in steps.iter().enumerate() {
            match &s.action {
                Action::Confirm { .. } => confirmed = true,
                Action::Restore { scratch: false, .. } if !confirmed => {
                    let span = items.get(i).map_or(0..0, |v| v.span());
                    e.at(
                        span,
                        format!(
                            "step {} (restore) writes in place with no confirm step before it; add a step with kind = \"confirm\" (or scratch = true)",
                            i + 1
                        ),
                    );
                }
                _ => {}
            }
        }
    }
    match (id, title, when, rto, rpo) {
        (Some((id, _)), Some((title, _)), Some((when, _)), Some(rto), Some(rpo))
            if e.found.is_empty() =>
        {
            Ok(Playbook {
                id,
                title,
                when,
                rto,
                rpo,
                params,
                steps,
            })
        }
        _ => {
            e.found.sort_by_key(|f| (f.line, f.column));
            Err(e.found)
        }
    }
}

fn params(table: &Table<'_>, e: &mut Errors<'_>) -> Vec<Param> {
    let mut out = Vec::new();
    let mut of_refs = Vec::new();
    for (name, v) in table.iter() {
        let n = name.get_ref().to_string();
        if references(&format!("{{{n}}}")).is_err() {
            e.at(
                name.span(),
                format!("parameter name `{n}` must be letters, digits, `_` and `-`"),
            );
            continue;
        }
        let DeValue::Table(t) = v.get_ref() else {
            e.at(
                v.span(),
                format!(
                    "parameter `{n}` must be a table ([params.{n}] with kind = …), not {}",
                    type_name(v.get_ref())
                ),
            );
            continue;
        };
        e.declared.push(n.clone());
        let f = Fields {
            table: t,
            span: name.span(),
            place: format!("parameter `{n}`"),
        };
        f.unknown(&["kind", "help", "component", "of", "default"], e);
        let Some((kind_text, kind_span)) = f.string("kind", true, e) else {
            continue;
        };
        let Some(kind) = ParamKind::parse(&kind_text) else {
            e.at(
                kind_span,
                format!(
                    "parameter `{n}` has kind `{kind_text}`; the kinds are {}",
                    list(&ParamKind::NAMES)
                ),
            );
            continue;
        };
        let help = f.string("help", false, e).map(|h| h.0).unwrap_or_default();
        let component = f.string("component", false, e);
        if let Some((c, span)) = &component {
            if kind != ParamKind::Target {
                e.at(
                    span.clone(),
                    format!(
                        "`component` is for target parameters; `{n}` is a {}",
                        kind.name()
                    ),
                );
            } else if !COMPONENTS.contains(&c.as_str()) {
                e.at(
                    span.clone(),
                    format!(
                        "component `{c}` of `{n}`: give one of {}",
                        list(&COMPONENTS)
                    ),
                );
            }
        }
        let of = f.string("of", false, e);
        if let Some((_, span)) = &of
            && kind != ParamKind::Backup
        {
            e.at(
                span.clone(),
                format!("`of` is for backup parameters; `{n}` is a {}", kind.name()),
            );
        }
        if let Some((o, span)) = &of {
            of_refs.push((n.clone(), o.clone(), span.clone()));
        }
        let default = f.string("default", false, e);
        if let Some((d, span)) = &default
            && let Err(why) = check_value(kind, d)
        {
            e.at(span.clone(), format!("the default of `{n}`: {why}"));
        }
        out.push(Param {
            name: n,
            kind,
            help,
            component: component.map(|c| c.0),
            of: of.map(|o| o.0),
            default: default.map(|d| d.0),
        });
    }
    for (n, o, span) in of_refs {
        match out.iter().find(|p| p.name == o) {
            Some(p) if p.kind == ParamKind::Target => {}
            Some(p) => e.at(span, format!("`{n}` is a backup of `{o}`, which is a {}, not a target", p.kind.name())),
            None => e.at(span, format!("`{n}` is a backup of `{o}`, which is not a parameter; define [params.{o}] with kind = \"target\"")),
        }
    }
    out
}

/// Whether `value` is a valid value of a parameter of `kind`; the error says what to give.
pub fn check_value(kind: ParamKind, value: &str) -> Result<(), String> {
    match kind {
        ParamKind::Target | ParamKind::Text => Ok(()),
        ParamKind::Worker if value.trim().is_empty() => {
            Err("give a Worker's name (cfdr workers list)".into())
        }
        ParamKind::Worker => Ok(()),
        ParamKind::Backup if value.trim().is_empty() => {
            Err("give a backup id (cfdr backups list) or `latest`".into())
        }
        ParamKind::Backup => Ok(()),
        ParamKind::Components => {
            let bad: Vec<&str> = value
                .split(',')
                .map(str::trim)
                .filter(|c| !COMPONENTS.contains(c))
                .collect();
            if bad.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "`{}` is not a component; give some of {} separated by commas",
                    bad.join(","),
                    list(&COMPONENTS)
                ))
            }
        }
        ParamKind::Time => {
            if value == "now"
                || time::OffsetDateTime::parse(
                    value,
                    &time::format_description::well_known::Rfc3339,
                )
                .is_ok()
            {
                Ok(())
            } else {
                Err(format!(
                    "`{value}` is not a time: give RFC 3339 (2026-12-01T09:30:00Z) or `now`"
                ))
            }
        }
    }
}

/// A step field's value checked against the parameters: each `{reference}` defined (or at
/// least declared, when its declaration has its own error), and a field that is one reference
/// alone of a kind it takes. Inside other text any parameter reads as its value.
fn template(
    f: &Fields<'_, '_>,
    key: &str,
    required: bool,
    takes: &[ParamKind],
    params: &BTreeMap<&str, &Param>,
    e: &mut Errors<'_>,
) -> Option<Template> {
    let (text, span) = f.string(key, required, e)?;
    let refs = match references(&text) {
        Ok(r) => r,
        Err(why) => {
            e.at(span, format!("`{key}` in {}: {why}", f.place));
            return None;
        }
    };
    let whole = refs.len() == 1 && text == format!("{{{}}}", refs[0]);
    for r in &refs {
        match params.get(r) {
            None if e.declared.iter().any(|d| d == r) => {}
            None => e.at(
                span.clone(),
                format!(
                    "`{key}` in {} refers to `{{{r}}}`, which is not a parameter; define [params.{r}] or fix the name (parameters: {})",
                    f.place,
                    if params.is_empty() { "none".to_string() } else { list(&params.keys().copied().collect::<Vec<_>>()) }
                ),
            ),
            Some(p) if whole && !takes.is_empty() && !takes.contains(&p.kind) => e.at(
                span.clone(),
                format!(
                    "`{key}` in {} takes a {} parameter, but `{r}` is a {}",
                    f.place,
                    takes.iter().map(|k| k.name()).collect::<Vec<_>>().join(" or "),
                    p.kind.name()
                ),
            ),
            Some(_) => {}
        }
    }
    Some(Template(text))
}

fn step(
    n: usize,
    table: &Table<'_>,
    span: Range<usize>,
    params: &BTreeMap<&str, &Param>,
    e: &mut Errors<'_>,
) -> Option<Step> {
    let kinds: Vec<&str> = STEP_KINDS.iter().map(|(k, _)| *k).collect();
    let head = Fields {
        table,
        span: span.clone(),
        place: format!("step {n}"),
    };
    let (kind, kind_span) = head.string("kind", true, e)?;
    let Some((_, fields)) = STEP_KINDS.iter().find(|(k, _)| *k == kind) else {
        e.at(
            kind_span,
            format!(
                "step {n} has kind `{kind}`; the step kinds are {}",
                list(&kinds)
            ),
        );
        return None;
    };
    let f = Fields {
        table,
        span,
        place: format!("step {n} ({kind})"),
    };
    let mut known: Vec<&str> = vec!["kind", "title"];
    known.extend(fields.iter().map(|(k, _)| *k));
    f.unknown(&known, e);
    let before = e.found.len();
    let title = f.string("title", false, e).map(|t| t.0);
    use ParamKind as K;
    let t = |key: &str, required: bool, takes: &[ParamKind], e: &mut Errors<'_>| {
        template(&f, key, required, takes, params, e)
    };
    let target_kinds = [K::Target, K::Components];
    let confirm_kinds = [K::Target, K::Components, K::Worker];
    let backup_kinds = [K::Backup, K::Components];
    let action = match kind.as_str() {
        "validate" => Action::Validate {
            backup: t("backup", true, &backup_kinds, e)?,
            full: f.boolean("full", e).unwrap_or(false),
        },
        "snapshot" => Action::Snapshot {
            target: t("target", true, &target_kinds, e)?,
        },
        "confirm" => Action::Confirm {
            target: t("target", true, &confirm_kinds, e)?,
        },
        "restore" => {
            let mode = f.string("mode", false, e);
            if let Some((m, s)) = &mode
                && !MODES.contains(&m.as_str())
            {
                e.at(
                    s.clone(),
                    format!("mode `{m}` in {}: give one of {}", f.place, list(&MODES)),
                );
            }
            Action::Restore {
                backup: t("backup", true, &backup_kinds, e)?,
                target: t("target", false, &target_kinds, e),
                tables: t("tables", false, &[K::Text], e),
                prefix: t("prefix", false, &[K::Text], e),
                mode: mode.map(|m| m.0),
                at: t("at", false, &[K::Time], e),
                scratch: f.boolean("scratch", e).unwrap_or(false),
            }
        }
        "verify" => Action::Verify {
            backup: t("backup", true, &backup_kinds, e)?,
            target: t("target", false, &target_kinds, e),
        },
        "diff" => Action::Diff {
            backup: t("backup", true, &backup_kinds, e)?,
            target: t("target", false, &target_kinds, e),
        },
        "check" => {
            let probes: Vec<Probe> = [
                t("sql", false, &[], e).map(Probe::Sql),
                t("key", false, &[], e).map(Probe::Key),
                t("object", false, &[], e).map(Probe::Object),
            ]
            .into_iter()
            .flatten()
            .collect();
            if probes.len() != 1 {
                e.at(
                    f.span.clone(),
                    format!("{} needs exactly one of `sql`, `key` or `object`", f.place),
                );
            }
            Action::Check {
                target: t("target", true, &[K::Target], e)?,
                probe: probes.into_iter().next()?,
                expect: t("expect", true, &[], e)?,
            }
        }
        "manual" => Action::Manual {
            text: t("text", true, &[], e)?,
            checklist: f.strings("checklist", e),
        },
        "approve" => Action::Approve {
            role: f.string("role", true, e)?.0,
        },
        "notify" => Action::Notify {
            message: t("message", true, &[], e)?,
            url: t("url", false, &[K::Text], e),
        },
        "wait" => {
            let (text, s) = f.string("for", true, e)?;
            let Some(time) = duration(&text) else {
                e.at(
                    s,
                    format!(
                        "`for` `{text}` in {} is not a duration: write it like 30s or 5m",
                        f.place
                    ),
                );
                return None;
            };
            Action::Wait {
                time,
                reason: t("reason", false, &[], e),
            }
        }
        "rollback" => Action::Rollback {
            worker: t("worker", true, &[K::Worker], e)?,
            to: t("to", false, &[K::Text], e),
            steps: t("steps", false, &[K::Text], e),
            wait: t("wait", false, &[K::Text], e),
            force: t("force", false, &[K::Text], e),
        },
        _ => unreachable!("every kind of STEP_KINDS is matched"),
    };
    if e.found.len() != before {
        return None;
    }
    Some(Step {
        title: title.unwrap_or_else(|| default_title(&action)),
        action,
    })
}

/// What a step without a title is called on the checklist.
fn default_title(a: &Action) -> String {
    match a {
        Action::Validate { backup, full } => format!(
            "Validate backup {backup}{}",
            if *full { " (full)" } else { "" }
        ),
        Action::Snapshot { target } => format!("Pre-recovery snapshot of {target}"),
        Action::Confirm { target } => format!("Confirm: type {target}"),
        Action::Restore { backup, target, .. } => match target {
            Some(t) => format!("Restore {backup} into {t}"),
            None => format!("Restore {backup}"),
        },
        Action::Verify { backup, .. } => format!("Verify against {backup}"),
        Action::Diff { backup, .. } => format!("Compare with {backup}"),
        Action::Check { target, .. } => format!("Check {target}"),
        Action::Manual { text, .. } => text.0.lines().next().unwrap_or("").to_string(),
        Action::Approve { role } => format!("Approval by the {role}"),
        Action::Notify { .. } => "Notify".into(),
        Action::Wait { time, .. } => format!("Wait {}", humantime::format_duration(*time)),
        Action::Rollback { worker, .. } => format!("Roll back Worker {worker}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"id = "demo"
title = "A demo"
when = "Whenever"
rto = "15m"
rpo = "24h"

[params.db]
kind = "target"
component = "d1"

[params.backup]
kind = "backup"
of = "db"
default = "latest"

[params.before]
kind = "time"

[[steps]]
kind = "validate"
backup = "{backup}"
full = true

[[steps]]
kind = "confirm"
target = "{db}"

[[steps]]
kind = "restore"
backup = "{backup}"
target = "{db}"
at = "{before}"

[[steps]]
kind = "check"
target = "{db}"
sql = "SELECT count(*) FROM users"
expect = "3"

[[steps]]
kind = "manual"
text = "Look at {db}"
checklist = ["one", "two"]

[[steps]]
kind = "wait"
for = "30s"
"#;

    /// The one error `text` gives, as `line:column: message`.
    fn error(text: &str) -> String {
        let errors = parse(text, "p.toml").expect_err("a broken playbook");
        assert_eq!(errors.len(), 1, "{errors:?}");
        let e = &errors[0];
        assert_eq!(e.file, "p.toml");
        format!("{}:{}: {}", e.line, e.column, e.message)
    }

    #[test]
    fn a_good_playbook_loads_with_its_parameters_and_steps() {
        let p = parse(GOOD, "p.toml").unwrap();
        assert_eq!(p.id, "demo");
        assert_eq!(p.rto, Duration::from_secs(900));
        assert_eq!(p.params.len(), 3);
        let backup = p.params.iter().find(|q| q.name == "backup").unwrap();
        assert_eq!(
            (backup.kind, backup.of.as_deref()),
            (ParamKind::Backup, Some("db"))
        );
        assert!(!backup.required());
        assert!(p.params.iter().find(|q| q.name == "db").unwrap().required());
        let kinds: Vec<&str> = p.steps.iter().map(|s| s.action.kind()).collect();
        assert_eq!(
            kinds,
            ["validate", "confirm", "restore", "check", "manual", "wait"]
        );
        assert_eq!(p.steps[0].title, "Validate backup {backup} (full)");
        assert_eq!(
            p.steps[5].action,
            Action::Wait {
                time: Duration::from_secs(30),
                reason: None
            }
        );
    }

    #[test]
    fn an_unknown_step_kind_is_named_with_the_kinds_there_are() {
        let e = error(&GOOD.replace("kind = \"wait\"", "kind = \"sleep\""));
        assert!(e.starts_with("46:8: step 6 has kind `sleep`"), "{e}");
        assert!(e.contains("`validate`") && e.contains("`wait`"), "{e}");
    }

    #[test]
    fn a_reference_to_an_undefined_parameter_is_named() {
        let e = error(&GOOD.replace("text = \"Look at {db}\"", "text = \"Look at {database}\""));
        assert!(
            e.starts_with(
                "42:8: `text` in step 5 (manual) refers to `{database}`, which is not a parameter"
            ),
            "{e}"
        );
        assert!(e.contains("parameters: `backup`, `before`, `db`"), "{e}");
    }

    #[test]
    fn a_parameter_of_the_wrong_kind_is_named() {
        let e = error(&GOOD.replace("backup = \"{backup}\"\nfull", "backup = \"{db}\"\nfull"));
        assert!(
            e.starts_with("21:10: `backup` in step 1 (validate) takes a backup or components parameter, but `db` is a target"),
            "{e}"
        );
        let e = error(&GOOD.replace("at = \"{before}\"", "at = \"{db}\""));
        assert!(
            e.contains("`at` in step 3 (restore) takes a time parameter"),
            "{e}"
        );
        let e = error(&GOOD.replace("kind = \"time\"", "kind = \"date\""));
        assert!(
            e.starts_with("17:8: parameter `before` has kind `date`"),
            "{e}"
        );
    }

    #[test]
    fn missing_fields_wrong_types_and_unknown_keys_are_named() {
        let e = error(&GOOD.replace("sql = \"SELECT count(*) FROM users\"\n", ""));
        assert!(
            e.contains("step 4 (check) needs exactly one of `sql`, `key` or `object`"),
            "{e}"
        );
        let e = error(&GOOD.replace("full = true", "full = \"yes\""));
        assert!(
            e.starts_with("22:8: `full` in step 1 (validate) must be true or false, not a string"),
            "{e}"
        );
        let e = error(&GOOD.replace("full = true", "fulll = true"));
        assert!(
            e.starts_with("22:1: unknown key `fulll` in step 1 (validate)"),
            "{e}"
        );
        let e = error(&GOOD.replace("rto = \"15m\"", "rto = \"soon\""));
        assert!(e.starts_with("4:7: `rto` `soon` is not a duration"), "{e}");
        let e = error(&GOOD.replace("for = \"30s\"", "for = 30"));
        assert!(
            e.contains("`for` in step 6 (wait) must be a string, not an integer"),
            "{e}"
        );
        let e = error(&GOOD.replace("id = \"demo\"\n", ""));
        assert!(e.starts_with("1:1: the playbook needs `id`"), "{e}");
        let e = error(&GOOD.replace("of = \"db\"", "of = \"database\""));
        assert!(
            e.contains("`backup` is a backup of `database`, which is not a parameter"),
            "{e}"
        );
    }

    #[test]
    fn an_in_place_restore_needs_a_confirmation_before_it() {
        let text = GOOD.replace("[[steps]]\nkind = \"confirm\"\ntarget = \"{db}\"\n\n", "");
        let e = error(&text);
        assert!(
            e.contains("step 2 (restore) writes in place with no confirm step before it"),
            "{e}"
        );
        let scratch = text.replace("at = \"{before}\"", "scratch = true");
        assert!(parse(&scratch, "p.toml").is_ok());
    }

    #[test]
    fn broken_toml_is_reported_where_it_breaks() {
        let e = error("id = \"x\"\ntitle = \n");
        assert!(e.starts_with("2:9: not valid TOML"), "{e}");
    }

    #[test]
    fn references_render_and_report_unbalanced_braces() {
        assert_eq!(references("{a} and {b-c}").unwrap(), ["a", "b-c"]);
        assert!(
            references("{a").is_err() && references("a}").is_err() && references("{}").is_err()
        );
        let values = BTreeMap::from([("db".to_string(), "tasks-prod".to_string())]);
        assert_eq!(
            Template("restore {db} ({x})".into()).render(&values),
            "restore tasks-prod ({x})"
        );
        assert!(check_value(ParamKind::Components, "d1, kv").is_ok());
        assert!(
            check_value(ParamKind::Components, "d1,workers")
                .unwrap_err()
                .contains("`workers`")
        );
        assert!(check_value(ParamKind::Time, "2026-12-01T09:30:00Z").is_ok());
        assert!(check_value(ParamKind::Time, "yesterday").is_err());
    }
}
