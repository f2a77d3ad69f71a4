//! The message as it was handed to us, readable again from its start as often as a
//! delivery needs it: for the next exchanger, for each domain, for the queue after a
//! temporary failure. It is never held in memory: a regular file on stdin (or a spool
//! data file) is read again where it began; a pipe is copied, as it is read, into an
//! anonymous private file.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;

use crate::error::Error;

/// A message that can be read again from its start, once per attempt.
pub trait Reopen {
    /// What was already read, and the rest; an error when it cannot be had again. The head
    /// is lent, not copied: it may be as large as a read-ahead block.
    fn reopen(&mut self) -> Result<(&[u8], Box<dyn Read + '_>), Error>;

    /// What was already read, without opening the rest.
    fn head(&self) -> &[u8];

    /// The size as read, when known without reading.
    fn size(&self) -> Option<u64>;
}

impl Reopen for Message<'_> {
    fn reopen(&mut self) -> Result<(&[u8], Box<dyn Read + '_>), Error> {
        let (head, rest) = self.open()?;
        Ok((head, Box::new(rest)))
    }

    fn head(&self) -> &[u8] {
        Message::head(self)
    }

    fn size(&self) -> Option<u64> {
        Message::size(self)
    }
}

impl Reopen for Shared<'_> {
    fn reopen(&mut self) -> Result<(&[u8], Box<dyn Read + '_>), Error> {
        let (head, rest) = self.open();
        Ok((head, Box::new(rest)))
    }

    fn head(&self) -> &[u8] {
        self.head
    }

    fn size(&self) -> Option<u64> {
        let file = self.file.metadata().ok()?.len();
        Some(self.head.len() as u64 + file.saturating_sub(self.start))
    }
}

/// Standard input, or what stands in for it.
pub enum Input<'a> {
    /// A pipe or a terminal: read once.
    Stream(Box<dyn Read + 'a>),
    /// A regular file, read from its current offset.
    File(File),
}

impl<'a> Input<'a> {
    /// The address of the message's first `From` mailbox (`--read-envelope-from`), and the
    /// input as it was: a file is read again from where it stood, a stream gets the bytes
    /// read to find it put back in front of the rest.
    pub fn from_address(self) -> Result<(Option<String>, Input<'a>), Error> {
        match self {
            Input::File(mut file) => {
                let start = file
                    .stream_position()
                    .map_err(|e| Error::io("reading the message", e))?;
                let (from, _) = crate::message::from_address(&mut file)?;
                file.seek(SeekFrom::Start(start))
                    .map_err(|e| Error::io("reading the message", e))?;
                Ok((from, Input::File(file)))
            }
            Input::Stream(mut reader) => {
                let (from, read) = crate::message::from_address(&mut reader)?;
                let again = io::Cursor::new(read).chain(reader);
                Ok((from, Input::Stream(Box::new(again))))
            }
        }
    }
}

/// The message: `head` (the prepared header section and whatever was read past it), then
/// the rest.
pub struct Message<'a> {
    head: Vec<u8>,
    rest: Rest<'a>,
}

enum Rest<'a> {
    /// The rest begins at `start` of a regular file, read with pread so that threads can
    /// share it.
    File { file: File, start: u64 },
    /// A stream, read at most once. With `copy`, every byte read is kept there so the
    /// message can be had again; without it (the caller keeps the message itself), a
    /// second reading is refused once anything was read.
    Stream {
        input: Box<dyn Read + 'a>,
        copy: Option<File>,
        read: u64,
        ended: bool,
    },
}

impl<'a> Message<'a> {
    /// The message whose first bytes, already read, are `head` and whose rest is `input`.
    /// `keep` asks that a stream be kept so it can be read again (a delivery that may
    /// retry or queue); a file can always be read again.
    pub fn new(head: Vec<u8>, input: Input<'a>, keep: bool) -> Result<Message<'a>, Error> {
        let rest = match input {
            Input::File(mut file) => {
                let start = file
                    .stream_position()
                    .map_err(|e| Error::io("reading the message", e))?;
                Rest::File { file, start }
            }
            Input::Stream(input) => Rest::Stream {
                input,
                copy: if keep {
                    Some(private_temp_file()?)
                } else {
                    None
                },
                read: 0,
                ended: false,
            },
        };
        Ok(Message { head, rest })
    }

    /// A message that is all in a file (a spool data file, a composed message).
    pub fn from_file(file: File) -> Message<'static> {
        Message {
            head: Vec::new(),
            rest: Rest::File { file, start: 0 },
        }
    }

    /// A message that is all in memory (a failure notice).
    pub fn from_bytes(bytes: Vec<u8>) -> Message<'static> {
        Message {
            head: bytes,
            rest: Rest::Stream {
                input: Box::new(io::empty()),
                copy: None,
                read: 0,
                ended: true,
            },
        }
    }

    /// The bytes read so far that come first.
    pub fn head(&self) -> &[u8] {
        &self.head
    }

    /// The size in bytes as read (before line ends are made CRLF), when it is known
    /// without reading: a file's, or a stream's that was read to its end.
    pub fn size(&self) -> Option<u64> {
        let head = self.head.len() as u64;
        match &self.rest {
            Rest::File { file, start } => file
                .metadata()
                .ok()
                .map(|m| head + m.len().saturating_sub(*start)),
            Rest::Stream { read, ended, .. } => ended.then_some(head + read),
        }
    }

    /// Put `bytes` before the message (a header field added once the whole message was
    /// read, as a DKIM signature is): every later reading starts with them.
    pub fn prepend(&mut self, bytes: &[u8]) {
        self.head.splice(0..0, bytes.iter().copied());
    }

    /// Read ahead until `head` holds `want` bytes or the message ends; returns whether the
    /// whole message is now in `head`. Asked again after the message was read through (to
    /// sign it) and a field put before it, the answer is the same: a head that holds
    /// `want` bytes already is left as it is, and a whole message has nothing more to
    /// read.
    pub fn read_ahead(&mut self, want: usize) -> Result<bool, Error> {
        if self.head.len() >= want {
            return Ok(self.rest_is_empty());
        }
        if let Rest::Stream { read, .. } = &self.rest
            && *read > 0
        {
            return Err(Error::Internal(
                "reading ahead after the message was read".into(),
            ));
        }
        let missing = want.saturating_sub(self.head.len()) as u64;
        let got = {
            let mut reader = self.rest.reader()?;
            (&mut reader)
                .take(missing)
                .read_to_end(&mut self.head)
                .map_err(|e| Error::NoInput(format!("reading the message: {e}")))?
        } as u64;
        // What went into the head is no longer part of the rest.
        match &mut self.rest {
            Rest::File { start, .. } => *start += got,
            Rest::Stream { copy, read, .. } => {
                if let Some(copy) = copy {
                    copy.set_len(0)
                        .map_err(|e| Error::io("keeping the message", e))?;
                }
                *read = 0;
            }
        }
        Ok(got < missing)
    }

    /// Whether it is known, without reading, that nothing follows the head.
    fn rest_is_empty(&self) -> bool {
        match &self.rest {
            Rest::File { file, start } => file.metadata().is_ok_and(|m| m.len() <= *start),
            Rest::Stream { read, ended, .. } => *ended && *read == 0,
        }
    }

    /// The whole message from its start: the head, then the rest.
    pub fn open(&mut self) -> Result<(&[u8], RestReader<'_, 'a>), Error> {
        Ok((&self.head, self.rest.reader()?))
    }

    /// The whole message as one reader.
    pub fn reader(&mut self) -> Result<impl Read + '_, Error> {
        let (head, rest) = self.open()?;
        Ok(io::Cursor::new(head).chain(rest))
    }

    /// The message as a file every thread can read at its own offset: a stream is read to
    /// its end into the private copy first.
    pub fn share(&mut self) -> Result<Shared<'_>, Error> {
        if let Rest::Stream {
            input,
            copy,
            read,
            ended,
        } = &mut self.rest
        {
            if copy.is_none() {
                if *read > 0 {
                    return Err(once_only());
                }
                *copy = Some(private_temp_file()?);
            }
            let Some(file) = copy.as_mut() else {
                return Err(Error::Internal("message copy vanished".into()));
            };
            if !*ended {
                file.seek(SeekFrom::End(0))
                    .and_then(|_| io::copy(input, file))
                    .map(|n| *read += n)
                    .map_err(|e| Error::io("copying the message for several destinations", e))?;
                *ended = true;
            }
        }
        let (file, start) = match &self.rest {
            Rest::File { file, start } => (file, *start),
            Rest::Stream {
                copy: Some(file), ..
            } => (file, 0),
            Rest::Stream { copy: None, .. } => {
                return Err(Error::Internal("message copy vanished".into()));
            }
        };
        Ok(Shared {
            head: &self.head,
            file,
            start,
        })
    }
}

impl<'a> Rest<'a> {
    fn reader(&mut self) -> Result<RestReader<'_, 'a>, Error> {
        match self {
            Rest::File { file, start } => Ok(RestReader::File(At { file, pos: *start })),
            Rest::Stream {
                input,
                copy,
                read,
                ended,
            } => {
                if copy.is_none() && *read > 0 {
                    return Err(once_only());
                }
                Ok(RestReader::Stream {
                    input: &mut **input,
                    copy: copy.as_mut(),
                    replayed: 0,
                    read,
                    ended,
                })
            }
        }
    }
}

fn once_only() -> Error {
    Error::Internal(
        "the message was partly sent and cannot be read again (a stream that was not kept)".into(),
    )
}

/// The rest of the message from its start: what an earlier reading kept, then the input.
pub enum RestReader<'m, 'a> {
    File(At<'m>),
    Stream {
        input: &'m mut (dyn Read + 'a),
        copy: Option<&'m mut File>,
        /// How much of the kept copy this reader has given back.
        replayed: u64,
        read: &'m mut u64,
        ended: &'m mut bool,
    },
}

impl Read for RestReader<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            RestReader::File(at) => at.read(buf),
            RestReader::Stream {
                input,
                copy,
                replayed,
                read,
                ended,
            } => {
                if let Some(copy) = copy
                    && *replayed < **read
                {
                    let want = buf.len().min((**read - *replayed) as usize);
                    let n = copy.read_at(&mut buf[..want], *replayed)?;
                    *replayed += n as u64;
                    return Ok(n);
                }
                if **ended {
                    return Ok(0);
                }
                let n = input.read(buf)?;
                if n == 0 {
                    **ended = true;
                    return Ok(0);
                }
                if let Some(copy) = copy {
                    copy.write_all_at(&buf[..n], **read)?;
                    *replayed += n as u64;
                }
                **read += n as u64;
                Ok(n)
            }
        }
    }
}

/// A message in a file, shared between threads: each reads with its own [`At`].
#[derive(Clone, Copy)]
pub struct Shared<'m> {
    head: &'m [u8],
    file: &'m File,
    start: u64,
}

impl<'m> Shared<'m> {
    /// A message that is the whole of `file` (a spool data file).
    pub fn whole_file(file: &'m File) -> Shared<'m> {
        Shared {
            head: &[],
            file,
            start: 0,
        }
    }

    /// A reader of the rest from its start, and the head.
    pub fn open(&self) -> (&'m [u8], At<'m>) {
        (
            self.head,
            At {
                file: self.file,
                pos: self.start,
            },
        )
    }
}

/// A reader of a file at its own offset (pread), so threads need not share one.
pub struct At<'a> {
    pub file: &'a File,
    pub pos: u64,
}

impl Read for At<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// An anonymous 0600 file in `$TMPDIR` (O_TMPFILE: it has no name, so nothing is left
/// behind whatever happens to the process).
pub fn private_temp_file() -> Result<File, Error> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = std::env::temp_dir();
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_TMPFILE)
        .open(&dir)
        .map_err(|e| Error::cant_create(format!("temporary file in {}", dir.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn all(message: &mut Message<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        message.reader().unwrap().read_to_end(&mut out).unwrap();
        out
    }

    const WITH_FROM: &[u8] =
        b"Subject: hi\r\nFrom: Kim <Kim@Club.example>, other@example.org\r\n\r\nbody\r\n";

    fn whole(input: Input<'_>) -> Vec<u8> {
        let mut message = Message::new(Vec::new(), input, false).unwrap();
        all(&mut message)
    }

    #[test]
    fn the_from_address_is_read_and_a_stream_is_given_back_whole() {
        let mut input: &[u8] = WITH_FROM;
        let (from, input) = Input::Stream(Box::new(&mut input)).from_address().unwrap();
        assert_eq!(
            from.as_deref(),
            Some("Kim@Club.example"),
            "the first mailbox"
        );
        assert_eq!(whole(input), WITH_FROM);
    }

    #[test]
    fn the_from_address_is_read_and_a_file_is_read_again_from_where_it_stood() {
        let mut file = private_temp_file().unwrap();
        file.write_all(b"not the message\n").unwrap();
        file.write_all(WITH_FROM).unwrap();
        file.seek(SeekFrom::Start(16)).unwrap();
        let (from, input) = Input::File(file).from_address().unwrap();
        assert_eq!(from.as_deref(), Some("Kim@Club.example"));
        assert_eq!(whole(input), WITH_FROM);
    }

    #[test]
    fn a_message_without_from_has_no_from_address() {
        let mut input: &[u8] = b"Subject: hi\n\nFrom: not a header\n";
        let (from, input) = Input::Stream(Box::new(&mut input)).from_address().unwrap();
        assert_eq!(from, None);
        assert_eq!(whole(input), b"Subject: hi\n\nFrom: not a header\n");
    }

    #[test]
    fn a_kept_stream_reads_whole_again_after_a_partial_read() {
        let mut input: &[u8] = b"line one\nline two\nline three\n";
        let mut message = Message::new(
            b"Head: x\n\n".to_vec(),
            Input::Stream(Box::new(&mut input)),
            true,
        )
        .unwrap();
        {
            let (_, mut rest) = message.open().unwrap();
            let mut part = [0u8; 5];
            rest.read_exact(&mut part).unwrap();
            assert_eq!(&part, b"line ");
        }
        assert_eq!(
            all(&mut message),
            b"Head: x\n\nline one\nline two\nline three\n"
        );
        assert_eq!(
            all(&mut message),
            b"Head: x\n\nline one\nline two\nline three\n"
        );
        assert_eq!(message.size(), Some(38));
    }

    #[test]
    fn a_stream_not_kept_cannot_be_read_twice_once_started() {
        let mut input: &[u8] = b"body\n";
        let mut message =
            Message::new(Vec::new(), Input::Stream(Box::new(&mut input)), false).unwrap();
        assert_eq!(all(&mut message), b"body\n");
        assert!(message.open().is_err());
    }

    #[test]
    fn a_file_is_read_from_where_the_message_began() {
        let mut file = private_temp_file().unwrap();
        file.write_all(b"Subject: s\n\nbody\n").unwrap();
        file.seek(SeekFrom::Start(12)).unwrap();
        let mut message =
            Message::new(b"Subject: s\n\n".to_vec(), Input::File(file), false).unwrap();
        assert_eq!(message.size(), Some(17));
        assert_eq!(all(&mut message), b"Subject: s\n\nbody\n");
        assert_eq!(all(&mut message), b"Subject: s\n\nbody\n");
    }

    #[test]
    fn read_ahead_moves_bytes_into_the_head_and_knows_the_end() {
        let mut input: &[u8] = b"0123456789";
        let mut message =
            Message::new(b"H".to_vec(), Input::Stream(Box::new(&mut input)), true).unwrap();
        assert!(!message.read_ahead(5).unwrap());
        assert_eq!(message.head(), b"H0123");
        assert!(message.read_ahead(64).unwrap());
        assert_eq!(message.head(), b"H0123456789");
        assert_eq!(all(&mut message), b"H0123456789");
        assert_eq!(message.size(), Some(11));
    }

    #[test]
    fn a_prepended_field_comes_first_and_reading_ahead_again_gives_the_same_answer() {
        for (body, whole) in [(&b"shrt\n"[..], true), (&b"0123456789\n"[..], false)] {
            let mut input = body;
            let mut message = Message::new(
                b"S: s\n\n".to_vec(),
                Input::Stream(Box::new(&mut input)),
                true,
            )
            .unwrap();
            assert_eq!(message.read_ahead(12).unwrap(), whole);
            let mut expected = b"S: s\n\n".to_vec();
            expected.extend_from_slice(body);
            assert_eq!(all(&mut message), expected);
            message.prepend(b"X-Sig: 1\r\n");
            expected.splice(0..0, b"X-Sig: 1\r\n".iter().copied());
            assert_eq!(message.read_ahead(12).unwrap(), whole);
            assert_eq!(all(&mut message), expected);
            assert_eq!(message.size(), Some(expected.len() as u64));
        }
    }

    #[test]
    fn a_shared_stream_is_copied_once_and_read_by_each() {
        let mut input: &[u8] = b"rest of it";
        let mut message = Message::new(
            b"head ".to_vec(),
            Input::Stream(Box::new(&mut input)),
            false,
        )
        .unwrap();
        let shared = message.share().unwrap();
        for _ in 0..2 {
            let (head, mut rest) = shared.open();
            let mut out = head.to_vec();
            rest.read_to_end(&mut out).unwrap();
            assert_eq!(out, b"head rest of it");
        }
    }
}
