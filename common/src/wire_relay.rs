//! What a relay (DMZ) otpd sends a main otpd: one login request in an envelope that says which
//! host it speaks for and what the DMZ decided about its caller. The answer is a plain
//! [`Response`]. Both go in the same frames as on the local socket ([`crate::frame`]), inside
//! mutual TLS.
//!
//! The DMZ decides only what it can see: who the local caller is (root or a trusted caller,
//! whose reported origin is believed, or a local user acting for themselves, whose origin is
//! replaced by `local`). The main otpd decides everything else, and treats the request as
//! coming from that host's root or a local user of that host, never as its own root.

use serde::{Deserialize, Serialize};

use crate::wire::Request;

/// What the relay decided about the local caller of a relayed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RelayVerdict {
    /// Root or a trusted caller on the relay: it may act for any user, and the `rhost` and
    /// `tty` it reported are PAM's.
    Reported,
    /// Any other user of the relay, acting for their own account: `rhost` and `tty` were
    /// replaced by `local`.
    Local,
}

/// One relayed login request.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelayedRequest {
    /// The host name the relay speaks for; the main otpd refuses the request unless it is the
    /// one mapped to the relay's client certificate.
    pub host: String,
    /// The relay's verdict on its caller.
    pub verdict: RelayVerdict,
    /// The caller's uid on the relay, for the audit line (`caller_uid=`) only.
    pub caller_uid: u32,
    /// The login request, with `rhost` and `tty` as the relay believes them. Never an admin
    /// request: the relay answers those itself, and the main otpd refuses them.
    pub request: Request,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame;
    use crate::wire::LoginContext;

    #[test]
    fn an_envelope_round_trips_through_a_frame() {
        let relayed = RelayedRequest {
            host: "dmz1.example".into(),
            verdict: RelayVerdict::Local,
            caller_uid: 1000,
            request: Request::Probe {
                login: LoginContext {
                    user: "alice".into(),
                    service: "sshd".into(),
                    rhost: Some("local".into()),
                    tty: Some("local".into()),
                    protocol: None,
                },
            },
        };
        let bytes = frame::encode(&relayed).unwrap();
        let (back, used): (RelayedRequest, usize) = frame::try_decode(&bytes).unwrap().unwrap();
        assert_eq!(used, bytes.len());
        assert_eq!(back.host, "dmz1.example");
        assert_eq!(back.verdict, RelayVerdict::Local);
        assert!(matches!(back.request, Request::Probe { .. }));
    }

    #[test]
    fn an_envelope_with_unknown_fields_is_refused() {
        let json = r#"{"host":"h","verdict":"reported","caller_uid":0,"request":{"op":"ping"},"as_root":true}"#;
        assert!(serde_json::from_str::<RelayedRequest>(json).is_err());
    }
}
