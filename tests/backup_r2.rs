//! `cfdr backup r2` through the binary against the emulator's S3 endpoint: bodies stored once as
//! content-addressed blobs, content type and custom metadata kept, and an unchanged bucket backed
//! up again without downloading a single object body.

mod common;

use cfdr::repo::storage::S3Settings;
use object_store::{
    Attribute, Attributes, ObjectStoreExt as _, PutOptions, PutPayload, path::Path,
};
use serde_json::Value;
use sha2::{Digest, Sha256};

const KEY: &str = "5e7a9c1b3d5f7e9a2c4b6d8f0e1a3c5b7d9f1e3a5c7b9d0f2e4a6c8b0d1f3e5a";

fn cfdr(h: &common::Handle, repo: &str, args: &[&str]) -> std::process::Output {
    common::cfdr_cmd(h, repo, KEY)
        .args(args)
        .output()
        .expect("cfdr runs")
}

async fn run(api: &common::Api, repo: &str, args: &[&str]) -> Value {
    let (h, r, a) = (
        api.clone_handle(),
        repo.to_string(),
        args.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
    );
    let out = tokio::task::spawn_blocking(move || {
        cfdr(&h, &r, &a.iter().map(String::as_str).collect::<Vec<_>>())
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread")]
async fn buckets_back_up_incrementally_by_etag() {
    let api = common::start().await;
    api.send(
        "POST",
        "/r2/buckets",
        Some(serde_json::json!({ "name": "evidence" })),
    )
    .await
    .result();
    let settings = S3Settings {
        endpoint: Some(api.emu.s3_url.clone()),
        access_key_id: Some(cfdr::emulator::DEFAULT_R2_ACCESS_KEY_ID.into()),
        secret_access_key: Some(cfdr::config::Secret::new(
            cfdr::emulator::DEFAULT_R2_SECRET_ACCESS_KEY,
        )),
    };
    let bucket = cfdr::engine::r2::bucket(&settings, "evidence").unwrap();
    let mut bodies = Vec::new();
    for i in 0..40u32 {
        let body: Vec<u8> = (0..(i * 997 % 5000 + 1))
            .map(|j| (j * 7 + i) as u8)
            .collect();
        let mut attributes = Attributes::new();
        attributes.insert(Attribute::ContentType, "image/png".into());
        attributes.insert(
            Attribute::Metadata("case".into()),
            format!("INC-{i}").into(),
        );
        let opts = PutOptions {
            attributes,
            ..Default::default()
        };
        bucket
            .put_opts(
                &Path::from(format!("cases/2026/{i:03}.png")),
                PutPayload::from(body.clone()),
                opts,
            )
            .await
            .unwrap();
        bodies.push(body);
    }
    // Two objects with the same body share one blob.
    bucket
        .put(
            &Path::from("copy-of-000.png"),
            PutPayload::from(bodies[0].clone()),
        )
        .await
        .unwrap();

    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo").to_str().unwrap().to_string();
    run(&api, &repo, &["repo", "init"]).await;
    let first = run(&api, &repo, &["backup", "r2", "evidence", "--json"]).await;
    assert_eq!(first["stats"]["objects"], 41);
    assert_eq!(
        first["stats"]["new_blobs"], 40,
        "identical bodies are stored once"
    );
    assert_eq!(first["blobs"].as_array().unwrap().len(), 40);

    let index = {
        let (h, r, id) = (
            api.clone_handle(),
            repo.clone(),
            first["id"].as_str().unwrap().to_string(),
        );
        tokio::task::spawn_blocking(move || cfdr(&h, &r, &["backups", "cat", &id, "index.ndjson"]))
            .await
            .unwrap()
            .stdout
    };
    let entries: Vec<Value> = String::from_utf8(index)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let seven = entries
        .iter()
        .find(|e| e["key"] == "cases/2026/007.png")
        .unwrap();
    assert_eq!(seven["sha256"], hex::encode(Sha256::digest(&bodies[7])));
    assert_eq!(seven["content_type"], "image/png");
    assert_eq!(seven["metadata"]["case"], "INC-7");

    api.control("POST", "/__emulator/stats/reset", None).await;
    let second = run(&api, &repo, &["backup", "r2", "evidence", "--json"]).await;
    assert_eq!(
        (
            second["stats"]["downloaded"].as_u64(),
            second["stats"]["reused"].as_u64()
        ),
        (Some(0), Some(41))
    );
    assert_eq!(second["parent"], first["id"]);
    let stats = api.stats().await;
    assert!(
        stats["routes"]["GET S3 /{bucket}/{key}"].is_null(),
        "an unchanged bucket downloads no object body: {stats}"
    );

    bucket
        .put(
            &Path::from("cases/2026/003.png"),
            PutPayload::from(b"changed".to_vec()),
        )
        .await
        .unwrap();
    api.control("POST", "/__emulator/stats/reset", None).await;
    let third = run(&api, &repo, &["backup", "r2", "evidence", "--json"]).await;
    assert_eq!(
        (
            third["stats"]["downloaded"].as_u64(),
            third["stats"]["new_blobs"].as_u64()
        ),
        (Some(1), Some(1))
    );
    assert_eq!(
        api.stats().await["routes"]["GET S3 /{bucket}/{key}"]["requests"],
        1
    );
    let verify = run(
        &api,
        &repo,
        &["backups", "verify", "--all", "--full", "--json"],
    )
    .await;
    assert_eq!(verify["ok"], true);
    assert_eq!(
        verify["reports"][0]["artifacts_checked"], 41,
        "the index and its 40 blobs"
    );

    // A damaged blob fails the full verification of every backup that refers to it.
    let sha = seven["sha256"].as_str().unwrap();
    let blob = std::path::Path::new(&repo)
        .join("blobs")
        .join(&sha[..2])
        .join(sha);
    let mut bytes = std::fs::read(&blob).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&blob, bytes).unwrap();
    let (h, r) = (api.clone_handle(), repo.clone());
    let out = tokio::task::spawn_blocking(move || {
        cfdr(&h, &r, &["backups", "verify", "--all", "--full"])
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("blob {sha}")),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
