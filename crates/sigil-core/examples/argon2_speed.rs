//! The argon2id ceiling of this machine, measured the way `openssl speed -multi N` measures
//! the RSA one: one thread per core, each verifying a password with Sigil's own verifier at
//! the production parameters (19 MiB, t=2, p=1), all at the same time, for a fixed time.
//!
//! `cargo run --release -p sigil-core --example argon2_speed -- [seconds] [threads]`
//!
//! Cores verifying at once share the memory bus and the last-level cache, so the ceiling of
//! N cores is measured, not taken as N times the single-core figure of `cargo bench`.

use sigil_core::password::{Argon2Params, PasswordHasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let seconds: f64 = match args.next() {
        Some(text) => text
            .parse()
            .map_err(|_| format!("not a number of seconds: {text}"))?,
        None => 3.0,
    };
    let threads: usize = match args.next() {
        Some(text) => text
            .parse()
            .map_err(|_| format!("not a thread count: {text}"))?,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let hasher = PasswordHasher::new(Argon2Params::default())?;
    let hash = hasher.hash("correct horse battery staple")?;
    // One warm-up verification per thread sizes its reused working memory, as in the server.
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let barrier = Arc::new(std::sync::Barrier::new(threads + 1));
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (hasher, hash) = (hasher.clone(), hash.clone());
            let (stop, done, barrier) = (stop.clone(), done.clone(), barrier.clone());
            std::thread::spawn(move || {
                let warm = hasher.verify("correct horse battery staple", Some(&hash));
                barrier.wait();
                let mut count = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    if hasher.verify("correct horse battery staple", Some(&hash)) {
                        count += 1;
                    }
                }
                done.fetch_add(count, Ordering::Relaxed);
                warm
            })
        })
        .collect();
    barrier.wait();
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        if !worker.join().map_err(|_| "a worker panicked".to_string())? {
            return Err("the password did not verify".into());
        }
    }
    // Each thread finishes the verification it was in, so divide by the time it took.
    let elapsed = started.elapsed().as_secs_f64();
    let total = done.load(Ordering::Relaxed);
    println!(
        "argon2id verify (19456 KiB, t=2, p=1): {:.1} verifications/s on {threads} threads, {:.2} ms each ({total} in {elapsed:.2} s)",
        total as f64 / elapsed,
        elapsed * 1000.0 * threads as f64 / total.max(1) as f64
    );
    Ok(())
}
