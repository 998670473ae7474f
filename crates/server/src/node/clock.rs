//! The node's wall clock for credentials: what "now" is when a token is verified at
//! login, `renewToken` and a stream-channel join, and when its will-expire push and
//! expiry are due (docs/token.md, "Clock jumps"). The system clock by default; a test
//! clock whose offset from it a test moves forward and backward at run time. Reached
//! through [`ServerConfig::clock`](super::config::ServerConfig::clock), never a global.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// A wall clock, cheap to clone: the system clock, or the system clock shifted by an
/// offset that every clone shares and a test moves ([`Clock::shift`]).
#[derive(Clone, Default)]
pub struct Clock {
    /// `None`: the system clock; else milliseconds added to it.
    offset_ms: Option<Arc<AtomicI64>>,
}

impl Clock {
    /// The system clock (the default).
    pub fn system() -> Self {
        Clock { offset_ms: None }
    }

    /// A test clock: the system clock until [`Clock::shift`] moves it.
    pub fn shifted() -> Self {
        Clock {
            offset_ms: Some(Arc::new(AtomicI64::new(0))),
        }
    }

    /// Moves a test clock by `ms` milliseconds (negative: backward), for every clone;
    /// does nothing to the system clock.
    pub fn shift(&self, ms: i64) {
        if let Some(o) = &self.offset_ms {
            o.fetch_add(ms, Ordering::SeqCst);
        }
    }

    /// Milliseconds since the Unix epoch by this clock.
    pub fn now_ms(&self) -> u64 {
        let sys = switchboard_protocol::now_ms();
        match &self.offset_ms {
            None => sys,
            Some(o) => {
                let shifted = i128::from(sys) + i128::from(o.load(Ordering::SeqCst));
                u64::try_from(shifted.max(0)).unwrap_or(u64::MAX)
            }
        }
    }

    /// Whole seconds since the Unix epoch by this clock (what token expiries count in).
    pub fn now_secs(&self) -> u64 {
        self.now_ms() / 1000
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.offset_ms {
            None => f.write_str("Clock::system"),
            Some(o) => write!(f, "Clock::shifted({} ms)", o.load(Ordering::SeqCst)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shift_moves_every_clone_and_never_the_system_clock() {
        let c = Clock::shifted();
        let d = c.clone();
        let before = d.now_ms();
        c.shift(3_600_000);
        assert!(d.now_ms() >= before + 3_600_000);
        c.shift(-7_200_000);
        assert!(d.now_ms() < before);
        let sys = Clock::system();
        sys.shift(3_600_000);
        assert!(sys.now_ms() < before + 60_000);
        c.shift(i64::MIN / 2);
        assert_eq!(c.now_ms(), 0, "saturates at the epoch");
    }
}
