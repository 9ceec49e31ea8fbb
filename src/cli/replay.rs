//! `sluice replay`: re-ingest what landed in an error prefix, once its cause is fixed.
//!
//! Reads every error object under `--from` (`s3://bucket/prefix` or a local directory), in key
//! order, decodes each error record's `rawData` and puts the records back into `--to` through the
//! Firehose API (PutRecordBatch, signed with the usual credential chain), retrying refused records
//! until they are acknowledged. Every error-output type sluice writes has `rawData`
//! (`processing-failed`, `format-conversion-failed` with `lastErrorCode`, destination failures
//! with their extra fields). Objects may be compressed as the destination's objects are (GZIP or
//! ZSTD, recognised by their first bytes).
//!
//! A journal (`--journal`, default `sluice-replay-<stream>.journal`) records which records of
//! which object were acknowledged, after every batch (appended and fsynced), so a second run, one
//! after a crash, or one with another `--error-code` filter puts nothing twice: completed objects
//! are skipped and only records not yet put are put.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use base64::Engine;
use serde_json::{json, Value};

use sluice::aws::request::{signed_json_headers, Keys, JSON_1_1};
use sluice::config::StoreSpec;
use sluice::sink::object_store::ObjectSink;

#[derive(clap::Args)]
pub struct ReplayArgs {
    /// The error prefix: `s3://bucket/errors/processing-failed/2026/12/` or a local directory.
    #[arg(long)]
    from: String,
    /// The delivery stream to put the records into.
    #[arg(long)]
    to: String,
    /// The sluice (or Firehose) API to put to.
    #[command(flatten)]
    daemon: super::daemon_address::DaemonArgs,
    /// The S3 endpoint for `s3://` sources (MinIO, moto); default: AWS.
    #[arg(long)]
    s3_endpoint: Option<String>,
    /// Only records with this error code (`errorCode`, or `lastErrorCode`); repeatable.
    #[arg(long = "error-code")]
    error_codes: Vec<String>,
    /// Count what would be replayed, by error code; put nothing.
    #[arg(long)]
    dry_run: bool,
    /// Where progress is recorded (default: `sluice-replay-<stream>.journal` here).
    #[arg(long)]
    journal: Option<PathBuf>,
}

/// PutRecordBatch's limits: 500 records, 4 MiB.
const BATCH_RECORDS: usize = 500;
const BATCH_BYTES: usize = 4 << 20;

enum Origin {
    S3 { sink: ObjectSink, prefix: String },
    Local(PathBuf),
}

impl Origin {
    fn open(args: &ReplayArgs) -> anyhow::Result<Self> {
        if let Some(rest) = args.from.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let spec = StoreSpec::S3 {
                bucket: bucket.to_string(),
                endpoint: args.s3_endpoint.clone(),
                region: None,
                force_path_style: args.s3_endpoint.is_some(),
                encryption: None,
            };
            let sink = ObjectSink::new(&spec, None).map_err(|e| anyhow::anyhow!("cannot open {}: {e}", args.from))?;
            return Ok(Origin::S3 { sink, prefix: prefix.to_string() });
        }
        let dir = PathBuf::from(&args.from);
        if !dir.is_dir() {
            bail!("{} is neither an s3:// prefix nor a directory", args.from);
        }
        Ok(Origin::Local(dir))
    }

    async fn list(&self) -> anyhow::Result<Vec<(String, u64)>> {
        match self {
            Origin::S3 { sink, prefix } => Ok(sink.list(prefix).await?),
            Origin::Local(dir) => {
                let mut out = Vec::new();
                let mut dirs = vec![dir.clone()];
                while let Some(d) = dirs.pop() {
                    for entry in std::fs::read_dir(&d).with_context(|| format!("cannot list {}", d.display()))? {
                        let entry = entry?;
                        let path = entry.path();
                        let meta = entry.metadata()?;
                        let name = entry.file_name().to_string_lossy().into_owned();
                        if meta.is_dir() {
                            dirs.push(path);
                        } else if !name.contains('#') {
                            // `#`: an upload still being written by a local destination.
                            let key = path.strip_prefix(dir).unwrap_or(&path).to_string_lossy().into_owned();
                            out.push((key, meta.len()));
                        }
                    }
                }
                out.sort();
                Ok(out)
            }
        }
    }

    async fn read(&self, key: &str) -> anyhow::Result<Vec<u8>> {
        let raw = match self {
            Origin::S3 { sink, .. } => sink.get(key).await?.to_vec(),
            Origin::Local(dir) => std::fs::read(dir.join(key))?,
        };
        let mut out = Vec::new();
        if raw.starts_with(&[0x1f, 0x8b]) {
            flate2::read::MultiGzDecoder::new(&raw[..]).read_to_end(&mut out).context("not valid gzip")?;
        } else if raw.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            out = zstd::decode_all(&raw[..]).context("not valid zstd")?;
        } else {
            out = raw;
        }
        Ok(out)
    }
}

/// One error record's original bytes and its error code.
fn decode(line: &[u8]) -> anyhow::Result<(String, Vec<u8>)> {
    let v: Value = serde_json::from_slice(line).context("not an error record (JSON)")?;
    let code = v.get("errorCode").or_else(|| v.get("lastErrorCode")).and_then(Value::as_str).unwrap_or("").to_string();
    let raw = v.get("rawData").and_then(Value::as_str).context("the error record has no rawData")?;
    let data = base64::engine::general_purpose::STANDARD.decode(raw).context("rawData is not base64")?;
    Ok((code, data))
}

/// Which records of which objects were put back (by `<from> <key> <size>` and record index), and
/// which objects are done entirely.
struct Journal {
    path: PathBuf,
    complete: BTreeSet<String>,
    replayed: BTreeMap<String, BTreeSet<usize>>,
}

impl Journal {
    fn load(path: &Path) -> anyhow::Result<Self> {
        let mut journal = Journal { path: path.to_path_buf(), complete: BTreeSet::new(), replayed: BTreeMap::new() };
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(journal),
            Err(e) => return Err(e).with_context(|| format!("cannot read the journal {}", path.display())),
        };
        for line in text.lines() {
            // A torn last line (a crash mid-write) is ignored: its batch is simply put again.
            let Ok(entry) = serde_json::from_str::<Value>(line) else { continue };
            let Some(object) = entry.get("object").and_then(Value::as_str) else { continue };
            if entry.get("complete").and_then(Value::as_bool) == Some(true) {
                journal.complete.insert(object.to_string());
            }
            let set = journal.replayed.entry(object.to_string()).or_default();
            for range in entry.get("ranges").and_then(Value::as_array).into_iter().flatten() {
                if let (Some(a), Some(b)) = (range.get(0).and_then(Value::as_u64), range.get(1).and_then(Value::as_u64))
                {
                    set.extend(a as usize..b as usize);
                }
            }
        }
        Ok(journal)
    }

    /// Records that `indices` of `object` are acknowledged (appended and fsynced).
    fn record(&mut self, object: &str, indices: &[usize]) -> anyhow::Result<()> {
        let mut ranges: Vec<[usize; 2]> = Vec::new();
        for &i in indices {
            match ranges.last_mut() {
                Some(r) if r[1] == i => r[1] += 1,
                _ => ranges.push([i, i + 1]),
            }
        }
        self.append(json!({ "object": object, "ranges": ranges }))?;
        self.replayed.entry(object.to_string()).or_default().extend(indices);
        Ok(())
    }

    fn append(&self, entry: Value) -> anyhow::Result<()> {
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&self.path)?;
        f.write_all(format!("{entry}\n").as_bytes())?;
        f.sync_data()?;
        Ok(())
    }
}

struct Putter {
    http: reqwest::Client,
    url: String,
    stream: String,
    keys: Keys,
}

impl Putter {
    /// Puts the records, retrying refused ones, until all are acknowledged.
    async fn put_all(&self, records: &[Vec<u8>]) -> anyhow::Result<()> {
        let mut pending: Vec<&Vec<u8>> = records.iter().collect();
        let mut wait = Duration::from_millis(100);
        let mut attempts = 0;
        while !pending.is_empty() {
            attempts += 1;
            let b64 = base64::engine::general_purpose::STANDARD;
            let body = json!({
                "DeliveryStreamName": self.stream,
                "Records": pending.iter().map(|r| json!({ "Data": b64.encode(r) })).collect::<Vec<_>>(),
            })
            .to_string();
            let target = "Firehose_20150804.PutRecordBatch";
            let headers = signed_json_headers(
                &self.keys,
                "us-east-1",
                "firehose",
                &self.url,
                (JSON_1_1, target),
                body.as_bytes(),
            )
            .map_err(anyhow::Error::msg)?;
            let mut request = self.http.post(&self.url).header("content-type", JSON_1_1).header("x-amz-target", target);
            for (k, v) in headers {
                request = request.header(k, v);
            }
            let response = request.body(body).send().await;
            let retry = match response {
                Ok(r) if r.status().is_success() => {
                    let out: Value = serde_json::from_slice(&r.bytes().await?)?;
                    let results = out.get("RequestResponses").and_then(Value::as_array).cloned().unwrap_or_default();
                    pending = pending
                        .into_iter()
                        .zip(results.iter().map(|r| r.get("ErrorCode").is_some()).chain(std::iter::repeat(true)))
                        .filter_map(|(record, failed)| failed.then_some(record))
                        .collect();
                    !pending.is_empty()
                }
                Ok(r) if r.status().as_u16() == 503 || r.status().as_u16() == 429 => true,
                Ok(r) => {
                    let status = r.status();
                    bail!("{} refused the records: {status} {}", self.url, r.text().await.unwrap_or_default())
                }
                Err(e) if attempts < 30 => {
                    eprintln!("cannot reach {}: {e}; retrying", self.url);
                    true
                }
                Err(e) => bail!("cannot reach {}: {e}", self.url),
            };
            if retry {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
        }
        Ok(())
    }
}

pub async fn run(args: ReplayArgs) -> anyhow::Result<()> {
    let origin = Origin::open(&args)?;
    let journal_path =
        args.journal.clone().unwrap_or_else(|| PathBuf::from(format!("sluice-replay-{}.journal", args.to)));
    let journal = Journal::load(&journal_path)?;
    let objects = origin.list().await?;
    let total: u64 = objects.iter().map(|(_, size)| size).sum();
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let daemon = args.daemon.resolve()?;
    let url = format!("{}/", daemon.endpoint);
    let putter = Putter { http: daemon.http, url, stream: args.to.clone(), keys: daemon.keys };
    let mut journal = journal;
    let (mut replayed, mut skipped_objects, mut filtered, mut before) = (0usize, 0usize, 0usize, 0usize);
    let mut by_code: BTreeMap<String, usize> = BTreeMap::new();
    for (key, size) in &objects {
        let object = format!("{} {key} {size}", args.from);
        bar.set_message(key.clone());
        if journal.complete.contains(&object) {
            skipped_objects += 1;
            bar.inc(*size);
            continue;
        }
        let body = origin.read(key).await.with_context(|| format!("cannot read {key}"))?;
        let done = journal.replayed.get(&object).cloned().unwrap_or_default();
        let mut candidates: Vec<(usize, Vec<u8>)> = Vec::new();
        let mut total = 0;
        for (i, line) in body.split(|b| *b == b'\n').filter(|l| !l.is_empty()).enumerate() {
            total += 1;
            if done.contains(&i) {
                before += 1;
                continue;
            }
            let (code, data) = decode(line).with_context(|| format!("{key}, record {}", i + 1))?;
            if !args.error_codes.is_empty() && !args.error_codes.contains(&code) {
                filtered += 1;
                continue;
            }
            *by_code.entry(code).or_default() += 1;
            candidates.push((i, data));
        }
        if args.dry_run {
            replayed += candidates.len();
            bar.inc(*size);
            continue;
        }
        let mut at = 0;
        while at < candidates.len() {
            let mut end = at;
            let mut bytes = 0;
            while end < candidates.len() && end - at < BATCH_RECORDS && bytes + candidates[end].1.len() <= BATCH_BYTES {
                bytes += candidates[end].1.len();
                end += 1;
            }
            let end = end.max(at + 1);
            let batch: Vec<Vec<u8>> = candidates[at..end].iter().map(|(_, d)| d.clone()).collect();
            putter.put_all(&batch).await?;
            let indices: Vec<usize> = candidates[at..end].iter().map(|(i, _)| *i).collect();
            journal.record(&object, &indices)?;
            replayed += end - at;
            at = end;
        }
        if journal.replayed.get(&object).map_or(0, BTreeSet::len) == total {
            journal.append(json!({ "object": object, "complete": true }))?;
        }
        bar.inc(*size);
    }
    bar.finish_and_clear();
    let verb = if args.dry_run { "would replay" } else { "replayed" };
    println!(
        "{verb} {replayed} record(s) into {} from {} object(s){}{}",
        args.to,
        objects.len() - skipped_objects,
        if skipped_objects + before > 0 {
            format!("; {skipped_objects} object(s) and {before} more record(s) already replayed (journal)")
        } else {
            String::new()
        },
        if filtered > 0 { format!("; {filtered} record(s) with other error codes left") } else { String::new() },
    );
    for (code, n) in by_code {
        println!("  {code}: {n}");
    }
    Ok(())
}
