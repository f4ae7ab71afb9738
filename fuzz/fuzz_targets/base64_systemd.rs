//! systemd's base64 decoder: no panic, and agreement with a strict decoder
//! wherever the input is canonical padded base64 without whitespace.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vmcreds_common::base64::{decode_systemd, encode, Alphabet};

fuzz_target!(|data: &[u8]| {
    let a = decode_systemd(data, Alphabet::Standard, 252);
    let b = decode_systemd(data, Alphabet::StandardAndUrlSafe, 257);
    if let Ok(v) = &a {
        // Whatever 252 accepts, 257 accepts with the same bytes.
        assert_eq!(b.as_ref().map(|s| s.expose().to_vec()).ok(), Some(v.expose().to_vec()));
        // And the canonical encoding of the result decodes to it again.
        let again = decode_systemd(encode(v.expose()).expose(), Alphabet::Standard, 252).unwrap();
        assert_eq!(again.expose(), v.expose());
    }
});
