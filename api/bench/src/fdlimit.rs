//! The open-files limit. Every connection is one file descriptor in the bench and one in
//! the server, and the servers the bench starts inherit its limits.

use nix::sys::resource::{Resource, getrlimit, setrlimit};

/// `fs.nr_open`: no open-files limit may exceed it.
fn nr_open() -> Option<u64> {
    std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Raises the soft open-files limit to the hard limit and, when `want` is above the hard
/// limit, tries to raise both to `want` (this needs `CAP_SYS_RESOURCE`, e.g. root). Returns
/// the soft limit in force afterwards.
pub fn raise(want: u64) -> Option<u64> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    let ceiling = nr_open().unwrap_or(u64::MAX);
    if want > hard {
        let new = want.min(ceiling);
        if new > hard && setrlimit(Resource::RLIMIT_NOFILE, new, new).is_ok() {
            return Some(new);
        }
    }
    let target = hard.min(ceiling);
    if soft < target {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, target, hard);
    }
    getrlimit(Resource::RLIMIT_NOFILE).ok().map(|(s, _)| s)
}

/// Makes room for `connections` sockets (plus headroom for the database pool, logs and
/// set-up requests), warning when the limit cannot be raised far enough.
pub fn ensure(connections: usize) {
    let need = connections as u64 + 256;
    let want = connections as u64 + 4096;
    match raise(want) {
        Some(limit) if limit < need => eprintln!(
            "warning: {connections} connections need more open files than the limit ({limit}), \
             and it cannot be raised (the hard limit needs root); raise it with \
             `ulimit -n {want}` before running"
        ),
        Some(_) => {}
        None => eprintln!("warning: cannot read the open-files limit"),
    }
}
