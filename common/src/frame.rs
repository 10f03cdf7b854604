//! Framing of messages on otpd's socket.
//!
//! A frame is an 8-byte header (magic `OT`, protocol version as u16, payload length as u32, all
//! big-endian) followed by a JSON payload. The length is checked against [`MAX_PAYLOAD`] before
//! anything is allocated, and "need more bytes" ([`try_decode`] returning `Ok(None)`) is kept apart
//! from "bad frame" (an error), so a slow writer is never mistaken for a malicious one.
//!
//! A connection carries one request and its answer; otpd closes it after answering.

use std::io::{Read, Write};

use serde::Serialize;
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

/// First two bytes of every frame.
pub const MAGIC: [u8; 2] = *b"OT";
/// The protocol version this build speaks; a peer with another one gets an error.
pub const VERSION: u16 = 1;
/// Size of the fixed header.
pub const HEADER_LEN: usize = 8;
/// The largest payload either side accepts. Real messages are a few hundred bytes.
pub const MAX_PAYLOAD: usize = 64 * 1024;

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The socket failed or timed out.
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
    /// The peer closed the connection before a whole frame arrived.
    #[error("connection closed by peer")]
    Closed,
    /// The bytes are not an otpd frame.
    #[error("not an otpd frame (bad magic bytes)")]
    BadMagic,
    /// The peer speaks another protocol version.
    #[error("unsupported protocol version {0} (this build speaks {VERSION})")]
    UnsupportedVersion(u16),
    /// The announced payload is larger than [`MAX_PAYLOAD`].
    #[error("frame of {0} bytes exceeds the limit of {MAX_PAYLOAD} bytes")]
    TooLong(usize),
    /// The payload is not a valid message.
    #[error("malformed message: {0}")]
    Malformed(#[source] serde_json::Error),
}

/// Serializes `message` into one frame. The buffer is wiped when dropped because a request may
/// carry a code.
pub fn encode<T: Serialize>(message: &T) -> Result<Zeroizing<Vec<u8>>, FrameError> {
    let payload = Zeroizing::new(serde_json::to_vec(message).map_err(FrameError::Malformed)?);
    if payload.len() > MAX_PAYLOAD {
        return Err(FrameError::TooLong(payload.len()));
    }
    let mut frame = Zeroizing::new(Vec::with_capacity(HEADER_LEN + payload.len()));
    frame.extend_from_slice(&MAGIC);
    frame.extend_from_slice(&VERSION.to_be_bytes());
    // The length fits: it was just checked against MAX_PAYLOAD, far below u32::MAX.
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(&payload);
    Ok(frame)
}

/// Checks a header and returns the payload length it announces.
pub fn parse_header(header: &[u8; HEADER_LEN]) -> Result<usize, FrameError> {
    if header[0..2] != MAGIC {
        return Err(FrameError::BadMagic);
    }
    let version = u16::from_be_bytes([header[2], header[3]]);
    if version != VERSION {
        return Err(FrameError::UnsupportedVersion(version));
    }
    let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
    if len > MAX_PAYLOAD {
        return Err(FrameError::TooLong(len));
    }
    Ok(len)
}

/// Decodes a payload into a message.
pub fn decode_payload<T: DeserializeOwned>(payload: &[u8]) -> Result<T, FrameError> {
    serde_json::from_slice(payload).map_err(FrameError::Malformed)
}

/// Decodes one frame from the front of `buf`: `Ok(None)` when more bytes are needed, otherwise
/// the message and how many bytes it used.
pub fn try_decode<T: DeserializeOwned>(buf: &[u8]) -> Result<Option<(T, usize)>, FrameError> {
    let Some(header) = buf.first_chunk::<HEADER_LEN>() else {
        return Ok(None);
    };
    let len = parse_header(header)?;
    let Some(payload) = buf.get(HEADER_LEN..HEADER_LEN + len) else {
        return Ok(None);
    };
    Ok(Some((decode_payload(payload)?, HEADER_LEN + len)))
}

/// Writes one frame to a blocking writer.
pub fn write_frame<W: Write, T: Serialize>(writer: &mut W, message: &T) -> Result<(), FrameError> {
    let frame = encode(message)?;
    writer.write_all(&frame)?;
    writer.flush()?;
    Ok(())
}

/// Reads one frame from a blocking reader.
pub fn read_frame<R: Read, T: DeserializeOwned>(reader: &mut R) -> Result<T, FrameError> {
    let mut header = [0u8; HEADER_LEN];
    read_exact_or_closed(reader, &mut header)?;
    let len = parse_header(&header)?;
    let mut payload = Zeroizing::new(vec![0u8; len]);
    read_exact_or_closed(reader, &mut payload)?;
    decode_payload(&payload)
}

fn read_exact_or_closed<R: Read>(reader: &mut R, buf: &mut [u8]) -> Result<(), FrameError> {
    reader.read_exact(buf).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => FrameError::Closed,
        _ => FrameError::Io(e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Request, Response};

    #[test]
    fn frames_round_trip() {
        let frame = encode(&Request::Ping).unwrap();
        let (req, used): (Request, usize) = try_decode(&frame).unwrap().unwrap();
        assert!(matches!(req, Request::Ping));
        assert_eq!(used, frame.len());
    }

    #[test]
    fn partial_frames_need_more_bytes() {
        let frame = encode(&Response::Success).unwrap();
        for cut in 0..frame.len() {
            assert!(
                try_decode::<Response>(&frame[..cut]).unwrap().is_none(),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn oversized_length_is_refused_before_allocation() {
        let mut header = [0u8; HEADER_LEN];
        header[..2].copy_from_slice(&MAGIC);
        header[2..4].copy_from_slice(&VERSION.to_be_bytes());
        header[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(parse_header(&header), Err(FrameError::TooLong(_))));
    }

    #[test]
    fn bad_magic_and_version_are_refused() {
        assert!(matches!(
            parse_header(b"GET / HT"),
            Err(FrameError::BadMagic)
        ));
        let mut header = [0u8; HEADER_LEN];
        header[..2].copy_from_slice(&MAGIC);
        header[2..4].copy_from_slice(&9u16.to_be_bytes());
        assert!(matches!(
            parse_header(&header),
            Err(FrameError::UnsupportedVersion(9))
        ));
    }

    #[test]
    fn garbage_payload_is_malformed() {
        let mut frame = Vec::new();
        frame.extend_from_slice(&MAGIC);
        frame.extend_from_slice(&VERSION.to_be_bytes());
        frame.extend_from_slice(&3u32.to_be_bytes());
        frame.extend_from_slice(b"{{{");
        assert!(matches!(
            try_decode::<Request>(&frame),
            Err(FrameError::Malformed(_))
        ));
    }

    #[test]
    fn blocking_read_reports_early_close() {
        let frame = encode(&Request::Ping).unwrap();
        let mut short = &frame[..frame.len() - 1];
        assert!(matches!(
            read_frame::<_, Request>(&mut short),
            Err(FrameError::Closed)
        ));
    }
}
