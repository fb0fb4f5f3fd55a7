//! The data directory holds delivery payloads, token hashes and, unless it comes from the
//! environment, the master key. Only the user the hub runs as may enter it, and every file
//! the hub makes there is that user's alone, whatever the umask. A directory or file found
//! readable by others (left so by an older version, or by hand) is tightened when opened,
//! rather than trusted to whoever loosened it.

use std::{fs, io, path::Path};

/// Creates `dir` (and its missing parents) as 0700, or takes group and other access away
/// from it if it exists.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|e| at(dir, e))?;
    tighten(dir)
}

/// Options that create a file as 0600.
pub fn private_file_options() -> fs::OpenOptions {
    #[allow(unused_mut)]
    let mut options = fs::OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
}

/// Creates an empty file as 0600, or tightens it if it exists. An existing file is never
/// opened: closing a descriptor drops every POSIX lock this process holds on the file, and
/// SQLite's are among them.
pub fn create_private_file(path: &Path) -> io::Result<()> {
    match private_file_options()
        .write(true)
        .create_new(true)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => tighten(path),
        Err(e) => Err(at(path, e)),
    }
}

/// Takes group and other access away from `path`, if it exists and has any.
pub fn tighten(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = match fs::metadata(path) {
            Ok(meta) => meta.permissions().mode() & 0o7777,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(at(path, e)),
        };
        if mode & 0o077 != 0 {
            fs::set_permissions(path, fs::Permissions::from_mode(mode & !0o077))
                .map_err(|e| at(path, e))?;
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// The error, saying which path it is about: startup reports it as it is.
fn at(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}
