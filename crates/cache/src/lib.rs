//! The RFC 9111 cache core of Meridian: pure policy and storage, no HTTP
//! server or client. Everything that decides *whether* and *how long* a
//! response may be reused lives here, so the edge and the shield share one
//! implementation of every rule.

pub mod cache_control;
pub mod conditional;
pub mod policy;
pub mod range;

pub use cache_control::CacheControl;
pub use policy::{Freshness, NotStorable, Policy, Reuse};
pub mod coalesce;
pub mod encoding;
pub mod entry;
pub mod fields;
pub mod filling;
pub mod head;
pub mod key;
pub mod status;
pub mod store;
pub mod vary;

pub use coalesce::{Coalescer, Join, Outcome};
pub use entry::Entry;
pub use fields::Fields;
pub use filling::{FillBudget, FillError, FillHead, FillReader, FillState, FillWriter, Filling};
pub use head::HeadUpdate;
pub use key::{KeyOptions, cache_key};
pub use status::{CacheStatus, Fwd};
pub use store::{Lookup, MemoryStore, Selector, Storage, StoreStats};
pub use vary::Variant;
