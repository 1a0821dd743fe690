//! `cfdr restore` and `cfdr diff` of R2 backups through the binary against the emulator's S3
//! endpoint: hostile keys, content types, custom metadata, an empty object and a multipart-sized
//! one come back byte for byte; the plan writes nothing; a partial restore touches nothing
//! outside its prefix; clear mode deletes what the backup lacks; undo; a new bucket; and a
//! restore killed with SIGKILL mid-run and resumed.

mod common;

use std::process::Command;

use common::{Api, output};
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

const KEY: &str = "2b4d6f8a0c1e3b5d7f9a2c4e6b8d0f1a3c5e7b9d1f3a5c7e9b2d4f6a8c0e1b3d";

fn cfdr(api: &Api, repo: &str, args: &[&str]) -> Command {
    common::restore_cmd(api, repo, KEY, args)
}

async fn ok_json(api: &Api, repo: &str, args: &[&str]) -> Value {
    common::restore_json(api, repo, KEY, args).await
}

/// An emulator, bucket `bucket` created in it, and a fresh repository (removed with the
/// directory).
async fn start(bucket: &str) -> (Api, cfdr::cloudflare::S3Client, tempfile::TempDir, String) {
    let api = common::start().await;
    let s3 = api.s3();
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo").to_str().unwrap().to_string();
    assert!(s3.create_bucket(bucket).await.unwrap());
    assert!(
        output(cfdr(&api, &repo, &["repo", "init"]))
            .await
            .status
            .success()
    );
    (api, s3, tmp, repo)
}

fn body(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|j| (j * 31 + i * 7) as u8).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bucket_comes_back_byte_for_byte_and_only_where_asked() {
    let (api, s3, _tmp, repo) = start("evidence").await;
    for (i, key) in common::hostile_keys().iter().enumerate() {
        common::put_object(&s3, "evidence", key, body(i, 100 + i), None, &[]).await;
    }
    for i in 0..60 {
        let ct = if i % 2 == 0 {
            "application/json"
        } else {
            "text/plain; charset=utf-8"
        };
        common::put_object(
            &s3,
            "evidence",
            &format!("logs/{i:03}.log"),
            body(i, 2000),
            Some(ct),
            &[("case", "INC-1"), ("seq", &i.to_string())],
        )
        .await;
    }
    common::put_object(
        &s3,
        "evidence",
        "empty",
        Vec::new(),
        Some("application/octet-stream"),
        &[],
    )
    .await;
    // 40 MiB: restored as a multipart upload of 8 MiB parts.
    common::put_object(
        &s3,
        "evidence",
        "dumps/big.bin",
        body(7, 40 << 20),
        Some("application/x-sqlite3"),
        &[("sha", "x")],
    )
    .await;
    let b = ok_json(&api, &repo, &["backup", "r2", "evidence", "--json"]).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let original = common::r2_dump(&s3, "evidence").await;

    // The incident: ten logs overwritten, five deleted, strangers added, the big dump replaced.
    for i in 0..10 {
        common::put_object(
            &s3,
            "evidence",
            &format!("logs/{i:03}.log"),
            b"tampered".to_vec(),
            None,
            &[],
        )
        .await;
    }
    for i in 50..55 {
        s3.delete("evidence", &format!("logs/{i:03}.log"))
            .await
            .unwrap();
    }
    for k in ["logs/zz-stranger", "logs/zz-other", "stranger/outside"] {
        common::put_object(&s3, "evidence", k, b"x".to_vec(), None, &[]).await;
    }
    common::put_object(
        &s3,
        "evidence",
        "dumps/big.bin",
        b"gone".to_vec(),
        None,
        &[],
    )
    .await;
    let damaged = common::r2_dump(&s3, "evidence").await;

    api.control("POST", "/__emulator/stats/reset", None).await;
    let plan = ok_json(
        &api,
        &repo,
        &["restore", &b, "--mode", "clear", "--dry-run", "--json"],
    )
    .await;
    assert_eq!(plan["counts"]["added"], 5, "{plan}");
    assert_eq!(plan["counts"]["changed"], 11);
    assert_eq!(plan["counts"]["removed"], 3);
    let diff = output(cfdr(&api, &repo, &["diff", &b])).await;
    assert_eq!(diff.status.code(), Some(1));
    assert_eq!(
        api.stats().await["writes"],
        0,
        "the plan and the diff wrote nothing"
    );

    // Partial: only logs/ — the dump and the stranger outside stay as they are.
    let partial = ok_json(
        &api,
        &repo,
        &[
            "restore", &b, "--prefix", "logs/", "--mode", "clear", "--yes", "--json",
        ],
    )
    .await;
    assert_eq!(partial["report"]["outcome"], "success", "{partial}");
    assert_eq!(partial["report"]["deleted"], 2);
    let after_partial = common::r2_dump(&s3, "evidence").await;
    for (k, v) in &after_partial {
        if k.starts_with("logs/") {
            assert_eq!(Some(v), original.get(k), "{k} restored");
        } else {
            assert_eq!(Some(v), damaged.get(k), "{k} outside the prefix untouched");
        }
    }

    // Whole: equal to the backup, the multipart-sized object included.
    let whole = ok_json(
        &api,
        &repo,
        &["restore", &b, "--mode", "clear", "--yes", "--json"],
    )
    .await;
    let r = &whole["report"];
    assert_eq!(r["outcome"], "success", "{whole}");
    assert_eq!(
        (r["overwritten"].as_u64(), r["deleted"].as_u64()),
        (Some(1), Some(1))
    );
    let (planned, sent) = (
        r["requests_planned"].as_f64().unwrap(),
        r["requests_sent"].as_f64().unwrap(),
    );
    assert!(
        (sent - planned).abs() <= planned * 0.1,
        "planned {planned} requests, sent {sent}"
    );
    common::assert_same_r2(
        &common::r2_dump(&s3, "evidence").await,
        &original,
        "after the restore",
    );
    assert!(
        output(cfdr(&api, &repo, &["diff", &b]))
            .await
            .status
            .success()
    );

    // Undo: back to the state after the partial restore.
    let undo = ok_json(
        &api,
        &repo,
        &[
            "restore",
            "--undo",
            r["run"].as_str().unwrap(),
            "--yes",
            "--json",
        ],
    )
    .await;
    assert_eq!(undo["report"]["outcome"], "success", "{undo}");
    common::assert_same_r2(
        &common::r2_dump(&s3, "evidence").await,
        &after_partial,
        "undone",
    );

    // Into a new bucket.
    let copy = ok_json(
        &api,
        &repo,
        &["restore", &b, "--to", "evidence-copy", "--yes", "--json"],
    )
    .await;
    assert_eq!(copy["report"]["outcome"], "success", "{copy}");
    assert_eq!(copy["plan"]["snapshot"], "not-needed");
    common::assert_same_r2(
        &common::r2_dump(&s3, "evidence-copy").await,
        &original,
        "the copy",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_r2_restore_resumes_to_the_backup() {
    let (api, s3, _tmp, repo) = start("media").await;
    for i in 0..300 {
        common::put_object(
            &s3,
            "media",
            &format!("img/{i:04}.png"),
            body(i, 3000),
            Some("image/png"),
            &[("n", &i.to_string())],
        )
        .await;
    }
    let b = ok_json(&api, &repo, &["backup", "r2", "media", "--json"]).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let original = common::r2_dump(&s3, "media").await;
    api.control(
        "POST",
        "/__emulator/faults",
        Some(json!({ "latency_ms": 10 })),
    )
    .await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x2_2026);
    let mut resumed = 0;
    let latency = |ms: u64| json!({ "latency_ms": ms });
    for round in 0..20 {
        // The damage at full speed; the restore with every request slowed down.
        api.control("POST", "/__emulator/faults", Some(latency(0)))
            .await;
        for i in 0..300 {
            s3.delete("media", &format!("img/{i:04}.png"))
                .await
                .unwrap();
        }
        // 8 objects at a time: 30 ms a request keeps the run about a second and a half long.
        api.control("POST", "/__emulator/faults", Some(latency(30)))
            .await;
        let after = std::time::Duration::from_millis(rng.random_range(200..1_500));
        resumed += u32::from(
            common::kill_and_resume(&api, &repo, KEY, &["restore", &b, "--yes"], after, round)
                .await,
        );
        api.control("POST", "/__emulator/faults", Some(latency(0)))
            .await;
        common::assert_same_r2(
            &common::r2_dump(&s3, "media").await,
            &original,
            &format!("round {round}"),
        );
    }
    assert!(resumed >= 6, "kills land mid-run ({resumed} of 20 resumed)");
}

/// A large object streams out of its blob into a multipart upload as it is opened; a blob
/// damaged in the repository fails its check before the upload is completed, so the bucket
/// never holds the damaged body (nor any part of it), and the error names the object.
#[tokio::test(flavor = "multi_thread")]
async fn a_damaged_blob_is_never_stored_in_the_bucket() {
    use sha2::Digest as _;
    let (api, s3, _tmp, repo) = start("vault").await;
    let big = body(3, 40 << 20);
    common::put_object(&s3, "vault", "db/big.bin", big.clone(), None, &[]).await;
    ok_json(&api, &repo, &["backup", "r2", "vault", "--json"]).await;
    // Flip one byte two thirds into the sealed blob: a chunk past the first parts.
    let sha = hex::encode(sha2::Sha256::digest(&big));
    let blob = std::path::Path::new(&repo).join(format!("blobs/{}/{sha}", &sha[..2]));
    let mut sealed = std::fs::read(&blob).expect("the blob is in the repository");
    let at = sealed.len() * 2 / 3;
    sealed[at] ^= 0x40;
    std::fs::write(&blob, sealed).unwrap();

    let id = ok_json(&api, &repo, &["backups", "list", "--json"]).await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let out = output(cfdr(
        &api,
        &repo,
        &["restore", &id, "--to", "vault-copy", "--yes"],
    ))
    .await;
    assert!(!out.status.success(), "a damaged body is not restored");
    let err = common::stderr(&out);
    assert!(
        err.contains("object `db/big.bin` cannot be restored") && err.contains(&sha),
        "the error names the object and its blob: {err}"
    );
    assert!(
        err.contains(&format!("cfdr backups verify --full {id}")),
        "and says what to do: {err}"
    );
    let copy = common::r2_dump(&s3, "vault-copy").await;
    assert!(
        !copy.contains_key("db/big.bin"),
        "no part of the damaged body is stored: {:?}",
        copy.keys()
    );
}
