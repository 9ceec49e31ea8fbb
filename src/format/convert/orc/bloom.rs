//! ORC bloom filters (the `BLOOM_FILTER_UTF8` stream), as the ORC specification and Hive define
//! them: a bit set sized for the expected entries and false-positive rate, set by double hashing of
//! a 64-bit hash: Murmur3 (Hive's 64-bit variant, seed 104729) of UTF-8 bytes for strings and
//! decimals, Thomas Wang's 64-bit integer hash for integers, dates, booleans, timestamps (UTC
//! milliseconds) and doubles (their IEEE bits).

use orc_rust::proto;

pub struct Bloom {
    bits: Vec<u64>,
    hashes: u32,
}

impl Bloom {
    /// Sized as Hive does: m = −n·ln(p)/ln(2)² bits (rounded up to whole words), k = round(m/n·ln 2).
    pub fn new(expected: usize, fpp: f64) -> Self {
        let n = expected.max(1) as f64;
        let m = (-n * fpp.ln() / (std::f64::consts::LN_2 * std::f64::consts::LN_2)).ceil().max(64.0);
        let words = (m / 64.0).ceil() as usize;
        let bits = (words * 64) as f64;
        let hashes = ((bits / n) * std::f64::consts::LN_2).round().max(1.0) as u32;
        Self { bits: vec![0; words], hashes }
    }

    pub fn add_bytes(&mut self, value: &[u8]) {
        self.add_hash(murmur3_64(value));
    }

    pub fn add_long(&mut self, value: i64) {
        self.add_hash(long_hash(value));
    }

    fn add_hash(&mut self, hash: u64) {
        let bit_count = (self.bits.len() * 64) as u64;
        let h1 = hash as u32 as i32;
        let h2 = (hash >> 32) as u32 as i32;
        for i in 1..=self.hashes as i32 {
            let mut combined = h1.wrapping_add(i.wrapping_mul(h2));
            if combined < 0 {
                combined = !combined;
            }
            let bit = u64::from(combined as u32) % bit_count;
            self.bits[(bit / 64) as usize] |= 1 << (bit % 64);
        }
    }

    /// The protobuf form Java writes for UTF-8 bloom filters: the words as little-endian bytes.
    pub fn to_proto(&self) -> proto::BloomFilter {
        proto::BloomFilter {
            num_hash_functions: Some(self.hashes),
            bitset: Vec::new(),
            utf8bitset: Some(self.bits.iter().flat_map(|w| w.to_le_bytes()).collect()),
        }
    }
}

/// Thomas Wang's 64-bit integer hash, as Hive's BloomFilter.getLongHash.
pub fn long_hash(key: i64) -> u64 {
    let mut k = key as u64;
    k = (!k).wrapping_add(k << 21);
    k ^= k >> 24;
    k = k.wrapping_add(k << 3).wrapping_add(k << 8);
    k ^= k >> 14;
    k = k.wrapping_add(k << 2).wrapping_add(k << 4);
    k ^= k >> 28;
    k = k.wrapping_add(k << 31);
    k
}

/// Hive's `Murmur3.hash64`: 8-byte blocks mixed into one 64-bit state, then the tail, the length
/// and the 64-bit finaliser.
pub fn murmur3_64(data: &[u8]) -> u64 {
    const C1: u64 = 0x87c3_7b91_1142_53d5;
    const C2: u64 = 0x4cf5_ad43_2745_937f;
    const SEED: u64 = 104_729;
    let mut hash = SEED;
    let mut blocks = data.chunks_exact(8);
    for block in &mut blocks {
        let mut k = u64::from_le_bytes(block.try_into().unwrap_or([0; 8]));
        k = k.wrapping_mul(C1).rotate_left(31).wrapping_mul(C2);
        hash ^= k;
        hash = hash.rotate_left(27).wrapping_mul(5).wrapping_add(0x52dc_e729);
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        let mut k = 0u64;
        for (i, b) in tail.iter().enumerate() {
            k ^= u64::from(*b) << (8 * i);
        }
        k = k.wrapping_mul(C1).rotate_left(31).wrapping_mul(C2);
        hash ^= k;
    }
    hash ^= data.len() as u64;
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    hash ^= hash >> 33;
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    /// orc-rust's reader (code we did not write) must find what we put in, using its own hashing.
    #[test]
    fn orc_rusts_reader_finds_the_strings_we_added() {
        let mut b = Bloom::new(1000, 0.05);
        let words: Vec<String> = (0..1000).map(|i| format!("event-{i}-ünï")).collect();
        for w in &words {
            b.add_bytes(w.as_bytes());
        }
        let read = orc_rust::bloom_filter::BloomFilter::try_from_proto(&b.to_proto()).unwrap();
        assert!(words.iter().all(|w| read.might_contain(w.as_bytes())));
        let false_positives = (0..10_000).filter(|i| read.might_contain(format!("absent-{i}").as_bytes())).count();
        assert!(false_positives < 1000, "{false_positives} false positives in 10,000 (target 5 %)");
    }

    #[test]
    fn sized_like_hive() {
        // Hive: 10,000 entries at 5 % → 62,353 bits (975 words), 4 hash functions.
        let b = Bloom::new(10_000, 0.05);
        assert_eq!((b.bits.len(), b.hashes), (975, 4));
    }
}
