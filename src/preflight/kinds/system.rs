//! Checks of the machine itself: the user, CPUs, memory, swap, the clock, and firewalld.

use anyhow::Context;

use super::super::Outcome;
use super::super::context::{ClockSource, Probe};
use crate::host::Facts;

/// `IsPrivilegedUser`: the effective uid (from /proc/self/status) is 0.
pub fn privileged(probe: &Probe) -> anyhow::Result<Outcome> {
    let status = probe.facts().read_proc("self/status")?;
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .context("no Uid line in /proc/self/status")?;
    Ok(if euid == "0" {
        Outcome::Pass("running as root".to_string())
    } else {
        Outcome::Fail(format!(
            "user is not running as root (effective uid {euid})"
        ))
    })
}

/// `NumCPU`: CPUs online (/sys/devices/system/cpu/online, e.g. `0-3,6`).
pub fn cpus(probe: &Probe, min: u32) -> anyhow::Result<Outcome> {
    let online = probe.facts().read_sys("devices/system/cpu/online")?;
    let count = count_cpu_list(online.trim())
        .with_context(|| format!("cannot read the CPU list {:?}", online.trim()))?;
    Ok(if count >= min {
        Outcome::Pass(format!("{count} CPUs"))
    } else {
        Outcome::Fail(format!(
            "the number of available CPUs {count} is less than the required {min}"
        ))
    })
}

fn count_cpu_list(list: &str) -> Option<u32> {
    let mut count = 0;
    for part in list.split(',').filter(|p| !p.is_empty()) {
        count += match part.split_once('-') {
            Some((a, b)) => b.parse::<u32>().ok()?.checked_sub(a.parse::<u32>().ok()?)? + 1,
            None => {
                part.parse::<u32>().ok()?;
                1
            }
        };
    }
    Some(count)
}

/// `Mem`: MemTotal from /proc/meminfo, in MB.
pub fn memory(probe: &Probe, min_mb: u64) -> anyhow::Result<Outcome> {
    let meminfo = probe.facts().read_proc("meminfo")?;
    let kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .context("no MemTotal in /proc/meminfo")?;
    let mb = kib / 1024;
    Ok(if mb >= min_mb {
        Outcome::Pass(format!("{mb} MB of RAM"))
    } else {
        Outcome::Fail(format!(
            "the system RAM ({mb} MB) is less than the minimum {min_mb} MB"
        ))
    })
}

/// `Swap`: /proc/swaps lists no device, or the kubelet is told to tolerate swap.
pub fn swap(probe: &Probe) -> anyhow::Result<Outcome> {
    let swaps = match probe.facts().read_proc("swaps") {
        Ok(text) => text,
        Err(_) => return Ok(Outcome::Pass("/proc/swaps is absent: no swap".to_string())),
    };
    let devices: Vec<&str> = swaps
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    if devices.is_empty() {
        return Ok(Outcome::Pass("swap is off".to_string()));
    }
    let which = devices.join(", ");
    Ok(if probe.node.kubelet().fail_swap_on {
        Outcome::Fail(format!(
            "swap is on ({which}) and the kubelet's failSwapOn is true (the default): the kubelet will refuse to start"
        ))
    } else {
        Outcome::Warn(format!(
            "swap is on ({which}); the kubelet tolerates it (failSwapOn: false). Swap is supported for cgroup v2 only, \
             and the kubelet must be configured to use it (memorySwap.swapBehavior)"
        ))
    })
}

/// The kernel's view of NTP synchronisation.
fn kernel_clock_synchronized() -> anyhow::Result<bool> {
    // SAFETY: a zeroed timex with modes = 0 only reads the kernel's state into the struct.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    let state = unsafe { libc::adjtimex(&mut tx) };
    if state < 0 {
        return Err(std::io::Error::last_os_error()).context("adjtimex");
    }
    Ok(state != libc::TIME_ERROR && tx.status & libc::STA_UNSYNC == 0)
}

/// `ClockSync`: the kernel clock is disciplined by NTP (chrony, ntpd, systemd-timesyncd).
pub fn clock_sync(probe: &Probe) -> anyhow::Result<Outcome> {
    let synchronized = match probe.env.clock {
        ClockSource::Kernel => kernel_clock_synchronized()?,
        ClockSource::Assume { synchronized } => synchronized,
    };
    Ok(if synchronized {
        Outcome::Pass("the kernel reports the clock synchronised".to_string())
    } else {
        Outcome::Fail(
            "the system clock is not synchronised: the kernel's NTP state is 'unsynchronised', so no time daemon \
             is disciplining it; certificates can look not-yet-valid on other nodes and etcd leases misbehave when clocks drift"
                .to_string(),
        )
    })
}

/// A process as /proc shows it.
pub struct ProcessDir {
    pub pid: u32,
    /// Its /proc/<pid> directory.
    pub dir: std::path::PathBuf,
}

impl ProcessDir {
    /// The command name (`comm`), when still readable.
    pub fn comm(&self) -> Option<String> {
        std::fs::read_to_string(self.dir.join("comm"))
            .ok()
            .map(|c| c.trim().to_string())
    }
}

/// Every process of /proc (under the facts' proc root).
pub fn processes(facts: &Facts) -> anyhow::Result<Vec<ProcessDir>> {
    let dir = facts.proc_path("");
    let entries = std::fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))?;
    Ok(entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let pid = entry.file_name().to_str()?.parse::<u32>().ok()?;
            Some(ProcessDir {
                pid,
                dir: entry.path(),
            })
        })
        .collect())
}

/// `Firewalld`: no firewalld process runs.
pub fn firewalld(probe: &Probe) -> anyhow::Result<Outcome> {
    let running = processes(probe.facts())?
        .into_iter()
        .find(|p| p.comm().as_deref() == Some("firewalld"));
    Ok(match running.map(|p| p.pid) {
        Some(pid) => {
            let mut ports = vec![10250];
            if probe.node.role.is_control_plane() {
                ports.insert(0, probe.node.bind_port());
            }
            let list: Vec<String> = ports.iter().map(u16::to_string).collect();
            Outcome::Fail(format!(
                "firewalld is active (pid {pid}), please ensure ports [{}] are open or your cluster may not function correctly",
                list.join(" ")
            ))
        }
        None => Outcome::Pass("firewalld is not running".to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(count_cpu_list("0"), Some(1));
        assert_eq!(count_cpu_list("0-1"), Some(2));
        assert_eq!(count_cpu_list("0-3,6,8-9"), Some(7));
        assert_eq!(count_cpu_list("x"), None);
        assert_eq!(count_cpu_list("3-1"), None);
    }

    #[test]
    fn the_kernel_clock_state_can_be_read() {
        kernel_clock_synchronized().unwrap();
    }
}
