//! A small bounded pool of threads for independent deliveries (one per recipient domain).
//! Each thread drives up to [`AT_ONCE`] deliveries at a time, going on with another while
//! one waits for its server ([`crate::transport::fiber`]): a delivery is mostly waiting, so
//! four threads keep sixteen connections busy. What each delivery writes for stderr is kept
//! apart and handed back in the items' order, so the report reads as if they had run one
//! after another.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::transport::fiber;

/// Deliveries one thread drives at a time.
pub const AT_ONCE: usize = 4;

/// Run `job` for every item on at most `threads` threads, each driving up to [`AT_ONCE`]
/// items at a time; with one thread, one item after the other (`--parallel 1`). Returns
/// each item's stderr output and result, in the items' order.
pub fn run<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    job: &(dyn Fn(&T, &mut Vec<u8>) -> R + Sync),
) -> Vec<(Vec<u8>, R)> {
    if threads <= 1 {
        return items
            .iter()
            .map(|item| {
                let mut out = Vec::new();
                let result = job(item, &mut out);
                (out, result)
            })
            .collect();
    }
    let next = AtomicUsize::new(0);
    let finished: Mutex<Vec<(usize, Vec<u8>, R)>> = Mutex::new(Vec::new());
    let with_output = |item: &T| {
        let mut out = Vec::new();
        let result = job(item, &mut out);
        (out, result)
    };
    let worker = || {
        let mut take = || {
            let i = next.fetch_add(1, Ordering::SeqCst);
            items.get(i).map(|item| (i, item))
        };
        let mut done = |i: usize, (out, result): (Vec<u8>, R)| {
            finished
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .push((i, out, result));
        };
        fiber::run(&mut take, AT_ONCE, &with_output, &mut done);
    };
    let threads = threads.min(items.len().div_ceil(AT_ONCE));
    if threads <= 1 {
        worker();
    } else {
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(worker);
            }
        });
    }
    let mut finished = finished
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    finished.sort_by_key(|(i, _, _)| *i);
    finished.into_iter().map(|(_, out, r)| (out, r)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn results_and_output_come_back_in_order_whatever_finishes_first() {
        let items: Vec<u64> = (0..12).collect();
        for parallel in [1, 4, 20] {
            let got = run(&items, parallel, &|n: &u64, out: &mut Vec<u8>| {
                // Later items finish first.
                std::thread::sleep(std::time::Duration::from_millis(12 - n));
                let _ = write!(out, "item {n}");
                n * 2
            });
            let results: Vec<u64> = got.iter().map(|(_, r)| *r).collect();
            assert_eq!(results, (0..12).map(|n| n * 2).collect::<Vec<_>>());
            for (n, (out, _)) in got.iter().enumerate() {
                assert_eq!(String::from_utf8_lossy(out), format!("item {n}"));
            }
        }
    }

    #[test]
    fn jobs_that_never_wait_use_no_more_threads_than_asked() {
        let running = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        let items: Vec<u32> = (0..16).collect();
        run(&items, 3, &|_: &u32, _: &mut Vec<u8>| {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(5));
            running.fetch_sub(1, Ordering::SeqCst);
        });
        assert!(most.load(Ordering::SeqCst) <= 3);
        assert!(
            most.load(Ordering::SeqCst) >= 2,
            "the pool ran one at a time"
        );
    }
}
