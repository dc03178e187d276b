//! The packaging files agree with the binary and with each other: every config
//! shipped is valid, and the Dockerfile, docker-compose.yml and the Kubernetes
//! example mount, publish, probe and run what the configs and the CLI say. No
//! Docker and no cluster: the files are read and the binary is run.
//!
//! The YAML files are read with `yaml-rust2`: a missing key indexes to
//! `BadValue`, so a path of keys reads without unwrapping at each step.
#![allow(clippy::unwrap_used)] // a panic is how a test or bench reports failure

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use yaml_rust2::{Yaml, YamlLoader};

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
        // The Kubernetes manifests take the admin token from a Secret, set
        // where the proxy runs; without it `check` warns.
        .env("STRANGLER_ADMIN_TOKEN", "from-the-secret")
        .stdin(Stdio::null())
        .output()
        .expect("run strangler")
}

/// `strangler check --strict -c PATH` must exit 0: a shipped example has no
/// warning either.
fn assert_check_passes(path: &Path, what: &str) {
    let out = strangler(&["check", "--strict", "-c", path.to_str().unwrap()]);
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

/// The one document of a YAML file.
fn yaml_file(relative: &str) -> Yaml {
    let mut documents = YamlLoader::load_from_str(&read(relative))
        .unwrap_or_else(|e| panic!("{relative} is not YAML: {e}"));
    assert_eq!(documents.len(), 1, "{relative}: one YAML document");
    documents.remove(0)
}

/// The items of a sequence; none for anything else.
fn items(node: &Yaml) -> &[Yaml] {
    node.as_vec().map_or(&[], Vec::as_slice)
}

/// The entries of a mapping whose keys are strings; none for anything else.
fn entries(node: &Yaml) -> Vec<(&str, &Yaml)> {
    node.as_hash()
        .into_iter()
        .flat_map(|hash| hash.iter())
        .map(|(key, value)| (key.as_str().expect("a string key"), value))
        .collect()
}

/// A sequence of strings.
fn strings(node: &Yaml) -> Vec<String> {
    items(node)
        .iter()
        .map(|n| n.as_str().expect("a string item").to_owned())
        .collect()
}

/// A non-negative integer that fits `T`.
fn number<T: TryFrom<i64>>(node: &Yaml, what: &str) -> T {
    node.as_i64()
        .and_then(|n| T::try_from(n).ok())
        .unwrap_or_else(|| panic!("{what} is not a number in range: {node:?}"))
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
    let doc = yaml_file("deploy/kubernetes/configmap.yaml");
    doc["data"]["strangler.toml"]
        .as_str()
        .expect("data.\"strangler.toml\" is a block scalar")
        .to_owned()
}

// === (2) docker-compose.yml ===

fn compose() -> Yaml {
    yaml_file("docker-compose.yml")
}

#[test]
fn compose_config_file_is_in_the_mounted_directory() {
    let compose = compose();
    let proxy = &compose["services"]["proxy"];
    let config_path = proxy["environment"]["STRANGLER_CONFIG"]
        .as_str()
        .expect("proxy sets STRANGLER_CONFIG")
        .to_owned();
    let mounts: Vec<&str> = items(&proxy["volumes"])
        .iter()
        .filter_map(Yaml::as_str)
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
        strings(&proxy["command"]),
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
    let ports: Vec<String> = strings(&compose["services"]["proxy"]["ports"]);
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
    let services = &compose["services"];
    let config = toml_file("config/compose.toml");
    let backends = config["backends"].as_table().expect("[backends]");
    let depends_on = &services["proxy"]["depends_on"];
    for (name, backend) in backends {
        let url: http::Uri = backend["url"].as_str().unwrap().parse().unwrap();
        let host = url.host().unwrap();
        let port = url.port_u16().unwrap_or(80);
        let service = &services[host];
        assert!(
            !service.is_badvalue(),
            "backend {name}: no compose service {host}"
        );
        let command = strings(&service["command"]);
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
        let test = strangler_args(&strings(&service["healthcheck"]["test"]), "healthcheck");
        assert_eq!(test[0], "health");
        assert_eq!(
            flag_value(&test, "--admin").map(port_of),
            Some(port),
            "{host}'s healthcheck asks another port"
        );
        assert_eq!(
            depends_on[host]["condition"].as_str(),
            Some("service_healthy"),
            "the proxy waits for {host} to be healthy"
        );
    }
}

#[test]
fn compose_commands_are_accepted_by_the_cli() {
    let compose = compose();
    let services = &compose["services"];
    let mut subcommands = BTreeSet::new();
    for (name, service) in entries(services) {
        if is_redis(service) {
            continue;
        }
        let command = strings(&service["command"]);
        assert_cli_accepts(&command, &format!("compose service {name}"));
        subcommands.insert(command[0].clone());
        let test = &service["healthcheck"]["test"];
        if !test.is_badvalue() {
            let args = strangler_args(&strings(test), &format!("{name} healthcheck"));
            assert_cli_accepts(&args, &format!("compose service {name} healthcheck"));
            subcommands.insert(args[0].clone());
        }
    }
    assert_eq!(
        subcommands,
        BTreeSet::from(["echo".into(), "health".into(), "run".into()])
    );
}

/// The fleet's Redis, not one of ours.
fn is_redis(service: &Yaml) -> bool {
    service["image"]
        .as_str()
        .is_some_and(|image| image.starts_with("redis:"))
}

/// SPEC §3.10 on a laptop: two proxies on one config whose `[control]`
/// names the compose file's Redis, each waiting for it, each on its own
/// host ports (the admin APIs on the host's loopback only).
#[test]
fn compose_runs_a_fleet_of_two_proxies_sharing_redis() {
    let compose = compose();
    let services = &compose["services"];
    let config = toml_file("config/compose.toml");
    let url: http::Uri = config["control"]["redis"]
        .as_str()
        .expect("compose.toml has [control] redis")
        .parse()
        .unwrap();
    assert_eq!(url.scheme_str(), Some("redis"));
    let redis_host = url.host().unwrap();
    let redis = &services[redis_host];
    assert!(
        is_redis(redis),
        "no compose service {redis_host} running Redis"
    );
    let server = strings(&redis["command"]);
    assert_eq!(server[0], "redis-server");
    assert!(
        server.windows(2).any(|w| w == ["--appendonly", "no"]),
        "{server:?}"
    );
    let proxies: Vec<(&str, &Yaml)> = entries(services)
        .into_iter()
        .filter(|(_, s)| strings(&s["command"]) == ["run"])
        .collect();
    assert_eq!(proxies.len(), 2, "two proxy replicas");
    let mut host_ports = BTreeSet::new();
    for (name, proxy) in &proxies {
        assert_eq!(
            proxy["environment"]["STRANGLER_CONFIG"].as_str(),
            Some("/etc/strangler/compose.toml"),
            "{name} reads the shared config"
        );
        assert_eq!(
            strings(&proxy["volumes"]),
            ["./config:/etc/strangler:ro"],
            "{name}"
        );
        assert_eq!(
            proxy["depends_on"][redis_host]["condition"].as_str(),
            Some("service_healthy"),
            "{name} waits for Redis"
        );
        for port in strings(&proxy["ports"]) {
            let host_port = port.rsplit(':').nth(1).unwrap().to_owned();
            if port_of(&port) == 9901 {
                assert!(port.starts_with("127.0.0.1:"), "{name}: {port}");
            }
            assert!(
                host_ports.insert(host_port),
                "{name} reuses a host port: {port}"
            );
        }
    }
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
    // The exec form is a JSON array of strings.
    serde_json::from_str(args).unwrap_or_else(|e| panic!("{what}: not a JSON array: {e}"))
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

fn k8s(file: &str) -> Yaml {
    yaml_file(&format!("deploy/kubernetes/{file}"))
}

fn container() -> Yaml {
    let deployment = k8s("deployment.yaml");
    let containers = &deployment["spec"]["template"]["spec"]["containers"];
    assert_eq!(items(containers).len(), 1);
    items(containers)[0].clone()
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
    // A port number, or the name of one of the container's ports.
    let named_port = |port: &Yaml| -> u16 {
        let port = match port.as_str() {
            Some(name) => &items(&container["ports"])
                .iter()
                .find(|p| p["name"].as_str() == Some(name))
                .unwrap_or_else(|| panic!("no container port named {name}"))["containerPort"],
            None => port,
        };
        number(port, "port")
    };
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["path"].as_str(), Some(path), "{probe}");
        assert_eq!(named_port(&get["port"]), admin.port(), "{probe} port");
    }
    let container_ports: BTreeSet<u16> = items(&container["ports"])
        .iter()
        .map(|p| number(&p["containerPort"], "containerPort"))
        .collect();
    assert_eq!(
        container_ports,
        BTreeSet::from([listen.port(), admin.port()])
    );
    let service = k8s("service.yaml");
    for port in items(&service["spec"]["ports"]) {
        assert_eq!(
            named_port(&port["targetPort"]),
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
    let pod = &deployment["spec"]["template"]["spec"];
    let container = container();
    let configmap = k8s("configmap.yaml");
    let configmap_name = configmap["metadata"]["name"].as_str().unwrap();
    let volume = items(&pod["volumes"])
        .iter()
        .find(|v| v["configMap"]["name"].as_str() == Some(configmap_name))
        .cloned()
        .expect("a volume from the ConfigMap");
    let volume_name = volume["name"].as_str().unwrap();
    let mount = items(&container["volumeMounts"])
        .iter()
        .find(|m| m["name"].as_str() == Some(volume_name))
        .cloned()
        .expect("the ConfigMap volume is mounted");
    assert!(mount["subPath"].is_badvalue());
    let mount_path = mount["mountPath"].as_str().unwrap();
    // The env var set, else the image's default.
    let config_path = items(&container["env"])
        .iter()
        .find(|e| e["name"].as_str() == Some("STRANGLER_CONFIG"))
        .and_then(|e| e["value"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "/etc/strangler/strangler.toml".into());
    assert_eq!(config_path, format!("{mount_path}/strangler.toml"));
    assert!(
        !configmap["data"]["strangler.toml"].is_badvalue(),
        "the ConfigMap's key must be the file name STRANGLER_CONFIG names"
    );
    assert_cli_accepts(&strings(&container["args"]), "the container's args");
}

#[test]
fn kubernetes_pod_is_locked_down_and_drains() {
    let deployment = k8s("deployment.yaml");
    let spec = &deployment["spec"];
    assert_eq!(spec["replicas"].as_i64(), Some(3));
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
    let container = container();
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert_eq!(security["allowPrivilegeEscalation"].as_bool(), Some(false));
    for kind in ["requests", "limits"] {
        assert!(
            !container["resources"][kind].is_badvalue(),
            "resources.{kind}"
        );
    }
    let config: toml::Table = configmap_toml().parse().unwrap();
    let shutdown = config
        .get("server")
        .and_then(|s| s.get("shutdown_timeout"))
        .and_then(|v| v.as_str())
        .map_or(Duration::from_secs(30), duration);
    let grace: u64 = number(
        &pod["terminationGracePeriodSeconds"],
        "terminationGracePeriodSeconds",
    );
    assert!(
        Duration::from_secs(grace) > shutdown,
        "terminationGracePeriodSeconds ({grace}s) must exceed shutdown_timeout ({shutdown:?})"
    );
}

#[test]
fn kubernetes_pdb_and_kustomization() {
    let deployment = k8s("deployment.yaml");
    let labels = &deployment["spec"]["template"]["metadata"]["labels"];
    let pdb = k8s("pdb.yaml");
    let replicas: u32 = number(&deployment["spec"]["replicas"], "replicas");
    let min_available: u32 = number(&pdb["spec"]["minAvailable"], "minAvailable");
    assert_eq!(min_available, 2);
    assert!(min_available < replicas, "a PDB this strict blocks drains");
    let service = k8s("service.yaml");
    for selector in [
        &pdb["spec"]["selector"]["matchLabels"],
        &deployment["spec"]["selector"]["matchLabels"],
        &service["spec"]["selector"],
    ] {
        for (key, value) in entries(selector) {
            assert_eq!(labels[key].as_str(), value.as_str(), "selector {key}");
        }
        assert!(!entries(selector).is_empty());
    }

    let listed: BTreeSet<String> = strings(&k8s("kustomization.yaml")["resources"])
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

// === (v2) shipping fixes ===

/// `# syntax=` makes BuildKit fetch a frontend image: offline and air-gapped
/// builds fail for nothing.
#[test]
fn dockerfile_fetches_no_frontend() {
    let text = read("Dockerfile");
    assert!(
        !text
            .lines()
            .any(|l| l.trim_start().to_ascii_lowercase().starts_with("# syntax")),
        "drop the # syntax= line"
    );
}

/// A Dockerfile stage: its name (`AS NAME`), then its instructions, `FROM` included.
type Stage = (Option<String>, Vec<(String, String)>);

/// The stages of the Dockerfile, in order.
fn stages() -> Vec<Stage> {
    let mut stages: Vec<Stage> = Vec::new();
    for (keyword, args) in dockerfile() {
        if keyword == "FROM" {
            let name = args
                .split_once(" AS ")
                .or_else(|| args.split_once(" as "))
                .map(|(_, n)| n.trim().to_owned());
            stages.push((name, Vec::new()));
        }
        if let Some((_, instructions)) = stages.last_mut() {
            instructions.push((keyword, args));
        }
    }
    stages
}

/// The echo backends run the `echo` stage, which exposes no port of the
/// proxy's; the Rust build runs once: one service builds each image, and
/// every service's image is one a service builds.
#[test]
fn compose_builds_each_image_once_and_echo_exposes_nothing() {
    let stages = stages();
    let echo = stages
        .iter()
        .find(|(name, _)| name.as_deref() == Some("echo"))
        .expect("an `echo` stage");
    assert!(
        !echo
            .1
            .iter()
            .any(|(k, _)| k == "EXPOSE" || k == "HEALTHCHECK"),
        "the echo stage must not expose the proxy's ports: {:?}",
        echo.1
    );
    assert!(
        stages
            .iter()
            .filter(|(_, s)| s
                .iter()
                .any(|(k, a)| k == "RUN" && a.contains("cargo build --release")))
            .count()
            == 1,
        "one stage compiles"
    );

    let compose = compose();
    let mut built: BTreeMap<String, String> = BTreeMap::new();
    let mut used: Vec<(String, String)> = Vec::new();
    for (name, service) in entries(&compose["services"]) {
        // The fleet's Redis is the one image pulled, not built.
        if is_redis(service) {
            continue;
        }
        let image = service["image"]
            .as_str()
            .unwrap_or_else(|| panic!("{name} names its image"))
            .to_owned();
        let build = &service["build"];
        if !build.is_badvalue() {
            let target = build["target"].as_str().unwrap_or("(default)").to_owned();
            assert!(
                built.insert(image.clone(), target).is_none(),
                "{image} is built by two services"
            );
        } else {
            used.push((name.to_owned(), image));
        }
    }
    assert_eq!(
        built.get("strangler:local").map(String::as_str),
        Some("(default)")
    );
    assert_eq!(
        built.get("strangler-echo:local").map(String::as_str),
        Some("echo")
    );
    for (name, image) in used {
        assert!(
            built.contains_key(&image),
            "{name} uses {image}, which no service builds"
        );
    }
    for backend in ["legacy", "new"] {
        let image = compose["services"][backend]["image"].as_str().unwrap();
        assert_eq!(
            image, "strangler-echo:local",
            "{backend} runs the echo image"
        );
    }
}

/// The README's compose curl block has the fallback example the compose
/// file's header shows.
#[test]
fn readme_compose_block_shows_the_fallback() {
    let readme = read("README.md");
    let section = &readme[readme.find("## docker-compose").unwrap()..];
    let block = &section[..section.find("\n```\n").unwrap()];
    assert!(block.contains("localhost:8080/api/payments/42"), "{block}");
    assert!(read("docker-compose.yml").contains("localhost:8080/api/payments/42"));
}

/// SPEC §3.10 on Kubernetes: the replicas' `[control]` names the Redis
/// Service that redis.yaml runs (memory only), and kustomize applies it.
#[test]
fn kubernetes_replicas_share_the_redis_redis_yaml_runs() {
    let config: toml::Table = configmap_toml().parse().unwrap();
    let url: http::Uri = config["control"]["redis"]
        .as_str()
        .expect("the ConfigMap's config has [control] redis")
        .parse()
        .unwrap();
    let documents = YamlLoader::load_from_str(&read("deploy/kubernetes/redis.yaml")).unwrap();
    let service = documents
        .iter()
        .find(|d| d["kind"].as_str() == Some("Service"))
        .expect("redis.yaml has a Service");
    assert_eq!(service["metadata"]["name"].as_str(), url.host());
    let port = number::<u16>(&items(&service["spec"]["ports"])[0]["port"], "port");
    assert_eq!(Some(port), url.port_u16());
    let deployment = documents
        .iter()
        .find(|d| d["kind"].as_str() == Some("Deployment"))
        .expect("redis.yaml has a Deployment");
    let args = strings(&items(&deployment["spec"]["template"]["spec"]["containers"])[0]["args"]);
    assert!(
        args.windows(2).any(|w| w == ["--appendonly", "no"]),
        "{args:?}"
    );
    let kustomization = k8s("kustomization.yaml");
    assert!(strings(&kustomization["resources"]).contains(&"redis.yaml".to_owned()));
    // A password never goes in the ConfigMap: the way to a Secret is documented.
    assert!(url.authority().is_some_and(|a| !a.as_str().contains('@')));
    assert!(
        read("deploy/kubernetes/configmap.yaml")
            .contains("kubectl create secret generic strangler-config")
    );
}
