//! A small bounded pool of threads for independent deliveries (one per recipient domain):
//! at most `parallel` run at once; what each writes for stderr is kept apart and handed
//! back in the items' order, so the report reads as if they had run one after another.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Run `job` for every item on at most `parallel` threads (none when one would do).
/// Returns each item's stderr output and result, in the items' order.
pub fn run<T: Sync, R: Send>(
    items: &[T],
    parallel: usize,
    job: &(dyn Fn(&T, &mut Vec<u8>) -> R + Sync),
) -> Vec<(Vec<u8>, R)> {
    if parallel <= 1 || items.len() <= 1 {
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
    std::thread::scope(|scope| {
        for _ in 0..parallel.min(items.len()) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(item) = items.get(i) else {
                        break;
                    };
                    let mut out = Vec::new();
                    let result = job(item, &mut out);
                    finished
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .push((i, out, result));
                }
            });
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
    fn never_more_than_parallel_at_once() {
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
