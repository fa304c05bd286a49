//! The seeded workload: client addresses sampled from the networks of the
//! geo database, assets with Zipf popularity, think times. (Being written.)

use std::path::Path;

use crate::Error;
use crate::model::{AssetRef, Workload, WorkloadParams};

/// The networks of a geo database, grouped by country, to draw client
/// addresses from.
pub struct Places {
    _private: (),
}

impl Places {
    /// Reads every network of the database files (the director's `geoip`).
    pub fn open(_paths: &[impl AsRef<Path>]) -> Result<Places, Error> {
        Err(Error::Geo("not yet".into()))
    }

    /// Which files, and how many networks and countries they hold.
    pub fn describe(&self) -> String {
        String::new()
    }
}

/// The sample site's assets, as the workload asks for them.
pub fn site_assets(_site: &meridian_origin::SampleSite) -> Vec<AssetRef> {
    Vec::new()
}

/// The workload for `params`: the same inputs give the same workload.
pub fn generate(
    _params: &WorkloadParams,
    _assets: &[AssetRef],
    _places: &Places,
) -> Result<Workload, Error> {
    Err(Error::Workload("not yet".into()))
}
