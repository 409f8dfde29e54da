//! Which process listens on a TCP port, read from /proc (net/tcp, net/tcp6 and each process's fds),
//! and what that process is: its name and command line.

use super::facts::Facts;

/// A process holding a listening socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub pid: u32,
    /// `/proc/<pid>/comm`.
    pub name: String,
    /// `/proc/<pid>/cmdline`, split at NULs.
    pub command_line: Vec<String>,
}

/// The inodes of TCP sockets listening on `port`.
fn listening_inodes(facts: &Facts, port: u16) -> Vec<String> {
    const LISTEN: &str = "0A";
    let mut inodes = Vec::new();
    for table in ["net/tcp", "net/tcp6"] {
        let Ok(text) = facts.read_proc(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 10 || fields[3] != LISTEN {
                continue;
            }
            let local_port = fields[1]
                .rsplit_once(':')
                .and_then(|(_, hex)| u16::from_str_radix(hex, 16).ok());
            if local_port == Some(port) && fields[9] != "0" {
                inodes.push(fields[9].to_string());
            }
        }
    }
    inodes
}

/// The process listening on `port`, when /proc tells (`None`: nobody, or a process of another PID
/// namespace or user whose fds cannot be read).
pub fn listener(facts: &Facts, port: u16) -> Option<Listener> {
    let inodes = listening_inodes(facts, port);
    if inodes.is_empty() {
        return None;
    }
    let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    let proc_root = facts.proc_path("");
    for entry in std::fs::read_dir(&proc_root).ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let holds = std::fs::read_dir(entry.path().join("fd"))
            .map(|fds| {
                fds.flatten().any(|fd| {
                    std::fs::read_link(fd.path())
                        .is_ok_and(|target| wanted.iter().any(|w| target.as_os_str() == w.as_str()))
                })
            })
            .unwrap_or(false);
        if holds {
            return Some(describe(facts, pid));
        }
    }
    None
}

/// A process by its PID.
pub fn describe(facts: &Facts, pid: u32) -> Listener {
    let name = facts
        .read_proc(format!("{pid}/comm"))
        .map(|c| c.trim().to_string())
        .unwrap_or_default();
    let command_line = std::fs::read(facts.proc_path(format!("{pid}/cmdline")))
        .map(|bytes| {
            bytes
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default();
    Listener {
        pid,
        name,
        command_line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listener_is_found_from_the_socket_table_with_its_command_line() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("net")).unwrap();
        std::fs::write(
            root.join("net/tcp6"),
            "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
             0: 00000000000000000000000000000000:280A 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 777 1 0 100 0 0 10 0\n",
        )
        .unwrap();
        std::fs::create_dir_all(root.join("55/fd")).unwrap();
        std::fs::write(root.join("55/comm"), "kubelet\n").unwrap();
        std::fs::write(root.join("55/cmdline"), b"/usr/bin/kubelet\0--v=2\0").unwrap();
        std::os::unix::fs::symlink("socket:[777]", root.join("55/fd/3")).unwrap();
        let facts = Facts::with_roots(root, "/sys");
        let found = listener(&facts, 10250).unwrap();
        assert_eq!(found.pid, 55);
        assert_eq!(found.name, "kubelet");
        assert_eq!(found.command_line, ["/usr/bin/kubelet", "--v=2"]);
        assert_eq!(listener(&facts, 10248), None);
    }
}
