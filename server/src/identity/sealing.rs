//! Refresh tokens at rest: sealed with AES-256-GCM, so a copy of the database alone does not
//! let anyone act at the identity provider as meshport's users.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hkdf;
use ring::rand::{SecureRandom, SystemRandom};
use secrecy::ExposeSecret;

use crate::config::IdentityConfig;

/// Binds a sealed value to its purpose, so it cannot be moved into another column.
const PURPOSE: &[u8] = b"meshport refresh token v1";

/// The key refresh tokens are sealed with.
pub struct Sealer {
    key: LessSafeKey,
    random: SystemRandom,
}

impl Sealer {
    /// The configured `identity.encryption_key` (32 bytes, base64), else a key derived from
    /// the client secret (HKDF-SHA256); none for a public client without either, and then
    /// refresh tokens are not kept.
    pub fn new(config: &IdentityConfig) -> anyhow::Result<Option<Self>> {
        let mut bytes = [0u8; 32];
        if let Some(key) = &config.encryption_key {
            let decoded = STANDARD.decode(key.expose_secret().trim()).ok();
            match decoded {
                Some(decoded) if decoded.len() == 32 => bytes.copy_from_slice(&decoded),
                _ => anyhow::bail!("identity.encryption_key must be 32 bytes in base64"),
            }
        } else if let Some(secret) = &config.client_secret {
            let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, PURPOSE);
            let prk = salt.extract(secret.expose_secret().as_bytes());
            prk.expand(&[b"sealing key"], hkdf::HKDF_SHA256)
                .and_then(|okm| okm.fill(&mut bytes))
                .map_err(|_| anyhow::anyhow!("could not derive the sealing key"))?;
        } else {
            return Ok(None);
        }
        let key = UnboundKey::new(&AES_256_GCM, &bytes)
            .map_err(|_| anyhow::anyhow!("could not build the sealing key"))?;
        Ok(Some(Self { key: LessSafeKey::new(key), random: SystemRandom::new() }))
    }

    /// `value` sealed under a fresh random nonce: base64 of nonce and ciphertext with tag.
    pub fn seal(&self, value: &str) -> anyhow::Result<String> {
        let mut nonce = [0u8; NONCE_LEN];
        self.random.fill(&mut nonce).map_err(|_| anyhow::anyhow!("no randomness"))?;
        let mut data = value.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(PURPOSE),
                &mut data,
            )
            .map_err(|_| anyhow::anyhow!("could not seal"))?;
        Ok(STANDARD.encode([nonce.as_slice(), &data].concat()))
    }

    /// The value `sealed` holds; none when it was sealed under another key or altered.
    pub fn open(&self, sealed: &str) -> Option<String> {
        let bytes = STANDARD.decode(sealed).ok()?;
        if bytes.len() < NONCE_LEN {
            return None;
        }
        let (nonce, data) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut data = data.to_vec();
        let plain = self.key.open_in_place(nonce, Aad::from(PURPOSE), &mut data).ok()?;
        String::from_utf8(plain.to_vec()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer(secret: &str) -> Sealer {
        let config =
            IdentityConfig { client_secret: Some(secret.into()), ..IdentityConfig::default() };
        Sealer::new(&config).unwrap().unwrap()
    }

    #[test]
    fn sealed_values_open_only_under_their_key_and_unaltered() {
        let sealer = sealer("client-secret");
        let sealed = sealer.seal("refresh-token-value").unwrap();
        assert!(!sealed.contains("refresh-token-value"));
        assert_ne!(sealed, sealer.seal("refresh-token-value").unwrap(), "a fresh nonce each time");
        assert_eq!(sealer.open(&sealed).as_deref(), Some("refresh-token-value"));
        assert_eq!(self::sealer("another-secret").open(&sealed), None);
        let mut altered = STANDARD.decode(&sealed).unwrap();
        *altered.last_mut().unwrap() ^= 1;
        assert_eq!(sealer.open(&STANDARD.encode(altered)), None);
        assert_eq!(sealer.open("not base64!"), None);
        assert!(Sealer::new(&IdentityConfig::default()).unwrap().is_none(), "a public client");
    }
}
