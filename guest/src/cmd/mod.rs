//! One module per subcommand.

pub mod check;
pub mod get;
pub mod import;
pub mod install_unit;
pub mod list;

/// Writes all of `bytes` to stdout and flushes; a closed pipe is not an error.
pub fn write_stdout(bytes: &[u8]) -> crate::exit::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|_| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(crate::dest::SendError {
            dest: "stdout".into(),
            source: e,
        }
        .into()),
        _ => Ok(()),
    }
}
