//! placeholder
/// Runs the self-test.
pub fn run() -> anyhow::Result<()> {
    anyhow::bail!("selftest: not built yet")
}
