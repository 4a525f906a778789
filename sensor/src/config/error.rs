//! The one error type of the configuration layer.
//!
//! Every variant carries the file it came from, so a message read on its own (in a log, in a
//! terminal) says where to look. `Invalid` and `Missing` also name the key as a dotted path
//! (`flows.max_flows`, `sensor.home_networks[2]`), the offending value written as TOML, and what
//! would have been accepted. Syntax, unknown-key and type errors keep toml's own message, which
//! has the line, the column and, for an unknown key, the list of keys that are allowed.

use std::io;
use std::path::PathBuf;

/// A configuration file could not be read, parsed or validated.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read. The OS error is the `source`, so print the error with its
    /// chain (`{:#}` under anyhow) to see why.
    #[error("{}: cannot read the configuration file", path.display())]
    Io {
        /// The file that was being read.
        path: PathBuf,
        /// Why reading failed.
        source: io::Error,
    },

    /// The text is not valid TOML, has a key that does not exist, or a value of the wrong type.
    #[error("{}: {message}", path.display())]
    Parse {
        /// The file (or origin) the text came from.
        path: PathBuf,
        /// toml's message: line, column, and what was wrong.
        message: String,
    },

    /// A key is present and well-typed, but its value is not allowed.
    #[error("{}: {key} = {value} is invalid: expected {expected}", path.display())]
    Invalid {
        /// The file (or origin) the value came from.
        path: PathBuf,
        /// Dotted path of the key, e.g. `flows.max_flows` or `decode.vxlan_ports[1]`.
        key: String,
        /// The value as written in TOML, e.g. `0` or `"xdp"`.
        value: String,
        /// What would be valid, in plain words.
        expected: String,
    },

    /// A key that has no default is needed by the operation that asked for it.
    #[error("{}: {key} is not set: expected {expected}", path.display())]
    Missing {
        /// The file (or origin) the configuration came from.
        path: PathBuf,
        /// Dotted path of the missing key, e.g. `capture.interface`.
        key: String,
        /// What to set it to, in plain words.
        expected: String,
    },
}
