//! A response being filled: read-while-write for cache misses.
//!
//! A [`Filling`] is one shared object per fill: the response head (known
//! before any body byte), an append-only list of body chunks (shared
//! `Bytes`, never copied for readers), and a [`FillState`]. One writer (the
//! task that owns the upstream body) appends at upstream speed; any number
//! of [`FillReader`]s (the client that caused the miss and every collapsed
//! waiter) each follow at their own pace with their own cursor.
//!
//! The traps this avoids (see `shared/design/streaming-fills.md`):
//! - A failed or abandoned writer is a distinct state, never a clean end:
//!   every reader gets an error and its response is cut, so a truncated body
//!   can never look complete (Pingora #932).
//! - A reader only ends cleanly on [`FillState::Done`] (ATS #9274).
//! - Waiters attach at headers, not after the whole body (nginx) or a big
//!   first fragment (ATS).
//!
//! Memory: appended bytes are charged to a shared [`FillBudget`]. When the
//! fill is done its chunks are joined once into the stored body and
//! released; readers that are still behind read slices of that one buffer.
//! A fill that stops storing (it grew past the object size limit, or the
//! budget ran out) switches to *passing*: the writer may only run a bounded
//! window ahead of the slowest reader, chunks every reader has passed are
//! dropped, and no new reader can attach — the upstream is slowed down to the
//! pace of the clients instead of being buffered without limit.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, StatusCode};
use meridian_sendfile::Mapping;
use tokio::sync::{Notify, watch};

use crate::policy::Freshness;
use crate::vary::Variant;

/// Bytes held by fills in progress, across the whole node. A fill that
/// cannot get budget is not stored (it streams through with backpressure).
#[derive(Debug)]
pub struct FillBudget {
    used: AtomicU64,
    limit: u64,
    /// Where finished bodies go: large ones into sealed memory files that
    /// plain-HTTP hits send with `sendfile(2)` (`meridian-sendfile`).
    mapping: Mapping,
}

impl FillBudget {
    /// A budget of `limit` bytes; finished bodies stay on the heap.
    pub fn new(limit: u64) -> Self {
        FillBudget {
            used: AtomicU64::new(0),
            limit,
            mapping: Mapping::off(),
        }
    }

    /// Where finished bodies go (also for the encoded forms a node makes).
    pub fn mapping(&self) -> &Mapping {
        &self.mapping
    }

    /// Finished bodies that `mapping` takes go into memory files.
    pub fn with_mapping(mut self, mapping: Mapping) -> Self {
        self.mapping = mapping;
        self
    }

    /// Takes `n` bytes of budget, or nothing when that would pass the limit.
    pub fn try_reserve(&self, n: u64) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                u.checked_add(n).filter(|&t| t <= self.limit)
            })
            .is_ok()
    }

    pub fn release(&self, n: u64) {
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                Some(u.saturating_sub(n))
            });
    }

    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }
}

/// What is known before the body: enough to answer a reader's headers,
/// conditionals and ranges, and to build the stored entry at the end.
#[derive(Debug)]
pub struct FillHead {
    pub status: StatusCode,
    /// The headers as they will be stored (see the proxy's `compact`).
    pub headers: HeaderMap,
    pub freshness: Freshness,
    pub variant: Variant,
    /// `Content-Length` from the upstream, when it sent one.
    pub declared_len: Option<u64>,
    /// The store's purge generation when the fill started.
    pub generation: u64,
}

/// Where a fill is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FillState {
    /// Bytes are arriving and the body will be stored if it completes.
    Filling,
    /// Bytes are arriving but will not be stored (too large, out of
    /// budget): no new reader may attach.
    Passing,
    /// The whole body arrived.
    Done,
    /// The upstream failed (or the fill was abandoned) before the end:
    /// every reader's response must be cut.
    Failed(String),
}

/// Why a reader cannot go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FillError {
    #[error("upstream body failed: {0}")]
    Failed(String),
    /// The reader fell behind bytes that were already dropped (cannot happen
    /// while it is registered; kept as an error rather than a panic).
    #[error("reader fell behind the fill window")]
    Lost,
}

#[derive(Debug)]
struct Inner {
    state: FillState,
    /// Chunks not yet dropped; `chunks[0]` is chunk number `first_index`,
    /// starting at body offset `first_offset`.
    chunks: VecDeque<Bytes>,
    first_index: u64,
    first_offset: u64,
    /// Bytes appended so far.
    len: u64,
    /// The joined body once `Done`.
    body: Option<Bytes>,
    /// Each registered reader's position (bytes consumed); `None` once gone.
    readers: Vec<Option<u64>>,
    /// Budget charged for the chunks held.
    charged: u64,
}

/// One response being filled. Share it as `Arc<Filling>`.
#[derive(Debug)]
pub struct Filling {
    pub head: FillHead,
    inner: Mutex<Inner>,
    /// Bumped on every append and state change; readers wait on it.
    progress: watch::Sender<u64>,
    /// Readers signal the writer when they move (backpressure while passing).
    read_progress: Notify,
    budget: Arc<FillBudget>,
}

impl Filling {
    /// A new fill, `Filling`, charging `reserved` bytes already taken from
    /// `budget` (the declared length, when known), and its one writer.
    pub fn new(head: FillHead, budget: Arc<FillBudget>, reserved: u64) -> (Arc<Self>, FillWriter) {
        let (progress, _) = watch::channel(0);
        let fill = Arc::new(Filling {
            head,
            inner: Mutex::new(Inner {
                state: FillState::Filling,
                chunks: VecDeque::new(),
                first_index: 0,
                first_offset: 0,
                len: 0,
                body: None,
                readers: Vec::new(),
                charged: reserved,
            }),
            progress,
            read_progress: Notify::new(),
            budget,
        });
        let writer = FillWriter {
            fill: Arc::clone(&fill),
        };
        (fill, writer)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bump(&self) {
        self.progress.send_modify(|v| *v = v.wrapping_add(1));
    }

    pub fn state(&self) -> FillState {
        self.lock().state.clone()
    }

    /// Bytes appended so far.
    pub fn len(&self) -> u64 {
        self.lock().len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Readers still attached.
    pub fn readers(&self) -> usize {
        self.lock().readers.iter().filter(|r| r.is_some()).count()
    }

    /// A reader of bytes `start..end` (`end` = `None`: to the end of the
    /// body). `None` when the fill no longer takes readers (passing or
    /// failed).
    pub fn reader(self: &Arc<Self>, start: u64, end: Option<u64>) -> Option<FillReader> {
        let mut inner = self.lock();
        match inner.state {
            FillState::Filling | FillState::Done => {}
            FillState::Passing | FillState::Failed(_) => return None,
        }
        let slot = match inner.readers.iter().position(Option::is_none) {
            Some(i) => {
                inner.readers[i] = Some(start);
                i
            }
            None => {
                inner.readers.push(Some(start));
                inner.readers.len() - 1
            }
        };
        drop(inner);
        Some(FillReader {
            fill: Arc::clone(self),
            rx: self.progress.subscribe(),
            slot,
            next_index: 0,
            next_offset: 0,
            pos: start,
            end,
        })
    }

    /// Drops chunks that every registered reader has passed and gives
    /// their budget back.
    fn trim(&self, inner: &mut Inner) {
        let min = inner.readers.iter().flatten().copied().min();
        // With no reader left there is nobody to pass bytes to.
        let min = min.unwrap_or(inner.len);
        while let Some(c) = inner.chunks.front() {
            let end = inner.first_offset + c.len() as u64;
            if end > min {
                break;
            }
            inner.first_offset = end;
            inner.first_index += 1;
            inner.chunks.pop_front();
        }
        let held: u64 = inner.chunks.iter().map(|c| c.len() as u64).sum();
        if inner.charged > held {
            self.budget.release(inner.charged - held);
            inner.charged = held;
        }
    }

    /// Waits for the end of the fill: the body when done and stored-size,
    /// an error when it failed or was passing.
    pub async fn finished(&self) -> Result<Bytes, FillError> {
        let mut rx = self.progress.subscribe();
        loop {
            {
                let inner = self.lock();
                match (&inner.state, &inner.body) {
                    (FillState::Done, Some(b)) => return Ok(b.clone()),
                    (FillState::Done, None) => {
                        return Err(FillError::Failed("not stored".into()));
                    }
                    (FillState::Failed(why), _) => return Err(FillError::Failed(why.clone())),
                    _ => {}
                }
            }
            if rx.changed().await.is_err() {
                return Err(FillError::Failed("fill dropped".into()));
            }
        }
    }
}

/// The one writer of a fill (the task that owns the upstream body).
/// Dropping it before [`FillWriter::finish`] fails the fill: a writer that
/// goes away is never read as a clean end of body.
#[derive(Debug)]
pub struct FillWriter {
    fill: Arc<Filling>,
}

impl FillWriter {
    pub fn fill(&self) -> &Arc<Filling> {
        &self.fill
    }

    /// Appends a chunk. Returns the number of bytes now held, so the writer
    /// can decide to stop storing.
    pub fn append(&self, chunk: Bytes) -> u64 {
        let n = chunk.len() as u64;
        let mut inner = self.fill.lock();
        if matches!(inner.state, FillState::Done | FillState::Failed(_)) || n == 0 {
            return inner.len;
        }
        inner.len += n;
        inner.chunks.push_back(chunk);
        if inner.state == FillState::Passing {
            self.fill.trim(&mut inner);
        }
        let len = inner.len;
        drop(inner);
        self.fill.bump();
        len
    }

    /// Charges `n` more bytes to the budget (for bodies of unknown length);
    /// false when the budget is exhausted.
    pub fn charge(&self, n: u64) -> bool {
        if !self.fill.budget.try_reserve(n) {
            return false;
        }
        self.fill.lock().charged += n;
        true
    }

    /// Stops storing: from now on no reader may attach, and chunks every
    /// reader has passed are dropped. Returns false if the fill had already
    /// ended.
    pub fn pass(&self) -> bool {
        let mut inner = self.fill.lock();
        if inner.state != FillState::Filling {
            return inner.state == FillState::Passing;
        }
        inner.state = FillState::Passing;
        self.fill.trim(&mut inner);
        drop(inner);
        self.fill.bump();
        true
    }

    /// How far ahead of the slowest reader the writer is, and how many
    /// readers are left (for backpressure while passing).
    pub fn lead(&self) -> (u64, usize) {
        let inner = self.fill.lock();
        let live: Vec<u64> = inner.readers.iter().flatten().copied().collect();
        let min = live.iter().copied().min().unwrap_or(inner.len);
        (inner.len.saturating_sub(min), live.len())
    }

    /// Waits until some reader moves or leaves.
    pub async fn reader_moved(&self) {
        self.fill.read_progress.notified().await;
    }

    /// The whole body arrived: joins it into one buffer (one copy, on the
    /// miss path, so every later hit shares it), releases the chunks and
    /// their budget, and wakes every reader. Returns the body, or `None` if
    /// the fill was not storing (passing) or already ended.
    pub fn finish(&self) -> Option<Bytes> {
        let mut inner = self.fill.lock();
        match inner.state {
            FillState::Filling => {}
            FillState::Passing => {
                inner.state = FillState::Done;
                drop(inner);
                self.fill.bump();
                return None;
            }
            FillState::Done | FillState::Failed(_) => return None,
        }
        let body = join(&inner.chunks, inner.len, &self.fill.budget.mapping);
        inner.chunks.clear();
        inner.first_offset = inner.len;
        inner.body = Some(body.clone());
        inner.state = FillState::Done;
        let charged = std::mem::take(&mut inner.charged);
        drop(inner);
        self.fill.budget.release(charged);
        self.fill.bump();
        Some(body)
    }

    /// The upstream failed: every reader's response is cut.
    pub fn fail(&self, reason: impl Into<String>) {
        let mut inner = self.fill.lock();
        if matches!(inner.state, FillState::Done | FillState::Failed(_)) {
            return;
        }
        inner.state = FillState::Failed(reason.into());
        inner.chunks.clear();
        let charged = std::mem::take(&mut inner.charged);
        drop(inner);
        self.fill.budget.release(charged);
        self.fill.bump();
    }
}

impl Drop for FillWriter {
    fn drop(&mut self) {
        self.fail("the fill was abandoned");
    }
}

impl Drop for Filling {
    fn drop(&mut self) {
        let inner = self.inner.get_mut().unwrap_or_else(|p| p.into_inner());
        let charged = std::mem::take(&mut inner.charged);
        self.budget.release(charged);
    }
}

fn join(chunks: &VecDeque<Bytes>, len: u64, mapping: &Mapping) -> Bytes {
    let size = usize::try_from(len).unwrap_or(usize::MAX);
    if let Some(mapped) = mapping.join(chunks.iter().map(|c| &c[..]), size) {
        return mapped;
    }
    match chunks.len() {
        0 => Bytes::new(),
        // A lone chunk is a slice of the connection's read buffer: copy it
        // so the entry does not pin that buffer.
        1 => Bytes::copy_from_slice(&chunks[0]),
        _ => {
            let mut all = BytesMut::with_capacity(usize::try_from(len).unwrap_or(0));
            for c in chunks {
                all.extend_from_slice(c);
            }
            all.freeze()
        }
    }
}

/// One reader of a fill, with its own cursor. Dropping it deregisters it.
#[derive(Debug)]
pub struct FillReader {
    fill: Arc<Filling>,
    rx: watch::Receiver<u64>,
    slot: usize,
    /// The next chunk to look at (absolute number) and its body offset.
    next_index: u64,
    next_offset: u64,
    /// The next byte this reader wants, and where it stops.
    pos: u64,
    end: Option<u64>,
}

impl FillReader {
    pub fn fill(&self) -> &Arc<Filling> {
        &self.fill
    }

    /// The next piece of the body: `Ok(None)` only at the real end (or the
    /// end of the requested range), an error when the fill failed.
    pub async fn next(&mut self) -> Result<Option<Bytes>, FillError> {
        loop {
            match self.try_next()? {
                Step::Data(b) => return Ok(Some(b)),
                Step::End => return Ok(None),
                Step::Wait => {
                    if self.rx.changed().await.is_err() {
                        return Err(FillError::Failed("fill dropped".into()));
                    }
                }
            }
        }
    }

    fn try_next(&mut self) -> Result<Step, FillError> {
        if self.end.is_some_and(|e| self.pos >= e) {
            return Ok(Step::End);
        }
        // Mark what we have seen before looking, so a change after this
        // point wakes us.
        self.rx.borrow_and_update();
        let mut inner = self.fill.lock();
        if let FillState::Failed(why) = &inner.state {
            return Err(FillError::Failed(why.clone()));
        }
        let stop = self.end.map_or(inner.len, |e| e.min(inner.len));
        if let Some(body) = &inner.body {
            // Done: the rest is one slice of the stored body.
            let from = usize::try_from(self.pos)
                .unwrap_or(usize::MAX)
                .min(body.len());
            let to = usize::try_from(stop).unwrap_or(usize::MAX).min(body.len());
            self.pos = stop;
            let piece = body.slice(from..to.max(from));
            drop(inner);
            self.moved();
            return Ok(if piece.is_empty() {
                Step::End
            } else {
                Step::Data(piece)
            });
        }
        if self.pos >= stop {
            return match inner.state {
                FillState::Done => Ok(Step::End),
                _ if self.end.is_some_and(|e| self.pos >= e) => Ok(Step::End),
                _ => Ok(Step::Wait),
            };
        }
        if self.next_index < inner.first_index {
            if self.pos < inner.first_offset {
                return Err(FillError::Lost);
            }
            self.next_index = inner.first_index;
            self.next_offset = inner.first_offset;
        }
        // Skip chunks wholly before `pos` (a range start), then slice.
        loop {
            let i = usize::try_from(self.next_index - inner.first_index).unwrap_or(usize::MAX);
            let Some(chunk) = inner.chunks.get(i) else {
                return Ok(Step::Wait);
            };
            let chunk_end = self.next_offset + chunk.len() as u64;
            if chunk_end <= self.pos {
                self.next_index += 1;
                self.next_offset = chunk_end;
                continue;
            }
            let from = usize::try_from(self.pos - self.next_offset).unwrap_or(0);
            let to = usize::try_from(stop.min(chunk_end) - self.next_offset).unwrap_or(0);
            let piece = chunk.slice(from..to);
            self.pos = stop.min(chunk_end);
            if self.pos == chunk_end {
                self.next_index += 1;
                self.next_offset = chunk_end;
            }
            if let Some(r) = inner.readers.get_mut(self.slot) {
                *r = Some(self.pos);
            }
            if inner.state == FillState::Passing {
                self.fill.trim(&mut inner);
            }
            drop(inner);
            self.moved();
            return Ok(Step::Data(piece));
        }
    }

    fn moved(&self) {
        self.fill.read_progress.notify_one();
    }
}

enum Step {
    Data(Bytes),
    End,
    Wait,
}

impl Drop for FillReader {
    fn drop(&mut self) {
        let mut inner = self.fill.lock();
        if let Some(r) = inner.readers.get_mut(self.slot) {
            *r = None;
        }
        if inner.state == FillState::Passing {
            self.fill.trim(&mut inner);
        }
        drop(inner);
        self.moved();
    }
}

#[cfg(test)]
#[path = "filling_tests.rs"]
mod tests;
