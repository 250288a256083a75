//! OCI image references, parsed by the grammar of the distribution project's `reference`
//! package: `[domain[:port]/]path[:tag][@algorithm:hex]`.

/// A parsed image reference, borrowing from the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageReference<'a> {
    /// Registry host and optional port, when the reference names one.
    pub domain: Option<&'a str>,
    /// Repository path, for example `shop/cart`.
    pub path: &'a str,
    /// Tag, for example `1.4.2`.
    pub tag: Option<&'a str>,
    /// Digest, for example `sha256:…`.
    pub digest: Option<&'a str>,
}

/// Longest repository name (domain and path) the grammar allows.
const MAX_NAME: usize = 255;

impl<'a> ImageReference<'a> {
    /// Parses `input`, or says which part is wrong.
    pub fn parse(input: &'a str) -> Result<Self, &'static str> {
        let (rest, digest) = match input.split_once('@') {
            Some((rest, digest)) => (rest, Some(digest)),
            None => (input, None),
        };
        if let Some(digest) = digest
            && !is_digest(digest)
        {
            return Err("the digest must look like `sha256:` followed by 64 lowercase hex digits");
        }
        // A tag follows the last ':' that comes after the last '/'; an earlier ':' is a port.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(tag) = tag
            && !is_tag(tag)
        {
            return Err(
                "the tag must be 1 to 128 letters, digits, '_', '.' or '-', not starting with '.' or '-'",
            );
        }
        if name.is_empty() {
            return Err("the repository name is missing");
        }
        if name.len() > MAX_NAME {
            return Err("the repository name is longer than 255 characters");
        }
        let (domain, path) = match name.split_once('/') {
            Some((first, path)) if first.contains(['.', ':']) || first == "localhost" => {
                (Some(first), path)
            }
            _ => (None, name),
        };
        if let Some(domain) = domain
            && !is_domain(domain)
        {
            return Err(
                "the registry must be a host name with an optional port, such as `ghcr.io` or `registry:5000`",
            );
        }
        if !path.split('/').all(is_path_component) {
            return Err(
                "repository path parts use lowercase letters and digits, separated by single '.', '_', '__' or '-'",
            );
        }
        Ok(Self { domain, path, tag, digest })
    }

    /// Whether the reference floats: tagged `latest`, or with neither tag nor digest (which
    /// means `latest`).
    pub fn is_latest(&self) -> bool {
        match (self.tag, self.digest) {
            (_, Some(_)) => false,
            (Some(tag), None) => tag == "latest",
            (None, None) => true,
        }
    }
}

fn is_digest(value: &str) -> bool {
    let Some((algorithm, hex)) = value.split_once(':') else { return false };
    let lower_hex = |len: usize| {
        hex.len() == len && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    match algorithm {
        "sha256" => lower_hex(64),
        "sha512" => lower_hex(128),
        _ => false,
    }
}

fn is_tag(value: &str) -> bool {
    (1..=128).contains(&value.len())
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        && !value.starts_with(['.', '-'])
}

fn is_domain(value: &str) -> bool {
    let (host, port) = match value.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (value, None),
    };
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    port_ok && host.split('.').all(label_ok)
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn is_path_component(value: &str) -> bool {
    let bytes = value.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(&bytes[0]) || !alnum(&bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(&bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(&bytes[i]) {
            i += 1;
        }
        let separator = &value[start..i];
        if !(separator == "."
            || separator == "_"
            || separator == "__"
            || separator.bytes().all(|b| b == b'-'))
        {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_references_the_grammar_allows() {
        let r = ImageReference::parse("ghcr.io/open-telemetry/demo:2.1.3-cart").unwrap();
        assert_eq!(
            (r.domain, r.path, r.tag),
            (Some("ghcr.io"), "open-telemetry/demo", Some("2.1.3-cart"))
        );
        let r = ImageReference::parse("localhost:5000/shop/cart_svc@sha256:").err();
        assert!(r.is_some(), "a digest without hex is refused");
        let digest = format!("registry.local:5000/a/b__c@sha256:{}", "0".repeat(64));
        let r = ImageReference::parse(&digest).unwrap();
        assert_eq!(
            (r.domain, r.path, r.tag, r.is_latest()),
            (Some("registry.local:5000"), "a/b__c", None, false)
        );
        assert!(ImageReference::parse("busybox").unwrap().is_latest());
        assert!(ImageReference::parse("busybox:latest").unwrap().is_latest());
        assert!(!ImageReference::parse("docker.io/library/busybox:1.36").unwrap().is_latest());
    }

    #[test]
    fn refuses_malformed_references() {
        for bad in [
            "",
            "Shop/cart:1",
            "shop//cart:1",
            "shop/cart:",
            "shop/cart:-1",
            "shop/cart:1 ",
            "shop/cart:1\n",
            "shop/../cart:1",
            "-shop/cart:1",
            "shop/cart.:1",
            "ghcr.io:/cart:1",
            "ghcr.io:99999999/cart:1",
            "shop/cart@md5:abc",
            "shop/cаrt:1", // Cyrillic 'а'
        ] {
            assert!(ImageReference::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
