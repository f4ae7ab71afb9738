//! Which QEMU releases can carry `-smbios type=11,path=` intact.
//!
//! `path=` came with QEMU 5.2 (`bb99f4772f5`). Until `a7a05f5f6a40`
//! "smbios: Fix buffer overrun when using path= option" (QEMU GitLab #2879)
//! QEMU kept the file's bytes without a terminating NUL and read them with
//! `strlen`: a credential could arrive with garbage appended, or QEMU could
//! crash. The fix is in 10.0.0 and in the stable releases 9.2.4 (`d1960fafec`)
//! and 7.2.18 (`eafb095ea4`), both of 2025-05-29. Distributions backport it
//! without changing the upstream version (Debian's 7.2 tracks the 7.2.y
//! stable releases; Ubuntu backported it to its 8.2.2, LP #2127974), so an
//! old-looking version is refused with an override, not forbidden.

use std::fmt;

use thiserror::Error;

/// A QEMU version as `--version` prints it (`QEMU emulator version 7.2.22`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct QemuVersion {
    /// Major.
    pub major: u32,
    /// Minor.
    pub minor: u32,
    /// Micro: 50 and above are development snapshots, 90 and above release
    /// candidates of the next minor or major release.
    pub micro: u32,
}

impl fmt::Display for QemuVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.micro)
    }
}

/// `--qemu-version` that is not `X.Y.Z` (or `X.Y`).
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("expected a QEMU version such as 9.2.4")]
pub struct BadVersion;

impl std::str::FromStr for QemuVersion {
    type Err = BadVersion;

    fn from_str(s: &str) -> Result<Self, BadVersion> {
        let mut parts = s.split('.');
        let mut next = |required: bool| match parts.next() {
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse().map_err(|_| BadVersion)
            }
            None if !required => Ok(0),
            _ => Err(BadVersion),
        };
        let v = QemuVersion {
            major: next(true)?,
            minor: next(true)?,
            micro: next(false)?,
        };
        if parts.next().is_some() {
            return Err(BadVersion);
        }
        Ok(v)
    }
}

impl QemuVersion {
    /// The version in `qemu-system-* --version` output: the first line is
    /// `QEMU emulator version X.Y.Z` followed by an optional package
    /// version in parentheses.
    pub fn from_version_output(out: &[u8]) -> Option<QemuVersion> {
        let text = std::str::from_utf8(out.get(..out.len().min(4096))?).ok()?;
        let rest = text
            .lines()
            .next()?
            .strip_prefix("QEMU emulator version ")?;
        let word = rest.split_whitespace().next()?;
        // `8.2.2` or `10.1.0-rc1`-like suffixes: the numeric part.
        let numeric = word.split(['-', '+', '~']).next()?;
        numeric.parse().ok()
    }

    /// What this release does with `-smbios type=11,path=`.
    pub fn path_option(self) -> PathOption {
        let v = (self.major, self.minor, self.micro);
        if v < (5, 2, 0) {
            // 5.1.50+ are 5.2 development snapshots; whether one has
            // `path=` depends on the day, so 5.2.0 is the line.
            PathOption::Missing
        } else if v >= (10, 0, 0) {
            PathOption::Fixed
        } else if (self.major, self.minor) == (9, 2) {
            match self.micro {
                0..=3 => PathOption::Overruns,
                4..=49 => PathOption::Fixed,
                // 9.2.50+: 10.0 development and release candidates; the fix
                // was pulled on 2025-04-08, during the release candidates.
                _ => PathOption::Unknown,
            }
        } else if (self.major, self.minor) == (7, 2) && (18..50).contains(&self.micro) {
            PathOption::Fixed
        } else {
            PathOption::Overruns
        }
    }
}

/// What a QEMU release does with `-smbios type=11,path=`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathOption {
    /// Before 5.2: no `path=` at all; QEMU refuses the option.
    Missing,
    /// Reads the file without a terminating NUL (`a7a05f5f6a40` missing).
    Overruns,
    /// Has the fix.
    Fixed,
    /// A development snapshot from around the fix.
    Unknown,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> QemuVersion {
        s.parse().unwrap()
    }

    #[test]
    fn test_parse() {
        assert_eq!(
            v("7.2.22"),
            QemuVersion {
                major: 7,
                minor: 2,
                micro: 22
            }
        );
        assert_eq!(v("10.0"), v("10.0.0"));
        for bad in [
            "",
            "10",
            "10.",
            "1.2.3.4",
            "a.b.c",
            "1.-2.3",
            "99999999999.0.0",
            " 9.2.4",
        ] {
            assert_eq!(bad.parse::<QemuVersion>(), Err(BadVersion), "{bad:?}");
        }
    }

    #[test]
    fn test_from_version_output() {
        let debian = b"QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\nCopyright (c) 2003-2022 Fabrice Bellard and the QEMU Project developers\n";
        assert_eq!(QemuVersion::from_version_output(debian), Some(v("7.2.22")));
        assert_eq!(
            QemuVersion::from_version_output(b"QEMU emulator version 10.1.0\n"),
            Some(v("10.1.0"))
        );
        assert_eq!(
            QemuVersion::from_version_output(b"QEMU emulator version 9.2.90-rc0\n"),
            Some(v("9.2.90"))
        );
        for other in [
            &b""[..],
            b"sh: 0: Illegal option --\n",
            b"taskset from util-linux 2.38.1\n",
            b"\xff\xfe",
            b"QEMU emulator version \n",
            b"Copyright\nQEMU emulator version 9.2.4\n",
        ] {
            assert_eq!(QemuVersion::from_version_output(other), None, "{other:?}");
        }
    }

    #[test]
    fn test_path_option_by_release() {
        use PathOption::*;
        for (version, want) in [
            ("5.1.0", Missing),
            ("5.1.50", Missing),
            ("5.2.0", Overruns),
            ("6.2.0", Overruns),
            ("7.2.0", Overruns),
            ("7.2.17", Overruns),
            ("7.2.18", Fixed),
            ("7.2.22", Fixed),
            ("7.2.50", Overruns), // 8.0 development
            ("8.0.0", Overruns),
            ("8.2.2", Overruns), // Ubuntu's backport is not visible here
            ("9.1.3", Overruns),
            ("9.2.0", Overruns),
            ("9.2.3", Overruns),
            ("9.2.4", Fixed),
            ("9.2.90", Unknown),
            ("10.0.0", Fixed),
            ("10.2.1", Fixed),
            ("11.0.0", Fixed),
        ] {
            assert_eq!(v(version).path_option(), want, "{version}");
        }
    }
}
