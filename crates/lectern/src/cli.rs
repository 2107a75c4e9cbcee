//! The command line: every command, every flag and their help text.
//!
//! Only parsing lives here; each command's work is in its own module
//! ([`crate::up`], [`crate::serve`], [`crate::import`]).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Lectern, a library management system: catalogue, members and loans,
/// served by a few small services behind a gateway.
#[derive(Debug, Parser)]
#[command(
    name = "lectern",
    version,
    propagate_version = true,
    after_help = "Start with `lectern up`, then try \
                  http://127.0.0.1:8080/api/books?q=hugo"
)]
pub(crate) struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the whole system on this machine
    ///
    /// Every service runs as its own process, with several book-service
    /// replicas behind the gateway; a child that dies is restarted; data
    /// lives in SQLite files in the data directory.
    ///
    /// Prints `Lectern is ready at http://127.0.0.1:PORT` on stdout once
    /// every process answers its readiness check. Ctrl-C or SIGTERM stops
    /// everything gracefully.
    #[command(after_help = "\
Examples:
  lectern up
  lectern up --port 9090 --data-dir /var/lib/lectern --book-replicas 3

The admin password is written to DATA_DIR/admin-password on the first
start unless LECTERN_ADMIN_PASSWORD is set. The supervisor writes the
children's pids and addresses to DATA_DIR/pids.json.")]
    Up(UpArgs),

    /// Run one service, configured from the environment
    ///
    /// Runs in the foreground, as a container runs it, with JSON logs on
    /// stdout. Stops gracefully on SIGINT or SIGTERM.
    #[command(after_help = "\
Examples:
  DATABASE_URL=postgres://lectern@db/books LECTERN_TOKEN_SECRET=... \\
    lectern serve book-service
  LECTERN_GATEWAY_CONFIG=/etc/lectern/gateway.toml lectern serve gateway

A configuration error names the variable and the reason, and exits 2.")]
    Serve(ServeArgs),

    /// Import MARC 21 files into the catalogue
    ///
    /// Reads ISO 2709 or MARCXML and sends the records through the
    /// gateway in batches. Damaged records are reported and skipped; the
    /// rest still imports. Exits 0 when every batch was stored, 1 when any
    /// was not (or a file could not be read to its end), 2 when no
    /// password is available.
    #[command(after_help = "\
Examples:
  lectern import catalogue.mrc more.xml
  LECTERN_PASSWORD=... lectern import --url http://lectern.example:8080 \\
    --user librarian1 records.mrc

The password comes from LECTERN_PASSWORD when it is set, else from the
first line of --password-file.")]
    Import(ImportArgs),
}

/// Flags of `lectern up`.
#[derive(Debug, Args)]
pub(crate) struct UpArgs {
    /// Port on 127.0.0.1 where the gateway (the public API) listens.
    #[arg(
        long,
        default_value_t = 8080,
        value_parser = clap::value_parser!(u16).range(1..)
    )]
    pub(crate) port: u16,

    /// Directory for the databases, the token secret, the admin password
    /// and pids.json; created when missing.
    #[arg(long, value_name = "DIR", default_value = "./lectern-data")]
    pub(crate) data_dir: PathBuf,

    /// Number of book-service processes sharing the catalogue behind the
    /// gateway (two or more keep it answering while one restarts).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 2,
        value_parser = clap::value_parser!(u8).range(1..=16)
    )]
    pub(crate) book_replicas: u8,
}

/// Flags of `lectern serve`.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// The service to run.
    #[arg(value_enum)]
    pub(crate) service: ServiceName,
}

/// The processes Lectern is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ServiceName {
    /// Bibliographic records, copies, search, MARC import.
    BookService,
    /// Members, staff accounts and sign-in.
    UserService,
    /// Loans: check out, return, renew, overdue.
    BorrowingService,
    /// The reverse proxy in front of the services.
    Gateway,
}

impl ServiceName {
    /// The name as the command line and logs spell it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::BookService => "book-service",
            Self::UserService => "user-service",
            Self::BorrowingService => "borrowing-service",
            Self::Gateway => "gateway",
        }
    }
}

/// Flags of `lectern import`.
#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    /// MARC files: ISO 2709 (.mrc, .dat, .marc) or MARCXML (.xml); any
    /// other name is recognised by its first byte (`<` means XML).
    #[arg(required = true, value_name = "FILE")]
    pub(crate) files: Vec<PathBuf>,

    /// Base URL of the Lectern gateway.
    #[arg(
        long,
        value_name = "URL",
        default_value = "http://127.0.0.1:8080",
        value_parser = parse_base_url
    )]
    pub(crate) url: reqwest::Url,

    /// Staff account to sign in as (admin or librarian).
    #[arg(long, value_name = "NAME", default_value = "admin")]
    pub(crate) user: String,

    /// File whose first line is the password; not read when
    /// LECTERN_PASSWORD is set.
    #[arg(
        long,
        value_name = "PATH",
        default_value = "./lectern-data/admin-password"
    )]
    pub(crate) password_file: PathBuf,

    /// Records sent per request (the catalogue takes at most 1000).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 500,
        value_parser = clap::value_parser!(u16).range(1..=1000)
    )]
    pub(crate) batch_size: u16,
}

/// An `http` or `https` URL without query or fragment.
fn parse_base_url(text: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(text).map_err(|e| e.to_string())?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("the URL must start with http:// or https://".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("the URL must not have a query or fragment".into());
    }

    Ok(url)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use clap::error::ErrorKind;
    use clap::CommandFactory;

    use super::*;

    fn parse(args: &[&str]) -> Result<Command, clap::Error> {
        let argv = std::iter::once("lectern").chain(args.iter().copied());
        Cli::try_parse_from(argv).map(|cli| cli.command)
    }

    #[test]
    fn the_command_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn up_has_sane_defaults() {
        let Ok(Command::Up(up)) = parse(&["up"]) else {
            panic!("`lectern up` did not parse as up");
        };

        assert_eq!(up.port, 8080);
        assert_eq!(up.data_dir, Path::new("./lectern-data"));
        assert_eq!(up.book_replicas, 2);
    }

    #[test]
    fn up_takes_every_flag() {
        let args = [
            "up",
            "--port",
            "9090",
            "--data-dir",
            "/tmp/x",
            "--book-replicas",
            "3",
        ];
        let Ok(Command::Up(up)) = parse(&args) else {
            panic!("flags of up did not parse");
        };

        assert_eq!(up.port, 9090);
        assert_eq!(up.data_dir, Path::new("/tmp/x"));
        assert_eq!(up.book_replicas, 3);
    }

    #[test]
    fn up_refuses_impossible_values() {
        for args in [
            ["up", "--port", "0"],
            ["up", "--port", "70000"],
            ["up", "--book-replicas", "0"],
            ["up", "--book-replicas", "17"],
            ["up", "--port", "http"],
        ] {
            let err = parse(&args).expect_err("should be refused");
            assert_eq!(err.kind(), ErrorKind::ValueValidation, "{args:?}");
        }
    }

    #[test]
    fn serve_knows_the_four_services() {
        let cases = [
            ("book-service", ServiceName::BookService),
            ("user-service", ServiceName::UserService),
            ("borrowing-service", ServiceName::BorrowingService),
            ("gateway", ServiceName::Gateway),
        ];
        for (name, expected) in cases {
            let Ok(Command::Serve(serve)) = parse(&["serve", name]) else {
                panic!("serve {name} did not parse");
            };
            assert_eq!(serve.service, expected);
            assert_eq!(serve.service.as_str(), name);
        }

        let err = parse(&["serve", "loan-service"]).expect_err("unknown");
        assert_eq!(err.kind(), ErrorKind::InvalidValue);
        let err = parse(&["serve"]).expect_err("missing");
        assert_eq!(err.kind(), ErrorKind::MissingRequiredArgument);
    }

    #[test]
    fn import_has_sane_defaults() {
        let Ok(Command::Import(import)) = parse(&["import", "a.mrc", "b.xml"]) else {
            panic!("import did not parse");
        };

        assert_eq!(import.files, [Path::new("a.mrc"), Path::new("b.xml")]);
        assert_eq!(import.url.as_str(), "http://127.0.0.1:8080/");
        assert_eq!(import.user, "admin");
        let default_file = Path::new("./lectern-data/admin-password");
        assert_eq!(import.password_file, default_file);
        assert_eq!(import.batch_size, 500);
    }

    #[test]
    fn import_takes_every_flag() {
        let args = [
            "import",
            "--url",
            "https://lectern.example:8443/base",
            "--user",
            "ana",
            "--password-file",
            "/run/secret",
            "--batch-size",
            "50",
            "x.mrc",
        ];
        let Ok(Command::Import(import)) = parse(&args) else {
            panic!("flags of import did not parse");
        };

        assert_eq!(import.url.as_str(), "https://lectern.example:8443/base");
        assert_eq!(import.user, "ana");
        assert_eq!(import.password_file, Path::new("/run/secret"));
        assert_eq!(import.batch_size, 50);
        assert_eq!(import.files, [Path::new("x.mrc")]);
    }

    #[test]
    fn import_refuses_bad_input() {
        let err = parse(&["import"]).expect_err("no files");
        assert_eq!(err.kind(), ErrorKind::MissingRequiredArgument);

        for args in [
            ["import", "--url", "ftp://host/", "a.mrc"],
            ["import", "--url", "not a url", "a.mrc"],
            ["import", "--url", "http://h/?q=1", "a.mrc"],
            ["import", "--batch-size", "0", "a.mrc"],
            ["import", "--batch-size", "1001", "a.mrc"],
        ] {
            let err = parse(&args).expect_err("should be refused");
            assert_eq!(err.kind(), ErrorKind::ValueValidation, "{args:?}");
        }
    }

    #[test]
    fn version_and_help_are_answered() {
        let err = parse(&["--version"]).expect_err("version exits early");
        assert_eq!(err.kind(), ErrorKind::DisplayVersion);

        let err = parse(&["help"]).expect_err("help exits early");
        assert_eq!(err.kind(), ErrorKind::DisplayHelp);
        let help = err.to_string();
        for command in ["up", "serve", "import"] {
            assert!(help.contains(command), "help lists {command}: {help}");
        }

        let err = parse(&["help", "import"]).expect_err("help exits early");
        assert!(err.to_string().contains("--batch-size"));
    }
}
