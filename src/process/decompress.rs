//! Firehose's Decompression processor (GZIP), for CloudWatch Logs subscription data.

use std::io::Read;

use bytes::Bytes;

use super::{ErrorOutputType, Failed, Item, Processor};

/// Decompressed records larger than this are refused, so a small "gzip bomb" cannot exhaust memory.
pub const MAX_DECOMPRESSED_BYTES: u64 = 64 << 20;

pub struct GzipDecompression;

pub const CODE: &str = "Decompression.Failed";

impl Processor for GzipDecompression {
    fn name(&self) -> &'static str {
        "decompression"
    }

    fn process(&self, items: Vec<Item>, failed: &mut Vec<Failed>) -> Vec<Item> {
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let mut data = Vec::new();
            let mut reader = flate2::read::MultiGzDecoder::new(&item.record.data[..]).take(MAX_DECOMPRESSED_BYTES + 1);
            match reader.read_to_end(&mut data) {
                Ok(n) if n as u64 > MAX_DECOMPRESSED_BYTES => failed.push(Failed::new(
                    item.record,
                    ErrorOutputType::DecompressionFailed,
                    CODE,
                    format!("the record decompresses to more than {MAX_DECOMPRESSED_BYTES} bytes"),
                )),
                Ok(_) => out.push(item.derive(Bytes::from(data))),
                Err(e) => failed.push(Failed::new(
                    item.record,
                    ErrorOutputType::DecompressionFailed,
                    CODE,
                    format!("the record is not valid GZIP data: {e}"),
                )),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Record;
    use std::io::Write;

    fn item(data: &[u8]) -> Item {
        Item::new(Record::new(1, 0, Bytes::copy_from_slice(data)))
    }

    #[test]
    fn decompresses_and_refuses_garbage_keeping_the_original_bytes() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"hello").unwrap();
        let good = gz.finish().unwrap();
        let mut failed = Vec::new();
        let out = GzipDecompression.process(vec![item(&good), item(b"not gzip")], &mut failed);
        assert_eq!(&out[0].record.data[..], b"hello");
        assert_eq!(failed.len(), 1);
        assert_eq!(&failed[0].record.data[..], b"not gzip");
        assert_eq!(failed[0].kind, ErrorOutputType::DecompressionFailed);
    }
}
