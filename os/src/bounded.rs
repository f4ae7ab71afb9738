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

/// Overwrites `b` with zeros in a way the compiler keeps (volatile writes),
/// a machine word at a time: `zeroize` on a byte slice writes byte by byte,
/// which for the 64 KiB SMBIOS window was a measurable part of a check.
pub fn wipe(b: &mut [u8]) {
    // SAFETY: any bit pattern is a valid u64 and a valid u8, so viewing the
    // aligned middle of a byte slice as u64s is sound.
    let (head, words, tail) = unsafe { b.align_to_mut::<u64>() };
    head.zeroize();
    words.zeroize();
    tail.zeroize();
}

/// A read buffer reused across files (the raw SMBIOS entries: sized for
/// their 64 KiB window, so each is one or two `read`s). What it returns is
/// an exact-size copy; what a read put in the buffer is wiped before that
/// read returns and before the buffer grows, so the buffer holds only zeros
/// between reads (and is wiped when dropped should a read not have
/// finished): these bytes may be credential values.
pub struct Scratch {
    buf: Vec<u8>,
    /// `buf[..dirty]` may hold bytes read and not yet wiped.
    dirty: usize,
}

impl Scratch {
    /// A buffer of `first` bytes to start with.
    pub fn new(first: usize) -> Scratch {
        Scratch {
            buf: vec![0u8; first.max(1)],
            dirty: 0,
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
                wipe(&mut self.buf[..filled]);
                self.buf = grown;
            }
            let room = (limit - filled).min(self.buf.len() - filled);
            self.dirty = filled + room;
            match r.read(&mut self.buf[filled..filled + room]) {
                Ok(0) => break Ok(()),
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        let kept = filled.min(max);
        let bytes = self.buf[..kept].to_vec();
        wipe(&mut self.buf[..self.dirty]);
        self.dirty = 0;
        result.map(|()| Bounded {
            bytes,
            over_bound: filled > max,
        })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        wipe(&mut self.buf[..self.dirty]);
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
        assert_eq!(shared.dirty, 0);
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
    fn test_wipe_clears_every_byte_at_any_alignment() {
        let mut v = [0xa5u8; 100];
        for start in 0..9 {
            for end in [start, start + 1, start + 7, start + 8, start + 17, 100] {
                v.fill(0xa5);
                wipe(&mut v[start..end]);
                assert!(v[start..end].iter().all(|&b| b == 0), "{start}..{end}");
                assert!(v[..start].iter().chain(&v[end..]).all(|&b| b == 0xa5));
            }
        }
    }

    #[test]
    fn test_a_failed_read_is_wiped_too() {
        struct Fails(bool);
        impl Read for Fails {
            fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
                if std::mem::replace(&mut self.0, true) {
                    return Err(io::ErrorKind::Other.into());
                }
                out[..5].fill(9);
                Ok(5)
            }
        }
        let mut s = Scratch::new(64);
        assert!(s.read(Fails(false), 100).is_err());
        assert!(s.buf.iter().all(|&b| b == 0));
        assert_eq!(s.dirty, 0);
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
