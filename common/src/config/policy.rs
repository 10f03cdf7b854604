//! `[[policies]]`: which profile applies to a login, decided by user, group, protocol and (only
//! for remote hosts otpd believes) the remote host's network.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use regex::{Regex, RegexBuilder};
use toml::Spanned;

use super::check;
use super::error::Invalid;
use super::glob;
use super::network::{self, Network};
use super::raw::{RawPolicy, Text};
use super::settings::Settings;
use crate::service::Protocol;

/// A user's directory attributes: lower-case names to their values.
pub type Attributes = BTreeMap<String, Vec<String>>;

/// Compiled size cap for a `match_user_regex`, well above any sane pattern; stops a pasted
/// monster from costing memory on every reload.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// One policy: when every matcher it has agrees, its profile applies. A policy without
/// matchers matches every login (a catch-all at the end of the list).
#[derive(Debug, Clone)]
pub struct Policy {
    user: Option<UserMatcher>,
    group: Option<String>,
    protocols: Option<BTreeSet<Protocol>>,
    /// `match_rhost`: the believed remote host must lie in one of these networks.
    rhost: Option<Vec<Network>>,
    /// `match_attribute`: for each directory attribute (its name in lower case), a glob that
    /// one of the user's values must match whole.
    attributes: Vec<(String, Regex)>,
    /// The name of the `[profiles.NAME]` this policy selects.
    pub profile: String,
    /// That profile's settings, resolved at load time so a match can never miss its profile.
    settings: Settings,
}

/// How a policy matches the user name; both forms match the whole name.
#[derive(Debug, Clone)]
enum UserMatcher {
    /// `match_user`, compiled from a glob.
    Glob(Regex),
    /// `match_user_regex`, wrapped in `^(?:...)$`.
    Regex(Regex),
}

impl Policy {
    /// True when this policy applies to `user`, a member of `groups`, logging in by `protocol`
    /// from no known remote host (so a policy with `match_rhost` does not).
    pub fn matches(&self, user: &str, groups: &[String], protocol: Protocol) -> bool {
        self.matches_login(user, groups, protocol, None)
    }

    /// [`Policy::matches`] for a login from `rhost`, the remote host otpd believes (`None` when
    /// there is none or its caller may not vouch for one).
    pub fn matches_login(
        &self,
        user: &str,
        groups: &[String],
        protocol: Protocol,
        rhost: Option<IpAddr>,
    ) -> bool {
        self.matches_with_attributes(user, groups, &Attributes::new(), protocol, rhost)
    }

    /// [`Policy::matches_login`] for a user whose directory attributes are `attributes` (names
    /// in lower case). A policy with `match_attribute` matches only when every attribute it
    /// names has a value its glob matches; without the attributes (no directory asked), never.
    pub fn matches_with_attributes(
        &self,
        user: &str,
        groups: &[String],
        attributes: &Attributes,
        protocol: Protocol,
        rhost: Option<IpAddr>,
    ) -> bool {
        let rhost_ok = match (&self.rhost, rhost) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(networks), Some(ip)) => networks.iter().any(|n| n.contains(ip)),
        };
        let attributes_ok = self.attributes.iter().all(|(name, glob)| {
            attributes
                .get(name)
                .is_some_and(|values| values.iter().any(|v| glob.is_match(v)))
        });
        rhost_ok && attributes_ok && self.matches_account(user, groups, protocol)
    }

    /// The directory attributes this policy matches (names in lower case).
    pub fn attribute_names(&self) -> impl Iterator<Item = &str> {
        self.attributes.iter().map(|(name, _)| name.as_str())
    }

    /// The matchers other than `match_rhost`.
    fn matches_account(&self, user: &str, groups: &[String], protocol: Protocol) -> bool {
        let user_ok = match &self.user {
            None => true,
            Some(UserMatcher::Glob(re) | UserMatcher::Regex(re)) => re.is_match(user),
        };
        let group_ok = self
            .group
            .as_ref()
            .is_none_or(|wanted| groups.iter().any(|g| g == wanted));
        let protocol_ok = self
            .protocols
            .as_ref()
            .is_none_or(|set| set.contains(&protocol));
        user_ok && group_ok && protocol_ok
    }

    /// True when the policy looks at groups, which costs a directory lookup to answer.
    pub fn needs_groups(&self) -> bool {
        self.group.is_some()
    }

    /// `match_rhost`'s networks, if the policy has them (for `otpctl doctor`).
    pub fn rhost_networks(&self) -> &[Network] {
        self.rhost.as_deref().unwrap_or(&[])
    }

    /// The settings of [`Policy::profile`].
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Checks one `[[policies]]` entry against the already validated profiles.
    pub(super) fn from_raw(
        raw: &Spanned<RawPolicy>,
        profiles: &BTreeMap<String, Settings>,
    ) -> Result<Policy, Invalid> {
        let policy = raw.get_ref();
        let user = match (&policy.match_user, &policy.match_user_regex) {
            (Some(_), Some(regex)) => {
                return Err(Invalid::new(
                    regex.span(),
                    "a policy may have match_user or match_user_regex, not both",
                ));
            }
            (Some(glob), None) => Some(UserMatcher::Glob(user_glob(glob)?)),
            (None, Some(regex)) => Some(UserMatcher::Regex(user_regex(regex)?)),
            (None, None) => None,
        };
        let group = policy
            .match_group
            .as_ref()
            .map(|g| check::account_name("match_group", g.get_ref(), g.span()))
            .transpose()?;
        let protocols = policy
            .match_protocol
            .as_ref()
            .map(protocol_set)
            .transpose()?;
        let rhost = policy
            .match_rhost
            .as_ref()
            .map(network::networks)
            .transpose()?;
        let mut attributes = policy
            .match_attribute
            .as_ref()
            .map(|table| attribute_matchers(table, Pattern::Glob))
            .transpose()?
            .unwrap_or_default();
        if let Some(table) = &policy.match_attribute_regex {
            attributes.extend(attribute_matchers(table, Pattern::Regex)?);
        }
        let Some(profile) = &policy.profile else {
            return Err(Invalid::new(
                raw.span(),
                "this policy has no profile; add profile = \"NAME\" naming a [profiles.NAME] section",
            ));
        };
        let Some(settings) = profiles.get(profile.get_ref()) else {
            return Err(unknown_profile(profile, profiles));
        };
        Ok(Policy {
            user,
            group,
            protocols,
            rhost,
            attributes,
            profile: profile.get_ref().clone(),
            settings: settings.clone(),
        })
    }
}

/// How a `match_attribute*` table writes its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pattern {
    /// `match_attribute`: a glob each, as `match_user` has.
    Glob,
    /// `match_attribute_regex`: a regex each that must match a whole value, as
    /// `match_user_regex` has.
    Regex,
}

/// `match_attribute` and `match_attribute_regex`: attribute names (kept in lower case: LDAP
/// names are case-insensitive) with a pattern each.
fn attribute_matchers(
    table: &Spanned<BTreeMap<Text, Text>>,
    pattern: Pattern,
) -> Result<Vec<(String, Regex)>, Invalid> {
    let key = match pattern {
        Pattern::Glob => "match_attribute",
        Pattern::Regex => "match_attribute_regex",
    };
    if table.get_ref().is_empty() {
        return Err(Invalid::new(
            table.span(),
            format!(
                "{key} is empty; name attributes, e.g. {{ department = \"Ops*\" }}, or leave it out"
            ),
        ));
    }
    table
        .get_ref()
        .iter()
        .map(|(name, value)| {
            let name = super::ldap::attribute(&format!("a {key} name"), name)?;
            let compiled = match pattern {
                Pattern::Glob => glob::compile(value.get_ref()).map_err(|why| {
                    Invalid::new(
                        value.span(),
                        format!("match_attribute {name} is not a valid glob: {why}"),
                    )
                })?,
                Pattern::Regex => whole_regex(value, &format!("match_attribute_regex {name}"))?,
            };
            Ok((name.to_ascii_lowercase(), compiled))
        })
        .collect()
}

fn user_glob(value: &Text) -> Result<Regex, Invalid> {
    glob::compile(value.get_ref()).map_err(|why| {
        Invalid::new(
            value.span(),
            format!("match_user is not a valid glob: {why}"),
        )
    })
}

/// The admin's `match_user_regex`, which must match the whole name.
fn user_regex(value: &Text) -> Result<Regex, Invalid> {
    whole_regex(value, "match_user_regex")
}

/// The admin's regex under `key`, which must match a whole value. It is compiled alone first: a
/// pattern such as `a)|(b` would otherwise slip out of the anchoring group.
fn whole_regex(value: &Text, key: &str) -> Result<Regex, Invalid> {
    let build = |pattern: &str| {
        RegexBuilder::new(pattern)
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
    };
    let fail = |error: regex::Error| {
        Invalid::new(
            value.span(),
            format!(
                "{key} is not a valid regular expression: {}",
                regex_problem(&error)
            ),
        )
    };
    build(value.get_ref()).map_err(fail)?;
    build(&format!("^(?:{})$", value.get_ref())).map_err(fail)
}

/// The one-line reason out of the regex crate's multi-line error.
fn regex_problem(error: &regex::Error) -> String {
    let text = error.to_string();
    text.lines()
        .rev()
        .find_map(|line| line.trim().strip_prefix("error: "))
        .map(str::to_string)
        .unwrap_or_else(|| text.split_whitespace().collect::<Vec<_>>().join(" "))
}

fn protocol_set(list: &Spanned<Vec<Text>>) -> Result<BTreeSet<Protocol>, Invalid> {
    if list.get_ref().is_empty() {
        return Err(Invalid::new(
            list.span(),
            "match_protocol is empty and would match nothing; list protocols, or leave it out to match every protocol",
        ));
    }
    list.get_ref().iter().map(check::protocol).collect()
}

fn unknown_profile(name: &Text, profiles: &BTreeMap<String, Settings>) -> Invalid {
    let known = if profiles.is_empty() {
        "no profiles are defined".to_string()
    } else {
        let names: Vec<&str> = profiles.keys().map(String::as_str).collect();
        format!("the profiles are {}", names.join(", "))
    };
    Invalid::new(
        name.span(),
        format!(
            "unknown profile {:?}: there is no [profiles.{}] section; {known}",
            name.get_ref(),
            name.get_ref()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(text: &str) -> Result<Policy, Invalid> {
        #[derive(serde::Deserialize)]
        struct W {
            p: Spanned<RawPolicy>,
        }
        let raw: W = toml::from_str(&format!("[p]\n{text}")).unwrap();
        let profiles = BTreeMap::from([("admins".to_string(), Settings::default())]);
        Policy::from_raw(&raw.p, &profiles)
    }

    fn groups(names: &[&str]) -> Vec<String> {
        names.iter().map(|g| g.to_string()).collect()
    }

    #[test]
    fn all_matchers_must_agree() {
        let p = policy(
            "match_user = \"adm-*\"\nmatch_group = \"wheel\"\nmatch_protocol = [\"ssh\", \"sftp\"]\nprofile = \"admins\"",
        )
        .unwrap();
        let wheel = groups(&["users", "wheel"]);
        assert!(p.matches("adm-1", &wheel, Protocol::Ssh));
        assert!(p.matches("adm-1", &wheel, Protocol::Sftp));
        assert!(!p.matches("bob", &wheel, Protocol::Ssh));
        assert!(!p.matches("adm-1", &groups(&["users"]), Protocol::Ssh));
        assert!(!p.matches("adm-1", &wheel, Protocol::Ftp));
        assert!(p.needs_groups());
    }

    #[test]
    fn match_attribute_regex_matches_whole_values_and_adds_to_the_globs() {
        let p = policy(
            "match_attribute = { title = \"*Admin\" }\n\
             match_attribute_regex = { departmentNumber = \"Ops-[0-9]+\" }\nprofile = \"admins\"",
        )
        .unwrap();
        let attributes = |department: &str| -> Attributes {
            [
                ("departmentnumber".to_string(), vec![department.to_string()]),
                ("title".to_string(), vec!["Unix Admin".to_string()]),
            ]
            .into_iter()
            .collect()
        };
        assert!(p.matches_with_attributes("a", &[], &attributes("Ops-12"), Protocol::Ssh, None));
        // The whole value, not a part of it.
        assert!(!p.matches_with_attributes(
            "a",
            &[],
            &attributes("DevOps-12"),
            Protocol::Ssh,
            None
        ));
        assert!(!p.matches_with_attributes("a", &[], &attributes("Ops-12b"), Protocol::Ssh, None));
        let e = policy("match_attribute_regex = { title = \"a)|(b\" }\nprofile = \"admins\"")
            .unwrap_err();
        assert!(
            e.message
                .starts_with("match_attribute_regex title is not a valid regular expression"),
            "{}",
            e.message
        );
    }

    #[test]
    fn match_attribute_needs_every_named_attribute_to_have_a_matching_value() {
        let p = policy(
            "match_attribute = { departmentNumber = \"Ops*\", title = \"*Admin\" }\nprofile = \"admins\"",
        )
        .unwrap();
        let names: Vec<&str> = p.attribute_names().collect();
        assert_eq!(names, ["departmentnumber", "title"]);
        let attributes = |pairs: &[(&str, &[&str])]| -> Attributes {
            pairs
                .iter()
                .map(|(k, vs)| (k.to_string(), vs.iter().map(|v| v.to_string()).collect()))
                .collect()
        };
        let ops_admin = attributes(&[
            ("departmentnumber", &["Sales", "Ops-1"]),
            ("title", &["Unix Admin"]),
        ]);
        assert!(p.matches_with_attributes("alice", &[], &ops_admin, Protocol::Ssh, None));
        let ops_only = attributes(&[("departmentnumber", &["Ops-1"])]);
        assert!(!p.matches_with_attributes("alice", &[], &ops_only, Protocol::Ssh, None));
        let devops = attributes(&[("departmentnumber", &["DevOps"]), ("title", &["Admin"])]);
        assert!(!p.matches_with_attributes("alice", &[], &devops, Protocol::Ssh, None));
        // Without the directory's attributes such a policy never matches.
        assert!(!p.matches("alice", &[], Protocol::Ssh));
    }

    #[test]
    fn match_attribute_names_and_globs_are_checked() {
        let e = policy("match_attribute = {}\nprofile = \"admins\"").unwrap_err();
        assert!(
            e.message.contains("match_attribute is empty"),
            "{}",
            e.message
        );
        let e =
            policy("match_attribute = { \"dep t\" = \"x\" }\nprofile = \"admins\"").unwrap_err();
        assert!(e.message.contains("attribute name"), "{}", e.message);
    }

    #[test]
    fn a_policy_without_matchers_matches_everything() {
        let p = policy("profile = \"admins\"").unwrap();
        assert!(p.matches("anyone", &[], Protocol::Console));
        assert!(!p.needs_groups());
    }

    #[test]
    fn a_user_regex_matches_the_whole_name_only() {
        let p = policy("match_user_regex = \"adm-[0-9]+\"\nprofile = \"admins\"").unwrap();
        assert!(p.matches("adm-42", &[], Protocol::Ssh));
        assert!(!p.matches("xadm-42", &[], Protocol::Ssh));
        assert!(!p.matches("adm-42x", &[], Protocol::Ssh));
        let p = policy("match_user_regex = \"a|b\"\nprofile = \"admins\"").unwrap();
        assert!(!p.matches("ab", &[], Protocol::Ssh));
    }

    #[test]
    fn a_regex_cannot_break_out_of_its_anchors() {
        let e = policy("match_user_regex = \"x)|(.*\"\nprofile = \"admins\"").unwrap_err();
        assert!(
            e.message
                .starts_with("match_user_regex is not a valid regular expression: "),
            "{}",
            e.message
        );
        assert!(!e.message.contains('\n'));
    }

    #[test]
    fn unknown_profile_names_the_ones_that_exist() {
        let e = policy("profile = \"admin\"").unwrap_err();
        assert_eq!(
            e.message,
            "unknown profile \"admin\": there is no [profiles.admin] section; the profiles are admins"
        );
    }

    #[test]
    fn a_missing_profile_points_at_the_policy() {
        let e = policy("match_user = \"a\"").unwrap_err();
        assert_eq!(e.span.start, 0);
        assert!(e.message.contains("has no profile"));
    }

    #[test]
    fn an_empty_protocol_list_is_refused() {
        let e = policy("match_protocol = []\nprofile = \"admins\"").unwrap_err();
        assert!(e.message.contains("would match nothing"));
    }

    #[test]
    fn match_rhost_matches_only_a_remote_host_inside_its_networks() {
        let p = policy("match_rhost = [\"10.0.0.0/8\", \"fd00:1::/48\"]\nprofile = \"admins\"")
            .unwrap();
        let ip = |t: &str| Some(t.parse().unwrap());
        assert!(p.matches_login("bob", &[], Protocol::Ssh, ip("10.9.8.7")));
        assert!(p.matches_login("bob", &[], Protocol::Ssh, ip("fd00:1::5")));
        assert!(!p.matches_login("bob", &[], Protocol::Ssh, ip("192.0.2.1")));
        assert!(
            !p.matches_login("bob", &[], Protocol::Ssh, None),
            "no believed remote host matches no network"
        );
        assert!(!p.matches("bob", &[], Protocol::Ssh));
        assert_eq!(p.rhost_networks().len(), 2);
    }

    #[test]
    fn match_rhost_names_the_bad_network() {
        let e = policy("match_rhost = [\"10.0.0.0/8\", \"10.0.0.0/40\"]\nprofile = \"admins\"")
            .unwrap_err();
        assert!(e.message.starts_with("match_rhost: "), "{}", e.message);
        let e = policy("match_rhost = []\nprofile = \"admins\"").unwrap_err();
        assert!(e.message.contains("would match nothing"), "{}", e.message);
    }
}
