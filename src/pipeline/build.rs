//! Building one pipeline from its spec: open its WAL (replaying what was not delivered), its
//! encoders, processors and destination, its naming scope and source, then start its loop
//! (`pipeline::run`). What the API keeps of it is the [`PipelineHandle`].

use super::*;

#[derive(Debug, Error)]
pub enum PipelineError {
    #[error("pipeline `{name}`: {message}")]
    Processor { name: String, message: String },
    /// The source cannot start (a listening source's port in use).
    #[error("pipeline `{name}`: {message}")]
    Source { name: String, message: String },
    #[error("pipeline `{name}`: {source}")]
    Wal { name: String, source: wal::WalError },
    #[error("pipeline `{name}`: {source}")]
    Sink { name: String, source: crate::sink::SinkError },
}

/// What the API needs of a running pipeline.
pub struct PipelineHandle {
    pub spec: PipelineSpec,
    pub ingest: DirectPutIngest,
    pub metrics: PipelineMetrics,
    pub created_at: SystemTime,
    /// Stable per-stream value folded into RecordIds and object names.
    pub seed: u64,
    pub status: Arc<PipelineStatus>,
    /// Each destination's status and check (one for a pipeline with one destination).
    pub destinations: Vec<DestinationHandle>,
    /// Direct PUT throughput quotas (`None`: unlimited).
    pub throttle: Option<crate::source::quota::Throttle>,
    /// Live records for `sluice tap`.
    pub taps: Arc<tap::Taps>,
    /// `firehose_http_endpoint` sources: records already written per sender request id, on disk.
    pub request_memory: Option<Arc<std::sync::Mutex<crate::source::firehose_http::request_memory::RequestMemory>>>,
    /// A listening source's sockets (syslog), closed with the pipeline.
    pub listening: std::sync::Mutex<Option<crate::source::syslog::Listening>>,
}

/// What `/ready` and the destination checks need of one destination.
pub struct DestinationHandle {
    /// The route's name in a fan-out pipeline (`None`: the pipeline's only destination).
    pub name: Option<String>,
    /// Its delivery failures and check outcome (the pipeline's own status when it is the only one).
    pub status: Arc<PipelineStatus>,
    /// Checks that the destination is reachable and writable (startup and `/ready`).
    pub probe: crate::sink::Probe,
}

impl PipelineHandle {
    /// What a WAL-backed source writes through.
    pub fn port(&self) -> crate::source::direct_put::IngestPort<'_> {
        crate::source::direct_put::IngestPort { ingest: &self.ingest, metrics: &self.metrics, status: &self.status }
    }
}

/// Opens the pipeline's WAL (replaying whatever was not delivered) and starts its task.
pub fn start(
    spec: PipelineSpec,
    storage: &StorageSettings,
    global: Arc<StorageBudget>,
    identity: &crate::identity::Identity,
) -> Result<(Arc<PipelineHandle>, JoinHandle<()>), PipelineError> {
    let name = spec.name.clone();
    let limit = spec.max_wal_bytes.map_or(storage.max_bytes, |m| m.min(storage.max_bytes));
    let budget = StorageBudget::new(limit, Some(global));
    let dir = storage.dir.join("pipelines").join(&name).join("wal");
    let (appender, reader, report) = wal::open(WalOptions {
        dir,
        segment_bytes: storage.segment_bytes,
        budget: budget.clone(),
        recent_frames_bytes: wal::RECENT_FRAMES_BYTES,
    })
    .map_err(|source| PipelineError::Wal { name: name.clone(), source })?;
    if report.undelivered_records > 0 || report.torn_bytes_cut > 0 {
        tracing::info!(pipeline = %name, records = report.undelivered_records, bytes = report.undelivered_bytes, torn_bytes_cut = report.torn_bytes_cut, "replaying undelivered records from the WAL");
    }

    let fans_out = spec.fanout.is_some();
    let metrics = PipelineMetrics::new(
        &name,
        crate::metrics::MetricsShape {
            store: spec.store.store.kind(),
            sending: spec.sending.as_deref().map(|e| e.metric_name()),
            conversion: spec.store.format_conversion.is_some(),
            part: if fans_out { crate::metrics::MetricsPart::Intake } else { crate::metrics::MetricsPart::Whole },
        },
    );
    let timers = ChainTimers { processing: metrics.processing_duration.clone(), jq: metrics.jq_duration.clone() };
    // Firehose de-aggregates KPL records from a Kinesis stream by itself.
    let mut processors = spec.processors.clone();
    if matches!(spec.source, crate::config::SourceSpec::Kinesis(_))
        && !processors.iter().any(|p| matches!(p, ProcessorSpec::Deaggregation(_)))
    {
        processors.insert(0, ProcessorSpec::Deaggregation(crate::process::deaggregate::SubRecordType::Kpl));
    }
    let chain = build_chain(&processors, Some(&metrics))
        .map_err(|message| PipelineError::Processor { name: name.clone(), message })?
        .with_timers(timers);
    let stream_dir = storage.dir.join("pipelines").join(&name);
    let names = NameScope::load_or_create(&stream_dir, &name, report.next_seq, report.undelivered_records > 0)
        .map_err(|e| PipelineError::Processor { name: name.clone(), message: e.to_string() })?;
    let status = Arc::new(PipelineStatus::default());
    let (done_tx, done_rx) = mpsc::unbounded_channel();
    let taps = Arc::new(tap::Taps::default());
    let encode_backlog = Arc::new(EncodeBacklog::default());
    let opening = Opening {
        stream_dir: &stream_dir,
        spill_limit: limit,
        names,
        identity,
        done_tx,
        taps: &taps,
        encode_backlog: &encode_backlog,
    };
    let mut branches = Vec::new();
    let mut destinations = Vec::new();
    for (index, b) in spec.branches().into_iter().enumerate() {
        let name = b.route.as_ref().map(|r| r.name.clone());
        let (branch, probe) = opening.branch(index, b, (&metrics, &status))?;
        destinations.push(DestinationHandle { name, status: branch.delivery.status.clone(), probe });
        branches.push(branch);
    }
    let runner = Runner {
        name: name.clone(),
        chain: Arc::new(chain),
        branches,
        status: status.clone(),
        metrics: metrics.clone(),
        committed: 0,
        taps: taps.clone(),
        encode_backlog,
    };
    let direct_put = DirectPutSource::new(reader, appender.clone(), report.controls);
    let dir = storage.dir.join("pipelines").join(&name);
    let source = crate::source::open(&spec.source, spec.branches().len(), &dir, &name, direct_put, &status)
        .map_err(|message| PipelineError::Processor { name: name.clone(), message })?;
    let request_memory = match spec.source {
        crate::config::SourceSpec::FirehoseHttpEndpoint { .. } => {
            let memory = crate::source::firehose_http::request_memory::RequestMemory::open(&dir).map_err(|e| {
                PipelineError::Processor {
                    name: name.clone(),
                    message: format!("cannot open the request-id memory: {e}"),
                }
            })?;
            Some(Arc::new(std::sync::Mutex::new(memory)))
        }
        _ => None,
    };
    let spec_quotas = spec.quotas;
    metrics.set_quota_limits(&spec_quotas);
    let ingest = DirectPutIngest::new(appender, budget, limit);
    let listening = match &spec.source {
        crate::config::SourceSpec::Syslog(syslog) => {
            let port = crate::source::direct_put::OwnedPort {
                name: spec.name.clone(),
                ingest: ingest.clone(),
                metrics: metrics.clone(),
                status: status.clone(),
            };
            let listening = crate::source::syslog::listen(port, syslog)
                .map_err(|message| PipelineError::Source { name: spec.name.clone(), message })?;
            Some(listening)
        }
        _ => None,
    };
    let handle = Arc::new(PipelineHandle {
        spec,
        ingest,
        metrics,
        created_at: SystemTime::now(),
        seed: names.seed,
        status,
        destinations,
        throttle: crate::source::quota::Throttle::new(&spec_quotas),
        taps,
        request_memory,
        listening: std::sync::Mutex::new(listening),
    });
    if let crate::config::SourceSpec::Stdin { max_line_bytes } = handle.spec.source {
        let owned = crate::source::direct_put::OwnedPort {
            name: handle.spec.name.clone(),
            ingest: handle.ingest.clone(),
            metrics: handle.metrics.clone(),
            status: handle.status.clone(),
        };
        crate::source::stdin::spawn(owned, max_line_bytes);
    }
    let task = tokio::spawn(run(source, runner, done_rx));
    Ok((handle, task))
}

/// The configured processors, built once per pipeline.
/// `metrics`: the pipeline's, for what processors count themselves (none under `sluice test`).
pub fn build_chain(specs: &[ProcessorSpec], metrics: Option<&PipelineMetrics>) -> Result<Chain, String> {
    let mut processors: Vec<Arc<dyn Processor>> = Vec::new();
    for spec in specs {
        processors.push(match spec {
            ProcessorSpec::GzipDecompression => Arc::new(GzipDecompression),
            ProcessorSpec::CloudWatchLogProcessing => Arc::new(CloudWatchLogProcessing),
            ProcessorSpec::Deaggregation(kind) => Arc::new(Deaggregate { kind: kind.clone() }),
            ProcessorSpec::MetadataExtraction(query) => {
                Arc::new(MetadataExtraction::compile(query).map_err(|e| e.to_string())?)
            }
            ProcessorSpec::Jq { query, raw_output } => {
                let jq = JqTransform::new(JqProgram::compile(query).map_err(|e| e.to_string())?, *raw_output);
                Arc::new(match metrics {
                    Some(m) => jq.counting_drops(m.dropped_by_jq.clone()),
                    None => jq,
                })
            }
            ProcessorSpec::AppendDelimiter => continue, // applied by the encoder, see start()
            ProcessorSpec::Wasm(settings) => Arc::new(WasmProcessor::load(settings.clone())?),
            ProcessorSpec::Parse(spec) => Arc::new(crate::process::parse::Parse::new(spec.clone())),
        });
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    Ok(Chain::new(processors).with_parallelism(cores))
}

/// What every destination of one pipeline is opened with.
struct Opening<'a> {
    stream_dir: &'a std::path::Path,
    /// What a fan-out destination's backlog may hold on disk: the pipeline's WAL bound.
    spill_limit: u64,
    names: NameScope,
    identity: &'a crate::identity::Identity,
    done_tx: mpsc::UnboundedSender<Done>,
    taps: &'a Arc<tap::Taps>,
    /// Records waiting for the pipeline's part encoders (`encode_ahead.rs`).
    encode_backlog: &'a Arc<EncodeBacklog>,
}

impl Opening<'_> {
    /// Opens one destination: its object store, formats, metrics, condition and sending
    /// destination, and the check `/ready` runs. The pipeline's metrics and status are the only
    /// destination's own; each destination of several gets its own.
    fn branch(
        &self,
        index: usize,
        b: crate::config::Branch,
        (pipeline_metrics, status): (&PipelineMetrics, &Arc<PipelineStatus>),
    ) -> Result<(Branch, crate::sink::Probe), PipelineError> {
        let spec = b.spec;
        let name = spec.name.clone();
        let d = &spec.store;
        let sink = ObjectSink::new(&d.store, d.compression.content_encoding())
            .map_err(|source| PipelineError::Sink { name: name.clone(), source })?;
        // The append_delimiter processor runs last in Firehose, after partitioning, and only adds a
        // newline to delivered records, so it is applied by the encoder: error records then carry the
        // record as it was processed, without the delimiter.
        let delimit = d.append_delimiter || spec.processors.contains(&ProcessorSpec::AppendDelimiter);
        let format = ObjectFormat {
            encoder: RawEncoder { append_delimiter: delimit },
            compression: d.compression,
            compression_level: d.compression_level,
            extension: d.file_extension.clone(),
        };
        // Error output is newline-delimited JSON, compressed like the data. Converted data's
        // extension (.parquet/.orc) does not describe it, so error objects then keep the codec's.
        let error_format = ObjectFormat {
            encoder: RawEncoder { append_delimiter: true },
            compression: d.compression,
            compression_level: d.compression_level,
            extension: if d.format_conversion.is_some() {
                d.compression.default_extension().to_string()
            } else {
                d.file_extension.clone()
            },
        };
        let metrics = match &b.route {
            None => pipeline_metrics.clone(),
            Some(route) => PipelineMetrics::new(
                &name,
                crate::metrics::MetricsShape {
                    store: d.store.kind(),
                    sending: spec.sending.as_deref().map(|e| e.metric_name()),
                    conversion: d.format_conversion.is_some(),
                    part: crate::metrics::MetricsPart::Destination(&route.name),
                },
            ),
        };
        let inference = match &d.format_conversion {
            Some(c) if c.schema == SchemaSpec::Infer => {
                let (fold, dots) = c.input.key_rules();
                let file = match &b.route {
                    Some(route) if index > 0 => format!("schema-{}.json", route.name),
                    _ => "schema.json".to_string(),
                };
                let inference = SchemaInference::load(Some(self.stream_dir.join(file)), fold, dots)
                    .map_err(|e| PipelineError::Processor { name: name.clone(), message: e.to_string() })?;
                Some(Arc::new(std::sync::Mutex::new(inference)))
            }
            _ => None,
        };
        let probe = match spec.sending.as_deref().and_then(|e| e.url()) {
            Some(url) => sink.probe().with_endpoint(url),
            None => sink.probe(),
        };
        let (endpoint, loader) = match spec.sending.as_deref() {
            Some(e) => match crate::sink::open(
                e,
                &name,
                &self.identity.stream_arn(&name),
                &format!("{:016x}-{index}", self.names.seed),
            )
            .map_err(|source| PipelineError::Sink { name: name.clone(), source })?
            {
                crate::sink::Opened::Sends(d) => (Some(d), None),
                crate::sink::Opened::Loads(l) => (None, Some(l)),
            },
            None => (None, None),
        };
        let when = match b.route.as_ref().and_then(|r| r.when.as_deref()) {
            Some(query) => Some(Arc::new(
                crate::process::route::Condition::compile(query)
                    .map_err(|e| PipelineError::Processor { name: name.clone(), message: format!("when: {e}") })?,
            )),
            None => None,
        };
        let names = match &b.route {
            Some(route) => self.names.for_route(index, &route.name),
            None => self.names,
        };
        let max_in_memory = spec.buffering.size_bytes * (spec.delivery.concurrency + 2);
        let uploads = Arc::new(Semaphore::new(spec.delivery.concurrency));
        let format = Arc::new(format);
        // A plain object destination's buffers hold encoded parts, not records (`buffer::parts`);
        // converted, sent and loaded batches need their records at delivery.
        let plain_objects = endpoint.is_none() && loader.is_none() && d.format_conversion.is_none();
        let data = if plain_objects && format.compression.concatenates() {
            let parts =
                ObjectParts { format: format.clone(), backlog: self.encode_backlog.clone(), taps: self.taps.clone() };
            Batcher::encoding_parts(spec.buffering, Arc::new(parts))
        } else {
            Batcher::new(spec.buffering)
        };
        let branch = Branch {
            index: u8::try_from(index).unwrap_or(u8::MAX),
            when,
            partitioner: Partitioner::new(&d.prefix).routed_by(endpoint.as_ref().map_or(&[], |e| e.routing_keys())),
            max_partitions: spec.dynamic_partitioning.map(|d| d.max_active_partitions),
            data,
            errors: Batcher::new(spec.buffering),
            tracker: DeliveryTracker::new(0),
            uploads,
            done_tx: self.done_tx.clone(),
            in_flight: HashMap::default(),
            uploads_in_flight: 0,
            in_memory: 0,
            max_in_memory,
            buffer_budget: max_in_memory / 2,
            partition_limit_hit: false,
            ledger: Arc::new(NoLedger),
            cut_marks: None,
            source_keys: Default::default(),
            replay: ReplayPlan::default(),
            taps: self.taps.clone(),
            spill: match &b.route {
                Some(_) => Some(
                    crate::buffer::spill::Spill::create(&self.stream_dir.join("spill").join(index.to_string()))
                        .map_err(|e| PipelineError::Processor {
                            name: name.clone(),
                            message: format!("cannot create the destination's backlog file: {e}"),
                        })?,
                ),
                None => None,
            },
            spill_limit: self.spill_limit,
            full_since: None,
            catch_up_after: None,
            delivery: Arc::new(Delivery {
                spec,
                inference,
                sink,
                format,
                error_format: Arc::new(error_format),
                metrics,
                status: match &b.route {
                    Some(_) => Arc::new(PipelineStatus::default()),
                    None => status.clone(),
                },
                sending: endpoint,
                loader,
                names,
            }),
        };
        Ok((branch, probe))
    }
}
