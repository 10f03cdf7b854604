//! OS randomness read in one `getrandom` call per batch instead of one per byte drawn.
//!
//! Issuing a code draws a salt, a challenge id and one byte per digit (more on a rejected byte).
//! Straight from `OsRng` that was eight `getrandom` calls per login (strace in bench/); this
//! reads 64 bytes at once and hands them out, so a code costs one call. Every byte still comes
//! from the OS, none is ever handed out twice, and the unused rest is wiped on drop.

use rand::rngs::OsRng;
use rand::{CryptoRng, RngCore, TryRngCore};
use zeroize::Zeroizing;

/// Bytes fetched per `getrandom`: enough for a salt, a challenge id and a ten-digit code with
/// a few rejected bytes.
const BATCH: usize = 64;

/// A [`CryptoRng`] over OS randomness fetched `BATCH` bytes at a time. Make one per request;
/// do not keep it around, so bytes never sit in memory longer than the request.
pub struct BatchedOsRng {
    batch: Zeroizing<[u8; BATCH]>,
    /// Bytes of `batch` already handed out (or never filled, at `BATCH`).
    used: usize,
}

impl BatchedOsRng {
    /// An empty source: the first draw reads the OS.
    pub fn new() -> BatchedOsRng {
        BatchedOsRng {
            batch: Zeroizing::new([0u8; BATCH]),
            used: BATCH,
        }
    }

    fn refill(&mut self) {
        // `unwrap_err` panics when the OS cannot give randomness, as OsRng itself does: there
        // is no safe code to issue then, and the handler turns the panic into "unavailable".
        OsRng.unwrap_err().fill_bytes(self.batch.as_mut());
        self.used = 0;
    }
}

impl std::fmt::Debug for BatchedOsRng {
    /// Never shows the bytes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchedOsRng")
            .field("left", &(BATCH - self.used))
            .finish()
    }
}

impl Default for BatchedOsRng {
    fn default() -> Self {
        BatchedOsRng::new()
    }
}

impl RngCore for BatchedOsRng {
    fn next_u32(&mut self) -> u32 {
        let mut bytes = [0u8; 4];
        self.fill_bytes(&mut bytes);
        u32::from_le_bytes(bytes)
    }

    fn next_u64(&mut self) -> u64 {
        let mut bytes = [0u8; 8];
        self.fill_bytes(&mut bytes);
        u64::from_le_bytes(bytes)
    }

    fn fill_bytes(&mut self, dst: &mut [u8]) {
        let mut filled = 0;
        while filled < dst.len() {
            if self.used == BATCH {
                self.refill();
            }
            let take = (dst.len() - filled).min(BATCH - self.used);
            dst[filled..filled + take].copy_from_slice(&self.batch[self.used..self.used + take]);
            // Wipe what was handed out, so no byte is in two places longer than needed.
            self.batch[self.used..self.used + take].fill(0);
            self.used += take;
            filled += take;
        }
    }
}

impl CryptoRng for BatchedOsRng {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_across_batches_are_all_filled_and_differ() {
        let mut rng = BatchedOsRng::new();
        // 3 batches and a bit, in odd-sized pieces, so refills happen mid-request.
        let mut seen = Vec::new();
        for _ in 0..29 {
            let mut piece = [0u8; 7];
            rng.fill_bytes(&mut piece);
            seen.extend_from_slice(&piece);
        }
        assert_eq!(seen.len(), 203);
        // 203 OS bytes with a run of 16 zeros (an unfilled stretch) is a 2^-128 event.
        assert!(
            seen.windows(16).all(|w| w.iter().any(|&b| b != 0)),
            "a stretch was never filled"
        );
        let mut a = [0u8; 16];
        let mut b = [0u8; 16];
        rng.fill_bytes(&mut a);
        rng.fill_bytes(&mut b);
        assert_ne!(a, b, "no byte is handed out twice");
    }

    #[test]
    fn handed_out_bytes_are_wiped_from_the_batch() {
        let mut rng = BatchedOsRng::new();
        let mut first = [0u8; 40];
        rng.fill_bytes(&mut first);
        assert_eq!(rng.used, 40);
        assert!(rng.batch[..40].iter().all(|&b| b == 0));
    }
}
