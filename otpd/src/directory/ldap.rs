//! `[[directory.ldap]]`: a user's address and groups from an LDAP server (OpenLDAP, Active
//! Directory), through the `ldap3` crate on rustls.
//!
//! Each lookup that the cache cannot answer opens a connection to the source's first server,
//! binds (or searches anonymously), finds the user's entry with the configured filter, and reads
//! the address attribute and the groups; on any failure it tries the next server. Every step has
//! a deadline (`connect_timeout_seconds` for TCP plus TLS or StartTLS, `search_timeout_seconds`
//! for each bind and search), so a server that accepts and never answers costs a bounded time.
//! When every server fails the lookup is an error and the login fails closed: never the
//! template's address for a user the directory should know.
//!
//! The user name goes into the filter escaped by [`escape_filter_value`] (our own, not ldap3's
//! `ldap_escape`, which leaves non-ASCII bytes unescaped), so a name holding `*`, `(`, `)` or
//! `\` matches only itself. A filter matching more than one entry is an error, not a guess.
//!
//! Lookups run on a blocking thread (see `super::within_deadline`), so they use ldap3's
//! synchronous client, one connection per lookup (its own small runtime, closed with it): the
//! cache, not a connection pool, is what spares the servers, and nothing of a lookup that missed
//! its deadline outlives its thread.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use common::config::{
    EmailAddress, GroupSearch, Language, LdapSource, LdapTls, LdapUrl, PhoneNumber,
    escape_filter_value,
};
use common::secret::SecretString;
use common::text::escape_for_log;
use ldap3::{LdapConn, LdapConnSettings, Scope, SearchEntry, SearchOptions};

use super::cache::{Cache, Entry};
use super::{Directory, DirectoryError, UserFacts, Wanted};
use crate::clock::Clock;

/// The LDAP result code for "more entries than the size limit".
const SIZE_LIMIT_EXCEEDED: u32 = 4;

/// Groups read from one posixGroup search at most; more are a misconfigured base.
const MAX_POSIX_GROUPS: i32 = 1000;

/// One `[[directory.ldap]]` source, ready to ask: its bind password read, its TLS set up, its
/// cache. Built with the config (start, reload), so a bad password file or CA refuses the config
/// instead of failing the first login.
pub struct LdapDirectory {
    source: LdapSource,
    /// The bind password, zeroized on drop and never logged.
    password: Option<SecretString>,
    /// The verifying TLS client; `None` only for `tls = "none"`.
    tls: Option<Arc<rustls::ClientConfig>>,
    /// The attributes policies match (`match_attribute`), read with every entry.
    attributes: Vec<String>,
    cache: Mutex<Cache>,
    clock: Arc<dyn Clock>,
    /// Whether the last lookup that asked the servers reached one (`otpd_directory_up`).
    reachable: AtomicBool,
}

impl std::fmt::Debug for LdapDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LdapDirectory")
            .field("source", &self.source.name)
            .finish_non_exhaustive()
    }
}

/// Why one server gave no answer.
enum ServerFailure {
    /// It could not be reached or refused us: the next server may do better.
    Down(String),
    /// It answered, and the answer cannot be used (the filter matched several entries): another
    /// server of the same directory would say the same.
    Unusable(String),
}

impl ServerFailure {
    fn into_reason(self) -> String {
        match self {
            ServerFailure::Down(reason) | ServerFailure::Unusable(reason) => reason,
        }
    }
}

impl From<ldap3::LdapError> for ServerFailure {
    fn from(error: ldap3::LdapError) -> ServerFailure {
        ServerFailure::Down(error.to_string())
    }
}

impl LdapDirectory {
    /// Prepares `source`: reads its bind password file and its CA file. `attributes` are the
    /// ones policies match, read along with the address.
    pub fn new(
        source: &LdapSource,
        attributes: Vec<String>,
        clock: Arc<dyn Clock>,
    ) -> Result<LdapDirectory, String> {
        let fail = |reason: String| format!("LDAP source {}: {reason}", source.name);
        let password = source
            .bind
            .as_ref()
            .map(|bind| crate::mail::secret_file::read_password(&bind.password_file))
            .transpose()
            .map_err(|e| fail(format!("bind_password_file {e}")))?;
        let tls = match source.tls {
            LdapTls::None => None,
            LdapTls::Ldaps | LdapTls::Starttls => {
                Some(crate::mail::tls::verifying_config(source.ca_file.as_deref()).map_err(fail)?)
            }
        };
        Ok(LdapDirectory {
            source: source.clone(),
            password,
            tls,
            attributes,
            cache: Mutex::new(Cache::new(
                source.cache_ttl,
                source.negative_cache_ttl,
                source.cache_size,
            )),
            clock,
            reachable: AtomicBool::new(true),
        })
    }

    /// Whether the last lookup that asked the servers reached one; true before any did.
    pub fn reachable(&self) -> bool {
        self.reachable.load(Ordering::Relaxed)
    }

    /// The source's name, as audit rows show it (`ldap:NAME`).
    pub fn label(&self) -> String {
        format!("ldap:{}", self.source.name)
    }

    /// What the source says of `user`: from the cache when it holds a fresh answer (with groups
    /// when `groups`), else from the first server that answers. When none answers, the last
    /// known answer past its TTL, with why it stands in (see [`UserFacts::last_known`]).
    fn entry(&self, user: &str, groups: bool) -> Result<(Entry, Option<String>), DirectoryError> {
        let now = self.clock.now();
        if let Some(entry) = self.cached(user, now) {
            let complete = !groups || !matches!(entry, Entry::Found { groups: None, .. });
            if complete {
                return Ok((entry, None));
            }
        }
        let mut reasons = Vec::new();
        let started = std::time::Instant::now();
        for url in &self.source.urls {
            // Past the login's deadline nobody waits for the answer any more: stop, and give
            // the lookup's slot back (see `super::MAX_LOOKUPS`).
            if started.elapsed() >= super::DEADLINE {
                reasons.push(format!("{}: not tried, past the deadline", url.url()));
                break;
            }
            match self.ask(url, user, groups) {
                Ok(entry) => {
                    self.reachable.store(true, Ordering::Relaxed);
                    self.remember(user, entry.clone(), self.clock.now());
                    return Ok((entry, None));
                }
                Err(ServerFailure::Down(reason)) => {
                    tracing::warn!(
                        "LDAP source {} server {} failed for user={}: {}",
                        escape_for_log(&self.source.name),
                        escape_for_log(&url.url()),
                        escape_for_log(user),
                        escape_for_log(&reason)
                    );
                    reasons.push(format!("{}: {reason}", url.url()));
                }
                Err(ServerFailure::Unusable(reason)) => {
                    return Err(self.failed(reason));
                }
            }
        }
        self.reachable.store(false, Ordering::Relaxed);
        let reason = format!("no server answered ({})", reasons.join("; "));
        match self.last_known(user) {
            Some((entry @ Entry::Found { .. }, stored)) => {
                let age = self.clock.now().saturating_sub(stored);
                Ok((
                    entry,
                    Some(format!(
                        "{}: {reason}; answer from {age} s ago",
                        self.label()
                    )),
                ))
            }
            _ => Err(self.failed(reason)),
        }
    }

    fn last_known(&self, user: &str) -> Option<(Entry, i64)> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .last_known(user)
            .map(|(entry, stored)| (entry.clone(), stored))
    }

    fn failed(&self, reason: String) -> DirectoryError {
        DirectoryError::Ldap {
            name: self.source.name.clone(),
            reason,
        }
    }

    fn cached(&self, user: &str, now: i64) -> Option<Entry> {
        // A poisoned lock only means a panic elsewhere mid-update; the map is still a map.
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.get(user, now).cloned()
    }

    fn remember(&self, user: &str, entry: Entry, now: i64) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.put(user, entry, now);
    }

    /// One server: connect, bind, find the user, read the groups.
    fn ask(&self, url: &LdapUrl, user: &str, groups: bool) -> Result<Entry, ServerFailure> {
        let mut conn = self.connect(url)?;
        let found = self.search_user(&mut conn, user, groups);
        // Best effort: the server forgets the connection either way when it closes.
        let _ = conn.with_timeout(self.source.search_timeout).unbind();
        found
    }

    /// What `otpctl doctor` reports of one server: connects (verifying its certificate), binds
    /// and reads the search base, without looking anyone up.
    pub fn check_server(&self, url: &LdapUrl) -> Result<(), String> {
        let mut conn = self.connect(url).map_err(ServerFailure::into_reason)?;
        let read = (|| {
            self.bind(&mut conn)?;
            conn.with_timeout(self.source.search_timeout)
                .search(
                    &self.source.base,
                    Scope::Base,
                    "(objectClass=*)",
                    vec!["1.1"],
                )?
                .success()?;
            Ok::<_, ServerFailure>(())
        })();
        let _ = conn.with_timeout(self.source.search_timeout).unbind();
        read.map_err(ServerFailure::into_reason)
    }

    /// What `otpctl doctor --ldap-user USER` reports of one server: `user` looked up as a login
    /// would (the filter, the address attribute, the groups), not from the cache. The entry's
    /// values and the server's text are escaped: they go to a terminal; the filter and the user
    /// are the admin's own.
    pub fn check_user(&self, url: &LdapUrl, user: &str) -> Result<String, String> {
        let filter = self.source.filter_for(user);
        match self.ask(url, user, true) {
            Ok(Entry::Found {
                address, groups, ..
            }) => {
                let address = match &address {
                    Some(a) => format!("address {}", escape_for_log(a)),
                    None => format!("no {} value", self.source.address_attribute),
                };
                let groups: Vec<String> = groups
                    .unwrap_or_default()
                    .iter()
                    .map(|g| escape_for_log(g))
                    .collect();
                Ok(format!(
                    "user {user} found with {filter}: {address}, groups [{}]",
                    groups.join(", ")
                ))
            }
            Ok(Entry::Absent) => Err(format!(
                "user {user} not found with {filter} under {}",
                self.source.base
            )),
            Err(failure) => Err(failure.into_reason()),
        }
    }

    /// The source this directory asks.
    pub fn source(&self) -> &LdapSource {
        &self.source
    }

    /// TCP, then TLS (ldaps) or StartTLS, all within the connect timeout; a failed StartTLS is
    /// an error, never a plain connection.
    fn connect(&self, url: &LdapUrl) -> Result<LdapConn, ServerFailure> {
        let mut settings = LdapConnSettings::new().set_conn_timeout(self.source.connect_timeout);
        if let Some(tls) = &self.tls {
            settings = settings
                .set_config(Arc::clone(tls))
                .set_starttls(self.source.tls == LdapTls::Starttls);
        }
        Ok(LdapConn::with_settings(settings, &url.url())?)
    }

    /// Binds as `bind_dn` when the source has one; anonymous otherwise.
    fn bind(&self, conn: &mut LdapConn) -> Result<(), ServerFailure> {
        if let (Some(bind), Some(password)) = (&self.source.bind, &self.password) {
            conn.with_timeout(self.source.search_timeout)
                .simple_bind(&bind.dn, password.expose())?
                .success()?;
        }
        Ok(())
    }

    fn search_user(
        &self,
        conn: &mut LdapConn,
        user: &str,
        groups: bool,
    ) -> Result<Entry, ServerFailure> {
        let timeout = self.source.search_timeout;
        self.bind(conn)?;
        let mut attributes = vec![
            self.source.address_attribute.as_str(),
            self.source.language_attribute.as_str(),
            self.source.phone_attribute.as_str(),
        ];
        if let (true, GroupSearch::Attribute(name)) = (groups, &self.source.groups) {
            attributes.push(name.as_str());
        }
        attributes.extend(self.attributes.iter().map(String::as_str));
        let filter = self.source.filter_for(user);
        let found = conn
            .with_timeout(timeout)
            .with_search_options(SearchOptions::new().sizelimit(2))
            .search(&self.source.base, Scope::Subtree, &filter, attributes)?;
        if found.1.rc == SIZE_LIMIT_EXCEEDED || found.0.len() > 1 {
            return Err(ServerFailure::Unusable(format!(
                "the filter {filter} matches more than one entry"
            )));
        }
        let (mut entries, _) = found.success()?;
        let Some(raw) = entries.pop() else {
            return Ok(Entry::Absent);
        };
        // ldap3 panics on an entry it cannot decode; that would end this lookup's thread only,
        // which the caller reports as a lost lookup (the login fails closed).
        let entry = SearchEntry::construct(raw);
        let address = values(&entry, &self.source.address_attribute)
            .first()
            .cloned();
        let language = values(&entry, &self.source.language_attribute)
            .first()
            .cloned();
        let phone = values(&entry, &self.source.phone_attribute)
            .first()
            .cloned();
        let attributes = self
            .attributes
            .iter()
            .map(|name| (name.clone(), values(&entry, name).to_vec()))
            .filter(|(_, values)| !values.is_empty())
            .collect();
        let groups = if groups {
            Some(match &self.source.groups {
                GroupSearch::Attribute(name) => values(&entry, name)
                    .iter()
                    .filter_map(|dn| first_cn(dn))
                    .collect(),
                GroupSearch::Posix => self.group_search(conn, &posix_filter(user))?,
                GroupSearch::InChain => self.group_search(conn, &in_chain_filter(&entry.dn))?,
            })
        } else {
            None
        };
        Ok(Entry::Found {
            address,
            groups,
            attributes,
            language,
            phone,
        })
    }

    /// The `cn` of every group under the base that `filter` finds.
    fn group_search(
        &self,
        conn: &mut LdapConn,
        filter: &str,
    ) -> Result<Vec<String>, ServerFailure> {
        let (entries, _) = conn
            .with_timeout(self.source.search_timeout)
            .with_search_options(SearchOptions::new().sizelimit(MAX_POSIX_GROUPS))
            .search(&self.source.base, Scope::Subtree, filter, vec!["cn"])?
            .success()?;
        Ok(entries
            .into_iter()
            .filter_map(|raw| values(&SearchEntry::construct(raw), "cn").first().cloned())
            .collect())
    }
}

impl Directory for LdapDirectory {
    fn look_up(
        &self,
        user: &str,
        wanted: Wanted,
        facts: &mut UserFacts,
    ) -> Result<(), DirectoryError> {
        let needs_address = wanted.record && facts.address.is_none();
        let needs_attributes = wanted.attributes && !self.attributes.is_empty();
        let needs_phone = wanted.record && wanted.phone && facts.phone.is_none();
        if !needs_address && !wanted.groups && !needs_attributes && !needs_phone {
            return Ok(());
        }
        let (entry, last_known) = self.entry(user, wanted.groups)?;
        let Entry::Found {
            address,
            groups,
            attributes,
            language,
            phone,
        } = entry
        else {
            return Ok(());
        };
        if needs_phone {
            match phone.as_deref().map(PhoneNumber::parse) {
                Some(Ok(phone)) => {
                    facts.phone = Some(phone);
                    facts.phone_source = Some(self.label());
                }
                // Not used: a number otpd cannot read might send the code to a stranger.
                Some(Err(e)) => tracing::warn!(
                    "LDAP source {} gives user={} a phone number otpd cannot use: {}",
                    escape_for_log(&self.source.name),
                    escape_for_log(user),
                    escape_for_log(&e)
                ),
                None => {}
            }
        }
        if wanted.record && facts.language.is_none() {
            facts.language = language.as_deref().and_then(Language::of);
        }
        if last_known.is_some() && facts.last_known.is_none() {
            facts.last_known = last_known;
        }
        if needs_attributes {
            for (name, values) in attributes {
                facts.attributes.entry(name).or_insert(values);
            }
        }
        if needs_address {
            match address.as_deref().map(EmailAddress::parse) {
                Some(Ok(address)) => {
                    facts.address = Some(address);
                    facts.address_source = Some(self.label());
                }
                Some(Err(e)) => tracing::warn!(
                    "LDAP source {} gives user={} an address otpd cannot use: {}",
                    escape_for_log(&self.source.name),
                    escape_for_log(user),
                    escape_for_log(&e.to_string())
                ),
                None => {}
            }
        }
        if wanted.groups {
            for group in groups.into_iter().flatten() {
                if !facts.groups.contains(&group) {
                    facts.groups.push(group);
                }
            }
        }
        Ok(())
    }
}

/// The posixGroups that list `user` as a `memberUid`.
fn posix_filter(user: &str) -> String {
    format!(
        "(&(objectClass=posixGroup)(memberUid={}))",
        escape_filter_value(user)
    )
}

/// Active Directory's groups that hold the entry `dn`, directly or through other groups
/// (`LDAP_MATCHING_RULE_IN_CHAIN`). The DN is escaped like a user name: a DN may hold `(`, `)`,
/// `*` and `\`.
fn in_chain_filter(dn: &str) -> String {
    format!(
        "(member:1.2.840.113556.1.4.1941:={})",
        escape_filter_value(dn)
    )
}

/// The values of `attribute` in `entry`, its name matched without regard to case (servers
/// answer `memberOf` for `memberof`).
fn values<'e>(entry: &'e SearchEntry, attribute: &str) -> &'e [String] {
    entry
        .attrs
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(attribute))
        .map_or(&[], |(_, values)| values.as_slice())
}

/// The value of a DN's first RDN when it is a `cn` (`cn=ops,ou=groups,dc=example,dc=com` ->
/// `ops`), its RFC 4514 escapes (`\,` and `\2c`) undone.
fn first_cn(dn: &str) -> Option<String> {
    let (kind, rest) = dn.split_once('=')?;
    if !kind.trim().eq_ignore_ascii_case("cn") {
        return None;
    }
    let mut bytes = Vec::new();
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            ',' | '+' => break,
            '\\' => {
                let next = chars.next()?;
                let hex = next.to_digit(16).and_then(|high| {
                    let low = chars.clone().next()?.to_digit(16)?;
                    Some(high * 16 + low)
                });
                match hex {
                    Some(byte) => {
                        chars.next();
                        bytes.push(u8::try_from(byte).ok()?);
                    }
                    None => {
                        let mut buffer = [0; 4];
                        bytes.extend_from_slice(next.encode_utf8(&mut buffer).as_bytes());
                    }
                }
            }
            other => {
                let mut buffer = [0; 4];
                bytes.extend_from_slice(other.encode_utf8(&mut buffer).as_bytes());
            }
        }
    }
    let name = String::from_utf8(bytes).ok()?;
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::atomic::{AtomicI64, Ordering};
    use std::time::{Duration, Instant};

    use common::config::{Attributes, Config};

    #[derive(Debug)]
    struct HandClock(AtomicI64);

    impl Clock for HandClock {
        fn now(&self) -> i64 {
            self.0.load(Ordering::SeqCst)
        }
    }

    const T0: i64 = 1_800_000_000;

    /// A plain loopback source (no TLS, so no CA needed) whose servers are at `ports`.
    fn source(ports: &[u16]) -> LdapSource {
        let urls: Vec<String> = ports
            .iter()
            .map(|p| format!("\"ldap://127.0.0.1:{p}\""))
            .collect();
        let text = format!(
            "[mail]\nfrom = \"otp@example.com\"\n[[directory.ldap]]\nname = \"corp\"\nurls = [{}]\ntls = \"none\"\nbase = \"dc=example,dc=com\"\nfilter = \"(uid={{user}})\"\nconnect_timeout_seconds = 1\nsearch_timeout_seconds = 1\ncache_ttl_seconds = 60",
            urls.join(", ")
        );
        let config = Config::parse(&text, std::path::Path::new("t.toml")).unwrap();
        config.directory.ldap.into_iter().next().unwrap()
    }

    use crate::test_support::closed_port;

    fn wanted() -> Wanted {
        Wanted {
            record: true,
            groups: true,
            attributes: true,
            phone: true,
        }
    }

    #[test]
    fn every_server_down_and_nothing_cached_is_an_error_not_an_empty_answer() {
        let clock = Arc::new(HandClock(AtomicI64::new(T0)));
        let ldap = LdapDirectory::new(&source(&[closed_port(), closed_port()]), Vec::new(), clock)
            .unwrap();
        let mut facts = UserFacts::default();
        let e = ldap.look_up("alice", wanted(), &mut facts).unwrap_err();
        assert!(
            matches!(&e, DirectoryError::Ldap { name, reason } if name == "corp" && reason.contains("no server answered")),
            "{e}"
        );
        assert_eq!(facts, UserFacts::default());
    }

    #[test]
    fn with_every_server_down_a_cached_entry_serves_until_its_ttl_then_comes_as_the_last_known() {
        let clock = Arc::new(HandClock(AtomicI64::new(T0)));
        let ldap = LdapDirectory::new(
            &source(&[closed_port()]),
            Vec::new(),
            Arc::clone(&clock) as Arc<dyn Clock>,
        )
        .unwrap();
        ldap.remember(
            "alice",
            Entry::Found {
                address: Some("alice@corp.example".into()),
                groups: Some(vec!["ops".into()]),
                attributes: Attributes::new(),
                language: Some("de-DE".into()),
                phone: Some("+441234567890".into()),
            },
            T0,
        );
        let mut facts = UserFacts::default();
        ldap.look_up("alice", wanted(), &mut facts).unwrap();
        assert_eq!(
            facts.address.as_ref().map(EmailAddress::as_str),
            Some("alice@corp.example")
        );
        assert_eq!(facts.address_source.as_deref(), Some("ldap:corp"));
        assert_eq!(facts.groups, ["ops"]);
        assert_eq!(facts.language, Some(Language::German));
        assert_eq!(
            facts.phone.as_ref().map(PhoneNumber::as_str),
            Some("+441234567890")
        );
        assert_eq!(facts.phone_source.as_deref(), Some("ldap:corp"));
        assert_eq!(facts.last_known, None, "a fresh answer");
        // Past the TTL the last answer still comes, marked as such: the profile decides
        // whether it serves (`directory_down`); a user never answered for is an error.
        clock.0.store(T0 + 60, Ordering::SeqCst);
        let mut facts = UserFacts::default();
        ldap.look_up("alice", wanted(), &mut facts).unwrap();
        let why = facts.last_known.unwrap_or_default();
        assert!(
            why.starts_with("ldap:corp: no server answered") && why.ends_with("from 60 s ago"),
            "{why}"
        );
        let mut facts = UserFacts::default();
        assert!(ldap.look_up("bob", wanted(), &mut facts).is_err());
    }

    #[test]
    fn an_address_from_an_earlier_source_is_kept_and_no_server_is_asked_for_it() {
        let clock = Arc::new(HandClock(AtomicI64::new(T0)));
        let ldap = LdapDirectory::new(&source(&[closed_port()]), Vec::new(), clock).unwrap();
        let mut facts = UserFacts {
            address: Some(EmailAddress::parse("a@table.example").unwrap()),
            address_source: Some(super::super::FROM_TABLE.into()),
            ..UserFacts::default()
        };
        let address_only = Wanted {
            record: true,
            ..Wanted::default()
        };
        ldap.look_up("alice", address_only, &mut facts).unwrap();
        assert_eq!(facts.address_source.as_deref(), Some("table"));
    }

    /// Issue #21: otpd's table (`otpctl user set-phone`) comes before the directory's
    /// `mobile`, and a directory value that is not E.164 is not used.
    #[test]
    fn a_phone_from_the_table_comes_first_and_a_directory_number_not_e164_is_ignored() {
        let clock = Arc::new(HandClock(AtomicI64::new(T0)));
        let ldap = LdapDirectory::new(&source(&[closed_port()]), Vec::new(), clock).unwrap();
        let entry = |phone: &str| Entry::Found {
            address: Some("alice@corp.example".into()),
            groups: Some(Vec::new()),
            attributes: Attributes::new(),
            language: None,
            phone: Some(phone.into()),
        };
        ldap.remember("alice", entry("+441234567890"), T0);
        let mut from_table = UserFacts {
            phone: Some(PhoneNumber::parse("+15005550006").unwrap()),
            phone_source: Some(super::super::FROM_TABLE.into()),
            ..UserFacts::default()
        };
        ldap.look_up("alice", wanted(), &mut from_table).unwrap();
        assert_eq!(
            from_table.phone.as_ref().map(PhoneNumber::as_str),
            Some("+15005550006")
        );
        assert_eq!(from_table.phone_source.as_deref(), Some("table"));
        ldap.remember("alice", entry("0044 1234 567890"), T0);
        let mut facts = UserFacts::default();
        ldap.look_up("alice", wanted(), &mut facts).unwrap();
        assert_eq!((facts.phone, facts.phone_source), (None, None));
        assert_eq!(facts.address_source.as_deref(), Some("ldap:corp"));
    }

    /// Issue #19: a server that accepts the connection and never answers costs the search
    /// timeout, not the login.
    #[test]
    fn a_server_that_accepts_and_never_answers_fails_within_its_timeouts() {
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = silent.local_addr().unwrap().port();
        let clock = Arc::new(HandClock(AtomicI64::new(T0)));
        let ldap = LdapDirectory::new(&source(&[port]), Vec::new(), clock).unwrap();
        let started = Instant::now();
        let mut facts = UserFacts::default();
        assert!(ldap.look_up("alice", wanted(), &mut facts).is_err());
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{:?}",
            started.elapsed()
        );
        drop(silent);
    }

    #[test]
    fn group_filters_escape_the_name_and_the_dn() {
        assert_eq!(
            posix_filter("a*"),
            "(&(objectClass=posixGroup)(memberUid=a\\2a))"
        );
        assert_eq!(
            in_chain_filter("CN=Smith\\, J (ops),OU=Users,DC=corp"),
            "(member:1.2.840.113556.1.4.1941:=CN=Smith\\5c, J \\28ops\\29,OU=Users,DC=corp)"
        );
    }

    #[test]
    fn a_group_dn_gives_its_cn_unescaped() {
        assert_eq!(
            first_cn("cn=ops,ou=groups,dc=example,dc=com").as_deref(),
            Some("ops")
        );
        assert_eq!(
            first_cn("CN=Domain Admins,CN=Users,DC=corp").as_deref(),
            Some("Domain Admins")
        );
        assert_eq!(first_cn("cn=a\\,b,dc=x").as_deref(), Some("a,b"));
        assert_eq!(first_cn("cn=a\\2cb,dc=x").as_deref(), Some("a,b"));
        assert_eq!(first_cn("cn=caf\\c3\\a9,dc=x").as_deref(), Some("café"));
        assert_eq!(first_cn("ou=ops,dc=x"), None);
        assert_eq!(first_cn("cn=,dc=x"), None);
        assert_eq!(first_cn("not a dn"), None);
    }

    /// A late lookup keeps one of the few lookup slots until it returns: failover stops at the
    /// login's deadline instead of trying every remaining silent server.
    #[test]
    fn failover_stops_at_the_login_deadline() {
        let silent: Vec<std::net::TcpListener> = (0..8)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let ports: Vec<u16> = silent
            .iter()
            .map(|l| l.local_addr().unwrap().port())
            .collect();
        let clock = Arc::new(HandClock(AtomicI64::new(T0)));
        let ldap = LdapDirectory::new(&source(&ports), Vec::new(), clock).unwrap();
        let started = Instant::now();
        let e = ldap
            .look_up("alice", wanted(), &mut UserFacts::default())
            .unwrap_err();
        let took = started.elapsed();
        assert!(e.to_string().contains("past the deadline"), "{e}");
        assert!(
            took < super::super::DEADLINE + Duration::from_secs(2),
            "{took:?}"
        );
        drop(silent);
    }
}
