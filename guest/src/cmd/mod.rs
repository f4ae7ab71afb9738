//! One module per subcommand.

pub mod check;
pub mod get;
pub mod import;
pub mod install_unit;
pub mod list;
