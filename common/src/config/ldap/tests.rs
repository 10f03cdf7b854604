use std::path::Path;

use super::*;
use crate::config::Config;

/// A whole config with one `[[directory.ldap]]` source whose keys are `body`; the source's
/// first key is on line 4.
fn text(body: &str) -> String {
    format!(
        "[mail]\nfrom = \"otp@example.com\"\n[[directory.ldap]]\nname = \"corp\"\nbase = \"dc=example,dc=com\"\nfilter = \"(uid={{user}})\"\n{body}\n"
    )
}

fn source(body: &str) -> Result<LdapSource, crate::config::ConfigError> {
    Config::parse(&text(body), Path::new("/etc/otpd/otpd.toml"))
        .map(|c| c.directory.ldap.into_iter().next().unwrap())
}

fn refused(body: &str) -> String {
    source(body).unwrap_err().to_string()
}

#[test]
fn an_ldaps_source_takes_the_documented_defaults() {
    let s = source("urls = [\"ldaps://ldap.example.com\"]").unwrap();
    assert_eq!(s.tls, LdapTls::Ldaps);
    assert_eq!(s.urls[0].url(), "ldaps://ldap.example.com:636");
    assert_eq!(s.address_attribute, "mail");
    assert_eq!(s.language_attribute, "preferredLanguage");
    assert_eq!(s.phone_attribute, "mobile");
    assert_eq!(s.groups, GroupSearch::Attribute("memberOf".into()));
    assert_eq!((s.bind, s.ca_file), (None, None));
    assert_eq!(s.connect_timeout, Duration::from_secs(2));
    assert_eq!(s.search_timeout, Duration::from_secs(3));
    assert_eq!(s.cache_ttl, Duration::from_secs(300));
    assert_eq!(s.negative_cache_ttl, Duration::from_secs(60));
    assert_eq!(s.cache_size, 10_000);
}

#[test]
fn ldap_urls_use_starttls_unless_told_otherwise() {
    let s = source("urls = [\"ldap://a.example.com\", \"ldap://[2001:db8::1]:3389/\"]").unwrap();
    assert_eq!(s.tls, LdapTls::Starttls);
    assert_eq!(s.urls[0].url(), "ldap://a.example.com:389");
    assert_eq!(s.urls[1].url(), "ldap://[2001:db8::1]:3389");
}

#[test]
fn plain_ldap_is_only_for_loopback_servers() {
    let s =
        source("urls = [\"ldap://127.0.0.1:3389\", \"ldap://localhost\"]\ntls = \"none\"").unwrap();
    assert_eq!(s.tls, LdapTls::None);
    let e = refused("urls = [\"ldap://127.0.0.1\", \"ldap://ldap.example.com\"]\ntls = \"none\"");
    assert!(
        e.contains(":8:7: tls = \"none\" would send the bind password"),
        "{e}"
    );
    assert!(e.contains("only allowed for loopback"), "{e}");
}

#[test]
fn the_tls_mode_and_the_url_schemes_must_agree() {
    let e = refused("urls = [\"ldap://a.example.com\"]\ntls = \"ldaps\"");
    assert!(e.contains("needs ldaps:// URLs"), "{e}");
    let e = refused("urls = [\"ldaps://a.example.com\", \"ldap://b.example.com\"]");
    assert!(e.contains("tls = \"ldaps\" needs ldaps:// URLs"), "{e}");
    let e = refused("urls = [\"ldaps://a.example.com\"]\ntls = \"ssl\"");
    assert!(e.contains("tls must be"), "{e}");
}

#[test]
fn bad_urls_are_refused_at_their_line_and_column() {
    for bad in [
        "http://a.example.com",
        "ldaps://",
        "ldaps://a b",
        "ldaps://a.example.com:0",
        "ldaps://a.example.com:x",
        "ldaps://[::1",
        "ldaps://a.example.com/dc=x",
    ] {
        let e = refused(&format!("urls = [{bad:?}]"));
        assert!(e.contains(":7:9: "), "{bad}: {e}");
        assert!(e.contains("is not an LDAP server URL"), "{bad}: {e}");
    }
    assert!(refused("urls = []").contains("1 to 8 servers"));
}

#[test]
fn a_filter_needs_the_user_placeholder_and_balanced_parentheses() {
    let urls = "urls = [\"ldaps://a.example.com\"]\n";
    for (filter, why) in [
        ("(uid=alice)", "has no {user}"),
        ("uid={user}", "must start with '('"),
        ("(&(uid={user})", "leaves a parenthesis open"),
        ("(uid={user}))(", "closes a parenthesis it never opened"),
        ("(uid={name})", "has no {user}"),
        ("(&(uid={user})(cn={x}))", "braces other than"),
    ] {
        let body = format!("{urls}filter = {filter:?}");
        // Two `filter` keys would be a TOML error; build the text by hand instead.
        let config = format!(
            "[mail]\nfrom = \"otp@example.com\"\n[[directory.ldap]]\nname = \"corp\"\nbase = \"dc=example,dc=com\"\n{body}\n"
        );
        let e = Config::parse(&config, Path::new("/etc/otpd/otpd.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains(":7:10: filter "), "{filter}: {e}");
        assert!(e.contains(why), "{filter}: {e}");
    }
}

#[test]
fn a_bind_dn_needs_a_password_file_and_the_other_way_round() {
    let urls = "urls = [\"ldaps://a.example.com\"]\n";
    let s = source(&format!(
        "{urls}bind_dn = \"cn=otpd,dc=example,dc=com\"\nbind_password_file = \"/etc/otpd/ldap-password\""
    ))
    .unwrap();
    assert_eq!(
        s.bind,
        Some(LdapBind {
            dn: "cn=otpd,dc=example,dc=com".into(),
            password_file: PathBuf::from("/etc/otpd/ldap-password"),
        })
    );
    assert!(refused(&format!("{urls}bind_dn = \"cn=x\"")).contains("needs bind_password_file"));
    assert!(refused(&format!("{urls}bind_password_file = \"/p\"")).contains("needs bind_dn"));
    assert!(
        refused(&format!(
            "{urls}bind_dn = \"cn=x\"\nbind_password_file = \"p\""
        ))
        .contains("absolute path")
    );
}

#[test]
fn groups_come_from_an_attribute_or_a_posix_search() {
    let urls = "urls = [\"ldaps://a.example.com\"]\n";
    let s = source(&format!("{urls}group_search = \"posix\"")).unwrap();
    assert_eq!(s.groups, GroupSearch::Posix);
    let s = source(&format!("{urls}group_search = \"in_chain\"")).unwrap();
    assert_eq!(s.groups, GroupSearch::InChain);
    let s = source(&format!("{urls}group_attribute = \"isMemberOf\"")).unwrap();
    assert_eq!(s.groups, GroupSearch::Attribute("isMemberOf".into()));
    let e = refused(&format!(
        "{urls}group_search = \"posix\"\ngroup_attribute = \"memberOf\""
    ));
    assert!(
        e.contains("only used with group_search = \"attribute\""),
        "{e}"
    );
    assert!(refused(&format!("{urls}group_search = \"nested\"")).contains("group_search must be"));
    assert!(refused(&format!("{urls}address_attribute = \"ma il\"")).contains("attribute name"));
    assert!(refused(&format!("{urls}phone_attribute = \"mob ile\"")).contains("attribute name"));
}

#[test]
fn timeouts_and_the_cache_have_bounds() {
    let urls = "urls = [\"ldaps://a.example.com\"]\n";
    assert!(refused(&format!("{urls}connect_timeout_seconds = 0")).contains("between 1 and 30"));
    assert!(refused(&format!("{urls}search_timeout_seconds = 31")).contains("between 1 and 30"));
    assert!(refused(&format!("{urls}cache_size = 0")).contains("0 does not mean unlimited"));
    let s = source(&format!(
        "{urls}cache_ttl_seconds = 0\nnegative_cache_ttl_seconds = 5"
    ))
    .unwrap();
    assert_eq!(
        (s.cache_ttl, s.negative_cache_ttl),
        (Duration::ZERO, Duration::from_secs(5))
    );
}

#[test]
fn source_names_are_unique_and_unknown_keys_refused() {
    let one = "[[directory.ldap]]\nname = \"corp\"\nurls = [\"ldaps://a.example.com\"]\nbase = \"dc=x\"\nfilter = \"(uid={user})\"\n";
    let config = format!("[mail]\nfrom = \"otp@example.com\"\n{one}{one}");
    let e = Config::parse(&config, Path::new("/o.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(":9:8: a second LDAP source is named \"corp\""),
        "{e}"
    );
    assert!(
        refused("urls = [\"ldaps://a.example.com\"]\nbind_password = \"x\"")
            .contains("unknown field")
    );
}

#[test]
fn user_names_are_escaped_per_rfc_4515() {
    assert_eq!(escape_filter_value("alice"), "alice");
    assert_eq!(escape_filter_value("a*"), "a\\2a");
    assert_eq!(escape_filter_value("(x)"), "\\28x\\29");
    assert_eq!(escape_filter_value("a\\b"), "a\\5cb");
    assert_eq!(escape_filter_value("a\0b"), "a\\00b");
    assert_eq!(escape_filter_value("é"), "\\c3\\a9");
    assert_eq!(escape_filter_value("a b.c-d@e"), "a b.c-d@e");
    let s = source("urls = [\"ldaps://a.example.com\"]").unwrap();
    assert_eq!(s.filter_for("*)(uid=*"), "(uid=\\2a\\29\\28uid=\\2a)");
}

#[test]
fn match_attribute_without_an_ldap_source_is_refused_at_its_table() {
    let text = "[profiles.ops]\nmode = \"off\"\n[[policies]]\nmatch_attribute = { department = \"Ops*\" }\nprofile = \"ops\"\n[mail]\nfrom = \"otp@example.com\"\n";
    let e = Config::parse(text, Path::new("/o.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("/o.toml:4:19: match_attribute needs a [[directory.ldap]] source"),
        "{e}"
    );
    let with_source = format!(
        "{text}[[directory.ldap]]\nname = \"corp\"\nurls = [\"ldaps://a.example.com\"]\nbase = \"dc=x\"\nfilter = \"(uid={{user}})\"\n"
    );
    Config::parse(&with_source, Path::new("/o.toml")).unwrap();
}
