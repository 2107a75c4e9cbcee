//! What a member is, what a request may set, and the checks on each field.
//!
//! Every request is checked in full before anything is written, so a
//! request with one bad field changes nothing.

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;

use crate::config::MAX_LOAN_LIMIT;
use crate::error::Invalid;

/// The longest card number accepted.
const MAX_CARD_CHARS: usize = 32;

/// The longest name accepted.
const MAX_NAME_CHARS: usize = 200;

/// The longest e-mail address accepted (RFC 5321's path limit).
const MAX_EMAIL_CHARS: usize = 254;

/// Whether a member may borrow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Status {
    /// May borrow, up to the loan limit.
    Active,
    /// May not borrow.
    Suspended,
}

impl Status {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<Self> {
        match text {
            "active" => Some(Self::Active),
            "suspended" => Some(Self::Suspended),
            _ => None,
        }
    }
}

/// A member as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Member {
    pub(crate) id: String,
    pub(crate) card_number: String,
    pub(crate) name: String,
    pub(crate) email: String,
    pub(crate) status: Status,
    pub(crate) loan_limit: i64,
    /// Milliseconds since the epoch.
    pub(crate) created_at: i64,
}

/// A member as the API shows it.
#[derive(Debug, Serialize)]
pub(crate) struct MemberView {
    id: String,
    card_number: String,
    name: String,
    email: String,
    status: Status,
    loan_limit: i64,
    created_at: String,
}

impl From<Member> for MemberView {
    fn from(m: Member) -> Self {
        Self {
            id: m.id,
            card_number: m.card_number,
            name: m.name,
            email: m.email,
            status: m.status,
            loan_limit: m.loan_limit,
            created_at: rfc3339_millis(m.created_at),
        }
    }
}

/// What borrowing-service needs to decide whether a member may borrow.
#[derive(Debug, Serialize)]
pub(crate) struct Eligibility {
    member_id: String,
    card_number: String,
    status: Status,
    loan_limit: i64,
}

impl From<Member> for Eligibility {
    fn from(m: Member) -> Self {
        Self {
            member_id: m.id,
            card_number: m.card_number,
            status: m.status,
            loan_limit: m.loan_limit,
        }
    }
}

/// The body of `POST /api/members`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewMemberRequest {
    card_number: String,
    name: String,
    email: String,
    #[serde(default)]
    loan_limit: Option<i64>,
}

/// A member to create, every field checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NewMember {
    pub(crate) card_number: String,
    pub(crate) name: String,
    pub(crate) email: String,
    pub(crate) loan_limit: i64,
}

impl NewMemberRequest {
    /// The member to create, or the first bad field.
    pub(crate) fn check(&self, default_limit: i64) -> Result<NewMember, Invalid> {
        Ok(NewMember {
            card_number: card_number(&self.card_number)?,
            name: name(&self.name)?,
            email: email(&self.email)?,
            loan_limit: loan_limit(self.loan_limit.unwrap_or(default_limit))?,
        })
    }
}

/// The body of `PATCH /api/members/{id}`; absent or null fields stay.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MemberPatchRequest {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    loan_limit: Option<i64>,
}

/// The changes to make, every field checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct MemberChanges {
    pub(crate) name: Option<String>,
    pub(crate) email: Option<String>,
    pub(crate) status: Option<Status>,
    pub(crate) loan_limit: Option<i64>,
}

impl MemberChanges {
    pub(crate) fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl MemberPatchRequest {
    /// The changes, or the first bad field.
    pub(crate) fn check(&self) -> Result<MemberChanges, Invalid> {
        Ok(MemberChanges {
            name: self.name.as_deref().map(name).transpose()?,
            email: self.email.as_deref().map(email).transpose()?,
            status: self.status.as_deref().map(status).transpose()?,
            loan_limit: self.loan_limit.map(loan_limit).transpose()?,
        })
    }
}

/// Card numbers are letters, digits and hyphens, compared without case:
/// stored upper-cased.
pub(crate) fn normalize_card(text: &str) -> String {
    text.trim().to_ascii_uppercase()
}

fn card_number(text: &str) -> Result<String, Invalid> {
    let card = normalize_card(text);
    let field = "card_number";
    if card.is_empty() || card.chars().count() > MAX_CARD_CHARS {
        let reason = format!("must be 1 to {MAX_CARD_CHARS} characters");
        return Err(Invalid::new(field, reason));
    }
    if !card.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        let reason = "may hold only letters, digits and hyphens";
        return Err(Invalid::new(field, reason));
    }
    Ok(card)
}

fn name(text: &str) -> Result<String, Invalid> {
    let name = text.trim();
    if name.is_empty() {
        return Err(Invalid::new("name", "must not be empty"));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        let reason = format!("must be at most {MAX_NAME_CHARS} characters");
        return Err(Invalid::new("name", reason));
    }
    if name.chars().any(char::is_control) {
        return Err(Invalid::new("name", "must not hold control characters"));
    }
    Ok(name.to_owned())
}

/// A loose check: one `@` with text on both sides and no spaces.
fn email(text: &str) -> Result<String, Invalid> {
    let email = text.trim();
    let bad = || Invalid::new("email", "must look like name@example.org");
    let (local, domain) = email.split_once('@').ok_or_else(bad)?;
    let spaced = email.chars().any(|c| c.is_whitespace() || c.is_control());
    if local.is_empty() || domain.is_empty() || domain.contains('@') || spaced {
        return Err(bad());
    }
    if email.chars().count() > MAX_EMAIL_CHARS {
        let reason = format!("must be at most {MAX_EMAIL_CHARS} characters");
        return Err(Invalid::new("email", reason));
    }
    Ok(email.to_owned())
}

fn status(text: &str) -> Result<Status, Invalid> {
    let bad = || Invalid::new("status", "must be active or suspended");
    Status::parse(text).ok_or_else(bad)
}

fn loan_limit(limit: i64) -> Result<i64, Invalid> {
    if (0..=MAX_LOAN_LIMIT).contains(&limit) {
        Ok(limit)
    } else {
        let reason = format!("must be between 0 and {MAX_LOAN_LIMIT}");
        Err(Invalid::new("loan_limit", reason))
    }
}

/// Text folded for search: compatibility-normalised and lower-cased, so
/// `ÉVA`, `éva` and a decomposed `éva` all match each other.
pub(crate) fn fold(text: &str) -> String {
    text.nfkc().collect::<String>().to_lowercase()
}

/// What searches match against: card number, name and e-mail, folded.
pub(crate) fn search_text(card: &str, name: &str, email: &str) -> String {
    fold(&format!("{card}\n{name}\n{email}"))
}

/// Milliseconds since the epoch as RFC 3339 in UTC.
pub(crate) fn rfc3339_millis(millis: i64) -> String {
    let time = chrono::DateTime::from_timestamp_millis(millis).unwrap_or_default();
    time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(card: &str, name: &str, email: &str) -> NewMemberRequest {
        NewMemberRequest {
            card_number: card.into(),
            name: name.into(),
            email: email.into(),
            loan_limit: None,
        }
    }

    #[test]
    fn a_good_member_is_trimmed_and_gets_the_default_limit() {
        let new = request(" c-001 ", " Ana Silva ", " ana@example.org ")
            .check(5)
            .unwrap();
        assert_eq!(new.card_number, "C-001");
        assert_eq!(new.name, "Ana Silva");
        assert_eq!(new.email, "ana@example.org");
        assert_eq!(new.loan_limit, 5);
    }

    #[test]
    fn emails_need_one_at_with_text_around_and_no_spaces() {
        for bad in ["ana", "@example.org", "ana@", "a@b@c", "an a@x.org", ""] {
            let err = request("C1", "Ana", bad).check(5).unwrap_err();
            assert_eq!(err.field, "email", "{bad:?} should be refused");
        }
        assert!(request("C1", "Ana", "a@b").check(5).is_ok());
    }

    #[test]
    fn names_cards_and_limits_are_checked() {
        assert_eq!(
            request("C1", "  ", "a@b").check(5).unwrap_err().field,
            "name"
        );
        let card = request("C 1", "Ana", "a@b").check(5).unwrap_err();
        assert_eq!(card.field, "card_number");
        assert_eq!(
            request("", "Ana", "a@b").check(5).unwrap_err().field,
            "card_number"
        );
        assert!(request("C1", "Ana", "a@b").check(100).is_ok());
        let limit = request("C1", "Ana", "a@b").check(101).unwrap_err();
        assert_eq!(limit.field, "loan_limit");
        assert!(request("C1", "Ana", "a@b").check(-1).is_err());
    }

    #[test]
    fn a_patch_with_one_bad_field_is_refused_whole() {
        let patch = MemberPatchRequest {
            name: Some("New Name".into()),
            email: None,
            status: Some("banned".into()),
            loan_limit: Some(3),
        };
        assert_eq!(patch.check().unwrap_err().field, "status");
    }

    #[test]
    fn folding_ignores_case_and_normal_form() {
        assert_eq!(fold("ÉVA"), fold("e\u{301}va"));
        assert_eq!(fold("Ana@Example.ORG"), "ana@example.org");
    }
}
