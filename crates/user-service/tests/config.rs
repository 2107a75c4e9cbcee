//! Configuration from the environment. One test in its own binary, since
//! it sets process-wide variables.

use std::time::Duration;

use lectern_user_service::{Config, PasswordCost};

fn set(vars: &[(&str, Option<&str>)]) {
    for (name, value) in vars {
        match value {
            Some(value) => std::env::set_var(name, value),
            None => std::env::remove_var(name),
        }
    }
}

fn error_of(result: Result<Config, impl std::fmt::Display>) -> String {
    match result {
        Ok(config) => panic!("expected an error, got {config:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_environment_sets_every_field_and_bad_values_name_their_variable() {
    set(&[
        ("LECTERN_TOKEN_SECRET", Some("a-secret-of-enough-length")),
        ("DATABASE_URL", Some("sqlite://./x.db")),
        ("LECTERN_BIND", None),
        ("LECTERN_ADMIN_PASSWORD", None),
        ("LECTERN_DATA_DIR", None),
        ("LECTERN_TOKEN_TTL_SECS", None),
        ("DEFAULT_LOAN_LIMIT", None),
    ]);
    let defaults = Config::from_env().unwrap();
    assert_eq!(defaults.bind.to_string(), "127.0.0.1:8082");
    assert_eq!(defaults.admin_password, None);
    assert_eq!(defaults.data_dir, std::path::Path::new("./lectern-data"));
    assert_eq!(defaults.token_ttl, Duration::from_secs(28_800));
    assert_eq!(defaults.default_loan_limit, 5);
    assert_eq!(defaults.password_cost, PasswordCost::Standard);

    set(&[
        ("LECTERN_BIND", Some("0.0.0.0:9000")),
        ("LECTERN_ADMIN_PASSWORD", Some("long-admin-pass")),
        ("LECTERN_DATA_DIR", Some("/var/lib/lectern")),
        ("LECTERN_TOKEN_TTL_SECS", Some("60")),
        ("DEFAULT_LOAN_LIMIT", Some("10")),
    ]);
    let set_all = Config::from_env().unwrap();
    assert_eq!(set_all.bind.to_string(), "0.0.0.0:9000");
    assert_eq!(set_all.admin_password.as_deref(), Some("long-admin-pass"));
    assert_eq!(set_all.data_dir, std::path::Path::new("/var/lib/lectern"));
    assert_eq!(set_all.token_ttl, Duration::from_secs(60));
    assert_eq!(set_all.default_loan_limit, 10);
    assert_eq!(set_all.password_cost, PasswordCost::Standard);
    assert!(
        !format!("{set_all:?}").contains("long-admin-pass"),
        "Debug hides it"
    );

    let bad = [
        ("LECTERN_ADMIN_PASSWORD", "short"),
        ("LECTERN_TOKEN_TTL_SECS", "0"),
        ("LECTERN_TOKEN_TTL_SECS", "soon"),
        ("DEFAULT_LOAN_LIMIT", "101"),
        ("DEFAULT_LOAN_LIMIT", "-1"),
    ];
    for (name, value) in bad {
        let before = std::env::var(name).ok();
        set(&[(name, Some(value))]);
        let message = error_of(Config::from_env());
        assert!(message.contains(name), "{message}");
        assert!(
            !message.contains("short\""),
            "the password is not echoed: {message}"
        );
        set(&[(name, before.as_deref())]);
    }
}
