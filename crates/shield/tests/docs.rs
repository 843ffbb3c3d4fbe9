//! `docs/CONFIGURATION.md` lists every setting exactly as the code defines it. Run with
//! `UPDATE_DOCS=1` to rewrite the generated part after changing a setting.

const BEGIN: &str =
    "<!-- settings:begin (generated from crates/shield/src/config/settings.rs) -->\n";
const END: &str = "<!-- settings:end -->";

#[test]
fn configuration_reference_is_current() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/CONFIGURATION.md");
    let text = std::fs::read_to_string(&path).expect("docs/CONFIGURATION.md exists");
    let start = text.find(BEGIN).expect("begin marker") + BEGIN.len();
    let end = text.find(END).expect("end marker");
    let generated = mcp_shield::config::settings::reference_markdown();
    if std::env::var_os("UPDATE_DOCS").is_some() {
        let updated = format!("{}{}{}", &text[..start], generated, &text[end..]);
        std::fs::write(&path, updated).expect("write docs");
        return;
    }
    assert_eq!(
        &text[start..end],
        generated,
        "docs/CONFIGURATION.md is stale: run UPDATE_DOCS=1 cargo test -p mcp-shield --test docs"
    );
}
