//! `FreeDisk-…`: free space on the file system that holds (or will hold) a state directory.

use std::path::PathBuf;

use anyhow::Context;

use super::super::Outcome;
use super::super::context::Probe;
use crate::host::paths::NodePath;

const MB: u64 = 1024 * 1024;

/// The directory itself, or its nearest existing ancestor (where it will be created).
fn nearest_existing(mut disk: PathBuf) -> PathBuf {
    while !disk.exists() {
        if !disk.pop() {
            return PathBuf::from("/");
        }
    }
    disk
}

fn human(bytes: u64) -> String {
    let gb = bytes as f64 / (1024.0 * 1024.0 * 1024.0);
    if gb >= 1.0 {
        format!("{gb:.1} GB")
    } else {
        format!("{} MB", bytes / MB)
    }
}

pub fn free_space(
    probe: &Probe,
    path: &NodePath,
    min_free_percent: u8,
    min_free_mb: u64,
) -> anyhow::Result<Outcome> {
    let target = nearest_existing(probe.host.disk(path));
    let stat = nix::sys::statvfs::statvfs(&target)
        .with_context(|| format!("statvfs {}", target.display()))?;
    let block = stat.fragment_size() as u64;
    let total = stat.blocks() as u64 * block;
    let free = stat.blocks_available() as u64 * block;
    if total == 0 {
        return Ok(Outcome::Skip(format!(
            "the file system of {path} reports no size"
        )));
    }
    let percent = free * 100 / total;
    let summary = format!(
        "{} free of {} ({percent}%) on the file system of {path}",
        human(free),
        human(total)
    );
    Ok(
        if percent < u64::from(min_free_percent) || free < min_free_mb * MB {
            Outcome::Fail(format!(
                "only {summary}; at least {min_free_percent}% and {} are needed",
                human(min_free_mb * MB)
            ))
        } else {
            Outcome::Pass(summary)
        },
    )
}
