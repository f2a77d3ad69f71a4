//! The bytes queued for the server: everything queued before the transport next writes
//! goes out in one write, one flight (RFC 2920 §3.1), which is what makes round trips
//! countable.

/// A write buffer with a read position, emptied once fully written.
#[derive(Debug, Default)]
pub struct Flight {
    buf: Vec<u8>,
    pos: usize,
}

impl Flight {
    /// The bytes still to write, if any.
    pub fn pending(&self) -> Option<&[u8]> {
        (self.pos < self.buf.len()).then(|| &self.buf[self.pos..])
    }

    /// `n` bytes of [`Self::pending`] were written.
    pub fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.buf.len());
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
    }

    /// Where to append the next command or data.
    pub fn buf(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_writes_keep_the_rest() {
        let mut f = Flight::default();
        assert_eq!(f.pending(), None);
        f.buf().extend_from_slice(b"EHLO x\r\n");
        f.consume(3);
        assert_eq!(f.pending(), Some(&b"O x\r\n"[..]));
        f.buf().extend_from_slice(b"QUIT\r\n");
        f.consume(5);
        assert_eq!(f.pending(), Some(&b"QUIT\r\n"[..]));
        f.consume(6);
        assert_eq!(f.pending(), None);
    }
}
