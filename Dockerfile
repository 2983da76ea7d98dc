# Builds the orderd service and its demo. Used by compose.yaml.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin orderd --bin orderd-demo

FROM debian:bookworm-slim
# curl: compose's health check asks /readyz with it.
RUN apt-get update \
    && apt-get install -y --no-install-recommends curl ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 orderd
COPY --from=build /src/target/release/orderd /usr/local/bin/orderd
COPY --from=build /src/target/release/orderd-demo /usr/local/bin/orderd-demo
COPY config/ /etc/orderd/
USER orderd
ENV ORDERD_CONFIG=/etc/orderd/orderd.toml
ENTRYPOINT ["/usr/local/bin/orderd"]
