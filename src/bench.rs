//! `sluice bench`: load generators for the figures in BENCHMARKS.md.

use clap::Args;

#[derive(Args, Debug)]
pub struct BenchArgs {}

pub async fn run(_args: BenchArgs) -> anyhow::Result<()> {
    Ok(())
}
