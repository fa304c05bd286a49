use rand::Rng;

use super::*;

fn params(clients: u32, requests: u64) -> WorkloadParams {
    WorkloadParams {
        seed: 17,
        clients,
        requests,
        duration_ms: 10_000,
        zipf_s: 1.0,
    }
}

#[test]
fn request_counts_give_out_exactly_the_total_and_one_at_least_to_each() {
    for (clients, requests) in [
        (1, 1),
        (1, 50),
        (7, 7),
        (7, 8),
        (10, 1_000),
        (2_000, 20_000),
    ] {
        let counts = request_counts(&params(clients, requests));
        assert_eq!(counts.len(), clients as usize);
        assert_eq!(
            counts.iter().sum::<u64>(),
            requests,
            "{clients} / {requests}"
        );
        assert!(counts.iter().all(|&n| n >= 1));
    }
}

#[test]
fn session_lengths_vary_around_their_mean() {
    let counts = request_counts(&params(2_000, 20_000));
    let (min, max) = (
        counts.iter().min().copied().unwrap_or(0),
        counts.iter().max().copied().unwrap_or(0),
    );
    assert!(min < 3 && max > 40, "{min}..{max}");
}

#[test]
fn each_purpose_and_client_has_its_own_stream() {
    let first = |p, c| stream(1, p, c).random::<u64>();
    assert_ne!(first(Purpose::Place, 0), first(Purpose::Think, 0));
    assert_ne!(first(Purpose::Place, 0), first(Purpose::Place, 1));
    assert_ne!(
        stream(1, Purpose::Place, 0).random::<u64>(),
        stream(2, Purpose::Place, 0).random::<u64>()
    );
    assert_eq!(first(Purpose::Pick, 9), first(Purpose::Pick, 9));
}

#[test]
fn think_times_over_the_budget_are_scaled_to_fit_it() {
    let req = |think_ms| Request {
        path: "/".into(),
        think_ms,
        range: None,
    };
    let mut rs = vec![req(0), req(3_000), req(5_000), req(2_000)];
    fit(&mut rs, 5_000);
    let thinks: Vec<u64> = rs.iter().map(|r| r.think_ms).collect();
    assert_eq!(thinks, [0, 1_500, 2_500, 1_000]);
    fit(&mut rs, 10_000);
    assert_eq!(
        rs.iter().map(|r| r.think_ms).sum::<u64>(),
        5_000,
        "under budget: unchanged"
    );
}
