//! Writing a frame with a deadline: shared by the local socket's server and the relay listener,
//! which answer their clients the same way (below both in the layers, see `layering`).

use std::time::Duration;

use common::frame;
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Writes one frame (`message`) to `stream` within `timeout`: a client that never reads (a large
/// admin page fills the socket buffer) must not hold its connection, and its place, for ever.
pub async fn write_frame(
    stream: &mut (impl AsyncWrite + Unpin),
    message: &impl serde::Serialize,
    timeout: Duration,
) -> std::io::Result<()> {
    let bytes = frame::encode(message).map_err(std::io::Error::other)?;
    let write = async {
        stream.write_all(&bytes).await?;
        stream.flush().await
    };
    match tokio::time::timeout(timeout, write).await {
        Ok(result) => result,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("response not taken within {timeout:?}"),
        )),
    }
}
