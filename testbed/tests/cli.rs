//! `kubestrap-testbed`, the testbed's command line, through the built binary: tests/cli.sh drives it
//! as an admin would, and a command-line cluster stays intact while a test run's cluster starts
//! (sweeping crashed runs' leftovers) and tears down beside it.

use std::path::Path;
use std::process::{Command, Output};

use anyhow::{Context, Result, bail, ensure};
use kubestrap_testbed::driver::docker::{EngineLock, docker};
use kubestrap_testbed::driver::{Cluster, ClusterSpec};

const CLI: &str = env!("CARGO_BIN_EXE_kubestrap-testbed");

/// Runs the command line with a private state directory.
fn cli(state: &Path, args: &[&str]) -> Result<Output> {
    Command::new(CLI)
        .args(args)
        .env("KUBESTRAP_TESTBED_STATE", state)
        .output()
        .context("run kubestrap-testbed")
}

fn check(out: Output, what: &str) -> Result<String> {
    if !out.status.success() {
        bail!(
            "{what} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Removes every cluster of the test's state directory, however the test ends.
struct DownAll<'a>(&'a Path);

impl Drop for DownAll<'_> {
    fn drop(&mut self) {
        let _ = cli(self.0, &["down", "--all"]);
    }
}

#[test]
fn the_command_line_drives_nodes_as_an_admin_would() -> Result<()> {
    let _engine = EngineLock::acquire()?;
    let state = tempfile::tempdir()?;
    let _down = DownAll(state.path());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cli.sh");
    let status = Command::new("bash")
        .arg(&script)
        .env("TESTBED_CLI", CLI)
        .env("KUBESTRAP_TESTBED_STATE", state.path())
        .status()
        .context("run tests/cli.sh")?;
    ensure!(
        status.success(),
        "tests/cli.sh failed ({status}): see its output above"
    );
    Ok(())
}

/// The container's id and start time: unchanged means it was neither recreated nor restarted.
fn identity(container: &str) -> Result<String> {
    Ok(docker(
        &[
            "inspect",
            "-f",
            "{{.Id}} {{.State.StartedAt}} {{.State.Status}}",
            container,
        ],
        None,
    )?
    .check("inspect the CLI node")?
    .stdout)
}

#[test]
fn a_cli_cluster_survives_a_test_run_beside_it() -> Result<()> {
    let engine = EngineLock::acquire()?;
    let state = tempfile::tempdir()?;
    let _down = DownAll(state.path());
    let name = format!("beside-{}", std::process::id());
    let up = check(
        cli(state.path(), &["--name", &name, "up", "--nodes", "1"])?,
        "up",
    )?;
    let cli_ip = up
        .lines()
        .find_map(|l| l.strip_prefix("node1"))
        .map(str::trim)
        .context("up printed no node1")?
        .to_string();
    ensure!(cli_ip.starts_with("10.214."), "CLI node at {cli_ip}");
    let node = format!("{name}/node1");
    check(
        cli(
            state.path(),
            &["exec", &node, "--", "sh", "-c", "echo kept > /root/marker"],
        )?,
        "exec",
    )?;
    let container = format!("kubestrap-testbed-cli-{name}-node1");
    let before = identity(&container)?;

    // What a crashed test run leaves: a network with the test-run label, for the next run to sweep.
    let crashed = format!("kubestrap-testbed-tbcrashed{}", std::process::id());
    docker(
        &[
            "network",
            "create",
            "--label",
            &format!("io.kubestrap.testbed=tbcrashed{}", std::process::id()),
            &crashed,
        ],
        None,
    )?
    .check("create a crashed run's network")?;

    let run = Cluster::start_holding(
        engine.clone(),
        &kubestrap_testbed::binaries!(),
        &ClusterSpec::nodes(1),
    )?;
    ensure!(
        !docker(&["network", "inspect", &crashed], None)?.ok(),
        "the test run's start did not sweep the crashed run's network"
    );
    ensure!(
        run.subnet.starts_with("10.213.") && run.network != format!("kubestrap-testbed-cli-{name}"),
        "the test run's network {} ({}) is not its own",
        run.network,
        run.subnet
    );
    let hostname = run.node("node1")?.exec(&["cat", "/etc/hostname"])?;
    ensure!(hostname.stdout.trim() == "node1", "{hostname:?}");
    run.teardown()?;

    // The command-line cluster is as it was: the same container, never restarted, its file, its
    // address, and the status command still sees it running.
    ensure!(
        identity(&container)? == before,
        "the CLI node changed: {before} → {}",
        identity(&container)?
    );
    let marker = check(
        cli(state.path(), &["exec", &node, "--", "cat", "/root/marker"])?,
        "exec cat",
    )?;
    ensure!(marker.trim() == "kept", "marker: {marker:?}");
    let status = check(cli(state.path(), &["--name", &name, "status"])?, "status")?;
    let line = status
        .lines()
        .find(|l| l.starts_with("node1"))
        .context("no node1 in status")?;
    ensure!(
        line.contains(&cli_ip) && line.contains("running") && !line.contains("partitioned"),
        "{status}"
    );
    let down = check(cli(state.path(), &["--name", &name, "down"])?, "down")?;
    ensure!(down.contains("nothing of it is left"), "{down}");
    Ok(())
}
