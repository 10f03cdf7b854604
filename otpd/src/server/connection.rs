//! One admitted connection: read its request within the deadline, answer it, close.
//!
//! One request per connection is what every client sends (the module, otpctl). Closing right
//! after the answer, instead of waiting for the client to close, spares both sides a wake-up:
//! otpd is not woken for the client's close, and the client's close wakes nobody.
//!
//! A malformed, oversized or unknown request gets an error reply and the connection is closed;
//! the daemon keeps serving everyone else.

use std::sync::Arc;
use std::time::Duration;

use common::frame::{self, FrameError, HEADER_LEN};
use common::wire::{Request, Response};
use tokio::io::AsyncReadExt;
use tokio::net::UnixStream;
use tracing::Instrument;
use zeroize::Zeroizing;

use crate::caller::Caller;
use crate::dispatch;
use crate::framing::write_frame;
use crate::peer_lines::PeerTrouble;
use crate::state::Shared;

/// Logs a peer's `trouble`. Its rate accounting is a store transaction, so it runs off the
/// runtime's thread.
async fn log_peer(shared: &Arc<Shared>, uid: u32, trouble: PeerTrouble, detail: String) {
    let shared = Arc::clone(shared);
    let _ = crate::off_thread::run(move || crate::peer_lines::log(&shared, uid, trouble, &detail))
        .await;
}

/// Reads one request from an admitted connection, answers it and closes.
pub(super) async fn serve(mut stream: UnixStream, caller: Caller, shared: Arc<Shared>) {
    let span = tracing::info_span!("conn", uid = caller.uid);
    async move {
        let timeout = shared.active().config.daemon.request_timeout;
        let request = match Received::new().request(&mut stream, timeout).await {
            Ok(Some(request)) => request,
            Ok(None) => return,
            Err(error) => {
                log_peer(
                    &shared,
                    caller.uid,
                    PeerTrouble::BadRequest,
                    error.to_string(),
                )
                .await;
                let reply = Response::Error {
                    message: error.to_string(),
                };
                let _ = write_frame(&mut stream, &reply, timeout).await;
                return;
            }
        };
        let response = dispatch::handle(&shared, caller, request).await;
        if let Err(e) = write_frame(&mut stream, &response, timeout).await {
            log_peer(&shared, caller.uid, PeerTrouble::LeftEarly, e.to_string()).await;
        }
    }
    .instrument(span)
    .await;
}

/// Why a request could not be read.
#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("request not complete within {0:?}")]
    Timeout(Duration),
}

/// The bytes of a connection's request: usually all of it in one read, header and body
/// together.
struct Received {
    bytes: Zeroizing<Vec<u8>>,
}

/// Room a connection's buffer starts with: every login request fits.
const FIRST_READ: usize = 4096;

impl Received {
    fn new() -> Received {
        Received {
            bytes: Zeroizing::new(Vec::with_capacity(FIRST_READ)),
        }
    }

    /// Makes room for the whole frame whose header is at the front, if it is larger than the
    /// buffer: a new buffer of the exact size, the old one wiped as it is dropped, so no copy
    /// of a request (which may carry a code) is left behind by a reallocation.
    fn make_room(&mut self) -> Result<(), FrameError> {
        let Some(header) = self.bytes.first_chunk::<HEADER_LEN>() else {
            return Ok(());
        };
        let needed = HEADER_LEN + frame::parse_header(header)?;
        if needed > self.bytes.capacity() {
            let mut larger = Zeroizing::new(Vec::with_capacity(needed));
            larger.extend_from_slice(&self.bytes);
            self.bytes = larger;
        }
        Ok(())
    }

    /// Reads the request; `Ok(None)` when the client closed without sending anything.
    async fn request(
        &mut self,
        stream: &mut UnixStream,
        timeout: Duration,
    ) -> Result<Option<Request>, ReadError> {
        let work = async {
            loop {
                if let Some((request, _)) = frame::try_decode(&self.bytes)? {
                    return Ok(Some(request));
                }
                // With room for the frame at the front (its length is capped by the header
                // check), reading never makes the buffer grow by itself.
                self.make_room()?;
                let read = stream
                    .read_buf(&mut *self.bytes)
                    .await
                    .map_err(FrameError::Io)?;
                if read == 0 {
                    return if self.bytes.is_empty() {
                        Ok(None)
                    } else {
                        Err(FrameError::Closed)
                    };
                }
            }
        };
        match tokio::time::timeout(timeout, work).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(ReadError::Timeout(timeout)),
        }
    }
}

/// Answers a connection refused at accept time with `message` and closes it, without a task, a
/// timer or a wait: one non-blocking write into the new socket's empty buffer. A client that
/// already sent its request still reads the answer before it sees the close.
pub(super) fn refuse(stream: &UnixStream, message: &str) {
    let reply = Response::Error {
        message: message.to_string(),
    };
    if let Ok(bytes) = frame::encode(&reply) {
        // Nothing to do if it did not fit: the close alone tells the client no.
        let _ = stream.try_write(&bytes);
    }
}
