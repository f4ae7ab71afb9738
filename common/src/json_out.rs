//! Writing JSON fast on a static musl binary, byte for byte what serde_json
//! writes.
//!
//! The guest serialises a report of some hundred kilobytes at every boot.
//! Through serde_json, each piece of a few bytes (a quote, a colon, two
//! spaces of indent) is one `io::Write` call and one `memcpy`, and musl's
//! `memcpy` starts every copy with `rep movsq`: at the size-optimised
//! release profile, serialising a 255-credential report took about a third
//! of a check's instructions (callgrind). [`pretty`] and [`compact`] use a
//! `serde::Serializer` of their own that appends to one `Vec` reserved up
//! front, copies short pieces without `memcpy`, and writes indentation in
//! one piece. Its output is serde_json's `to_string_pretty` (plus a
//! newline) and `to_vec` for every value serde_json writes, proven by the
//! tests below and by the golden reports. It leaves nothing to serde_json
//! (only a float's digits come from it), so serde_json's serialiser is not
//! compiled into the guest for the report's types: a fallback to it was
//! some 16 KB of the static binary, which has a size budget.

use std::fmt;

use serde::ser::{self, Serialize};

/// Pretty JSON of `value` (serde_json's two-space format) with a trailing
/// newline, `capacity` bytes reserved.
///
/// # Panics
///
/// Where serde_json's `to_string_pretty(..).expect(..)` would: on what
/// serde_json refuses (a map key that is not a string, a number, a bool or
/// a finite float) and on a `Serialize` impl's own error. No type of
/// vmcreds' reports, manifests or listings has either.
pub fn pretty<T: Serialize + ?Sized>(value: &T, capacity: usize) -> String {
    let mut v = write(value, capacity, true).expect("serialises to memory");
    v.push(b'\n');
    String::from_utf8(v).expect("JSON is UTF-8")
}

/// Compact JSON of `value` (serde_json's `to_vec`), `capacity` bytes reserved.
///
/// # Panics
///
/// As [`pretty`].
pub fn compact<T: Serialize + ?Sized>(value: &T, capacity: usize) -> Vec<u8> {
    write(value, capacity, false).expect("serialises to memory")
}

fn write<T: Serialize + ?Sized>(value: &T, capacity: usize, pretty: bool) -> Result<Vec<u8>> {
    let mut w = Writer {
        out: vec![0; capacity],
        pos: 0,
        depth: 0,
        pretty,
    };
    value.serialize(&mut w)?;
    w.out.truncate(w.pos);
    Ok(w.out)
}

/// What serde_json refuses to write too: a map key of another kind, or a
/// `Serialize` impl's own error.
#[derive(Debug)]
pub struct Unsupported;

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not serialisable as JSON")
    }
}

impl std::error::Error for Unsupported {}

impl ser::Error for Unsupported {
    fn custom<T: fmt::Display>(_msg: T) -> Self {
        Unsupported
    }
}

/// serde_json's escapes: `u` for `\u00XX`, else the letter after `\`.
static ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0a] = b'n';
    t[0x0c] = b'f';
    t[0x0d] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

/// True when one of the eight bytes of `x` is escaped: below 0x20, `"` or
/// `\\` (the exact "has a zero byte" and "has a byte below n" tests).
#[inline(always)]
fn needs_escape(x: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let below_space = x.wrapping_sub(ONES * 0x20) & !x & HIGH;
    (zero_byte(x ^ (ONES * u64::from(b'"')))
        | zero_byte(x ^ (ONES * u64::from(b'\\')))
        | below_space)
        != 0
}

/// How many bytes at the start of `s` are written as they are: eight at a
/// time, then one at a time.
fn plain_prefix(s: &[u8]) -> usize {
    let mut words = s.chunks_exact(8);
    let mut n = 0;
    for w in &mut words {
        if needs_escape(u64::from_le_bytes(w.try_into().unwrap_or_default())) {
            break;
        }
        n += 8;
    }
    n + s
        .iter()
        .skip(n)
        .position(|&c| ESCAPE[usize::from(c)] != 0)
        .unwrap_or(s.len() - n)
}

/// A newline and the indentation of 32 levels.
static NEWLINE_INDENT: [u8; 65] = {
    let mut t = [b' '; 65];
    t[0] = b'\n';
    t
};

/// The output: `out[..pos]` is written; `out` is kept longer than that
/// (zeros), so that short pieces are copied as fixed-size arrays into it.
struct Writer {
    out: Vec<u8>,
    pos: usize,
    depth: usize,
    pretty: bool,
}

impl Writer {
    /// Room for `n` more bytes after `pos`.
    #[inline(always)]
    fn room(&mut self, n: usize) {
        if self.out.len() - self.pos < n {
            let len = (self.out.len() * 2).max(self.pos + n + 64);
            self.out.resize(len, 0);
        }
    }

    /// Appends `s`; up to 16 bytes as one or two fixed-size copies (plain
    /// moves, where a copy of a length known only at run time is a call to
    /// `memcpy`).
    #[inline(always)]
    fn put(&mut self, s: &[u8]) {
        let n = s.len();
        let p = self.pos;
        if n > 16 {
            self.room(n);
            self.out[p..p + n].copy_from_slice(s);
        } else {
            self.room(16);
            let o = &mut self.out[p..p + 16];
            // Array assignments, not `copy_from_slice`: at opt-level "z"
            // the latter stays a call to `memcpy`.
            if n >= 8 {
                let head = <[u8; 8]>::try_from(&s[..8]).unwrap_or_default();
                let tail = <[u8; 8]>::try_from(&s[n - 8..]).unwrap_or_default();
                if let Ok(d) = <&mut [u8; 8]>::try_from(&mut o[..8]) {
                    *d = head;
                }
                if let Ok(d) = <&mut [u8; 8]>::try_from(&mut o[n - 8..n]) {
                    *d = tail;
                }
            } else if n >= 4 {
                let head = <[u8; 4]>::try_from(&s[..4]).unwrap_or_default();
                let tail = <[u8; 4]>::try_from(&s[n - 4..]).unwrap_or_default();
                if let Ok(d) = <&mut [u8; 4]>::try_from(&mut o[..4]) {
                    *d = head;
                }
                if let Ok(d) = <&mut [u8; 4]>::try_from(&mut o[n - 4..n]) {
                    *d = tail;
                }
            } else {
                for (d, &b) in o.iter_mut().zip(s) {
                    *d = b;
                }
            }
        }
        self.pos = p + n;
    }

    #[inline(always)]
    fn byte(&mut self, b: u8) {
        self.room(1);
        self.out[self.pos] = b;
        self.pos += 1;
    }

    /// A newline and the current indentation (pretty only).
    fn newline(&mut self) {
        let width = 1 + 2 * self.depth;
        if width <= NEWLINE_INDENT.len() {
            self.put(&NEWLINE_INDENT[..width]);
        } else {
            self.byte(b'\n');
            for _ in 0..self.depth {
                self.put(b"  ");
            }
        }
    }

    /// What goes before a struct field's value (`,` unless `first`, the
    /// newline and indentation when pretty, the quoted key and the colon),
    /// written in one pass into room reserved once: a report has some
    /// thousands of fields, and this was most of a field's cost as separate
    /// calls. False, with nothing written, when the key needs an escape
    /// (the caller then writes the field the general way).
    fn field(&mut self, first: bool, key: &str) -> bool {
        let k = key.as_bytes();
        let indent = if self.pretty { 2 * self.depth } else { 0 };
        let need = 6 + indent + k.len();
        self.room(need);
        let out = &mut self.out[self.pos..self.pos + need];
        let mut i = 0;
        if !first {
            out[i] = b',';
            i += 1;
        }
        if self.pretty {
            out[i] = b'\n';
            i += 1;
            for b in &mut out[i..i + indent] {
                *b = b' ';
            }
            i += indent;
        }
        out[i] = b'"';
        i += 1;
        for (o, &c) in out[i..i + k.len()].iter_mut().zip(k) {
            if ESCAPE[usize::from(c)] != 0 {
                return false;
            }
            *o = c;
        }
        i += k.len();
        out[i] = b'"';
        out[i + 1] = b':';
        i += 2;
        if self.pretty {
            out[i] = b' ';
            i += 1;
        }
        self.pos += i;
        true
    }

    fn string(&mut self, s: &str) {
        self.byte(b'"');
        let mut rest = s.as_bytes();
        loop {
            let n = plain_prefix(rest);
            let (plain, escaped) = rest.split_at(n);
            self.put(plain);
            let Some((&c, after)) = escaped.split_first() else {
                break;
            };
            let e = ESCAPE[usize::from(c)];
            if e == b'u' {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                self.put(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(c >> 4)],
                    HEX[usize::from(c & 0xf)],
                ]);
            } else {
                self.put(&[b'\\', e]);
            }
            rest = after;
        }
        self.byte(b'"');
    }

    fn unsigned(&mut self, mut v: u64) {
        let mut buf = [0u8; 20];
        let mut i = buf.len();
        loop {
            i -= 1;
            buf[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.put(&buf[i..]);
    }

    fn signed(&mut self, v: i64) {
        if v < 0 {
            self.byte(b'-');
        }
        self.unsigned(v.unsigned_abs());
    }

    fn unsigned128(&mut self, mut v: u128) {
        let mut buf = [0u8; 39];
        let mut i = buf.len();
        loop {
            i -= 1;
            buf[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.put(&buf[i..]);
    }

    fn signed128(&mut self, v: i128) {
        if v < 0 {
            self.byte(b'-');
        }
        self.unsigned128(v.unsigned_abs());
    }

    /// A float as serde_json writes it (its digits are serde_json's own;
    /// not finite is `null`).
    fn float<F: Serialize>(&mut self, v: F) -> Result {
        let digits = serde_json::to_vec(&v).map_err(|_| Unsupported)?;
        self.put(&digits);
        Ok(())
    }

    /// `{"variant":` and the value's indentation: an enum variant with data
    /// is an object of one field (serde_json's externally tagged form).
    fn variant(&mut self, variant: &str) -> Compound<'_> {
        let mut outer = self.open(b'{', false);
        outer.element();
        outer.w.string(variant);
        outer.colon();
        outer
    }

    /// `[` or `{`; `empty` when serde said there are no elements.
    fn open(&mut self, bracket: u8, empty: bool) -> Compound<'_> {
        self.byte(bracket);
        self.depth += 1;
        if empty {
            self.depth -= 1;
            self.byte(bracket + 2);
        }
        Compound {
            w: self,
            state: if empty { State::Empty } else { State::First },
            variant: false,
        }
    }
}

#[derive(PartialEq)]
enum State {
    /// Opened and closed already (serde said zero elements).
    Empty,
    /// No element written yet.
    First,
    /// At least one element written.
    Rest,
}

/// An array or object being written.
struct Compound<'a> {
    w: &'a mut Writer,
    state: State,
    /// It is the value of an enum variant: closing it closes the object of
    /// one field around it too.
    variant: bool,
}

impl Compound<'_> {
    /// What goes before an element or key.
    fn element(&mut self) {
        if self.state != State::First {
            self.w.byte(b',');
        }
        self.state = State::Rest;
        if self.w.pretty {
            self.w.newline();
        }
    }

    fn colon(&mut self) {
        if self.w.pretty {
            self.w.put(b": ");
        } else {
            self.w.byte(b':');
        }
    }

    fn close(self, bracket: u8) {
        let w = self.w;
        if self.state != State::Empty {
            w.depth -= 1;
            if self.state == State::Rest && w.pretty {
                w.newline();
            }
            w.byte(bracket);
        }
        if self.variant {
            w.depth -= 1;
            if w.pretty {
                w.newline();
            }
            w.byte(b'}');
        }
    }
}

type Result<T = ()> = std::result::Result<T, Unsupported>;

impl<'a> ser::Serializer for &'a mut Writer {
    type Ok = ();
    type Error = Unsupported;
    type SerializeSeq = Compound<'a>;
    type SerializeTuple = Compound<'a>;
    type SerializeTupleStruct = Compound<'a>;
    type SerializeTupleVariant = Compound<'a>;
    type SerializeMap = Compound<'a>;
    type SerializeStruct = Compound<'a>;
    type SerializeStructVariant = Compound<'a>;

    fn serialize_bool(self, v: bool) -> Result {
        self.put(if v { b"true" } else { b"false" });
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> Result {
        self.signed(v.into());
        Ok(())
    }
    fn serialize_i16(self, v: i16) -> Result {
        self.signed(v.into());
        Ok(())
    }
    fn serialize_i32(self, v: i32) -> Result {
        self.signed(v.into());
        Ok(())
    }
    fn serialize_i64(self, v: i64) -> Result {
        self.signed(v);
        Ok(())
    }
    fn serialize_u8(self, v: u8) -> Result {
        self.unsigned(v.into());
        Ok(())
    }
    fn serialize_u16(self, v: u16) -> Result {
        self.unsigned(v.into());
        Ok(())
    }
    fn serialize_u32(self, v: u32) -> Result {
        self.unsigned(v.into());
        Ok(())
    }
    fn serialize_u64(self, v: u64) -> Result {
        self.unsigned(v);
        Ok(())
    }
    fn serialize_i128(self, v: i128) -> Result {
        self.signed128(v);
        Ok(())
    }
    fn serialize_u128(self, v: u128) -> Result {
        self.unsigned128(v);
        Ok(())
    }
    fn serialize_f32(self, v: f32) -> Result {
        self.float(v)
    }
    fn serialize_f64(self, v: f64) -> Result {
        self.float(v)
    }
    fn serialize_char(self, v: char) -> Result {
        self.string(v.encode_utf8(&mut [0u8; 4]));
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result {
        self.string(v);
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result {
        use ser::SerializeSeq;
        let mut seq = self.serialize_seq(Some(v.len()))?;
        for b in v {
            seq.serialize_element(b)?;
        }
        seq.end()
    }
    fn serialize_none(self) -> Result {
        self.put(b"null");
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result {
        v.serialize(self)
    }
    fn serialize_unit(self) -> Result {
        self.put(b"null");
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result {
        self.put(b"null");
        Ok(())
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> Result {
        self.string(variant);
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, v: &T) -> Result {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        v: &T,
    ) -> Result {
        let outer = self.variant(variant);
        v.serialize(&mut *outer.w)?;
        outer.close(b'}');
        Ok(())
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Compound<'a>> {
        Ok(self.open(b'[', len == Some(0)))
    }
    fn serialize_tuple(self, len: usize) -> Result<Compound<'a>> {
        Ok(self.open(b'[', len == 0))
    }
    fn serialize_tuple_struct(self, _: &'static str, len: usize) -> Result<Compound<'a>> {
        Ok(self.open(b'[', len == 0))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Compound<'a>> {
        let Compound { w, .. } = self.variant(variant);
        let mut inner = w.open(b'[', len == 0);
        inner.variant = true;
        Ok(inner)
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Compound<'a>> {
        Ok(self.open(b'{', len == Some(0)))
    }
    fn serialize_struct(self, _: &'static str, len: usize) -> Result<Compound<'a>> {
        Ok(self.open(b'{', len == 0))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Compound<'a>> {
        let Compound { w, .. } = self.variant(variant);
        let mut inner = w.open(b'{', len == 0);
        inner.variant = true;
        Ok(inner)
    }
}

impl ser::SerializeSeq for Compound<'_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result {
        self.element();
        v.serialize(&mut *self.w)
    }
    fn end(self) -> Result {
        self.close(b']');
        Ok(())
    }
}

impl ser::SerializeTuple for Compound<'_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result {
        ser::SerializeSeq::serialize_element(self, v)
    }
    fn end(self) -> Result {
        ser::SerializeSeq::end(self)
    }
}

impl ser::SerializeTupleStruct for Compound<'_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> Result {
        ser::SerializeSeq::serialize_element(self, v)
    }
    fn end(self) -> Result {
        ser::SerializeSeq::end(self)
    }
}

impl ser::SerializeTupleVariant for Compound<'_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> Result {
        ser::SerializeSeq::serialize_element(self, v)
    }
    fn end(self) -> Result {
        ser::SerializeSeq::end(self)
    }
}

impl ser::SerializeMap for Compound<'_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result {
        self.element();
        key.serialize(KeyWriter(&mut *self.w))
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Result {
        self.colon();
        v.serialize(&mut *self.w)
    }
    fn end(self) -> Result {
        self.close(b'}');
        Ok(())
    }
}

impl ser::SerializeStruct for Compound<'_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, v: &T) -> Result {
        let first = self.state == State::First;
        if !self.w.field(first, key) {
            self.element();
            self.w.string(key);
            self.colon();
        }
        self.state = State::Rest;
        v.serialize(&mut *self.w)
    }
    fn end(self) -> Result {
        self.close(b'}');
        Ok(())
    }
}

impl ser::SerializeStructVariant for Compound<'_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, v: &T) -> Result {
        ser::SerializeStruct::serialize_field(self, key, v)
    }
    fn end(self) -> Result {
        ser::SerializeStruct::end(self)
    }
}

/// A map key, as serde_json writes one: a string; a bool, a number or a
/// finite float in quotes; nothing else.
struct KeyWriter<'a>(&'a mut Writer);

impl KeyWriter<'_> {
    /// A number or a bool, in quotes.
    fn quoted(self, f: impl FnOnce(&mut Writer)) -> Result {
        self.0.byte(b'"');
        f(self.0);
        self.0.byte(b'"');
        Ok(())
    }
}

impl ser::Serializer for KeyWriter<'_> {
    type Ok = ();
    type Error = Unsupported;
    type SerializeSeq = ser::Impossible<(), Unsupported>;
    type SerializeTuple = ser::Impossible<(), Unsupported>;
    type SerializeTupleStruct = ser::Impossible<(), Unsupported>;
    type SerializeTupleVariant = ser::Impossible<(), Unsupported>;
    type SerializeMap = ser::Impossible<(), Unsupported>;
    type SerializeStruct = ser::Impossible<(), Unsupported>;
    type SerializeStructVariant = ser::Impossible<(), Unsupported>;

    fn serialize_str(self, v: &str) -> Result {
        self.0.string(v);
        Ok(())
    }
    fn serialize_char(self, v: char) -> Result {
        self.0.string(v.encode_utf8(&mut [0u8; 4]));
        Ok(())
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> Result {
        self.0.string(variant);
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, v: &T) -> Result {
        v.serialize(self)
    }
    fn serialize_bool(self, v: bool) -> Result {
        self.quoted(|w| w.put(if v { b"true" } else { b"false" }))
    }
    fn serialize_i8(self, v: i8) -> Result {
        self.quoted(|w| w.signed(v.into()))
    }
    fn serialize_i16(self, v: i16) -> Result {
        self.quoted(|w| w.signed(v.into()))
    }
    fn serialize_i32(self, v: i32) -> Result {
        self.quoted(|w| w.signed(v.into()))
    }
    fn serialize_i64(self, v: i64) -> Result {
        self.quoted(|w| w.signed(v))
    }
    fn serialize_i128(self, v: i128) -> Result {
        self.quoted(|w| w.signed128(v))
    }
    fn serialize_u8(self, v: u8) -> Result {
        self.quoted(|w| w.unsigned(v.into()))
    }
    fn serialize_u16(self, v: u16) -> Result {
        self.quoted(|w| w.unsigned(v.into()))
    }
    fn serialize_u32(self, v: u32) -> Result {
        self.quoted(|w| w.unsigned(v.into()))
    }
    fn serialize_u64(self, v: u64) -> Result {
        self.quoted(|w| w.unsigned(v))
    }
    fn serialize_u128(self, v: u128) -> Result {
        self.quoted(|w| w.unsigned128(v))
    }
    fn serialize_f32(self, v: f32) -> Result {
        if !v.is_finite() {
            return Err(Unsupported);
        }
        self.0.byte(b'"');
        self.0.float(v)?;
        self.0.byte(b'"');
        Ok(())
    }
    fn serialize_f64(self, v: f64) -> Result {
        if !v.is_finite() {
            return Err(Unsupported);
        }
        self.0.byte(b'"');
        self.0.float(v)?;
        self.0.byte(b'"');
        Ok(())
    }
    fn serialize_bytes(self, _: &[u8]) -> Result {
        Err(Unsupported)
    }
    fn serialize_none(self) -> Result {
        Err(Unsupported)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result {
        v.serialize(self)
    }
    fn serialize_unit(self) -> Result {
        Err(Unsupported)
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result {
        Err(Unsupported)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result {
        Err(Unsupported)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq> {
        Err(Unsupported)
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple> {
        Err(Unsupported)
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct> {
        Err(Unsupported)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant> {
        Err(Unsupported)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap> {
        Err(Unsupported)
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct> {
        Err(Unsupported)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant> {
        Err(Unsupported)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{json, Value};

    fn same(v: &Value) {
        assert_eq!(
            pretty(v, 0),
            serde_json::to_string_pretty(v).unwrap() + "\n",
            "pretty {v}"
        );
        assert_eq!(compact(v, 3), serde_json::to_vec(v).unwrap(), "compact {v}");
    }

    #[test]
    fn test_same_bytes_as_serde_json() {
        same(&json!({"a": [1, "x\"y", {"long": "z".repeat(100)}], "b": null}));
        same(&json!({}));
        same(&json!([]));
        same(&json!({"e": {}, "f": [], "g": [[], {}, [[]]], "h": [{"i": {}}]}));
        same(&json!(
            "\u{0}\u{1}\u{8}\t\n\u{b}\u{c}\r\u{1f}\u{7f}\"\\/é🦀"
        ));
        same(&json!([0, 1, 9, 10, u64::MAX, -1, i64::MIN, true, false]));
        // 40 levels: deeper than the indentation kept in one piece.
        let mut deep = json!(["bottom"]);
        for i in 0..40 {
            deep = json!({ format!("k{i}"): deep, "n": i });
        }
        same(&deep);
    }

    #[derive(serde::Serialize)]
    struct Typed<'a> {
        unit: (),
        tuple: (u8, &'a str),
        empty_tuple: [u8; 0],
        ch: char,
        opt: Option<Option<u32>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        skipped: Option<u8>,
        kind: Kind,
        signed: (i8, i16, i32),
        unsigned: (u8, u16, u32),
    }

    #[derive(serde::Serialize)]
    struct OddKeys {
        #[serde(rename = "tab\there")]
        tab: u8,
        plain: u8,
        #[serde(rename = "quote\"")]
        quote: Vec<u8>,
        #[serde(rename = "")]
        empty: (),
    }

    #[test]
    fn test_struct_keys_that_need_escapes() {
        let v = OddKeys {
            tab: 1,
            plain: 2,
            quote: vec![3],
            empty: (),
        };
        assert_eq!(
            pretty(&v, 0),
            serde_json::to_string_pretty(&v).unwrap() + "\n"
        );
        assert_eq!(compact(&v, 0), serde_json::to_vec(&v).unwrap());
        let nested = vec![vec![Some(OddKeys {
            tab: 0,
            plain: 0,
            quote: vec![],
            empty: (),
        })]];
        assert_eq!(
            pretty(&nested, 1),
            serde_json::to_string_pretty(&nested).unwrap() + "\n"
        );
        assert_eq!(compact(&nested, 1), serde_json::to_vec(&nested).unwrap());
    }

    #[derive(serde::Serialize)]
    #[serde(rename_all = "snake_case")]
    enum Kind {
        Unit,
        Newtype(u8),
        Tuple(u8, &'static str),
        EmptyTuple(),
        Struct { a: u8, b: Option<Box<Kind>> },
        EmptyStruct {},
    }

    /// Everything serde_json writes, each written here (none is left to
    /// serde_json any more), compared byte for byte, pretty and compact.
    #[test]
    fn test_every_kind_of_value() {
        let t = Typed {
            unit: (),
            tuple: (7, "s"),
            empty_tuple: [],
            ch: '"',
            opt: Some(None),
            skipped: None,
            kind: Kind::Unit,
            signed: (-8, -16, -32),
            unsigned: (8, 16, 32),
        };
        let check = |pretty_json: String, compact_json: Vec<u8>, want: &dyn Fn(bool) -> String| {
            assert_eq!(pretty_json, want(true) + "\n");
            assert_eq!(String::from_utf8(compact_json).unwrap(), want(false));
        };
        macro_rules! same_as_serde_json {
            ($v:expr) => {{
                let v = $v;
                check(pretty(&v, 0), compact(&v, 0), &|p| {
                    if p {
                        serde_json::to_string_pretty(&v).unwrap()
                    } else {
                        serde_json::to_string(&v).unwrap()
                    }
                });
            }};
        }
        same_as_serde_json!(&t);
        same_as_serde_json!(vec![
            Kind::Newtype(1),
            Kind::Tuple(2, "x"),
            Kind::EmptyTuple(),
            Kind::Struct {
                a: 3,
                b: Some(Box::new(Kind::Struct { a: 4, b: None })),
            },
            Kind::EmptyStruct {},
            Kind::Unit,
        ]);
        same_as_serde_json!(Kind::Newtype(9));
        same_as_serde_json!(Kind::Tuple(2, "y"));
        same_as_serde_json!(vec![vec![Kind::EmptyTuple()], vec![]]);
        same_as_serde_json!(json!({"float": 1.5, "list": [0.25, -0.0, 1e300, 3.0]}));
        same_as_serde_json!((1.5f32, f64::NAN, f64::INFINITY, 0.1f32, 1e-7f64));
        same_as_serde_json!((i128::MIN, u128::MAX, 0u128, -1i128));
        same_as_serde_json!(serde_bytes_like(&[0, 1, 255]));
        same_as_serde_json!(serde_bytes_like(&[]));
        let mut m = std::collections::BTreeMap::new();
        m.insert(3u8, "int key");
        m.insert(200u8, "another");
        same_as_serde_json!(&m);
        same_as_serde_json!(std::collections::BTreeMap::from([(true, 1), (false, 0)]));
        same_as_serde_json!(std::collections::BTreeMap::from([(-5i64, 'c'), (7, 'd')]));
        same_as_serde_json!(std::collections::BTreeMap::from([(u128::MAX, 1)]));
        same_as_serde_json!(std::collections::BTreeMap::from([
            ('k', Some(1)),
            ('l', None)
        ]));
        same_as_serde_json!(std::collections::BTreeMap::from([(Some("k"), 1)]));
        let floats: Vec<(F, u8)> = vec![(F(1.5), 1), (F(-0.0), 2)];
        same_as_serde_json!(FloatKeys(floats));
        // What serde_json refuses, refused here too.
        assert!(serde_json::to_vec(&FloatKeys(vec![(F(f64::NAN), 1)])).is_err());
        assert!(write(&FloatKeys(vec![(F(f64::NAN), 1)]), 0, false).is_err());
        let unit_keys = std::collections::BTreeMap::from([((), 1)]);
        assert!(serde_json::to_vec(&unit_keys).is_err());
        assert!(write(&unit_keys, 0, false).is_err());
    }

    /// `&[u8]` through `serialize_bytes` (as `serde_bytes` does).
    struct Bytes<'a>(&'a [u8]);

    impl serde::Serialize for Bytes<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
            s.serialize_bytes(self.0)
        }
    }

    fn serde_bytes_like(b: &[u8]) -> Bytes<'_> {
        Bytes(b)
    }

    /// A float map key.
    struct F(f64);

    impl serde::Serialize for F {
        fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
            s.serialize_f64(self.0)
        }
    }

    /// A map with float keys (no `Ord` needed).
    struct FloatKeys(Vec<(F, u8)>);

    impl serde::Serialize for FloatKeys {
        fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
            use serde::ser::SerializeMap;
            let mut m = s.serialize_map(Some(self.0.len()))?;
            for (k, v) in &self.0 {
                m.serialize_entry(k, v)?;
            }
            m.end()
        }
    }

    #[test]
    fn test_needs_escape_is_exact() {
        for c in 0..=255u8 {
            for pos in 0..8 {
                let mut w = *b"abcdefgh";
                w[pos] = c;
                let want = ESCAPE[usize::from(c)] != 0;
                assert_eq!(needs_escape(u64::from_le_bytes(w)), want, "{c:#x} at {pos}");
                // With an escaped byte elsewhere too.
                w[(pos + 3) % 8] = b'"';
                assert!(needs_escape(u64::from_le_bytes(w)));
            }
        }
    }

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<u64>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            "\\PC{0,20}".prop_map(Value::String),
            proptest::collection::vec(0u8..0x80, 0..12)
                .prop_map(|b| Value::String(String::from_utf8(b).unwrap())),
        ];
        leaf.prop_recursive(4, 40, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::btree_map("\\PC{0,8}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn fuzz_same_bytes_as_serde_json(v in value()) {
            prop_assert_eq!(pretty(&v, 0), serde_json::to_string_pretty(&v).unwrap() + "\n");
            prop_assert_eq!(compact(&v, 0), serde_json::to_vec(&v).unwrap());
        }
    }
}
