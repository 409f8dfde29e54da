//! The systemd unit init installs for the discovery endpoint (`kubestrap-discovery.service`, cluster
//! mode), and the binary it runs: the installed kubestrap, never one in a temporary location.

use std::path::{Path, PathBuf};

use crate::error::Refused;
use crate::host::Root;

/// The unit's name.
pub const UNIT: &str = "kubestrap-discovery.service";
/// Where init writes it (under `--root`).
pub const UNIT_PATH: &str = "/etc/systemd/system/kubestrap-discovery.service";

/// The unit file: `kubestrap discovery serve` in cluster mode on `port`, restarted when it exits,
/// logging to the journal. With a `--root` other than `/` the server reads the node under it too.
pub fn render(binary: &Path, port: u16, root: &Root) -> String {
    let mut exec = format!("{} discovery serve --port {port}", binary.display());
    if !root.is_real_root() {
        exec = format!(
            "{} --root {} discovery serve --port {port}",
            binary.display(),
            root.dir().display()
        );
    }
    format!(
        "# Written by kubestrap init (phase discovery); removed by 'kubestrap reset'.\n\
         [Unit]\n\
         Description=kubestrap token-signed discovery endpoint (cluster-info for joining nodes)\n\
         After=network-online.target kubelet.service\n\
         Wants=network-online.target\n\
         \n\
         [Service]\n\
         ExecStart={exec}\n\
         Restart=always\n\
         RestartSec=5\n\
         StandardOutput=journal\n\
         StandardError=journal\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n"
    )
}

/// The running kubestrap binary, which the unit runs; refused (exit 2) when it lies in a temporary
/// location a unit must not depend on.
pub fn installed_binary() -> Result<PathBuf, Refused> {
    let exe = std::env::current_exe().map_err(|e| {
        Refused(format!(
            "the discovery endpoint's unit runs this kubestrap binary, but its path is unknown ({e}); \
             install kubestrap (e.g. as /usr/local/bin/kubestrap) and run that, or pass --discovery-port 0"
        ))
    })?;
    match temporary_reason(&exe, &std::env::temp_dir()) {
        None => Ok(exe),
        Some(why) => Err(Refused(format!(
            "the kubestrap binary {} {why}: the {UNIT} unit would run it from there. Install kubestrap \
             (e.g. as /usr/local/bin/kubestrap) and run that, or leave the discovery endpoint out with \
             --discovery-port 0 (or --skip-phases discovery)",
            exe.display()
        ))),
    }
}

/// Why `exe` is in a temporary location, if it is: deleted, under a temporary directory (`/tmp`,
/// `/var/tmp`, `/dev/shm`, `$TMPDIR`), or inside a cache directory such as a cargo target directory
/// (a `CACHEDIR.TAG` in one of its parents).
pub fn temporary_reason(exe: &Path, temp_dir: &Path) -> Option<String> {
    let text = exe.display().to_string();
    if text.ends_with(" (deleted)") {
        return Some("has been deleted since it started".to_string());
    }
    let cache = exe
        .ancestors()
        .skip(1)
        .find(|dir| dir.join("CACHEDIR.TAG").is_file());
    if let Some(dir) = cache {
        return Some(format!(
            "runs from a build or cache directory ({} holds a CACHEDIR.TAG, as a cargo target directory does)",
            dir.display()
        ));
    }
    let temporary = [
        Path::new("/tmp"),
        Path::new("/var/tmp"),
        Path::new("/dev/shm"),
        temp_dir,
    ];
    temporary
        .iter()
        .find(|dir| dir.components().count() > 1 && exe.starts_with(dir))
        .map(|dir| format!("runs from the temporary directory {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_locations_are_named_and_installed_ones_pass() {
        let none = Path::new("/nonexistent-temp");
        assert_eq!(
            temporary_reason(Path::new("/usr/local/bin/kubestrap"), none),
            None
        );
        assert_eq!(
            temporary_reason(Path::new("/opt/testbed/bin/kubestrap"), none),
            None
        );
        for exe in [
            "/tmp/kubestrap",
            "/var/tmp/x/kubestrap",
            "/dev/shm/kubestrap",
        ] {
            let why = temporary_reason(Path::new(exe), none).unwrap();
            assert!(why.contains("temporary directory"), "{exe}: {why}");
        }
        assert!(
            temporary_reason(Path::new("/scratch/me/kubestrap"), Path::new("/scratch/me"))
                .is_some()
        );
        assert!(
            temporary_reason(Path::new("/usr/bin/kubestrap (deleted)"), none)
                .unwrap()
                .contains("deleted")
        );
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::create_dir_all(target.join("release")).unwrap();
        std::fs::write(
            target.join("CACHEDIR.TAG"),
            "Signature: 8a477f597d28d172789f06886806bc55\n",
        )
        .unwrap();
        let why = temporary_reason(&target.join("release/kubestrap"), none).unwrap();
        assert!(why.contains("CACHEDIR.TAG"), "{why}");
    }

    #[test]
    fn the_unit_runs_cluster_mode_on_the_port_and_names_a_root() {
        let unit = render(Path::new("/usr/local/bin/kubestrap"), 9898, &Root::new("/"));
        assert!(
            unit.contains("\nExecStart=/usr/local/bin/kubestrap discovery serve --port 9898\n"),
            "{unit}"
        );
        assert!(unit.contains("WantedBy=multi-user.target"));
        let rooted = render(
            Path::new("/usr/bin/kubestrap"),
            9000,
            &Root::new("/srv/node"),
        );
        assert!(
            rooted.contains(
                "ExecStart=/usr/bin/kubestrap --root /srv/node discovery serve --port 9000"
            ),
            "{rooted}"
        );
    }
}
