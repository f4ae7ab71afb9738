//! A small allocator for short-lived processes: the guest's boot-time check
//! makes some thousands of small allocations (names, digests, report rows,
//! JSON) and exits.
//!
//! musl's allocator (mallocng, in the static guest binary) gives memory back
//! to the kernel eagerly: a check of 255 credentials made about 100
//! `mmap`/`munmap` pairs, each a page-table change and, for `munmap`, a TLB
//! flush, plus a page fault every time a page came back; with its own
//! bookkeeping that was a large part of the check's time (`cargo xtask
//! bench`, `strace -c`, `perf`).
//!
//! [`Arena`] serves blocks of up to [`SMALL_MAX`] bytes from 1 MiB chunks in
//! power-of-two size classes: a freed block goes onto its class's free list
//! and is handed out again for the next block of that class; chunks are
//! never returned. Larger blocks, and blocks aligned to more than 16 bytes,
//! go to the system allocator, which maps and unmaps them as before, so a
//! 1 MiB credential buffer is still given back when it is freed. The memory
//! kept is at most twice the peak of small blocks live at one time, plus one
//! chunk. Chunks are mapped zeroed (musl's `calloc` does not clear a fresh
//! mapping), so a zeroed block carved from one is not cleared again and
//! costs a page only where it is written. Freed blocks are not wiped here
//! (nor by musl): code that held a secret wipes it before it frees it
//! (`Zeroizing`, `Secret`).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};

/// The smallest block: 16 bytes (every block is 16-byte aligned).
const MIN_SHIFT: u32 = 4;
/// The largest block served from a chunk.
const MAX_SHIFT: u32 = 16;
/// Blocks above this many bytes go to the system allocator.
pub const SMALL_MAX: usize = 1 << MAX_SHIFT;
/// Number of size classes (16 B … 64 KiB).
const CLASSES: usize = (MAX_SHIFT - MIN_SHIFT + 1) as usize;
/// Alignment of every block served from a chunk.
const ALIGN: usize = 1 << MIN_SHIFT;
/// Bytes asked of the system allocator at a time.
const CHUNK: usize = 1 << 20;

/// The allocator: `#[global_allocator] static A: Arena = Arena::new();`.
pub struct Arena {
    lock: AtomicBool,
    state: UnsafeCell<State>,
}

// SAFETY: `state` is only reached through `Arena::with`, which holds `lock`
// (an exclusive spin lock) for the whole access.
unsafe impl Sync for Arena {}

struct State {
    /// Per class, the first free block; each free block holds the next one's
    /// address in its first word.
    free: [*mut u8; CLASSES],
    /// The unused part of the current chunk.
    next: *mut u8,
    end: *mut u8,
}

impl Default for Arena {
    fn default() -> Self {
        Self::new()
    }
}

impl Arena {
    /// An empty arena (it asks for its first chunk on the first allocation).
    pub const fn new() -> Arena {
        Arena {
            lock: AtomicBool::new(false),
            state: UnsafeCell::new(State {
                free: [ptr::null_mut(); CLASSES],
                next: ptr::null_mut(),
                end: ptr::null_mut(),
            }),
        }
    }

    /// The size class of `layout`, or `None` for the system allocator.
    #[inline(always)]
    fn class(layout: Layout) -> Option<usize> {
        if layout.align() > ALIGN || layout.size() > SMALL_MAX {
            return None;
        }
        let size = layout.size().max(ALIGN).next_power_of_two();
        Some((size.trailing_zeros() - MIN_SHIFT) as usize)
    }

    /// Runs `f` on the state under the lock.
    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        while self
            .lock
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            std::hint::spin_loop();
        }
        // SAFETY: the lock is held, so this is the only reference to the
        // state until it is released below; `f` cannot reenter the arena
        // (State's methods call only the system allocator).
        let r = f(unsafe { &mut *self.state.get() });
        self.lock.store(false, Ordering::Release);
        r
    }
}

impl State {
    /// A block of class `c`, or null when the system has no memory; and
    /// whether it is fresh (carved from a chunk now, so all zeros: chunks
    /// come zeroed and a carved block was never handed out before).
    fn take(&mut self, c: usize) -> (*mut u8, bool) {
        let head = self.free[c];
        if !head.is_null() {
            // SAFETY: `head` is a free block of this class, at least 16
            // bytes and 16-byte aligned; its first word is the next free
            // block, written by `give`.
            self.free[c] = unsafe { head.cast::<*mut u8>().read() };
            return (head, false);
        }
        let size = ALIGN << c;
        if (self.end as usize) - (self.next as usize) < size && !self.grow() {
            return (ptr::null_mut(), false);
        }
        let p = self.next;
        // SAFETY: at least `size` bytes remain between `next` and `end`,
        // which are in the same chunk.
        self.next = unsafe { p.add(size) };
        (p, true)
    }

    /// Puts block `p` of class `c` on its free list.
    fn give(&mut self, p: *mut u8, c: usize) {
        // SAFETY: `p` is a block of class `c` the caller no longer uses:
        // 16-byte aligned and at least 16 bytes long.
        unsafe { p.cast::<*mut u8>().write(self.free[c]) };
        self.free[c] = p;
    }

    /// Starts a new chunk, first handing what is left of the current one to
    /// the free lists. False when the system has no memory.
    fn grow(&mut self) -> bool {
        while (self.end as usize) - (self.next as usize) >= ALIGN {
            let left = (self.end as usize) - (self.next as usize);
            // The largest class that fits; `next` stays 16-byte aligned.
            let shift = (usize::BITS - 1 - left.leading_zeros()).min(MAX_SHIFT);
            let p = self.next;
            // SAFETY: `1 << shift <= left`, so this stays inside the chunk.
            self.next = unsafe { p.add(1 << shift) };
            self.give(p, (shift - MIN_SHIFT) as usize);
        }
        // Zeroed, and aligned to no more than `calloc` gives: musl's
        // `calloc` maps a chunk this size fresh and so skips the `memset`,
        // and every block carved from it starts as zeros (see
        // `alloc_zeroed`), touched only when used.
        // SAFETY: the layout has a non-zero size and a power-of-two alignment.
        let chunk = unsafe { System.alloc_zeroed(Layout::from_size_align_unchecked(CHUNK, ALIGN)) };
        if chunk.is_null() {
            return false;
        }
        self.next = chunk;
        // SAFETY: the chunk is CHUNK bytes long.
        self.end = unsafe { chunk.add(CHUNK) };
        true
    }
}

// SAFETY: blocks handed out are disjoint (each is either carved once from a
// chunk, which is never given back, or taken off a free list it was put on
// when freed), at least `layout.size()` bytes long and 16-byte aligned, and
// larger or more aligned layouts go to `System` both ways.
unsafe impl GlobalAlloc for Arena {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match Self::class(layout) {
            Some(c) => self.with(|s| s.take(c)).0,
            // SAFETY: the caller's layout is passed on unchanged.
            None => unsafe { System.alloc(layout) },
        }
    }

    /// `vec![0; n]`: a fresh block is zero already, so only a reused one is
    /// cleared, and a large one is the system's `calloc`, which does not
    /// clear memory it has just mapped. A buffer sized for the most a read
    /// may bring then costs a page only where the read writes.
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        match Self::class(layout) {
            Some(c) => {
                let (p, fresh) = self.with(|s| s.take(c));
                if !p.is_null() && !fresh {
                    // SAFETY: `p` is a block of at least `layout.size()` bytes.
                    unsafe { ptr::write_bytes(p, 0, layout.size()) };
                }
                p
            }
            // SAFETY: the caller's layout is passed on unchanged.
            None => unsafe { System.alloc_zeroed(layout) },
        }
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        match Self::class(layout) {
            Some(c) => self.with(|s| s.give(p, c)),
            // SAFETY: `p` came from `System.alloc` with this layout (the
            // class of a layout never changes).
            None => unsafe { System.dealloc(p, layout) },
        }
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees that `new_size`, rounded up to the
        // alignment, does not overflow `isize`.
        let new = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        match (Self::class(layout), Self::class(new)) {
            // The block already has room.
            (Some(a), Some(b)) if a == b => p,
            // SAFETY: as in `dealloc`, `p` came from `System` with `layout`.
            (None, None) => unsafe { System.realloc(p, layout, new_size) },
            _ => {
                // SAFETY: `new` is a valid layout (see above).
                let q = unsafe { self.alloc(new) };
                if !q.is_null() {
                    // SAFETY: both blocks are at least this long, and
                    // distinct (the old one is still allocated).
                    unsafe {
                        ptr::copy_nonoverlapping(p, q, layout.size().min(new_size));
                        self.dealloc(p, layout);
                    }
                }
                q
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// xorshift: a fixed pseudo-random sequence.
    fn rng(seed: &mut u64) -> u64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    }

    #[test]
    fn test_classes() {
        let l = |s, a| Layout::from_size_align(s, a).unwrap();
        assert_eq!(Arena::class(l(0, 1)), Some(0));
        assert_eq!(Arena::class(l(16, 8)), Some(0));
        assert_eq!(Arena::class(l(17, 8)), Some(1));
        assert_eq!(Arena::class(l(SMALL_MAX, 16)), Some(CLASSES - 1));
        assert_eq!(Arena::class(l(SMALL_MAX + 1, 1)), None);
        assert_eq!(Arena::class(l(8, 32)), None);
    }

    /// Blocks never overlap, keep their bytes through reallocation, and
    /// freed ones are reused.
    #[test]
    fn test_blocks_are_disjoint_and_keep_their_bytes() {
        let a = Arena::new();
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        // (pointer, layout, fill byte)
        let mut live: Vec<(*mut u8, Layout, u8)> = Vec::new();
        for round in 0..20_000u32 {
            let r = rng(&mut seed);
            let fill = (round % 251) as u8;
            match r % 4 {
                0 | 1 => {
                    let size = match r >> 8 & 7 {
                        0 => (r >> 16) as usize % (SMALL_MAX * 3),
                        _ => (r >> 16) as usize % 300,
                    };
                    let align = 1 << ((r >> 40) % 6);
                    let layout = Layout::from_size_align(size.max(1), align).unwrap();
                    // SAFETY: a non-zero-sized layout.
                    let p = unsafe { a.alloc(layout) };
                    assert!(!p.is_null());
                    assert_eq!(p as usize % align, 0, "aligned");
                    // SAFETY: a block of `layout.size()` bytes.
                    unsafe { ptr::write_bytes(p, fill, layout.size()) };
                    live.push((p, layout, fill));
                }
                2 if !live.is_empty() => {
                    let i = (r >> 8) as usize % live.len();
                    let (p, layout, f) = live.swap_remove(i);
                    // SAFETY: allocated above with this layout, not freed yet.
                    let bytes = unsafe { std::slice::from_raw_parts(p, layout.size()) };
                    assert!(bytes.iter().all(|&b| b == f), "bytes kept");
                    // SAFETY: as above.
                    unsafe { a.dealloc(p, layout) };
                }
                _ if !live.is_empty() => {
                    let i = (r >> 8) as usize % live.len();
                    let (p, layout, f) = live[i];
                    let new_size = ((r >> 20) as usize % (SMALL_MAX + 4096)).max(1);
                    // SAFETY: allocated with `layout`, new size non-zero.
                    let q = unsafe { a.realloc(p, layout, new_size) };
                    assert!(!q.is_null());
                    let kept = layout.size().min(new_size);
                    // SAFETY: `q` has at least `new_size` bytes.
                    let bytes = unsafe { std::slice::from_raw_parts(q, kept) };
                    assert!(bytes.iter().all(|&b| b == f), "realloc kept the bytes");
                    let layout = Layout::from_size_align(new_size, layout.align()).unwrap();
                    // SAFETY: as above.
                    unsafe { ptr::write_bytes(q, f, new_size) };
                    live[i] = (q, layout, f);
                }
                _ => {}
            }
            if round % 997 == 0 {
                let mut spans: Vec<(usize, usize)> = live
                    .iter()
                    .map(|(p, l, _)| (*p as usize, *p as usize + l.size()))
                    .collect();
                spans.sort_unstable();
                for w in spans.windows(2) {
                    assert!(w[0].1 <= w[1].0, "blocks overlap: {w:?}");
                }
            }
        }
        for (p, layout, _) in live {
            // SAFETY: every block still live, with its layout.
            unsafe { a.dealloc(p, layout) };
        }
    }

    #[test]
    fn test_a_freed_block_is_reused() {
        let a = Arena::new();
        let l = Layout::from_size_align(100, 8).unwrap();
        // SAFETY: non-zero layouts; each block freed once with its layout.
        unsafe {
            let p = a.alloc(l);
            a.dealloc(p, l);
            let q = a.alloc(Layout::from_size_align(120, 8).unwrap());
            assert_eq!(p, q, "same class, same block");
            // Growing within the class stays in place.
            assert_eq!(
                a.realloc(q, Layout::from_size_align(120, 8).unwrap(), 128),
                q
            );
            a.dealloc(q, Layout::from_size_align(128, 8).unwrap());
        }
    }

    /// `alloc_zeroed` gives zeros whether the block is fresh from a chunk
    /// (not cleared: chunks come zeroed), reused after holding bytes
    /// (cleared), or the system's.
    #[test]
    fn test_zeroed_blocks_are_zero() {
        let a = Arena::new();
        let zero = |p: *mut u8, n: usize| {
            // SAFETY: `p` is a live block of at least `n` bytes.
            unsafe { std::slice::from_raw_parts(p, n) }
                .iter()
                .all(|&b| b == 0)
        };
        for size in [1, 100, 4096, SMALL_MAX, SMALL_MAX + 1, 3 << 20] {
            let l = Layout::from_size_align(size, 8).unwrap();
            // SAFETY: non-zero layouts; each block freed once, with its layout.
            unsafe {
                let p = a.alloc_zeroed(l);
                assert!(!p.is_null() && zero(p, size), "fresh, {size}");
                ptr::write_bytes(p, 0xa5, size);
                a.dealloc(p, l);
                let q = a.alloc_zeroed(l);
                assert!(!q.is_null() && zero(q, size), "reused, {size}");
                if size <= SMALL_MAX {
                    assert_eq!(p, q, "the freed block, cleared");
                }
                a.dealloc(q, l);
            }
        }
    }

    #[test]
    fn test_threads_share_it() {
        static A: Arena = Arena::new();
        let handles: Vec<_> = (0..4)
            .map(|t| {
                std::thread::spawn(move || {
                    let l = Layout::from_size_align(48, 8).unwrap();
                    for i in 0..5_000u32 {
                        // SAFETY: a non-zero layout; freed once below.
                        unsafe {
                            let p = A.alloc(l);
                            assert!(!p.is_null());
                            ptr::write_bytes(p, (t * 7 + i) as u8, 48);
                            let s = std::slice::from_raw_parts(p, 48);
                            assert!(s.iter().all(|&b| b == (t * 7 + i) as u8));
                            A.dealloc(p, l);
                        }
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    }
}
