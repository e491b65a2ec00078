# syntax=docker/dockerfile:1
# prodex gateway — multi-stage, locked build; small non-root runtime image (distroless/cc: glibc and
# CA certificates, no shell, no package manager). Health is checked by the binary itself.

FROM rust:1.95-slim-bookworm AS builder
WORKDIR /src
# Dependencies first, in their own layer: rebuilt only when Cargo.toml or Cargo.lock change.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src tests/support \
 && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
 && echo 'fn main() {}' > tests/support/mock_main.rs && touch tests/gateway.rs \
 && cargo build --release --locked --bin prodex \
 && rm -rf src tests
COPY src src
COPY tests tests
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked --bin prodex \
 && strip target/release/prodex \
 && mkdir -p /out/var/lib/prodex /out/var/log/prodex

FROM gcr.io/distroless/cc-debian12:nonroot
# uid/gid 65532 ("nonroot") owns the state and log volumes.
COPY --from=builder --chown=65532:65532 /out/var/lib/prodex /var/lib/prodex
COPY --from=builder --chown=65532:65532 /out/var/log/prodex /var/log/prodex
COPY --from=builder /src/target/release/prodex /usr/local/bin/prodex
ENV PRODEX_HOME=/var/lib/prodex \
    PRODEX_RUNTIME_LOG_DIR=/var/log/prodex
USER 65532:65532
EXPOSE 4000
VOLUME ["/var/lib/prodex", "/var/log/prodex"]
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 CMD ["prodex", "gateway", "healthcheck"]
ENTRYPOINT ["prodex"]
CMD ["gateway", "--listen", "0.0.0.0:4000"]
