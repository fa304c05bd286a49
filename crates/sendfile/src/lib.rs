//! Large cached bodies sent without copying them through user space.
//!
//! A hit copies its body into the kernel's socket buffers: at 100 KiB that
//! copy was 29% of an edge's busy CPU, and the part of it that swings most
//! with a neighbour's memory traffic (docs/benchmarks.md, "The 100 KiB
//! hit"). nginx avoids it with `sendfile(2)` from its cache files. This
//! crate does the same for a memory cache:
//!
//! * [`Mapping::join`] puts a finished body of at least
//!   `cache.zero-copy-min-size` into a sealed memory file (`memfd_create`,
//!   written once, then sealed against any write, shrink or growth) and
//!   maps it read-only. The body stays one shared [`Bytes`](bytes::Bytes), so every other
//!   path (TLS, HTTP/2, ranges, compression) reads it as before, and its
//!   pages are the file's: there is no second copy.
//! * [`ZeroCopy`] wraps a plain TCP connection. When hyper asks it to write
//!   a slice that lies inside such a mapping, it sends the head before it
//!   with `MSG_MORE` and the slice with `sendfile(2)` from the file, at the
//!   slice's offset. The bytes are the same by construction: the slice *is*
//!   the mapped file, and the seals make the file immutable.
//!
//! Where the node may mount (`CAP_SYS_ADMIN`, as root), those files live
//! on a private tmpfs mounted with `huge=within_size` instead
//! (`cache.zero-copy-large-pages`, on by default): a detached mount no path
//! leads to, whose nameless files are written once, marked immutable
//! (`FS_IMMUTABLE_FL`: seals exist only for memory files) and kept open
//! read-only. Their pages are large folios, so splicing a 100 KiB body to
//! the socket looks up a few folios where a memory file's 4 KiB pages take
//! 25 lookups (docs/benchmarks.md, "Large pages for large bodies"). Without
//! the capability, or when that tmpfs is full, bodies go into memory files.
//!
//! Each mapped body holds one file descriptor and one mapping, so their
//! number is capped (`cache.zero-copy-max-bodies`, and at most a quarter of
//! the open-files limit); past the cap, or on any error, a body stays on
//! the heap and is sent by copying, as before. Linux only, as the rest of
//! the node.
//!
//! Measured (docs/benchmarks.md, "Large pages for large bodies"), with the
//! server held to half a core so that it, not the load generator, sets the
//! pace: 100 KiB hits went from 0.90x nginx's req/s in 4 KiB memory files
//! to 1.02x on the large-page tmpfs; without the limit, 1 MiB hits cost
//! 0.71x the CPU they did in memory files. On a real NIC there is no
//! receiver on the same core and the saving over copying is the whole copy.
//!
//! Dependencies: `rustix` for `memfd_create`, seals, the mount API,
//! `O_TMPFILE`, file flags, `sendfile` and `sendmsg(MSG_MORE)` as safe
//! calls (the workspace writes no FFI of its own); `memmap2` for the one
//! mapping, the only `unsafe` in the workspace (`body.rs` argues why it is
//! sound). `nix` would do the same with more `unsafe` at the call sites,
//! and `libc` with all of it.

mod body;
mod stream;

pub use body::{Mapping, is_body_file, large_pages_in_use, live, raise_open_files_limit};
pub use stream::{ZeroCopy, sent_from_files};

/// Slices shorter than this are always written by copying: below it one
/// more system call costs more than the copy it saves (the default
/// `cache.zero-copy-min-size` is well above it).
pub const SEND_MIN: usize = 16 << 10;
