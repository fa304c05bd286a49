//! The RFC 9111 cache core of Meridian: pure policy and storage, no HTTP
//! server or client. Everything that decides *whether* and *how long* a
//! response may be reused lives here, so the edge and the shield share one
//! implementation of every rule.

pub mod conditional;
pub mod range;
