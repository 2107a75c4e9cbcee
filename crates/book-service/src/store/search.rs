//! Catalogue search: folded words matched with `LIKE` on the folded
//! columns, the same SQL on SQLite and PostgreSQL.
//!
//! Every word of `q` must match the title, an author, a subject or (when
//! it reads as an ISBN) an ISBN; each field filter's words must all
//! match that field. Results come in title order, a page at a time.
//!
//! Limitation: `LIKE '%word%'` cannot use an index, so every search
//! scans the books table; fine for tens of thousands of records, slow
//! for millions, where a full-text index per backend would be needed.
//!
//! Limitation: results are ordered by the folded title in the database's
//! collation, so SQLite (byte order) and PostgreSQL (often a locale) may
//! order punctuation and mixed scripts differently.

use super::{book_from_row, BookRow, Store, BOOK_COLUMNS};
use crate::error::BookError;
use crate::fold::{contains_pattern, LIKE_ESCAPE};
use crate::record::{isbn_query_tokens, looks_like_isbn};

/// A search, already folded and checked.
#[derive(Debug, Clone, Default)]
pub(crate) struct SearchQuery {
    /// Words that must each match some field.
    pub(crate) words: Vec<String>,
    /// Words that must each match the title.
    pub(crate) title: Vec<String>,
    /// Words that must each match an author.
    pub(crate) author: Vec<String>,
    /// Words that must each match a subject.
    pub(crate) subject: Vec<String>,
    /// ISBN tokens of which one must match, when filtering by ISBN.
    pub(crate) isbn: Option<Vec<String>>,
    /// The page size.
    pub(crate) limit: i64,
    /// How many matches to skip.
    pub(crate) offset: i64,
}

/// A `WHERE` clause under construction, with its bound values.
#[derive(Debug, Default)]
struct Filter {
    clauses: Vec<String>,
    binds: Vec<String>,
}

impl Filter {
    fn param(&mut self, value: String) -> String {
        self.binds.push(value);
        format!("${}", self.binds.len())
    }

    fn like(&mut self, column: &str, word: &str) -> String {
        let p = self.param(contains_pattern(word));
        format!("{column} LIKE {p} ESCAPE '{LIKE_ESCAPE}'")
    }

    fn isbn(&mut self, tokens: &[String]) -> Vec<String> {
        tokens
            .iter()
            .map(|t| {
                let p = self.param(format!("% {t} %"));
                format!("isbn_keys LIKE {p}")
            })
            .collect()
    }

    fn any_field(&mut self, word: &str) {
        let mut parts = vec![
            self.like("title_fold", word),
            self.like("authors_fold", word),
            self.like("subjects_fold", word),
        ];
        if looks_like_isbn(word) {
            parts.extend(self.isbn(&isbn_query_tokens(word)));
        }
        self.clauses.push(format!("({})", parts.join(" OR ")));
    }

    fn field(&mut self, column: &str, words: &[String]) {
        for word in words {
            let clause = self.like(column, word);
            self.clauses.push(clause);
        }
    }

    fn sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.clauses.join(" AND "))
        }
    }

    fn of(query: &SearchQuery) -> Self {
        let mut filter = Self::default();
        for word in &query.words {
            filter.any_field(word);
        }
        filter.field("title_fold", &query.title);
        filter.field("authors_fold", &query.author);
        filter.field("subjects_fold", &query.subject);
        if let Some(tokens) = &query.isbn {
            let parts = filter.isbn(tokens);
            filter.clauses.push(format!("({})", parts.join(" OR ")));
        }

        filter
    }
}

impl Store {
    /// The number of matches and the requested page of them.
    pub(crate) async fn search(
        &self,
        query: &SearchQuery,
    ) -> Result<(i64, Vec<BookRow>), BookError> {
        let filter = Filter::of(query);
        let total = self.count_matches(&filter).await?;
        if total <= query.offset {
            return Ok((total, Vec::new()));
        }

        let n = filter.binds.len();
        let sql = format!(
            "SELECT {BOOK_COLUMNS} FROM books {} ORDER BY title_fold, id
             LIMIT ${} OFFSET ${}",
            filter.sql(),
            n + 1,
            n + 2
        );
        let mut select = sqlx::query(&sql);
        for value in &filter.binds {
            select = select.bind(value.as_str());
        }
        let rows = select
            .bind(query.limit)
            .bind(query.offset)
            .fetch_all(self.pool())
            .await?;
        let books = rows.iter().map(book_from_row).collect::<Result<_, _>>()?;

        Ok((total, books))
    }

    async fn count_matches(&self, filter: &Filter) -> Result<i64, BookError> {
        use sqlx::Row;

        let sql = format!("SELECT COUNT(*) AS n FROM books {}", filter.sql());
        let mut count = sqlx::query(&sql);
        for value in &filter.binds {
            count = count.bind(value.as_str());
        }
        let row = count.fetch_one(self.pool()).await?;

        Ok(row.try_get("n")?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_query_word_matches_any_field() {
        let query = SearchQuery {
            words: vec!["hugo".into(), "9780140444308".into()],
            title: vec!["mis".into()],
            ..SearchQuery::default()
        };
        let filter = Filter::of(&query);

        assert_eq!(filter.clauses.len(), 3);
        assert!(filter.clauses[0].starts_with("(title_fold LIKE $1"));
        assert!(!filter.clauses[0].contains("isbn_keys"));
        assert!(filter.clauses[1].contains("isbn_keys LIKE $7"));
        assert_eq!(filter.binds[6], "% 9780140444308 %");
        assert_eq!(filter.binds[7], "%mis%");
    }

    #[test]
    fn no_filter_means_no_where_clause() {
        assert_eq!(Filter::of(&SearchQuery::default()).sql(), "");
    }
}
