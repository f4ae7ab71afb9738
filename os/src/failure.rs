//! Errors that know how they end the process. Each binary has its own exit
//! enum `X`; every error type says its exit ([`Classify<X>`]); a
//! [`Failure<X>`] carries an error to `main` with that exit, through any
//! context added on the way; `main` alone turns `X` into a number.

use std::fmt::Display;

/// An error that knows which exit of kind `X` it means.
pub trait Classify<X> {
    /// The exit this error ends the process with.
    fn exit(&self) -> X;
}

/// An error on its way to `main`: the chain to print once, and its exit.
#[derive(Debug)]
pub struct Failure<X> {
    exit: X,
    error: anyhow::Error,
}

impl<X: Copy> Failure<X> {
    /// A failure with an explicit exit.
    pub fn new(exit: X, error: impl Into<anyhow::Error>) -> Failure<X> {
        Failure {
            exit,
            error: error.into(),
        }
    }

    /// The exit it ends the process with.
    pub fn exit(&self) -> X {
        self.exit
    }

    /// The error chain, for printing (`{:#}`).
    pub fn error(&self) -> &anyhow::Error {
        &self.error
    }

    /// Adds context to the message; the exit stays.
    pub fn context<C: Display + Send + Sync + 'static>(self, context: C) -> Failure<X> {
        Failure {
            exit: self.exit,
            error: self.error.context(context),
        }
    }
}

impl<X, E> From<E> for Failure<X>
where
    E: Classify<X> + std::error::Error + Send + Sync + 'static,
{
    fn from(e: E) -> Failure<X> {
        Failure {
            exit: e.exit(),
            error: anyhow::Error::new(e),
        }
    }
}

/// Context on results whose error knows its exit.
pub trait ResultExt<T, X> {
    /// Adds context; the exit stays the error's.
    fn context<C: Display + Send + Sync + 'static>(self, context: C) -> Result<T, Failure<X>>;
    /// Adds lazily built context; the exit stays the error's.
    fn with_context<C: Display + Send + Sync + 'static, F: FnOnce() -> C>(
        self,
        f: F,
    ) -> Result<T, Failure<X>>;
}

impl<T, X: Copy, E: Into<Failure<X>>> ResultExt<T, X> for Result<T, E> {
    fn context<C: Display + Send + Sync + 'static>(self, context: C) -> Result<T, Failure<X>> {
        self.map_err(|e| e.into().context(context))
    }

    fn with_context<C: Display + Send + Sync + 'static, F: FnOnce() -> C>(
        self,
        f: F,
    ) -> Result<T, Failure<X>> {
        self.map_err(|e| e.into().context(f()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Exit {
        Io,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("cannot open x")]
    struct Open(#[source] std::io::Error);

    impl Classify<Exit> for Open {
        fn exit(&self) -> Exit {
            Exit::Io
        }
    }

    #[test]
    fn test_context_keeps_the_exit() {
        let r: Result<(), Open> = Err(Open(std::io::ErrorKind::NotFound.into()));
        let f: Failure<Exit> = r.context("loading").unwrap_err();
        assert_eq!(f.exit(), Exit::Io);
        assert_eq!(
            format!("{:#}", f.error()),
            "loading: cannot open x: entity not found"
        );
    }
}
