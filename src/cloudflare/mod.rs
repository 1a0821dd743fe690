//! The only code that speaks HTTP to Cloudflare: the v4 REST client with a typed surface per
//! product (D1 in `d1.rs`, KV in `kv.rs`, R2 buckets in `buckets.rs`), R2's S3
//! endpoint (`r2.rs`, signed by `sigv4.rs`), and the shared request budget. A base URL is all
//! that tells api.cloudflare.com from the local emulator.

pub mod buckets;
pub mod budget;
pub mod client;
pub mod d1;
pub mod kv;
pub mod pace;
pub mod r2;
pub mod retries;
pub mod sigv4;
pub mod workers;

pub use budget::{Budget, BudgetState};
pub use client::{Answer, Body, CfError, Client, RetryPolicy};
pub use pace::Pace;
pub use r2::{R2Credentials, S3Client, S3Error};
pub use retries::Retries;

/// An HTTP client builder, TLS ready (rustls on `ring`, [`crate::tls`]): every client cfdr
/// builds starts here.
pub fn http() -> reqwest::ClientBuilder {
    crate::tls::install();
    reqwest::Client::builder()
}
