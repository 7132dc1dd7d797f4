//! A fuzzable entry point: checks from arbitrary bytes that the encoding is unambiguous and
//! the decoder is its exact inverse.
//!
//! A `cargo fuzz` target only needs
//! `fuzz_target!(|data: &[u8]| { if let Err(e) = pg_worm_core::fuzz_encode(data) { panic!("{e}") } });`

use std::fmt;

use crate::{decode_row, row_encoding, row_hash, Value};

/// An invariant of the encoding that did not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FuzzFailure(pub String);

impl fmt::Display for FuzzFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FuzzFailure {}

/// Builds two rows of values from `data`, and checks that:
///
/// * each row's encoding decodes back to the same values (so the encoding is injective);
/// * the two rows have equal encodings and equal hashes exactly when they are equal;
/// * decoding `data` itself never panics, and when it succeeds, re-encoding reproduces `data`
///   byte for byte (the encoding of a value row is unique).
pub fn fuzz_encode(data: &[u8]) -> Result<(), FuzzFailure> {
    if let Ok(values) = decode_row(data) {
        if row_encoding(&values) != data {
            return Err(FuzzFailure(format!(
                "decoded {values:?} but it re-encodes differently"
            )));
        }
    }

    let mut g = Gen { data, pos: 0 };
    let a = g.row();
    let b = g.row();
    for row in [&a, &b] {
        let enc = row_encoding(row);
        match decode_row(&enc) {
            Ok(back) if back == *row => {}
            Ok(back) => return Err(FuzzFailure(format!("{row:?} decodes back as {back:?}"))),
            Err(e) => return Err(FuzzFailure(format!("{row:?} does not decode: {e}"))),
        }
    }
    let same_bytes = row_encoding(&a) == row_encoding(&b);
    let same_hash = row_hash(&a) == row_hash(&b);
    if (a == b) != same_bytes || same_bytes != same_hash {
        return Err(FuzzFailure(format!(
            "rows {a:?} and {b:?}: equal={}, same encoding={same_bytes}, same hash={same_hash}",
            a == b
        )));
    }
    Ok(())
}

/// Derives values from bytes; runs out gracefully (zeros) when the data ends.
struct Gen<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Gen<'_> {
    fn byte(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos = self.pos.saturating_add(1);
        b
    }

    fn arr<const N: usize>(&mut self) -> [u8; N] {
        let mut a = [0u8; N];
        for x in &mut a {
            *x = self.byte();
        }
        a
    }

    fn bytes(&mut self) -> Vec<u8> {
        let n = usize::from(self.byte() % 16);
        (0..n).map(|_| self.byte()).collect()
    }

    fn string(&mut self) -> String {
        // Mostly ASCII with some multi-byte characters; always valid UTF-8.
        let n = usize::from(self.byte() % 12);
        (0..n)
            .map(|_| match self.byte() {
                b @ 0..=0x7f => char::from(b),
                0x80..=0xbf => 'é',
                0xc0..=0xef => '€',
                _ => '𝄞',
            })
            .collect()
    }

    fn row(&mut self) -> Vec<Value> {
        let n = self.byte() % 6;
        (0..n).map(|_| self.value(0)).collect()
    }

    fn value(&mut self, depth: u32) -> Value {
        match self.byte() % 21 {
            0 => Value::Null,
            1 => Value::Bool(self.byte() & 1 == 1),
            2 => Value::Int(i64::from_be_bytes(self.arr())),
            3 => Value::Float4(f32::from_be_bytes(self.arr())),
            4 => Value::Float8(f64::from_be_bytes(self.arr())),
            5 => Value::Numeric(self.string()),
            6 => Value::Text(self.string()),
            7 => Value::Bytes(self.bytes()),
            8 => Value::Date(i32::from_be_bytes(self.arr())),
            9 => Value::Time(i64::from_be_bytes(self.arr())),
            10 => Value::TimeTz {
                micros: i64::from_be_bytes(self.arr()),
                zone_secs_west: i32::from_be_bytes(self.arr()),
            },
            11 => Value::Timestamp(i64::from_be_bytes(self.arr())),
            12 => Value::TimestampTz(i64::from_be_bytes(self.arr())),
            13 => Value::Interval {
                months: i32::from_be_bytes(self.arr()),
                days: i32::from_be_bytes(self.arr()),
                micros: i64::from_be_bytes(self.arr()),
            },
            14 => Value::Uuid(self.arr()),
            15 => Value::Json(self.string()),
            16 => Value::Jsonb(self.string()),
            17 => Value::Inet(self.string()),
            18 => Value::Enum(self.string()),
            _ if depth < 3 => {
                let ndims = self.byte() % 3;
                let dims: Vec<(i32, i32)> = (0..ndims)
                    .map(|_| (i32::from(self.byte() as i8), i32::from(self.byte() % 3)))
                    .collect();
                let count: i32 = if dims.is_empty() {
                    0
                } else {
                    dims.iter().map(|d| d.1).product()
                };
                let elems = (0..count).map(|_| self.value(depth + 1)).collect();
                Value::Array { dims, elems }
            }
            _ => Value::Null,
        }
    }
}
