//! The first admin account: from the environment's password, or generated,
//! saved privately and printed once; made once however often or however
//! many replicas start.

mod common;

use common::{admin_count, config, TestApp, ADMIN_PASSWORD};
use lectern_platform::testing::TestDb;
use reqwest::StatusCode;

const FILE: &str = "admin-password";

/// A running service on `db` whose admin password is generated.
async fn start_generated(db: &TestDb, dir: &std::path::Path) -> TestApp {
    let mut config = config(db, dir);
    config.admin_password = None;
    TestApp::on(config).await
}

fn read_password(dir: &std::path::Path) -> String {
    let text = std::fs::read_to_string(dir.join(FILE)).expect("password file");
    text.trim().to_owned()
}

#[tokio::test]
async fn admin_gets_the_password_from_the_environment_and_no_file() {
    let app = TestApp::start("boot_env").await;

    let (status, body) = app.login("admin", ADMIN_PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["role"], "admin");
    assert!(!app.data_dir.join(FILE).exists());
    assert_eq!(admin_count(&app.db_url).await, 1);
}

#[tokio::test]
async fn a_generated_password_is_saved_privately_and_signs_in() {
    let db = TestDb::new("boot_generated").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("nested").join("data");
    let app = start_generated(&db, &data_dir).await;

    let password = read_password(&data_dir);
    assert!(password.len() >= 20, "a strong password: {password:?}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(data_dir.join(FILE)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    }
    let (status, body) = app.login("admin", &password).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = app.login("admin", ADMIN_PASSWORD).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn restarting_on_the_same_database_makes_no_second_admin() {
    let db = TestDb::new("boot_restart").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    start_generated(&db, dir.path()).await;
    let first = read_password(dir.path());

    let again = start_generated(&db, dir.path()).await;

    assert_eq!(read_password(dir.path()), first, "the file is untouched");
    assert_eq!(admin_count(&db.url).await, 1);
    let (status, _) = again.login("admin", &first).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_set_password_does_not_replace_an_existing_admin() {
    let db = TestDb::new("boot_keep").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    start_generated(&db, dir.path()).await;
    let generated = read_password(dir.path());

    let app = TestApp::on(config(&db, dir.path())).await;

    let (status, _) = app.login("admin", ADMIN_PASSWORD).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = app.login("admin", &generated).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_starting_together_make_one_admin() {
    let db = TestDb::new("boot_race").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut one = config(&db, dir.path());
    one.admin_password = None;
    let replicas: Vec<_> = (0..4)
        .map(|_| tokio::spawn(lectern_user_service::build(one.clone())))
        .collect();
    for replica in replicas {
        replica.await.unwrap().expect("every replica builds");
    }

    assert_eq!(admin_count(&db.url).await, 1);
    let app = start_generated(&db, dir.path()).await;
    let (status, body) = app.login("admin", &read_password(dir.path())).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the saved password is the real one: {body}"
    );
}
