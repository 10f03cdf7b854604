//! The contract shared by the PAM module, the daemon and `otpctl`.
//!
//! Nothing here knows tokio, SQLite or SMTP: it is the wire protocol ([`wire`], [`frame`]), the login protocols ([`service`]),
//! the configuration schema and its validation ([`config`]), the blocking client the module and
//! `otpctl` use ([`client`]), and the small helpers all three agree on ([`secret`], [`text`]).
#![forbid(unsafe_code)]

pub mod client;
pub mod config;
pub mod frame;
pub mod secret;
pub mod service;
pub mod text;
pub mod timefmt;
pub mod wire;
pub mod wire_admin;
pub mod wire_relay;
