//! Playbooks: runbooks an on-call engineer follows under pressure, as TOML files checked
//! before anything runs ([`model`]), built in or the operator's own ([`library`]), run by a
//! pure state machine ([`runner`]) that an executor drives over the operations in `ops/`
//! ([`execute`]), each run journaled and reported ([`report`]); drills are such runs into
//! scratch targets, with their own MAC'd reports ([`drill`]). Each step is one of those
//! operations, so a playbook and the same commands by hand do the same.

pub mod drill;
pub mod execute;
pub mod library;
pub mod model;
pub mod recover;
pub mod report;
pub mod runner;
pub mod worker;
