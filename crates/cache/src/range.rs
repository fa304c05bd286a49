//! RFC 9110 §14 range requests (placeholder: being written).
