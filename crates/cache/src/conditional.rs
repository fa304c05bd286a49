//! RFC 9110 §13 conditional requests (placeholder: being written).
