//! otpd: issues, mails and verifies one-time codes for the pam_otp_email module.
#![forbid(unsafe_code)]
