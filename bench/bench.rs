//! The benchmark driver behind `bench/run.sh`: seals a file into a repository and verifies it
//! through the same code a backup uses, and fills a catalog for the listing benchmark. Each
//! subcommand prints one JSON line with its wall time and the process's peak memory.
//!
//! `console` drives the real binary's console in a pseudo-terminal: time to the first frame
//! with the repository's inventory on it, and key-to-frame latency while a verify runs.
//!
//! `primitives` times the two primitives a seal is made of, as the crates cfdr uses compute them
//! (sha2's SHA-256, aes-gcm's AES-256-GCM), on 1 MiB buffers in memory: the limit these crates
//! set, beside the one `openssl speed` sets.
//!
//! usage: bench seal FILE REPO | bench verify REPO | bench primitives | bench catalog REPO N
//! | bench console CFDR REPO | bench console-restore CFDR | bench worker-rollback CFDR [WRANGLER]

use std::time::Instant;

use cfdr::repo::storage::{S3Settings, Storage};
use cfdr::repo::{Catalog, Entry, Kind, Lease, Repo, Target, VerifyMode, lease};
use cfdr::seal::MasterKey;

fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// CPU time (user + system) this process has used so far, in seconds.
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command's closing parenthesis; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<f64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    f.iter().sum::<f64>() / 100.0
}

const KEY: [u8; 32] = [42; 32];

mod console;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let key = MasterKey::from_bytes(KEY);
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["seal", file, repo] => {
            let storage = Storage::open(repo, &S3Settings::default())?;
            let repo = Repo::init(storage, key).await?;
            let lease = Lease::acquire(&repo.storage, "bench", lease::DEFAULT_TTL).await?;
            let (started, cpu) = (Instant::now(), cpu_secs());
            let target = Target {
                account: None,
                id: file.to_string(),
                name: "bench".into(),
            };
            let mut w = repo.begin(&lease, Kind::Sqlite, target, "manual", "bench");
            let bytes = w
                .add_artifact("data.bin", "bytes", std::fs::File::open(file)?)
                .await?
                .plaintext_size;
            let m = w.commit().await?;
            let secs = started.elapsed().as_secs_f64();
            let cpu = cpu_secs() - cpu;
            lease.release().await?;
            println!(
                r#"{{"id":"{}","bytes":{bytes},"secs":{secs},"cpu":{cpu},"peak_rss":{}}}"#,
                m.id,
                peak_rss_bytes()
            );
        }
        ["verify", repo] => {
            let repo = Repo::open(Storage::open(repo, &S3Settings::default())?, key).await?;
            let id = repo.catalog().await?.entries[0].id.clone();
            let m = repo.manifest(&id).await?;
            let (started, cpu) = (Instant::now(), cpu_secs());
            let r = repo.verify(&m, VerifyMode::Full).await?;
            anyhow::ensure!(r.ok, "verification failed: {:?}", r.problems);
            println!(
                r#"{{"bytes":{},"secs":{},"cpu":{},"peak_rss":{}}}"#,
                r.bytes_checked,
                started.elapsed().as_secs_f64(),
                cpu_secs() - cpu,
                peak_rss_bytes()
            );
        }
        ["primitives"] => {
            use aes_gcm::{AeadInOut, Aes256Gcm, KeyInit};
            use sha2::{Digest, Sha256};
            const MIB: usize = 1 << 20;
            const ROUNDS: usize = 512;
            let mut buf = vec![0x5au8; MIB];
            let started = Instant::now();
            let mut h = Sha256::new();
            for _ in 0..ROUNDS {
                h.update(&buf);
            }
            std::hint::black_box(h.finalize());
            let sha = (ROUNDS * MIB) as f64 / started.elapsed().as_secs_f64() / 1e9;
            let cipher = Aes256Gcm::new(&[7u8; 32].into());
            let started = Instant::now();
            for i in 0..ROUNDS {
                let mut nonce = [0u8; 12];
                nonce[..8].copy_from_slice(&(i as u64).to_be_bytes());
                let tag = cipher
                    .encrypt_inout_detached(&nonce.into(), b"header", buf.as_mut_slice().into())
                    .map_err(|_| anyhow::anyhow!("AES-GCM failed"))?;
                std::hint::black_box(tag);
            }
            let aes = (ROUNDS * MIB) as f64 / started.elapsed().as_secs_f64() / 1e9;
            println!(r#"{{"sha256_gbps":{sha},"aes_gcm_gbps":{aes}}}"#);
        }
        ["catalog", repo, n] => {
            let storage = Storage::open(repo, &S3Settings::default())?;
            let repo = match Repo::open(storage.clone(), key.clone()).await {
                Ok(r) => r,
                Err(_) => Repo::init(storage, key).await?,
            };
            let existing = repo.catalog().await?.entries;
            let n: usize = n.parse()?;
            let kinds = ["d1", "kv", "r2", "sqlite"];
            let entries = (0..n)
                .map(|i| Entry {
                    id: format!(
                        "2026-{:02}-{:02}T{:02}-00-00Z-{i:04x}",
                        1 + i % 11,
                        1 + i % 28,
                        i % 24
                    ),
                    kind: kinds[i % 4].into(),
                    target: format!("target-{}", i % 40),
                    target_id: format!("{i:032x}"),
                    trigger: "scheduled".into(),
                    method: "export".into(),
                    started: "2026-11-01T00:00:00Z".into(),
                    finished: "2026-11-01T00:00:05Z".into(),
                    plaintext_size: 1 << 20,
                    stored_size: (1 << 20) + 64,
                    artifacts: 1,
                    warnings: 0,
                    dir: format!("snapshots/{}/target-{}/{i}", kinds[i % 4], i % 40),
                })
                .collect();
            let mut c = Catalog { entries };
            c.entries.extend(existing);
            c.sort();
            c.save(&repo.storage).await?;
            println!(r#"{{"entries":{n}}}"#);
        }
        ["console", cfdr, repo] => console::run(cfdr, repo)?,
        ["console-restore", cfdr] => console::restore(cfdr).await?,
        ["worker-rollback", cfdr] => console::rollback(cfdr, None).await?,
        ["worker-rollback", cfdr, wrangler] => console::rollback(cfdr, Some(wrangler)).await?,
        _ => {
            anyhow::bail!(
                "usage: bench seal FILE REPO | bench verify REPO | bench primitives | bench catalog REPO N | bench console CFDR REPO | bench console-restore CFDR | bench worker-rollback CFDR [WRANGLER]"
            )
        }
    }
    Ok(())
}
