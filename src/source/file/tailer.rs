//! The file source's reader: one thread that scans the globs, reads every tracked file from its
//! offset, and hands complete lines to the source.
//!
//! It runs on a blocking thread because file reads block (page cache or not), and one thread
//! serves thousands of files: each round reads what each file has grown by (at most
//! `READ_PER_ROUND` per file, so one busy file cannot starve the rest), then sleeps briefly when
//! nothing grew. What it handles, and how:
//! - **rename-and-create rotation**: a file keeps its key (device, inode, first-line fingerprint)
//!   when renamed; the new file at the old path is a new key read from its start. The renamed
//!   file is read to its end and let go once it has not grown for `GONE_IDLE`.
//! - **copytruncate / truncation in place**: the size falls below the read offset (or the first
//!   line changes): the file is read again from its start as a new reading.
//! - **deletion**: the open descriptor still reads the rest; then the file is let go.
//! - **a last line without a newline** is held until it completes, or the file is let go.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;

use super::checkpoint::{FileCheckpoint, FileEntry};
use super::config::FileSourceSpec;
use crate::source::json_wrap::JsonWrap;
use crate::source::lines::{Line, LineSplitter, Multiline};

/// Read from one file per round, at most.
const READ_PER_ROUND: usize = 1 << 20;
/// Bytes of the first line that identify a file.
const FINGERPRINT_BYTES: usize = 256;
/// A file gone from the globs is let go after it has not grown for this long.
const GONE_IDLE: Duration = Duration::from_secs(2);
/// Sleep between rounds in which no file grew.
const IDLE_SLEEP: Duration = Duration::from_millis(100);

/// Lines of one file, in order.
pub struct FileLines {
    pub key: Arc<str>,
    pub generation: u64,
    /// Each record with the file offset just past its last line.
    pub records: Vec<(u64, Bytes)>,
}

pub enum TailMsg {
    Lines(FileLines),
    /// The file left the globs and was read to its end: nothing more comes from it.
    Released {
        key: Arc<str>,
        generation: u64,
    },
}

struct Tailed {
    key: Arc<str>,
    path: PathBuf,
    file: File,
    dev: u64,
    ino: u64,
    fingerprint: u64,
    offset: u64,
    generation: u64,
    splitter: LineSplitter,
    multiline: Option<Multiline>,
    /// How its lines are wrapped as JSON, or none: raw lines (`raw: true`).
    wrap: Option<JsonWrap>,
    header_left: u64,
    last_growth: Instant,
    gone: bool,
}

pub struct Tailer {
    pub spec: FileSourceSpec,
    pub checkpoint: Arc<Mutex<FileCheckpoint>>,
    pub tx: mpsc::Sender<TailMsg>,
    pub pipeline: String,
    pub truncated_lines: metrics::Counter,
    pub files_tracked: metrics::Gauge,
    pub truncations: metrics::Counter,
    files: HashMap<(u64, u64), Tailed>,
    next_generation: u64,
    include: Vec<String>,
    exclude: Vec<glob::Pattern>,
    multiline: Option<regex::bytes::Regex>,
    /// Files that could not be opened, reported once each.
    unreadable: BTreeSet<PathBuf>,
    /// Where `/ready` learns that files cannot be read.
    status: Arc<crate::status::PipelineStatus>,
    /// One read's bytes, kept between reads (lines are copied out of it): a busy file would
    /// otherwise cost a fresh megabyte per read, which the allocator holds on to for a while.
    read_buffer: Vec<u8>,
}

impl Tailer {
    pub fn new(
        spec: FileSourceSpec,
        checkpoint: Arc<Mutex<FileCheckpoint>>,
        tx: mpsc::Sender<TailMsg>,
        pipeline: &str,
        status: Arc<crate::status::PipelineStatus>,
    ) -> Result<Self, String> {
        let exclude = spec
            .exclude
            .iter()
            .map(|p| glob::Pattern::new(p).map_err(|e| format!("exclude `{p}`: {e}")))
            .collect::<Result<_, _>>()?;
        let multiline = match &spec.multiline {
            Some(m) => Some(regex::bytes::Regex::new(&m.start_pattern).map_err(|e| e.to_string())?),
            None => None,
        };
        let name = pipeline.to_string();
        Ok(Self {
            include: spec.include.clone(),
            spec,
            checkpoint,
            tx,
            truncated_lines: metrics::counter!("sluice_lines_truncated_total", "delivery_stream_name" => name.clone()),
            files_tracked: metrics::gauge!("sluice_files_tracked", "delivery_stream_name" => name.clone()),
            truncations: metrics::counter!("sluice_file_truncations_total", "delivery_stream_name" => name.clone()),
            pipeline: name,
            files: HashMap::new(),
            next_generation: 1,
            exclude,
            multiline,
            unreadable: BTreeSet::new(),
            status,
            read_buffer: Vec::new(),
        })
    }

    /// Runs until the source stops listening.
    pub fn run(mut self) {
        let mut last_scan: Option<Instant> = None;
        let first_run = self.checkpoint.lock().unwrap_or_else(|p| p.into_inner()).first_run;
        loop {
            if self.tx.is_closed() {
                return;
            }
            if last_scan.is_none_or(|t| t.elapsed() >= self.spec.glob_interval) {
                // `start_at: end` only applies to files found by the first scan of the first run;
                // files that appear later are read whole.
                self.scan(first_run && last_scan.is_none() && !self.spec.start_at_beginning);
                if last_scan.is_none() {
                    self.forget_missing();
                }
                last_scan = Some(Instant::now());
            }
            let mut grew = false;
            let keys: Vec<(u64, u64)> = self.files.keys().copied().collect();
            for id in keys {
                match self.read(id) {
                    Ok(g) => grew |= g,
                    Err(()) => return,
                }
            }
            if self.release_and_flush().is_err() {
                return;
            }
            if !grew {
                std::thread::sleep(IDLE_SLEEP);
            }
        }
    }

    fn matched_paths(&mut self) -> BTreeSet<PathBuf> {
        let mut paths = BTreeSet::new();
        for pattern in &self.include {
            let Ok(entries) = glob::glob(pattern) else { continue };
            for path in entries.flatten() {
                if !self.exclude.iter().any(|p| p.matches_path(&path)) && path.is_file() {
                    paths.insert(path);
                }
            }
        }
        paths
    }

    /// Finds new files and notices which tracked files left the globs.
    fn scan(&mut self, start_at_end: bool) {
        let paths = self.matched_paths();
        // A file that could not be opened and is gone no longer counts as a problem.
        self.unreadable.retain(|p| paths.contains(p));
        let mut seen = BTreeSet::new();
        for path in paths {
            let Ok(meta) = std::fs::metadata(&path) else { continue };
            let id = (meta.dev(), meta.ino());
            seen.insert(id);
            if let Some(t) = self.files.get_mut(&id) {
                t.gone = false;
                if t.path != path {
                    t.path = path.clone();
                    let mut c = self.checkpoint.lock().unwrap_or_else(|p| p.into_inner());
                    if let Some(e) = c.files.get_mut(&*t.key) {
                        e.path = path.display().to_string();
                    }
                }
                // Same inode, other first line: truncated and written again between two looks.
                if matches!(first_line_fingerprint(&t.file), Ok(Some(fp)) if fp != t.fingerprint) {
                    tracing::warn!(pipeline = %self.pipeline, file = %path.display(), "file truncated and written again (copytruncate?): reading it again from its start");
                    self.truncations.increment(1);
                    let _ = self.forget_rewritten(id);
                } else {
                    continue;
                }
            }
            self.track(path, id, meta.len(), start_at_end);
        }
        self.report_problems();
        for (id, t) in &mut self.files {
            if !seen.contains(id) && !t.gone {
                t.gone = true;
                tracing::info!(pipeline = %self.pipeline, file = %t.path.display(), "file left the include globs (rotated or deleted): reading it to its end");
            }
        }
        self.files_tracked.set(self.files.len() as f64);
    }

    /// Files matched but not readable, and include globs whose directory is missing or not
    /// readable, make the pipeline not ready (a glob that matches nothing yet is fine).
    fn report_problems(&self) {
        let mut problems: Vec<String> = Vec::new();
        if let Some(first) = self.unreadable.iter().next() {
            problems.push(format!(
                "{} matched file(s) cannot be opened, e.g. {}",
                self.unreadable.len(),
                first.display()
            ));
        }
        for pattern in &self.include {
            let fixed: PathBuf = Path::new(pattern)
                .components()
                .take_while(|c| !c.as_os_str().to_string_lossy().contains(['*', '?', '[']))
                .collect();
            let dir =
                if fixed.as_os_str() == pattern.as_str() { fixed.parent().map(Path::to_path_buf) } else { Some(fixed) };
            if let Some(dir) = dir.filter(|d| !d.as_os_str().is_empty()) {
                if let Err(e) = std::fs::read_dir(&dir) {
                    problems.push(format!("cannot list {} ({e})", dir.display()));
                }
            }
        }
        self.status.set_source_problem((!problems.is_empty()).then(|| problems.join("; ")));
    }

    fn track(&mut self, path: PathBuf, id: (u64, u64), len: u64, start_at_end: bool) {
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) => {
                if self.unreadable.insert(path.clone()) {
                    tracing::warn!(pipeline = %self.pipeline, file = %path.display(), error = %e, "cannot open a file the globs match; it is skipped until it can be read");
                }
                return;
            }
        };
        self.unreadable.remove(&path);
        // Not identifiable until its first line is complete (or long): looked at again next scan.
        let Ok(Some(fingerprint)) = first_line_fingerprint(&file) else { return };
        let key: Arc<str> = Arc::from(format!("{}:{}:{fingerprint:016x}", id.0, id.1));
        let generation = self.next_generation;
        self.next_generation += 1;
        let offset = {
            let mut c = self.checkpoint.lock().unwrap_or_else(|p| p.into_inner());
            let offset = match c.files.get(&*key) {
                Some(e) if e.offset <= len => e.offset,
                Some(_) => 0, // shorter than what was delivered: truncated while sluice was down
                None if start_at_end => len,
                None => 0,
            };
            c.files.insert(
                key.to_string(),
                FileEntry { path: path.display().to_string(), offset, generation, released: false },
            );
            offset
        };
        tracing::info!(pipeline = %self.pipeline, file = %path.display(), offset, "tailing");
        let max = self.spec.max_line_bytes;
        let wrap = self
            .spec
            .wrap
            .then(|| JsonWrap::new(Some(&path.display().to_string()), &self.spec.fields, self.spec.parse_cri));
        self.files.insert(
            id,
            Tailed {
                key,
                path,
                file,
                dev: id.0,
                ino: id.1,
                fingerprint,
                offset,
                generation,
                splitter: LineSplitter::new(max, self.spec.truncated_line_terminator.as_deref()),
                multiline: self.multiline_joiner(),
                wrap,
                header_left: if offset == 0 { self.spec.skip_header_lines } else { 0 },
                last_growth: Instant::now(),
                gone: false,
            },
        );
    }

    fn multiline_joiner(&self) -> Option<Multiline> {
        joiner(self.multiline.as_ref(), &self.spec)
    }

    /// Checkpoint entries of files not found at startup (rotated away while sluice was down)
    /// cannot be read again: they are dropped, said in the log.
    fn forget_missing(&mut self) {
        let live: BTreeSet<String> = self.files.values().map(|t| t.key.to_string()).collect();
        let mut c = self.checkpoint.lock().unwrap_or_else(|p| p.into_inner());
        let missing: Vec<String> = c.files.keys().filter(|k| !live.contains(*k)).cloned().collect();
        for key in missing {
            if let Some(e) = c.files.remove(&key) {
                tracing::warn!(pipeline = %self.pipeline, file = %e.path, offset = e.offset, "a file in the checkpoint is no longer matched; lines it got after that offset while sluice was stopped are not read");
            }
        }
    }

    /// Reads what the file grew by and sends its complete lines. `Err`: the source is gone.
    fn read(&mut self, id: (u64, u64)) -> Result<bool, ()> {
        let Some(t) = self.files.get_mut(&id) else { return Ok(false) };
        let len = match t.file.metadata() {
            Ok(m) => m.len(),
            Err(_) => return Ok(false),
        };
        if len < t.offset {
            // Its content is new: it is let go and found again by the next scan as a new file
            // (new first-line fingerprint, read from offset 0). One path for this and for a
            // rewrite seen by `scan`, so a truncation is never acted on twice.
            tracing::warn!(pipeline = %self.pipeline, file = %t.path.display(), was = t.offset, now = len, "file truncated in place (copytruncate?): reading it again from its start");
            self.truncations.increment(1);
            return self.forget_rewritten(id).map(|()| false);
        }
        if len == t.offset {
            return Ok(false);
        }
        let want = ((len - t.offset) as usize).min(READ_PER_ROUND);
        let buf = &mut self.read_buffer;
        buf.resize(want, 0);
        let n = match t.file.read_at(buf, t.offset) {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(pipeline = %self.pipeline, file = %t.path.display(), error = %e, "cannot read the file; trying again");
                return Ok(false);
            }
        };
        // Sized once (counting newlines is cheap next to copying the lines) rather than doubled.
        let mut lines = Vec::with_capacity(memchr::memchr_iter(b'\n', &buf[..n]).count());
        t.splitter.push(&buf[..n], t.offset, &mut lines);
        t.offset += n as u64;
        t.last_growth = Instant::now();
        let records = self.shape(id, lines, false);
        self.send(id, records).map(|()| n > 0)
    }

    /// Lets go of a file whose content was replaced under it (truncated in place): its lines in
    /// flight still count toward delivery, nothing more comes under its old key, and its checkpoint
    /// entry goes (the new content gets a new key when the next scan finds it).
    fn forget_rewritten(&mut self, id: (u64, u64)) -> Result<(), ()> {
        let Some(old) = self.files.remove(&id) else { return Ok(()) };
        self.checkpoint.lock().unwrap_or_else(|p| p.into_inner()).files.remove(&*old.key);
        self.tx.blocking_send(TailMsg::Released { key: old.key, generation: old.generation }).map_err(|_| ())
    }

    /// Skips header lines, joins multiline records and wraps lines as configured.
    fn shape(&mut self, id: (u64, u64), lines: Vec<Line>, end_of_file: bool) -> Vec<(u64, Bytes)> {
        let Some(t) = self.files.get_mut(&id) else { return Vec::new() };
        let now = Instant::now();
        let mut out = Vec::with_capacity(lines.len());
        let wrap = &t.wrap;
        let mut emit = |line: Line, truncated_lines: &metrics::Counter| {
            if line.truncated {
                truncated_lines.increment(1);
            }
            let data = match wrap {
                Some(w) => w.wrap(&line.data),
                None => Bytes::from(line.data),
            };
            out.push((line.end, data));
        };
        for line in lines {
            if t.header_left > 0 {
                t.header_left -= 1;
                continue;
            }
            match &mut t.multiline {
                Some(m) => {
                    if let Some(record) = m.push(line, now) {
                        emit(record, &self.truncated_lines);
                    }
                }
                None => emit(line, &self.truncated_lines),
            }
        }
        if let Some(m) = &mut t.multiline {
            if let Some(record) = m.flush(now, end_of_file) {
                emit(record, &self.truncated_lines);
            }
        }
        out
    }

    fn send(&mut self, id: (u64, u64), records: Vec<(u64, Bytes)>) -> Result<(), ()> {
        let Some(t) = self.files.get(&id) else { return Ok(()) };
        if records.is_empty() {
            return Ok(());
        }
        let msg = TailMsg::Lines(FileLines { key: t.key.clone(), generation: t.generation, records });
        self.tx.blocking_send(msg).map_err(|_| ())
    }

    /// Lets go of files gone from the globs and read to their end; sends multiline records
    /// whose timeout passed.
    fn release_and_flush(&mut self) -> Result<(), ()> {
        let ids: Vec<(u64, u64)> = self.files.keys().copied().collect();
        for id in ids {
            let Some(t) = self.files.get_mut(&id) else { continue };
            let at_end = t.file.metadata().is_ok_and(|m| m.len() <= t.offset);
            if t.gone && at_end && t.last_growth.elapsed() >= GONE_IDLE {
                let last: Vec<Line> = t.splitter.finish(t.offset).into_iter().collect();
                let records = self.shape(id, last, true);
                self.send(id, records)?;
                if let Some(t) = self.files.remove(&id) {
                    let mut c = self.checkpoint.lock().unwrap_or_else(|p| p.into_inner());
                    if let Some(e) = c.files.get_mut(&*t.key) {
                        e.released = true;
                    }
                    drop(c);
                    tracing::info!(pipeline = %self.pipeline, file = %t.path.display(), dev = t.dev, inode = t.ino, "read a rotated or deleted file to its end; letting it go");
                    self.tx
                        .blocking_send(TailMsg::Released { key: t.key, generation: t.generation })
                        .map_err(|_| ())?;
                }
            } else if t.multiline.as_ref().is_some_and(Multiline::is_pending) {
                let records = self.shape(id, Vec::new(), false);
                self.send(id, records)?;
            }
        }
        self.files_tracked.set(self.files.len() as f64);
        Ok(())
    }
}

/// How long a CRI partial line waits for the line that ends it before it is sent as it is.
const CRI_PARTIAL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

fn joiner(start: Option<&regex::bytes::Regex>, spec: &FileSourceSpec) -> Option<Multiline> {
    if spec.join_cri_partials {
        return Some(Multiline::cri(CRI_PARTIAL_TIMEOUT, spec.max_line_bytes));
    }
    Some(Multiline::new(start?.clone(), spec.multiline.as_ref()?.timeout, spec.max_line_bytes))
}

/// FNV-1a of the file's first line (with its newline), or of its first 256 bytes if the line is
/// longer; `None` while neither is there yet.
fn first_line_fingerprint(file: &File) -> std::io::Result<Option<u64>> {
    let mut head = [0u8; FINGERPRINT_BYTES];
    let mut filled = 0;
    while filled < head.len() {
        match file.read_at(&mut head[filled..], filled as u64)? {
            0 => break,
            n => filled += n,
        }
    }
    let head = &head[..filled];
    Ok(match memchr::memchr(b'\n', head) {
        Some(i) => Some(crate::hash::fnv1a(&[&head[..=i]])),
        None if filled == FINGERPRINT_BYTES => Some(crate::hash::fnv1a(&[head])),
        None => None,
    })
}
