//! Bodies in unchangeable files (sealed memory files, or immutable files on
//! a private large-page tmpfs), and the registry that finds the file
//! behind a slice of one.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, RwLock, Weak};

use bytes::Bytes;
use rustix::fs::{FallocateFlags, IFlags, MemfdFlags, Mode, OFlags, SealFlags};

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
    large_pages: bool,
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
            large_pages: false,
        }
    }

    /// Bodies go into files of a private tmpfs mounted with
    /// `huge=within_size`, whose pages are large folios (up to 2 MiB, as
    /// large as the file's size allows) where memory files use 4 KiB pages,
    /// so `sendfile` finds a 100 KiB body's pages in a few lookups instead
    /// of 25. Mounting needs `CAP_SYS_ADMIN` and marking the files
    /// immutable `CAP_LINUX_IMMUTABLE`; without them, or when that tmpfs is
    /// full, bodies go into sealed memory files as without this.
    pub fn large_pages(mut self, on: bool) -> Self {
        self.large_pages = on && self.max_bodies > 0;
        if self.large_pages {
            // Mounted now, at start, rather than on the first fill.
            let _ = large_page_mount();
        }
        self
    }

    /// Nothing is mapped: every body stays on the heap.
    pub fn off() -> Self {
        Mapping {
            min_size: usize::MAX,
            max_bodies: 0,
            large_pages: false,
        }
    }

    /// The body made of `chunks` (`len` bytes in all) as one mapped
    /// [`Bytes`], when it is large enough and the cap allows; `None`
    /// otherwise, or when the kernel refuses (the caller then joins it on
    /// the heap, so a failure here never loses a body).
    pub fn join<'a, I>(&self, chunks: I, len: usize) -> Option<Bytes>
    where
        I: IntoIterator<Item = &'a [u8]> + Clone,
    {
        if len < self.min_size || !reserve(self.max_bodies) {
            return None;
        }
        match Region::write(chunks, len, self.large_pages) {
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

/// The private large-page tmpfs, once tried: `None` when it could not be
/// mounted.
static MOUNT: OnceLock<Option<OwnedFd>> = OnceLock::new();

/// Whether this process's large bodies go into the private large-page
/// tmpfs (it was asked for, and mounted), rather than memory files.
pub fn large_pages_in_use() -> bool {
    MOUNT.get().is_some_and(Option::is_some)
}

/// The private large-page tmpfs, mounted once per process; `None` when it
/// could not be (the reason is logged once).
fn large_page_mount() -> Option<&'static OwnedFd> {
    MOUNT
        .get_or_init(|| match mount_large_page_tmpfs() {
            Ok(fd) => {
                tracing::info!("large cached bodies live in a private tmpfs with large pages");
                Some(fd)
            }
            Err(e) => {
                tracing::info!(
                    "large cached bodies live in memory files with 4 KiB pages: no private tmpfs ({e})"
                );
                None
            }
        })
        .as_ref()
}

/// Mounts a tmpfs that no path leads to: the mount is detached (the new
/// mount API's `fsmount` without `move_mount`), so it is reachable only
/// through the descriptor returned, and it goes when the process does.
fn mount_large_page_tmpfs() -> std::io::Result<OwnedFd> {
    use rustix::mount::{
        FsMountFlags, FsOpenFlags, MountAttrFlags, fsconfig_create, fsconfig_set_string, fsmount,
        fsopen,
    };
    let fs = fsopen("tmpfs", FsOpenFlags::FSOPEN_CLOEXEC)?;
    fsconfig_set_string(&fs, "huge", "within_size")?;
    fsconfig_set_string(&fs, "mode", "0700")?;
    fsconfig_create(&fs)?;
    let mnt = fsmount(
        &fs,
        FsMountFlags::FSMOUNT_CLOEXEC,
        MountAttrFlags::MOUNT_ATTR_NOSUID
            | MountAttrFlags::MOUNT_ATTR_NODEV
            | MountAttrFlags::MOUNT_ATTR_NOEXEC,
    )?;
    // One file end to end, so a kernel that mounts but will not make files
    // immutable (no CAP_LINUX_IMMUTABLE) is found out here, not per body.
    tmpfs_file(&mnt, [&[0u8; 1][..]], 1)?;
    Ok(mnt)
}

/// The body written into a new file on the tmpfs `mnt` and made
/// immutable, open read-only: the only descriptor left to it.
fn tmpfs_file<'a, I>(mnt: &OwnedFd, chunks: I, len: usize) -> std::io::Result<File>
where
    I: IntoIterator<Item = &'a [u8]>,
{
    let fd = rustix::fs::openat(
        mnt,
        ".",
        OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC,
        Mode::RUSR | Mode::WUSR,
    )?;
    // The whole length first: tmpfs then gives the file large folios, and
    // every page is there before the mapping is made (no fault can find a
    // hole, so no SIGBUS).
    rustix::fs::fallocate(&fd, FallocateFlags::empty(), 0, len as u64)?;
    let mut rw = File::from(fd);
    write_exactly(&mut rw, chunks, len)?;
    // The read-only descriptor is a new open of the same file (by its
    // /proc entry, as O_TMPFILE files have no name), not a duplicate.
    let ro = File::open(format!("/proc/self/fd/{}", rw.as_raw_fd()))?;
    let flags = rustix::fs::ioctl_getflags(&ro)?;
    rustix::fs::ioctl_setflags(&ro, flags | IFlags::IMMUTABLE)?;
    drop(rw);
    if !rustix::fs::ioctl_getflags(&ro)?.contains(IFlags::IMMUTABLE) {
        return Err(std::io::Error::other("the immutable flag did not hold"));
    }
    Ok(ro)
}

/// A new memory file holding the body, sealed against every change.
fn sealed_memfd<'a, I>(chunks: I, len: usize) -> std::io::Result<File>
where
    I: IntoIterator<Item = &'a [u8]>,
{
    let fd = rustix::fs::memfd_create(
        "meridian-body",
        MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
    )?;
    let mut file = File::from(fd);
    write_exactly(&mut file, chunks, len)?;
    rustix::fs::fcntl_add_seals(
        &file,
        SealFlags::WRITE | SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL,
    )?;
    Ok(file)
}

fn write_exactly<'a, I>(file: &mut File, chunks: I, len: usize) -> std::io::Result<()>
where
    I: IntoIterator<Item = &'a [u8]>,
{
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
    Ok(())
}

/// One body: its unchangeable file and the read-only mapping of it.
pub(crate) struct Region {
    map: memmap2::Mmap,
    pub(crate) file: File,
}

impl Region {
    /// Writes the body into a new file, makes the file unchangeable and
    /// maps it. The caller holds a place in `LIVE`, which the region's drop
    /// gives back.
    fn write<'a, I>(chunks: I, len: usize, large_pages: bool) -> std::io::Result<Arc<Region>>
    where
        I: IntoIterator<Item = &'a [u8]> + Clone,
    {
        let tmpfs = large_pages
            .then(large_page_mount)
            .flatten()
            .map(|mnt| tmpfs_file(mnt, chunks.clone(), len));
        let file = match tmpfs {
            Some(Ok(file)) => file,
            other => {
                if let Some(Err(e)) = other {
                    tracing::debug!("a {len}-byte body goes into a memory file: {e}");
                }
                sealed_memfd(chunks, len)?
            }
        };
        if file.metadata()?.len() != len as u64 {
            return Err(std::io::Error::other(
                "the body file is not the body's length",
            ));
        }
        // SAFETY: memmap2 requires that the file not change while mapped.
        // This file is one of two kinds, and neither can change:
        // * a memfd that only this process ever held, sealed (in
        //   `sealed_memfd`, and the seals cannot be removed: SEAL) against
        //   every write, shrink and growth, by anyone, through any
        //   descriptor or mapping;
        // * a nameless (O_TMPFILE) file on a tmpfs mount that no path leads
        //   to, whose one writable descriptor was closed (in `tmpfs_file`)
        //   after the file was marked immutable and before this mapping:
        //   the descriptor left is read-only and was never mapped writable,
        //   and the immutable flag refuses every new writable open,
        //   truncation and fallocate, by anyone, until a process with
        //   CAP_LINUX_IMMUTABLE takes it off this nameless file, which
        //   nothing in this process does.
        // Its length was checked just above, so the mapping covers only
        // allocated pages. The mapping is read-only. So the mapped bytes
        // cannot change for as long as the mapping lives.
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

/// Whether `target`, what a `/proc/PID/fd/N` entry links to, is a body
/// file of this crate's: a memory file (`/memfd:meridian-body`) or a
/// nameless file at the root of the private tmpfs (`/#INODE (deleted)`:
/// that mount has no path, so its root is `/`). For counting them from
/// outside the process, as the soak and the benchmark do.
pub fn is_body_file(target: &str) -> bool {
    target.starts_with("/memfd:meridian-body")
        || (target.starts_with("/#") && target.ends_with(" (deleted)"))
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

    /// The private tmpfs, or `None` where it cannot be mounted here;
    /// `MERIDIAN_REQUIRE_LARGE_PAGES=1` (set by CI, which runs as root)
    /// makes that a failure rather than a skip.
    fn mount_or_skip() -> Option<&'static OwnedFd> {
        let mnt = large_page_mount();
        if mnt.is_none() {
            assert!(
                std::env::var_os("MERIDIAN_REQUIRE_LARGE_PAGES").is_none(),
                "MERIDIAN_REQUIRE_LARGE_PAGES is set but no private tmpfs could be mounted"
            );
            eprintln!("skipped: no private tmpfs (needs CAP_SYS_ADMIN)");
        }
        mnt
    }

    #[test]
    fn a_large_page_body_is_immutable_and_reads_back() {
        let Some(_) = mount_or_skip() else { return };
        let all = body(300_000);
        let chunks: Vec<&[u8]> = all.chunks(16_384).collect();
        let mapped = Mapping::new(1, 64)
            .large_pages(true)
            .join(chunks, all.len())
            .expect("mapped");
        assert_eq!(&mapped[..], &all[..]);
        let (region, _) = find(&mapped[5..]).expect("found");
        // A tmpfs file (memory files cannot be made immutable), marked so.
        let flags = rustix::fs::ioctl_getflags(&region.file).expect("flags");
        assert!(flags.contains(IFlags::IMMUTABLE));
        // Its one descriptor is read-only, and nothing can reopen it for
        // writing, truncate it or allocate into it.
        assert!(rustix::io::pwrite(&region.file, b"x", 0).is_err());
        assert!(rustix::fs::ftruncate(&region.file, 0).is_err());
        let path = format!("/proc/self/fd/{}", region.file.as_raw_fd());
        assert!(std::fs::OpenOptions::new().write(true).open(&path).is_err());
        assert!(rustix::fs::fallocate(&region.file, FallocateFlags::empty(), 0, 1 << 20).is_err());
        assert_eq!(region.file.metadata().expect("stat").len(), 300_000);
        assert_eq!(&mapped[..], &all[..]);
    }

    #[test]
    fn a_large_page_body_gives_its_memory_back_when_dropped() {
        let Some(_) = mount_or_skip() else { return };
        // A mount of its own, so other tests' files do not move its figures.
        let mnt = mount_large_page_tmpfs().expect("mounted");
        let free = || rustix::fs::fstatvfs(&mnt).expect("statvfs").f_bfree;
        let before = free();
        let all = body(1 << 20);
        let file = tmpfs_file(&mnt, [&all[..]], all.len()).expect("written");
        assert!(
            free() <= before - (1 << 20) / 4096,
            "the body's pages are taken"
        );
        drop(file);
        assert_eq!(free(), before);
    }

    #[test]
    fn without_large_pages_bodies_go_into_sealed_memory_files() {
        let all = body(40_000);
        let mapped = Mapping::new(1, 64)
            .large_pages(false)
            .join([&all[..]], all.len())
            .expect("mapped");
        let (region, _) = find(&mapped).expect("found");
        assert!(rustix::fs::fcntl_get_seals(&region.file).is_ok());
        // A cap of none turns large pages off with the rest.
        assert!(!Mapping::new(1, 0).large_pages(true).large_pages);
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
