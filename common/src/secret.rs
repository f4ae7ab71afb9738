//! [`Secret`]: bytes that must never be printed.

use std::fmt;
use zeroize::Zeroize;

/// Owned secret bytes: zeroized on drop, `Debug` prints `[REDACTED]`.
///
/// There is deliberately no `Display`, no `Serialize` and no `Deref`: the only
/// way to see the bytes is [`Secret::expose`], which is easy to grep for.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps `bytes`; they are wiped when the `Secret` is dropped.
    pub fn new(bytes: Vec<u8>) -> Self {
        Secret(bytes)
    }

    /// The secret bytes. Callers must not log, print or format them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Number of bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Appends bytes, keeping the old allocation wiped if it has to grow
    /// (it then at least doubles, so a stream read in chunks is copied a
    /// bounded number of times).
    pub fn extend_from_slice(&mut self, bytes: &[u8]) {
        if self.0.capacity() - self.0.len() < bytes.len() {
            let need = self.0.len() + bytes.len();
            let mut grown = Vec::with_capacity(need.max(2 * self.0.capacity()).max(16));
            grown.extend_from_slice(&self.0);
            self.0.zeroize();
            self.0 = grown;
        }
        self.0.extend_from_slice(bytes);
    }
}

impl From<Vec<u8>> for Secret {
    fn from(bytes: Vec<u8>) -> Self {
        Secret(bytes)
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret([REDACTED], {} bytes)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_debug_is_redacted() {
        let s = Secret::new(b"hunter2-canary".to_vec());
        let d = format!("{s:?} {s:#?}");
        assert!(!d.contains("hunter2"), "debug output leaked the value");
        assert!(d.contains("[REDACTED]"));
        assert!(d.contains("14 bytes"));
    }

    #[test]
    fn test_extend_keeps_bytes() {
        let mut s = Secret::new(Vec::new());
        s.extend_from_slice(b"abc");
        s.extend_from_slice(&[0u8; 100]);
        assert_eq!(s.len(), 103);
        assert_eq!(&s.expose()[..3], b"abc");
    }
}
