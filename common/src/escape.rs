//! Escaping untrusted bytes (names, paths) for messages.
//!
//! Only *names* and *paths* are ever escaped into a message; values never are.

/// Renders `bytes` as printable ASCII: `\\`, `"` and anything outside
/// 0x20..=0x7E become `\xNN`. At most `max` input bytes are shown, then `…`.
pub fn escape_bytes(bytes: &[u8], max: usize) -> String {
    let mut out = String::with_capacity(bytes.len().min(max) + 8);
    for &b in bytes.iter().take(max) {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    if bytes.len() > max {
        out.push('…');
    }
    out
}

/// [`escape_bytes`] with a limit suited to credential names (255 + a margin).
pub fn escape_name(bytes: &[u8]) -> String {
    escape_bytes(bytes, 300)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_escape_controls_and_quotes() {
        assert_eq!(
            escape_name(b"a\"b\\c\n\x00\xff"),
            "a\\\"b\\\\c\\x0a\\x00\\xff"
        );
    }

    #[test]
    fn test_escape_truncates() {
        assert_eq!(escape_bytes(b"abcdef", 3), "abc…");
    }
}
