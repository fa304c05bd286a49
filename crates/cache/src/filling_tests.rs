use std::time::{Duration, SystemTime};

use super::*;

fn head(declared: Option<u64>) -> FillHead {
    FillHead {
        status: StatusCode::OK,
        headers: HeaderMap::new(),
        freshness: Freshness::fresh_for(Duration::from_secs(60), SystemTime::now()),
        variant: Variant::default(),
        declared_len: declared,
        generation: 0,
    }
}

fn fill(budget: u64) -> (Arc<Filling>, FillWriter, Arc<FillBudget>) {
    let b = Arc::new(FillBudget::new(budget));
    let (f, w) = Filling::new(head(None), Arc::clone(&b), 0);
    (f, w, b)
}

async fn read_all(mut r: FillReader) -> Result<Vec<u8>, FillError> {
    let mut out = Vec::new();
    while let Some(b) = r.next().await? {
        out.extend_from_slice(&b);
    }
    Ok(out)
}

#[tokio::test]
async fn every_reader_gets_every_byte_at_its_own_pace() {
    let (f, w, _) = fill(1 << 20);
    let early = f.reader(0, None).expect("attach");
    w.append(Bytes::from_static(b"hello "));
    // A reader that joins after some bytes still starts at byte 0.
    let late = f.reader(0, None).expect("attach");
    let a = tokio::spawn(read_all(early));
    let b = tokio::spawn(read_all(late));
    w.append(Bytes::from_static(b"world"));
    let body = w.finish().expect("stored");
    assert_eq!(&body[..], b"hello world");
    assert_eq!(a.await.expect("join").expect("ok"), b"hello world");
    assert_eq!(b.await.expect("join").expect("ok"), b"hello world");
    // A reader attaching after the end reads the joined body.
    let after = f.reader(0, None).expect("attach to done");
    assert_eq!(read_all(after).await.expect("ok"), b"hello world");
}

#[tokio::test]
async fn a_failed_fill_is_an_error_for_every_reader_never_a_clean_end() {
    let (f, w, budget) = fill(1 << 20);
    let r1 = f.reader(0, None).expect("attach");
    let r2 = f.reader(0, None).expect("attach");
    w.append(Bytes::from_static(b"partial"));
    w.fail("connection reset");
    for r in [r1, r2] {
        let got = read_all(r).await;
        assert_eq!(got, Err(FillError::Failed("connection reset".into())));
    }
    assert!(
        f.reader(0, None).is_none(),
        "no reader attaches to a failed fill"
    );
    assert_eq!(budget.used(), 0, "a failed fill gives its budget back");
}

#[tokio::test]
async fn dropping_the_writer_without_finishing_fails_waiting_readers() {
    let (f, w, _) = fill(1 << 20);
    let r = f.reader(0, None).expect("attach");
    let pending = tokio::spawn(read_all(r));
    w.append(Bytes::from_static(b"abc"));
    // The writer's task ends without finish() (it panicked or was
    // cancelled): readers see a failure, not the end of the body.
    drop(w);
    assert!(matches!(f.state(), FillState::Failed(_)));
    let got = pending.await.expect("join");
    assert!(got.is_err(), "{got:?}");
}

#[tokio::test]
async fn ranges_read_only_their_bytes_while_filling() {
    let (f, w, _) = fill(1 << 20);
    let r = f.reader(3, Some(8)).expect("attach");
    let task = tokio::spawn(read_all(r));
    for chunk in [&b"01"[..], b"2345", b"67", b"89"] {
        w.append(Bytes::copy_from_slice(chunk));
    }
    // The range ends before the fill does.
    assert_eq!(task.await.expect("join").expect("ok"), b"34567");
    w.finish();
    let r = f.reader(8, Some(10)).expect("attach");
    assert_eq!(read_all(r).await.expect("ok"), b"89");
}

#[tokio::test]
async fn budget_is_charged_while_filling_and_released_when_done() {
    let (_f, w, budget) = fill(10);
    assert!(w.charge(6));
    w.append(Bytes::from_static(b"123456"));
    assert!(!w.charge(6), "over the budget");
    assert_eq!(budget.used(), 6);
    w.finish();
    assert_eq!(budget.used(), 0);
}

#[tokio::test]
async fn passing_drops_what_every_reader_has_read_and_refuses_new_readers() {
    let (f, w, budget) = fill(1 << 20);
    let mut slow = f.reader(0, None).expect("attach");
    assert!(w.charge(8));
    w.append(Bytes::from_static(b"aaaa"));
    w.append(Bytes::from_static(b"bbbb"));
    assert!(w.pass());
    assert!(f.reader(0, None).is_none(), "no new reader while passing");
    assert_eq!(w.lead(), (8, 1));
    assert_eq!(
        slow.next().await.expect("ok").as_deref(),
        Some(&b"aaaa"[..])
    );
    // The chunk everybody has read is gone, and so is its budget.
    assert_eq!(budget.used(), 4);
    assert_eq!(w.lead(), (4, 1));
    assert_eq!(
        slow.next().await.expect("ok").as_deref(),
        Some(&b"bbbb"[..])
    );
    assert_eq!(w.finish(), None, "a passing fill is not stored");
    assert_eq!(slow.next().await.expect("ok"), None);
    assert_eq!(budget.used(), 0);
}

#[tokio::test]
async fn a_reader_that_leaves_does_not_hold_chunks() {
    let (f, w, _) = fill(1 << 20);
    let r = f.reader(0, None).expect("attach");
    w.append(Bytes::from_static(b"xxxx"));
    w.pass();
    assert_eq!(w.lead(), (4, 1));
    drop(r);
    assert_eq!(w.lead(), (0, 0));
    assert_eq!(f.readers(), 0);
}

#[test]
fn budget_never_goes_past_its_limit() {
    let b = FillBudget::new(100);
    assert!(b.try_reserve(60));
    assert!(!b.try_reserve(41));
    assert!(b.try_reserve(40));
    b.release(1000);
    assert_eq!(b.used(), 0);
}
