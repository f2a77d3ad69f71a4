//! The system alias table, `/etc/aliases` in the format of aliases(5): what a bare local
//! name such as `root` stands for before it is delivered into a local mailbox.
//!
//! The syntax follows Postfix's aliases(5): `name: target, target`, a line that starts with
//! a blank continues the entry above, lines whose first non-blank character is `#` and
//! blank lines are ignored (also in the middle of an entry). A name may be quoted. The text
//! file is read directly; there is no `aliases.db` and no `newaliases`.

use std::collections::{HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};

use crate::message::address::{AddressError, envelope_address};
use crate::{Error, Result};

/// Where the system's alias table is.
pub const SYSTEM_ALIASES: &str = "/etc/aliases";

/// How deep aliases may refer to aliases: deep enough for any real table, shallow enough
/// that a generated one cannot exhaust the stack.
const MAX_DEPTH: usize = 32;

/// A parsed alias table.
#[derive(Clone, Debug)]
pub struct Aliases {
    /// Keyed by the lower-case name: local names are looked up without regard to case, as
    /// sendmail and Postfix do.
    entries: HashMap<String, Entry>,
    /// The file, for error messages.
    origin: PathBuf,
}

#[derive(Clone, Debug)]
struct Entry {
    targets: Vec<Target>,
    line: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Target {
    /// `user@example.org`, as checked by [`envelope_address`].
    Address(String),
    /// A local name, lower-cased, itself subject to aliasing.
    Local(String),
    /// `\name`: a local name delivered as it is, never looked up again (sendmail's escape).
    Verbatim(String),
    /// `|command`, `/file` and `:include:/file`, kept to be refused when reached, so that a
    /// table with a pipe for some other name still works for the names that matter here.
    Unsupported { kind: &'static str, text: String },
}

impl Aliases {
    /// Parse the text of an alias file; `origin` names it in error messages, which point at
    /// the offending line (`/etc/aliases:12: ...`).
    pub fn parse(text: &str, origin: &Path) -> Result<Aliases> {
        let mut aliases = Aliases {
            entries: HashMap::new(),
            origin: origin.to_path_buf(),
        };
        // The logical line being gathered: its first line number and its text.
        let mut current: Option<(usize, String)> = None;
        for (index, line) in text.lines().enumerate() {
            let number = index + 1;
            let trimmed = line.trim_start_matches([' ', '\t']);
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            if trimmed.len() != line.len() {
                match current.as_mut() {
                    Some((_, logical)) => {
                        logical.push(' ');
                        logical.push_str(trimmed);
                    }
                    None => {
                        return Err(aliases.error(number, "continuation line without an alias"));
                    }
                }
                continue;
            }
            if let Some((start, logical)) = current.take() {
                aliases.add(start, &logical)?;
            }
            current = Some((number, line.to_string()));
        }
        if let Some((start, logical)) = current {
            aliases.add(start, &logical)?;
        }
        Ok(aliases)
    }

    /// Read and parse an alias file. No file is not an error: a fresh machine has none, and
    /// then every local name is a user.
    pub fn load(path: &Path) -> Result<Option<Aliases>> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            // Like an unreadable config file: a permanent error would make the caller drop
            // the message over something an administrator can fix.
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                return Err(Error::TempFail(format!(
                    "{}: cannot be read: {}; the message was not delivered, \
                     keep it and retry once the file is readable",
                    path.display(),
                    crate::os_error::describe(&e)
                )));
            }
            Err(e) => return Err(Error::io(path.display().to_string(), e)),
        };
        // Stray Latin-1 lives in comments of old tables; it cannot form a usable name or
        // address, so it is not worth refusing the whole file for.
        let text = String::from_utf8_lossy(&bytes);
        Aliases::parse(&text, path).map(Some)
    }

    /// Whether `name` is an alias (case does not matter).
    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(&name.to_lowercase())
    }

    /// Expand `name` into the recipients it stands for: full addresses as written, local
    /// names lower-cased. A name that is not an alias is returned as it is (lower-cased if
    /// it is local). Targets that are aliases are expanded in turn; each alias is expanded
    /// at most once per call, so the work is bounded by the size of the table.
    ///
    /// A loop (`a: b`, `b: a`, or `root: root, ops@example.org`) is not an error: the name
    /// reached again while its own expansion is in progress is delivered locally, once, as
    /// sendmail does for an alias that includes itself. Nesting deeper than 32 is a
    /// configuration error. Duplicates are removed, first occurrence kept.
    ///
    /// Pipes (`|cmd`), files (`/path`) and `:include:` are refused with [`Error::Config`]:
    /// an MTA runs them from a privileged delivery agent as a chosen user with a clean
    /// environment, but smtpsend runs as whoever sends the mail. Running a command or
    /// writing a file named in the table as that caller would do it with the wrong
    /// privileges (root's for cron's mail, a stranger's for everyone else's).
    pub fn expand(&self, name: &str) -> Result<Vec<String>> {
        let mut walk = Walk {
            aliases: self,
            out: Vec::new(),
            seen_out: HashSet::new(),
            stack: Vec::new(),
            done: HashSet::new(),
        };
        walk.name(name)?;
        Ok(walk.out)
    }

    fn add(&mut self, line: usize, logical: &str) -> Result<()> {
        let (name, rest) = self.split_name(line, logical)?;
        if name.chars().any(char::is_control) {
            return Err(self.error(line, "alias name contains a control character"));
        }
        let key = name.to_lowercase();
        if let Some(first) = self.entries.get(&key) {
            // sendmail and Postfix warn and keep one of the two; with no place for a
            // warning, guessing which one the administrator meant is worse than saying so.
            let msg = format!(
                "duplicate alias \"{}\" (first defined at line {})",
                name.escape_debug(),
                first.line
            );
            return Err(self.error(line, &msg));
        }
        let mut targets = Vec::new();
        for item in split_targets(rest) {
            let item = item.trim_matches([' ', '\t']);
            if item.is_empty() {
                continue;
            }
            targets.push(self.target(line, item)?);
        }
        if targets.is_empty() {
            let msg = format!("alias \"{}\" has no targets", name.escape_debug());
            return Err(self.error(line, &msg));
        }
        self.entries.insert(key, Entry { targets, line });
        Ok(())
    }

    /// The name before the `:` (quoted or not) and the text after it.
    fn split_name<'a>(&self, line: usize, logical: &'a str) -> Result<(String, &'a str)> {
        let (name, after) = if let Some(quoted) = logical.strip_prefix('"') {
            let Some((name, end)) = unquote_prefix(quoted) else {
                return Err(self.error(line, "unterminated quoted alias name"));
            };
            (name, quoted[end + 1..].trim_start_matches([' ', '\t']))
        } else {
            let Some(colon) = logical.find(':') else {
                return Err(self.error(line, "expected \"name: targets\""));
            };
            let name = logical[..colon].trim_end_matches([' ', '\t']);
            if name.contains([' ', '\t']) {
                return Err(self.error(
                    line,
                    "alias name contains a blank (quote it, or is a ':' missing?)",
                ));
            }
            (name.to_string(), &logical[colon..])
        };
        if name.is_empty() {
            return Err(self.error(line, "empty alias name"));
        }
        match after.strip_prefix(':') {
            Some(rest) => Ok((name, rest)),
            None => Err(self.error(line, "expected ':' after the alias name")),
        }
    }

    fn target(&self, line: usize, item: &str) -> Result<Target> {
        // `"|cmd with, commas"` is how tables quote a command; a quoted local part such as
        // `"john smith"@example.org` is an address and stays as written.
        let unquoted = item
            .strip_prefix('"')
            .and_then(unquote_prefix)
            .filter(|(_, end)| end + 2 == item.len())
            .map(|(text, _)| text);
        let plain = unquoted.as_deref().unwrap_or(item);
        let unsupported = |kind: &'static str| {
            Ok(Target::Unsupported {
                kind,
                text: plain.to_string(),
            })
        };
        if plain.starts_with('|') {
            return unsupported("pipe");
        }
        if plain.starts_with('/') {
            return unsupported("file");
        }
        if plain
            .get(..9)
            .is_some_and(|p| p.eq_ignore_ascii_case(":include:"))
        {
            return unsupported(":include:");
        }
        let (verbatim, candidate) = match item.strip_prefix('\\') {
            Some(rest) => (true, rest),
            None => (false, item),
        };
        match envelope_address(candidate) {
            Ok(address) if !verbatim => Ok(Target::Address(address)),
            Err(AddressError::NoDomain(_)) => {
                let local = candidate.to_lowercase();
                Ok(if verbatim {
                    Target::Verbatim(local)
                } else {
                    Target::Local(local)
                })
            }
            Ok(_) => Err(self.error(
                line,
                &format!(
                    "\"{}\": only a local name can follow '\\'",
                    item.escape_debug()
                ),
            )),
            Err(e) => Err(self.error(line, &format!("bad target: {e}"))),
        }
    }

    fn error(&self, line: usize, what: &str) -> Error {
        Error::Config(format!("{}:{line}: {what}", self.origin.display()))
    }
}

/// The state of one [`Aliases::expand`].
struct Walk<'a> {
    aliases: &'a Aliases,
    out: Vec<String>,
    seen_out: HashSet<String>,
    /// The aliases being expanded, outermost first: reaching one of them again is a loop.
    stack: Vec<String>,
    /// Aliases whose expansion is complete: their recipients are already in `out`.
    done: HashSet<String>,
}

impl Walk<'_> {
    fn name(&mut self, name: &str) -> Result<()> {
        if name.contains('@') {
            self.push(name.to_string());
            return Ok(());
        }
        let key = name.to_lowercase();
        if self.stack.contains(&key) {
            self.push(key);
            return Ok(());
        }
        if self.done.contains(&key) {
            return Ok(());
        }
        let Some(entry) = self.aliases.entries.get(&key) else {
            self.push(key);
            return Ok(());
        };
        if self.stack.len() >= MAX_DEPTH {
            return Err(self.aliases.error(
                entry.line,
                &format!(
                    "aliases nested more than {MAX_DEPTH} deep ({} -> ... -> {key})",
                    self.stack.first().map_or("", String::as_str)
                ),
            ));
        }
        self.stack.push(key.clone());
        for target in &entry.targets {
            match target {
                Target::Address(a) => self.push(a.clone()),
                Target::Verbatim(local) => self.push(local.clone()),
                Target::Local(local) => self.name(local)?,
                Target::Unsupported { kind, text } => {
                    return Err(self.aliases.error(
                        entry.line,
                        &format!(
                            "alias \"{key}\": {kind} target \"{}\" not supported: smtpsend \
                             delivers as the user who runs it, not as a privileged mail \
                             system, so it does not run commands or write files for aliases",
                            text.escape_debug()
                        ),
                    ));
                }
            }
        }
        self.stack.pop();
        self.done.insert(key);
        Ok(())
    }

    fn push(&mut self, recipient: String) {
        if self.seen_out.insert(recipient.clone()) {
            self.out.push(recipient);
        }
    }
}

/// Split the text after the colon at commas that are not inside double quotes.
fn split_targets(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// The content of a quoted string whose opening quote is already stripped, with `\x`
/// resolved, and the index of its closing quote in `text`.
fn unquote_prefix(text: &str) -> Option<(String, usize)> {
    let mut out = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, i)),
            '\\' => out.push(chars.next()?.1),
            _ => out.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ExitStatus;

    fn parse(text: &str) -> Aliases {
        match Aliases::parse(text, Path::new("/etc/aliases")) {
            Ok(a) => a,
            Err(e) => panic!("{text:?}: {e}"),
        }
    }

    fn parse_err(text: &str) -> String {
        match Aliases::parse(text, Path::new("/etc/aliases")) {
            Ok(a) => panic!("{text:?} parsed: {a:?}"),
            Err(e) => {
                assert_eq!(e.exit_status(), ExitStatus::Config, "{e}");
                e.to_string()
            }
        }
    }

    fn expand(a: &Aliases, name: &str) -> Vec<String> {
        match a.expand(name) {
            Ok(v) => v,
            Err(e) => panic!("{name}: {e}"),
        }
    }

    #[test]
    fn debian_default_table_parses() {
        let a = parse(
            "# See man 5 aliases for format\n\
             postmaster:    root\n\
             mailer-daemon: postmaster\n\
             \n\
             root: admin@example.org\n",
        );
        assert_eq!(expand(&a, "MAILER-DAEMON"), ["admin@example.org"]);
        assert_eq!(expand(&a, "root"), ["admin@example.org"]);
        assert!(a.contains("PostMaster"));
    }

    #[test]
    fn a_name_that_is_not_an_alias_is_itself() {
        let a = parse("root: alice\n");
        assert_eq!(expand(&a, "bob"), ["bob"]);
        assert_eq!(expand(&a, "Bob"), ["bob"]);
        assert_eq!(expand(&a, "bob@example.org"), ["bob@example.org"]);
        assert_eq!(expand(&a, "ROOT"), ["alice"]);
    }

    #[test]
    fn continuation_lines_and_comments_inside_an_entry() {
        let a = parse(
            "staff: alice,\n  bob,\n# a comment in the middle\n\n\tcarol@example.org\n\
             other: dave\n",
        );
        assert_eq!(expand(&a, "staff"), ["alice", "bob", "carol@example.org"]);
        assert_eq!(expand(&a, "other"), ["dave"]);
    }

    #[test]
    fn crlf_files_and_indented_comments_parse() {
        let a = parse("  # indented comment\r\nroot: alice\r\n   , bob\r\n");
        assert_eq!(expand(&a, "root"), ["alice", "bob"]);
    }

    #[test]
    fn quoted_names_and_targets() {
        let a = parse(
            "\"Help Desk\": \"john smith\"@example.org, alice\n\
             \"x\\\"y\": bob\n",
        );
        assert_eq!(
            expand(&a, "help desk"),
            ["\"john smith\"@example.org", "alice"]
        );
        assert_eq!(expand(&a, "x\"y"), ["bob"]);
    }

    #[test]
    fn angle_brackets_around_an_address_are_removed() {
        let a = parse("root: <admin@example.org>\n");
        assert_eq!(expand(&a, "root"), ["admin@example.org"]);
    }

    #[test]
    fn loops_deliver_to_the_looping_name_once() {
        let a = parse("a: b\nb: a\n");
        assert_eq!(expand(&a, "a"), ["a"]);
        assert_eq!(expand(&a, "b"), ["b"]);

        let a = parse("root: root, ops@example.org\n");
        assert_eq!(expand(&a, "root"), ["root", "ops@example.org"]);

        let a = parse("a: b, c\nb: c, a\nc: a, x@example.org\n");
        assert_eq!(expand(&a, "a"), ["a", "x@example.org"]);
    }

    #[test]
    fn duplicates_are_removed() {
        let a = parse("team: alice, bob, ALICE, sub\nsub: bob, carol\n");
        assert_eq!(expand(&a, "team"), ["alice", "bob", "carol"]);
    }

    #[test]
    fn shared_sub_aliases_do_not_blow_up() {
        // Each level names the next twice: 2^31 paths, 32 aliases.
        let mut text = String::new();
        for i in 0..31 {
            text.push_str(&format!("a{i}: a{n}, a{n}\n", n = i + 1));
        }
        text.push_str("a31: end\n");
        let a = parse(&text);
        assert_eq!(expand(&a, "a0"), ["end"]);
    }

    #[test]
    fn nesting_deeper_than_32_is_a_config_error() {
        let chain = |n: usize| {
            let mut text = String::new();
            for i in 0..n {
                text.push_str(&format!("a{i}: a{}\n", i + 1));
            }
            text
        };
        assert_eq!(expand(&parse(&chain(32)), "a0"), ["a32"]);
        let err = match parse(&chain(33)).expand("a0") {
            Ok(v) => panic!("expanded: {v:?}"),
            Err(e) => e,
        };
        assert_eq!(err.exit_status(), ExitStatus::Config);
        assert!(err.to_string().contains("nested more than 32"), "{err}");
    }

    #[test]
    fn pipes_files_and_includes_are_refused_when_reached() {
        let a = parse(
            "root: alice\n\
             prog: \"|/usr/bin/procmail -a x, y\"\n\
             save: /var/backup/mbox\n\
             list: :include:/etc/mail/list\n\
             bare: |/bin/cat\n\
             via: alice, prog\n",
        );
        assert_eq!(expand(&a, "root"), ["alice"]);
        for (name, kind) in [
            ("prog", "pipe"),
            ("save", "file"),
            ("list", ":include:"),
            ("bare", "pipe"),
            ("via", "pipe"),
        ] {
            let err = match a.expand(name) {
                Ok(v) => panic!("{name} expanded: {v:?}"),
                Err(e) => e,
            };
            assert_eq!(err.exit_status(), ExitStatus::Config);
            let text = err.to_string();
            assert!(text.contains(&format!("{kind} target")), "{text}");
            assert!(text.contains("not supported"), "{text}");
            assert!(text.starts_with("/etc/aliases:"), "{text}");
        }
    }

    #[test]
    fn backslash_delivers_locally_without_further_aliasing() {
        let a = parse("alice: \\alice, alice@example.org\nroot: alice\n");
        assert_eq!(expand(&a, "root"), ["alice", "alice@example.org"]);
    }

    #[test]
    fn bad_lines_are_config_errors_with_file_and_line() {
        assert!(parse_err("root alice\n").starts_with("/etc/aliases:1: "));
        assert!(parse_err("ok: a,\n  b\nroot\n").starts_with("/etc/aliases:3: "));
        assert!(parse_err("  alice\n").contains(":1: continuation"));
        assert!(parse_err("root:\n").contains("no targets"));
        assert!(parse_err("root: , ,\n").contains("no targets"));
        assert!(parse_err(": alice\n").contains("empty alias name"));
        assert!(parse_err("\"root: alice\n").contains("unterminated"));
        assert!(parse_err("\"root\" alice\n").contains("expected ':'"));
        assert!(parse_err("my root: alice\n").contains("blank"));
        assert!(parse_err("root: a b\n").contains("bad target"));
        assert!(parse_err("root: a@\n").contains("bad target"));
        assert!(parse_err("root: \\a@example.org\n").contains("local name"));
        let dup = parse_err("root: a\n\nRoot: b\n");
        assert!(dup.starts_with("/etc/aliases:3: "), "{dup}");
        assert!(dup.contains("first defined at line 1"), "{dup}");
    }

    #[test]
    fn load_of_a_missing_file_is_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("aliases");
        assert!(matches!(Aliases::load(&missing), Ok(None)));
        std::fs::write(&missing, b"root: alice\n# caf\xe9\n").expect("write");
        let a = match Aliases::load(&missing) {
            Ok(Some(a)) => a,
            other => panic!("{other:?}"),
        };
        assert_eq!(expand(&a, "root"), ["alice"]);
        std::fs::write(&missing, b"root alice\n").expect("write");
        let err = match Aliases::load(&missing) {
            Err(e) => e.to_string(),
            Ok(a) => panic!("{a:?}"),
        };
        assert!(
            err.starts_with(&format!("{}:1: ", missing.display())),
            "{err}"
        );
    }
}
