//! Mounts: scan /proc/self/mountinfo, find the mounts under a directory, unmount them deepest first
//! (lazy detach as the fallback), and report which subtrees must not be deleted.

use std::path::{Path, PathBuf};

use anyhow::Context;
use nix::mount::{MntFlags, umount2};

use super::facts::Facts;
use super::inventory::{Found, Kind, Outcome, Owner};

/// One line of /proc/self/mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    pub id: u32,
    pub parent: u32,
    pub mount_point: PathBuf,
    pub fs_type: String,
    pub source: String,
}

/// Decodes mountinfo's octal escapes (`\040` for a space, `\011`, `\012`, `\134`).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let value =
                (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(value);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses mountinfo text; malformed lines are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mut l = left.split(' ');
            let id = l.next()?.parse().ok()?;
            let parent = l.next()?.parse().ok()?;
            let _dev = l.next()?;
            let _root = l.next()?;
            let mount_point = PathBuf::from(unescape(l.next()?));
            let mut r = right.split(' ');
            let fs_type = r.next()?.to_string();
            let source = unescape(r.next().unwrap_or(""));
            Some(MountEntry {
                id,
                parent,
                mount_point,
                fs_type,
                source,
            })
        })
        .collect()
}

/// Every mount of this mount namespace.
pub fn scan(facts: &Facts) -> anyhow::Result<Vec<MountEntry>> {
    Ok(parse_mountinfo(&facts.read_proc("self/mountinfo")?))
}

/// Mounts strictly below `dir` (and `dir` itself when `include_top`), deepest first; one entry per mount point.
pub fn under(mounts: &[MountEntry], dir: &Path, include_top: bool) -> Vec<MountEntry> {
    let mut found: Vec<MountEntry> = mounts
        .iter()
        .filter(|m| m.mount_point.starts_with(dir) && (include_top || m.mount_point != dir))
        .cloned()
        .collect();
    // Stacked mounts on one point appear once per layer; unmounting repeats for each, later ones first.
    found.sort_by(|a, b| {
        let depth = |m: &MountEntry| m.mount_point.components().count();
        depth(b)
            .cmp(&depth(a))
            .then_with(|| b.mount_point.cmp(&a.mount_point))
            .then_with(|| b.id.cmp(&a.id))
    });
    found
}

/// True when `path` is a mount point or lies under one in `points`.
pub fn is_inside_any(path: &Path, points: &[PathBuf]) -> bool {
    points.iter().any(|p| path.starts_with(p))
}

/// How to unmount: plain (plus `extra_flags`) first, then lazy detach when that fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnmountPolicy {
    pub lazy_fallback: bool,
    pub extra_flags: MntFlags,
}

/// Unmounts one mount point (all layers stacked on it). Lazy detach is tried when a plain unmount is refused.
pub fn unmount(mount: &MountEntry, policy: UnmountPolicy) -> Outcome {
    let found = Found::new(
        Kind::Mount,
        mount.mount_point.display().to_string(),
        Owner::Kubernetes,
    );
    let flags = MntFlags::UMOUNT_NOFOLLOW | policy.extra_flags;
    match umount2(&mount.mount_point, flags) {
        Ok(()) => found.removed(),
        Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {
            // Not a mount point any more (a parent's lazy detach took it along).
            found.removed()
        }
        Err(first) if policy.lazy_fallback => {
            match umount2(&mount.mount_point, flags | MntFlags::MNT_DETACH) {
                Ok(()) => Outcome::Removed(found.item(format!(
                    "made by {}; detached lazily after: {}",
                    found.owner,
                    first.desc()
                ))),
                Err(second) => found.left(
                    format!(
                        "unmount refused: {}; lazy detach refused: {}",
                        first.desc(),
                        second.desc()
                    ),
                    false,
                ),
            }
        }
        Err(e) => found.left(format!("unmount refused: {}", e.desc()), false),
    }
}

/// Resolves `dir` through symlinks once (as kubeadm does for /var/lib/kubelet); a missing dir stays as given.
pub fn resolve_top(dir: &Path) -> anyhow::Result<PathBuf> {
    match std::fs::canonicalize(dir) {
        Ok(p) => Ok(p),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(dir.to_path_buf()),
        Err(e) => Err(e).with_context(|| format!("resolving {}", dir.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
46 22 0:50 / /r/var/lib/kubelet/pods/p1/volumes/kubernetes.io~secret/token rw,relatime - tmpfs tmpfs rw,size=1024k
47 22 0:51 / /r/var/lib/kubelet/pods/p1 rw - tmpfs tmpfs rw
57 22 254:0 /src /r/var/lib/kubelet/plugins/bind\\040target ro,relatime - ext4 /dev/vda rw
58 22 0:52 / /r/var/lib/kubelet-other rw - tmpfs tmpfs rw
";

    #[test]
    fn parses_and_unescapes() {
        let m = parse_mountinfo(SAMPLE);
        assert_eq!(m.len(), 5);
        assert_eq!(
            m[3].mount_point,
            PathBuf::from("/r/var/lib/kubelet/plugins/bind target")
        );
        assert_eq!(m[1].fs_type, "tmpfs");
        assert_eq!(m[0].source, "/dev/vda");
    }

    #[test]
    fn selects_mounts_under_a_dir_deepest_first() {
        let m = parse_mountinfo(SAMPLE);
        let picked = under(&m, Path::new("/r/var/lib/kubelet"), false);
        let points: Vec<_> = picked
            .iter()
            .map(|m| m.mount_point.display().to_string())
            .collect();
        assert_eq!(
            points,
            vec![
                "/r/var/lib/kubelet/pods/p1/volumes/kubernetes.io~secret/token",
                "/r/var/lib/kubelet/pods/p1",
                "/r/var/lib/kubelet/plugins/bind target",
            ]
        );
        assert!(is_inside_any(
            Path::new("/r/var/lib/kubelet/pods/p1/x"),
            &[PathBuf::from("/r/var/lib/kubelet/pods/p1")]
        ));
    }
}
