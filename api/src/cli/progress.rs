//! Progress on stderr: a bar on a terminal, plain lines otherwise, `tracing` events when the
//! logs are JSON, nothing in tests.

use std::io::{IsTerminal, Write as _};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle as BarStyle};
use loader::Progress;

/// How a command shows its progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressStyle {
    /// An indicatif bar (stderr is a terminal).
    Bar,
    /// One line per file on stderr.
    Lines,
    /// Nothing.
    Quiet,
    /// `info` events, as are the command's notices (see [`super::Io::notice`]): the logs are
    /// JSON, and plain lines among them would break the stream.
    Log,
}

impl ProgressStyle {
    /// A bar when stderr is a terminal, plain lines otherwise.
    pub fn detect() -> Self {
        if std::io::stderr().is_terminal() {
            Self::Bar
        } else {
            Self::Lines
        }
    }

    /// A progress reporter of this style.
    pub fn start(self) -> Box<dyn Progress> {
        match self {
            Self::Bar => Box::new(Bar(ProgressBar::with_draw_target(
                None,
                ProgressDrawTarget::stderr(),
            ))),
            Self::Lines => Box::new(Lines),
            Self::Quiet => Box::new(loader::Quiet),
            Self::Log => Box::new(Log),
        }
    }
}

struct Bar(ProgressBar);

impl Progress for Bar {
    fn begin(&self, files: usize) {
        self.0.set_length(files as u64);
        if let Ok(style) = BarStyle::with_template("{bar:30} {pos}/{len} files {msg}") {
            self.0.set_style(style);
        }
    }

    fn file(&self, file_name: &str) {
        self.0.set_message(file_name.to_owned());
        self.0.inc(1);
    }

    fn end(&self) {
        self.0.finish_and_clear();
    }
}

struct Lines;

impl Progress for Lines {
    fn file(&self, file_name: &str) {
        // Not `eprintln!`, which panics when stderr is a pipe nobody reads any more.
        let _ = writeln!(std::io::stderr(), "reading {file_name}");
    }
}

struct Log;

impl Progress for Log {
    fn begin(&self, files: usize) {
        tracing::info!(files, "reading files");
    }

    fn file(&self, file_name: &str) {
        tracing::info!(file = file_name, "reading");
    }
}
