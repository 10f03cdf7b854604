//! Test support for the end-to-end tests: the libpam driver and one login through it, a real
//! otpd process, a real SMTP server capturing mail, private Postfix and Exim instances relaying
//! to it, a private OpenLDAP slapd, PAM service directories, a private PostgreSQL and a fleet of
//! otpd hosts in network namespaces sharing it.
//!
//! Test support may panic: a panic is how a test reports a broken precondition.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

pub mod bridge;
pub mod fleet;
pub mod libpam;
pub mod login;
pub mod mta;
pub mod netns;
pub mod otpd;
pub mod paths;
pub mod pg_hosts;
pub mod pgbouncer;
pub mod postgres;
pub mod programs;
pub mod race;
pub mod recorded;
pub mod slapd;
pub mod smtp;
pub mod stack;
pub mod tls;
pub mod webhook;
