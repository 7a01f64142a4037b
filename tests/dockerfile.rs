//! The Dockerfile builds as written with podman and buildah too: every base image is a
//! fully qualified reference (registry/path:tag), `scratch`, or an earlier stage. Podman
//! refuses a short name such as `rust:1.95` unless a registries.conf says where to look.

#[test]
fn base_images_are_fully_qualified() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile")).unwrap();
    let mut stages: Vec<String> = Vec::new();
    let mut bases = 0;
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if !words
            .first()
            .is_some_and(|w| w.eq_ignore_ascii_case("FROM"))
        {
            continue;
        }
        let image = words
            .iter()
            .skip(1)
            .find(|w| !w.starts_with("--"))
            .expect("FROM without an image");
        if let Some(i) = words.iter().position(|w| w.eq_ignore_ascii_case("AS")) {
            stages.push(words[i + 1].to_owned());
        }
        if *image == "scratch"
            || stages[..stages.len().saturating_sub(1)]
                .iter()
                .any(|s| s == image)
        {
            continue;
        }
        bases += 1;
        // The first component names a registry: it has a dot or a port, or is localhost.
        let first = image.split('/').next().unwrap();
        assert!(
            image.contains('/')
                && (first.contains('.') || first.contains(':') || first == "localhost"),
            "Dockerfile: `{line}`: {image} is a short name; write it in full (docker.io/library/...)"
        );
        assert!(
            image.contains(':') || image.contains('@'),
            "{image}: no tag or digest"
        );
    }
    assert!(bases >= 1, "no base image found in the Dockerfile");
}
