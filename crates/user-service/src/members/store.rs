//! Members in the database: insert, find, search and change.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool, Row};

use super::model::{self, Member, MemberChanges, NewMember, Status};

const COLUMNS: &str = "id, card_number, name, email, status, loan_limit, created_at";

/// The most words a search may have.
pub(crate) const MAX_SEARCH_WORDS: usize = 8;

/// A stored status that is neither `active` nor `suspended`.
#[derive(Debug, thiserror::Error)]
#[error("stored member status {0:?} is unknown")]
struct UnknownStatus(String);

fn member(row: &AnyRow) -> Result<Member, sqlx::Error> {
    let status: String = row.try_get("status")?;
    let status = Status::parse(&status)
        .ok_or_else(|| sqlx::Error::Decode(Box::new(UnknownStatus(status))))?;
    Ok(Member {
        id: row.try_get("id")?,
        card_number: row.try_get("card_number")?,
        name: row.try_get("name")?,
        email: row.try_get("email")?,
        status,
        loan_limit: row.try_get("loan_limit")?,
        created_at: row.try_get("created_at")?,
    })
}

fn search_text_of(m: &Member) -> String {
    model::search_text(&m.card_number, &m.name, &m.email)
}

/// Stores a new active member; a taken card number is a unique violation.
pub(crate) async fn insert(
    conn: &mut AnyConnection,
    new: &NewMember,
) -> Result<Member, sqlx::Error> {
    let now = lectern_platform::db::now_millis();
    let member = Member {
        id: uuid::Uuid::now_v7().to_string(),
        card_number: new.card_number.clone(),
        name: new.name.clone(),
        email: new.email.clone(),
        status: Status::Active,
        loan_limit: new.loan_limit,
        created_at: now,
    };
    let search = search_text_of(&member);
    sqlx::query(
        "INSERT INTO members (id, card_number, name, email, status,
             loan_limit, search_text, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
    )
    .bind(&member.id)
    .bind(&member.card_number)
    .bind(&member.name)
    .bind(&member.email)
    .bind(member.status.as_str())
    .bind(member.loan_limit)
    .bind(search)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(member)
}

/// The member with this id, or else with this card number.
pub(crate) async fn find<'c, E>(exec: E, id_or_card: &str) -> Result<Option<Member>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    let sql = format!(
        "SELECT {COLUMNS} FROM members WHERE id = $1 OR card_number = $2
         ORDER BY CASE WHEN id = $1 THEN 0 ELSE 1 END LIMIT 1"
    );
    let row = sqlx::query(&sql)
        .bind(id_or_card.trim())
        .bind(model::normalize_card(id_or_card))
        .fetch_optional(exec)
        .await?;
    row.as_ref().map(member).transpose()
}

/// One page of members whose folded text holds every word, and how many
/// match in all.
///
/// Limitation: `LIKE '%word%'` uses no index, so each search reads every
/// member; fine for a library's members, not for millions. Results are
/// ordered by name in the database's collation, which differs between
/// SQLite and PostgreSQL.
pub(crate) async fn search(
    pool: &AnyPool,
    words: &[String],
    limit: i64,
    offset: i64,
) -> Result<(i64, Vec<Member>), sqlx::Error> {
    let filter = search_filter(words.len());
    let patterns: Vec<String> = words.iter().map(|w| like_pattern(w)).collect();

    let count_sql = format!("SELECT COUNT(*) AS n FROM members{filter}");
    let mut count = sqlx::query(&count_sql);
    for p in &patterns {
        count = count.bind(p);
    }
    let total: i64 = count.fetch_one(pool).await?.try_get("n")?;

    let n = words.len();
    let page_sql = format!(
        "SELECT {COLUMNS} FROM members{filter}
         ORDER BY name, id LIMIT ${} OFFSET ${}",
        n + 1,
        n + 2
    );
    let mut page = sqlx::query(&page_sql);
    for p in &patterns {
        page = page.bind(p);
    }
    let rows = page.bind(limit).bind(offset).fetch_all(pool).await?;
    let members = rows.iter().map(member).collect::<Result<_, _>>()?;
    Ok((total, members))
}

/// ` WHERE search_text LIKE $1 ESCAPE '\' AND ...`, one per word.
fn search_filter(words: usize) -> String {
    let clauses: Vec<String> = (1..=words)
        .map(|i| format!("search_text LIKE ${i} ESCAPE '\\'"))
        .collect();
    if clauses.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", clauses.join(" AND "))
    }
}

/// `%word%` with LIKE's wildcards in the word escaped.
fn like_pattern(word: &str) -> String {
    let mut pattern = String::from("%");
    for c in word.chars() {
        if matches!(c, '\\' | '%' | '_') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// Applies `changes` to member `id` inside the caller's transaction and
/// returns the member as it now is; `None` if there is no such member.
///
/// The first statement writes, so the row (PostgreSQL) or the database
/// (SQLite) is locked before anything is read: concurrent patches of
/// different fields never undo each other.
pub(crate) async fn update(
    conn: &mut AnyConnection,
    id: &str,
    changes: &MemberChanges,
) -> Result<Option<Member>, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE members SET name = COALESCE($2, name),
             email = COALESCE($3, email), status = COALESCE($4, status),
             loan_limit = COALESCE($5, loan_limit), updated_at = $6
         WHERE id = $1",
    )
    .bind(id)
    .bind(changes.name.as_deref())
    .bind(changes.email.as_deref())
    .bind(changes.status.map(Status::as_str))
    .bind(changes.loan_limit)
    .bind(lectern_platform::db::now_millis())
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 0 {
        return Ok(None);
    }

    let Some(member) = find(&mut *conn, id).await? else {
        return Ok(None);
    };
    let search = search_text_of(&member);
    sqlx::query("UPDATE members SET search_text = $2 WHERE id = $1")
        .bind(id)
        .bind(search)
        .execute(conn)
        .await?;
    Ok(Some(member))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_wildcards_in_words_are_escaped() {
        assert_eq!(like_pattern("a%b_c\\"), "%a\\%b\\_c\\\\%");
    }

    #[test]
    fn the_filter_has_one_clause_per_word() {
        assert_eq!(search_filter(0), "");
        let two = search_filter(2);
        assert!(two.contains("$1") && two.contains("$2") && two.contains(" AND "));
    }
}
