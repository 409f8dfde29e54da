//! `cleanup-node/mounts`: unmounts everything under the kubelet dir (resolved through symlinks once, at
//! the top), deepest first, with lazy detach as the fallback. A mount that will not go protects its
//! subtree from the files phase.

use std::collections::BTreeSet;
use std::path::PathBuf;

use nix::mount::MntFlags;

use super::ResetData;
use crate::host::inventory::{Found, Item, Kind, Outcome, Owner};
use crate::host::mounts::{self, UnmountPolicy};
use crate::host::{NodePath, well_known};
use crate::workflow::Phase;

pub fn phase() -> Phase<ResetData> {
    Phase::leaf(
        "mounts",
        "Unmount everything under the kubelet directory",
        run,
    )
}

/// Extra `umount2` flags from the ResetConfiguration's `unmountFlags`.
pub fn unmount_flags(names: &[String]) -> MntFlags {
    names.iter().fold(MntFlags::empty(), |flags, name| {
        flags
            | match name.as_str() {
                "MNT_FORCE" => MntFlags::MNT_FORCE,
                "MNT_DETACH" => MntFlags::MNT_DETACH,
                "MNT_EXPIRE" => MntFlags::MNT_EXPIRE,
                _ => MntFlags::empty(),
            }
    })
}

fn run(data: &mut ResetData) -> anyhow::Result<()> {
    let kubelet = data.host.disk(&NodePath::new(well_known::KUBELET_DIR));
    let top = mounts::resolve_top(&kubelet)?;
    data.phase(&format!(
        "Unmounting mounted directories in {:?}",
        top.display().to_string()
    ));
    let all = mounts::scan(data.host.facts())?;
    let below = mounts::under(&all, &top, false);
    let policy = UnmountPolicy {
        lazy_fallback: true,
        extra_flags: unmount_flags(&data.settings.unmount_flags),
    };
    let mut outcomes = Vec::new();
    for mount in &below {
        let found = Found::new(
            Kind::Mount,
            mount.mount_point.display().to_string(),
            Owner::Kubernetes,
        );
        if data.dry_run() {
            data.plan(found.item(format!("a {} mount under the kubelet dir", mount.fs_type)));
            data.unmounted.insert(mount.mount_point.clone());
            continue;
        }
        outcomes.push((mount.mount_point.clone(), mounts::unmount(mount, policy)));
    }
    if data.dry_run() {
        return Ok(());
    }
    // The kernel has the last word: whatever is still mounted was not unmounted, whatever umount2 said.
    let still: BTreeSet<PathBuf> = mounts::under(&mounts::scan(data.host.facts())?, &top, false)
        .into_iter()
        .map(|m| m.mount_point)
        .collect();
    for (point, outcome) in outcomes {
        let outcome = match outcome {
            Outcome::Removed(item) if still.contains(&point) => Outcome::Left {
                item: Item::new(
                    Kind::Mount,
                    item.target,
                    "still mounted after unmounting it",
                ),
                reboot_required: false,
            },
            other => other,
        };
        match &outcome {
            Outcome::Left { item, .. } => data.protected.push((
                point,
                format!("under a mount that could not be unmounted: {}", item.reason),
            )),
            Outcome::Removed(_) => {
                data.unmounted.insert(point);
            }
            Outcome::Kept(_) => {}
        }
        data.record([outcome]);
    }
    Ok(())
}
