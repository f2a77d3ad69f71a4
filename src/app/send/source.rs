//! The message as it was read, kept so that it can be sent again (to the next exchanger,
//! to each domain) or queued after a temporary failure, without holding it in memory.

use super::*;

/// A reader of a shared file at its own offset (pread), so threads need not share one.
pub(crate) struct At<'a> {
    pub(crate) file: &'a std::fs::File,
    pub(crate) pos: u64,
}

/// Read again from the start of the file (a queued message's data file).
impl Reopen for At<'_> {
    fn reopen(&mut self) -> Result<(Vec<u8>, &mut dyn Read), Error> {
        self.pos = 0;
        Ok((Vec::new(), self))
    }
}

impl Read for At<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// The message for the destinations: the input itself, or a copy read once per destination.
pub(super) enum Source<'a> {
    Stream {
        head: Vec<u8>,
        rest: &'a mut dyn Read,
    },
    /// Standard input is a regular file, read from its current offset.
    File {
        head: Vec<u8>,
        file: &'a mut std::fs::File,
    },
    Copy(std::fs::File),
    /// A thread's view of the shared copy.
    At(At<'a>),
}

impl Source<'_> {
    /// The message from its start, read so that it can be had again whole after a
    /// failure: files are re-read from where the body began; a stream is copied into a
    /// private file as it is read.
    pub(super) fn open_retained(&mut self) -> Result<(Vec<u8>, Retained<'_>), Error> {
        match self {
            Source::Stream { head, rest } => Ok((
                std::mem::take(head),
                Retained::Tee {
                    inner: &mut **rest,
                    copy: private_temp_file()?,
                },
            )),
            Source::File { head, file } => {
                let start = file
                    .stream_position()
                    .map_err(|e| Error::Io(format!("reading the message: {e}")))?;
                Ok((std::mem::take(head), Retained::Seek { file, start }))
            }
            Source::Copy(file) => {
                file.seek(SeekFrom::Start(0))
                    .map_err(|e| Error::Io(format!("rewinding the message copy: {e}")))?;
                Ok((Vec::new(), Retained::Seek { file, start: 0 }))
            }
            Source::At(at) => Ok((
                Vec::new(),
                Retained::At(At {
                    file: at.file,
                    pos: 0,
                }),
            )),
        }
    }

    /// The message from its start: what was already read, and the rest.
    pub(super) fn open(&mut self) -> Result<(Vec<u8>, &mut dyn Read), Error> {
        match self {
            Source::Stream { head, rest } => Ok((std::mem::take(head), &mut **rest)),
            Source::File { head, file } => Ok((std::mem::take(head), &mut **file)),
            Source::At(at) => {
                at.pos = 0;
                Ok((Vec::new(), at))
            }
            Source::Copy(file) => {
                file.seek(SeekFrom::Start(0))
                    .map_err(|e| Error::Io(format!("rewinding the message copy: {e}")))?;
                Ok((Vec::new(), file))
            }
        }
    }
}

/// The message for the attempts at one domain's exchangers: the same head each time, and
/// the rest only as long as nothing of it was read.
pub(super) struct Replay<'a> {
    pub(super) head: Vec<u8>,
    pub(super) rest: &'a mut dyn Read,
    pub(super) read: u64,
}

impl Read for Replay<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.rest.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

impl Reopen for Replay<'_> {
    fn reopen(&mut self) -> Result<(Vec<u8>, &mut dyn Read), Error> {
        if self.read > 0 {
            return Err(Error::Internal(
                "the message was partly sent and cannot be offered to another exchanger".into(),
            ));
        }
        Ok((self.head.clone(), self))
    }
}

/// The way back to the whole message while it streams.
pub(super) enum Retained<'a> {
    Seek {
        file: &'a mut std::fs::File,
        start: u64,
    },
    Tee {
        inner: &'a mut dyn Read,
        copy: std::fs::File,
    },
    At(At<'a>),
}

impl Read for Retained<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Retained::Seek { file, .. } => file.read(buf),
            Retained::At(at) => at.read(buf),
            Retained::Tee { inner, copy } => {
                let n = inner.read(buf)?;
                copy.write_all(&buf[..n])?;
                Ok(n)
            }
        }
    }
}

impl<'a> Retained<'a> {
    /// The whole message: `head`, then everything after it, read or not.
    pub(super) fn whole(self, head: Vec<u8>) -> Result<Box<dyn Read + 'a>, Error> {
        let io_error = |e: io::Error| Error::Io(format!("keeping the message for the queue: {e}"));
        match self {
            Retained::Seek { file, start } => {
                file.seek(SeekFrom::Start(start)).map_err(io_error)?;
                Ok(Box::new(io::Cursor::new(head).chain(file)))
            }
            Retained::Tee { inner, mut copy } => {
                io::copy(inner, &mut copy).map_err(io_error)?;
                copy.seek(SeekFrom::Start(0)).map_err(io_error)?;
                Ok(Box::new(io::Cursor::new(head).chain(copy)))
            }
            Retained::At(mut at) => {
                at.pos = 0;
                Ok(Box::new(io::Cursor::new(head).chain(at)))
            }
        }
    }
}

/// An anonymous 0600 file in `$TMPDIR` (O_TMPFILE: it has no name, so nothing is left
/// behind whatever happens to the process).
pub(crate) fn private_temp_file() -> Result<std::fs::File, Error> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = std::env::temp_dir();
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_TMPFILE)
        .open(&dir)
        .map_err(|e| Error::CantCreate(format!("temporary file in {}: {e}", dir.display())))
}
