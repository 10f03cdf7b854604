//! The benchmark of issue 7: whole emailed-code logins through libpam, side by side with
//! pam_oath (a local HOTP check Debian ships), plus otpd's and the module's memory.
//!
//! `bench/run` builds the release binaries and runs [`suite::run`]; the results go to stdout and
//! `bench/results.md` as one markdown table ([`report`]).

pub mod bulk;
pub mod burst;
pub mod cpu;
pub mod error;
pub mod floor;
pub mod hotp;
pub mod ldap;
pub mod login;
pub mod loops;
pub mod mailbox;
pub mod memory;
pub mod mime;
pub mod pg_cost;
pub mod pg_store;
pub mod probe;
pub mod report;
pub mod scenarios;
pub mod setup;
pub mod sink;
pub mod stats;
pub mod suite;
