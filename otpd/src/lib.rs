//! otpd: issues, mails and verifies one-time codes for the pam_otp_email module.
//!
//! `main.rs` only parses arguments; [`lifecycle::run`] starts the pieces: [`server`] reads
//! framed requests, [`dispatch`] sends each to [`login`] (the module's requests) or [`admin`]
//! (otpctl's), and both use [`directory`] (the user's facts, resolved first), [`policy`] (who
//! needs a code), [`store`] (the rules behind one interface; SQLite embedded), [`delivery`]
//! (issue, mail, settle) and [`audit`] (rows and log lines, one vocabulary of events).
//! [`layering`] keeps that path one-way.
#![forbid(unsafe_code)]

pub mod accounts;
pub mod admin;
pub mod audit;
pub mod breakglass;
pub mod caller;
pub mod clock;
pub mod code;
pub mod ctl;
pub mod delivery;
pub mod directory;
pub mod dispatch;
pub mod files;
pub mod framing;
pub mod host_name;
pub mod layering;
pub mod lifecycle;
pub mod logging;
pub mod login;
pub mod mail;
pub mod metrics;
pub mod metrics_listener;
pub mod metrics_textfile;
pub mod notices;
pub mod notify;
pub mod off_thread;
pub mod peer_lines;
pub mod policy;
pub mod relay;
pub mod relay_listener;
pub mod rules;
pub mod server;
pub mod server_key;
pub mod ssh_key;
pub mod state;
pub mod store;
pub mod systemd;
pub mod webhook;

#[cfg(test)]
pub(crate) mod test_support;
