//! The only code that speaks HTTP to Cloudflare: the v4 REST client and the shared request
//! budget. A base URL is all that tells api.cloudflare.com from the local emulator.

pub mod budget;
pub mod client;

pub use budget::{Budget, BudgetState};
pub use client::{Answer, Body, CfError, Client, RetryPolicy};
