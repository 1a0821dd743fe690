//! Secrets never leak: every command runs with a recognisable API token, R2 secret and master key,
//! and none of them appears in any output, error, manifest, catalog, lease or artifact — nor a
//! Worker's secret values, through a rollback that Cloudflare refuses over a secret change.

mod common;

use std::path::Path;
use std::process::Command;

use cfdr::emulator::EmulatorConfig;
use serde_json::json;

const TOKEN: &str = "SECRET-api-token-7f3a9c";
const R2_SECRET: &str = "SECRET-r2-secret-4b8e1d";
const KEY: &str = "5ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2";
const WORKER_SECRETS: [&str; 2] = ["SECRET-jwt-old-91c2", "SECRET-jwt-new-e07d"];

fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files(&p))
        } else {
            out.push(p)
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn no_secret_appears_anywhere() {
    let config = EmulatorConfig {
        token: TOKEN.into(),
        r2_secret_access_key: R2_SECRET.into(),
        ..EmulatorConfig::ephemeral()
    };
    let api = common::start_with(config).await;
    let db = api.d1_create("app").await;
    api.d1_sql(&db, "CREATE TABLE t(x); INSERT INTO t VALUES ('hello');")
        .await
        .result();
    let ns = api.kv_create("FLAGS").await;
    api.send(
        "PUT",
        &format!("/storage/kv/namespaces/{ns}/bulk"),
        Some(json!([{ "key": "a", "value": "b" }])),
    )
    .await
    .result();
    api.send("POST", "/r2/buckets", Some(json!({ "name": "media" })))
        .await
        .result();
    // A Worker whose secret was rotated since its previous deploy.
    for (kind, value) in [("upload", WORKER_SECRETS[0]), ("secret", WORKER_SECRETS[1])] {
        api.control(
            "POST",
            "/__emulator/workers/auth/versions",
            Some(json!({ "triggered_by": kind, "secrets": { "JWT_SECRET": value } })),
        )
        .await;
    }

    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let h = api.clone_handle();
    let (repo_s, sqlite) = (
        repo.to_str().unwrap().to_string(),
        tmp.path().join("local.db"),
    );
    rusqlite::Connection::open(&sqlite)
        .unwrap()
        .execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1);")
        .unwrap();
    let outputs = tokio::task::spawn_blocking(move || {
        let run = |args: &[&str], key: &str, token: &str, secret: &str| {
            Command::new(env!("CARGO_BIN_EXE_cfdr"))
                .args(args)
                .env("CFDR_REPO", &repo_s)
                .env("CFDR_KEY", key)
                .env("CFDR_CONFIG", "/nonexistent/cfdr.toml")
                .env("CLOUDFLARE_API_BASE_URL", &h.emu.api_url)
                .env("CLOUDFLARE_API_TOKEN", token)
                .env("CLOUDFLARE_ACCOUNT_ID", &h.emu.account_id)
                .env("R2_ENDPOINT", &h.emu.s3_url)
                .env("R2_ACCESS_KEY_ID", cfdr::emulator::DEFAULT_R2_ACCESS_KEY_ID)
                .env("R2_SECRET_ACCESS_KEY", secret)
                .output()
                .unwrap()
        };
        let sqlite = sqlite.to_str().unwrap().to_string();
        let mut outs = vec![
            run(&["repo", "init"], KEY, TOKEN, R2_SECRET),
            run(&["backup", "--all"], KEY, TOKEN, R2_SECRET),
            run(&["backup", "--all", "--json"], KEY, TOKEN, R2_SECRET),
            run(&["backup", "sqlite", &sqlite], KEY, TOKEN, R2_SECRET),
            run(&["backups", "list", "--json"], KEY, TOKEN, R2_SECRET),
            run(
                &["backups", "verify", "--all", "--full", "--json"],
                KEY,
                TOKEN,
                R2_SECRET,
            ),
        ];
        assert!(
            outs.iter().all(|o| o.status.success()),
            "{}",
            outs.iter()
                .map(|o| String::from_utf8_lossy(&o.stderr).to_string())
                .collect::<String>()
        );
        // Failures print errors: with a wrong token, a wrong R2 secret, a wrong key.
        outs.push(run(
            &["backup", "d1", "app"],
            KEY,
            "SECRET-api-token-wrong",
            R2_SECRET,
        ));
        outs.push(run(
            &["backup", "r2", "media"],
            KEY,
            TOKEN,
            "SECRET-r2-secret-wrong",
        ));
        outs.push(run(
            &["backups", "list"],
            "0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e",
            TOKEN,
            R2_SECRET,
        ));
        assert!(outs[6..].iter().all(|o| !o.status.success()));
        outs.push(run(&["workers", "list", "--json"], KEY, TOKEN, R2_SECRET));
        outs.push(run(
            &["workers", "versions", "auth", "--json"],
            KEY,
            TOKEN,
            R2_SECRET,
        ));
        // Refused with 10220 (the secret named, never its values); the journal is sealed.
        let refused = run(
            &["workers", "rollback", "auth", "--yes", "--settle", "0s"],
            KEY,
            TOKEN,
            R2_SECRET,
        );
        assert!(
            String::from_utf8_lossy(&refused.stdout).contains("JWT_SECRET"),
            "{}",
            String::from_utf8_lossy(&refused.stdout)
        );
        outs.push(refused);
        outs
    })
    .await
    .unwrap();

    let needles = [
        TOKEN,
        R2_SECRET,
        KEY,
        "SECRET-api-token-wrong",
        "SECRET-r2-secret-wrong",
        "0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e",
        WORKER_SECRETS[0],
        WORKER_SECRETS[1],
    ];
    for o in &outputs {
        for text in [&o.stdout, &o.stderr] {
            let text = String::from_utf8_lossy(text);
            for n in needles {
                assert!(!text.contains(n), "`{n}` leaked into output: {text}");
            }
        }
    }
    let all = files(&repo);
    assert!(
        all.len() > 10,
        "the repository holds manifests, artifacts, blobs and the catalog"
    );
    for f in all {
        let bytes = std::fs::read(&f).unwrap();
        for n in needles {
            assert!(
                !bytes.windows(n.len()).any(|w| w == n.as_bytes()),
                "`{n}` found in {}",
                f.display()
            );
        }
    }
}
