//! The corruption campaign: thousands of random mutations of a repository's stored bytes (bit
//! flips, truncation at and around every chunk boundary, chunks reordered or swapped between
//! two artifacts, header edits, manifest edits), each detected with the artifact and chunk named.

use std::path::{Path, PathBuf};

use cfdr::cli::exit::exit_of;
use cfdr::repo::storage::{S3Settings, Storage};
use cfdr::repo::{Kind, Lease, Manifest, Repo, RepoError, Target, VerifyMode, lease};
use cfdr::seal::{HEADER_LEN, MasterKey, TAG_LEN};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const CHUNK: usize = 1024;

async fn repo_with_two_backups(dir: &Path) -> (Repo, Vec<Manifest>) {
    let storage = Storage::open(dir.to_str().unwrap(), &S3Settings::default()).unwrap();
    let repo = Repo::init_with_chunk(storage, MasterKey::from_bytes([9; 32]), CHUNK as u32)
        .await
        .unwrap();
    let mut out = Vec::new();
    for n in 0..2u8 {
        let l = Lease::acquire(&repo.storage, "test", lease::DEFAULT_TTL)
            .await
            .unwrap();
        let target = Target {
            account: None,
            id: format!("t{n}"),
            name: format!("target-{n}"),
        };
        let mut w = repo.begin(&l, Kind::Sqlite, target, "manual", "test");
        let data: Vec<u8> = (0..CHUNK * 5 + 100)
            .map(|i| (i as u8).wrapping_mul(n + 3))
            .collect();
        w.add_artifact("data.bin", "bytes", std::io::Cursor::new(data))
            .await
            .unwrap();
        out.push(w.commit().await.unwrap());
        l.release().await.unwrap();
    }
    (repo, out)
}

fn artifact_path(dir: &Path, m: &Manifest) -> PathBuf {
    dir.join(m.dir()).join("data.bin")
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_thousand_mutations_are_all_detected() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, ms) = repo_with_two_backups(tmp.path()).await;
    let (a, b) = (
        artifact_path(tmp.path(), &ms[0]),
        artifact_path(tmp.path(), &ms[1]),
    );
    let (orig_a, orig_b) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    let manifest_path = tmp.path().join(ms[0].dir()).join("manifest.json");
    let orig_manifest = std::fs::read(&manifest_path).unwrap();
    let c = CHUNK + TAG_LEN;
    let boundaries: Vec<usize> = (0..=orig_a.len().saturating_sub(HEADER_LEN) / c)
        .map(|i| HEADER_LEN + i * c)
        .collect();
    let mut rng = StdRng::seed_from_u64(20261123);
    let mut counts = std::collections::BTreeMap::<&str, usize>::new();

    for round in 0..10_000 {
        let kind = [
            "flip", "truncate", "reorder", "swap", "header", "manifest", "extend",
        ][round % 7];
        let mut bad = orig_a.clone();
        match kind {
            "flip" => {
                let i = rng.random_range(0..bad.len());
                bad[i] ^= 1 << rng.random_range(0..8);
            }
            "truncate" => {
                let at = boundaries[rng.random_range(0..boundaries.len())] as i64
                    + rng.random_range(-2i64..=2);
                bad.truncate((at.max(0) as usize).min(bad.len() - 1));
            }
            "reorder" => {
                let (i, j) = (rng.random_range(0..5), rng.random_range(0..5));
                if i == j {
                    bad.truncate(bad.len() - 1);
                } else {
                    let (x, y) = (HEADER_LEN + i * c, HEADER_LEN + j * c);
                    let chunk_i = orig_a[x..x + c].to_vec();
                    bad[x..x + c].copy_from_slice(&orig_a[y..y + c]);
                    bad[y..y + c].copy_from_slice(&chunk_i);
                }
            }
            "swap" => {
                let i = rng.random_range(0..5);
                let x = HEADER_LEN + i * c;
                bad[x..x + c].copy_from_slice(&orig_b[x..x + c]);
            }
            "header" => {
                let i = rng.random_range(0..HEADER_LEN);
                bad[i] = bad[i].wrapping_add(rng.random_range(1..=255));
            }
            "extend" => bad.extend_from_slice(&[rng.random(); 17]),
            _ => {}
        }
        *counts.entry(kind).or_default() += 1;
        if kind == "manifest" {
            let mut m = orig_manifest.clone();
            let i = rng.random_range(0..m.len());
            m[i] = m[i].wrapping_add(rng.random_range(1..=255));
            std::fs::write(&manifest_path, &m).unwrap();
            let err = repo.manifest(&ms[0].id).await.unwrap_err();
            assert!(
                matches!(err, RepoError::Tampered { .. }),
                "round {round}: manifest edit at {i}: {err}"
            );
            assert_eq!(exit_of(&anyhow::Error::from(err)) as u8, 1);
            std::fs::write(&manifest_path, &orig_manifest).unwrap();
            continue;
        }
        std::fs::write(&a, &bad).unwrap();
        let report = repo.verify(&ms[0], VerifyMode::Full).await.unwrap();
        assert!(!report.ok, "round {round}: {kind} went unnoticed");
        let p = &report.problems[0];
        assert_eq!(p.artifact, "data.bin");
        if kind != "header" && kind != "extend" {
            assert!(
                p.message.contains("chunk ") || p.message.contains("header"),
                "round {round}: {kind}: the chunk is not named: {}",
                p.message
            );
        }
        // Nothing is written on failure: `cat`'s path fails before handing anything out.
        let err = repo
            .open_artifact(&ms[0], "data.bin", Vec::new())
            .await
            .unwrap_err();
        let message = err.to_string();
        assert_eq!(
            exit_of(&anyhow::Error::from(err)) as u8,
            1,
            "round {round}: {message}"
        );
    }
    std::fs::write(&a, &orig_a).unwrap();
    assert!(
        repo.verify(&ms[0], VerifyMode::Full).await.unwrap().ok,
        "the untouched artifact verifies"
    );
    assert!(counts.values().all(|&n| n > 1000), "{counts:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_key_is_refused_before_any_data_is_read() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, _) = repo_with_two_backups(tmp.path()).await;
    drop(repo);
    let storage = Storage::open(tmp.path().to_str().unwrap(), &S3Settings::default()).unwrap();
    let err = Repo::open(storage, MasterKey::from_bytes([1; 32]))
        .await
        .err()
        .expect("a wrong key fails");
    let text = err.to_string();
    assert!(matches!(err, RepoError::KeyMismatch { .. }), "{text}");
    assert!(
        text.contains(&MasterKey::from_bytes([9; 32]).id())
            && text.contains(&MasterKey::from_bytes([1; 32]).id()),
        "{text}"
    );
}
