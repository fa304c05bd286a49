//! `meridian origin`: placeholder until its issue lands.

#[derive(clap::Args)]
pub struct OriginArgs {}

pub fn main(_args: OriginArgs) -> anyhow::Result<()> {
    anyhow::bail!("`meridian origin` is not built yet")
}
