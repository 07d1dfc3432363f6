# Sigil and the sample todo-api and todo-web in one small image.
#   docker build -t sigil .
# Build stage: the whole workspace, release profile.
FROM rust:1-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends pkg-config libssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p sigil-server -p todo-api -p todo-web

# Runtime stage: Debian slim with OpenSSL's runtime library, no compiler, no shell tools
# beyond the base image, and a non-root user that owns only its data and keys.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/sigil --shell /usr/sbin/nologin sigil \
 && mkdir -p /var/lib/sigil/keys /var/lib/sigil/data \
 && chown -R sigil:sigil /var/lib/sigil \
 && chmod 0700 /var/lib/sigil/keys
COPY --from=build /src/target/release/sigil /usr/local/bin/sigil
COPY --from=build /src/target/release/todo-api /usr/local/bin/todo-api
COPY --from=build /src/target/release/todo-web /usr/local/bin/todo-web
USER 10001:10001
WORKDIR /var/lib/sigil
ENV SIGIL_BIND=0.0.0.0:8080 \
    SIGIL_KEYS_DIR=/var/lib/sigil/keys \
    SIGIL_DATABASE_URL=sqlite:///var/lib/sigil/data/sigil.db \
    SIGIL_LOG_FORMAT=json
EXPOSE 8080
ENTRYPOINT ["sigil"]
CMD ["serve"]
