//! The DNS names a certificate is for: the `dNSName` entries of its
//! subjectAltName extension (RFC 5280 §4.2.1.6), which is what clients
//! check (RFC 6125 §6.4.4: the subject's common name is not consulted when
//! there is a SAN). Only that path through the DER is walked; the
//! certificate itself is parsed and checked by rustls/webpki when it is
//! loaded, so a certificate this reader gives up on simply has no names
//! (it can still be the default one).
//!
//! A small reader rather than an X.509 crate: four nested structures of one
//! well-known shape, with every length checked against what is left.

/// DER tags (X.690 §8.1.2), as the single identifier byte.
const SEQUENCE: u8 = 0x30;
const OID: u8 = 0x06;
const BOOLEAN: u8 = 0x01;
const OCTET_STRING: u8 = 0x04;
/// `[3] EXPLICIT Extensions` in `TBSCertificate`.
const EXTENSIONS: u8 = 0xa3;
/// `dNSName [2] IA5String` in `GeneralName`, implicitly tagged.
const DNS_NAME: u8 = 0x82;
/// id-ce-subjectAltName, 2.5.29.17.
const SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];

/// One tag-length-value: `(tag, content, rest)`, or `None` when `input`
/// does not start with a whole DER element of a single-byte tag.
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, input) = input.split_first()?;
    if tag & 0x1f == 0x1f {
        return None; // multi-byte tags do not occur on this path
    }
    let (&first, mut input) = input.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None; // indefinite lengths are not DER; 4 GiB is plenty
        }
        let (bytes, rest) = input.split_at_checked(n)?;
        input = rest;
        bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
    };
    let (content, rest) = input.split_at_checked(len)?;
    Some((tag, content, rest))
}

/// The elements of a constructed value's content, until the first that
/// does not parse.
fn elements(mut content: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    std::iter::from_fn(move || {
        let (tag, value, rest) = tlv(content)?;
        content = rest;
        Some((tag, value))
    })
}

/// The content of the only element of `input` when it has tag `want`.
fn expect(input: &[u8], want: u8) -> Option<&[u8]> {
    match tlv(input)? {
        (tag, content, _) if tag == want => Some(content),
        _ => None,
    }
}

/// The subjectAltName `dNSName`s of a DER certificate, lower case, in
/// order (`*.example.com` wildcards as written). Empty when it has none or
/// its DER is not the expected shape.
pub fn dns_names(cert_der: &[u8]) -> Vec<String> {
    san_value(cert_der)
        .map(|general_names| {
            elements(general_names)
                .filter(|(tag, _)| *tag == DNS_NAME)
                .filter_map(|(_, name)| std::str::from_utf8(name).ok())
                .filter(|name| name.is_ascii() && !name.is_empty())
                .map(str::to_ascii_lowercase)
                .collect()
        })
        .unwrap_or_default()
}

/// The `GeneralNames` content of the subjectAltName extension.
fn san_value(cert_der: &[u8]) -> Option<&[u8]> {
    // Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signature }
    let cert = expect(cert_der, SEQUENCE)?;
    let tbs = expect(cert, SEQUENCE)?;
    // TBSCertificate's optional [3] extensions come last; scan for it.
    let (_, extensions) = elements(tbs).find(|(tag, _)| *tag == EXTENSIONS)?;
    let extensions = expect(extensions, SEQUENCE)?;
    for (tag, extension) in elements(extensions) {
        if tag != SEQUENCE {
            continue;
        }
        // Extension ::= SEQUENCE { extnID, critical BOOLEAN DEFAULT FALSE, extnValue }
        let mut parts = elements(extension);
        match parts.next() {
            Some((OID, id)) if id == SUBJECT_ALT_NAME => {}
            _ => continue,
        }
        let value = match parts.next()? {
            (BOOLEAN, _) => parts.next()?,
            other => other,
        };
        if value.0 != OCTET_STRING {
            return None;
        }
        return expect(value.1, SEQUENCE);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn der(names: &[&str]) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().expect("key");
        let params = rcgen::CertificateParams::new(
            names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>(),
        )
        .expect("params");
        params.self_signed(&key).expect("cert").der().to_vec()
    }

    #[test]
    fn san_dns_names_are_read_in_order_rfc5280_4_2_1_6() {
        let cert = der(&["A.test", "*.b.test", "127.0.0.1", "c.test"]);
        // The IP address is an iPAddress entry, not a name.
        assert_eq!(dns_names(&cert), ["a.test", "*.b.test", "c.test"]);
    }

    #[test]
    fn a_certificate_without_names_has_none() {
        assert!(dns_names(&der(&[])).is_empty());
        assert!(dns_names(&der(&["10.0.0.1"])).is_empty());
    }

    #[test]
    fn truncated_or_garbage_der_gives_no_names_and_no_panic() {
        let cert = der(&["a.test"]);
        for cut in 0..cert.len() {
            let _ = dns_names(&cert[..cut]);
        }
        for junk in [
            &b""[..],
            b"\x30",
            b"\x30\x84\xff\xff\xff\xff",
            b"\x30\x80\x00\x00",
            b"\x1f\x00",
        ] {
            assert!(dns_names(junk).is_empty());
        }
        let mut flipped = cert.clone();
        for i in 0..flipped.len() {
            flipped[i] ^= 0xff;
            let _ = dns_names(&flipped);
            flipped[i] ^= 0xff;
        }
    }
}
