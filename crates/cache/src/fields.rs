//! A stored response's header fields in compact form. An `http::HeaderMap`
//! costs about 112 bytes per field plus spare capacity (measured: 912 bytes
//! for a typical 7-field response), which would dwarf a small object's
//! body. Here every value lives in one shared buffer, common names come from
//! a static table, and each field costs 12 bytes of index. A hit rebuilds a
//! `HeaderMap` from it: the values are slices of the buffer (reference
//! counts, no copies).

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http::header::{self, HeaderName, HeaderValue};

/// Names stored as a one-byte index. Everything here is a constant, so
/// cloning one is free.
static COMMON: [HeaderName; 40] = [
    header::ACCEPT_RANGES,
    header::AGE,
    header::CACHE_CONTROL,
    header::CONTENT_DISPOSITION,
    header::CONTENT_ENCODING,
    header::CONTENT_LANGUAGE,
    header::CONTENT_LENGTH,
    header::CONTENT_LOCATION,
    header::CONTENT_RANGE,
    header::CONTENT_SECURITY_POLICY,
    header::CONTENT_TYPE,
    header::DATE,
    header::ETAG,
    header::EXPIRES,
    header::LAST_MODIFIED,
    header::LINK,
    header::LOCATION,
    header::SERVER,
    header::SET_COOKIE,
    header::STRICT_TRANSPORT_SECURITY,
    header::VARY,
    header::VIA,
    header::WARNING,
    header::ACCESS_CONTROL_ALLOW_ORIGIN,
    header::ACCESS_CONTROL_ALLOW_METHODS,
    header::ACCESS_CONTROL_ALLOW_HEADERS,
    header::ACCESS_CONTROL_EXPOSE_HEADERS,
    header::ACCESS_CONTROL_MAX_AGE,
    header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
    header::X_CONTENT_TYPE_OPTIONS,
    header::X_FRAME_OPTIONS,
    header::X_XSS_PROTECTION,
    header::REFERRER_POLICY,
    HeaderName::from_static("timing-allow-origin"),
    HeaderName::from_static("cache-status"),
    HeaderName::from_static("cdn-cache-control"),
    HeaderName::from_static("surrogate-control"),
    HeaderName::from_static("surrogate-key"),
    HeaderName::from_static("cache-tag"),
    HeaderName::from_static("x-cache"),
];

#[derive(Debug, Clone, Copy)]
struct Field {
    /// Below `COMMON.len()`: an index into `COMMON`; else into `names`.
    name: u16,
    start: u32,
    len: u32,
}

/// Compact, immutable header fields, in their original order.
#[derive(Debug, Clone, Default)]
pub struct Fields {
    block: Bytes,
    index: Box<[Field]>,
    /// Names not in the common table.
    names: Box<[HeaderName]>,
}

impl Fields {
    /// Copies `h` into compact form (one allocation for all values).
    pub fn from_map(h: &HeaderMap) -> Fields {
        let total: usize = h.iter().map(|(_, v)| v.len()).sum();
        let mut block = BytesMut::with_capacity(total);
        let mut index = Vec::with_capacity(h.len());
        let mut names: Vec<HeaderName> = Vec::new();
        for (name, value) in h {
            let id = match COMMON.iter().position(|c| c == name) {
                Some(i) => i,
                None => match names.iter().position(|n| n == name) {
                    Some(i) => COMMON.len() + i,
                    None => {
                        names.push(name.clone());
                        COMMON.len() + names.len() - 1
                    }
                },
            };
            let start = block.len();
            block.extend_from_slice(value.as_bytes());
            // Header blocks are far below 4 GiB and 65k distinct names.
            index.push(Field {
                name: u16::try_from(id).unwrap_or(u16::MAX),
                start: u32::try_from(start).unwrap_or(u32::MAX),
                len: u32::try_from(value.len()).unwrap_or(0),
            });
        }
        Fields {
            block: block.freeze(),
            index: index.into_boxed_slice(),
            names: names.into_boxed_slice(),
        }
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Bytes held: values, index and uncommon names.
    pub fn weight(&self) -> usize {
        self.block.len()
            + self.index.len() * std::mem::size_of::<Field>()
            + self
                .names
                .iter()
                .map(|n| n.as_str().len() + 32)
                .sum::<usize>()
    }

    fn name_of(&self, f: &Field) -> Option<&HeaderName> {
        let i = usize::from(f.name);
        if i < COMMON.len() {
            COMMON.get(i)
        } else {
            self.names.get(i - COMMON.len())
        }
    }

    fn value_of(&self, f: &Field) -> Option<HeaderValue> {
        let (s, e) = (f.start as usize, f.start as usize + f.len as usize);
        if e > self.block.len() {
            return None;
        }
        // The bytes came from a valid HeaderValue, so this re-check passes.
        HeaderValue::from_maybe_shared(self.block.slice(s..e)).ok()
    }

    /// Every field in order.
    pub fn iter(&self) -> impl Iterator<Item = (&HeaderName, HeaderValue)> + '_ {
        self.index
            .iter()
            .filter_map(|f| Some((self.name_of(f)?, self.value_of(f)?)))
    }

    /// The first value of `name`.
    pub fn get(&self, name: &HeaderName) -> Option<HeaderValue> {
        self.index
            .iter()
            .find(|f| self.name_of(f) == Some(name))
            .and_then(|f| self.value_of(f))
    }

    pub fn contains(&self, name: &HeaderName) -> bool {
        self.index.iter().any(|f| self.name_of(f) == Some(name))
    }

    /// A `HeaderMap` with room for `extra` more fields.
    pub fn to_map(&self, extra: usize) -> HeaderMap {
        let mut h = HeaderMap::with_capacity(self.index.len() + extra);
        for (name, value) in self.iter() {
            h.append(name.clone(), value);
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_order_repeats_and_uncommon_names() {
        let mut h = HeaderMap::new();
        h.append(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        h.append("x-thing", HeaderValue::from_static("a"));
        h.append("x-thing", HeaderValue::from_static("b"));
        h.append(header::ETAG, HeaderValue::from_static("\"e\""));
        h.append("x-other", HeaderValue::from_static(""));
        let f = Fields::from_map(&h);
        assert_eq!(f.len(), 5);
        assert_eq!(f.to_map(0), h);
        assert_eq!(
            f.get(&header::ETAG).as_ref().map(HeaderValue::as_bytes),
            Some(&b"\"e\""[..])
        );
        assert_eq!(
            f.get(&HeaderName::from_static("x-thing"))
                .as_ref()
                .map(HeaderValue::as_bytes),
            Some(&b"a"[..])
        );
        assert!(f.get(&header::LOCATION).is_none());
        assert!(f.contains(&header::CONTENT_TYPE));
    }

    #[test]
    fn values_share_one_buffer() {
        let mut h = HeaderMap::new();
        h.append(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        h.append(header::ETAG, HeaderValue::from_static("\"e\""));
        let m = Fields::from_map(&h).to_map(0);
        let a = m[header::CONTENT_TYPE].as_bytes().as_ptr() as usize;
        let b = m[header::ETAG].as_bytes().as_ptr() as usize;
        assert_eq!(b - a, "text/plain".len());
    }

    #[test]
    fn index_is_small() {
        assert!(std::mem::size_of::<Field>() <= 12);
    }
}
