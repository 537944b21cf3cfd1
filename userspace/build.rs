//! Compiles the hard-IRQ stage, `xdp-prog/xsknet.bpf.c`, into `$OUT_DIR/xsknet.bpf.o`,
//! which `src/xdp.rs` embeds with `aya::include_bytes_aligned!`.
//!
//! The compiler is `$CLANG` if set, else `clang`. `-g` is what makes clang emit
//! the BTF (`.BTF`, `.BTF.ext`) that the BTF-style map definitions need.

use std::{
    env,
    path::{Path, PathBuf},
    process::Command,
};

const CLANG_MISSING: &str =
    "clang not found: run `make deps` (installs clang and llvm) or `apt-get install clang llvm`";

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let prog_dir = manifest_dir.parent().expect("userspace/ sits in the workspace").join("xdp-prog");
    let source = prog_dir.join("xsknet.bpf.c");
    let header = prog_dir.join("xsknet_common.h");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo")).join("xsknet.bpf.o");

    println!("cargo::rerun-if-changed={}", source.display());
    println!("cargo::rerun-if-changed={}", header.display());
    println!("cargo::rerun-if-env-changed=CLANG");

    let clang = env::var_os("CLANG").unwrap_or_else(|| "clang".into());
    let mut cmd = Command::new(&clang);
    cmd.args(["-O2", "-g", "-target", "bpf", "-Wall", "-Werror"]).arg("-I").arg(&prog_dir);
    // <linux/*.h> include <asm/types.h>, which Debian installs (linux-libc-dev)
    // under the multiarch directory; a BPF-target clang does not look there.
    if let Some(dir) = multiarch_include_dir() {
        cmd.arg("-I").arg(dir);
    }
    cmd.arg("-c").arg(&source).arg("-o").arg(&out);

    match cmd.output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            // cargo does not show a build script's stderr next to `cargo::error`,
            // so clang's diagnostics are passed on one error line each.
            println!(
                "cargo::error=compiling {} with {} failed ({}); the BPF headers come from \
                 `apt-get install libbpf-dev linux-libc-dev`",
                source.display(),
                Path::new(&clang).display(),
                out.status,
            );
            for line in String::from_utf8_lossy(&out.stderr).lines() {
                println!("cargo::error=  {line}");
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!("cargo::error={CLANG_MISSING}")
        }
        Err(e) => println!("cargo::error=running {}: {e}", Path::new(&clang).display()),
    }
}

/// `/usr/include/<arch>-linux-gnu` for the machine that builds, if it exists.
fn multiarch_include_dir() -> Option<PathBuf> {
    // The headers come from the build machine, so the host's arch is what matters.
    let arch = env::var("HOST").ok().and_then(|host| host.split('-').next().map(str::to_owned))?;
    let dir = PathBuf::from(format!("/usr/include/{arch}-linux-gnu"));
    dir.join("asm/types.h").exists().then_some(dir)
}
