//! Who and where we are: the login name and the machine's mail name, for the default
//! envelope sender, EHLO and Message-ID.

use std::ffi::{CStr, OsStr};
use std::mem::MaybeUninit;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// A user's entry in the password database.
pub struct Passwd {
    pub name: String,
    /// The home directory, when it is an absolute path.
    pub home: Option<PathBuf>,
}

/// Look `uid` up in the password database (getpwuid_r, growing the buffer as asked).
/// Neither std nor rustix reads the password database, which goes through NSS.
pub fn passwd(uid: u32) -> Option<Passwd> {
    let mut buf: Vec<libc::c_char> = vec![0; 1024];
    loop {
        let mut pwd = MaybeUninit::<libc::passwd>::uninit();
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for writing, `buf` for `buf.len()` bytes;
        // getpwuid_r writes the entry into `pwd` and its strings into `buf`, and keeps
        // none of the pointers after it returns.
        let rc = unsafe {
            libc::getpwuid_r(
                uid,
                pwd.as_mut_ptr(),
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if rc != 0 || result.is_null() {
            return None;
        }
        // SAFETY: on success `result` points to `pwd`, which getpwuid_r initialised; its
        // pw_name and pw_dir are null or NUL-terminated strings inside `buf`, which is
        // neither changed nor dropped until they are copied here.
        let (name, dir) = unsafe {
            let pwd = &*result;
            let copy =
                |p: *const libc::c_char| (!p.is_null()).then(|| CStr::from_ptr(p).to_owned());
            (copy(pwd.pw_name), copy(pwd.pw_dir))
        };
        let name = name?.to_string_lossy().into_owned();
        let home = dir
            .map(|d| PathBuf::from(OsStr::from_bytes(d.as_bytes())))
            .filter(|d| d.is_absolute());
        return Some(Passwd { name, home });
    }
}

/// The name of the user running smtpsend: `$LOGNAME`/`$USER` when they match the real uid
/// would be guesswork, so the password database is asked first.
pub fn user_name() -> String {
    let uid = rustix::process::getuid().as_raw();
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

/// The kernel's host name (uname(2)'s node name, which gethostname(2) returns on
/// Linux), or `localhost`.
pub fn host_name() -> String {
    let uname = rustix::system::uname();
    match uname.nodename().to_str() {
        Ok(name) if is_plausible_host(name) => name.to_string(),
        _ => "localhost".into(),
    }
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
