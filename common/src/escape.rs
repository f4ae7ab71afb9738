//! Escaping untrusted bytes (names, paths, text from the other side of a
//! trust boundary) for messages, tables and JSON meant for a terminal or a
//! journal (the model: systemd's `cescape()`, applied always, not only when
//! the text looks odd).
//!
//! Only *names*, *paths* and descriptive text are ever escaped into a
//! message; values never are.

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

/// Escapes only what a terminal could act on: every byte outside 0x20..=0x7E
/// becomes `\xNN`, and `\` and `"` stay as they are. For a whole message
/// that may hold text from the other side (a parser's error quoting it):
/// text already escaped by [`escape_bytes`] comes through unchanged. At most
/// `max` input bytes are shown, then `…`.
pub fn escape_unprintable(bytes: &[u8], max: usize) -> String {
    let mut out = String::with_capacity(bytes.len().min(max) + 8);
    for &b in bytes.iter().take(max) {
        match b {
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    if bytes.len() > max {
        out.push('…');
    }
    out
}

/// Escapes every character of `text` a terminal could act on — C0 controls
/// but the newline, DEL, C1 controls (U+0080..U+009F, e.g. U+009B, CSI) and
/// the bidirectional overrides and isolates — as `\xNN` (or `\u{NNNN}`),
/// and leaves every other character as it is. For a whole message composed
/// here (a command-line parser's) whose untrusted parts were quoted in it
/// unescaped.
pub fn escape_controls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let bidi = matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        if c == '\n' || !(c.is_control() || bidi) {
            out.push(c);
        } else if c.is_ascii() {
            out.push_str(&format!("\\x{:02x}", c as u32));
        } else {
            out.push_str(&format!("\\u{{{:04x}}}", c as u32));
        }
    }
    out
}

/// JSON text made ASCII: every character outside printable ASCII plus the
/// JSON whitespace (`\n`, `\t`, `\r`) — DEL, C1 controls such as U+009B
/// (CSI), bidirectional overrides, anything non-ASCII — becomes a `\uXXXX`
/// escape (a surrogate pair above U+FFFF). Outside strings JSON is ASCII
/// already, so the document parses to the very same values, and no
/// character of it can act on a terminal.
pub fn ascii_json(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if matches!(c, ' '..='~' | '\n' | '\t' | '\r') {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    out
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

    #[test]
    fn test_escape_unprintable_keeps_quotes_and_is_idempotent() {
        assert_eq!(
            escape_unprintable(b"unknown field `\x1b[2J` \"q\"\n", 100),
            "unknown field `\\x1b[2J` \"q\"\\x0a"
        );
        let once = escape_bytes(b"a\x07b", 100);
        assert_eq!(escape_unprintable(once.as_bytes(), 100), once);
    }

    #[test]
    fn test_escape_controls_keeps_newlines_and_letters() {
        assert_eq!(
            escape_controls("error: invalid value '1\u{1b}[2J\r\u{9b}\u{202e}\u{7f}' é\n"),
            "error: invalid value '1\\x1b[2J\\x0d\\u{009b}\\u{202e}\\x7f' é\n"
        );
    }

    #[test]
    fn test_ascii_json_round_trips() {
        let v = serde_json::json!({"n": "\u{1b}[2J\u{9b}31m\u{202e}\u{7f}é😀\n"});
        let pretty = serde_json::to_string_pretty(&v).unwrap();
        let a = ascii_json(&pretty);
        assert!(a.bytes().all(|b| matches!(b, 0x20..=0x7e | b'\n')), "{a}");
        assert!(
            a.contains("\\u009b") && a.contains("\\u202e") && a.contains("\\ud83d\\ude00"),
            "{a}"
        );
        assert_eq!(serde_json::from_str::<serde_json::Value>(&a).unwrap(), v);
    }
}
