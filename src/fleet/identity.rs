//! Who this process is, for a heartbeat: the host name, the pid, and on Linux what makes the pid
//! unambiguous on its host (the boot, the pid namespace, the process's start time since boot). With
//! these, a worker restarting on the same host tells at once that the process its heartbeat names is
//! gone, instead of watching the heartbeat for a lease. Nothing here reads a clock of another host.

use serde::{Deserialize, Serialize};

/// A process, as unambiguous as its host lets it be.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProcessId {
    /// `/proc/sys/kernel/random/boot_id`.
    pub boot_id: String,
    /// The pid namespace (`/proc/self/ns/pid`'s link).
    pub pid_ns: String,
    /// The pid in that namespace.
    pub pid: u32,
    /// Start time since boot, in clock ticks (`/proc/<pid>/stat`, field 22).
    pub start_ticks: u64,
}

impl ProcessId {
    /// This process; `None` where `/proc` does not tell.
    pub fn current() -> Option<ProcessId> {
        let pid = std::process::id();
        Some(ProcessId {
            boot_id: boot_id()?,
            pid_ns: std::fs::read_link("/proc/self/ns/pid")
                .ok()?
                .display()
                .to_string(),
            pid,
            start_ticks: stat(pid)?.1,
        })
    }

    /// Whether this process certainly no longer runs: it ran on this boot of this host, in this pid
    /// namespace, and its pid is free, taken by a later process, or a zombie. `false` when that cannot be
    /// told (another host, another namespace).
    pub fn certainly_gone(&self) -> bool {
        let Some(me) = ProcessId::current() else {
            return false;
        };
        if me.boot_id != self.boot_id || me.pid_ns != self.pid_ns {
            return false;
        }
        match stat(self.pid) {
            None => true,
            Some((state, start)) => state == 'Z' || start != self.start_ticks,
        }
    }
}

fn boot_id() -> Option<String> {
    let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    Some(id.trim().to_string()).filter(|s| !s.is_empty())
}

/// (state, start time in ticks) of a process, from `/proc/<pid>/stat`.
fn stat(pid: u32) -> Option<(char, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: the fields start after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    // Field 3 is the state (index 0 here), field 22 the start time (index 19).
    let start = fields.get(19)?.parse().ok()?;
    Some((state, start))
}

/// The host name (`/proc/sys/kernel/hostname`), or `unknown`.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_reaped_child_is_gone() {
        let Some(me) = ProcessId::current() else {
            return; // no /proc here
        };
        assert!(!me.certainly_gone());
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let gone = ProcessId { pid, ..me.clone() };
        assert!(gone.certainly_gone());
        let elsewhere = ProcessId {
            boot_id: "another-host".into(),
            pid,
            ..me
        };
        assert!(
            !elsewhere.certainly_gone(),
            "another host's process: unknown"
        );
    }
}
