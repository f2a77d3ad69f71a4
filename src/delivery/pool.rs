//! A bounded set of plain threads for independent deliveries (one per recipient domain):
//! at most `threads` run at once, each delivery on a thread of its own, blocking on its own
//! socket. What each delivery writes for stderr is kept apart and handed back in the items'
//! order, so the report reads as if they had run one after another.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Run `job` for every item on at most `threads` threads at once; with one thread, one item
/// after the other (`--parallel 1`). Returns each item's stderr output and result, in the
/// items' order.
pub fn run<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    job: &(dyn Fn(&T, &mut Vec<u8>) -> R + Sync),
) -> Vec<(Vec<u8>, R)> {
    let with_output = |item: &T| {
        let mut out = Vec::new();
        let result = job(item, &mut out);
        (out, result)
    };
    let threads = threads.min(items.len());
    if threads <= 1 {
        return items.iter().map(with_output).collect();
    }
    let next = AtomicUsize::new(0);
    let finished: Mutex<Vec<(usize, Vec<u8>, R)>> = Mutex::new(Vec::new());
    let worker = || {
        while let Some(i) = Some(next.fetch_add(1, Ordering::SeqCst)).filter(|&i| i < items.len()) {
            let (out, result) = with_output(&items[i]);
            finished
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .push((i, out, result));
        }
    };
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(worker);
        }
    });
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
    fn no_more_run_at_once_than_asked_and_more_than_one_when_asked() {
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

    #[test]
    fn every_delivery_of_a_wide_pool_runs_at_once() {
        // Each of ten jobs waits (up to 5 s) until all ten are running: only possible when
        // each has a thread of its own.
        let running = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        let items: Vec<u32> = (0..10).collect();
        run(&items, 10, &|_: &u32, _: &mut Vec<u8>| {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while running.load(Ordering::SeqCst) < 10 && std::time::Instant::now() < until {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        });
        assert_eq!(most.load(Ordering::SeqCst), 10);
    }
}
