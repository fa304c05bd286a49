//! Bodies in sealed memory files, and the registry that finds the file
//! behind a slice of one.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, Weak};

use bytes::Bytes;
use rustix::fs::{MemfdFlags, SealFlags};

/// Mapped bodies alive in this process, and their bytes.
static LIVE: AtomicUsize = AtomicUsize::new(0);
static LIVE_BYTES: AtomicU64 = AtomicU64::new(0);

/// Every live mapping, by start address. Read on each large write, written
/// when a body is mapped or dropped.
static REGIONS: RwLock<BTreeMap<usize, Weak<Region>>> = RwLock::new(BTreeMap::new());

/// How many bodies are mapped in this process, and their bytes.
pub fn live() -> (usize, u64) {
    (
        LIVE.load(Ordering::Relaxed),
        LIVE_BYTES.load(Ordering::Relaxed),
    )
}

/// Which finished bodies go into memory files.
#[derive(Debug, Clone, Copy)]
pub struct Mapping {
    min_size: usize,
    max_bodies: usize,
}

impl Mapping {
    /// Bodies of at least `min_size` bytes, at most `max_bodies` of them
    /// alive at once in the process (further capped at a quarter of the
    /// open-files limit, so mapped bodies can never starve connections of
    /// descriptors). `max_bodies == 0` maps nothing.
    pub fn new(min_size: usize, max_bodies: usize) -> Self {
        let files = rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .current
            .unwrap_or(u64::MAX);
        let cap = usize::try_from(files / 4).unwrap_or(usize::MAX);
        if max_bodies > cap {
            tracing::info!(
                "cache.zero-copy-max-bodies {max_bodies} capped at {cap}: a quarter of the open-files limit ({files})"
            );
        }
        Mapping {
            min_size: min_size.max(1),
            max_bodies: max_bodies.min(cap),
        }
    }

    /// Nothing is mapped: every body stays on the heap.
    pub fn off() -> Self {
        Mapping {
            min_size: usize::MAX,
            max_bodies: 0,
        }
    }

    /// The body made of `chunks` (`len` bytes in all) as one mapped
    /// [`Bytes`], when it is large enough and the cap allows; `None`
    /// otherwise, or when the kernel refuses (the caller then joins it on
    /// the heap, so a failure here never loses a body).
    pub fn join<'a, I>(&self, chunks: I, len: usize) -> Option<Bytes>
    where
        I: IntoIterator<Item = &'a [u8]>,
    {
        if len < self.min_size || !reserve(self.max_bodies) {
            return None;
        }
        match Region::write(chunks, len) {
            Ok(region) => Some(Bytes::from_owner(Owner(region))),
            Err(e) => {
                LIVE.fetch_sub(1, Ordering::Relaxed);
                tracing::debug!("a {len}-byte body stays on the heap: {e}");
                None
            }
        }
    }
}

/// Takes one of the `max` places, or none when all are taken.
fn reserve(max: usize) -> bool {
    LIVE.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
        (n < max).then_some(n + 1)
    })
    .is_ok()
}

/// One body: its sealed file and the read-only mapping of it.
pub(crate) struct Region {
    map: memmap2::Mmap,
    pub(crate) file: File,
}

impl Region {
    /// Writes the body into a new memory file, seals it and maps it. The
    /// caller holds a place in `LIVE`, which the region's drop gives back.
    fn write<'a, I>(chunks: I, len: usize) -> std::io::Result<Arc<Region>>
    where
        I: IntoIterator<Item = &'a [u8]>,
    {
        let fd = rustix::fs::memfd_create(
            "meridian-body",
            MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
        )?;
        let mut file = File::from(fd);
        let mut written = 0usize;
        for chunk in chunks {
            file.write_all(chunk)?;
            written += chunk.len();
        }
        if written != len || len == 0 {
            return Err(std::io::Error::other(format!(
                "{written} bytes written for a body of {len}"
            )));
        }
        rustix::fs::fcntl_add_seals(
            &file,
            SealFlags::WRITE | SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL,
        )?;
        // SAFETY: memmap2 requires that the file not change while mapped.
        // This file is a memfd that only this process ever held, and it is
        // sealed (just above, and the seals cannot be removed: SEAL) against
        // every write, shrink and growth, by anyone, through any descriptor
        // or mapping. The mapping is read-only. So the mapped bytes cannot
        // change for as long as the mapping lives.
        #[allow(unsafe_code)]
        let map = unsafe { memmap2::MmapOptions::new().len(len).map(&file)? };
        let region = Arc::new(Region { map, file });
        let start = region.map.as_ptr() as usize;
        REGIONS
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(start, Arc::downgrade(&region));
        LIVE_BYTES.fetch_add(len as u64, Ordering::Relaxed);
        Ok(region)
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // Out of the registry before the mapping goes: no other mapping can
        // take this address while the entry is there.
        let start = self.map.as_ptr() as usize;
        REGIONS
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&start);
        LIVE.fetch_sub(1, Ordering::Relaxed);
        LIVE_BYTES.fetch_sub(self.map.len() as u64, Ordering::Relaxed);
    }
}

/// What a mapped `Bytes` holds: the last one to go drops the region.
struct Owner(Arc<Region>);

impl AsRef<[u8]> for Owner {
    fn as_ref(&self) -> &[u8] {
        &self.0.map
    }
}

/// The region `slice` lies in, and the slice's offset in its file. A slice
/// inside a live mapping keeps that mapping alive (it borrows from a
/// `Bytes` that owns it), so the region found is the one the slice is in.
pub(crate) fn find(slice: &[u8]) -> Option<(Arc<Region>, u64)> {
    if LIVE.load(Ordering::Relaxed) == 0 || slice.is_empty() {
        return None;
    }
    let addr = slice.as_ptr() as usize;
    let region = {
        let regions = REGIONS.read().unwrap_or_else(|p| p.into_inner());
        let (_, weak) = regions.range(..=addr).next_back()?;
        weak.upgrade()?
    };
    let start = region.map.as_ptr() as usize;
    let offset = addr - start;
    (offset.checked_add(slice.len())? <= region.len()).then_some((region, offset as u64))
}

/// Raises this process's soft open-files limit to its hard limit, as a
/// server expects (nginx asks for `worker_rlimit_nofile`; Go's runtime does
/// it at start). Returns the soft limit in force afterwards.
pub fn raise_open_files_limit() -> Option<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        if let Err(e) = setrlimit(Resource::Nofile, limit) {
            tracing::debug!("open-files limit not raised: {e}");
        }
    }
    getrlimit(Resource::Nofile).current
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 253) as u8).collect()
    }

    #[test]
    fn a_mapped_body_reads_back_the_chunks_it_was_made_of() {
        let all = body(100_000);
        let chunks: Vec<&[u8]> = all.chunks(7_000).collect();
        let mapped = Mapping::new(1 << 10, 8)
            .join(chunks, all.len())
            .expect("mapped");
        assert_eq!(&mapped[..], &all[..]);
        let (region, offset) = find(&mapped[1000..2000]).expect("found");
        assert_eq!(offset, 1000);
        assert_eq!(region.len(), all.len());
        // A slice running past the mapping, or memory outside it, is not it.
        assert!(find(&all[..]).is_none());
    }

    #[test]
    fn small_bodies_and_bodies_past_the_cap_stay_on_the_heap() {
        let all = body(4096);
        let mapping = Mapping::new(4096, 1_000_000);
        assert!(mapping.join([&all[..4095]], 4095).is_none());
        assert!(Mapping::off().join([&all[..]], 4096).is_none());
        // A short write (the length does not add up) is refused, not mapped.
        assert!(mapping.join([&all[..100]], 4096).is_none());
        // A cap of none maps nothing.
        assert!(Mapping::new(1, 0).join([&all[..]], 4096).is_none());
        assert!(mapping.join([&all[..]], 4096).is_some());
    }

    #[test]
    fn the_last_handle_unmaps_and_closes_the_file() {
        let all = body(50_000);
        let mapped = Mapping::new(1, 64)
            .join([&all[..]], all.len())
            .expect("mapped");
        let slice = mapped.slice(10..20);
        let addr = mapped.as_ptr() as usize;
        drop(mapped);
        // The slice keeps the region alive.
        assert!(find(&slice).is_some());
        drop(slice);
        let regions = REGIONS.read().unwrap_or_else(|p| p.into_inner());
        assert!(!regions.contains_key(&addr));
    }

    #[test]
    fn the_file_is_sealed_against_every_change() {
        let all = body(8192);
        let mapped = Mapping::new(1, 64)
            .join([&all[..]], all.len())
            .expect("mapped");
        let (region, _) = find(&mapped).expect("found");
        let seals = rustix::fs::fcntl_get_seals(&region.file).expect("seals");
        assert!(
            seals
                .contains(SealFlags::WRITE | SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL)
        );
        assert!(rustix::io::pwrite(&region.file, b"x", 0).is_err());
        assert!(rustix::fs::ftruncate(&region.file, 0).is_err());
        assert_eq!(&mapped[..], &all[..]);
    }
}
