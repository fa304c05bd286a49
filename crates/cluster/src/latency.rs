//! Simulated distance: great-circle kilometres between two places → the
//! round trip a packet would take between them. (Being written: the model
//! is calibrated against measured inter-city pings.)

use std::time::Duration;

/// Great-circle distance in km between two (latitude, longitude) points.
pub fn great_circle_km(a: (f64, f64), b: (f64, f64)) -> f64 {
    let _ = (a, b);
    todo!("latency helper")
}

/// round trip = `base` + `factor` × km / 100 km; `local` for the same place.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Model {
    pub base: Duration,
    /// Milliseconds of round trip per 100 km (light in fibre: 1.0).
    pub factor: f64,
    /// Round trip between two nodes at the same place (distance below 1 km).
    pub local: Duration,
}

impl Default for Model {
    fn default() -> Self {
        Model {
            base: Duration::from_millis(8),
            factor: 1.4,
            local: Duration::from_millis(1),
        }
    }
}

impl Model {
    /// The round trip over `km`.
    pub fn rtt(&self, km: f64) -> Duration {
        let _ = km;
        todo!("latency helper")
    }
}
