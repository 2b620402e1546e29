//! The binary's standard streams: stdout that outlives its reader, and stderr as `tracing`
//! events when the logs are JSON. Only `main` uses these; tests and GraphQL mutations hand
//! commands plain buffers.

use std::io::{self, ErrorKind, Write};

/// Standard output where a reader that has gone away (`holdgraph query --etf spy | head -3`)
/// is not an error: what follows is dropped, as if written to `/dev/null`, and the command
/// ends as it would have, with its own exit code and nothing on stderr.
///
/// Rust ignores `SIGPIPE`, so a write to a closed pipe fails with `BrokenPipe` instead of
/// killing the process. Restoring the signal would need `unsafe` (forbidden here) and would
/// end the process with status 141, not 0; looking for `BrokenPipe` in a command's error chain
/// misses errors that `serde_json` wraps and could mistake a database socket's for stdout's.
/// Catching it where stdout is written is exact, and by the time a command prints, its work
/// is done (a load has committed), so nothing is lost by finishing it.
#[derive(Debug)]
pub struct Stdout {
    inner: io::Stdout,
    reader_gone: bool,
}

impl Stdout {
    /// The process's standard output.
    pub fn new() -> Self {
        Self {
            inner: io::stdout(),
            reader_gone: false,
        }
    }

    fn closed<T>(&mut self, result: io::Result<T>, or: T) -> io::Result<T> {
        match result {
            Err(e) if e.kind() == ErrorKind::BrokenPipe => {
                self.reader_gone = true;
                Ok(or)
            }
            other => other,
        }
    }
}

impl Default for Stdout {
    fn default() -> Self {
        Self::new()
    }
}

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.reader_gone {
            return Ok(buf.len());
        }
        let written = self.inner.write(buf);
        self.closed(written, buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.reader_gone {
            return Ok(());
        }
        let flushed = self.inner.flush();
        self.closed(flushed, ())
    }
}

/// Standard error for JSON logs: every line a command writes there (a rejected file, an
/// unknown name, the error that stopped it) becomes one `error` event, so plain text never
/// breaks the stream of JSON objects.
#[derive(Debug, Default)]
pub struct ErrorEvents {
    pending: Vec<u8>,
}

impl ErrorEvents {
    fn emit(line: &[u8]) {
        let line = String::from_utf8_lossy(line);
        let line = line.trim_end();
        // Problems are written as `error: ...` for people; the event's level says it already.
        let message = line.strip_prefix("error: ").unwrap_or(line);
        if !message.is_empty() {
            tracing::error!("{message}");
        }
    }
}

impl Write for ErrorEvents {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(buf);
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            Self::emit(&line);
        }
        Ok(buf.len())
    }

    /// Lines are events only once they end: a flush mid-line does not split one in two.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for ErrorEvents {
    fn drop(&mut self) {
        Self::emit(&std::mem::take(&mut self.pending));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A log destination the test reads back.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().expect("buffer").extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// What `write` produces as JSON log lines.
    fn logged(write: impl FnOnce(&mut ErrorEvents)) -> Vec<serde_json::Value> {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let mut events = ErrorEvents::default();
            write(&mut events);
        });
        let text = String::from_utf8(captured.0.lock().expect("buffer").clone()).expect("utf-8");
        text.lines()
            .map(|line| serde_json::from_str(line).expect("a JSON event"))
            .collect()
    }

    #[test]
    fn each_line_written_to_stderr_becomes_one_error_event() {
        let events = logged(|err| {
            write!(err, "error: no ETF spy ").expect("write");
            write!(err, "in environment DEFAULT\nsecond").expect("write");
            err.flush().expect("flush");
            write!(err, " line, unfinished").expect("write");
        });
        let messages: Vec<&str> = events
            .iter()
            .map(|e| e["fields"]["message"].as_str().expect("message"))
            .collect();
        assert_eq!(
            messages,
            [
                "no ETF spy in environment DEFAULT",
                "second line, unfinished"
            ]
        );
        assert!(events.iter().all(|e| e["level"] == "ERROR"), "{events:?}");
    }
}
