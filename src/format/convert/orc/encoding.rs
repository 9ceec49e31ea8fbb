//! ORC's run-length encodings, version 1 (the `DIRECT` column encoding every ORC reader supports):
//! integer RLE, byte RLE, booleans as bit-packed byte RLE, and base-128 varints.
//! Reference: the ORC specification, "Run Length Encoding" (orc.apache.org/specification/ORCv1).

/// Longest run a single run header describes: control 0..=127 means 3..=130 values.
const MAX_RUN: usize = 130;
const MIN_RUN: usize = 3;
const MAX_LITERALS: usize = 128;

pub fn write_uvarint(out: &mut Vec<u8>, mut v: u128) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

pub fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

pub fn zigzag128(v: i128) -> u128 {
    ((v << 1) ^ (v >> 127)) as u128
}

/// Integer RLE v1: runs of three or more values with a constant delta in −128..=127, and literal
/// groups of up to 128 varints otherwise.
pub struct IntRle {
    signed: bool,
    pending: Vec<i64>,
    pub out: Vec<u8>,
}

impl IntRle {
    pub fn new(signed: bool) -> Self {
        Self { signed, pending: Vec::new(), out: Vec::new() }
    }

    pub fn push(&mut self, v: i64) {
        self.pending.push(v);
        if self.pending.len() >= 4096 {
            self.drain(false);
        }
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.drain(true);
        self.out
    }

    /// Ends every run here and returns the stream offset, where a row group's values will start
    /// (so its index position needs no "values into the run" count).
    pub fn mark(&mut self) -> usize {
        self.drain(true);
        self.out.len()
    }

    fn value(&mut self, v: i64) {
        if self.signed {
            write_uvarint(&mut self.out, u128::from(zigzag(v)));
        } else {
            write_uvarint(&mut self.out, u128::from(v as u64));
        }
    }

    /// Encodes the pending values; unless `all`, keeps a tail that a run could still extend.
    fn drain(&mut self, all: bool) {
        let v = std::mem::take(&mut self.pending);
        let mut literal_start = 0;
        let mut i = 0;
        let stop = if all { v.len() } else { v.len().saturating_sub(MAX_RUN + MAX_LITERALS) };
        while i < stop {
            let run = run_length(&v[i..]);
            if run >= MIN_RUN {
                self.literals(&v[literal_start..i]);
                let delta = v[i + 1].wrapping_sub(v[i]);
                self.out.push((run - MIN_RUN) as u8);
                self.out.push(delta as i8 as u8);
                self.value(v[i]);
                i += run;
                literal_start = i;
            } else {
                i += 1;
                if i - literal_start == MAX_LITERALS {
                    self.literals(&v[literal_start..i]);
                    literal_start = i;
                }
            }
        }
        if all {
            self.literals(&v[literal_start..]);
        } else {
            self.pending = v[literal_start..].to_vec();
        }
    }

    fn literals(&mut self, values: &[i64]) {
        for chunk in values.chunks(MAX_LITERALS) {
            self.out.push((-(chunk.len() as i32)) as i8 as u8);
            for &x in chunk {
                self.value(x);
            }
        }
    }
}

/// How many values from the start form a run (constant delta fitting a signed byte), at most [`MAX_RUN`].
fn run_length(v: &[i64]) -> usize {
    if v.len() < MIN_RUN {
        return 0;
    }
    let Some(delta) = v[1].checked_sub(v[0]).filter(|d| (-128..=127).contains(d)) else { return 0 };
    let mut n = 2;
    while n < v.len() && n < MAX_RUN && v[n].checked_sub(v[n - 1]) == Some(delta) {
        n += 1;
    }
    n
}

/// Byte RLE: runs of 3..=130 equal bytes, or up to 128 literal bytes.
pub fn byte_rle(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() / 2 + 8);
    let mut literal_start = 0;
    let mut i = 0;
    let flush_literals = |out: &mut Vec<u8>, lit: &[u8]| {
        for chunk in lit.chunks(MAX_LITERALS) {
            out.push((-(chunk.len() as i32)) as i8 as u8);
            out.extend_from_slice(chunk);
        }
    };
    while i < bytes.len() {
        let mut run = 1;
        while i + run < bytes.len() && run < MAX_RUN && bytes[i + run] == bytes[i] {
            run += 1;
        }
        if run >= MIN_RUN {
            flush_literals(&mut out, &bytes[literal_start..i]);
            out.push((run - MIN_RUN) as u8);
            out.push(bytes[i]);
            i += run;
            literal_start = i;
        } else {
            i += 1;
        }
    }
    flush_literals(&mut out, &bytes[literal_start..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_examples() {
        // From the ORC specification's RLE v1 section.
        let mut r = IntRle::new(false);
        (0..100).for_each(|_| r.push(7));
        assert_eq!(r.finish(), [0x61, 0x00, 0x07]);
        let mut r = IntRle::new(false);
        (0..100).rev().for_each(|i| r.push(i + 1));
        assert_eq!(r.finish(), [0x61, 0xff, 0x64]);
        let mut r = IntRle::new(false);
        [2, 3, 6, 7, 11].iter().for_each(|v| r.push(*v));
        assert_eq!(r.finish(), [0xfb, 0x02, 0x03, 0x06, 0x07, 0x0b]);
        assert_eq!(byte_rle(&[0; 100]), [0x61, 0x00]);
        assert_eq!(byte_rle(&[0x44, 0x45]), [0xfe, 0x44, 0x45]);
    }

    #[test]
    fn long_inputs_split_runs_and_literals_at_their_limits() {
        let mut r = IntRle::new(true);
        let values: Vec<i64> = (0..10_000).map(|i| if i % 1000 < 500 { i } else { (i * 7919) % 1013 - 500 }).collect();
        values.iter().for_each(|v| r.push(*v));
        let out = r.finish();
        assert_eq!(decode_int_rle(&out, true), values);
        let extreme = [i64::MIN, i64::MAX, 0, i64::MIN, i64::MIN, i64::MIN];
        let mut r = IntRle::new(true);
        extreme.iter().for_each(|v| r.push(*v));
        assert_eq!(decode_int_rle(&r.finish(), true), extreme);
    }

    /// A minimal decoder, only to check the encoder against itself on long inputs.
    fn decode_int_rle(mut b: &[u8], signed: bool) -> Vec<i64> {
        fn varint(b: &mut &[u8]) -> u64 {
            let (mut v, mut shift) = (0u64, 0);
            loop {
                let byte = b[0];
                *b = &b[1..];
                v |= u64::from(byte & 0x7f) << shift;
                if byte & 0x80 == 0 {
                    return v;
                }
                shift += 7;
            }
        }
        let un = |v: u64| if signed { ((v >> 1) as i64) ^ -((v & 1) as i64) } else { v as i64 };
        let mut out = Vec::new();
        while !b.is_empty() {
            let control = b[0] as i8;
            b = &b[1..];
            if control >= 0 {
                let delta = b[0] as i8 as i64;
                b = &b[1..];
                let base = un(varint(&mut b));
                for k in 0..(control as i64 + 3) {
                    out.push(base.wrapping_add(k * delta));
                }
            } else {
                for _ in 0..(-(control as i32)) {
                    out.push(un(varint(&mut b)));
                }
            }
        }
        out
    }
}
