//! Crash back-off, as the kubelet does it: 10 s doubling to 5 min, forgotten after a container
//! ran for 10 minutes. The first step here is shorter (1 s) so a crashing pod in a dev cluster
//! shows its restarts quickly; the doubling and the cap are Kubernetes'.

use std::time::Duration;

pub const FIRST: Duration = Duration::from_secs(1);
pub const CAP: Duration = Duration::from_secs(300);
pub const RESET_AFTER: Duration = Duration::from_secs(600);

/// Delay before the next restart, given the previous delay (None = first crash) and how long the
/// container ran before it exited.
pub fn next_delay(previous: Option<Duration>, ran_for: Duration) -> Duration {
    match previous {
        _ if ran_for >= RESET_AFTER => FIRST,
        None => FIRST,
        Some(p) => (p * 2).min(CAP),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_and_reset_after_a_long_run() {
        let short = Duration::from_secs(1);
        let mut d = next_delay(None, short);
        let mut seen = vec![d.as_secs()];
        for _ in 0..12 {
            d = next_delay(Some(d), short);
            seen.push(d.as_secs());
        }
        assert_eq!(seen, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300, 300]);
        assert_eq!(next_delay(Some(CAP), Duration::from_secs(601)), FIRST);
    }
}
