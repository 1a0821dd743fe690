//! The steps both faces run: the command line and the console call the same functions here,
//! so an operation behaves the same from either. Each step reports through a
//! [`Progress`](crate::progress::Progress) handle its caller supplies.

pub mod backup;
pub mod notify;
