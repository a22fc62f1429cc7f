//! Captured function output: a function's stdout and stderr pipes turned into log lines, with
//! bounds that nothing a function writes can get past.
//!
//! - **The pipe is always read to its end.** No byte, line or error a function writes stops
//!   the reader, so its writes never fail with `EPIPE` and never wait on a reader that quit.
//! - **A line is at most [`OutputLimits::max_line`] bytes** (256 KiB). The rest of a longer
//!   line is read and thrown away as it arrives, and the kept part ends with
//!   `… [truncated N bytes]`: a 200 MB line costs Gust 256 KiB, not 200 MB. A cut never
//!   splits a UTF-8 character.
//! - **Bytes that are not UTF-8 are decoded lossily** (each invalid sequence becomes U+FFFD).
//! - **Lines end at `\n`**; a `\r` just before it is removed, as `BufRead::lines` does. A line
//!   still open when the pipe closes is delivered too.
//! - **At most [`OutputLimits::kept_per_sec`] of lines a second per instance** (1 MiB, stdout
//!   and stderr together) reach the sink, each line counting [`LINE_OVERHEAD`] bytes more than
//!   its length, so that a flood of empty lines is bounded too. Past it, lines are dropped
//!   until the second is over; then one line per stream,
//!   `[gust] dropped N lines (M bytes): ...`, says so.
//! - **Reading is paced at [`OutputLimits::drain_per_sec`]** (64 MiB a second per instance,
//!   after a burst of as much), and at [`OutputLimits::drain_while_dropping_per_sec`] (8 MiB)
//!   while lines are being dropped, since all that is read then is thrown away. A function
//!   writing faster than that waits in `write` for a moment, as it would on a slow terminal,
//!   and then goes on: a writer in a tight loop is throttled and costs Gust a small share of a
//!   core, not a core. While lines are dropped, a read is only counted for newlines: no
//!   lock, no copy, no decoding per line.
//!
//! Memory: per stream, an 8 KiB read buffer (64 KiB while the pipe is full at every read) and
//! a line buffer that grows to `max_line` at most and is given back after a long line. The
//! budget check is one uncontended lock per line and one clock read per read.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Bytes asked for per read: what `BufReader` used before, so idle instances cost the same.
pub(crate) const READ_CHUNK_BYTES: usize = 8 * 1024;
/// What a line counts against the budget on top of its length (the sink's cost per line).
pub(crate) const LINE_OVERHEAD: u64 = 128;
/// Line buffer capacity kept between lines; a longer line's buffer is given back.
const KEEP_CAPACITY: usize = 16 * 1024;
/// The budget's accounting period.
const WINDOW: Duration = Duration::from_secs(1);
/// How far reads may run ahead of the drain rate before the reader sleeps.
const PACE_SLICE: Duration = Duration::from_millis(10);
/// The largest read buffer, for a pipe that is full at every read (a pipe holds 64 KiB).
const FLOOD_CHUNK_BYTES: usize = 64 * 1024;

/// The bounds on one instance's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OutputLimits {
    /// Longest line kept, in bytes (without the marker).
    pub max_line: usize,
    /// Bytes of lines (plus [`LINE_OVERHEAD`] each) delivered per second per instance.
    pub kept_per_sec: u64,
    /// Bytes read per second per instance, after a burst of as much.
    pub drain_per_sec: u64,
    /// Bytes read per second per instance while lines are being dropped (no burst).
    pub drain_while_dropping_per_sec: u64,
}

impl OutputLimits {
    pub(crate) const DEFAULT: Self = Self {
        max_line: 256 * 1024,
        kept_per_sec: 1024 * 1024,
        drain_per_sec: 64 * 1024 * 1024,
        drain_while_dropping_per_sec: 8 * 1024 * 1024,
    };
}

/// Splits a byte stream into lines of at most `max` bytes, whatever the reads' boundaries.
pub(crate) struct LineSplitter {
    max: usize,
    /// The current line's kept bytes (never more than `max`).
    buf: Vec<u8>,
    /// Bytes of the current line past `max`, read and thrown away.
    discarded: u64,
    /// Whether the last discarded byte was a `\r` (of a `\r\n` ending, then not counted).
    discarded_cr: bool,
}

impl LineSplitter {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            max,
            buf: Vec::new(),
            discarded: 0,
            discarded_cr: false,
        }
    }

    /// Takes what one read returned. `line` gets each complete line's kept bytes (without
    /// its `\n` or `\r\n`) and the number of bytes of it that were discarded.
    pub(crate) fn push(&mut self, mut bytes: &[u8], mut line: impl FnMut(&[u8], u64)) {
        while let Some(i) = find_newline(bytes) {
            let part = &bytes[..i];
            bytes = &bytes[i + 1..];
            if self.buf.is_empty() && self.discarded == 0 && part.len() <= self.max {
                // The whole line is in this read (the usual case): no copy.
                line(part.strip_suffix(b"\r").unwrap_or(part), 0);
            } else {
                self.append(part);
                self.end_line(&mut line);
            }
        }
        self.append(bytes);
    }

    /// Throws away `bytes` (while over budget): returns how many lines ended in them and how
    /// many bytes those lines had (without their newlines). A line still open at the end of
    /// `bytes` is kept as the start of the next line.
    pub(crate) fn skip(&mut self, bytes: &[u8]) -> (u64, u64) {
        let lines = count_newlines(bytes);
        let Some(last) = (lines > 0).then(|| bytes.iter().rposition(|&b| b == b'\n')).flatten() else {
            self.append(bytes);
            return (0, 0);
        };
        let dropped = self.buf.len() as u64 + self.discarded + (last as u64 + 1 - lines);
        self.buf.clear();
        self.discarded = 0;
        self.discarded_cr = false;
        self.append(&bytes[last + 1..]);
        (lines, dropped)
    }

    /// Delivers a last line that has no newline (the stream ended).
    pub(crate) fn finish(&mut self, mut line: impl FnMut(&[u8], u64)) {
        if !self.buf.is_empty() || self.discarded > 0 {
            self.end_line(&mut line);
        }
    }

    fn append(&mut self, part: &[u8]) {
        if part.is_empty() {
            return;
        }
        let take = (self.max - self.buf.len()).min(part.len());
        self.buf.extend_from_slice(&part[..take]);
        if take < part.len() {
            self.discarded += (part.len() - take) as u64;
            self.discarded_cr = part[part.len() - 1] == b'\r';
        }
    }

    fn end_line(&mut self, line: &mut impl FnMut(&[u8], u64)) {
        let mut kept = self.buf.len();
        let mut discarded = self.discarded;
        if discarded > 0 && self.discarded_cr {
            discarded -= 1;
        } else if discarded == 0 && self.buf.last() == Some(&b'\r') {
            kept -= 1;
        }
        if discarded > 0 {
            // Cut at a character boundary: an incomplete sequence at the end goes too.
            let tail = incomplete_utf8_tail(&self.buf[..kept]);
            kept -= tail;
            discarded += tail as u64;
        }
        line(&self.buf[..kept], discarded);
        self.buf.clear();
        if self.buf.capacity() > KEEP_CAPACITY {
            self.buf.shrink_to(KEEP_CAPACITY);
        }
        self.discarded = 0;
        self.discarded_cr = false;
    }

    #[cfg(test)]
    fn capacity(&self) -> usize {
        self.buf.capacity()
    }
}

/// The first `\n` in `bytes`, eight bytes at a time.
fn find_newline(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    const NEWLINES: u64 = u64::from_ne_bytes([b'\n'; 8]);
    let mut words = bytes.chunks_exact(8);
    let mut start = 0;
    for word in words.by_ref() {
        let mut w = [0; 8];
        w.copy_from_slice(word);
        let x = u64::from_ne_bytes(w) ^ NEWLINES;
        // Some byte of `x` is zero (a newline in the word): look at it byte by byte.
        if x.wrapping_sub(ONES) & !x & HIGHS != 0 {
            break;
        }
        start += 8;
    }
    bytes[start..].iter().position(|&b| b == b'\n').map(|i| start + i)
}

/// How many `\n` are in `bytes`, eight bytes at a time.
fn count_newlines(bytes: &[u8]) -> u64 {
    const LOWS: u64 = u64::from_ne_bytes([0x7F; 8]);
    const NEWLINES: u64 = u64::from_ne_bytes([b'\n'; 8]);
    let words = bytes.chunks_exact(8);
    let rest = words.remainder();
    let mut n = 0;
    for word in words {
        let mut w = [0; 8];
        w.copy_from_slice(word);
        let x = u64::from_ne_bytes(w) ^ NEWLINES;
        // High bit of each byte set unless the byte is zero (no carry crosses bytes).
        let nonzero = ((x & LOWS) + LOWS) | x;
        n += (!nonzero & !LOWS).count_ones() as u64;
    }
    n + rest.iter().filter(|&&b| b == b'\n').count() as u64
}

/// Bytes at the end of `bytes` that start a UTF-8 sequence they do not complete.
fn incomplete_utf8_tail(bytes: &[u8]) -> usize {
    for back in 1..=bytes.len().min(3) {
        let b = bytes[bytes.len() - back];
        if b & 0xC0 == 0x80 {
            continue; // a continuation byte: look further back for its lead
        }
        let needed = match b {
            0xF0.. => 4,
            0xE0.. => 3,
            0xC0.. => 2,
            _ => 1,
        };
        return if needed > back { back } else { 0 };
    }
    0
}

/// The text of a line: lossy UTF-8, with the marker when part of it was discarded.
pub(crate) fn render(kept: &[u8], discarded: u64) -> String {
    let text = String::from_utf8_lossy(kept);
    if discarded == 0 {
        return text.into_owned();
    }
    let mut line = String::with_capacity(text.len() + 32);
    line.push_str(&text);
    let _ = write!(line, "… [truncated {discarded} bytes]");
    line
}

/// What one instance's output may cost, shared by its stdout and stderr readers.
pub(crate) struct Budget {
    instance: u64,
    limits: OutputLimits,
    state: Mutex<BudgetState>,
}

struct BudgetState {
    window_start: Instant,
    /// Bytes (with overhead) delivered in the current window.
    kept: u64,
    /// Read allowance (token bucket of `drain_per_sec`); negative when reads ran ahead.
    tokens: f64,
    refilled: Instant,
}

type Registry = Mutex<HashMap<u64, Weak<Budget>>>;

fn registry() -> &'static Registry {
    static BUDGETS: OnceLock<Registry> = OnceLock::new();
    BUDGETS.get_or_init(Default::default)
}

impl Budget {
    pub(crate) fn new(instance: u64, limits: OutputLimits) -> Self {
        let now = Instant::now();
        Self {
            instance,
            limits,
            state: Mutex::new(BudgetState {
                window_start: now,
                kept: 0,
                tokens: limits.drain_per_sec as f64,
                refilled: now,
            }),
        }
    }

    /// The budget of `instance`: the same one for its stdout and stderr readers while either
    /// is reading (the registry holds it weakly).
    pub(crate) fn for_instance(instance: u64) -> Arc<Self> {
        let mut budgets = registry().lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = budgets.get(&instance).and_then(Weak::upgrade) {
            return b;
        }
        let b = Arc::new(Self::new(instance, OutputLimits::DEFAULT));
        budgets.insert(instance, Arc::downgrade(&b));
        b
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BudgetState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a line of `len` bytes may be delivered at `now` (then it is counted); if not,
    /// the end of the window, until which nothing more is.
    fn admit(&self, len: usize, now: Instant) -> Result<(), Instant> {
        let mut s = self.lock();
        if now.saturating_duration_since(s.window_start) >= WINDOW {
            s.window_start = now;
            s.kept = 0;
        }
        let cost = len as u64 + LINE_OVERHEAD;
        if s.kept + cost > self.limits.kept_per_sec {
            // Nothing more this window, whatever its size: the reader skips lines cheaply.
            s.kept = self.limits.kept_per_sec;
            return Err(s.window_start + WINDOW);
        }
        s.kept += cost;
        Ok(())
    }

    /// Counts `n` bytes read at `now` (`dropping`: while lines are being dropped); how long
    /// to wait before the next read, if at all.
    fn drained(&self, n: usize, now: Instant, dropping: bool) -> Option<Duration> {
        let (rate, most) = if dropping {
            // No burst for output that is thrown away.
            let rate = self.limits.drain_while_dropping_per_sec as f64;
            (rate, rate * PACE_SLICE.as_secs_f64())
        } else {
            let rate = self.limits.drain_per_sec as f64;
            (rate, rate)
        };
        let mut s = self.lock();
        let elapsed = now.saturating_duration_since(s.refilled).as_secs_f64();
        s.refilled = s.refilled.max(now);
        s.tokens = (s.tokens + elapsed * rate).min(most) - n as f64;
        // Reads may run a slice ahead; then one sleep pays for all of it (a timer has 1 ms
        // granularity, so a sleep per read would pace far below the rate).
        (s.tokens < -rate * PACE_SLICE.as_secs_f64()).then(|| Duration::from_secs_f64(-s.tokens / rate))
    }
}

impl Drop for Budget {
    fn drop(&mut self) {
        let mut budgets = registry().lock().unwrap_or_else(|e| e.into_inner());
        // Another budget may have been registered for this id since (the entry is then live).
        if budgets.get(&self.instance).is_some_and(|w| w.strong_count() == 0) {
            budgets.remove(&self.instance);
        }
    }
}

/// Lines one reader dropped since it last said so, and until when it drops without asking.
#[derive(Default)]
struct Dropping {
    lines: u64,
    bytes: u64,
    until: Option<Instant>,
}

impl Dropping {
    fn is_on(&self, now: Instant) -> bool {
        self.until.is_some_and(|t| now < t)
    }

    fn report(&mut self, limits: &OutputLimits, deliver: &mut impl FnMut(String)) {
        if self.lines > 0 {
            deliver(format!(
                "[gust] dropped {} lines ({} bytes): this instance's output was over {} KiB a second",
                self.lines,
                self.bytes,
                limits.kept_per_sec / 1024
            ));
        }
        *self = Self::default();
    }

    /// Hands a line to `deliver` if the budget has room, else counts it.
    fn offer(&mut self, budget: &Budget, deliver: &mut impl FnMut(String), kept: &[u8], cut: u64, now: Instant) {
        let admitted = if self.is_on(now) {
            false
        } else {
            match budget.admit(kept.len(), now) {
                Ok(()) => true,
                Err(window_end) => {
                    self.until = Some(window_end);
                    false
                }
            }
        };
        if admitted {
            self.report(&budget.limits, deliver);
            deliver(render(kept, cut));
        } else {
            self.lines += 1;
            self.bytes += kept.len() as u64 + cut;
        }
    }
}

/// Reads `reader` to its end and hands each line within `budget` to `deliver`.
pub(crate) async fn read_lines<R: AsyncRead + Unpin>(
    mut reader: R,
    budget: Arc<Budget>,
    mut deliver: impl FnMut(String),
) {
    let limits = budget.limits;
    let mut chunk = vec![0; READ_CHUNK_BYTES];
    let mut splitter = LineSplitter::new(limits.max_line);
    let mut dropping = Dropping::default();
    loop {
        let read = match dropping.until {
            Some(end) if dropping.lines > 0 => {
                // Say what was dropped when the window ends, even if the function goes quiet.
                tokio::select! {
                    read = reader.read(&mut chunk) => read,
                    _ = tokio::time::sleep_until(end.into()) => {
                        dropping.report(&limits, &mut deliver);
                        continue;
                    }
                }
            }
            _ => reader.read(&mut chunk).await,
        };
        let n = match read {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::debug!(error = %e, "function output pipe failed");
                break;
            }
        };
        let now = Instant::now();
        if dropping.is_on(now) {
            // Over budget: count the lines without looking at them one by one.
            let (lines, bytes) = splitter.skip(&chunk[..n]);
            dropping.lines += lines;
            dropping.bytes += bytes;
        } else {
            splitter.push(&chunk[..n], |kept, cut| {
                dropping.offer(&budget, &mut deliver, kept, cut, now)
            });
        }
        // A pipe that is full at every read is read in larger pieces (fewer system calls);
        // the buffer goes back to its small size when the writer slows down.
        if n == chunk.len() && chunk.len() < FLOOD_CHUNK_BYTES {
            chunk = vec![0; FLOOD_CHUNK_BYTES];
        } else if n < READ_CHUNK_BYTES && chunk.len() > READ_CHUNK_BYTES {
            chunk = vec![0; READ_CHUNK_BYTES];
        }
        if let Some(wait) = budget.drained(n, now, dropping.is_on(now)) {
            tokio::time::sleep(wait).await;
        }
    }
    let now = Instant::now();
    splitter.finish(|kept, cut| dropping.offer(&budget, &mut deliver, kept, cut, now));
    dropping.report(&limits, &mut deliver);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `reads` one at a time; returns (line text, bytes discarded).
    fn split(max: usize, reads: &[&[u8]]) -> Vec<(String, u64)> {
        let mut s = LineSplitter::new(max);
        let mut out = Vec::new();
        for r in reads {
            s.push(r, |l, cut| out.push((String::from_utf8_lossy(l).into_owned(), cut)));
        }
        s.finish(|l, cut| out.push((String::from_utf8_lossy(l).into_owned(), cut)));
        out
    }

    fn texts(max: usize, reads: &[&[u8]]) -> Vec<String> {
        split(max, reads).into_iter().map(|(l, _)| l).collect()
    }

    #[test]
    fn lines_split_across_reads() {
        assert_eq!(
            texts(64, &[b"hel", b"lo\nwor", b"ld\n", b"\n", b"last"]),
            ["hello", "world", "", "last"]
        );
        assert_eq!(texts(64, &[b"a\nb\nc\n"]), ["a", "b", "c"]);
        assert!(texts(64, &[b""]).is_empty());
    }

    #[test]
    fn crlf_endings_lose_their_cr_and_other_crs_stay() {
        assert_eq!(texts(64, &[b"a\r\nb\r", b"\nc\n"]), ["a", "b", "c"]);
        assert_eq!(texts(64, &[b"x\ry\n", b"\r\r\n"]), ["x\ry", "\r"]);
        // A line exactly `max` long with a CRLF is not cut.
        assert_eq!(split(4, &[b"abcd\r\n"]), [("abcd".to_string(), 0)]);
        assert_eq!(split(4, &[b"ab", b"cd\r", b"\n"]), [("abcd".to_string(), 0)]);
    }

    #[test]
    fn long_lines_are_capped_and_marked() {
        assert_eq!(
            split(8, &[b"0123456789abc\nnext\n"]),
            [("01234567".to_string(), 5), ("next".to_string(), 0)]
        );
        // The same line over several reads, ending in CRLF: the CR is not counted.
        assert_eq!(
            split(8, &[b"0123", b"456789", b"abc\r", b"\nnext\n"]),
            [("01234567".to_string(), 5), ("next".to_string(), 0)]
        );
        // Cut lines at the end of the stream too.
        assert_eq!(split(2, &[b"abcdef"]), [("ab".to_string(), 4)]);
        assert_eq!(render(b"01234567", 5), "01234567… [truncated 5 bytes]");
        assert_eq!(render(b"plain", 0), "plain");
    }

    #[test]
    fn a_cut_never_splits_a_character() {
        // "abcé": é is two bytes at 3..5; a cut at 4 keeps "abc" and discards é and "!".
        let line = "abcé!\n".as_bytes();
        assert_eq!(split(4, &[line]), [("abc".to_string(), 3)]);
        // A four-byte character cut after one, two or three of its bytes.
        for max in 2..=4 {
            let got = split(max, &["a🦀b\n".as_bytes()]);
            assert_eq!(got, [("a".to_string(), 5)], "max {max}");
        }
        // A cut exactly after a character keeps it.
        assert_eq!(split(5, &["a🦀b\n".as_bytes()]), [("a🦀".to_string(), 1)]);
    }

    #[test]
    fn bytes_that_are_not_utf8_are_replaced() {
        let mut s = LineSplitter::new(64);
        let mut out = Vec::new();
        s.push(b"ok \xff\xfe end\n\xc3", |l, cut| out.push(render(l, cut)));
        s.push(b"\xa9\n\xe2\x82\n", |l, cut| out.push(render(l, cut)));
        assert_eq!(out, ["ok \u{FFFD}\u{FFFD} end", "é", "\u{FFFD}"]);
    }

    #[test]
    fn a_huge_line_keeps_its_buffer_bounded() {
        let max = 1024;
        let mut s = LineSplitter::new(max);
        let chunk = vec![b'x'; 8192];
        let mut out = Vec::new();
        for _ in 0..1000 {
            s.push(&chunk, |l, cut| out.push((l.len(), cut)));
            assert!(s.capacity() <= 2 * max, "{}", s.capacity());
        }
        s.push(b"\nafter\n", |l, cut| out.push((l.len(), cut)));
        assert_eq!(out, [(max, 8192 * 1000 - max as u64), (5, 0)]);
        // A long line's buffer is given back once it ends.
        let mut s = LineSplitter::new(1 << 20);
        s.push(&vec![b'y'; 1 << 19], |_, _| {});
        s.push(b"\n", |_, _| {});
        assert!(s.capacity() <= KEEP_CAPACITY, "{}", s.capacity());
    }

    #[test]
    fn find_newline_agrees_with_a_plain_search() {
        let mut bytes = [b'a'; 100];
        for at in [None, Some(0), Some(7), Some(8), Some(9), Some(63), Some(99)] {
            bytes.iter_mut().for_each(|b| *b = b'a');
            if let Some(i) = at {
                bytes[i] = b'\n';
            }
            // Bytes close to '\n' must not look like it.
            bytes[50] = 0x0b;
            bytes[51] = 0x8a;
            for start in 0..10 {
                let want = bytes[start..].iter().position(|&b| b == b'\n');
                assert_eq!(find_newline(&bytes[start..]), want, "at {at:?} start {start}");
            }
        }
    }

    #[test]
    fn skipping_counts_lines_and_keeps_the_open_one() {
        let mut s = LineSplitter::new(64);
        s.push(b"start of a ", |_, _| panic!("no line yet"));
        assert_eq!(s.skip(b"line\nab\ncd\r\nopen "), (3, 11 + 4 + 2 + 3));
        assert_eq!(s.skip(b"still"), (0, 0));
        let mut out = Vec::new();
        s.push(b" open\n", |l, cut| out.push(render(l, cut)));
        assert_eq!(out, ["open still open"]);
        let flood = b"flood\n".repeat(1000);
        for start in 0..8 {
            let want = flood[start..].iter().filter(|&&b| b == b'\n').count() as u64;
            assert_eq!(count_newlines(&flood[start..]), want);
        }
        assert_eq!(count_newlines(b"\x0b\x8a\n\n\xff\x0a\x00\x0a\x0a"), 5);
    }

    #[test]
    fn budget_drops_past_the_limit_per_window() {
        let limits = OutputLimits {
            max_line: 64,
            kept_per_sec: 10 * (LINE_OVERHEAD + 10),
            drain_per_sec: 1 << 30,
            drain_while_dropping_per_sec: 1 << 30,
        };
        let b = Budget::new(0, limits);
        let t0 = Instant::now();
        let admitted = (0..25).filter(|_| b.admit(10, t0).is_ok()).count();
        assert_eq!(admitted, 10);
        let window_end = b.admit(0, t0 + Duration::from_millis(999)).unwrap_err();
        assert!(window_end <= t0 + WINDOW);
        assert!(b.admit(10, window_end).is_ok());
    }

    #[test]
    fn reads_are_paced_past_the_drain_rate() {
        let limits = OutputLimits {
            max_line: 64,
            kept_per_sec: 1 << 20,
            drain_per_sec: 1000,
            drain_while_dropping_per_sec: 100,
        };
        let b = Budget::new(0, limits);
        let t0 = Instant::now();
        // A burst of one second's worth, then a wait in proportion to what was read ahead.
        assert_eq!(b.drained(1000, t0, false), None);
        let wait = b.drained(500, t0, false).unwrap();
        assert!((wait.as_secs_f64() - 0.5).abs() < 1e-6, "{wait:?}");
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(b.drained(0, t1, false), None);
        // A few reads ahead are let through without a sleep (a timer has 1 ms granularity).
        assert_eq!(b.drained(5, t1, false), None);
        // While dropping: the slower rate, and no burst even after a long pause.
        let t2 = t1 + Duration::from_secs(10);
        assert_eq!(b.drained(1, t2, true), None);
        let wait = b.drained(100, t2, true).unwrap();
        assert!((wait.as_secs_f64() - 1.0).abs() < 1e-6, "{wait:?}");
    }

    #[test]
    fn stdout_and_stderr_of_an_instance_share_a_budget() {
        let id = u64::MAX - 7;
        let a = Budget::for_instance(id);
        let b = Budget::for_instance(id);
        assert!(Arc::ptr_eq(&a, &b));
        drop((a, b));
        assert!(!registry().lock().unwrap().contains_key(&id));
        let c = Budget::for_instance(id);
        assert_eq!(Arc::strong_count(&c), 1);
    }

    #[tokio::test]
    async fn a_flood_is_dropped_and_summarised() {
        let limits = OutputLimits {
            max_line: 64,
            kept_per_sec: 5 * (LINE_OVERHEAD + 4),
            drain_per_sec: 1 << 30,
            drain_while_dropping_per_sec: 1 << 30,
        };
        let flood: Vec<u8> = (0..1000).flat_map(|i| format!("{i:03}\n").into_bytes()).collect();
        let mut out = Vec::new();
        read_lines(&flood[..], Arc::new(Budget::new(0, limits)), |l| out.push(l)).await;
        assert_eq!(out[..5], ["000", "001", "002", "003", "004"]);
        assert_eq!(out.len(), 6, "{out:?}");
        assert_eq!(
            out[5],
            "[gust] dropped 995 lines (2985 bytes): this instance's output was over 0 KiB a second"
        );
    }

    #[tokio::test]
    async fn a_dropped_count_is_reported_when_the_window_ends_even_if_output_stops() {
        let limits = OutputLimits {
            max_line: 64,
            kept_per_sec: LINE_OVERHEAD + 1,
            drain_per_sec: 1 << 30,
            drain_while_dropping_per_sec: 1 << 30,
        };
        let (mut w, r) = tokio::io::duplex(1024);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let reader = tokio::spawn(read_lines(r, Arc::new(Budget::new(0, limits)), move |l| {
            let _ = tx.send(l);
        }));
        tokio::io::AsyncWriteExt::write_all(&mut w, b"a\nb\nc\n").await.unwrap();
        assert_eq!(rx.recv().await.unwrap(), "a");
        // The writer stays open and quiet: the summary still comes, about a second later.
        let summary = tokio::time::timeout(Duration::from_secs(3), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(summary.starts_with("[gust] dropped 2 lines (2 bytes)"), "{summary}");
        tokio::io::AsyncWriteExt::write_all(&mut w, b"d\n").await.unwrap();
        assert_eq!(rx.recv().await.unwrap(), "d");
        drop(w);
        reader.await.unwrap();
    }

    #[tokio::test]
    async fn invalid_utf8_and_huge_lines_never_end_the_reader() {
        let mut input = b"before\n\xff\xfe\n".to_vec();
        input.extend(std::iter::repeat_n(b'z', 3 * 1024 * 1024));
        input.extend(b"\nafter\n");
        let mut out = Vec::new();
        let limits = OutputLimits::DEFAULT;
        read_lines(&input[..], Arc::new(Budget::new(0, limits)), |l| out.push(l)).await;
        assert_eq!(out.len(), 4, "{:?}", out.iter().map(|l| l.len()).collect::<Vec<_>>());
        assert_eq!(out[0], "before");
        assert_eq!(out[1], "\u{FFFD}\u{FFFD}");
        let cut = 3 * 1024 * 1024 - limits.max_line;
        assert_eq!(
            out[2].len(),
            limits.max_line + format!("… [truncated {cut} bytes]").len()
        );
        assert!(out[2].ends_with(&format!("… [truncated {cut} bytes]")));
        assert_eq!(out[3], "after");
    }
}
