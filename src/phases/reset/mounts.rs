//! `cleanup-node/mounts`: unmounts everything under the kubelet dir (resolved through symlinks once, at
//! the top), deepest first, with lazy detach as the fallback. A mount that will not go protects its
//! subtree from the files phase.

use nix::mount::MntFlags;

use super::ResetData;
use crate::host::inventory::{Found, Kind, Outcome, Owner};
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
    for mount in below {
        let found = Found::new(
            Kind::Mount,
            mount.mount_point.display().to_string(),
            Owner::Kubernetes,
        );
        if data.dry_run() {
            data.planned
                .push(found.item(format!("a {} mount under the kubelet dir", mount.fs_type)));
            continue;
        }
        let outcome = mounts::unmount(&mount, policy);
        if let Outcome::Left { item, .. } = &outcome {
            data.protected.push((
                mount.mount_point.clone(),
                format!("under a mount that could not be unmounted: {}", item.reason),
            ));
        }
        data.record([outcome]);
    }
    Ok(())
}
