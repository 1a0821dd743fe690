//! `--seed demo`: an account that feels like a real one, built from what the teams in
//! `shared/seeds` run (see `shared/DEMO.md`): five D1 databases with dozens of tables, KV
//! namespaces with a web app's key patterns and TTLs, R2 buckets of mixed objects, and Workers
//! with a deploy history to roll back.
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
    seed_workers(shared)?;
    Ok(())
}

/// Four Workers with a history to roll back: `api-gateway`, a bad deploy an hour ago on top of
/// two good ones; `auth-worker`, its JWT secret rotated after its last deploy (a rollback needs
/// `force=true`); `cron-jobs`, a gradual rollout at 10 %; `chat-rooms`, a Durable Object
/// migration between its two versions. Their bindings point at the demo's own KV namespaces, R2
/// buckets and D1 databases.
fn seed_workers(shared: &Shared) -> anyhow::Result<()> {
    use super::workers::{Upload, upload};
    let (namespaces, _) = shared.store.ns_list(true, false, 1, 100)?;
    let kv = |title: &str| {
        namespaces
            .iter()
            .find(|n| n.title == title)
            .map(|n| n.id.clone())
            .unwrap_or_default()
    };
    let d1 = |name: &str| {
        shared
            .store
            .db_get(name, true)
            .ok()
            .flatten()
            .map(|d| d.uuid)
            .unwrap_or_default()
    };
    let hour: i64 = 3_600_000_000;
    let now = super::workers::now_us();
    let at = |hours_ago: i64| Some(now - hours_ago * hour);
    let secrets = |jwt: &str| {
        [("JWT_SECRET".to_string(), jwt.to_string())]
            .into_iter()
            .collect()
    };
    let api_bindings = vec![
        json!({ "type": "kv_namespace", "name": "SESSIONS", "namespace_id": kv("SESSIONS") }),
        json!({ "type": "kv_namespace", "name": "CACHE", "namespace_id": kv("CACHE") }),
        json!({ "type": "d1", "name": "DB", "id": d1("auth-prod"), "database_id": d1("auth-prod") }),
        json!({ "type": "r2_bucket", "name": "EVIDENCE", "bucket_name": "evidence" }),
        json!({ "type": "plain_text", "name": "ENVIRONMENT", "text": "production" }),
    ];
    let deploy = |message: &str, hours_ago: i64, bindings: &Vec<serde_json::Value>| Upload {
        triggered_by: "upload".into(),
        bindings: bindings.clone(),
        secrets: secrets("s3cr3t-2026-10"),
        message: Some(message.into()),
        tag: None,
        migration_tag: None,
        compatibility_date: "2025-09-01".into(),
        author_email: Some("dana@example.com".into()),
        at_us: at(hours_ago),
    };
    for (message, hours_ago) in [
        ("v1.8.0: paginated search", 240),
        ("v1.8.1: fix the invoice total", 72),
        ("v1.9.0: new rate limiter", 1),
    ] {
        upload(
            &shared.store,
            "api-gateway",
            &deploy(message, hours_ago, &api_bindings),
        )
        .map_err(anyhow::Error::msg)?;
    }
    let auth_bindings = vec![
        json!({ "type": "kv_namespace", "name": "SESSIONS", "namespace_id": kv("SESSIONS") }),
        json!({ "type": "d1", "name": "DB", "id": d1("auth-prod"), "database_id": d1("auth-prod") }),
    ];
    for (message, hours_ago) in [("auth 3.2.0", 500), ("auth 3.3.0", 50)] {
        upload(
            &shared.store,
            "auth-worker",
            &deploy(message, hours_ago, &auth_bindings),
        )
        .map_err(anyhow::Error::msg)?;
    }
    upload(
        &shared.store,
        "auth-worker",
        &Upload {
            triggered_by: "secret".into(),
            secrets: secrets("s3cr3t-2026-12-rotated"),
            message: None,
            at_us: at(6),
            ..deploy("", 6, &auth_bindings)
        },
    )
    .map_err(anyhow::Error::msg)?;
    let cron_bindings = vec![
        json!({ "type": "r2_bucket", "name": "ARTIFACTS", "bucket_name": "agent-artifacts" }),
        json!({ "type": "queue", "name": "JOBS", "queue_name": "nightly-jobs" }),
    ];
    upload(
        &shared.store,
        "cron-jobs",
        &deploy("nightly jobs 2.0", 300, &cron_bindings),
    )
    .map_err(anyhow::Error::msg)?;
    let canary = upload(
        &shared.store,
        "cron-jobs",
        &Upload {
            triggered_by: "version_upload".into(),
            ..deploy("nightly jobs 2.1 (canary)", 3, &cron_bindings)
        },
    )
    .map_err(anyhow::Error::msg)?;
    // The rollout in progress: 90 % on the old version, 10 % on the new one.
    let mut cron = canary;
    let (old, new) = (cron.versions[0].id.clone(), cron.versions[1].id.clone());
    cron.deployments.push(super::workers::Deployment {
        id: uuid::Uuid::new_v4().to_string(),
        created_us: now - 2 * hour,
        source: "wrangler".into(),
        versions: vec![(old, 90.0), (new, 10.0)],
        author_email: "dana@example.com".into(),
        message: Some("gradual: nightly jobs 2.1 at 10 %".into()),
        triggered_by: "deployment".into(),
    });
    super::workers::save(&shared.store, &cron)?;
    let rooms = |tag: &str| {
        vec![
            json!({ "type": "durable_object_namespace", "name": "ROOMS", "class_name": "ChatRoom",
                     "namespace_id": format!("do-rooms-{tag}") }),
        ]
    };
    for (message, hours_ago, tag) in [
        ("rooms v1", 400, "v1"),
        ("rooms v2: SQLite-backed rooms", 24, "v2"),
    ] {
        upload(
            &shared.store,
            "chat-rooms",
            &Upload {
                migration_tag: Some(tag.into()),
                ..deploy(message, hours_ago, &rooms(tag))
            },
        )
        .map_err(anyhow::Error::msg)?;
    }
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
