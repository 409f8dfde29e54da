//! Console output: progress lines, warnings, debug detail by verbosity, machine-readable results, and
//! the one rule for a closed standard output (`kubestrap … | head -1`): the command stops quietly.

use std::io::{IsTerminal, Write};

use serde::Serialize;

/// The `-o` output format. `short` is `kubestrap version`'s alone (the version string only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Text,
    Json,
    Yaml,
    Short,
}

impl Format {
    /// The name as typed after `-o`.
    pub fn name(&self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Json => "json",
            Format::Yaml => "yaml",
            Format::Short => "short",
        }
    }

    /// JSON or YAML: stdout carries one parseable document and nothing else.
    pub fn is_document(&self) -> bool {
        matches!(self, Format::Json | Format::Yaml)
    }
}

/// Standard output was closed by its reader (`kubestrap completion bash | head -5`). Not a failure:
/// the binary exits 0 without a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("standard output is closed")]
pub struct StdoutClosed;

/// True when the error (or one of its causes) is a closed standard output. Only [`print`] says so: a
/// broken pipe to anything else (a socket, a child process) is a failure like any other.
pub fn is_stdout_closed(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| cause.is::<StdoutClosed>())
}

/// Writes a command's output to stdout. A closed stdout is [`StdoutClosed`]; any other failure to
/// write is an error naming stdout.
pub fn print(text: impl AsRef<[u8]>) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_ref())
        .and_then(|()| out.flush())
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                anyhow::Error::new(StdoutClosed)
            } else {
                anyhow::Error::new(e).context("writing to standard output")
            }
        })
}

/// One line on stderr. A closed stderr is ignored: there is nowhere left to say anything.
pub fn print_error_line(text: impl AsRef<str>) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{}", text.as_ref());
}

/// How the command talks to the user. Cheap to clone.
///
/// Progress lines go to stdout in text mode (as kubeadm prints them) and to stderr when a
/// machine-readable result is requested, so stdout stays parseable.
#[derive(Debug, Clone, Default)]
pub struct Ui {
    pub verbosity: u8,
    pub quiet: bool,
    pub format: Format,
}

impl Ui {
    pub fn new(verbosity: u8, quiet: bool, format: Format) -> Self {
        Self {
            verbosity,
            quiet,
            format,
        }
    }

    /// A progress line such as `[certs] Generating "ca" certificate and key`. A command that changes
    /// the node finishes its work when the reader of its progress goes away, so a closed stdout is
    /// ignored here.
    pub fn line(&self, text: impl AsRef<str>) {
        if self.format.is_document() {
            print_error_line(text);
        } else {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{}", text.as_ref());
        }
    }

    /// A line for the user that is neither progress nor a warning (what an input edit changed);
    /// always on stderr.
    pub fn note(&self, text: impl AsRef<str>) {
        print_error_line(text);
    }

    /// A warning; always on stderr.
    pub fn warn(&self, text: impl AsRef<str>) {
        print_error_line(format!("W: {}", text.as_ref()));
    }

    /// Detail shown at `-v level` and above; always on stderr.
    pub fn debug(&self, level: u8, text: impl AsRef<str>) {
        if self.verbosity >= level {
            print_error_line(format!("I{level}: {}", text.as_ref()));
        }
    }

    /// Prints a command's result: `text` in text mode, else the value as JSON or YAML on stdout.
    pub fn result<T: Serialize>(
        &self,
        value: &T,
        text: impl FnOnce() -> String,
    ) -> anyhow::Result<()> {
        let rendered = match self.format {
            Format::Text | Format::Short => text(),
            Format::Json => serde_json::to_string_pretty(value)? + "\n",
            Format::Yaml => crate::yaml::to_string(value)?,
        };
        print(rendered)
    }

    /// True when progress bars and prompts make sense: stderr is a terminal and not `--quiet`.
    pub fn interactive(&self) -> bool {
        !self.quiet && std::io::stderr().is_terminal()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_closed_stdout_is_a_quiet_exit() {
        let closed = anyhow::Error::new(StdoutClosed).context("error execution phase preflight");
        assert!(is_stdout_closed(&closed));
        let socket = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        assert!(!is_stdout_closed(
            &anyhow::Error::new(socket).context("talking to etcd")
        ));
    }
}
