//! `--seed demo`: an account that feels like a real one, built from what the teams in
//! `shared/seeds` run (see `shared/DEMO.md`): five D1 databases with dozens of tables, KV
//! namespaces with a web app's key patterns and TTLs, and R2 buckets of mixed objects.
//! Deterministic: the same seed gives the same content (timestamps aside).

use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

mod d1;

use super::clock::now_secs;
use super::control::lock;
use super::r2::objects::{Attrs, BucketRecord};
use super::state::Shared;
use super::store::KvEntry;

pub async fn demo(shared: &Arc<Shared>) -> anyhow::Result<()> {
    let mut rng = StdRng::seed_from_u64(0x0cfd_2026);
    for (name, build) in d1::DATABASES {
        let record = shared.d1.create(name, Some("wnam"), None)?;
        let handle = shared
            .d1
            .handle(&record.uuid)
            .ok_or_else(|| anyhow::anyhow!("database `{name}` vanished"))?;
        let mut conn = lock(&handle);
        conn.execute_batch("BEGIN")?;
        build(&conn, &mut rng)?;
        conn.execute_batch("COMMIT")?;
        shared.d1.snapshot(&record.uuid, &mut conn)?;
    }
    seed_kv(shared, &mut rng)?;
    seed_r2(shared, &mut rng).await?;
    Ok(())
}

pub(super) const FIRST: [&str; 12] = [
    "Ada", "Grace", "Linus", "Margaret", "Ken", "Barbara", "Dennis", "Frances", "Alan", "Radia",
    "Edsger", "Hedy",
];
pub(super) const LAST: [&str; 10] = [
    "Lovelace", "Hopper", "Torvalds", "Hamilton", "Thompson", "Liskov", "Ritchie", "Allen",
    "Turing", "Perlman",
];
pub(super) const WORDS: [&str; 16] = [
    "backup",
    "restore",
    "queue",
    "latency",
    "deploy",
    "invoice",
    "worker",
    "cache",
    "replica",
    "bucket",
    "schema",
    "migration",
    "incident",
    "rollback",
    "drill",
    "snapshot",
];

pub(super) fn sentence(rng: &mut StdRng, words: usize) -> String {
    (0..words)
        .map(|_| WORDS[rng.random_range(0..WORDS.len())])
        .collect::<Vec<_>>()
        .join(" ")
}

pub(super) fn uuid(rng: &mut StdRng) -> String {
    uuid::Builder::from_random_bytes(rng.random())
        .into_uuid()
        .to_string()
}

pub(super) fn day(rng: &mut StdRng) -> String {
    format!(
        "2026-{:02}-{:02}T{:02}:{:02}:00Z",
        rng.random_range(1..=11),
        rng.random_range(1..=28),
        rng.random_range(0..24),
        rng.random_range(0..60)
    )
}

fn seed_kv(shared: &Shared, rng: &mut StdRng) -> anyhow::Result<()> {
    let now = now_secs();
    let entry = |key: String,
                 value: Vec<u8>,
                 ttl: Option<i64>,
                 metadata: Option<serde_json::Value>| KvEntry {
        key,
        value,
        expiration: ttl.map(|t| now + t),
        metadata: metadata.map(|m| m.to_string()),
    };
    let mut sessions = Vec::new();
    for i in 0..600 {
        let user = rng.random_range(1..=500);
        sessions.push(entry(
            format!("session:{}", uuid(rng)),
            json!({"user": user, "ua": "Mozilla/5.0"})
                .to_string()
                .into_bytes(),
            Some(7 * 86_400 - i),
            Some(json!({"user": user})),
        ));
    }
    for u in 1..=500 {
        sessions.push(entry(
            format!("user:{u}"),
            json!({"id": u, "name": FIRST[u % FIRST.len()], "plan": (["free", "pro"][u % 2])})
                .to_string()
                .into_bytes(),
            None,
            Some(json!({"tier": "critical"})),
        ));
        sessions.push(entry(
            format!("user_stats:{u}"),
            json!({"plays": rng.random_range(0..10_000), "streak": rng.random_range(0..90)})
                .to_string()
                .into_bytes(),
            None,
            None,
        ));
    }
    sessions.push(entry(
        "stats:user_count".into(),
        b"500".to_vec(),
        None,
        None,
    ));
    for p in 1..=100 {
        sessions.push(entry(
            format!("hof:{p}"),
            json!({"user": rng.random_range(1..=500), "score": 100_000 - p * 97})
                .to_string()
                .into_bytes(),
            None,
            None,
        ));
    }
    sessions.push(entry(
        "scoreboard_cache".into(),
        json!({"top": [1, 2, 3]}).to_string().into_bytes(),
        Some(300),
        None,
    ));
    sessions.push(entry(
        "recent_playlists".into(),
        json!(["lofi", "synthwave", "jazz"])
            .to_string()
            .into_bytes(),
        None,
        None,
    ));
    for d in 1..=30 {
        sessions.push(entry(
            format!("analytics:daily:2026-11-{d:02}"),
            json!({"visits": rng.random_range(100..9000)})
                .to_string()
                .into_bytes(),
            None,
            None,
        ));
    }
    for t in ["play", "skip", "like", "share"] {
        sessions.push(entry(
            format!("analytics:event:{t}"),
            rng.random_range(0..100_000).to_string().into_bytes(),
            None,
            None,
        ));
    }
    for s in 0..20 {
        sessions.push(entry(
            format!("scan_progress:{s}"),
            json!({"done": s * 5, "total": 100})
                .to_string()
                .into_bytes(),
            Some(3600),
            None,
        ));
    }
    let mut cache = Vec::new();
    for i in 0..300 {
        cache.push(entry(
            format!("page:/blog/post-{i}"),
            format!("<html><body><h1>{}</h1></body></html>", sentence(rng, 4)).into_bytes(),
            Some(86_400),
            Some(json!({"etag": hex::encode(rng.random::<[u8; 4]>())})),
        ));
    }
    for i in 0..5 {
        let mut png: Vec<u8> = b"\x89PNG\r\n\x1a\n".to_vec();
        png.extend((0..512).map(|_| rng.random::<u8>()));
        cache.push(entry(
            format!("thumb:{i}.png"),
            png,
            None,
            Some(json!({"content_type": "image/png"})),
        ));
    }
    let flags = vec![
        entry(
            "flag:new-editor".into(),
            b"true".to_vec(),
            None,
            Some(json!({"owner": "web"})),
        ),
        entry("flag:dark-mode".into(), b"true".to_vec(), None, None),
        entry(
            "flag:beta-search".into(),
            json!({"enabled": true, "rollout": 0.25})
                .to_string()
                .into_bytes(),
            None,
            None,
        ),
        entry("flag:maintenance".into(), b"false".to_vec(), None, None),
    ];
    for (title, entries) in [
        ("SESSIONS", sessions),
        ("CACHE", cache),
        ("FEATURE_FLAGS", flags),
    ] {
        let id = hex::encode(rng.random::<[u8; 16]>());
        shared.store.ns_create(&id, title, super::clock::now_ms())?;
        shared.store.kv_put_many(&id, &entries)?;
    }
    Ok(())
}

async fn seed_r2(shared: &Shared, rng: &mut StdRng) -> anyhow::Result<()> {
    let put = |key: String,
               body: Vec<u8>,
               content_type: &'static str,
               meta: Vec<(&'static str, String)>| {
        let (bucket, key) = key.split_once('/').expect("seed keys name their bucket");
        let attrs = Attrs {
            content_type: Some(content_type.into()),
            metadata: meta.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
            ..Attrs::default()
        };
        shared.r2.put_bytes(bucket, key, &body, attrs)
    };
    for bucket in ["evidence", "agent-artifacts", "backups-secondary"] {
        shared.r2.create_bucket(&BucketRecord {
            name: bucket.into(),
            created_ms: super::clock::now_ms(),
            location: "wnam".into(),
            jurisdiction: "default".into(),
            storage_class: "Standard".into(),
        })?;
    }
    for i in 0..8 {
        let (ext, ct, magic): (&str, &'static str, &[u8]) = if i % 2 == 0 {
            ("png", "image/png", b"\x89PNG\r\n\x1a\n")
        } else {
            ("pdf", "application/pdf", b"%PDF-1.7\n")
        };
        let len = rng.random_range(1_000_000..3_000_000);
        let mut body = magic.to_vec();
        body.extend((0..len).map(|_| rng.random::<u8>()));
        put(
            format!("evidence/cases/2026-11/case-{i:03}.{ext}"),
            body,
            ct,
            vec![
                ("case", format!("INC-{}", 4000 + i)),
                ("uploaded-by", "support-bot".into()),
            ],
        )?;
    }
    for i in 0..1500 {
        let body = json!({"run": i, "agent": (["summarizer", "triage", "coder"][i % 3]), "tokens": rng.random_range(100..20_000), "output": sentence(rng, 12)}).to_string();
        put(
            format!(
                "agent-artifacts/runs/2026-11-{:02}/run-{i:05}.json",
                1 + i % 22
            ),
            body.into_bytes(),
            "application/json",
            vec![(
                "agent",
                ["summarizer", "triage", "coder"][i % 3].to_string(),
            )],
        )?;
    }
    Ok(())
}
