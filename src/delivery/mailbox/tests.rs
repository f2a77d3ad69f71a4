use super::*;
use crate::ExitStatus;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::io::AsRawFd;

const FAST: Timing = Timing {
    wait: Duration::from_secs(5),
    stale: Duration::from_secs(300),
    poll: Duration::from_millis(10),
};

fn spool() -> tempfile::TempDir {
    match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("tempdir: {e}"),
    }
}

fn mailbox(dir: &Path, user: &str) -> Mailbox {
    match mailbox_for(user, dir) {
        Ok(m) => m,
        Err(e) => panic!("{user}: {e}"),
    }
}

fn read(path: &Path) -> Vec<u8> {
    match fs::read(path) {
        Ok(b) => b,
        Err(e) => panic!("{}: {e}", path.display()),
    }
}

fn deliver_ok(m: &Mailbox, sender: &str, body: &[u8]) -> u64 {
    match deliver_with(m, sender, &mut &body[..], &FAST, now_secs()) {
        Ok(n) => n,
        Err(e) => panic!("deliver: {e}"),
    }
}

fn encode(input: &[u8]) -> Vec<u8> {
    let mut e = MboxEncoder::default();
    let mut out = Vec::new();
    e.encode(input, &mut out);
    e.finish(&mut out);
    out
}

/// `Www Mmm dd hh:mm:ss yyyy`, the day padded with a space.
fn is_asctime(s: &str) -> bool {
    let b = s.as_bytes();
    let shape = b"Aaa Aaa 00 00:00:00 0000";
    b.len() == shape.len()
        && b.iter()
            .zip(shape)
            .enumerate()
            .all(|(i, (&c, &k))| match k {
                b'A' => c.is_ascii_uppercase(),
                b'a' => c.is_ascii_lowercase(),
                b'0' if i == 8 => c == b' ' || c.is_ascii_digit(),
                b'0' => c.is_ascii_digit(),
                _ => c == k,
            })
}

/// Split an mbox into (From_ line, rest) pairs at each `\n\nFrom ` boundary; the first
/// line of each must be a well-formed From_ line for `sender`.
fn check_from_line(line: &str, sender: &str) {
    let Some(date) = line.strip_prefix(&format!("From {sender} ")) else {
        panic!("bad From_ line {line:?}");
    };
    assert!(is_asctime(date), "bad date in {line:?}");
}

#[test]
fn mbox_format_exact_bytes() {
    let dir = spool();
    let m = mailbox(dir.path(), "alice");
    let body = b"From: Bob <bob@example.org>\r\nSubject: hi\r\n\r\nFrom here\r\n>From there\r\n\
                 >>From: x\r\nbare\rcr\n From indented\r\nno final newline";
    let n = deliver_ok(&m, "bob@example.org", body);
    let got = read(&dir.path().join("alice"));
    assert_eq!(n, got.len() as u64);
    let text = String::from_utf8_lossy(&got);
    let Some((first, rest)) = text.split_once('\n') else {
        panic!("no From_ line: {text:?}");
    };
    check_from_line(first, "bob@example.org");
    assert_eq!(
        rest,
        "From: Bob <bob@example.org>\nSubject: hi\n\n>From here\n>>From there\n\
         >>From: x\nbare\ncr\n From indented\nno final newline\n\n"
    );
    assert!(!dir.path().join("alice.lock").exists());
}

#[test]
fn encoder_quotes_from_lines_and_normalises_line_ends() {
    let cases: &[(&[u8], &[u8])] = &[
        (b"", b"\n"),
        (b"a\n", b"a\n\n"),
        (b"a", b"a\n\n"),
        (b"a\r\nb\r\n", b"a\nb\n\n"),
        (b"a\rb\r\r\nc", b"a\nb\n\nc\n\n"),
        (b"From x\n", b">From x\n\n"),
        (b">From x\n", b">>From x\n\n"),
        (b">>>From x\n", b">>>>From x\n\n"),
        (b"From: header\n", b"From: header\n\n"),
        (b">From:x\n", b">From:x\n\n"),
        (b"from x\n", b"from x\n\n"),
        (b"FromX\n", b"FromX\n\n"),
        (b" From x\n", b" From x\n\n"),
        (b"a From x\n", b"a From x\n\n"),
        (b"Fro", b"Fro\n\n"),
        (b">>", b">>\n\n"),
        (b"From ", b">From \n\n"),
        (b"\n\n", b"\n\n\n"),
        (b"x\r\nFrom y\r\n", b"x\n>From y\n\n"),
        (b"x\rFrom y", b"x\n>From y\n\n"),
        (b">\n", b">\n\n"),
        (b"Fr\nFrom ", b"Fr\n>From \n\n"),
    ];
    for (input, want) in cases {
        assert_eq!(encode(input), *want, "{:?}", String::from_utf8_lossy(input));
    }
}

#[test]
fn every_split_gives_the_same_output() {
    let input: &[u8] = b"From a\r\n>From b\r\rFro\nFrom\r\n>>From \n\r\nx From y\n>>F";
    let whole = encode(input);
    for i in 0..=input.len() {
        for j in i..=input.len() {
            let mut e = MboxEncoder::default();
            let mut out = vec![];
            e.encode(&input[..i], &mut out);
            e.encode(&input[i..j], &mut out);
            e.encode(&input[j..], &mut out);
            e.finish(&mut out);
            assert_eq!(out, whole, "split {i},{j}");
        }
    }
}

#[test]
fn two_messages_are_appended_in_order() {
    let dir = spool();
    let m = mailbox(dir.path(), "alice");
    let a = deliver_ok(&m, "one@example.org", b"Subject: 1\n\nfirst\n");
    let b = deliver_ok(&m, "<>", b"Subject: 2\n\nsecond");
    let got = read(m.path());
    assert_eq!(got.len() as u64, a + b);
    let text = String::from_utf8_lossy(&got);
    let lines: Vec<&str> = text.split('\n').collect();
    check_from_line(lines[0], "one@example.org");
    assert_eq!(lines[1..5], ["Subject: 1", "", "first", ""]);
    check_from_line(lines[5], "MAILER-DAEMON");
    assert_eq!(lines[6..], ["Subject: 2", "", "second", "", ""]);
}

#[test]
fn sender_in_angle_brackets_and_null_sender() {
    assert_eq!(
        from_line_sender(" <bob@example.org> ").ok().as_deref(),
        Some("bob@example.org")
    );
    assert_eq!(
        from_line_sender("<>").ok().as_deref(),
        Some("MAILER-DAEMON")
    );
    assert_eq!(from_line_sender("").ok().as_deref(), Some("MAILER-DAEMON"));
    match from_line_sender("a@b.example\nFrom evil") {
        Err(e) => assert_eq!(e.exit_status(), ExitStatus::DataErr),
        Ok(s) => panic!("accepted {s:?}"),
    }
}

#[test]
fn dot_lock_held_by_another_delays_delivery_until_released() {
    let dir = spool();
    let m = mailbox(dir.path(), "alice");
    let lock = dir.path().join("alice.lock");
    if let Err(e) = fs::write(&lock, b"12345\n") {
        panic!("{e}");
    }
    let started = Instant::now();
    let worker = {
        let m = m.clone();
        std::thread::spawn(move || {
            deliver_with(&m, "bob@example.org", &mut &b"hello\n"[..], &FAST, 0)
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    assert!(!worker.is_finished(), "delivered while the lock was held");
    assert!(
        !m.path().exists(),
        "mailbox touched while the lock was held"
    );
    if let Err(e) = fs::remove_file(&lock) {
        panic!("{e}");
    }
    match worker.join() {
        Ok(Ok(n)) => assert_eq!(n, read(m.path()).len() as u64),
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert!(!lock.exists(), "our lock was left behind");
}

#[test]
fn a_lock_held_too_long_is_a_temporary_failure() {
    let dir = spool();
    let m = mailbox(dir.path(), "alice");
    let lock = dir.path().join("alice.lock");
    if let Err(e) = fs::write(&lock, b"") {
        panic!("{e}");
    }
    let quick = Timing {
        wait: Duration::from_millis(300),
        ..FAST
    };
    let started = Instant::now();
    let err = match deliver_with(&m, "bob@example.org", &mut &b"x\n"[..], &quick, 0) {
        Err(e) => e,
        Ok(n) => panic!("delivered {n} bytes"),
    };
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(err.exit_status(), ExitStatus::TempFail, "{err}");
    let text = err.to_string();
    assert!(
        text.contains("locked") && text.contains("alice.lock"),
        "{text}"
    );
    assert!(lock.exists(), "someone else's lock was removed");
    assert!(!m.path().exists());
}

#[test]
fn a_stale_dot_lock_is_removed() {
    let dir = spool();
    let m = mailbox(dir.path(), "alice");
    let lock = dir.path().join("alice.lock");
    let old = SystemTime::now() - Duration::from_secs(600);
    let planted = fs::File::create(&lock).and_then(|f| f.set_modified(old));
    if let Err(e) = planted {
        panic!("{e}");
    }
    let started = Instant::now();
    match deliver_with(
        &m,
        "bob@example.org",
        &mut &b"x\n"[..],
        &Timing::STANDARD,
        0,
    ) {
        Ok(_) => {}
        Err(e) => panic!("{e}"),
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(!lock.exists());
}

#[cfg(target_os = "linux")]
#[test]
fn fcntl_lock_held_by_another_delays_delivery_until_released() {
    let dir = spool();
    let m = mailbox(dir.path(), "alice");
    let holder = match OpenOptions::new().create(true).append(true).open(m.path()) {
        Ok(f) => f,
        Err(e) => panic!("{e}"),
    };
    // An open-file-description lock conflicts with the classic fcntl lock the delivery
    // takes even within one process, which stands in for another mail program.
    // rustix has no open-file-description lock, so libc it is: the whole file, written.
    let fl = libc::flock {
        l_type: libc::F_WRLCK as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    };
    // SAFETY: F_OFD_SETLK reads the flock behind the pointer, which is live for the call,
    // on a descriptor `holder` owns; fcntl keeps neither.
    let rc = unsafe { libc::fcntl(holder.as_raw_fd(), libc::F_OFD_SETLK, &fl) };
    assert_eq!(rc, 0, "{}", io::Error::last_os_error());
    let worker = {
        let m = m.clone();
        std::thread::spawn(move || {
            deliver_with(&m, "bob@example.org", &mut &b"hello\n"[..], &FAST, 0)
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        !worker.is_finished(),
        "delivered while the fcntl lock was held"
    );
    assert_eq!(read(m.path()), b"");
    assert!(
        dir.path().join("alice.lock").exists(),
        "dot-lock taken first"
    );
    drop(holder);
    match worker.join() {
        Ok(Ok(n)) => assert_eq!(n, read(m.path()).len() as u64),
        other => panic!("{other:?}"),
    }
    assert!(!dir.path().join("alice.lock").exists());
}

/// Gives `good` bytes, then fails.
struct FailingReader {
    good: usize,
}

impl Read for FailingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.good == 0 {
            return Err(io::Error::other("input broke"));
        }
        let n = buf.len().min(self.good);
        buf[..n].fill(b'x');
        if n == buf.len() {
            buf[n - 1] = b'\n';
        }
        self.good -= n;
        Ok(n)
    }
}

#[test]
fn a_failing_input_leaves_the_mailbox_as_it_was() {
    let dir = spool();
    let m = mailbox(dir.path(), "alice");
    deliver_ok(&m, "bob@example.org", b"Subject: kept\n\nbody\n");
    let before = read(m.path());
    // More than one chunk, so some of it was written before the failure.
    let mut input = FailingReader { good: 3 * CHUNK };
    let err = match deliver_with(&m, "bob@example.org", &mut input, &FAST, 0) {
        Err(e) => e,
        Ok(n) => panic!("delivered {n} bytes"),
    };
    assert_eq!(err.exit_status(), ExitStatus::IoErr, "{err}");
    assert!(err.to_string().contains("input broke"), "{err}");
    assert_eq!(read(m.path()), before);
    assert!(!dir.path().join("alice.lock").exists());
    deliver_ok(&m, "bob@example.org", b"next\n");
    assert!(read(m.path()).starts_with(&before));
}

#[test]
fn a_large_message_is_streamed_whole() {
    let dir = spool();
    let m = mailbox(dir.path(), "alice");
    let line = b"From the start of a line\r\n";
    let count = 4 * CHUNK / line.len() + 7;
    let big: Vec<u8> = line
        .iter()
        .copied()
        .cycle()
        .take(line.len() * count)
        .collect();
    let n = deliver_ok(&m, "bob@example.org", &big);
    let got = read(m.path());
    assert_eq!(n, got.len() as u64);
    let body = &got[got.iter().position(|&b| b == b'\n').map_or(0, |i| i + 1)..];
    assert_eq!(body.len(), count * line.len() + 1);
    assert_eq!(
        body.split(|&b| b == b'\n')
            .filter(|l| *l == b">From the start of a line")
            .count(),
        count
    );
}

#[test]
fn a_symlink_mailbox_is_refused() {
    let dir = spool();
    let m = mailbox(dir.path(), "alice");
    let target = dir.path().join("target");
    if let Err(e) = fs::write(&target, b"precious\n") {
        panic!("{e}");
    }
    for dest in [target.clone(), dir.path().join("missing")] {
        let _ = fs::remove_file(m.path());
        if let Err(e) = std::os::unix::fs::symlink(&dest, m.path()) {
            panic!("{e}");
        }
        let err = match deliver_with(&m, "bob@example.org", &mut &b"x\n"[..], &FAST, 0) {
            Err(e) => e,
            Ok(n) => panic!("delivered {n} bytes through a symlink"),
        };
        assert_eq!(err.exit_status(), ExitStatus::CantCreat, "{err}");
        assert!(err.to_string().contains("symbolic link"), "{err}");
    }
    assert_eq!(read(&target), b"precious\n");
    assert!(!dir.path().join("missing").exists());
    assert!(!dir.path().join("alice.lock").exists());
}

#[test]
fn directories_fifos_and_hard_links_are_refused() {
    let dir = spool();
    let refused = |m: &Mailbox| match deliver_with(m, "b@example.org", &mut &b"x\n"[..], &FAST, 0) {
        Err(e) => {
            assert_eq!(e.exit_status(), ExitStatus::CantCreat, "{e}");
            e.to_string()
        }
        Ok(n) => panic!("delivered {n} bytes to {}", m.path().display()),
    };

    let m = mailbox(dir.path(), "adir");
    if let Err(e) = fs::create_dir(m.path()) {
        panic!("{e}");
    }
    assert!(refused(&m).contains("directory"));

    let m = mailbox(dir.path(), "afifo");
    if let Err(e) = rustix::fs::mknodat(
        rustix::fs::CWD,
        m.path(),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    ) {
        panic!("mkfifo: {e}");
    }
    assert!(refused(&m).contains("not a regular file"));

    let m = mailbox(dir.path(), "alink");
    let other = dir.path().join("other");
    if let Err(e) = fs::write(&other, b"other\n").and_then(|()| fs::hard_link(&other, m.path())) {
        panic!("{e}");
    }
    assert!(refused(&m).contains("hard link"));
    assert_eq!(read(&other), b"other\n");
}

#[test]
fn a_new_mailbox_is_private_and_belongs_to_the_user() {
    let dir = spool();
    let m = mailbox(dir.path(), "root");
    deliver_ok(&m, "bob@example.org", b"x\n");
    let meta = match fs::metadata(m.path()) {
        Ok(meta) => meta,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(meta.permissions().mode() & 0o7777, 0o600);
    if running_as_root() {
        assert_eq!(meta.uid(), 0);
        assert_eq!(meta.gid(), mail_group().unwrap_or(0));
    }
}

#[test]
fn as_root_a_mailbox_of_another_owner_is_refused() {
    if !running_as_root() {
        return;
    }
    let dir = spool();
    let m = mailbox(dir.path(), "root");
    let planted = fs::write(m.path(), b"")
        .and_then(|()| std::os::unix::fs::chown(m.path(), Some(54321), None));
    if let Err(e) = planted {
        panic!("{e}");
    }
    match deliver_with(&m, "bob@example.org", &mut &b"x\n"[..], &FAST, 0) {
        Err(e) => {
            assert_eq!(e.exit_status(), ExitStatus::CantCreat, "{e}");
            assert!(e.to_string().contains("uid 54321"), "{e}");
        }
        Ok(n) => panic!("delivered {n} bytes"),
    }
    assert_eq!(read(m.path()), b"");
}

#[test]
fn names_are_checked_before_they_become_paths() {
    let dir = spool();
    for good in ["alice", "a.b_c-d", "x1", &"a".repeat(32)] {
        let m = mailbox(dir.path(), good);
        assert_eq!(m.path(), dir.path().join(good));
        assert_eq!(m.user(), good);
    }
    for bad in [
        "",
        ".hidden",
        "..",
        "../etc/passwd",
        "a/b",
        "Alice",
        "a b",
        "caf\u{e9}",
        "a\0b",
        "a\nb",
        &"a".repeat(33),
    ] {
        match mailbox_for(bad, dir.path()) {
            Err(e) => assert_eq!(e.exit_status(), ExitStatus::DataErr, "{bad:?}: {e}"),
            Ok(m) => panic!("{bad:?} accepted as {}", m.path().display()),
        }
    }
}

#[test]
fn the_system_spool_only_takes_users_of_this_machine() {
    // Only paths are computed here; nothing in /var/mail is touched.
    let system = Path::new(SPOOL_DIR);
    match mailbox_for("smtpsend-no-such-user", system) {
        Err(e) => {
            assert_eq!(e.exit_status(), ExitStatus::Unavailable, "{e}");
            assert!(e.to_string().contains("no such local user"), "{e}");
        }
        Ok(m) => panic!("accepted {}", m.path().display()),
    }
    let root = mailbox(system, "root");
    assert_eq!(root.path(), Path::new("/var/mail/root"));
    let private = mailbox(spool().path(), "smtpsend-no-such-user");
    assert!(private.owner.is_none());
}

#[test]
fn spool_permission_errors_are_temporary_and_name_path_and_user() {
    let m = mailbox(Path::new("/var/mail"), "root");
    let denied = io::Error::from_raw_os_error(libc::EACCES);
    let err = spool_error(
        &m,
        "cannot create",
        Path::new("/var/mail/root.lock"),
        &denied,
    );
    assert_eq!(err.exit_status(), ExitStatus::TempFail);
    let text = err.to_string();
    assert!(
        text.starts_with("root: cannot create /var/mail/root.lock: Permission denied (running as "),
        "{text}"
    );
    assert!(text.contains("keep it"), "{text}");
    let full = io::Error::from_raw_os_error(libc::ENOSPC);
    assert_eq!(
        spool_error(&m, "cannot write to", m.path(), &full).exit_status(),
        ExitStatus::TempFail
    );
    let eio = io::Error::from_raw_os_error(libc::EIO);
    assert_eq!(
        spool_error(&m, "cannot write to", m.path(), &eio).exit_status(),
        ExitStatus::IoErr
    );
}

#[test]
fn a_missing_spool_directory_is_a_temporary_failure() {
    let dir = spool();
    let m = mailbox(&dir.path().join("nonexistent"), "alice");
    match deliver_with(&m, "bob@example.org", &mut &b"x\n"[..], &FAST, 0) {
        Err(e) => assert_eq!(e.exit_status(), ExitStatus::TempFail, "{e}"),
        Ok(n) => panic!("delivered {n} bytes"),
    }
}

#[test]
fn from_line_dates_are_in_asctime_format() {
    use crate::system::time::asctime_local;
    assert!(is_asctime(&asctime_local(0)));
    assert!(is_asctime(&asctime_local(now_secs())));
    assert!(
        is_asctime(&asctime_local(4_102_444_800)),
        "{}",
        asctime_local(4_102_444_800)
    );
}

#[test]
fn concurrent_deliveries_never_interleave() {
    let dir = spool();
    let m = mailbox(dir.path(), "alice");
    let workers: Vec<_> = (0..8)
        .map(|i| {
            let m = m.clone();
            std::thread::spawn(move || {
                let body = format!("Subject: {i}\n\n{}\n", format!("line {i}\n").repeat(20_000));
                deliver_with(&m, "bob@example.org", &mut body.as_bytes(), &FAST, 0)
            })
        })
        .collect();
    for w in workers {
        match w.join() {
            Ok(Ok(_)) => {}
            other => panic!("{other:?}"),
        }
    }
    let got = read(m.path());
    let text = String::from_utf8_lossy(&got);
    let messages: Vec<&str> = text.split("\n\nFrom bob@example.org ").collect();
    assert_eq!(messages.len(), 8);
    for msg in messages {
        let Some(at) = msg.find("Subject: ") else {
            panic!("no subject in {:?}", &msg[..msg.len().min(80)]);
        };
        let i = &msg[at + 9..at + 10];
        let want = format!("line {i}\n").repeat(20_000);
        assert!(msg.contains(&want), "message {i} is not whole");
        assert_eq!(msg.matches("line ").count(), 20_000, "message {i} mixed");
    }
}
