//! The frame decoder: the bytes any local user can write to otpd's socket, the bytes the
//! module reads back, and the relayed-request envelopes a DMZ host sends the relay listener.
//!
//! Properties, for any input:
//! - `try_decode` (otpd's path, over a growing buffer) and `read_frame` (the module's and
//!   otpctl's blocking path) never panic and agree with each other;
//! - "need more bytes" is only said when the frame really is incomplete, and a complete frame
//!   is never mistaken for an incomplete one (each strict prefix of a decoded frame needs more);
//! - a decoded message re-encodes into a frame that decodes to the same message;
//! - no allocation is larger than a whole frame (`HEADER_LEN + MAX_PAYLOAD`), whatever length
//!   the header announces. `fuzz/run` keeps inputs far below that size, so only an allocation
//!   driven by the announced length, not by the bytes present, can trip this.
#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::frame::{self, FrameError, HEADER_LEN, MAX_PAYLOAD};
use common::wire::{Request, Response};
use common::wire_relay::RelayedRequest;
use libfuzzer_sys::fuzz_target;

/// The system allocator, recording the largest single allocation asked of it.
struct Measured;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

fn record(size: usize) {
    LARGEST.fetch_max(size, Ordering::Relaxed);
}

// SAFETY: every call is passed on unchanged to `System`, which upholds the `GlobalAlloc`
// contract; recording a size touches no allocated memory.
unsafe impl GlobalAlloc for Measured {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        // SAFETY: the caller's guarantees for `layout` are passed on as they are.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        // SAFETY: as in `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        record(new_size);
        // SAFETY: `ptr` and `layout` come from this allocator, which is `System`'s.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` and `layout` come from this allocator, which is `System`'s.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Measured = Measured;

/// What a header says, in a form that can be compared.
#[derive(Debug, PartialEq)]
enum Header {
    Short,
    Announces(usize),
    BadMagic,
    UnsupportedVersion(u16),
    TooLong(usize),
}

fn header_of(data: &[u8]) -> Header {
    let Some(header) = data.first_chunk::<HEADER_LEN>() else {
        return Header::Short;
    };
    match frame::parse_header(header) {
        Ok(len) => {
            assert!(len <= MAX_PAYLOAD, "parse_header let {len} bytes through");
            Header::Announces(len)
        }
        Err(FrameError::BadMagic) => Header::BadMagic,
        Err(FrameError::UnsupportedVersion(v)) => Header::UnsupportedVersion(v),
        Err(FrameError::TooLong(len)) => {
            assert!(len > MAX_PAYLOAD, "TooLong({len}) is within the limit");
            Header::TooLong(len)
        }
        Err(other) => panic!("parse_header returned {other:?}"),
    }
}

/// Checks `try_decode` and `read_frame` of one message type against the header and each other;
/// returns the decoded message and the bytes it used.
fn check_decoders<T>(data: &[u8]) -> Option<(T, usize)>
where
    T: serde::de::DeserializeOwned + std::fmt::Debug,
{
    let header = header_of(data);
    let decoded = frame::try_decode::<T>(data);
    let blocking = frame::read_frame::<_, T>(&mut &data[..]);
    match (&header, &decoded) {
        (Header::Short, Ok(None)) => assert!(matches!(blocking, Err(FrameError::Closed))),
        (Header::Announces(len), Ok(None)) => {
            assert!(
                data.len() < HEADER_LEN + len,
                "need more, with the frame all there"
            );
            assert!(matches!(blocking, Err(FrameError::Closed)));
        }
        (Header::Announces(len), Ok(Some((_, used)))) => {
            assert_eq!(*used, HEADER_LEN + len);
            assert!(*used <= data.len());
            assert!(blocking.is_ok(), "read_frame refused what try_decode took");
        }
        (Header::Announces(len), Err(FrameError::Malformed(_))) => {
            assert!(
                data.len() >= HEADER_LEN + len,
                "malformed before the payload was there"
            );
            assert!(matches!(blocking, Err(FrameError::Malformed(_))));
        }
        (Header::BadMagic, Err(FrameError::BadMagic)) => {
            assert!(matches!(blocking, Err(FrameError::BadMagic)))
        }
        (Header::UnsupportedVersion(v), Err(FrameError::UnsupportedVersion(w))) => {
            assert_eq!(v, w);
            assert!(matches!(blocking, Err(FrameError::UnsupportedVersion(_))));
        }
        (Header::TooLong(n), Err(FrameError::TooLong(m))) => {
            assert_eq!(n, m);
            assert!(matches!(blocking, Err(FrameError::TooLong(_))));
        }
        (header, decoded) => panic!("header {header:?} but try_decode gave {decoded:?}"),
    }
    let (message, used) = decoded.ok()??;
    // Every strict prefix of a complete frame needs more bytes; never an error, never a message.
    for cut in [0, HEADER_LEN - 1, HEADER_LEN, used - 1] {
        if cut < used {
            assert!(
                matches!(frame::try_decode::<T>(&data[..cut]), Ok(None)),
                "a prefix of {cut} bytes of a good frame was not 'need more'"
            );
        }
    }
    Some((message, used))
}

fuzz_target!(|data: &[u8]| {
    LARGEST.store(0, Ordering::Relaxed);

    if let Some((response, _)) = check_decoders::<Response>(data) {
        let again = frame::encode(&response).expect("a decoded response re-encodes");
        let (round_trip, used): (Response, usize) = frame::try_decode(&again)
            .expect("a re-encoded response decodes")
            .expect("a re-encoded response is a whole frame");
        assert_eq!(round_trip, response);
        assert_eq!(used, again.len());
    }

    if let Some((request, _)) = check_decoders::<Request>(data) {
        // Request has no PartialEq (it carries codes); its encoding is compared instead.
        let once = frame::encode(&request).expect("a decoded request re-encodes");
        let (again, _): (Request, usize) = frame::try_decode(&once)
            .expect("a re-encoded request decodes")
            .expect("a re-encoded request is a whole frame");
        let twice = frame::encode(&again).expect("a request re-encodes");
        assert_eq!(*once, *twice, "a request changed on a round trip");
    }

    if let Some((relayed, _)) = check_decoders::<RelayedRequest>(data) {
        // What a DMZ host sends the main otpd's relay listener: the same round trip.
        let once = frame::encode(&relayed).expect("a decoded envelope re-encodes");
        let (again, _): (RelayedRequest, usize) = frame::try_decode(&once)
            .expect("a re-encoded envelope decodes")
            .expect("a re-encoded envelope is a whole frame");
        let twice = frame::encode(&again).expect("an envelope re-encodes");
        assert_eq!(*once, *twice, "an envelope changed on a round trip");
    }

    let largest = LARGEST.load(Ordering::Relaxed);
    assert!(
        largest <= HEADER_LEN + MAX_PAYLOAD,
        "an allocation of {largest} bytes from {} bytes of input",
        data.len()
    );
});
