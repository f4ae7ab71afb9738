//! Reads that never keep more than the caller's bound: a file the other side
//! of a trust boundary controls (a sysfs entry, a report, a `--load` FIFO)
//! cannot make a binary allocate more than it asked for.

use std::io::{self, Read};

use zeroize::Zeroize;

/// The result of a bounded read.
#[derive(Debug, Default)]
pub struct Bounded {
    /// The bytes read, at most the bound.
    pub bytes: Vec<u8>,
    /// True when the source had more bytes than the bound.
    pub over_bound: bool,
}

/// The first allocation of [`read_bounded`]: enough for most files read
/// whole, small enough not to matter for the rest.
const FIRST_CHUNK: usize = 8 * 1024;

/// Reads `r` to EOF (in a loop, never assuming one `read` is all), keeping at
/// most `max` bytes and noting whether there were more.
pub fn read_bounded(r: impl Read, max: usize) -> io::Result<Bounded> {
    Scratch::new(FIRST_CHUNK).read(r, max)
}

/// A read buffer reused across files (the raw SMBIOS entries: sized for
/// their 64 KiB window, so each is one or two `read`s). What it returns is
/// an exact-size copy; the buffer itself is wiped after each read, before it
/// grows, and when dropped: these bytes may be credential values.
pub struct Scratch {
    buf: Vec<u8>,
}

impl Scratch {
    /// A buffer of `first` bytes to start with.
    pub fn new(first: usize) -> Scratch {
        Scratch {
            buf: vec![0u8; first.max(1)],
        }
    }

    /// Reads `r` to EOF, keeping at most `max` bytes.
    pub fn read(&mut self, mut r: impl Read, max: usize) -> io::Result<Bounded> {
        // One byte past the bound tells "exactly max" from "more".
        let limit = max.saturating_add(1);
        let mut filled = 0;
        let result = loop {
            if filled == limit {
                break Ok(());
            }
            if filled == self.buf.len() {
                let mut grown = vec![0u8; filled.saturating_mul(2).min(limit)];
                grown[..filled].copy_from_slice(&self.buf[..filled]);
                self.buf.zeroize();
                self.buf = grown;
            }
            let room = (limit - filled).min(self.buf.len() - filled);
            match r.read(&mut self.buf[filled..filled + room]) {
                Ok(0) => break Ok(()),
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        let kept = filled.min(max);
        let bytes = self.buf[..kept].to_vec();
        self.buf[..filled].zeroize();
        result.map(|()| Bounded {
            bytes,
            over_bound: filled > max,
        })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        self.buf.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_bound_edges() {
        let b = read_bounded(&[7u8; 10][..], 10).unwrap();
        assert_eq!((b.bytes.len(), b.over_bound), (10, false));
        let b = read_bounded(&[7u8; 11][..], 10).unwrap();
        assert_eq!((b.bytes.len(), b.over_bound), (10, true));
        let b = read_bounded(&[][..], 0).unwrap();
        assert_eq!((b.bytes.len(), b.over_bound), (0, false));
        let b = read_bounded(&[1u8][..], 0).unwrap();
        assert!(b.over_bound && b.bytes.is_empty());
    }

    /// A reader that hands out at most `step` bytes per call.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
        calls: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            self.calls += 1;
            let n = self.step.min(out.len()).min(self.data.len());
            out[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    fn trickle(data: &[u8], step: usize) -> Trickle<'_> {
        Trickle {
            data,
            step,
            calls: 0,
        }
    }

    #[test]
    fn test_scratch_reads_grows_and_is_reused() {
        let data: Vec<u8> = (0..70_000u32).map(|i| i as u8).collect();
        let mut shared = Scratch::new(65_536);
        for (max, first) in [
            (100_000, 65_536),
            (100_000, 1),
            (70_000, 8),
            (69_999, 70_000),
            (0, 0),
        ] {
            let b = Scratch::new(first)
                .read(trickle(&data, 40_000), max)
                .unwrap();
            let keep = data.len().min(max);
            assert_eq!(b.bytes, &data[..keep], "max {max} first {first}");
            assert_eq!(b.over_bound, data.len() > max, "max {max} first {first}");
            assert_eq!(b.bytes.capacity(), keep, "an exact-size copy");
            let again = shared.read(trickle(&data, 40_000), max).unwrap();
            assert_eq!(again.bytes, &data[..keep]);
        }
        // Wiped after each read.
        assert!(shared.buf.iter().all(|&b| b == 0));
        // Sized for the file: two reads and EOF, not a doubling series.
        let mut t = trickle(&data, usize::MAX);
        Scratch::new(65_536).read(&mut t, 1 << 20).unwrap();
        assert_eq!(t.calls, 3);
        // Never asks past the bound: a FIFO is not drained without end.
        let mut t = trickle(&data, usize::MAX);
        let b = Scratch::new(65_536).read(&mut t, 10).unwrap();
        assert!(b.over_bound && b.bytes.len() == 10);
        assert_eq!(t.data.len(), 70_000 - 11);
    }

    #[test]
    fn test_reads_past_one_page() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, vec![1u8; 10_000]).unwrap();
        let b = read_bounded(std::fs::File::open(&p).unwrap(), 20_000).unwrap();
        assert_eq!(b.bytes.len(), 10_000);
    }
}
