//! An SMTP server for messages too large to hold: it keeps the header section of each
//! message and the SHA-256 of its body (dot-stuffing undone), not the body. It offers no
//! extension but 8BITMIME, so a client sends one command at a time and the message by
//! DATA. One connection, served in a thread.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;

use ring::digest;

/// What arrived: the header section (with its empty line) and the body's digest and size.
#[derive(Debug)]
pub struct Received {
    pub head: Vec<u8>,
    pub body_sha256: Vec<u8>,
    pub body_len: u64,
}

pub struct Sink {
    addr: SocketAddr,
    handle: thread::JoinHandle<Option<Received>>,
}

impl Sink {
    pub fn start() -> Sink {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the sink");
        let addr = listener.local_addr().expect("sink address");
        let handle = thread::spawn(move || {
            let (stream, _) = listener.accept().ok()?;
            serve(stream).ok().flatten()
        });
        Sink { addr, handle }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The message, once the client is gone; `None` when none was accepted.
    pub fn finish(self) -> Option<Received> {
        self.handle.join().expect("sink thread")
    }
}

fn serve(stream: TcpStream) -> std::io::Result<Option<Received>> {
    let mut out = stream.try_clone()?;
    let mut input = BufReader::with_capacity(256 * 1024, stream);
    out.write_all(b"220 sink ESMTP\r\n")?;
    let mut got = None;
    let mut line = Vec::new();
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            return Ok(got);
        }
        let verb = line
            .split(|&b| b == b' ' || b == b'\r')
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        let reply: &[u8] = match verb.as_slice() {
            b"EHLO" => b"250-sink\r\n250 8BITMIME\r\n",
            b"DATA" => {
                out.write_all(b"354 go ahead\r\n")?;
                got = Some(data(&mut input)?);
                b"250 2.0.0 Ok: kept a digest\r\n"
            }
            b"QUIT" => {
                out.write_all(b"221 bye\r\n")?;
                return Ok(got);
            }
            _ => b"250 ok\r\n",
        };
        out.write_all(reply)?;
    }
}

/// The message up to the final dot: the head kept, the body hashed.
fn data(input: &mut impl BufRead) -> std::io::Result<Received> {
    let mut head = Vec::new();
    let mut in_head = true;
    let mut hash = digest::Context::new(&digest::SHA256);
    let mut body_len = 0u64;
    let mut line = Vec::new();
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if line == b".\r\n" {
            break;
        }
        let text = line.strip_prefix(b".").unwrap_or(&line);
        if in_head {
            head.extend_from_slice(text);
            in_head = text != b"\r\n";
        } else {
            hash.update(text);
            body_len += text.len() as u64;
        }
    }
    Ok(Received {
        head,
        body_sha256: hash.finish().as_ref().to_vec(),
        body_len,
    })
}
