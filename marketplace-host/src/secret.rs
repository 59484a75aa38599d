//! The token signing secret: configured, or (for local development only)
//! generated once and kept beside the SQLite file it protects.

use std::path::Path;

use marketplace_core::JwtSecret;

use crate::error::{Error, Result};
use crate::settings::Settings;

/// The signing secret the settings call for.
///
/// - `JWT_SECRET`, when set (32 bytes or more);
/// - otherwise refused in production (`MARKETPLACE_ENV=production`) and with a
///   shared store (PostgreSQL, MongoDB), where every process must sign alike;
/// - otherwise generated: read from `secret_file` when it holds one, else
///   generated and written there (readable by its owner only), so tokens
///   survive a restart; without a file, a fresh secret per process.
pub fn jwt_secret(settings: &Settings, secret_file: Option<&Path>) -> Result<JwtSecret> {
    if let Some(s) = &settings.jwt_secret {
        return JwtSecret::new(s.clone().into_bytes()).map_err(Error::Secret);
    }
    if settings.production || !settings.local_store() {
        return Err(Error::SecretRequired);
    }
    let generated = match secret_file {
        Some(path) => development_secret(path).map_err(|source| Error::SecretFile {
            path: path.to_owned(),
            source,
        })?,
        None => JwtSecret::generate(),
    };
    JwtSecret::new(generated.into_bytes()).map_err(Error::Secret)
}

/// The development secret kept at `path`, generated there when absent. Hosts
/// started together on one SQLite file (the REST server, the storefront, the
/// command line) agree on it: the secret is written whole to a file of its own
/// and linked into place only if no other process got there first, so a
/// reader never sees a half-written secret and the first writer wins.
fn development_secret(path: &Path) -> std::io::Result<String> {
    let read = |path: &Path| match std::fs::read_to_string(path) {
        Ok(s) if !s.trim().is_empty() => Ok(Some(s.trim().to_owned())),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    };
    if let Some(s) = read(path)? {
        return Ok(s);
    }
    let secret = JwtSecret::generate();
    let mut draft = path.as_os_str().to_owned();
    draft.push(format!(".{}.new", uuid::Uuid::new_v4().simple()));
    let draft = std::path::PathBuf::from(draft);
    write_private(&draft, &secret)?;
    let linked = std::fs::hard_link(&draft, path);
    let _ = std::fs::remove_file(&draft);
    match linked {
        Ok(()) => {
            tracing::info!(path = %path.display(), "generated a development JWT secret");
            Ok(secret)
        }
        // Another host wrote it first, or an empty file (from an older
        // version) sits there: use what is there, or replace the empty one.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => match read(path)? {
            Some(theirs) => Ok(theirs),
            None => {
                write_private(path, &secret)?;
                Ok(secret)
            }
        },
        Err(e) => Err(e),
    }
}

/// Writes a file only its owner can read.
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    std::io::Write::write_all(&mut options.open(path)?, contents.as_bytes())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn with(k: &'static str, v: &str) -> Settings {
        let v = v.to_owned();
        Settings::from_lookup(|key| (key == k).then(|| v.clone())).unwrap()
    }

    #[test]
    fn secrets_are_required_where_they_matter() {
        let prod = with("MARKETPLACE_ENV", "production");
        assert!(
            matches!(jwt_secret(&prod, None), Err(Error::SecretRequired)),
            "production refuses a generated secret"
        );
        let pg = with("DATABASE_URL", "postgres://x@h/db");
        assert!(
            matches!(jwt_secret(&pg, None), Err(Error::SecretRequired)),
            "a shared database needs a configured secret"
        );
        let mongo = with("DATABASE_URL", "mongodb://h/db?replicaSet=rs0");
        assert!(jwt_secret(&mongo, None).is_err());
        let short = with("JWT_SECRET", "short");
        assert!(
            matches!(jwt_secret(&short, None), Err(Error::Secret(_))),
            "short secrets are refused"
        );
        assert!(jwt_secret(&Settings::default(), None).is_ok());
        assert!(jwt_secret(&with("JWT_SECRET", &"x".repeat(40)), None).is_ok());
    }

    #[test]
    fn hosts_starting_together_agree_on_the_secret() {
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("marketplace.db.jwt-secret");
            let secrets: Vec<String> = std::thread::scope(|s| {
                let starts: Vec<_> = (0..8)
                    .map(|_| s.spawn(|| development_secret(&file).unwrap()))
                    .collect();
                starts.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let kept = std::fs::read_to_string(&file).unwrap();
            assert!(secrets.iter().all(|s| *s == kept), "{secrets:?} vs {kept}");
            let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
            assert_eq!(left.len(), 1, "drafts are removed");
        }
    }

    #[test]
    fn a_development_secret_is_kept_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("marketplace.db.jwt-secret");
        jwt_secret(&Settings::default(), Some(&file)).unwrap();
        let kept = std::fs::read_to_string(&file).unwrap();
        assert!(kept.len() >= 32);
        jwt_secret(&Settings::default(), Some(&file)).unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), kept, "replaced");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "readable by others: {mode:o}");
        }
    }
}
