//! The packaging files agree with the binary and with each other: every config
//! shipped is valid, and the Dockerfile, docker-compose.yml and the Kubernetes
//! example mount, publish, probe and run what the configs and the CLI say. No
//! Docker and no cluster: the files are read and the binary is run.
//!
//! The YAML files are read with a small reader for the block-style subset they
//! use (mappings, sequences, `[...]` flow sequences of scalars, `|` block
//! scalars), in [`yaml`] at the bottom.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use yaml::Node;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(relative: &str) -> String {
    let path = repo().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn strangler(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_strangler"))
        .args(args)
        .env_remove("STRANGLER_CONFIG")
        .stdin(Stdio::null())
        .output()
        .expect("run strangler")
}

/// `strangler check -c PATH` must exit 0.
fn assert_check_passes(path: &Path, what: &str) {
    let out = strangler(&["check", "-c", path.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "strangler check failed on {what} ({}):\n{}{}",
        path.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The arguments must be accepted by the CLI: each subcommand exists and each
/// flag and value before `--help` parses (clap checks them in order, then
/// prints help and exits 0).
fn assert_cli_accepts(args: &[String], what: &str) {
    assert!(!args.is_empty(), "{what}: no arguments");
    let mut with_help: Vec<&str> = args.iter().map(String::as_str).collect();
    with_help.push("--help");
    let out = strangler(&with_help);
    assert!(
        out.status.success(),
        "{what}: `strangler {}` is not accepted by the CLI:\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn toml_file(relative: &str) -> toml::Table {
    read(relative)
        .parse()
        .unwrap_or_else(|e| panic!("{relative} is not TOML: {e}"))
}

/// `server.<key>` of a config as an address, or the SPEC §2 default.
fn server_addr(config: &toml::Table, key: &str) -> std::net::SocketAddr {
    let default = match key {
        "listen" => "0.0.0.0:8080",
        "admin_listen" => "127.0.0.1:9901",
        _ => unreachable!(),
    };
    config
        .get("server")
        .and_then(|s| s.get(key))
        .and_then(|v| v.as_str())
        .unwrap_or(default)
        .parse()
        .unwrap_or_else(|e| panic!("server.{key} is not an address: {e}"))
}

/// A duration string of SPEC §2 (`"250ms"`, `"30s"`, `"1m"`).
fn duration(text: &str) -> Duration {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().unwrap_or_else(|_| panic!("duration {text}"));
    match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => panic!("duration {text}: unknown unit"),
    }
}

/// The args of a `["CMD", "strangler", ...]` or `["strangler", ...]` exec
/// form, without the binary's name.
fn strangler_args(exec: &[String], what: &str) -> Vec<String> {
    let exec = match exec.first().map(String::as_str) {
        Some("CMD") => &exec[1..],
        _ => exec,
    };
    assert_eq!(
        exec.first().map(String::as_str),
        Some("strangler"),
        "{what}: must run the strangler binary (exec form, no shell): {exec:?}"
    );
    exec[1..].to_vec()
}

/// The value following `flag` in `args`.
fn flag_value<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{addr:?} has no port"))
}

// === (1) every shipped config is valid ===

#[test]
fn every_config_file_passes_check() {
    let mut checked = 0;
    for entry in std::fs::read_dir(repo().join("config")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            assert_check_passes(&path, "a shipped config");
            checked += 1;
        }
    }
    // demo.toml, strangler.toml, compose.toml at least.
    assert!(checked >= 3, "only {checked} config files found");
}

#[test]
fn kubernetes_configmap_config_passes_check() {
    let text = configmap_toml();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("strangler.toml");
    std::fs::write(&path, text).unwrap();
    assert_check_passes(&path, "the TOML in deploy/kubernetes/configmap.yaml");
}

#[test]
fn configmap_block_scalar_is_extracted_whole() {
    // Guards the extraction itself, which needs no parser: a comment line and
    // a blank line inside the block are part of the TOML.
    let text = configmap_toml();
    assert!(text.starts_with("[server]\n"), "{text}");
    assert!(text.contains("\n\n[backends.new]\n"), "{text}");
    assert!(text.contains("\n# "), "{text}");
    let table: toml::Table = text.parse().expect("the ConfigMap holds valid TOML");
    assert!(table.contains_key("routes"));
}

/// The `strangler.toml` block scalar of the ConfigMap.
fn configmap_toml() -> String {
    let doc = yaml::parse(&read("deploy/kubernetes/configmap.yaml"));
    doc.get("data")
        .get("strangler.toml")
        .as_str()
        .expect("data.\"strangler.toml\" is a block scalar")
        .to_owned()
}

// === (2) docker-compose.yml ===

fn compose() -> Node {
    yaml::parse(&read("docker-compose.yml"))
}

#[test]
fn compose_config_file_is_in_the_mounted_directory() {
    let compose = compose();
    let proxy = compose.get("services").get("proxy");
    let config_path = proxy
        .get("environment")
        .get("STRANGLER_CONFIG")
        .as_str()
        .expect("proxy sets STRANGLER_CONFIG")
        .to_owned();
    let mounts: Vec<&str> = proxy
        .get("volumes")
        .items()
        .iter()
        .filter_map(Node::as_str)
        .collect();
    let (host_dir, container_dir, options) = mounts
        .iter()
        .map(|m| {
            let mut parts = m.split(':');
            (
                parts.next().unwrap_or(""),
                parts.next().unwrap_or(""),
                parts.next().unwrap_or(""),
            )
        })
        .find(|(_, container, _)| {
            config_path.starts_with(&format!("{}/", container.trim_end_matches('/')))
        })
        .unwrap_or_else(|| panic!("no volume of {mounts:?} holds {config_path}"));
    assert_eq!(host_dir, "./config", "mount the config directory");
    assert!(
        options.split(',').any(|o| o == "ro"),
        "mount the config read-only"
    );
    let relative = &config_path[container_dir.trim_end_matches('/').len() + 1..];
    let on_host = repo().join(host_dir).join(relative);
    assert!(on_host.is_file(), "{} does not exist", on_host.display());
    assert_eq!(on_host, repo().join("config/compose.toml"));
    assert_eq!(
        proxy.get("command").strings(),
        ["run"],
        "the proxy runs `strangler run`"
    );
}

#[test]
fn compose_publishes_the_ports_compose_toml_listens_on() {
    let compose = compose();
    let config = toml_file("config/compose.toml");
    let listen = server_addr(&config, "listen");
    let admin = server_addr(&config, "admin_listen");
    assert!(
        listen.ip().is_unspecified() && admin.ip().is_unspecified(),
        "inside a container, listen on 0.0.0.0 or the published ports reach nothing"
    );
    let ports: Vec<String> = compose.get("services").get("proxy").get("ports").strings();
    // "HOST_PORT:CONTAINER_PORT" or "HOST_IP:HOST_PORT:CONTAINER_PORT".
    let published: BTreeSet<u16> = ports
        .iter()
        .map(|p| port_of(p.trim_end_matches("/tcp")))
        .collect();
    assert_eq!(published, BTreeSet::from([listen.port(), admin.port()]));
    let admin_mapping = ports.iter().find(|p| port_of(p) == admin.port()).unwrap();
    assert!(
        admin_mapping.starts_with("127.0.0.1:"),
        "the admin API must be published on the host's loopback only: {admin_mapping}"
    );
    let proxy_mapping = ports.iter().find(|p| port_of(p) == listen.port()).unwrap();
    assert_eq!(proxy_mapping.split(':').count(), 2, "{proxy_mapping}");
}

#[test]
fn compose_backends_match_the_services_that_serve_them() {
    let compose = compose();
    let services = compose.get("services");
    let config = toml_file("config/compose.toml");
    let backends = config["backends"].as_table().expect("[backends]");
    let depends_on = services.get("proxy").get("depends_on");
    for (name, backend) in backends {
        let url: http::Uri = backend["url"].as_str().unwrap().parse().unwrap();
        let host = url.host().unwrap();
        let port = url.port_u16().unwrap_or(80);
        let service = services.get(host);
        assert!(
            !service.is_missing(),
            "backend {name}: no compose service {host}"
        );
        let command = service.get("command").strings();
        assert_eq!(command.first().map(String::as_str), Some("echo"));
        let listen = flag_value(&command, "--listen").expect("echo --listen");
        assert_eq!(
            port_of(listen),
            port,
            "backend {name}: {url} but the service listens on {listen}"
        );
        assert!(
            listen.starts_with("0.0.0.0:"),
            "{host} must listen on 0.0.0.0"
        );
        let test = strangler_args(
            &service.get("healthcheck").get("test").strings(),
            "healthcheck",
        );
        assert_eq!(test[0], "health");
        assert_eq!(
            flag_value(&test, "--admin").map(port_of),
            Some(port),
            "{host}'s healthcheck asks another port"
        );
        assert_eq!(
            depends_on.get(host).get("condition").as_str(),
            Some("service_healthy"),
            "the proxy waits for {host} to be healthy"
        );
    }
}

#[test]
fn compose_commands_are_accepted_by_the_cli() {
    let compose = compose();
    let services = compose.get("services");
    let mut subcommands = BTreeSet::new();
    for (name, service) in services.entries() {
        let command = service.get("command").strings();
        assert_cli_accepts(&command, &format!("compose service {name}"));
        subcommands.insert(command[0].clone());
        let test = service.get("healthcheck").get("test");
        if !test.is_missing() {
            let args = strangler_args(&test.strings(), &format!("{name} healthcheck"));
            assert_cli_accepts(&args, &format!("compose service {name} healthcheck"));
            subcommands.insert(args[0].clone());
        }
    }
    assert_eq!(
        subcommands,
        BTreeSet::from(["echo".into(), "health".into(), "run".into()])
    );
}

// === (2) Dockerfile ===

/// The Dockerfile's instructions as (KEYWORD, arguments), continuations joined.
fn dockerfile() -> Vec<(String, String)> {
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in read("Dockerfile").lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        if trimmed.starts_with('#') {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                let (keyword, args) = current.split_once(' ').unwrap_or((&current, ""));
                instructions.push((keyword.to_ascii_uppercase(), args.trim().to_owned()));
                current.clear();
            }
        }
    }
    instructions
}

/// The instructions of the last stage (the image that ships).
fn runtime_stage() -> Vec<(String, String)> {
    let all = dockerfile();
    let start = all.iter().rposition(|(k, _)| k == "FROM").expect("FROM");
    all[start..].to_vec()
}

fn exec_form(args: &str, what: &str) -> Vec<String> {
    let args = args.trim();
    assert!(args.starts_with('['), "{what}: use the exec form: {args}");
    yaml::flow_sequence(args)
}

#[test]
fn dockerfile_exposes_the_default_ports() {
    let stage = runtime_stage();
    let exposed: BTreeSet<u16> = stage
        .iter()
        .filter(|(k, _)| k == "EXPOSE")
        .flat_map(|(_, a)| a.split_whitespace().map(|p| port_of(&format!(":{p}"))))
        .collect();
    assert_eq!(exposed, BTreeSet::from([8080, 9901]), "SPEC §2 defaults");
    let config = toml_file("config/strangler.toml");
    assert_eq!(
        exposed,
        BTreeSet::from([
            server_addr(&config, "listen").port(),
            server_addr(&config, "admin_listen").port()
        ]),
        "the image's default config listens elsewhere"
    );
}

#[test]
fn dockerfile_config_path_is_where_it_copies_the_config() {
    let stage = runtime_stage();
    let config_path = stage
        .iter()
        .filter(|(k, _)| k == "ENV")
        .find_map(|(_, a)| a.strip_prefix("STRANGLER_CONFIG="))
        .expect("ENV STRANGLER_CONFIG=...")
        .trim_matches('"')
        .to_owned();
    let copied = stage
        .iter()
        .filter(|(k, _)| k == "COPY")
        .find_map(|(_, a)| {
            let parts: Vec<&str> = a.split_whitespace().collect();
            let (dest, sources) = parts.split_last()?;
            (*dest == config_path
                || (dest.ends_with('/')
                    && sources.len() == 1
                    && config_path == format!("{dest}{}", sources[0].rsplit('/').next()?)))
            .then(|| sources.to_vec())
        });
    let sources = copied.unwrap_or_else(|| panic!("nothing is copied to {config_path}"));
    assert_eq!(sources.len(), 1, "{sources:?}");
    assert!(
        !sources[0].starts_with("--from"),
        "copy it from the context"
    );
    assert!(
        repo().join(sources[0]).is_file(),
        "{} is not in the repository",
        sources[0]
    );
}

#[test]
fn dockerfile_commands_are_accepted_by_the_cli() {
    let stage = runtime_stage();
    let find = |keyword: &str| {
        stage
            .iter()
            .rev()
            .find(|(k, _)| k == keyword)
            .map(|(_, a)| a.clone())
            .unwrap_or_else(|| panic!("no {keyword}"))
    };
    assert_eq!(exec_form(&find("ENTRYPOINT"), "ENTRYPOINT"), ["strangler"]);
    let cmd = exec_form(&find("CMD"), "CMD");
    assert_eq!(cmd, ["run"]);
    assert_cli_accepts(&cmd, "Dockerfile CMD");

    let healthcheck = find("HEALTHCHECK");
    let exec = healthcheck
        .split_once("CMD ")
        .map(|(_, e)| e)
        .expect("HEALTHCHECK ... CMD [...]");
    let args = strangler_args(&exec_form(exec, "HEALTHCHECK"), "HEALTHCHECK");
    assert_eq!(args[0], "health");
    assert_cli_accepts(&args, "Dockerfile HEALTHCHECK");
    let admin = server_addr(&toml_file("config/strangler.toml"), "admin_listen");
    assert_eq!(
        flag_value(&args, "--admin"),
        Some(format!("127.0.0.1:{}", admin.port()).as_str()),
        "the health check must ask the image's admin port on loopback"
    );
}

#[test]
fn dockerfile_runs_as_non_root_and_builds_with_config() {
    let stage = runtime_stage();
    let user = stage
        .iter()
        .rev()
        .find(|(k, _)| k == "USER")
        .map(|(_, a)| a.clone())
        .expect("USER in the runtime stage");
    let uid = user.split(':').next().unwrap();
    assert!(
        uid.parse::<u32>().is_ok_and(|uid| uid != 0),
        "USER must be a numeric non-root uid (runAsNonRoot checks it): {user}"
    );

    // src/demo.rs embeds config/demo.toml: config/ must be in the build
    // context and copied before the last (real) cargo build.
    let all = dockerfile();
    let last_build = all
        .iter()
        .rposition(|(k, a)| k == "RUN" && a.contains("cargo build --release --locked"))
        .expect("cargo build --release --locked");
    assert!(
        all[..last_build]
            .iter()
            .any(|(k, a)| k == "COPY" && (a.starts_with(". ") || a.starts_with("config "))),
        "config/ is not copied before the real build"
    );
    let ignored = read(".dockerignore");
    for needed in ["src", "config", "Cargo.toml", "Cargo.lock"] {
        assert!(
            !ignored
                .lines()
                .any(|l| l.trim().trim_end_matches('/') == needed),
            ".dockerignore keeps {needed} out of the build"
        );
    }
    for unwanted in ["target", ".git"] {
        assert!(
            ignored
                .lines()
                .any(|l| l.trim().trim_end_matches('/') == unwanted),
            ".dockerignore must keep {unwanted} out"
        );
    }
}

// === (2) Kubernetes ===

fn k8s(file: &str) -> Node {
    yaml::parse(&read(&format!("deploy/kubernetes/{file}")))
}

fn container() -> Node {
    let deployment = k8s("deployment.yaml");
    let containers = deployment
        .get("spec")
        .get("template")
        .get("spec")
        .get("containers");
    assert_eq!(containers.items().len(), 1);
    containers.items()[0].clone()
}

#[test]
fn kubernetes_probes_use_the_configmap_admin_port() {
    let config: toml::Table = configmap_toml().parse().unwrap();
    let admin = server_addr(&config, "admin_listen");
    assert!(
        admin.ip().is_unspecified(),
        "admin_listen must be 0.0.0.0 for the kubelet's probes to reach it"
    );
    let listen = server_addr(&config, "listen");
    let container = container();
    let named_port = |port: &Node| -> u16 {
        let text = port.as_str().expect("probe port");
        text.parse().unwrap_or_else(|_| {
            let named = container
                .get("ports")
                .items()
                .iter()
                .find(|p| p.get("name").as_str() == Some(text))
                .unwrap_or_else(|| panic!("no container port named {text}"))
                .get("containerPort")
                .as_str()
                .unwrap()
                .to_owned();
            named.parse().unwrap()
        })
    };
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let get = container.get(probe).get("httpGet");
        assert_eq!(get.get("path").as_str(), Some(path), "{probe}");
        assert_eq!(named_port(get.get("port")), admin.port(), "{probe} port");
    }
    let container_ports: BTreeSet<u16> = container
        .get("ports")
        .items()
        .iter()
        .map(|p| p.get("containerPort").as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(
        container_ports,
        BTreeSet::from([listen.port(), admin.port()])
    );
    let service = k8s("service.yaml");
    for port in service.get("spec").get("ports").items() {
        assert_eq!(
            named_port(port.get("targetPort")),
            listen.port(),
            "the Service must send traffic to server.listen"
        );
    }
}

#[test]
fn kubernetes_mounts_the_configmap_as_a_directory() {
    let text = read("deploy/kubernetes/deployment.yaml");
    assert!(
        !text
            .lines()
            .any(|l| l.trim_start().starts_with("subPath") && !l.trim_start().starts_with('#')),
        "a subPath mount never receives ConfigMap updates"
    );
    let deployment = k8s("deployment.yaml");
    let pod = deployment.get("spec").get("template").get("spec");
    let container = container();
    let configmap = k8s("configmap.yaml");
    let configmap_name = configmap.get("metadata").get("name").as_str().unwrap();
    let volume = pod
        .get("volumes")
        .items()
        .iter()
        .find(|v| v.get("configMap").get("name").as_str() == Some(configmap_name))
        .cloned()
        .expect("a volume from the ConfigMap");
    let volume_name = volume.get("name").as_str().unwrap();
    let mount = container
        .get("volumeMounts")
        .items()
        .iter()
        .find(|m| m.get("name").as_str() == Some(volume_name))
        .cloned()
        .expect("the ConfigMap volume is mounted");
    assert!(mount.get("subPath").is_missing());
    let mount_path = mount.get("mountPath").as_str().unwrap();
    // The env var set, else the image's default.
    let config_path = container
        .get("env")
        .items()
        .iter()
        .find(|e| e.get("name").as_str() == Some("STRANGLER_CONFIG"))
        .and_then(|e| e.get("value").as_str().map(str::to_owned))
        .unwrap_or_else(|| "/etc/strangler/strangler.toml".into());
    assert_eq!(config_path, format!("{mount_path}/strangler.toml"));
    assert!(
        !configmap.get("data").get("strangler.toml").is_missing(),
        "the ConfigMap's key must be the file name STRANGLER_CONFIG names"
    );
    assert_cli_accepts(&container.get("args").strings(), "the container's args");
}

#[test]
fn kubernetes_pod_is_locked_down_and_drains() {
    let deployment = k8s("deployment.yaml");
    let spec = deployment.get("spec");
    assert_eq!(spec.get("replicas").as_str(), Some("3"));
    let pod = spec.get("template").get("spec");
    assert_eq!(
        pod.get("securityContext").get("runAsNonRoot").as_str(),
        Some("true")
    );
    let container = container();
    let security = container.get("securityContext");
    assert_eq!(
        security.get("readOnlyRootFilesystem").as_str(),
        Some("true")
    );
    assert_eq!(
        security.get("allowPrivilegeEscalation").as_str(),
        Some("false")
    );
    for kind in ["requests", "limits"] {
        assert!(
            !container.get("resources").get(kind).is_missing(),
            "resources.{kind}"
        );
    }
    let config: toml::Table = configmap_toml().parse().unwrap();
    let shutdown = config
        .get("server")
        .and_then(|s| s.get("shutdown_timeout"))
        .and_then(|v| v.as_str())
        .map_or(Duration::from_secs(30), duration);
    let grace: u64 = pod
        .get("terminationGracePeriodSeconds")
        .as_str()
        .expect("terminationGracePeriodSeconds")
        .parse()
        .unwrap();
    assert!(
        Duration::from_secs(grace) > shutdown,
        "terminationGracePeriodSeconds ({grace}s) must exceed shutdown_timeout ({shutdown:?})"
    );
}

#[test]
fn kubernetes_pdb_and_kustomization() {
    let deployment = k8s("deployment.yaml");
    let labels = deployment
        .get("spec")
        .get("template")
        .get("metadata")
        .get("labels");
    let pdb = k8s("pdb.yaml");
    let replicas: u32 = deployment
        .get("spec")
        .get("replicas")
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let min_available: u32 = pdb
        .get("spec")
        .get("minAvailable")
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(min_available, 2);
    assert!(min_available < replicas, "a PDB this strict blocks drains");
    for selector in [
        pdb.get("spec").get("selector").get("matchLabels"),
        deployment.get("spec").get("selector").get("matchLabels"),
        k8s("service.yaml").get("spec").get("selector"),
    ] {
        for (key, value) in selector.entries() {
            assert_eq!(labels.get(key).as_str(), value.as_str(), "selector {key}");
        }
        assert!(!selector.entries().is_empty());
    }

    let listed: BTreeSet<String> = k8s("kustomization.yaml")
        .get("resources")
        .strings()
        .into_iter()
        .collect();
    let present: BTreeSet<String> = std::fs::read_dir(repo().join("deploy/kubernetes"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml")
        .collect();
    assert_eq!(listed, present, "kustomization.yaml lists every manifest");
}

// === README and CI agree ===

#[test]
fn readme_quick_start_test_command_is_what_ci_runs() {
    let readme = read("README.md");
    let quick_start = readme
        .split("## Quick start")
        .nth(1)
        .and_then(|rest| rest.split("```sh\n").nth(1))
        .and_then(|block| block.split("```").next())
        .expect("a ```sh block under ## Quick start");
    let commands: Vec<&str> = quick_start
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(
        commands.len(),
        2,
        "the Quick start has exactly two commands"
    );
    assert_eq!(commands[0], "cargo run --release -- demo");
    let ci = read(".ci/run");
    let ci_test = ci
        .lines()
        .rfind(|l| l.trim_start().starts_with("cargo test"))
        .expect(".ci/run runs cargo test")
        .trim();
    assert_eq!(
        commands[1], ci_test,
        "README and .ci/run must run the same tests"
    );
}

// === the YAML reader's own tests ===

#[test]
fn yaml_reader_handles_the_subset() {
    let doc = yaml::parse(
        "# comment\n\
         a: 1\n\
         b:\n  c: \"x # not a comment\"  # a comment\n  d: 'y'\n\
         list:\n  - one\n  - k: v\n    k2: v2\n\
         same_indent:\n- p\n- q\n\
         flow: [\"a\", b, \"c, d\"]\n\
         block: |\n  line 1\n\n    indented\n  # kept\nafter: z\n",
    );
    assert_eq!(doc.get("a").as_str(), Some("1"));
    assert_eq!(doc.get("b").get("c").as_str(), Some("x # not a comment"));
    assert_eq!(doc.get("b").get("d").as_str(), Some("y"));
    assert_eq!(doc.get("list").items()[0].as_str(), Some("one"));
    assert_eq!(doc.get("list").items()[1].get("k2").as_str(), Some("v2"));
    assert_eq!(doc.get("same_indent").strings(), ["p", "q"]);
    assert_eq!(doc.get("flow").strings(), ["a", "b", "c, d"]);
    assert_eq!(
        doc.get("block").as_str(),
        Some("line 1\n\n  indented\n# kept\n")
    );
    assert_eq!(doc.get("after").as_str(), Some("z"));
    assert!(doc.get("nope").get("deeper").is_missing());
}

/// A reader for the block-style YAML subset the packaging files use.
mod yaml {
    /// A YAML node. Scalars stay strings: the tests compare text.
    #[derive(Debug, Clone, PartialEq)]
    pub enum Node {
        Scalar(String),
        Seq(Vec<Node>),
        Map(Vec<(String, Node)>),
        /// What [`Node::get`] answers for an absent key.
        Missing,
    }

    static MISSING: Node = Node::Missing;

    impl Node {
        pub fn get(&self, key: &str) -> &Node {
            match self {
                Node::Map(entries) => entries
                    .iter()
                    .find(|(k, _)| k == key)
                    .map_or(&MISSING, |(_, v)| v),
                _ => &MISSING,
            }
        }

        pub fn is_missing(&self) -> bool {
            *self == Node::Missing
        }

        pub fn as_str(&self) -> Option<&str> {
            match self {
                Node::Scalar(s) => Some(s),
                _ => None,
            }
        }

        pub fn items(&self) -> &[Node] {
            match self {
                Node::Seq(items) => items,
                _ => &[],
            }
        }

        pub fn entries(&self) -> &[(String, Node)] {
            match self {
                Node::Map(entries) => entries,
                _ => &[],
            }
        }

        /// A sequence of scalars as strings.
        pub fn strings(&self) -> Vec<String> {
            self.items()
                .iter()
                .map(|n| n.as_str().expect("a scalar item").to_owned())
                .collect()
        }
    }

    struct Reader {
        /// Raw lines; a `- key: value` line is rewritten in place as `key: value`
        /// at the column of `key`, so the item reads as a mapping.
        lines: Vec<String>,
        at: usize,
    }

    pub fn parse(text: &str) -> Node {
        let mut reader = Reader {
            lines: text.lines().map(str::to_owned).collect(),
            at: 0,
        };
        reader.skip_insignificant();
        if reader.at >= reader.lines.len() {
            return Node::Missing;
        }
        let indent = reader.indent();
        let node = reader.block(indent);
        reader.skip_insignificant();
        assert!(
            reader.at >= reader.lines.len(),
            "unexpected line {}: {:?}",
            reader.at + 1,
            reader.lines[reader.at]
        );
        node
    }

    impl Reader {
        fn skip_insignificant(&mut self) {
            while self.at < self.lines.len() {
                let t = self.lines[self.at].trim();
                if t.is_empty() || t.starts_with('#') || t == "---" {
                    self.at += 1;
                } else {
                    break;
                }
            }
        }

        fn indent(&self) -> usize {
            let line = &self.lines[self.at];
            line.len() - line.trim_start_matches(' ').len()
        }

        fn content(&self) -> &str {
            self.lines[self.at].trim()
        }

        /// The significant line's indent, if there is one.
        fn peek(&mut self) -> Option<usize> {
            self.skip_insignificant();
            (self.at < self.lines.len()).then(|| self.indent())
        }

        fn is_item(&self) -> bool {
            let c = self.content();
            c == "-" || c.starts_with("- ")
        }

        fn block(&mut self, indent: usize) -> Node {
            if self.is_item() {
                self.sequence(indent)
            } else {
                self.mapping(indent)
            }
        }

        fn sequence(&mut self, indent: usize) -> Node {
            let mut items = Vec::new();
            while self.peek() == Some(indent) && self.is_item() {
                let rest = self.content()[1..].trim_start().to_owned();
                if rest.is_empty() {
                    self.at += 1;
                    match self.peek() {
                        Some(inner) if inner > indent => items.push(self.block(inner)),
                        _ => items.push(Node::Scalar(String::new())),
                    }
                } else if split_key(&rest).is_some() {
                    // The column of `key` in `- key: value`.
                    let after_dash = &self.content()[1..];
                    let column = indent + 1 + after_dash.len() - after_dash.trim_start().len();
                    self.lines[self.at] = format!("{}{rest}", " ".repeat(column));
                    items.push(self.mapping(column));
                } else {
                    self.at += 1;
                    items.push(scalar(&rest));
                }
            }
            Node::Seq(items)
        }

        fn mapping(&mut self, indent: usize) -> Node {
            let mut entries = Vec::new();
            while self.peek() == Some(indent) && !self.is_item() {
                let content = self.content().to_owned();
                let (key, rest) = split_key(&content)
                    .unwrap_or_else(|| panic!("line {}: expected `key:`", self.at + 1));
                self.at += 1;
                let value = if rest.starts_with('|') || rest.starts_with('>') {
                    self.block_scalar(indent)
                } else if rest.is_empty() {
                    match self.peek() {
                        Some(inner) if inner > indent => self.block(inner),
                        // A sequence may sit at its key's indent.
                        Some(inner) if inner == indent && self.is_item() => self.sequence(indent),
                        _ => Node::Scalar(String::new()),
                    }
                } else {
                    scalar(&rest)
                };
                entries.push((key, value));
            }
            Node::Map(entries)
        }

        /// The lines after a `key: |` indented more than the key, with the
        /// first one's indentation removed; blank and `#` lines are content.
        fn block_scalar(&mut self, key_indent: usize) -> Node {
            let mut body: Vec<&str> = Vec::new();
            let mut block_indent = None;
            while self.at < self.lines.len() {
                let line = &self.lines[self.at];
                let trimmed = line.trim_start_matches(' ');
                let indent = line.len() - trimmed.len();
                if trimmed.is_empty() {
                    body.push("");
                } else if indent > key_indent {
                    let block = *block_indent.get_or_insert(indent);
                    assert!(indent >= block, "line {}: under-indented", self.at + 1);
                    body.push(&line[block..]);
                } else {
                    break;
                }
                self.at += 1;
            }
            while body.last() == Some(&"") {
                body.pop();
            }
            let mut text = body.join("\n");
            text.push('\n');
            Node::Scalar(text)
        }
    }

    /// `key: rest` or `key:`; `None` when the line is not a mapping entry.
    fn split_key(content: &str) -> Option<(String, String)> {
        let (key, rest) = if let Some(quote @ ('"' | '\'')) = content.chars().next() {
            let end = content[1..].find(quote)? + 1;
            let rest = content[end + 1..].strip_prefix(':')?;
            (content[1..end].to_owned(), rest)
        } else {
            let colon = content
                .match_indices(':')
                .map(|(i, _)| i)
                .find(|&i| content[i + 1..].is_empty() || content[i + 1..].starts_with(' '))?;
            if content[..colon].contains(['[', '{', '"', '\'']) {
                return None;
            }
            (content[..colon].trim().to_owned(), &content[colon + 1..])
        };
        if !rest.is_empty() && !rest.starts_with(' ') {
            return None;
        }
        Some((key, strip_comment(rest).trim().to_owned()))
    }

    /// Removes a ` # comment` that is outside quotes.
    fn strip_comment(text: &str) -> &str {
        let mut quote = None;
        let mut previous = ' ';
        for (i, c) in text.char_indices() {
            match (quote, c) {
                (None, '"' | '\'') => quote = Some(c),
                (Some(q), c) if c == q => quote = None,
                (None, '#') if previous == ' ' => return &text[..i],
                _ => {}
            }
            previous = c;
        }
        text
    }

    fn scalar(text: &str) -> Node {
        let text = strip_comment(text).trim();
        if text.starts_with('[') {
            return Node::Seq(flow_sequence(text).into_iter().map(Node::Scalar).collect());
        }
        Node::Scalar(unquote(text))
    }

    fn unquote(text: &str) -> String {
        let text = text.trim();
        for quote in ['"', '\''] {
            if text.len() >= 2 && text.starts_with(quote) && text.ends_with(quote) {
                return text[1..text.len() - 1].to_owned();
            }
        }
        text.to_owned()
    }

    /// `["a", b, "c, d"]` → `a`, `b`, `c, d` (also a JSON array of strings,
    /// such as a Dockerfile's exec form).
    pub fn flow_sequence(text: &str) -> Vec<String> {
        let inner = text
            .trim()
            .strip_prefix('[')
            .and_then(|t| t.strip_suffix(']'))
            .unwrap_or_else(|| panic!("not a flow sequence: {text}"));
        let mut items = Vec::new();
        let mut current = String::new();
        let mut quote = None;
        for c in inner.chars() {
            match (quote, c) {
                (None, '"' | '\'') => {
                    quote = Some(c);
                    current.push(c);
                }
                (Some(q), c) if c == q => {
                    quote = None;
                    current.push(c);
                }
                (None, ',') => items.push(unquote(&std::mem::take(&mut current))),
                _ => current.push(c),
            }
        }
        if !current.trim().is_empty() {
            items.push(unquote(&current));
        }
        items
    }
}
