//! R2 keys are opaque strings: the local R2 stores and lists every legal key byte for byte,
//! inside its own bucket and inside the data directory, refuses what R2 refuses, and cfdr's S3
//! client and R2 backup carry every key exactly.

mod common;

use std::collections::BTreeMap;

use cfdr::emulator::{EmulatorConfig, Storage};
use serde_json::Value;

const KEY: &str = "8f1e3d5c7b9a0f2e4d6c8b0a1f3e5d7c9b1a3f5e7d9c0b2a4f6e8d0c1b3a5f7e";

fn body_for(i: usize) -> Vec<u8> {
    (0..(i * 37 + 1)).map(|j| (j * 13 + i) as u8).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_key_is_stored_listed_and_backed_up_exactly() {
    let data = tempfile::tempdir().unwrap();
    let api = common::start_with(EmulatorConfig {
        storage: Storage::Dir(data.path().join("emu")),
        ..EmulatorConfig::ephemeral()
    })
    .await;
    let s3 = api.s3();
    for b in ["hostile", "victim"] {
        assert!(s3.create_bucket(b).await.unwrap());
    }
    let keys = common::hostile_keys();
    assert_eq!(
        keys.iter().filter(|k| k.len() == 1024).count(),
        1,
        "one key at R2's limit"
    );
    for (i, k) in keys.iter().enumerate() {
        let meta = format!("m{i}");
        common::put_object(
            &s3,
            "hostile",
            k,
            body_for(i),
            Some("application/x-test"),
            &[("n", &meta)],
        )
        .await;
    }

    // Listed back exactly, in byte order, in pages of every size.
    let listed = s3.list("hostile", "").await.unwrap();
    let mut want = keys.clone();
    want.sort();
    assert_eq!(
        listed.iter().map(|l| l.key.clone()).collect::<Vec<_>>(),
        want
    );
    let mut token = None;
    let mut paged = Vec::new();
    loop {
        let (page, next) = s3
            .list_page("hostile", "a/", token.as_deref())
            .await
            .unwrap();
        paged.extend(page.into_iter().map(|l| l.key));
        match next {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    assert_eq!(paged, ["a/./b", "a///b", "a//b", "a/b", "a/b/"]);
    for (i, k) in keys.iter().enumerate() {
        let mut got = Vec::new();
        let head = s3
            .get("hostile", k, None, None, &mut |c: bytes::Bytes| {
                got.extend_from_slice(&c);
                Ok(())
            })
            .await
            .unwrap_or_else(|e| panic!("GET `{k}`: {e}"));
        assert_eq!(got, body_for(i), "body of `{k}`");
        assert_eq!(head.content_type.as_deref(), Some("application/x-test"));
        assert_eq!(head.metadata.get("n"), Some(&format!("m{i}")));
    }

    // Nothing crossed into another bucket or out of the data directory.
    assert!(s3.list("victim", "").await.unwrap().is_empty());
    let outside: Vec<_> = std::fs::read_dir(data.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(outside, ["emu"], "only the data directory exists");
    let mut files = Vec::new();
    let mut stack = vec![data.path().to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p.file_name().unwrap().to_string_lossy().into_owned());
            }
        }
    }
    assert!(
        !files
            .iter()
            .any(|f| f == "owned" || f == "escaped" || f == "enc"),
        "no key became a file name: {files:?}"
    );

    // What R2 refuses, the local R2 refuses.
    let too_long = "x".repeat(1025);
    let e = s3
        .put(
            "hostile",
            &too_long,
            b"x".to_vec().into(),
            &Default::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(400), "{e}");
    assert!(e.to_string().contains("KeyTooLong"), "{e}");
    let big_meta = cfdr::cloudflare::r2::PutAttrs {
        content_type: None,
        metadata: BTreeMap::from([("big".to_string(), "v".repeat(8200))]),
    };
    let e = s3
        .put("hostile", "m", b"x".to_vec().into(), &big_meta)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("MetadataTooLarge"), "{e}");
    assert!(s3.head("hostile", "m").await.unwrap().is_none());

    // A read pinned to a version that is no longer there fails instead of mixing versions.
    let e = s3
        .get(
            "hostile",
            "a/b",
            Some(1..3),
            Some("0123"),
            &mut |_: bytes::Bytes| Ok(()),
        )
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(412), "{e}");

    // A backup keeps every key exactly, with its body, content type and metadata.
    let repo = data.path().join("repo").to_str().unwrap().to_string();
    common::cfdr_json(&api, &repo, KEY, &["repo", "init"]).await;
    let m = common::cfdr_json(&api, &repo, KEY, &["backup", "r2", "hostile", "--json"]).await;
    assert_eq!(m["stats"]["objects"], keys.len());
    let (h, r, id) = (
        api.clone_handle(),
        repo.clone(),
        m["id"].as_str().unwrap().to_string(),
    );
    let out = tokio::task::spawn_blocking(move || {
        common::cfdr_cmd(&h, &r, KEY)
            .args(["backups", "cat", &id, "index.ndjson"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success());
    let index: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        index
            .iter()
            .map(|e| e["key"].as_str().unwrap().to_string())
            .collect::<Vec<_>>(),
        want
    );
    for e in &index {
        let i = keys
            .iter()
            .position(|k| k == e["key"].as_str().unwrap())
            .unwrap();
        let sha = {
            use sha2::Digest as _;
            hex::encode(sha2::Sha256::digest(body_for(i)))
        };
        assert_eq!(e["sha256"], sha, "{e}");
        assert_eq!(e["content_type"], "application/x-test");
        assert_eq!(e["metadata"]["n"], format!("m{i}"));
    }
}

/// cfdr's S3 client on the emulator's S3 endpoint, retrying under `retry`.
fn s3_client(
    api: &common::Api,
    retry: cfdr::cloudflare::RetryPolicy,
) -> cfdr::cloudflare::S3Client {
    cfdr::cloudflare::S3Client::new(
        cfdr::cloudflare::R2Credentials {
            endpoint: api.emu.s3_url.clone(),
            access_key_id: api.emu.r2_access_key_id.clone(),
            secret_access_key: cfdr::config::Secret::new(api.emu.r2_secret_access_key.clone()),
        },
        retry,
    )
    .unwrap()
}

/// cfdr's S3 client rides out drops, cut answers and 5xx on the write path restores use: whole
/// PUTs are re-sent, parts re-sent, and an upload completes once even when the answer to its
/// completion is lost.
#[tokio::test(flavor = "multi_thread")]
async fn puts_and_multipart_uploads_ride_out_drops_and_cut_answers() {
    let api = common::start().await;
    let s3 = s3_client(
        &api,
        cfdr::cloudflare::RetryPolicy {
            max_retries: 12,
            initial: std::time::Duration::from_millis(10),
            max: std::time::Duration::from_millis(200),
            ..Default::default()
        },
    );
    s3.create_bucket("restore").await.unwrap();
    api.control(
        "POST",
        "/__emulator/faults",
        Some(serde_json::json!({ "drop_rate": 0.15, "truncate_rate": 0.15, "error_rate": 0.1, "seed": 5 })),
    )
    .await;
    for i in 0..60 {
        common::put_object(
            &s3,
            "restore",
            &format!("small/{i:02}"),
            body_for(i),
            None,
            &[],
        )
        .await;
    }
    let part = 5usize << 20;
    let big: Vec<u8> = (0..3 * part + 12_345).map(|i| (i % 251) as u8).collect();
    let attrs = cfdr::cloudflare::r2::PutAttrs {
        content_type: Some("video/mp4".into()),
        ..Default::default()
    };
    let id = s3
        .create_multipart("restore", "big.mp4", &attrs)
        .await
        .unwrap();
    let mut parts = Vec::new();
    for (n, chunk) in big.chunks(part).enumerate() {
        let n = n as u32 + 1;
        let etag = s3
            .upload_part("restore", "big.mp4", &id, n, chunk.to_vec().into())
            .await
            .unwrap();
        parts.push((n, etag));
    }
    let etag = s3
        .complete_multipart("restore", "big.mp4", &id, &parts)
        .await
        .unwrap();
    api.control("POST", "/__emulator/faults", Some(serde_json::json!({})))
        .await;
    assert!(etag.ends_with("-4"), "{etag}");
    let stats = api.stats().await;
    for kind in ["dropped", "truncated", "5xx"] {
        assert!(
            stats["faults_by_path"]["S3 PUT"][kind]
                .as_u64()
                .unwrap_or(0)
                > 0,
            "no `{kind}` on the PUT path: {}",
            stats["faults_by_path"]
        );
    }

    let listed = s3.list("restore", "").await.unwrap();
    assert_eq!(listed.len(), 61, "every object once, no stray upload");
    for (i, l) in listed
        .iter()
        .filter(|l| l.key.starts_with("small/"))
        .enumerate()
    {
        let mut got = Vec::new();
        s3.get("restore", &l.key, None, None, &mut |c: bytes::Bytes| {
            got.extend_from_slice(&c);
            Ok(())
        })
        .await
        .unwrap();
        assert_eq!(got, body_for(i), "{}", l.key);
    }
    let mut got = Vec::new();
    let head = s3
        .get("restore", "big.mp4", None, None, &mut |c: bytes::Bytes| {
            got.extend_from_slice(&c);
            Ok(())
        })
        .await
        .unwrap();
    assert!(got == big, "the multipart object is the parts in order");
    assert_eq!(head.content_type.as_deref(), Some("video/mp4"));
}

/// A conditional create (`If-None-Match: *`, what a repository's config and writer lease are)
/// whose answer is cut after the object landed: the retry meets its own object with 412, reads
/// it back and reports it created. Another writer's create of other bytes is refused.
#[tokio::test(flavor = "multi_thread")]
async fn a_conditional_create_knows_its_own_retried_write() {
    let api = common::start().await;
    let s3 = s3_client(
        &api,
        cfdr::cloudflare::RetryPolicy {
            // At least 750 ms before the retry: time to lift the fault once the first answer
            // has been cut.
            initial: std::time::Duration::from_secs(1),
            ..Default::default()
        },
    );
    s3.create_bucket("locks").await.unwrap();
    api.control(
        "POST",
        "/__emulator/faults",
        Some(serde_json::json!({ "truncate_rate": 1.0, "path_contains": "/locks/lease", "method": "PUT" })),
    )
    .await;
    let create = tokio::spawn({
        let s3 = s3.clone();
        async move {
            s3.put_if_absent("locks", "lease", bytes::Bytes::from_static(b"mine"))
                .await
        }
    });
    let cut = |stats: &Value| stats["faults_by_path"]["S3 PUT"]["truncated"].as_u64();
    while cut(&api.stats().await).unwrap_or(0) == 0 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    api.control("POST", "/__emulator/faults", Some(serde_json::json!({})))
        .await;
    assert!(
        create.await.unwrap().unwrap(),
        "the retried create is the one that landed"
    );
    assert_eq!(cut(&api.stats().await), Some(1));
    assert!(
        !s3.put_if_absent("locks", "lease", bytes::Bytes::from_static(b"theirs"))
            .await
            .unwrap(),
        "a second writer is refused"
    );
    let mut body = Vec::new();
    let mut sink = |b: bytes::Bytes| -> Result<(), String> {
        body.extend_from_slice(&b);
        Ok(())
    };
    s3.get("locks", "lease", None, None, &mut sink)
        .await
        .unwrap();
    assert_eq!(body, b"mine");
}
