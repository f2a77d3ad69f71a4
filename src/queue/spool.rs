//! The spool directory and what can be done to its entries; the layout and the crash
//! argument are in the [module documentation](super).

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::{self as stdfs, DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::envelope::{self, Refusal};
use super::fs::{self, OpenError, Step};
use super::{Backoff, Entry, Listing, NewEntry, id};
use crate::delivery::route::RouteSpec;
use crate::{Error, Result};

/// The system-wide spool, used when it exists and is safe and writable for us.
pub const SYSTEM_SPOOL: &str = "/var/spool/smtpsend";
const LOCK: &str = "lock";
const RUNNER_LOCK: &str = "runner.lock";
const CORRUPT: &str = "corrupt";
const TMP_PREFIX: &str = ".tmp-";
/// Leftovers younger than this may be a writer's work in progress (a slow pipe into
/// `sendmail`); older ones are removed once their writer's process is gone.
const STALE_AFTER: Duration = Duration::from_secs(60 * 60);
/// Leftovers older than this are removed even if a process with their writer's pid
/// exists: by then the pid belongs to someone else.
const ABANDONED_AFTER: Duration = Duration::from_secs(24 * 60 * 60);
/// An envelope is a few hundred bytes; a bigger file than this is not one of ours, and is
/// not read into memory.
const MAX_ENVELOPE: u64 = 4 << 20;

/// A spool directory that passed the safety checks of [`Spool::open`].
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    euid: u32,
    backoff: Backoff,
    /// The system spool shared by every local user through the spool group: files are
    /// made 0660 so the runner of whichever user can take them over.
    shared: bool,
    /// Entries whose envelope is unlinked but not yet made durable: their data files go
    /// at the next [`Spool::settle`].
    unsettled: std::sync::Mutex<Vec<String>>,
}

/// The flusher's lock; released when dropped, or by the kernel when the process dies.
#[derive(Debug)]
pub struct FlushLock {
    _file: File,
}

/// The background runner's lock; see [`Spool::try_lock_runner`].
#[derive(Debug)]
pub struct RunnerLock {
    file: File,
}

/// What reading one entry found.
enum Load {
    Entry(Box<Entry>),
    /// Removed meanwhile (delivered by a flusher): not worth a word.
    Gone,
    Newer(u32),
    /// Could not be read for a reason that is not the entry's fault: leave it.
    Unreadable(String),
    Corrupt(String),
}

impl Spool {
    /// `dir` from config/CLI, else [`SYSTEM_SPOOL`] when it exists and is safe and writable
    /// for us (or we are root and can create it), else `$XDG_STATE_HOME/smtpsend/queue`
    /// (`~/.local/state/smtpsend/queue`). A missing directory is created 0700. A spool
    /// that is a symbolic link, belongs to someone other than us or root, or is writable by
    /// group or others is refused with [`Error::Config`]: whoever can write there can make
    /// us send anything with our credentials.
    ///
    /// An unsafe system spool is passed over for the per-user one rather than refused:
    /// here the caller has a message in hand and nowhere else to put it.
    pub fn open(dir: Option<&Path>) -> Result<Spool> {
        open_dir(Spool::path(dir)?, fs::euid())
    }

    /// [`Spool::open`], but `None` instead of making a spool that is not there: for
    /// looking, when nothing is to be queued.
    pub fn open_if_there(dir: Option<&Path>) -> Result<Option<Spool>> {
        let path = Spool::path(dir)?;
        if stdfs::symlink_metadata(&path).is_err() {
            return Ok(None);
        }
        open_dir(path, fs::euid()).map(Some)
    }

    /// Where the spool is: `dir`, else the default.
    pub fn path(dir: Option<&Path>) -> Result<PathBuf> {
        let euid = fs::euid();
        match dir {
            Some(dir) => Ok(dir.to_path_buf()),
            None => default_dir(
                Path::new(SYSTEM_SPOOL),
                &|name| std::env::var_os(name),
                euid,
                &|| crate::system::identity::passwd(euid).and_then(|p| p.home),
            ),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Open `dir` only if it is a shared spool of our spool group: what `smtpsend-drop`,
    /// running set-group-ID, may write into, and nothing else (not a directory of the
    /// caller's, which the caller could fill with anything).
    pub fn open_shared(dir: &Path) -> Result<Spool> {
        let meta = stdfs::symlink_metadata(dir).map_err(|e| unreachable_dir(dir, &e))?;
        if !fs::is_shared(&meta, fs::egid()) {
            return Err(Error::Config(format!(
                "{} is not a shared spool: it must be a directory of root's, of the group \
                 this program runs with (gid {}), mode 2770",
                dir.display(),
                fs::egid()
            )));
        }
        open_dir(dir.to_path_buf(), fs::euid())
    }

    /// The mode of the files we make: 0660 in a shared spool, else 0600.
    fn file_mode(&self) -> u32 {
        if self.shared { 0o660 } else { 0o600 }
    }

    /// This spool with another retry schedule.
    pub fn with_backoff(mut self, backoff: Backoff) -> Spool {
        self.backoff = backoff;
        self
    }

    pub(super) fn env_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.env"))
    }

    pub(super) fn data_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.data"))
    }

    fn tmp_path(&self, id: &str, ext: &str) -> PathBuf {
        self.dir.join(format!("{TMP_PREFIX}{id}.{ext}"))
    }

    fn sync(&self) -> Result<()> {
        fs::sync_dir(&self.dir).map_err(|e| fs::spool_error(Step::Write, &self.dir, &e))
    }

    /// Stores a message, copying `data` through a fixed buffer, and returns its entry, due
    /// at once. Either the whole entry is there when this returns `Ok`, or nothing of it
    /// is: a full disk or quota is [`Error::TempFail`] (`spool full: ...`), so the caller
    /// keeps the message; other failures are [`Error::CantCreate`] or [`Error::Io`].
    pub fn enqueue(&self, new: &NewEntry, data: &mut dyn Read) -> Result<Entry> {
        check_new(new)?;
        let now = SystemTime::now();
        let id = id::new_id(now);
        let mut entry = new.to_entry(id.clone(), now, self.backoff);
        match self.write_entry(&mut entry, data) {
            Ok(()) => Ok(entry),
            Err(e) => {
                // The names all contain our fresh id, so whatever exists is ours to take
                // back; the envelope first, as in `remove`.
                for path in [
                    self.env_path(&id),
                    self.tmp_path(&id, "env"),
                    self.data_path(&id),
                    self.tmp_path(&id, "data"),
                ] {
                    let _ = stdfs::remove_file(path);
                }
                let _ = fs::sync_dir(&self.dir);
                Err(e)
            }
        }
    }

    fn write_entry(&self, entry: &mut Entry, data: &mut dyn Read) -> Result<()> {
        let tmp_data = self.tmp_path(&entry.id, "data");
        let mut file = fs::create_new(&tmp_data, self.file_mode())
            .map_err(|e| fs::spool_error(Step::Create, &tmp_data, &e))?;
        entry.size = copy_message(data, &mut file, &tmp_data)?;
        file.sync_all()
            .map_err(|e| fs::spool_error(Step::Write, &tmp_data, &e))?;
        drop(file);

        let tmp_env = self.tmp_path(&entry.id, "env");
        fs::write_new(
            &tmp_env,
            envelope::encode(entry)?.as_bytes(),
            self.file_mode(),
        )?;

        let data_path = self.data_path(&entry.id);
        stdfs::rename(&tmp_data, &data_path)
            .map_err(|e| fs::spool_error(Step::Create, &data_path, &e))?;
        // The data file's name must be on disk before the envelope that points to it.
        self.sync()?;
        let env_path = self.env_path(&entry.id);
        stdfs::rename(&tmp_env, &env_path)
            .map_err(|e| fs::spool_error(Step::Create, &env_path, &e))?;
        self.sync()
    }

    /// Every whole entry, oldest first. An entry that cannot be trusted (an envelope that
    /// does not parse, a data file missing, of the wrong size or a symbolic link) is moved
    /// to `corrupt/` and named in the warnings: never sent, never half sent. Leftovers of
    /// crashed writers are removed on the way.
    pub fn list(&self) -> Result<Listing> {
        let now = SystemTime::now();
        let unreadable = |e: io::Error| Error::io(self.dir.display().to_string(), e);
        let mut envs = Vec::new();
        let mut datas = Vec::new();
        let mut temps = Vec::new();
        for item in stdfs::read_dir(&self.dir).map_err(unreadable)? {
            let name = item.map_err(unreadable)?.file_name();
            // Every name we make is ASCII; anything else is not ours.
            let Some(name) = name.to_str() else { continue };
            if name.starts_with(TMP_PREFIX) {
                temps.push(name.to_string());
            } else if let Some(id) = name.strip_suffix(".env").filter(|id| id::is_valid(id)) {
                envs.push(id.to_string());
            } else if let Some(id) = name.strip_suffix(".data").filter(|id| id::is_valid(id)) {
                datas.push(id.to_string());
            }
        }
        envs.sort();

        let mut listing = Listing::default();
        for id in &envs {
            let shown = self.env_path(id);
            let shown = shown.display();
            match self.load(id) {
                Load::Entry(entry) => listing.entries.push(*entry),
                Load::Gone => {}
                Load::Newer(version) => listing.warnings.push(format!(
                    "{shown}: written by a newer smtpsend (format version {version}); left alone"
                )),
                Load::Unreadable(why) => {
                    listing.warnings.push(format!("{shown}: {why}; skipped"));
                }
                Load::Corrupt(why) => self.set_aside(id, &why, &mut listing.warnings),
            }
        }

        // A data file without an envelope is an enqueue in progress or one that crashed
        // between its two renames; a temporary is a write in progress or a crashed one.
        let with_envelope: HashSet<&String> = envs.iter().collect();
        // Each with its writer's pid and, for a data file, the envelope that would make it
        // an entry.
        let mut leftovers: Vec<(PathBuf, Option<u32>, Option<PathBuf>)> = datas
            .iter()
            .filter(|id| !with_envelope.contains(id))
            .map(|id| (self.data_path(id), id::pid_of(id), Some(self.env_path(id))))
            .collect();
        leftovers.extend(temps.iter().map(|name| {
            let creator = name
                .get(TMP_PREFIX.len()..TMP_PREFIX.len() + id::ID_LEN)
                .and_then(id::pid_of);
            (self.dir.join(name), creator, None)
        }));
        for (path, creator, envelope) in leftovers {
            if !is_stale(&path, creator, now) {
                continue;
            }
            // The envelope may have arrived since the directory was read.
            if envelope.is_some_and(|env| env.symlink_metadata().is_ok()) {
                continue;
            }
            match stdfs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => listing.warnings.push(format!(
                    "{}: stale leftover not removed: {}",
                    path.display(),
                    crate::os_error::describe(&e)
                )),
            }
        }
        Ok(listing)
    }

    fn load(&self, id: &str) -> Load {
        let path = self.env_path(id);
        let file = match fs::open_regular(&path) {
            Ok((file, _)) => file,
            Err(OpenError::Missing) => return Load::Gone,
            Err(OpenError::Symlink) => {
                return Load::Corrupt(
                    "the envelope is a symbolic link; refused, not followed".into(),
                );
            }
            Err(OpenError::NotRegular) => {
                return Load::Corrupt("the envelope is not a regular file".into());
            }
            Err(OpenError::Other(e)) => {
                return Load::Unreadable(crate::os_error::describe(&e));
            }
        };
        let text = match fs::read_limited(file, MAX_ENVELOPE) {
            Ok(Some(text)) => text,
            Ok(None) => {
                return Load::Corrupt(format!("the envelope is over {MAX_ENVELOPE} bytes"));
            }
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                return Load::Corrupt("the envelope is not UTF-8 text".into());
            }
            Err(e) => return Load::Unreadable(crate::os_error::describe(&e)),
        };
        let entry = match envelope::decode(&text, id) {
            Ok(entry) => entry,
            Err(Refusal::Newer(version)) => return Load::Newer(version),
            Err(Refusal::Corrupt(why)) => return Load::Corrupt(format!("envelope {why}")),
        };
        match stdfs::symlink_metadata(self.data_path(id)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Load::Corrupt("its data file is missing".into())
            }
            Err(e) => Load::Unreadable(format!("its data file: {}", crate::os_error::describe(&e))),
            Ok(meta) if meta.file_type().is_symlink() => {
                Load::Corrupt("its data file is a symbolic link; refused, not followed".into())
            }
            Ok(meta) if !meta.is_file() => {
                Load::Corrupt("its data file is not a regular file".into())
            }
            Ok(meta) if meta.len() != entry.size => Load::Corrupt(format!(
                "its data file has {} bytes where the envelope says {}: truncated or damaged",
                meta.len(),
                entry.size
            )),
            Ok(_) => Load::Entry(Box::new(entry)),
        }
    }

    /// Moves entry `id` out of the way of the flusher, into `corrupt/` where a person can
    /// look at it. Renaming moves a symbolic link itself, never what it points to.
    fn set_aside(&self, id: &str, why: &str, warnings: &mut Vec<String>) {
        let corrupt = match self.corrupt_dir() {
            Ok(dir) => dir,
            Err(e) => {
                warnings.push(format!(
                    "queue entry {id}: {why}; skipped (could not set it aside: {e})"
                ));
                return;
            }
        };
        match stdfs::rename(self.env_path(id), corrupt.join(format!("{id}.env"))) {
            Ok(()) => {}
            // Delivered and removed by a flusher while we looked: its data went first.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return,
            Err(e) => {
                warnings.push(format!(
                    "queue entry {id}: {why}; skipped (could not set it aside: {})",
                    crate::os_error::describe(&e)
                ));
                return;
            }
        }
        let data = self.data_path(id);
        match stdfs::rename(&data, corrupt.join(format!("{id}.data"))) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => warnings.push(format!(
                "{}: not moved to {}: {}",
                data.display(),
                corrupt.display(),
                crate::os_error::describe(&e)
            )),
            _ => {}
        }
        let _ = fs::sync_dir(&self.dir);
        warnings.push(format!(
            "queue entry {id}: {why}; moved to {}",
            corrupt.display()
        ));
    }

    fn corrupt_dir(&self) -> std::result::Result<PathBuf, String> {
        let dir = self.dir.join(CORRUPT);
        match DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(format!(
                    "{}: {}",
                    dir.display(),
                    crate::os_error::describe(&e)
                ));
            }
        }
        let meta = stdfs::symlink_metadata(&dir)
            .map_err(|e| format!("{}: {}", dir.display(), crate::os_error::describe(&e)))?;
        match fs::unsafe_dir(&meta, self.euid) {
            None => Ok(dir),
            Some(why) => Err(format!("{} {why}", dir.display())),
        }
    }

    /// The entries due at `now`, oldest first, with the warnings of [`Spool::list`].
    /// Entries waiting for credentials are always due: nothing but a login makes them
    /// deliverable, and trying costs one token look-up, not a connection.
    pub fn due(&self, now: SystemTime) -> Result<Listing> {
        let mut listing = self.list()?;
        listing
            .entries
            .retain(|e| e.next_attempt <= now || e.waiting_for_auth);
        Ok(listing)
    }

    /// The message of `entry`, checked to be a regular file of the recorded size, so a
    /// truncated message is never sent as if it were whole.
    pub fn open_data(&self, entry: &Entry) -> Result<File> {
        check_id(&entry.id)?;
        let path = self.data_path(&entry.id);
        let shown = path.display();
        let (file, meta) = fs::open_regular(&path).map_err(|e| match e {
            OpenError::Missing => Error::io_text(shown.to_string(), "missing"),
            OpenError::Symlink => Error::Config(format!(
                "{shown}: is a symbolic link; refused, not followed"
            )),
            OpenError::NotRegular => Error::Config(format!("{shown}: is not a regular file")),
            OpenError::Other(e) => Error::io(shown.to_string(), e),
        })?;
        if meta.len() != entry.size {
            return Err(Error::io_text(
                shown.to_string(),
                &format!(
                    "{} bytes where the envelope says {}: truncated or damaged; not sent",
                    meta.len(),
                    entry.size
                ),
            ));
        }
        Ok(file)
    }

    /// After a failed attempt: counts it, keeps `error` for the listing and schedules the
    /// next try after the spool's [`Backoff`] from `now`. `entry` is changed only once that is on disk.
    pub fn record_failure(&self, entry: &mut Entry, error: &str, now: SystemTime) -> Result<()> {
        let mut updated = entry.clone();
        updated.attempts = updated.attempts.saturating_add(1);
        updated.last_error = Some(error.to_string());
        let next = now
            .checked_add(self.backoff.after(updated.attempts))
            .unwrap_or(now);
        updated.next_attempt = envelope::whole_seconds(next);
        self.rewrite(&updated)?;
        *entry = updated;
        Ok(())
    }

    /// Entries queued for `route` that wait for their retry time: due now, because a
    /// message just went through that route (the relay is back). Only under the flush lock,
    /// so a queue run's own updates are never overwritten; returns how many were made due
    /// (none when a run holds the lock: that run is trying them anyway). Those in `except`
    /// were just tried through that route and keep the back-off their failure gave them.
    pub fn make_due(&self, route: &RouteSpec, now: SystemTime, except: &[String]) -> Result<usize> {
        let waiting = |e: &Entry| e.route.as_ref() == Some(route) && !except.contains(&e.id);
        if !self.list()?.entries.iter().any(waiting) {
            return Ok(0);
        }
        let Some(_lock) = self.try_lock_flush()? else {
            return Ok(0);
        };
        let now = envelope::whole_seconds(now);
        let mut made = 0;
        for entry in self.list()?.entries {
            if waiting(&entry) && entry.next_attempt > now {
                let mut updated = entry;
                updated.next_attempt = now;
                self.rewrite(&updated)?;
                made += 1;
            }
        }
        Ok(made)
    }

    /// After a transaction that some recipients accepted: they are moved to `delivered` so
    /// a retry sends only to the rest. When none is left the entry is removed.
    pub fn record_delivered(&self, entry: &mut Entry, delivered: &[String]) -> Result<()> {
        let (done, rest): (Vec<String>, Vec<String>) = entry
            .recipients
            .iter()
            .cloned()
            .partition(|r| delivered.contains(r));
        if done.is_empty() {
            return Ok(());
        }
        let mut updated = entry.clone();
        updated.recipients = rest;
        updated.delivered.extend(done);
        if updated.recipients.is_empty() {
            self.remove(&updated)?;
        } else {
            self.rewrite(&updated)?;
        }
        *entry = updated;
        Ok(())
    }

    /// Replaces the envelope of an entry that is still there.
    fn rewrite(&self, entry: &Entry) -> Result<()> {
        check_id(&entry.id)?;
        let path = self.env_path(&entry.id);
        let shown = path.display();
        // Never bring back an entry removed meanwhile (by `remove_id`): its data file may
        // be gone, or going.
        match stdfs::symlink_metadata(&path) {
            Ok(meta) if meta.is_file() => {}
            Ok(_) => {
                return Err(Error::Config(format!(
                    "{shown}: is not a regular file; refused"
                )));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::io_text(
                    shown.to_string(),
                    "removed from the queue meanwhile",
                ));
            }
            Err(e) => return Err(Error::io(shown.to_string(), e)),
        }
        let text = envelope::encode(entry)?;
        let tmp = self.tmp_path(&id::new_id(SystemTime::now()), "env");
        let result = fs::write_new(&tmp, text.as_bytes(), self.file_mode())
            .and_then(|()| {
                stdfs::rename(&tmp, &path).map_err(|e| fs::spool_error(Step::Create, &path, &e))
            })
            .and_then(|()| self.sync());
        if result.is_err() {
            let _ = stdfs::remove_file(&tmp);
        }
        result
    }

    /// Deletes an entry once the server has said 250 to the end of its data.
    pub fn remove(&self, entry: &Entry) -> Result<()> {
        self.remove_files(&entry.id).map(|_| ())
    }

    /// Removes a delivered entry now, as far as a queue run is concerned (its envelope is
    /// unlinked at once, so a run killed later does not send it again), and durably at
    /// the next [`Spool::settle`], which syncs the directory once for all of them.
    pub fn remove_soon(&self, entry: &Entry) -> Result<()> {
        check_id(&entry.id)?;
        let env = self.env_path(&entry.id);
        match stdfs::remove_file(&env) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(fs::spool_error(Step::Write, &env, &e)),
        }
        self.unsettled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(entry.id.clone());
        Ok(())
    }

    /// Make the removals of [`Spool::remove_soon`] durable: one directory sync, then their
    /// data files go.
    pub fn settle(&self) -> Result<()> {
        let ids = std::mem::take(
            &mut *self
                .unsettled
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        if ids.is_empty() {
            return Ok(());
        }
        self.sync()?;
        for id in ids {
            let data = self.data_path(&id);
            match stdfs::remove_file(&data) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(fs::spool_error(Step::Write, &data, &e)),
            }
        }
        Ok(())
    }

    /// Deletes the entry named by a user (`mailq`-style tools); `Ok(false)` when there is
    /// none. An id that is not one of ours is refused before it becomes a path.
    pub fn remove_id(&self, id: &str) -> Result<bool> {
        self.remove_files(id)
    }

    /// The envelope goes first and is made durable before the data: a crash in between
    /// leaves an orphan data file, which is cleaned up, never an envelope without data.
    fn remove_files(&self, id: &str) -> Result<bool> {
        check_id(id)?;
        let env = self.env_path(id);
        let existed = match stdfs::remove_file(&env) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(fs::spool_error(Step::Write, &env, &e)),
        };
        if !existed {
            return Ok(false);
        }
        self.sync()?;
        let data = self.data_path(id);
        match stdfs::remove_file(&data) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
            Err(e) => Err(fs::spool_error(Step::Write, &data, &e)),
        }
    }

    /// One flusher at a time, so no message is sent twice by two queue runs: an exclusive
    /// `flock` on `lock` in the spool. `Ok(None)` when another process holds it.
    pub fn try_lock_flush(&self) -> Result<Option<FlushLock>> {
        Ok(self.try_lock(LOCK)?.map(|file| FlushLock { _file: file }))
    }

    /// One background runner per spool: an exclusive `flock` on `runner.lock`, held for
    /// the runner's whole life (the kernel lets go when it dies, however it dies).
    /// `Ok(None)` when a runner holds it.
    pub fn try_lock_runner(&self) -> Result<Option<RunnerLock>> {
        Ok(self.try_lock(RUNNER_LOCK)?.map(|file| RunnerLock { file }))
    }

    /// The pid the live runner wrote into its lock, to wake it with; `None` when there
    /// is none to read.
    pub fn runner_pid(&self) -> Option<u32> {
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(self.dir.join(RUNNER_LOCK))
            .ok()?;
        let mut text = String::new();
        file.take(32).read_to_string(&mut text).ok()?;
        text.trim().parse().ok().filter(|&pid| pid > 1)
    }

    /// An exclusive non-blocking `flock` on the file `name` in the spool, made 0600 if it
    /// is not there; a symbolic link or anything but a regular file is refused.
    fn try_lock(&self, name: &str) -> Result<Option<File>> {
        let path = self.dir.join(name);
        let shown = path.display();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(self.file_mode())
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&path)
            .map_err(|e| {
                if fs::is_symlink_refusal(&e) {
                    Error::Config(format!(
                        "{shown}: is a symbolic link; refused, not followed"
                    ))
                } else {
                    fs::spool_error(Step::Create, &path, &e)
                }
            })?;
        let meta = file
            .metadata()
            .map_err(|e| Error::io(shown.to_string(), e))?;
        if !meta.is_file() {
            return Err(Error::Config(format!("{shown}: is not a regular file")));
        }
        if self.shared && meta.uid() == self.euid && meta.mode() & 0o060 != 0o060 {
            // Made under a tight umask: the other users' runners must open it too.
            let _ = file.set_permissions(Permissions::from_mode(0o660));
        }
        match fs::try_flock(&file) {
            Ok(true) => Ok(Some(file)),
            Ok(false) => Ok(None),
            Err(e) => Err(Error::io(format!("{shown}: lock"), e)),
        }
    }
}

impl RunnerLock {
    /// Write our pid into the lock, for senders that want to wake us.
    pub fn record_pid(&mut self) -> io::Result<()> {
        self.file.set_len(0)?;
        self.file.rewind()?;
        writeln!(self.file, "{}", std::process::id())?;
        Ok(())
    }
}

/// Refuses an id that is not one of ours before it is joined to a path.
fn check_id(id: &str) -> Result<()> {
    if id::is_valid(id) {
        Ok(())
    } else {
        Err(Error::Usage(format!("{id:?} is not a queue id")))
    }
}

/// Refuses what could not be read back as a valid envelope: better to fail now, while
/// the caller still has the message, than to set it aside later.
fn check_new(new: &NewEntry) -> Result<()> {
    if new.recipients.is_empty() {
        return Err(Error::Data("no recipients: nothing to queue".into()));
    }
    for address in std::iter::once(&new.from).chain(&new.recipients) {
        if address.chars().any(char::is_control) {
            return Err(Error::Data(format!(
                "address {address:?} has a control character; not queued"
            )));
        }
    }
    for (name, value) in [
        ("account", &new.account),
        ("DSN NOTIFY", &new.dsn_notify),
        ("DSN RET", &new.dsn_ret),
        ("DSN ENVID", &new.dsn_envid),
    ] {
        if value
            .as_deref()
            .is_some_and(|v| v.chars().any(char::is_control))
        {
            return Err(Error::Data(format!(
                "{name} has a control character; not queued"
            )));
        }
    }
    Ok(())
}

/// Streams the message into the spool through one fixed buffer.
fn copy_message(data: &mut dyn Read, out: &mut File, path: &Path) -> Result<u64> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total: u64 = 0;
    loop {
        let n = match data.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(Error::io("reading the message", e));
            }
        };
        let chunk = buf
            .get(..n)
            .ok_or_else(|| Error::Internal(format!("reader returned {n} bytes")))?;
        out.write_all(chunk)
            .map_err(|e| fs::spool_error(Step::Write, path, &e))?;
        total += n as u64;
    }
}

/// Whether a leftover at `path`, written by process `creator`, can go.
fn is_stale(path: &Path, creator: Option<u32>, now: SystemTime) -> bool {
    let Ok(modified) = stdfs::symlink_metadata(path).and_then(|m| m.modified()) else {
        return false;
    };
    let age = now.duration_since(modified).unwrap_or(Duration::ZERO);
    age >= ABANDONED_AFTER || (age >= STALE_AFTER && !creator.is_some_and(fs::pid_alive))
}

/// Where the spool is when nobody said: the system spool when it is usable as is (or can
/// be made, by root), else the XDG state directory. The environment and the password
/// database are passed in so tests need not change the process's own.
pub(super) fn default_dir(
    system: &Path,
    env: &dyn Fn(&str) -> Option<OsString>,
    euid: u32,
    passwd_home: &dyn Fn() -> Option<PathBuf>,
) -> Result<PathBuf> {
    match stdfs::symlink_metadata(system) {
        Ok(meta) => {
            if fs::unsafe_dir(&meta, euid).is_none() && fs::can_write_dir(system) {
                return Ok(system.to_path_buf());
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if euid == 0 && system.parent().is_some_and(Path::is_dir) {
                return Ok(system.to_path_buf());
            }
        }
        Err(_) => {}
    }
    // XDG Base Directory: a relative $XDG_STATE_HOME is invalid and must be ignored.
    let absolute = |name: &str| env(name).map(PathBuf::from).filter(|p| p.is_absolute());
    let state_home = absolute("XDG_STATE_HOME").or_else(|| {
        absolute("HOME")
            .or_else(passwd_home)
            .map(|home| home.join(".local").join("state"))
    });
    match state_home {
        Some(dir) => Ok(dir.join("smtpsend").join("queue")),
        None => Err(Error::Config(format!(
            "no place for the mail queue: {SYSTEM_SPOOL} is not usable and \
             neither $XDG_STATE_HOME nor $HOME is set"
        ))),
    }
}

fn open_dir(dir: PathBuf, euid: u32) -> Result<Spool> {
    let meta = match stdfs::symlink_metadata(&dir) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            create_private_dir(&dir)?;
            stdfs::symlink_metadata(&dir).map_err(|e| unreachable_dir(&dir, &e))?
        }
        Err(e) => return Err(unreachable_dir(&dir, &e)),
    };
    if let Some(why) = fs::unsafe_dir(&meta, euid) {
        return Err(Error::Config(format!(
            "queue directory {} {why}; refused",
            dir.display()
        )));
    }
    Ok(Spool {
        unsettled: std::sync::Mutex::new(Vec::new()),
        shared: fs::is_shared(&meta, fs::egid()),
        dir,
        euid,
        backoff: Backoff::default(),
    })
}

fn create_private_dir(dir: &Path) -> Result<()> {
    let mut builder = DirBuilder::new();
    builder.mode(0o700);
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        builder
            .recursive(true)
            .create(parent)
            .map_err(|e| fs::spool_error(Step::Create, parent, &e))?;
    }
    match builder.recursive(false).create(dir) {
        // Ours and new: make it 0700 whatever the umask took away.
        Ok(()) => stdfs::set_permissions(dir, Permissions::from_mode(0o700))
            .map_err(|e| fs::spool_error(Step::Create, dir, &e)),
        // Made by someone else meanwhile: the checks that follow judge it.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(fs::spool_error(Step::Create, dir, &e)),
    }
}

/// A spool we cannot even look at. Permission denied is temporary, as for the config file:
/// a daemon's user that cannot reach the spool must keep its message, not drop it.
fn unreachable_dir(dir: &Path, e: &io::Error) -> Error {
    let shown = dir.display();
    if e.kind() == io::ErrorKind::PermissionDenied {
        Error::TempFail(format!(
            "queue directory {shown}: {}; the message was not queued",
            crate::os_error::describe(e)
        ))
    } else {
        Error::Config(format!(
            "queue directory {shown}: {}",
            crate::os_error::describe(e)
        ))
    }
}
