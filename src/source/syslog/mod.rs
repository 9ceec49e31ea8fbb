//! `source: syslog`: RFC 5424 and RFC 3164 messages over UDP, TCP or TLS, each kept as one JSON
//! record with its parsed fields (`facility`, `severity`, `timestamp`, `host`, `app`, `procid`,
//! `msgid`, `structured_data`, `message`; `process::parse::syslog`) and the sender's `source_ip`.
//! A message that does not parse is kept too: `{"message": <the raw text>, "malformed": true}`.
//!
//! Messages go into the pipeline's WAL as Direct PUT records do. TCP and TLS connections carry
//! newline-framed messages or RFC 6587 octet counting (`<length> <message>`), told apart per
//! message by its first character. While storage is full, reading waits: TCP senders are slowed by
//! their socket buffers; UDP datagrams queue in the kernel and are dropped there when it is full
//! (UDP syslog has no acknowledgement; use TCP or TLS where that matters). The listener is bound
//! when the pipeline starts (a port in use fails the start with the reason) and closed with it.

pub mod config;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;

use super::direct_put::OwnedPort;
use config::{Mode, SyslogSpec};

/// Messages waiting to be written, at most (then reading waits).
const QUEUE: usize = 8192;
/// Messages written in one WAL write, at most.
const BATCH: usize = 2048;

/// The listener's tasks; dropping it (the pipeline closing) stops them and frees the port.
pub struct Listening {
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Listening {
    /// Stops listening and waits until the port is free (a reload binds it again).
    pub async fn stop(mut self) {
        let tasks = std::mem::take(&mut self.tasks);
        for task in &tasks {
            task.abort();
        }
        for task in tasks {
            let _ = task.await;
        }
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Binds `spec.listen` and starts reading into `port`. Err: why it cannot listen.
pub fn listen(port: OwnedPort, spec: &SyslogSpec) -> Result<Listening, String> {
    let (tx, rx) = mpsc::channel::<Vec<u8>>(QUEUE);
    let name = port.name.clone();
    let cut = port.metrics.lines_truncated.clone();
    let bind_error = |e: std::io::Error| format!("cannot listen for syslog on {} ({:?}): {e}", spec.listen, spec.mode);
    let (reader, local_addr) = match spec.mode {
        Mode::Udp => {
            let socket = std::net::UdpSocket::bind(spec.listen).map_err(bind_error)?;
            socket.set_nonblocking(true).map_err(bind_error)?;
            let local = socket.local_addr().map_err(bind_error)?;
            let socket = tokio::net::UdpSocket::from_std(socket).map_err(bind_error)?;
            (tokio::spawn(read_udp(socket, tx, spec.max_message_bytes, cut, name)), local)
        }
        Mode::Tcp | Mode::Tls => {
            let listener = std::net::TcpListener::bind(spec.listen).map_err(bind_error)?;
            listener.set_nonblocking(true).map_err(bind_error)?;
            let local = listener.local_addr().map_err(bind_error)?;
            let listener = tokio::net::TcpListener::from_std(listener).map_err(bind_error)?;
            let tls = match &spec.tls {
                Some(files) => {
                    let reloader = crate::tls::TlsReloader::load(files, &[]).map_err(|e| e.to_string())?;
                    reloader.clone().watch();
                    Some(reloader)
                }
                None => None,
            };
            (tokio::spawn(accept(listener, tls, tx, spec.max_message_bytes, cut, name)), local)
        }
    };
    tracing::info!(pipeline = %port.name, address = %local_addr, mode = ?spec.mode, "listening for syslog");
    let writer = tokio::spawn(write(port, rx));
    Ok(Listening { tasks: vec![reader, writer] })
}

/// A message as its JSON record: parsed fields, or the raw text flagged `malformed`.
fn record(message: &[u8], from: SocketAddr) -> Vec<u8> {
    let text = String::from_utf8_lossy(message);
    let text = text.trim_end_matches(['\r', '\n']);
    let mut fields = match crate::process::parse::syslog::fields(text) {
        Ok(fields) => fields,
        Err(_) => {
            let mut raw = Map::new();
            raw.insert("message".into(), text.into());
            raw.insert("malformed".into(), true.into());
            raw
        }
    };
    fields.insert("source_ip".into(), from.ip().to_string().into());
    serde_json::to_vec(&Value::Object(fields)).unwrap_or_default()
}

/// Cuts `message` to `max` bytes, counting it in `truncated`.
fn capped(message: &[u8], max: usize, truncated: &mut u64) -> Vec<u8> {
    if message.len() > max {
        *truncated += 1;
        message[..max].to_vec()
    } else {
        message.to_vec()
    }
}

async fn read_udp(
    socket: tokio::net::UdpSocket,
    tx: mpsc::Sender<Vec<u8>>,
    max: usize,
    cut: metrics::Counter,
    name: String,
) {
    let mut buf = vec![0u8; 65_536];
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((n, from)) => {
                let mut truncated = 0;
                let message = capped(&buf[..n], max, &mut truncated);
                cut.increment(truncated);
                if tx.send(record(&message, from)).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!(pipeline = %name, error = %e, "syslog UDP receive failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn accept(
    listener: tokio::net::TcpListener,
    tls: Option<Arc<crate::tls::TlsReloader>>,
    tx: mpsc::Sender<Vec<u8>>,
    max: usize,
    cut: metrics::Counter,
    name: String,
) {
    loop {
        let (stream, from) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(pipeline = %name, error = %e, "cannot accept a syslog connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (tx, name, tls, cut) = (tx.clone(), name.clone(), tls.clone(), cut.clone());
        tokio::spawn(async move {
            match tls {
                Some(tls) => match tls.acceptor().accept(stream).await {
                    Ok(stream) => read_stream(stream, from, tx, max, cut, &name).await,
                    Err(e) => tracing::warn!(pipeline = %name, peer = %from, error = %e, "syslog TLS handshake failed"),
                },
                None => read_stream(stream, from, tx, max, cut, &name).await,
            }
        });
    }
}

/// Reads one connection's messages, framed by newlines or octet counts.
async fn read_stream<S: AsyncRead + Unpin>(
    mut stream: S,
    from: SocketAddr,
    tx: mpsc::Sender<Vec<u8>>,
    max: usize,
    cut: metrics::Counter,
    name: &str,
) {
    let mut framer = Framer::new(max);
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        let n = match stream.read(&mut chunk).await {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                tracing::debug!(pipeline = %name, peer = %from, error = %e, "syslog connection ended");
                break;
            }
        };
        let messages = framer.push(&chunk[..n]);
        cut.increment(std::mem::take(&mut framer.truncated));
        for message in messages {
            if tx.send(record(&message, from)).await.is_err() {
                return;
            }
        }
    }
    if let Some(last) = framer.finish() {
        let _ = tx.send(record(&last, from)).await;
    }
}

/// Splits a byte stream into messages: octet counting (`<digits> <message>`) when a message
/// starts with a digit, newline framing otherwise; messages over `max` are cut.
struct Framer {
    buf: Vec<u8>,
    max: usize,
    /// Bytes of an over-long message still to be skipped.
    skip: usize,
    /// Skipping the rest of an over-long newline-framed line.
    skip_line: bool,
    truncated: u64,
}

impl Framer {
    fn new(max: usize) -> Self {
        Self { buf: Vec::new(), max, skip: 0, skip_line: false, truncated: 0 }
    }

    fn push(&mut self, bytes: &[u8]) -> Vec<Vec<u8>> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        loop {
            if self.skip > 0 {
                let n = self.skip.min(self.buf.len());
                self.buf.drain(..n);
                self.skip -= n;
                if self.skip > 0 {
                    return out;
                }
            }
            if self.skip_line {
                match self.buf.iter().position(|&b| b == b'\n') {
                    Some(end) => {
                        self.buf.drain(..=end);
                        self.skip_line = false;
                    }
                    None => {
                        self.buf.clear();
                        return out;
                    }
                }
            }
            // Blank lines between messages carry nothing.
            let blank = self.buf.iter().take_while(|b| matches!(b, b'\n' | b'\r')).count();
            self.buf.drain(..blank);
            if self.buf.is_empty() {
                return out;
            }
            if self.buf[0].is_ascii_digit() {
                let Some(space) = self.buf.iter().take(10).position(|&b| b == b' ') else {
                    if self.buf.len() < 10 {
                        return out; // the length is still arriving
                    }
                    self.octets_refused(&mut out);
                    continue;
                };
                let Some(length) = std::str::from_utf8(&self.buf[..space]).ok().and_then(|t| t.parse::<usize>().ok())
                else {
                    self.octets_refused(&mut out);
                    continue;
                };
                if self.buf.len() < space + 1 + length.min(self.max) {
                    return out;
                }
                let keep = length.min(self.max);
                out.push(capped(
                    &self.buf[space + 1..space + 1 + length.min(self.buf.len() - space - 1)],
                    keep,
                    &mut self.truncated,
                ));
                let consumed = (space + 1 + length).min(self.buf.len());
                self.skip = space + 1 + length - consumed;
                self.buf.drain(..consumed);
                continue;
            }
            match self.buf.iter().position(|&b| b == b'\n') {
                Some(end) => {
                    out.push(capped(&self.buf[..end], self.max, &mut self.truncated));
                    self.buf.drain(..=end);
                }
                None if self.buf.len() > self.max => {
                    out.push(capped(&self.buf, self.max, &mut self.truncated));
                    self.buf.clear();
                    self.skip_line = true;
                }
                None => return out,
            }
        }
    }

    /// A message that starts with a digit but has no valid length: it is taken as a line.
    fn octets_refused(&mut self, out: &mut Vec<Vec<u8>>) {
        let end = self.buf.iter().position(|&b| b == b'\n').unwrap_or(self.buf.len());
        out.push(capped(&self.buf[..end], self.max, &mut self.truncated));
        self.buf.drain(..(end + 1).min(self.buf.len()));
    }

    /// What is left when the connection closes: the last message if it had no newline.
    fn finish(self) -> Option<Vec<u8>> {
        (!self.buf.is_empty() && self.skip == 0 && !self.skip_line)
            .then(|| self.buf[..self.buf.len().min(self.max)].to_vec())
    }
}

/// Writes queued records into the WAL in batches, waiting while storage is full.
async fn write(port: OwnedPort, mut rx: mpsc::Receiver<Vec<u8>>) {
    let mut records = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut records, BATCH).await > 0 {
        if !port.write_waiting(&records).await {
            return;
        }
        records.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(max: usize, chunks: &[&[u8]]) -> Vec<String> {
        let mut framer = Framer::new(max);
        let mut out: Vec<String> = Vec::new();
        for chunk in chunks {
            out.extend(framer.push(chunk).iter().map(|m| String::from_utf8_lossy(m).into_owned()));
        }
        out.extend(framer.finish().map(|m| String::from_utf8_lossy(&m).into_owned()));
        out
    }

    #[test]
    fn newline_and_octet_counted_messages_split_across_reads() {
        assert_eq!(
            frames(100, &[b"<13>one\n<1", b"3>two\n9 <13>th", b"ree8 <13>four\n<13>five"]),
            ["<13>one", "<13>two", "<13>three", "<13>four", "<13>five"]
        );
    }

    #[test]
    fn over_long_messages_are_cut_and_the_rest_skipped() {
        assert_eq!(frames(5, &[b"<13>abcdefgh\n<13>x\n"]), ["<13>a", "<13>x"]);
        assert_eq!(frames(5, &[b"10 <13>abcdef", b"<13>y\n"]), ["<13>a", "<13>y"]);
    }

    #[test]
    fn records_carry_parsed_fields_or_the_raw_text_flagged() {
        let from: SocketAddr = "10.0.0.9:514".parse().unwrap();
        let ok: Value = serde_json::from_slice(&record(b"<13>Dec  6 10:00:00 h app[7]: hi\n", from)).unwrap();
        assert_eq!(
            (ok["app"].as_str(), ok["message"].as_str(), ok["source_ip"].as_str()),
            (Some("app"), Some("hi"), Some("10.0.0.9"))
        );
        let bad: Value = serde_json::from_slice(&record(b"no header here", from)).unwrap();
        assert_eq!((bad["message"].as_str(), bad["malformed"].as_bool()), (Some("no header here"), Some(true)));
    }
}
