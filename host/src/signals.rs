//! Stop signals while credential files exist on disk (`qemu --runtime-dir`).
//!
//! Every signal whose default action ends the process and that can be
//! caught is blocked ([`StopSignals::block`]) before the files are created,
//! so none can end vmcreds-host between their creation and their removal:
//! it stays pending and [`StopSignals::wait`] takes it, with `SIGCHLD`, in
//! the one thread that supervises the hypervisor. `SIGKILL` cannot be
//! caught: the files then stay, but the hypervisor gets
//! [`PARENT_DEATH_SIGNAL`] (`PR_SET_PDEATHSIG`), so it never runs
//! unsupervised. `SIGPIPE` stays ignored, as Rust programs have it: a closed
//! stdout or stderr must not stop the VM.

use std::io;

/// What the hypervisor gets when vmcreds-host dies without cleaning up.
pub const PARENT_DEATH_SIGNAL: rustix::process::Signal = rustix::process::Signal::TERM;

/// The signals that end a process by default and can be caught (`SIGPIPE`
/// aside): the standard ones, then the real-time range.
pub fn stop_signals() -> Vec<libc::c_int> {
    let mut v = vec![
        libc::SIGHUP,
        libc::SIGINT,
        libc::SIGQUIT,
        libc::SIGILL,
        libc::SIGTRAP,
        libc::SIGABRT,
        libc::SIGBUS,
        libc::SIGFPE,
        libc::SIGUSR1,
        libc::SIGSEGV,
        libc::SIGUSR2,
        libc::SIGALRM,
        libc::SIGTERM,
        libc::SIGSTKFLT,
        libc::SIGXCPU,
        libc::SIGXFSZ,
        libc::SIGVTALRM,
        libc::SIGPROF,
        libc::SIGIO,
        libc::SIGPWR,
        libc::SIGSYS,
    ];
    v.extend(libc::SIGRTMIN()..=libc::SIGRTMAX());
    v
}

/// A name for messages: `SIGTERM`, `SIGRTMIN+3`, or the number.
pub fn name(sig: libc::c_int) -> String {
    let known = [
        (libc::SIGHUP, "SIGHUP"),
        (libc::SIGINT, "SIGINT"),
        (libc::SIGQUIT, "SIGQUIT"),
        (libc::SIGILL, "SIGILL"),
        (libc::SIGTRAP, "SIGTRAP"),
        (libc::SIGABRT, "SIGABRT"),
        (libc::SIGBUS, "SIGBUS"),
        (libc::SIGFPE, "SIGFPE"),
        (libc::SIGUSR1, "SIGUSR1"),
        (libc::SIGSEGV, "SIGSEGV"),
        (libc::SIGUSR2, "SIGUSR2"),
        (libc::SIGALRM, "SIGALRM"),
        (libc::SIGTERM, "SIGTERM"),
        (libc::SIGSTKFLT, "SIGSTKFLT"),
        (libc::SIGXCPU, "SIGXCPU"),
        (libc::SIGXFSZ, "SIGXFSZ"),
        (libc::SIGVTALRM, "SIGVTALRM"),
        (libc::SIGPROF, "SIGPROF"),
        (libc::SIGIO, "SIGIO"),
        (libc::SIGPWR, "SIGPWR"),
        (libc::SIGSYS, "SIGSYS"),
        (libc::SIGCHLD, "SIGCHLD"),
    ];
    match known.iter().find(|(s, _)| *s == sig) {
        Some((_, n)) => (*n).to_owned(),
        None if (libc::SIGRTMIN()..=libc::SIGRTMAX()).contains(&sig) => {
            format!("SIGRTMIN+{}", sig - libc::SIGRTMIN())
        }
        None => format!("signal {sig}"),
    }
}

/// The signal a stop request is passed on to the hypervisor as: `SIGINT`,
/// `SIGHUP` and `SIGTERM` as they are (QEMU shuts down on each), any other
/// as `SIGTERM` (QEMU would dump core on `SIGQUIT`, with the guest's memory,
/// and ignore `SIGUSR1`).
pub fn forwarded_as(sig: libc::c_int) -> rustix::process::Signal {
    use rustix::process::Signal;
    match sig {
        libc::SIGINT => Signal::INT,
        libc::SIGHUP => Signal::HUP,
        _ => Signal::TERM,
    }
}

/// The stop signals and `SIGCHLD`, blocked in this thread; dropping it
/// restores the mask it found.
pub struct StopSignals {
    set: libc::sigset_t,
    old: libc::sigset_t,
}

impl std::fmt::Debug for StopSignals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StopSignals")
    }
}

impl StopSignals {
    /// Blocks [`stop_signals`] and `SIGCHLD` in the calling thread. Call it
    /// from the thread that will [`StopSignals::wait`], while it is the only
    /// one (threads made later inherit the mask).
    pub fn block() -> io::Result<StopSignals> {
        // SAFETY: sigset_t is plain data; sigemptyset initialises it.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: as above, filled by pthread_sigmask below.
        let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is a valid, exclusively borrowed sigset_t.
        if unsafe { libc::sigemptyset(&mut set) } != 0 {
            return Err(io::Error::last_os_error());
        }
        for sig in stop_signals().into_iter().chain([libc::SIGCHLD]) {
            // SAFETY: as above; `sig` is a valid signal number of this system.
            if unsafe { libc::sigaddset(&mut set, sig) } != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        // SAFETY: both pointers are to valid sigset_t values owned here.
        let r = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old) };
        if r != 0 {
            return Err(io::Error::from_raw_os_error(r));
        }
        Ok(StopSignals { set, old })
    }

    /// Waits for the next blocked signal and returns it (`SIGCHLD` too).
    pub fn wait(&self) -> io::Result<libc::c_int> {
        loop {
            // SAFETY: `self.set` is a valid sigset_t; a null siginfo is allowed.
            let sig = unsafe { libc::sigwaitinfo(&self.set, std::ptr::null_mut()) };
            if sig >= 0 {
                return Ok(sig);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

impl StopSignals {
    /// Leaves the signals blocked until the process exits: a stop request
    /// that comes after the files are gone then ends nothing early, and the
    /// exit status stays the hypervisor's.
    pub fn keep_blocked(self) {
        std::mem::forget(self);
    }
}

impl Drop for StopSignals {
    fn drop(&mut self) {
        // SAFETY: `self.old` is the valid mask saved by `block`.
        unsafe {
            libc::pthread_sigmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_the_set_and_its_names() {
        let s = stop_signals();
        for sig in [
            libc::SIGQUIT,
            libc::SIGUSR1,
            libc::SIGUSR2,
            libc::SIGALRM,
            libc::SIGXCPU,
            libc::SIGXFSZ,
            libc::SIGVTALRM,
            libc::SIGPROF,
            libc::SIGRTMIN(),
            libc::SIGRTMAX(),
        ] {
            assert!(s.contains(&sig), "{}", name(sig));
        }
        for never in [libc::SIGKILL, libc::SIGSTOP, libc::SIGPIPE, libc::SIGCHLD] {
            assert!(!s.contains(&never), "{}", name(never));
        }
        assert_eq!(name(libc::SIGRTMIN() + 2), "SIGRTMIN+2");
        assert_eq!(forwarded_as(libc::SIGQUIT), rustix::process::Signal::TERM);
        assert_eq!(forwarded_as(libc::SIGHUP), rustix::process::Signal::HUP);
    }

    #[test]
    fn test_a_blocked_signal_waits_for_wait() {
        // In a thread of its own, so the test harness's threads are untouched;
        // a thread-directed signal stays with that thread.
        std::thread::spawn(|| {
            let b = StopSignals::block().unwrap();
            // SAFETY: sending a blocked signal to this very thread.
            unsafe { libc::pthread_kill(libc::pthread_self(), libc::SIGUSR2) };
            assert_eq!(b.wait().unwrap(), libc::SIGUSR2);
        })
        .join()
        .unwrap();
    }
}
