//! The connection pool and its runtime, and database errors as the core's typed ones
//! (naming the database, never its password).

use std::future::Future;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use lookalike_core::{Error, Result};
use tokio_postgres::config::Host;

use crate::tls;

/// How long a connection attempt to one host may take before the next host is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a caller waits for a free connection of the pool.
const POOL_WAIT: Duration = Duration::from_secs(30);

pub struct Db {
    runtime: tokio::runtime::Runtime,
    pool: Pool,
    at: String,
}

impl Db {
    /// A pool of at most `size` connections to `url` (a libpq URL or key=value string,
    /// with libpq's `sslmode` and `sslrootcert`: [`crate::tls`]).
    pub fn connect(url: &str, size: usize) -> Result<Db> {
        let tls = tls::split(url);
        let mut config: tokio_postgres::Config = tls.url.parse().map_err(|e| Error::Backend {
            at: "postgres".into(),
            reason: format!("the postgres URL does not parse ({e}); it is not shown, as it may hold a password"),
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let at = describe(&config);
        let connector = tls::connector(tls.verify, tls.root_cert.as_deref())
            .map_err(|reason| Error::Backend { at: at.clone(), reason })?;
        let manager =
            Manager::from_config(config, connector, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("lookalike-postgres")
            .enable_all()
            .build()
            .map_err(|e| Error::Backend { at: at.clone(), reason: format!("cannot start its client: {e}") })?;
        let pool = Pool::builder(manager)
            .max_size(size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(CONNECT_TIMEOUT * 4))
            .build()
            .map_err(|e| Error::Backend { at: at.clone(), reason: format!("cannot make a connection pool: {e}") })?;
        Ok(Db { runtime, pool, at })
    }

    /// `postgres://user@host:port/db` of the configured hosts: no password.
    pub fn at(&self) -> &str {
        &self.at
    }

    /// Runs `work` with a pooled connection, on this client's runtime; errors say what
    /// was being done.
    pub fn run<T, F, Fut>(&self, what: &str, work: F) -> Result<T>
    where
        F: FnOnce(deadpool_postgres::Object) -> Fut,
        Fut: Future<Output = std::result::Result<T, Failure>>,
    {
        self.runtime.block_on(async {
            let client = self.pool.get().await.map_err(|e| self.error(what, Failure::Pool(e)))?;
            work(client).await.map_err(|e| self.error(what, e))
        })
    }

    /// Runs `work` (on a connection the caller holds) on this client's runtime.
    pub fn block<T>(&self, what: &str, work: impl Future<Output = std::result::Result<T, Failure>>) -> Result<T> {
        self.runtime.block_on(work).map_err(|e| self.error(what, e))
    }

    /// [`run`](Self::run) for reads, tried once more on a fresh connection when the
    /// connection broke (a server that went away: the next one of the host list answers).
    pub fn read<T, F, Fut>(&self, what: &str, work: F) -> Result<T>
    where
        F: Fn(deadpool_postgres::Object) -> Fut,
        Fut: Future<Output = std::result::Result<T, Failure>>,
    {
        self.runtime.block_on(async {
            let mut tries = 0;
            loop {
                tries += 1;
                let done = match self.pool.get().await {
                    Ok(client) => work(client).await,
                    Err(e) => Err(Failure::Pool(e)),
                };
                match done {
                    Err(f) if tries == 1 && f.broken_connection() => continue,
                    done => return done.map_err(|e| self.error(what, e)),
                }
            }
        })
    }

    pub fn error(&self, what: &str, failure: Failure) -> Error {
        Error::Backend { at: self.at.clone(), reason: format!("{what}: {}", failure.reason()) }
    }
}

/// What went wrong inside a database call.
#[derive(Debug)]
pub enum Failure {
    Postgres(tokio_postgres::Error),
    Pool(deadpool_postgres::PoolError),
    /// The database is not as this build needs it (schema, sets).
    Refused(String),
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Failure {
        Failure::Postgres(e)
    }
}

impl Failure {
    /// The connection closed or failed under the query (not an answer of the server).
    fn broken_connection(&self) -> bool {
        match self {
            Failure::Postgres(e) => e.is_closed() || e.as_db_error().is_none(),
            // 57P01: the server shut down and terminated this session.
            Failure::Pool(deadpool_postgres::PoolError::Backend(e)) => {
                e.is_closed() || e.code() == Some(&tokio_postgres::error::SqlState::ADMIN_SHUTDOWN)
            }
            _ => false,
        }
    }

    fn reason(&self) -> String {
        match self {
            Failure::Postgres(e) => postgres_reason(e),
            // The pool's own text for a failed connect is the driver's error.
            Failure::Pool(deadpool_postgres::PoolError::Backend(e)) => postgres_reason(e),
            Failure::Pool(e) => e.to_string(),
            Failure::Refused(why) => why.clone(),
        }
    }
}

fn postgres_reason(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        // 25006: a write on a hot standby.
        if db.code() == &tokio_postgres::error::SqlState::READ_ONLY_SQL_TRANSACTION {
            return "the server answering refuses writes (a read-only replica, or read-only transactions): writes \
                    need the primary, which is gone or not in the host list"
                .into();
        }
        return format!("{} ({})", db.message(), db.code().code());
    }
    // The driver's top-level text ("error connecting to server") hides the cause.
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}

fn describe(config: &tokio_postgres::Config) -> String {
    let ports = config.get_ports();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let host = match h {
                Host::Tcp(name) => name.clone(),
                Host::Unix(path) => path.display().to_string(),
            };
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            format!("{host}:{port}")
        })
        .collect();
    let user = config.get_user().map(|u| format!("{u}@")).unwrap_or_default();
    let db = config.get_dbname().unwrap_or("");
    format!("postgres://{user}{}/{db}", hosts.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_description_has_no_password() {
        let config: tokio_postgres::Config =
            "postgres://shop:s3cret@10.0.0.1:5433,10.0.0.2:5434/catalogs".parse().unwrap();
        let at = describe(&config);
        assert_eq!(at, "postgres://shop@10.0.0.1:5433,10.0.0.2:5434/catalogs");
        assert!(!at.contains("s3cret"));
    }

    #[test]
    fn a_bad_url_is_an_error_that_does_not_echo_it() {
        let err = Db::connect("postgres://shop:s3cret@host:notaport/db", 1).err().unwrap();
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }
}
