//! Where internet users are: the per-country weight table clients are
//! drawn with, and each country's region. (Being written.)

use crate::model::Region;

/// The region (continent) of an ISO 3166 country code.
pub fn region_of(_country: &str) -> Option<Region> {
    None
}
