//! Rolling batches from `serial`: sizes are counts or percentages of the play's hosts; the
//! last size repeats until every host has a batch (Ansible's rule).

use crate::model::BatchSize;

/// Split `total` hosts into batch lengths.
pub fn batch_lengths(serial: &[BatchSize], total: usize) -> Vec<usize> {
    if serial.is_empty() || total == 0 {
        return if total == 0 { Vec::new() } else { vec![total] };
    }
    let size = |s: &BatchSize| match *s {
        BatchSize::Count(n) => n.max(1),
        // Rounded down, but never an empty batch.
        BatchSize::Percent(p) => (((p / 100.0) * total as f64).floor() as usize).max(1),
    };
    let mut lengths = Vec::new();
    let mut left = total;
    let mut sizes = serial.iter().map(size);
    let mut last = 1;
    while left > 0 {
        let n = sizes.next().unwrap_or(last);
        last = n;
        let n = n.min(left);
        lengths.push(n);
        left -= n;
    }
    lengths
}

#[cfg(test)]
mod tests {
    use super::*;
    use BatchSize::*;
    use proptest::prelude::*;

    #[test]
    fn follows_ansible_examples() {
        assert_eq!(batch_lengths(&[], 5), vec![5]);
        assert_eq!(batch_lengths(&[Count(2)], 5), vec![2, 2, 1]);
        assert_eq!(
            batch_lengths(&[Count(1), Count(5), Count(10)], 30),
            vec![1, 5, 10, 10, 4]
        );
        assert_eq!(batch_lengths(&[Percent(30.0)], 10), vec![3, 3, 3, 1]);
        assert_eq!(batch_lengths(&[Percent(1.0)], 10), vec![1; 10]);
        assert_eq!(batch_lengths(&[Count(1), Percent(50.0)], 9), vec![1, 4, 4]);
    }

    proptest! {
        #[test]
        fn covers_every_host_exactly_once(total in 0usize..300, sizes in proptest::collection::vec(1usize..50, 0..4)) {
            let serial: Vec<BatchSize> = sizes.into_iter().map(Count).collect();
            let lengths = batch_lengths(&serial, total);
            prop_assert_eq!(lengths.iter().sum::<usize>(), total);
            prop_assert!(lengths.iter().all(|&n| n > 0));
        }
    }
}
