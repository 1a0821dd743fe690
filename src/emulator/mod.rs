//! A local Cloudflare: the v4 REST API for D1, Workers KV, R2 buckets and Workers' versions and
//! deployments, and R2's S3 endpoint,
//! faithful to the contract in `shared/cloudflare-api`. The demo, the tests and offline drills talk
//! to it over HTTP exactly as the product talks to api.cloudflare.com; only the base URL differs.

mod clock;
pub mod control;
mod d1;
mod envelope;
mod kv;
mod r2;
mod routes;
mod seed;
mod server;
mod state;
mod store;
mod workers;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use control::{FaultConfig, RateLimitConfig};
pub use server::RunningEmulator;

/// The account id used when none is given: 32 hex characters, as Cloudflare's are.
pub const DEFAULT_ACCOUNT_ID: &str = "cfd00000000000000000000000000de0";
/// The API token used when none is given.
pub const DEFAULT_TOKEN: &str = "cfdr-emulator-token";
pub const DEFAULT_R2_ACCESS_KEY_ID: &str = "cfdr-emulator-access-key";
pub const DEFAULT_R2_SECRET_ACCESS_KEY: &str = "cfdr-emulator-secret-key";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8787";
pub const DEFAULT_S3_LISTEN: &str = "127.0.0.1:8788";

/// Where the emulator keeps its state.
#[derive(Debug, Clone)]
pub enum Storage {
    /// Everything survives a restart in this directory.
    Dir(PathBuf),
    /// Gone when the emulator stops (R2 objects live in a temporary directory).
    Memory,
}

/// A named dataset loaded at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seed {
    Demo,
}

#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    pub listen: SocketAddr,
    pub s3_listen: SocketAddr,
    pub storage: Storage,
    pub token: String,
    pub account_id: String,
    pub r2_access_key_id: String,
    pub r2_secret_access_key: String,
    pub seed: Option<Seed>,
    pub rate_limit: RateLimitConfig,
    /// How long presigned export and import URLs stay valid (Cloudflare: one hour).
    pub signed_url_ttl: Duration,
    /// An export nobody polls for this long is cancelled, as D1 cancels it.
    pub export_poll_timeout: Duration,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.parse().expect("valid default address"),
            s3_listen: DEFAULT_S3_LISTEN.parse().expect("valid default address"),
            storage: Storage::Memory,
            token: DEFAULT_TOKEN.into(),
            account_id: DEFAULT_ACCOUNT_ID.into(),
            r2_access_key_id: DEFAULT_R2_ACCESS_KEY_ID.into(),
            r2_secret_access_key: DEFAULT_R2_SECRET_ACCESS_KEY.into(),
            seed: None,
            rate_limit: RateLimitConfig::default(),
            signed_url_ttl: Duration::from_secs(3600),
            export_poll_timeout: Duration::from_secs(60),
        }
    }
}

impl EmulatorConfig {
    /// A configuration for tests: in memory, free ports.
    pub fn ephemeral() -> Self {
        Self {
            listen: "127.0.0.1:0".parse().expect("valid address"),
            s3_listen: "127.0.0.1:0".parse().expect("valid address"),
            ..Self::default()
        }
    }
}

/// Starts the emulator: binds both listeners, loads the seed, and serves until dropped or stopped.
pub async fn start(config: EmulatorConfig) -> anyhow::Result<RunningEmulator> {
    let shared = Arc::new(state::Shared::open(&config)?);
    if config.seed == Some(Seed::Demo) && !shared.store.has_data()? {
        seed::demo(&shared).await?;
    }
    server::serve(config, shared).await
}
