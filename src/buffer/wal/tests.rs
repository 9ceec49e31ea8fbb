use crate::record::Record;
use std::io::Write;

use super::*;

fn options(dir: &Path, segment_bytes: u64) -> WalOptions {
    WalOptions {
        dir: dir.to_path_buf(),
        segment_bytes,
        budget: StorageBudget::new(1 << 30, None),
        recent_frames_bytes: RECENT_FRAMES_BYTES,
    }
}

/// Every frame is read back from its segment file, none from memory.
fn disk_only(dir: &Path, segment_bytes: u64) -> WalOptions {
    WalOptions { recent_frames_bytes: 0, ..options(dir, segment_bytes) }
}

fn frame(records: &[&str]) -> PendingFrame {
    let mut b = FrameBuilder::new(1_700_000_000_000, records.len(), 64);
    for r in records {
        b.push(r.as_bytes());
    }
    b.finish()
}

async fn read_all(reader: &mut WalReader, expect: usize) -> Vec<Record> {
    let mut out = Vec::new();
    while out.len() < expect {
        match reader.next_batch(1 << 20).await.unwrap() {
            Some(batch) => out.extend(batch),
            None => break,
        }
    }
    out
}

fn texts(records: &[Record]) -> Vec<String> {
    records.iter().map(|r| String::from_utf8_lossy(&r.data).into_owned()).collect()
}

#[tokio::test]
async fn appends_are_numbered_in_order_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let (appender, mut reader, report) = open(options(dir.path(), 1 << 20)).unwrap();
    assert_eq!(report.undelivered_records, 0);
    assert_eq!(appender.append(frame(&["a", "b"])).await.unwrap(), 0);
    assert_eq!(appender.append(frame(&["c"])).await.unwrap(), 2);
    let records = read_all(&mut reader, 3).await;
    assert_eq!(texts(&records), ["a", "b", "c"]);
    assert_eq!(records.iter().map(|r| r.seq).collect::<Vec<_>>(), [0, 1, 2]);
}

#[tokio::test]
async fn concurrent_appends_share_group_commits_and_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (appender, mut reader, _) = open(options(dir.path(), 64 << 10)).unwrap();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let a = appender.clone();
        tasks.push(tokio::spawn(async move { a.append(frame(&[&format!("r{i}"), &format!("s{i}")])).await.unwrap() }));
    }
    let mut firsts = Vec::new();
    for t in tasks {
        firsts.push(t.await.unwrap());
    }
    firsts.sort();
    assert_eq!(firsts, (0..200).map(|i| i * 2).collect::<Vec<_>>());
    let records = read_all(&mut reader, 400).await;
    assert_eq!(records.len(), 400);
    assert!(records.windows(2).all(|w| w[1].seq == w[0].seq + 1));
}

#[tokio::test]
async fn reopening_replays_undelivered_records_and_continues_numbering() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (appender, mut reader, _) = open(options(dir.path(), 1 << 20)).unwrap();
        appender.append(frame(&["a", "b", "c"])).await.unwrap();
        appender.append(frame(&["d"])).await.unwrap();
        read_all(&mut reader, 4).await;
        reader.release_below(2, true).await.unwrap();
        appender.close().await;
    }
    let (appender, mut reader, report) = open(options(dir.path(), 1 << 20)).unwrap();
    assert_eq!(report.delivered_below, 2);
    assert_eq!(report.undelivered_records, 2);
    assert_eq!(texts(&read_all(&mut reader, 2).await), ["c", "d"]);
    assert_eq!(appender.append(frame(&["e"])).await.unwrap(), 4);
}

#[tokio::test]
async fn a_torn_tail_is_cut_and_never_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let segment = {
        let (appender, _reader, _) = open(options(dir.path(), 1 << 20)).unwrap();
        appender.append(frame(&["kept"])).await.unwrap();
        appender.close().await;
        list_segments(dir.path()).unwrap().pop().unwrap().1
    };
    // Half a frame, as a crash mid-write leaves it.
    let mut torn = frame(&["torn record that was never acknowledged"]);
    torn.seal(1);
    let mut f = OpenOptions::new().append(true).open(&segment).unwrap();
    f.write_all(&torn.bytes[..torn.bytes.len() / 2]).unwrap();
    drop(f);

    let (appender, mut reader, report) = open(options(dir.path(), 1 << 20)).unwrap();
    assert!(report.torn_bytes_cut > 0);
    assert_eq!(appender.append(frame(&["after"])).await.unwrap(), 1);
    assert_eq!(texts(&read_all(&mut reader, 2).await), ["kept", "after"]);
}

#[tokio::test]
async fn a_corrupted_frame_is_cut_with_everything_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let segment = {
        let (appender, _reader, _) = open(options(dir.path(), 1 << 20)).unwrap();
        appender.append(frame(&["one"])).await.unwrap();
        appender.append(frame(&["two"])).await.unwrap();
        appender.close().await;
        list_segments(dir.path()).unwrap().pop().unwrap().1
    };
    let mut bytes = fs::read(&segment).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x55;
    fs::write(&segment, &bytes).unwrap();
    let (_appender, mut reader, report) = open(options(dir.path(), 1 << 20)).unwrap();
    assert_eq!(report.undelivered_records, 1);
    assert_eq!(texts(&read_all(&mut reader, 1).await), ["one"]);
}

#[tokio::test]
async fn segments_roll_and_are_deleted_once_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let budget = StorageBudget::new(1 << 30, None);
    let opts = WalOptions { budget: budget.clone(), ..options(dir.path(), 64 << 10) };
    let (appender, mut reader, _) = open(opts).unwrap();
    let big = "x".repeat(10_000);
    for _ in 0..20 {
        // Ingest reserves budget before appending; segment deletion releases it.
        let f = frame(&[&big]);
        assert!(budget.try_reserve(f.bytes.len() as u64));
        appender.append(f).await.unwrap();
    }
    assert!(list_segments(dir.path()).unwrap().len() >= 3);
    let records = read_all(&mut reader, 20).await;
    assert_eq!(records.len(), 20, "reads across segment boundaries");
    assert!(budget.used() > 200_000);
    reader.release_below(20, true).await.unwrap();
    assert_eq!(list_segments(dir.path()).unwrap().len(), 1, "only the (new, empty) active segment remains");
    assert_eq!(budget.used(), 0, "a fully delivered WAL releases all its budget, active segment included");
}

#[tokio::test]
async fn releases_still_work_after_close_so_shutdown_can_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (appender, mut reader, _) = open(options(dir.path(), 1 << 20)).unwrap();
    appender.append(frame(&["a", "b"])).await.unwrap();
    appender.close().await;
    read_all(&mut reader, 2).await;
    reader.release_below(2, true).await.unwrap();
    drop(reader);
    assert_eq!(Checkpoint::open(dir.path()).unwrap().1, 2);
}

#[tokio::test]
async fn close_ends_the_reader_after_the_last_committed_record() {
    let dir = tempfile::tempdir().unwrap();
    let (appender, mut reader, _) = open(options(dir.path(), 1 << 20)).unwrap();
    appender.append(frame(&["last"])).await.unwrap();
    appender.close().await;
    assert!(appender.append(frame(&["late"])).await.is_err());
    assert_eq!(texts(&reader.next_batch(1 << 20).await.unwrap().unwrap()), ["last"]);
    assert!(reader.next_batch(1 << 20).await.unwrap().is_none());
}

#[tokio::test]
async fn control_frames_survive_a_restart_and_are_never_read_as_records() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (appender, mut reader, _) = open(options(dir.path(), 1 << 20)).unwrap();
        appender.append(frame(&["a", "b"])).await.unwrap();
        appender.append_control(b"first intent").await.unwrap();
        appender.append(frame(&["c"])).await.unwrap();
        appender.append_control(b"second intent").await.unwrap();
        assert_eq!(texts(&read_all(&mut reader, 3).await), ["a", "b", "c"]);
        reader.release_below(1, true).await.unwrap();
    }
    let (appender, mut reader, report) = open(options(dir.path(), 1 << 20)).unwrap();
    assert_eq!(report.controls, [&b"first intent"[..], &b"second intent"[..]]);
    assert_eq!(report.undelivered_records, 2);
    assert_eq!(appender.append(frame(&["d"])).await.unwrap(), 3, "control frames take no sequence numbers");
    assert_eq!(texts(&read_all(&mut reader, 3).await), ["b", "c", "d"]);
}

#[tokio::test]
async fn a_segment_of_only_control_frames_never_collides_with_the_next() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (appender, _reader, _) = open(options(dir.path(), 1000)).unwrap();
        appender.append(frame(&[&"x".repeat(990)])).await.unwrap();
        // The segment is full: the intent rolls into a new segment that starts at 1, like the
        // active segment the next start creates.
        appender.append_control(b"intent").await.unwrap();
    }
    let (appender, mut reader, report) = open(options(dir.path(), 1000)).unwrap();
    assert_eq!(report.controls.len(), 1);
    assert_eq!(appender.append(frame(&["b"])).await.unwrap(), 1);
    assert_eq!(texts(&read_all(&mut reader, 2).await), ["x".repeat(990), "b".to_string()]);
    drop((appender, reader));
    let (_a, mut reader, report) = open(options(dir.path(), 1000)).unwrap();
    assert_eq!(report.controls.len(), 1, "the control-only segment was not overwritten");
    assert_eq!(texts(&read_all(&mut reader, 2).await)[1], "b");
}

#[tokio::test]
async fn the_watermark_is_persisted_within_a_second_without_further_releases() {
    let dir = tempfile::tempdir().unwrap();
    let (appender, mut reader, _) = open(options(dir.path(), 1 << 20)).unwrap();
    appender.append(frame(&["a", "b", "c"])).await.unwrap();
    read_all(&mut reader, 3).await;
    reader.release_below(2, false).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    assert_eq!(Checkpoint::open(dir.path()).unwrap().1, 2);
}

#[tokio::test]
async fn records_read_before_an_error_are_returned_and_the_error_comes_next() {
    let dir = tempfile::tempdir().unwrap();
    let (appender, mut reader, _) = open(disk_only(dir.path(), 1000)).unwrap();
    appender.append(frame(&[&"a".repeat(900)])).await.unwrap();
    appender.append(frame(&[&"b".repeat(900)])).await.unwrap(); // rolls into a second segment
    let second = list_segments(dir.path()).unwrap().pop().unwrap().1;
    fs::remove_file(&second).unwrap(); // as if it could not be opened (EMFILE, say)
    let first = reader.next_batch(1 << 20).await.unwrap().unwrap();
    assert_eq!(texts(&first), ["a".repeat(900)], "the first segment's record is not lost with the error");
    assert!(matches!(reader.next_batch(1 << 20).await, Err(WalError::Io { .. })));
}

/// A frame of `n` records of `len` bytes each, the `i`th record of the whole test numbered in it.
fn numbered_frame(start: usize, n: usize, len: usize) -> PendingFrame {
    let mut b = FrameBuilder::new(1_700_000_000_000, n, n * len);
    for i in start..start + n {
        b.push(format!("{i:0len$}").as_bytes());
    }
    b.finish()
}

#[tokio::test]
async fn a_reader_that_keeps_up_takes_committed_frames_from_memory() {
    let dir = tempfile::tempdir().unwrap();
    let (appender, mut reader, _) = open(options(dir.path(), 1 << 20)).unwrap();
    appender.append(frame(&["from", "memory"])).await.unwrap();
    // Damage the frame on disk: a read from the file would now fail its checksum.
    let segment = list_segments(dir.path()).unwrap().pop().unwrap().1;
    let mut bytes = fs::read(&segment).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x55;
    fs::write(&segment, &bytes).unwrap();
    assert_eq!(texts(&read_all(&mut reader, 2).await), ["from", "memory"]);
}

#[tokio::test]
async fn a_reader_behind_the_frames_in_memory_reads_the_file_and_resumes_without_gaps_or_repeats() {
    let dir = tempfile::tempdir().unwrap();
    // 64 KiB frames into 1 MiB segments: 6 MiB is more than the writer keeps in memory.
    let (appender, mut reader, _) = open(options(dir.path(), 1 << 20)).unwrap();
    let (n, len) = (64, 1024);
    appender.append(numbered_frame(0, n, len)).await.unwrap();
    let first = read_all(&mut reader, n).await; // from memory; the file position is past it
    let mut frames = 1;
    while frames * n * len < RECENT_FRAMES_BYTES + (2 << 20) {
        appender.append(numbered_frame(frames * n, n, len)).await.unwrap();
        frames += 1;
    }
    let rest = read_all(&mut reader, (frames - 1) * n).await; // the oldest from the files, then memory
    appender.append(numbered_frame(frames * n, n, len)).await.unwrap();
    let last = read_all(&mut reader, n).await;
    let all: Vec<Record> = first.into_iter().chain(rest).chain(last).collect();
    assert_eq!(all.len(), (frames + 1) * n);
    for (i, record) in all.iter().enumerate() {
        assert_eq!(record.seq, i as u64);
        assert_eq!(record.data, format!("{i:0len$}").as_bytes());
    }
    assert!(list_segments(dir.path()).unwrap().len() > 4, "the records crossed segments");
}
