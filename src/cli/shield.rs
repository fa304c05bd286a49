//! `meridian shield`: placeholder until its issue lands.

#[derive(clap::Args)]
pub struct ShieldArgs {}

pub fn main(_args: ShieldArgs) -> anyhow::Result<()> {
    anyhow::bail!("`meridian shield` is not built yet")
}
