//! The only code that speaks HTTP to Cloudflare: the v4 REST client and the shared request
//! budget. A base URL is all that tells api.cloudflare.com from the local emulator.

pub mod budget;
pub mod client;
pub mod r2;
pub mod sigv4;

pub use budget::{Budget, BudgetState};
pub use client::{Answer, Body, CfError, Client, RetryPolicy};
pub use r2::{R2Credentials, S3Client, S3Error};
