//! Running the host's own tools (ip, iptables-save/-restore, nft, ipset, ipvsadm, conntrack, systemctl) with their output captured.

use std::io::Write;
use std::process::{Command, Stdio};

/// What a finished tool printed and how it exited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolOutput {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl ToolOutput {
    /// The tool's own words about a failure: the last non-empty stderr line (else stdout), without the tool's prefix.
    pub fn complaint(&self) -> String {
        let text = if self.stderr.trim().is_empty() {
            &self.stdout
        } else {
            &self.stderr
        };
        text.lines()
            .rev()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("no message")
            .to_string()
    }
}

/// Why a tool could not be run at all.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("{program} is not installed (not found on PATH)")]
    Missing { program: String },
    #[error("running {program}: {source}")]
    Io {
        program: String,
        source: std::io::Error,
    },
}

/// Runs `program args…`, optionally feeding `stdin`, and captures its output. A non-zero exit is not an error here.
pub fn run(program: &str, args: &[&str], stdin: Option<&str>) -> Result<ToolOutput, ToolError> {
    let io = |source| ToolError::Io {
        program: program.to_string(),
        source,
    };
    let mut child = match Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ToolError::Missing {
                program: program.to_string(),
            });
        }
        Err(e) => return Err(io(e)),
    };
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes()).map_err(io)?;
    }
    let out = child.wait_with_output().map_err(io)?;
    Ok(ToolOutput {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// Runs a tool that must succeed; a failure carries the command line and the tool's complaint.
pub fn run_ok(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = run(program, args, None)?;
    if !out.success {
        anyhow::bail!("{program} {} failed: {}", args.join(" "), out.complaint());
    }
    Ok(out.stdout)
}

/// True when `program` can be found on PATH.
pub fn available(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| {
            let candidate = dir.join(program);
            candidate.is_file()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_output_exit_and_stdin() {
        let out = run("sh", &["-c", "cat; echo oops >&2; exit 3"], Some("hello")).unwrap();
        assert!(!out.success);
        assert_eq!(out.stdout, "hello");
        assert_eq!(out.complaint(), "oops");
        assert!(matches!(
            run("kubestrap-no-such-tool", &[], None),
            Err(ToolError::Missing { .. })
        ));
        assert!(available("sh"));
        assert!(!available("kubestrap-no-such-tool"));
        assert!(
            run_ok("false", &[])
                .unwrap_err()
                .to_string()
                .contains("false")
        );
    }
}
