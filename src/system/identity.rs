//! Who and where we are: the login name and the machine's mail name, for the default
//! envelope sender, EHLO and Message-ID.

use std::ffi::{CStr, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// A user's entry in the password database.
pub struct Passwd {
    pub name: String,
    /// The home directory, when it is an absolute path.
    pub home: Option<PathBuf>,
}

/// Look `uid` up in the password database (getpwuid_r, growing the buffer as asked).
pub fn passwd(uid: u32) -> Option<Passwd> {
    let mut buf: Vec<libc::c_char> = vec![0; 1024];
    loop {
        // SAFETY: passwd is plain old data; getpwuid_r fills it with pointers into `buf`,
        // which outlives every use of them below.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc =
            unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
            return None;
        }
        // SAFETY: on success pw_name and pw_dir are NUL-terminated strings inside `buf`.
        let name = unsafe { CStr::from_ptr(pwd.pw_name) }
            .to_string_lossy()
            .into_owned();
        let home = (!pwd.pw_dir.is_null())
            .then(|| {
                let dir = unsafe { CStr::from_ptr(pwd.pw_dir) };
                PathBuf::from(OsStr::from_bytes(dir.to_bytes()))
            })
            .filter(|d| d.is_absolute());
        return Some(Passwd { name, home });
    }
}

/// The name of the user running smtpsend: `$LOGNAME`/`$USER` when they match the real uid
/// would be guesswork, so the password database is asked first.
pub fn user_name() -> String {
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    if let Some(entry) = passwd(uid)
        && !entry.name.is_empty()
    {
        return entry.name;
    }
    std::env::var("LOGNAME")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "root".into())
}

/// The machine's mail name: `/etc/mailname` (Debian's convention), else the host name.
pub fn mail_name() -> String {
    if let Ok(text) = std::fs::read_to_string("/etc/mailname") {
        let name = text.trim();
        if is_plausible_host(name) {
            return name.to_string();
        }
    }
    host_name()
}

/// The kernel's host name, or `localhost`.
pub fn host_name() -> String {
    let mut buf = [0 as libc::c_char; 256];
    // SAFETY: the buffer is valid for its length and NUL-terminated below.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr(), buf.len() - 1) };
    if rc == 0 {
        // SAFETY: gethostname wrote a NUL-terminated string within the buffer.
        let name = unsafe { CStr::from_ptr(buf.as_ptr()) };
        if let Ok(name) = name.to_str()
            && is_plausible_host(name)
        {
            return name.to_string();
        }
    }
    "localhost".into()
}

fn is_plausible_host(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_usable_in_smtp() {
        assert!(is_plausible_host(&mail_name()));
        assert!(!user_name().is_empty());
        assert!(!is_plausible_host("bad host\r\n"));
    }
}
