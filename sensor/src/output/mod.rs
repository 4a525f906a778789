//! Where records go: files, standard output, or nowhere.

pub mod flow_json;
pub mod flow_meta;

use std::fs::OpenOptions;
use std::io::Write;

use crate::config::OutputTarget;

/// Opens an output target for appending JSON lines. `None` means "write
/// nothing". Errors name the file.
pub fn open(target: &OutputTarget) -> anyhow::Result<Option<Box<dyn Write + Send>>> {
    use anyhow::Context as _;
    Ok(match target {
        OutputTarget::None => None,
        OutputTarget::Stdout => Some(Box::new(std::io::stdout())),
        OutputTarget::File(path) => {
            // Appended, never truncated: a restart (a service restart, an upgrade, a reload
            // that reopens the file) must not throw away the records already written.
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("{}: cannot open output file for writing", path.display()))?;
            Some(Box::new(file))
        }
    })
}

/// Parses a command-line output path: `-` is standard output, anything else a file.
pub fn target_from_arg(arg: &str) -> OutputTarget {
    match arg {
        "-" => OutputTarget::Stdout,
        "" => OutputTarget::None,
        path => OutputTarget::File(path.into()),
    }
}
