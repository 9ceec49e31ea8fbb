//! A fan-out destination's backlog on disk: the source records it could not take when they were
//! read, kept until it catches up, so a slow or failing destination never holds back the others.
//!
//! A pipeline reads its source once for all its destinations. When one destination's memory
//! allowance is full (its endpoint is down, say), the pipeline keeps reading for the others and
//! appends what it reads to that destination's spill instead; the destination reads the spill back,
//! in order, as its uploads finish, and takes records as they are read again once it is empty.
//!
//! The spill is a cache, not a log: nothing in it was acknowledged on its strength. The source
//! keeps every record until every destination has delivered it (the pipeline's watermark is the
//! lowest destination's, and a destination's own watermark stays below its first unread spilled
//! record), so after a crash the source replays what the spill held. That is why it is written
//! without fsync or checksums, and truncated when opened.
//!
//! ```text
//! entry = seq:u64 arrival_ms:i64 len:u32 data origin   (origin: buffer/origin_codec.rs)
//! ```

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::record::{Record, Seq};

pub struct Spill {
    /// Records the disk refused (full, or an I/O error), kept in order after what is on disk; once
    /// anything is here, everything after goes here too, and reading stops taking more until it
    /// drains (the pipeline counts these bytes against the destination's memory allowance).
    overflow: std::collections::VecDeque<Record>,
    overflow_bytes: usize,
    path: PathBuf,
    writer: File,
    /// Where the next entry is written: the end of complete entries.
    end: u64,
    reader: BufReader<File>,
    /// Bytes appended and not yet read back.
    unread_bytes: u64,
    /// The sequence of the first record not yet read back.
    first_unread: Option<Seq>,
}

impl Spill {
    /// Creates (or empties) the spill file at `path`.
    pub fn create(path: &Path) -> io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).truncate(true).write(true).open(path)?;
        // A second open, not a clone: each handle keeps its own offset.
        let reader = BufReader::with_capacity(1 << 20, File::open(path)?);
        Ok(Self {
            overflow: Default::default(),
            overflow_bytes: 0,
            path: path.to_path_buf(),
            writer: file,
            end: 0,
            reader,
            unread_bytes: 0,
            first_unread: None,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.first_unread.is_none() && self.overflow.is_empty()
    }

    /// Bytes of records held in memory because the disk refused them.
    pub fn overflow_bytes(&self) -> usize {
        self.overflow_bytes
    }

    /// Where the destination's watermark must stay below.
    pub fn first_unread(&self) -> Option<Seq> {
        self.first_unread.or(self.overflow.front().map(|r| r.seq))
    }

    /// Bytes waiting on disk.
    pub fn unread_bytes(&self) -> u64 {
        self.unread_bytes
    }

    /// Appends records (in sequence order, after everything appended before). What the disk
    /// refuses is kept in memory instead (the error is returned for the log): nothing is lost and
    /// the order holds.
    pub fn push(&mut self, records: &[Record]) -> io::Result<()> {
        if !self.overflow.is_empty() {
            self.keep(records);
            return Ok(());
        }
        if let Err(e) = self.write(records) {
            // Part of the batch may be in the writer's buffer: drop the unflushed tail by
            // cutting the file back to what was flushed and counted.
            self.keep(records);
            return Err(e);
        }
        Ok(())
    }

    fn keep(&mut self, records: &[Record]) {
        self.overflow_bytes += records.iter().map(|r| r.data.len()).sum::<usize>();
        self.overflow.extend(records.iter().cloned());
    }

    fn write(&mut self, records: &[Record]) -> io::Result<()> {
        let Some(first) = records.first() else { return Ok(()) };
        let mut out = Vec::with_capacity(records.iter().map(|r| r.data.len() + 21).sum());
        for r in records {
            let len = u32::try_from(r.data.len())
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "record larger than 4 GiB"))?;
            out.extend_from_slice(&r.seq.to_le_bytes());
            out.extend_from_slice(&r.arrival_ms.to_le_bytes());
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&r.data);
            super::origin_codec::encode(r.origin.as_deref(), &mut out);
        }
        if let Err(e) = self.writer.write_all(&out) {
            // Cut what part of it reached the file, so the next entry starts where it should.
            let _ = self.writer.set_len(self.end);
            let _ = self.writer.seek(SeekFrom::Start(self.end));
            return Err(e);
        }
        self.end += out.len() as u64;
        self.first_unread.get_or_insert(first.seq);
        self.unread_bytes += out.len() as u64;
        Ok(())
    }

    /// Reads back about `max_bytes` of records, oldest first. Once everything is read the file is
    /// emptied, so a destination that caught up holds no disk.
    pub fn read(&mut self, max_bytes: usize) -> io::Result<Vec<Record>> {
        if self.first_unread.is_none() {
            let mut records = Vec::new();
            let mut taken = 0;
            while taken < max_bytes {
                let Some(r) = self.overflow.pop_front() else { break };
                taken += r.data.len();
                self.overflow_bytes -= r.data.len();
                records.push(r);
            }
            return Ok(records);
        }
        // A failed read takes nothing: the reader goes back to where it was, to be tried again.
        let (start, unread) = (self.reader.stream_position()?, self.unread_bytes);
        let mut records = Vec::new();
        let mut taken = 0u64;
        while self.unread_bytes > 0 && taken < max_bytes as u64 {
            let (record, size) = match self.read_one() {
                Ok(read) => read,
                Err(e) => {
                    self.unread_bytes = unread;
                    self.reader.seek(SeekFrom::Start(start))?;
                    return Err(e);
                }
            };
            records.push(record);
            taken += size;
            self.unread_bytes = self.unread_bytes.saturating_sub(size);
        }
        if self.unread_bytes == 0 {
            self.first_unread = None;
            self.writer.set_len(0)?;
            self.writer.seek(SeekFrom::Start(0))?;
            self.reader.seek(SeekFrom::Start(0))?;
            self.end = 0;
        } else {
            // The next record's sequence: peek by reading its first eight bytes.
            let mut seq = [0u8; 8];
            self.reader.read_exact(&mut seq)?;
            self.reader.seek_relative(-8)?;
            self.first_unread = Some(u64::from_le_bytes(seq));
        }
        Ok(records)
    }

    fn read_one(&mut self) -> io::Result<(Record, u64)> {
        let mut fixed = [0u8; 20];
        self.reader.read_exact(&mut fixed)?;
        let word = |at: usize| -> [u8; 8] { fixed[at..at + 8].try_into().unwrap_or_default() };
        let seq = u64::from_le_bytes(word(0));
        let arrival_ms = i64::from_le_bytes(word(8));
        let len = u32::from_le_bytes(fixed[16..20].try_into().unwrap_or_default());
        let mut data = vec![0u8; len as usize];
        self.reader.read_exact(&mut data)?;
        let (origin, origin_size) = super::origin_codec::decode(&mut self.reader)?;
        let size = 20 + u64::from(len) + origin_size;
        Ok((Record { seq, arrival_ms, data: Bytes::from(data), origin }, size))
    }
}

impl Drop for Spill {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn rec(seq: Seq, data: &str) -> Record {
        Record::new(seq, 1000 + seq as i64, Bytes::from(data.to_string()))
    }

    #[test]
    fn records_come_back_in_order_and_the_file_empties_when_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spill").join("1");
        let mut spill = Spill::create(&path).unwrap();
        assert!(spill.is_empty());
        spill.push(&[rec(5, "a"), rec(6, "bb")]).unwrap();
        let kinesis = Arc::new(crate::record::Origin::Kinesis(crate::record::KinesisMetadata {
            shard_id: "shardId-0".into(),
            sequence_number: "4955".into(),
            subsequence_number: 3,
            partition_key: "pk".into(),
        }));
        spill.push(&[Record { origin: Some(kinesis.clone()), ..rec(9, "ccc") }]).unwrap();
        assert_eq!(spill.first_unread(), Some(5));
        let first = spill.read(1).unwrap();
        assert_eq!(first.len(), 1);
        assert_eq!(spill.first_unread(), Some(6));
        spill.push(&[rec(10, "d")]).unwrap();
        let rest = spill.read(1 << 20).unwrap();
        let seqs: Vec<Seq> = rest.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, [6, 9, 10]);
        assert_eq!(rest[1].origin.as_deref(), Some(&*kinesis));
        assert_eq!(&rest[0].data[..], b"bb");
        assert_eq!(rest[0].arrival_ms, 1006);
        assert!(spill.is_empty());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0, "a caught-up destination holds no disk");
        spill.push(&[rec(11, "e")]).unwrap();
        assert_eq!(spill.read(1 << 20).unwrap()[0].seq, 11);
        drop(spill);
        assert!(!path.exists());
    }

    #[test]
    fn records_the_disk_refused_come_back_after_those_on_disk_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut spill = Spill::create(&dir.path().join("0")).unwrap();
        spill.push(&[rec(1, "on disk"), rec(2, "on disk")]).unwrap();
        // As if the disk had refused the next write: held in memory from then on.
        spill.keep(&[rec(3, "in memory")]);
        spill.push(&[rec(4, "in memory too")]).unwrap();
        assert_eq!(spill.overflow_bytes(), "in memory".len() + "in memory too".len());
        assert_eq!(spill.first_unread(), Some(1));
        let mut seqs = Vec::new();
        while !spill.is_empty() {
            seqs.extend(spill.read(1).unwrap().iter().map(|r| r.seq));
        }
        assert_eq!(seqs, [1, 2, 3, 4]);
        assert_eq!(spill.overflow_bytes(), 0);
    }
}
