//! What LDAP sources said of users, kept for a while: a login whose user was looked up a moment
//! ago costs no network round trip, and a login while every server is down is still served until
//! the entry's time is up (then it fails closed). Bounded, so a flood of made-up user names
//! cannot grow otpd without limit.

use std::collections::HashMap;
use std::time::Duration;

use common::config::Attributes;

/// One source's answer about one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// The user's entry was found.
    Found {
        /// The address attribute's first value, if the entry had one.
        address: Option<String>,
        /// The user's groups; `None` when they were not asked for, so a later login that needs
        /// them asks the server.
        groups: Option<Vec<String>>,
        /// The attributes policies match (always read with the entry), lower-case names.
        attributes: Attributes,
        /// The language attribute's first value, if the entry had one.
        language: Option<String>,
        /// The phone attribute's first value, if the entry had one (unchecked).
        phone: Option<String>,
    },
    /// No entry matched the filter.
    Absent,
}

/// Entries by user name, each with the time it was stored.
#[derive(Debug)]
pub struct Cache {
    /// How long a [`Entry::Found`] serves.
    ttl: i64,
    /// How long an [`Entry::Absent`] serves.
    negative_ttl: i64,
    /// Users kept at most.
    capacity: usize,
    entries: HashMap<String, (Entry, i64)>,
}

impl Cache {
    /// An empty cache; a TTL of zero keeps nothing of that kind.
    pub fn new(ttl: Duration, negative_ttl: Duration, capacity: usize) -> Cache {
        let seconds = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        Cache {
            ttl: seconds(ttl),
            negative_ttl: seconds(negative_ttl),
            capacity: capacity.max(1),
            entries: HashMap::new(),
        }
    }

    /// The entry for `user` stored less than its TTL before `now`.
    pub fn get(&self, user: &str, now: i64) -> Option<&Entry> {
        self.entries
            .get(user)
            .filter(|(entry, stored)| now.saturating_sub(*stored) < self.ttl_of(entry))
            .map(|(entry, _)| entry)
    }

    /// The last answer about `user` still held, however old, with when it was stored: what a
    /// profile with `directory_down = "last_known"` may be served while every server is down.
    pub fn last_known(&self, user: &str) -> Option<(&Entry, i64)> {
        self.entries
            .get(user)
            .map(|(entry, stored)| (entry, *stored))
    }

    /// Keeps `entry` for `user` from `now`. When full, expired entries go first, then the
    /// oldest one.
    pub fn put(&mut self, user: &str, entry: Entry, now: i64) {
        if self.ttl_of(&entry) == 0 {
            self.entries.remove(user);
            return;
        }
        if !self.entries.contains_key(user) && self.entries.len() >= self.capacity {
            let (ttl, negative_ttl) = (self.ttl, self.negative_ttl);
            self.entries.retain(|_, (entry, stored)| {
                let ttl = if matches!(entry, Entry::Absent) {
                    negative_ttl
                } else {
                    ttl
                };
                now.saturating_sub(*stored) < ttl
            });
            if self.entries.len() >= self.capacity {
                let oldest = self
                    .entries
                    .iter()
                    .min_by_key(|(_, (_, stored))| *stored)
                    .map(|(name, _)| name.clone());
                if let Some(oldest) = oldest {
                    self.entries.remove(&oldest);
                }
            }
        }
        self.entries.insert(user.to_string(), (entry, now));
    }

    /// Users held now, for tests of the bound.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn ttl_of(&self, entry: &Entry) -> i64 {
        match entry {
            Entry::Found { .. } => self.ttl,
            Entry::Absent => self.negative_ttl,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(address: &str) -> Entry {
        Entry::Found {
            address: Some(address.into()),
            groups: None,
            attributes: Attributes::new(),
            language: None,
            phone: None,
        }
    }

    fn cache() -> Cache {
        Cache::new(Duration::from_secs(300), Duration::from_secs(60), 2)
    }

    #[test]
    fn a_found_user_serves_for_the_ttl_and_an_absent_one_for_the_negative_ttl() {
        let mut cache = cache();
        cache.put("alice", found("a@example.com"), 1000);
        cache.put("ghost", Entry::Absent, 1000);
        assert_eq!(cache.get("alice", 1299), Some(&found("a@example.com")));
        assert_eq!(cache.get("alice", 1300), None);
        assert_eq!(cache.get("ghost", 1059), Some(&Entry::Absent));
        assert_eq!(cache.get("ghost", 1060), None);
        assert_eq!(cache.get("bob", 1000), None);
    }

    #[test]
    fn the_last_known_answer_outlives_its_ttl_until_it_is_evicted() {
        let mut cache = cache();
        cache.put("alice", found("a@example.com"), 1000);
        assert_eq!(cache.get("alice", 5000), None);
        assert_eq!(
            cache.last_known("alice"),
            Some((&found("a@example.com"), 1000))
        );
        assert_eq!(cache.last_known("bob"), None);
    }

    #[test]
    fn the_cache_holds_at_most_its_size_dropping_the_expired_then_the_oldest() {
        let mut cache = cache();
        cache.put("ghost", Entry::Absent, 1000);
        cache.put("alice", found("a@example.com"), 1050);
        // ghost expired at 1060: it makes room, alice stays.
        cache.put("bob", found("b@example.com"), 1070);
        assert_eq!(cache.len(), 2);
        assert!(cache.get("alice", 1070).is_some());
        // Nothing expired: the oldest (alice) makes room.
        cache.put("carol", found("c@example.com"), 1080);
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get("alice", 1080), None);
        assert!(cache.get("bob", 1080).is_some() && cache.get("carol", 1080).is_some());
    }

    #[test]
    fn a_zero_ttl_keeps_nothing() {
        let mut cache = Cache::new(Duration::ZERO, Duration::ZERO, 10);
        cache.put("alice", found("a@example.com"), 1000);
        cache.put("ghost", Entry::Absent, 1000);
        assert!(cache.is_empty());
        assert_eq!(cache.get("alice", 1000), None);
    }
}
