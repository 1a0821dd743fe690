//! Playbooks: runbooks an on-call engineer follows under pressure, as TOML files checked
//! before anything runs ([`model`]), built in or the operator's own ([`library`]). Each step is
//! one of the operations in `ops/`, so a playbook and the same commands by hand do the same.

pub mod library;
pub mod model;
