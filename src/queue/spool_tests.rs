//! Spool tests on real directories: what a crash, a full disk, a damaged file or a
//! planted link leaves, and what the next reader makes of it.

use std::ffi::OsString;
use std::fs::{self, File, Permissions};
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use super::spool::default_dir;
use super::*;
use crate::ExitStatus;

fn new_entry() -> NewEntry {
    NewEntry {
        from: "alice@example.org".into(),
        recipients: vec!["bob@example.org".into(), "carol@example.net".into()],
        account: Some("work".into()),
        route: None,
        dsn_notify: Some("FAILURE".into()),
        dsn_ret: Some("HDRS".into()),
        dsn_envid: Some("QQ314159".into()),
        eight_bit: Some(false),
        reason: Some("mx.example.org: connection refused".into()),
        dot_ends_input: true,
        tried: false,
    }
}

const MESSAGE: &[u8] = b"Subject: hi\r\n\r\nhello\r\n";

fn spool() -> (tempfile::TempDir, Spool) {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(Some(&dir.path().join("queue"))).unwrap();
    (dir, spool)
}

fn enqueue(spool: &Spool, body: &[u8]) -> Entry {
    spool.enqueue(&new_entry(), &mut &body[..]).unwrap()
}

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn read_data(spool: &Spool, entry: &Entry) -> Vec<u8> {
    let mut data = Vec::new();
    spool
        .open_data(entry)
        .unwrap()
        .read_to_end(&mut data)
        .unwrap();
    data
}

fn set_age(path: &Path, age: Duration) {
    let file = File::options().write(true).open(path).unwrap();
    file.set_modified(SystemTime::now() - age).unwrap();
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

/// A pid above any kernel's pid_max: no process has it.
const DEAD_PID: u32 = 0x7fff_fff0;

#[test]
fn an_enqueued_message_is_listed_whole() {
    let (_dir, spool) = spool();
    let entry = enqueue(&spool, MESSAGE);
    assert_eq!(entry.size, MESSAGE.len() as u64);
    assert_eq!(entry.attempts, 0);
    assert_eq!(entry.next_attempt, entry.created);
    assert_eq!(entry.recipients, new_entry().recipients);
    assert_eq!(entry.account.as_deref(), Some("work"));
    let listing = spool.list().unwrap();
    assert_eq!(listing.warnings, Vec::<String>::new());
    assert_eq!(listing.entries, vec![entry.clone()]);
    assert_eq!(read_data(&spool, &entry), MESSAGE);
    assert_eq!(
        names(spool.dir()),
        [format!("{}.data", entry.id), format!("{}.env", entry.id)]
    );
    assert_eq!(entry.envelope().recipients, entry.recipients);
    assert_eq!(entry.dsn().envid.as_deref(), Some("QQ314159"));
}

#[test]
fn a_large_message_is_streamed_exactly() {
    /// `left` bytes of a pattern that depends only on the position, never held in memory
    /// at once.
    struct Pattern {
        at: u64,
        left: u64,
    }
    impl Read for Pattern {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf
                .len()
                .min(usize::try_from(self.left).unwrap_or(usize::MAX))
                .min(1000);
            for b in &mut buf[..n] {
                *b = (self.at % 251) as u8;
                self.at += 1;
            }
            self.left -= n as u64;
            Ok(n)
        }
    }
    let (_dir, spool) = spool();
    let total = 5 << 20;
    let pattern = || Pattern { at: 0, left: total };
    let entry = spool.enqueue(&new_entry(), &mut pattern()).unwrap();
    assert_eq!(entry.size, total);
    let data = read_data(&spool, &entry);
    let mut expected = Vec::new();
    pattern().read_to_end(&mut expected).unwrap();
    assert!(data == expected, "the stored message differs");
}

#[test]
fn entries_are_listed_oldest_first() {
    let (_dir, spool) = spool();
    let ids: Vec<String> = (0..5).map(|_| enqueue(&spool, MESSAGE).id).collect();
    let listed: Vec<String> = spool
        .list()
        .unwrap()
        .entries
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(listed, ids);
}

#[test]
fn files_are_private() {
    let (dir, _) = spool();
    let nested = dir.path().join("a").join("b").join("queue");
    let spool = Spool::open(Some(&nested)).unwrap();
    assert_eq!(mode(&nested), 0o700);
    let entry = enqueue(&spool, MESSAGE);
    assert_eq!(mode(&spool.env_path(&entry.id)), 0o600);
    assert_eq!(mode(&spool.data_path(&entry.id)), 0o600);
    let _lock = spool.try_lock_flush().unwrap().unwrap();
    assert_eq!(mode(&spool.dir().join("lock")), 0o600);
    fs::write(spool.env_path(&entry.id), "garbage").unwrap();
    spool.list().unwrap();
    assert_eq!(mode(&spool.dir().join("corrupt")), 0o700);
}

#[test]
fn a_crash_before_the_envelope_leaves_no_entry_and_fresh_leftovers_alone() {
    let (_dir, spool) = spool();
    let now = SystemTime::now();
    // A data file renamed into place, the envelope not yet: mid-enqueue or crashed.
    let orphan = id::new_id(now);
    fs::write(spool.data_path(&orphan), MESSAGE).unwrap();
    // Temporaries of a write in progress.
    let tmp_data = spool.dir().join(format!(".tmp-{}.data", id::new_id(now)));
    let tmp_env = spool.dir().join(format!(".tmp-{}.env", id::new_id(now)));
    fs::write(&tmp_data, "partial").unwrap();
    fs::write(&tmp_env, "version = 1\nid = ").unwrap();
    let listing = spool.list().unwrap();
    assert_eq!(listing, Listing::default());
    // Young enough to be somebody's work in progress: kept.
    assert!(spool.data_path(&orphan).exists());
    assert!(tmp_data.exists());
    assert!(tmp_env.exists());
}

#[test]
fn stale_leftovers_of_a_dead_writer_are_removed() {
    let (_dir, spool) = spool();
    let dead = id::make(1, DEAD_PID, 0);
    let orphan = spool.data_path(&dead);
    let tmp_data = spool.dir().join(format!(".tmp-{dead}.data"));
    let tmp_env = spool.dir().join(format!(".tmp-{dead}.env"));
    let foreign_tmp = spool.dir().join(".tmp-whatever");
    for path in [&orphan, &tmp_data, &tmp_env, &foreign_tmp] {
        fs::write(path, "x").unwrap();
        set_age(path, Duration::from_secs(2 * 3600));
    }
    let listing = spool.list().unwrap();
    assert_eq!(listing, Listing::default());
    assert_eq!(names(spool.dir()), Vec::<String>::new());
}

#[test]
fn an_old_leftover_of_a_live_writer_waits_a_day() {
    let (_dir, spool) = spool();
    // Written by this (live) process: a slow pipe into sendmail.
    let slow = spool
        .dir()
        .join(format!(".tmp-{}.data", id::new_id(SystemTime::now())));
    fs::write(&slow, "x").unwrap();
    set_age(&slow, Duration::from_secs(2 * 3600));
    spool.list().unwrap();
    assert!(slow.exists());
    set_age(&slow, Duration::from_secs(25 * 3600));
    spool.list().unwrap();
    assert!(!slow.exists());
}

#[test]
fn a_whole_entry_is_never_cleaned_up_however_old() {
    let (_dir, spool) = spool();
    let entry = enqueue(&spool, MESSAGE);
    set_age(&spool.data_path(&entry.id), Duration::from_secs(3 * 86_400));
    assert_eq!(spool.list().unwrap().entries, vec![entry]);
}

fn assert_set_aside(spool: &Spool, id: &str, warnings: &[String], words: &str) {
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains(id), "{warnings:?}");
    assert!(warnings[0].contains(words), "{warnings:?}");
    assert!(warnings[0].contains("moved to"), "{warnings:?}");
    assert!(!spool.env_path(id).exists());
    let corrupt = spool.dir().join("corrupt");
    assert!(
        fs::symlink_metadata(corrupt.join(format!("{id}.env"))).is_ok(),
        "{:?}",
        names(&corrupt)
    );
    // Set aside once; the next listing is quiet about it.
    let again = spool.list().unwrap();
    assert_eq!(again.warnings, Vec::<String>::new());
    assert!(again.entries.iter().all(|e| e.id != id));
}

#[test]
fn a_corrupt_envelope_is_set_aside_with_a_warning() {
    let (_dir, spool) = spool();
    let entry = enqueue(&spool, MESSAGE);
    fs::write(spool.env_path(&entry.id), "version = 1\nfrom = [garbage").unwrap();
    let listing = spool.list().unwrap();
    assert!(listing.entries.is_empty());
    assert_set_aside(&spool, &entry.id, &listing.warnings, "envelope");
    assert!(
        spool
            .dir()
            .join("corrupt")
            .join(format!("{}.data", entry.id))
            .exists()
    );
}

#[test]
fn a_truncated_envelope_is_set_aside() {
    let (_dir, spool) = spool();
    let entry = enqueue(&spool, MESSAGE);
    let path = spool.env_path(&entry.id);
    let text = fs::read(&path).unwrap();
    fs::write(&path, &text[..text.len() / 3]).unwrap();
    let listing = spool.list().unwrap();
    assert!(listing.entries.is_empty());
    assert_set_aside(&spool, &entry.id, &listing.warnings, "envelope");
}

#[test]
fn a_truncated_data_file_is_caught_by_its_size() {
    let (_dir, spool) = spool();
    let entry = enqueue(&spool, MESSAGE);
    let keep = enqueue(&spool, MESSAGE);
    let data = spool.data_path(&entry.id);
    File::options()
        .write(true)
        .open(&data)
        .unwrap()
        .set_len(5)
        .unwrap();
    // Whoever holds the entry from before cannot send it half either.
    let err = spool.open_data(&entry).unwrap_err();
    assert_eq!(err.exit_status(), ExitStatus::IoErr);
    assert!(err.to_string().contains("truncated"), "{err}");
    let listing = spool.list().unwrap();
    assert_eq!(listing.entries, vec![keep]);
    assert_set_aside(
        &spool,
        &entry.id,
        &listing.warnings,
        "5 bytes where the envelope says",
    );
}

#[test]
fn a_missing_data_file_is_set_aside() {
    let (_dir, spool) = spool();
    let entry = enqueue(&spool, MESSAGE);
    fs::remove_file(spool.data_path(&entry.id)).unwrap();
    let listing = spool.list().unwrap();
    assert!(listing.entries.is_empty());
    assert_set_aside(&spool, &entry.id, &listing.warnings, "missing");
}

#[test]
fn a_symlink_planted_as_data_is_refused_not_followed() {
    let (dir, spool) = spool();
    let secret = dir.path().join("secret");
    fs::write(&secret, "Subject: not yours\r\n\r\nprivate").unwrap();
    let entry = spool
        .enqueue(&new_entry(), &mut &b"0123456789012345678901234567890"[..])
        .unwrap();
    let data = spool.data_path(&entry.id);
    fs::remove_file(&data).unwrap();
    symlink(&secret, &data).unwrap();
    let err = spool.open_data(&entry).unwrap_err();
    assert_eq!(err.exit_status(), ExitStatus::Config);
    assert!(err.to_string().contains("symbolic link"), "{err}");
    let listing = spool.list().unwrap();
    assert!(listing.entries.is_empty());
    assert_set_aside(&spool, &entry.id, &listing.warnings, "symbolic link");
    // The link moved, the file it named did not.
    let moved = spool
        .dir()
        .join("corrupt")
        .join(format!("{}.data", entry.id));
    assert!(
        fs::symlink_metadata(&moved)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        fs::read_to_string(&secret).unwrap(),
        "Subject: not yours\r\n\r\nprivate"
    );
}

#[test]
fn a_symlink_planted_as_envelope_is_refused_not_followed() {
    let (dir, spool) = spool();
    let entry = enqueue(&spool, MESSAGE);
    let elsewhere = dir.path().join("forged.env");
    fs::rename(spool.env_path(&entry.id), &elsewhere).unwrap();
    symlink(&elsewhere, spool.env_path(&entry.id)).unwrap();
    let listing = spool.list().unwrap();
    assert!(listing.entries.is_empty());
    assert_set_aside(&spool, &entry.id, &listing.warnings, "symbolic link");
    assert!(elsewhere.exists());
}

#[test]
fn a_symlink_planted_as_the_lock_is_refused() {
    let (dir, spool) = spool();
    let target = dir.path().join("target");
    fs::write(&target, "").unwrap();
    symlink(&target, spool.dir().join("lock")).unwrap();
    let err = spool.try_lock_flush().unwrap_err();
    assert_eq!(err.exit_status(), ExitStatus::Config);
}

#[test]
fn an_envelope_from_a_newer_smtpsend_is_left_in_place() {
    let (_dir, spool) = spool();
    let entry = enqueue(&spool, MESSAGE);
    fs::write(spool.env_path(&entry.id), "version = 3\n").unwrap();
    let listing = spool.list().unwrap();
    assert!(listing.entries.is_empty());
    assert_eq!(listing.warnings.len(), 1);
    assert!(listing.warnings[0].contains("newer smtpsend"));
    assert!(spool.env_path(&entry.id).exists());
    assert!(spool.data_path(&entry.id).exists());
}

#[test]
fn due_keeps_only_entries_whose_time_has_come() {
    let (_dir, spool) = spool();
    let now = SystemTime::now();
    let fresh = enqueue(&spool, MESSAGE);
    let mut failed = enqueue(&spool, MESSAGE);
    spool
        .record_failure(&mut failed, "421 4.3.0 try later", now)
        .unwrap();
    let due = |at| -> Vec<String> {
        spool
            .due(at)
            .unwrap()
            .entries
            .into_iter()
            .map(|e| e.id)
            .collect()
    };
    assert_eq!(due(now + Duration::from_secs(60)), [fresh.id.as_str()]);
    assert_eq!(
        due(now + Duration::from_secs(5 * 60 + 1)),
        [fresh.id.as_str(), failed.id.as_str()]
    );
    assert!(due(fresh.created - Duration::from_secs(1)).is_empty());
}

#[test]
fn a_failure_is_recorded_on_disk_with_the_backoff() {
    let (_dir, spool) = spool();
    let mut entry = enqueue(&spool, MESSAGE);
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    spool
        .record_failure(&mut entry, "mx.example.org: 421 4.3.0 try later", now)
        .unwrap();
    spool
        .record_failure(&mut entry, "mx.example.org: connection refused", now)
        .unwrap();
    assert_eq!(entry.attempts, 2);
    assert_eq!(entry.next_attempt, now + Duration::from_secs(10 * 60));
    let listed = spool.list().unwrap().entries;
    assert_eq!(listed, vec![entry.clone()]);
    assert_eq!(
        listed[0].last_error.as_deref(),
        Some("mx.example.org: connection refused")
    );
    // Only the entry's own two files: no temporaries left by the rewrites.
    assert_eq!(names(spool.dir()).len(), 2, "{:?}", names(spool.dir()));
}

#[test]
fn waiting_for_credentials_is_kept() {
    let (_dir, spool) = spool();
    let mut entry = enqueue(&spool, MESSAGE);
    entry.waiting_for_auth = true;
    spool
        .record_failure(&mut entry, "535 5.7.8 bad credentials", SystemTime::now())
        .unwrap();
    assert!(spool.list().unwrap().entries[0].waiting_for_auth);
}

#[test]
fn a_failure_is_not_recorded_for_an_entry_removed_meanwhile() {
    let (_dir, spool) = spool();
    let mut entry = enqueue(&spool, MESSAGE);
    let before = entry.clone();
    assert!(spool.remove_id(&entry.id).unwrap());
    assert!(
        spool
            .record_failure(&mut entry, "421", SystemTime::now())
            .is_err()
    );
    assert_eq!(entry, before);
    assert_eq!(names(spool.dir()), Vec::<String>::new());
}

#[test]
fn a_retry_goes_only_to_the_recipients_left() {
    let (_dir, spool) = spool();
    let mut entry = enqueue(&spool, MESSAGE);
    spool
        .record_delivered(&mut entry, &["bob@example.org".into()])
        .unwrap();
    assert_eq!(entry.recipients, ["carol@example.net"]);
    assert_eq!(entry.delivered, ["bob@example.org"]);
    assert_eq!(spool.list().unwrap().entries, vec![entry.clone()]);
    assert_eq!(entry.envelope().recipients, ["carol@example.net"]);
    // Nothing new delivered: nothing written.
    spool
        .record_delivered(&mut entry, &["nobody@example.org".into()])
        .unwrap();
    assert_eq!(spool.list().unwrap().entries, vec![entry.clone()]);
    // The last one: the entry is done and goes.
    spool
        .record_delivered(&mut entry, &["carol@example.net".into()])
        .unwrap();
    assert!(entry.recipients.is_empty());
    assert_eq!(names(spool.dir()), Vec::<String>::new());
}

#[test]
fn remove_deletes_both_files() {
    let (_dir, spool) = spool();
    let entry = enqueue(&spool, MESSAGE);
    let other = enqueue(&spool, MESSAGE);
    spool.remove(&entry).unwrap();
    assert_eq!(spool.list().unwrap().entries, vec![other.clone()]);
    // Twice is harmless (a user removed it while the flusher sent it).
    spool.remove(&entry).unwrap();
    assert!(spool.remove_id(&other.id).unwrap());
    assert!(!spool.remove_id(&other.id).unwrap());
    assert_eq!(names(spool.dir()), Vec::<String>::new());
}

#[test]
fn remove_id_refuses_anything_path_like() {
    let (dir, spool) = spool();
    let victim = dir.path().join("victim.env");
    fs::write(&victim, "keep").unwrap();
    let valid = id::new_id(SystemTime::now());
    for bad in [
        "../victim".to_string(),
        "..".to_string(),
        String::new(),
        "/etc/passwd".to_string(),
        format!("../{}", &valid[3..]),
        format!("{}/", &valid[1..]),
        valid.to_ascii_uppercase(),
    ] {
        let err = spool.remove_id(&bad).unwrap_err();
        assert_eq!(err.exit_status(), ExitStatus::Usage, "{bad:?}");
    }
    assert_eq!(fs::read_to_string(&victim).unwrap(), "keep");
    assert!(!spool.remove_id(&valid).unwrap());
}

#[test]
fn only_one_flusher_holds_the_lock() {
    let (_dir, first) = spool();
    let second = Spool::open(Some(first.dir())).unwrap();
    let lock = first.try_lock_flush().unwrap();
    assert!(lock.is_some());
    assert!(second.try_lock_flush().unwrap().is_none());
    assert!(first.try_lock_flush().unwrap().is_none());
    drop(lock);
    assert!(second.try_lock_flush().unwrap().is_some());
}

#[test]
fn a_failing_input_leaves_nothing_behind() {
    struct Broken(bool);
    impl Read for Broken {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if std::mem::replace(&mut self.0, true) {
                return Err(io::Error::from_raw_os_error(libc::EIO));
            }
            buf[0] = b'x';
            Ok(1)
        }
    }
    let (_dir, spool) = spool();
    let err = spool.enqueue(&new_entry(), &mut Broken(false)).unwrap_err();
    assert_eq!(err.exit_status(), ExitStatus::IoErr);
    assert!(
        err.to_string().starts_with("reading the message: "),
        "{err}"
    );
    assert_eq!(names(spool.dir()), Vec::<String>::new());
}

#[test]
fn what_could_not_be_read_back_is_refused_before_queuing() {
    let (_dir, spool) = spool();
    let mut no_one = new_entry();
    no_one.recipients.clear();
    let mut injected = new_entry();
    injected.recipients.push("eve@example.org>\r\nDATA".into());
    for bad in [no_one, injected] {
        let err = spool.enqueue(&bad, &mut &MESSAGE[..]).unwrap_err();
        assert_eq!(err.exit_status(), ExitStatus::DataErr);
    }
    assert_eq!(names(spool.dir()), Vec::<String>::new());
}

#[test]
fn an_unsafe_spool_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real");
    fs::create_dir(&real).unwrap();
    let link = dir.path().join("link");
    symlink(&real, &link).unwrap();
    let err = Spool::open(Some(&link)).unwrap_err();
    assert_eq!(err.exit_status(), ExitStatus::Config);
    assert!(err.to_string().contains("symbolic link"), "{err}");

    fs::set_permissions(&real, Permissions::from_mode(0o770)).unwrap();
    let err = Spool::open(Some(&real)).unwrap_err();
    assert_eq!(err.exit_status(), ExitStatus::Config);
    assert!(err.to_string().contains("writable by group"), "{err}");

    let file = dir.path().join("file");
    fs::write(&file, "").unwrap();
    assert_eq!(
        Spool::open(Some(&file)).unwrap_err().exit_status(),
        ExitStatus::Config
    );
}

#[test]
fn a_spool_of_another_user_is_refused() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("note: not root, cannot give a directory away; skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let theirs = dir.path().join("theirs");
    fs::create_dir(&theirs).unwrap();
    std::os::unix::fs::chown(&theirs, Some(65534), None).unwrap();
    let err = Spool::open(Some(&theirs)).unwrap_err();
    assert_eq!(err.exit_status(), ExitStatus::Config);
    assert!(err.to_string().contains("belongs to uid 65534"), "{err}");
}

fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<OsString> {
    move |name| {
        pairs
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| OsString::from(v))
    }
}

#[test]
fn the_default_spool_is_the_system_one_when_usable() {
    let dir = tempfile::tempdir().unwrap();
    let system = dir.path().join("spool");
    let env = env_of(&[("HOME", "/home/me")]);
    let no_passwd = || None;
    let me = fs::metadata(dir.path()).unwrap().uid();
    let user = PathBuf::from("/home/me/.local/state/smtpsend/queue");

    // Missing: root may create it, anyone else uses their own.
    assert_eq!(default_dir(&system, &env, 0, &no_passwd).unwrap(), system);
    assert_eq!(default_dir(&system, &env, 12345, &no_passwd).unwrap(), user);

    fs::create_dir(&system).unwrap();
    fs::set_permissions(&system, Permissions::from_mode(0o700)).unwrap();
    assert_eq!(default_dir(&system, &env, me, &no_passwd).unwrap(), system);

    // Group-writable (a half-done shared set-up): passed over, not fatal.
    fs::set_permissions(&system, Permissions::from_mode(0o770)).unwrap();
    assert_eq!(default_dir(&system, &env, me, &no_passwd).unwrap(), user);
}

#[test]
fn the_per_user_spool_follows_xdg() {
    let system = Path::new("/nonexistent/smtpsend-test/spool");
    let none = || None;
    let dir = |env: &dyn Fn(&str) -> Option<OsString>, passwd: &dyn Fn() -> Option<PathBuf>| {
        default_dir(system, env, 12345, passwd)
    };
    assert_eq!(
        dir(&env_of(&[("XDG_STATE_HOME", "/st"), ("HOME", "/h")]), &none).unwrap(),
        Path::new("/st/smtpsend/queue")
    );
    // A relative $XDG_STATE_HOME is invalid and ignored.
    assert_eq!(
        dir(&env_of(&[("XDG_STATE_HOME", "st"), ("HOME", "/h")]), &none).unwrap(),
        Path::new("/h/.local/state/smtpsend/queue")
    );
    let passwd = || Some(PathBuf::from("/var/lib/daemon"));
    assert_eq!(
        dir(&env_of(&[]), &passwd).unwrap(),
        Path::new("/var/lib/daemon/.local/state/smtpsend/queue")
    );
    let err = dir(&env_of(&[]), &none).unwrap_err();
    assert_eq!(err.exit_status(), ExitStatus::Config);
}

/// A 64 KiB tmpfs, unmounted when dropped.
struct TinyFs {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl TinyFs {
    fn mount() -> Option<TinyFs> {
        if !rustix::process::geteuid().is_root() {
            return None;
        }
        let dir = tempfile::tempdir().ok()?;
        let path = dir.path().join("mnt");
        fs::create_dir(&path).ok()?;
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k,mode=0700", "smtpsend-test"])
            .arg(&path)
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?;
        status.success().then_some(TinyFs { _dir: dir, path })
    }
}

impl Drop for TinyFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

#[test]
fn a_full_spool_is_a_temporary_failure_and_leaves_nothing() {
    let Some(fs_) = TinyFs::mount() else {
        eprintln!("note: needs root and mount(8) for a tiny tmpfs; ENOSPC test skipped");
        return;
    };
    let spool = Spool::open(Some(&fs_.path.join("queue"))).unwrap();
    let kept = enqueue(&spool, MESSAGE);
    let big = vec![b'x'; 256 * 1024];
    let err = spool.enqueue(&new_entry(), &mut &big[..]).unwrap_err();
    assert_eq!(err.exit_status(), ExitStatus::TempFail, "{err}");
    assert!(err.to_string().starts_with("spool full: "), "{err}");
    assert_eq!(
        names(spool.dir()),
        [format!("{}.data", kept.id), format!("{}.env", kept.id)]
    );
    assert_eq!(spool.list().unwrap().entries, vec![kept]);

    // Room for the data file but not for the envelope: the data file goes too.
    let filler = fs_.path.join("filler");
    let mut file = File::create(&filler).unwrap();
    let page = [0u8; 4096];
    while io::Write::write(&mut file, &page).is_ok_and(|n| n > 0) {}
    let full = file.metadata().unwrap().len();
    file.set_len(full.saturating_sub(4096) / 4096 * 4096)
        .unwrap();
    let err = spool
        .enqueue(&new_entry(), &mut &[b'y'; 4000][..])
        .unwrap_err();
    assert_eq!(err.exit_status(), ExitStatus::TempFail, "{err}");
    assert!(err.to_string().contains(".env"), "{err}");
    assert_eq!(spool.list().unwrap().entries.len(), 1);
    assert_eq!(names(spool.dir()).len(), 2, "{:?}", names(spool.dir()));

    // The spool works again once there is room.
    drop(file);
    fs::remove_file(&filler).unwrap();
    enqueue(&spool, MESSAGE);
}

#[test]
fn an_entry_that_was_tried_waits_for_the_first_backoff() {
    let (_dir, spool) = spool();
    let spool = spool.with_backoff(Backoff {
        first: Duration::from_secs(7),
        max: Duration::from_secs(60),
    });
    let before = SystemTime::now();
    let entry = spool
        .enqueue(
            &NewEntry {
                tried: true,
                ..new_entry()
            },
            &mut &MESSAGE[..],
        )
        .unwrap();
    assert_eq!(entry.attempts, 1);
    assert_eq!(
        entry.last_error.as_deref(),
        Some("mx.example.org: connection refused")
    );
    let wait = entry.next_attempt.duration_since(before).unwrap();
    assert!(
        wait >= Duration::from_secs(6) && wait <= Duration::from_secs(8),
        "{wait:?}"
    );
    // Not due before then; listed as it was written.
    assert!(spool.due(SystemTime::now()).unwrap().entries.is_empty());
    let listed = spool.list().unwrap().entries;
    assert_eq!(listed[0].attempts, 1);
}
