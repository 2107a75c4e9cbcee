//! Tokens and roles.
//!
//! user-service signs tokens with the secret every service shares
//! (`LECTERN_TOKEN_SECRET`); every service checks them itself, so reading
//! a token never needs a call to user-service. [`Caller`] is the extractor a
//! handler takes to know who is asking; [`Caller::require`] turns a wrong
//! role into 403.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::problem::ApiError;

/// What a caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, staff accounts included.
    Admin,
    /// Catalogue, members and circulation.
    Librarian,
    /// Reads the catalogue and their own loans.
    Member,
    /// Another Lectern service.
    Service,
}

impl Role {
    /// The role's name as tokens and APIs spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Librarian => "librarian",
            Self::Member => "member",
            Self::Service => "service",
        }
    }

    /// Parses a role name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "admin" => Some(Self::Admin),
            "librarian" => Some(Self::Librarian),
            "member" => Some(Self::Member),
            "service" => Some(Self::Service),
            _ => None,
        }
    }
}

/// The claims a token carries.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// The account: a staff username, a member id or a service name.
    pub sub: String,
    /// Its role.
    pub role: Role,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error)]
#[error("invalid token")]
pub struct InvalidToken(#[source] jsonwebtoken::errors::Error);

/// The keys made from the shared secret.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKeys(<secret>)")
    }
}

impl TokenKeys {
    /// Keys from the shared secret.
    pub fn from_secret(secret: &[u8]) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
        }
    }

    /// A token for `sub` with `role`, valid for `ttl`.
    pub fn issue(&self, sub: &str, role: Role, ttl: Duration) -> String {
        let exp = jsonwebtoken::get_current_timestamp() + ttl.as_secs();
        let claims = Claims {
            sub: sub.to_owned(),
            role,
            exp,
        };
        // Encoding HS256 with an in-memory key cannot fail.
        jsonwebtoken::encode(&Header::default(), &claims, &self.encoding).unwrap_or_default()
    }

    /// The claims of a valid, unexpired token.
    pub fn verify(&self, token: &str) -> Result<Claims, InvalidToken> {
        let mut validation = Validation::default();
        validation.validate_nbf = true;
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map(|data| data.claims)
            .map_err(InvalidToken)
    }

    /// A short-lived token this service presents to its neighbours.
    pub fn service_token(&self, service: &str) -> String {
        self.issue(service, Role::Service, Duration::from_secs(3600))
    }
}

/// Puts the keys where [`Caller`] finds them: add as a layer with
/// `axum::Extension(Arc<TokenKeys>)`.
pub type KeysExtension = axum::Extension<Arc<TokenKeys>>;

/// Who sent the request, from its bearer token.
#[derive(Debug, Clone)]
pub struct Caller(pub Claims);

impl Caller {
    /// 403 unless the caller has one of `roles`; admin may do anything
    /// staff may.
    pub fn require(&self, roles: &[Role]) -> Result<&Claims, ApiError> {
        let role = self.0.role;
        let staff = roles.contains(&Role::Librarian) && role == Role::Admin;
        if roles.contains(&role) || staff {
            Ok(&self.0)
        } else {
            Err(ApiError::forbidden(format!(
                "the {} role may not do this",
                role.as_str()
            )))
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let keys = parts
            .extensions
            .get::<Arc<TokenKeys>>()
            .cloned()
            .ok_or_else(|| ApiError::unauthorized("this service checks no tokens"))?;
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ApiError::unauthorized("sign in: no bearer token"))?;
        let token = bearer_token(header)
            .ok_or_else(|| ApiError::unauthorized("expected a bearer token"))?;
        let claims = keys
            .verify(token.trim())
            .map_err(|_| ApiError::unauthorized("the token is invalid or expired"))?;
        Ok(Self(claims))
    }
}

/// The token of an `Authorization: Bearer <token>` header; the scheme's
/// case does not matter (RFC 9110).
fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer abc"), Some("abc"));
        assert_eq!(bearer_token("BEARER abc"), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearerabc"), None);
    }

    #[test]
    fn a_token_not_valid_yet_is_refused() {
        #[derive(Serialize)]
        struct Early {
            sub: &'static str,
            role: Role,
            exp: u64,
            nbf: u64,
        }
        let keys = TokenKeys::from_secret(b"one");
        let now = jsonwebtoken::get_current_timestamp();
        let claims = Early {
            sub: "ana",
            role: Role::Admin,
            exp: now + 3600,
            nbf: now + 600,
        };
        let token = jsonwebtoken::encode(&Header::default(), &claims, &keys.encoding).unwrap();

        assert!(keys.verify(&token).is_err());
    }

    #[test]
    fn issued_tokens_verify_and_others_do_not() {
        let keys = TokenKeys::from_secret(b"one");
        let other = TokenKeys::from_secret(b"two");
        let token = keys.issue("ana", Role::Librarian, Duration::from_secs(60));

        let claims = keys.verify(&token).unwrap();
        assert_eq!(claims.sub, "ana");
        assert_eq!(claims.role, Role::Librarian);
        assert!(other.verify(&token).is_err());
    }

    #[test]
    fn admin_passes_librarian_checks_but_member_does_not() {
        let claims = |role| {
            Caller(Claims {
                sub: "x".into(),
                role,
                exp: 0,
            })
        };
        let staff = [Role::Librarian];
        assert!(claims(Role::Admin).require(&staff).is_ok());
        assert!(claims(Role::Librarian).require(&staff).is_ok());
        assert!(claims(Role::Member).require(&staff).is_err());
        assert!(claims(Role::Librarian).require(&[Role::Admin]).is_err());
    }
}
