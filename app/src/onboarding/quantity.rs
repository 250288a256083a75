//! Kubernetes resource quantities, in the subset the onboarding form accepts: CPU as cores
//! (`0.5`, `2`) or millicores (`500m`), memory as bytes with a binary or decimal unit (`128Mi`,
//! `1G`). Parsed to integers so requests and limits compare exactly.

/// CPU in millicores, or `None` when `value` is not `<digits>m` or `<digits>[.<1–3 digits>]`.
pub fn cpu_millis(value: &str) -> Option<u128> {
    if let Some(millis) = value.strip_suffix('m') {
        return digits(millis);
    }
    let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
    if value.contains('.') && !(1..=3).contains(&fraction.len()) {
        return None;
    }
    let scaled = format!("{fraction:0<3}");
    digits(whole)?.checked_mul(1000)?.checked_add(if fraction.is_empty() {
        0
    } else {
        digits(&scaled)?
    })
}

/// Memory in bytes, or `None` when `value` is not `<digits>[Ki|Mi|Gi|Ti|Pi|k|M|G|T|P]`.
pub fn memory_bytes(value: &str) -> Option<u128> {
    const UNITS: [(&str, u128); 10] = [
        ("Ki", 1 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("Ti", 1 << 40),
        ("Pi", 1 << 50),
        ("k", 1_000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
        ("T", 1_000_000_000_000),
        ("P", 1_000_000_000_000_000),
    ];
    let (number, factor) = UNITS
        .iter()
        .find_map(|(unit, factor)| value.strip_suffix(unit).map(|n| (n, *factor)))
        .unwrap_or((value, 1));
    digits(number)?.checked_mul(factor)
}

/// A non-empty run of ASCII digits, at most 18 long so it cannot overflow.
fn digits(value: &str) -> Option<u128> {
    if value.is_empty() || value.len() > 18 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cpu() {
        assert_eq!(cpu_millis("250m"), Some(250));
        assert_eq!(cpu_millis("0.5"), Some(500));
        assert_eq!(cpu_millis("2"), Some(2000));
        assert_eq!(cpu_millis("1.25"), Some(1250));
        for bad in ["", "m", "1.", ".5", "0.0001", "-1", "1e3", "1 ", "1.5m", "1Gi"] {
            assert_eq!(cpu_millis(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn parses_memory() {
        assert_eq!(memory_bytes("128Mi"), Some(128 << 20));
        assert_eq!(memory_bytes("1G"), Some(1_000_000_000));
        assert_eq!(memory_bytes("512"), Some(512));
        for bad in ["", "Mi", "1.5Gi", "-1Gi", "1gi", "1 Mi", "1MiB"] {
            assert_eq!(memory_bytes(bad), None, "{bad:?}");
        }
    }
}
