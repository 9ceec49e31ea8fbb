//! WASM transform plugins, where Firehose would call a Lambda function (ABI: `transforms/ABI.md`).
//!
//! One compiled module per pipeline and a pool of warm instances; a batch crosses the boundary once,
//! in a compact binary encoding. Each call runs under an epoch deadline (timeout) and a memory cap,
//! inside WASI with no files, environment or network. A trap, timeout, oversized memory or malformed
//! response fails the invocation, which is retried on a fresh instance and then sends every record
//! of it to the error output; the pipeline and the daemon keep running.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use wasmtime::{Config, Engine, Instance, Linker, Memory, Module, Store, StoreLimits, StoreLimitsBuilder, TypedFunc};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::WasiCtxBuilder;

use super::{ErrorOutputType, Failed, Item, Processor};
use guard::{Admission, Breaker, Slots};

mod guard;
mod input;

const EPOCH_TICK: Duration = Duration::from_millis(5);
/// Instances are replaced after this many calls, so linear memory that only grows is given back.
const RECYCLE_AFTER_CALLS: u32 = 10_000;
/// ...or once their memory has grown past this.
const RECYCLE_ABOVE_BYTES: usize = 64 << 20;
/// The error code of records short-circuited by an open breaker (a sluice code: Firehose has none).
pub const CODE_CIRCUIT_OPEN: &str = "Plugin.CircuitOpen";
const CODE_TIMED_OUT: &str = "Lambda.FunctionTimedOut";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WasmSettings {
    pub module: std::path::PathBuf,
    /// The plugin's `config:` as JSON, handed to `sluice_init`.
    pub config_json: String,
    /// Records per invocation are cut at this many bytes of data (Firehose's processor BufferSizeInMBs).
    pub max_invocation_bytes: usize,
    pub retries: u32,
    pub timeout: Duration,
    pub memory_limit_bytes: usize,
    /// The Lambda ARN this module stands in for (streams created over the API); error records and
    /// logs name it. `None`: the module's path is named instead.
    pub lambda_arn: Option<String>,
}

/// One engine for the process, with a thread advancing its epoch so deadlines fire.
fn engine() -> Result<&'static Engine, String> {
    static ENGINE: OnceLock<Result<Engine, String>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let mut config = Config::new();
            config.epoch_interruption(true);
            let engine = Engine::new(&config).map_err(|e| e.to_string())?;
            let ticker = engine.clone();
            std::thread::Builder::new()
                .name("wasm-epoch".into())
                .spawn(move || loop {
                    std::thread::sleep(EPOCH_TICK);
                    ticker.increment_epoch();
                })
                .map_err(|e| e.to_string())?;
            Ok(engine)
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Compiles a module once per file version: config validation and pipeline start (and every stream
/// auto-created from a template) load the same module, and compiling is the expensive part.
fn compiled(engine: &Engine, path: &std::path::Path) -> Result<Module, String> {
    type Cache = Mutex<HashMap<std::path::PathBuf, (Option<SystemTime>, Module)>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let cache = CACHE.get_or_init(Default::default);
    if let Some((when, module)) = cache.lock().unwrap_or_else(|p| p.into_inner()).get(path) {
        if *when == modified && modified.is_some() {
            return Ok(module.clone());
        }
    }
    let bytes = read_module(path)?;
    let module = Module::new(engine, &bytes).map_err(|e| format!("cannot load {}: {e:#}", path.display()))?;
    cache.lock().unwrap_or_else(|p| p.into_inner()).insert(path.to_path_buf(), (modified, module.clone()));
    Ok(module)
}

/// A plugin module is at most this large; anything bigger is refused before it is read whole
/// (issue #9: `/dev/zero` as a module grew to 2 GB before an error).
pub const MAX_MODULE_BYTES: u64 = 256 << 20;

/// Reads a module file: a regular file of at most [`MAX_MODULE_BYTES`], read with that bound
/// even if it grows meanwhile.
fn read_module(path: &std::path::Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let meta = file.metadata().map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("{} is not a regular file", path.display()));
    }
    if meta.len() > MAX_MODULE_BYTES {
        return Err(format!(
            "{} is {} bytes; a plugin module may be at most {MAX_MODULE_BYTES}",
            path.display(),
            meta.len()
        ));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_MODULE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if bytes.len() as u64 > MAX_MODULE_BYTES {
        return Err(format!("{} grew past {MAX_MODULE_BYTES} bytes while being read", path.display()));
    }
    Ok(bytes)
}

struct HostState {
    wasi: WasiP1Ctx,
    limits: StoreLimits,
}

/// A live instance with its exports looked up once.
struct Warm {
    store: Store<HostState>,
    memory: Memory,
    alloc: TypedFunc<i32, i32>,
    process: TypedFunc<(i32, i32), i64>,
    calls: u32,
    /// The ABI version the module speaks: how its input batches are encoded.
    version: i32,
}

pub struct WasmProcessor {
    settings: WasmSettings,
    module: Module,
    linker: Linker<HostState>,
    pool: Mutex<Vec<Warm>>,
    arn: Arc<str>,
    breaker: Breaker,
    slots: Slots,
    circuit_open: metrics::Gauge,
    short_circuited: metrics::Counter,
}

/// Why an invocation failed: an error code and a message for the error record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvocationError {
    pub code: &'static str,
    pub message: String,
}

impl InvocationError {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

impl WasmProcessor {
    /// Compiles the module, checks its ABI and that it accepts its config.
    pub fn load(settings: WasmSettings) -> Result<Self, String> {
        let engine = engine()?;
        let path = &settings.module;
        let module = compiled(engine, path)?;
        let mut linker = Linker::new(engine);
        wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |s: &mut HostState| &mut s.wasi)
            .map_err(|e| e.to_string())?;
        let arn: Arc<str> = Arc::from(settings.lambda_arn.clone().unwrap_or_else(|| path.display().to_string()));
        let label = arn.to_string();
        let processor = Self {
            arn: arn.clone(),
            settings,
            module,
            linker,
            pool: Mutex::new(Vec::new()),
            breaker: Breaker::default(),
            slots: Slots::for_this_machine(),
            circuit_open: metrics::gauge!("sluice_plugin_circuit_open", "plugin" => label.clone()),
            short_circuited: metrics::counter!("sluice_plugin_short_circuited_records_total", "plugin" => label),
        };
        let warm = processor.instantiate().map_err(|e| format!("{arn}: {}", e.message))?;
        processor.give_back(warm);
        Ok(processor)
    }

    fn instantiate(&self) -> Result<Warm, InvocationError> {
        let fail = |e: wasmtime::Error| InvocationError::new("Lambda.FunctionError", format!("{e:#}"));
        let limits =
            StoreLimitsBuilder::new().memory_size(self.settings.memory_limit_bytes).trap_on_grow_failure(true).build();
        // WASI without preopened directories, environment, arguments or sockets.
        let wasi = WasiCtxBuilder::new().build_p1();
        let mut store = Store::new(self.module.engine(), HostState { wasi, limits });
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(self.deadline_ticks());
        let instance: Instance = self.linker.instantiate(&mut store, &self.module).map_err(fail)?;
        if let Ok(init) = instance.get_typed_func::<(), ()>(&mut store, "_initialize") {
            init.call(&mut store, ()).map_err(fail)?;
        }
        let version = instance
            .get_typed_func::<(), i32>(&mut store, "sluice_abi_version")
            .map_err(|_| InvocationError::new("Lambda.FunctionError", "the module does not export sluice_abi_version"))?
            .call(&mut store, ())
            .map_err(fail)?;
        if !input::ABI_VERSIONS.contains(&version) {
            return Err(InvocationError::new(
                "Lambda.FunctionError",
                format!("the module speaks ABI version {version}; this sluice speaks {:?}", input::ABI_VERSIONS),
            ));
        }
        let memory = instance
            .get_memory(&mut store, "memory")
            .ok_or_else(|| InvocationError::new("Lambda.FunctionError", "the module does not export its memory"))?;
        let alloc = instance.get_typed_func::<i32, i32>(&mut store, "sluice_alloc").map_err(fail)?;
        let process = instance.get_typed_func::<(i32, i32), i64>(&mut store, "sluice_process").map_err(fail)?;
        let mut warm = Warm { store, memory, alloc, process, calls: 0, version };
        if let Ok(init) = instance.get_typed_func::<(i32, i32), i32>(&mut warm.store, "sluice_init") {
            let (ptr, len) = self.write(&mut warm, self.settings.config_json.as_bytes())?;
            let code = init.call(&mut warm.store, (ptr, len)).map_err(fail)?;
            if code != 0 {
                let message = match init_error_text(&instance, &mut warm) {
                    Some(why) => format!("the plugin refused its config: {why}"),
                    None => format!("the plugin refused its config (sluice_init returned {code})"),
                };
                return Err(InvocationError::new("Lambda.FunctionError", message));
            }
        }
        Ok(warm)
    }

    fn deadline_ticks(&self) -> u64 {
        (self.settings.timeout.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64 + 1
    }

    /// Copies bytes into a buffer the plugin allocated.
    fn write(&self, warm: &mut Warm, bytes: &[u8]) -> Result<(i32, i32), InvocationError> {
        let len = i32::try_from(bytes.len())
            .map_err(|_| InvocationError::new("Lambda.FunctionError", "batch too large for a 32-bit plugin"))?;
        let ptr = warm.alloc.call(&mut warm.store, len).map_err(|e| trap_error(&e, self.settings.timeout))?;
        warm.memory.write(&mut warm.store, ptr as u32 as usize, bytes).map_err(|_| {
            InvocationError::new("Lambda.FunctionError", "sluice_alloc returned memory outside the module")
        })?;
        Ok((ptr, len))
    }

    /// Encodes the input batch straight into a buffer the plugin allocated (no intermediate copy).
    fn write_batch(&self, warm: &mut Warm, items: &[Item]) -> Result<(i32, i32), InvocationError> {
        let size = input::size(items, warm.version);
        let len = i32::try_from(size)
            .map_err(|_| InvocationError::new("Lambda.FunctionError", "batch too large for a 32-bit plugin"))?;
        let ptr = warm.alloc.call(&mut warm.store, len).map_err(|e| trap_error(&e, self.settings.timeout))?;
        let start = ptr as u32 as usize;
        let buf = warm.memory.data_mut(&mut warm.store).get_mut(start..start + size).ok_or_else(|| {
            InvocationError::new("Lambda.FunctionError", "sluice_alloc returned memory outside the module")
        })?;
        input::encode(items, warm.version, buf);
        Ok((ptr, len))
    }

    /// One call into the plugin: returns the raw output batch, copied out of the instance once.
    fn call(&self, warm: &mut Warm, items: &[Item]) -> Result<Bytes, InvocationError> {
        warm.store.set_epoch_deadline(self.deadline_ticks());
        let (ptr, len) = self.write_batch(warm, items)?;
        let packed =
            warm.process.call(&mut warm.store, (ptr, len)).map_err(|e| trap_error(&e, self.settings.timeout))?;
        warm.calls += 1;
        let (out_ptr, out_len) = ((packed as u64 >> 32) as usize, (packed as u64 & 0xFFFF_FFFF) as usize);
        let data = warm.memory.data(&warm.store);
        data.get(out_ptr..out_ptr.saturating_add(out_len)).map(Bytes::copy_from_slice).ok_or_else(|| {
            InvocationError::new(
                "Lambda.JsonProcessingException",
                "the plugin returned an output batch outside its memory",
            )
        })
    }

    fn take(&self) -> Result<Warm, InvocationError> {
        let pooled = self.pool.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match pooled {
            Some(w) => Ok(w),
            None => self.instantiate(),
        }
    }

    fn give_back(&self, warm: Warm) {
        if warm.calls < RECYCLE_AFTER_CALLS && warm.memory.data_size(&warm.store) <= RECYCLE_ABOVE_BYTES {
            self.pool.lock().unwrap_or_else(|p| p.into_inner()).push(warm);
        }
    }

    /// Runs one invocation with retries, unless the breaker is open (see `guard.rs`), within the
    /// plugin's share of the cores.
    fn invoke(&self, items: &[Item]) -> Result<Vec<Output>, InvocationError> {
        if let Admission::ShortCircuit { retry_in } = self.breaker.admit(std::time::Instant::now()) {
            self.short_circuited.increment(items.len() as u64);
            return Err(InvocationError::new(
                CODE_CIRCUIT_OPEN,
                format!(
                    "the plugin timed out on every attempt of {} invocations in a row; it is not run for another {} s",
                    guard::TRIP_AFTER,
                    retry_in.as_secs()
                ),
            ));
        }
        let result = {
            let _slot = self.slots.acquire();
            self.invoke_with_retries(items)
        };
        let timed_out = matches!(&result, Err(e) if e.code == CODE_TIMED_OUT);
        if let Some(cool_down) = self.breaker.report(timed_out, std::time::Instant::now()) {
            tracing::warn!(plugin = %self.arn, cool_down_seconds = cool_down.as_secs(), "plugin keeps timing out; its records go to the error output without running it until the cool-down passes");
        }
        self.circuit_open.set(if self.breaker.is_open() { 1.0 } else { 0.0 });
        result
    }

    fn invoke_with_retries(&self, items: &[Item]) -> Result<Vec<Output>, InvocationError> {
        let mut last = InvocationError::new("Lambda.FunctionError", "not invoked");
        for _attempt in 0..=self.settings.retries {
            let mut warm = match self.take() {
                Ok(w) => w,
                Err(e) => {
                    last = e;
                    continue;
                }
            };
            match self.call(&mut warm, items).and_then(|out| decode_output(&out, items.len())) {
                Ok(outputs) => {
                    self.give_back(warm);
                    return Ok(outputs);
                }
                // An instance that failed is never reused.
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}

fn trap_error(e: &wasmtime::Error, timeout: Duration) -> InvocationError {
    match e.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => {
            InvocationError::new(CODE_TIMED_OUT, format!("the plugin ran longer than {} ms", timeout.as_millis()))
        }
        _ => InvocationError::new("Lambda.FunctionError", format!("the plugin trapped: {e:#}")),
    }
}

/// One record of a plugin's response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub index: usize,
    pub result: u8,
    pub data: Bytes,
    pub keys: Vec<(String, String)>,
}

pub const RESULT_OK: u8 = 0;
pub const RESULT_DROPPED: u8 = 1;
pub const RESULT_FAILED: u8 = 2;

struct Cursor<'a> {
    buf: &'a Bytes,
    pos: usize,
}

impl Cursor<'_> {
    /// The next `n` bytes, as a zero-copy slice of the output batch.
    fn take(&mut self, n: usize) -> Result<Bytes, InvocationError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len()).ok_or_else(malformed)?;
        let s = self.buf.slice(self.pos..end);
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, InvocationError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, InvocationError> {
        Ok(u16::from_le_bytes(self.take(2)?[..].try_into().map_err(|_| malformed())?))
    }
    fn u32(&mut self) -> Result<u32, InvocationError> {
        Ok(u32::from_le_bytes(self.take(4)?[..].try_into().map_err(|_| malformed())?))
    }
    fn u64(&mut self) -> Result<u64, InvocationError> {
        Ok(u64::from_le_bytes(self.take(8)?[..].try_into().map_err(|_| malformed())?))
    }
    fn string(&mut self) -> Result<String, InvocationError> {
        let n = self.u16()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| malformed())
    }
}

fn malformed() -> InvocationError {
    InvocationError::new(
        "Lambda.JsonProcessingException",
        "the plugin's response does not decode as an output batch (see transforms/ABI.md)",
    )
}

/// Decodes and checks a response: every input id exactly once, nothing else, no trailing bytes.
pub fn decode_output(buf: &Bytes, inputs: usize) -> Result<Vec<Output>, InvocationError> {
    let mut c = Cursor { buf, pos: 0 };
    let count = c.u32()? as usize;
    // Ids are 0..inputs, so a bitmap is enough to see duplicates and gaps.
    let mut seen = vec![false; inputs];
    let mut seen_count = 0usize;
    let mut outputs = Vec::with_capacity(count.min(inputs));
    for _ in 0..count {
        let id = c.u64()?;
        let result = c.u8()?;
        if result > RESULT_FAILED {
            return Err(malformed());
        }
        let len = c.u32()? as usize;
        let data = c.take(len)?;
        let key_count = c.u16()?;
        let mut keys = Vec::with_capacity(key_count as usize);
        for _ in 0..key_count {
            keys.push((c.string()?, c.string()?));
        }
        let index = usize::try_from(id).ok().filter(|&i| i < inputs).ok_or_else(|| {
            InvocationError::new(
                "Lambda.MissingRecordId",
                format!("the plugin returned record id {id}, which was not in the batch"),
            )
        })?;
        if std::mem::replace(&mut seen[index], true) {
            return Err(InvocationError::new(
                "Lambda.DuplicatedRecordId",
                format!("the plugin returned record id {id} more than once"),
            ));
        }
        seen_count += 1;
        outputs.push(Output { index, result, data, keys });
    }
    if c.pos != buf.len() {
        return Err(malformed());
    }
    if seen_count != inputs {
        let missing = seen.iter().position(|s| !s).unwrap_or(0);
        return Err(InvocationError::new(
            "Lambda.MissingRecordId",
            format!("record id {missing} is missing from the plugin's response"),
        ));
    }
    Ok(outputs)
}

impl Processor for WasmProcessor {
    fn name(&self) -> &'static str {
        "wasm"
    }

    fn process(&self, items: Vec<Item>, failed: &mut Vec<Failed>) -> Vec<Item> {
        // Cut invocations at the configured size (at least one record each).
        let mut invocations = Vec::new();
        let mut rest = &items[..];
        while !rest.is_empty() {
            let mut bytes = 0;
            let n = rest
                .iter()
                .take_while(|i| {
                    bytes += i.record.data.len();
                    bytes <= self.settings.max_invocation_bytes
                })
                .count()
                .max(1);
            let (batch, tail) = rest.split_at(n);
            invocations.push(batch);
            rest = tail;
        }
        // Parallelism comes from the chain, which splits large batches over threads; each thread
        // takes its own warm instance from the pool.
        let results: Vec<Result<Vec<Output>, InvocationError>> =
            invocations.iter().map(|batch| self.invoke(batch)).collect();
        let mut out = Vec::with_capacity(items.len());
        for (batch, result) in invocations.iter().zip(results) {
            self.collect(batch, result, &mut out, failed);
        }
        out
    }
}

impl WasmProcessor {
    /// Applies one invocation's outcome to its records.
    fn collect(
        &self,
        batch: &[Item],
        result: Result<Vec<Output>, InvocationError>,
        out: &mut Vec<Item>,
        failed: &mut Vec<Failed>,
    ) {
        match result {
            Ok(mut outputs) => {
                outputs.sort_by_key(|o| o.index);
                for o in outputs {
                    let item = &batch[o.index];
                    match o.result {
                        RESULT_OK => {
                            let mut next = item.derive(o.data);
                            if !o.keys.is_empty() {
                                let mut keys = item.keys.as_deref().cloned().unwrap_or_default();
                                keys.lambda.extend(o.keys);
                                next.keys = Some(Arc::new(keys));
                            }
                            out.push(next);
                        }
                        RESULT_DROPPED => {}
                        _ => failed.push(self.failure(
                            item,
                            "Lambda.ProcessingFailedStatus",
                            "ProcessingFailed status set for record",
                        )),
                    }
                }
            }
            Err(e) => {
                tracing::warn!(plugin = %self.arn, code = e.code, error = %e.message, records = batch.len(), "transform plugin invocation failed; its records go to the error output");
                failed.extend(batch.iter().map(|item| self.failure(item, e.code, &e.message)));
            }
        }
    }
}

impl WasmProcessor {
    fn failure(&self, item: &Item, code: &str, message: &str) -> Failed {
        let mut f = Failed::new(item.record.clone(), ErrorOutputType::ProcessingFailed, code, message);
        f.lambda_arn = Some(self.arn.clone());
        f.attempts = self.settings.retries + 1;
        f
    }
}

#[cfg(test)]
mod tests;

/// Longest init error text read from a plugin (it is shown to a person, once).
const MAX_INIT_ERROR: usize = 4096;

/// The text a plugin's optional `sluice_init_error` export points at, if it has one.
fn init_error_text(instance: &wasmtime::Instance, warm: &mut Warm) -> Option<String> {
    let export = instance.get_typed_func::<(), i64>(&mut warm.store, "sluice_init_error").ok()?;
    let packed = export.call(&mut warm.store, ()).ok()?;
    let (ptr, len) = ((packed >> 32) as u32 as usize, (packed as u32 as usize).min(MAX_INIT_ERROR));
    if len == 0 {
        return None;
    }
    let mut bytes = vec![0; len];
    warm.memory.read(&warm.store, ptr, &mut bytes).ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}
