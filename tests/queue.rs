//! The mail queue end to end: what a temporary failure puts in the spool, what a
//! permanent one keeps out of it, and what `-q` later delivers, each checked three ways:
//! the exit status, the files in the spool (and `-bp`), and what the server received.
//!
//! Every test has a spool of its own in a temporary directory (`--queue-dir`), a config
//! file with `queue_on_tempfail = true`, and a relay that is either a [`dead_port`] (a
//! loopback port that refuses connections) or the scriptable server on 127.0.0.1.

use std::fs::File;
use std::process::Stdio;
use std::time::Duration;

use crate::common::spool::{Queue, crlf, dead_port, unix_now, wait_bounded};
use crate::common::*;

/// A message with every header a sendmail would add, so the spool and the server must
/// hold exactly this.
fn message(n: usize) -> String {
    format!(
        "From: Alice <alice@example.org>\n\
         To: Bob <bob@example.org>\n\
         Subject: queued {n}\n\
         Date: Mon, 1 Jan 2024 00:00:00 +0000\n\
         Message-ID: <queued-{n}@example.org>\n\
         \n\
         This is message {n}.\n"
    )
}

/// The Message-ID of a delivered message, to tell messages apart at the server.
fn message_id(content: &[u8]) -> String {
    let text = String::from_utf8_lossy(content);
    text.lines()
        .find_map(|l| l.strip_prefix("Message-ID: "))
        .unwrap_or("<none>")
        .trim()
        .to_string()
}

/// About 1 MiB of message: bare LF line ends, lines that start with one and two dots,
/// lone dots (data under `-i`), empty lines, long lines, and no newline at the very end.
fn big_message(id: &str) -> Vec<u8> {
    let mut out = format!(
        "From: Alice <alice@example.org>\n\
         To: Bob <bob@example.org>\n\
         Subject: big\n\
         Date: Mon, 1 Jan 2024 00:00:00 +0000\n\
         Message-ID: <{id}@example.org>\n\
         \n"
    )
    .into_bytes();
    let mut i = 0usize;
    while out.len() < 1 << 20 {
        let line = match i % 9 {
            0 => format!(".leading dot {i}"),
            1 => format!("..two leading dots {i}"),
            2 => ".".to_string(),
            3 => String::new(),
            4 => format!("{i} {}", "x".repeat(900)),
            5 => format!(". {i} dot space"),
            _ => format!("line {i} of the body, ordinary text"),
        };
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
        i += 1;
    }
    out.extend_from_slice(b"the end, without a newline");
    out
}

#[track_caller]
fn assert_status(out: &std::process::Output, expected: i32) {
    assert_eq!(code(out), expected, "exit status, stderr:\n{}", stderr(out));
}

/// A queue holding `n` messages (`message(0)` on) for [`RECIPIENT`], queued while the relay
/// was down.
fn queued(n: usize) -> Queue {
    let q = Queue::new();
    let down = dead_port();
    for i in 0..n {
        let out = q.send(down.port(), &[RECIPIENT], message(i));
        assert_status(&out, 0);
    }
    q
}

#[test]
fn relay_down_queues_then_flush_delivers() {
    let q = Queue::new();
    let down = dead_port();
    let input = "To: a@x.test\nSubject: q\n\nbody\n";
    let out = q.send(down.port(), &["-t"], input);
    assert_status(&out, 0);

    let listing = q.listing();
    assert!(listing.contains("a@x.test"), "{listing}");
    assert!(listing.contains("connection refused"), "{listing}");
    assert!(listing.contains("in 1 Request."), "{listing}");
    // Said, not only under -v: the id, the recipient, the reason and the next try.
    let err = stderr(&out);
    let entry = q.only_entry();
    let said = format!("smtpsend: queued {} for a@x.test: ", entry.id);
    assert!(err.starts_with(&said), "{err}");
    // The tests run without the background runner: the next queue run is the next try.
    assert!(
        err.contains("connection refused; next try at the first queue run after 5 minutes"),
        "{err}"
    );
    assert!(
        err.contains("(smtpsend -q to retry now, mailq to look)"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(entry.recipients, ["a@x.test"]);
    assert_eq!(entry.from, SENDER);
    // The failed try counts: the next waits for the first back-off.
    assert_eq!(entry.attempts, 1);
    let spooled = q.data(&entry.id);
    assert_eq!(entry.size, spooled.len() as i64);
    let text = String::from_utf8_lossy(&spooled);
    assert!(text.starts_with("To: a@x.test\nSubject: q\n"), "{text}");
    assert!(text.ends_with("\n\nbody\n"), "{text}");

    let server = TestServer::builder().start();
    let out = q.flush(server.port(), false);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    let m = t.only().message();
    assert!(m.accepted);
    assert_eq!(m.mail_from, SENDER);
    assert_eq!(m.rcpt_to, ["a@x.test"]);
    assert_eq!(
        String::from_utf8_lossy(&m.content),
        String::from_utf8_lossy(&crlf(&spooled)),
        "the server got something other than what was queued"
    );
    q.assert_empty();
}

#[test]
fn temp_451_then_250_delivered_on_second_flush() {
    let q = Queue::new();
    // The submission and the first queue run get 451; the second run 250.
    let server = TestServer::builder()
        .connections(3)
        .rule(Rule::on("MAIL").reply("451 4.3.0 later").times(2))
        .start();
    let port = server.port();

    let out = q.send(port, &[RECIPIENT], MESSAGE);
    assert_status(&out, 0);
    let entry = q.only_entry();
    assert_eq!(entry.attempts, 1);
    assert_eq!(entry.recipients, [RECIPIENT]);
    assert!(q.listing().contains("451 4.3.0 later"), "{}", q.listing());

    // -q tries it now, whatever its retry time, as sendmail -q and postqueue -f do.
    let out = q.flush(port, false);
    assert_status(&out, 0);
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "smtpsend: {}: deferred for {RECIPIENT}: ",
            entry.id
        )),
        "{err}"
    );
    assert!(err.contains("next try within 10 minutes"), "{err}");
    let entry = q.entry(&entry.id);
    assert_eq!(entry.attempts, 2, "{:?}", entry.table);
    assert!(
        entry
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("451 4.3.0 later")),
        "{:?}",
        entry.last_error
    );
    // Ten minutes of back-off after the second try, in whole seconds.
    let wait = entry.next_attempt - unix_now();
    assert!((590..=600).contains(&wait), "next attempt in {wait} s");
    let listing = q.listing();
    assert!(listing.contains("451 4.3.0 later"), "{listing}");
    assert!(listing.contains("2 tries, next in"), "{listing}");

    // Not due yet: -q --due (a timer's) leaves it alone (a dead relay would count a
    // third try), and says nothing.
    let down = dead_port();
    let out = q.flush(down.port(), true);
    assert_status(&out, 0);
    assert!(out.stderr.is_empty(), "{}", stderr(&out));
    assert_eq!(q.entry(&entry.id).attempts, 2);

    let out = q.flush(port, false);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    assert_eq!(t.connections.len(), 3, "{:#?}", t.connections.len());
    for conn in &t.connections[..2] {
        assert!(conn.messages.is_empty(), "{:?}", conn.verbs());
    }
    let m = t.connections[2].message();
    assert!(m.accepted);
    assert_eq!(m.rcpt_to, [RECIPIENT]);
    assert_eq!(String::from_utf8_lossy(&m.content), MESSAGE);
    q.assert_empty();
}

#[test]
fn partial_temporary_failure_queues_only_that_recipient() {
    let q = Queue::new();
    let server = TestServer::builder()
        .connections(2)
        .rule(
            Rule::on("RCPT")
                .arg("b@x.test")
                .reply("450 4.2.1 mailbox busy")
                .times(1),
        )
        .start();
    let port = server.port();

    let out = q.send(port, &["a@x.test", "b@x.test"], MESSAGE);
    assert_status(&out, 0);
    let entry = q.only_entry();
    assert_eq!(entry.recipients, ["b@x.test"]);
    let listing = q.listing();
    assert!(listing.contains("b@x.test"), "{listing}");
    assert!(!listing.contains("a@x.test"), "{listing}");
    assert!(listing.contains("450 4.2.1 mailbox busy"), "{listing}");

    let out = q.flush(port, false);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    assert_eq!(t.connections.len(), 2);
    let first = t.connections[0].message();
    assert!(first.accepted);
    assert_eq!(first.rcpt_to, ["a@x.test"]);
    let second = &t.connections[1];
    let rcpts: Vec<&str> = second
        .commands_for("RCPT")
        .iter()
        .map(|c| c.arg.as_str())
        .collect();
    assert_eq!(rcpts, ["TO:<b@x.test>"], "the flush wrote to A again");
    let m = second.message();
    assert!(m.accepted);
    assert_eq!(m.rcpt_to, ["b@x.test"]);
    assert_eq!(m.content, first.content);
    q.assert_empty();
}

#[test]
fn mixed_permanent_and_temporary_refusals_exit_67_and_queue_the_temporary_one() {
    let q = Queue::new();
    let server = TestServer::builder()
        .rule(
            Rule::on("RCPT")
                .arg("a@x.test")
                .reply("550 5.1.1 no such user"),
        )
        .rule(
            Rule::on("RCPT")
                .arg("b@x.test")
                .reply("450 4.2.1 mailbox busy"),
        )
        .rule(Rule::on("RCPT").arg("c@x.test").reply("250 2.1.5 Ok"))
        .start();
    let out = q.send(
        server.port(),
        &["a@x.test", "b@x.test", "c@x.test"],
        MESSAGE,
    );
    let t = server.finish();
    assert_exit(&out, 67, &t);
    assert!(
        stderr(&out).contains("RCPT TO:<a@x.test>: 550 5.1.1 no such user"),
        "{}",
        stderr(&out)
    );
    assert_eq!(t.only().message().rcpt_to, ["c@x.test"]);
    assert_eq!(q.only_entry().recipients, ["b@x.test"]);
}

#[test]
fn permanent_failure_is_not_queued() {
    let q = Queue::new();
    let server = TestServer::builder()
        .rule(Rule::on("RCPT").reply("550 5.1.1 no such user"))
        .start();
    let out = q.send(server.port(), &[RECIPIENT], MESSAGE);
    let t = server.finish();
    assert_exit(&out, 67, &t);
    assert!(
        stderr(&out).contains("550 5.1.1 no such user"),
        "{}",
        stderr(&out)
    );
    assert!(t.only().messages.is_empty());
    q.assert_empty();

    let server = TestServer::builder()
        .rule(Rule::banner().reply("554 5.7.1 go away"))
        .start();
    let out = q.send(server.port(), &[RECIPIENT], MESSAGE);
    let t = server.finish();
    assert_exit(&out, 69, &t);
    assert!(
        stderr(&out).contains("554 5.7.1 go away"),
        "{}",
        stderr(&out)
    );
    q.assert_empty();

    // A refusal of the message itself.
    let server = TestServer::builder()
        .rule(Rule::data_end().reply("554 5.6.0 message refused"))
        .start();
    let out = q.send(server.port(), &[RECIPIENT], MESSAGE);
    let t = server.finish();
    assert_exit(&out, 69, &t);
    q.assert_empty();
}

#[test]
fn queue_only_flag_does_not_connect() {
    let q = Queue::new();
    let server = TestServer::builder().connections(2).start();
    let port = server.port();
    let out = q.send(port, &["--queue", RECIPIENT], message(1));
    assert_status(&out, 0);
    let out = q.send(port, &["-odq", RECIPIENT], message(2));
    assert_status(&out, 0);
    let t = server.finish();
    assert!(
        t.connections.is_empty(),
        "queue-only runs connected: {:?}",
        t.connections.iter().map(|c| c.verbs()).collect::<Vec<_>>()
    );
    let entries = q.entries();
    assert_eq!(entries.len(), 2, "{:?}", q.files());
    for (entry, n) in entries.iter().zip([1, 2]) {
        assert_eq!(entry.recipients, [RECIPIENT]);
        assert_eq!(entry.attempts, 0);
        assert_eq!(q.data(&entry.id), message(n).into_bytes());
    }
    let listing = q.listing();
    assert_eq!(
        listing.matches("queued with --queue").count(),
        2,
        "{listing}"
    );

    // And they go out with the next queue run.
    let server = TestServer::builder().start();
    let out = q.flush(server.port(), false);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    let ids: Vec<String> = t
        .only()
        .messages
        .iter()
        .map(|m| message_id(&m.content))
        .collect();
    assert_eq!(ids, ["<queued-1@example.org>", "<queued-2@example.org>"]);
    q.assert_empty();
}

#[test]
fn queue_remove_and_remove_all() {
    let q = queued(3);
    let down = dead_port();
    let ids: Vec<String> = q.entries().into_iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), 3);

    let mut cmd = q.cmd(down.port());
    cmd.args(["--queue-remove", &ids[1]]);
    let out = run(cmd, Vec::new());
    assert_status(&out, 0);
    let left: Vec<String> = q.entries().into_iter().map(|e| e.id).collect();
    assert_eq!(left, [ids[0].clone(), ids[2].clone()]);
    assert!(
        !q.files().iter().any(|f| f.starts_with(&ids[1])),
        "{:?}",
        q.files()
    );
    let listing = q.listing();
    assert!(!listing.contains(&ids[1]), "{listing}");
    assert!(listing.contains("in 2 Requests."), "{listing}");

    // Gone already: said so, with EX_NOINPUT.
    let mut cmd = q.cmd(down.port());
    cmd.args(["--queue-remove", &ids[1]]);
    let out = run(cmd, Vec::new());
    assert_status(&out, 66);
    assert!(
        stderr(&out).contains("no such queued message"),
        "{}",
        stderr(&out)
    );

    // Not an id at all: refused before it becomes a path.
    let mut cmd = q.cmd(down.port());
    cmd.args(["--queue-remove", "../config.toml"]);
    let out = run(cmd, Vec::new());
    assert_status(&out, 64);
    assert!(q.root().join("config.toml").exists());

    // Everything needs --yes.
    let mut cmd = q.cmd(down.port());
    cmd.arg("--queue-remove-all");
    let out = run(cmd, Vec::new());
    assert_status(&out, 64);
    assert_eq!(q.entries().len(), 2);

    let mut cmd = q.cmd(down.port());
    cmd.args(["--queue-remove-all", "--yes"]);
    let out = run(cmd, Vec::new());
    assert_status(&out, 0);
    assert!(
        stderr(&out).contains("removed 2 queued messages"),
        "{}",
        stderr(&out)
    );
    q.assert_empty();
}

#[test]
fn expired_entry_is_returned_to_sender() {
    let q = Queue::new();
    let down = dead_port();
    let out = q.send(down.port(), &[RECIPIENT], MESSAGE);
    assert_status(&out, 0);
    let entry = q.only_entry();
    let six_days = 6 * 24 * 60 * 60;
    q.set(
        &entry.id,
        "created",
        toml::Value::Integer(unix_now() - six_days),
    );
    assert!(q.listing().contains("6d00h"), "{}", q.listing());

    let server = TestServer::builder().connections(2).start();
    let out = q.flush(server.port(), false);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    assert!(
        stderr(&out).contains(&format!("{}: returning to <{SENDER}>", entry.id)),
        "{}",
        stderr(&out)
    );
    // One connection, one message: the notice, not the original.
    let m = t.only().message();
    assert!(m.accepted);
    assert_eq!(m.mail_from, "", "a failure notice must come from <>");
    assert_eq!(m.rcpt_to, [SENDER]);
    let notice = String::from_utf8_lossy(&m.content);
    assert!(notice.contains(&format!("To: <{SENDER}>")), "{notice}");
    assert!(notice.contains("Auto-Submitted: auto-replied"), "{notice}");
    assert!(notice.contains(&entry.id), "{notice}");
    assert!(notice.contains(&format!("<{RECIPIENT}>")), "{notice}");
    assert!(
        notice.contains("Message-ID: <test-1@example.org>"),
        "{notice}"
    );
    q.assert_empty();
    assert!(!q.home().join("dead.letter").exists());
}

#[test]
fn piped_and_file_stdin_both_queue_byte_exact() {
    let q = Queue::new();
    let down = dead_port();
    let piped = big_message("piped");
    let filed = big_message("filed");

    let out = q.send(down.port(), &["-i", RECIPIENT], piped.clone());
    assert_status(&out, 0);

    let path = q.root().join("message.eml");
    std::fs::write(&path, &filed).expect("write message file");
    let mut cmd = q.std_cmd(down.port());
    cmd.args(["-f", SENDER, "-i", RECIPIENT])
        .stdin(Stdio::from(File::open(&path).expect("open message file")))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn smtpsend");
    let status = wait_bounded(&mut child, CLIENT_LIMIT).expect("smtpsend ran too long");
    assert_eq!(status.code(), Some(0), "file on stdin: {status:?}");

    let entries = q.entries();
    assert_eq!(entries.len(), 2, "{:?}", q.files());
    assert_eq!(
        q.data(&entries[0].id),
        piped,
        "the piped message was spooled altered"
    );
    assert_eq!(
        q.data(&entries[1].id),
        filed,
        "the file message was spooled altered"
    );

    let server = TestServer::builder()
        .deadline(Duration::from_secs(30))
        .start();
    let out = q.flush(server.port(), false);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    let messages = &t.only().messages;
    assert_eq!(messages.len(), 2);
    for (m, input) in messages.iter().zip([&piped, &filed]) {
        assert!(m.accepted);
        assert!(
            m.content == crlf(input),
            "{}: delivered {} bytes, expected {}",
            message_id(&m.content),
            m.content.len(),
            crlf(input).len()
        );
    }
    q.assert_empty();
}

/// 20 queued messages go over one connection, pipelined: each transaction is written behind
/// the one before without waiting for its outcome. With CHUNKING every small message goes
/// as `BDAT LAST` and all 20 leave in one flight; with DATA only, the next envelope leaves
/// with the end of the previous message (one flight per message instead of two).
#[test]
fn many_entries_flush_over_one_connection() {
    for chunking in [false, true] {
        let q = queued(20);
        assert_eq!(q.entries().len(), 20);

        let mut caps = vec!["PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES"];
        if chunking {
            caps.push("CHUNKING");
        }
        let server = TestServer::builder()
            .capabilities(&caps)
            .connections(1)
            .grace(Duration::from_millis(2))
            .start();
        let out = q.flush(server.port(), false);
        let t = server.finish();
        assert_exit(&out, 0, &t);
        let conn = t.only();
        assert_eq!(conn.commands_for("MAIL").len(), 20, "{:?}", conn.verbs());
        let mut ids: Vec<String> = conn
            .messages
            .iter()
            .filter(|m| m.accepted)
            .map(|m| message_id(&m.content))
            .collect();
        ids.sort();
        let mut expected: Vec<String> = (0..20)
            .map(|n| format!("<queued-{n}@example.org>"))
            .collect();
        expected.sort();
        assert_eq!(ids, expected, "chunking={chunking}");
        assert!(conn.messages.iter().all(|m| m.chunked == chunking));
        // EHLO, then (CHUNKING) all 20 transactions, then QUIT; or (DATA) the first
        // envelope, 20 flights of message + next envelope, then QUIT. Unpipelined it was
        // 1 + 2 × 20 + 1.
        let most = if chunking { 3 } else { 23 };
        assert!(
            conn.flights.len() <= most,
            "chunking={chunking}: {} flights: {:?}",
            conn.flights.len(),
            conn.flight_shape()
        );
        q.assert_empty();
    }
}

#[test]
fn temporary_failure_mid_body_queues_the_whole_piped_message() {
    let q = Queue::new();
    // Bigger than the client's 128 KiB read-ahead, so most of it streams through the
    // copy kept for the queue, and cut well inside that part.
    let input = big_message("cut")[..600_000].to_vec();
    let server = TestServer::builder().close_mid_data_after(300_000).start();
    let out = q.send(server.port(), &["-i", RECIPIENT], input.clone());
    let t = server.finish();
    assert_exit(&out, 0, &t);
    assert!(t.only().messages.is_empty());
    let entry = q.only_entry();
    assert_eq!(q.data(&entry.id), input, "the queued copy is not the input");

    let server = TestServer::builder().start();
    let out = q.flush(server.port(), false);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    let m = t.only().message();
    assert!(m.accepted);
    assert!(
        m.content == crlf(&input),
        "delivered {} bytes, expected {}",
        m.content.len(),
        crlf(&input).len()
    );
    q.assert_empty();
}

#[test]
fn queue_on_tempfail_is_the_default_and_no_queue_turns_it_off() {
    let q = Queue::with_config("# nothing said about queueing\n");
    let down = dead_port();
    let out = q.send(down.port(), &[RECIPIENT], MESSAGE);
    assert_status(&out, 0);
    assert_eq!(q.entries().len(), 1);

    let out = q.send(down.port(), &["--no-queue", RECIPIENT], MESSAGE);
    assert_status(&out, 75);
    assert!(
        stderr(&out).contains("connection refused"),
        "{}",
        stderr(&out)
    );
    assert_eq!(q.entries().len(), 1);

    let off = Queue::with_config("queue_on_tempfail = false\n");
    let out = off.send(down.port(), &[RECIPIENT], MESSAGE);
    assert_status(&out, 75);
    off.assert_empty();
}

/// Without `-i` a line with a lone dot ends the input (sendmail's rule): what follows it
/// must not be delivered, whether the message went out at once or through the queue.
#[test]
fn lone_dot_ends_the_message_when_queued_as_when_sent_at_once() {
    let input = "From: Alice <alice@example.org>\n\
                 To: Bob <bob@example.org>\n\
                 Subject: dot\n\
                 Date: Mon, 1 Jan 2024 00:00:00 +0000\n\
                 Message-ID: <dot@example.org>\n\
                 \n\
                 before the dot\n\
                 .\n\
                 after the dot: not part of the message\n";
    let q = Queue::new();
    let server = TestServer::builder().start();
    let out = q.send(server.port(), &[RECIPIENT], input);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    let direct = t.only().message().content.clone();
    assert!(
        !String::from_utf8_lossy(&direct).contains("after the dot"),
        "{}",
        String::from_utf8_lossy(&direct)
    );

    let down = dead_port();
    let out = q.send(down.port(), &[RECIPIENT], input);
    assert_status(&out, 0);
    let out = q.send(down.port(), &["--queue", RECIPIENT], input);
    assert_status(&out, 0);
    assert_eq!(q.entries().len(), 2);

    let server = TestServer::builder().start();
    let out = q.flush(server.port(), false);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    let differs: Vec<String> = t
        .only()
        .messages
        .iter()
        .zip(["relay down", "--queue"])
        .filter(|(m, _)| m.content != direct)
        .map(|(m, how)| format!("queued ({how}): {:?}", String::from_utf8_lossy(&m.content)))
        .collect();
    assert!(
        differs.is_empty(),
        "sent at once: {:?}\n{}",
        String::from_utf8_lossy(&direct),
        differs.join("\n")
    );
}

#[test]
fn permanent_refusal_during_flush_returns_the_message_to_its_sender() {
    let q = Queue::new();
    let down = dead_port();
    let out = q.send(down.port(), &[RECIPIENT], MESSAGE);
    assert_status(&out, 0);
    let entry = q.only_entry();

    // The queue run's RCPT is refused for good; the notice goes over a second connection.
    let server = TestServer::builder()
        .connections(2)
        .rule(
            Rule::on("RCPT")
                .arg(RECIPIENT)
                .reply("550 5.1.1 no such user")
                .times(1),
        )
        .start();
    let out = q.flush(server.port(), false);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    assert_eq!(t.connections.len(), 2, "expected the run and the notice");
    assert!(t.connections[0].messages.is_empty());
    let notice = t.connections[1].message();
    assert_eq!(notice.mail_from, "");
    assert_eq!(notice.rcpt_to, [SENDER]);
    let text = String::from_utf8_lossy(&notice.content);
    assert!(text.contains("550 5.1.1 no such user"), "{text}");
    assert!(text.contains(&entry.id), "{text}");
    q.assert_empty();
}

#[test]
fn expired_entry_with_the_relay_down_goes_to_dead_letter() {
    let q = Queue::new();
    let down = dead_port();
    let out = q.send(down.port(), &[RECIPIENT], MESSAGE);
    assert_status(&out, 0);
    let entry = q.only_entry();
    q.set(
        &entry.id,
        "created",
        toml::Value::Integer(unix_now() - 6 * 24 * 60 * 60),
    );
    let out = q.flush(down.port(), false);
    assert_status(&out, 0);
    assert!(
        stderr(&out).contains("the failure notice failed too"),
        "{}",
        stderr(&out)
    );
    let dead = std::fs::read_to_string(q.home().join("dead.letter"))
        .expect("the notice is kept in ~/dead.letter");
    assert!(dead.contains(&entry.id), "{dead}");
    assert!(dead.contains("Message-ID: <test-1@example.org>"), "{dead}");
    q.assert_empty();
}

/// In a pipelined queue run each entry keeps its own outcome: a permanent refusal of one
/// transaction's recipient and a temporary one of another's do not touch the transactions
/// written before and after them in the same flight.
#[test]
fn pipelined_flush_keeps_each_failure_with_its_own_entry() {
    let q = Queue::new();
    let down = dead_port();
    let rcpts: Vec<String> = (0..6).map(|n| format!("r{n}@example.net")).collect();
    for (n, rcpt) in rcpts.iter().enumerate() {
        let out = q.send(down.port(), &[rcpt.as_str()], message(n));
        assert_status(&out, 0);
    }
    let server = TestServer::builder()
        .capabilities(&["PIPELINING", "CHUNKING", "8BITMIME", "ENHANCEDSTATUSCODES"])
        .connections(2)
        .rule(
            Rule::on("RCPT")
                .arg(&rcpts[2])
                .reply("550 5.1.1 no such user"),
        )
        .rule(Rule::on("RCPT").arg(&rcpts[4]).reply("451 4.2.0 try later"))
        .start();
    let out = q.flush(server.port(), false);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    assert_eq!(t.connections.len(), 2, "expected the run and one notice");
    let run = &t.connections[0];
    // All six transactions left together, after EHLO.
    assert_eq!(run.flights.len(), 3, "{:?}", run.flight_shape());
    let mut delivered: Vec<String> = run
        .messages
        .iter()
        .filter(|m| m.accepted)
        .map(|m| message_id(&m.content))
        .collect();
    delivered.sort();
    assert_eq!(
        delivered,
        [0, 1, 3, 5].map(|n| format!("<queued-{n}@example.org>"))
    );
    let notice = t.connections[1].message();
    assert_eq!(notice.rcpt_to, [SENDER]);
    let text = String::from_utf8_lossy(&notice.content);
    assert!(text.contains("550 5.1.1 no such user"), "{text}");
    assert!(text.contains(&rcpts[2]), "{text}");
    // Only the temporarily refused entry is left, with its reason.
    let left = q.only_entry();
    assert_eq!(left.recipients, [rcpts[4].clone()]);
    assert!(
        left.last_error
            .as_deref()
            .is_some_and(|e| e.contains("451 4.2.0 try later")),
        "{:?}",
        left.last_error
    );
}

/// A server that refuses the session itself (554 at the greeting) says nothing about any
/// message: a queue run defers every entry and returns none to its sender, as Postfix's
/// smtp_skip_5xx_greeting does. (It used to return the first entry of each run.)
#[test]
fn a_554_greeting_defers_every_entry_and_returns_none() {
    let q = queued(3);
    // Room for a notice's connection too, which must not come.
    let server = TestServer::builder()
        .banner("554 5.3.2 no service for you")
        .connections(2)
        .start();
    let out = q.flush(server.port(), false);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    assert_eq!(t.connections.len(), 1, "a notice was sent");
    assert!(t.never_saw("MAIL"));
    let entries = q.entries();
    assert_eq!(entries.len(), 3, "every entry stays");
    for e in &entries {
        assert_eq!(e.attempts, 2, "{:?}", e.table);
        assert!(
            e.last_error
                .as_deref()
                .is_some_and(|r| r.contains("554 5.3.2 no service for you")),
            "{:?}",
            e.last_error
        );
    }
}

/// Refused credentials in a queue run are every entry's wait, not the first one's: all are
/// kept and marked as waiting for credentials in the listing.
#[test]
fn refused_credentials_leave_every_entry_waiting_for_them() {
    let q = queued(2);
    let server = TestServer::builder()
        .capabilities(&["PIPELINING", "8BITMIME", "AUTH PLAIN"])
        .credentials("alice", "right")
        .connections(2)
        .start();
    let mut cmd = q.cmd(server.port());
    cmd.args([
        "-q",
        "--user",
        "alice",
        "--auth",
        "plain",
        "--insecure-auth",
    ])
    .env("SMTPSEND_PASSWORD", "wrong");
    let out = run(cmd, Vec::new());
    let t = server.finish();
    assert_exit(&out, 0, &t);
    assert_eq!(t.connections.len(), 1, "a notice was sent");
    let entries = q.entries();
    assert_eq!(entries.len(), 2);
    let listing = q.listing();
    assert_eq!(
        listing.matches("waiting for credentials").count(),
        2,
        "{listing}"
    );
}

/// A message that goes through the relay takes along, over its own connection and before
/// its QUIT, the entries queued for that same relay that are due; an entry queued for
/// another relay stays where it is. Nothing of this is said without `-v`.
#[test]
fn a_send_through_the_relay_takes_its_due_entries_along_on_the_same_connection() {
    let q = Queue::with_config("queue_on_tempfail = true\nqueue_retry_first = 1\n");
    let down = dead_port();
    let other = dead_port();
    for n in 0..2 {
        let out = q.send(down.port(), &["bob@example.org"], message(n));
        assert_eq!(code(&out), 0, "{}", stderr(&out));
    }
    let out = q.send(other.port(), &["bob@example.org"], message(9));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(q.entries().len(), 3);
    // Their first retry is due after a second.
    std::thread::sleep(Duration::from_millis(1100));
    let port = down.port();
    drop(down);
    let server = crate::common::spool::start_on_freed_port(TestServer::builder, port);
    let out = q.send(port, &["bob@example.org"], message(2));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(out.stderr.is_empty(), "said: {}", stderr(&out));
    let t = server.finish();
    assert_eq!(t.connections.len(), 1, "one connection for all three");
    let ids: Vec<String> = t.connections[0]
        .messages
        .iter()
        .filter(|m| m.accepted)
        .map(|m| message_id(&m.content))
        .collect();
    assert_eq!(
        ids,
        [
            "<queued-2@example.org>",
            "<queued-0@example.org>",
            "<queued-1@example.org>"
        ],
        "the new message first, then the queued ones in order"
    );
    let verbs = t.connections[0].verbs();
    assert_eq!(verbs.last(), Some(&"QUIT"), "{verbs:?}");
    let left = q.entries();
    assert_eq!(left.len(), 1, "{:?}", q.files());
    let route_port = left[0].table["route"]["port"].as_integer();
    assert_eq!(
        route_port,
        Some(i64::from(other.port())),
        "the other relay's entry stays"
    );
}

/// Entries not yet due stay for their runner: a send takes along only what is due.
#[test]
fn a_send_takes_nothing_along_that_is_not_due() {
    let q = Queue::with_config("queue_on_tempfail = true\nqueue_retry_first = 600\n");
    let down = dead_port();
    let out = q.send(down.port(), &["bob@example.org"], message(0));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let port = down.port();
    drop(down);
    let server = crate::common::spool::start_on_freed_port(TestServer::builder, port);
    let out = q.send(port, &["bob@example.org"], message(1));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let t = server.finish();
    let ids: Vec<String> = t
        .connections
        .iter()
        .flat_map(|c| &c.messages)
        .map(|m| message_id(&m.content))
        .collect();
    assert_eq!(ids, ["<queued-1@example.org>"]);
    assert_eq!(q.entries().len(), 1, "{:?}", q.files());
}

/// An entry the take-along tried and the relay deferred (451 for its recipient) keeps the
/// back-off that failure gave it: it is not made due again at once because the relay took
/// the new message. The one it delivered is gone.
#[test]
fn an_entry_deferred_on_the_take_along_keeps_its_back_off() {
    let q = Queue::with_config("queue_on_tempfail = true\nqueue_retry_first = 1\n");
    let down = dead_port();
    let out = q.send(down.port(), &["carol@example.org"], message(0));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let out = q.send(down.port(), &["bob@example.org"], message(1));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    std::thread::sleep(Duration::from_millis(1100));
    let port = down.port();
    drop(down);
    let server = crate::common::spool::start_on_freed_port(
        || {
            TestServer::builder().rule(
                crate::common::Rule::on("RCPT")
                    .arg("carol@")
                    .reply("451 4.3.0 try later"),
            )
        },
        port,
    );
    let out = q.send(port, &["bob@example.org"], message(2));
    let t = server.finish();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(t.connections.len(), 1, "all on one connection");
    let left = q.entries();
    assert_eq!(left.len(), 1, "{:?}", q.files());
    assert_eq!(left[0].recipients, ["carol@example.org"]);
    assert_eq!(left[0].attempts, 2, "the take-along counted as a try");
    assert!(
        left[0].next_attempt > unix_now(),
        "made due again: next_attempt {} now {}",
        left[0].next_attempt,
        unix_now()
    );
}
