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
    assert_eq!(
        first["blobs"],
        serde_json::json!([]),
        "the index names the blobs; the manifest does not repeat them"
    );
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
    // A new key whose body the repository has (found by the sealing thread, its partial file
    // dropped), and a body of several chunks, larger than what is gathered in memory before
    // its sealing thread starts.
    common::put_object(
        &bucket,
        "evidence",
        "cases/2026/005-again.png",
        bodies[5].clone(),
        None,
        &[],
    )
    .await;
    let medium: Vec<u8> = (0..(3usize << 20) + 7).map(|j| (j % 253) as u8).collect();
    common::put_object(
        &bucket,
        "evidence",
        "scans/medium.bin",
        medium.clone(),
        None,
        &[],
    )
    .await;
    let fourth = run(&api, &repo, &["backup", "r2", "evidence", "--json"]).await;
    assert_eq!(
        (
            fourth["stats"]["downloaded"].as_u64(),
            fourth["stats"]["new_blobs"].as_u64()
        ),
        (Some(2), Some(1)),
        "the body the repository had is not stored again"
    );
    assert_eq!(
        std::fs::read_dir(&partial).map_or(0, |d| d.count()),
        0,
        "no partial blob is left after a backup"
    );
    let medium_sha = hex::encode(Sha256::digest(&medium));
    assert!(
        std::path::Path::new(&repo)
            .join("blobs")
            .join(&medium_sha[..2])
            .join(&medium_sha)
            .is_file(),
        "the medium body is stored under its plaintext's SHA-256"
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
    // Equal bodies side by side in the listing, so they are downloaded at the same time: still
    // uploaded once.
    for k in 0..5 {
        let key = format!("copy-{k}.jpg");
        common::put_object(&bucket, "photos", &key, bodies[5].clone(), None, &[]).await;
    }

    let repo = "s3://vault/cfdr";
    run(&api, repo, &["repo", "init"]).await;
    let backup = run(&api, repo, &["backup", "r2", "photos", "--json"]).await;
    assert_eq!(backup["stats"]["objects"], 18);
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

/// Every key of a listing of several pages, in the order S3 lists them (by UTF-8 bytes).
async fn listed_keys(s3: &cfdr::cloudflare::S3Client, bucket: &str) -> Vec<String> {
    s3.list(bucket, "")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bucket_of_several_pages_is_merged_with_the_previous_index_as_both_stream_in() {
    let api = common::start().await;
    api.send(
        "POST",
        "/r2/buckets",
        Some(serde_json::json!({ "name": "archive" })),
    )
    .await
    .result();
    let s3 = api.s3();
    // 2,600 objects: three listing pages; and keys whose byte order is not their character
    // order's (`é` sorts after `z`, the emoji after both).
    let mut keys: Vec<String> = (0..2600).map(|i| format!("k/{i:05}")).collect();
    keys.extend(["k/z", "k/é", "k/😀", "k/Z"].map(String::from));
    let body = |k: &str| format!("body of {k}").into_bytes();
    let put_all = |keys: Vec<String>| {
        let s3 = s3.clone();
        async move {
            futures_util::future::join_all(keys.chunks(100).map(|chunk| {
                let s3 = s3.clone();
                let chunk = chunk.to_vec();
                async move {
                    for k in chunk {
                        common::put_object(&s3, "archive", &k, body(&k), None, &[]).await;
                    }
                }
            }))
            .await;
        }
    };
    put_all(keys.clone()).await;

    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo").to_str().unwrap().to_string();
    run(&api, &repo, &["repo", "init"]).await;
    let first = run(&api, &repo, &["backup", "r2", "archive", "--json"]).await;
    assert_eq!(first["stats"]["downloaded"], 2604);

    // Deleted around a page's end, first and last; changed; added before, between and after.
    for k in [
        "k/00000", "k/00999", "k/01000", "k/01001", "k/02599", "k/😀",
    ] {
        s3.delete("archive", k).await.unwrap();
    }
    let changed = ["k/00500", "k/01999", "k/é"];
    for k in changed {
        common::put_object(&s3, "archive", k, b"rewritten".to_vec(), None, &[]).await;
    }
    let added = ["a/first", "k/00999a", "k/zz", "l/last"];
    put_all(added.map(String::from).to_vec()).await;

    api.control("POST", "/__emulator/stats/reset", None).await;
    let second = run(&api, &repo, &["backup", "r2", "archive", "--json"]).await;
    assert_eq!(second["stats"]["objects"], 2604 - 6 + 4);
    assert_eq!(
        (
            second["stats"]["downloaded"].as_u64(),
            second["stats"]["reused"].as_u64()
        ),
        (Some(7), Some(2604 - 6 - 3)),
        "only the changed and the added objects are downloaded: {second}"
    );
    assert_eq!(
        api.stats().await["routes"]["GET S3 /{bucket}/{key}"]["requests"],
        7
    );

    // The index is the listing, line for line, each entry the object's body as it is now.
    let id = second["id"].as_str().unwrap().to_string();
    let (h, r) = (api.clone_handle(), repo.clone());
    let index =
        tokio::task::spawn_blocking(move || cfdr(&h, &r, &["backups", "cat", &id, "index.ndjson"]))
            .await
            .unwrap()
            .stdout;
    let entries: Vec<Value> = String::from_utf8(index)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let indexed: Vec<&str> = entries.iter().map(|e| e["key"].as_str().unwrap()).collect();
    assert_eq!(indexed, listed_keys(&s3, "archive").await);
    for e in &entries {
        let key = e["key"].as_str().unwrap();
        let want = if changed.contains(&key) {
            b"rewritten".to_vec()
        } else {
            body(key)
        };
        assert_eq!(e["sha256"], hex::encode(Sha256::digest(&want)), "{key}");
    }
    let verify = run(
        &api,
        &repo,
        &["backups", "verify", "--all", "--full", "--json"],
    )
    .await;
    assert_eq!(verify["ok"], true, "{verify}");

    // A damaged index: verification says its blobs could not be checked, and garbage
    // collection stops before deleting anything (those blobs may be another backup's too).
    let first_id = first["id"].as_str().unwrap();
    let index_file = common::files_under(std::path::Path::new(&repo))
        .into_iter()
        .find(|p| p.ends_with(format!("{first_id}/index.ndjson")))
        .unwrap();
    let mut bytes = std::fs::read(&index_file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    std::fs::write(&index_file, bytes).unwrap();
    let blobs_before = common::files_under(&std::path::Path::new(&repo).join("blobs")).len();
    let (h, r) = (api.clone_handle(), repo.clone());
    let pruned = tokio::task::spawn_blocking(move || {
        cfdr(&h, &r, &["backups", "prune", "--keep-last", "5"])
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&pruned.stderr);
    assert_eq!(pruned.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(first_id) && stderr.contains("no blob was deleted"),
        "{stderr}"
    );
    assert_eq!(
        common::files_under(&std::path::Path::new(&repo).join("blobs")).len(),
        blobs_before
    );
    let (h, r, id) = (api.clone_handle(), repo.clone(), first_id.to_string());
    let verified = tokio::task::spawn_blocking(move || {
        cfdr(&h, &r, &["backups", "verify", &id, "--full", "--json"])
    })
    .await
    .unwrap();
    let report: Value = serde_json::from_slice(&verified.stdout).unwrap();
    let problems = report["problems"].to_string();
    assert!(
        problems.contains("index.ndjson") && problems.contains("not checked"),
        "{report}"
    );
}
