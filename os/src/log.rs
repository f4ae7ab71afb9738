//! Diagnostics for both binaries: `tracing` events on stderr, one line each,
//! at the level `-v` asks for (warnings; `-v` info; `-vv` debug; `-vvv`
//! trace) or as `RUST_LOG` says (`debug`, or `vmcreds_guest=trace,warn`).
//! Under systemd (`$JOURNAL_STREAM` set) every line starts with the
//! priority prefix journald reads from a unit's stderr (`<7>` for debug) and
//! carries no timestamp, which journald adds.
//!
//! This is a small subscriber of its own rather than tracing-subscriber's
//! `fmt` with `EnvFilter`: that pulls a regex engine and a registry into a
//! static guest binary that must stay under 1 MB. Spans are not used; events
//! are.
//!
//! What is logged is never a value: callers pass names, sizes, counts and
//! paths, and every field is written with `Debug`, which escapes control
//! characters, so nothing logged can put a control sequence into a
//! terminal or a journal.

use std::fmt::{self, Write as _};
use std::io::Write as _;

use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata};

/// The level `-v` repeated `verbose` times asks for.
pub fn level_of(verbose: u8) -> LevelFilter {
    match verbose {
        0 => LevelFilter::WARN,
        1 => LevelFilter::INFO,
        2 => LevelFilter::DEBUG,
        _ => LevelFilter::TRACE,
    }
}

/// Which events to write: a default level and per-target ones.
#[derive(Clone, Debug, PartialEq)]
pub struct Filter {
    default: LevelFilter,
    targets: Vec<(String, LevelFilter)>,
}

impl Filter {
    /// Everything at `level` and above.
    pub fn at(level: LevelFilter) -> Filter {
        Filter {
            default: level,
            targets: Vec::new(),
        }
    }

    /// Parses `RUST_LOG`'s subset: comma-separated `LEVEL` or `TARGET=LEVEL`
    /// (`off`, `error`, `warn`, `info`, `debug`, `trace`), the longest
    /// matching target prefix winning. Unknown items are returned, so the
    /// caller can say so.
    pub fn parse(spec: &str, default: LevelFilter) -> (Filter, Vec<String>) {
        let mut f = Filter::at(default);
        let mut bad = Vec::new();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (target, level) = match item.split_once('=') {
                Some((t, l)) => (Some(t.trim()), l.trim()),
                None => (None, item),
            };
            match (target, level.parse::<LevelFilter>()) {
                (None, Ok(l)) => f.default = l,
                (Some(t), Ok(l)) if !t.is_empty() => f.targets.push((t.to_owned(), l)),
                _ => bad.push(item.to_owned()),
            }
        }
        (f, bad)
    }

    /// The level of the longest target that is `target` or a `::` prefix
    /// of it (the first of equally long ones), else the default. Found by
    /// a scan rather than kept sorted: a sort is some 4 KB of the static
    /// guest binary, which has a size budget.
    fn level_for(&self, target: &str) -> LevelFilter {
        let mut best: Option<&(String, LevelFilter)> = None;
        for t in &self.targets {
            let matches = target == t.0
                || target
                    .strip_prefix(t.0.as_str())
                    .is_some_and(|r| r.starts_with("::"));
            if matches && best.map_or(true, |b| t.0.len() > b.0.len()) {
                best = Some(t);
            }
        }
        best.map_or(self.default, |(_, l)| *l)
    }

    fn max(&self) -> LevelFilter {
        self.targets
            .iter()
            .map(|(_, l)| *l)
            .fold(self.default, std::cmp::max)
    }
}

/// The subscriber: events to stderr.
struct Stderr {
    program: &'static str,
    journald: bool,
    filter: Filter,
}

/// Writes the event's fields: the message first, then `key=value`.
struct Line {
    text: String,
}

/// Appends `s` with every control character escaped (`\n`, `\u{1b}`): a
/// field formatted with `Display` (`%x`) gets no escaping of its own.
fn push_escaped(out: &mut String, s: &str) {
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
}

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() != "message" {
            let _ = write!(self.text, " {}=", field.name());
        }
        push_escaped(&mut self.text, &format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.record_debug(field, &value);
    }
}

impl Stderr {
    /// The line for `e`.
    fn render(&self, e: &Event<'_>) -> String {
        let m = e.metadata();
        let mut line = Line {
            text: String::new(),
        };
        e.record(&mut line);
        let level = m.level().as_str().to_ascii_lowercase();
        if self.journald {
            format!("{}{level}: {}\n", priority(m.level()), line.text)
        } else {
            format!("{}: {level}: {}\n", self.program, line.text)
        }
    }
}

/// The journald priority prefix of a level (`sd-daemon(3)`).
fn priority(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "<3>",
        Level::WARN => "<4>",
        Level::INFO => "<6>",
        Level::DEBUG | Level::TRACE => "<7>",
    }
}

impl tracing::Subscriber for Stderr {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        self.filter.level_for(m.target()) >= *m.level()
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(self.filter.max())
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        // Spans are not used; every span gets the same id.
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, e: &Event<'_>) {
        let text = self.render(e);
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// Installs the subscriber for `program` (`vmcreds-host`): `RUST_LOG` when
/// set, else the level of `-v` × `verbose`.
pub fn init(program: &'static str, verbose: u8) {
    let default = level_of(verbose);
    let (filter, bad) = match std::env::var("RUST_LOG") {
        Ok(spec) => Filter::parse(&spec, default),
        Err(_) => (Filter::at(default), Vec::new()),
    };
    let journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let _ = tracing::subscriber::set_global_default(Stderr {
        program,
        journald,
        filter,
    });
    for item in bad {
        tracing::warn!(
            item = item.as_str(),
            "RUST_LOG item ignored: not LEVEL or TARGET=LEVEL"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_filter_parsing_and_prefixes() {
        let (f, bad) = Filter::parse(
            "info, vmcreds_guest=trace,vmcreds_guest::creds_dir=off,nonsense,=debug",
            LevelFilter::WARN,
        );
        assert_eq!(bad, ["nonsense", "=debug"]);
        assert_eq!(f.level_for("vmcreds_host::plan"), LevelFilter::INFO);
        assert_eq!(f.level_for("vmcreds_guest::observe"), LevelFilter::TRACE);
        assert_eq!(f.level_for("vmcreds_guest::creds_dir"), LevelFilter::OFF);
        assert_eq!(
            f.level_for("vmcreds_guestx"),
            LevelFilter::INFO,
            "a prefix ends at ::"
        );
        assert_eq!(f.max(), LevelFilter::TRACE);
        // The longest prefix wins wherever it is; of equal ones, the first.
        let (f, _) = Filter::parse(
            "a::b::c=debug,a=error,a::b=info,a::b=trace",
            LevelFilter::WARN,
        );
        assert_eq!(f.level_for("a::b::c::d"), LevelFilter::DEBUG);
        assert_eq!(f.level_for("a::b::x"), LevelFilter::INFO);
        assert_eq!(f.level_for("a::x"), LevelFilter::ERROR);
        assert_eq!(f.level_for("b"), LevelFilter::WARN);
        assert_eq!(level_of(0), LevelFilter::WARN);
        assert_eq!(level_of(9), LevelFilter::TRACE);
    }

    /// The real subscriber's lines, captured instead of written.
    struct Capture(Stderr, std::sync::Mutex<Vec<String>>);

    impl tracing::Subscriber for Capture {
        fn enabled(&self, m: &Metadata<'_>) -> bool {
            self.0.enabled(m)
        }
        fn new_span(&self, a: &Attributes<'_>) -> Id {
            self.0.new_span(a)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, e: &Event<'_>) {
            self.1.lock().unwrap().push(self.0.render(e));
        }
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }

    fn capture(journald: bool, f: impl FnOnce()) -> Vec<String> {
        let c = std::sync::Arc::new(Capture(
            Stderr {
                program: "vmcreds-test",
                journald,
                filter: Filter::at(LevelFilter::DEBUG),
            },
            std::sync::Mutex::new(Vec::new()),
        ));
        tracing::subscriber::with_default(c.clone(), f);
        let lines = c.1.lock().unwrap().clone();
        lines
    }

    #[test]
    fn test_lines_escaped_prefixed_and_filtered() {
        let hostile = "a\u{1b}[2Jb\nverdict: verified";
        let lines = capture(false, || {
            tracing::debug!(name = hostile, shown = %hostile, bytes = 44, "read {}", hostile);
            tracing::trace!("below the level");
        });
        assert_eq!(lines.len(), 1, "{lines:?}");
        let l = &lines[0];
        assert!(l.starts_with("vmcreds-test: debug: read "), "{l}");
        assert!(l.contains(" bytes=44"), "{l}");
        assert!(
            !l.contains('\u{1b}') && l.matches('\n').count() == 1,
            "escaped: {l:?}"
        );
        let j = capture(true, || tracing::info!("started"));
        assert_eq!(j, ["<6>info: started\n"]);
    }
}
