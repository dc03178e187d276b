# docker build -t strangler .
# docker run --rm -p 8080:8080 -v "$PWD/config:/etc/strangler:ro" strangler
#
# Mount a config *directory* at /etc/strangler (not a single file): the proxy
# watches the directory, so editors' rename-on-save and Kubernetes ConfigMap
# updates are seen.

# === build ===
FROM rust:1-bookworm AS build
WORKDIR /src

# Dependencies in their own layer: rebuilt only when Cargo.toml or Cargo.lock
# change. Dummy sources stand in for the crate (and for any declared bench,
# whose file cargo wants to see).
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && for bench in $(awk '/^\[\[bench\]\]/ { b = 1 } b && /^name *=/ { gsub(/^name *= *"|".*$/, ""); print; b = 0 }' Cargo.toml); do \
         echo 'fn main() {}' > "benches/$bench.rs"; \
       done \
    && cargo build --release --locked \
    && rm -rf src benches

# The real sources (.dockerignore keeps target/, .git and tests/ out).
# `config/` must be here before the build: src/demo.rs embeds config/demo.toml
# with include_str!.
COPY . .
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked \
    && cp target/release/strangler /usr/local/bin/strangler

# === runtime base: the binary, no ports, no config ===
FROM debian:bookworm-slim AS base
# ca-certificates: roots for https backends.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/local/bin/strangler /usr/local/bin/strangler
USER 10001:10001
ENTRYPOINT ["strangler"]

# === echo: the stand-in backends of docker-compose.yml ===
# `docker build --target echo`: the same binary, without the proxy's ports,
# health check and config (an echo backend listens where its --listen says).
FROM base AS echo
CMD ["echo", "--help"]

# === the proxy (the default target) ===
FROM base
COPY config/strangler.toml /etc/strangler/strangler.toml
ENV STRANGLER_CONFIG=/etc/strangler/strangler.toml
# Numeric, so Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
EXPOSE 8080 9901
HEALTHCHECK --interval=10s --timeout=5s --start-period=5s --retries=3 \
    CMD ["strangler", "health", "--admin", "127.0.0.1:9901"]
ENTRYPOINT ["strangler"]
CMD ["run"]
