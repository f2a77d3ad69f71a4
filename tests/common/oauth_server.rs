//! An OAuth token endpoint for tests: a tiny HTTP/1.1 server on 127.0.0.1 (std::net
//! only) that records each form POST and answers from a script, one connection per
//! request. It stops when dropped, and on its own after a minute.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The longest the server runs, whatever the test does.
const LIFETIME: Duration = Duration::from_secs(60);

/// What to do with one request.
#[derive(Clone, Debug)]
pub enum Answer {
    /// A status and a JSON body.
    Json(u16, String),
    /// Close the connection without a word.
    Close,
    /// Read the request, then say nothing until the client gives up.
    Hang,
}

impl Answer {
    pub fn ok(body: &str) -> Answer {
        Answer::Json(200, body.to_string())
    }

    /// An RFC 6749 §5.2 error response.
    pub fn error(code: &str) -> Answer {
        Answer::Json(400, format!("{{\"error\":\"{code}\"}}"))
    }
}

/// One request as received.
#[derive(Clone, Debug)]
pub struct Request {
    pub path: String,
    pub content_type: Option<String>,
    pub form: BTreeMap<String, String>,
    pub at: Instant,
}

#[derive(Default)]
struct Script {
    queued: HashMap<String, VecDeque<Answer>>,
    otherwise: HashMap<String, Answer>,
}

pub struct OAuthServer {
    addr: SocketAddr,
    script: Arc<Mutex<Script>>,
    requests: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
}

impl OAuthServer {
    pub fn start() -> OAuthServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("local addr");
        let server = OAuthServer {
            addr,
            script: Arc::default(),
            requests: Arc::default(),
            stop: Arc::default(),
        };
        let (script, requests, stop) = (
            server.script.clone(),
            server.requests.clone(),
            server.stop.clone(),
        );
        thread::spawn(move || {
            let started = Instant::now();
            while !stop.load(Ordering::Relaxed) && started.elapsed() < LIFETIME {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (script, requests, stop) =
                            (script.clone(), requests.clone(), stop.clone());
                        thread::spawn(move || serve(stream, &script, &requests, &stop));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        server
    }

    /// `http://127.0.0.1:PORT/path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Answers the next request to `path` with `answer` (in order of calls).
    pub fn then(&self, path: &str, answer: Answer) -> &Self {
        let mut script = self.script.lock().unwrap();
        script
            .queued
            .entry(path.to_string())
            .or_default()
            .push_back(answer);
        self
    }

    /// Answers requests to `path` with `answer` once the queued ones are used up.
    pub fn otherwise(&self, path: &str, answer: Answer) -> &Self {
        let mut script = self.script.lock().unwrap();
        script.otherwise.insert(path.to_string(), answer);
        self
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    pub fn requests_to(&self, path: &str) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }
}

impl Drop for OAuthServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(
    stream: TcpStream,
    script: &Mutex<Script>,
    requests: &Mutex<Vec<Request>>,
    stop: &AtomicBool,
) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
    let mut length = 0usize;
    let mut content_type = None;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 {
            return;
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().unwrap_or(0),
                "content-type" => content_type = Some(value.trim().to_string()),
                _ => {}
            }
        }
    }
    let mut body = vec![0; length.min(1 << 20)];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    requests.lock().unwrap().push(Request {
        path: path.clone(),
        content_type,
        form: parse_form(&String::from_utf8_lossy(&body)),
        at: Instant::now(),
    });
    let answer = {
        let mut script = script.lock().unwrap();
        let queued = script.queued.get_mut(&path).and_then(VecDeque::pop_front);
        queued
            .or_else(|| script.otherwise.get(&path).cloned())
            .unwrap_or_else(|| Answer::Json(404, "{}".into()))
    };
    let mut stream = stream;
    match answer {
        Answer::Close => {}
        Answer::Hang => {
            let until = Instant::now() + Duration::from_secs(10);
            while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                thread::sleep(Duration::from_millis(20));
            }
        }
        Answer::Json(status, json) => {
            let reason = match status {
                200 => "OK",
                400 => "Bad Request",
                401 => "Unauthorized",
                500 => "Internal Server Error",
                _ => "Other",
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\nConnection: close\r\nCache-Control: no-store\r\n\r\n{json}",
                json.len()
            );
            let _ = stream.flush();
        }
    }
}

/// `a=b&c=d%20e+f` into a map.
fn parse_form(body: &str) -> BTreeMap<String, String> {
    body.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
