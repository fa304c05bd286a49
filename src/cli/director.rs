//! `meridian director`: placeholder until its issue lands.

#[derive(clap::Args)]
pub struct DirectorArgs {}

pub fn main(_args: DirectorArgs) -> anyhow::Result<()> {
    anyhow::bail!("`meridian director` is not built yet")
}
