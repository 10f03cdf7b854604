//! `[[directory.ldap]]`: LDAP or Active Directory servers that give users' addresses and groups.
//!
//! Checked here, once, so the daemon's client never meets a URL it cannot use, a filter that
//! could match other users, or a plain connection that would carry the bind password across a
//! network: `ldap://` is upgraded with StartTLS unless `tls = "none"`, which only loopback
//! servers may have (as for SMTP).

use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use super::check::{self, SECOND, host, is_loopback};
use super::error::Invalid;
use super::raw::{RawLdap, Text};

/// The placeholder a filter must hold, replaced by the escaped user name.
pub const USER_PLACEHOLDER: &str = "{user}";

/// The longest filter, base or DN accepted: far beyond any real one, short enough for a log line.
const MAX_LDAP_TEXT: usize = 1024;

/// Servers one source may list for failover.
const MAX_URLS: usize = 8;

/// One `[[directory.ldap]]` source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdapSource {
    /// A short unique name for logs and audit rows (`address_source = "ldap:NAME"`).
    pub name: String,
    /// The servers, tried in order until one answers.
    pub urls: Vec<LdapUrl>,
    /// How every connection of this source is protected.
    pub tls: LdapTls,
    /// A PEM file of extra trusted CA certificates (a private CA), besides the system store.
    pub ca_file: Option<PathBuf>,
    /// Who to bind as; `None` searches anonymously.
    pub bind: Option<LdapBind>,
    /// The search base (a DN).
    pub base: String,
    /// The user search filter, with [`USER_PLACEHOLDER`] where the escaped name goes.
    pub filter: String,
    /// The attribute holding the address (`mail`).
    pub address_attribute: String,
    /// The attribute holding the user's language for the login texts (`preferredLanguage`,
    /// e.g. `de` or `de-DE`); a language otpd has no texts in leaves the profile's.
    pub language_attribute: String,
    /// The attribute holding the user's phone number for webhook channels (`mobile`), in E.164
    /// form; otpd's own table (`otpctl user set-phone`) comes first, and a value that is not
    /// E.164 is ignored with a warning.
    pub phone_attribute: String,
    /// Where the user's groups come from.
    pub groups: GroupSearch,
    /// How long connecting (TCP, then TLS or StartTLS) to one server may take.
    pub connect_timeout: Duration,
    /// How long one bind or search on a server may take.
    pub search_timeout: Duration,
    /// How long a found user's address and groups are kept (0: not kept).
    pub cache_ttl: Duration,
    /// How long "no such user" is kept (0: not kept).
    pub negative_cache_ttl: Duration,
    /// Users kept in the cache at most; the oldest entries make room.
    pub cache_size: usize,
}

/// One server of a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdapUrl {
    /// `ldaps` or `ldap`, as written.
    pub scheme: &'static str,
    /// A host name or IP address; also the name its certificate must carry.
    pub host: String,
    /// The TCP port.
    pub port: u16,
}

impl LdapUrl {
    /// The URL as the client library takes it (IPv6 addresses in brackets).
    pub fn url(&self) -> String {
        if self.host.contains(':') {
            format!("{}://[{}]:{}", self.scheme, self.host, self.port)
        } else {
            format!("{}://{}:{}", self.scheme, self.host, self.port)
        }
    }
}

/// Transport security towards the servers of a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LdapTls {
    /// `ldaps://`: TLS from the first byte.
    Ldaps,
    /// `ldap://` upgraded with StartTLS, which must succeed: never a plain search instead.
    Starttls,
    /// Plain `ldap://`, loopback servers only.
    None,
}

impl LdapTls {
    /// The name used in the config and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            LdapTls::Ldaps => "ldaps",
            LdapTls::Starttls => "starttls",
            LdapTls::None => "none",
        }
    }
}

/// A bind DN and the file holding its password. The password stays in its own file, readable by
/// otpd alone, so the main config can stay world-readable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdapBind {
    /// The DN to bind as.
    pub dn: String,
    /// The private file whose first line is the password.
    pub password_file: PathBuf,
}

/// Where a user's groups come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupSearch {
    /// An attribute of the user's entry holding group DNs (`memberOf`); each DN's first `cn`
    /// is the group's name.
    Attribute(String),
    /// A search for `(&(objectClass=posixGroup)(memberUid=USER))` under the base; each group's
    /// `cn` is its name.
    Posix,
    /// Active Directory's nested groups: a search for
    /// `(member:1.2.840.113556.1.4.1941:=USER_DN)` (`LDAP_MATCHING_RULE_IN_CHAIN`) under the
    /// base, which finds the groups the user is in directly and through other groups; each
    /// group's `cn` is its name.
    InChain,
}

impl LdapSource {
    /// Checks one `[[directory.ldap]]` entry; also returns the span of its name for the
    /// uniqueness check.
    pub(super) fn from_raw(
        raw: &Spanned<RawLdap>,
    ) -> Result<(LdapSource, std::ops::Range<usize>), Invalid> {
        let source = raw.get_ref();
        let missing = |key: &str, what: &str| {
            Invalid::new(
                raw.span(),
                format!("this [[directory.ldap]] source has no {key}; {what}"),
            )
        };
        let name_value = source
            .name
            .as_ref()
            .ok_or_else(|| missing("name", "add name = \"NAME\" to tell sources apart in logs"))?;
        let name = check::label("an LDAP source name", name_value)?;
        let urls_value = source.urls.as_ref().ok_or_else(|| {
            missing(
                "urls",
                "add urls = [\"ldaps://ldap.example.com\"], tried in order",
            )
        })?;
        let urls = urls_value
            .get_ref()
            .iter()
            .map(url)
            .collect::<Result<Vec<_>, _>>()?;
        if urls.is_empty() || urls.len() > MAX_URLS {
            return Err(Invalid::new(
                urls_value.span(),
                format!("urls must list 1 to {MAX_URLS} servers"),
            ));
        }
        let tls = tls(source.tls.as_ref(), urls_value, &urls)?;
        let ca_file = match &source.ca_file {
            Some(v) if tls == LdapTls::None => {
                return Err(Invalid::new(
                    v.span(),
                    "ca_file is only used with tls = \"ldaps\" or \"starttls\"",
                ));
            }
            Some(v) => Some(check::absolute_path("ca_file", v)?),
            None => None,
        };
        let bind = bind(raw)?;
        let base_value = source
            .base
            .as_ref()
            .ok_or_else(|| missing("base", "add base = \"DN\", where users are searched"))?;
        let base = ldap_text("base", base_value)?;
        let filter_value = source.filter.as_ref().ok_or_else(|| {
            missing(
                "filter",
                "add filter = \"(uid={user})\" (Active Directory: \"(sAMAccountName={user})\")",
            )
        })?;
        let filter = filter(filter_value)?;
        let address_attribute = match &source.address_attribute {
            Some(v) => attribute("address_attribute", v)?,
            None => "mail".into(),
        };
        let language_attribute = match &source.language_attribute {
            Some(v) => attribute("language_attribute", v)?,
            None => "preferredLanguage".into(),
        };
        let phone_attribute = match &source.phone_attribute {
            Some(v) => attribute("phone_attribute", v)?,
            None => "mobile".into(),
        };
        let groups = groups(raw)?;
        let seconds = |key: &str, value: &Option<super::raw::Int>, min, max, default: u64| {
            value.as_ref().map_or(Ok(SECOND * default as u32), |v| {
                check::duration(key, v, min, max, SECOND)
            })
        };
        Ok((
            LdapSource {
                name,
                urls,
                tls,
                ca_file,
                bind,
                base,
                filter,
                address_attribute,
                language_attribute,
                phone_attribute,
                groups,
                connect_timeout: seconds(
                    "connect_timeout_seconds",
                    &source.connect_timeout_seconds,
                    1,
                    30,
                    2,
                )?,
                search_timeout: seconds(
                    "search_timeout_seconds",
                    &source.search_timeout_seconds,
                    1,
                    30,
                    3,
                )?,
                cache_ttl: seconds(
                    "cache_ttl_seconds",
                    &source.cache_ttl_seconds,
                    0,
                    86_400,
                    300,
                )?,
                negative_cache_ttl: seconds(
                    "negative_cache_ttl_seconds",
                    &source.negative_cache_ttl_seconds,
                    0,
                    86_400,
                    60,
                )?,
                cache_size: match &source.cache_size {
                    Some(v) => check::cap("cache_size", v, 1, 1_000_000)?,
                    None => 10_000,
                },
            },
            name_value.span(),
        ))
    }

    /// The user search filter for `user`, escaped per RFC 4515 ([`escape_filter_value`]).
    pub fn filter_for(&self, user: &str) -> String {
        self.filter
            .replace(USER_PLACEHOLDER, &escape_filter_value(user))
    }
}

/// `value` escaped for an RFC 4515 filter assertion: `*`, `(`, `)`, `\`, NUL and every byte
/// outside printable ASCII become `\xx`, so a user name can only ever match itself literally.
/// (ldap3's own `ldap_escape` leaves non-ASCII bytes as they are; this escapes them too, which
/// RFC 4515 allows and which keeps the filter plain ASCII in logs.)
pub fn escape_filter_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        let plain = byte.is_ascii_graphic() || byte == b' ';
        if plain && !matches!(byte, b'*' | b'(' | b')' | b'\\') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("\\{byte:02x}"));
        }
    }
    out
}

/// `ldaps://HOST[:PORT][/]` or `ldap://HOST[:PORT][/]`; IPv6 addresses in brackets.
fn url(value: &Text) -> Result<LdapUrl, Invalid> {
    let text = value.get_ref();
    let bad = |why: &str| {
        Invalid::new(
            value.span(),
            format!(
                "{text:?} is not an LDAP server URL ({why}); write ldaps://HOST or ldap://HOST, with :PORT if not the usual one"
            ),
        )
    };
    let (scheme, rest, default_port) = if let Some(rest) = text.strip_prefix("ldaps://") {
        ("ldaps", rest, 636)
    } else if let Some(rest) = text.strip_prefix("ldap://") {
        ("ldap", rest, 389)
    } else {
        return Err(bad("it must start with ldaps:// or ldap://"));
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let (host_text, port_text) = if let Some(bracketed) = rest.strip_prefix('[') {
        let (inside, after) = bracketed
            .split_once(']')
            .ok_or_else(|| bad("an unclosed ["))?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or_else(|| bad("junk after ]"))?),
        };
        (inside, port)
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        }
    };
    let port = match port_text {
        None => default_port,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| bad("the port must be 1 to 65535"))?,
    };
    let host_value = Spanned::new(value.span(), host_text.to_string());
    let host = host("the URL's host", &host_value).map_err(|_| bad("a bad host"))?;
    Ok(LdapUrl { scheme, host, port })
}

/// `tls`, defaulting from the URLs' scheme, which must agree with it for every URL.
fn tls(
    raw: Option<&Text>,
    urls_value: &Spanned<Vec<Text>>,
    urls: &[LdapUrl],
) -> Result<LdapTls, Invalid> {
    let first_scheme = urls.first().map_or("ldaps", |u| u.scheme);
    let (tls, span) = match raw {
        Some(v) => (
            match v.get_ref().as_str() {
                "ldaps" => LdapTls::Ldaps,
                "starttls" => LdapTls::Starttls,
                "none" => LdapTls::None,
                other => {
                    return Err(Invalid::new(
                        v.span(),
                        format!("tls must be \"ldaps\", \"starttls\" or \"none\", got {other:?}"),
                    ));
                }
            },
            v.span(),
        ),
        None if first_scheme == "ldaps" => (LdapTls::Ldaps, urls_value.span()),
        None => (LdapTls::Starttls, urls_value.span()),
    };
    let scheme = if tls == LdapTls::Ldaps {
        "ldaps"
    } else {
        "ldap"
    };
    if let Some(odd) = urls.iter().find(|u| u.scheme != scheme) {
        return Err(Invalid::new(
            span,
            format!(
                "tls = \"{}\" needs {scheme}:// URLs, but {} is {}://",
                tls.as_str(),
                odd.host,
                odd.scheme
            ),
        ));
    }
    if tls == LdapTls::None {
        if let Some(remote) = urls.iter().find(|u| !is_loopback(&u.host)) {
            return Err(Invalid::new(
                span,
                format!(
                    "tls = \"none\" would send the bind password and user names in clear text to {:?}; it is only allowed for loopback hosts (127.0.0.0/8, ::1, localhost). Use \"starttls\" or ldaps://",
                    remote.host
                ),
            ));
        }
    }
    Ok(tls)
}

/// `bind_dn` and `bind_password_file` come together or not at all (anonymous).
fn bind(raw: &Spanned<RawLdap>) -> Result<Option<LdapBind>, Invalid> {
    let source = raw.get_ref();
    match (&source.bind_dn, &source.bind_password_file) {
        (None, None) => Ok(None),
        (Some(dn), None) => Err(Invalid::new(
            dn.span(),
            "bind_dn needs bind_password_file = \"/PATH\", a file only otpd can read holding the password; passwords are never written in this file",
        )),
        (None, Some(file)) => Err(Invalid::new(
            file.span(),
            "bind_password_file needs bind_dn = \"DN\" as well",
        )),
        (Some(dn), Some(file)) => Ok(Some(LdapBind {
            dn: ldap_text("bind_dn", dn)?,
            password_file: check::absolute_path("bind_password_file", file)?,
        })),
    }
}

/// `group_search` (`"attribute"`, the default, `"posix"` or `"in_chain"`) and
/// `group_attribute`.
fn groups(raw: &Spanned<RawLdap>) -> Result<GroupSearch, Invalid> {
    let source = raw.get_ref();
    let search = match &source.group_search {
        None => None,
        Some(v) => match v.get_ref().as_str() {
            "attribute" => None,
            "posix" => Some(GroupSearch::Posix),
            "in_chain" => Some(GroupSearch::InChain),
            other => {
                return Err(Invalid::new(
                    v.span(),
                    format!(
                        "group_search must be \"attribute\", \"posix\" or \"in_chain\", got {other:?}"
                    ),
                ));
            }
        },
    };
    match (&source.group_attribute, search) {
        (Some(v), Some(_)) => Err(Invalid::new(
            v.span(),
            "group_attribute is only used with group_search = \"attribute\"",
        )),
        (Some(v), None) => Ok(GroupSearch::Attribute(attribute("group_attribute", v)?)),
        (None, None) => Ok(GroupSearch::Attribute("memberOf".into())),
        (None, Some(search)) => Ok(search),
    }
}

/// A filter with the user placeholder and balanced parentheses, so the name can never escape
/// the assertion it was put in.
fn filter(value: &Text) -> Result<String, Invalid> {
    let text = ldap_text("filter", value)?;
    let bad = |why: String| Invalid::new(value.span(), format!("filter {text:?} {why}"));
    if !text.contains(USER_PLACEHOLDER) {
        return Err(bad(format!(
            "has no {USER_PLACEHOLDER}; it must say where the user name goes, e.g. \"(uid={{user}})\""
        )));
    }
    if !text.starts_with('(') {
        return Err(bad("must start with '('".into()));
    }
    if text.replace(USER_PLACEHOLDER, "").contains(['{', '}']) {
        return Err(bad(format!(
            "has braces other than {USER_PLACEHOLDER}, the only placeholder"
        )));
    }
    let mut depth: i32 = 0;
    for c in text.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            _ => {}
        }
        if depth < 0 {
            return Err(bad("closes a parenthesis it never opened".into()));
        }
    }
    if depth != 0 {
        return Err(bad("leaves a parenthesis open".into()));
    }
    Ok(text)
}

/// An attribute name: a letter, then letters, digits and '-' (or a numeric OID).
pub(super) fn attribute(key: &str, value: &Text) -> Result<String, Invalid> {
    let name = value.get_ref();
    let descr = name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    let oid = name.starts_with(|c: char| c.is_ascii_digit())
        && name.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    if (descr || oid) && name.len() <= 64 {
        Ok(name.clone())
    } else {
        Err(Invalid::new(
            value.span(),
            format!(
                "{key} must be an attribute name (a letter, then letters, digits and '-'), got {name:?}"
            ),
        ))
    }
}

/// A non-empty DN or filter without control characters, at most [`MAX_LDAP_TEXT`] bytes.
fn ldap_text(key: &str, value: &Text) -> Result<String, Invalid> {
    let text = value.get_ref();
    if text.is_empty() || text.len() > MAX_LDAP_TEXT || text.chars().any(char::is_control) {
        return Err(Invalid::new(
            value.span(),
            format!(
                "{key} must be 1 to {MAX_LDAP_TEXT} bytes without control characters, got {text:?}"
            ),
        ));
    }
    Ok(text.clone())
}

#[cfg(test)]
mod tests;
