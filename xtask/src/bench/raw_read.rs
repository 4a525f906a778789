//! `xtask raw-read FILE` (hidden): the bench's floor. Reads the file with `read()` into a
//! 1 MiB buffer and discards it, so its time is what any reader of that file must spend.

use std::fs::File;
use std::hint::black_box;
use std::io::{ErrorKind, Read};
use std::path::Path;

use anyhow::{Context, Result};

pub fn run(file: &Path) -> Result<()> {
    let mut input = File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let mut buffer = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        match input.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => total += n as u64,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e).with_context(|| format!("reading {}", file.display())),
        }
        black_box(&buffer);
    }
    println!("bytes={total}");
    Ok(())
}
