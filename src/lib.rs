//! cfdr: a disaster-recovery console for Cloudflare storage (D1, Workers KV, R2, SQLite files).
//! The binary is a thin shell over this library, so tests drive the same code the CLI runs.

pub mod cli;
pub mod cloudflare;
pub mod config;
pub mod emulator;
pub mod engine;
pub mod ops;
pub mod playbook;
pub mod progress;
pub mod repo;
pub mod seal;
pub mod sqlnum;
pub mod sqlsplit;
pub mod text;
pub mod tls;
pub mod tui;
pub mod wrangler;
