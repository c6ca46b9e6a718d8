# gofedmsg: the two commands the README promises are `make run` and `make test`.
GO      ?= go
BIN     := bin/fedmsg
CONFIG  ?=
# Seconds each fuzz target runs under `make fuzz` (seeds always run in `make test`).
FUZZTIME ?= 10m

.PHONY: all deps brokers build run test vet bench fuzz clean

all: build

deps:
	@./test/deps.sh

# RabbitMQ (AMQP, AMQPS, STOMP, STOMP+TLS) and ActiveMQ (STOMP) on loopback,
# installed from Debian's packages when missing; the broker tests need them.
brokers:
	@./test/brokers.sh start

build: deps
	$(GO) build -o $(BIN) ./cmd/fedmsg

# Starts the relay on the embedded default endpoints (loopback, no broker).
run: build
	@echo "fedmsg relay: publishers connect to tcp://127.0.0.1:2003, subscribers to tcp://127.0.0.1:4001"
	@echo "  in a second terminal:  ./$(BIN) tail"
	@echo "  in a third terminal:   echo 'Hello, world.' | ./$(BIN) logger"
	@echo "  stop with Ctrl-C"
	./$(BIN) relay $(if $(CONFIG),--config $(CONFIG))

# gofmt, go vet and staticcheck (a go.mod tool: fetched once, then offline).
vet:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change: $$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

# Every test, including the fuzz seed corpora and the end-to-end tests
# that run bin/fedmsg as separate processes.
test: deps brokers vet
	@./test/deps.sh test
	$(GO) test -race -count=1 -timeout 15m ./...

# Our relay, signing, validation and broker transports beside raw baselines
# measured in the same run, as ratios (test/bench.sh).
bench: deps brokers
	./test/bench.sh

# A long fuzz campaign: every fuzz target for FUZZTIME.
fuzz: deps
	./test/fuzz.sh $(FUZZTIME)

clean:
	rm -rf bin
