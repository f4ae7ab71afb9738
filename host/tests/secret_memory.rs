//! Issue 13 §7: no copy of a loaded secret is freed unwiped. This test
//! binary's allocator zero-fills every block it hands out and, while a
//! source is being loaded, scans every block freed for the secret's marker:
//! a buffer that grew by reallocation (and left the old copy in freed
//! memory, where a core dump or the next allocation finds it) is counted.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write as _;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use vmcreds_host::cli::SourceSpec;
use vmcreds_host::source::{load_all, Loaded};

/// Sixteen bytes nothing else in this process holds.
const MARK: [u8; 16] = *b"\x9cvmcreds\x01canary\xfe";

/// The secret: the marker, over and over (a static, never on the heap).
static VALUE: [u8; 300_000] = {
    let mut v = [0u8; 300_000];
    let mut i = 0;
    while i < v.len() {
        v[i] = MARK[i % 16];
        i += 1;
    }
    v
};

static ARMED: AtomicBool = AtomicBool::new(false);
static FREED_WITH_SECRET: AtomicUsize = AtomicUsize::new(0);
/// One armed test at a time: the counter is the process's.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

struct Scanning;

// SAFETY: every call is passed on to `System` unchanged, with the layout it
// was given; blocks are zero-filled (`alloc_zeroed`) so every byte of a
// block is initialised when `dealloc` reads it. `realloc` is the trait's
// default (alloc, copy, dealloc), so a grown buffer's old block goes
// through `dealloc` and is scanned.
unsafe impl GlobalAlloc for Scanning {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc` is `alloc_zeroed`'s.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if ARMED.load(Ordering::Relaxed) && layout.size() >= MARK.len() {
            // SAFETY: `ptr` is a live block of `layout.size()` bytes that this
            // allocator zero-filled when it handed it out, so all of it is
            // initialised; it is freed only below.
            let block = unsafe { std::slice::from_raw_parts(ptr, layout.size()) };
            if block.windows(MARK.len()).any(|w| w == MARK) {
                FREED_WITH_SECRET.fetch_add(1, Ordering::Relaxed);
            }
        }
        // SAFETY: `ptr` came from `System` (through `alloc`) with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Scanning = Scanning;

/// Issue 13 §7: a source read from a pipe (`--load A:<(command)`) grew its
/// buffer by reallocation, freeing each old copy of the secret unwiped.
#[test]
fn test_issue13_7_a_loaded_secret_is_never_freed_unwiped() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    FREED_WITH_SECRET.store(0, Ordering::SeqCst);
    let (r, w) = rustix::pipe::pipe().unwrap();
    let writer = std::thread::spawn(move || {
        let mut f = std::fs::File::from(w);
        for piece in VALUE.chunks(7_000) {
            f.write_all(piece).unwrap();
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("regular");
    std::fs::write(&file, &VALUE[..100_000]).unwrap();
    let specs = [
        SourceSpec::Load(format!("PIPE:/proc/self/fd/{}", r.as_raw_fd())),
        SourceSpec::Load(format!("FILE:{}", file.display())),
    ];
    ARMED.store(true, Ordering::SeqCst);
    let loaded = load_all(&specs, None).unwrap();
    let lens: Vec<usize> = loaded
        .iter()
        .map(|l| match l {
            Loaded::Credential { value, .. } => {
                assert!(
                    VALUE.starts_with(value.expose()),
                    "a value is not the secret"
                );
                value.len()
            }
            Loaded::Oem { .. } => 0,
        })
        .collect();
    drop(loaded);
    ARMED.store(false, Ordering::SeqCst);
    writer.join().unwrap();
    assert_eq!(lens, [VALUE.len(), 100_000]);
    assert_eq!(
        FREED_WITH_SECRET.load(Ordering::SeqCst),
        0,
        "heap blocks holding the secret were freed without being wiped"
    );
}

/// A reader that hands out at most 1000 bytes a call, so the client's
/// buffers must grow many times.
struct Trickle<'a>(&'a [u8]);

impl std::io::Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(1000).min(self.0.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

/// REVIEW S1: a cloud-hypervisor API answer may echo the VmConfig, every
/// credential in it; its body was a plain `Vec` that grew by reallocation
/// and was freed unwiped. Read by length and to EOF, nothing of it is freed
/// unwiped now.
#[test]
fn test_an_api_response_echoing_a_secret_is_never_freed_unwiped() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    FREED_WITH_SECRET.store(0, Ordering::SeqCst);
    let echo = &VALUE[..200_000];
    let by_length = [
        format!(
            "HTTP/1.1 500 Internal Server Error\r\nContent-Length: {}\r\n\r\n",
            echo.len()
        )
        .into_bytes(),
        echo.to_vec(),
    ]
    .concat();
    let to_eof = [b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec(), echo.to_vec()].concat();
    ARMED.store(true, Ordering::SeqCst);
    for input in [&by_length, &to_eof] {
        let r = vmcreds_host::api_client::read_response(&mut Trickle(input)).unwrap();
        assert!(r.body.as_slice() == echo, "the body is not the echo");
        drop(r);
    }
    ARMED.store(false, Ordering::SeqCst);
    drop((by_length, to_eof));
    assert_eq!(
        FREED_WITH_SECRET.load(Ordering::SeqCst),
        0,
        "heap blocks holding an echoed secret were freed without being wiped"
    );
}
