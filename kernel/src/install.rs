//! `lakebook install`: writes the kernelspec (kernel.json + logos) where Jupyter finds it:
//! the user's data dir, the current environment (`--sys-prefix`), or any prefix; `lakebook
//! uninstall` removes it from the same place.

use std::path::{Path, PathBuf};

use serde_json::json;

pub const KERNEL_NAME: &str = "lakebook";

const LOGO_32: &[u8] = include_bytes!("../assets/logo-32x32.png");
const LOGO_64: &[u8] = include_bytes!("../assets/logo-64x64.png");
const LOGO_SVG: &[u8] = include_bytes!("../assets/logo-svg.svg");

#[derive(Debug, Clone)]
pub enum Target {
    User,
    SysPrefix,
    Prefix(PathBuf),
}

/// Installs the kernelspec and returns the directory written.
pub fn install(target: &Target, name: &str, display_name: &str) -> Result<PathBuf, String> {
    let kernels = kernels_dir(target)?;
    let dir = kernels.join(name);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the lakebook binary: {e}"))?;
    let mut spec = json!({
        "argv": [exe.display().to_string(), "kernel", "--connection-file", "{connection_file}"],
        "display_name": display_name,
        "language": "rust",
        "interrupt_mode": "message",
        "metadata": { "debugger": false },
    });
    // Where the Rust-cell worker is, when the installer says (install/setup.sh builds it
    // into its cache, which may not be the default one).
    if let Some(worker) = std::env::var_os("LAKEBOOK_RUST_WORKER") {
        spec["env"] = json!({ "LAKEBOOK_RUST_WORKER": worker.to_string_lossy() });
    }
    let text = serde_json::to_string_pretty(&spec).map_err(|e| e.to_string())?;
    for (file, bytes) in [
        ("kernel.json", text.as_bytes()),
        ("logo-32x32.png", LOGO_32),
        ("logo-64x64.png", LOGO_64),
        ("logo-svg.svg", LOGO_SVG),
    ] {
        write(&dir.join(file), bytes)?;
    }
    Ok(dir)
}

/// Removes the kernelspec `name` that `install` wrote for the target; returns its directory.
pub fn uninstall(target: &Target, name: &str) -> Result<PathBuf, String> {
    let kernels = kernels_dir(target)?;
    let dir = kernels.join(name);
    if !dir.join("kernel.json").is_file() {
        return Err(format!("no kernelspec {name} in {}", kernels.display()));
    }
    std::fs::remove_dir_all(&dir).map_err(|e| format!("cannot remove {}: {e}", dir.display()))?;
    Ok(dir)
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    lakebook_engine::workspace::atomic_write(path, bytes).map_err(|e| e.to_string())
}

/// `<data dir>/kernels` for the target, as `jupyter kernelspec install` chooses it.
fn kernels_dir(target: &Target) -> Result<PathBuf, String> {
    let data = match target {
        Target::User => match std::env::var_os("JUPYTER_DATA_DIR") {
            Some(dir) => PathBuf::from(dir),
            None => {
                let home = std::env::var_os("HOME").ok_or("HOME is not set; use --prefix")?;
                PathBuf::from(home).join(".local/share/jupyter")
            }
        },
        Target::SysPrefix => sys_prefix()?.join("share/jupyter"),
        Target::Prefix(prefix) => prefix.join("share/jupyter"),
    };
    Ok(data.join("kernels"))
}

/// The active Python environment: `$VIRTUAL_ENV`, else `sys.prefix` of `python3` on PATH.
fn sys_prefix() -> Result<PathBuf, String> {
    if let Some(venv) = std::env::var_os("VIRTUAL_ENV").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(venv));
    }
    let output = std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.prefix)"])
        .output()
        .map_err(|e| format!("--sys-prefix needs python3 on PATH or VIRTUAL_ENV set: {e}"))?;
    if !output.status.success() {
        return Err("python3 could not report sys.prefix".into());
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_kernelspec_under_the_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let written = install(&Target::Prefix(dir.path().to_path_buf()), KERNEL_NAME, "Lakebook").unwrap();
        assert_eq!(written, dir.path().join("share/jupyter/kernels/lakebook"));
        let spec: serde_json::Value =
            serde_json::from_slice(&std::fs::read(written.join("kernel.json")).unwrap()).unwrap();
        assert_eq!(spec["interrupt_mode"], "message");
        assert_eq!(spec["argv"][1], "kernel");
        assert!(written.join("logo-64x64.png").exists());
    }
}
