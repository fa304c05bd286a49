//! `meridian edge`: placeholder until its issue lands.

#[derive(clap::Args)]
pub struct EdgeArgs {}

pub fn main(_args: EdgeArgs) -> anyhow::Result<()> {
    anyhow::bail!("`meridian edge` is not built yet")
}
