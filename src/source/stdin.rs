//! `source: stdin`: one record per line of standard input, for `tail -F app.log | sluice run
//! --config pipe.yaml` and batch jobs. Lines go into the pipeline's WAL as Direct PUT records do
//! (durable before they count as read); when storage is full, reading waits, so nothing is
//! dropped. At end of input the last unterminated line is taken too and the daemon shuts down:
//! it exits 0 once everything is delivered.

use tokio::io::AsyncReadExt;

use super::direct_put::OwnedPort;
use super::lines::LineSplitter;

const READ_CHUNK: usize = 256 << 10;
/// Lines gathered before a write, at most (a write also happens whenever input pauses).
const BATCH_BYTES: usize = 4 << 20;

pub fn spawn(pipeline: OwnedPort, max_line: usize) -> tokio::task::JoinHandle<()> {
    // Reading and writing are separate tasks, so input keeps being read during each write's
    // fsync, and a write takes everything read meanwhile (natural batching).
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
    let name = pipeline.name.clone();
    tokio::spawn(async move {
        let mut stdin = tokio::io::stdin();
        loop {
            let mut buf = vec![0u8; READ_CHUNK];
            match stdin.read(&mut buf).await {
                Ok(0) => return,
                Ok(n) => {
                    buf.truncate(n);
                    if tx.send(buf).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    tracing::error!(pipeline = %name, error = %e, "cannot read standard input; treating it as ended");
                    return;
                }
            }
        }
    });
    tokio::spawn(async move {
        let mut splitter = LineSplitter::new(max_line, None);
        let mut offset = 0u64;
        let mut lines = Vec::new();
        while let Some(chunk) = rx.recv().await {
            splitter.push(&chunk, offset, &mut lines);
            offset += chunk.len() as u64;
            let mut gathered = chunk.len();
            while gathered < BATCH_BYTES {
                let Ok(more) = rx.try_recv() else { break };
                splitter.push(&more, offset, &mut lines);
                offset += more.len() as u64;
                gathered += more.len();
            }
            if !write(&pipeline, &mut lines).await {
                return;
            }
        }
        lines.extend(splitter.finish(offset));
        write(&pipeline, &mut lines).await;
        tracing::info!(pipeline = %pipeline.name, "standard input ended: delivering what was read, then exiting");
        crate::shutdown::request_shutdown();
    })
}

/// Writes every gathered line, waiting while storage is full. `false`: the pipeline closed.
async fn write(pipeline: &OwnedPort, lines: &mut Vec<super::lines::Line>) -> bool {
    let truncated = lines.iter().filter(|l| l.truncated).count();
    if truncated > 0 {
        pipeline.metrics.lines_truncated.increment(truncated as u64);
    }
    let records: Vec<&[u8]> = lines.iter().map(|l| &l.data[..]).collect();
    let written = pipeline.write_waiting(&records).await;
    if !written {
        tracing::warn!(pipeline = %pipeline.name, "the pipeline closed before standard input ended; the rest of the input is not read");
    }
    lines.clear();
    written
}
