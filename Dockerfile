# gofedmsg in a container: one binary, fedmsg, whose subcommands are the
# daemons (relay, bridge, ...). Built with cgo against Debian's libzmq,
# run as an unprivileged user on a slim Debian with only libzmq's runtime.
FROM golang:1.26-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends libzmq3-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=1 go build -trimpath -o /out/fedmsg ./cmd/fedmsg

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libzmq5 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home --home-dir /nonexistent fedmsg
COPY --from=build /out/fedmsg /usr/local/bin/fedmsg
USER fedmsg
ENTRYPOINT ["fedmsg"]
CMD ["relay", "--help"]
