//! clap's refusal of a command line, made safe for a terminal or a journal.
//!
//! clap quotes the argument it refused as given; a newline or an escape sequence in it must
//! reach neither, so every quoted value is escaped, then any control character left in the
//! message (issue 13 §12).

use vmcreds_common::escape::{escape_controls, escape_unprintable};

/// The text of `e` with every value it quotes escaped.
pub fn render(mut e: clap::Error) -> String {
    use clap::error::ContextValue;
    let esc = |s: &String| escape_unprintable(s.as_bytes(), 4096);
    let escaped: Vec<_> = e
        .context()
        .filter_map(|(kind, v)| match v {
            ContextValue::String(s) => Some((kind, ContextValue::String(esc(s)))),
            ContextValue::Strings(v) => {
                Some((kind, ContextValue::Strings(v.iter().map(esc).collect())))
            }
            _ => None,
        })
        .collect();
    for (kind, v) in escaped {
        e.insert(kind, v);
    }
    escape_controls(&e.render().to_string())
}

#[cfg(test)]
mod tests {
    use clap::{Arg, Command};

    #[test]
    fn a_refused_value_reaches_no_terminal_raw() {
        let cmd = Command::new("t").arg(
            Arg::new("n")
                .long("n")
                .value_parser(clap::value_parser!(u32)),
        );
        let e = cmd
            .try_get_matches_from(["t", "--n", "1\u{1b}[2J\nforged"])
            .unwrap_err();
        let text = super::render(e);
        assert!(!text.contains('\u{1b}'), "{text:?}");
        assert!(!text.contains("\nforged"), "{text:?}");
        assert!(
            text.contains("forged"),
            "the value is still shown, escaped: {text:?}"
        );
    }
}
