//! `down`: removes a cluster (or every cluster of the state directory) — containers, volumes,
//! network and its state directory — and checks that nothing of it is left, as a test run's
//! teardown does.

use super::Context;
use super::clusters::{self, require_engine};
use super::error::{CliResult, failed, usage};
use super::state::StateRoot;

pub fn run(ctx: &Context, all: bool) -> CliResult<i32> {
    if all && ctx.name.is_some() {
        return Err(usage("down: give --name or --all, not both"));
    }
    require_engine()?;
    let root = ctx.state()?;
    // What to remove is settled before the lock (which writes the state directory's lock file),
    // so naming an unknown cluster writes nothing.
    let names: Vec<String> = if all {
        let (mine, _) = clusters::list(&root)?;
        let mut names: Vec<String> = mine.into_iter().map(|p| p.name).collect();
        names.extend(root.cluster_dirs()?);
        names.sort();
        names.dedup();
        if names.is_empty() {
            eprintln!("no testbed clusters in {}", root.path().display());
            return Ok(0);
        }
        names
    } else {
        let name = ctx.cluster_name();
        if clusters::find(&root, name)?.is_none() && !root.cluster_dir(name).exists() {
            return Err(clusters::unknown_cluster(&root, name));
        }
        vec![name.to_string()]
    };
    let _lock = root.lock()?;
    let mut failures = Vec::new();
    for name in &names {
        match remove(&root, name) {
            Ok(report) => println!("{report}"),
            Err(e) if names.len() == 1 => return Err(e),
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    if failures.is_empty() {
        Ok(0)
    } else {
        Err(failed(failures.join("\n")))
    }
}

/// Removes one cluster (whatever is left of it) and says what went.
fn remove(root: &StateRoot, name: &str) -> CliResult<String> {
    let found = clusters::find(root, name)?;
    let dir = root.cluster_dir(name);
    let removed = match found {
        Some(found) => {
            let torn = found.attach().teardown()?;
            format!(
                "{} container(s), {} network(s), {} volume(s)",
                torn.containers, torn.networks, torn.volumes
            )
        }
        None => "nothing on the Docker engine".to_string(),
    };
    root.remove(name)?;
    Ok(format!(
        "cluster {name:?} removed: {removed} and {}; nothing of it is left",
        dir.display()
    ))
}
