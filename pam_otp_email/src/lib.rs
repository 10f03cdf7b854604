//! PAM module.
