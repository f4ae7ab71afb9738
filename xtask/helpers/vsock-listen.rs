//! `vsock-listen PATH OUTPREFIX MAXCONN HOLD_SECS TIMEOUT_SECS [HOLD_IF]`: a test helper for the
//! nested cloud-hypervisor runs, standing in for a VMM-side peer of the guest's vsock.
//!
//! cloud-hypervisor's hybrid vsock connects a guest's `AF_VSOCK` stream to CID 2 port P to the
//! unix socket `PATH_P` on the VMM's side. This binds PATH, accepts up to MAXCONN connections,
//! and for each (in its own thread) reads until EOF or TIMEOUT_SECS of silence, writes the
//! bytes to `OUTPREFIX.N`, then holds the connection open HOLD_SECS more before closing it (a
//! negative HOLD_SECS: until killed); with HOLD_IF, only connections whose bytes contain it are
//! held, the others closed at once. That is how a slow or hostile notify peer behaves, which
//! systemd >= 256's `sd_notify` waits for. Events go to stderr with monotonic timestamps.
//!
//! std only, no dependency: `cargo xtask` builds it with `rustc --target
//! x86_64-unknown-linux-musl` into a static binary for the outer guest.

use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 6 && args.len() != 7 {
        eprintln!("usage: vsock-listen PATH OUTPREFIX MAXCONN HOLD_SECS TIMEOUT_SECS [HOLD_IF]");
        std::process::exit(2);
    }
    let num = |i: usize| -> i64 {
        args[i].parse().unwrap_or_else(|_| {
            eprintln!("vsock-listen: argument {i} is not a number");
            std::process::exit(2)
        })
    };
    let (path, prefix) = (args[1].clone(), args[2].clone());
    let (max, hold, timeout) = (num(3), num(4), num(5));
    let hold_if: Option<Vec<u8>> = args.get(6).map(|s| s.as_bytes().to_vec());
    let t0 = Instant::now();
    let stamp = move || t0.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).unwrap_or_else(|e| {
        eprintln!("vsock-listen: bind {path}: {e}");
        std::process::exit(3)
    });
    eprintln!("{:.3} listening {path}", stamp());
    let mut threads = Vec::new();
    for n in 0..max {
        let (mut conn, _) = match listener.accept() {
            Ok(c) => c,
            Err(e) => {
                eprintln!("vsock-listen: accept: {e}");
                std::process::exit(3)
            }
        };
        eprintln!("{:.3} conn {n} accepted", stamp());
        let prefix = prefix.clone();
        let hold_if = hold_if.clone();
        threads.push(std::thread::spawn(move || {
            let _ = conn.set_read_timeout(Some(Duration::from_secs(timeout.max(1) as u64)));
            let mut got = Vec::new();
            let mut buf = [0u8; 65536];
            let eof = loop {
                match conn.read(&mut buf) {
                    Ok(0) => break true,
                    Ok(k) => {
                        got.extend_from_slice(&buf[..k]);
                        eprintln!("{:.3} conn {n} read {k} bytes", stamp());
                    }
                    Err(e) => {
                        eprintln!("{:.3} conn {n} read stopped: {e}", stamp());
                        break false;
                    }
                }
            };
            if let Ok(mut f) = std::fs::File::create(format!("{prefix}.{n}")) {
                let _ = f.write_all(&got);
            }
            let what = if eof { "EOF" } else { "no-EOF" };
            eprintln!("{:.3} conn {n} {what}, {} bytes", stamp(), got.len());
            let held = hold_if
                .as_ref()
                .map_or(true, |m| got.windows(m.len()).any(|w| w == m.as_slice()));
            let hold = if held { hold } else { 0 };
            if hold < 0 {
                eprintln!("{:.3} conn {n} holding open until killed", stamp());
                loop {
                    std::thread::sleep(Duration::from_secs(3600));
                }
            }
            if hold > 0 {
                eprintln!("{:.3} conn {n} holding {hold} s before close", stamp());
                std::thread::sleep(Duration::from_secs(hold as u64));
            }
            drop(conn);
            eprintln!("{:.3} conn {n} closed", stamp());
        }));
    }
    for t in threads {
        let _ = t.join();
    }
}
