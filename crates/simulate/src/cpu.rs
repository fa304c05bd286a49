//! The simulator's own CPU use: the time its threads (named
//! [`THREAD_NAME`], as the CLI names its runtime's) spent, read from
//! `/proc/self/task/*/stat` (Linux). In `--spawn` mode the cluster runs in
//! the same process on other threads, which are not counted.

use std::time::Duration;

/// The name the simulator's runtime threads carry.
pub const THREAD_NAME: &str = "meridian-sim";

/// Clock ticks per second of `/proc` times (`sysconf(_SC_CLK_TCK)`, 100
/// on every Linux this runs on).
const TICKS_PER_SECOND: u64 = 100;

/// User plus system time of the live threads named [`THREAD_NAME`];
/// `None` where `/proc` cannot tell (not Linux) or no thread has the name.
pub fn sim_threads_cpu() -> Option<Duration> {
    let mut ticks = 0u64;
    let mut found = false;
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ...`: comm may hold spaces and parentheses, so
        // split at the last `)`.
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let comm = head.split_once('(').map_or("", |(_, c)| c);
        if !comm.starts_with(THREAD_NAME) {
            continue;
        }
        // After `)`: state is field 3; utime and stime are fields 14, 15.
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok());
        if let (Some(u), Some(s)) = (field(14), field(15)) {
            ticks += u + s;
            found = true;
        }
    }
    found.then(|| Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_named_threads_only() {
        assert_eq!(sim_threads_cpu(), None);
        let t = std::thread::Builder::new()
            .name(THREAD_NAME.into())
            .spawn(|| {
                let start = std::time::Instant::now();
                let mut x = 0u64;
                while start.elapsed() < Duration::from_millis(300) {
                    x = x.wrapping_add(1);
                }
                let cpu = sim_threads_cpu();
                (x, cpu)
            })
            .expect("thread");
        let (_, cpu) = t.join().expect("join");
        if std::path::Path::new("/proc/self/task").exists() {
            assert!(cpu.is_some_and(|c| c > Duration::ZERO), "{cpu:?}");
        }
    }
}
