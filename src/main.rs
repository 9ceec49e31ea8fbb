use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

use sluice::{api, bench, config, daemon::Daemon, metrics};

mod cli;

use cli::config_source::{ConfigSource, Overrides};

/// mimalloc rather than glibc's malloc: a pipeline allocates and frees millions of small records a
/// second across threads, and glibc's free-list consolidation was a tenth of a partitioned
/// pipeline's CPU (BENCHMARKS.md, "A partitioned pipeline end to end"). The `system-allocator`
/// feature keeps glibc's, for heap profilers that hook malloc (heaptrack; BENCHMARKS.md, issue #29).
/// Two of mimalloc's options are changed: see [`allocator_environment`].
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Starts sluice again, at once, with mimalloc options of its own for those the environment does not
/// set (a value the user sets, the default included, is kept):
/// - `MIMALLOC_ARENA_EAGER_COMMIT=0`: with mimalloc's default its arenas are committed eagerly, and
///   memory freed in them is only reset (`MADV_FREE`), which stays in the resident set: issue #29's
///   load peaked at 190–228 MiB with a 77 MiB live heap; with 0 at about 160 MiB, at the same
///   throughput and CPU (BENCHMARKS.md, "Where the memory goes").
/// - `MIMALLOC_PURGE_DELAY=100`: freed memory goes back to the system after 100 ms instead of 1 s.
///   Issue #29's load peaks about 10 MiB lower (93–103 MiB) at the same speed; the file tailer at
///   full speed pays 0–7% more CPU in page faults (a third more with 10 ms, before it stopped
///   churning megabyte buffers). Memory is what decides whether a sidecar fits, so memory wins; set
///   `MIMALLOC_PURGE_DELAY=1000` for the last percent of a log shipper's speed (BENCHMARKS.md,
///   "Fewer large allocations").
///
/// The options must be in the environment before the first allocation (the first arena is
/// reserved before `main`), hence `exec` of the same binary: same pid, arguments and descriptors.
/// If `exec` fails sluice simply goes on with mimalloc's defaults.
#[cfg(all(not(feature = "system-allocator"), target_os = "linux"))]
fn allocator_environment() {
    use std::os::unix::process::CommandExt;
    const OPTIONS: [(&str, &str); 2] = [("MIMALLOC_ARENA_EAGER_COMMIT", "0"), ("MIMALLOC_PURGE_DELAY", "100")];
    let unset: Vec<(&str, &str)> = OPTIONS.into_iter().filter(|(name, _)| std::env::var_os(name).is_none()).collect();
    if unset.is_empty() {
        return;
    }
    let mut args = std::env::args_os();
    let argv0 = args.next().unwrap_or_else(|| "sluice".into());
    let mut command = std::process::Command::new("/proc/self/exe");
    command.arg0(argv0).args(args).envs(unset);
    // `exec` returns only when it failed.
    let _ = command.exec();
}

#[cfg(not(all(not(feature = "system-allocator"), target_os = "linux")))]
fn allocator_environment() {}

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "A durable, self-hosted delivery daemon that speaks the Amazon Data Firehose API",
    after_help = "Tools (not daemon operation):\n  bench     Measure throughput: ingest and delivery, processors, WASM plugins, conversion (see BENCHMARKS.md)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Ask a running daemon whether it is alive (GET /health); exit 0 if it is. For container
    /// health checks, where no curl is installed.
    Health {
        #[command(flatten)]
        daemon: cli::daemon_address::DaemonArgs,
        /// The full URL to ask (overrides --endpoint; kept for older health checks).
        #[arg(long, hide = true)]
        url: Option<String>,
    },
    /// Run the daemon (on the embedded default config unless --config or --config-dir is given).
    Run {
        /// The pipeline config file (YAML).
        #[arg(long, env = "SLUICE_CONFIG", conflicts_with = "config_dir")]
        config: Option<PathBuf>,
        /// Load every *.yaml file of this directory as one config (one file per pipeline, say).
        #[arg(long, env = "SLUICE_CONFIG_DIR")]
        config_dir: Option<PathBuf>,
        /// Overrides api.listen (an address such as 127.0.0.1:4573, or localhost:4573).
        #[arg(long, value_parser = config::resolve_listen)]
        listen: Option<SocketAddr>,
        /// Overrides storage.dir.
        #[arg(long)]
        storage_dir: Option<PathBuf>,
        /// Exit instead of starting when a destination check fails (credentials, reachability,
        /// write permission). Without it a failed check is a warning and `/ready` answers 503.
        #[arg(long)]
        require_healthy: bool,
        /// Listen on a non-loopback address without `api.auth` (anyone who can reach the port can
        /// create, delete and put to every stream).
        #[arg(long)]
        insecure_no_auth: bool,
        /// How long to wait on SIGTERM/SIGINT for buffers to flush before exiting anyway
        /// (undelivered records stay in the WAL for the next start).
        #[arg(long, default_value_t = 60)]
        shutdown_timeout_seconds: u64,
        /// Reload the config when its file(s) or a WASM module they name change (SIGHUP always
        /// reloads).
        #[arg(long)]
        watch_config: bool,
        /// Log line format: `text` for people, `json` for log collectors; `auto` is text on a
        /// terminal and JSON otherwise (a file, journald, a container runtime). Every other
        /// command reads $SLUICE_LOG_FORMAT.
        #[arg(long, env = "SLUICE_LOG_FORMAT", value_enum, default_value_t = cli::logging::LogFormat::Auto)]
        log_format: cli::logging::LogFormat,
    },
    /// Check config files, directories of them, or table schema files; print every problem with
    /// its file:line:column and exit non-zero if any is invalid.
    Validate {
        /// Files or directories to check.
        paths: Vec<PathBuf>,
        /// A file to check (the same as giving it as a path; defaults to $SLUICE_CONFIG).
        #[arg(long, env = "SLUICE_CONFIG")]
        config: Vec<PathBuf>,
    },
    /// Measure throughput: ingest and delivery, built-in processors, WASM plugins (see BENCHMARKS.md).
    #[command(hide = true)]
    Bench(bench::BenchArgs),
    /// Put the records of an error prefix back into a delivery stream (after fixing the cause);
    /// a journal makes a second run replay nothing twice.
    Replay(cli::replay::ReplayArgs),
    /// Run config unit tests: input records through a pipeline's processors and partitioning,
    /// compared with the expected records, prefixes and error records (no network needed).
    Test(cli::test_config::TestArgs),
    /// Print live records of a pipeline stage (incoming, processed, delivered, failed) as NDJSON.
    Tap(cli::observe::TapArgs),
    /// A refreshing table of every pipeline's rates, WAL bytes, freshness and latency.
    Top(cli::observe::TopArgs),
    /// Print a shell completion script: `sluice completions bash > /etc/bash_completion.d/sluice`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff): `sluice man > /usr/share/man/man1/sluice.1`.
    Man,
}

fn main() -> ExitCode {
    allocator_environment();
    let cli = Cli::parse();
    let log_format = match &cli.command {
        Command::Run { log_format, .. } => *log_format,
        _ => cli::logging::LogFormat::from_env(),
    };
    cli::logging::init(log_format);
    let result = match cli.command {
        Command::Validate { mut paths, config } => {
            paths.extend(config);
            cli::validate::run(&paths)
        }
        Command::Run {
            config,
            config_dir,
            listen,
            storage_dir,
            require_healthy,
            insecure_no_auth,
            shutdown_timeout_seconds,
            watch_config,
            log_format: _,
        } => runtime().and_then(|rt| {
            rt.block_on(run(RunOptions {
                source: ConfigSource::new(config, config_dir),
                overrides: Overrides { listen, storage_dir },
                watch_config,
                require_healthy,
                insecure_no_auth,
                shutdown_timeout: Duration::from_secs(shutdown_timeout_seconds),
            }))
        }),
        Command::Bench(args) => runtime().and_then(|rt| rt.block_on(bench::run(args))),
        Command::Replay(args) => runtime().and_then(|rt| rt.block_on(cli::replay::run(args))),
        Command::Test(args) => cli::test_config::run(args),
        Command::Tap(args) => runtime().and_then(|rt| rt.block_on(cli::observe::tap(args))),
        Command::Top(args) => runtime().and_then(|rt| rt.block_on(cli::observe::top(args))),
        Command::Health { daemon, url } => runtime().and_then(|rt| rt.block_on(health(&daemon, url))),
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut <Cli as clap::CommandFactory>::command(),
                "sluice",
                &mut std::io::stdout(),
            );
            Ok(())
        }
        Command::Man => clap_mangen::Man::new(<Cli as clap::CommandFactory>::command())
            .render(&mut std::io::stdout())
            .context("cannot write the man page"),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluice: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn health(daemon: &cli::daemon_address::DaemonArgs, url: Option<String>) -> anyhow::Result<()> {
    let daemon = daemon.resolve()?;
    let url = url.unwrap_or_else(|| format!("{}/health", daemon.endpoint));
    let request = daemon.http.get(&url).timeout(Duration::from_secs(5));
    let response = request.send().await.with_context(|| format!("cannot reach {url}"))?;
    anyhow::ensure!(response.status().is_success(), "{url} answered {}", response.status());
    println!("{}", response.text().await.unwrap_or_default().trim());
    Ok(())
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")
}

struct RunOptions {
    source: ConfigSource,
    overrides: Overrides,
    watch_config: bool,
    require_healthy: bool,
    insecure_no_auth: bool,
    shutdown_timeout: Duration,
}

/// Destinations whose startup check failed are checked again this often (a delivery that
/// succeeds clears the failure sooner).
const RECHECK_EVERY: Duration = Duration::from_secs(30);

async fn run(options: RunOptions) -> anyhow::Result<()> {
    let RunOptions { source, overrides, watch_config, require_healthy, insecure_no_auth, shutdown_timeout } = options;
    let cfg = overrides.apply(source.load()?);
    // First, so a second daemon on this state directory exits before touching anything. Held until
    // `run` returns; the kernel releases it on any exit, kill -9 included.
    let _state_lock = sluice::state_lock::StateDirLock::acquire(&cfg.storage.dir)?;
    if !cfg.listen.ip().is_loopback() && cfg.security.access_keys.is_none() {
        if !insecure_no_auth {
            anyhow::bail!(
                "refusing to listen on {} without authentication: add api.auth.access_keys to the config (see docs/security.md), listen on 127.0.0.1, or pass --insecure-no-auth",
                cfg.listen
            );
        }
        tracing::warn!(address = %cfg.listen, "--insecure-no-auth: anyone who can reach this address can create, delete and put to every delivery stream");
    }
    let tls = match &cfg.security.tls {
        Some(files) => {
            Some(sluice::tls::TlsReloader::load(files, &[b"http/1.1"]).context("cannot set up TLS for the API")?)
        }
        None => None,
    };
    let handle = metrics::install();
    let metrics_handle = handle.clone();
    let fd_limit = api::server::raise_fd_limit();
    let (listen, limits) = (cfg.listen, cfg.limits);
    let daemon = Daemon::start(cfg).context("cannot start pipelines")?;
    cli::reload::spawn(daemon.clone(), source, overrides, watch_config);
    // Before accepting traffic: is every destination reachable, with working credentials?
    let failed = daemon.check_destinations(false).await;
    for (pipeline, why) in &failed {
        tracing::warn!(pipeline = %pipeline, reason = %why, "destination check failed: records will be accepted and kept in the WAL, /ready answers 503 until it passes");
    }
    if require_healthy && !failed.is_empty() {
        daemon.shutdown(Duration::from_secs(1)).await;
        let list: Vec<String> = failed.iter().map(|(p, why)| format!("{p}: {why}")).collect();
        anyhow::bail!("--require-healthy: destination checks failed:\n  {}", list.join("\n  "));
    }
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
    let server_limits = api::server::ServerLimits {
        max_connections: api::server::effective_max_connections(limits.max_connections, fd_limit),
        header_timeout: limits.header_timeout,
    };
    tracing::info!(address = %listen, tls = tls.is_some(), authentication = daemon.config.security.access_keys.is_some(), streams = ?daemon.names(), max_connections = server_limits.max_connections, fd_limit, "sluice is accepting Firehose API requests");
    let app = api::router(api::ApiState {
        daemon: daemon.clone(),
        metrics: handle,
        body_timeout: limits.body_timeout,
        give_up_window: limits.give_up_window,
        history: api::console::history::History::spawn(daemon.clone(), metrics_handle),
        memory: api::memory::RequestMemory::new(daemon.config.storage.max_memory),
    });
    let janitor = {
        let daemon = daemon.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            let mut last_recheck = tokio::time::Instant::now();
            loop {
                tick.tick().await;
                daemon.close_idle_streams().await;
                if last_recheck.elapsed() >= RECHECK_EVERY {
                    last_recheck = tokio::time::Instant::now();
                    for (pipeline, why) in daemon.check_destinations(true).await {
                        tracing::warn!(pipeline = %pipeline, reason = %why, "destination check still failing");
                    }
                }
            }
        })
    };
    if let Some(tls) = &tls {
        tls.clone().watch();
    }
    cli::systemd::ready(&format!("accepting Firehose API requests on {listen}"));
    cli::systemd::spawn_watchdog();
    api::server::serve(listener, app, server_limits, tls, shutdown_signal()).await;
    cli::systemd::stopping();
    janitor.abort();
    tracing::info!("stopped accepting requests; flushing buffers");
    if daemon.shutdown(shutdown_timeout).await {
        tracing::info!("all buffers flushed; exiting");
    } else {
        tracing::warn!(
            timeout_seconds = shutdown_timeout.as_secs(),
            "buffers not fully delivered before the timeout; the rest stays in the WAL and is delivered on next start"
        );
    }
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM");
            return std::future::pending().await;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
        _ = sluice::shutdown::shutdown_requested() => tracing::info!("a source has ended; shutting down"),
    }
}
