//! Where the SMTP sink leaves each message's code for the login waiting on it, keyed by
//! recipient: every benchmark loop logs in as its own user, so it waits on its own address and
//! never takes another loop's code.
//!
//! Each recipient has its own condition variable, so a delivery wakes only the login waiting for
//! that address. With one for all, every mail woke every waiting loop (15 of 16 for nothing at
//! 16 loops), and the harness's own wake-ups were counted as the login's CPU.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A message as the sink handed it over: the code it carried, or `None` when it had none.
pub type Delivered = Option<String>;

/// One recipient's messages, oldest first, and the signal that one arrived.
#[derive(Debug, Default)]
struct Inbox {
    messages: VecDeque<Delivered>,
    arrived: Arc<Condvar>,
}

/// Codes by recipient.
#[derive(Debug, Default)]
pub struct Mailbox {
    /// Keyed by the lower-cased address. Every inbox's condition variable waits on this mutex.
    inboxes: Mutex<HashMap<String, Inbox>>,
    /// Every message accepted, kept or not.
    delivered: AtomicU64,
    /// Messages without a code in them.
    without_code: AtomicU64,
    /// While false, messages are only counted: the bulk load mails 100,000 codes nobody reads.
    discard: AtomicBool,
}

impl Mailbox {
    /// An empty mailbox that keeps what it is given.
    pub fn new() -> Mailbox {
        Mailbox::default()
    }

    /// Leaves the code of one message for `recipient`.
    pub fn deliver(&self, recipient: &str, code: Delivered) {
        self.delivered.fetch_add(1, Ordering::Relaxed);
        if code.is_none() {
            self.without_code.fetch_add(1, Ordering::Relaxed);
        }
        if self.discard.load(Ordering::Relaxed) {
            return;
        }
        let mut inboxes = self.lock();
        let inbox = inboxes.entry(recipient.to_ascii_lowercase()).or_default();
        inbox.messages.push_back(code);
        inbox.arrived.notify_all();
    }

    /// Takes the oldest message for `recipient`, waiting up to `timeout` for one; `None` when
    /// none came.
    pub fn take(&self, recipient: &str, timeout: Duration) -> Option<Delivered> {
        let key = recipient.to_ascii_lowercase();
        let deadline = Instant::now() + timeout;
        let mut inboxes = self.lock();
        loop {
            let inbox = inboxes.entry(key.clone()).or_default();
            if let Some(found) = inbox.messages.pop_front() {
                return Some(found);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            let arrived = Arc::clone(&inbox.arrived);
            inboxes = match arrived.wait_timeout(inboxes, left) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    /// How many messages arrived so far.
    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    /// How many of them had no code.
    pub fn without_code(&self) -> u64 {
        self.without_code.load(Ordering::Relaxed)
    }

    /// How many messages are waiting, over all recipients.
    pub fn waiting(&self) -> usize {
        self.lock().values().map(|inbox| inbox.messages.len()).sum()
    }

    /// Only count messages from now on (`true`), or keep them again (`false`).
    pub fn set_discard(&self, discard: bool) {
        self.discard.store(discard, Ordering::Relaxed);
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Inbox>> {
        // A panic while holding the lock cannot leave a queue half-updated.
        match self.inboxes.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn each_recipient_gets_its_own_codes_in_order() {
        let mailbox = Mailbox::new();
        mailbox.deliver("a@example.test", Some("1".into()));
        mailbox.deliver("b@example.test", Some("2".into()));
        mailbox.deliver("A@Example.Test", Some("3".into()));
        let take = |who| mailbox.take(who, Duration::ZERO);
        assert_eq!(take("b@example.test"), Some(Some("2".into())));
        assert_eq!(take("a@example.test"), Some(Some("1".into())));
        assert_eq!(take("a@example.test"), Some(Some("3".into())));
        assert_eq!(take("a@example.test"), None);
        assert_eq!(mailbox.delivered(), 3);
    }

    #[test]
    fn a_waiting_login_wakes_when_its_mail_arrives() {
        let mailbox = Arc::new(Mailbox::new());
        let sender = Arc::clone(&mailbox);
        let thread = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            sender.deliver("late@example.test", Some("424242".into()));
        });
        let got = mailbox.take("late@example.test", Duration::from_secs(5));
        thread.join().unwrap();
        assert_eq!(got, Some(Some("424242".into())));
    }

    #[test]
    fn waiting_logins_each_get_the_mail_for_their_own_address() {
        let mailbox = Arc::new(Mailbox::new());
        let waiters: Vec<_> = ["x@example.test", "y@example.test"]
            .into_iter()
            .map(|who| {
                let mailbox = Arc::clone(&mailbox);
                std::thread::spawn(move || mailbox.take(who, Duration::from_secs(5)))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(50));
        mailbox.deliver("Y@example.test", Some("2".into()));
        mailbox.deliver("x@example.test", Some("1".into()));
        let got: Vec<_> = waiters.into_iter().map(|w| w.join().unwrap()).collect();
        assert_eq!(got, [Some(Some("1".into())), Some(Some("2".into()))]);
    }

    #[test]
    fn discarded_mail_is_counted_but_not_kept() {
        let mailbox = Mailbox::new();
        mailbox.set_discard(true);
        mailbox.deliver("a@example.test", None);
        assert_eq!((mailbox.delivered(), mailbox.without_code()), (1, 1));
        assert_eq!(mailbox.waiting(), 0);
    }
}
