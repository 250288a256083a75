//! `sqlx::migrate!` embeds the migrations at compile time but, on stable Rust, only notices
//! changes to files that already existed: rebuild whenever the migrations folder changes.

fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
