//! Password hashing: Argon2id with a random salt, off the async runtime.
//!
//! Hashing is deliberately slow, so it runs on tokio's blocking pool and
//! at most one hash per CPU runs at once: a burst of sign-ins queues
//! instead of starving the runtime or taking the machine's memory (each
//! standard hash holds 19 MiB while it runs).
//!
//! Verifying a sign-in for an unknown username checks the password against
//! a dummy hash made at start, so an unknown name costs the same time as a
//! wrong password and timing does not reveal which usernames exist.

use std::sync::Arc;

use argon2::password_hash::SaltString;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

/// The shortest password accepted for an account.
pub(crate) const MIN_PASSWORD_CHARS: usize = 8;

/// The longest password accepted for an account.
pub(crate) const MAX_PASSWORD_CHARS: usize = 1024;

/// How costly new password hashes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PasswordCost {
    /// The argon2 crate's defaults for Argon2id (19 MiB, 2 passes, 1
    /// lane), which meet OWASP's minimum. What every deployment uses.
    #[default]
    Standard,
    /// The least cost Argon2 allows (8 KiB, 1 pass). Only for tests,
    /// where hundreds of hashes in debug builds would otherwise take
    /// minutes. No environment variable selects it.
    InsecureFastForTests,
}

impl PasswordCost {
    fn params(self) -> Result<Params, HashError> {
        match self {
            Self::Standard => Ok(Params::default()),
            Self::InsecureFastForTests => {
                Params::new(Params::MIN_M_COST, Params::MIN_T_COST, 1, None)
                    .map_err(HashError::Params)
            }
        }
    }
}

/// Why hashing or verifying failed (never because a password is wrong).
#[derive(Debug, thiserror::Error)]
pub(crate) enum HashError {
    /// The cost parameters were refused.
    #[error("invalid Argon2 parameters: {0}")]
    Params(argon2::Error),
    /// Hashing failed, or a stored hash could not be read.
    #[error("password hash error: {0}")]
    Hash(argon2::password_hash::Error),
    /// The blocking task running the hash panicked or was cancelled.
    #[error("the password hashing task did not finish")]
    Task(#[from] tokio::task::JoinError),
}

/// Hashes and verifies passwords with one cost.
#[derive(Debug)]
pub(crate) struct Passwords {
    params: Params,
    dummy_hash: String,
    permits: Arc<Semaphore>,
}

impl Passwords {
    /// Ready to hash at `cost`; makes the dummy hash, which costs one hash.
    pub(crate) async fn new(cost: PasswordCost) -> Result<Arc<Self>, HashError> {
        let params = cost.params()?;
        let parallel = std::thread::available_parallelism().map_or(1, usize::from);
        let mut passwords = Self {
            params,
            dummy_hash: String::new(),
            permits: Arc::new(Semaphore::new(parallel)),
        };
        passwords.dummy_hash = passwords.hash(random_password()).await?;
        Ok(Arc::new(passwords))
    }

    /// An Argon2id hash of `password` in PHC string form, salt included.
    pub(crate) async fn hash(&self, password: String) -> Result<String, HashError> {
        let params = self.params.clone();
        self.run_blocking(move || hash_now(&password, params)).await
    }

    /// Whether `password` matches `stored`. With no stored hash (an
    /// unknown account) it checks against the dummy hash and answers
    /// `false`, taking the same time as a wrong password.
    pub(crate) async fn verify(
        &self,
        password: String,
        stored: Option<String>,
    ) -> Result<bool, HashError> {
        let known = stored.is_some();
        let hash = stored.unwrap_or_else(|| self.dummy_hash.clone());
        let matches = self
            .run_blocking(move || verify_now(&password, &hash))
            .await?;
        Ok(known && matches)
    }

    /// Runs `work` on the blocking pool once a hashing permit is free.
    async fn run_blocking<T, F>(&self, work: F) -> Result<T, HashError>
    where
        F: FnOnce() -> Result<T, HashError> + Send + 'static,
        T: Send + 'static,
    {
        // The semaphore is never closed, so `ok()` always holds a permit.
        let permit = Arc::clone(&self.permits).acquire_owned().await.ok();
        tokio::task::spawn_blocking(move || {
            // Held until the hash is done, even if the caller gave up.
            let _permit = permit;
            work()
        })
        .await?
    }
}

fn argon2(params: Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn hash_now(password: &str, params: Params) -> Result<String, HashError> {
    let salt = SaltString::generate(&mut rand_core::OsRng);
    let hash = argon2(params)
        .hash_password(password.as_bytes(), &salt)
        .map_err(HashError::Hash)?;
    Ok(hash.to_string())
}

/// Verification takes the algorithm and cost from the stored hash itself,
/// so hashes made at another cost still verify.
fn verify_now(password: &str, stored: &str) -> Result<bool, HashError> {
    let parsed = PasswordHash::new(stored).map_err(HashError::Hash)?;
    let argon2 = argon2(Params::default());
    match argon2.verify_password(password.as_bytes(), &parsed) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::Password) => Ok(false),
        Err(other) => Err(HashError::Hash(other)),
    }
}

/// A strong random password: 24 letters and digits (about 143 bits).
pub(crate) fn random_password() -> String {
    use rand::distr::{Alphanumeric, SampleString};

    // ThreadRng is a CSPRNG seeded from the operating system.
    Alphanumeric.sample_string(&mut rand::rng(), 24)
}

/// Why a new password is refused, if it is.
pub(crate) fn password_problem(password: &str) -> Option<String> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Some(format!("must be at least {MIN_PASSWORD_CHARS} characters"));
    }
    if chars > MAX_PASSWORD_CHARS {
        return Some(format!("must be at most {MAX_PASSWORD_CHARS} characters"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_only_their_own_password() {
        let passwords = Passwords::new(PasswordCost::InsecureFastForTests)
            .await
            .unwrap();
        let hash = passwords.hash("correct horse".into()).await.unwrap();

        assert!(hash.starts_with("$argon2id$"));
        let good = passwords.verify("correct horse".into(), Some(hash.clone()));
        assert!(good.await.unwrap());
        let bad = passwords.verify("wrong horse".into(), Some(hash));
        assert!(!bad.await.unwrap());
    }

    #[tokio::test]
    async fn unknown_accounts_never_verify() {
        let passwords = Passwords::new(PasswordCost::InsecureFastForTests)
            .await
            .unwrap();
        let result = passwords.verify("anything".into(), None).await;
        assert!(!result.unwrap());
    }

    #[test]
    fn salts_differ_between_hashes_of_one_password() {
        let params = PasswordCost::InsecureFastForTests.params().unwrap();
        let one = hash_now("same password", params.clone()).unwrap();
        let two = hash_now("same password", params).unwrap();
        assert_ne!(one, two);
    }

    #[test]
    fn standard_cost_is_the_argon2_default() {
        let params = PasswordCost::Standard.params().unwrap();
        assert_eq!(params.m_cost(), Params::DEFAULT_M_COST);
        assert_eq!(params.t_cost(), Params::DEFAULT_T_COST);
    }

    #[test]
    fn short_and_long_passwords_are_refused() {
        assert!(password_problem("seven77").is_some());
        assert!(password_problem("eight888").is_none());
        assert!(password_problem(&"x".repeat(1025)).is_some());
    }
}
