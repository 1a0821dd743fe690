//! Splits SQL text into statements the way SQLite's shell does: at a `;` that completes a
//! statement (so `;` inside strings, comments and trigger bodies does not split). Shared by the
//! emulator (D1 runs a batch statement by statement) and the D1 engine (replaying a dump).

use std::ffi::CString;

/// Whether `sql` ends with a complete statement, per `sqlite3_complete`.
fn complete(sql: &str) -> bool {
    match CString::new(sql) {
        // SAFETY: the pointer is a valid NUL-terminated string for the duration of the call.
        Ok(c) => unsafe { rusqlite::ffi::sqlite3_complete(c.as_ptr()) != 0 },
        // A NUL byte ends the text for SQLite: treat what follows as one statement.
        Err(_) => false,
    }
}

/// The statements in `sql`, each with its terminating `;`, surrounding whitespace trimmed.
/// Text after the last complete statement is returned as a final statement when non-blank.
pub fn statements(sql: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, b) in sql.bytes().enumerate() {
        if b == b';' && complete(&sql[start..=i]) {
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
}
