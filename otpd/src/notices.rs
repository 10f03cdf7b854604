//! The deliverer of the outbox: the notifications owed to users and the admin (queued by
//! [`crate::notify`]), sent from the store so that a mail outage or a restart delays them and
//! never drops them.
//!
//! Recovery codes are used when mail is down, so such a notice's first try often fails. A failed
//! notice stays queued and is tried again after [`FIRST_PAUSE`], doubling up to
//! [`LONGEST_PAUSE`], until a server accepts it or [`GIVE_UP_AFTER`] has passed since the code
//! was used: then it is dropped, with a warning naming the user, since a notice that arrives
//! days later tells the user nothing they can still act on. One task delivers, so a notice is
//! never sent twice by otpd itself; a crash between the server's acceptance and the row's
//! deletion sends it again at the next start, which errs on the side of telling.

use std::sync::Arc;
use std::time::Duration;

use common::config::EmailAddress;
use common::text::escape_for_log;

use crate::mail::message::NoticeMail;
use crate::mail::render::NoticeValues;
use crate::off_thread::{self, Lost};
use crate::state::Shared;
use crate::store::QueuedNotice;
use crate::webhook::NoticeText;

/// The pause after a notice's first failed try (seconds).
pub const FIRST_PAUSE: i64 = 60;
/// The longest pause between tries (seconds).
pub const LONGEST_PAUSE: i64 = 30 * 60;
/// How long after the event a notice is still worth sending (seconds).
pub const GIVE_UP_AFTER: i64 = 24 * 3600;
/// How long a deliverer holds the notices it took (seconds): far longer than sending them can
/// take (every channel's deadline is under two minutes), so no other host sends them meanwhile.
const LEASE: i64 = 10 * 60;
/// Notices taken from the store per round.
const BATCH: usize = 20;
/// How often the deliverer looks for due notices when nothing woke it.
const IDLE_LOOK: Duration = Duration::from_secs(30);

/// Delivers queued notices for as long as otpd runs: at start every notice a previous run left,
/// due or put off (a restart is often how an admin fixes mail); then whenever a login queues
/// one ([`Shared::notices_queued`]), and every [`IDLE_LOOK`] the ones due by then.
pub async fn deliver_forever(shared: Arc<Shared>) {
    let mut ids_seen = i64::MIN;
    loop {
        let taken = deliver(&shared, Some(i64::MAX), ids_seen).await;
        ids_seen = taken.last_id.unwrap_or(ids_seen);
        if taken.count < BATCH {
            break;
        }
    }
    loop {
        while deliver_due(&shared).await == BATCH {}
        tokio::select! {
            () = shared.notices_queued.notified() => {}
            () = tokio::time::sleep(IDLE_LOOK) => {}
        }
    }
}

/// Tries every notice due now, up to [`BATCH`]; returns how many it took.
pub async fn deliver_due(shared: &Arc<Shared>) -> usize {
    deliver(shared, None, i64::MIN).await.count
}

/// What one round took from the queue.
struct Taken {
    count: usize,
    last_id: Option<i64>,
}

/// Tries up to [`BATCH`] notices with an id above `after_id`, due by `until` (by now when
/// `None`).
async fn deliver(shared: &Arc<Shared>, until: Option<i64>, after_id: i64) -> Taken {
    let until = until.unwrap_or_else(|| shared.clock.now());
    let reading = Arc::clone(shared);
    // The notices taken are this deliverer's for a lease: another host's deliverer sharing
    // the store does not send them too.
    let lease_until = shared.clock.now().saturating_add(LEASE);
    let due = off_thread::run(move || {
        reading
            .store()
            .claim_notices(until, after_id, BATCH, lease_until)
    })
    .await;
    let due = match due {
        Ok(Ok(due)) => due,
        Err(Lost) => {
            return Taken {
                count: 0,
                last_id: None,
            };
        }
        Ok(Err(e)) => {
            tracing::error!(
                "cannot read the queued notices: {}",
                escape_for_log(&e.to_string())
            );
            return Taken {
                count: 0,
                last_id: None,
            };
        }
    };
    for notice in &due {
        let sent = send(shared, notice).await;
        let (settling, notice) = (Arc::clone(shared), notice.clone());
        // A lost settlement leaves the notice queued: it is tried again.
        let _ = off_thread::run(move || settle(&settling, &notice, sent)).await;
    }
    Taken {
        count: due.len(),
        last_id: due.iter().map(|n| n.id).max(),
    }
}

/// Sends one notice through the mailer in force, or its webhook channel; the error says why it
/// was not sent.
async fn send(shared: &Shared, notice: &QueuedNotice) -> Result<String, String> {
    let active = shared.active();
    let texts = active.config.notifications.texts(notice.kind);
    if let Some(channel) = &notice.channel {
        let Some(sender) = active.webhooks.iter().find(|w| w.name() == channel) else {
            return Err(format!("no webhook channel {channel} any more"));
        };
        let values = values_of(notice, active.mailer.host(), None);
        // The text of an SMS is the notification's subject: one line that says it all.
        let text = NoticeText {
            to: &notice.address,
            user: &notice.user,
            host: active.mailer.host(),
            message: values.render(&texts.subject),
        };
        return sender.send_notice(&text).await;
    }
    let to = EmailAddress::parse(&notice.address).map_err(|e| e.to_string())?;
    let values = values_of(notice, active.mailer.host(), Some(&to));
    let mail = NoticeMail {
        to: &to,
        texts: &texts,
        values: &values,
    };
    active
        .mailer
        .send_notice(&mail)
        .await
        .map_err(|failure| failure.to_string())
}

/// What `notice`'s templates can show, sent from `host` to `to` (none by phone).
fn values_of<'a>(
    notice: &'a QueuedNotice,
    host: &'a str,
    to: Option<&'a EmailAddress>,
) -> NoticeValues<'a> {
    NoticeValues {
        user: &notice.user,
        to,
        host,
        service: &notice.service,
        rhost: notice.rhost.as_deref(),
        when: notice.created_at,
        detail: &notice.detail,
    }
}

/// Closes a sent notice, or puts a failed one off (or closes it, given up, when it is too old).
fn settle(shared: &Shared, notice: &QueuedNotice, sent: Result<String, String>) {
    let now = shared.clock.now();
    let user = escape_for_log(&notice.user);
    let whom = if notice.to_admin {
        format!("the admin the notice ({}) of {user}", notice.kind.name())
    } else {
        format!("{user} the notice ({})", notice.kind.name())
    };
    let mut store = shared.store();
    let stored = match &sent {
        Ok(server) => {
            tracing::info!("mailed {whom} through {}", escape_for_log(server));
            store.close_notice(notice.id, now)
        }
        Err(why) => match next_try(notice, now) {
            Some(at) => {
                tracing::warn!(
                    "cannot mail {whom}, trying again in {} s: {}",
                    at - now,
                    escape_for_log(why)
                );
                store.put_off_notice(notice.id, at)
            }
            None => {
                tracing::warn!(
                    "gave up mailing {whom}, {} h after its event: {}",
                    (now - notice.created_at) / 3600,
                    escape_for_log(why)
                );
                store.close_notice(notice.id, now)
            }
        },
    };
    if let Err(e) = stored {
        tracing::error!(
            "cannot update the queued notice for {user}: {}",
            escape_for_log(&e.to_string())
        );
    }
}

/// When a notice that failed at `now` is tried next: [`FIRST_PAUSE`] after its first failure,
/// doubling per failure up to [`LONGEST_PAUSE`]; `None` once that is past [`GIVE_UP_AFTER`].
fn next_try(notice: &QueuedNotice, now: i64) -> Option<i64> {
    let doublings = notice.tries.min(16);
    let pause = FIRST_PAUSE
        .saturating_mul(1_i64 << doublings)
        .min(LONGEST_PAUSE);
    let at = now.saturating_add(pause);
    (at <= notice.created_at.saturating_add(GIVE_UP_AFTER)).then_some(at)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicI64, Ordering};

    use common::secret::SecretString;
    use common::wire::{Request, Response};

    use super::*;
    use crate::clock::Clock;
    use crate::mail::test_server::{Script, TestServer};
    use crate::test_support::caller;

    /// A clock the test moves by hand.
    #[derive(Debug)]
    struct HandClock(AtomicI64);

    impl Clock for HandClock {
        fn now(&self) -> i64 {
            self.0.load(Ordering::SeqCst)
        }
    }

    const T0: i64 = 1_800_000_000;

    /// otpd's state mailing through `port`, requiring a code of everyone, at a hand clock.
    fn shared_mailing_to(dir: &std::path::Path, port: u16, clock: &Arc<HandClock>) -> Arc<Shared> {
        let clock: Arc<dyn Clock> = Arc::clone(clock) as Arc<dyn Clock>;
        crate::test_support::shared_mailing_through(dir, port, clock)
    }

    use crate::test_support::alice;

    /// Logs alice in with a recovery code while the relay is down, as sshd (root) would.
    async fn use_a_recovery_code(shared: &Arc<Shared>) {
        let codes = shared
            .store()
            .new_recovery_codes("alice", shared.clock.now(), &mut rand::rng())
            .unwrap();
        let begin = Request::Begin {
            login: alice(),
            ssh_keys: Vec::new(),
        };
        let Response::Prompt { challenge, .. } =
            crate::dispatch::handle(shared, caller(0), begin).await
        else {
            panic!("no recovery prompt");
        };
        let answer = Request::Answer {
            login: alice(),
            challenge,
            code: SecretString::new(codes[0].expose().to_string()),
        };
        let answered = crate::dispatch::handle(shared, caller(0), answer).await;
        assert!(
            matches!(answered, Response::SuccessWithNotice { .. }),
            "{answered:?}"
        );
    }

    #[tokio::test]
    async fn a_notice_that_fails_while_mail_is_down_is_sent_by_the_next_otpd_once_mail_works() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(HandClock(AtomicI64::new(T0)));
        let down = shared_mailing_to(dir.path(), TestServer::dead_port().await, &clock);
        use_a_recovery_code(&down).await;
        assert_eq!(deliver_due(&down).await, 1);
        let queued = down
            .store()
            .due_notices(T0 + FIRST_PAUSE, i64::MIN, 10)
            .unwrap();
        assert_eq!((queued.len(), queued[0].tries), (1, 1));
        assert!(
            down.store()
                .due_notices(T0 + FIRST_PAUSE - 1, i64::MIN, 10)
                .unwrap()
                .is_empty()
        );
        drop(down);

        // otpd restarts with the relay back: the notice goes out, once.
        let relay = TestServer::start(Script::default()).await;
        clock.0.store(T0 + FIRST_PAUSE, Ordering::SeqCst);
        let up = shared_mailing_to(dir.path(), relay.port, &clock);
        assert_eq!(deliver_due(&up).await, 1);
        let messages = relay.messages();
        assert_eq!(messages.len(), 1);
        assert!(
            messages[0].contains("recovery codes are left"),
            "{}",
            messages[0]
        );
        assert_eq!(up.store().queued_notices().unwrap(), 0);
        assert_eq!(deliver_due(&up).await, 0);
        assert_eq!(relay.messages().len(), 1);
    }

    #[test]
    fn the_pauses_double_up_to_the_longest_and_the_notice_is_given_up_after_a_day() {
        let notice = |tries| QueuedNotice {
            id: 1,
            kind: common::config::NoticeKind::RecoveryUsed,
            user: "alice".into(),
            address: "alice@example.test".into(),
            channel: None,
            to_admin: false,
            service: "sshd".into(),
            rhost: None,
            detail: "9 recovery codes are left".into(),
            created_at: T0,
            tries,
        };
        assert_eq!(next_try(&notice(0), T0), Some(T0 + 60));
        assert_eq!(next_try(&notice(1), T0 + 60), Some(T0 + 180));
        assert_eq!(next_try(&notice(4), T0), Some(T0 + 960));
        assert_eq!(next_try(&notice(5), T0), Some(T0 + LONGEST_PAUSE));
        assert_eq!(next_try(&notice(40), T0), Some(T0 + LONGEST_PAUSE));
        let late = T0 + GIVE_UP_AFTER - LONGEST_PAUSE + 1;
        assert_eq!(next_try(&notice(9), late), None);
    }
}
