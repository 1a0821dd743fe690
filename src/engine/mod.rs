//! The engines, one folder per kind of storage: each reads (and, for restores, writes) one kind
//! through `cloudflare/` or the local file system, in an open artifact format; the operations
//! in `ops/` seal what they read into the repository and say what happened.

pub mod changes;
pub mod d1;
pub mod kv;
pub mod r2;
pub mod sanity;
pub mod sqlite;
