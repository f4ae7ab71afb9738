//! Preconditions of tests (root, QEMU, a tool): one rule for every test of
//! both binaries. A test whose precondition is missing is skipped with a
//! line saying why, unless `VMCREDS_REQUIRE` (comma-separated words, or
//! `all`) names it: then it fails, since a skipped test proves nothing.
//! `.ci/run` sets `VMCREDS_REQUIRE=root,qemu` for `cargo xtask test`.
//!
//! Only tests call this; it is here so that the crates' unit tests and
//! integration tests share one copy.

/// True when `VMCREDS_REQUIRE` names `what` (or `all`).
pub fn required(what: &str) -> bool {
    required_in(std::env::var("VMCREDS_REQUIRE").ok().as_deref(), what)
}

/// [`required`] for a given value of `VMCREDS_REQUIRE`.
pub fn required_in(spec: Option<&str>, what: &str) -> bool {
    spec.unwrap_or_default()
        .split(',')
        .map(str::trim)
        .any(|w| w == what || w == "all")
}

/// `true` when `have`; otherwise skips (prints `skipped: WHY` on stderr
/// and returns `false`) or, when `VMCREDS_REQUIRE` names `what`, panics
/// with WHY.
pub fn have_or_skip(what: &str, have: bool, why: &str) -> bool {
    have_or_skip_in(
        std::env::var("VMCREDS_REQUIRE").ok().as_deref(),
        what,
        have,
        why,
    )
}

fn have_or_skip_in(spec: Option<&str>, what: &str, have: bool, why: &str) -> bool {
    if have {
        return true;
    }
    assert!(
        !required_in(spec, what),
        "VMCREDS_REQUIRE names {what}, but {why}"
    );
    eprintln!("skipped: {why}; VMCREDS_REQUIRE={what} makes this a failure");
    false
}

/// [`have_or_skip`] for running as root; `why` says what needs it.
pub fn root_or_skip(why: &str) -> bool {
    let uid = rustix::process::geteuid();
    have_or_skip(
        "root",
        uid.is_root(),
        &format!("the test runs as uid {}, not root ({why})", uid.as_raw()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_the_words_of_vmcreds_require() {
        assert!(required_in(Some("root,qemu"), "qemu"));
        assert!(required_in(Some(" root , qemu "), "root"));
        assert!(required_in(Some("all"), "cloud-hypervisor"));
        assert!(!required_in(Some("rootless"), "root"));
        assert!(!required_in(Some(""), "root"));
        assert!(!required_in(None, "root"));
    }

    #[test]
    fn test_a_missing_precondition_skips_or_fails() {
        assert!(have_or_skip_in(Some("qemu"), "qemu", true, "present"));
        assert!(!have_or_skip_in(Some("root"), "qemu", false, "no qemu"));
        assert!(!have_or_skip_in(None, "qemu", false, "no qemu"));
        let failed = std::panic::catch_unwind(|| {
            have_or_skip_in(Some("root,qemu"), "qemu", false, "qemu is not on PATH")
        })
        .expect_err("a required precondition that is missing fails");
        let msg = failed.downcast_ref::<String>().cloned().unwrap_or_default();
        assert_eq!(msg, "VMCREDS_REQUIRE names qemu, but qemu is not on PATH");
    }
}
