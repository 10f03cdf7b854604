//! The configuration file (`/etc/otpd/otpd.toml`): schema, parsing and validation.
