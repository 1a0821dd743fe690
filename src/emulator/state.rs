//! The emulator's shared state: configuration, stores, counters and the tasks in flight.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::Context;

use super::control::{Faults, RateLimiter, Stats};
use super::d1::D1;
use super::store::Store;
use super::{EmulatorConfig, Storage};

pub struct Shared {
    pub token: String,
    pub account_id: String,
    pub r2_access_key_id: String,
    pub r2_secret_access_key: String,
    pub signed_url_ttl: std::time::Duration,
    pub export_poll_timeout: std::time::Duration,
    /// Set once the API listener is bound: presigned URLs point at it.
    pub api_url: std::sync::OnceLock<String>,
    pub store: Arc<Store>,
    pub d1: D1,
    /// R2's buckets, objects and uploads (bodies as files under the R2 directory), shared by
    /// the S3 listener and the v4 routes.
    pub r2: Arc<super::r2::objects::R2>,
    pub stats: Stats,
    pub faults: Faults,
    pub limiter: RateLimiter,
    pub transfers: Mutex<HashMap<String, super::d1::transfer::Transfer>>,
    /// Exports and imports in flight, by (database, at_bookmark).
    pub tasks: Mutex<HashMap<(String, String), super::d1::transfer::Task>>,
    /// Keeps the temporary R2 directory of an in-memory emulator alive.
    _tempdir: Option<tempfile::TempDir>,
}

impl Shared {
    pub fn open(config: &EmulatorConfig) -> anyhow::Result<Self> {
        let (store, r2_root, tempdir, d1_dir) = match &config.storage {
            Storage::Dir(dir) => {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create data directory `{}`", dir.display()))?;
                let r2 = dir.join("r2");
                std::fs::create_dir_all(&r2)?;
                let d1 = dir.join("d1");
                std::fs::create_dir_all(&d1)?;
                (
                    Store::open(Some(&dir.join("emulator.sqlite")))?,
                    r2,
                    None,
                    Some(d1),
                )
            }
            Storage::Memory => {
                let tmp = tempfile::Builder::new()
                    .prefix("cfdr-emulator-r2-")
                    .tempdir()?;
                let r2 = tmp.path().to_path_buf();
                (Store::open(None)?, r2, Some(tmp), None)
            }
        };
        let store = Arc::new(store);
        let d1 = D1::open(store.clone(), d1_dir)?;
        let r2 = Arc::new(super::r2::objects::R2::open(store.clone(), &r2_root)?);
        Ok(Self {
            token: config.token.clone(),
            account_id: config.account_id.clone(),
            r2_access_key_id: config.r2_access_key_id.clone(),
            r2_secret_access_key: config.r2_secret_access_key.clone(),
            signed_url_ttl: config.signed_url_ttl,
            export_poll_timeout: config.export_poll_timeout,
            api_url: std::sync::OnceLock::new(),
            store,
            d1,
            r2,
            stats: Stats::default(),
            faults: Faults::default(),
            limiter: RateLimiter::new(config.rate_limit),
            transfers: Mutex::new(HashMap::new()),
            tasks: Mutex::new(HashMap::new()),
            _tempdir: tempdir,
        })
    }

    pub fn api_url(&self) -> &str {
        self.api_url
            .get()
            .map(String::as_str)
            .unwrap_or("http://127.0.0.1")
    }
}
