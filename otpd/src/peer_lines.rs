//! The server's own log lines about what a connection's peer did wrong: a request that could
//! not be read, a client that left before its answer. Any local user can cause them as fast as
//! it can connect, so like local callers' audit events they are rate-limited per uid and kind
//! (`store::audit_rate`, the same windows), and their text is escaped.
//!
//! They carry the `otpd::server` target: only audit events carry `otpd::audit`, and these are
//! no audit events (no row is written).

use std::fmt::Display;

use common::text::escape_for_log;

use crate::state::Shared;
use crate::store::{Admission, RateKey, Suppressed};

/// The target of every line here.
const TARGET: &str = "otpd::server";

/// What a peer did wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerTrouble {
    /// Its request was malformed, oversized, of another version or incomplete in time. The
    /// error quotes the request (serde repeats unknown variant and field names as sent).
    BadRequest,
    /// It closed the connection before its answer was written.
    LeftEarly,
}

impl PeerTrouble {
    const ALL: [PeerTrouble; 2] = [PeerTrouble::BadRequest, PeerTrouble::LeftEarly];

    /// The rate key's kind.
    fn kind(self) -> &'static str {
        match self {
            PeerTrouble::BadRequest => "bad_request",
            PeerTrouble::LeftEarly => "left_early",
        }
    }

    /// How its line starts.
    fn words(self) -> &'static str {
        match self {
            PeerTrouble::BadRequest => "bad request",
            PeerTrouble::LeftEarly => "cannot write response",
        }
    }
}

/// Logs `trouble` caused by `caller_uid`, with `detail` escaped: the first ones of a window one
/// by one, the rest only counted (see the module doc).
pub fn log(shared: &Shared, caller_uid: u32, trouble: PeerTrouble, detail: &dyn Display) {
    let now = shared.clock.now();
    let mut store = shared.store();
    let key = RateKey {
        caller_uid,
        kind: trouble.kind(),
    };
    let (admission, ended) = store.admit_audit(key, now);
    if let Some(summary) = ended {
        // A row that cannot be written is logged there; this line is no decision to undo.
        let _ = crate::audit::record_summary(&mut store, now, summary);
    }
    drop(store);
    if admission == Admission::Individually {
        tracing::info!(
            target: TARGET,
            "{}: {}",
            trouble.words(),
            escape_for_log(&detail.to_string())
        );
    }
}

/// Logs the summary of a window of peer trouble; false when `summary` is of another kind (an
/// audit event's, which the audit writes as a row and a line).
pub(crate) fn summarise(summary: &Suppressed) -> bool {
    let Some(trouble) = PeerTrouble::ALL
        .into_iter()
        .find(|t| t.kind() == summary.key.kind)
    else {
        return false;
    };
    tracing::info!(
        target: TARGET,
        "{}: {} more from uid {} since {} not logged one by one",
        trouble.words(),
        summary.count,
        summary.key.caller_uid,
        common::timefmt::utc(summary.since)
    );
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(kind: &'static str) -> Suppressed {
        Suppressed {
            key: RateKey {
                caller_uid: 65534,
                kind,
            },
            count: 5,
            since: 0,
        }
    }

    #[test]
    fn peer_trouble_summaries_are_told_apart_from_audit_events() {
        assert!(summarise(&summary("bad_request")));
        assert!(summarise(&summary("left_early")));
        assert!(!summarise(&summary("wrong_code")));
    }
}
