//! `--expect NAME[:BYTES]`.

use crate::escape::escape_name;

/// One expected credential: its name and, when given, its size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expect {
    /// The credential name.
    pub name: String,
    /// Its size, when given.
    pub bytes: Option<u64>,
}

impl std::str::FromStr for Expect {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        // Names cannot contain ':', so the last ':' separates the size.
        let (name, bytes) = match s.rsplit_once(':') {
            Some((n, b)) => (
                n,
                Some(b.parse::<u64>().map_err(|_| {
                    format!(
                        "size after ':' must be a number of bytes in \"{}\"",
                        escape_name(s.as_bytes())
                    )
                })?),
            ),
            None => (s, None),
        };
        crate::name::check_systemd(name.as_bytes()).map_err(|e| {
            format!(
                "\"{}\" is not a credential name: {e}",
                escape_name(name.as_bytes())
            )
        })?;
        Ok(Expect {
            name: name.to_owned(),
            bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_expect_parsing() {
        assert_eq!(
            "API_KEY:44".parse::<Expect>(),
            Ok(Expect {
                name: "API_KEY".into(),
                bytes: Some(44)
            })
        );
        assert_eq!(
            "A".parse::<Expect>(),
            Ok(Expect {
                name: "A".into(),
                bytes: None
            })
        );
        assert!("a/b".parse::<Expect>().is_err());
        assert!("A:x".parse::<Expect>().is_err());
        assert!(":1".parse::<Expect>().is_err());
    }
}
