//! Small helpers shared by the subcommands: running processes, hashing, hex, time.
//!
//! Processes are run with `std::process::Command` and explicit argument lists, never
//! through a shell string, so paths with spaces or odd bytes stay intact.

use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};

/// Runs a command to completion, inheriting stdout and stderr; fails on a non-zero exit.
pub fn run(cmd: &mut Command) -> Result<()> {
    let shown = show(cmd);
    let status = cmd
        .status()
        .with_context(|| format!("could not run {shown}"))?;
    if !status.success() {
        bail!("{shown} failed: {status}");
    }
    Ok(())
}

/// Runs a command and returns its stdout; stderr is inherited; fails on a non-zero exit.
pub fn output(cmd: &mut Command) -> Result<String> {
    let shown = show(cmd);
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("could not run {shown}"))?;
    if !out.status.success() {
        bail!("{shown} failed: {}", out.status);
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A printable form of a command for messages (program and arguments, lossily).
pub fn show(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Packs the directory `dir` into a cpio newc archive at `out` (owner root, sorted names),
/// optionally compressed with `gzip -1`.
pub fn pack_cpio(dir: &Path, out: &Path, gzip: bool) -> Result<()> {
    let tmp = out.with_extension("part");
    let file =
        fs::File::create(&tmp).with_context(|| format!("could not create {}", tmp.display()))?;
    // `find` output is sorted so the archive is reproducible for identical trees.
    let list = output(Command::new("find").arg(".").current_dir(dir))?;
    let mut names: Vec<&str> = list.lines().collect();
    names.sort_unstable();
    let mut cpio = Command::new("cpio");
    cpio.args(["--quiet", "-o", "-H", "newc", "-R", "0:0"])
        .current_dir(dir)
        .stdin(Stdio::piped());
    let mut gz_child = None;
    if gzip {
        cpio.stdout(Stdio::piped());
    } else {
        cpio.stdout(file.try_clone()?);
    }
    let mut child = cpio.spawn().context("could not run cpio")?;
    if gzip {
        let out_pipe = child.stdout.take().expect("piped stdout");
        gz_child = Some(
            Command::new("gzip")
                .arg("-1")
                .stdin(Stdio::from(out_pipe))
                .stdout(file)
                .spawn()
                .context("could not run gzip")?,
        );
    }
    {
        let mut stdin = child.stdin.take().expect("piped stdin");
        for n in &names {
            stdin.write_all(n.as_bytes())?;
            stdin.write_all(b"\n")?;
        }
    }
    let st = child.wait()?;
    if !st.success() {
        bail!("cpio failed in {}: {st}", dir.display());
    }
    if let Some(mut gz) = gz_child {
        let st = gz.wait()?;
        if !st.success() {
            bail!("gzip failed: {st}");
        }
    }
    fs::rename(&tmp, out).with_context(|| format!("could not rename {}", tmp.display()))?;
    Ok(())
}

/// Polls `cond` until it returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub use vmcreds_common::digest::{hex, sha256};

/// Decodes the lowercase hex of a probe line (`od -tx1`), surrounding
/// whitespace ignored; `None` on odd length or a non-hex digit. The decoding
/// is common's, the one of the workspace.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    vmcreds_common::digest::hex_decode(s.trim())
}

/// Hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&sha256(data))
}

/// A cache key: the first 16 hex digits of the SHA-256 over the given parts
/// (each part length-prefixed so that parts cannot run into each other).
pub fn cache_key<I, T>(parts: I) -> String
where
    I: IntoIterator<Item = T>,
    T: AsRef<[u8]>,
{
    let mut buf = Vec::new();
    for p in parts {
        let p = p.as_ref();
        buf.extend_from_slice(&(p.len() as u64).to_le_bytes());
        buf.extend_from_slice(p);
    }
    sha256_hex(&buf)[..16].to_string()
}

/// The current UTC time as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// A compact timestamp for directory names (`YYYYMMDD-HHMMSS`).
pub fn stamp() -> String {
    utc_now()
        .replace(['-', ':'], "")
        .replace('T', "-")
        .trim_end_matches('Z')
        .to_string()
}

/// Creates `dir` (and parents), failing with the path in the message.
pub fn mkdirp(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("could not create {}", dir.display()))
}

/// Writes `data` to `path`, creating parent directories.
pub fn write_file(path: &Path, data: &[u8]) -> Result<()> {
    if let Some(p) = path.parent() {
        mkdirp(p)?;
    }
    fs::write(path, data).with_context(|| format!("could not write {}", path.display()))
}

/// Whether `prog` is found in `$PATH` (or is an existing path).
pub fn have(prog: impl AsRef<OsStr>) -> bool {
    let prog = prog.as_ref();
    if Path::new(prog).components().count() > 1 {
        return Path::new(prog).exists();
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .any(|d| d.join(prog).is_file())
}

/// Formats a duration as seconds with one decimal.
pub fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_known_answers() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let long = vec![b'a'; 1000];
        assert_eq!(
            sha256_hex(&long),
            "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3"
        );
    }

    #[test]
    fn hex_round_trip() {
        assert_eq!(hex(&[0, 0xff, 0x10]), "00ff10");
        assert_eq!(unhex("00ff10").unwrap(), vec![0, 0xff, 0x10]);
        assert_eq!(unhex(" 00ff10\n").unwrap(), vec![0, 0xff, 0x10]);
        assert_eq!(unhex("0"), None);
        assert_eq!(unhex("0g"), None);
    }

    #[test]
    fn utc_now_has_the_shape() {
        let s = utc_now();
        assert_eq!(s.len(), 20, "{s}");
        assert!(s.ends_with('Z'));
    }
}
