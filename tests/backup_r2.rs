//! `cfdr backup r2` through the binary against the emulator's S3 endpoint: bodies stored once as
//! content-addressed blobs, content type and custom metadata kept, and an unchanged bucket backed
//! up again without downloading a single object body.

mod common;

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
    common::cfdr_json(api, repo, KEY, args).await
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
    let bucket = api.s3();
    let mut bodies = Vec::new();
    for i in 0..40u32 {
        let body: Vec<u8> = (0..(i * 997 % 5000 + 1))
            .map(|j| (j * 7 + i) as u8)
            .collect();
        let case = format!("INC-{i}");
        common::put_object(
            &bucket,
            "evidence",
            &format!("cases/2026/{i:03}.png"),
            body.clone(),
            Some("image/png"),
            &[("case", &case)],
        )
        .await;
        bodies.push(body);
    }
    // Two objects with the same body share one blob.
    common::put_object(
        &bucket,
        "evidence",
        "copy-of-000.png",
        bodies[0].clone(),
        None,
        &[],
    )
    .await;

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
    // Every body went straight into its sealed blob, committed under its name: nothing is left
    // staged, and each blob opens to its body.
    let partial = std::path::Path::new(&repo).join("blobs/partial");
    assert_eq!(
        std::fs::read_dir(&partial).map_or(0, |d| d.count()),
        0,
        "no partial blob is left after a backup"
    );

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

    common::put_object(
        &bucket,
        "evidence",
        "cases/2026/003.png",
        b"changed".to_vec(),
        None,
        &[],
    )
    .await;
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

/// A repository on S3 (the emulator's R2): each new body is sealed and uploaded once it is
/// whole, identical bodies once, and the backup verifies in full and restores byte for byte.
#[tokio::test(flavor = "multi_thread")]
async fn a_bucket_backs_up_into_a_repository_on_s3() {
    let api = common::start().await;
    for name in ["photos", "vault"] {
        api.send(
            "POST",
            "/r2/buckets",
            Some(serde_json::json!({ "name": name })),
        )
        .await
        .result();
    }
    let bucket = api.s3();
    let mut bodies = Vec::new();
    for i in 0..12u32 {
        let body: Vec<u8> = (0..(i * 40_001 % 300_000 + 1))
            .map(|j| (j * 13 + i) as u8)
            .collect();
        common::put_object(
            &bucket,
            "photos",
            &format!("p/{i}.jpg"),
            body.clone(),
            None,
            &[],
        )
        .await;
        bodies.push(body);
    }
    common::put_object(&bucket, "photos", "again.jpg", bodies[3].clone(), None, &[]).await;

    let repo = "s3://vault/cfdr";
    run(&api, repo, &["repo", "init"]).await;
    let backup = run(&api, repo, &["backup", "r2", "photos", "--json"]).await;
    assert_eq!(backup["stats"]["objects"], 13);
    assert_eq!(
        backup["stats"]["new_blobs"], 12,
        "identical bodies are stored once"
    );
    let verify = run(
        &api,
        repo,
        &["backups", "verify", "--all", "--full", "--json"],
    )
    .await;
    assert_eq!(verify["ok"], true, "{verify}");
    let id = backup["id"].as_str().unwrap();
    run(
        &api,
        repo,
        &["restore", id, "--to", "photos-back", "--yes", "--json"],
    )
    .await;
    for (i, body) in bodies.iter().enumerate() {
        let mut got = Vec::new();
        bucket
            .get(
                "photos-back",
                &format!("p/{i}.jpg"),
                None,
                None,
                &mut |c: bytes::Bytes| {
                    got.extend_from_slice(&c);
                    Ok(())
                },
            )
            .await
            .unwrap();
        assert_eq!(&got, body, "p/{i}.jpg");
    }
}
