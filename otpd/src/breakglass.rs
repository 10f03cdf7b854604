//! Break-glass (issue #16): whether a stored grant lets this login pass the code step, and the
//! network restriction (`--from CIDR`) it may carry ([`covers`], pure), and the log lines and
//! audit events of its use and expiry ([`check_login`], [`expire_all`]), all at warning level.
//!
//! A grant that holds makes otpd answer the login's begin with
//! [`common::wire::SkipReason::BreakGlass`], which the module maps to PAM_IGNORE like every
//! skip: the code step then counts for nothing, and the rest of the stack (the password module
//! first, in the documented stacks) alone decides. A grant therefore can never turn a failed or
//! skipped password into a success, which `Response::Success` (PAM_SUCCESS) could, e.g. in a
//! stack where the code line is `sufficient`.

use std::net::IpAddr;

use common::text::escape_for_log;
use common::timefmt;
use common::wire::LoginContext;

use crate::audit::{self, Event, Subject};
use crate::caller::{Origin, RelayHost};
use crate::store::{self, BreakGlass, BreakGlassLookup, GrantRead, Store, StoreError};

/// The longest grant, in minutes (four hours).
pub const MAX_MINUTES: u32 = 240;

/// A network: an address and a prefix length, host bits ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

/// Why a `--from` value is not a network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a network: write ADDRESS/PREFIX (192.0.2.0/24, 2001:db8::/32) or one address"
)]
pub struct BadCidr(pub String);

impl Cidr {
    /// Parses `ADDRESS/PREFIX` or a single address (a /32 or /128).
    pub fn parse(text: &str) -> Result<Cidr, BadCidr> {
        let bad = || BadCidr(text.to_string());
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = address.parse().map_err(|_| bad())?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().map_err(|_| bad())?
            }
            Some(_) => return Err(bad()),
        };
        if prefix > max {
            return Err(bad());
        }
        Ok(Cidr { network, prefix })
    }

    /// True when `address` is in this network (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, address: IpAddr) -> bool {
        let address = match address {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
            v4 => v4,
        };
        match (self.network, address) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// Whether a live grant restricted to `cidr` (`None`: anywhere) covers a login whose remote host
/// is `rhost` with `origin`. Under a restriction only a believed report counts
/// ([`Origin::Reported`], from root or a trusted caller), and only an IP address: a host name
/// or a local caller's `local` never matches. A stored restriction that no longer parses
/// matches nothing.
pub fn covers(cidr: Option<&str>, origin: Origin, rhost: Option<&str>) -> bool {
    let Some(cidr) = cidr else {
        return true;
    };
    let Ok(cidr) = Cidr::parse(cidr) else {
        return false;
    };
    if origin != Origin::Reported {
        return false;
    }
    rhost
        .and_then(|h| h.parse::<IpAddr>().ok())
        .is_some_and(|address| cidr.contains(address))
}

/// A login that needs a code: the grant's expiry when a live grant for its user covers it, in
/// which case its use is logged and audited. An expired grant found here is deleted and its expiry logged.
/// A failure to read grants counts as no grant (the login then asks for a code, failing
/// closed); an audit row that cannot be written is an `Err`, to fail the login's transaction.
///
/// `known` is the grant row the login's facts read with the user's record, moments before:
/// none, or a grant live at `now`, is decided on it without reading again (a grant revoked in
/// between still lets this one login pass, as it would have a moment earlier). An expired
/// row, or none read, is looked up here, which deletes an expired grant.
#[allow(clippy::too_many_arguments)] // The login, who asked, and what its facts read.
pub fn check_login(
    store: &mut dyn Store,
    now: i64,
    login: &LoginContext,
    protocol: Option<&str>,
    caller_uid: u32,
    origin: Origin,
    relay: Option<RelayHost>,
    known: &GrantRead,
) -> Result<Option<i64>, StoreError> {
    let lookup = match known {
        GrantRead::Row(None) => Ok(BreakGlassLookup::None),
        GrantRead::Row(Some(grant)) if grant.expires_at > now => {
            Ok(BreakGlassLookup::Live(grant.clone()))
        }
        GrantRead::Failed(why) => Err(why.clone()),
        GrantRead::Row(Some(_)) | GrantRead::NotRead => store
            .breakglass_for(&login.user, now)
            .map_err(|e| e.to_string()),
    };
    let grant = match lookup {
        Ok(BreakGlassLookup::Live(grant)) => grant,
        Ok(BreakGlassLookup::None) => return Ok(None),
        Ok(BreakGlassLookup::Expired(grant)) => {
            note_expired(store, now, &grant)?;
            return Ok(None);
        }
        Err(why) => {
            tracing::error!("cannot read break-glass grants: {}", escape_for_log(&why));
            return Ok(None);
        }
    };
    if !covers(grant.cidr.as_deref(), origin, login.rhost.as_deref()) {
        return Ok(None);
    }
    tracing::warn!(
        "break-glass used: user {} passes the code step (service {}, rhost {}); the grant ends {}",
        escape_for_log(&login.user),
        escape_for_log(&login.service),
        escape_for_log(login.rhost.as_deref().unwrap_or("-")),
        timefmt::utc(grant.expires_at)
    );
    let detail = format!("until={}", timefmt::utc(grant.expires_at));
    let subject = Subject {
        login,
        protocol,
        caller_uid,
        origin,
        relay,
    };
    audit::record(store, now, Event::BreakglassUsed, subject, Some(&detail))?;
    Ok(Some(grant.expires_at))
}

/// The periodic purge's step: deletes every grant expired at `now` and logs each expiry, in
/// one transaction (an expiry whose row cannot be written stays for the next purge).
pub fn expire_all(store: &mut dyn Store, now: i64) {
    let expired = store::atomically(store, |store| {
        for grant in &store.expire_breakglass(now)? {
            note_expired(store, now, grant)?;
        }
        Ok(())
    });
    if let Err(e) = expired {
        tracing::error!(
            "cannot expire break-glass grants: {}",
            escape_for_log(&e.to_string())
        );
    }
}

/// The warning and the audit event of a grant's expiry, found (and deleted) at `now`. Like
/// the grant's use it is found by a login (or the purge), so it is written as a login's event,
/// with the granter's uid as the caller.
pub fn note_expired(store: &mut dyn Store, now: i64, grant: &BreakGlass) -> Result<(), StoreError> {
    tracing::warn!(
        "break-glass expired: user {} needs login codes again (granted by uid {}, ended {})",
        escape_for_log(&grant.user),
        grant.granted_by,
        timefmt::utc(grant.expires_at)
    );
    let detail = format!("ended={}", timefmt::utc(grant.expires_at));
    let login = LoginContext {
        user: grant.user.clone(),
        service: crate::rules::OTPCTL_SERVICE.to_string(),
        rhost: None,
        tty: None,
        protocol: None,
    };
    let subject = Subject {
        login: &login,
        protocol: None,
        caller_uid: grant.granted_by,
        // Root's grant: written one by one, never rate limited.
        origin: Origin::Reported,
        relay: None,
    };
    let event = Event::BreakglassExpired;
    audit::record(store, now, event, subject, Some(&detail))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SqliteStore;

    const T0: i64 = 1_800_000_000;

    /// `check_login` for root's ssh login of alice at `now`, with `known`.
    fn check(store: &mut SqliteStore, now: i64, known: &GrantRead) -> Option<i64> {
        let login = crate::test_support::alice();
        check_login(store, now, &login, None, 0, Origin::Reported, None, known).unwrap()
    }

    #[test]
    fn a_login_decides_on_the_grant_row_its_facts_read_and_looks_up_only_an_expired_one() {
        let dir = tempfile::tempdir().unwrap();
        let key = crate::server_key::ServerKey::from_bytes([7; 32]);
        let mut store = SqliteStore::open(&dir.path().join("otpd.db"), key).unwrap();
        let grant = BreakGlass {
            user: "alice".into(),
            cidr: None,
            granted_by: 0,
            granted_at: T0,
            expires_at: T0 + 300,
        };
        store.grant_breakglass(&grant).unwrap();
        // The facts read no row (the grant came after them): no grant for this login.
        assert_eq!(check(&mut store, T0 + 1, &GrantRead::Row(None)), None);
        // The row they read holds: it passes, without reading it again.
        let known = GrantRead::Row(Some(grant.clone()));
        assert_eq!(check(&mut store, T0 + 1, &known), Some(T0 + 300));
        // Not read with the facts: looked up here.
        assert_eq!(
            check(&mut store, T0 + 2, &GrantRead::NotRead),
            Some(T0 + 300)
        );
        // A failed read counts as no grant (the login asks for a code).
        let failed = GrantRead::Failed("database gone".into());
        assert_eq!(check(&mut store, T0 + 3, &failed), None);
        // Expired by the decision's clock: looked up, deleted and its expiry audited, once.
        assert_eq!(check(&mut store, T0 + 300, &known), None);
        assert_eq!(
            store.breakglass_for("alice", T0 + 301).unwrap(),
            BreakGlassLookup::None
        );
        let expired = store.audit_since(0, 100).unwrap();
        let expiries = expired
            .iter()
            .filter(|row| row.event == "breakglass_expired")
            .count();
        assert_eq!(expiries, 1);
    }

    #[test]
    fn networks_parse_and_bad_ones_are_refused() {
        assert_eq!(
            Cidr::parse("192.0.2.7/24").unwrap().to_string(),
            "192.0.2.7/24"
        );
        assert_eq!(
            Cidr::parse("192.0.2.7").unwrap().to_string(),
            "192.0.2.7/32"
        );
        assert_eq!(
            Cidr::parse("2001:db8::/32").unwrap().to_string(),
            "2001:db8::/32"
        );
        for bad in [
            "",
            "192.0.2.0/33",
            "192.0.2.0/",
            "192.0.2.0/+8",
            "example.com/8",
            "::/129",
            "10.0.0.0/8/8",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_network_contains_its_addresses_and_no_others() {
        let net = Cidr::parse("192.0.2.0/24").unwrap();
        assert!(net.contains("192.0.2.255".parse().unwrap()));
        assert!(net.contains("::ffff:192.0.2.1".parse().unwrap()));
        assert!(!net.contains("192.0.3.1".parse().unwrap()));
        assert!(!net.contains("2001:db8::1".parse().unwrap()));
        let all = Cidr::parse("0.0.0.0/0").unwrap();
        assert!(all.contains("203.0.113.9".parse().unwrap()));
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains("2001:db8:1::1".parse().unwrap()));
        assert!(!v6.contains("2001:db9::1".parse().unwrap()));
    }

    #[test]
    fn a_grant_without_a_network_covers_every_login() {
        assert!(covers(None, Origin::Local, Some("local")));
        assert!(covers(None, Origin::Reported, None));
    }

    #[test]
    fn a_restricted_grant_covers_only_believed_addresses_inside_its_network() {
        let net = Some("192.0.2.0/24");
        assert!(covers(net, Origin::Reported, Some("192.0.2.10")));
        assert!(!covers(net, Origin::Reported, Some("198.51.100.1")));
        assert!(!covers(net, Origin::Reported, None));
        assert!(!covers(net, Origin::Reported, Some("host.example.com")));
        // A local caller's origin is never believed, whatever it reported.
        assert!(!covers(net, Origin::Local, Some("192.0.2.10")));
        assert!(!covers(net, Origin::Local, Some("local")));
        assert!(!covers(Some("0.0.0.0/0"), Origin::Local, Some("local")));
    }
}
