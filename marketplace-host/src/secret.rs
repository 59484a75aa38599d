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
        Some(path) => match std::fs::read_to_string(path) {
            Ok(s) if !s.trim().is_empty() => s.trim().to_owned(),
            _ => {
                let s = JwtSecret::generate();
                write_private(path, &s).map_err(|source| Error::SecretFile {
                    path: path.to_owned(),
                    source,
                })?;
                tracing::info!(path = %path.display(), "generated a development JWT secret");
                s
            }
        },
        None => JwtSecret::generate(),
    };
    JwtSecret::new(generated.into_bytes()).map_err(Error::Secret)
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
