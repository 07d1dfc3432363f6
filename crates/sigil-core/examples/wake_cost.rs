//! What handing work to another thread and back costs on this machine: two threads pass a
//! number back and forth over channels, as a request does when it hands a signature to
//! the CPU pool or a query to SQLite's thread, and the round trip is timed in wall-clock
//! time and in CPU time (user + system of both threads).
//!
//! `cargo run --release -p sigil-core --example wake_cost -- [round trips]`
//!
//! Run it once as is and once under `taskset -c 0`: the first shows a wake-up that crosses
//! cores (on a virtual machine each one is an inter-processor interrupt the hypervisor must
//! deliver), the second the same hand-off on one core.

use std::sync::mpsc;
use std::time::Instant;

/// CPU time this process has used, in seconds, from `/proc/self/stat`.
fn cpu_seconds() -> Result<f64, String> {
    let stat = std::fs::read_to_string("/proc/self/stat").map_err(|e| e.to_string())?;
    // The command name is in parentheses and may hold spaces: count fields after it.
    let after_name = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| -> Result<f64, String> {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .ok_or_else(|| "unreadable /proc/self/stat".to_string())
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    Ok((ticks(11)? + ticks(12)?) / clock_ticks_per_second())
}

fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100.0)
}

fn main() -> Result<(), String> {
    let round_trips: u32 = match std::env::args().nth(1) {
        Some(text) => text
            .parse()
            .map_err(|_| format!("not a number of round trips: {text}"))?,
        None => 20_000,
    };
    let (to_worker, worker_inbox) = mpsc::channel::<u32>();
    let (to_caller, caller_inbox) = mpsc::channel::<u32>();
    let worker = std::thread::spawn(move || {
        for n in worker_inbox {
            if to_caller.send(n).is_err() {
                break;
            }
        }
    });
    let cpu_before = cpu_seconds()?;
    let started = Instant::now();
    for n in 0..round_trips {
        to_worker.send(n).map_err(|e| e.to_string())?;
        caller_inbox.recv().map_err(|e| e.to_string())?;
    }
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds()? - cpu_before;
    drop(to_worker);
    worker.join().map_err(|_| "the worker thread panicked")?;
    let per = |seconds: f64| seconds * 1e6 / f64::from(round_trips.max(1));
    println!(
        "thread round trip: {:.1} µs wall, {:.1} µs CPU ({round_trips} round trips)",
        per(wall),
        per(cpu)
    );
    Ok(())
}
