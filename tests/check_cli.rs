//! `volguard check`, `policy`, `rules` and `certs` as a user runs them.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn volguard(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_volguard"))
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

const SEED: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: seed\nspec:\n  containers:\n  - name: writer\n    image: busybox\n    volumeMounts: [{name: temp-volume, mountPath: /temp}]\n  - name: reader\n    image: busybox\n    volumeMounts: [{name: temp-volume, mountPath: /storages/files}]\n  volumes:\n  - name: temp-volume\n    emptyDir: {}\n";

#[test]
fn seed_denied_then_allowed_from_stdin() {
    let o = volguard(&["check", "-f", "-"], Some(SEED));
    assert_eq!(o.status.code(), Some(1));
    let text = stdout(&o);
    assert!(text.starts_with("Pod/seed (<stdin>:1): denied\n"), "{text}");
    assert!(text.contains("deny  15:5 [emptydir-size-limit-required] spec.volumes[0].emptyDir: emptyDir \"temp-volume\" has no sizeLimit"), "{text}");
    let fixed = SEED.replace("emptyDir: {}", "emptyDir: {sizeLimit: 500Mi}");
    let o = volguard(&["check", "-f", "-"], Some(&fixed));
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(stdout(&o).contains("1 object checked: 0 denied, 0 allowed with findings, 1 clean"));
}

#[test]
fn multi_document_helm_output_with_list_and_other_kinds() {
    let stream = format!(
        "---\n# Source: app/templates/svc.yaml\napiVersion: v1\nkind: Service\nmetadata: {{name: s}}\nspec: {{ports: [{{port: 80}}]}}\n---\n# Source: app/templates/pod.yaml\n{SEED}---\nkind: List\napiVersion: v1\nitems:\n- {{kind: Pod, apiVersion: v1, metadata: {{name: in-list}}, spec: {{containers: [{{name: c}}]}}}}\n"
    );
    let o = volguard(&["check", "-f", "-", "-o", "json"], Some(&stream));
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["seed", "in-list"]);
    assert_eq!(v[0]["line"], 9);
    assert_eq!(v[0]["namespace"], "default");
    assert_eq!(
        v[0]["violations"][0]["rule"],
        "emptydir-size-limit-required"
    );
    assert_eq!(v[0]["violations"][0]["action"], "deny");
    assert_eq!(v[0]["violations"][0]["path"], "spec.volumes[0].emptyDir");
    assert_eq!(v[1]["allowed"], true);
}

#[test]
fn directories_malformed_yaml_and_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("nested")).unwrap();
    std::fs::write(dir.path().join("nested/pod.yml"), SEED).unwrap();
    std::fs::write(
        dir.path().join("broken.yaml"),
        "kind: Pod\nmetadata:\n  name: [unclosed\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a manifest").unwrap();
    let review = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/admission-review.json"
    ))
    .unwrap();
    std::fs::write(dir.path().join("review.json"), review).unwrap();
    let o = volguard(&["check", "-f", dir.path().to_str().unwrap()], None);
    let text = stdout(&o);
    // The malformed file is reported with file and line; the others are still checked.
    assert_eq!(o.status.code(), Some(2), "{text}");
    assert!(text.contains("broken.yaml:4: malformed YAML"), "{text}");
    assert!(text.contains("Pod/seed ("), "{text}");
    assert!(text.contains("Pod/shared-scratch ("), "{text}");
    assert!(text.contains("2 objects checked: 2 denied"), "{text}");

    // A namespace given on the command line applies to objects without one.
    let p = dir.path().join("nested/pod.yml");
    let o = volguard(
        &[
            "check",
            "-f",
            p.to_str().unwrap(),
            "--namespace",
            "kube-system",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));

    // Unreadable input and an invalid policy exit 2 with a precise message.
    let o = volguard(&["check", "-f", "/nonexistent.yaml"], None);
    assert_eq!(o.status.code(), Some(2));
    let bad = dir.path().join("policy.yaml");
    std::fs::write(&bad, "rules:\n  emptydir-size-limit-max: {maxDisk: lots}\n").unwrap();
    let o = volguard(
        &[
            "check",
            "-f",
            p.to_str().unwrap(),
            "--policy",
            bad.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(
            "policy.yaml: rules.emptydir-size-limit-max.maxDisk: \"lots\" is not a valid quantity"
        ),
        "{err}"
    );
}

#[test]
fn policy_with_mode_warn_allows_with_findings() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("policy.yaml");
    std::fs::write(&p, "mode: warn\n").unwrap();
    let o = volguard(
        &["check", "-f", "-", "--policy", p.to_str().unwrap()],
        Some(SEED),
    );
    assert_eq!(o.status.code(), Some(0));
    assert!(
        stdout(&o).contains("allowed with findings\n  warn  15:5 [emptydir-size-limit-required]"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn policy_default_round_trips_and_validate_exit_codes() {
    let o = volguard(&["policy", "default"], None);
    assert_eq!(o.status.code(), Some(0));
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("default.yaml");
    std::fs::write(&p, &o.stdout).unwrap();
    let v = volguard(&["policy", "validate", p.to_str().unwrap()], None);
    assert_eq!(
        v.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&v.stderr)
    );
    std::fs::write(&p, "rules:\n  no-such-rule: {action: deny}\n").unwrap();
    let v = volguard(&["policy", "validate", p.to_str().unwrap()], None);
    assert_eq!(v.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&v.stderr)
            .contains("rules.no-such-rule: unknown rule (known: mount-volume-exists,")
    );
}

#[test]
fn rules_lists_the_catalogue() {
    let o = volguard(&["rules", "-o", "json"], None);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), volguard::RULES.len());
    let text = stdout(&volguard(&["rules"], None));
    for r in volguard::RULES.iter() {
        assert!(
            text.contains(&format!("{}  (default: ", r.name())),
            "{}",
            r.name()
        );
    }
    assert!(text.contains("option maxDisk: default 10Gi"));
}

#[test]
fn certs_writes_a_bundle_and_prints_the_ca_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = volguard(
        &[
            "certs",
            "--service",
            "volguard",
            "--namespace",
            "ops",
            "--out",
            out.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(0));
    let ca = std::fs::read_to_string(out.join("ca.crt")).unwrap();
    use base64::Engine;
    let printed = base64::engine::general_purpose::STANDARD
        .decode(stdout(&o).trim())
        .unwrap();
    assert_eq!(printed, ca.as_bytes());
    assert!(String::from_utf8_lossy(&o.stderr).contains("volguard.ops.svc"));
}

const NO_OBJECTS: &str =
    "error: no Kubernetes objects found in the input (use --allow-empty if that is expected)";

/// `helm template ... | volguard check -f -` when helm failed: nothing arrives on stdin, and
/// the pipeline must fail even without `pipefail` (its status is check's).
#[test]
fn nothing_to_check_is_an_error_unless_allowed() {
    for (what, input) in [
        ("empty stdin", ""),
        ("only separators and comments", "---\n# Source: x\n---\n"),
        ("non-Kubernetes YAML", "name: my-app\nreplicas: 3\n"),
        ("a kind without apiVersion", "kind: Thing\nspec: {}\n"),
    ] {
        let o = volguard(&["check", "-f", "-"], Some(input));
        assert_eq!(o.status.code(), Some(2), "{what}: {}", stdout(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(NO_OBJECTS), "{what}: {err}");
        let o = volguard(&["check", "-f", "-", "--allow-empty"], Some(input));
        assert_eq!(o.status.code(), Some(0), "{what}: {}", stdout(&o));
        assert!(stdout(&o).contains("0 objects checked"), "{what}");
    }
    // An empty file, as a file.
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.yaml");
    std::fs::write(&empty, "").unwrap();
    let o = volguard(&["check", "-f", empty.to_str().unwrap()], None);
    assert_eq!(o.status.code(), Some(2));
    // Kubernetes objects volguard does not judge are still input: a Service alone is fine.
    let o = volguard(
        &["check", "-f", "-"],
        Some("apiVersion: v1\nkind: Service\nmetadata: {name: s}\n"),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(!String::from_utf8_lossy(&o.stderr).contains("no Kubernetes objects"));
}

#[test]
fn a_failed_producer_fails_the_pipeline() {
    let bin = env!("CARGO_BIN_EXE_volguard");
    for shell in [
        format!("false | '{bin}' check -f -"),
        format!("set -o pipefail; false | '{bin}' check -f -"),
        format!("echo 'Error: chart not found' >&2 | '{bin}' check -f -"),
    ] {
        let o = Command::new("bash").args(["-c", &shell]).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{shell}");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(NO_OBJECTS),
            "{shell}"
        );
    }
}

/// Input errors are entries of the JSON array, `{file, line, error}`, after the objects.
#[test]
fn json_output_carries_input_errors() {
    let stream = format!("{SEED}---\nkind: Pod\nmetadata:\n  name: [unclosed\n");
    let o = volguard(&["check", "-f", "-", "-o", "json"], Some(&stream));
    assert_eq!(o.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let entries = v.as_array().unwrap();
    assert_eq!(entries.len(), 2, "{v}");
    assert_eq!(entries[0]["name"], "seed");
    assert_eq!(entries[1]["file"], "<stdin>");
    assert_eq!(entries[1]["line"], 20);
    assert!(
        entries[1]["error"]
            .as_str()
            .unwrap()
            .starts_with("malformed YAML"),
        "{v}"
    );
    assert!(entries[1].get("allowed").is_none());

    let o = volguard(&["check", "-f", "-", "-o", "json"], Some(""));
    assert_eq!(o.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v,
        serde_json::json!([{"file": null, "line": null, "error": NO_OBJECTS.trim_start_matches("error: ")}])
    );
}

#[test]
fn version_and_completions() {
    let o = volguard(&["--version"], None);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        stdout(&o),
        format!("volguard {}\n", env!("CARGO_PKG_VERSION"))
    );
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let o = volguard(&["completions", shell], None);
        assert_eq!(o.status.code(), Some(0), "{shell}");
        let script = stdout(&o);
        for sub in ["serve", "check", "certs", "allow-empty"] {
            assert!(script.contains(sub), "{shell} completion lacks {sub}");
        }
    }
    // The bash script is valid bash and registers the completion.
    let o = volguard(&["completions", "bash"], None);
    let check = Command::new("bash")
        .args(["-c", "source /dev/stdin && complete -p volguard"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(&o.stdout)?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(check.status.success());
    assert!(String::from_utf8_lossy(&check.stdout).contains("volguard"));
}

#[test]
fn certs_keeps_an_existing_ca_unless_forced_and_writes_the_key_0600() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let args = ["certs", "--out", out.to_str().unwrap()];
    let o = volguard(&args, None);
    assert_eq!(o.status.code(), Some(0));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("the serving certificate expires at "), "{err}");
    let mode = std::fs::metadata(out.join("tls.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let ca = std::fs::read_to_string(out.join("ca.crt")).unwrap();

    let o = volguard(&args, None);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("ca.crt: already exists"), "{err}");
    assert!(err.contains("--force"), "{err}");
    assert_eq!(std::fs::read_to_string(out.join("ca.crt")).unwrap(), ca);

    let mut forced = args.to_vec();
    forced.push("--force");
    let o = volguard(&forced, None);
    assert_eq!(o.status.code(), Some(0));
    assert_ne!(std::fs::read_to_string(out.join("ca.crt")).unwrap(), ca);
    let mode = std::fs::metadata(out.join("tls.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

/// A reader that goes away (`volguard rules | head -1`) ends the output quietly: no panic,
/// exit 0.
#[test]
fn output_to_a_closed_pipe_is_not_a_panic() {
    for args in [
        &["rules"][..],
        &["policy", "default"],
        &["policy", "schema"],
    ] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_volguard"))
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Close the read end before the child writes anything.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
    }
}

/// YAML nested as deep as go-yaml v2 reads it (its scanner's `max_flow_level`/`max_indents`,
/// 10,000) is judged; one level deeper is an input error with go-yaml's words. Neither may
/// crash the process (a 20,000-level document overflowed the main thread's stack before).
/// The Pod's mapping is the first level, `x:`'s indented sequences the others; go-yaml counts
/// the same (`yaml_parser_roll_indent`: one indent per block collection indented deeper).
#[test]
fn deeply_nested_yaml_is_read_to_go_yamls_limit_and_refused_past_it() {
    let doc = |levels: usize| format!("{SEED}x:\n  {}a\n", "- ".repeat(levels));
    let at_limit = volguard(&["check", "-f", "-"], Some(&doc(9_999)));
    assert_eq!(at_limit.status.code(), Some(1), "{}", stdout(&at_limit));
    assert!(stdout(&at_limit).starts_with("Pod/seed (<stdin>:1): denied\n"));
    for levels in [10_000, 200_000] {
        let past = volguard(&["check", "-f", "-"], Some(&doc(levels)));
        let text = format!("{}{}", stdout(&past), String::from_utf8_lossy(&past.stderr));
        assert_eq!(past.status.code(), Some(2), "{levels}: {text}");
        assert!(
            text.contains("<stdin>:17: malformed YAML: exceeded max depth of 10000"),
            "{levels}: {text}"
        );
    }
}
