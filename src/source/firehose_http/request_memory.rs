//! How many records of each recent request a `firehose_http_endpoint` pipeline has already made
//! durable, by the sender's `X-Amz-Firehose-Request-Id`, kept on disk so it survives a restart.
//!
//! Firehose resends a request whose answer it did not get with the same request id. A retry after
//! a lost answer, after storage was full part-way, or after this daemon restarted, appends only the
//! records not yet written: without the memory on disk, a retry that straddles a restart was a
//! duplicate of the whole request (issue #23).
//!
//! The file (`http-requests` in the stream's directory) is an append-only log of JSON lines
//! `{"id": .., "written": n}`; the last line for an id wins, a torn last line (a crash mid-write)
//! is ignored, and it is rewritten whole with only the newest [`REMEMBERED`] ids once it has grown
//! to twice that. Each entry is fsynced after the records it counts were fsynced into the WAL and
//! before the sender is answered.
//!
//! The known bound: a crash in the instant between the WAL's fsync and this file's leaves records
//! durable that the memory does not count; if the sender then retries that request, those records
//! are written twice. Both fsyncs happen before the answer, so this needs a crash mid-request *and*
//! a retry, and is limited to one request's records.

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Requests remembered per stream: Firehose retries a request for at most its retry duration
/// (2 hours), far fewer requests than this at any realistic rate of 64 MiB bodies.
pub const REMEMBERED: usize = 10_000;
const FILE_NAME: &str = "http-requests";

#[derive(Serialize, Deserialize)]
struct Entry {
    id: String,
    written: usize,
}

pub struct RequestMemory {
    path: PathBuf,
    file: File,
    written: HashMap<String, usize>,
    order: VecDeque<String>,
    /// Lines in the file: it is compacted when this reaches twice `limit`.
    lines: usize,
    /// Ids remembered ([`REMEMBERED`]; smaller in tests).
    limit: usize,
}

impl RequestMemory {
    /// Opens the stream's memory in `dir`, reading what earlier runs remembered.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        Self::open_with_limit(dir, REMEMBERED)
    }

    fn open_with_limit(dir: &Path, limit: usize) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(FILE_NAME);
        let mut memory = Self {
            file: OpenOptions::new().create(true).append(true).open(&path)?,
            path,
            written: HashMap::new(),
            order: VecDeque::new(),
            lines: 0,
            limit,
        };
        for line in BufReader::new(File::open(&memory.path)?).lines() {
            let Ok(line) = line else { break };
            memory.lines += 1;
            // A torn line is the tail a crash cut; nothing after it was ever answered.
            if let Ok(entry) = serde_json::from_str::<Entry>(&line) {
                memory.remember(entry.id, entry.written);
            }
        }
        Ok(memory)
    }

    /// Records of request `id` already durable (0 for a request not seen).
    pub fn written(&self, id: &str) -> usize {
        self.written.get(id).copied().unwrap_or(0)
    }

    /// Notes that `written` records of request `id` are durable, durably.
    pub fn record(&mut self, id: &str, written: usize) -> std::io::Result<()> {
        self.remember(id.to_string(), written);
        if self.lines + 1 >= 2 * self.limit {
            return self.compact();
        }
        let mut line = serde_json::to_vec(&Entry { id: id.to_string(), written }).map_err(std::io::Error::other)?;
        line.push(b'\n');
        self.file.write_all(&line)?;
        self.file.sync_data()?;
        self.lines += 1;
        Ok(())
    }

    fn remember(&mut self, id: String, written: usize) {
        if self.written.insert(id.clone(), written).is_none() {
            self.order.push_back(id);
            if self.order.len() > self.limit {
                if let Some(old) = self.order.pop_front() {
                    self.written.remove(&old);
                }
            }
        }
    }

    /// Rewrites the file with only what is remembered (whole or not at all).
    fn compact(&mut self) -> std::io::Result<()> {
        let mut body = Vec::new();
        for id in &self.order {
            let entry = Entry { id: id.clone(), written: self.written(id) };
            body.extend(serde_json::to_vec(&entry).map_err(std::io::Error::other)?);
            body.push(b'\n');
        }
        crate::durable_file::replace(&self.path, &body)?;
        self.file = OpenOptions::new().append(true).open(&self.path)?;
        self.lines = self.order.len();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_was_written_is_remembered_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = RequestMemory::open(dir.path()).unwrap();
        m.record("req-1", 3).unwrap();
        m.record("req-1", 5).unwrap();
        m.record("with \"quotes\"\nand a newline", 2).unwrap();
        drop(m);
        let m = RequestMemory::open(dir.path()).unwrap();
        assert_eq!(m.written("req-1"), 5);
        assert_eq!(m.written("with \"quotes\"\nand a newline"), 2);
        assert_eq!(m.written("other"), 0);
    }

    #[test]
    fn a_torn_last_line_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = RequestMemory::open(dir.path()).unwrap();
        m.record("a", 1).unwrap();
        drop(m);
        let mut f = OpenOptions::new().append(true).open(dir.path().join(FILE_NAME)).unwrap();
        f.write_all(b"{\"id\":\"b\",\"wri").unwrap();
        let m = RequestMemory::open(dir.path()).unwrap();
        assert_eq!((m.written("a"), m.written("b")), (1, 0));
    }

    #[test]
    fn the_file_stays_bounded_and_keeps_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = RequestMemory::open_with_limit(dir.path(), 50).unwrap();
        for i in 0..210 {
            m.record(&format!("r{i}"), 1).unwrap();
        }
        drop(m);
        let lines = std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap().lines().count();
        assert!(lines <= 100, "{lines}");
        let m = RequestMemory::open_with_limit(dir.path(), 50).unwrap();
        assert_eq!(m.written("r209"), 1);
        assert_eq!(m.written("r160"), 1);
        assert_eq!(m.written("r0"), 0);
    }
}
