//! Tokens and secrets: how they are made, how they are stored, how they are compared.
//!
//! Tokens are 256 random bits from the OS generator behind a prefix a secret scanner can
//! match (`hh_owner_`, `hh_agent_`); only their SHA-256 is stored. Signing and provider
//! secrets must be recoverable (we sign with them), so they are sealed with
//! XChaCha20-Poly1305 under the master key, with the row they belong to as associated
//! data so that a sealed secret cannot be moved to another webhook.

use std::{convert::Infallible, fmt, fs, io::Write, path::Path};

use base64::{
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
    Engine,
};
use chacha20poly1305::{
    aead::{Aead, KeyInit, Payload},
    XChaCha20Poly1305, XNonce,
};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{
    datadir,
    domain::{ids::WebhookId, SealedSecrets},
};

pub const OWNER_TOKEN_PREFIX: &str = "hh_owner_";
pub const AGENT_TOKEN_PREFIX: &str = "hh_agent_";
pub const SIGNING_SECRET_PREFIX: &str = "whsec_";
const MASTER_KEY_FILE: &str = "master.key";

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("the OS random generator failed: {0}")]
    Random(String),
    #[error("master key: {0}")]
    MasterKey(String),
    #[error("a sealed secret could not be opened (wrong master key or corrupted row)")]
    Unseal,
}

pub fn random_bytes<const N: usize>() -> Result<[u8; N], CryptoError> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(|e| CryptoError::Random(e.to_string()))?;
    Ok(buf)
}

/// A secret string whose `Debug` never shows it, so it cannot leak through a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: String) -> Self {
        Self(s)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// A secret given on the command line or in the environment, for clap's `value_parser`:
/// any text is one, so this never fails.
pub fn parse_secret(s: &str) -> Result<Secret, Infallible> {
    Ok(Secret::new(s.to_owned()))
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// A freshly made token: the plaintext to show once, and the hash to store.
pub struct NewToken {
    pub plaintext: Secret,
    pub hash: [u8; 32],
}

pub fn new_token(prefix: &str) -> Result<NewToken, CryptoError> {
    let raw = random_bytes::<32>()?;
    let plaintext = format!("{prefix}{}", URL_SAFE_NO_PAD.encode(raw));
    let hash = hash_token(&plaintext);
    Ok(NewToken {
        plaintext: Secret(plaintext),
        hash,
    })
}

pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Constant-time equality, for anything an attacker could probe byte by byte.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// `whsec_` + base64 of 32 random bytes, the Standard Webhooks form.
pub fn new_signing_secret() -> Result<Secret, CryptoError> {
    let raw = random_bytes::<32>()?;
    Ok(Secret(format!(
        "{SIGNING_SECRET_PREFIX}{}",
        STANDARD.encode(raw)
    )))
}

/// The key that seals secrets at rest.
#[derive(Clone)]
pub struct MasterKey(XChaCha20Poly1305);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    /// From `HOOKHUB_MASTER_KEY` (base64 of 32 bytes) when given, else from the key file in
    /// the data directory, which is created with mode 0600 on first use (and made so if
    /// found readable by others).
    ///
    /// `sealed_before`: the data directory already holds what a master key sealed. Then a
    /// missing key file is an error, not a reason to make a new key that opens nothing.
    pub fn load(
        from_env: Option<&Secret>,
        data_dir: &Path,
        sealed_before: bool,
    ) -> Result<Self, CryptoError> {
        if let Some(encoded) = from_env {
            return Self::from_base64(encoded.expose().trim())
                .map_err(|e| CryptoError::MasterKey(format!("HOOKHUB_MASTER_KEY: {e}")));
        }
        let path = data_dir.join(MASTER_KEY_FILE);
        datadir::tighten(&path).map_err(|e| CryptoError::MasterKey(e.to_string()))?;
        match fs::read_to_string(&path) {
            Ok(encoded) => Self::from_base64(encoded.trim())
                .map_err(|e| CryptoError::MasterKey(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && sealed_before => {
                Err(CryptoError::MasterKey(format!(
                    "{} is missing, and this data directory holds secrets sealed with a master key; \
                     put back the master.key it was started with, or give that key as HOOKHUB_MASTER_KEY",
                    path.display()
                )))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = random_bytes::<32>()?;
                write_private_file(&path, STANDARD.encode(key).as_bytes())
                    .map_err(|e| CryptoError::MasterKey(format!("{}: {e}", path.display())))?;
                Ok(Self(XChaCha20Poly1305::new(&key.into())))
            }
            Err(e) => Err(CryptoError::MasterKey(format!("{}: {e}", path.display()))),
        }
    }

    fn from_base64(encoded: &str) -> Result<Self, String> {
        let bytes = STANDARD
            .decode(encoded)
            .map_err(|_| "not valid base64".to_owned())?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| "must decode to exactly 32 bytes".to_owned())?;
        Ok(Self(XChaCha20Poly1305::new(&key.into())))
    }

    /// nonce (24 bytes) || ciphertext+tag.
    pub fn seal(&self, plaintext: &str, aad: &str) -> Result<Vec<u8>, CryptoError> {
        let nonce = random_bytes::<24>()?;
        let ct = self
            .0
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| CryptoError::Unseal)?;
        let mut out = Vec::with_capacity(24 + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    pub fn open(&self, sealed: &[u8], aad: &str) -> Result<Secret, CryptoError> {
        if sealed.len() < 24 {
            return Err(CryptoError::Unseal);
        }
        let (nonce, ct) = sealed.split_at(24);
        let pt = self
            .0
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| CryptoError::Unseal)?;
        String::from_utf8(pt)
            .map(Secret)
            .map_err(|_| CryptoError::Unseal)
    }
}

fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut f = datadir::private_file_options()
        .write(true)
        .create_new(true)
        .open(path)?;
    f.write_all(contents)?;
    f.sync_all()
}

/// What the master key check seals: a text of our own, with associated data of its own,
/// so that no sealed secret can pass for it.
pub const KEY_CHECK_TEXT: &str = "hookhub master key check v1";
pub const KEY_CHECK_AAD: &str = "hub/master-key-check";

/// Associated data for sealing a webhook's signing secret (current and previous).
pub fn signing_aad(id: &WebhookId) -> String {
    format!("{id}/signing")
}

/// Associated data for sealing a webhook's provider-issued secret.
pub fn provider_aad(id: &WebhookId) -> String {
    format!("{id}/provider")
}

/// The HMAC key of a Standard Webhooks secret (`whsec_…`): the bytes its base64 stands
/// for. `None` if it is not base64.
pub fn standard_webhooks_key(secret: &str) -> Option<Vec<u8>> {
    STANDARD
        .decode(secret.strip_prefix(SIGNING_SECRET_PREFIX).unwrap_or(secret))
        .ok()
}

/// A webhook's secrets, opened, as verification needs them.
pub struct Keys {
    /// The current signing secret, `whsec_…`.
    pub signing: Secret,
    /// The signing secret replaced by the last rotation, and the time (ms) until which it
    /// still verifies, so that nothing signed during the change-over is lost.
    pub previous: Option<(Secret, i64)>,
    /// The secret Stripe or Slack issued, once the owner has set it.
    pub provider: Option<Secret>,
}

impl Keys {
    /// Opens what can verify at `now_ms`: a previous secret past its overlap is not opened.
    pub fn open(
        key: &MasterKey,
        id: &WebhookId,
        sealed: &SealedSecrets,
        now_ms: i64,
    ) -> Result<Self, CryptoError> {
        let signing_aad = signing_aad(id);
        let previous = match (&sealed.previous, sealed.previous_until) {
            (Some(previous), Some(until)) if now_ms < until => {
                Some((key.open(previous, &signing_aad)?, until))
            }
            _ => None,
        };
        let provider = match &sealed.provider {
            Some(p) => Some(key.open(p, &provider_aad(id))?),
            None => None,
        };
        Ok(Self {
            signing: key.open(&sealed.signing, &signing_aad)?,
            previous,
            provider,
        })
    }

    /// The signing secrets that verify at `now_ms`: the current one, and the previous one
    /// while its overlap lasts (and not a millisecond after).
    pub fn signing_at(&self, now_ms: i64) -> impl Iterator<Item = &Secret> {
        let previous = self
            .previous
            .as_ref()
            .filter(|(_, until)| now_ms < *until)
            .map(|(secret, _)| secret);
        std::iter::once(&self.signing).chain(previous)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_prefixed_long_and_hash_stably() {
        let t = new_token(AGENT_TOKEN_PREFIX).unwrap();
        assert!(t.plaintext.expose().starts_with(AGENT_TOKEN_PREFIX));
        assert_eq!(t.plaintext.expose().len(), AGENT_TOKEN_PREFIX.len() + 43);
        assert_eq!(hash_token(t.plaintext.expose()), t.hash);
        assert!(!format!("{:?}", t.plaintext).contains(t.plaintext.expose()));
    }

    #[test]
    fn sealed_secret_opens_only_with_its_aad() {
        let dir = tempfile::tempdir().unwrap();
        let key = MasterKey::load(None, dir.path(), false).unwrap();
        let sealed = key.seal("whsec_abc", "whk_1").unwrap();
        assert_eq!(key.open(&sealed, "whk_1").unwrap().expose(), "whsec_abc");
        assert!(key.open(&sealed, "whk_2").is_err());
        // The key file is reused, and private.
        let again = MasterKey::load(None, dir.path(), false).unwrap();
        assert_eq!(again.open(&sealed, "whk_1").unwrap().expose(), "whsec_abc");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join(MASTER_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn master_key_from_env_must_be_32_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let short = Secret::new(STANDARD.encode([1u8; 16]));
        assert!(MasterKey::load(Some(&short), dir.path(), false).is_err());
        let ok = Secret::new(STANDARD.encode([7u8; 32]));
        assert!(MasterKey::load(Some(&ok), dir.path(), false).is_ok());
    }
}
