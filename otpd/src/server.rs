//! The socket server: accepts connections up to a cap, reads one framed request per connection
//! with a deadline, answers it and closes, and drains in-flight requests on shutdown.
//!
//! One request per connection is what every client sends (the module, otpctl). Closing right
//! after the answer, instead of waiting for the client to close, spares both sides a wake-up:
//! otpd is not woken for the client's close, and the client's close wakes nobody (skip path
//! 95 → 86 µs added in an interleaved A/B in bench/).
//!
//! A malformed, oversized or unknown request gets an error reply and the connection is closed;
//! the daemon keeps serving everyone else.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use common::frame::{self, FrameError, HEADER_LEN};
use common::wire::{Request, Response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::Instrument;
use zeroize::Zeroizing;

use crate::caller::Caller;
use crate::handler;
use crate::state::Shared;

/// How long shutdown waits for requests in flight (a mail send may take up to its deadline).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(25);

/// Serves `listener` until `shutdown` completes, then drains.
pub async fn serve(
    listener: UnixListener,
    shared: Arc<Shared>,
    shutdown: impl Future<Output = ()>,
) {
    let limits = Arc::new(Semaphore::new(
        shared.active().config.daemon.max_connections,
    ));
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let shared = Arc::clone(&shared);
                    match Arc::clone(&limits).try_acquire_owned() {
                        Ok(permit) => {
                            connections.spawn(async move {
                                serve_connection(stream, shared).await;
                                drop(permit);
                            });
                        }
                        Err(_) => {
                            connections.spawn(refuse_busy(stream));
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    // Out of file descriptors and the like: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    tracing::info!(
        "shutting down: draining {} connection(s)",
        connections.len()
    );
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("drain timed out; aborting the remaining connections");
        connections.abort_all();
    }
}

/// Tells a client over the connection cap to come back later, instead of queueing it.
async fn refuse_busy(mut stream: UnixStream) {
    let _ = write_response(
        &mut stream,
        &Response::Error {
            message: "otpd is at its connection limit".into(),
        },
    )
    .await;
}

async fn serve_connection(mut stream: UnixStream, shared: Arc<Shared>) {
    let caller = match stream.peer_cred() {
        Ok(cred) => Caller {
            uid: cred.uid(),
            gid: cred.gid(),
        },
        Err(e) => {
            tracing::warn!("cannot read peer credentials, closing: {e}");
            return;
        }
    };
    let span = tracing::info_span!("conn", uid = caller.uid);
    async move {
        let timeout = shared.active().config.daemon.request_timeout;
        let request = match Received::new().request(&mut stream, timeout).await {
            Ok(Some(request)) => request,
            Ok(None) => return,
            Err(error) => {
                crate::peer_lines::log(
                    &shared,
                    caller.uid,
                    crate::peer_lines::PeerTrouble::BadRequest,
                    &error,
                );
                let reply = Response::Error {
                    message: error.to_string(),
                };
                let _ = write_response(&mut stream, &reply).await;
                return;
            }
        };
        let working = crate::in_flight::Request::start();
        let response = handler::handle(&shared, caller, request).await;
        drop(working);
        if let Err(e) = write_response(&mut stream, &response).await {
            tracing::info!("cannot write response: {e}");
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

async fn write_response(stream: &mut UnixStream, response: &Response) -> std::io::Result<()> {
    let bytes = frame::encode(response).map_err(std::io::Error::other)?;
    stream.write_all(&bytes).await?;
    stream.flush().await
}
