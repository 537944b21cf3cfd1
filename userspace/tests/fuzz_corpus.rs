//! The fuzz targets' bodies (fuzz/src, docs/fuzzing.md) without libFuzzer: over the seed
//! corpus checked in under fuzz/corpus/<target>/, over the crash inputs kept as regression
//! tests under fuzz/regressions/<target>/, and over a deterministic set of mutations of the
//! seeds. What `make fuzz` finds lands here as a file in fuzz/regressions/.

#[allow(dead_code, missing_docs)]
#[path = "../../fuzz/src/lib.rs"]
mod fuzz;

use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// The files in `dir`, sorted by name (none when it does not exist).
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut v: Vec<(String, Vec<u8>)> = entries
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.is_file())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).expect("readable")))
        .collect();
    v.sort();
    v
}

/// Runs `body` on `input`; when it panics, writes the input to a file and fails naming the
/// target, the input and the file.
fn run(target: &str, name: &str, body: fn(&[u8]), input: &[u8]) {
    if std::panic::catch_unwind(|| body(input)).is_err() {
        let file = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("fuzz-failure-{target}"));
        std::fs::write(&file, input).expect("writing the failing input");
        panic!(
            "fuzz target {target} failed on {name}, written to {}: replay it with `scripts/fuzz.sh --repro {target} {}`, \
             keep it in fuzz/regressions/{target}/ (docs/fuzzing.md)",
            file.display(),
            file.display()
        );
    }
}

/// The checked-in seeds are the ones `fuzz::seeds` makes from the test frames. With
/// `XSKNET_WRITE_FUZZ_SEEDS=1` the test writes them instead (after a change to the seeds).
#[test]
fn seed_corpus_is_current() {
    let write = std::env::var_os("XSKNET_WRITE_FUZZ_SEEDS").is_some();
    for (target, seeds) in fuzz::seeds::seeds() {
        let dir = fuzz_dir().join("corpus").join(target);
        let want: Vec<(String, Vec<u8>)> =
            seeds.into_iter().enumerate().map(|(i, s)| (format!("seed-{i:03}"), s)).collect();
        if write {
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            for (name, bytes) in &want {
                std::fs::write(dir.join(name), bytes).unwrap();
            }
        }
        assert!(files(&dir) == want, "fuzz/corpus/{target} is not what fuzz::seeds makes: run XSKNET_WRITE_FUZZ_SEEDS=1 cargo test -p xsknet --test fuzz_corpus");
    }
}

/// Every target's body over its seeds and its regression inputs.
#[test]
fn seeds_and_regressions_run_clean() {
    for (target, body) in fuzz::TARGETS {
        let seeds = files(&fuzz_dir().join("corpus").join(target));
        assert!(!seeds.is_empty(), "no seeds for {target}");
        for (name, input) in seeds.iter().chain(&files(&fuzz_dir().join("regressions").join(target))) {
            run(target, name, body, input);
        }
    }
}

/// Mutations of the seeds (a deterministic xorshift: flips, cuts, edge values, splices),
/// through every body: a short fuzz run that needs no libFuzzer and no sanitizer.
#[test]
fn mutated_seeds_run_clean() {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for (target, body) in fuzz::TARGETS {
        let seeds = files(&fuzz_dir().join("corpus").join(target));
        let rounds = if target == "rx_path" || target == "socket_api" { 3000 } else { 5000 };
        for i in 0..rounds {
            let (name, seed) = &seeds[i % seeds.len()];
            let mut input = seed.clone();
            for _ in 0..=(next() % 4) {
                if input.is_empty() {
                    break;
                }
                let r = next();
                let at = (r >> 8) as usize % input.len();
                match r % 5 {
                    0 => input[at] ^= 1 << ((r >> 32) % 8),
                    1 => input[at] = [0x00, 0xff, 0x7f, 0x80, 0x45, 0x05][(r >> 40) as usize % 6],
                    2 => input.truncate(at),
                    3 => input[at] = input[at].wrapping_add((r >> 48) as u8),
                    _ => {
                        let (_, other) = &seeds[(r >> 16) as usize % seeds.len()];
                        let from = (r >> 24) as usize % other.len().max(1);
                        input.extend_from_slice(&other[from.min(other.len())..]);
                    }
                }
            }
            run(target, &format!("mutation {i} of {name}"), body, &input);
        }
    }
}
