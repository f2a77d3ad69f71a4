//! What a person at a terminal sees that cron never does: a coloured `-v` trace and upload
//! progress, both only when stderr is a terminal.

use std::io::{IsTerminal, Write};
use std::sync::OnceLock;

use crate::smtp::TraceLine;

/// Whether stderr is a terminal (asked once). `NO_COLOR` turns colour off
/// (<https://no-color.org>); progress still follows the terminal.
pub fn stderr_is_terminal() -> bool {
    static TTY: OnceLock<bool> = OnceLock::new();
    *TTY.get_or_init(|| std::io::stderr().is_terminal())
}

fn colour() -> bool {
    stderr_is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// Server text with control characters escaped: it goes to a terminal.
pub fn printable(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

/// One line of the `-v` trace: `C: ...` for what was sent, `S: ...` for what came back.
pub fn trace_line(line: &TraceLine) -> String {
    render(line, colour())
}

fn render(line: &TraceLine, colour: bool) -> String {
    let (side, code) = if line.client {
        ("C", "36")
    } else {
        ("S", "32")
    };
    if colour {
        format!("\x1b[{code}m{side}:\x1b[0m {}", line.text)
    } else {
        format!("{side}: {}", line.text)
    }
}

/// Upload progress on one rewritten line of stderr.
pub struct Progress {
    sent: u64,
    shown: u64,
}

/// Show progress after each this many bytes.
const STEP: u64 = 1 << 20;

impl Progress {
    /// A meter when stderr is a terminal and `wanted`, else nothing.
    pub fn start(wanted: bool) -> Option<Progress> {
        (wanted && stderr_is_terminal()).then_some(Progress { sent: 0, shown: 0 })
    }

    pub fn add(&mut self, bytes: usize) {
        self.sent += bytes as u64;
        if self.sent - self.shown >= STEP {
            self.shown = self.sent;
            let _ = write!(
                std::io::stderr(),
                "\rsmtpsend: sent {:.1} MiB",
                self.sent as f64 / (1u64 << 20) as f64
            );
        }
    }

    pub fn finish(self) {
        if self.shown > 0 {
            let _ = writeln!(
                std::io::stderr(),
                "\rsmtpsend: sent {:.1} MiB, done",
                self.sent as f64 / (1u64 << 20) as f64
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_trace_has_no_escape_codes() {
        let line = TraceLine {
            client: true,
            text: "EHLO x".into(),
        };
        assert_eq!(render(&line, false), "C: EHLO x");
        assert_eq!(render(&line, true), "\x1b[36mC:\x1b[0m EHLO x");
        let reply = TraceLine {
            client: false,
            text: "250 ok".into(),
        };
        assert_eq!(render(&reply, false), "S: 250 ok");
    }

    #[test]
    fn no_progress_without_a_terminal_or_when_not_wanted() {
        assert!(Progress::start(false).is_none());
        // The test harness captures stderr: not a terminal.
        if !stderr_is_terminal() {
            assert!(Progress::start(true).is_none());
        }
    }
}
