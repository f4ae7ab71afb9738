//! Throughput of the digest path on a 1 MiB credential (the largest systemd
//! imports). Run by `cargo xtask bench`, which sets it beside `sha256sum`.
//!
//! Prints one line per algorithm: `digest <alg> <MB/s>` (MB = 10^6 bytes),
//! the median of several rounds, each hashing the 1 MiB value repeatedly.

use std::time::{Duration, Instant};

use vmcreds_common::digest::{Hasher, Nonce};
use vmcreds_common::limits::CREDENTIAL_SIZE_MAX;

fn round(value: &[u8], nonce: Option<&Nonce>, min: Duration) -> f64 {
    let start = Instant::now();
    let mut bytes = 0usize;
    while start.elapsed() < min {
        let mut h = Hasher::new(nonce);
        h.update(value);
        std::hint::black_box(h.finish());
        bytes += value.len();
    }
    bytes as f64 / start.elapsed().as_secs_f64() / 1e6
}

fn main() {
    // A pseudo-random 1 MiB value (xorshift), so nothing is trivially compressible.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let value: Vec<u8> = (0..CREDENTIAL_SIZE_MAX)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let nonce = Nonce::from_bytes([0x5a; 32]);
    for (alg, nonce) in [("sha256", None), ("hmac-sha256", Some(&nonce))] {
        let mut rounds: Vec<f64> = (0..7)
            .map(|_| round(&value, nonce, Duration::from_millis(300)))
            .collect();
        rounds.sort_by(f64::total_cmp);
        println!("digest {alg} {:.0}", rounds[rounds.len() / 2]);
    }
}
