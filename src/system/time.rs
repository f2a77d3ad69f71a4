//! Dates as smtpsend writes them, their fields all from jiff: RFC 3339 in UTC (log lines, `--diagnose`),
//! the RFC 5322 §3.3 `Date` header, asctime(3) for the mbox `From ` line, and certificate
//! validity times (RFC 5280 §4.1.2.5).
//!
//! The local zone is read as the C library reads it: `TZ` (a zone name, a POSIX rule, a
//! path, empty for UTC), else /etc/localtime; UTC when neither can be read.

use std::time::{SystemTime, UNIX_EPOCH};

use jiff::civil::DateTime;
use jiff::tz::{Offset, TimeZone};
use jiff::{Timestamp, ZonedDateTime};

/// RFC 3339 in UTC with whole seconds: `2025-01-31T12:00:00Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let at = Timestamp::try_from(t).unwrap_or(if t < UNIX_EPOCH {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    });
    // Whole seconds, truncated: the form and the rounding the log has always had.
    Timestamp::from_second(at.as_second())
        .unwrap_or(at)
        .to_string()
}

/// RFC 5322 §3.3 `date-time` at `secs` since the epoch, in the zone `offset` seconds east
/// of UTC: `Fri, 21 Nov 1997 09:55:06 -0600`. An offset with seconds (a POSIX rule, a
/// zone's local mean time) is rounded to the nearest minute first, and the time written in
/// it, so that the date still names the very second.
pub fn rfc5322(secs: i64, offset: i32) -> String {
    let at = zoned(secs, to_minutes(offset));
    let (day, time) = (at.date(), at.time());
    // The fields are jiff's; only their names and order are written here. jiff's RFC 2822
    // printer would do the same and refuse negative years besides, but it alone touched
    // two pages of tables and code nothing else in a send needs.
    let minutes = at.offset().seconds() / 60;
    let sign = if minutes < 0 { '-' } else { '+' };
    format!(
        "{}, {} {} {:04} {:02}:{:02}:{:02} {sign}{:02}{:02}",
        weekday(day),
        day.day(),
        month(day),
        day.year(),
        time.hour(),
        time.minute(),
        time.second(),
        minutes.abs() / 60,
        minutes.abs() % 60,
    )
}

/// `offset` seconds rounded to the nearest whole minute, halves away from zero.
fn to_minutes(offset: i32) -> i32 {
    let minutes = (offset.abs() + 30) / 60;
    offset.signum() * minutes * 60
}

/// RFC 5322 §3.3 `day-name`, as asctime(3) writes it too.
fn weekday(day: jiff::civil::Date) -> &'static str {
    WEEKDAYS[usize::from(day.weekday().to_monday_zero_offset().unsigned_abs())]
}

/// RFC 5322 §3.3 `month-name`, as asctime(3) writes it too.
fn month(day: jiff::civil::Date) -> &'static str {
    MONTHS[usize::from(day.month().unsigned_abs()).saturating_sub(1)]
}

const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// The local zone's offset from UTC at `secs` since the epoch, in seconds east.
pub fn local_offset(secs: i64) -> i32 {
    local_zone().to_offset(timestamp(secs)).seconds()
}

/// Where the C library looks for zone files named by `TZ`, after `$TZDIR`.
const ZONEINFO_DIRS: [&str; 3] = [
    "/usr/share/zoneinfo",
    "/usr/lib/zoneinfo",
    "/usr/share/lib/zoneinfo",
];

/// The local zone as the C library finds it: `TZ` (empty: UTC; `:` and a path, or a path;
/// a zone name under `$TZDIR` or the zoneinfo directories; else a POSIX rule), else
/// /etc/localtime; UTC when none can be read. Read here rather than by jiff's
/// `TimeZone::try_system`, which loads the whole zone database (a walk of
/// /usr/share/zoneinfo, 100 KB of heap) to learn the zone's name, which a date never shows.
fn local_zone() -> TimeZone {
    let zone = match std::env::var("TZ") {
        Ok(tz) if tz.is_empty() => Some(TimeZone::UTC),
        Ok(tz) => zone_of(tz.strip_prefix(':').unwrap_or(&tz)),
        Err(_) => tzif_file("/etc/localtime".as_ref()),
    };
    zone.unwrap_or(TimeZone::UTC)
}

/// What a `TZ` value names.
fn zone_of(tz: &str) -> Option<TimeZone> {
    if tz.starts_with('/') {
        return tzif_file(tz.as_ref());
    }
    // A name never climbs out of the zone directory.
    if !tz.split('/').any(|part| part == "..") {
        let tzdir = std::env::var_os("TZDIR").map(std::path::PathBuf::from);
        let dirs = tzdir
            .into_iter()
            .chain(ZONEINFO_DIRS.iter().map(std::path::PathBuf::from));
        for dir in dirs {
            if let Some(zone) = tzif_file(&dir.join(tz)) {
                return Some(zone);
            }
        }
    }
    TimeZone::posix(tz).ok()
}

/// A TZif file (RFC 8536), if it is one.
fn tzif_file(path: &std::path::Path) -> Option<TimeZone> {
    let data = std::fs::read(path).ok()?;
    TimeZone::tzif(&path.display().to_string(), &data).ok()
}

/// `secs` since the epoch as asctime(3) writes it in local time, `Thu Nov 24 18:22:48
/// 1986`: the date of the mbox `From ` line.
pub fn asctime_local(secs: i64) -> String {
    asctime(secs, local_offset(secs))
}

/// asctime(3)'s form (the day padded with a space) in the zone `offset` seconds east.
pub fn asctime(secs: i64, offset: i32) -> String {
    let at = zoned(secs, offset);
    let (day, time) = (at.date(), at.time());
    format!(
        "{} {} {:>2} {:02}:{:02}:{:02} {}",
        weekday(day),
        month(day),
        day.day(),
        time.hour(),
        time.minute(),
        time.second(),
        day.year(),
    )
}

/// `YYYYMMDDHHMMSS` in UTC (a certificate's GeneralizedTime without its `Z`, RFC 5280
/// §4.1.2.5.2) as RFC 3339; `None` for a date or time that does not exist.
pub fn rfc3339_from_compact(digits: &str) -> Option<String> {
    if digits.len() != 14 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let field = |at: usize, len: usize| digits[at..at + len].parse::<i16>().ok();
    // A leap second (RFC 5280 allows :60) is read as :59, as strptime(3) does.
    let second = field(12, 2)?;
    let second = if second == 60 { 59 } else { second };
    let civil = DateTime::new(
        field(0, 4)?,
        i8::try_from(field(4, 2)?).ok()?,
        i8::try_from(field(6, 2)?).ok()?,
        i8::try_from(field(8, 2)?).ok()?,
        i8::try_from(field(10, 2)?).ok()?,
        i8::try_from(second).ok()?,
        0,
    )
    .ok()?;
    let at = civil.to_zoned_datetime(TimeZone::UTC).ok()?.timestamp();
    Some(at.to_string())
}

/// `secs` since the epoch, saturated to the years jiff knows (-9999 to 9999).
fn timestamp(secs: i64) -> Timestamp {
    let secs = secs.clamp(Timestamp::MIN.as_second(), Timestamp::MAX.as_second());
    Timestamp::from_second(secs).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// `secs` in the fixed zone `offset` seconds east (UTC if the offset is beyond ±25:59:59).
fn zoned(secs: i64, offset: i32) -> ZonedDateTime {
    let offset = Offset::from_seconds(offset).unwrap_or(Offset::UTC);
    timestamp(secs).to_zoned_datetime(TimeZone::fixed(offset))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(4_102_444_799)),
            "2099-12-31T23:59:59Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH - Duration::from_secs(1)),
            "1969-12-31T23:59:59Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_millis(1_999)),
            "1970-01-01T00:00:01Z",
            "fractions are cut, not rounded"
        );
    }

    #[test]
    fn date_matches_rfc5322_examples() {
        // RFC 5322 Appendix A.1.1: "Fri, 21 Nov 1997 09:55:06 -0600".
        let secs = 880_127_706; // 1997-11-21T15:55:06Z
        assert_eq!(rfc5322(secs, -6 * 3600), "Fri, 21 Nov 1997 09:55:06 -0600");
        // Appendix A.6.2 uses "Thu, 13 Feb 1969 23:32:54 -0330", before the epoch.
        let secs = -27_723_426; // 1969-02-14T03:02:54Z
        assert_eq!(
            rfc5322(secs, -(3 * 3600 + 30 * 60)),
            "Thu, 13 Feb 1969 23:32:54 -0330"
        );
        assert_eq!(rfc5322(0, 0), "Thu, 1 Jan 1970 00:00:00 +0000");
        assert_eq!(rfc5322(951_782_400, 0), "Tue, 29 Feb 2000 00:00:00 +0000");
        assert_eq!(
            rfc5322(0, 5 * 3600 + 45 * 60),
            "Thu, 1 Jan 1970 05:45:00 +0545"
        );
    }

    #[test]
    fn an_offset_with_seconds_is_rounded_and_the_time_written_in_it() {
        // Amsterdam's local mean time, +00:19:32: +0020, the time 28 s later.
        assert_eq!(rfc5322(0, 19 * 60 + 32), "Thu, 1 Jan 1970 00:20:00 +0020");
        // -00:44:30 rounds away from zero; -20 s is no offset at all.
        assert_eq!(
            rfc5322(3600, -(44 * 60 + 30)),
            "Thu, 1 Jan 1970 00:15:00 -0045"
        );
        assert_eq!(rfc5322(0, -20), "Thu, 1 Jan 1970 00:00:00 +0000");
    }

    #[test]
    fn asctime_pads_the_day_with_a_space() {
        // 1986-11-24T18:22:48Z, a Monday.
        assert_eq!(asctime(533_240_568, 0), "Mon Nov 24 18:22:48 1986");
        assert_eq!(asctime(0, 0), "Thu Jan  1 00:00:00 1970");
        assert_eq!(asctime(0, -3600), "Wed Dec 31 23:00:00 1969");
        assert_eq!(asctime(4_102_444_800, 0), "Fri Jan  1 00:00:00 2100");
    }

    #[test]
    fn tz_values_are_read_as_the_c_library_reads_them() {
        let jan = timestamp(1_704_067_200); // 2024-01-01T00:00:00Z
        let jul = timestamp(1_719_792_000); // 2024-07-01T00:00:00Z
        let rule = zone_of("EST5EDT,M3.2.0,M11.1.0").expect("a POSIX rule");
        assert_eq!(rule.to_offset(jan).seconds(), -5 * 3600);
        assert_eq!(rule.to_offset(jul).seconds(), -4 * 3600);
        assert_eq!(zone_of("UTC0").expect("UTC0").to_offset(jan).seconds(), 0);
        // A name that climbs out of the zone directory is not a file to read (nor a rule).
        assert!(zone_of("../../etc/passwd").is_none());
        assert!(zone_of("/nonexistent/zone").is_none());
        // A zone file by name and by path, where the system has the zone database.
        if std::path::Path::new("/usr/share/zoneinfo/Europe/Berlin").exists() {
            let berlin = zone_of("Europe/Berlin").expect("Europe/Berlin");
            assert_eq!(berlin.to_offset(jan).seconds(), 3600);
            assert_eq!(berlin.to_offset(jul).seconds(), 7200);
            let by_path = zone_of("/usr/share/zoneinfo/Europe/Berlin").expect("by path");
            assert_eq!(by_path.to_offset(jul).seconds(), 7200);
        }
    }

    #[test]
    fn local_offset_is_plausible() {
        let now = i64::try_from(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs(),
        )
        .unwrap();
        assert!(local_offset(now).abs() <= 26 * 3600);
        assert_eq!(asctime_local(now).len(), "Thu Jan  1 00:00:00 1970".len());
    }

    #[test]
    fn certificate_times_become_rfc3339() {
        assert_eq!(
            rfc3339_from_compact("20511231000000").as_deref(),
            Some("2051-12-31T00:00:00Z")
        );
        assert_eq!(
            rfc3339_from_compact("19500101235959").as_deref(),
            Some("1950-01-01T23:59:59Z")
        );
        assert_eq!(
            rfc3339_from_compact("20161231235960").as_deref(),
            Some("2016-12-31T23:59:59Z"),
            "a leap second"
        );
        assert_eq!(rfc3339_from_compact("20250230000000"), None, "30 February");
        assert_eq!(rfc3339_from_compact("20251301000000"), None, "month 13");
        assert_eq!(rfc3339_from_compact("2025010100000"), None, "13 digits");
        assert_eq!(rfc3339_from_compact("2025010100000x"), None);
    }
}
