//! Test support: the libpam driver and helpers to run otpd and an SMTP capture.
