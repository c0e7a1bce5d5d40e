//! Embeds every `migrations/NN_*.sql` file into the control plane, in name order, so the binary
//! applies exactly the files `psql` applies and needs no checkout at run time.

use std::{env, fs, path::Path};

fn main() {
    let manifest_dir = env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let migrations_dir = Path::new(&manifest_dir).join("../migrations");
    println!("cargo:rerun-if-changed={}", migrations_dir.display());
    let mut names: Vec<String> = fs::read_dir(&migrations_dir)
        .expect("migrations/ exists next to control-plane/")
        .map(|entry| {
            entry
                .expect("readable migrations/ entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.ends_with(".sql"))
        .collect();
    names.sort();
    let mut generated = String::from(
        "/// Every migration file, in the order it is applied.\npub const MIGRATION_FILES: &[(&str, &str)] = &[\n",
    );
    for name in names {
        let path = migrations_dir
            .join(&name)
            .canonicalize()
            .expect("migration path resolves");
        println!("cargo:rerun-if-changed={}", path.display());
        generated.push_str(&format!(
            "    ({name:?}, include_str!({:?})),\n",
            path.display().to_string()
        ));
    }
    generated.push_str("];\n");
    let out_dir = env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    fs::write(Path::new(&out_dir).join("migrations.rs"), generated).expect("write migrations.rs");
}
