//! Reads that never keep more than the caller's bound: a file the other side
//! of a trust boundary controls (a sysfs entry, a report, a `--load` FIFO)
//! cannot make a binary allocate more than it asked for.

use std::io::{self, Read};

/// The result of a bounded read.
#[derive(Debug, Default)]
pub struct Bounded {
    /// The bytes read, at most the bound.
    pub bytes: Vec<u8>,
    /// True when the source had more bytes than the bound.
    pub over_bound: bool,
}

/// Reads `r` to EOF (in a loop, never assuming one `read` is all), keeping at
/// most `max` bytes and noting whether there were more.
pub fn read_bounded(r: impl Read, max: usize) -> io::Result<Bounded> {
    let mut bytes = Vec::new();
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    r.take(limit).read_to_end(&mut bytes)?;
    let over_bound = bytes.len() > max;
    bytes.truncate(max);
    Ok(Bounded { bytes, over_bound })
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

    #[test]
    fn test_reads_past_one_page() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, vec![1u8; 10_000]).unwrap();
        let b = read_bounded(std::fs::File::open(&p).unwrap(), 20_000).unwrap();
        assert_eq!(b.bytes.len(), 10_000);
    }
}
