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
    read_sized(r, max, FIRST_CHUNK)
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

/// [`read_bounded`] into a first buffer of `first` bytes (the raw SMBIOS
/// entries: sized for their 64 KiB window, so each is one read and the one
/// that sees the end).
///
/// The buffer read into is the one returned: the bytes are copied once, by
/// the kernel, and a page of the buffer is touched only where a read wrote
/// (a zeroed allocation maps fresh pages). Whatever a read brought and is
/// not returned is wiped: an outgrown buffer before it is freed, the byte
/// past the bound, everything on an error, and the buffer of a result much
/// smaller than it, which is copied to one of its size (these bytes may be
/// credential values).
pub fn read_sized(r: impl Read, max: usize, first: usize) -> io::Result<Bounded> {
    let mut buf = Vec::new();
    match fill(r, max, first, &mut buf) {
        Ok(filled) => {
            let kept = filled.min(max);
            wipe(&mut buf[kept..filled]);
            buf.truncate(kept);
            if buf.capacity() > 2 * kept.max(32) {
                let exact = buf.clone();
                wipe(&mut buf);
                buf = exact;
            }
            Ok(Bounded {
                bytes: buf,
                over_bound: filled > max,
            })
        }
        Err(e) => {
            wipe(&mut buf);
            Err(e)
        }
    }
}

/// Reads `r` into `buf` (replaced by a zeroed buffer of `first` bytes,
/// doubled as needed up to one byte past `max`) and returns how many bytes
/// were read. `buf` is as long as its allocation: on an error it holds
/// everything read so far.
fn fill(mut r: impl Read, max: usize, first: usize, buf: &mut Vec<u8>) -> io::Result<usize> {
    // One byte past the bound tells "exactly max" from "more".
    let limit = max.saturating_add(1);
    *buf = vec![0u8; first.clamp(1, limit)];
    let mut filled = 0;
    loop {
        if filled == limit {
            return Ok(filled);
        }
        if filled == buf.len() {
            let mut grown = vec![0u8; filled.saturating_mul(2).min(limit)];
            grown[..filled].copy_from_slice(&buf[..filled]);
            wipe(&mut buf[..filled]);
            *buf = grown;
        }
        let room = (limit - filled).min(buf.len() - filled);
        match r.read(&mut buf[filled..filled + room]) {
            Ok(0) => return Ok(filled),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
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
    fn test_reads_grow_and_fit() {
        let data: Vec<u8> = (0..70_000u32).map(|i| i as u8).collect();
        for (max, first) in [
            (100_000, 65_536),
            (100_000, 1),
            (70_000, 8),
            (69_999, 70_000),
            (0, 0),
        ] {
            let b = read_sized(trickle(&data, 40_000), max, first).unwrap();
            let keep = data.len().min(max);
            assert_eq!(b.bytes, &data[..keep], "max {max} first {first}");
            assert_eq!(b.over_bound, data.len() > max, "max {max} first {first}");
            assert!(
                b.bytes.capacity() <= 2 * keep.max(32),
                "no buffer much larger than the bytes"
            );
        }
        // Sized for the file: one read and the one that sees EOF, and no copy.
        let mut t = trickle(&data[..61_206], usize::MAX);
        let b = read_sized(&mut t, 1 << 20, 65_536).unwrap();
        assert_eq!(t.calls, 2);
        assert_eq!((b.bytes.len(), b.bytes.capacity()), (61_206, 65_536));
        // Never asks past the bound: a FIFO is not drained without end.
        let mut t = trickle(&data, usize::MAX);
        let b = read_sized(&mut t, 10, 65_536).unwrap();
        assert!(b.over_bound && b.bytes.len() == 10);
        assert_eq!(t.data.len(), 70_000 - 11);
    }

    /// The byte read past the bound is not left behind the returned bytes,
    /// and a result much smaller than its first buffer is moved to one of
    /// its own size.
    #[test]
    fn test_bytes_not_returned_are_wiped() {
        let data = [7u8; 100];
        let b = read_sized(&data[..], 60, 64).unwrap();
        assert!(b.over_bound);
        assert_eq!(b.bytes, [7u8; 60]);
        assert!(b.bytes.capacity() > 60);
        // SAFETY: the allocation is `capacity()` bytes long and every byte
        // of it was initialised (the buffer starts zeroed).
        let past = unsafe { *b.bytes.as_ptr().add(60) };
        assert_eq!(past, 0, "the 61st byte read is wiped");
        let small = read_sized(&data[..5], 1000, 4096).unwrap();
        assert_eq!((small.bytes.len(), small.bytes.capacity()), (5, 5));
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
        let mut buf = Vec::new();
        assert!(fill(Fails(false), 100, 64, &mut buf).is_err());
        assert_eq!(
            &buf[..5],
            [9u8; 5],
            "fill leaves what it read to its caller"
        );
        assert!(read_sized(Fails(false), 100, 64).is_err());
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
