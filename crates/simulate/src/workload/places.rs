//! The networks of a geo database, grouped by country, kept as compact
//! address ranges to draw client addresses from.
//!
//! Memory is bounded by the number of networks, never by addresses: a
//! country's networks are kept as ranges (adjacent networks with the same
//! location merged into one), 16 bytes each for IPv4, with the distinct
//! locations stored once. The shipped country-centre database (1.27
//! million networks) becomes 334,000 IPv4 ranges, 5 MiB; a full City
//! database (a few million IPv4 networks) some tens of MiB. IPv6 networks
//! are only kept for a country without IPv4 space (see [`Places`]).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ipnet::IpNet;
use meridian_geo_director::{CountryCode, Geo, MaxMindFiles, Network, Precision, is_special};
use rand::Rng;
use rand_pcg::Pcg64;

use crate::Error;

/// At most this many networks are read from the geo database files (a
/// full City database holds a few million; a corrupt search tree could
/// claim far more).
pub const MAX_NETWORKS: u64 = 50_000_000;

/// The networks of a geo database, grouped by country, to draw client
/// addresses from.
///
/// A country's clients get IPv4 addresses, drawn uniformly over all of
/// its IPv4 space; only a country with no IPv4 network gets IPv6 ones.
/// The sizes of IPv6 allocations (a /32 is 2^96 addresses) say nothing
/// about how many people use them, so weighing them against IPv4 by size
/// would make every client IPv6 (the same choice as `meridian-geo-build`
/// makes for country centres).
pub struct Places {
    files: Vec<PathBuf>,
    /// Sorted by code; each with at least one range.
    countries: Vec<Country>,
    /// Every distinct location, once; ranges refer to them by index.
    geos: Vec<Geo>,
    read: Read,
}

/// What reading the files found.
#[derive(Debug, Default, Clone, Copy)]
struct Read {
    v4: u64,
    v6: u64,
    /// No usable location (no coordinates, no country with a centre).
    unlocated: u64,
    /// Located, but without a country (no weight, no region).
    no_country: u64,
    /// Wholly private or reserved: the director never looks those up.
    special: u64,
}

struct Country {
    code: CountryCode,
    v4: Spans<u32>,
    v6: Spans<u128>,
    /// The location of its last network, and its index (while reading).
    last: Option<(Geo, u32)>,
}

/// The files a [`Places::open_shared`] read, as they were (length and
/// modification time of each), and what it made of them.
type Opened = (
    Vec<(PathBuf, u64, Option<std::time::SystemTime>)>,
    Arc<Places>,
);

/// The last [`Places::open_shared`] of this process.
static LAST_OPENED: Mutex<Option<Opened>> = Mutex::new(None);

impl Places {
    /// As [`Places::open`], but a process that asks again for the same
    /// files, unchanged (same length and modification time), gets the
    /// places it already read: reading a database of millions of networks
    /// takes seconds, and the runner makes one workload per run.
    pub fn open_shared(paths: &[impl AsRef<Path>]) -> Result<Arc<Places>, Error> {
        let stamp: Vec<_> = paths
            .iter()
            .map(|p| {
                let p = p.as_ref();
                let meta = std::fs::metadata(p).ok();
                (
                    p.to_path_buf(),
                    meta.as_ref().map_or(0, |m| m.len()),
                    meta.and_then(|m| m.modified().ok()),
                )
            })
            .collect();
        let mut last = LAST_OPENED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((s, places)) = last.as_ref()
            && *s == stamp
        {
            return Ok(Arc::clone(places));
        }
        let places = Arc::new(Places::open(paths)?);
        *last = Some((stamp, Arc::clone(&places)));
        Ok(places)
    }

    /// Reads every network of the database files (the director's `geoip`),
    /// once.
    pub fn open(paths: &[impl AsRef<Path>]) -> Result<Places, Error> {
        let files: Vec<PathBuf> = paths.iter().map(|p| p.as_ref().to_path_buf()).collect();
        let db = MaxMindFiles::open(&files).map_err(|e| Error::Geo(e.to_string()))?;
        let mut b = Builder::default();
        for (n, item) in (1u64..).zip(db.networks()) {
            if n > MAX_NETWORKS {
                return Err(Error::Geo(format!(
                    "{}: more than {MAX_NETWORKS} networks",
                    shown(&files)
                )));
            }
            b.add(item.map_err(|e| Error::Geo(e.to_string()))?);
        }
        let places = b.finish(files);
        if places.countries.is_empty() {
            return Err(Error::Geo(format!(
                "{}: no network with a country and a location",
                shown(&places.files)
            )));
        }
        Ok(places)
    }

    /// Which files, and how many networks and countries they hold.
    pub fn describe(&self) -> String {
        let r = &self.read;
        let ranges: usize = self
            .countries
            .iter()
            .map(|c| c.v4.spans.len() + c.v6.spans.len())
            .sum();
        let mut out = format!(
            "{}: {} networks ({} IPv4, {} IPv6) in {} countries, kept as {} address ranges at {} \
             locations",
            shown(&self.files),
            r.v4 + r.v6,
            r.v4,
            r.v6,
            self.countries.len(),
            ranges,
            self.geos.len()
        );
        let left_out = [
            (r.unlocated, "without a location"),
            (r.no_country, "without a country"),
            (r.special, "private or reserved"),
        ];
        for (n, what) in left_out {
            if n > 0 {
                out.push_str(&format!("; {n} {what} left out"));
            }
        }
        out
    }

    /// The ISO 3166 codes of the countries clients can come from, sorted.
    pub fn countries(&self) -> impl Iterator<Item = &str> {
        self.countries.iter().map(|c| c.code.as_str())
    }

    pub(super) fn country_codes(&self) -> impl Iterator<Item = &CountryCode> {
        self.countries.iter().map(|c| &c.code)
    }

    /// An address of country `i` (an index of [`Self::country_codes`]),
    /// uniform over its space, with where the database puts it.
    pub(super) fn draw(&self, i: usize, rng: &mut Pcg64) -> Option<(IpAddr, Geo)> {
        let c = self.countries.get(i)?;
        let (ip, geo) = if c.v4.is_empty() {
            c.v6.draw(rng)?
        } else {
            c.v4.draw(rng)?
        };
        Some((ip, *self.geos.get(geo as usize)?))
    }
}

/// Collects networks into [`Places`].
struct Builder {
    countries: Vec<Country>,
    /// The index in `countries` of each two-letter code.
    by_code: Vec<Option<usize>>,
    geos: Vec<Geo>,
    geo_ids: HashMap<(u64, u64, [u8; 2], bool), u32>,
    read: Read,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            countries: Vec::new(),
            by_code: vec![None; 26 * 26],
            geos: Vec::new(),
            geo_ids: HashMap::new(),
            read: Read::default(),
        }
    }
}

impl Builder {
    fn add(&mut self, n: Network) {
        match n.net {
            IpNet::V4(_) => self.read.v4 += 1,
            IpNet::V6(_) => self.read.v6 += 1,
        }
        let Some(geo) = n.geo else {
            self.read.unlocated += 1;
            return;
        };
        let Some(code) = geo.country else {
            self.read.no_country += 1;
            return;
        };
        let (first, last) = (n.net.network(), n.net.broadcast());
        if is_special(first) && is_special(last) {
            self.read.special += 1;
            return;
        }
        let Some(at) = self.country(code) else {
            return;
        };
        // A country's networks are mostly at the location of its previous
        // one (every one of them, in a country-centre database).
        let id = match self.countries.get(at).and_then(|c| c.last) {
            Some((g, id)) if g == geo => id,
            _ => {
                let Some(id) = self.geo_id(geo) else {
                    return;
                };
                id
            }
        };
        let Some(c) = self.countries.get_mut(at) else {
            return;
        };
        c.last = Some((geo, id));
        match (first, last) {
            (IpAddr::V4(a), IpAddr::V4(b)) => c.v4.push(a.into(), b.into(), id),
            // IPv6 only for a country without IPv4 (see `Places`): not
            // kept once it has some, dropped in `finish` if IPv4 came later.
            (IpAddr::V6(a), IpAddr::V6(b)) if c.v4.is_empty() => c.v6.push(a.into(), b.into(), id),
            _ => {}
        }
    }

    /// The index of `code` among the countries, added if new.
    fn country(&mut self, code: CountryCode) -> Option<usize> {
        // Two ASCII letters (see `CountryCode::parse`): a slot of 26 × 26.
        let [a, b] = code.0.map(|l| usize::from(l.saturating_sub(b'A')).min(25));
        let slot = self.by_code.get_mut(a * 26 + b)?;
        if let Some(at) = *slot {
            return Some(at);
        }
        let at = self.countries.len();
        *slot = Some(at);
        self.countries.push(Country {
            code,
            v4: Spans::default(),
            v6: Spans::default(),
            last: None,
        });
        Some(at)
    }

    /// The index of `geo` among the distinct locations.
    fn geo_id(&mut self, geo: Geo) -> Option<u32> {
        let key = (
            geo.latitude.to_bits(),
            geo.longitude.to_bits(),
            geo.country.map_or([0; 2], |c| c.0),
            geo.precision == Precision::Coordinates,
        );
        if let Some(&id) = self.geo_ids.get(&key) {
            return Some(id);
        }
        let id = u32::try_from(self.geos.len()).ok()?;
        self.geos.push(geo);
        self.geo_ids.insert(key, id);
        Some(id)
    }

    fn finish(self, files: Vec<PathBuf>) -> Places {
        let mut countries: Vec<Country> = self
            .countries
            .into_iter()
            .map(|mut c| {
                if !c.v4.is_empty() {
                    c.v6 = Spans::default();
                }
                c.v4.spans.shrink_to_fit();
                c.v6.spans.shrink_to_fit();
                c
            })
            .filter(|c| !(c.v4.is_empty() && c.v6.is_empty()))
            .collect();
        countries.sort_by_key(|c| c.code.0);
        Places {
            files,
            countries,
            geos: self.geos,
            read: self.read,
        }
    }
}

/// One country's ranges of one address family: each range's start and
/// location, and the number of addresses up to its end, so a uniform draw
/// over the count finds its range by binary search and its address by
/// the offset in it.
struct Spans<A: Family> {
    spans: Vec<Span<A>>,
    /// The last address of the last range (to merge the next into it).
    tail: Option<A>,
}

impl<A: Family> Default for Spans<A> {
    fn default() -> Self {
        Spans {
            spans: Vec::new(),
            tail: None,
        }
    }
}

struct Span<A: Family> {
    /// Addresses in this range and every one before it.
    end: A::Count,
    start: A,
    geo: u32,
}

impl<A: Family> Spans<A> {
    fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    fn total(&self) -> A::Count {
        self.spans.last().map_or_else(A::Count::default, |s| s.end)
    }

    /// Adds `first..=last` at location `geo`, merged into the last range
    /// when it follows it at the same location.
    fn push(&mut self, first: A, last: A, geo: u32) {
        let Some(size) = A::size(first, last) else {
            return;
        };
        let Some(end) = A::add(self.total(), size) else {
            return;
        };
        let follows = self.tail.and_then(A::next) == Some(first);
        match self.spans.last_mut() {
            Some(prev) if follows && prev.geo == geo => prev.end = end,
            _ => self.spans.push(Span {
                end,
                start: first,
                geo,
            }),
        }
        self.tail = Some(last);
    }

    /// A uniform address over every range, and its location.
    fn draw(&self, rng: &mut Pcg64) -> Option<(IpAddr, u32)> {
        let total = self.total();
        if total == A::Count::default() {
            return None;
        }
        let x = A::below(rng, total);
        let i = self.spans.partition_point(|s| s.end <= x);
        let span = self.spans.get(i)?;
        let begin = i
            .checked_sub(1)
            .and_then(|j| self.spans.get(j))
            .map_or_else(A::Count::default, |s| s.end);
        Some((A::offset(span.start, A::sub(x, begin)).ip(), span.geo))
    }
}

/// What [`Places`] needs from an address family: addresses as integers,
/// counted in a type wide enough for a country's whole space.
trait Family: Copy + Ord {
    type Count: Copy + Ord + Default + std::fmt::Debug;
    /// `last - first + 1`, `None` if `last < first`.
    fn size(first: Self, last: Self) -> Option<Self::Count>;
    fn add(a: Self::Count, b: Self::Count) -> Option<Self::Count>;
    fn sub(a: Self::Count, b: Self::Count) -> Self::Count;
    /// `start + offset`, where the offset is inside the range.
    fn offset(start: Self, offset: Self::Count) -> Self;
    fn below(rng: &mut Pcg64, n: Self::Count) -> Self::Count;
    fn ip(self) -> IpAddr;
    fn next(self) -> Option<Self>;
}

impl Family for u32 {
    type Count = u64;
    fn size(first: u32, last: u32) -> Option<u64> {
        (last >= first).then(|| u64::from(last - first) + 1)
    }
    fn add(a: u64, b: u64) -> Option<u64> {
        a.checked_add(b)
    }
    fn sub(a: u64, b: u64) -> u64 {
        a.saturating_sub(b)
    }
    fn offset(start: u32, offset: u64) -> u32 {
        start.saturating_add(u32::try_from(offset).unwrap_or(u32::MAX))
    }
    fn below(rng: &mut Pcg64, n: u64) -> u64 {
        rng.random_range(0..n.max(1))
    }
    fn ip(self) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(self))
    }
    fn next(self) -> Option<u32> {
        self.checked_add(1)
    }
}

impl Family for u128 {
    type Count = u128;
    fn size(first: u128, last: u128) -> Option<u128> {
        (last >= first)
            .then(|| last - first)
            .and_then(|d| d.checked_add(1))
    }
    fn add(a: u128, b: u128) -> Option<u128> {
        a.checked_add(b)
    }
    fn sub(a: u128, b: u128) -> u128 {
        a.saturating_sub(b)
    }
    fn offset(start: u128, offset: u128) -> u128 {
        start.saturating_add(offset)
    }
    fn below(rng: &mut Pcg64, n: u128) -> u128 {
        rng.random_range(0..n.max(1))
    }
    fn ip(self) -> IpAddr {
        IpAddr::V6(Ipv6Addr::from(self))
    }
    fn next(self) -> Option<u128> {
        self.checked_add(1)
    }
}

fn shown(paths: &[PathBuf]) -> String {
    let parts: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    parts.join(", ")
}
