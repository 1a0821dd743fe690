//! Backup engines: each reads one kind of Cloudflare storage through `cloudflare::Client` and
//! writes an open artifact format; the caller seals it into the repository.

pub mod d1;
pub mod kv;
pub mod r2;
pub mod sanity;
