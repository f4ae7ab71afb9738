//! The cloud-hypervisor API client's response reader: status line, headers
//! and body from an untrusted socket, within its bounds.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vmcreds_host::api_client::read_response;

fuzz_target!(|data: &[u8]| {
    let mut r = data;
    if let Ok(resp) = read_response(&mut r) {
        let _ = resp.is_success();
        let _ = resp.header("content-length");
    }
});
