//! Streams between the machine and a node: a command with the caller's stdin, stdout and stderr
//! (its exit code returned), and file copies in both directions. Copies go through `docker exec`,
//! not `docker cp`, because `docker cp` cannot see what the node mounted itself (the overlay over
//! /usr, the tmpfs on /run).

use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use anyhow::{Context, Result, anyhow, bail};

use super::cluster::Node;
use super::docker::docker;

/// Writes stdin to the destination, as `cp FILE DST` would: into DST when it is a directory (or
/// ends in `/`), else as DST; through a temporary name, then renamed. Prints the final path.
/// Arguments: destination, the source's file name, octal mode.
const RECEIVE: &str = r#"set -e
dst=$1
case "$dst" in
  */) [ -d "$dst" ] || { echo "$dst: no such directory" >&2; exit 1; }; dst="$dst$2" ;;
  *) if [ -d "$dst" ]; then dst="$dst/$2"; fi ;;
esac
tmp="$dst.kubestrap-testbed-tmp"
cat > "$tmp"
chmod "$3" "$tmp"
mv -f "$tmp" "$dst"
printf '%s\n' "$dst""#;

/// A process's exit status as a shell reports it: the code, or 128 + the signal that ended it.
pub fn exit_code(status: ExitStatus) -> i32 {
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}

impl Node {
    /// Runs a command on the node with this process's stdin, stdout and stderr (a terminal when
    /// `tty`); returns its exit code (126/127 when it cannot be run, as a shell's).
    pub fn exec_attached(&self, argv: &[String], tty: bool) -> Result<i32> {
        let mut cmd = Command::new("docker");
        cmd.args(["exec", "-i"]);
        if tty {
            cmd.arg("-t");
        }
        cmd.arg(&self.container).args(argv);
        let status = cmd
            .status()
            .context("run the docker CLI (is it installed?)")?;
        Ok(exit_code(status))
    }

    /// Copies a local file to the node (mode kept); returns the path it was written to.
    pub fn copy_to(&self, local: &Path, remote: &str) -> Result<String> {
        let mut file = File::open(local).with_context(|| format!("open {}", local.display()))?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            bail!(
                "{} is not a regular file: cp copies files (for a directory, stream a tar archive through exec)",
                local.display()
            );
        }
        let base = local
            .file_name()
            .ok_or_else(|| anyhow!("{} has no file name", local.display()))?
            .to_string_lossy()
            .into_owned();
        let mode = format!("{:o}", meta.permissions().mode() & 0o7777);
        let mut child = Command::new("docker")
            .args(["exec", "-i", &self.container, "sh", "-c", RECEIVE, "sh"])
            .args([remote, &base, &mode])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("run the docker CLI (is it installed?)")?;
        let mut stdin = child
            .stdin
            .take()
            .ok_or_else(|| anyhow!("docker exec's stdin is not available"))?;
        let copied = std::io::copy(&mut file, &mut stdin);
        drop(stdin);
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!(
                "copy {} to {}:{remote}: {}",
                local.display(),
                self.name,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        copied.with_context(|| format!("send {} to {}", local.display(), self.name))?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Copies a file of the node to the machine (mode kept): into `local` when it is a directory
    /// (or ends in `/`), else as `local`. Returns the path written.
    pub fn copy_from(&self, remote: &str, local: &Path) -> Result<PathBuf> {
        let stat = docker(
            &[
                "exec",
                &self.container,
                "stat",
                "-L",
                "-c",
                "%a %F",
                "--",
                remote,
            ],
            None,
        )?;
        if !stat.ok() {
            bail!(
                "copy {}:{remote}: {}",
                self.name,
                stat.stderr.trim().trim_start_matches("stat: ")
            );
        }
        let (mode, kind) = stat
            .stdout
            .trim()
            .split_once(' ')
            .ok_or_else(|| anyhow!("unexpected stat output {:?}", stat.stdout))?;
        if !kind.starts_with("regular") {
            bail!(
                "{}:{remote} is a {kind}: cp copies files (for a directory, stream a tar archive through exec)",
                self.name
            );
        }
        let mode = u32::from_str_radix(mode, 8).with_context(|| format!("mode {mode:?}"))?;
        let base = Path::new(remote)
            .file_name()
            .ok_or_else(|| anyhow!("{remote} has no file name"))?;
        let names_dir = local.to_string_lossy().ends_with('/');
        let target = if local.is_dir() {
            local.join(base)
        } else if names_dir {
            bail!("{}: no such directory", local.display());
        } else {
            local.to_path_buf()
        };
        let mut tmp_name = target.as_os_str().to_owned();
        tmp_name.push(".kubestrap-testbed-tmp");
        let tmp = PathBuf::from(tmp_name);
        let file = File::create(&tmp).with_context(|| format!("create {}", tmp.display()))?;
        let out = Command::new("docker")
            .args(["exec", &self.container, "cat", "--", remote])
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(Stdio::piped())
            .output()
            .context("run the docker CLI (is it installed?)")?;
        if !out.status.success() {
            let _ = std::fs::remove_file(&tmp);
            bail!(
                "copy {}:{remote}: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))?;
        std::fs::rename(&tmp, &target)
            .with_context(|| format!("rename {} to {}", tmp.display(), target.display()))?;
        Ok(target)
    }
}
