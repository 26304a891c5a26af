//! Container logs. Containers write straight to a file (never to a pipe the agent holds, so a
//! restarting agent cannot hurt them); the agent keeps a small index beside it, one record per
//! poll in which the file grew (end offset, time), which dates every line to within a poll.
//! Lines written while no agent was running are dated when the next agent first sees them.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const POLL: Duration = Duration::from_millis(100);

/// `<dir>/<n>.log` for the container instance numbered `n` (its restart count when it started).
pub fn log_path(dir: &Path, n: u32) -> PathBuf {
    dir.join(format!("{n}.log"))
}

fn index_path(log: &Path) -> PathBuf {
    log.with_extension("idx")
}

/// Instance numbers with a log, ascending.
pub fn instances(dir: &Path) -> Vec<u32> {
    let mut v: Vec<u32> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".log")?.parse().ok())
        .collect();
    v.sort();
    v
}

/// Records growth of `log` since `seen` bytes; returns the new size.
pub fn index_growth(log: &Path, seen: u64) -> u64 {
    let Ok(len) = fs::metadata(log).map(|m| m.len()) else { return seen };
    if len > seen {
        let now = jiff::Timestamp::now().as_nanosecond() as i64;
        let mut rec = Vec::with_capacity(16);
        rec.extend_from_slice(&len.to_le_bytes());
        rec.extend_from_slice(&now.to_le_bytes());
        if let Ok(mut f) = fs::OpenOptions::new().create(true).append(true).open(index_path(log)) {
            let _ = f.write_all(&rec);
        }
    }
    len
}

fn read_index(log: &Path) -> Vec<(u64, i64)> {
    let raw = fs::read(index_path(log)).unwrap_or_default();
    raw.chunks_exact(16)
        .map(|c| (u64::from_le_bytes(c[..8].try_into().unwrap_or_default()), i64::from_le_bytes(c[8..].try_into().unwrap_or_default())))
        .collect()
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub tail_lines: Option<usize>,
    /// Unix nanoseconds: only lines at or after this time.
    pub since: Option<i64>,
    pub timestamps: bool,
}

/// A line of the log and when it was written (unix nanoseconds).
pub struct Line<'a> {
    pub at: i64,
    pub text: &'a [u8],
}

/// Splits `data` (starting at byte `base` of the file) into lines dated by `index`.
pub fn lines<'a>(data: &'a [u8], base: u64, index: &[(u64, i64)], fallback: i64) -> Vec<Line<'a>> {
    let mut out = Vec::new();
    let mut start = 0usize;
    let mut k = 0usize;
    while start < data.len() {
        let end = data[start..].iter().position(|b| *b == b'\n').map(|p| start + p + 1).unwrap_or(data.len());
        let file_end = base + end as u64;
        while k < index.len() && index[k].0 < file_end {
            k += 1;
        }
        let at = index.get(k).map(|r| r.1).unwrap_or(fallback);
        out.push(Line { at, text: &data[start..end] });
        start = end;
    }
    out
}

pub fn format_time(nanos: i64) -> String {
    // RFC 3339 with nine fractional digits, as the kubelet's logs have.
    jiff::Timestamp::from_nanosecond(nanos as i128)
        .map(|t| format!("{}.{:09}Z", t.strftime("%Y-%m-%dT%H:%M:%S"), nanos.rem_euclid(1_000_000_000)))
        .unwrap_or_default()
}

/// Renders the selected lines of `lines` as kubectl shows them.
pub fn render(lines: &[Line], opts: &Options) -> Vec<u8> {
    let selected: Vec<&Line> = lines.iter().filter(|l| opts.since.is_none_or(|s| l.at >= s)).collect();
    let skip = opts.tail_lines.map(|n| selected.len().saturating_sub(n)).unwrap_or(0);
    let mut out = Vec::new();
    for l in &selected[skip..] {
        if opts.timestamps {
            out.extend_from_slice(format_time(l.at).as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(l.text);
    }
    out
}

/// The whole current content of a log, rendered, and how far it was read.
pub fn read_rendered(log: &Path, opts: &Options) -> (Vec<u8>, u64) {
    let data = fs::read(log).unwrap_or_default();
    let index = read_index(log);
    let now = jiff::Timestamp::now().as_nanosecond() as i64;
    (render(&lines(&data, 0, &index, now), opts), data.len() as u64)
}

/// New bytes of `log` after `from`, rendered without tail/since (they are new by definition).
pub fn read_new(log: &Path, from: u64, timestamps: bool) -> (Vec<u8>, u64) {
    let data = fs::read(log).unwrap_or_default();
    if (data.len() as u64) <= from {
        return (Vec::new(), from);
    }
    let index = read_index(log);
    let now = jiff::Timestamp::now().as_nanosecond() as i64;
    let opts = Options { timestamps, ..Default::default() };
    let new = &data[from as usize..];
    (render(&lines(new, from, &index, now), &opts), data.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_take_the_time_of_the_poll_that_first_saw_them() {
        let data = b"a\nbb\nccc\n";
        let index = [(2, 100), (9, 200)];
        let ls = lines(data, 0, &index, 999);
        let got: Vec<(i64, &[u8])> = ls.iter().map(|l| (l.at, l.text)).collect();
        assert_eq!(got, [(100, &b"a\n"[..]), (200, b"bb\n"), (200, b"ccc\n")]);
        // Unindexed bytes get the fallback time.
        assert_eq!(lines(b"x\n", 9, &index, 999)[0].at, 999);
    }

    #[test]
    fn tail_since_and_timestamps_select_and_decorate_lines() {
        let data = b"one\ntwo\nthree\n";
        let ls = lines(data, 0, &[(4, 1_000_000_000), (14, 2_000_000_000)], 0);
        assert_eq!(render(&ls, &Options { tail_lines: Some(2), ..Default::default() }), b"two\nthree\n");
        assert_eq!(render(&ls, &Options { since: Some(1_500_000_000), ..Default::default() }), b"two\nthree\n");
        assert_eq!(render(&ls, &Options { tail_lines: Some(0), ..Default::default() }), b"");
        let stamped = String::from_utf8(render(&ls, &Options { tail_lines: Some(1), timestamps: true, ..Default::default() })).unwrap();
        assert_eq!(stamped, "1970-01-01T00:00:02.000000000Z three\n");
    }

    #[test]
    fn growth_is_indexed_and_instances_are_found_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let log = log_path(dir.path(), 0);
        fs::write(&log, "a\n").unwrap();
        let seen = index_growth(&log, 0);
        assert_eq!(seen, 2);
        assert_eq!(index_growth(&log, seen), 2, "no growth, no record");
        assert_eq!(read_index(&log).len(), 1);
        fs::write(log_path(dir.path(), 10), "").unwrap();
        fs::write(log_path(dir.path(), 2), "").unwrap();
        assert_eq!(instances(dir.path()), [0, 2, 10]);
        let (out, end) = read_new(&log, 0, false);
        assert_eq!((out, end), (b"a\n".to_vec(), 2));
    }
}
