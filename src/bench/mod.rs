//! `sluice bench`: the load generator behind the figures in BENCHMARKS.md.
//!
//! `sluice bench ingest` drives a running daemon the way a Firehose producer does: PutRecordBatch
//! requests of `--batch` JSON records of about `--record-bytes` each, over `--connections`
//! keep-alive connections, for `--seconds`. It reports acknowledged records per second, request
//! latency, and, read from the daemon's `/metrics`, how fast delivery kept up and how long it
//! took to drain after the load stopped.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use base64::Engine;
use clap::{Args, Subcommand};

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    kind: BenchKind,
}

#[derive(Subcommand, Debug)]
enum BenchKind {
    /// Durable Direct PUT ingest (and delivery catch-up) against a running daemon.
    Ingest(IngestArgs),
    /// Built-in processors on one core: jq (partition keys and transform, fast plan and jaq) and KPL de-aggregation.
    Processors(ProcessorArgs),
    /// A WASM transform plugin, on one thread (per core) and on all cores.
    Wasm(WasmArgs),
    /// Record format conversion on one core: NDJSON → Parquet (ZSTD) and ORC (ZLIB).
    Convert(ConvertArgs),
    /// A fast Firehose HTTP endpoint receiver to deliver into (for the HTTP endpoint figures).
    Receiver(receiver::ReceiverArgs),
}

mod receiver;

#[derive(Args, Debug)]
struct ConvertArgs {
    #[arg(long, default_value_t = 1_000_000)]
    records: usize,
    #[arg(long, default_value_t = 250)]
    record_bytes: usize,
    /// Input bytes per converted file (a pipeline's buffer size).
    #[arg(long, default_value_t = 64)]
    file_mb: usize,
}

#[derive(Args, Debug)]
struct WasmArgs {
    /// The plugin, e.g. transforms/target/wasm32-wasip1/release/passthrough.wasm
    #[arg(long)]
    module: std::path::PathBuf,
    /// The plugin's config, as JSON.
    #[arg(long, default_value = "{}")]
    config: String,
    #[arg(long, default_value_t = 1_000_000)]
    records: usize,
    #[arg(long, default_value_t = 250)]
    record_bytes: usize,
}

#[derive(Args, Debug)]
struct ProcessorArgs {
    #[arg(long, default_value_t = 500_000)]
    records: usize,
    #[arg(long, default_value_t = 250)]
    record_bytes: usize,
    /// Run only the measurements whose name contains this text (for profiling one of them).
    #[arg(long, default_value = "")]
    only: String,
}

#[derive(Args, Debug)]
struct IngestArgs {
    #[arg(long, default_value = "http://127.0.0.1:4573")]
    endpoint: String,
    #[arg(long, default_value = "bench")]
    stream: String,
    #[arg(long, default_value_t = 16)]
    connections: usize,
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    #[arg(long, default_value_t = 500)]
    batch: usize,
    #[arg(long, default_value_t = 250)]
    record_bytes: usize,
    /// After the load, wait up to this long for delivery to catch up.
    #[arg(long, default_value_t = 120)]
    drain_timeout_seconds: u64,
    /// Distinct request bodies cycled through (each of `batch` distinct records; `user_id` runs
    /// over every record, so more bodies give more distinct partition keys).
    #[arg(long, default_value_t = 8)]
    bodies: u64,
    /// Sign every request with SigV4, as an SDK does (for a daemon with `api.auth`).
    #[arg(long, env = "SLUICE_BENCH_ACCESS_KEY_ID", requires = "secret_access_key")]
    access_key_id: Option<String>,
    #[arg(long, env = "SLUICE_BENCH_SECRET_ACCESS_KEY", hide_env_values = true)]
    secret_access_key: Option<String>,
    /// Sign each distinct body once, at the start, instead of every request: the client then
    /// spends nothing on signing, and the run measures the daemon's verification alone.
    #[arg(long, requires = "access_key_id")]
    sign_once: bool,
}

/// What `put` signs with, when the bench signs.
#[derive(Clone)]
struct Signer(crate::aws::request::Keys);

impl Signer {
    /// The SigV4 headers an SDK would add to this PutRecordBatch (signed now, over the body).
    fn headers(&self, url: &str, body: &[u8]) -> anyhow::Result<Vec<(String, String)>> {
        crate::aws::request::signed_json_headers(
            &self.0,
            "us-east-1",
            "firehose",
            url,
            (crate::aws::request::JSON_1_1, "Firehose_20150804.PutRecordBatch"),
            body,
        )
        .map_err(anyhow::Error::msg)
    }
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.kind {
        BenchKind::Ingest(a) => ingest(a).await,
        BenchKind::Processors(a) => processors(a),
        BenchKind::Wasm(a) => wasm(a),
        BenchKind::Convert(a) => convert(a),
        BenchKind::Receiver(a) => receiver::run(a).await,
    }
}

/// A realistic clickstream record of about `size` bytes; `n` makes each one distinct.
fn record(n: u64, size: usize) -> String {
    let mut r = format!(
        r#"{{"event_id":"{:032x}","ts":"2026-11-23T04:{:02}:{:02}.{:03}Z","user_id":{},"event_type":"{}","page":"/products/{}","pad":""#,
        n.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        n / 60 % 60,
        n % 60,
        n % 1000,
        n % 100_000,
        ["click", "view", "purchase", "scroll"][(n % 4) as usize],
        n % 5000
    );
    while r.len() + 2 < size {
        r.push((b'a' + (n.wrapping_add(r.len() as u64) % 26) as u8) as char);
    }
    r.push_str("\"}");
    r
}

fn bodies(stream: &str, batch: usize, size: usize, count: u64) -> Vec<bytes::Bytes> {
    (0..count.max(1))
        .map(|b| {
            let records: Vec<serde_json::Value> = (0..batch as u64)
                .map(|i| {
                    let data = base64::engine::general_purpose::STANDARD.encode(record(b * batch as u64 + i, size));
                    serde_json::json!({ "Data": data })
                })
                .collect();
            bytes::Bytes::from(serde_json::json!({ "DeliveryStreamName": stream, "Records": records }).to_string())
        })
        .collect()
}

async fn delivered(client: &reqwest::Client, endpoint: &str, stream: &str) -> anyhow::Result<u64> {
    let text = client.get(format!("{endpoint}/metrics")).send().await?.text().await?;
    // Records delivered to the object store, or to a sending destination.
    let mut total = 0;
    for destination in crate::config::destinations::delivery_metric_names() {
        let key = format!("sluice_delivery_to_{destination}_records_total{{delivery_stream_name=\"{stream}\"}} ");
        total +=
            text.lines().find_map(|l| l.strip_prefix(&key)).and_then(|v| v.trim().parse::<f64>().ok()).unwrap_or(0.0)
                as u64;
    }
    Ok(total)
}

async fn ingest(a: IngestArgs) -> anyhow::Result<()> {
    let client = reqwest::Client::builder().pool_max_idle_per_host(a.connections).build()?;
    let signer = match (&a.access_key_id, &a.secret_access_key) {
        (Some(id), Some(secret)) => {
            Some(Signer(crate::aws::request::Keys { id: id.clone(), secret: secret.clone(), token: None }))
        }
        _ => None,
    };
    let endpoint = if a.endpoint.ends_with('/') { a.endpoint.clone() } else { format!("{}/", a.endpoint) };
    let bodies = Arc::new(bodies(&a.stream, a.batch, a.record_bytes, a.bodies));
    // Signed once per body (valid for the 5 minutes of allowed clock skew, more than a run).
    let presigned: Arc<Vec<Vec<(String, String)>>> = Arc::new(match (&signer, a.sign_once) {
        (Some(s), true) => bodies.iter().map(|b| s.headers(&endpoint, b)).collect::<anyhow::Result<_>>()?,
        _ => Vec::new(),
    });
    let signer = if a.sign_once { None } else { signer };
    let record_bytes = record(0, a.record_bytes).len();
    // Warm up (and auto-create the stream) before measuring; the warm-up batch counts toward
    // the records the drain below waits for.
    let delivered_before = delivered(&client, &a.endpoint, &a.stream).await.unwrap_or(0);
    let warm_up_failed = put(&client, &endpoint, signer.as_ref(), presigned.first(), bodies[0].clone())
        .await
        .context("the daemon did not accept a first batch")?;
    let warm_up = a.batch as u64 - warm_up_failed;

    let acked = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..a.connections {
        let (client, bodies, acked, failed, stop, endpoint, signer, presigned) = (
            client.clone(),
            bodies.clone(),
            acked.clone(),
            failed.clone(),
            stop.clone(),
            endpoint.clone(),
            signer.clone(),
            presigned.clone(),
        );
        let batch = a.batch as u64;
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut i = c;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let n = i % bodies.len();
                match put(&client, &endpoint, signer.as_ref(), presigned.get(n), bodies[n].clone()).await {
                    Ok(failed_count) => {
                        acked.fetch_add(batch - failed_count, Ordering::Relaxed);
                        failed.fetch_add(failed_count, Ordering::Relaxed);
                    }
                    Err(_) => {
                        failed.fetch_add(batch, Ordering::Relaxed);
                    }
                }
                latencies.push(t.elapsed());
                i += 1;
            }
            latencies
        }));
    }
    tokio::time::sleep(Duration::from_secs(a.seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await?);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let delivered_at_end = delivered(&client, &a.endpoint, &a.stream).await? - delivered_before;
    let acked = acked.load(Ordering::Relaxed);
    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    println!(
        "ingest: {acked} records acknowledged in {elapsed:.1} s = {:.0} records/s ({:.1} MB/s of record data); {} requests, latency p50 {:.1} ms, p99 {:.1} ms; {} records refused",
        acked as f64 / elapsed,
        (acked as f64 * record_bytes as f64) / elapsed / 1e6,
        latencies.len(),
        pct(0.5).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        failed.load(Ordering::Relaxed)
    );
    println!("delivery during load: {delivered_at_end} records = {:.0} records/s", delivered_at_end as f64 / elapsed);

    let target = acked + warm_up;
    let drain_start = Instant::now();
    loop {
        let done = delivered(&client, &a.endpoint, &a.stream).await? - delivered_before;
        if done >= target {
            println!(
                "delivery: all {done} records delivered {:.1} s after the load stopped; end-to-end {:.0} records/s",
                drain_start.elapsed().as_secs_f64(),
                done as f64 / (elapsed + drain_start.elapsed().as_secs_f64())
            );
            return Ok(());
        }
        if drain_start.elapsed() > Duration::from_secs(a.drain_timeout_seconds) {
            bail!("delivery did not catch up within {} s ({done} of {target} delivered)", a.drain_timeout_seconds);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sends one PutRecordBatch (signed, with a signer) and returns its FailedPutCount.
async fn put(
    client: &reqwest::Client,
    endpoint: &str,
    signer: Option<&Signer>,
    presigned: Option<&Vec<(String, String)>>,
    body: bytes::Bytes,
) -> anyhow::Result<u64> {
    let mut request = client
        .post(endpoint)
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amz-target", "Firehose_20150804.PutRecordBatch");
    if let Some(signer) = signer {
        for (name, value) in signer.headers(endpoint, &body)? {
            request = request.header(name, value);
        }
    }
    for (name, value) in presigned.into_iter().flatten() {
        request = request.header(name, value);
    }
    let response = request.body(body).send().await?;
    let status = response.status();
    let text = response.text().await?;
    if !status.is_success() {
        bail!("{status}: {}", text.chars().take(200).collect::<String>());
    }
    let failed = text
        .split("\"FailedPutCount\":")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    Ok(failed)
}

/// Runs each processor over `--records` records in batches of 500 on the current thread, so the
/// figures are per core.
fn processors(a: ProcessorArgs) -> anyhow::Result<()> {
    use crate::process::deaggregate::{kpl_aggregate, Deaggregate, SubRecordType};
    use crate::process::jq::{transform::JqTransform, JqProgram};
    use crate::process::metadata::MetadataExtraction;
    use crate::process::{Chain, Processor};
    use crate::record::Record;

    let data: Vec<bytes::Bytes> =
        (0..a.records as u64).map(|n| bytes::Bytes::from(record(n, a.record_bytes))).collect();
    let as_records = |data: &[bytes::Bytes]| -> Vec<Record> {
        data.iter().enumerate().map(|(i, d)| Record::new(i as u64, 0, d.clone())).collect()
    };
    let measure = |name: &str, chain: &Chain, input: Vec<Record>, outputs_per_input: usize| {
        if !name.contains(a.only.as_str()) {
            return;
        }
        let (ok, failed, secs) = time_chain(chain, &input, 500);
        println!(
            "{name}: {ok} records out ({failed} failed) in {secs:.2} s = {:.0} output records/s on one core ({:.0} input records/s)",
            ok as f64 / secs,
            ok as f64 / secs / outputs_per_input as f64
        );
    };

    let one = |p: Arc<dyn Processor>| Chain::new(vec![p]);
    let paths = "{event_type: .event_type, user: .user_id, day: .ts[0:10]}";
    let name = "jq query alone {event_type, user, day} (fast plan, no processor around it)";
    if name.contains(a.only.as_str()) {
        let program = JqProgram::compile(paths)?;
        let started = Instant::now();
        let mut fields = 0;
        for d in &data {
            if let Ok(crate::process::jq::Outputs::Fields(f)) = program.run(d) {
                fields += f.len();
            }
        }
        let secs = started.elapsed().as_secs_f64();
        anyhow::ensure!(fields == 3 * data.len(), "the fast plan must answer every benchmark record");
        println!(
            "{name}: {} records in {secs:.2} s = {:.0} records/s on one core",
            data.len(),
            data.len() as f64 / secs
        );
    }
    let fast = MetadataExtraction::compile(paths)?;
    let sample = fast.extract(&data[0]).map_err(anyhow::Error::msg)?;
    anyhow::ensure!(sample.len() == 3, "the benchmark query must produce three keys, got {sample:?}");
    measure("jq partition keys {event_type, user, day} (fast plan)", &one(Arc::new(fast)), as_records(&data), 1);
    let slow = MetadataExtraction::compile(paths)?.without_fast_plan();
    measure("jq partition keys {event_type, user, day} (jaq)", &one(Arc::new(slow)), as_records(&data), 1);
    let transform = |query: &str| -> anyhow::Result<Arc<dyn Processor>> {
        Ok(Arc::new(JqTransform::new(JqProgram::compile(query)?, false)))
    };
    measure("jq transform {event_type, user, day} (fast plan)", &one(transform(paths)?), as_records(&data), 1);
    let select = r#"select(.event_type != "scroll") | {event_type, user: .user_id}"#;
    measure("jq transform select(...) | {...} (jaq, 3/4 kept)", &one(transform(select)?), as_records(&data), 1);

    let query = r#"{event_type: .event_type, hour: (.ts[0:19] | strptime("%Y-%m-%dT%H:%M:%S") | strftime("%H")), user: .user_id}"#;
    let with_time = MetadataExtraction::compile(query)?;
    let sample = with_time.extract(&data[0]).map_err(anyhow::Error::msg)?;
    anyhow::ensure!(sample.len() == 3, "the benchmark query must produce three keys, got {sample:?}");
    measure(
        "jq with strptime/strftime",
        &Chain::new(vec![Arc::new(with_time) as Arc<dyn Processor>]),
        as_records(&data),
        1,
    );

    let per_aggregate = 100;
    let aggregates: Vec<bytes::Bytes> = data.chunks(per_aggregate).map(kpl_aggregate).collect();
    let kpl = Chain::new(vec![Arc::new(Deaggregate { kind: SubRecordType::Kpl }) as Arc<dyn Processor>]);
    measure("KPL de-aggregation (100 sub-records per aggregate)", &kpl, as_records(&aggregates), per_aggregate);
    Ok(())
}

/// Runs a plugin over `--records` records in pipeline-sized batches on the current thread.
fn wasm(a: WasmArgs) -> anyhow::Result<()> {
    use crate::process::wasm::{WasmProcessor, WasmSettings};
    use crate::process::{Chain, Processor};
    use crate::record::Record;

    let settings = WasmSettings {
        module: a.module.clone(),
        config_json: a.config.clone(),
        max_invocation_bytes: 1 << 20,
        retries: 0,
        timeout: Duration::from_secs(60),
        memory_limit_bytes: 256 << 20,
        lambda_arn: None,
    };
    let records: Vec<Record> = (0..a.records as u64)
        .map(|n| Record::new(n, 1_783_951_509_000, bytes::Bytes::from(record(n, a.record_bytes))))
        .collect();
    // The pipeline hands processors up to 4 MiB at a time; the plugin cuts invocations at 1 MiB.
    let per_read = (4 << 20) / a.record_bytes.max(1);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    for threads in [1, cores] {
        let plugin = WasmProcessor::load(settings.clone()).map_err(anyhow::Error::msg)?;
        let chain = Chain::new(vec![Arc::new(plugin) as Arc<dyn Processor>]).with_parallelism(threads);
        let (ok, failed, secs) = time_chain(&chain, &records, per_read);
        println!(
            "{} on {threads} thread(s): {ok} records out ({failed} failed) of {} in {secs:.2} s = {:.0} records/s, {:.0} ns per record",
            a.module.display(),
            a.records,
            a.records as f64 / secs,
            secs * 1e9 / a.records as f64
        );
    }
    Ok(())
}

/// Converts `--records` clickstream records in files of `--file-mb` on the current thread and
/// reports input MB/s per core for decoding alone and for decoding plus writing each format.
fn convert(a: ConvertArgs) -> anyhow::Result<()> {
    use crate::format::convert::HiveType;
    use crate::record::Record;

    let parse = |spec: &[(&str, &str)]| -> anyhow::Result<Vec<(String, HiveType)>> {
        spec.iter().map(|(n, t)| Ok((n.to_string(), HiveType::parse(t).map_err(anyhow::Error::msg)?))).collect()
    };
    let flat = parse(&[
        ("event_id", "string"),
        ("ts", "timestamp"),
        ("user_id", "bigint"),
        ("event_type", "string"),
        ("page", "string"),
        ("pad", "string"),
    ])?;
    let flat_records: Vec<Record> =
        (0..a.records as u64).map(|n| Record::new(n, 0, bytes::Bytes::from(record(n, a.record_bytes)))).collect();
    convert_one("flat clickstream", &flat, &flat_records, &a)?;
    convert_inferred(&flat_records, &a)?;
    // The issue's lake schema: decimal, array, struct and map columns.
    let nested = parse(&[
        ("event_id", "string"),
        ("ts", "timestamp"),
        ("amount", "decimal(12,2)"),
        ("tags", "array<string>"),
        ("user", "struct<id:bigint,country:string>"),
        ("attrs", "map<string,string>"),
        ("pad", "string"),
    ])?;
    let nested_records: Vec<Record> = (0..a.records as u64)
        .map(|n| {
            let mut r = format!(
                r#"{{"event_id":"{:032x}","ts":"2026-11-23T04:{:02}:{:02}.{:03}Z","amount":{}.{:02},"tags":["t{}","t{}"],"user":{{"id":{},"country":"{}"}},"attrs":{{"k{}":"v","ab":"b"}},"pad":""#,
                n.wrapping_mul(0x9E37_79B9_7F4A_7C15),
                n / 60 % 60,
                n % 60,
                n % 1000,
                n % 100_000,
                n % 100,
                n % 7,
                n % 11,
                n % 100_000,
                ["NZ", "DE", "BR", "JP"][(n % 4) as usize],
                n % 3
            );
            while r.len() + 2 < a.record_bytes {
                r.push((b'a' + (n.wrapping_add(r.len() as u64) % 26) as u8) as char);
            }
            r.push_str("\"}");
            Record::new(n, 0, bytes::Bytes::from(r))
        })
        .collect();
    convert_one("nested lake schema", &nested, &nested_records, &a)
}

/// `schema: infer`: learn the schema from each file's records (a second parse), then convert.
fn convert_inferred(records: &[crate::record::Record], a: &ConvertArgs) -> anyhow::Result<()> {
    use crate::format::convert::infer::SchemaInference;
    use crate::format::convert::parquet::{ParquetCompression, ParquetOptions};
    use crate::format::convert::{ConversionSpec, InputRules, OutputFormat, SchemaSpec};

    let input_bytes: usize = records.iter().map(|r| r.data.len()).sum();
    let per_file = ((a.file_mb << 20) / a.record_bytes.max(1)).max(1);
    let spec = ConversionSpec {
        schema: SchemaSpec::Infer,
        input: InputRules::OpenX {
            case_insensitive: true,
            dots_to_underscores: false,
            column_to_json_key: Default::default(),
        },
        output: OutputFormat::Parquet(ParquetOptions { compression: ParquetCompression::Zstd, ..Default::default() }),
    };
    let mut inference = SchemaInference::load(None, true, false)?;
    let started = Instant::now();
    for chunk in records.chunks(per_file) {
        let columns = inference.evolve(chunk)?;
        let converted = spec.convert(&columns, chunk)?;
        anyhow::ensure!(converted.failures.is_empty(), "records failed to convert");
        spec.write(&columns, &converted.table, Vec::with_capacity(16 << 20))?;
    }
    let secs = started.elapsed().as_secs_f64();
    println!("  {:<15} {:>7.1} MB/s of input (schema: infer)", "Parquet ZSTD", input_bytes as f64 / 1e6 / secs);
    Ok(())
}

fn convert_one(
    what: &str,
    columns: &[(String, crate::format::convert::HiveType)],
    records: &[crate::record::Record],
    a: &ConvertArgs,
) -> anyhow::Result<()> {
    use crate::format::convert::orc::{OrcCompression, OrcOptions};
    use crate::format::convert::parquet::{ParquetCompression, ParquetOptions};
    use crate::format::convert::{ConversionSpec, InputRules, OutputFormat, SchemaSpec};

    let input_bytes: usize = records.iter().map(|r| r.data.len()).sum();
    let per_file = ((a.file_mb << 20) / a.record_bytes.max(1)).max(1);
    let input = InputRules::OpenX {
        case_insensitive: true,
        dots_to_underscores: false,
        column_to_json_key: Default::default(),
    };
    let outputs = [
        ("decode only", None),
        (
            "Parquet ZSTD",
            Some(OutputFormat::Parquet(ParquetOptions { compression: ParquetCompression::Zstd, ..Default::default() })),
        ),
        (
            "Parquet SNAPPY",
            Some(OutputFormat::Parquet(ParquetOptions {
                compression: ParquetCompression::Snappy,
                ..Default::default()
            })),
        ),
        ("ORC ZLIB", Some(OutputFormat::Orc(OrcOptions { compression: OrcCompression::Zlib, ..Default::default() }))),
        ("ORC ZSTD", Some(OutputFormat::Orc(OrcOptions { compression: OrcCompression::Zstd, ..Default::default() }))),
    ];
    println!(
        "{what}: {} records of {} bytes ({:.0} MB of NDJSON), files of {} MiB input, one core:",
        a.records,
        a.record_bytes,
        input_bytes as f64 / 1e6,
        a.file_mb
    );
    // One unmeasured pass, so the first figure does not pay for the allocator's first page faults.
    let warm = ConversionSpec {
        schema: SchemaSpec::Declared(columns.to_vec()),
        input: input.clone(),
        output: OutputFormat::Parquet(ParquetOptions::default()),
    };
    for chunk in records.chunks(per_file) {
        warm.convert(columns, chunk)?;
    }
    for (name, output) in outputs {
        let spec = ConversionSpec {
            schema: SchemaSpec::Declared(columns.to_vec()),
            input: input.clone(),
            output: output.clone().unwrap_or(OutputFormat::Parquet(ParquetOptions::default())),
        };
        let started = Instant::now();
        let (mut written, mut failed) = (0usize, 0usize);
        for chunk in records.chunks(per_file) {
            let converted = spec.convert(columns, chunk)?;
            failed += converted.failures.len();
            if output.is_some() {
                let mut out = Vec::with_capacity(16 << 20);
                spec.write(columns, &converted.table, &mut out)?;
                written += out.len();
            }
        }
        let secs = started.elapsed().as_secs_f64();
        anyhow::ensure!(failed == 0, "{failed} records failed to convert");
        println!(
            "  {name:<15} {:>7.1} MB/s of input ({:.0} records/s){}",
            input_bytes as f64 / 1e6 / secs,
            a.records as f64 / secs,
            if written > 0 {
                format!(", output {:.1} MB ({:.1}x smaller)", written as f64 / 1e6, input_bytes as f64 / written as f64)
            } else {
                String::new()
            }
        );
    }
    Ok(())
}

/// Runs `records` through `chain` in batches of `batch` and returns (outputs, failures, seconds).
fn time_chain(chain: &crate::process::Chain, records: &[crate::record::Record], batch: usize) -> (usize, usize, f64) {
    let batches: Vec<Vec<crate::record::Record>> =
        records.chunks(batch).map(<[crate::record::Record]>::to_vec).collect();
    let started = Instant::now();
    let (mut ok, mut failed) = (0, 0);
    for b in batches {
        let (items, f) = chain.run(b);
        ok += items.len();
        failed += f.len();
    }
    (ok, failed, started.elapsed().as_secs_f64())
}
