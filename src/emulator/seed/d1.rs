//! The demo account's D1 databases: an auth database, a task tracker, a blog with an FTS5 search
//! table, a support portal with money as integers and blobs, and a small counter database with
//! AUTOINCREMENT and deleted rows.

use rand::Rng;
use rand::rngs::StdRng;
use rusqlite::{Connection, params};
use serde_json::json;

use super::{FIRST, LAST, WORDS, day, sentence, uuid};

pub(super) type Build = fn(&Connection, &mut StdRng) -> rusqlite::Result<()>;

pub(super) const DATABASES: [(&str, Build); 5] = [
    ("auth-prod", auth),
    ("tasks-prod", tasks),
    ("blog-prod", blog),
    ("support-portal", support),
    ("counter-dev", counter),
];

fn migrations(c: &Connection, names: &[&str]) -> rusqlite::Result<()> {
    c.execute_batch(
        "CREATE TABLE d1_migrations(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT UNIQUE, applied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL);",
    )?;
    for n in names {
        c.execute(
            "INSERT INTO d1_migrations(name, applied_at) VALUES (?1, '2026-01-05 10:00:00')",
            [n],
        )?;
    }
    Ok(())
}

fn auth(c: &Connection, rng: &mut StdRng) -> rusqlite::Result<()> {
    c.execute_batch(
        "CREATE TABLE users(id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE, name TEXT NOT NULL, password_hash TEXT NOT NULL,
           role TEXT NOT NULL DEFAULT 'member', created_at TEXT NOT NULL, last_login_at TEXT);
         CREATE TABLE sessions(id TEXT PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
           created_at TEXT NOT NULL, expires_at TEXT NOT NULL, user_agent TEXT);
         CREATE TABLE oauth_tokens(id INTEGER PRIMARY KEY AUTOINCREMENT, user_id INTEGER NOT NULL REFERENCES users(id),
           provider TEXT NOT NULL, access_token TEXT NOT NULL, refresh_token TEXT, expires_at INTEGER NOT NULL);
         CREATE TABLE password_resets(token TEXT PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users(id), expires_at INTEGER NOT NULL) WITHOUT ROWID;
         CREATE INDEX sessions_user ON sessions(user_id);
         CREATE INDEX oauth_user ON oauth_tokens(user_id, provider);",
    )?;
    migrations(
        c,
        &[
            "0001_users.sql",
            "0002_sessions.sql",
            "0003_oauth.sql",
            "0004_password_resets.sql",
        ],
    )?;
    for id in 1..=2000 {
        let (f, l) = (
            FIRST[rng.random_range(0..FIRST.len())],
            LAST[rng.random_range(0..LAST.len())],
        );
        c.execute(
            "INSERT INTO users VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                id,
                format!("{}.{}{id}@example.com", f.to_lowercase(), l.to_lowercase()),
                format!("{f} {l}"),
                format!(
                    "$argon2id$v=19$m=19456,t=2,p=1${}",
                    hex::encode(rng.random::<[u8; 16]>())
                ),
                if id % 50 == 0 { "admin" } else { "member" },
                day(rng),
                if id % 3 == 0 { None } else { Some(day(rng)) },
            ],
        )?;
    }
    for _ in 0..5000 {
        let user = rng.random_range(1..=2000);
        c.execute(
            "INSERT INTO sessions VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                uuid(rng),
                user,
                day(rng),
                day(rng),
                if user % 2 == 0 {
                    "Mozilla/5.0 (X11; Linux x86_64)"
                } else {
                    "Mozilla/5.0 (Macintosh)"
                }
            ],
        )?;
    }
    for _ in 0..800 {
        c.execute(
            "INSERT INTO oauth_tokens(user_id, provider, access_token, refresh_token, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![rng.random_range(1..=2000), ["github", "google", "discord"][rng.random_range(0..3)], hex::encode(rng.random::<[u8; 20]>()), hex::encode(rng.random::<[u8; 20]>()), 1_790_000_000 + rng.random_range(0..10_000_000)],
        )?;
    }
    for _ in 0..40 {
        c.execute(
            "INSERT INTO password_resets VALUES (?1, ?2, ?3)",
            params![
                hex::encode(rng.random::<[u8; 12]>()),
                rng.random_range(1..=2000),
                1_790_000_000
            ],
        )?;
    }
    Ok(())
}

fn tasks(c: &Connection, rng: &mut StdRng) -> rusqlite::Result<()> {
    let wide_cols: Vec<String> = (1..=60).map(|i| format!("m{i:02} REAL")).collect();
    c.execute_batch(&format!(
        "CREATE TABLE projects(id INTEGER PRIMARY KEY, name TEXT NOT NULL, archived INTEGER NOT NULL DEFAULT 0);
         CREATE TABLE tasks(id INTEGER PRIMARY KEY, project_id INTEGER NOT NULL REFERENCES projects(id), title TEXT NOT NULL,
           status TEXT NOT NULL CHECK (status IN ('todo','doing','done')), priority INTEGER NOT NULL, due TEXT, body TEXT);
         CREATE TABLE comments(id INTEGER PRIMARY KEY, task_id INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE, author TEXT, body TEXT NOT NULL, created_at TEXT);
         CREATE TABLE labels(id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, color TEXT);
         CREATE TABLE task_labels(task_id INTEGER REFERENCES tasks(id), label_id INTEGER REFERENCES labels(id), PRIMARY KEY(task_id, label_id)) WITHOUT ROWID;
         CREATE TABLE activity_log(id INTEGER PRIMARY KEY AUTOINCREMENT, task_id INTEGER, action TEXT NOT NULL, at TEXT NOT NULL, payload TEXT);
         CREATE TABLE metrics_wide(day TEXT PRIMARY KEY, {});
         CREATE INDEX tasks_project ON tasks(project_id, status);
         CREATE INDEX activity_task ON activity_log(task_id);
         CREATE VIEW open_tasks AS SELECT t.id, p.name AS project, t.title FROM tasks t JOIN projects p ON p.id = t.project_id WHERE t.status <> 'done';
         CREATE TRIGGER task_done AFTER UPDATE OF status ON tasks WHEN new.status = 'done'
         BEGIN
           INSERT INTO activity_log(task_id, action, at) VALUES (new.id, 'done', datetime('now'));
         END;",
        wide_cols.join(", ")
    ))?;
    migrations(
        c,
        &[
            "0001_init.sql",
            "0002_labels.sql",
            "0003_activity.sql",
            "0004_metrics.sql",
            "0005_due_dates.sql",
        ],
    )?;
    for p in 1..=25 {
        c.execute(
            "INSERT INTO projects VALUES (?1, ?2, ?3)",
            params![
                p,
                format!("Project {}", sentence(rng, 2)),
                i64::from(p % 7 == 0)
            ],
        )?;
    }
    for (i, l) in ["bug", "feature", "p0", "infra", "docs", "customer"]
        .iter()
        .enumerate()
    {
        c.execute(
            "INSERT INTO labels VALUES (?1, ?2, ?3)",
            params![
                i as i64 + 1,
                l,
                format!("#{:06x}", rng.random_range(0..0xffffff))
            ],
        )?;
    }
    for t in 1..=3000 {
        c.execute(
            "INSERT INTO tasks VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                t,
                rng.random_range(1..=25),
                sentence(rng, 4),
                ["todo", "doing", "done"][rng.random_range(0..3)],
                rng.random_range(1..=4),
                day(rng),
                if t % 5 == 0 {
                    Some(format!(
                        "{}\n\n- {}\n- {}",
                        sentence(rng, 8),
                        sentence(rng, 3),
                        sentence(rng, 3)
                    ))
                } else {
                    None
                }
            ],
        )?;
        c.execute(
            "INSERT OR IGNORE INTO task_labels VALUES (?1, ?2)",
            params![t, rng.random_range(1..=6)],
        )?;
    }
    for _ in 0..6000 {
        c.execute(
            "INSERT INTO comments(task_id, author, body, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![
                rng.random_range(1..=3000),
                FIRST[rng.random_range(0..FIRST.len())],
                sentence(rng, 10),
                day(rng)
            ],
        )?;
    }
    for _ in 0..40_000 {
        c.execute(
            "INSERT INTO activity_log(task_id, action, at, payload) VALUES (?1, ?2, ?3, ?4)",
            params![
                rng.random_range(1..=3000),
                ["created", "moved", "commented", "assigned"][rng.random_range(0..4)],
                day(rng),
                json!({"by": rng.random_range(1..=2000)}).to_string()
            ],
        )?;
    }
    let placeholders = vec!["?"; 60].join(",");
    for d in 0..120 {
        let values: Vec<f64> = (0..60)
            .map(|_| (rng.random::<f64>() * 1000.0).round() / 10.0)
            .collect();
        let mut stmt = c.prepare_cached(&format!(
            "INSERT INTO metrics_wide VALUES (?, {placeholders})"
        ))?;
        let mut p: Vec<rusqlite::types::Value> =
            vec![format!("2026-{:02}-{:02}", 1 + d / 28, 1 + d % 28).into()];
        p.extend(values.into_iter().map(rusqlite::types::Value::Real));
        stmt.execute(rusqlite::params_from_iter(p))?;
    }
    Ok(())
}

fn blog(c: &Connection, rng: &mut StdRng) -> rusqlite::Result<()> {
    c.execute_batch(
        "CREATE TABLE authors(id INTEGER PRIMARY KEY, name TEXT NOT NULL, bio TEXT);
         CREATE TABLE posts(id INTEGER PRIMARY KEY, author_id INTEGER REFERENCES authors(id), slug TEXT UNIQUE NOT NULL, title TEXT NOT NULL,
           body TEXT NOT NULL, published_at TEXT, views INTEGER NOT NULL DEFAULT 0);
         CREATE TABLE tags(id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL);
         CREATE TABLE post_tags(post_id INTEGER REFERENCES posts(id), tag_id INTEGER REFERENCES tags(id), PRIMARY KEY (post_id, tag_id));
         CREATE VIRTUAL TABLE posts_fts USING fts5(title, body);
         CREATE TRIGGER posts_ai AFTER INSERT ON posts BEGIN INSERT INTO posts_fts(rowid, title, body) VALUES (new.id, new.title, new.body); END;",
    )?;
    migrations(c, &["0001_posts.sql", "0002_search.sql"])?;
    for a in 1..=8 {
        c.execute(
            "INSERT INTO authors VALUES (?1, ?2, ?3)",
            params![
                a as i64,
                format!("{} {}", FIRST[a % FIRST.len()], LAST[a % LAST.len()]),
                sentence(rng, 6)
            ],
        )?;
    }
    for (i, t) in [
        "cloudflare",
        "d1",
        "kv",
        "r2",
        "postmortem",
        "how-to",
        "release",
    ]
    .iter()
    .enumerate()
    {
        c.execute("INSERT INTO tags VALUES (?1, ?2)", params![i as i64 + 1, t])?;
    }
    for p in 1..=400 {
        let title = format!(
            "{} — {}",
            sentence(rng, 3),
            ["a field guide", "what we learned", "part 2", "done right"][rng.random_range(0..4)]
        );
        let body = (0..6)
            .map(|_| sentence(rng, 12))
            .collect::<Vec<_>>()
            .join("\n\n");
        c.execute(
            "INSERT INTO posts VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                p,
                rng.random_range(1..=8),
                format!("post-{p}"),
                title,
                body,
                if p % 9 == 0 { None } else { Some(day(rng)) },
                rng.random_range(0..50_000)
            ],
        )?;
        c.execute(
            "INSERT OR IGNORE INTO post_tags VALUES (?1, ?2)",
            params![p, rng.random_range(1..=7)],
        )?;
    }
    Ok(())
}

fn support(c: &Connection, rng: &mut StdRng) -> rusqlite::Result<()> {
    c.execute_batch(
        "CREATE TABLE clients(id INTEGER PRIMARY KEY, company TEXT NOT NULL, contact_email TEXT, plan TEXT, \"notes (internal)\" TEXT);
         CREATE TABLE tickets(id INTEGER PRIMARY KEY, client_id INTEGER NOT NULL REFERENCES clients(id), subject TEXT NOT NULL,
           status TEXT NOT NULL, opened_at TEXT NOT NULL, closed_at TEXT);
         CREATE TABLE ticket_messages(id INTEGER PRIMARY KEY, ticket_id INTEGER NOT NULL REFERENCES tickets(id), sender TEXT, body TEXT, sent_at TEXT);
         CREATE TABLE invoices(id INTEGER PRIMARY KEY, client_id INTEGER NOT NULL REFERENCES clients(id), amount_cents INTEGER NOT NULL,
           currency TEXT NOT NULL DEFAULT 'USD', issued_on TEXT NOT NULL, paid INTEGER NOT NULL DEFAULT 0);
         CREATE TABLE attachments(id INTEGER PRIMARY KEY, ticket_id INTEGER NOT NULL REFERENCES tickets(id), filename TEXT NOT NULL,
           content_type TEXT NOT NULL, data BLOB NOT NULL);
         CREATE TABLE audit(id INTEGER PRIMARY KEY AUTOINCREMENT, actor TEXT, action TEXT, at TEXT);
         CREATE INDEX tickets_client ON tickets(client_id, status);
         CREATE VIEW unpaid AS SELECT c.company, sum(i.amount_cents) AS due_cents FROM invoices i JOIN clients c ON c.id = i.client_id WHERE NOT i.paid GROUP BY c.company;",
    )?;
    migrations(
        c,
        &[
            "0001_clients.sql",
            "0002_tickets.sql",
            "0003_invoices.sql",
            "0004_attachments.sql",
        ],
    )?;
    for id in 1..=150 {
        c.execute(
            "INSERT INTO clients VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                id as i64,
                format!("{} {} Ltd", LAST[id % LAST.len()], WORDS[id % WORDS.len()]),
                format!("ops{id}@client.example"),
                ["free", "pro", "enterprise"][id % 3],
                if id % 4 == 0 {
                    Some("Prefers email.\nCall only for P0.")
                } else {
                    None
                }
            ],
        )?;
    }
    for t in 1..=1200 {
        c.execute(
            "INSERT INTO tickets VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                t,
                rng.random_range(1..=150),
                sentence(rng, 5),
                ["open", "pending", "closed"][rng.random_range(0..3)],
                day(rng),
                if t % 3 == 0 { Some(day(rng)) } else { None }
            ],
        )?;
    }
    for _ in 0..3000 {
        c.execute(
            "INSERT INTO ticket_messages(ticket_id, sender, body, sent_at) VALUES (?1, ?2, ?3, ?4)",
            params![
                rng.random_range(1..=1200),
                FIRST[rng.random_range(0..FIRST.len())],
                sentence(rng, 15),
                day(rng)
            ],
        )?;
    }
    for _ in 0..900 {
        c.execute("INSERT INTO invoices(client_id, amount_cents, issued_on, paid) VALUES (?1, ?2, ?3, ?4)", params![rng.random_range(1..=150), rng.random_range(1_000..5_000_000i64), day(rng), rng.random_range(0..2)])?;
    }
    for a in 0..60 {
        let len = rng.random_range(200..6000);
        let mut data: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        data[..4].copy_from_slice(if a % 2 == 0 { b"\x89PNG" } else { b"%PDF" });
        c.execute(
            "INSERT INTO attachments(ticket_id, filename, content_type, data) VALUES (?1, ?2, ?3, ?4)",
            params![rng.random_range(1..=1200), format!("evidence-{a}.{}", if a % 2 == 0 { "png" } else { "pdf" }), if a % 2 == 0 { "image/png" } else { "application/pdf" }, data],
        )?;
    }
    Ok(())
}

fn counter(c: &Connection, rng: &mut StdRng) -> rusqlite::Result<()> {
    c.execute_batch(
        "CREATE TABLE events(id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, value INTEGER, at TEXT);
         CREATE TABLE counters(name TEXT PRIMARY KEY, n INTEGER NOT NULL);",
    )?;
    for _ in 0..500 {
        c.execute(
            "INSERT INTO events(kind, value, at) VALUES (?1, ?2, ?3)",
            params![
                ["click", "view", "signup"][rng.random_range(0..3)],
                rng.random_range(0..100),
                day(rng)
            ],
        )?;
    }
    // Deleted rows: AUTOINCREMENT keeps counting past them.
    c.execute("DELETE FROM events WHERE id % 7 = 0 OR id > 480", [])?;
    c.execute_batch("INSERT INTO counters VALUES ('clicks', 9007199254740993), ('views', 42);")?;
    Ok(())
}
