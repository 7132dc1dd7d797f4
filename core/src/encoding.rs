//! The streaming canonical row encoder.
//!
//! Layout (see `docs/hashing.md` for the full specification):
//!
//! ```text
//! row   = ROW_DOMAIN (12 bytes, "pg_worm.row\0") || version (u8) || ncols (u32 BE) || value*ncols
//! value = tag (u8) || len (u32 BE) || payload (len bytes)
//! array payload = ndims (u32 BE) || (lower i32 BE, length i32 BE)*ndims || value*product(lengths)
//! ```

use sha2::{Digest, Sha256};

use crate::{Hash, ENCODING_VERSION};

/// Domain prefix of every row encoding (distinct from, and not a prefix of, [`crate::LINK_DOMAIN`]).
pub const ROW_DOMAIN: &[u8; 12] = b"pg_worm.row\0";

/// One-byte type tags, one per value kind. Kinds whose payloads look alike (text, json, jsonb,
/// enum label, numeric, inet) have distinct tags, so equal bytes of different kinds never
/// encode the same.
pub mod tag {
    /// SQL NULL (payload empty).
    pub const NULL: u8 = 0x00;
    /// boolean: 1 byte, 0x00 false / 0x01 true.
    pub const BOOL: u8 = 0x01;
    /// int2, int4, int8: i64 big-endian (8 bytes).
    pub const INT: u8 = 0x02;
    /// float4 (real): IEEE-754 binary32 bits big-endian, NaN canonicalised.
    pub const FLOAT4: u8 = 0x03;
    /// float8 (double precision): IEEE-754 binary64 bits big-endian, NaN canonicalised.
    pub const FLOAT8: u8 = 0x04;
    /// numeric: the text of numeric_out, ASCII.
    pub const NUMERIC: u8 = 0x05;
    /// text, varchar, char(n) (blank padding kept): UTF-8 bytes.
    pub const TEXT: u8 = 0x06;
    /// bytea: the raw bytes.
    pub const BYTES: u8 = 0x07;
    /// date: i32 big-endian, days since 2000-01-01.
    pub const DATE: u8 = 0x08;
    /// time: i64 big-endian, microseconds since midnight.
    pub const TIME: u8 = 0x09;
    /// timetz: i64 big-endian microseconds since midnight, then i32 big-endian zone in seconds west of UTC.
    pub const TIMETZ: u8 = 0x0A;
    /// timestamp: i64 big-endian microseconds since 2000-01-01 00:00:00.
    pub const TIMESTAMP: u8 = 0x0B;
    /// timestamptz: i64 big-endian microseconds since 2000-01-01 00:00:00 UTC.
    pub const TIMESTAMPTZ: u8 = 0x0C;
    /// interval: i64 microseconds, i32 days, i32 months, all big-endian (16 bytes; interval_send's layout).
    pub const INTERVAL: u8 = 0x0D;
    /// uuid: the 16 bytes.
    pub const UUID: u8 = 0x0E;
    /// json: the stored text, UTF-8.
    pub const JSON: u8 = 0x0F;
    /// jsonb: the text of jsonb_out, UTF-8.
    pub const JSONB: u8 = 0x10;
    /// inet, cidr: the text of their output functions, ASCII.
    pub const INET: u8 = 0x11;
    /// enum: the label, UTF-8.
    pub const ENUM: u8 = 0x12;
    /// array: ndims, per dimension (lower bound, length), then the elements in row-major order.
    pub const ARRAY: u8 = 0x20;
}

/// An open array in the encoder.
#[derive(Debug, Clone)]
struct Frame {
    /// Offset of the array's 4-byte length field in the buffer (back-patched by `array_end`).
    len_at: usize,
    /// Number of element values the dimensions call for.
    expected: u64,
    /// Number of element values emitted so far.
    emitted: u64,
}

/// Streaming canonical row encoder. Reusable: [`RowEncoder::reset`] clears the buffer.
///
/// Call `reset(ncols)`, then emit exactly `ncols` top-level values with the typed methods
/// (arrays: `array_begin`, the elements, `array_end`), then read [`RowEncoder::row_hash`].
/// The encoder never panics; misuse (wrong number of values, unbalanced arrays, a payload of
/// 4 GiB or more) is reported by [`RowEncoder::is_complete`] returning `false`.
///
/// [`RowEncoder::new`] keeps the whole encoding ([`RowEncoder::as_bytes`]).
/// [`RowEncoder::hashing`] feeds every complete top-level value straight into SHA-256
/// instead, so a large scalar is never copied (an array is kept until it is closed, for its
/// length field); the row hash is the same.
#[derive(Debug, Clone)]
pub struct RowEncoder {
    buf: Vec<u8>,
    stack: Vec<Frame>,
    ncols: u32,
    top_emitted: u64,
    malformed: bool,
    /// In hashing mode: SHA-256 over the bytes of the encoding that left `buf`.
    hasher: Option<Sha256>,
}

impl Default for RowEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl RowEncoder {
    /// A new encoder holding an empty row (zero columns).
    pub fn new() -> Self {
        let mut enc = RowEncoder {
            buf: Vec::with_capacity(256),
            stack: Vec::new(),
            ncols: 0,
            top_emitted: 0,
            malformed: false,
            hasher: None,
        };
        enc.reset(0);
        enc
    }

    /// A new encoder in hashing mode: it keeps only what it must (an open array), hashing
    /// the rest as it goes; [`RowEncoder::as_bytes`] is then the part not hashed yet.
    /// [`RowEncoder::row_hash`] is the same as in the default mode.
    pub fn hashing() -> Self {
        let mut enc = RowEncoder::new();
        enc.hasher = Some(Sha256::new());
        enc.reset(0);
        enc
    }

    /// Starts a new row with `ncols` top-level values, discarding anything encoded before.
    pub fn reset(&mut self, ncols: u32) {
        self.buf.clear();
        self.stack.clear();
        self.ncols = ncols;
        self.top_emitted = 0;
        self.malformed = false;
        if let Some(h) = self.hasher.as_mut() {
            *h = Sha256::new();
        }
        self.buf.extend_from_slice(ROW_DOMAIN);
        self.buf.push(ENCODING_VERSION);
        self.buf.extend_from_slice(&ncols.to_be_bytes());
    }

    /// Counts one value in the innermost open array, or at the top level.
    fn note_value(&mut self) {
        match self.stack.last_mut() {
            Some(frame) => frame.emitted += 1,
            None => self.top_emitted += 1,
        }
    }

    /// In hashing mode outside any array: moves the buffered bytes into the hasher and
    /// returns it (the caller hashes what follows directly).
    fn flushed_hasher(&mut self) -> Option<&mut Sha256> {
        if !self.stack.is_empty() {
            return None;
        }
        let h = self.hasher.as_mut()?;
        h.update(&self.buf);
        self.buf.clear();
        Some(h)
    }

    fn scalar(&mut self, tag: u8, payload: &[u8]) {
        self.note_value();
        let len = match u32::try_from(payload.len()) {
            Ok(len) => len,
            Err(_) => {
                self.malformed = true;
                u32::MAX
            }
        };
        if let Some(h) = self.flushed_hasher() {
            h.update([tag]);
            h.update(len.to_be_bytes());
            h.update(payload);
            return;
        }
        self.buf.push(tag);
        self.buf.extend_from_slice(&len.to_be_bytes());
        self.buf.extend_from_slice(payload);
    }

    /// SQL NULL.
    pub fn null(&mut self) {
        self.scalar(tag::NULL, &[]);
    }

    /// boolean.
    pub fn bool(&mut self, v: bool) {
        self.scalar(tag::BOOL, &[u8::from(v)]);
    }

    /// int2, int4 and int8 all encode as one integer kind (value-centric).
    pub fn int(&mut self, v: i64) {
        self.scalar(tag::INT, &v.to_be_bytes());
    }

    /// float4: IEEE bits big-endian; every NaN becomes 0x7fc00000; -0.0 stays distinct from 0.0.
    pub fn float4(&mut self, v: f32) {
        self.scalar(tag::FLOAT4, &canonical_f32_bits(v).to_be_bytes());
    }

    /// float8: IEEE bits big-endian; every NaN becomes 0x7ff8000000000000; -0.0 stays distinct.
    pub fn float8(&mut self, v: f64) {
        self.scalar(tag::FLOAT8, &canonical_f64_bits(v).to_be_bytes());
    }

    /// numeric: the text of PostgreSQL's numeric_out, verbatim ("1.10", "-0.5", "NaN",
    /// "Infinity", "-Infinity"). The scale is part of the value: "1.10" and "1.1" differ.
    pub fn numeric(&mut self, text: &str) {
        self.scalar(tag::NUMERIC, text.as_bytes());
    }

    /// text, varchar, char(n) (with its blank padding as stored): UTF-8 bytes.
    pub fn text(&mut self, utf8: &[u8]) {
        self.scalar(tag::TEXT, utf8);
    }

    /// bytea.
    pub fn bytes(&mut self, v: &[u8]) {
        self.scalar(tag::BYTES, v);
    }

    /// date: days since 2000-01-01; `i32::MIN` is -infinity, `i32::MAX` is infinity.
    pub fn date(&mut self, days: i32) {
        self.scalar(tag::DATE, &days.to_be_bytes());
    }

    /// time: microseconds since midnight.
    pub fn time(&mut self, micros: i64) {
        self.scalar(tag::TIME, &micros.to_be_bytes());
    }

    /// timetz: microseconds since midnight (local time of the value) and the zone offset in
    /// seconds WEST of UTC (PostgreSQL's TimeTzADT; `-extract(timezone from v)`).
    pub fn timetz(&mut self, micros: i64, zone_secs_west: i32) {
        let mut p = [0u8; 12];
        p[..8].copy_from_slice(&micros.to_be_bytes());
        p[8..].copy_from_slice(&zone_secs_west.to_be_bytes());
        self.scalar(tag::TIMETZ, &p);
    }

    /// timestamp: microseconds since 2000-01-01 00:00:00; `i64::MIN`/`i64::MAX` are
    /// -infinity/infinity.
    pub fn timestamp(&mut self, micros: i64) {
        self.scalar(tag::TIMESTAMP, &micros.to_be_bytes());
    }

    /// timestamptz: microseconds since 2000-01-01 00:00:00 UTC; same infinities as timestamp.
    pub fn timestamptz(&mut self, micros: i64) {
        self.scalar(tag::TIMESTAMPTZ, &micros.to_be_bytes());
    }

    /// interval: months, days and microseconds, as PostgreSQL stores them (not normalised).
    /// Payload order is microseconds, days, months (the order of PostgreSQL's interval_send).
    pub fn interval(&mut self, months: i32, days: i32, micros: i64) {
        // Same field order as PostgreSQL's interval_send: time, day, month.
        let mut p = [0u8; 16];
        p[..8].copy_from_slice(&micros.to_be_bytes());
        p[8..12].copy_from_slice(&days.to_be_bytes());
        p[12..].copy_from_slice(&months.to_be_bytes());
        self.scalar(tag::INTERVAL, &p);
    }

    /// uuid: its 16 bytes.
    pub fn uuid(&mut self, v: &[u8; 16]) {
        self.scalar(tag::UUID, v);
    }

    /// json: the stored text verbatim (whitespace, key order and duplicate keys kept), UTF-8.
    pub fn json(&mut self, utf8: &[u8]) {
        self.scalar(tag::JSON, utf8);
    }

    /// jsonb: the text of jsonb_out, UTF-8.
    pub fn jsonb(&mut self, utf8: &[u8]) {
        self.scalar(tag::JSONB, utf8);
    }

    /// inet and cidr: the text of their output functions (inet_out / cidr_out).
    pub fn inet(&mut self, text: &str) {
        self.scalar(tag::INET, text.as_bytes());
    }

    /// enum: the label, UTF-8.
    pub fn enum_label(&mut self, utf8: &[u8]) {
        self.scalar(tag::ENUM, utf8);
    }

    /// Opens an array value; `dims` = (lower bound, length) per dimension (no dimensions = the
    /// empty array). Emit exactly product(lengths) element values (NULLs included) in row-major
    /// order (last subscript varying fastest), then call [`RowEncoder::array_end`].
    pub fn array_begin(&mut self, dims: &[(i32, i32)]) {
        self.note_value();
        self.buf.push(tag::ARRAY);
        let len_at = self.buf.len();
        self.buf.extend_from_slice(&0u32.to_be_bytes());
        let ndims = match u32::try_from(dims.len()) {
            Ok(n) => n,
            Err(_) => {
                self.malformed = true;
                u32::MAX
            }
        };
        self.buf.extend_from_slice(&ndims.to_be_bytes());
        let mut expected: u64 = if dims.is_empty() { 0 } else { 1 };
        for &(lower, length) in dims {
            self.buf.extend_from_slice(&lower.to_be_bytes());
            self.buf.extend_from_slice(&length.to_be_bytes());
            match u64::try_from(length) {
                Ok(l) => expected = expected.saturating_mul(l),
                Err(_) => {
                    // A negative length never comes from PostgreSQL.
                    self.malformed = true;
                    expected = 0;
                }
            }
        }
        self.stack.push(Frame {
            len_at,
            expected,
            emitted: 0,
        });
    }

    /// Closes the innermost open array and back-patches its length field.
    pub fn array_end(&mut self) {
        let Some(frame) = self.stack.pop() else {
            self.malformed = true;
            return;
        };
        if frame.emitted != frame.expected {
            self.malformed = true;
        }
        let payload_len = self.buf.len() - (frame.len_at + 4);
        let len = match u32::try_from(payload_len) {
            Ok(len) => len,
            Err(_) => {
                self.malformed = true;
                u32::MAX
            }
        };
        self.buf[frame.len_at..frame.len_at + 4].copy_from_slice(&len.to_be_bytes());
        // A closed top-level array leaves the buffer in hashing mode.
        let _ = self.flushed_hasher();
    }

    /// True when the row is complete and well formed: exactly `ncols` top-level values, every
    /// array closed with the number of elements its dimensions call for, no oversized payload.
    pub fn is_complete(&self) -> bool {
        !self.malformed && self.stack.is_empty() && self.top_emitted == u64::from(self.ncols)
    }

    /// The canonical encoding so far (open arrays still have a zero length field); in
    /// hashing mode only its part not hashed yet.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// SHA-256 over the complete encoding. The encoding begins with [`ROW_DOMAIN`] and the
    /// version byte, which separates row hashes from link hashes.
    pub fn row_hash(&self) -> Hash {
        match &self.hasher {
            Some(h) => {
                let mut h = h.clone();
                h.update(&self.buf);
                h.finalize().into()
            }
            None => Sha256::digest(&self.buf).into(),
        }
    }

    /// Gives memory back: the internal buffer's capacity drops to at most `capacity` bytes
    /// (or what it holds). For a reused encoder after a row with a large array (hashing
    /// mode) or a large value (default mode).
    pub fn shrink_to(&mut self, capacity: usize) {
        if self.buf.capacity() > capacity {
            self.buf.shrink_to(capacity);
        }
    }
}

/// The bits float4 encodes as: NaN canonicalised to 0x7fc00000, everything else verbatim.
pub(crate) fn canonical_f32_bits(v: f32) -> u32 {
    if v.is_nan() {
        0x7fc0_0000
    } else {
        v.to_bits()
    }
}

/// The bits float8 encodes as: NaN canonicalised to 0x7ff8000000000000, everything else verbatim.
pub(crate) fn canonical_f64_bits(v: f64) -> u64 {
    if v.is_nan() {
        0x7ff8_0000_0000_0000
    } else {
        v.to_bits()
    }
}
