//! Splits SQL text into statements the way SQLite's shell does: at a `;` that completes a
//! statement (so `;` inside strings, comments and trigger bodies does not split). Shared by the
//! emulator (D1 runs a batch statement by statement) and the D1 engine (replaying a dump).

use std::ffi::CStr;
use std::io::BufRead;

/// Whether `sql` ends with a complete statement, per `sqlite3_complete`; `buf` is scratch
/// space for its NUL-terminated copy, kept between calls.
fn complete(sql: &str, buf: &mut Vec<u8>) -> bool {
    if sql.as_bytes().contains(&0) {
        // A NUL byte ends the text for SQLite: treat what follows as one statement.
        return false;
    }
    buf.clear();
    buf.extend_from_slice(sql.as_bytes());
    buf.push(0);
    match CStr::from_bytes_with_nul(buf) {
        // SAFETY: the pointer is a valid NUL-terminated string for the duration of the call.
        Ok(c) => unsafe { rusqlite::ffi::sqlite3_complete(c.as_ptr()) != 0 },
        Err(_) => false,
    }
}

/// Whether `sql` is one or more complete statements (its last ends with its `;`).
pub fn is_complete(sql: &str) -> bool {
    complete(sql, &mut Vec::new())
}

/// `stmt` without the comments before its first word (`-- …` lines, `/* … */`).
pub fn without_leading_comments(stmt: &str) -> &str {
    let mut s = stmt.trim_start();
    loop {
        if let Some(rest) = s.strip_prefix("--") {
            s = rest.split_once('\n').map_or("", |(_, r)| r).trim_start();
        } else if let Some(rest) = s.strip_prefix("/*") {
            s = rest.split_once("*/").map_or("", |(_, r)| r).trim_start();
        } else {
            return s;
        }
    }
}

/// The statements in `sql`, each with its terminating `;`, surrounding whitespace trimmed.
/// Text after the last complete statement is returned as a final statement when non-blank.
pub fn statements(sql: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut buf = Vec::new();
    for (i, b) in sql.bytes().enumerate() {
        if b == b';' && complete(&sql[start..=i], &mut buf) {
            let stmt = sql[start..=i].trim();
            if stmt != ";" && !stmt.is_empty() {
                out.push(stmt);
            }
            start = i + 1;
        }
    }
    let rest = sql[start..].trim();
    if !rest.is_empty() && !is_only_comments(rest) {
        out.push(rest);
    }
    out
}

/// The statements of SQL text read from `r`, one at a time and split exactly as
/// [`statements`] splits the whole text, holding only the statement being read.
pub struct Reader<R> {
    r: R,
    /// Text read and not yet returned.
    buf: String,
    /// How far into `buf` the search for a statement's end has looked.
    scanned: usize,
    scratch: Vec<u8>,
    done: bool,
}

impl<R: BufRead> Reader<R> {
    pub fn new(r: R) -> Self {
        Self {
            r,
            buf: String::new(),
            scanned: 0,
            scratch: Vec::new(),
            done: false,
        }
    }
}

impl<R: BufRead> Iterator for Reader<R> {
    /// A statement, or the read's error (text that is not UTF-8 included).
    type Item = std::io::Result<String>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            while let Some(at) = self.buf[self.scanned..].find(';') {
                let end = self.scanned + at;
                self.scanned = end + 1;
                if complete(&self.buf[..=end], &mut self.scratch) {
                    let stmt = self.buf[..=end].trim().to_string();
                    self.buf.drain(..=end);
                    self.scanned = 0;
                    if stmt != ";" && !stmt.is_empty() {
                        return Some(Ok(stmt));
                    }
                }
            }
            if self.done {
                return None;
            }
            match self.r.read_line(&mut self.buf) {
                Ok(0) => {
                    self.done = true;
                    let rest = self.buf.trim();
                    let tail =
                        (!rest.is_empty() && !is_only_comments(rest)).then(|| rest.to_string());
                    self.buf.clear();
                    self.scanned = 0;
                    if let Some(t) = tail {
                        return Some(Ok(t));
                    }
                    return None;
                }
                Ok(_) => {}
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

fn is_only_comments(s: &str) -> bool {
    s.lines().all(|l| {
        let l = l.trim();
        l.is_empty() || l.starts_with("--")
    })
}

#[cfg(test)]
mod tests {
    use super::statements;

    #[test]
    fn splits_at_statement_ends_only() {
        let sql = "CREATE TABLE t(a);\nINSERT INTO t VALUES('x;y');\n-- c;\nCREATE TRIGGER tr AFTER INSERT ON t BEGIN\n  UPDATE t SET a=1; DELETE FROM t;\nEND;\nSELECT 1";
        let got = statements(sql);
        assert_eq!(got.len(), 4, "{got:?}");
        assert_eq!(got[1], "INSERT INTO t VALUES('x;y');");
        assert!(got[2].starts_with("-- c;\nCREATE TRIGGER") && got[2].ends_with("END;"));
        assert_eq!(got[3], "SELECT 1");
    }

    #[test]
    fn blank_and_comment_tails_are_not_statements() {
        assert_eq!(statements(";;  \n-- done\n"), Vec::<&str>::new());
    }

    #[test]
    fn the_reader_splits_as_the_whole_text_splits() {
        for sql in [
            "CREATE TABLE t(a);\nINSERT INTO t VALUES('x;y');\n-- c;\nCREATE TRIGGER tr AFTER INSERT ON t BEGIN\n  UPDATE t SET a=1; DELETE FROM t;\nEND;\nSELECT 1",
            "INSERT INTO t VALUES('multi\nline;\n text');INSERT INTO t VALUES(2); INSERT INTO t VALUES(3);\n",
            ";;  \n-- done\n",
            "/* a; b */ SELECT 1;\n\n",
            "",
        ] {
            let whole: Vec<String> = statements(sql).into_iter().map(str::to_string).collect();
            let read: Vec<String> = super::Reader::new(sql.as_bytes())
                .collect::<std::io::Result<_>>()
                .unwrap();
            assert_eq!(read, whole, "{sql:?}");
        }
        let bad: &[u8] = b"SELECT 1;\nSELECT '\xff';\n";
        let got: Vec<std::io::Result<String>> = super::Reader::new(bad).collect();
        assert_eq!(got[0].as_deref().unwrap(), "SELECT 1;");
        assert!(got[1].is_err(), "text that is not UTF-8 is an error");
    }
}
