//! Console output: progress lines, warnings, debug detail by verbosity, and machine-readable results.

use std::io::{IsTerminal, Write};

use serde::Serialize;

/// The `-o` output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Text,
    Json,
    Yaml,
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

    /// A progress line such as `[certs] Generating "ca" certificate and key`.
    pub fn line(&self, text: impl AsRef<str>) {
        if self.format == Format::Text {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{}", text.as_ref());
        } else {
            eprintln!("{}", text.as_ref());
        }
    }

    /// A warning; always on stderr.
    pub fn warn(&self, text: impl AsRef<str>) {
        eprintln!("W: {}", text.as_ref());
    }

    /// Detail shown at `-v level` and above; always on stderr.
    pub fn debug(&self, level: u8, text: impl AsRef<str>) {
        if self.verbosity >= level {
            eprintln!("I{level}: {}", text.as_ref());
        }
    }

    /// Prints a command's result: `text` in text mode, else the value as JSON or YAML on stdout.
    pub fn result<T: Serialize>(
        &self,
        value: &T,
        text: impl FnOnce() -> String,
    ) -> anyhow::Result<()> {
        let rendered = match self.format {
            Format::Text => text(),
            Format::Json => serde_json::to_string_pretty(value)? + "\n",
            Format::Yaml => crate::yaml::to_string(value)?,
        };
        let mut out = std::io::stdout().lock();
        out.write_all(rendered.as_bytes())?;
        out.flush()?;
        Ok(())
    }

    /// True when progress bars and prompts make sense: stderr is a terminal and not `--quiet`.
    pub fn interactive(&self) -> bool {
        !self.quiet && std::io::stderr().is_terminal()
    }
}
