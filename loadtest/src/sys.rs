//! What the kernel says about a process: CPU time, resident memory, file limits. All of it
//! from `/proc`, so it works for a hub this tool started and for one given by `--hub-pid`.

use std::{fs, time::Duration};

use crate::Error;

/// User plus system CPU time of a process so far.
pub fn cpu_time(pid: u32) -> Result<Duration, Error> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may hold spaces and parentheses: fields count from the last ')'.
    let after = stat
        .rfind(')')
        .map(|i| &stat[i + 1..])
        .ok_or("unexpected /proc/<pid>/stat format")?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the name: state is field 3 of the whole line, utime 14 and stime 15.
    let utime: u64 = fields.get(11).ok_or("no utime")?.parse()?;
    let stime: u64 = fields.get(12).ok_or("no stime")?.parse()?;
    let ticks = clock_ticks_per_sec();
    Ok(Duration::from_secs_f64((utime + stime) as f64 / ticks))
}

/// This process's own CPU time (user plus system), to show what the load generator cost.
pub fn own_cpu_time() -> Duration {
    cpu_time(std::process::id()).unwrap_or_default()
}

fn clock_ticks_per_sec() -> f64 {
    // SAFETY: sysconf has no preconditions; it returns -1 for an unknown name.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// Resident set size in bytes.
pub fn rss_bytes(pid: u32) -> Result<u64, Error> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .ok_or("no VmRSS in /proc/<pid>/status")?
        .parse()?;
    Ok(kib * 1024)
}

/// Bytes the process has caused to be written to storage (`write_bytes` of
/// `/proc/<pid>/io`): what its commits, WAL and checkpoints cost the disk, whatever the
/// machine's speed.
pub fn written_bytes(pid: u32) -> Result<u64, Error> {
    let io = fs::read_to_string(format!("/proc/{pid}/io"))?;
    Ok(io
        .lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))
        .ok_or("no write_bytes in /proc/<pid>/io")?
        .trim()
        .parse()?)
}

/// `(soft, hard)` limit on open files of a process.
pub fn nofile_limits(pid: u32) -> Result<(u64, u64), Error> {
    let limits = fs::read_to_string(format!("/proc/{pid}/limits"))?;
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .ok_or("no `Max open files` in /proc/<pid>/limits")?;
    let nums: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    match nums.as_slice() {
        [soft, hard, ..] => Ok((*soft, *hard)),
        // "unlimited" does not parse: treat it as no practical limit.
        _ => Ok((u64::MAX, u64::MAX)),
    }
}

/// Raises this process's soft limit on open files to its hard limit, and returns the new
/// `(soft, hard)`. A hub this tool starts inherits the raised limit.
pub fn raise_nofile_limit() -> Result<(u64, u64), Error> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read or write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        if lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error().into());
            }
        }
    }
    Ok((lim.rlim_cur, lim.rlim_max))
}

/// How many local ports the kernel hands out to outgoing connections.
pub fn ephemeral_ports() -> Option<u64> {
    let range = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut it = range
        .split_whitespace()
        .filter_map(|w| w.parse::<u64>().ok());
    let (lo, hi) = (it.next()?, it.next()?);
    Some(hi.saturating_sub(lo) + 1)
}
